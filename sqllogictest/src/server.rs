//! Starting a throwaway Shoal node — or cluster — for one test file.
//!
//! Without `--url`, every file runs on a node (or cluster) of its own, so `CREATE
//! TABLE t1` in one file never meets the `t1` of another and a crash is confined to the
//! file that caused it. A node is:
//!
//! ```text
//! <shoal-bin> start --store <tmp>/store --sql-addr 127.0.0.1:<p> --listen-addr 127.0.0.1:<q>
//! ```
//!
//! with its stdout and stderr in `<tmp>/node.log`. With `--nodes N` (N > 1) every node
//! also gets `--join` with all the nodes' listen addresses, `shoal init` is sent to the
//! first, and the file runs through the *last* node — usually a follower, so every
//! statement exercises forwarding to the leader and follower read barriers.
//! `Cluster::start` returns only once `SELECT 1` succeeds on the serving node — and,
//! in a cluster, once that node holds a replica (a node still joining serves through
//! the others, but the files assert what a member sees) — or fails
//! after a bounded wait (or as soon as a child exits) with the tail of its log, so a
//! broken build shows why.
//!
//! Ports come from below the kernel's ephemeral range (32768 and up by default),
//! checked free by binding and releasing them. A port the kernel picks for `:0` is an
//! ephemeral one, which any outgoing connection may take before the node binds it;
//! below the range only another listener can, which shows up as a start-up failure
//! with the node's own bind error in the log.
//!
//! Invariant: a `Node` owns its child process and its directory. Dropping it kills the
//! child by pid (SIGKILL: the data is throwaway, there is nothing to flush), reaps it,
//! and removes the directory — on every path out, including errors and panics.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How long a node may take to accept its first SQL connection.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Lines of the node's log shown when it fails.
const LOG_TAIL_LINES: usize = 20;

/// The nodes serving one file; the last one takes the file's connection.
pub struct Cluster {
    nodes: Vec<Node>,
}

impl Cluster {
    pub async fn start(bin: &Path, size: usize) -> Result<Cluster> {
        if !bin.is_file() {
            bail!(
                "shoal binary not found at {} (build it, or pass --shoal-bin / SHOAL_BIN)",
                bin.display()
            );
        }
        let size = size.max(1);
        let ports = free_ports(2 * size)?;
        let listen: Vec<u16> = ports.iter().skip(size).copied().collect();
        let join = if size > 1 { listen.clone() } else { Vec::new() };
        let mut nodes = Vec::with_capacity(size);
        for i in 0..size {
            nodes.push(Node::spawn(bin, ports[i], listen[i], &join)?);
        }
        let mut cluster = Cluster { nodes };
        if size > 1 {
            cluster.init(bin, listen[0]).await?;
        }
        cluster.wait_ready().await?;
        Ok(cluster)
    }

    /// `shoal init --host` against the first node, retried while it starts.
    async fn init(&mut self, bin: &Path, port: u16) -> Result<()> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let output = tokio::process::Command::new(bin)
                .arg("init")
                .arg("--host")
                .arg(format!("127.0.0.1:{port}"))
                .output()
                .await
                .context("running shoal init")?;
            if output.status.success() {
                return Ok(());
            }
            if let Some((i, status)) = self.exited() {
                bail!(
                    "node {} exited during start-up ({status}); its log ends:\n{}",
                    i + 1,
                    self.nodes[i].log_tail()
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "shoal init failed: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    fn serving(&self) -> &Node {
        // `nodes` is never empty: `start` makes at least one.
        &self.nodes[self.nodes.len() - 1]
    }

    /// libpq-style connection string for the serving node's SQL port.
    pub fn connection_string(&self) -> String {
        self.serving().connection_string()
    }

    /// The first node that exited, and how.
    fn exited(&mut self) -> Option<(usize, String)> {
        self.nodes
            .iter_mut()
            .enumerate()
            .find_map(|(i, n)| n.exit_status().map(|s| (i, s)))
    }

    /// `Some(description)` once any node has exited.
    pub fn exit_status(&mut self) -> Option<String> {
        self.exited().map(|(i, s)| format!("node {}: {s}", i + 1))
    }

    /// The last lines of the serving node's output (or of the first node that
    /// exited), for failure notes.
    pub fn log_tail(&mut self) -> String {
        match self.exited() {
            Some((i, _)) => self.nodes[i].log_tail(),
            None => self.serving().log_tail(),
        }
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let config = self.connection_string();
        loop {
            if let Some((i, status)) = self.exited() {
                bail!(
                    "shoal (node {}) exited during start-up ({status}); its log ends:\n{}",
                    i + 1,
                    self.nodes[i].log_tail()
                );
            }
            if answers(&config).await && (self.nodes.len() == 1 || holds_replicas(&config).await) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "shoal did not answer SELECT 1 within {}s; its log ends:\n{}",
                    STARTUP_TIMEOUT.as_secs(),
                    self.serving().log_tail()
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

/// Whether a new connection to `config` runs `SELECT 1` (a node that is still
/// joining its cluster accepts connections before it can).
async fn answers(config: &str) -> bool {
    let attempt = tokio::time::timeout(Duration::from_secs(5), async {
        let (client, connection) = tokio_postgres::connect(config, tokio_postgres::NoTls).await?;
        let driver = tokio::spawn(connection);
        let outcome = client.simple_query("SELECT 1").await;
        drop(client);
        let _ = driver.await;
        outcome.map(|_| ())
    })
    .await;
    matches!(attempt, Ok(Ok(())))
}

/// Whether the node at `config` holds a replica of some range.
async fn holds_replicas(config: &str) -> bool {
    let attempt = tokio::time::timeout(Duration::from_secs(5), async {
        let (client, connection) = tokio_postgres::connect(config, tokio_postgres::NoTls).await?;
        let driver = tokio::spawn(connection);
        let row = client
            .query_one(
                "SELECT value FROM shoal_internal.node_metrics WHERE name = 'kv.replicas'",
                &[],
            )
            .await;
        drop(client);
        let _ = driver.await;
        row.map(|r| r.get::<_, i64>(0))
    })
    .await;
    matches!(attempt, Ok(Ok(n)) if n > 0)
}

struct Node {
    child: Child,
    dir: PathBuf,
    sql_port: u16,
}

impl Node {
    fn spawn(bin: &Path, sql_port: u16, listen_port: u16, join: &[u16]) -> Result<Node> {
        let dir = fresh_dir()?;
        let log = File::create(dir.join("node.log")).context("creating node.log")?;
        let mut command = Command::new(bin);
        command
            .arg("start")
            .arg("--store")
            .arg(dir.join("store"))
            .arg("--sql-addr")
            .arg(format!("127.0.0.1:{sql_port}"))
            .arg("--listen-addr")
            .arg(format!("127.0.0.1:{listen_port}"));
        if !join.is_empty() {
            let join: Vec<String> = join.iter().map(|p| format!("127.0.0.1:{p}")).collect();
            command.arg("--join").arg(join.join(","));
        }
        let spawned = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("duplicating log handle")?)
            .stderr(log)
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e).with_context(|| format!("spawning {}", bin.display()));
            }
        };
        Ok(Node {
            child,
            dir,
            sql_port,
        })
    }

    /// libpq-style connection string for the node's SQL port.
    fn connection_string(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=shoal dbname=shoal",
            self.sql_port
        )
    }

    /// `Some(description)` once the child has exited.
    fn exit_status(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("unknown ({e})")),
        }
    }

    /// The last lines of the node's output, for failure notes.
    fn log_tail(&self) -> String {
        let text = std::fs::read(self.dir.join("node.log"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        if lines.is_empty() {
            return "(the log is empty)".to_string();
        }
        let start = lines.len().saturating_sub(LOG_TAIL_LINES);
        lines[start..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Kill by pid and reap, so no zombie or orphan outlives the file.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A new, empty directory under the system temp dir, unique per process and call.
fn fresh_dir() -> Result<PathBuf> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("shoal-slt-{}-{n}-{nanos}", std::process::id()));
    std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// `n` distinct free ports below the ephemeral range: every listener is held until
/// all ports are known. The search starts at a point spread by process id and time.
fn free_ports(n: usize) -> Result<Vec<u16>> {
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let start = std::process::id().wrapping_mul(7_919).wrapping_add(nanos) % COUNT;
    let mut listeners = Vec::with_capacity(n);
    for i in 0..COUNT {
        if listeners.len() == n {
            break;
        }
        let port = u16::try_from(FIRST + (start + i) % COUNT)?;
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            listeners.push(listener);
        }
    }
    anyhow::ensure!(listeners.len() == n, "fewer than {n} free loopback ports");
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// The default `shoal` binary: beside the running executable (same target dir).
pub fn default_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the current executable")?;
    let dir = exe
        .parent()
        .context("current executable has no parent directory")?;
    Ok(dir.join(format!("shoal{}", std::env::consts::EXE_SUFFIX)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct() {
        let ports = free_ports(6).unwrap();
        let distinct: std::collections::BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), 6);
    }

    #[test]
    fn fresh_dirs_are_unique() {
        let a = fresh_dir().unwrap();
        let b = fresh_dir().unwrap();
        assert_ne!(a, b);
        std::fs::remove_dir(a).unwrap();
        std::fs::remove_dir(b).unwrap();
    }

    #[tokio::test]
    async fn missing_binary_is_a_clear_error() {
        let e = Cluster::start(Path::new("/nonexistent/shoal"), 1)
            .await
            .err()
            .unwrap();
        assert!(e.to_string().contains("--shoal-bin"), "{e}");
    }
}
