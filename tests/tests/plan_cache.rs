//! Prepared queries keep their optimized plan (`crates/sql/src/plan_cache.rs`):
//! every execution of a kept plan must answer as planning afresh would —
//! with new parameters, new data, after DDL, under another `search_path`,
//! inside a transaction with its own writes, and with functions whose
//! value changes between executions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use shoal_tests::TestNode;
use tokio_postgres::Client;
use tokio_postgres::SimpleQueryMessage;

/// The rows of a simple (unprepared, planned afresh) query, as text.
async fn fresh(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    client
        .simple_query(sql)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect()
}

async fn setup(client: &Client) {
    client
        .batch_execute(
            "CREATE TABLE t (id integer PRIMARY KEY, k integer, c text);
             INSERT INTO t SELECT i, i % 7, 'c' || (i % 13) FROM generate_series(1, 300) AS i;",
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn kept_plans_answer_like_fresh_plans() {
    let node = TestNode::start().await;
    let client = node.connect().await;
    setup(&client).await;
    // sysbench's range queries, and a join and a subquery.
    let queries = [
        "SELECT c FROM t WHERE id BETWEEN {a} AND {b}",
        "SELECT SUM(k) FROM t WHERE id BETWEEN {a} AND {b}",
        "SELECT c FROM t WHERE id BETWEEN {a} AND {b} ORDER BY c",
        "SELECT DISTINCT c FROM t WHERE id BETWEEN {a} AND {b} ORDER BY c",
        "SELECT x.id, y.c FROM t x JOIN t y ON y.id = x.id + 1 WHERE x.id BETWEEN {a} AND {b}",
        "SELECT id FROM t WHERE k = (SELECT max(k) FROM t WHERE id BETWEEN {a} AND {b}) AND id < {b}",
    ];
    for q in queries {
        let prepared_sql = q.replace("{a}", "$1").replace("{b}", "$2");
        let stmt = client.prepare(&prepared_sql).await.unwrap();
        for (a, b) in [(1, 100), (50, 60), (290, 400), (7, 7), (10, 5)] {
            let rows = client.query(&stmt, &[&a, &b]).await.unwrap();
            let kept: Vec<Vec<Option<String>>> = rows
                .iter()
                .map(|r| {
                    (0..r.len())
                        .map(|i| match *r.columns()[i].type_() {
                            tokio_postgres::types::Type::TEXT => r.get::<_, Option<String>>(i),
                            tokio_postgres::types::Type::INT8 => {
                                r.get::<_, Option<i64>>(i).map(|v| v.to_string())
                            }
                            _ => r.get::<_, Option<i32>>(i).map(|v| v.to_string()),
                        })
                        .collect()
                })
                .collect();
            let literal = q
                .replace("{a}", &a.to_string())
                .replace("{b}", &b.to_string());
            let mut expected = fresh(&client, &literal).await;
            let mut kept = kept;
            // Only the ORDER BY queries promise an order.
            if !q.contains("ORDER BY") {
                expected.sort();
                kept.sort();
            }
            assert_eq!(kept, expected, "{literal}");
        }
    }
}

#[tokio::test]
async fn kept_plans_see_new_data_ddl_and_search_path() {
    let node = TestNode::start().await;
    let client = node.connect().await;
    let other = node.connect().await;
    setup(&client).await;
    let stmt = client
        .prepare("SELECT c FROM t WHERE id BETWEEN $1 AND $2 ORDER BY id")
        .await
        .unwrap();
    let texts = |rows: Vec<tokio_postgres::Row>| {
        rows.iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        texts(client.query(&stmt, &[&1, &2]).await.unwrap()),
        ["c1", "c2"]
    );

    // Another session's committed write: the next execution reads on a
    // new snapshot.
    other
        .execute("UPDATE t SET c = 'changed' WHERE id = 2", &[])
        .await
        .unwrap();
    assert_eq!(
        texts(client.query(&stmt, &[&1, &2]).await.unwrap()),
        ["c1", "changed"]
    );

    // Own writes inside a transaction block.
    client.batch_execute("BEGIN").await.unwrap();
    client
        .execute("INSERT INTO t VALUES (0, 0, 'own')", &[])
        .await
        .unwrap();
    assert_eq!(
        texts(client.query(&stmt, &[&0, &1]).await.unwrap()),
        ["own", "c1"]
    );
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(texts(client.query(&stmt, &[&0, &1]).await.unwrap()), ["c1"]);

    // The table dropped and made again under the same name.
    other
        .batch_execute(
            "DROP TABLE t; CREATE TABLE t (id integer PRIMARY KEY, k integer, c text);
             INSERT INTO t VALUES (1, 1, 'new one'), (2, 2, 'new two');",
        )
        .await
        .unwrap();
    assert_eq!(
        texts(client.query(&stmt, &[&1, &2]).await.unwrap()),
        ["new one", "new two"]
    );

    // A renamed column: planning afresh finds no `c` (42703), and so must
    // the kept plan's next execution.
    other
        .batch_execute("ALTER TABLE t RENAME COLUMN c TO d")
        .await
        .unwrap();
    let err = client.query(&stmt, &[&1, &2]).await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::UNDEFINED_COLUMN),
        "{err}"
    );
    other
        .batch_execute("ALTER TABLE t RENAME COLUMN d TO c")
        .await
        .unwrap();
    assert_eq!(
        texts(client.query(&stmt, &[&1, &2]).await.unwrap()),
        ["new one", "new two"]
    );

    // A table of the same name earlier on the search path.
    client
        .batch_execute(
            "CREATE SCHEMA s2; CREATE TABLE s2.t (id integer PRIMARY KEY, k integer, c text);
             INSERT INTO s2.t VALUES (1, 1, 's2 one');
             SET search_path = s2, public;",
        )
        .await
        .unwrap();
    assert_eq!(
        texts(client.query(&stmt, &[&1, &2]).await.unwrap()),
        ["s2 one"]
    );
    client
        .batch_execute("SET search_path = public")
        .await
        .unwrap();
    assert_eq!(
        texts(client.query(&stmt, &[&1, &2]).await.unwrap()),
        ["new one", "new two"]
    );
}

#[tokio::test]
async fn functions_that_change_are_not_frozen() {
    let node = TestNode::start().await;
    let client = node.connect().await;
    setup(&client).await;
    let stmt = client
        .prepare("SELECT now()::text, c FROM t WHERE id BETWEEN $1 AND $2")
        .await
        .unwrap();
    let first: String = client.query_one(&stmt, &[&1, &1]).await.unwrap().get(0);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let second: String = client.query_one(&stmt, &[&1, &1]).await.unwrap().get(0);
    assert_ne!(first, second, "now() is the time of each transaction");

    let seq = client.batch_execute("CREATE SEQUENCE s").await.map(|_| ());
    seq.unwrap();
    let stmt = client
        .prepare("SELECT nextval('s'), c FROM t WHERE id BETWEEN $1 AND $2")
        .await
        .unwrap();
    let a: i64 = client.query_one(&stmt, &[&1, &1]).await.unwrap().get(0);
    let b: i64 = client.query_one(&stmt, &[&1, &1]).await.unwrap().get(0);
    assert_eq!((a, b), (1, 2));
}
