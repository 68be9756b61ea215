//! [`TestCluster`]: several real `shoal` processes forming one cluster on
//! loopback, started the way an operator would — every node with the same
//! `--join` list, then `shoal init` sent to the first.

use std::process::Command;
use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls};

use crate::{TestNode, eventually, shoal_bin};

/// A connection to `conn_str`, or `None` while its node is down; the
/// driver task runs in the background.
pub async fn try_connect(conn_str: &str) -> Option<Client> {
    let (client, conn) = tokio_postgres::connect(conn_str, NoTls).await.ok()?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Some(client)
}

/// What a node reports at `GET /status`.
#[derive(Debug, Clone, Default)]
pub struct NodeStatus {
    pub node_id: u64,
    pub leader: Option<u64>,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    pub applied: u64,
    pub snapshots_installed: u64,
}

pub struct TestCluster {
    pub nodes: Vec<TestNode>,
}

impl TestCluster {
    /// Starts `n` nodes joined together, initializes the cluster, and waits
    /// until every node serves SQL and the first range has `n.min(3)`
    /// voters.
    pub async fn start(n: usize, extra_args: &[&str]) -> TestCluster {
        let mut nodes: Vec<TestNode> = (0..n).map(|_| TestNode::new()).collect();
        let join: Vec<_> = nodes.iter().map(|node| node.listen_addr).collect();
        for node in &mut nodes {
            node.join = join.clone();
            node.extra_args = extra_args.iter().map(ToString::to_string).collect();
            node.spawn_process();
        }
        let mut cluster = TestCluster { nodes };
        cluster.init();
        for node in &mut cluster.nodes {
            node.wait_sql().await;
        }
        cluster.wait_voters(n.min(3)).await;
        cluster
    }

    /// Waits (up to 30 s) until `SHOW RANGES FROM TABLE table`, asked
    /// through `client`, lists `ranges` ranges, each with replicas on
    /// nodes 1, 2 and 3 and a lease holder.
    pub async fn wait_table_ranges(&self, client: &Client, table: &str, ranges: usize) {
        let show = format!("SHOW RANGES FROM TABLE {table}");
        eventually(
            Duration::from_secs(30),
            &format!("{ranges} led, replicated ranges of {table}"),
            || async {
                let rows = client.query(&show, &[]).await.unwrap_or_default();
                rows.len() == ranges
                    && rows.iter().all(|r| {
                        r.get::<_, String>("replicas") == "{1,2,3}"
                            && r.get::<_, Option<i64>>("lease_holder").is_some()
                    })
            },
        )
        .await;
    }

    /// The nemesis of the workload tests: after 3 s, each of `victims` in
    /// turn is killed with `kill -9`, left down for 3 s, restarted, and
    /// given 2 s to catch up.
    pub async fn kill_and_restart_each(&mut self, victims: &[usize]) {
        tokio::time::sleep(Duration::from_secs(3)).await;
        for &victim in victims {
            self.nodes[victim].kill9();
            tokio::time::sleep(Duration::from_secs(3)).await;
            self.nodes[victim].spawn_process();
            self.nodes[victim].wait_sql().await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    /// Starts one more node joining through the existing ones, waits until
    /// it serves SQL, and returns its index.
    pub async fn add_node(&mut self) -> usize {
        let mut node = TestNode::new();
        node.join = self.nodes.iter().map(|n| n.listen_addr).collect();
        node.extra_args = self
            .nodes
            .first()
            .map(|n| n.extra_args.clone())
            .unwrap_or_default();
        node.spawn_process();
        node.wait_sql().await;
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// Runs `shoal init --host` against the first node (retrying while it
    /// is still starting) and returns its output.
    pub fn init(&self) -> std::process::Output {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let output = self.run_init();
            if output.status.success() || Instant::now() > deadline {
                return output;
            }
            let stderr = String::from_utf8_lossy(&output.stderr);
            if stderr.contains("already initialized") {
                return output;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One `shoal init --host` call against the first node.
    pub fn run_init(&self) -> std::process::Output {
        Command::new(shoal_bin())
            .arg("init")
            .arg("--host")
            .arg(self.nodes[0].listen_addr.to_string())
            .env("SHOAL_LOG", "warn")
            .output()
            .expect("run shoal init")
    }

    /// The node's `/status`, if it answers.
    pub async fn status(&self, i: usize) -> Option<NodeStatus> {
        let node = &self.nodes[i];
        if !node.is_running() {
            return None;
        }
        let body = http_get(node.http_addr, "/status").await?;
        let json: serde_json::Value = serde_json::from_str(&body).ok()?;
        let ids = |v: &serde_json::Value| -> Vec<u64> {
            v.as_array()
                .map(|a| a.iter().filter_map(serde_json::Value::as_u64).collect())
                .unwrap_or_default()
        };
        Some(NodeStatus {
            node_id: json["node_id"].as_u64()?,
            leader: json["leader"].as_u64(),
            voters: ids(&json["voters"]),
            learners: ids(&json["learners"]),
            applied: json["applied"].as_u64().unwrap_or(0),
            snapshots_installed: json["snapshots_installed"].as_u64().unwrap_or(0),
        })
    }

    /// Waits (up to 60 s) until some node reports `n` voters.
    pub async fn wait_voters(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            for i in 0..self.nodes.len() {
                if let Some(status) = self.status(i).await
                    && status.voters.len() >= n
                {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the first range never reached {n} voters"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The index of a node that says it leads the first range now, if one
    /// answers that it does.
    pub async fn leader_now(&self) -> Option<usize> {
        for i in 0..self.nodes.len() {
            if let Some(status) = self.status(i).await
                && status.leader == Some(status.node_id)
            {
                return Some(i);
            }
        }
        None
    }

    /// The index (in `nodes`) of the node the live nodes agree leads the
    /// first range, waiting up to 30 s.
    pub async fn leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for i in 0..self.nodes.len() {
                if let Some(status) = self.status(i).await
                    && status.leader == Some(status.node_id)
                {
                    return i;
                }
            }
            assert!(Instant::now() < deadline, "no leader within 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The replicas and lease holder of every range, by range id, as the node
/// behind `client` sees them (none if the query fails).
pub async fn range_replicas(
    client: &tokio_postgres::Client,
) -> Vec<(std::collections::BTreeSet<i64>, Option<i64>)> {
    let rows = client
        .query(
            "SELECT replicas, lease_holder FROM shoal_internal.ranges ORDER BY range_id",
            &[],
        )
        .await
        .unwrap_or_default();
    rows.iter()
        .map(|row| {
            let replicas: String = row.get(0);
            (node_ids(&replicas).into_iter().collect(), row.get(1))
        })
        .collect()
}

/// The node ids of a `replicas` column (`{1,2,3}`).
pub fn node_ids<T: std::str::FromStr>(replicas: &str) -> Vec<T> {
    replicas
        .trim_matches(|c| c == '{' || c == '}')
        .split(',')
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// A tiny HTTP/1.1 GET; the body, if the server answered 200.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> Option<String> {
    http_request(addr, "GET", path).await
}

/// The body of a 200 answer to `method path` at `addr` (5 s at most).
pub async fn http_request(addr: std::net::SocketAddr, method: &str, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        stream
            .write_all(format!("{method} {path} HTTP/1.1\r\nhost: shoal\r\n\r\n").as_bytes())
            .await
            .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await.ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.1 200").then(|| body.to_string())
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()?
}
