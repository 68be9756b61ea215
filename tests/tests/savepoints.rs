//! Savepoints through real clients: tokio-postgres rolls a failed block
//! back to a savepoint and commits the rest, and the transaction status
//! every ReadyForQuery reports (read off the wire, simple and extended
//! protocol) is PostgreSQL's: `T` in a block, `E` once it failed, `T`
//! again after `ROLLBACK TO SAVEPOINT`, `I` outside.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use shoal_tests::TestNode;
use shoal_tests::wire::Wire;
use tokio_postgres::error::SqlState;

#[tokio::test]
async fn rollback_to_savepoint_recovers_a_failed_block() {
    let node = TestNode::start().await;
    let c = node.connect().await;
    c.batch_execute("CREATE TABLE t (id integer PRIMARY KEY)")
        .await
        .unwrap();
    c.batch_execute("BEGIN; INSERT INTO t VALUES (1); SAVEPOINT s")
        .await
        .unwrap();
    let err = c
        .execute("INSERT INTO t VALUES (1)", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION));
    let err = c.query("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::IN_FAILED_SQL_TRANSACTION));
    c.batch_execute("ROLLBACK TO SAVEPOINT s").await.unwrap();
    let insert = c.prepare("INSERT INTO t VALUES ($1)").await.unwrap();
    c.execute(&insert, &[&2i32]).await.unwrap();
    c.batch_execute("RELEASE SAVEPOINT s; COMMIT")
        .await
        .unwrap();
    let ids: Vec<i32> = c
        .query("SELECT id FROM t ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, vec![1, 2]);
}

#[tokio::test]
async fn ready_for_query_reports_the_block_state() {
    let node = TestNode::start().await;
    let mut wire = Wire::connect(node.sql_addr).await;
    assert_eq!(
        wire.simple("CREATE TABLE w (id integer PRIMARY KEY)").await,
        b'I'
    );
    assert_eq!(wire.simple("BEGIN").await, b'T');
    assert_eq!(wire.simple("INSERT INTO w VALUES (1)").await, b'T');
    assert_eq!(wire.simple("SAVEPOINT s").await, b'T');
    assert_eq!(wire.simple("INSERT INTO w VALUES (1)").await, b'E');
    assert_eq!(wire.simple("SELECT 1").await, b'E');
    // An unknown savepoint does not take the block back.
    assert_eq!(wire.simple("ROLLBACK TO SAVEPOINT nope").await, b'E');
    assert_eq!(wire.simple("ROLLBACK TO SAVEPOINT s").await, b'T');
    // The same through the extended protocol.
    assert_eq!(wire.extended("INSERT INTO w VALUES (1)").await, b'E');
    assert_eq!(wire.extended("SELECT 1").await, b'E');
    assert_eq!(wire.extended("ROLLBACK TO SAVEPOINT s").await, b'T');
    assert_eq!(wire.extended("INSERT INTO w VALUES (2)").await, b'T');
    assert_eq!(wire.simple("COMMIT").await, b'I');
    assert_eq!(wire.simple("SAVEPOINT outside").await, b'I');
    let c = node.connect().await;
    let n: i64 = c
        .query_one("SELECT count(*) FROM w", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
}
