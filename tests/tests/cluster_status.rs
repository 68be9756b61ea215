//! What a three-node cluster reports about itself — `SHOW RANGES`, the
//! `shoal_internal.nodes` view and `shoal node status` — from every node,
//! and that a killed node is reported dead once its liveness expires; and
//! that its leaders serve reads under their leases.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use shoal_tests::cluster::TestCluster;
use shoal_tests::eventually;
use shoal_tests::shoal_bin;
use tokio_postgres::Client;

/// Node rows as `(node_id, address, is_live, replicas, leases)`.
async fn nodes(client: &Client) -> Vec<(i64, String, bool, i64, i64)> {
    client
        .query(
            "SELECT node_id, address, is_live, replicas, leases FROM shoal_internal.nodes ORDER BY node_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ranges_and_nodes_are_visible_from_every_node() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let first = cluster.nodes[0].connect().await;
    first
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v text);
             INSERT INTO t SELECT n, 'row ' || n FROM generate_series(1, 50) AS g(n);",
        )
        .await
        .unwrap();

    for node in &cluster.nodes {
        let client = node.connect().await;
        // Every node learns the full membership through its replica.
        eventually(Duration::from_secs(30), "three replicas", || async {
            let rows = client.query("SHOW RANGES FROM TABLE t", &[]).await.unwrap();
            rows.len() == 1 && rows[0].get::<_, String>("replicas") == "{1,2,3}"
        })
        .await;
        let rows = client.query("SHOW RANGES FROM TABLE t", &[]).await.unwrap();
        let columns: Vec<&str> = rows[0].columns().iter().map(|c| c.name()).collect();
        assert_eq!(
            columns,
            [
                "range_id",
                "start_key",
                "end_key",
                "replicas",
                "lease_holder",
                "range_size_bytes"
            ]
        );
        // The table's own range (its id is the first one, 100).
        let row = &rows[0];
        assert_eq!(row.get::<_, i64>("range_id"), 2);
        assert_eq!(row.get::<_, String>("start_key"), "/Table/100");
        assert_eq!(row.get::<_, String>("end_key"), "/Table/101");
        assert!((1..=3).contains(&row.get::<_, i64>("lease_holder")));
        assert!(row.get::<_, i64>("range_size_bytes") > 50 * 5);
        // Every range: before, of, and after the table; and a table that
        // does not exist.
        assert_eq!(client.query("SHOW RANGES", &[]).await.unwrap().len(), 3);
        let err = client
            .query("SHOW RANGES FROM TABLE missing", &[])
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE)
        );
    }

    // Every node heartbeats its liveness; all three are live, hold a
    // replica of each of the three ranges, and each range has one lease.
    eventually(Duration::from_secs(30), "three live nodes", || async {
        nodes(&first).await.iter().filter(|n| n.2).count() == 3
    })
    .await;
    let rows = nodes(&first).await;
    let mut addresses: Vec<String> = rows.iter().map(|n| n.1.clone()).collect();
    addresses.sort();
    let mut expected: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| n.listen_addr.to_string())
        .collect();
    expected.sort();
    assert_eq!(addresses, expected);
    assert!(rows.iter().all(|n| n.3 == 3), "{rows:?}");
    assert_eq!(rows.iter().map(|n| n.4).sum::<i64>(), 3, "{rows:?}");

    // The operator's view, through another node.
    let output = Command::new(shoal_bin())
        .args(["node", "status", "--host"])
        .arg(cluster.nodes[1].listen_addr.to_string())
        .env("SHOAL_LOG", "warn")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(lines[0].contains("is_live"), "{stdout}");
    assert!(lines[1..].iter().all(|l| l.contains("true")), "{stdout}");

    // A killed node stops heartbeating and is reported dead once its
    // liveness expires (9 s after its last heartbeat).
    let leader = cluster.leader().await;
    let victim = (0..3).find(|&i| i != leader && i != 0).unwrap_or(2);
    let victim_addr = cluster.nodes[victim].listen_addr.to_string();
    cluster.nodes[victim].kill9();
    eventually(
        Duration::from_secs(30),
        "the killed node reported dead",
        || async {
            nodes(&first)
                .await
                .iter()
                .any(|n| n.1 == victim_addr && !n.2)
        },
    )
    .await;
    let live = nodes(&first).await.iter().filter(|n| n.2).count();
    assert_eq!(live, 2);
}

/// Leaders pass read barriers under their leases on a three-node cluster
/// too (`replication/lease.rs`): after reads from every node, the nodes'
/// `kv.lease_reads` counters add up to more than zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaders_serve_reads_under_their_leases() {
    let cluster = TestCluster::start(3, &[]).await;
    let mut clients = Vec::new();
    for node in &cluster.nodes {
        clients.push(node.connect().await);
    }
    clients[0]
        .batch_execute(
            "CREATE TABLE kv (k int PRIMARY KEY, v text); INSERT INTO kv VALUES (1, 'one')",
        )
        .await
        .unwrap();
    for client in &clients {
        for _ in 0..20 {
            let row = client
                .query_one("SELECT v FROM kv WHERE k = $1", &[&1_i32])
                .await
                .unwrap();
            assert_eq!(row.get::<_, String>(0), "one");
        }
    }
    let mut total = 0;
    for client in &clients {
        let value: i64 = client
            .query_one(
                "SELECT value FROM shoal_internal.node_metrics WHERE name = 'kv.lease_reads'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        total += value;
    }
    assert!(total > 0, "no read was passed under a lease");
}
