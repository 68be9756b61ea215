//! Secondary indexes through a real client (tokio-postgres): `EXPLAIN`
//! shows the index a query reads; UNIQUE holds between concurrent
//! transactions (the second writer of a value fails, as in PostgreSQL);
//! prepared point updates keep entries right.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use shoal_tests::{TestNode, still_waiting};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

async fn plan(client: &Client, query: &str) -> String {
    let rows = client
        .simple_query(&format!("EXPLAIN {query}"))
        .await
        .unwrap();
    rows.iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(1).map(str::to_string),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn ids(client: &Client, query: &str) -> Vec<i32> {
    let mut ids: Vec<i32> = client
        .query(query, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn explain_names_the_index_read() {
    let node = TestNode::start().await;
    let c = node.connect().await;
    c.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, v text, n int);
         INSERT INTO t SELECT i, 'v' || (i % 10), i FROM generate_series(1, 200) AS g(i);
         CREATE INDEX t_v ON t (v);
         CREATE INDEX t_n_desc ON t (n DESC)",
    )
    .await
    .unwrap();
    let by_v = plan(&c, "SELECT id FROM t WHERE v = 'v3'").await;
    assert!(by_v.contains("index t_v, spans=1"), "{by_v}");
    let by_in = plan(&c, "SELECT id FROM t WHERE v IN ('v1', 'v2')").await;
    assert!(by_in.contains("index t_v, spans=2"), "{by_in}");
    let by_range = plan(&c, "SELECT id FROM t WHERE n > 190").await;
    assert!(by_range.contains("index t_n_desc, spans=1"), "{by_range}");
    let by_key = plan(&c, "SELECT id FROM t WHERE id = 3 AND v = 'v3'").await;
    assert!(by_key.contains("index t_pkey"), "{by_key}");
    let full = plan(&c, "SELECT id FROM t WHERE v LIKE 'v%'").await;
    assert!(full.contains("full scan"), "{full}");

    assert_eq!(
        ids(&c, "SELECT id FROM t WHERE n > 195").await,
        vec![196, 197, 198, 199, 200]
    );
    assert_eq!(
        ids(&c, "SELECT id FROM t WHERE v = 'v3' AND n < 40").await,
        vec![3, 13, 23, 33]
    );

    // A prepared point update of an indexed column moves its entry.
    let update = c
        .prepare("UPDATE t SET v = $1 WHERE id = $2")
        .await
        .unwrap();
    for id in [3, 13] {
        c.execute(&update, &[&"moved", &id]).await.unwrap();
    }
    assert_eq!(
        ids(&c, "SELECT id FROM t WHERE v = 'moved'").await,
        vec![3, 13]
    );
    assert_eq!(
        ids(&c, "SELECT id FROM t WHERE v = 'v3' AND n < 40").await,
        vec![23, 33]
    );
    // And a prepared insert writes one.
    let insert = c
        .prepare("INSERT INTO t VALUES ($1, $2, $3)")
        .await
        .unwrap();
    c.execute(&insert, &[&1000i32, &"moved", &0i32])
        .await
        .unwrap();
    assert_eq!(
        ids(&c, "SELECT id FROM t WHERE v = 'moved'").await,
        vec![3, 13, 1000]
    );
}

/// Two transactions insert one email under two ids: one commits, the
/// other fails — 40001 when both wrote before either committed
/// (SERIALIZABLE, REPEATABLE READ), 23505 when the second writer waits
/// for the first's row lock and then sees its row (READ COMMITTED, as in
/// PostgreSQL). Either way one row holds the email.
#[tokio::test]
async fn unique_holds_between_concurrent_transactions() {
    let node = TestNode::start().await;
    let a = node.connect().await;
    let b = node.connect().await;
    a.batch_execute("CREATE TABLE users (id int PRIMARY KEY, email text UNIQUE)")
        .await
        .unwrap();

    for (n, begin) in ["BEGIN", "BEGIN ISOLATION LEVEL REPEATABLE READ"]
        .iter()
        .enumerate()
    {
        let email = format!("x{n}@y");
        a.batch_execute(begin).await.unwrap();
        b.batch_execute(begin).await.unwrap();
        a.execute(
            "INSERT INTO users VALUES ($1, $2)",
            &[&(10 * n as i32), &email],
        )
        .await
        .unwrap();
        b.execute(
            "INSERT INTO users VALUES ($1, $2)",
            &[&(10 * n as i32 + 1), &email],
        )
        .await
        .unwrap();
        a.batch_execute("COMMIT").await.unwrap();
        let err = b.batch_execute("COMMIT").await.unwrap_err();
        assert_eq!(
            err.code(),
            Some(&SqlState::T_R_SERIALIZATION_FAILURE),
            "{err}"
        );
        let holders: i64 = a
            .query_one("SELECT count(*) FROM users WHERE email = $1", &[&email])
            .await
            .unwrap()
            .get(0);
        assert_eq!(holders, 1, "{begin}");
        // Retried, the second transaction meets the first's row.
        let err = b
            .execute(
                "INSERT INTO users VALUES ($1, $2)",
                &[&(10 * n as i32 + 1), &email],
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION), "{err}");
    }

    // READ COMMITTED: the second insert waits for the first block.
    a.batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED; INSERT INTO users VALUES (100, 'rc@y')")
        .await
        .unwrap();
    b.batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED")
        .await
        .unwrap();
    let waiter = tokio::spawn(async move {
        let inserted = b
            .execute("INSERT INTO users VALUES (101, 'rc@y')", &[])
            .await;
        (inserted, b)
    });
    assert!(
        still_waiting(&waiter).await,
        "the second writer did not wait"
    );
    a.batch_execute("COMMIT").await.unwrap();
    let (inserted, b) = waiter.await.unwrap();
    let err = inserted.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION), "{err}");
    assert!(
        err.as_db_error()
            .and_then(|e| e.detail())
            .is_some_and(|d| d.contains("(email)=(rc@y)")),
        "{err:?}"
    );
    b.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(
        ids(&a, "SELECT id FROM users WHERE email = 'rc@y'").await,
        vec![100]
    );
}

/// Two READ COMMITTED upserts of one new key: the second waits for the
/// first's row lock, runs again, meets the committed row and updates it —
/// PostgreSQL's atomic insert-or-update. Nobody fails.
#[tokio::test]
async fn concurrent_upserts_wait_and_update() {
    let node = TestNode::start().await;
    let a = node.connect().await;
    let b = node.connect().await;
    a.batch_execute("CREATE TABLE counters (k text PRIMARY KEY, n integer NOT NULL)")
        .await
        .unwrap();
    let upsert = "INSERT INTO counters VALUES ('hits', 1)
                  ON CONFLICT (k) DO UPDATE SET n = counters.n + 1";
    a.batch_execute(&format!("BEGIN ISOLATION LEVEL READ COMMITTED; {upsert}"))
        .await
        .unwrap();
    b.batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED")
        .await
        .unwrap();
    let waiter = tokio::spawn(async move {
        let done = b.batch_execute(upsert).await;
        (done, b)
    });
    assert!(
        still_waiting(&waiter).await,
        "the second upsert did not wait"
    );
    a.batch_execute("COMMIT").await.unwrap();
    let (done, b) = waiter.await.unwrap();
    done.unwrap();
    b.batch_execute("COMMIT").await.unwrap();
    let n: i32 = a
        .query_one("SELECT n FROM counters WHERE k = 'hits'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
}
