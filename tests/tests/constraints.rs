//! CHECK and FOREIGN KEY constraints through a real driver
//! (tokio-postgres): prepared statements, and transactions racing on the
//! two ends of one reference.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use shoal_tests::TestNode;

async fn count(client: &Client, query: &str) -> i64 {
    client.query_one(query, &[]).await.unwrap().get(0)
}

/// Prepared writes (which have a fast path for plain tables) meet checks
/// and references like any other statement.
#[tokio::test]
async fn prepared_writes_keep_constraints() {
    let node = TestNode::start().await;
    let c = node.connect().await;
    c.batch_execute(
        "CREATE TABLE parents (id int PRIMARY KEY);
         CREATE TABLE kids (id int PRIMARY KEY, parent int REFERENCES parents,
                            age int CHECK (age >= 0));
         INSERT INTO parents VALUES (1);",
    )
    .await
    .unwrap();
    let insert = c
        .prepare("INSERT INTO kids VALUES ($1, $2, $3)")
        .await
        .unwrap();
    c.execute(&insert, &[&1i32, &1i32, &3i32]).await.unwrap();
    let err = c
        .execute(&insert, &[&2i32, &1i32, &-1i32])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::CHECK_VIOLATION), "{err}");
    assert!(
        err.as_db_error()
            .and_then(|e| e.detail())
            .is_some_and(|d| d.contains("Failing row contains (2, 1, -1)")),
        "{err:?}"
    );
    let err = c
        .execute(&insert, &[&2i32, &7i32, &1i32])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::FOREIGN_KEY_VIOLATION), "{err}");

    let update = c
        .prepare("UPDATE kids SET age = $1 WHERE id = $2")
        .await
        .unwrap();
    let err = c.execute(&update, &[&-5i32, &1i32]).await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::CHECK_VIOLATION), "{err}");
    assert_eq!(c.execute(&update, &[&4i32, &1i32]).await.unwrap(), 1);

    let delete = c
        .prepare("DELETE FROM parents WHERE id = $1")
        .await
        .unwrap();
    let err = c.execute(&delete, &[&1i32]).await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::FOREIGN_KEY_VIOLATION), "{err}");
    assert_eq!(count(&c, "SELECT count(*) FROM parents").await, 1);
}

/// The rows whose parent is missing: never any, whatever commits.
async fn orphans(client: &Client) -> i64 {
    count(
        client,
        "SELECT count(*) FROM kids WHERE parent IS NOT NULL
           AND parent NOT IN (SELECT id FROM parents)",
    )
    .await
}

/// A child inserted while its parent is deleted, in either order, under
/// each isolation level: at most one of the two commits, and no child is
/// ever left pointing at nothing.
#[tokio::test]
async fn racing_child_insert_and_parent_delete_leave_no_orphan() {
    let node = TestNode::start().await;
    let setup = node.connect().await;
    setup
        .batch_execute(
            "CREATE TABLE parents (id int PRIMARY KEY);
             CREATE TABLE kids (id int PRIMARY KEY, parent int REFERENCES parents);",
        )
        .await
        .unwrap();
    let mut round = 0;
    for isolation in ["SERIALIZABLE", "REPEATABLE READ", "READ COMMITTED"] {
        for child_first in [true, false] {
            round += 1;
            setup
                .execute("INSERT INTO parents VALUES ($1)", &[&round])
                .await
                .unwrap();
            let a = node.connect().await;
            let b = node.connect().await;
            let begin = format!("BEGIN ISOLATION LEVEL {isolation}");
            a.batch_execute(&begin).await.unwrap();
            b.batch_execute(&begin).await.unwrap();
            let insert = format!("INSERT INTO kids VALUES ({round}, {round})");
            let delete = format!("DELETE FROM parents WHERE id = {round}");
            let (first, second) = if child_first {
                (insert, delete)
            } else {
                (delete, insert)
            };
            // The first writer's statement succeeds; the second may wait
            // for it, so it runs on its own task.
            a.batch_execute(&first).await.unwrap();
            let waiter = tokio::spawn(async move {
                let done = b.batch_execute(&second).await;
                let committed = match done {
                    Ok(()) => b.batch_execute("COMMIT").await,
                    Err(e) => {
                        let _ = b.batch_execute("ROLLBACK").await;
                        Err(e)
                    }
                };
                committed.err().and_then(|e| e.code().cloned())
            });
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let a_failed = a.batch_execute("COMMIT").await.is_err();
            let b_error = waiter.await.unwrap();
            assert!(
                a_failed || b_error.is_some(),
                "{isolation}, child first {child_first}: both committed"
            );
            if let Some(code) = &b_error {
                assert!(
                    *code == SqlState::FOREIGN_KEY_VIOLATION
                        || *code == SqlState::T_R_SERIALIZATION_FAILURE,
                    "{isolation}, child first {child_first}: {code:?}"
                );
            }
            assert_eq!(
                orphans(&setup).await,
                0,
                "{isolation}, child first {child_first}"
            );
        }
    }
}

/// Catalog arrays reach a binary-format driver as arrays: `conkey`
/// (`int2[]`), `indkey` (`int2vector`), and an `array_agg` of text.
#[tokio::test]
async fn catalog_arrays_in_binary_results() {
    let node = TestNode::start().await;
    let c = node.connect().await;
    c.batch_execute("CREATE TABLE pairs (a int, b text, c int, PRIMARY KEY (c, a))")
        .await
        .unwrap();
    let row = c
        .query_one(
            "SELECT conkey FROM pg_constraint WHERE conrelid = 'pairs'::regclass",
            &[],
        )
        .await
        .unwrap();
    let conkey: Vec<i16> = row.get(0);
    assert_eq!(conkey, vec![3, 1]);
    let row = c
        .query_one(
            "SELECT array_agg(attname ORDER BY attnum) FROM pg_attribute
              WHERE attrelid = 'pairs'::regclass",
            &[],
        )
        .await
        .unwrap();
    let names: Vec<String> = row.get(0);
    assert_eq!(names, vec!["a", "b", "c"]);
    let messages = c
        .simple_query("SELECT indkey FROM pg_index WHERE indrelid = 'pairs'::regclass")
        .await
        .unwrap();
    let text = messages.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    });
    assert_eq!(text.as_deref(), Some("3 1"));
}
