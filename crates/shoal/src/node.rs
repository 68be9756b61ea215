//! Starting, running and stopping one node.
//!
//! # Wiring
//!
//! Bottom-up: the RocksDB engine → the node's identity (`cluster.rs`) →
//! the Raft thread (`MultiRaft` + [`KvStateMachine`], sending through the
//! TCP transport) → the KV store → the SQL layer → the PostgreSQL front
//! end.
//!
//! # Threads
//!
//! SQL connections run on the main tokio runtime. Node-to-node traffic (the
//! transport's connection tasks and the listener) runs on a separate
//! runtime, so SQL statements blocked waiting for a quorum can never starve
//! the very messages that would form it. The Raft driver has its own
//! thread.
//!
//! # Maintenance
//!
//! Every half second a node refreshes its address book from the node
//! registry, makes sure it is registered itself, and for every range it
//! leads runs the replicate queue (add a learner, promote it) until the
//! range has its replicas (three; five voters for the first range, and a
//! learner on every other node),
//! splits it if it grew too big, and writes its descriptor to the
//! directory if it changed. It removes replicas the directory says their
//! range dropped. The leader of the first range also runs the placement
//! loop (`shoal_kv`'s `rebalance.rs`) every round.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use shoal_kv::{DEFAULT_TICK, Kv, KvStateMachine, SystemClock};
use shoal_replication::clock::WallClock;
use shoal_replication::tcp::{Introduction, TcpTransport};
use shoal_replication::tcp_requests::TcpRequests;
use shoal_replication::{MultiRaft, RaftConfig, RaftRunner, replicate_queue};
use shoal_sql::Database;
use shoal_storage::engine::Engine;
use shoal_storage::rocks::RocksEngine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::cluster::{FIRST_RANGE, NodeControl};
use crate::fault_injection::Faults;
use crate::{DEFAULT_LISTEN_ADDR, DEFAULT_SQL_ADDR};

/// Replicas per range.
pub const REPLICATION_FACTOR: usize = 3;

/// Moves the placement loop asks for per round.
const REBALANCE_MOVES: usize = 8;

/// How many voters `range` should have.
fn replication_target(range: u64) -> usize {
    if range == FIRST_RANGE {
        SYSTEM_REPLICATION_FACTOR
    } else {
        REPLICATION_FACTOR
    }
}

/// Voters of the first range, which holds the cluster state and the range
/// directory: five, as CockroachDB keeps its system ranges, so two failures
/// leave a quorum. Every other live node holds it as a learner, so every
/// node reads the cluster state locally.
pub const SYSTEM_REPLICATION_FACTOR: usize = 5;

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Directory of the node's data; created on first start.
    #[arg(long)]
    store: PathBuf,
    /// Address for PostgreSQL clients.
    #[arg(long, default_value = DEFAULT_SQL_ADDR)]
    sql_addr: SocketAddr,
    /// Node-to-node address: other nodes reach this one here, exactly.
    #[arg(long, default_value = DEFAULT_LISTEN_ADDR)]
    listen_addr: SocketAddr,
    /// Address of a small HTTP endpoint answering `GET /health`.
    #[arg(long)]
    http_addr: Option<SocketAddr>,
    /// Node-to-node addresses of cluster members to join through. Without
    /// it, a new store starts a single-node cluster of its own.
    #[arg(long, value_delimiter = ',')]
    join: Vec<SocketAddr>,
    /// How long old row versions are kept for snapshot reads, in seconds.
    #[arg(long, default_value_t = 4 * 3600)]
    gc_ttl_secs: u64,
    /// Raft log entries a replica keeps before compacting (tests lower it
    /// to force snapshots).
    #[arg(long, hide = true, default_value_t = RaftConfig::default().log_compact_threshold)]
    raft_log_keep: usize,
    /// The store's block cache: a percentage of physical memory or a size
    /// (`512MiB`, `2GiB`).
    #[arg(long, default_value = crate::cache_size::DEFAULT_CACHE)]
    cache: String,
    /// The memory the node's queries may hold together: a percentage of
    /// physical memory or a size. A query that needs more fails with
    /// SQLSTATE 53200.
    #[arg(long, default_value = crate::cache_size::DEFAULT_QUERY_MEMORY)]
    query_memory: String,
    /// Let the HTTP endpoint cut links and move the clock (tests only:
    /// `fault_injection.rs`).
    #[arg(long, hide = true)]
    fault_injection: bool,
}

/// What a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub store: PathBuf,
    pub sql_addr: SocketAddr,
    pub listen_addr: SocketAddr,
    pub http_addr: Option<SocketAddr>,
    pub join: Vec<SocketAddr>,
    pub raft: RaftConfig,
    /// The bytes the store's block cache may hold.
    pub cache_bytes: usize,
    /// The bytes the node's queries may hold together.
    pub query_memory: usize,
    /// Whether the HTTP endpoint may inject faults (`fault_injection.rs`).
    pub fault_injection: bool,
}

/// A started node.
pub struct Node {
    pub db: Arc<Database>,
    pub sql: TcpListener,
    pub http: Option<TcpListener>,
    /// The fault knobs, when started with fault injection.
    pub faults: Option<Arc<Faults>>,
}

/// Opens the store, becomes (or finds out) who this node is, starts Raft
/// and the maintenance loop, and binds the SQL port.
pub async fn launch(spec: &NodeSpec, net: &tokio::runtime::Handle) -> anyhow::Result<Node> {
    std::fs::create_dir_all(&spec.store)
        .with_context(|| format!("cannot create store directory {}", spec.store.display()))?;
    let faults = spec.fault_injection.then(|| Arc::new(Faults::default()));
    let mut rocks = RocksEngine::open_with_cache(&spec.store, spec.cache_bytes)
        .map_err(|e| anyhow::anyhow!("cannot open store {}: {e}", spec.store.display()))?;
    if let Some(faults) = &faults {
        rocks = rocks.with_disk_faults(faults.disk.clone());
    }
    let engine: Arc<dyn Engine> = Arc::new(rocks);
    let identity = crate::cluster::load_identity(engine.as_ref())?;
    let control = NodeControl::new(engine.clone(), spec.listen_addr, identity);

    // The node-to-node listener serves control calls before the node has an
    // identity (that is how `shoal init` and joins reach it).
    let listen_addr = spec.listen_addr;
    let service = control.clone();
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    net.spawn(async move {
        match TcpListener::bind(listen_addr).await {
            Ok(listener) => {
                let _ = bound_tx.send(Ok(()));
                shoal_replication::tcp::serve(listener, service).await;
            }
            Err(e) => {
                let _ = bound_tx.send(Err(e));
            }
        }
    });
    bound_rx
        .await
        .context("the node-to-node listener stopped")?
        .with_context(|| format!("cannot listen for nodes on {listen_addr}"))?;

    let identity = match control.identity() {
        Some(identity) => identity,
        None if spec.join.is_empty() => control.initialize()?,
        None => control.join(&spec.join).await?,
    };

    let (machine, published) = KvStateMachine::open(engine.as_ref())
        .map_err(|e| anyhow::anyhow!("cannot open KV layer: {e}"))?;
    let mut driver = MultiRaft::open(identity.node_id, engine.clone(), spec.raft.clone(), machine)
        .map_err(|e| anyhow::anyhow!("cannot open replicas: {e}"))?;
    let wall: Arc<dyn WallClock> = match &faults {
        Some(faults) => faults.clock.clone(),
        None => Arc::new(SystemClock),
    };
    let net_faults = faults.as_ref().map(|f| f.net.clone()).unwrap_or_default();
    driver.set_clock(wall.clone());
    let transport = Arc::new(
        TcpTransport::new(
            Introduction {
                cluster_id: identity.cluster_id,
                node: identity.node_id,
                addr: spec.listen_addr,
            },
            control.addresses.clone(),
            net.clone(),
        )
        .with_faults(net_faults.clone()),
    );
    let raft = RaftRunner::spawn(driver, transport, DEFAULT_TICK)
        .map_err(|e| anyhow::anyhow!("cannot start replication: {e}"))?;
    let requests = Arc::new(
        TcpRequests::new(identity.cluster_id, control.addresses.clone()).with_faults(net_faults),
    );
    let kv = Kv::new(engine, raft.clone(), published, wall, requests);
    control.set_running(raft, kv.clone());
    if let Ok(nodes) = kv.nodes() {
        control.learn_registry(&nodes);
    }
    tokio::spawn(maintain(kv.clone(), control.clone(), spec.listen_addr));
    tracing::info!(
        node_id = identity.node_id,
        cluster_id = %format!("{:032x}", identity.cluster_id),
        "node is part of the cluster"
    );

    let db = Database::new(kv, spec.query_memory);
    let sql = TcpListener::bind(spec.sql_addr)
        .await
        .with_context(|| format!("cannot listen for SQL on {}", spec.sql_addr))?;
    let http = match spec.http_addr {
        Some(a) => Some(
            TcpListener::bind(a)
                .await
                .with_context(|| format!("cannot listen for HTTP on {a}"))?,
        ),
        None => None,
    };
    Ok(Node {
        db,
        sql,
        http,
        faults,
    })
}

/// The maintenance loop: address book, self-registration, liveness
/// heartbeats, replicate queue.
async fn maintain(kv: Arc<Kv>, control: Arc<NodeControl>, listen_addr: SocketAddr) {
    let Some(me) = control.identity().map(|i| i.node_id) else {
        return;
    };
    let mut last_heartbeat: Option<std::time::Instant> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let heartbeat_due =
            last_heartbeat.is_none_or(|t| t.elapsed() >= shoal_kv::liveness::HEARTBEAT_INTERVAL);
        if heartbeat_due {
            last_heartbeat = Some(std::time::Instant::now());
            // On its own task: a heartbeat waiting for a quorum must not
            // hold up the rest of the loop.
            tokio::spawn(heartbeat(kv.clone(), control.clone(), me));
        }
        let kv = kv.clone();
        let control = control.clone();
        let round = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let nodes = kv.nodes()?;
            control.learn_registry(&nodes);
            let raft = kv.raft();
            let listed = nodes
                .iter()
                .any(|(id, addr)| *id == me && *addr == listen_addr.to_string());
            if !listed && raft.leader(FIRST_RANGE).is_some() {
                kv.register_node(me, &listen_addr.to_string())?;
            }
            // Every range this node leads: the leader runs the queue.
            let views = raft.inspect(|driver| {
                driver
                    .ranges()
                    .into_iter()
                    .filter_map(|range| driver.range_view(range).map(|view| (range, view)))
                    .collect::<Vec<_>>()
            })?;
            // Ranges grown past their span's range_max_bytes split in two.
            if let Err(e) = kv.split_oversized() {
                tracing::debug!(error = %e, "size-based split failed");
            }
            // Ranges this node served above kv.range_split.load_qps_threshold.
            if let Err(e) = kv.split_by_load() {
                tracing::debug!(error = %e, "load-based split failed");
            }
            // The directory learns of what changed in ranges led here.
            if let Err(e) = kv.publish_descriptors() {
                tracing::debug!(error = %e, "publishing range descriptors failed");
            }
            // Replicas whose range dropped this node while it was away.
            if let Err(e) = kv.collect_stale_replicas() {
                tracing::debug!(error = %e, "collecting stale replicas failed");
            }
            // The placement loop: on the first range's leader only.
            if raft.leader(FIRST_RANGE) == Some(me) {
                // Small neighbours merge first; a pair being merged is
                // left alone by the rebalancer this round.
                let busy = match kv.merge_round() {
                    Ok(round) => {
                        if !round.merged.is_empty() {
                            tracing::debug!(merged = ?round.merged, "merged ranges");
                        }
                        round.busy
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "merging failed");
                        Vec::new()
                    }
                };
                // The first range is everywhere already: never moved (a
                // target no range reaches keeps the planner off it).
                let movable = |range| {
                    if range == FIRST_RANGE || busy.contains(&range) {
                        usize::MAX
                    } else {
                        replication_target(range)
                    }
                };
                match kv.rebalance_round(REBALANCE_MOVES, movable) {
                    Ok(moves) if !moves.is_empty() => {
                        tracing::debug!(?moves, "rebalancing");
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = %e, "rebalancing failed"),
                }
            }
            if views.is_empty() {
                return Ok(());
            }
            // Live nodes may receive replicas; nodes dead for longer than
            // server.time_until_store_dead, or decommissioning, have theirs
            // replaced.
            let (live, dead) = kv.node_verdicts()?;
            let has_cluster_state = kv.holds_cluster_state();
            for (range, view) in views {
                if dead.contains(&me) || !has_cluster_state {
                    // This node is being drained — or, holding no replica
                    // of the first range (a drained node loses it too), it
                    // cannot tell live nodes from dead ones — and leads the
                    // range: hand the lease to a voter that can decide,
                    // which then moves this replica away if it must.
                    if let Some(&to) = view
                        .conf_state
                        .voters
                        .iter()
                        .find(|&&v| v != me && (live.contains(&v) || !has_cluster_state))
                    {
                        tracing::info!(range, to, "draining: transferring leadership");
                        if let Err(e) = raft.inspect(move |d| d.transfer_leader(range, to))? {
                            tracing::debug!(range, error = %e, "leadership transfer refused");
                        }
                    }
                    continue;
                }
                let target = replication_target(range);
                // The first range is held by every node (a learner past its
                // five voters): each reads the cluster state locally.
                let plan = if range == FIRST_RANGE {
                    replicate_queue::plan_everywhere
                } else {
                    replicate_queue::plan
                };
                if let Some(change) = plan(&view, &live, &dead, target) {
                    tracing::info!(range, ?change, "changing replicas");
                    if let Err(e) = raft.change_membership(range, change, Duration::from_secs(10)) {
                        tracing::debug!(range, error = %e, "membership change failed");
                    }
                }
            }
            Ok(())
        })
        .await;
        match round {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "maintenance round failed"),
            Err(e) => tracing::warn!(error = %e, "maintenance round panicked"),
        }
    }
}

/// Renews this node's liveness: through its own replica of the first range
/// when it has one that knows a leader, else by asking another node to
/// propose it (a node without a replica cannot).
async fn heartbeat(kv: Arc<Kv>, control: Arc<NodeControl>, me: u64) {
    use crate::cluster::{ControlRequest, ControlResponse, call};
    let timeout = shoal_kv::liveness::HEARTBEAT_INTERVAL;
    let has_replica = kv.raft().leader(FIRST_RANGE).is_some();
    if has_replica {
        let local = tokio::task::spawn_blocking(move || kv.heartbeat(me, timeout)).await;
        if let Ok(Err(e)) = local {
            tracing::debug!(error = %e, "liveness heartbeat failed");
        }
        return;
    }
    let peers: Vec<SocketAddr> = control
        .addresses
        .read()
        .iter()
        .filter(|&(&id, _)| id != me)
        .map(|(_, &addr)| addr)
        .collect();
    for addr in peers {
        let request = ControlRequest::Heartbeat { node_id: me };
        match tokio::time::timeout(timeout, call(addr, &request)).await {
            Ok(Ok(ControlResponse::Alive)) => return,
            Ok(Ok(other)) => tracing::debug!(%addr, ?other, "liveness heartbeat refused"),
            Ok(Err(e)) => tracing::debug!(%addr, error = %e, "liveness heartbeat failed"),
            Err(_) => tracing::debug!(%addr, "liveness heartbeat timed out"),
        }
    }
}

pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Background work every node does while serving: health endpoint, GC.
fn spawn_background(node: &mut Node, gc_ttl: Duration) {
    if let Some(http) = node.http.take() {
        tokio::spawn(serve_health(
            http,
            node.db.kv().clone(),
            node.faults.clone(),
        ));
    }
    let kv = node.db.kv().clone();
    tokio::spawn(async move {
        let mut tick =
            tokio::time::interval(Duration::from_secs(60).min(gc_ttl.max(Duration::from_secs(1))));
        loop {
            tick.tick().await;
            let kv = kv.clone();
            match tokio::task::spawn_blocking(move || kv.gc(gc_ttl)).await {
                Ok(Ok(stats)) if stats.versions_removed > 0 => {
                    tracing::info!(
                        removed = stats.versions_removed,
                        scanned = stats.keys_scanned,
                        "garbage collected old versions"
                    )
                }
                Ok(Err(e)) => tracing::warn!("garbage collection failed: {e}"),
                _ => {}
            }
        }
    });
}

/// Serves until SIGINT/SIGTERM.
async fn run(mut node: Node, gc_ttl: Duration) -> anyhow::Result<()> {
    spawn_background(&mut node, gc_ttl);
    tracing::info!(sql = %node.sql.local_addr()?, "serving SQL");
    shoal_pgwire::serve(node.sql, node.db, shutdown_signal()).await;
    tracing::info!("shutting down");
    Ok(())
}

/// `GET /health`: 200 while the node's replication runs, 503 after it
/// stopped (a storage failure). `GET /status`: the node's view of the first
/// range as JSON (node id, leader, voters, learners, applied index,
/// snapshots installed) — for operators and tests.
async fn serve_health(listener: TcpListener, kv: Arc<Kv>, faults: Option<Arc<Faults>>) {
    while let Ok((mut socket, _)) = listener.accept().await {
        let kv = kv.clone();
        let faults = faults.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let n = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]);
            let first_line = request.lines().next().unwrap_or_default();
            let fault_answer = match &faults {
                Some(faults) => faults.answer(first_line),
                None => crate::fault_injection::disabled(first_line),
            };
            let (status, body) = if let Some(answer) = fault_answer {
                answer
            } else if request.starts_with("GET /status") {
                ("200 OK", status_json(kv).await)
            } else if kv.raft().is_stopped() {
                (
                    "503 Service Unavailable",
                    "replication stopped\n".to_string(),
                )
            } else {
                ("200 OK", "ok\n".to_string())
            };
            let reply = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(reply.as_bytes()).await;
        });
    }
}

async fn status_json(kv: Arc<Kv>) -> String {
    let raft = kv.raft().clone();
    let node = raft.node_id();
    let view = tokio::task::spawn_blocking(move || {
        raft.inspect(|d| {
            let cs = d.conf_state(FIRST_RANGE).unwrap_or_default();
            (
                d.leader(FIRST_RANGE),
                cs.voters,
                cs.learners,
                d.applied_index(FIRST_RANGE),
                d.stats().snapshots_installed,
            )
        })
    })
    .await;
    match view {
        Ok(Ok((leader, voters, learners, applied, snapshots))) => serde_json::json!({
            "node_id": node,
            "leader": leader,
            "voters": voters,
            "learners": learners,
            "applied": applied,
            "snapshots_installed": snapshots,
        })
        .to_string(),
        _ => serde_json::json!({ "node_id": node, "error": "replication stopped" }).to_string(),
    }
}

pub async fn start(args: StartArgs, net: tokio::runtime::Handle) -> anyhow::Result<()> {
    let spec = NodeSpec {
        store: args.store,
        sql_addr: args.sql_addr,
        listen_addr: args.listen_addr,
        http_addr: args.http_addr,
        join: args.join,
        raft: RaftConfig {
            log_compact_threshold: args.raft_log_keep.max(1),
            ..RaftConfig::default()
        },
        cache_bytes: crate::cache_size::parse(
            "--cache",
            &args.cache,
            crate::cache_size::physical_memory(),
        )?,
        query_memory: crate::cache_size::parse(
            "--query-memory",
            &args.query_memory,
            crate::cache_size::physical_memory(),
        )?,
        fault_injection: args.fault_injection,
    };
    let node = launch(&spec, &net).await?;
    run(node, Duration::from_secs(args.gc_ttl_secs)).await
}

/// `shoal init --host ADDR`: asks the node at ADDR to create the cluster.
pub async fn init(host: SocketAddr) -> anyhow::Result<()> {
    use crate::cluster::{ControlRequest, ControlResponse, call};
    match call(host, &ControlRequest::Init)
        .await
        .with_context(|| format!("cannot reach the node at {host}"))?
    {
        ControlResponse::Initialized { cluster_id } => {
            println!("initialized a new cluster (id {cluster_id}) on the node at {host}");
            Ok(())
        }
        ControlResponse::Refused { reason } => anyhow::bail!("{reason}"),
        other => anyhow::bail!("unexpected answer: {other:?}"),
    }
}

/// `shoal node decommission ID --host ADDR`: marks node `id` for draining
/// and waits (up to `wait`) until it holds no replica, printing progress.
pub async fn node_decommission(id: u64, host: SocketAddr, wait: Duration) -> anyhow::Result<()> {
    use crate::cluster::{ControlRequest, ControlResponse, call};
    match call(host, &ControlRequest::Decommission { node_id: id })
        .await
        .with_context(|| format!("cannot reach the node at {host}"))?
    {
        ControlResponse::Decommissioning => {}
        ControlResponse::Refused { reason } => anyhow::bail!("{reason}"),
        other => anyhow::bail!("unexpected answer: {other:?}"),
    }
    println!("node {id} is decommissioning: moving its replicas and leases away");
    let deadline = std::time::Instant::now() + wait;
    let mut last = None;
    // A drained node's own view of the range may stay stale once it is no
    // longer a member: ask another live node how far the draining got.
    let mut poll = host;
    loop {
        let nodes = match call(poll, &ControlRequest::NodeStatus).await {
            Ok(ControlResponse::Nodes { nodes }) => nodes,
            Ok(ControlResponse::Refused { reason }) => anyhow::bail!("{reason}"),
            Ok(other) => anyhow::bail!("unexpected answer: {other:?}"),
            Err(e) => anyhow::bail!("cannot reach the node at {host}: {e}"),
        };
        let Some(node) = nodes.iter().find(|n| n.node_id == id) else {
            anyhow::bail!("node {id} is not a member of the cluster");
        };
        if poll.to_string() == node.address
            && let Some(other) = nodes
                .iter()
                .filter(|n| n.node_id != id && n.is_live)
                .find_map(|n| n.address.parse::<SocketAddr>().ok())
        {
            poll = other;
            continue;
        }
        if node.replicas == 0 {
            println!("node {id} is decommissioned: it holds no replica and may be stopped");
            return Ok(());
        }
        if last != Some(node.replicas) {
            println!("node {id}: {} replica(s) left", node.replicas);
            last = Some(node.replicas);
        }
        if std::time::Instant::now() >= deadline {
            anyhow::bail!(
                "node {id} still holds {} replica(s) after {}s: is there a live node without a replica to move them to?",
                node.replicas,
                wait.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `shoal node status --host ADDR`: prints the cluster's nodes as the node
/// at `host` sees them.
pub async fn node_status(host: SocketAddr) -> anyhow::Result<()> {
    use crate::cluster::{ControlRequest, ControlResponse, call};
    match call(host, &ControlRequest::NodeStatus)
        .await
        .with_context(|| format!("cannot reach the node at {host}"))?
    {
        ControlResponse::Nodes { nodes } => {
            println!(
                "{:>7}  {:<21}  {:<7}  {:<15}  {:>8}  {:>6}",
                "node_id", "address", "is_live", "membership", "replicas", "leases"
            );
            for n in nodes {
                println!(
                    "{:>7}  {:<21}  {:<7}  {:<15}  {:>8}  {:>6}",
                    n.node_id, n.address, n.is_live, n.membership, n.replicas, n.leases
                );
            }
            Ok(())
        }
        ControlResponse::Refused { reason } => anyhow::bail!("{reason}"),
        other => anyhow::bail!("unexpected answer: {other:?}"),
    }
}
