//! Databases and schemas with tokio-postgres: `CREATE DATABASE`, connecting
//! to it, its own tables, `DROP DATABASE`; schemas and `search_path` on a
//! connection, prepared statements following the path.

use shoal_tests::TestNode;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

async fn connect_to(node: &TestNode, database: &str) -> Result<tokio_postgres::Client, String> {
    let conn_str = format!(
        "host={} port={} user=shoal dbname={database}",
        node.sql_addr.ip(),
        node.sql_addr.port()
    );
    let (client, conn) = tokio_postgres::connect(&conn_str, NoTls)
        .await
        .map_err(|e| {
            e.as_db_error()
                .map(|d| d.code().code().to_string())
                .unwrap_or_else(|| e.to_string())
        })?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

#[tokio::test]
async fn databases_are_separate_namespaces() {
    let node = TestNode::start().await;
    let main = node.connect().await;
    assert_eq!(
        connect_to(&node, "inventory").await.err().as_deref(),
        Some("3D000")
    );
    main.batch_execute("CREATE DATABASE inventory")
        .await
        .unwrap();
    main.batch_execute("CREATE TABLE items (id int PRIMARY KEY)")
        .await
        .unwrap();
    let err = main
        .batch_execute("CREATE DATABASE inventory")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::DUPLICATE_DATABASE));

    let inv = connect_to(&node, "inventory").await.unwrap();
    // Its own `items`, not the one of database `shoal`.
    inv.batch_execute(
        "CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items VALUES (1, 'bolt')",
    )
    .await
    .unwrap();
    let row = inv
        .query_one("SELECT current_database(), name FROM items", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "inventory");
    assert_eq!(row.get::<_, String>(1), "bolt");
    let n: i64 = main
        .query_one("SELECT count(*) FROM items", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    let names: Vec<String> = main
        .query("SELECT datname FROM pg_database ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(names, ["inventory", "postgres", "shoal"]);

    let err = inv
        .batch_execute("DROP DATABASE inventory")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::OBJECT_IN_USE));
    drop(inv);
    main.batch_execute("DROP DATABASE inventory").await.unwrap();
    assert_eq!(
        connect_to(&node, "inventory").await.err().as_deref(),
        Some("3D000")
    );
    // Created again, it starts empty.
    main.batch_execute("CREATE DATABASE inventory")
        .await
        .unwrap();
    let inv = connect_to(&node, "inventory").await.unwrap();
    let err = inv.query("SELECT * FROM items", &[]).await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE));
}

#[tokio::test]
async fn prepared_statements_follow_the_search_path() {
    let node = TestNode::start().await;
    let c = node.connect().await;
    c.batch_execute(
        "CREATE SCHEMA tenant_a; CREATE SCHEMA tenant_b;
         CREATE TABLE tenant_a.kv (k int PRIMARY KEY, v text);
         CREATE TABLE tenant_b.kv (k int PRIMARY KEY, v text);
         INSERT INTO tenant_a.kv VALUES (1, 'a');
         INSERT INTO tenant_b.kv VALUES (1, 'b');",
    )
    .await
    .unwrap();
    // A point lookup prepared under one path and run under another reads
    // the table the path names when it runs.
    c.batch_execute("SET search_path = tenant_a").await.unwrap();
    let get = c.prepare("SELECT v FROM kv WHERE k = $1").await.unwrap();
    let put = c.prepare("INSERT INTO kv VALUES ($1, $2)").await.unwrap();
    let v: String = c.query_one(&get, &[&1i32]).await.unwrap().get(0);
    assert_eq!(v, "a");
    c.batch_execute("SET search_path = tenant_b").await.unwrap();
    let v: String = c.query_one(&get, &[&1i32]).await.unwrap().get(0);
    assert_eq!(v, "b");
    c.execute(&put, &[&2i32, &"into b"]).await.unwrap();
    let n: i64 = c
        .query_one("SELECT count(*) FROM tenant_b.kv", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    let n: i64 = c
        .query_one("SELECT count(*) FROM tenant_a.kv", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    // Qualified names ignore the path.
    let v: String = c
        .query_one("SELECT v FROM tenant_a.kv WHERE k = $1", &[&1i32])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, "a");
}

/// Settings in the startup packet (`options`, as libpq's `PGOPTIONS` and
/// drivers' `options=` send them) apply to the session; a bad one refuses
/// the connection.
#[tokio::test]
async fn startup_options_apply() {
    let node = TestNode::start().await;
    node.connect()
        .await
        .batch_execute("CREATE SCHEMA app; CREATE TABLE app.t (k int PRIMARY KEY)")
        .await
        .unwrap();
    let conn_str = |options: &str| {
        format!(
            "host={} port={} user=shoal dbname=shoal options='{options}'",
            node.sql_addr.ip(),
            node.sql_addr.port()
        )
    };
    let (c, conn) = tokio_postgres::connect(
        &conn_str(
            "-c search_path=app -c default_transaction_isolation=read\\\\ committed --TimeZone=Asia/Tokyo",
        ),
        NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let show = |name: &'static str| {
        let c = &c;
        async move {
            c.query_one(&format!("SHOW {name}"), &[])
                .await
                .unwrap()
                .get::<_, String>(0)
        }
    };
    assert_eq!(show("search_path").await, "app");
    assert_eq!(show("transaction_isolation").await, "read committed");
    assert_eq!(show("TimeZone").await, "Asia/Tokyo");
    // Unqualified names follow the path.
    c.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();

    for bad in ["-c no_such_setting=1", "-c TimeZone=Mars/Base"] {
        let err = tokio_postgres::connect(&conn_str(bad), NoTls)
            .await
            .err()
            .and_then(|e| e.as_db_error().map(|d| d.code().code().to_string()));
        assert!(
            matches!(err.as_deref(), Some("42704") | Some("22023")),
            "{bad}: {err:?}"
        );
    }
}
