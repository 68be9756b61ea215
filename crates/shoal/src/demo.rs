//! `shoal demo`: a throwaway local three-node cluster with sample data.
//!
//! The three nodes run in this one process (each with its own store, Raft
//! thread and ports) and talk to each other over loopback TCP, exactly as
//! separate processes would. Node 1 initializes the cluster; nodes 2 and 3
//! join through it; the first range grows to three replicas; the sample
//! schema is loaded through node 1. Any node accepts SQL.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use shoal_sql::Output;

use crate::cluster::FIRST_RANGE;
use crate::node::{Node, NodeSpec, REPLICATION_FACTOR, launch};

const DEMO_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS accounts (id integer PRIMARY KEY, owner text NOT NULL, balance numeric(12,2) NOT NULL, opened date)",
    "INSERT INTO accounts VALUES (1, 'alice', 1200.50, '2024-01-15'), (2, 'bob', 310.00, '2024-03-02'), (3, 'carol', 98000.25, '2023-11-30')",
    "CREATE TABLE IF NOT EXISTS kv (k text PRIMARY KEY, v bytea)",
    "INSERT INTO kv VALUES ('greeting', '\\x68656c6c6f'), ('answer', '\\x3432')",
];

/// The ports of node `i` (0-based): SQL on `base + 2i`, node-to-node on
/// `base + 2i + 1`, where base is the given SQL port.
fn node_addrs(sql_addr: SocketAddr, i: u16) -> (SocketAddr, SocketAddr) {
    let mut sql = sql_addr;
    sql.set_port(sql_addr.port().saturating_add(2 * i));
    let mut listen = sql_addr;
    listen.set_port(sql_addr.port().saturating_add(2 * i + 1));
    (sql, listen)
}

async fn load_sample_data(node: &Node) -> anyhow::Result<()> {
    let mut session = node
        .db
        .open_session("shoal", "shoal")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let probe = shoal_sql::Session::parse("SELECT count(*) FROM accounts")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if session.execute(&probe[0], Vec::new()).await.is_ok() {
        return Ok(());
    }
    for sql in DEMO_SCHEMA {
        for stmt in shoal_sql::Session::parse(sql).map_err(|e| anyhow::anyhow!("{e}"))? {
            match session.execute(&stmt, Vec::new()).await {
                Ok(Output::Command { .. }) | Ok(_) => {}
                Err(e) => anyhow::bail!("loading demo data failed: {e}"),
            }
        }
    }
    Ok(())
}

/// Waits (bounded) until the first range has its full set of voters.
async fn wait_replicated(node: &Node) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let raft = node.db.kv().raft().clone();
        let voters = tokio::task::spawn_blocking(move || {
            raft.inspect(|d| d.conf_state(FIRST_RANGE).map_or(0, |cs| cs.voters.len()))
                .unwrap_or(0)
        })
        .await
        .unwrap_or(0);
        if voters >= REPLICATION_FACTOR || Instant::now() > deadline {
            return voters;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn demo(
    sql_addr: SocketAddr,
    store: Option<PathBuf>,
    net: tokio::runtime::Handle,
) -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let root = store.unwrap_or_else(|| temp.path().to_path_buf());
    let (first_sql, first_listen) = node_addrs(sql_addr, 0);
    let mut nodes = Vec::new();
    for i in 0..3u16 {
        let (sql, listen) = node_addrs(sql_addr, i);
        let spec = NodeSpec {
            store: root.join(format!("node{}", i + 1)),
            sql_addr: sql,
            listen_addr: listen,
            http_addr: None,
            join: if i == 0 {
                Vec::new()
            } else {
                vec![first_listen]
            },
            raft: shoal_replication::RaftConfig::default(),
            cache_bytes: shoal_storage::rocks::DEFAULT_BLOCK_CACHE_BYTES,
            query_memory: shoal_sql::query_memory::DEMO_BYTES,
            fault_injection: false,
        };
        nodes.push(launch(&spec, &net).await?);
    }
    load_sample_data(&nodes[0]).await?;
    let voters = wait_replicated(&nodes[0]).await;
    println!(
        "Shoal demo: a local {}-node cluster, the sample tables `accounts` and `kv` replicated on {voters} nodes.",
        nodes.len()
    );
    println!("Connect to any node with psql, for example the first:\n");
    println!(
        "    psql \"host={} port={} user=shoal dbname=shoal\"\n",
        first_sql.ip(),
        first_sql.port()
    );
    for (i, node) in nodes.iter().enumerate().skip(1) {
        let addr = node.sql.local_addr()?;
        println!(
            "  node {}: psql \"host={} port={} user=shoal dbname=shoal\"",
            i + 1,
            addr.ip(),
            addr.port()
        );
    }
    println!("\nPress Ctrl-C to stop (the demo data is thrown away).");
    std::io::Write::flush(&mut std::io::stdout())?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut servers = Vec::new();
    for node in nodes {
        let mut stop = stop_rx.clone();
        servers.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop.changed().await;
            };
            shoal_pgwire::serve(node.sql, node.db, shutdown).await;
        }));
    }
    crate::node::shutdown_signal().await;
    let _ = stop_tx.send(true);
    for server in servers {
        let _ = server.await;
    }
    Ok(())
}
