//! Placement by hand, end to end on four real `shoal` processes:
//! `ALTER RANGE … RELOCATE LEASE TO` moves a range's leadership,
//! `ALTER RANGE … RELOCATE FROM … TO` one of its replicas to the node that
//! held none, and `ALTER TABLE … UNSPLIT AT` / `UNSPLIT ALL` let the merge
//! driver take manual boundaries away — while the rows stay. Requests the
//! range's membership does not allow fail with 22023, an unknown range
//! with 42704, and none of them changes anything.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use shoal_tests::cluster::{TestCluster, node_ids};
use shoal_tests::eventually;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

/// A range of table `t`: its id, first key, replicas and lease holder.
#[derive(Debug, Clone)]
struct Range {
    id: i64,
    start: String,
    replicas: BTreeSet<u64>,
    leader: Option<u64>,
}

async fn ranges(client: &Client) -> Vec<Range> {
    let rows = client.query("SHOW RANGES FROM TABLE t", &[]).await.unwrap();
    rows.iter()
        .map(|row| {
            let replicas: String = row.get(3);
            Range {
                id: row.get(0),
                start: row.get(1),
                replicas: node_ids(&replicas).into_iter().collect(),
                leader: row.get::<_, Option<i64>>(4).map(|l| l as u64),
            }
        })
        .collect()
}

/// The range of `t` whose first key ends in `/suffix`.
async fn range_at(client: &Client, suffix: &str) -> Range {
    ranges(client)
        .await
        .into_iter()
        .find(|r| r.start.ends_with(&format!("/{suffix}")))
        .unwrap_or_else(|| panic!("no range starts at {suffix}"))
}

/// Waits (up to a minute: a merge may move replicas together first)
/// until `t` has `n` ranges, each led.
async fn wait_ranges(client: &Client, n: usize) {
    eventually(
        Duration::from_secs(60),
        &format!("{n} ranges of t"),
        || async {
            let now = ranges(client).await;
            now.len() == n && now.iter().all(|r| r.leader.is_some())
        },
    )
    .await;
}

/// The range of `t` starting at `suffix` once it has three replicas and
/// no learner (waits up to ten seconds for the rebalancer's move to end).
async fn settled_range(client: &Client, suffix: &str) -> Range {
    for _ in 0..100 {
        let range = range_at(client, suffix).await;
        if range.replicas.len() == 3 {
            return range;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("range {suffix} never settled at three replicas")
}

/// Asks what `range`'s membership does not allow; the first request that
/// was not refused with the expected SQLSTATE, described.
async fn refusals_differ(client: &Client, range: &Range, nodes: &BTreeSet<u64>) -> Option<String> {
    let outsider = *nodes.difference(&range.replicas).next()?;
    let voter = *range.replicas.iter().next()?;
    let id = range.id;
    for (sql, code) in [
        (
            format!("ALTER RANGE {id} RELOCATE LEASE TO {outsider}"),
            SqlState::INVALID_PARAMETER_VALUE,
        ),
        (
            format!("ALTER RANGE {id} RELOCATE FROM {outsider} TO {voter}"),
            SqlState::INVALID_PARAMETER_VALUE,
        ),
        (
            format!("ALTER RANGE {id} RELOCATE FROM {voter} TO {voter}"),
            SqlState::INVALID_PARAMETER_VALUE,
        ),
        (
            format!("ALTER RANGE {id} RELOCATE FROM {voter} TO 42"),
            SqlState::INVALID_PARAMETER_VALUE,
        ),
        (
            "ALTER RANGE 987654 RELOCATE LEASE TO 1".to_string(),
            SqlState::UNDEFINED_OBJECT,
        ),
        (
            format!("ALTER RANGE {id} RELOCATE SOMEWHERE"),
            SqlState::SYNTAX_ERROR,
        ),
        (
            "ALTER TABLE t UNSPLIT AT VALUES (150)".to_string(),
            SqlState::INVALID_PARAMETER_VALUE,
        ),
    ] {
        match client.batch_execute(&sql).await {
            Ok(()) => return Some(format!("{sql} succeeded")),
            Err(e) if e.code() != Some(&code) => {
                return Some(format!("{sql}: {e:?}, not {code:?}"));
            }
            Err(_) => {}
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leases_and_replicas_move_by_hand_and_unsplit_boundaries_merge() {
    let cluster = TestCluster::start(4, &[]).await;
    let client = cluster.nodes[0].connect().await;
    client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v text);
             INSERT INTO t SELECT n, 'row ' || n FROM generate_series(1, 200) AS g(n);
             ALTER TABLE t SPLIT AT VALUES (100);",
        )
        .await
        .unwrap();
    wait_ranges(&client, 2).await;
    let nodes: BTreeSet<u64> = (1..=4).collect();

    // The leadership goes to another voter.
    let range = range_at(&client, "100").await;
    let heir = *range
        .replicas
        .iter()
        .find(|&&n| Some(n) != range.leader)
        .unwrap();
    let row = client
        .query_one(
            &format!("ALTER RANGE {} RELOCATE LEASE TO {heir}", range.id),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, i64>(0), row.get::<_, &str>(1)),
        (range.id, "ok")
    );
    eventually(
        Duration::from_secs(10),
        "the new lease holder shown",
        || async { range_at(&client, "100").await.leader == Some(heir) },
    )
    .await;

    // Its leader's replica moves to the node without one. The rebalancer
    // is busy too (the fourth node started empty): if the range changed
    // since this node's view of it, or changes so that the move cannot
    // finish as asked, the statement says so (22023) and is asked again of
    // the range as it is then.
    let mut attempts = 0;
    let (from, to) = loop {
        let range = range_at(&client, "100").await;
        let (Some(from), Some(&to)) = (range.leader, nodes.difference(&range.replicas).next())
        else {
            // In the middle of the rebalancer's own move (a learner).
            attempts += 1;
            assert!(attempts < 100, "range 100 never settled: {range:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let sql = format!(
            "ALTER RANGE {} RELOCATE VOTERS FROM {from} TO {to}",
            range.id
        );
        match client.batch_execute(&sql).await {
            Ok(()) => break (from, to),
            Err(e) if attempts < 100 && e.code() == Some(&SqlState::INVALID_PARAMETER_VALUE) => {
                attempts += 1;
            }
            Err(e) => panic!("{sql}: {e:?}"),
        }
    };
    eventually(
        Duration::from_secs(10),
        "the moved replica shown",
        || async {
            let now = range_at(&client, "100").await;
            now.replicas.contains(&to) && !now.replicas.contains(&from) && now.replicas.len() == 3
        },
    )
    .await;

    // What the membership does not allow is refused, and changes nothing.
    // The rebalancer may still be moving replicas (the fourth node started
    // empty), which can make a refused request a valid one; so when an
    // answer differs, or the membership is not what it was, the checks are
    // asked again of the range as it is then. With the membership steady
    // across a round, every answer must be the refusal.
    let mut rounds = 0;
    loop {
        rounds += 1;
        let range = settled_range(&client, "100").await;
        let wrong = refusals_differ(&client, &range, &nodes).await;
        let now = range_at(&client, "100").await;
        if now.replicas == range.replicas {
            if let Some(wrong) = wrong {
                panic!("{wrong}, with the membership steady at {range:?}");
            }
            break;
        }
        assert!(
            rounds < 20,
            "range 100 kept changing: {range:?} then {now:?} ({wrong:?})"
        );
    }

    // An unsplit boundary is merged away; so is every one after UNSPLIT ALL.
    let unsplit = client
        .query("ALTER TABLE t UNSPLIT AT VALUES (100)", &[])
        .await
        .unwrap();
    assert_eq!(unsplit.len(), 1);
    wait_ranges(&client, 1).await;
    client
        .batch_execute("ALTER TABLE t SPLIT AT VALUES (50), (120), (160)")
        .await
        .unwrap();
    wait_ranges(&client, 4).await;
    let unsplit = client
        .query("ALTER TABLE t UNSPLIT ALL", &[])
        .await
        .unwrap();
    assert_eq!(unsplit.len(), 3);
    wait_ranges(&client, 1).await;

    for node in &cluster.nodes {
        let row = node
            .connect()
            .await
            .query_one("SELECT count(*), sum(id) FROM t", &[])
            .await
            .unwrap();
        assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (200, 20_100));
    }
}
