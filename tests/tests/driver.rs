//! tokio-postgres against a real node: prepared statements, parameters and
//! binary results for every supported type, errors with their SQLSTATE.

use shoal_tests::TestNode;
use tokio_postgres::error::SqlState;

#[tokio::test]
async fn prepared_statements_with_binary_results() {
    let node = TestNode::start().await;
    let c = node.connect().await;
    c.batch_execute(
        "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL, age integer, small smallint,
           score double precision, ratio real, active boolean, avatar bytea, born date,
           seen timestamp, seen_tz timestamptz, ext uuid, balance numeric(12,2), code varchar(8))",
    )
    .await
    .unwrap();
    let insert = c
        .prepare("INSERT INTO users VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)")
        .await
        .unwrap();
    let born = chrono::NaiveDate::from_ymd_opt(1990, 5, 17).unwrap();
    let seen = born.and_hms_micro_opt(8, 30, 0, 250).unwrap();
    let seen_tz = chrono::DateTime::<chrono::Utc>::from_naive_utc_and_offset(seen, chrono::Utc);
    let ext = uuid::Uuid::parse_str("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").unwrap();
    let balance = rust_decimal::Decimal::new(123456, 2);
    let n = c
        .execute(
            &insert,
            &[
                &1i64,
                &"ada",
                &36i32,
                &7i16,
                &99.5f64,
                &0.25f32,
                &true,
                &vec![0u8, 1, 255],
                &born,
                &seen,
                &seen_tz,
                &ext,
                &balance,
                &"abc",
            ],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    let row = c
        .query_one("SELECT * FROM users WHERE id = $1", &[&1i64])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>("id"), 1);
    assert_eq!(row.get::<_, &str>("name"), "ada");
    assert_eq!(row.get::<_, i32>("age"), 36);
    assert_eq!(row.get::<_, i16>("small"), 7);
    assert_eq!(row.get::<_, f64>("score"), 99.5);
    assert_eq!(row.get::<_, f32>("ratio"), 0.25);
    assert!(row.get::<_, bool>("active"));
    assert_eq!(row.get::<_, Vec<u8>>("avatar"), vec![0u8, 1, 255]);
    assert_eq!(row.get::<_, chrono::NaiveDate>("born"), born);
    assert_eq!(row.get::<_, chrono::NaiveDateTime>("seen"), seen);
    assert_eq!(
        row.get::<_, chrono::DateTime<chrono::Utc>>("seen_tz"),
        seen_tz
    );
    assert_eq!(row.get::<_, uuid::Uuid>("ext"), ext);
    assert_eq!(row.get::<_, rust_decimal::Decimal>("balance"), balance);
    assert_eq!(row.get::<_, &str>("code"), "abc");

    // NULLs through parameters and back.
    c.execute(
        "INSERT INTO users (id, name, age) VALUES ($1, $2, $3)",
        &[&2i64, &"bob", &None::<i32>],
    )
    .await
    .unwrap();
    let row = c
        .query_one("SELECT age, avatar FROM users WHERE id = $1", &[&2i64])
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<i32>>(0), None);
    assert_eq!(row.get::<_, Option<Vec<u8>>>(1), None);

    // The same prepared statement many times; UPDATE and DELETE counts.
    let by_id = c
        .prepare("SELECT name FROM users WHERE id = $1")
        .await
        .unwrap();
    for _ in 0..20 {
        let r = c.query(&by_id, &[&2i64]).await.unwrap();
        assert_eq!(r.len(), 1);
    }
    assert_eq!(
        c.execute("UPDATE users SET age = $1 WHERE id >= $2", &[&40i32, &1i64])
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        c.execute("DELETE FROM users WHERE id = $1", &[&2i64])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        c.execute("DELETE FROM users WHERE id = $1", &[&2i64])
            .await
            .unwrap(),
        0
    );
    // LIMIT and OFFSET parameters are bigints, as in PostgreSQL.
    let page: Vec<i64> = c
        .query(
            "SELECT x FROM generate_series(1, 10) AS g(x) ORDER BY x LIMIT $1 OFFSET $2",
            &[&3i64, &4i64],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(page, vec![5, 6, 7]);
}

/// Prepared `UPDATE … WHERE pk = $n` (run without planning, `fastpath.rs`)
/// gives what the general path gives: assignments from parameters and
/// integer arithmetic, every assignment seeing the old row, 22003 on
/// overflow, 23502 on NULL into NOT NULL, 0 rows for a missing key.
#[tokio::test]
async fn prepared_updates_by_key() {
    let node = TestNode::start().await;
    let c = node.connect().await;
    c.batch_execute(
        "CREATE TABLE acct (id bigint PRIMARY KEY, bal integer NOT NULL, small smallint, note text);
         INSERT INTO acct VALUES (1, 100, 1, 'a'), (2, 2147483600, 32767, 'b')",
    )
    .await
    .unwrap();
    let row = |id: i64| {
        let c = &c;
        async move {
            let r = c
                .query_one("SELECT bal, small, note FROM acct WHERE id = $1", &[&id])
                .await
                .unwrap();
            (
                r.get::<_, i32>(0),
                r.get::<_, Option<i16>>(1),
                r.get::<_, Option<String>>(2),
            )
        }
    };
    let add = c
        .prepare("UPDATE acct SET bal = bal + $1, note = $2 WHERE id = $3")
        .await
        .unwrap();
    assert_eq!(c.execute(&add, &[&5_i32, &"x", &1_i64]).await.unwrap(), 1);
    assert_eq!(row(1).await, (105, Some(1), Some("x".into())));
    assert_eq!(c.execute(&add, &[&5_i32, &"x", &9_i64]).await.unwrap(), 0);
    assert_eq!(
        c.execute(&add, &[&5_i32, &"x", &None::<i64>])
            .await
            .unwrap(),
        0
    );
    let err = c
        .execute(&add, &[&100_i32, &"y", &2_i64])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::NUMERIC_VALUE_OUT_OF_RANGE));
    let err = c
        .execute(&add, &[&None::<i32>, &"y", &2_i64])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::NOT_NULL_VIOLATION));
    // Every assignment sees the row as it was.
    let swap = c
        .prepare("UPDATE acct SET small = small - 1, bal = small + 1000 WHERE id = $1")
        .await
        .unwrap();
    assert_eq!(c.execute(&swap, &[&1_i64]).await.unwrap(), 1);
    assert_eq!(row(1).await, (1001, Some(0), Some("x".into())));
    let up = c
        .prepare("UPDATE acct SET small = small + 1 WHERE id = $1")
        .await
        .unwrap();
    let err = c.execute(&up, &[&2_i64]).await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::NUMERIC_VALUE_OUT_OF_RANGE));
    // Shapes the fast path does not take still work.
    let double = c
        .prepare("UPDATE acct SET bal = bal * 2 WHERE id = $1")
        .await
        .unwrap();
    assert_eq!(c.execute(&double, &[&1_i64]).await.unwrap(), 1);
    assert_eq!(row(1).await.0, 2002);
    assert_eq!(row(2).await, (2147483600, Some(32767), Some("b".into())));
}

/// Prepared one-row upserts — the key-value put, `INSERT … ON CONFLICT
/// (pk) DO UPDATE SET v = excluded.v` or `DO NOTHING` (run without
/// planning, `fast_upsert.rs`) — give what the general path gives: the
/// counts, the values, index entries kept, 23502 and 23505 where due.
#[tokio::test]
async fn prepared_upserts_by_key() {
    let node = TestNode::start().await;
    let c = node.connect().await;
    c.batch_execute(
        "CREATE TABLE kv (k bytea PRIMARY KEY, v bytea, n integer NOT NULL);
         CREATE TABLE tagged (id integer PRIMARY KEY, tag text, code text);
         CREATE INDEX tagged_tag ON tagged (tag);
         CREATE UNIQUE INDEX tagged_code ON tagged (code)",
    )
    .await
    .unwrap();
    let put = c
        .prepare(
            "INSERT INTO kv (k, v, n) VALUES ($1, $2, $3) \
             ON CONFLICT (k) DO UPDATE SET v = excluded.v, n = excluded.n",
        )
        .await
        .unwrap();
    let get = |k: &'static [u8]| {
        let c = &c;
        async move {
            c.query_opt("SELECT v, n FROM kv WHERE k = $1", &[&k])
                .await
                .unwrap()
                .map(|r| (r.get::<_, Option<Vec<u8>>>(0), r.get::<_, i32>(1)))
        }
    };
    let k1: &[u8] = b"k1";
    assert_eq!(
        c.execute(&put, &[&k1, &&b"a"[..], &1_i32]).await.unwrap(),
        1
    );
    assert_eq!(get(b"k1").await, Some((Some(b"a".to_vec()), 1)));
    assert_eq!(
        c.execute(&put, &[&k1, &&b"b"[..], &2_i32]).await.unwrap(),
        1
    );
    assert_eq!(get(b"k1").await, Some((Some(b"b".to_vec()), 2)));
    assert_eq!(
        c.execute(&put, &[&k1, &None::<&[u8]>, &3_i32])
            .await
            .unwrap(),
        1
    );
    assert_eq!(get(b"k1").await, Some((None, 3)));
    // The proposed row is checked before the conflict is looked at.
    for key in [k1, b"k2"] {
        let err = c
            .execute(&put, &[&key, &&b"c"[..], &None::<i32>])
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(&SqlState::NOT_NULL_VIOLATION));
    }
    assert_eq!(get(b"k2").await, None);
    // DO NOTHING counts 0 on a conflict and keeps the row.
    let add = c
        .prepare("INSERT INTO kv (k, v, n) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
        .await
        .unwrap();
    assert_eq!(
        c.execute(&add, &[&k1, &&b"z"[..], &9_i32]).await.unwrap(),
        0
    );
    assert_eq!(get(b"k1").await, Some((None, 3)));
    assert_eq!(
        c.execute(&add, &[&&b"k2"[..], &&b"z"[..], &9_i32])
            .await
            .unwrap(),
        1
    );
    // An assignment from a parameter; a key column left as it is.
    let set_n = c
        .prepare("INSERT INTO kv (k, n) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET n = $3")
        .await
        .unwrap();
    assert_eq!(
        c.execute(&set_n, &[&&b"k2"[..], &0_i32, &7_i32])
            .await
            .unwrap(),
        1
    );
    assert_eq!(get(b"k2").await, Some((Some(b"z".to_vec()), 7)));
    // A transaction sees its own upserts; a rollback undoes them.
    c.batch_execute("BEGIN").await.unwrap();
    c.execute(&put, &[&&b"k3"[..], &&b"t"[..], &1_i32])
        .await
        .unwrap();
    c.execute(&put, &[&&b"k3"[..], &&b"u"[..], &2_i32])
        .await
        .unwrap();
    assert_eq!(get(b"k3").await, Some((Some(b"u".to_vec()), 2)));
    c.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(get(b"k3").await, None);
    // Index entries follow the row; a unique index that is not the
    // arbiter still refuses a duplicate.
    let tag = c
        .prepare(
            "INSERT INTO tagged VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET tag = excluded.tag, code = excluded.code",
        )
        .await
        .unwrap();
    c.execute(&tag, &[&1_i32, &"red", &"c1"]).await.unwrap();
    c.execute(&tag, &[&2_i32, &"red", &"c2"]).await.unwrap();
    c.execute(&tag, &[&1_i32, &"blue", &"c3"]).await.unwrap();
    let ids = |t: &'static str| {
        let c = &c;
        async move {
            c.query("SELECT id FROM tagged WHERE tag = $1 ORDER BY id", &[&t])
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<_, i32>(0))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(ids("red").await, [2]);
    assert_eq!(ids("blue").await, [1]);
    let err = c.execute(&tag, &[&3_i32, &"x", &"c2"]).await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION));
    let err = c.execute(&tag, &[&1_i32, &"x", &"c2"]).await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION));
    // DO UPDATE needs a conflict target, prepared or not.
    let err = c
        .execute(
            "INSERT INTO kv (k, v, n) VALUES ($1, $2, $3) ON CONFLICT DO UPDATE SET n = 0",
            &[&k1, &&b"w"[..], &1_i32],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::SYNTAX_ERROR));
    // Shapes the fast path leaves to the general one still work.
    let guarded = c
        .prepare(
            "INSERT INTO kv AS t (k, v, n) VALUES ($1, $2, $3) \
             ON CONFLICT (k) DO UPDATE SET n = t.n + excluded.n WHERE t.n > 0",
        )
        .await
        .unwrap();
    assert_eq!(
        c.execute(&guarded, &[&k1, &&b"q"[..], &10_i32])
            .await
            .unwrap(),
        1
    );
    assert_eq!(get(b"k1").await, Some((None, 13)));
}

#[tokio::test]
async fn errors_carry_sqlstate() {
    let node = TestNode::start().await;
    let c = node.connect().await;
    c.batch_execute("CREATE TABLE t (id integer PRIMARY KEY, v text NOT NULL)")
        .await
        .unwrap();
    c.execute("INSERT INTO t VALUES (1, 'a')", &[])
        .await
        .unwrap();
    let code = |e: tokio_postgres::Error| e.code().cloned();
    assert_eq!(
        code(
            c.execute("INSERT INTO t VALUES (1, 'b')", &[])
                .await
                .unwrap_err()
        ),
        Some(SqlState::UNIQUE_VIOLATION)
    );
    assert_eq!(
        code(
            c.execute("INSERT INTO t (id) VALUES (2)", &[])
                .await
                .unwrap_err()
        ),
        Some(SqlState::NOT_NULL_VIOLATION)
    );
    assert_eq!(
        code(c.query("SELECT * FROM missing", &[]).await.unwrap_err()),
        Some(SqlState::UNDEFINED_TABLE)
    );
    assert_eq!(
        code(c.query("SELECT nope FROM t", &[]).await.unwrap_err()),
        Some(SqlState::UNDEFINED_COLUMN)
    );
    assert_eq!(
        code(c.query("SELEKT 1", &[]).await.unwrap_err()),
        Some(SqlState::SYNTAX_ERROR)
    );
    assert_eq!(
        code(c.query("SELECT 1/0", &[]).await.unwrap_err()),
        Some(SqlState::DIVISION_BY_ZERO)
    );
    assert_eq!(
        code(
            c.query("SELECT CAST('x' AS integer)", &[])
                .await
                .unwrap_err()
        ),
        Some(SqlState::INVALID_TEXT_REPRESENTATION)
    );
    // The connection is still usable after errors.
    let row = c.query_one("SELECT count(*) FROM t", &[]).await.unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);
}

#[tokio::test]
async fn connect_time_settings_and_functions() {
    let node = TestNode::start().await;
    let c = node.connect().await;
    c.batch_execute("SET application_name = 'it'; SET extra_float_digits = 3; SET DateStyle = 'ISO, MDY'; SET TimeZone = 'UTC'")
        .await
        .unwrap();
    // What the server announced at startup agrees with SHOW.
    let shown: String = match &c.simple_query("SHOW server_version").await.unwrap()[1] {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).unwrap_or_default().to_string(),
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(shown, "15.0");
    let v: String = c.query_one("SELECT version()", &[]).await.unwrap().get(0);
    assert!(v.starts_with("PostgreSQL "), "{v}");
    let db: String = c
        .query_one("SELECT current_database()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(db, "shoal");
    let user: String = c
        .query_one("SELECT current_user", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(user, "shoal");
    let rows = c.simple_query("SHOW application_name").await.unwrap();
    let value = rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    });
    assert_eq!(value.as_deref(), Some("it"));
    // set_config and current_setting, with parameters.
    let set: String = c
        .query_one(
            "SELECT set_config($1, $2, false)",
            &[&"application_name", &"renamed"],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(set, "renamed");
    let now: String = c
        .query_one("SELECT current_setting($1)", &[&"application_name"])
        .await
        .unwrap()
        .get(0);
    assert_eq!(now, "renamed");
}

#[tokio::test]
async fn hundreds_of_concurrent_connections() {
    let node = TestNode::start().await;
    let c = node.connect().await;
    c.batch_execute("CREATE TABLE hits (id integer PRIMARY KEY)")
        .await
        .unwrap();
    let mut clients = Vec::new();
    for _ in 0..200 {
        clients.push(node.connect().await);
    }
    let mut tasks = Vec::new();
    for (i, client) in clients.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            client
                .execute("INSERT INTO hits VALUES ($1)", &[&(i as i32)])
                .await
                .unwrap();
            let n: i64 = client
                .query_one("SELECT count(*) FROM hits WHERE id = $1", &[&(i as i32)])
                .await
                .unwrap()
                .get(0);
            assert_eq!(n, 1);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let n: i64 = c
        .query_one("SELECT count(*) FROM hits", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 200);
}

#[tokio::test]
async fn cancel_request_stops_a_running_query() {
    let node = TestNode::start().await;
    let c = node.connect().await;
    let token = c.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        token.cancel_query(tokio_postgres::NoTls).await
    });
    let started = std::time::Instant::now();
    let err = c
        .simple_query(
            "SELECT count(*) FROM generate_series(1, 20000000000) AS g(x) WHERE x % 7 = 3",
        )
        .await
        .unwrap_err();
    canceller.await.unwrap().unwrap();
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    // The connection serves the next query.
    let n: i64 = c.query_one("SELECT 1::bigint", &[]).await.unwrap().get(0);
    assert_eq!(n, 1);
}

/// `pg_sleep` and the advisory lock functions as drivers call them:
/// prepared, with typed parameters.
#[tokio::test]
async fn waiting_functions_take_parameters() {
    let node = TestNode::start().await;
    let c = node.connect().await;
    c.execute("SELECT pg_sleep($1)", &[&0.01f64]).await.unwrap();
    let got: bool = c
        .query_one("SELECT pg_try_advisory_lock($1, $2)", &[&1i32, &2i32])
        .await
        .unwrap()
        .get(0);
    assert!(got);
    let released: bool = c
        .query_one("SELECT pg_advisory_unlock($1, $2)", &[&1i32, &2i32])
        .await
        .unwrap()
        .get(0);
    assert!(released);
}

/// `RETURNING` through the extended protocol: Describe names the returned
/// columns and their types, rows come back typed, and the command tag is
/// the statement's (`INSERT 0 1`), which drivers count rows by.
#[tokio::test]
async fn returning_through_prepared_statements() {
    let node = TestNode::start().await;
    let c = node.connect().await;
    c.batch_execute("CREATE TABLE notes (id bigint PRIMARY KEY, body text, n integer)")
        .await
        .unwrap();
    let insert = c
        .prepare("INSERT INTO notes VALUES ($1, $2, $3) RETURNING id, body || '!' AS loud")
        .await
        .unwrap();
    let columns: Vec<(&str, &tokio_postgres::types::Type)> = insert
        .columns()
        .iter()
        .map(|c| (c.name(), c.type_()))
        .collect();
    assert_eq!(
        columns,
        [
            ("id", &tokio_postgres::types::Type::INT8),
            ("loud", &tokio_postgres::types::Type::TEXT)
        ]
    );
    let row = c.query_one(&insert, &[&7i64, &"hi", &1i32]).await.unwrap();
    assert_eq!(row.get::<_, i64>(0), 7);
    assert_eq!(row.get::<_, &str>(1), "hi!");
    // The tag counts the rows, as a plain INSERT's does.
    let n = c.execute(&insert, &[&8i64, &"yo", &2i32]).await.unwrap();
    assert_eq!(n, 1);
    let deleted = c
        .query("DELETE FROM notes WHERE n >= $1 RETURNING id", &[&1i32])
        .await
        .unwrap();
    let mut ids: Vec<i64> = deleted.iter().map(|r| r.get(0)).collect();
    ids.sort();
    assert_eq!(ids, [7, 8]);
}

/// jsonb, arrays and timestamptz as tokio-postgres sends and reads them:
/// typed binary parameters (jsonb's version byte, array headers) and binary
/// results.
#[tokio::test]
async fn documents_arrays_and_zones_in_binary() {
    let node = TestNode::start().await;
    let c = node.connect().await;
    c.batch_execute(
        "CREATE TABLE docs (id bigint PRIMARY KEY, body jsonb, tags text[], nums int[], at timestamptz)",
    )
    .await
    .unwrap();
    let body = serde_json::json!({"name": "ada", "langs": ["en", "fr"], "age": 36});
    let tags = vec!["a".to_string(), "b c".to_string()];
    let nums = vec![1i32, 2, 3];
    let at = chrono::DateTime::parse_from_rfc3339("2024-07-15T12:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    c.execute(
        "INSERT INTO docs VALUES ($1, $2, $3, $4, $5)",
        &[&1i64, &body, &tags, &nums, &at],
    )
    .await
    .unwrap();
    let row = c
        .query_one(
            "SELECT body, tags, nums, at FROM docs WHERE id = $1",
            &[&1i64],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, serde_json::Value>(0), body);
    assert_eq!(row.get::<_, Vec<String>>(1), tags);
    assert_eq!(row.get::<_, Vec<i32>>(2), nums);
    assert_eq!(row.get::<_, chrono::DateTime<chrono::Utc>>(3), at);
    // Operators over a typed parameter.
    let row = c
        .query_one(
            "SELECT body->>'name', body @> $1 FROM docs WHERE id = 1",
            &[&serde_json::json!({"langs": ["fr"]})],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "ada");
    assert!(row.get::<_, bool>(1));
    // The session's zone shapes text output, not the instant.
    c.batch_execute("SET TIME ZONE 'Asia/Tokyo'").await.unwrap();
    let text = c
        .simple_query("SELECT at FROM docs WHERE id = 1")
        .await
        .unwrap();
    let shown = text.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    });
    assert_eq!(shown.as_deref(), Some("2024-07-15 21:00:00+09"));
    let row = c.query_one("SELECT at FROM docs", &[]).await.unwrap();
    assert_eq!(row.get::<_, chrono::DateTime<chrono::Utc>>(0), at);
}
