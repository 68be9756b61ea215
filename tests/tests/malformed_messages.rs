//! A client that sends a malformed protocol message loses its own
//! connection and nothing else: its open transaction is rolled back, every
//! other session goes on, and the node keeps serving.
//!
//! The messages here are the ones the decoder property tests
//! (`crates/pgwire/tests/decoders.rs`) found to panic pgwire 0.41's
//! decoder: a Bind whose parameter claims more bytes than the message
//! holds, and a Parse that declares more parameter types than it carries;
//! and the one the fuzz target `frontend_messages` (tests/fuzz) found: a
//! message whose length field is below the 4 bytes of the field itself.
//! The panic ends the connection's task only; the test holds Shoal to
//! that — and keeps holding once the decoder answers such messages with
//! an error instead.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use shoal_tests::TestNode;
use shoal_tests::wire::Wire;

/// A Bind of the unnamed portal whose one parameter claims 65,537 bytes
/// and brings two.
const SHORT_BIND: &[u8] = &[0, 0, 0, 0, 0, 1, 0, 1, 0, 1, 0xaa, 0xbb];

/// A Parse that declares five parameter types and carries one.
const SHORT_PARSE: &[u8] = b"\0SELECT 1\0\0\x05\0\0\0\x17";

/// A password message whose length field says 0.
const ZERO_LENGTH_PASSWORD: &[u8] = b"p\0\0\0\0";

/// `body` framed as a message: `tag`, then its length.
fn framed(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut message = vec![tag];
    message.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    message.extend_from_slice(body);
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_message_ends_only_its_connection() {
    let node = TestNode::start().await;
    let other = node.connect().await;
    other
        .batch_execute("CREATE TABLE t (k int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0)")
        .await
        .unwrap();

    let malformed = [
        ("Bind", framed(b'B', SHORT_BIND)),
        ("Parse", framed(b'P', SHORT_PARSE)),
        ("zero-length password", ZERO_LENGTH_PASSWORD.to_vec()),
    ];
    for (name, message) in &malformed {
        let mut wire = Wire::connect(node.sql_addr).await;
        // In a transaction that has written.
        assert_eq!(wire.simple("BEGIN").await, b'T');
        assert_eq!(
            wire.simple("UPDATE t SET v = v + 1 WHERE k = 1").await,
            b'T'
        );
        wire.send_raw(message).await;
        wire.send(b'S', &[]).await;
        // The connection closes, or the message is refused with an error.
        let mut answer = None;
        while let Some((tag, _)) = wire.message_within(Duration::from_secs(10)).await {
            answer = Some(tag);
            if tag == b'E' {
                break;
            }
        }
        assert!(
            matches!(answer, None | Some(b'E')),
            "a malformed {name} got {answer:?}"
        );
        drop(wire);

        // Another session writes the same row at once: nothing of the
        // broken session's transaction is left in its way.
        tokio::time::timeout(
            Duration::from_secs(10),
            other.execute("UPDATE t SET v = v + 10 WHERE k = 1", &[]),
        )
        .await
        .expect("the row is free")
        .unwrap();
    }
    // No broken transaction committed; every update of the healthy
    // session did.
    let v: i32 = other
        .query_one("SELECT v FROM t WHERE k = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, 30);
    let fresh = node.connect().await;
    let rows: i64 = fresh
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1);
}
