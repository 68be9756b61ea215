//! Advisory locks across three real `shoal` processes: sessions on
//! different nodes exclude each other; a holder's node killed with
//! `kill -9` frees its locks within the lease; fencing tokens strictly
//! increase with every acquisition.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use shoal_tests::TestNode;
use shoal_tests::cluster::TestCluster;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

async fn try_lock(c: &Client, key: i64) -> bool {
    c.query_one("SELECT pg_try_advisory_lock($1)", &[&key])
        .await
        .unwrap()
        .get(0)
}

async fn fence(c: &Client, key: i64) -> Option<i64> {
    c.query_one("SELECT shoal_lock_fence($1)", &[&key])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn advisory_locks_hold_across_nodes_and_die_with_their_node() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let a = cluster.nodes[0].connect().await;
    let b = cluster.nodes[1].connect().await;
    let c = cluster.nodes[2].connect().await;

    // Mutual exclusion across nodes, and tokens that grow.
    assert!(try_lock(&a, 7).await);
    let first = fence(&a, 7).await.expect("a holds 7");
    assert!(!try_lock(&b, 7).await);
    assert!(!try_lock(&c, 7).await);
    assert_eq!(fence(&b, 7).await, None);
    let unlocked: bool = a
        .query_one("SELECT pg_advisory_unlock(7)", &[])
        .await
        .unwrap()
        .get(0);
    assert!(unlocked);
    assert!(try_lock(&b, 7).await);
    let second = fence(&b, 7).await.expect("b holds 7");
    assert!(second > first, "{second} after {first}");

    // A waiting lock is granted once the holder lets go.
    let waiter = {
        let conn = cluster.nodes[2].conn_str();
        tokio::spawn(async move {
            let (c, driver) = tokio_postgres::connect(&conn, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(driver);
            c.execute("SELECT pg_advisory_lock(7)", &[]).await.unwrap();
            let token: Option<i64> = c
                .query_one("SELECT shoal_lock_fence(7)", &[])
                .await
                .unwrap()
                .get(0);
            c.execute("SELECT pg_advisory_unlock(7)", &[])
                .await
                .unwrap();
            token
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiter.is_finished(), "the waiter got a held lock");
    b.execute("SELECT pg_advisory_unlock(7)", &[])
        .await
        .unwrap();
    let third = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the waiter was never granted the lock")
        .unwrap()
        .expect("the waiter holds 7");
    assert!(third > second, "{third} after {second}");

    // lock_timeout bounds a wait: 55P03.
    assert!(try_lock(&a, 8).await);
    b.batch_execute("SET lock_timeout = '300ms'").await.unwrap();
    let started = Instant::now();
    let err = b
        .execute("SELECT pg_advisory_lock(8)", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::LOCK_NOT_AVAILABLE));
    assert!(started.elapsed() < Duration::from_secs(5));

    // The holder's node dies: its lock comes free within the lease (9 s),
    // and the next holder's token is larger still.
    let before_kill = fence(&a, 8).await.expect("a holds 8");
    cluster.nodes[0].kill9();
    let killed = Instant::now();
    let mut granted = false;
    while killed.elapsed() < Duration::from_secs(40) {
        if try_lock(&b, 8).await {
            granted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(granted, "the dead node's lock never came free");
    let after_kill = fence(&b, 8).await.expect("b holds 8");
    assert!(after_kill > before_kill);
    eprintln!(
        "lock of a killed node taken over after {:?}",
        killed.elapsed()
    );

    // A session that ends releases its locks at once.
    assert!(try_lock(&c, 9).await);
    drop(c);
    let mut freed = false;
    for _ in 0..50 {
        if try_lock(&b, 9).await {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(freed, "a closed session's lock stayed held");
}

/// Two sessions on different nodes each hold a lock and wait for the
/// other's — advisory locks, then row locks of `FOR UPDATE`: within a few
/// seconds exactly one gets 40P01, and once it rolls back the other gets
/// its lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlock_across_nodes_fails_one_session_with_40p01() {
    let cluster = TestCluster::start(3, &[]).await;
    let a = std::sync::Arc::new(cluster.nodes[0].connect().await);
    let b = std::sync::Arc::new(cluster.nodes[1].connect().await);
    deadlock_is_broken(&a, &b, "SELECT pg_advisory_xact_lock($1)").await;
    a.batch_execute(
        "CREATE TABLE items (k bigint PRIMARY KEY, v text);
         INSERT INTO items VALUES (1, 'one'), (2, 'two')",
    )
    .await
    .unwrap();
    deadlock_is_broken(&a, &b, "SELECT v FROM items WHERE k = $1 FOR UPDATE").await;
}

/// `a` locks key 1 and `b` key 2 with `lock` (taking the key as `$1`) in
/// blocks; then each waits for the other's key.
async fn deadlock_is_broken(a: &std::sync::Arc<Client>, b: &std::sync::Arc<Client>, lock: &str) {
    a.batch_execute("BEGIN").await.unwrap();
    b.batch_execute("BEGIN").await.unwrap();
    a.query(lock, &[&1_i64]).await.unwrap();
    b.query(lock, &[&2_i64]).await.unwrap();
    let wait_for = |client: std::sync::Arc<Client>, key: i64| {
        let lock = lock.to_string();
        tokio::spawn(async move { client.query(&lock, &[&key]).await.map(drop) })
    };
    let started = Instant::now();
    let mut a_waits = wait_for(a.clone(), 2);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut b_waits = wait_for(b.clone(), 1);

    // The first wait to end is the victim's.
    let (victim, survivor, survivor_wait, outcome) =
        tokio::time::timeout(Duration::from_secs(10), async {
            tokio::select! {
                outcome = &mut a_waits => (a.clone(), b.clone(), b_waits, outcome.unwrap()),
                outcome = &mut b_waits => (b.clone(), a.clone(), a_waits, outcome.unwrap()),
            }
        })
        .await
        .expect("the deadlock was not broken within 10 s");
    let err = outcome.expect_err("a wait that ends in a deadlock fails");
    assert_eq!(err.code(), Some(&SqlState::T_R_DEADLOCK_DETECTED), "{err}");
    let took = started.elapsed();
    eprintln!("{lock}: deadlock broken after {took:?}");
    assert!(took < Duration::from_secs(6), "took {took:?}");

    // The victim's transaction fails; rolling it back frees its lock.
    victim.batch_execute("ROLLBACK").await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), survivor_wait)
        .await
        .expect("the survivor got its lock")
        .unwrap()
        .unwrap();
    survivor.batch_execute("COMMIT").await.unwrap();
}

/// Waiters queue: a try-lock does not jump ahead of a session already
/// waiting, and shared lockers do not starve an exclusive waiter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_are_served_first_come_first() {
    let node = TestNode::start().await;
    let a = node.connect().await;
    let b = std::sync::Arc::new(node.connect().await);
    let d = node.connect().await;
    let wait_in = |client: std::sync::Arc<Client>, sql: &'static str| {
        tokio::spawn(async move { client.execute(sql, &[]).await.map(drop) })
    };
    let try_lock = |sql: &'static str| {
        let d = &d;
        async move { d.query_one(sql, &[]).await.unwrap().get::<_, bool>(0) }
    };

    a.execute("SELECT pg_advisory_lock(5)", &[]).await.unwrap();
    let b_waits = wait_in(b.clone(), "SELECT pg_advisory_lock(5)");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!try_lock("SELECT pg_try_advisory_lock(5)").await);
    a.execute("SELECT pg_advisory_unlock(5)", &[])
        .await
        .unwrap();
    // Free of holders, but b waits ahead of d.
    assert!(!try_lock("SELECT pg_try_advisory_lock(5)").await);
    tokio::time::timeout(Duration::from_secs(3), b_waits)
        .await
        .expect("the waiter got the lock")
        .unwrap()
        .unwrap();
    assert!(!try_lock("SELECT pg_try_advisory_lock(5)").await);

    a.execute("SELECT pg_advisory_lock_shared(6)", &[])
        .await
        .unwrap();
    let b_waits = wait_in(b.clone(), "SELECT pg_advisory_lock(6)");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A shared lock would be compatible with the holder, not with the
    // exclusive waiter ahead.
    assert!(!try_lock("SELECT pg_try_advisory_lock_shared(6)").await);
    a.execute("SELECT pg_advisory_unlock_shared(6)", &[])
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(3), b_waits)
        .await
        .expect("the exclusive waiter got the lock")
        .unwrap()
        .unwrap();
}

/// A wait for a lock, ending with its session and outcome.
type LockWait = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = (std::sync::Arc<Client>, Result<(), tokio_postgres::Error>),
            > + Send,
    >,
>;

/// A cycle that closes only through queue order: `c` holds 10 shared,
/// `b` holds 11; `a` queues for 10 exclusive (behind `c`), `b` queues for
/// 10 shared (compatible with `c`, but behind `a`), and `c` waits for 11.
/// One of them gets 40P01; once each session in turn releases its locks,
/// every other wait ends with its lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlock_closed_by_queue_order_is_found() {
    use std::sync::Arc;
    let node = TestNode::start().await;
    let a = Arc::new(node.connect().await);
    let b = Arc::new(node.connect().await);
    let c = Arc::new(node.connect().await);
    c.execute("SELECT pg_advisory_lock_shared(10)", &[])
        .await
        .unwrap();
    b.execute("SELECT pg_advisory_lock(11)", &[]).await.unwrap();
    let wait_in = |client: &Arc<Client>, sql: &'static str| -> LockWait {
        let session = client.clone();
        let handle = tokio::spawn(async move { session.execute(sql, &[]).await.map(drop) });
        let client = client.clone();
        Box::pin(async move { (client, handle.await.unwrap()) })
    };
    let started = Instant::now();
    let mut waits = vec![wait_in(&a, "SELECT pg_advisory_lock(10)")];
    tokio::time::sleep(Duration::from_millis(300)).await;
    waits.push(wait_in(&b, "SELECT pg_advisory_lock_shared(10)"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    waits.push(wait_in(&c, "SELECT pg_advisory_lock(11)"));

    let mut victims = 0;
    while !waits.is_empty() {
        let ((client, outcome), _, rest) =
            tokio::time::timeout(Duration::from_secs(10), futures::future::select_all(waits))
                .await
                .expect("every wait ended within 10 s of the previous one");
        if let Err(err) = outcome {
            assert_eq!(err.code(), Some(&SqlState::T_R_DEADLOCK_DETECTED), "{err}");
            victims += 1;
            let took = started.elapsed();
            eprintln!("queue-order deadlock broken after {took:?}");
            assert!(took < Duration::from_secs(6), "took {took:?}");
        }
        // Whatever the session holds now goes, so the next waiter moves.
        client
            .execute("SELECT pg_advisory_unlock_all()", &[])
            .await
            .unwrap();
        waits = rest;
    }
    assert_eq!(victims, 1, "exactly one session is the victim");
}
