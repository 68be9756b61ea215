//! Merges, end to end: four real `shoal` processes hold a table split
//! into many small ranges (by size, with `range_max_bytes` at 64 KiB)
//! spread over the nodes. Raising `range_min_bytes` and `range_max_bytes`
//! makes the placement loop merge them back — moving replicas together
//! first where neighbours sit on different nodes — down to one range,
//! while writers insert through every node. Every acknowledged insert is
//! there afterwards, on every node, and the preloaded rows are intact.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use shoal_tests::cluster::TestCluster;
use shoal_tests::eventually;
use shoal_tests::workload::{Workload, assert_all_present};
use tokio_postgres::Client;

const PRELOAD: i64 = 20_000;

async fn table_ranges(client: &Client) -> Option<usize> {
    client
        .query("SHOW RANGES FROM TABLE t", &[])
        .await
        .map(|rows| rows.len())
        .ok()
}

/// (count, sum) of the preloaded rows.
async fn preloaded(client: &Client) -> (i64, i64) {
    let row = client
        .query_one(
            "SELECT count(*), sum(id)::bigint FROM t WHERE writer = 0",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn small_ranges_merge_under_writes_without_losing_a_row() {
    let cluster = TestCluster::start(4, &[]).await;
    let client = cluster.nodes[0].connect().await;
    client
        .batch_execute(&format!(
            // Splits by load would be kept from merging for five minutes:
            // this test is about ranges split by size.
            "SET CLUSTER SETTING kv.range_split.load_qps_threshold = 1000000000;
             CREATE TABLE t (id bigint PRIMARY KEY, writer int);
             ALTER TABLE t CONFIGURE ZONE USING range_max_bytes = 65536;
             INSERT INTO t SELECT n, 0 FROM generate_series(1, {PRELOAD}) AS g(n);"
        ))
        .await
        .unwrap();
    eventually(Duration::from_secs(120), "at least 8 ranges", || async {
        table_ranges(&client).await.is_some_and(|n| n >= 8)
    })
    .await;
    let split = table_ranges(&client).await.unwrap();

    let mut workload = Workload::new();
    for node in &cluster.nodes {
        workload.add_writer(node.conn_str());
    }
    eventually(Duration::from_secs(30), "writes acknowledged", || async {
        workload.acked().await >= 20
    })
    .await;

    client
        .batch_execute(
            "ALTER TABLE t CONFIGURE ZONE USING range_max_bytes = 67108864, \
             range_min_bytes = 33554432",
        )
        .await
        .unwrap();
    let mut polls = 0u32;
    eventually(Duration::from_secs(240), "one range left", || {
        polls += 1;
        let show = polls.is_multiple_of(40);
        let client = &client;
        async move {
            if show && let Ok(rows) = client.query("SHOW RANGES FROM TABLE t", &[]).await {
                for row in rows {
                    let (id, start, end, replicas, size): (
                        i64,
                        String,
                        String,
                        String,
                        Option<i64>,
                    ) = (row.get(0), row.get(1), row.get(2), row.get(3), row.get(5));
                    eprintln!("range {id} [{start}, {end}) on {replicas}: {size:?} bytes");
                }
            }
            table_ranges(client).await == Some(1)
        }
    })
    .await;
    let acked = workload.finish().await;
    eprintln!(
        "{split} ranges merged into one; {} inserts acknowledged meanwhile",
        acked.len()
    );
    assert!(acked.len() >= 20);
    assert_all_present(&cluster, &acked).await;
    for node in &cluster.nodes {
        assert_eq!(
            preloaded(&node.connect().await).await,
            (PRELOAD, PRELOAD * (PRELOAD + 1) / 2)
        );
    }
}
