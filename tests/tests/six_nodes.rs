//! Past five nodes: the first range keeps five voters and gets a learner on
//! every other node, so a sixth node reads the cluster state — settings,
//! the node registry — from its own replica, like the others.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use shoal_tests::cluster::{TestCluster, range_replicas};
use shoal_tests::eventually;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sixth_node_holds_the_cluster_state_as_a_learner() {
    let cluster = TestCluster::start(6, &[]).await;
    let first = cluster.nodes[0].connect().await;
    eventually(
        Duration::from_secs(90),
        "the first range on all six nodes",
        || async {
            range_replicas(&first)
                .await
                .first()
                .is_some_and(|(replicas, _)| replicas.len() == 6)
        },
    )
    .await;
    first
        .batch_execute("SET CLUSTER SETTING server.time_until_store_dead = '42s'")
        .await
        .unwrap();
    for node in &cluster.nodes {
        let client = node.connect().await;
        eventually(
            Duration::from_secs(30),
            "every node reading the setting and the registry itself",
            || async {
                let setting = client
                    .query_one("SHOW CLUSTER SETTING server.time_until_store_dead", &[])
                    .await
                    .map(|r| r.get::<_, String>(0))
                    .unwrap_or_default();
                let nodes = client
                    .query_one("SELECT count(*) FROM shoal_internal.nodes", &[])
                    .await
                    .map(|r| r.get::<_, i64>(0))
                    .unwrap_or_default();
                let replicas = client
                    .query_one(
                        "SELECT value FROM shoal_internal.node_metrics WHERE name = 'kv.replicas'",
                        &[],
                    )
                    .await
                    .map(|r| r.get::<_, i64>(0))
                    .unwrap_or_default();
                setting == "42s" && nodes == 6 && replicas >= 1
            },
        )
        .await;
    }
}
