//! Sequences across nodes: SERIAL ids drawn by clients on three nodes at
//! once are all distinct (each node takes its own blocks of values), and
//! `RETURNING` hands each client the id it got.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;

use shoal_tests::cluster::TestCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_ids_are_unique_across_nodes() {
    let cluster = TestCluster::start(3, &[]).await;
    let first = cluster.nodes[0].connect().await;
    first
        .batch_execute("CREATE TABLE events (id bigserial PRIMARY KEY, node integer NOT NULL)")
        .await
        .unwrap();
    let mut writers = Vec::new();
    for n in 0..3 {
        let client = cluster.nodes[n].connect().await;
        writers.push(tokio::spawn(async move {
            let insert = client
                .prepare("INSERT INTO events (node) VALUES ($1) RETURNING id")
                .await
                .unwrap();
            let mut ids = Vec::new();
            for _ in 0..40 {
                let row = client.query_one(&insert, &[&(n as i32)]).await.unwrap();
                ids.push(row.get::<_, i64>(0));
            }
            ids
        }));
    }
    let mut returned = HashSet::new();
    for w in writers {
        let ids = w.await.unwrap();
        // Increasing on each node.
        assert!(ids.windows(2).all(|p| p[0] < p[1]), "{ids:?}");
        for id in ids {
            assert!(returned.insert(id), "id {id} handed out twice");
        }
    }
    assert_eq!(returned.len(), 120);
    let stored: HashSet<i64> = first
        .query("SELECT id FROM events", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(stored, returned);
}
