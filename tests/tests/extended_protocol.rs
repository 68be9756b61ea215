//! The extended protocol's answers are written when the client asks for
//! them — at Sync or Flush — as PostgreSQL does: a client pipelining
//! Parse, Bind, Execute and Sync gets every answer in one write instead
//! of one per message (`crates/pgwire/src/corked.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use shoal_tests::TestNode;
use shoal_tests::wire::Wire;

#[tokio::test]
async fn answers_wait_for_sync_or_flush() {
    let node = TestNode::start().await;
    let mut wire = Wire::connect(node.sql_addr).await;
    assert_eq!(
        wire.simple("CREATE TABLE t (id integer PRIMARY KEY, v text)")
            .await,
        b'I'
    );
    assert_eq!(wire.simple("INSERT INTO t VALUES (1, 'one')").await, b'I');

    wire.parse_bind_execute("SELECT v FROM t WHERE id = 1")
        .await;
    assert_eq!(
        wire.message_within(Duration::from_millis(300)).await,
        None,
        "nothing is written before Sync or Flush"
    );
    // Flush: everything so far, without ReadyForQuery.
    wire.send(b'H', &[]).await;
    let tags = wire.tags_until(b'C').await;
    assert_eq!(
        tags, b"12DC",
        "ParseComplete, BindComplete, a row, CommandComplete"
    );
    assert_eq!(wire.message_within(Duration::from_millis(200)).await, None);
    wire.send(b'S', &[]).await;
    assert_eq!(wire.ready().await, b'I');

    // Describe and Close answer at Sync too.
    wire.parse_bind_execute("SELECT v FROM t WHERE id = 1")
        .await;
    wire.send(b'D', b"P\0").await;
    wire.send(b'C', b"S\0").await;
    assert_eq!(wire.message_within(Duration::from_millis(300)).await, None);
    wire.send(b'S', &[]).await;
    let mut tags = Vec::new();
    loop {
        let (tag, _) = wire.message().await;
        tags.push(tag);
        if tag == b'Z' {
            break;
        }
    }
    assert_eq!(tags, b"12DCT3Z");
    wire.parse_bind_execute("SELECT no_such_column FROM t")
        .await;
    wire.send(b'S', &[]).await;
    // An error skips the rest of the pipeline up to Sync.
    let (tag, _) = wire.message().await;
    assert_eq!(tag, b'E');
    assert_eq!(wire.ready().await, b'I');
}

/// After an error the server discards the messages up to Sync, as
/// PostgreSQL does: a pipelined batch stops at its first failing statement.
#[tokio::test]
async fn an_error_skips_to_sync() {
    let node = TestNode::start().await;
    let mut wire = Wire::connect(node.sql_addr).await;
    assert_eq!(
        wire.simple("CREATE TABLE t (id integer PRIMARY KEY)").await,
        b'I'
    );
    assert_eq!(wire.simple("INSERT INTO t VALUES (1)").await, b'I');
    wire.parse_bind_execute("INSERT INTO t VALUES (1)").await;
    wire.parse_bind_execute("INSERT INTO t VALUES (2)").await;
    wire.send(b'S', &[]).await;
    let tags = wire.tags_until(b'Z').await;
    assert_eq!(tags, vec![b'1', b'2', b'E', b'Z'], "{tags:?}");
    let client = node.connect().await;
    let rows = client.query("SELECT id FROM t", &[]).await.unwrap();
    assert_eq!(rows.len(), 1, "the statement after the error did not run");
}

/// `DEALLOCATE` through the extended protocol forgets the statement.
#[tokio::test]
async fn deallocate_in_the_extended_protocol() {
    let node = TestNode::start().await;
    let mut wire = Wire::connect(node.sql_addr).await;
    // Parse a statement named `s1`.
    wire.send(b'P', b"s1\0SELECT 1\0\0\0").await;
    wire.send(b'S', &[]).await;
    assert_eq!(wire.ready().await, b'I');
    assert_eq!(wire.extended("DEALLOCATE s1").await, b'I');
    // Binding it now fails: it is gone.
    wire.send(b'B', b"\0s1\0\0\0\0\0\0\0").await;
    wire.send(b'S', &[]).await;
    let tags = wire.tags_until(b'Z').await;
    assert_eq!(tags, vec![b'E', b'Z'], "{tags:?}");
}
