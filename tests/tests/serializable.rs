//! Isolation levels as PostgreSQL users know them: SERIALIZABLE (the
//! default) prevents write skew, REPEATABLE READ allows it; on one node
//! and across three, with the rows in different ranges. READ COMMITTED
//! gives every statement a new snapshot, and its writers wait for each
//! other instead of failing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use shoal_tests::cluster::TestCluster;
use shoal_tests::{TestNode, still_waiting};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

const ITEMS: &str = "CREATE TABLE items (k int PRIMARY KEY, v text);
     INSERT INTO items VALUES (1, 'one'), (2, 'two')";

const DOCTORS: &str = "CREATE TABLE doctors (name text PRIMARY KEY, on_call boolean NOT NULL);
     INSERT INTO doctors VALUES ('alice', true), ('bob', true);";

/// The two-doctors example: each doctor, in a transaction begun with
/// `begin`, checks that somebody else is on call and goes off call. Returns
/// the outcome of the second commit and how many doctors are left on call.
async fn doctors_go_off_call(
    alice: &Client,
    bob: &Client,
    begin: &str,
) -> (Result<(), tokio_postgres::Error>, i64) {
    alice
        .batch_execute("UPDATE doctors SET on_call = true")
        .await
        .unwrap();
    let on_call = "SELECT count(*) FROM doctors WHERE on_call";
    alice.batch_execute(begin).await.unwrap();
    bob.batch_execute(begin).await.unwrap();
    let seen_by_alice: i64 = alice.query_one(on_call, &[]).await.unwrap().get(0);
    let seen_by_bob: i64 = bob.query_one(on_call, &[]).await.unwrap().get(0);
    assert_eq!((seen_by_alice, seen_by_bob), (2, 2));
    alice
        .batch_execute("UPDATE doctors SET on_call = false WHERE name = 'alice'")
        .await
        .unwrap();
    bob.batch_execute("UPDATE doctors SET on_call = false WHERE name = 'bob'")
        .await
        .unwrap();
    alice.batch_execute("COMMIT").await.unwrap();
    let second = bob.batch_execute("COMMIT").await;
    let left: i64 = alice.query_one(on_call, &[]).await.unwrap().get(0);
    (second, left)
}

/// Write skew passes under REPEATABLE READ (nobody left on call) and fails
/// under SERIALIZABLE, begun with `begin` (one doctor stays).
async fn skew_only_under_repeatable_read(alice: &Client, bob: &Client, begin: &str) {
    let (second, left) =
        doctors_go_off_call(alice, bob, "BEGIN ISOLATION LEVEL REPEATABLE READ").await;
    second.unwrap();
    assert_eq!(left, 0);
    let (second, left) = doctors_go_off_call(alice, bob, begin).await;
    assert_read_write_conflict(second);
    assert_eq!(left, 1);
}

fn assert_read_write_conflict(outcome: Result<(), tokio_postgres::Error>) {
    let err = outcome.expect_err("write skew must fail under SERIALIZABLE");
    assert_eq!(err.code(), Some(&SqlState::T_R_SERIALIZATION_FAILURE));
    let message = err.as_db_error().map(|e| e.message().to_string());
    assert_eq!(
        message.as_deref(),
        Some(
            "could not serialize access due to read/write dependencies among transactions: \
             this transaction read table \"doctors\", key (name)=(alice), changed since by \
             another transaction"
        )
    );
}

#[tokio::test]
async fn write_skew_is_prevented_under_serializable_and_allowed_under_repeatable_read() {
    let node = TestNode::start().await;
    let alice = node.connect().await;
    let bob = node.connect().await;
    alice.batch_execute(DOCTORS).await.unwrap();

    // SERIALIZABLE is the default; it can be chosen the other ways
    // PostgreSQL offers too.
    skew_only_under_repeatable_read(&alice, &bob, "BEGIN").await;
    skew_only_under_repeatable_read(
        &alice,
        &bob,
        "BEGIN; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
    )
    .await;
    skew_only_under_repeatable_read(&alice, &bob, "BEGIN ISOLATION LEVEL SERIALIZABLE").await;
    for client in [&alice, &bob] {
        client
            .batch_execute("SET default_transaction_isolation = 'repeatable read'")
            .await
            .unwrap();
    }
    let (second, left) = doctors_go_off_call(&alice, &bob, "BEGIN").await;
    second.unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn the_isolation_level_reads_and_sets_as_in_postgresql() {
    let node = TestNode::start().await;
    let client = node.connect().await;
    let level = |sql: &'static str| {
        let client = &client;
        async move {
            let row = client.query_one(sql, &[]).await.unwrap();
            row.get::<_, String>(0)
        }
    };
    assert_eq!(level("SHOW transaction_isolation").await, "serializable");
    assert_eq!(
        level("SHOW default_transaction_isolation").await,
        "serializable"
    );
    for chosen in ["repeatable read", "read committed"] {
        client
            .batch_execute(&format!("BEGIN ISOLATION LEVEL {chosen}"))
            .await
            .unwrap();
        assert_eq!(level("SHOW transaction_isolation").await, chosen);
        client.batch_execute("COMMIT").await.unwrap();
        assert_eq!(level("SHOW transaction_isolation").await, "serializable");
    }

    // Only before the block's first query.
    client.batch_execute("BEGIN").await.unwrap();
    client.batch_execute("SELECT 1").await.unwrap();
    let err = client
        .batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::ACTIVE_SQL_TRANSACTION));
    client.batch_execute("ROLLBACK").await.unwrap();

    // Outside a block it changes nothing.
    client
        .batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .await
        .unwrap();
    assert_eq!(level("SHOW transaction_isolation").await, "serializable");
    let err = client
        .batch_execute("SET default_transaction_isolation = 'chaos'")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INVALID_PARAMETER_VALUE));
}

/// The value of row `k` of `items`.
async fn value(client: &Client, k: i32) -> String {
    client
        .query_one("SELECT v FROM items WHERE k = $1", &[&k])
        .await
        .unwrap()
        .get(0)
}

/// READ COMMITTED: each statement of a block sees what other transactions
/// committed before it began (REPEATABLE READ keeps the first snapshot)
/// and may update it; the block's own writes carry over.
#[tokio::test]
async fn read_committed_sees_each_statements_committed_data() {
    let node = TestNode::start().await;
    let a = node.connect().await;
    let b = node.connect().await;
    a.batch_execute(
        "CREATE TABLE items (k int PRIMARY KEY, v text);
         INSERT INTO items VALUES (1, 'one'), (2, 'two')",
    )
    .await
    .unwrap();
    for (begin, sees_new) in [
        ("BEGIN ISOLATION LEVEL READ COMMITTED", true),
        ("BEGIN ISOLATION LEVEL REPEATABLE READ", false),
    ] {
        a.batch_execute("UPDATE items SET v = 'one' WHERE k = 1")
            .await
            .unwrap();
        a.batch_execute(begin).await.unwrap();
        assert_eq!(value(&a, 1).await, "one");
        a.batch_execute("INSERT INTO items VALUES (3, 'three')")
            .await
            .unwrap();
        b.batch_execute("UPDATE items SET v = 'uno' WHERE k = 1")
            .await
            .unwrap();
        let seen = value(&a, 1).await;
        assert_eq!(seen == "uno", sees_new, "{begin}: saw {seen}");
        assert_eq!(value(&a, 3).await, "three", "{begin}: own write");
        a.batch_execute("COMMIT").await.unwrap();
        a.batch_execute("DELETE FROM items WHERE k = 3")
            .await
            .unwrap();
    }

    // A statement writes on top of what committed before it began: `b`
    // changed row 2 after `a`'s first statement, and `a`'s update applies
    // to `b`'s version.
    a.batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED")
        .await
        .unwrap();
    assert_eq!(value(&a, 2).await, "two");
    b.batch_execute("UPDATE items SET v = 'dos' WHERE k = 2")
        .await
        .unwrap();
    a.batch_execute("UPDATE items SET v = v || '!' WHERE k = 2")
        .await
        .unwrap();
    a.batch_execute("COMMIT").await.unwrap();
    assert_eq!(value(&b, 2).await, "dos!");
}

/// READ COMMITTED writers wait for each other as in PostgreSQL: a row a
/// READ COMMITTED block wrote is locked until the block ends; another
/// writer waits for it, then applies its change on top. Nobody fails.
#[tokio::test]
async fn read_committed_writers_wait_and_apply_on_top() {
    let node = TestNode::start().await;
    let a = node.connect().await;
    let b = node.connect().await;
    a.batch_execute(ITEMS).await.unwrap();

    // A statement of its own waits for the block, then updates its row.
    let b = writer_waits_for_read_committed(&a, b).await;

    // Two READ COMMITTED blocks: the second's UPDATE waits, then runs
    // again on the first's committed row.
    a.batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED; UPDATE items SET v = 'A' WHERE k = 1")
        .await
        .unwrap();
    b.batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED")
        .await
        .unwrap();
    let waiter = tokio::spawn(async move {
        let updated = b
            .execute("UPDATE items SET v = v || '+b' WHERE k = 1", &[])
            .await;
        (updated, b)
    });
    assert!(still_waiting(&waiter).await, "the block did not wait");
    a.batch_execute("COMMIT").await.unwrap();
    let (updated, b) = waiter.await.unwrap();
    assert_eq!(updated.unwrap(), 1);
    assert_eq!(value(&b, 1).await, "A+b");
    b.batch_execute("COMMIT").await.unwrap();
    assert_eq!(value(&a, 1).await, "A+b");

    // A rolled-back holder leaves the row as it was.
    a.batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED; DELETE FROM items WHERE k = 1")
        .await
        .unwrap();
    let waiter = tokio::spawn(async move {
        let updated = b.execute("UPDATE items SET v = 'b' WHERE k = 1", &[]).await;
        (updated, b)
    });
    assert!(still_waiting(&waiter).await, "the writer did not wait");
    a.batch_execute("ROLLBACK").await.unwrap();
    let (updated, b) = waiter.await.unwrap();
    assert_eq!(updated.unwrap(), 1);
    assert_eq!(value(&a, 1).await, "b");

    // `lock_timeout` bounds the wait (55P03); the holder is untouched.
    a.batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED; UPDATE items SET v = 'a' WHERE k = 2")
        .await
        .unwrap();
    b.batch_execute("SET lock_timeout = '200ms'").await.unwrap();
    let err = b
        .batch_execute("UPDATE items SET v = 'b' WHERE k = 2")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::LOCK_NOT_AVAILABLE), "{err}");
    b.batch_execute("RESET lock_timeout").await.unwrap();

    // A SERIALIZABLE block writing a locked row fails at COMMIT with 40001
    // naming it, as PostgreSQL's would once the holder commits.
    b.batch_execute("BEGIN; UPDATE items SET v = 'ser' WHERE k = 2")
        .await
        .unwrap();
    let err = b.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(&SqlState::T_R_SERIALIZATION_FAILURE),
        "{err}"
    );
    let message = err.as_db_error().map(|e| e.message().to_string());
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("table \"items\", key (k)=(2)")
                && m.contains("locked by another transaction")),
        "{message:?}"
    );
    a.batch_execute("COMMIT").await.unwrap();
    assert_eq!(value(&b, 2).await, "a");
}

/// Two READ COMMITTED blocks on `a` and `b` that each wait for a row of
/// `items` the other wrote: one gets 40P01 within a few seconds, its locks
/// go with it, and the other proceeds.
async fn read_committed_deadlock_breaks(a: &Client, b: &Client) {
    a.batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED; UPDATE items SET v = 'a' WHERE k = 1")
        .await
        .unwrap();
    b.batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED; UPDATE items SET v = 'b' WHERE k = 2")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let (ra, rb) = tokio::join!(
        a.batch_execute("UPDATE items SET v = 'a' WHERE k = 2"),
        b.batch_execute("UPDATE items SET v = 'b' WHERE k = 1"),
    );
    let elapsed = started.elapsed();
    let failed: Vec<_> = [&ra, &rb]
        .into_iter()
        .filter_map(|r| r.as_ref().err())
        .collect();
    assert_eq!(failed.len(), 1, "{ra:?} {rb:?}");
    assert_eq!(
        failed[0].code(),
        Some(&SqlState::T_R_DEADLOCK_DETECTED),
        "{failed:?}"
    );
    assert!(elapsed < std::time::Duration::from_secs(10), "{elapsed:?}");
    let (winner, loser, mine) = if ra.is_ok() { (a, b, "a") } else { (b, a, "b") };
    loser.batch_execute("ROLLBACK").await.unwrap();
    winner.batch_execute("COMMIT").await.unwrap();
    assert_eq!(value(a, 1).await, mine);
    assert_eq!(value(a, 2).await, mine);
}

/// A statement of its own on `b` waits for `a`'s READ COMMITTED block,
/// then applies its change on top of the block's.
async fn writer_waits_for_read_committed(a: &Client, b: Client) -> Client {
    let before = value(a, 2).await;
    a.batch_execute(
        "BEGIN ISOLATION LEVEL READ COMMITTED; UPDATE items SET v = v || '+a' WHERE k = 2",
    )
    .await
    .unwrap();
    let waiter = tokio::spawn(async move {
        b.batch_execute("UPDATE items SET v = v || '+b' WHERE k = 2")
            .await
            .map(|()| b)
    });
    assert!(still_waiting(&waiter).await, "the writer did not wait");
    assert_eq!(value(a, 2).await, format!("{before}+a"));
    a.batch_execute("COMMIT").await.unwrap();
    let b = waiter.await.unwrap().unwrap();
    assert_eq!(value(&b, 2).await, format!("{before}+a+b"));
    b
}

#[tokio::test]
async fn read_committed_deadlock_is_broken() {
    let node = TestNode::start().await;
    let a = node.connect().await;
    let b = node.connect().await;
    a.batch_execute(ITEMS).await.unwrap();
    read_committed_deadlock_breaks(&a, &b).await;
}

/// Three nodes with `table` (made by `setup`) split at `at` into two
/// ranges; a client on node 1 and one on node 2.
async fn split_on_three_nodes(setup: &str, table: &str, at: &str) -> (TestCluster, Client, Client) {
    let cluster = TestCluster::start(3, &[]).await;
    let first = cluster.nodes[0].connect().await;
    first.batch_execute(setup).await.unwrap();
    first
        .batch_execute(&format!("ALTER TABLE {table} SPLIT AT VALUES ({at})"))
        .await
        .unwrap();
    cluster.wait_table_ranges(&first, table, 2).await;
    let one = cluster.nodes[1].connect().await;
    let two = cluster.nodes[2].connect().await;
    (cluster, one, two)
}

/// The same across three nodes, the two rows in ranges of their own and
/// the two sessions on different nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_committed_writers_wait_across_nodes() {
    let (_cluster, a, b) = split_on_three_nodes(ITEMS, "items", "2").await;
    let b = writer_waits_for_read_committed(&a, b).await;
    read_committed_deadlock_breaks(&a, &b).await;
}

/// The doctors in two ranges on three nodes, each doctor's client on a
/// node of its own: the reads of the other range are proven there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_skew_is_prevented_across_ranges_and_nodes() {
    let (_cluster, alice, bob) = split_on_three_nodes(DOCTORS, "doctors", "'b'").await;
    skew_only_under_repeatable_read(&alice, &bob, "BEGIN").await;
}
