//! Ranges split by size on their own: a table configured with a small
//! `range_max_bytes` is loaded through three real `shoal` processes and
//! ends in many ranges, each below the limit, each replicated on every
//! node — with the table's row count and checksum the same through every
//! node, during and after the splits.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use shoal_tests::cluster::TestCluster;
use shoal_tests::eventually;
use tokio_postgres::Client;

const ROWS: i64 = 6_000;
const MAX_BYTES: i64 = 64 * 1024;

/// (row count, sum of keys, total payload length) through `client`.
async fn checksum(client: &Client) -> Option<(i64, i64, i64)> {
    let row = client
        .query_one(
            "SELECT count(*), sum(k)::bigint, sum(length(v))::bigint FROM big",
            &[],
        )
        .await
        .map_err(|e| eprintln!("checksum: {e:?}"))
        .ok()?;
    Some((row.get(0), row.get(1), row.get(2)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_table_past_its_range_max_bytes_splits_into_many_ranges() {
    let cluster = TestCluster::start(3, &[]).await;
    let client = cluster.nodes[0].connect().await;
    client
        .batch_execute(&format!(
            "CREATE TABLE big (k bigint PRIMARY KEY, v text);
             ALTER TABLE big CONFIGURE ZONE USING range_max_bytes = {MAX_BYTES};"
        ))
        .await
        .unwrap();
    // About 1.4 MB of rows, loaded in batches while ranges split.
    for batch in 0..(ROWS / 500) {
        let from = batch * 500 + 1;
        client
            .execute(
                &format!(
                    "INSERT INTO big SELECT n, repeat('x', 200) FROM generate_series({from}, {}) AS g(n)",
                    from + 499
                ),
                &[],
            )
            .await
            .unwrap();
    }
    let expected = (ROWS, ROWS * (ROWS + 1) / 2, ROWS * 200);
    for node in &cluster.nodes {
        assert_eq!(checksum(&node.connect().await).await, Some(expected));
    }

    eventually(Duration::from_secs(60), "ranges below the limit", || async {
        let rows = client
            .query(
                "SELECT count(*), max(range_size_bytes), min(length(replicas)) FROM shoal_internal.ranges WHERE start_key LIKE '/Table/100%'",
                &[],
            )
            .await
            .unwrap();
        let (ranges, biggest): (i64, i64) = (rows[0].get(0), rows[0].get(1));
        ranges >= 12 && biggest <= MAX_BYTES + 4096
    })
    .await;
    for node in &cluster.nodes {
        let client = node.connect().await;
        eventually(
            Duration::from_secs(30),
            "every range replicated and led",
            || async {
                let rows = client
                    .query("SHOW RANGES FROM TABLE big", &[])
                    .await
                    .unwrap_or_default();
                rows.len() >= 12
                    && rows.iter().all(|r| {
                        r.get::<_, String>("replicas") == "{1,2,3}"
                            && r.get::<_, Option<i64>>("lease_holder").is_some()
                    })
            },
        )
        .await;
        assert_eq!(checksum(&client).await, Some(expected));
    }
}
