//! The bank: 20 accounts spread over 10 ranges on three real `shoal`
//! processes; clients on every node move money between random accounts in
//! transactions (most of them touching two ranges, so they commit in two
//! phases) while a reader sums all balances again and again, and nodes are
//! killed with `kill -9` and restarted. The total never changes: every
//! sum that succeeds is the same, and so is the final one on every node.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use shoal_tests::chaos::workloads::move_money;
use shoal_tests::cluster::{TestCluster, try_connect};
use shoal_tests::eventually;
use tokio::sync::Mutex;

const ACCOUNTS: i32 = 20;
const INITIAL: i64 = 100;
const TOTAL: i64 = ACCOUNTS as i64 * INITIAL;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_total_never_changes_while_nodes_die() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let setup = cluster.nodes[0].connect().await;
    setup
        .batch_execute(&format!(
            "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint);
             INSERT INTO accounts SELECT n, {INITIAL} FROM generate_series(1, {ACCOUNTS}) AS g(n);
             ALTER TABLE accounts SPLIT AT VALUES (3), (5), (7), (9), (11), (13), (15), (17), (19);"
        ))
        .await
        .unwrap();
    cluster.wait_table_ranges(&setup, "accounts", 10).await;

    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let sums: Arc<Mutex<Vec<i64>>> = Arc::default();
    let mut tasks = Vec::new();
    for (i, node) in cluster.nodes.iter().enumerate() {
        let conn_str = node.conn_str();
        let (stop, committed) = (stop.clone(), committed.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(i as u64);
            while !stop.load(Ordering::SeqCst) {
                let Some(client) = try_connect(&conn_str).await else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                while !stop.load(Ordering::SeqCst) && !client.is_closed() {
                    let from = rng.gen_range(1..=ACCOUNTS);
                    let to = (from + rng.gen_range(1..ACCOUNTS) - 1) % ACCOUNTS + 1;
                    if move_money(&client, from, to, rng.gen_range(1..=20))
                        .await
                        .is_ok()
                    {
                        committed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }));
    }
    for node in &cluster.nodes {
        let conn_str = node.conn_str();
        let (stop, sums) = (stop.clone(), sums.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let Some(client) = try_connect(&conn_str).await else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                while !stop.load(Ordering::SeqCst) && !client.is_closed() {
                    if let Ok(row) = client
                        .query_one("SELECT sum(balance)::bigint, count(*) FROM accounts", &[])
                        .await
                    {
                        let (sum, count): (i64, i64) = (row.get(0), row.get(1));
                        assert_eq!(count, i64::from(ACCOUNTS), "an account vanished");
                        sums.lock().await.push(sum);
                    }
                }
            }
        }));
    }

    cluster.kill_and_restart_each(&[1, 2]).await;
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.unwrap();
    }

    let sums = sums.lock().await.clone();
    assert!(sums.len() > 20, "only {} sums read", sums.len());
    let wrong: Vec<&i64> = sums.iter().filter(|&&s| s != TOTAL).collect();
    assert!(wrong.is_empty(), "sums other than {TOTAL}: {wrong:?}");
    let transfers = committed.load(Ordering::SeqCst);
    eprintln!("{transfers} transfers committed, {} sums read", sums.len());
    assert!(transfers > 20, "only {transfers} transfers committed");
    for node in &cluster.nodes {
        let client = node.connect().await;
        eventually(Duration::from_secs(30), "the final total", || async {
            client
                .query_one("SELECT sum(balance)::bigint FROM accounts", &[])
                .await
                .is_ok_and(|row| row.get::<_, i64>(0) == TOTAL)
        })
        .await;
    }
}
