//! Starting a throwaway Shoal node for one test file.
//!
//! Without `--url`, every file runs on a node of its own, so `CREATE TABLE t1` in one
//! file never meets the `t1` of another and a crash is confined to the file that caused
//! it. A node is:
//!
//! ```text
//! <shoal-bin> start --store <tmp>/store --sql-addr 127.0.0.1:<p> --listen-addr 127.0.0.1:<q>
//! ```
//!
//! with its stdout and stderr in `<tmp>/node.log`. `Node::start` returns only once a
//! PostgreSQL connection to the SQL port succeeds, or fails after a bounded wait (or
//! as soon as the child exits) with the tail of that log, so a broken build shows why.
//!
//! Ports come from binding `127.0.0.1:0` and releasing the socket. Another process may
//! take the port in between; that shows up as a start-up failure with the node's own
//! bind error in the log, which is rare enough not to warrant retries.
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

pub struct Node {
    child: Child,
    dir: PathBuf,
    sql_port: u16,
}

impl Node {
    pub async fn start(bin: &Path) -> Result<Node> {
        if !bin.is_file() {
            bail!(
                "shoal binary not found at {} (build it, or pass --shoal-bin / SHOAL_BIN)",
                bin.display()
            );
        }
        let dir = fresh_dir()?;
        let log = File::create(dir.join("node.log")).context("creating node.log")?;
        let [sql_port, listen_port] = free_ports()?;
        let spawned = Command::new(bin)
            .arg("start")
            .arg("--store")
            .arg(dir.join("store"))
            .arg("--sql-addr")
            .arg(format!("127.0.0.1:{sql_port}"))
            .arg("--listen-addr")
            .arg(format!("127.0.0.1:{listen_port}"))
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
        let mut node = Node {
            child,
            dir,
            sql_port,
        };
        node.wait_ready().await?;
        Ok(node)
    }

    /// libpq-style connection string for the node's SQL port.
    pub fn connection_string(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=shoal dbname=shoal",
            self.sql_port
        )
    }

    /// `Some(description)` once the child has exited.
    pub fn exit_status(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("unknown ({e})")),
        }
    }

    /// The last lines of the node's output, for failure notes.
    pub fn log_tail(&self) -> String {
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

    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let config = self.connection_string();
        loop {
            if let Some(status) = self.exit_status() {
                bail!(
                    "shoal exited during start-up ({status}); its log ends:\n{}",
                    self.log_tail()
                );
            }
            let attempt = tokio::time::timeout(
                Duration::from_secs(2),
                tokio_postgres::connect(&config, tokio_postgres::NoTls),
            )
            .await;
            if let Ok(Ok((client, connection))) = attempt {
                // The probe connection is closed here; the runner opens its own.
                drop(client);
                let _ = tokio::time::timeout(Duration::from_secs(1), connection).await;
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "shoal did not accept connections on port {} within {}s; its log ends:\n{}",
                    self.sql_port,
                    STARTUP_TIMEOUT.as_secs(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
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

/// Two distinct free ports: both listeners are held until both ports are known.
fn free_ports() -> Result<[u16; 2]> {
    let a = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    let b = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok([a.local_addr()?.port(), b.local_addr()?.port()])
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
        let [a, b] = free_ports().unwrap();
        assert_ne!(a, b);
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
        let e = Node::start(Path::new("/nonexistent/shoal"))
            .await
            .err()
            .unwrap();
        assert!(e.to_string().contains("--shoal-bin"), "{e}");
    }
}
