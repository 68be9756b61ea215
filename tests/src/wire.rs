//! [`Wire`]: just enough of the PostgreSQL protocol, spoken over a raw
//! socket, for tests that must see exactly which messages the server sends
//! and when (a driver hides both).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A raw protocol connection as user `shoal` to database `shoal`.
pub struct Wire {
    socket: TcpStream,
}

impl Wire {
    /// Connects and completes startup (no password).
    pub async fn connect(addr: SocketAddr) -> Wire {
        let socket = TcpStream::connect(addr).await.expect("connect");
        let mut wire = Wire { socket };
        let mut body = Vec::new();
        body.extend_from_slice(&196_608u32.to_be_bytes());
        for s in ["user", "shoal", "database", "shoal", ""] {
            body.extend_from_slice(s.as_bytes());
            body.push(0);
        }
        let mut startup = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        startup.extend_from_slice(&body);
        wire.socket.write_all(&startup).await.expect("startup");
        wire.ready().await;
        wire
    }

    /// Sends one message: `tag`, length, `body`.
    pub async fn send(&mut self, tag: u8, body: &[u8]) {
        let mut message = vec![tag];
        message.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        message.extend_from_slice(body);
        self.socket.write_all(&message).await.expect("send");
    }

    /// Sends `bytes` as they are, framing and all (for malformed frames).
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.socket.write_all(bytes).await.expect("send");
    }

    /// The next message from the server: its tag and body.
    pub async fn message(&mut self) -> (u8, Vec<u8>) {
        let tag = self.socket.read_u8().await.expect("read a tag");
        let len = self.socket.read_u32().await.expect("read a length") as usize;
        let mut body = vec![0; len.saturating_sub(4)];
        self.socket
            .read_exact(&mut body)
            .await
            .expect("read a body");
        (tag, body)
    }

    /// The next message if one arrives within `wait`.
    pub async fn message_within(&mut self, wait: Duration) -> Option<(u8, Vec<u8>)> {
        let mut tag = [0u8];
        match tokio::time::timeout(wait, self.socket.peek(&mut tag)).await {
            Ok(Ok(n)) if n > 0 => Some(self.message().await),
            _ => None,
        }
    }

    /// Reads messages up to ReadyForQuery; returns its status.
    pub async fn ready(&mut self) -> u8 {
        loop {
            let (tag, body) = self.message().await;
            if tag == b'Z' {
                return body[0];
            }
        }
    }

    /// Runs `sql` through the simple protocol; returns the status after.
    pub async fn simple(&mut self, sql: &str) -> u8 {
        let mut body = sql.as_bytes().to_vec();
        body.push(0);
        self.send(b'Q', &body).await;
        self.ready().await
    }

    /// Sends Parse, Bind and Execute of `sql` (unnamed statement and
    /// portal, no parameters), without Sync.
    pub async fn parse_bind_execute(&mut self, sql: &str) {
        let mut parse = vec![0];
        parse.extend_from_slice(sql.as_bytes());
        parse.extend_from_slice(&[0, 0, 0]);
        self.send(b'P', &parse).await;
        // Unnamed portal and statement, no formats, no parameters.
        self.send(b'B', &[0, 0, 0, 0, 0, 0, 0, 0]).await;
        self.send(b'E', &[0, 0, 0, 0, 0]).await;
    }

    /// The tags of the messages that arrive, up to and including the first
    /// with tag `last` (each within five seconds).
    pub async fn tags_until(&mut self, last: u8) -> Vec<u8> {
        let mut tags = Vec::new();
        while let Some((tag, _)) = self.message_within(Duration::from_secs(5)).await {
            tags.push(tag);
            if tag == last {
                break;
            }
        }
        tags
    }

    /// Runs `sql` through the extended protocol; returns the status after.
    pub async fn extended(&mut self, sql: &str) -> u8 {
        self.parse_bind_execute(sql).await;
        self.send(b'S', &[]).await;
        self.ready().await
    }

    /// Reads messages up to ReadyForQuery; returns the SQLSTATE of each
    /// ErrorResponse on the way, and the status.
    pub async fn errors_until_ready(&mut self) -> (Vec<String>, u8) {
        let mut codes = Vec::new();
        loop {
            let (tag, body) = self.message().await;
            match tag {
                b'Z' => return (codes, body[0]),
                b'E' => codes.push(error_code(&body)),
                _ => {}
            }
        }
    }
}

/// The SQLSTATE field of an ErrorResponse's body.
fn error_code(body: &[u8]) -> String {
    let mut fields = body.split(|b| *b == 0);
    fields
        .find_map(|field| field.strip_prefix(b"C"))
        .map(|code| String::from_utf8_lossy(code).into_owned())
        .unwrap_or_default()
}
