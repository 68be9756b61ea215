//! Serializability, checked Elle's way: clients on three real `shoal`
//! processes run short SERIALIZABLE transactions that append unique values
//! to lists and read lists back, over keys spread across four ranges,
//! while nodes are killed (`kill -9`) and restarted. The recorded history
//! goes through the list-append checker (`shoal_tests::list_append`, itself
//! tested on histories with each anomaly): it must show no G0, G1a, G1b,
//! G1c, G-single or G2, and no key's history may fork. The same workload
//! under REPEATABLE READ may show G2 (write skew, which snapshot isolation
//! allows) and nothing else.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use shoal_tests::cluster::{TestCluster, try_connect};
use shoal_tests::list_append::{self, Anomaly, Op, Outcome, Txn};
use tokio::sync::Mutex;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

const KEYS: i32 = 12;
const CLIENTS_PER_NODE: usize = 2;

fn parse(list: &str) -> Vec<u32> {
    list.split_whitespace()
        .map(|v| v.parse().expect("a list holds numbers"))
        .collect()
}

/// Runs `ops` (reads with `list: None`, filled in as they answer) in one
/// transaction on `table`, begun with `begin`, and says how it ended.
async fn run(client: &Client, table: &str, begin: &str, ops: &mut [Op]) -> Outcome {
    if client.batch_execute(begin).await.is_err() {
        return Outcome::Aborted;
    }
    for op in ops.iter_mut() {
        let done = match op {
            Op::Append { key, value } => client
                .execute(
                    &format!("UPDATE {table} SET v = v || $2 WHERE k = $1"),
                    &[&i32::try_from(*key).unwrap(), &format!(" {value}")],
                )
                .await
                .map(drop),
            Op::Read { key, list } => client
                .query_one(
                    &format!("SELECT v FROM {table} WHERE k = $1"),
                    &[&i32::try_from(*key).unwrap()],
                )
                .await
                .map(|row| *list = Some(parse(row.get(0)))),
        };
        if done.is_err() {
            // Writes are buffered until COMMIT: a transaction that never
            // reached it committed nothing, connection or not.
            let _ = client.batch_execute("ROLLBACK").await;
            return Outcome::Aborted;
        }
    }
    match client.batch_execute("COMMIT").await {
        Ok(()) => Outcome::Committed,
        Err(e) if e.code() == Some(&SqlState::T_R_SERIALIZATION_FAILURE) => Outcome::Aborted,
        // A broken connection or an ambiguous commit: nobody knows.
        Err(_) => Outcome::Unknown,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_append_histories_are_serializable_while_nodes_die() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let history = workload(&mut cluster, "lists", "BEGIN").await;
    let anomalies = list_append::check(&history);
    assert!(
        anomalies.is_empty(),
        "{} anomalies, the first: {:?}",
        anomalies.len(),
        &anomalies[..anomalies.len().min(5)]
    );

    let history = workload(
        &mut cluster,
        "lists_rr",
        "BEGIN ISOLATION LEVEL REPEATABLE READ",
    )
    .await;
    let anomalies = list_append::check(&history);
    eprintln!("REPEATABLE READ: {} G2 cycles", anomalies.len());
    assert!(
        anomalies.iter().all(|a| matches!(a, Anomaly::G2(_))),
        "snapshot isolation allows G2 only: {:?}",
        &anomalies[..anomalies.len().min(5)]
    );
}

/// The workload on a new table `table` in four ranges, transactions begun
/// with `begin`, nodes 2 and 3 killed and restarted meanwhile, then a final
/// read of every key; returns the history.
async fn workload(cluster: &mut TestCluster, table: &'static str, begin: &'static str) -> Vec<Txn> {
    let setup = cluster.nodes[0].connect().await;
    setup
        .batch_execute(&format!(
            "CREATE TABLE {table} (k int PRIMARY KEY, v text NOT NULL);
             INSERT INTO {table} SELECT n, '' FROM generate_series(0, {}) AS g(n);
             ALTER TABLE {table} SPLIT AT VALUES (3), (6), (9);",
            KEYS - 1
        ))
        .await
        .unwrap();
    cluster.wait_table_ranges(&setup, table, 4).await;

    let stop = Arc::new(AtomicBool::new(false));
    let next_value = Arc::new(AtomicU32::new(1));
    let history: Arc<Mutex<Vec<Txn>>> = Arc::default();
    let mut tasks = Vec::new();
    for (i, node) in cluster.nodes.iter().enumerate() {
        for c in 0..CLIENTS_PER_NODE {
            let conn_str = node.conn_str();
            let (stop, next_value, history) = (stop.clone(), next_value.clone(), history.clone());
            tasks.push(tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64((i * 16 + c) as u64);
                while !stop.load(Ordering::SeqCst) {
                    let Some(client) = try_connect(&conn_str).await else {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    };
                    while !stop.load(Ordering::SeqCst) && !client.is_closed() {
                        let mut ops: Vec<Op> = (0..rng.gen_range(1..=4))
                            .map(|_| {
                                let key = rng.gen_range(0..KEYS as u32);
                                if rng.gen_bool(0.5) {
                                    Op::Read { key, list: None }
                                } else {
                                    let value = next_value.fetch_add(1, Ordering::SeqCst);
                                    Op::Append { key, value }
                                }
                            })
                            .collect();
                        let outcome = run(&client, table, begin, &mut ops).await;
                        history.lock().await.push(Txn { ops, outcome });
                    }
                }
            }));
        }
    }

    cluster.kill_and_restart_each(&[1, 2]).await;
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.unwrap();
    }

    // A final read of every key, so every committed append is ordered.
    let client = cluster.nodes[0].connect().await;
    let mut history = history.lock().await.clone();
    for attempt in 0.. {
        let mut ops: Vec<Op> = (0..KEYS as u32)
            .map(|key| Op::Read { key, list: None })
            .collect();
        let outcome = run(&client, table, begin, &mut ops).await;
        history.push(Txn { ops, outcome });
        if outcome == Outcome::Committed {
            break;
        }
        assert!(attempt < 30, "no final read in 30 attempts");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    let count = |o: Outcome| history.iter().filter(|t| t.outcome == o).count();
    let (committed, aborted, unknown) = (
        count(Outcome::Committed),
        count(Outcome::Aborted),
        count(Outcome::Unknown),
    );
    eprintln!("{begin}: {committed} committed, {aborted} aborted, {unknown} unknown");
    assert!(committed > 100, "only {committed} transactions committed");
    history
}
