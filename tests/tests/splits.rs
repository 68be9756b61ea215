//! Three real `shoal` processes with a table split into several ranges:
//! writers keep inserting into every range while the leader of one of them
//! is killed with `kill -9`; writes resume, the node comes back, and every
//! node holds exactly the acknowledged rows, with every range fully
//! replicated.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use shoal_tests::cluster::TestCluster;
use shoal_tests::eventually;
use shoal_tests::workload::{Workload, assert_all_present};
use tokio_postgres::Client;

/// `(range_id, replicas, lease_holder)` of the table's ranges.
async fn table_ranges(client: &Client) -> Vec<(i64, String, Option<i64>)> {
    client
        .query("SHOW RANGES FROM TABLE t", &[])
        .await
        .map(|rows| {
            rows.iter()
                .map(|r| (r.get("range_id"), r.get("replicas"), r.get("lease_holder")))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until the table has three ranges, each with a replica on every
/// node and a leader, as `client` sees it.
async fn wait_three_led_ranges(client: &Client) {
    eventually(
        Duration::from_secs(30),
        "three led, replicated ranges",
        || async {
            let ranges = table_ranges(client).await;
            ranges.len() == 3
                && ranges
                    .iter()
                    .all(|(_, replicas, leader)| replicas == "{1,2,3}" && leader.is_some())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn split_ranges_survive_killing_a_range_leader() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let client = cluster.nodes[0].connect().await;
    client
        .batch_execute(
            "CREATE TABLE t (id bigint PRIMARY KEY, writer int);
             ALTER TABLE t SPLIT AT VALUES (2000000), (3000000);",
        )
        .await
        .unwrap();
    // Writers 1, 2 and 3 insert ids from 1M, 2M and 3M: one range each.
    wait_three_led_ranges(&client).await;
    let mut workload = Workload::new();
    for node in &cluster.nodes {
        workload.add_writer(node.conn_str());
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(workload.acked().await > 0, "no write before the kill");

    // Kill the leader of the last range.
    let ranges = table_ranges(&client).await;
    let leader_id = ranges.last().and_then(|r| r.2).expect("a leader") as u64;
    let mut victim = None;
    for i in 0..cluster.nodes.len() {
        if cluster.status(i).await.map(|s| s.node_id) == Some(leader_id) {
            victim = Some(i);
        }
    }
    let victim = victim.expect("the leader's process");
    cluster.nodes[victim].kill9();
    workload
        .wait_resumed(workload.now_ms(), Duration::from_secs(30))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let acked = workload.finish().await;

    cluster.nodes[victim].spawn_process();
    cluster.nodes[victim].wait_sql().await;
    assert!(acked.len() > 20, "only {} writes acknowledged", acked.len());
    // Rows of every range were acknowledged.
    for writer in 1..=3i64 {
        assert!(
            acked.iter().any(|id| id / 1_000_000 == writer),
            "no write of writer {writer} was acknowledged"
        );
    }
    assert_all_present(&cluster, &acked).await;
    for node in &cluster.nodes {
        wait_three_led_ranges(&node.connect().await).await;
    }
}
