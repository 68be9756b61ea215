//! A commit the client saw acknowledged survives `kill -9` right after.

use shoal_tests::TestNode;

#[tokio::test]
async fn acknowledged_commits_survive_kill_9() {
    let mut node = TestNode::start().await;
    let c = node.connect().await;
    c.batch_execute("CREATE TABLE ledger (id integer PRIMARY KEY, note text, amount bigint)")
        .await
        .unwrap();
    let insert = c
        .prepare("INSERT INTO ledger VALUES ($1, $2, $3)")
        .await
        .unwrap();
    let mut acked = Vec::new();
    for i in 0..300i32 {
        c.execute(&insert, &[&i, &format!("row {i}"), &(i as i64 * 7)])
            .await
            .unwrap();
        acked.push(i);
    }
    // A multi-statement transaction block, committed.
    c.batch_execute("BEGIN; INSERT INTO ledger VALUES (1000, 'txn', 1); UPDATE ledger SET amount = -1 WHERE id = 0; COMMIT")
        .await
        .unwrap();
    // An open, uncommitted block must vanish.
    c.batch_execute("BEGIN; INSERT INTO ledger VALUES (2000, 'uncommitted', 1)")
        .await
        .unwrap();
    node.kill9();
    drop(c);

    node.restart().await;
    let c = node.connect().await;
    let rows = c
        .query("SELECT id, note, amount FROM ledger ORDER BY id", &[])
        .await
        .unwrap();
    let ids: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    let mut expected = acked.clone();
    expected.push(1000);
    assert_eq!(ids, expected);
    assert_eq!(rows[0].get::<_, i64>(2), -1);
    assert_eq!(rows[5].get::<_, &str>(1), "row 5");
    // The schema came back too, and the table still takes writes.
    c.execute("INSERT INTO ledger VALUES (3000, 'after', 0)", &[])
        .await
        .unwrap();
    assert_eq!(
        c.query_one("SELECT count(*) FROM ledger", &[])
            .await
            .unwrap()
            .get::<_, i64>(0),
        302
    );
}

#[tokio::test]
async fn concurrent_writers_acked_rows_survive() {
    let mut node = TestNode::start().await;
    let c = node.connect().await;
    c.batch_execute("CREATE TABLE events (writer integer, seq integer, PRIMARY KEY (writer, seq))")
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for w in 0..8i32 {
        let client = node.connect().await;
        tasks.push(tokio::spawn(async move {
            let mut acked = 0;
            for s in 0..50i32 {
                client
                    .execute("INSERT INTO events VALUES ($1, $2)", &[&w, &s])
                    .await
                    .unwrap();
                acked += 1;
            }
            acked
        }));
    }
    let mut total = 0i64;
    for t in tasks {
        total += t.await.unwrap();
    }
    node.kill9();
    node.restart().await;
    let c = node.connect().await;
    let n: i64 = c
        .query_one("SELECT count(*) FROM events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, total);
}
