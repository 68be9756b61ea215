//! Scaling out and healing, end to end: three real `shoal` processes load
//! 200,000 rows into a table whose ranges split at 1 MiB; two more nodes
//! join and the rebalancer spreads replicas and leases over all five
//! (each node within ±15% of the mean); one node is killed with SIGKILL
//! and, once it counts as dead, every range is back at three live
//! replicas. The table's row count and checksum are the same through
//! every live node at every step.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use shoal_tests::cluster::{TestCluster, range_replicas};
use shoal_tests::eventually;
use tokio_postgres::Client;

const ROWS: i64 = 200_000;
const BATCH: i64 = 10_000;
const MAX_BYTES: i64 = 1 << 20;

/// (row count, sum of keys, md5 of every value in key order).
type Checksum = (i64, i64, String);

async fn checksum(client: &Client) -> Option<Checksum> {
    let row = client
        .query_one(
            "SELECT count(*), sum(k)::bigint, md5(string_agg(v, ',' ORDER BY k)) FROM big",
            &[],
        )
        .await
        .map_err(|e| eprintln!("checksum: {e:?}"))
        .ok()?;
    Some((row.get(0), row.get(1), row.get(2)))
}

/// Node id → (live, replicas, leases), as `client`'s node sees them.
async fn nodes(client: &Client) -> BTreeMap<i64, (bool, i64, i64)> {
    client
        .query(
            "SELECT node_id, is_live, replicas, leases FROM shoal_internal.nodes",
            &[],
        )
        .await
        .map(|rows| {
            rows.iter()
                .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether every count is within ±15% of their mean.
fn within_15_percent(counts: &[i64]) -> bool {
    let mean = counts.iter().sum::<i64>() as f64 / counts.len() as f64;
    counts
        .iter()
        .all(|&c| (c as f64 - mean).abs() <= 0.15 * mean)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_loaded_cluster_grows_to_five_nodes_balances_and_heals() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let client = cluster.nodes[0].connect().await;
    client
        .batch_execute(&format!(
            "SET CLUSTER SETTING server.time_until_store_dead = '15s';
             CREATE TABLE big (k bigint PRIMARY KEY, v text);
             ALTER TABLE big CONFIGURE ZONE USING range_max_bytes = {MAX_BYTES};"
        ))
        .await
        .unwrap();
    for batch in 0..(ROWS / BATCH) {
        let from = batch * BATCH + 1;
        client
            .execute(
                &format!(
                    "INSERT INTO big SELECT n, md5(n::text) || repeat('x', 60) \
                     FROM generate_series({from}, {}) AS g(n)",
                    from + BATCH - 1
                ),
                &[],
            )
            .await
            .unwrap();
    }
    let expected = checksum(&client).await.expect("a checksum");
    assert_eq!(expected.0, ROWS);
    assert_eq!(expected.1, ROWS * (ROWS + 1) / 2);

    eventually(Duration::from_secs(120), "at least 20 ranges", || async {
        client
            .query("SHOW RANGES FROM TABLE big", &[])
            .await
            .map(|rows| rows.len() >= 20)
            .unwrap_or(false)
    })
    .await;
    for node in &cluster.nodes {
        assert_eq!(
            checksum(&node.connect().await).await.as_ref(),
            Some(&expected)
        );
    }

    // Two more nodes: replicas and leases spread until every node carries
    // its share.
    let fourth = cluster.add_node().await;
    let fifth = cluster.add_node().await;
    let new_client = cluster.nodes[fifth].connect().await;
    let mut polls: u32 = 0;
    eventually(Duration::from_secs(300), "five balanced nodes", || {
        polls += 1;
        let check_rows = polls.is_multiple_of(10);
        let (client, new_client, expected) = (&client, &new_client, &expected);
        async move {
            if check_rows {
                // Rows stay whole while replicas move.
                assert_eq!(checksum(new_client).await.as_ref(), Some(expected));
            }
            let nodes = nodes(client).await;
            let replicas: Vec<i64> = nodes.values().map(|n| n.1).collect();
            let leases: Vec<i64> = nodes.values().map(|n| n.2).collect();
            nodes.len() == 5
                && nodes.values().all(|n| n.0)
                && within_15_percent(&replicas)
                && within_15_percent(&leases)
        }
    })
    .await;
    eprintln!("balanced: {:?}", nodes(&client).await);
    for i in [0, fourth, fifth] {
        assert_eq!(
            checksum(&cluster.nodes[i].connect().await).await.as_ref(),
            Some(&expected)
        );
    }

    // SIGKILL one of the original nodes (not the test's connection): once
    // dead, its replicas are rebuilt elsewhere.
    let victim_index = 1;
    let victim_addr = cluster.nodes[victim_index].listen_addr.to_string();
    let victim: i64 = client
        .query_one(
            "SELECT node_id FROM shoal_internal.nodes WHERE address = $1",
            &[&victim_addr],
        )
        .await
        .unwrap()
        .get(0);
    cluster.nodes[victim_index].kill9();
    eventually(
        Duration::from_secs(180),
        "every range back at three live replicas",
        || async {
            let ranges = range_replicas(&client).await;
            let bad: Vec<_> = ranges
                .iter()
                .filter(|(replicas, holder)| {
                    replicas.len() < 3
                        || replicas.contains(&victim)
                        || holder.is_none_or(|h| h == victim)
                })
                .collect();
            if !bad.is_empty() {
                eprintln!("not yet repaired: {bad:?}");
            }
            !ranges.is_empty()
                && ranges.iter().all(|(replicas, holder)| {
                    replicas.len() >= 3
                        && !replicas.contains(&victim)
                        && holder.is_some_and(|h| h != victim)
                })
        },
    )
    .await;
    for (i, node) in cluster.nodes.iter().enumerate() {
        if i != victim_index {
            assert_eq!(
                checksum(&node.connect().await).await.as_ref(),
                Some(&expected)
            );
        }
    }
}
