//! Statements sent together are one transaction, as in PostgreSQL: those
//! of the extended protocol before one Sync (a driver's batch or
//! pipeline: `crates/pgwire/src/pipeline.rs`) and those of one simple
//! Query message (`crates/sql/src/session/implicit_block.rs`). If one
//! fails, none of them happened.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use shoal_tests::TestNode;
use shoal_tests::wire::Wire;

async fn ids(node: &TestNode) -> Vec<i32> {
    let client = node.connect().await;
    let rows = client
        .query("SELECT id FROM t ORDER BY id", &[])
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

#[tokio::test]
async fn the_statements_before_one_sync_are_one_transaction() {
    let node = TestNode::start().await;
    let mut wire = Wire::connect(node.sql_addr).await;
    assert_eq!(
        wire.simple("CREATE TABLE t (id integer PRIMARY KEY)").await,
        b'I'
    );

    // The third fails: the first two are rolled back with it.
    wire.parse_bind_execute("INSERT INTO t VALUES (1)").await;
    wire.parse_bind_execute("INSERT INTO t VALUES (2)").await;
    wire.parse_bind_execute("INSERT INTO t VALUES (1)").await;
    wire.send(b'S', &[]).await;
    assert_eq!(
        wire.errors_until_ready().await,
        (vec!["23505".to_string()], b'I')
    );
    assert_eq!(ids(&node).await, Vec::<i32>::new());

    // Without a failure, all of them commit at Sync.
    wire.parse_bind_execute("INSERT INTO t VALUES (1)").await;
    wire.parse_bind_execute("INSERT INTO t VALUES (2)").await;
    wire.send(b'S', &[]).await;
    assert_eq!(wire.errors_until_ready().await, (vec![], b'I'));
    assert_eq!(ids(&node).await, vec![1, 2]);

    // A division by zero in a query fails the group as well.
    wire.parse_bind_execute("INSERT INTO t VALUES (3)").await;
    wire.parse_bind_execute("SELECT 1 / 0").await;
    wire.send(b'S', &[]).await;
    assert_eq!(
        wire.errors_until_ready().await,
        (vec!["22012".to_string()], b'I')
    );
    assert_eq!(ids(&node).await, vec![1, 2]);

    // Answers asked for with Flush do not end the group: a failure after
    // them still rolls back what came before.
    wire.parse_bind_execute("INSERT INTO t VALUES (4)").await;
    wire.send(b'H', &[]).await;
    assert_eq!(wire.tags_until(b'C').await, b"12C");
    wire.parse_bind_execute("INSERT INTO t VALUES (1)").await;
    wire.send(b'S', &[]).await;
    assert_eq!(
        wire.errors_until_ready().await,
        (vec!["23505".to_string()], b'I')
    );
    assert_eq!(ids(&node).await, vec![1, 2]);

    // BEGIN in a group makes its block the client's: it stays open past
    // Sync, with the statement before it.
    wire.parse_bind_execute("INSERT INTO t VALUES (5)").await;
    wire.parse_bind_execute("BEGIN").await;
    wire.parse_bind_execute("INSERT INTO t VALUES (6)").await;
    wire.send(b'S', &[]).await;
    assert_eq!(wire.errors_until_ready().await, (vec![], b'T'));
    assert_eq!(ids(&node).await, vec![1, 2], "nothing committed yet");
    assert_eq!(wire.simple("COMMIT").await, b'I');
    assert_eq!(ids(&node).await, vec![1, 2, 5, 6]);

    // COMMIT in a group ends its block; what follows is another.
    wire.parse_bind_execute("INSERT INTO t VALUES (7)").await;
    wire.parse_bind_execute("COMMIT").await;
    wire.parse_bind_execute("INSERT INTO t VALUES (8)").await;
    wire.parse_bind_execute("INSERT INTO t VALUES (1)").await;
    wire.send(b'S', &[]).await;
    assert_eq!(
        wire.errors_until_ready().await,
        (vec!["23505".to_string()], b'I')
    );
    assert_eq!(ids(&node).await, vec![1, 2, 5, 6, 7]);

    // Savepoints need a block of the client's, as in PostgreSQL.
    wire.parse_bind_execute("INSERT INTO t VALUES (9)").await;
    wire.parse_bind_execute("SAVEPOINT s").await;
    wire.send(b'S', &[]).await;
    assert_eq!(
        wire.errors_until_ready().await,
        (vec!["25P01".to_string()], b'I')
    );
    assert_eq!(ids(&node).await, vec![1, 2, 5, 6, 7]);

    // A statement alone still commits on its own, and a failing one
    // leaves nothing open.
    wire.parse_bind_execute("INSERT INTO t VALUES (9)").await;
    wire.send(b'S', &[]).await;
    assert_eq!(wire.errors_until_ready().await, (vec![], b'I'));
    wire.parse_bind_execute("INSERT INTO t VALUES (9)").await;
    wire.send(b'S', &[]).await;
    assert_eq!(
        wire.errors_until_ready().await,
        (vec!["23505".to_string()], b'I')
    );
    assert_eq!(ids(&node).await, vec![1, 2, 5, 6, 7, 9]);
}

/// A driver's batch: tokio-postgres pipelines the statements of
/// concurrent queries on one connection, each with its own Sync, so
/// each is its own transaction; a failing one takes no other with it.
#[tokio::test]
async fn statements_with_their_own_syncs_stay_apart() {
    let node = TestNode::start().await;
    let client = node.connect().await;
    client
        .batch_execute("CREATE TABLE t (id integer PRIMARY KEY)")
        .await
        .unwrap();
    let insert = client.prepare("INSERT INTO t VALUES ($1)").await.unwrap();
    let (a, b, c) = tokio::join!(
        client.execute(&insert, &[&1i32]),
        client.execute(&insert, &[&1i32]),
        client.execute(&insert, &[&2i32]),
    );
    assert_eq!(a.unwrap(), 1);
    assert_eq!(
        b.unwrap_err().code().map(|c| c.code()),
        Some("23505"),
        "the duplicate fails alone"
    );
    assert_eq!(c.unwrap(), 1);
    assert_eq!(ids(&node).await, vec![1, 2]);
}

#[tokio::test]
async fn the_statements_of_one_query_string_are_one_transaction() {
    let node = TestNode::start().await;
    let client = node.connect().await;
    client
        .batch_execute("CREATE TABLE t (id integer PRIMARY KEY)")
        .await
        .unwrap();
    let err = client
        .batch_execute("INSERT INTO t VALUES (1); INSERT INTO t VALUES (2); SELECT 1 / 0")
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("22012"));
    assert_eq!(ids(&node).await, Vec::<i32>::new());

    client
        .batch_execute("INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)")
        .await
        .unwrap();
    assert_eq!(ids(&node).await, vec![1, 2]);

    // An explicit COMMIT ends the implicit block early: what it committed
    // stays when a later statement fails.
    let err = client
        .batch_execute(
            "INSERT INTO t VALUES (3); COMMIT; INSERT INTO t VALUES (4); INSERT INTO t VALUES (1)",
        )
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("23505"));
    assert_eq!(ids(&node).await, vec![1, 2, 3]);

    // BEGIN adopts the statements before it into the client's block.
    client
        .batch_execute("INSERT INTO t VALUES (5); BEGIN; INSERT INTO t VALUES (6)")
        .await
        .unwrap();
    assert_eq!(ids(&node).await, vec![1, 2, 3], "the block is still open");
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(ids(&node).await, vec![1, 2, 3]);

    for (sql, code) in [
        ("SELECT 1; SAVEPOINT a", "25P01"),
        ("SELECT 1; CREATE DATABASE elsewhere", "25001"),
    ] {
        let err = client.batch_execute(sql).await.unwrap_err();
        assert_eq!(err.code().map(|c| c.code()), Some(code), "{sql}");
    }
    // The session is usable and outside any block after each.
    client
        .batch_execute("INSERT INTO t VALUES (7)")
        .await
        .unwrap();
    assert_eq!(ids(&node).await, vec![1, 2, 3, 7]);
}

/// A COPY FROM STDIN in a group joins its transaction, which commits at
/// the Sync after the data (pgwire then waits for Sync as after an
/// error; the group still commits).
#[tokio::test]
async fn a_copy_in_a_group_commits_with_it() {
    let node = TestNode::start().await;
    let mut wire = Wire::connect(node.sql_addr).await;
    assert_eq!(
        wire.simple("CREATE TABLE t (id integer PRIMARY KEY)").await,
        b'I'
    );
    wire.parse_bind_execute("INSERT INTO t VALUES (1)").await;
    wire.parse_bind_execute("COPY t FROM STDIN").await;
    wire.send(b'S', &[]).await;
    assert_eq!(wire.tags_until(b'G').await, b"12C12G");
    wire.send(b'd', b"2\n3\n").await;
    wire.send(b'c', &[]).await;
    wire.send(b'S', &[]).await;
    assert_eq!(wire.errors_until_ready().await, (vec![], b'I'));
    assert_eq!(ids(&node).await, vec![1, 2, 3]);

    // A COPY that fails takes the group's other statements with it.
    wire.parse_bind_execute("INSERT INTO t VALUES (4)").await;
    wire.parse_bind_execute("COPY t FROM STDIN").await;
    wire.send(b'S', &[]).await;
    assert_eq!(wire.tags_until(b'G').await, b"12C12G");
    wire.send(b'd', b"5\nfive\n").await;
    wire.send(b'c', &[]).await;
    wire.send(b'S', &[]).await;
    assert_eq!(
        wire.errors_until_ready().await,
        (vec!["22P02".to_string()], b'I')
    );
    assert_eq!(ids(&node).await, vec![1, 2, 3]);
}

/// A query string cancelled while it runs keeps nothing of what it did,
/// and the session goes on outside any block.
#[tokio::test]
async fn a_cancelled_query_string_keeps_nothing() {
    let node = TestNode::start().await;
    let client = node.connect().await;
    client
        .batch_execute("CREATE TABLE t (id integer PRIMARY KEY)")
        .await
        .unwrap();
    let cancel = client.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        cancel.cancel_query(tokio_postgres::NoTls).await
    });
    let err = client
        .batch_execute("INSERT INTO t VALUES (1); SELECT pg_sleep(10)")
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("57014"));
    canceller.await.unwrap().unwrap();
    client
        .batch_execute("INSERT INTO t VALUES (2)")
        .await
        .unwrap();
    assert_eq!(ids(&node).await, vec![2]);
}
