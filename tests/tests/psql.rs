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
