//! # shoal — the one binary
//!
//! Subcommands:
//! - `shoal start`: run a node (today: a single-node cluster) that serves
//!   PostgreSQL clients on `--sql-addr` and stores its data in `--store`.
//! - `shoal demo`: start a throwaway node with sample data and print how to
//!   connect with psql.
//!
//! A node is wired bottom-up: the storage engine (RocksDB) → the KV layer
//! (MVCC transactions, through the replication seam) → the SQL layer → the
//! PostgreSQL front end. SIGINT/SIGTERM stop accepting connections and close
//! the store cleanly.

mod node;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
    /// Start a throwaway local node with sample data and print how to connect.
    Demo {
        /// Address for PostgreSQL clients.
        #[arg(long, default_value = DEFAULT_SQL_ADDR)]
        sql_addr: SocketAddr,
        /// Node-to-node address.
        #[arg(long, default_value = DEFAULT_LISTEN_ADDR)]
        listen_addr: SocketAddr,
        /// Keep the data here instead of a temporary directory.
        #[arg(long)]
        store: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SHOAL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Start(args) => node::start(args).await,
            Command::Demo {
                sql_addr,
                listen_addr,
                store,
            } => node::demo(sql_addr, listen_addr, store).await,
        }
    })
}
