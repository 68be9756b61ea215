//! sqlx 0.8.6 (the Rust driver, PostgreSQL backend, tokio runtime) against
//! a Shoal node, unmodified: its migrator and its query API.
//!
//! The migrator is what sqlx users run at every service start. It takes a
//! session advisory lock named after the database (`pg_advisory_lock`), so
//! several instances starting at once apply each migration exactly once;
//! keeps its ledger in `_sqlx_migrations` (a BIGINT key, a BYTEA checksum,
//! a TIMESTAMPTZ default); runs each migration script — several statements
//! in one simple-protocol query — inside a transaction with its ledger row;
//! and refuses to go on when an applied migration's checksum changed.
//!
//! The migrations are the files in `tests/clients/sqlx_migrations/`.

#![allow(clippy::expect_used)] // a failed step is a test failure, reported by the panic

use std::path::{Path, PathBuf};

use shoal_tests::TestNode;
use sqlx::Row;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgPool, PgPoolOptions};

fn migrations_dir() -> PathBuf {
    shoal_datadriven::package_dir(env!("CARGO_MANIFEST_DIR")).join("clients/sqlx_migrations")
}

fn url(node: &TestNode) -> String {
    format!(
        "postgres://shoal@{}:{}/shoal",
        node.sql_addr.ip(),
        node.sql_addr.port()
    )
}

async fn pool(node: &TestNode) -> PgPool {
    PgPoolOptions::new()
        .max_connections(3)
        .connect(&url(node))
        .await
        .expect("sqlx connects")
}

async fn migrator(dir: &Path) -> Migrator {
    Migrator::new(dir).await.expect("migrations readable")
}

/// The SQLSTATE of a database error sqlx returned.
fn sqlstate(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => db.code().map(|c| c.to_string()).unwrap_or_default(),
        other => format!("not a database error: {other}"),
    }
}

#[tokio::test]
async fn sqlx_migrations_and_queries() {
    let node = TestNode::start().await;
    let (a, b) = (pool(&node).await, pool(&node).await);
    let m = migrator(&migrations_dir()).await;
    assert_eq!(m.iter().count(), 3);

    // Two service instances starting at once: the advisory lock orders
    // them, and the second finds every migration applied.
    let (ra, rb) = tokio::join!(m.run(&a), m.run(&b));
    ra.expect("first migrator");
    rb.expect("second migrator");
    let ledger = sqlx::query(
        "SELECT version, success, length(checksum) AS n, installed_on <= now() AS past \
         FROM _sqlx_migrations ORDER BY version",
    )
    .fetch_all(&a)
    .await
    .expect("ledger");
    let versions: Vec<i64> = ledger.iter().map(|r| r.get("version")).collect();
    assert_eq!(versions, [20260101000000, 20260102000000, 20260103000000]);
    for row in &ledger {
        assert!(row.get::<bool, _>("success"));
        assert_eq!(row.get::<i32, _>("n"), 48, "a SHA-384 checksum");
        assert!(row.get::<bool, _>("past"));
    }
    // The lock was released: another session takes it at once.
    let free: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(1)")
        .fetch_one(&b)
        .await
        .expect("try lock");
    assert!(free);

    // A restart applies nothing new.
    m.run(&a).await.expect("rerun");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&a)
        .await
        .expect("count");
    assert_eq!(count, 3);

    // An applied migration edited afterwards is refused.
    let edited = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(migrations_dir()).expect("dir") {
        let path = entry.expect("entry").path();
        let mut text = std::fs::read_to_string(&path).expect("read");
        if path.to_string_lossy().contains("transfers") {
            text.push_str("-- edited\n");
        }
        std::fs::write(edited.path().join(path.file_name().expect("name")), text).expect("write");
    }
    match migrator(edited.path()).await.run(&a).await {
        Err(MigrateError::VersionMismatch(v)) => assert_eq!(v, 20260102000000),
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }

    // Queries with bound parameters: insert and get the key back.
    let alice: i64 =
        sqlx::query_scalar("INSERT INTO accounts (email, balance) VALUES ($1, $2) RETURNING id")
            .bind("alice@example.com")
            .bind(100_i64)
            .fetch_one(&a)
            .await
            .expect("insert alice");
    let bob: i64 =
        sqlx::query_scalar("INSERT INTO accounts (email, profile) VALUES ($1, $2) RETURNING id")
            .bind("bob@example.com")
            .bind(serde_json::json!({"role": "customer", "tags": ["new"]}))
            .fetch_one(&a)
            .await
            .expect("insert bob");

    // A transfer in a transaction.
    let mut tx = a.begin().await.expect("begin");
    sqlx::query("UPDATE accounts SET balance = balance - $1 WHERE id = $2")
        .bind(30_i64)
        .bind(alice)
        .execute(&mut *tx)
        .await
        .expect("debit");
    sqlx::query("UPDATE accounts SET balance = balance + $1 WHERE id = $2")
        .bind(30_i64)
        .bind(bob)
        .execute(&mut *tx)
        .await
        .expect("credit");
    sqlx::query("INSERT INTO transfers (from_id, to_id, amount) VALUES ($1, $2, $3)")
        .bind(alice)
        .bind(bob)
        .bind(30_i64)
        .execute(&mut *tx)
        .await
        .expect("ledger row");
    tx.commit().await.expect("commit");

    // One that overdraws fails on the CHECK and rolls back.
    let mut tx = a.begin().await.expect("begin");
    let err = sqlx::query("UPDATE accounts SET balance = balance - $1 WHERE id = $2")
        .bind(1000_i64)
        .bind(alice)
        .execute(&mut *tx)
        .await
        .expect_err("overdraft");
    assert_eq!(sqlstate(&err), "23514");
    tx.rollback().await.expect("rollback");

    let rows: Vec<(String, i64, Option<serde_json::Value>)> =
        sqlx::query_as("SELECT email, balance, profile FROM accounts ORDER BY id")
            .fetch_all(&b)
            .await
            .expect("accounts");
    assert_eq!(
        rows.iter()
            .map(|(e, bal, _)| (e.as_str(), *bal))
            .collect::<Vec<_>>(),
        [
            ("treasury@example.com", 1000),
            ("alice@example.com", 70),
            ("bob@example.com", 30)
        ]
    );
    assert_eq!(
        rows[0].2,
        Some(serde_json::json!({"role": "treasury"})),
        "the migration's jsonb"
    );
    assert_eq!(
        rows[2].2.as_ref().map(|p| p["tags"][0].clone()),
        Some("new".into())
    );

    let created: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT created_at FROM accounts WHERE id = $1")
            .bind(alice)
            .fetch_one(&b)
            .await
            .expect("created_at");
    assert!(created <= chrono::Utc::now());

    // The database's errors, by SQLSTATE.
    let dup = sqlx::query("INSERT INTO accounts (email) VALUES ($1)")
        .bind("alice@example.com")
        .execute(&a)
        .await
        .expect_err("duplicate email");
    assert_eq!(sqlstate(&dup), "23505");
    let orphan = sqlx::query("INSERT INTO transfers (from_id, to_id, amount) VALUES ($1, $1, 5)")
        .bind(9999_i64)
        .execute(&a)
        .await
        .expect_err("unknown account");
    assert_eq!(sqlstate(&orphan), "23503");

    // The index the migration made serves the lookup.
    let sent: i64 = sqlx::query_scalar("SELECT count(*) FROM transfers WHERE from_id = $1")
        .bind(alice)
        .fetch_one(&b)
        .await
        .expect("by index");
    assert_eq!(sent, 1);
    println!("sqlx 0.8.6: ok");
}
