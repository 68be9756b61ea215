#![allow(clippy::expect_used, clippy::unwrap_used)] // test support: a panic is the failure report
//! End-to-end test support: real `shoal` processes on loopback.
//!
//! [`TestNode`] starts the `shoal` binary (built into the same target
//! directory as the tests) on free 127.0.0.1 ports with a store in a
//! temporary directory, waits until it accepts PostgreSQL connections, and
//! stops it — by its pid, and only it — when dropped. `kill9` and `restart`
//! exercise crash recovery on the same store.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls};

/// Path of the `shoal` binary next to the running test executable.
pub fn shoal_bin() -> PathBuf {
    if let Ok(p) = std::env::var("SHOAL_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/shoal
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let bin = dir.join("shoal");
    assert!(
        bin.exists(),
        "{} not found: build it first (cargo build -p shoal)",
        bin.display()
    );
    bin
}

/// A free loopback port for a node to bind.
///
/// Ports come from below the kernel's ephemeral range (which starts at
/// 32768 by default): a port asked of the kernel with `:0` is an ephemeral
/// one, and any outgoing connection — a node dialing a peer, a client — may
/// take it between this check and the node's bind. Below the range only
/// another listener can, so each port is checked free and handed out once
/// per test process; the starting point is spread by process id and time
/// so that concurrent test processes rarely probe the same ports.
pub fn free_addr() -> SocketAddr {
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let start = std::process::id().wrapping_mul(7_919).wrapping_add(nanos) % COUNT;
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    for i in 0..COUNT {
        let port = u16::try_from(FIRST + (start + i) % COUNT).expect("ports below 32000");
        if handed_out.contains(&port) {
            continue;
        }
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            handed_out.insert(port);
            return listener.local_addr().expect("local addr");
        }
    }
    panic!(
        "no free loopback port between {FIRST} and {}",
        FIRST + COUNT
    );
}

pub mod chaos;
pub mod cluster;
pub mod linearizable;
pub mod list_append;
pub mod wire;
pub mod workload;

/// Polls `check` every 200 ms until it holds; panics naming `what` if it
/// does not within `limit`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "{what} not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub struct TestNode {
    pub store: tempfile::TempDir,
    pub sql_addr: SocketAddr,
    pub listen_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// Node-to-node addresses to join through (empty: a cluster of its own).
    pub join: Vec<SocketAddr>,
    /// More `shoal start` arguments.
    pub extra_args: Vec<String>,
    child: Option<Child>,
}

impl TestNode {
    /// Starts a node on a fresh store and waits until it serves SQL.
    pub async fn start() -> TestNode {
        let mut node = TestNode::new();
        node.spawn().await;
        node
    }

    /// A node with a fresh store and free ports, not started.
    pub fn new() -> TestNode {
        TestNode {
            store: tempfile::tempdir().expect("temp dir"),
            sql_addr: free_addr(),
            listen_addr: free_addr(),
            http_addr: free_addr(),
            join: Vec::new(),
            extra_args: Vec::new(),
            child: None,
        }
    }

    /// Starts the process without waiting for it to serve SQL.
    pub fn spawn_process(&mut self) {
        let mut command = Command::new(shoal_bin());
        command
            .arg("start")
            .arg("--store")
            .arg(self.store.path())
            .arg("--sql-addr")
            .arg(self.sql_addr.to_string())
            .arg("--listen-addr")
            .arg(self.listen_addr.to_string())
            .arg("--http-addr")
            .arg(self.http_addr.to_string());
        if !self.join.is_empty() {
            let join: Vec<String> = self.join.iter().map(ToString::to_string).collect();
            command.arg("--join").arg(join.join(","));
        }
        command.args(&self.extra_args);
        let child = command
            .env(
                "SHOAL_LOG",
                std::env::var("SHOAL_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn shoal");
        self.child = Some(child);
    }

    /// Whether the process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    async fn spawn(&mut self) {
        self.spawn_process();
        self.wait_sql().await;
    }

    /// Waits (up to 30 s) until the node accepts PostgreSQL connections.
    pub async fn wait_sql(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if tokio_postgres::connect(&self.conn_str(), NoTls)
                .await
                .is_ok()
            {
                return;
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("shoal exited during startup: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "shoal did not accept connections within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn conn_str(&self) -> String {
        format!(
            "host={} port={} user=shoal dbname=shoal",
            self.sql_addr.ip(),
            self.sql_addr.port()
        )
    }

    /// A new client connection; its driver task runs in the background.
    pub async fn connect(&self) -> Client {
        let (client, conn) = tokio_postgres::connect(&self.conn_str(), NoTls)
            .await
            .expect("connect");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: the process gets no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the node again on the same store and ports.
    pub async fn restart(&mut self) {
        self.kill9();
        self.spawn().await;
    }
}

impl Default for TestNode {
    fn default() -> Self {
        TestNode::new()
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Whether `task` is still running after a pause: a statement waiting
/// for a lock.
pub async fn still_waiting<T>(task: &tokio::task::JoinHandle<T>) -> bool {
    tokio::time::sleep(Duration::from_millis(300)).await;
    !task.is_finished()
}
