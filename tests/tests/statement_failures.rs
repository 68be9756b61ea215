//! A statement that breaks inside the engine ends only itself. The query
//! here trips an invariant DataFusion asserts in debug builds — the builds
//! the tests run — while planning a filter's statistics (a date plus an
//! aggregate, compared with a date); a release build plans it. Either
//! way the client gets an answer or an error (XX000), its connection and
//! transaction block behave as after any failed statement (25P02 until
//! ROLLBACK, the block's writes undone), and the node serves on.
//!
//! So does a query that needs more memory than the node's queries may hold
//! (`--query-memory`): it fails with 53200, the others go on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use shoal_tests::TestNode;
use tokio_postgres::error::SqlState;

const TRIPPING: &str = "SELECT 1 FROM t HAVING (DATE '2024-01-01' + max(t.k)) <= DATE '2000-02-29'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_that_panics_fails_alone() {
    let node = TestNode::start().await;
    let client = node.connect().await;
    client
        .batch_execute("CREATE TABLE t (k int); INSERT INTO t VALUES (1), (2);")
        .await
        .unwrap();

    // Outside a block: an error or an answer, and the connection goes on.
    let failed = match client.query(TRIPPING, &[]).await {
        Ok(rows) => {
            assert!(rows.is_empty());
            false
        }
        Err(e) => {
            assert_eq!(e.code(), Some(&SqlState::INTERNAL_ERROR), "{e:?}");
            true
        }
    };
    let row = client.query_one("SELECT 42", &[]).await.unwrap();
    assert_eq!(row.get::<_, i64>(0), 42);

    // Inside one, through the extended protocol: a failure aborts the
    // block like any other error.
    client
        .batch_execute("BEGIN; INSERT INTO t VALUES (3);")
        .await
        .unwrap();
    let outcome = client.query(TRIPPING, &[]).await;
    assert_eq!(outcome.is_err(), failed, "{outcome:?}");
    if failed {
        let e = client.query("SELECT 1", &[]).await.unwrap_err();
        assert_eq!(e.code(), Some(&SqlState::IN_FAILED_SQL_TRANSACTION));
    }
    client.batch_execute("ROLLBACK").await.unwrap();
    let row = client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 2);

    // Other sessions never noticed.
    let other = node.connect().await;
    let row = other
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_past_the_memory_bound_fails_alone() {
    let mut node = TestNode::new();
    node.extra_args = vec!["--query-memory".into(), "32MiB".into()];
    node.spawn_process();
    node.wait_sql().await;
    let client = node.connect().await;
    // 100 MB of text in one aggregate's state.
    let err = client
        .query_one(
            "SELECT length(string_agg(repeat('x', 1000), '')) FROM generate_series(1, 100000)",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::OUT_OF_MEMORY), "{err:?}");
    // The memory is given back: the same connection runs what fits. The
    // failed query's other partitions hand back their reservations as
    // their tasks wind down, a moment after the error reached the client;
    // until then a query can meet the bound too. So the smaller query is
    // tried a bounded number of times, and must succeed.
    let fits =
        "SELECT length(string_agg(repeat('x', 1000), ''))::int4 FROM generate_series(1, 10000)";
    let mut result = client.query_one(fits, &[]).await;
    for _ in 0..50 {
        match &result {
            Err(e) if e.code() == Some(&SqlState::OUT_OF_MEMORY) => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                result = client.query_one(fits, &[]).await;
            }
            _ => break,
        }
    }
    let row = result.unwrap();
    assert_eq!(row.get::<_, Option<i32>>(0), Some(10_000_000));
}
