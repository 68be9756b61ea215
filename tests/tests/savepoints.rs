//! Savepoints through real clients: tokio-postgres rolls a failed block
//! back to a savepoint and commits the rest, and the transaction status
//! every ReadyForQuery reports (read off the wire, simple and extended
//! protocol) is PostgreSQL's: `T` in a block, `E` once it failed, `T`
//! again after `ROLLBACK TO SAVEPOINT`, `I` outside.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use shoal_tests::TestNode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_postgres::error::SqlState;

#[tokio::test]
async fn rollback_to_savepoint_recovers_a_failed_block() {
    let node = TestNode::start().await;
    let c = node.connect().await;
    c.batch_execute("CREATE TABLE t (id integer PRIMARY KEY)")
        .await
        .unwrap();
    c.batch_execute("BEGIN; INSERT INTO t VALUES (1); SAVEPOINT s")
        .await
        .unwrap();
    let err = c
        .execute("INSERT INTO t VALUES (1)", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION));
    let err = c.query("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::IN_FAILED_SQL_TRANSACTION));
    c.batch_execute("ROLLBACK TO SAVEPOINT s").await.unwrap();
    let insert = c.prepare("INSERT INTO t VALUES ($1)").await.unwrap();
    c.execute(&insert, &[&2i32]).await.unwrap();
    c.batch_execute("RELEASE SAVEPOINT s; COMMIT")
        .await
        .unwrap();
    let ids: Vec<i32> = c
        .query("SELECT id FROM t ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, vec![1, 2]);
}

#[tokio::test]
async fn ready_for_query_reports_the_block_state() {
    let node = TestNode::start().await;
    let mut wire = Wire::connect(node.sql_addr).await;
    assert_eq!(
        wire.simple("CREATE TABLE w (id integer PRIMARY KEY)").await,
        b'I'
    );
    assert_eq!(wire.simple("BEGIN").await, b'T');
    assert_eq!(wire.simple("INSERT INTO w VALUES (1)").await, b'T');
    assert_eq!(wire.simple("SAVEPOINT s").await, b'T');
    assert_eq!(wire.simple("INSERT INTO w VALUES (1)").await, b'E');
    assert_eq!(wire.simple("SELECT 1").await, b'E');
    // An unknown savepoint does not take the block back.
    assert_eq!(wire.simple("ROLLBACK TO SAVEPOINT nope").await, b'E');
    assert_eq!(wire.simple("ROLLBACK TO SAVEPOINT s").await, b'T');
    // The same through the extended protocol.
    assert_eq!(wire.extended("INSERT INTO w VALUES (1)").await, b'E');
    assert_eq!(wire.extended("SELECT 1").await, b'E');
    assert_eq!(wire.extended("ROLLBACK TO SAVEPOINT s").await, b'T');
    assert_eq!(wire.extended("INSERT INTO w VALUES (2)").await, b'T');
    assert_eq!(wire.simple("COMMIT").await, b'I');
    assert_eq!(wire.simple("SAVEPOINT outside").await, b'I');
    let c = node.connect().await;
    let n: i64 = c
        .query_one("SELECT count(*) FROM w", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
}

/// Just enough of the protocol to read ReadyForQuery's status byte.
struct Wire {
    socket: TcpStream,
}

impl Wire {
    async fn connect(addr: SocketAddr) -> Wire {
        let socket = TcpStream::connect(addr).await.unwrap();
        let mut wire = Wire { socket };
        let mut body = Vec::new();
        body.extend_from_slice(&196_608u32.to_be_bytes());
        for s in ["user", "shoal", "database", "shoal", ""] {
            body.extend_from_slice(s.as_bytes());
            body.push(0);
        }
        let mut startup = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        startup.extend_from_slice(&body);
        wire.socket.write_all(&startup).await.unwrap();
        wire.ready().await;
        wire
    }

    async fn send(&mut self, tag: u8, body: &[u8]) {
        let mut message = vec![tag];
        message.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        message.extend_from_slice(body);
        self.socket.write_all(&message).await.unwrap();
    }

    /// Reads messages up to ReadyForQuery; returns its status.
    async fn ready(&mut self) -> u8 {
        loop {
            let tag = self.socket.read_u8().await.unwrap();
            let len = self.socket.read_u32().await.unwrap() as usize;
            let mut body = vec![0; len - 4];
            self.socket.read_exact(&mut body).await.unwrap();
            if tag == b'Z' {
                return body[0];
            }
        }
    }

    async fn simple(&mut self, sql: &str) -> u8 {
        let mut body = sql.as_bytes().to_vec();
        body.push(0);
        self.send(b'Q', &body).await;
        self.ready().await
    }

    async fn extended(&mut self, sql: &str) -> u8 {
        let mut parse = vec![0];
        parse.extend_from_slice(sql.as_bytes());
        parse.extend_from_slice(&[0, 0, 0]);
        self.send(b'P', &parse).await;
        // Unnamed portal and statement, no formats, no parameters.
        self.send(b'B', &[0, 0, 0, 0, 0, 0, 0, 0]).await;
        self.send(b'E', &[0, 0, 0, 0, 0]).await;
        self.send(b'S', &[]).await;
        self.ready().await
    }
}
