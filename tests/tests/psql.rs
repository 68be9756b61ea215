#![allow(clippy::expect_used)] // a missing psql is a test failure, reported by the panic
//! psql, run as a user would run it.

use std::process::Command;

use shoal_tests::TestNode;

fn psql(node: &TestNode, args: &[&str]) -> (bool, String, String) {
    let out = Command::new("psql")
        .arg("-X")
        .arg("-v")
        .arg("ON_ERROR_STOP=1")
        .arg(node.conn_str())
        .args(args)
        .output()
        .expect("psql must be installed (make deps installs postgresql-client)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn psql_creates_inserts_and_selects() {
    let node = TestNode::start().await;
    let (ok, out, err) = psql(
        &node,
        &[
            "-c",
            "CREATE TABLE notes (id integer PRIMARY KEY, body text)",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("CREATE TABLE"), "{out}");
    let (ok, out, err) = psql(
        &node,
        &["-c", "INSERT INTO notes VALUES (1, 'hello'), (2, 'world')"],
    );
    assert!(ok, "{err}");
    assert!(out.contains("INSERT 0 2"), "{out}");
    let (ok, out, err) = psql(
        &node,
        &["-A", "-t", "-c", "SELECT id, body FROM notes ORDER BY id"],
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "1|hello\n2|world");
    let (ok, _, err) = psql(&node, &["-c", "INSERT INTO notes VALUES (1, 'again')"]);
    assert!(!ok);
    assert!(err.contains("duplicate key value"), "{err}");
}

#[tokio::test]
async fn psql_describe_commands_read_the_catalog() {
    let node = TestNode::start().await;
    let (ok, _, err) = psql(
        &node,
        &[
            "-c",
            "CREATE TABLE accounts (id integer PRIMARY KEY, owner varchar(40) NOT NULL, balance numeric(12,2))",
            "-c",
            "CREATE TABLE events (at timestamptz, payload bytea)",
        ],
    );
    assert!(ok, "{err}");

    let (ok, out, err) = psql(&node, &["-c", "\\dt"]);
    assert!(ok, "{err}");
    assert!(out.contains("public | accounts | table | shoal"), "{out}");
    assert!(out.contains("public | events   | table | shoal"), "{out}");

    let (ok, out, err) = psql(&node, &["-c", "\\d"]);
    assert!(ok, "{err}");
    assert!(out.contains("accounts"), "{out}");

    let (ok, out, err) = psql(&node, &["-c", "\\d accounts"]);
    assert!(ok, "{err}");
    assert!(out.contains("Table \"public.accounts\""), "{out}");
    assert!(
        out.contains(" id      | integer               |           | not null |"),
        "{out}"
    );
    assert!(
        out.contains(" owner   | character varying(40) |           | not null |"),
        "{out}"
    );
    assert!(
        out.contains(" balance | numeric(12,2)         |           |          |"),
        "{out}"
    );
    assert!(
        out.contains("\"accounts_pkey\" PRIMARY KEY, btree (id)"),
        "{out}"
    );

    let (ok, out, err) = psql(&node, &["-c", "\\d events"]);
    assert!(ok, "{err}");
    assert!(out.contains("timestamp with time zone"), "{out}");
    assert!(
        !out.contains("rowid"),
        "the hidden key column is not shown: {out}"
    );

    let (ok, out, err) = psql(&node, &["-c", "\\l"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(" shoal ") && out.contains(" postgres "),
        "{out}"
    );

    // Indexes, schemas and roles.
    let (ok, out, err) = psql(&node, &["-c", "\\di"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("accounts_pkey") && out.contains("index"),
        "{out}"
    );
    let (ok, out, err) = psql(&node, &["-c", "\\dn"]);
    assert!(ok, "{err}");
    assert!(out.contains("public"), "{out}");
    let (ok, out, err) = psql(&node, &["-c", "\\du"]);
    assert!(ok, "{err}");
    assert!(out.contains("shoal") && out.contains("Superuser"), "{out}");

    // OIDs come from table ids: the same after a restart.
    let (_, before, _) = psql(
        &node,
        &[
            "-A",
            "-t",
            "-c",
            "SELECT oid FROM pg_catalog.pg_class WHERE relname = 'accounts'",
        ],
    );
    assert!(!before.trim().is_empty());
    let mut node = node;
    node.restart().await;
    let (_, after, _) = psql(
        &node,
        &[
            "-A",
            "-t",
            "-c",
            "SELECT oid FROM pg_catalog.pg_class WHERE relname = 'accounts'",
        ],
    );
    assert_eq!(before, after);
}

/// `\d` shows a table's checks, its foreign keys and the tables
/// referencing it, as psql shows PostgreSQL's.
#[tokio::test]
async fn psql_describe_shows_checks_and_foreign_keys() {
    let node = TestNode::start().await;
    let (ok, _, err) = psql(
        &node,
        &[
            "-c",
            "CREATE TABLE teams (id integer PRIMARY KEY, name text UNIQUE)",
            "-c",
            "CREATE TABLE players (id integer PRIMARY KEY, team integer REFERENCES teams ON DELETE CASCADE, age integer CHECK (age >= 16))",
        ],
    );
    assert!(ok, "{err}");
    let (ok, out, err) = psql(&node, &["-c", "\\d players"]);
    assert!(ok, "{err}");
    assert!(out.contains("Check constraints:"), "{out}");
    assert!(
        out.contains("\"players_age_check\" CHECK ((age >= 16))"),
        "{out}"
    );
    assert!(out.contains("Foreign-key constraints:"), "{out}");
    assert!(
        out.contains(
            "\"players_team_fkey\" FOREIGN KEY (team) REFERENCES teams(id) ON DELETE CASCADE"
        ),
        "{out}"
    );
    let (ok, out, err) = psql(&node, &["-c", "\\d teams"]);
    assert!(ok, "{err}");
    assert!(out.contains("Referenced by:"), "{out}");
    assert!(
        out.contains("TABLE \"players\" CONSTRAINT \"players_team_fkey\""),
        "{out}"
    );
}

/// `\d+` adds storage, compression, statistics target and description
/// columns, and the table's options (an `ARRAY(SELECT … FROM
/// unnest(…))` over the joined TOAST table) and access method.
#[tokio::test]
async fn psql_describe_plus() {
    let node = TestNode::start().await;
    let (ok, _, err) = psql(
        &node,
        &[
            "-c",
            "CREATE TABLE owners (id integer PRIMARY KEY)",
            "-c",
            "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL DEFAULT 'x', price numeric(10,2) CHECK (price >= 0), owner integer REFERENCES owners (id), tags text[])",
            "-c",
            "CREATE INDEX items_name ON items (name)",
        ],
    );
    assert!(ok, "{err}");
    let (ok, out, err) = psql(&node, &["-c", "\\d+ items"]);
    assert!(ok, "{err}");
    for line in [
        "Table \"public.items\"",
        "| Storage  | Compression | Stats target | Description",
        " id     | integer       |           | not null | nextval('items_id_seq'::regclass) | plain    |",
        " name   | text          |           | not null | 'x'::text                         | extended |",
        " price  | numeric(10,2) |           |          |                                   | main     |",
        " tags   | text[]        |           |          |                                   | extended |",
        "\"items_name\" btree (name)",
        "\"items_price_check\" CHECK ((price >= 0))",
        "\"items_owner_fkey\" FOREIGN KEY (owner) REFERENCES owners(id)",
        "Access method: heap",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    let (ok, out, err) = psql(&node, &["-c", "\\d+ owners"]);
    assert!(ok, "{err}");
    assert!(out.contains("Referenced by:"), "{out}");
}

/// psql's `\copy` (COPY FROM STDIN / TO STDOUT) in text and CSV: rows in
/// and out, NULLs and quoting, a bad row failing the whole COPY, and COPY
/// inside a rolled-back block.
#[tokio::test]
async fn psql_copy_in_and_out() {
    let node = TestNode::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let text = dir.path().join("rows.tsv");
    let csv = dir.path().join("rows.csv");
    let bad = dir.path().join("bad.tsv");
    std::fs::write(
        &text,
        "1\tann\t2024-01-02\n2\tbob\t\\N\n3\ttab\\there\t2024-03-04\n",
    )
    .expect("write");
    std::fs::write(&csv, "id,name,d\n4,\"dee, d\",2024-05-06\n5,,\n").expect("write");
    std::fs::write(&bad, "6\tok\t2024-01-01\n7\tbad date\tnot-a-date\n").expect("write");
    let (ok, out, err) = psql(
        &node,
        &[
            "-c",
            "CREATE TABLE people (id integer PRIMARY KEY, name text, d date)",
            "-c",
            &format!("\\copy people FROM '{}'", text.display()),
            "-c",
            &format!(
                "\\copy people FROM '{}' WITH (FORMAT csv, HEADER true)",
                csv.display()
            ),
            "-c",
            "\\copy people TO STDOUT",
            "-c",
            "\\copy (SELECT id, name FROM people WHERE id >= 4 ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("COPY 3") && out.contains("COPY 2"), "{out}");
    assert!(out.contains("2\tbob\t\\N\n"), "{out}");
    assert!(out.contains("3\ttab\\there\t2024-03-04\n"), "{out}");
    assert!(out.contains("5\t\\N\t\\N\n"), "{out}");
    assert!(out.contains("id,name\n4,\"dee, d\"\n5,\n"), "{out}");

    // A bad value fails the COPY (22P02), which leaves no row behind.
    let (ok, _, err) = psql(
        &node,
        &["-c", &format!("\\copy people FROM '{}'", bad.display())],
    );
    assert!(!ok && err.contains("date"), "{err}");
    let (_, out, _) = psql(&node, &["-A", "-t", "-c", "SELECT count(*) FROM people"]);
    assert_eq!(out.trim(), "5");

    // COPY inside a block goes with the block.
    let (ok, out, err) = psql(
        &node,
        &[
            "-c",
            "BEGIN",
            "-c",
            &format!(
                "\\copy people FROM '{}' WITH (FORMAT csv, HEADER)",
                csv.display()
            ),
            "-c",
            "ROLLBACK",
        ],
    );
    assert!(!ok, "duplicate keys in the block must fail: {out}");
    assert!(err.contains("duplicate key"), "{err}");
    let (_, out, _) = psql(&node, &["-A", "-t", "-c", "SELECT count(*) FROM people"]);
    assert_eq!(out.trim(), "5");
}
