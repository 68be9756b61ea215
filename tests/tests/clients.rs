//! Real client stacks, unmodified, against a Shoal node: each runs a
//! program of its own (`tests/clients/`) that exits non-zero on any failed
//! check and names the client versions it ran on its last line.
//!
//! The Python clients live in the virtual environment `make deps` builds
//! from `tests/clients/requirements.txt` (`SHOAL_PYTHON` names another
//! interpreter), the Node.js ones in the modules directory it fills
//! (`SHOAL_NODE_MODULES`); pgjdbc, a JDK, pgbench and sysbench are the
//! Debian packages it installs (`SHOAL_JDBC_JAR` names another pgjdbc jar).

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
    shoal_datadriven::package_dir(env!("CARGO_MANIFEST_DIR"))
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

/// Where Debian's `libpostgresql-jdbc-java` put pgjdbc, as its package
/// lists it (`SHOAL_JDBC_JAR` names another jar).
fn jdbc_jar() -> PathBuf {
    if let Some(p) = std::env::var_os("SHOAL_JDBC_JAR") {
        return PathBuf::from(p);
    }
    let listed = Command::new("dpkg")
        .args(["-L", "libpostgresql-jdbc-java"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    listed
        .lines()
        .find(|l| l.ends_with("/postgresql.jar"))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("postgresql.jar (not installed)"))
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

/// psycopg 3's `executemany` and `pipeline()` blocks: the statements sent
/// before one Sync are one transaction, as in PostgreSQL, and results
/// asked for with Flush arrive before it; `timedelta` parameters.
#[tokio::test]
async fn psycopg_batches_and_pipelines() {
    let node = TestNode::start().await;
    let out = run_python(&node, "psycopg_pipeline.py");
    assert!(out.contains("psycopg 3.2.13 pipelines: ok"), "{out}");
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

/// pgbench (`make deps` installs it with Debian's `postgresql` package):
/// `pgbench -i` — tables, data by COPY FROM STDIN (FREEZE), VACUUM,
/// primary keys added to the loaded tables — then a TPC-B-like run, its
/// serialization failures retried as pgbench does (`--max-tries`).
#[tokio::test]
async fn pgbench_init_and_run() {
    let node = TestNode::start().await;
    let pgbench = |args: &[&str]| {
        let out = Command::new("pgbench")
            .args(["-h", &node.sql_addr.ip().to_string()])
            .args(["-p", &node.sql_addr.port().to_string()])
            .args(["-U", "shoal"])
            .args(args)
            .arg("shoal")
            .output()
            .expect("pgbench must be installed (make deps installs Debian's postgresql)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "pgbench {args:?} failed:\n{text}");
        text
    };
    let init = pgbench(&["-i", "-s", "1"]);
    assert!(init.contains("creating primary keys..."), "{init}");
    let c = node.connect().await;
    for (table, rows) in [
        ("pgbench_accounts", 100_000i64),
        ("pgbench_branches", 1),
        ("pgbench_tellers", 10),
    ] {
        let count: i64 = c
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap_or_else(|e| panic!("count of {table}: {e}"))
            .get(0);
        assert_eq!(count, rows, "{table}");
    }
    let keys: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'p' AND conname LIKE 'pgbench_%'",
            &[],
        )
        .await
        .expect("keys")
        .get(0);
    assert_eq!(keys, 3);
    let run = pgbench(&["-c", "2", "-t", "20", "--max-tries=100"]);
    assert!(
        run.contains("number of transactions actually processed: 40/40"),
        "{run}"
    );
    assert!(run.contains("number of failed transactions: 0"), "{run}");
    let version = Command::new("pgbench")
        .arg("--version")
        .output()
        .expect("version");
    println!("{}", String::from_utf8_lossy(&version.stdout).trim());
}

/// pgjdbc, as a Java service uses it (`make deps` installs Debian's
/// `libpostgresql-jdbc-java` and `default-jdk-headless`): DatabaseMetaData
/// (tables, columns, primary keys, indexes, foreign keys) and
/// ResultSetMetaData; BIGSERIAL and SERIAL keys read back by RETURNING and
/// getGeneratedKeys; batches (plain, with keys, rewritten into multi-row
/// INSERTs; one implicit transaction up to Sync, skipped past an error);
/// parameters of the common Java types; a statement reused past
/// prepareThreshold (server-side named statements, binary results);
/// commit, rollback, savepoints, isolation levels, read-only transactions;
/// SQLSTATEs; update counts; cursors by fetch size.
#[tokio::test]
async fn jdbc() {
    let node = TestNode::start().await;
    let jar = jdbc_jar();
    assert!(
        jar.exists(),
        "pgjdbc must be installed (make deps installs Debian's libpostgresql-jdbc-java): no {}",
        jar.display()
    );
    let classes = tempfile::tempdir().expect("temp dir");
    let javac = Command::new("javac")
        .arg("-d")
        .arg(classes.path())
        .arg("-cp")
        .arg(&jar)
        .arg(client_program("jdbc/ShoalJdbc.java"))
        .output()
        .expect("javac must be installed (make deps installs Debian's default-jdk-headless)");
    assert!(
        javac.status.success(),
        "javac failed:\n{}",
        String::from_utf8_lossy(&javac.stderr)
    );
    let classpath = std::env::join_paths([classes.path(), jar.as_path()]).expect("class path");
    let out = Command::new("java")
        .arg("-cp")
        .arg(classpath)
        .arg("ShoalJdbc")
        .arg(node.sql_addr.ip().to_string())
        .arg(node.sql_addr.port().to_string())
        .output()
        .expect("java must be installed (make deps installs Debian's default-jdk-headless)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "ShoalJdbc failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("pgjdbc 42.5.5 on Java"), "{stdout}");
}

/// Rows, distinct ids, and the least and greatest id of a sysbench table.
async fn sbtest_ids(c: &tokio_postgres::Client, table: &str) -> (i64, i64, i32, i32) {
    let row = c
        .query_one(
            &format!("SELECT count(*), count(DISTINCT id), min(id), max(id) FROM {table}"),
            &[],
        )
        .await
        .expect("count");
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

/// sysbench 1.0 `oltp_read_write` over its pgsql driver (`make deps`
/// installs Debian's `sysbench`): `prepare` (SERIAL keys, CHAR columns
/// with defaults, multi-row INSERTs, a secondary index), a two-thread run
/// of its prepared statements (point and range selects, SUM, ORDER BY,
/// DISTINCT, index and non-index updates, a delete and re-insert of one
/// row) in transactions, then `cleanup`. sysbench restarts a transaction
/// that fails with 40001 and counts it as an ignored error.
#[tokio::test]
async fn sysbench_oltp_read_write() {
    let node = TestNode::start().await;
    let sysbench = |args: &[&str]| {
        let out = Command::new("sysbench")
            .arg("oltp_read_write")
            .arg("--db-driver=pgsql")
            .arg(format!("--pgsql-host={}", node.sql_addr.ip()))
            .arg(format!("--pgsql-port={}", node.sql_addr.port()))
            .args(["--pgsql-user=shoal", "--pgsql-db=shoal"])
            .args(["--tables=2", "--table-size=1000"])
            .args(args)
            .output()
            .expect("sysbench must be installed (make deps installs Debian's sysbench)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && !text.contains("FATAL"),
            "sysbench {args:?} failed:\n{text}"
        );
        text
    };
    let prepare = sysbench(&["prepare"]);
    assert!(
        prepare.contains("Creating a secondary index on 'sbtest2'..."),
        "{prepare}"
    );
    let c = node.connect().await;
    for table in ["sbtest1", "sbtest2"] {
        assert_eq!(
            sbtest_ids(&c, table).await,
            (1000, 1000, 1, 1000),
            "{table}"
        );
    }
    let indexes: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE indexname IN ('k_1', 'k_2')",
            &[],
        )
        .await
        .expect("indexes")
        .get(0);
    assert_eq!(indexes, 2);
    let run = sysbench(&["--threads=2", "--events=200", "--time=0", "run"]);
    let events = run
        .lines()
        .find_map(|l| l.trim().strip_prefix("total number of events:"))
        .map(str::trim);
    assert_eq!(events, Some("200"), "{run}");
    // Each transaction deletes a row and inserts it again under its id.
    for table in ["sbtest1", "sbtest2"] {
        assert_eq!(
            sbtest_ids(&c, table).await,
            (1000, 1000, 1, 1000),
            "{table}"
        );
    }
    sysbench(&["cleanup"]);
    let left: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'sbtest%'",
            &[],
        )
        .await
        .expect("tables")
        .get(0);
    assert_eq!(left, 0);
    let version = Command::new("sysbench")
        .arg("--version")
        .output()
        .expect("version");
    println!("{}", String::from_utf8_lossy(&version.stdout).trim());
}
