//! Three real `shoal` processes on loopback: killing nodes loses no
//! acknowledged write, writes resume after the leader dies, a restarted
//! node catches up (by log and by snapshot), and without a quorum writes
//! fail cleanly instead of hanging.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use shoal_tests::cluster::TestCluster;
use shoal_tests::workload::{Workload, assert_all_present};

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
    let mut workload = Workload::new();
    for node in &cluster.nodes {
        workload.add_writer(node.conn_str());
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        workload.acked().await > 0,
        "no write succeeded before the kill"
    );

    let leader = cluster.leader().await;
    cluster.nodes[leader].kill9();
    let resumed_after = workload
        .wait_resumed(workload.now_ms(), Duration::from_secs(30))
        .await;
    assert!(
        resumed_after < 10_000,
        "writes resumed {resumed_after} ms after the leader died (bound: 10 s)"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let acked = workload.finish().await;

    cluster.nodes[leader].spawn_process();
    cluster.nodes[leader].wait_sql().await;
    assert!(acked.len() > 20, "only {} writes acknowledged", acked.len());
    assert_all_present(&cluster, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_kill_and_restart_catches_up_by_log_and_snapshot() {
    // A short log: a node down for a few hundred writes must be caught up
    // by a snapshot, one down briefly by the log.
    let mut cluster = TestCluster::start(3, &["--raft-log-keep", "64"]).await;
    create_table(&cluster).await;
    let mut workload = Workload::new();
    for round in 0..3 {
        let victim = round;
        // Writers through the two nodes that stay up this round.
        for i in (0..3).filter(|&i| i != victim) {
            workload.add_writer(cluster.nodes[i].conn_str());
        }
        cluster.nodes[victim].kill9();
        // Round 0 is short (log catch-up); later rounds last until the
        // others wrote enough to outrun the compacted log (a leader
        // compacts past a follower more than 4 × 64 entries behind).
        if round == 0 {
            tokio::time::sleep(Duration::from_millis(300)).await;
        } else {
            let before = workload.acked().await;
            let limit = std::time::Instant::now() + Duration::from_secs(30);
            while workload.acked().await < before + 600 && std::time::Instant::now() < limit {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        cluster.nodes[victim].spawn_process();
        cluster.nodes[victim].wait_sql().await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let acked = workload.finish().await;
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
