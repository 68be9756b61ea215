//! A write workload for multi-process tests: writers inserting fresh ids
//! into `t (id bigint PRIMARY KEY, writer int)` through chosen nodes,
//! recording what the server acknowledged, and the check that every node
//! holds exactly the acknowledged rows.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::cluster::TestCluster;

/// Acknowledged ids, shared by the writers.
type Acked = Arc<Mutex<Vec<i64>>>;

/// Writers inserting into `t` until [`Workload::finish`]. Writer `n` (from
/// 1, in the order added) inserts ids `n * 1_000_000 + 1, + 2, …`.
pub struct Workload {
    acked: Acked,
    stop: Arc<AtomicBool>,
    last_ack_ms: Arc<AtomicI64>,
    origin: Instant,
    writers: Vec<tokio::task::JoinHandle<()>>,
}

impl Default for Workload {
    fn default() -> Self {
        Self::new()
    }
}

impl Workload {
    /// No writers yet.
    pub fn new() -> Workload {
        Workload {
            acked: Arc::default(),
            stop: Arc::new(AtomicBool::new(false)),
            last_ack_ms: Arc::new(AtomicI64::new(0)),
            origin: Instant::now(),
            writers: Vec::new(),
        }
    }

    /// Starts the next writer, connected to `conn_str`.
    pub fn add_writer(&mut self, conn_str: String) {
        let writer = self.writers.len() as i64 + 1;
        self.writers.push(spawn_writer(
            conn_str,
            writer,
            self.acked.clone(),
            self.stop.clone(),
            self.last_ack_ms.clone(),
            self.origin,
        ));
    }

    /// Inserts acknowledged so far.
    pub async fn acked(&self) -> usize {
        self.acked.lock().await.len()
    }

    /// Milliseconds since the workload was created.
    pub fn now_ms(&self) -> i64 {
        self.origin.elapsed().as_millis() as i64
    }

    /// Waits until an insert is acknowledged later than `after_ms` plus a
    /// margin (writes resumed after a failure at `after_ms`); panics after
    /// `limit`. Returns how long after `after_ms` that was.
    pub async fn wait_resumed(&self, after_ms: i64, limit: Duration) -> i64 {
        let deadline = Instant::now() + limit;
        while self.last_ack_ms.load(Ordering::SeqCst) <= after_ms + 100 {
            assert!(Instant::now() < deadline, "writes never resumed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.last_ack_ms.load(Ordering::SeqCst) - after_ms
    }

    /// Stops every writer; returns the acknowledged ids.
    pub async fn finish(self) -> Vec<i64> {
        self.stop.store(true, Ordering::SeqCst);
        for writer in self.writers {
            let _ = writer.await;
        }
        self.acked.lock().await.clone()
    }
}

/// A writer inserting fresh ids through one node until `stop`, recording
/// every insert the server acknowledged. Connection failures (the node was
/// killed) end it; statement errors (failover in progress) do not.
fn spawn_writer(
    conn_str: String,
    writer: i64,
    acked: Acked,
    stop: Arc<AtomicBool>,
    last_ack_ms: Arc<AtomicI64>,
    origin: Instant,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Ok((client, conn)) = tokio_postgres::connect(&conn_str, tokio_postgres::NoTls).await
        else {
            return;
        };
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut seq = 0i64;
        while !stop.load(Ordering::SeqCst) {
            seq += 1;
            let id = writer * 1_000_000 + seq;
            match client
                .execute("INSERT INTO t VALUES ($1, $2)", &[&id, &(writer as i32)])
                .await
            {
                Ok(1) => {
                    acked.lock().await.push(id);
                    last_ack_ms.store(origin.elapsed().as_millis() as i64, Ordering::SeqCst);
                }
                Ok(n) => panic!("insert reported {n} rows"),
                Err(e) if client.is_closed() || e.is_closed() => return,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
}

/// Every id in `t`, read through node `i`.
pub async fn ids_on(cluster: &TestCluster, i: usize) -> Vec<i64> {
    let client = cluster.nodes[i].connect().await;
    let rows = client
        .query("SELECT id FROM t ORDER BY id", &[])
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

/// Each node holds every acknowledged id, each exactly once, and all nodes
/// hold the same rows.
pub async fn assert_all_present(cluster: &TestCluster, acked: &[i64]) {
    let mut reference: Option<Vec<i64>> = None;
    for i in 0..cluster.nodes.len() {
        let ids = ids_on(cluster, i).await;
        let distinct: BTreeSet<i64> = ids.iter().copied().collect();
        assert_eq!(distinct.len(), ids.len(), "node {i} returned a row twice");
        let missing: Vec<i64> = acked
            .iter()
            .filter(|id| !distinct.contains(id))
            .copied()
            .collect();
        assert!(
            missing.is_empty(),
            "node {i} lost acknowledged writes: {missing:?}"
        );
        match &reference {
            None => reference = Some(ids),
            Some(r) => assert_eq!(r, &ids, "node {i} disagrees with node 0"),
        }
    }
}
