//! Starting, running and stopping one node.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use shoal_kv::Kv;
use shoal_sql::{Database, Output};
use shoal_storage::engine::Engine;
use shoal_storage::rocks::RocksEngine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::{DEFAULT_LISTEN_ADDR, DEFAULT_SQL_ADDR};

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Directory of the node's data; created on first start.
    #[arg(long)]
    store: PathBuf,
    /// Address for PostgreSQL clients.
    #[arg(long, default_value = DEFAULT_SQL_ADDR)]
    sql_addr: SocketAddr,
    /// Node-to-node address (used by replication, in a later release).
    #[arg(long, default_value = DEFAULT_LISTEN_ADDR)]
    listen_addr: SocketAddr,
    /// Address of a small HTTP endpoint answering `GET /health`.
    #[arg(long)]
    http_addr: Option<SocketAddr>,
    /// Addresses of nodes to join; multi-node clusters are not supported yet.
    #[arg(long, value_delimiter = ',')]
    join: Vec<String>,
    /// How long old row versions are kept for snapshot reads, in seconds.
    #[arg(long, default_value_t = 4 * 3600)]
    gc_ttl_secs: u64,
}

/// A running node's handles.
struct Node {
    db: Arc<Database>,
    sql: TcpListener,
    listen: TcpListener,
    http: Option<TcpListener>,
}

async fn open(
    store: &std::path::Path,
    sql_addr: SocketAddr,
    listen_addr: SocketAddr,
    http_addr: Option<SocketAddr>,
) -> anyhow::Result<Node> {
    std::fs::create_dir_all(store)
        .with_context(|| format!("cannot create store directory {}", store.display()))?;
    let engine: Arc<dyn Engine> = Arc::new(
        RocksEngine::open(store)
            .map_err(|e| anyhow::anyhow!("cannot open store {}: {e}", store.display()))?,
    );
    let kv = Kv::open(engine).map_err(|e| anyhow::anyhow!("cannot open KV layer: {e}"))?;
    let db = Database::new(kv);
    let sql = TcpListener::bind(sql_addr)
        .await
        .with_context(|| format!("cannot listen for SQL on {sql_addr}"))?;
    let listen = TcpListener::bind(listen_addr)
        .await
        .with_context(|| format!("cannot listen for nodes on {listen_addr}"))?;
    let http = match http_addr {
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
        listen,
        http,
    })
}

async fn shutdown_signal() {
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

/// Serves until SIGINT/SIGTERM.
async fn run(node: Node, gc_ttl: Duration) -> anyhow::Result<()> {
    let Node {
        db,
        sql,
        listen,
        http,
    } = node;
    tracing::info!(sql = %sql.local_addr()?, listen = %listen.local_addr()?, "node started");
    // Peers have nothing to say to a single-node cluster yet: refuse politely.
    tokio::spawn(async move {
        while let Ok((mut socket, peer)) = listen.accept().await {
            tracing::debug!(%peer, "node-to-node connection refused: single-node cluster");
            let _ = socket.shutdown().await;
        }
    });
    if let Some(http) = http {
        tokio::spawn(serve_health(http));
    }
    let kv = db.kv().clone();
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
    shoal_pgwire::serve(sql, db, shutdown_signal()).await;
    tracing::info!("shutting down");
    Ok(())
}

async fn serve_health(listener: TcpListener) {
    while let Ok((mut socket, _)) = listener.accept().await {
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let _ = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf)).await;
            let body = "ok\n";
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(reply.as_bytes()).await;
        });
    }
}

pub async fn start(args: StartArgs) -> anyhow::Result<()> {
    if !args.join.is_empty() {
        anyhow::bail!(
            "joining a cluster (--join) is not supported yet: Shoal runs single-node clusters for now"
        );
    }
    let node = open(&args.store, args.sql_addr, args.listen_addr, args.http_addr).await?;
    run(node, Duration::from_secs(args.gc_ttl_secs)).await
}

const DEMO_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS accounts (id integer PRIMARY KEY, owner text NOT NULL, balance numeric(12,2) NOT NULL, opened date)",
    "INSERT INTO accounts VALUES (1, 'alice', 1200.50, '2024-01-15'), (2, 'bob', 310.00, '2024-03-02'), (3, 'carol', 98000.25, '2023-11-30')",
    "CREATE TABLE IF NOT EXISTS kv (k text PRIMARY KEY, v bytea)",
    "INSERT INTO kv VALUES ('greeting', '\\x68656c6c6f'), ('answer', '\\x3432')",
];

pub async fn demo(
    sql_addr: SocketAddr,
    listen_addr: SocketAddr,
    store: Option<PathBuf>,
) -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let path = store.unwrap_or_else(|| temp.path().to_path_buf());
    let node = open(&path, sql_addr, listen_addr, None).await?;
    let mut session = node
        .db
        .open_session("shoal", "shoal")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let probe = shoal_sql::Session::parse("SELECT count(*) FROM accounts")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let fresh = session.execute(&probe[0], Vec::new()).await.is_err();
    if fresh {
        for sql in DEMO_SCHEMA {
            for stmt in shoal_sql::Session::parse(sql).map_err(|e| anyhow::anyhow!("{e}"))? {
                match session.execute(&stmt, Vec::new()).await {
                    Ok(Output::Command { .. }) | Ok(_) => {}
                    Err(e) => anyhow::bail!("loading demo data failed: {e}"),
                }
            }
        }
    }
    drop(session);
    let addr = node.sql.local_addr()?;
    println!("Shoal demo node is running with sample tables `accounts` and `kv`.");
    println!(
        "Connect with:\n\n    psql \"host={} port={} user=shoal dbname=shoal\"\n",
        addr.ip(),
        addr.port()
    );
    println!("Press Ctrl-C to stop (the demo data is thrown away).");
    run(node, Duration::from_secs(3600)).await
}
