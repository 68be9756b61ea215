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

/// A row locked with FOR UPDATE cannot change under its holder: a second
/// locker waits for the holder to finish, and then, the row having been
/// written by the holder since its snapshot, gets 40001 at COMMIT; a
/// writer that commits first makes the locker fail. A plain read of the
/// row conflicts with nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_update_makes_lockers_of_a_row_wait_and_conflict() {
    let node = TestNode::start().await;
    let a = node.connect().await;
    let b = std::sync::Arc::new(node.connect().await);
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
    let b_locks = {
        let b = b.clone();
        tokio::spawn(async move {
            b.query("SELECT n FROM parent WHERE id = 1 FOR UPDATE", &[])
                .await
                .map(drop)
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!b_locks.is_finished(), "b must wait for a's row lock");
    a.batch_execute("INSERT INTO child VALUES (10, 1)")
        .await
        .unwrap();
    a.batch_execute("COMMIT").await.unwrap();
    b_locks.await.unwrap().unwrap();
    b.batch_execute("INSERT INTO child VALUES (20, 1)")
        .await
        .unwrap();
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

/// The job-queue pattern and its relatives: SKIP LOCKED hands each worker
/// a different row, NOWAIT refuses a locked row at once, and lock_timeout
/// bounds a wait (55P03 for both); a lock frees when its holder ends.
#[tokio::test]
async fn skip_locked_nowait_and_lock_timeout() {
    let node = TestNode::start().await;
    let a = node.connect().await;
    let b = node.connect().await;
    let c = node.connect().await;
    a.batch_execute(
        "CREATE TABLE jobs (id integer PRIMARY KEY, state text NOT NULL);
         INSERT INTO jobs VALUES (1, 'queued'), (2, 'queued'), (3, 'queued')",
    )
    .await
    .unwrap();
    let next_job = "SELECT id FROM jobs WHERE state = 'queued' ORDER BY id LIMIT 1 \
                    FOR UPDATE SKIP LOCKED";
    a.batch_execute("BEGIN").await.unwrap();
    b.batch_execute("BEGIN").await.unwrap();
    let first: i32 = a.query_one(next_job, &[]).await.unwrap().get(0);
    let second: i32 = b.query_one(next_job, &[]).await.unwrap().get(0);
    assert_eq!((first, second), (1, 2));
    // With a parameter for the limit, too.
    let rest: Vec<i32> = c
        .query(
            "SELECT id FROM jobs WHERE state = 'queued' ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
            &[&10_i64],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(rest, vec![3]);

    let err = c
        .query("SELECT id FROM jobs WHERE id = 1 FOR UPDATE NOWAIT", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::LOCK_NOT_AVAILABLE));
    assert_eq!(
        err.as_db_error().map(|e| e.message()),
        Some("could not obtain lock on row in relation \"jobs\"")
    );
    c.batch_execute("SET lock_timeout = '200ms'").await.unwrap();
    let started = std::time::Instant::now();
    let err = c
        .query("SELECT id FROM jobs WHERE id = 2 FOR SHARE", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::LOCK_NOT_AVAILABLE));
    assert!(started.elapsed() >= std::time::Duration::from_millis(200));

    // The worker finishes its job; its row is free again.
    a.batch_execute("UPDATE jobs SET state = 'done' WHERE id = 1; COMMIT")
        .await
        .unwrap();
    let locked: Vec<i32> = c
        .query("SELECT id FROM jobs WHERE id = 1 FOR UPDATE NOWAIT", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(locked, vec![1]);
    b.batch_execute("ROLLBACK").await.unwrap();
}
