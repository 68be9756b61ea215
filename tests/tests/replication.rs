//! Three real `shoal` processes on loopback: killing nodes loses no
//! acknowledged write, writes resume after the leader dies, a restarted
//! node catches up (by log and by snapshot), and without a quorum writes
//! fail cleanly instead of hanging.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use shoal_tests::cluster::TestCluster;
use tokio::sync::Mutex;

/// Acknowledged ids, shared by the writers.
type Acked = Arc<Mutex<Vec<i64>>>;

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
async fn ids_on(cluster: &TestCluster, i: usize) -> Vec<i64> {
    let client = cluster.nodes[i].connect().await;
    let rows = client
        .query("SELECT id FROM t ORDER BY id", &[])
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

/// Each node holds every acknowledged id, each exactly once, and all nodes
/// hold the same rows.
async fn assert_all_present(cluster: &TestCluster, acked: &[i64]) {
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

async fn create_table(cluster: &TestCluster) {
    let client = cluster.nodes[0].connect().await;
    client
        .batch_execute("CREATE TABLE t (id bigint PRIMARY KEY, writer int)")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_init_is_refused() {
    let cluster = TestCluster::start(3, &[]).await;
    let again = cluster.run_init();
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("already initialized"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_leader_loses_nothing_and_writes_resume() {
    let mut cluster = TestCluster::start(3, &[]).await;
    create_table(&cluster).await;
    let origin = Instant::now();
    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let last_ack = Arc::new(AtomicI64::new(0));
    let writers: Vec<_> = (0..3)
        .map(|i| {
            spawn_writer(
                cluster.nodes[i].conn_str(),
                i as i64 + 1,
                acked.clone(),
                stop.clone(),
                last_ack.clone(),
                origin,
            )
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !acked.lock().await.is_empty(),
        "no write succeeded before the kill"
    );

    let leader = cluster.leader().await;
    cluster.nodes[leader].kill9();
    let killed_at = origin.elapsed().as_millis() as i64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while last_ack.load(Ordering::SeqCst) <= killed_at + 100 {
        assert!(
            Instant::now() < deadline,
            "writes never resumed after the leader died"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resumed_after = last_ack.load(Ordering::SeqCst) - killed_at;
    assert!(
        resumed_after < 10_000,
        "writes resumed {resumed_after} ms after the leader died (bound: 10 s)"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        let _ = w.await;
    }

    cluster.nodes[leader].spawn_process();
    cluster.nodes[leader].wait_sql().await;
    let acked = acked.lock().await.clone();
    assert!(acked.len() > 20, "only {} writes acknowledged", acked.len());
    assert_all_present(&cluster, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_kill_and_restart_catches_up_by_log_and_snapshot() {
    // A short log: a node down for a few hundred writes must be caught up
    // by a snapshot, one down briefly by the log.
    let mut cluster = TestCluster::start(3, &["--raft-log-keep", "64"]).await;
    create_table(&cluster).await;
    let origin = Instant::now();
    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let last_ack = Arc::new(AtomicI64::new(0));
    let mut next_writer = 1;
    let mut writers = Vec::new();
    for round in 0..3 {
        let victim = round;
        // Writers through the two nodes that stay up this round.
        for i in (0..3).filter(|&i| i != victim) {
            writers.push(spawn_writer(
                cluster.nodes[i].conn_str(),
                next_writer,
                acked.clone(),
                stop.clone(),
                last_ack.clone(),
                origin,
            ));
            next_writer += 1;
        }
        cluster.nodes[victim].kill9();
        // Round 0 is short (log catch-up); later rounds are long enough to
        // outrun the compacted log.
        let down_for = if round == 0 { 300 } else { 4000 };
        tokio::time::sleep(Duration::from_millis(down_for)).await;
        cluster.nodes[victim].spawn_process();
        cluster.nodes[victim].wait_sql().await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        let _ = w.await;
    }
    let acked = acked.lock().await.clone();
    assert!(acked.len() > 50, "only {} writes acknowledged", acked.len());
    assert_all_present(&cluster, &acked).await;
    let mut snapshots = 0;
    for i in 0..3 {
        snapshots += cluster.status(i).await.map_or(0, |s| s.snapshots_installed);
    }
    assert!(
        snapshots >= 1,
        "no restarted node was caught up by a snapshot"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_quorum_writes_fail_in_bounded_time_then_recover() {
    let mut cluster = TestCluster::start(3, &[]).await;
    create_table(&cluster).await;
    let client = cluster.nodes[0].connect().await;
    client
        .execute("INSERT INTO t VALUES (1, 0)", &[])
        .await
        .unwrap();

    cluster.nodes[1].kill9();
    cluster.nodes[2].kill9();
    let started = Instant::now();
    let failed = tokio::time::timeout(
        Duration::from_secs(60),
        client.execute("INSERT INTO t VALUES (2, 0)", &[]),
    )
    .await
    .expect("a write without a quorum hung for a minute");
    let err = failed.expect_err("a write without a quorum succeeded");
    let code = err.code().map(|c| c.code().to_string()).unwrap_or_default();
    assert!(
        code == "57P03" || code == "40003",
        "unexpected error {code}: {err}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));

    cluster.nodes[1].spawn_process();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match client.execute("INSERT INTO t VALUES (3, 0)", &[]).await {
            Ok(_) => break,
            Err(e) => {
                assert!(Instant::now() < deadline, "writes never recovered: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let rows = client
        .query("SELECT id FROM t ORDER BY id", &[])
        .await
        .unwrap();
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert!(ids.contains(&1) && ids.contains(&3), "{ids:?}");
}
