//! Transactions across connections: snapshots, conflicts, failed blocks.

use shoal_tests::TestNode;
use tokio_postgres::error::SqlState;

#[tokio::test]
async fn snapshot_reads_and_atomic_commit() {
    let node = TestNode::start().await;
    let a = node.connect().await;
    let b = node.connect().await;
    a.batch_execute("CREATE TABLE acct (id integer PRIMARY KEY, bal integer)")
        .await
        .unwrap();
    a.batch_execute("INSERT INTO acct VALUES (1, 100), (2, 100)")
        .await
        .unwrap();

    b.batch_execute("BEGIN").await.unwrap();
    let before: i64 = b
        .query_one("SELECT sum(bal) FROM acct", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(before, 200);

    a.batch_execute("BEGIN; UPDATE acct SET bal = bal - 50 WHERE id = 1; UPDATE acct SET bal = bal + 50 WHERE id = 2")
        .await
        .unwrap();
    // Uncommitted writes are invisible to others.
    let seen: i32 = b
        .query_one("SELECT bal FROM acct WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(seen, 100);
    a.batch_execute("COMMIT").await.unwrap();
    // b's snapshot predates the commit.
    let still: i32 = b
        .query_one("SELECT bal FROM acct WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(still, 100);
    b.batch_execute("COMMIT").await.unwrap();
    // A new transaction sees the commit.
    let after: i32 = b
        .query_one("SELECT bal FROM acct WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(after, 50);
}

#[tokio::test]
async fn write_write_conflict_aborts_one_with_40001() {
    let node = TestNode::start().await;
    let a = node.connect().await;
    let b = node.connect().await;
    a.batch_execute("CREATE TABLE counter (id integer PRIMARY KEY, n integer)")
        .await
        .unwrap();
    a.batch_execute("INSERT INTO counter VALUES (1, 0)")
        .await
        .unwrap();
    a.batch_execute("BEGIN; UPDATE counter SET n = n + 1 WHERE id = 1")
        .await
        .unwrap();
    b.batch_execute("BEGIN; UPDATE counter SET n = n + 10 WHERE id = 1")
        .await
        .unwrap();
    a.batch_execute("COMMIT").await.unwrap();
    let err = b.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::T_R_SERIALIZATION_FAILURE));
    // The message names the table and the key in conflict.
    let message = err.as_db_error().map(|e| e.message().to_string());
    assert_eq!(
        message.as_deref(),
        Some(
            "could not serialize access due to concurrent update on table \"counter\", key (id)=(1)"
        )
    );
    let n: i32 = a
        .query_one("SELECT n FROM counter WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    // The loser's connection is usable again.
    b.batch_execute("UPDATE counter SET n = n + 10 WHERE id = 1")
        .await
        .unwrap();
    let n: i32 = b
        .query_one("SELECT n FROM counter WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 11);
}

#[tokio::test]
async fn failed_block_refuses_until_rollback() {
    let node = TestNode::start().await;
    let c = node.connect().await;
    c.batch_execute("CREATE TABLE t (id integer PRIMARY KEY)")
        .await
        .unwrap();
    c.batch_execute("BEGIN; INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    assert!(c.batch_execute("INSERT INTO t VALUES (1)").await.is_err());
    let err = c.query("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::IN_FAILED_SQL_TRANSACTION));
    c.batch_execute("ROLLBACK").await.unwrap();
    let n: i64 = c
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}

/// A row locked with FOR UPDATE cannot change under its holder: of two
/// transactions that lock it (or lock and write it), the second to commit
/// gets 40001. A plain read of the row conflicts with nothing.
#[tokio::test]
async fn for_update_makes_lockers_of_a_row_conflict() {
    let node = TestNode::start().await;
    let a = node.connect().await;
    let b = node.connect().await;
    a.batch_execute(
        "CREATE TABLE parent (id integer PRIMARY KEY, n integer NOT NULL);
         CREATE TABLE child (id integer PRIMARY KEY, parent integer NOT NULL);
         INSERT INTO parent VALUES (1, 0)",
    )
    .await
    .unwrap();
    // Both lock the parent, then insert different children: without the
    // lock both would commit.
    a.batch_execute("BEGIN").await.unwrap();
    b.batch_execute("BEGIN").await.unwrap();
    a.query("SELECT n FROM parent WHERE id = 1 FOR UPDATE", &[])
        .await
        .unwrap();
    b.query("SELECT n FROM parent WHERE id = 1 FOR UPDATE", &[])
        .await
        .unwrap();
    a.batch_execute("INSERT INTO child VALUES (10, 1)")
        .await
        .unwrap();
    b.batch_execute("INSERT INTO child VALUES (20, 1)")
        .await
        .unwrap();
    a.batch_execute("COMMIT").await.unwrap();
    let err = b.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::T_R_SERIALIZATION_FAILURE));
    let children: i64 = a
        .query_one("SELECT count(*) FROM child", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(children, 1);

    // A writer that commits first makes the locker fail; a plain reader
    // of the same row does not conflict.
    a.batch_execute("BEGIN").await.unwrap();
    b.batch_execute("BEGIN").await.unwrap();
    a.query("SELECT n FROM parent WHERE id = 1 FOR UPDATE", &[])
        .await
        .unwrap();
    b.query("SELECT n FROM parent WHERE id = 1", &[])
        .await
        .unwrap();
    b.batch_execute("COMMIT").await.unwrap();
    let c = node.connect().await;
    c.batch_execute("UPDATE parent SET n = n + 1 WHERE id = 1")
        .await
        .unwrap();
    let err = a.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::T_R_SERIALIZATION_FAILURE));
}
