//! Real client stacks, unmodified, against a Shoal node: each runs a
//! program of its own (`tests/clients/`) that exits non-zero on any failed
//! check and names the client versions it ran on its last line.
//!
//! The Python clients live in the virtual environment `make deps` builds
//! from `tests/clients/requirements.txt` (`SHOAL_PYTHON` names another
//! interpreter), the Node.js ones in the modules directory it fills
//! (`SHOAL_NODE_MODULES`).

#![allow(clippy::expect_used)] // a missing client is a test failure, reported by the panic

use std::path::PathBuf;
use std::process::Command;

use shoal_tests::TestNode;

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("SHOAL_PYTHON") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").expect("HOME is set");
    PathBuf::from(home).join(".cache/shoal/venv/bin/python")
}

fn client_program(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("clients")
        .join(name)
}

/// Where `make deps` installs the Node.js clients (`SHOAL_NODE_MODULES`
/// names another place).
fn node_modules() -> PathBuf {
    if let Some(p) = std::env::var_os("SHOAL_NODE_MODULES") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").expect("HOME is set");
    PathBuf::from(home).join(".cache/shoal/node/node_modules")
}

/// Runs a Python client program against `node`; its output.
fn run_python(node: &TestNode, program: &str) -> String {
    run(Command::new(python()), node, program)
}

/// Runs a client program with `command` against `node`; its output, or
/// a panic with it when the program fails.
fn run(mut command: Command, node: &TestNode, program: &str) -> String {
    let out = command
        .arg(client_program(program))
        .arg(node.sql_addr.ip().to_string())
        .arg(node.sql_addr.port().to_string())
        .output()
        .expect("the clients must be installed (make deps)");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{program} failed:\n{stdout}\n{stderr}"
    );
    stdout
}

/// SQLAlchemy 2 ORM over psycopg 3: create_all with SERIAL keys, UNIQUE,
/// foreign keys (ON DELETE CASCADE) and indexes; relationships and CRUD in
/// ORM sessions; constraint violations as the driver's typed errors;
/// reflection of columns, keys, foreign keys, unique constraints and
/// indexes; drop_all.
#[tokio::test]
async fn sqlalchemy_orm_over_psycopg() {
    let node = TestNode::start().await;
    let out = run_python(&node, "sqlalchemy_orm.py");
    assert!(
        out.contains("SQLAlchemy 2.0.58 over psycopg 3.2.13: ok"),
        "{out}"
    );
}

/// Django: `migrate` for contenttypes, auth and a small shop app (identity
/// keys, unique and indexed text with `varchar_pattern_ops`, foreign keys
/// declared `DEFERRABLE INITIALLY DEFERRED`, column type changes), then
/// ORM CRUD, joins, aggregates over `GROUP BY id`, atomic blocks, and the
/// database's unique and (deferred) foreign key errors.
#[tokio::test]
async fn django_migrate_and_orm() {
    let node = TestNode::start().await;
    let out = run_python(&node, "django_shop/run.py");
    assert!(
        out.contains("Django 5.1.15 over psycopg 3.2.13: ok"),
        "{out}"
    );
}

/// node-postgres: parameterized and named prepared statements (the
/// extended protocol), typed results, transactions, SQLSTATEs, a pool.
#[tokio::test]
async fn node_postgres() {
    let node = TestNode::start().await;
    let mut command = Command::new("node");
    command.env("NODE_PATH", node_modules());
    let out = run(command, &node, "node_pg/run.js");
    assert!(out.contains("node-postgres 8.23.1 on Node.js"), "{out}");
}
