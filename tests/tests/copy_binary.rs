//! Binary COPY with tokio-postgres's `binary_copy` (its writer frames rows
//! and encodes values by their types, as drivers' bulk loaders do): rows
//! in, rows out, NULLs, a malformed stream refused as a whole.

use futures::{SinkExt, TryStreamExt, pin_mut};
use shoal_tests::TestNode;
use tokio_postgres::binary_copy::{BinaryCopyInWriter, BinaryCopyOutStream};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;

#[tokio::test]
async fn binary_copy_in_and_out() {
    let node = TestNode::start().await;
    let c = node.connect().await;
    c.batch_execute(
        "CREATE TABLE readings (id bigint PRIMARY KEY, sensor text NOT NULL, value double precision,
           at timestamptz, ok boolean, raw bytea, tags text[])",
    )
    .await
    .unwrap();
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-27T10:00:00.25+00:00")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let sink = c
        .copy_in("COPY readings (id, sensor, value, at, ok, raw, tags) FROM STDIN (FORMAT binary)")
        .await
        .unwrap();
    let types = [
        Type::INT8,
        Type::TEXT,
        Type::FLOAT8,
        Type::TIMESTAMPTZ,
        Type::BOOL,
        Type::BYTEA,
        Type::TEXT_ARRAY,
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    pin_mut!(writer);
    for i in 0..500i64 {
        let value = (i % 7 != 0).then_some(i as f64 / 4.0);
        let raw: Vec<u8> = vec![0, 0xff, i as u8];
        let tags = vec![format!("t{i}"), "it's \"quoted\"".to_string()];
        writer
            .as_mut()
            .write(&[
                &i,
                &format!("sensor-{}", i % 3),
                &value,
                &at,
                &(i % 2 == 0),
                &raw,
                &tags,
            ])
            .await
            .unwrap();
    }
    let n = writer.finish().await.unwrap();
    assert_eq!(n, 500);

    let row = c
        .query_one("SELECT count(*), count(value) FROM readings", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 500);
    assert_eq!(row.get::<_, i64>(1), 500 - 72);
    let row = c
        .query_one("SELECT raw, tags, at, ok FROM readings WHERE id = 9", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, Vec<u8>>(0), vec![0, 0xff, 9]);
    assert_eq!(
        row.get::<_, Vec<String>>(1),
        vec!["t9".to_string(), "it's \"quoted\"".to_string()]
    );
    assert_eq!(row.get::<_, chrono::DateTime<chrono::Utc>>(2), at);
    assert!(!row.get::<_, bool>(3));

    // Out again, in binary, and decoded by the same types.
    let stream = c
        .copy_out("COPY (SELECT id, sensor, value, raw FROM readings WHERE id < 10 ORDER BY id) TO STDOUT (FORMAT binary)")
        .await
        .unwrap();
    let rows: Vec<_> =
        BinaryCopyOutStream::new(stream, &[Type::INT8, Type::TEXT, Type::FLOAT8, Type::BYTEA])
            .try_collect()
            .await
            .unwrap();
    assert_eq!(rows.len(), 10);
    assert_eq!(rows[3].get::<i64>(0), 3);
    assert_eq!(rows[3].get::<&str>(1), "sensor-0");
    assert_eq!(rows[3].get::<Option<f64>>(2), Some(0.75));
    assert_eq!(rows[7].get::<Option<f64>>(2), None);
    assert_eq!(rows[9].get::<Vec<u8>>(3), vec![0, 0xff, 9]);

    // A stream cut off mid-row is refused, and nothing of it is kept.
    let sink = c
        .copy_in::<_, bytes::Bytes>("COPY readings (id, sensor) FROM STDIN (FORMAT binary)")
        .await
        .unwrap();
    pin_mut!(sink);
    let mut data = b"PGCOPY\n\xff\r\n\0".to_vec();
    data.extend_from_slice(&[0; 8]);
    data.extend_from_slice(&2i16.to_be_bytes());
    data.extend_from_slice(&8i32.to_be_bytes());
    data.extend_from_slice(&1000i64.to_be_bytes());
    data.extend_from_slice(&5i32.to_be_bytes());
    data.extend_from_slice(b"ab");
    sink.send(bytes::Bytes::from(data)).await.unwrap();
    let err = sink.finish().await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::BAD_COPY_FILE_FORMAT));
    let n: i64 = c
        .query_one("SELECT count(*) FROM readings", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 500);
}
