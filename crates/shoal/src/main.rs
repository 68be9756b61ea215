//! # shoal — the one binary
//!
//! Subcommands:
//! - `shoal start`: run a node that serves PostgreSQL clients on
//!   `--sql-addr`, stores its data in `--store` and talks to other nodes on
//!   `--listen-addr`. Without `--join`, a new store starts a single-node
//!   cluster; with it, the node joins through the listed nodes (or waits
//!   for `shoal init`).
//! - `shoal init --host ADDR`: initialize a new cluster on the node at ADDR.
//! - `shoal node status --host ADDR`: list the cluster's nodes (address,
//!   liveness, membership, replica and lease counts) as the node at ADDR
//!   sees them.
//! - `shoal node decommission ID --host ADDR`: drain node ID of replicas
//!   and leases, waiting until it may be stopped.
//! - `shoal demo`: start a throwaway local three-node cluster with sample
//!   data and print how to connect with psql.
//!
//! A node is wired bottom-up (`node.rs`): the storage engine (RocksDB) → its
//! identity (`cluster.rs`) → Raft → the KV layer (MVCC transactions) → the
//! SQL layer → the PostgreSQL front end. SIGINT/SIGTERM stop accepting
//! connections; every acknowledged commit is already durable.

mod cache_size;
mod cluster;
mod demo;
mod fault_injection;
mod node;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// The node's allocator: jemalloc, as TiKV uses. A statement allocates
/// and frees many small objects on several threads (plans, rows, Arrow
/// buffers); with glibc's allocator that was about a seventh of the
/// server's CPU on sysbench's read-only transactions, much of it
/// consolidating fragmented free lists.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Default PostgreSQL port of a Shoal node (not 5432, to live beside a local PostgreSQL).
pub const DEFAULT_SQL_ADDR: &str = "127.0.0.1:6543";
/// Default node-to-node port.
pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:6544";

#[derive(Parser)]
#[command(
    name = "shoal",
    version,
    about = "Shoal: a distributed SQL database that speaks PostgreSQL"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node.
    Start(node::StartArgs),
    /// Initialize a new cluster on the node at HOST (its node-to-node
    /// address). Fails if the cluster is already initialized.
    Init {
        /// The node's `--listen-addr`.
        #[arg(long)]
        host: SocketAddr,
    },
    /// Inspect the cluster's nodes.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Start a throwaway local three-node cluster with sample data and print
    /// how to connect.
    Demo {
        /// SQL address of the first node; the nodes use this port and the
        /// five after it (SQL and node-to-node, alternating).
        #[arg(long, default_value = DEFAULT_SQL_ADDR)]
        sql_addr: SocketAddr,
        /// Keep the data here instead of a temporary directory.
        #[arg(long)]
        store: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum NodeCommand {
    /// List every node: id, address, liveness, membership, replicas,
    /// leases.
    Status {
        /// Any node's `--listen-addr`.
        #[arg(long)]
        host: SocketAddr,
    },
    /// Move every replica and lease off node ID, then report it may be
    /// stopped. Needs a live node without a replica to move them to.
    Decommission {
        /// The node to drain.
        id: u64,
        /// Any node's `--listen-addr`.
        #[arg(long)]
        host: SocketAddr,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 600)]
        wait: u64,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SHOAL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    // SQL statements run on these workers and call the KV layer
    // synchronously. Their long waits (a quorum, another node, a decision)
    // hand the worker's queue to another thread (`shoal_replication::
    // blocking`); the rest — storage reads, page faults — still hold it,
    // so the SQL runtime keeps more workers than cores. (Three on two
    // cores shortened point selects' tails but cost inserts a quarter of
    // their throughput: every commit's wait became a thread handoff.)
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads((4 * cores).max(8))
        .thread_name("sql")
        .enable_all()
        .build()?;
    // Node-to-node traffic has a runtime of its own (see `node.rs`).
    let net = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("net")
        .enable_all()
        .build()?;
    let net_handle = net.handle().clone();
    let outcome = runtime.block_on(async move {
        match cli.command {
            Command::Start(args) => node::start(args, net_handle).await,
            Command::Init { host } => node::init(host).await,
            Command::Node(NodeCommand::Status { host }) => node::node_status(host).await,
            Command::Node(NodeCommand::Decommission { id, host, wait }) => {
                node::node_decommission(id, host, std::time::Duration::from_secs(wait)).await
            }
            Command::Demo { sql_addr, store } => demo::demo(sql_addr, store, net_handle).await,
        }
    });
    net.shutdown_timeout(std::time::Duration::from_secs(1));
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    outcome
}
