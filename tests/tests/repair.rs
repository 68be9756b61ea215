//! Repair: a node dead for longer than `server.time_until_store_dead` has
//! its replicas rebuilt on a live node, so every range is back at three
//! live replicas, with every row, without anyone stepping in; a
//! decommissioned node hands its replicas and leases over before it stops.
//! Four nodes: every range has a replica on three of them (five wanted for
//! the first range: on all four), spread by the rebalancer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use shoal_tests::cluster::{TestCluster, range_replicas as ranges};
use shoal_tests::eventually;
use tokio_postgres::Client;

/// Whether every range has at least three replicas, none on `gone`, and
/// a lease holder other than `gone`.
async fn repaired_without(client: &Client, gone: i64) -> bool {
    let ranges = ranges(client).await;
    !ranges.is_empty()
        && ranges.iter().all(|(replicas, holder)| {
            replicas.len() >= 3 && !replicas.contains(&gone) && holder.is_some_and(|h| h != gone)
        })
}

/// Node id → (address, is_live).
async fn nodes(client: &Client) -> BTreeMap<i64, (String, bool)> {
    client
        .query(
            "SELECT node_id, address, is_live FROM shoal_internal.nodes",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect()
}

async fn count(client: &Client) -> Option<i64> {
    client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .ok()
        .map(|r| r.get(0))
}

/// Four nodes, a table `t` of `rows` rows, all four live and every range
/// led; returns each node id's index in `cluster.nodes`, and the ids
/// leading some range.
async fn four_nodes(
    cluster: &TestCluster,
    first: &Client,
    rows: i64,
) -> (BTreeMap<i64, usize>, BTreeSet<i64>) {
    first
        .execute("CREATE TABLE t (id int PRIMARY KEY, v text)", &[])
        .await
        .unwrap();
    first
        .execute(
            &format!("INSERT INTO t SELECT n, 'row ' || n FROM generate_series(1, {rows}) AS g(n)"),
            &[],
        )
        .await
        .unwrap();
    eventually(Duration::from_secs(30), "four live nodes", || async {
        nodes(first).await.values().filter(|n| n.1).count() == 4
    })
    .await;
    let index = nodes(first)
        .await
        .into_iter()
        .map(|(id, (addr, _))| {
            let i = cluster
                .nodes
                .iter()
                .position(|n| n.listen_addr.to_string() == addr)
                .unwrap();
            (id, i)
        })
        .collect::<BTreeMap<i64, usize>>();
    eventually(Duration::from_secs(30), "every range led", || async {
        let all = ranges(first).await;
        all.iter()
            .all(|(replicas, leader)| leader.is_some() && replicas.len() >= 3)
    })
    .await;
    let leaders = ranges(first).await.iter().filter_map(|(_, l)| *l).collect();
    (index, leaders)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_nodes_replica_is_rebuilt_on_a_live_node() {
    let mut cluster = TestCluster::start(4, &[]).await;
    // The first node initialized the cluster: it holds a replica.
    let first = cluster.nodes[0].connect().await;
    first
        .batch_execute("SET CLUSTER SETTING server.time_until_store_dead = '15s'")
        .await
        .unwrap();
    let shown = first
        .query_one("SHOW CLUSTER SETTING server.time_until_store_dead", &[])
        .await
        .unwrap();
    assert_eq!(shown.get::<_, String>(0), "15s");
    let err = first
        .batch_execute("SET CLUSTER SETTING server.time_until_store_dead = '1s'")
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::INVALID_PARAMETER_VALUE)
    );
    let (index, _) = four_nodes(&cluster, &first, 200).await;
    // Any node but the first (the test's connection).
    let victim = *index.iter().find(|&(_, &i)| i != 0).unwrap().0;
    cluster.nodes[index[&victim]].kill9();

    // Dead after 9 s (liveness) + 15 s (the setting); then each of its
    // replicas is rebuilt on the live node without one (a learner, caught
    // up by snapshot, swapped in), or dropped where every live node holds
    // one already (the first range wants five).
    eventually(
        Duration::from_secs(120),
        "every range repaired without the dead node",
        || async { repaired_without(&first, victim).await },
    )
    .await;
    assert!(!nodes(&first).await[&victim].1, "the victim is not dead");

    // Every live node serves every row, and later writes.
    first
        .batch_execute("INSERT INTO t VALUES (201, 'after repair')")
        .await
        .unwrap();
    for (&id, &i) in &index {
        if id == victim {
            continue;
        }
        let client = cluster.nodes[i].connect().await;
        eventually(
            Duration::from_secs(30),
            "a live node serving every row",
            || async { count(&client).await == Some(201) },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_decommissioned_node_hands_over_its_replica_and_lease() {
    let mut cluster = TestCluster::start(4, &[]).await;
    let first = cluster.nodes[0].connect().await;
    let (index, leaders) = four_nodes(&cluster, &first, 100).await;
    let index_of = |id: i64| index[&id];
    let addresses: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| n.listen_addr.to_string())
        .collect();
    // Drain a leader: its leases must move before its replicas can.
    let victim = *leaders.iter().next().expect("a leader");
    let observer = *index.keys().find(|&&id| id != victim).unwrap();
    let client = cluster.nodes[index_of(observer)].connect().await;

    let output = std::process::Command::new(shoal_tests::shoal_bin())
        .args(["node", "decommission", &victim.to_string(), "--host"])
        // Sent to the node being drained itself: the command must follow
        // the draining through another node's view.
        .arg(&addresses[index_of(victim)])
        .args(["--wait", "120"])
        .env("SHOAL_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.contains("decommissioned"), "{stdout}");
    eventually(
        Duration::from_secs(30),
        "every range without the drained node",
        || async { repaired_without(&client, victim).await },
    )
    .await;
    let membership: String = client
        .query_one(
            "SELECT membership FROM shoal_internal.nodes WHERE node_id = $1",
            &[&victim],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(membership, "decommissioned");

    // Stopping it now costs nothing: writes go on, every row is there.
    cluster.nodes[index_of(victim)].kill9();
    client
        .batch_execute("INSERT INTO t VALUES (101, 'after decommission')")
        .await
        .unwrap();
    assert_eq!(count(&client).await, Some(101));
    for (&id, &i) in &index {
        if id == victim {
            continue;
        }
        let other = cluster.nodes[i].connect().await;
        eventually(
            Duration::from_secs(30),
            "a remaining node serving every row",
            || async { count(&other).await == Some(101) },
        )
        .await;
    }
    // An unknown node cannot be decommissioned.
    let output = std::process::Command::new(shoal_tests::shoal_bin())
        .args(["node", "decommission", "99", "--host"])
        .arg(&addresses[index_of(observer)])
        .env("SHOAL_LOG", "warn")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("not a member"),
        "{output:?}"
    );
}
