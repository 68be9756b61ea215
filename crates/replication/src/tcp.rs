//! The node-to-node TCP transport for Raft messages.
//!
//! # Connections
//!
//! Each node keeps one outgoing connection per peer node, owned by a tokio
//! task fed through a bounded queue. [`Transport::send`] only enqueues: it
//! never blocks the Raft thread. When the queue is full or the peer is
//! unreachable, messages are dropped — Raft retransmits what matters — and
//! the task reconnects with exponential backoff (50 ms doubling to 2 s).
//! Incoming connections are served by [`serve`], which hands every decoded
//! batch to a callback.
//!
//! # Wire format (version 1)
//!
//! A connection opens with the magic bytes `SHRL`, a protocol version byte
//! and a kind byte. A receiver that does not speak the version closes the
//! connection.
//!
//! * Kind `R`, a Raft stream: the cluster id (16 bytes), the sender's node
//!   id (8 bytes), its node-to-node address (u16 length + UTF-8). A
//!   receiver of another cluster (or none yet) closes the connection: a
//!   node never talks Raft across clusters. The receiver learns the
//!   sender's address from the handshake. Then frames, one way.
//! * Kind `C`, a control call (initialize, join): one request frame, one
//!   response frame, then the connection closes.
//!
//! Frames:
//!
//! ```text
//! kind: u8 | length: u32 (big-endian) | payload
//! ```
//!
//! * `kind = 1`: a whole batch. Payload: envelope count (u32), then each
//!   envelope as length (u32) + [`RaftEnvelope::encode`] bytes.
//! * `kind = 2` / `3`: a part / the last part of a batch too large for one
//!   frame (a snapshot, typically). Parts are at most 1 MiB; the receiver
//!   concatenates them and decodes at the last. A reassembled batch is
//!   bounded by `MAX_BATCH`; a peer exceeding it is disconnected.
//!
//! The sender coalesces everything queued for one peer into one frame per
//! write, so a busy node sends few, large frames.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::error::{ReplicationError, Result};
use crate::faults::NetFaults;
use crate::{NodeId, RaftEnvelope, Transport};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u8 = 1;
pub(crate) const MAGIC: &[u8; 4] = b"SHRL";
const CONN_RAFT: u8 = b'R';
const CONN_CONTROL: u8 = b'C';
pub(crate) const CONN_REQUESTS: u8 = b'Q';
const KIND_CONTROL: u8 = 4;
const KIND_BATCH: u8 = 1;
const KIND_PART: u8 = 2;
const KIND_LAST: u8 = 3;
/// Largest frame payload.
const MAX_PART: usize = 1 << 20;
/// Largest reassembled batch (a snapshot of a full range, with room).
const MAX_BATCH: usize = 1 << 30;
/// Batches queued per peer before new ones are dropped.
const QUEUE_DEPTH: usize = 4096;
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Node id → node-to-node address, shared with whoever learns addresses.
pub type AddressBook = Arc<RwLock<HashMap<NodeId, SocketAddr>>>;

/// Who this node is, as it introduces itself on a Raft stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Introduction {
    /// The cluster the node belongs to.
    pub cluster_id: u128,
    /// The node's id.
    pub node: NodeId,
    /// Where other nodes reach it.
    pub addr: SocketAddr,
}

/// What a node's listener serves.
pub trait NodeService: Send + Sync + 'static {
    /// The cluster this node belongs to, once it knows.
    fn cluster_id(&self) -> Option<u128>;
    /// A peer introduced itself: remember where it lives.
    fn learn_address(&self, node: NodeId, addr: SocketAddr);
    /// Raft messages from node `from`.
    fn deliver(&self, from: NodeId, batch: Vec<RaftEnvelope>);
    /// A control call; the response is returned to the caller.
    fn control(
        self: Arc<Self>,
        request: Vec<u8>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<u8>> + Send>>;
    /// A request of another node of the cluster (`tcp_requests.rs`); the
    /// answer is returned to it.
    fn request(
        self: Arc<Self>,
        request: Vec<u8>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<u8>> + Send>>;
}

/// Sends Raft messages over TCP. See the module documentation.
pub struct TcpTransport {
    me: Introduction,
    addresses: AddressBook,
    queues: Mutex<HashMap<NodeId, mpsc::Sender<Vec<RaftEnvelope>>>>,
    runtime: tokio::runtime::Handle,
    faults: Arc<NetFaults>,
}

impl std::fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpTransport")
            .field("node", &self.me.node)
            .finish_non_exhaustive()
    }
}

impl TcpTransport {
    /// A transport for the node `me`, dialing the addresses in
    /// `addresses`, its connection tasks spawned on `runtime`.
    pub fn new(me: Introduction, addresses: AddressBook, runtime: tokio::runtime::Handle) -> Self {
        TcpTransport {
            me,
            addresses,
            queues: Mutex::new(HashMap::new()),
            runtime,
            faults: Arc::default(),
        }
    }

    /// The same transport, dropping what it would send to a peer `faults`
    /// has cut (`faults.rs`).
    pub fn with_faults(mut self, faults: Arc<NetFaults>) -> Self {
        self.faults = faults;
        self
    }
}

impl Transport for TcpTransport {
    fn send(&self, to: NodeId, envelopes: Vec<RaftEnvelope>) {
        if envelopes.is_empty() || self.faults.is_cut(to) {
            return;
        }
        let mut queues = self.queues.lock();
        let queue = queues.entry(to).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
            self.runtime.spawn(connection_task(
                self.me.clone(),
                to,
                self.addresses.clone(),
                rx,
            ));
            tx
        });
        if queue.try_send(envelopes).is_err() {
            tracing::trace!(to, "raft queue full; dropping messages");
        }
    }
}

/// Owns the connection to `to`: connect, handshake, write batches;
/// reconnect with backoff on failure. Ends when the transport is dropped.
async fn connection_task(
    me: Introduction,
    to: NodeId,
    addresses: AddressBook,
    mut queue: mpsc::Receiver<Vec<RaftEnvelope>>,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let addr = addresses.read().get(&to).copied();
        let connected = match addr {
            Some(addr) => connect(&me, addr).await,
            None => Err(ReplicationError::Raft(format!("no address for node {to}"))),
        };
        let mut stream = match connected {
            Ok(stream) => {
                backoff = BACKOFF_MIN;
                tracing::debug!(to, "connected to node");
                stream
            }
            Err(e) => {
                tracing::debug!(to, error = %e, "cannot reach node; retrying");
                // Messages queued meanwhile are stale by the time we
                // connect; Raft will resend what still matters.
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                loop {
                    match queue.try_recv() {
                        Ok(_) => continue,
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => return,
                    }
                }
                continue;
            }
        };
        loop {
            let Some(mut batch) = queue.recv().await else {
                return;
            };
            while let Ok(more) = queue.try_recv() {
                batch.extend(more);
                if batch.len() >= 4096 {
                    break;
                }
            }
            if let Err(e) = write_batch(&mut stream, &batch).await {
                tracing::debug!(to, error = %e, "connection to node lost");
                break;
            }
        }
    }
}

async fn dial(addr: SocketAddr) -> Result<TcpStream> {
    let stream = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr))
        .await
        .map_err(|_| io_error(format!("connecting to {addr} timed out")))?
        .map_err(|e| io_error(format!("cannot connect to {addr}: {e}")))?;
    stream
        .set_nodelay(true)
        .map_err(|e| io_error(e.to_string()))?;
    Ok(stream)
}

async fn connect(me: &Introduction, addr: SocketAddr) -> Result<BufWriter<TcpStream>> {
    let mut stream = BufWriter::new(dial(addr).await?);
    let mut hello = MAGIC.to_vec();
    hello.push(PROTOCOL_VERSION);
    hello.push(CONN_RAFT);
    hello.extend_from_slice(&me.cluster_id.to_be_bytes());
    hello.extend_from_slice(&me.node.to_be_bytes());
    let addr = me.addr.to_string();
    hello.extend_from_slice(&(addr.len() as u16).to_be_bytes());
    hello.extend_from_slice(addr.as_bytes());
    stream
        .write_all(&hello)
        .await
        .map_err(|e| io_error(e.to_string()))?;
    Ok(stream)
}

/// Makes a control call to the node at `addr`: sends `request`, returns
/// the response, within `timeout`.
pub async fn call(addr: SocketAddr, request: &[u8], timeout: Duration) -> Result<Vec<u8>> {
    let exchange = async {
        let mut stream = BufWriter::new(dial(addr).await?);
        let io = |e: std::io::Error| io_error(e.to_string());
        let mut hello = MAGIC.to_vec();
        hello.push(PROTOCOL_VERSION);
        hello.push(CONN_CONTROL);
        stream.write_all(&hello).await.map_err(io)?;
        if request.len() > MAX_PART {
            return Err(ReplicationError::Codec(
                "control request too large".to_string(),
            ));
        }
        write_frame(&mut stream, KIND_CONTROL, request)
            .await
            .map_err(io)?;
        stream.flush().await.map_err(io)?;
        let mut stream = stream.into_inner();
        let kind = stream.read_u8().await.map_err(io)?;
        let len = stream.read_u32().await.map_err(io)? as usize;
        if kind != KIND_CONTROL || len > MAX_PART {
            return Err(ReplicationError::Codec("bad control response".to_string()));
        }
        let mut response = vec![0u8; len];
        stream.read_exact(&mut response).await.map_err(io)?;
        Ok(response)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| io_error(format!("control call to {addr} timed out")))?
}

pub(crate) fn io_error(message: String) -> ReplicationError {
    ReplicationError::Storage(shoal_storage::StorageError::Io(message))
}

/// Encodes a batch: count, then length-prefixed envelopes.
pub fn encode_batch(batch: &[RaftEnvelope]) -> Result<Vec<u8>> {
    let count = u32::try_from(batch.len())
        .map_err(|_| ReplicationError::Codec("batch too large".to_string()))?;
    let mut out = count.to_be_bytes().to_vec();
    for envelope in batch {
        let bytes = envelope.encode()?;
        let len = u32::try_from(bytes.len())
            .map_err(|_| ReplicationError::Codec("envelope too large".to_string()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&bytes);
    }
    Ok(out)
}

/// Decodes [`encode_batch`]'s output.
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<RaftEnvelope>> {
    let truncated = || ReplicationError::Codec("batch is truncated".to_string());
    let (count, mut rest) = bytes.split_first_chunk::<4>().ok_or_else(truncated)?;
    let count = u32::from_be_bytes(*count) as usize;
    let mut out = Vec::with_capacity(count.min(4096));
    for _ in 0..count {
        let (len, tail) = rest.split_first_chunk::<4>().ok_or_else(truncated)?;
        let len = u32::from_be_bytes(*len) as usize;
        let body = tail.get(..len).ok_or_else(truncated)?;
        out.push(RaftEnvelope::decode(body)?);
        rest = &tail[len..];
    }
    if !rest.is_empty() {
        return Err(ReplicationError::Codec(
            "trailing bytes after batch".to_string(),
        ));
    }
    Ok(out)
}

async fn write_batch(stream: &mut BufWriter<TcpStream>, batch: &[RaftEnvelope]) -> Result<()> {
    let payload = encode_batch(batch)?;
    let io = |e: std::io::Error| io_error(e.to_string());
    if payload.len() <= MAX_PART {
        write_frame(stream, KIND_BATCH, &payload)
            .await
            .map_err(io)?;
    } else {
        let parts: Vec<&[u8]> = payload.chunks(MAX_PART).collect();
        let last = parts.len() - 1;
        for (i, part) in parts.into_iter().enumerate() {
            let kind = if i == last { KIND_LAST } else { KIND_PART };
            write_frame(stream, kind, part).await.map_err(io)?;
        }
    }
    stream.flush().await.map_err(io)
}

async fn write_frame(
    stream: &mut BufWriter<TcpStream>,
    kind: u8,
    payload: &[u8],
) -> std::io::Result<()> {
    stream.write_u8(kind).await?;
    // Payloads are at most MAX_PART bytes, far below u32::MAX.
    stream.write_u32(payload.len() as u32).await?;
    stream.write_all(payload).await
}

/// Accepts node connections on `listener` forever, serving them with
/// `service`.
pub async fn serve(listener: TcpListener, service: Arc<dyn NodeService>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let service = service.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve_connection(stream, service).await {
                        tracing::debug!(%peer, error = %e, "node connection closed");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accepting a node connection failed");
                tokio::time::sleep(BACKOFF_MIN).await;
            }
        }
    }
}

async fn serve_connection(stream: TcpStream, service: Arc<dyn NodeService>) -> Result<()> {
    let io = |e: std::io::Error| io_error(e.to_string());
    stream.set_nodelay(true).map_err(io)?;
    let mut stream = tokio::io::BufReader::new(stream);
    let mut hello = [0u8; 6];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut hello))
        .await
        .map_err(|_| io_error("handshake timed out".to_string()))?
        .map_err(io)?;
    if &hello[..4] != MAGIC {
        return Err(ReplicationError::Codec(
            "not a Shoal node connection".to_string(),
        ));
    }
    if hello[4] != PROTOCOL_VERSION {
        return Err(ReplicationError::Codec(format!(
            "node speaks protocol version {}, this node {PROTOCOL_VERSION}",
            hello[4]
        )));
    }
    match hello[5] {
        CONN_RAFT => {
            let cluster_id = stream.read_u128().await.map_err(io)?;
            let from = stream.read_u64().await.map_err(io)?;
            let len = stream.read_u16().await.map_err(io)? as usize;
            let mut addr = vec![0u8; len];
            stream.read_exact(&mut addr).await.map_err(io)?;
            if service.cluster_id() != Some(cluster_id) {
                return Err(ReplicationError::Codec(format!(
                    "node {from} belongs to another cluster ({cluster_id:032x})"
                )));
            }
            if let Some(addr) = std::str::from_utf8(&addr)
                .ok()
                .and_then(|a| a.parse::<SocketAddr>().ok())
            {
                service.learn_address(from, addr);
            }
            read_raft_stream(stream, from, service.as_ref()).await
        }
        CONN_CONTROL => {
            let kind = stream.read_u8().await.map_err(io)?;
            let len = stream.read_u32().await.map_err(io)? as usize;
            if kind != KIND_CONTROL || len > MAX_PART {
                return Err(ReplicationError::Codec("bad control request".to_string()));
            }
            let mut request = vec![0u8; len];
            stream.read_exact(&mut request).await.map_err(io)?;
            let response = service.clone().control(request).await;
            let mut stream = BufWriter::new(stream.into_inner());
            write_frame(&mut stream, KIND_CONTROL, &response)
                .await
                .map_err(io)?;
            stream.flush().await.map_err(io)
        }
        CONN_REQUESTS => crate::tcp_requests::serve_requests(stream, service).await,
        other => Err(ReplicationError::Codec(format!(
            "unknown connection kind {other}"
        ))),
    }
}

async fn read_raft_stream(
    mut stream: tokio::io::BufReader<TcpStream>,
    from: NodeId,
    service: &dyn NodeService,
) -> Result<()> {
    let io = |e: std::io::Error| io_error(e.to_string());
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let kind = match stream.read_u8().await {
            Ok(kind) => kind,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(io(e)),
        };
        let len = stream.read_u32().await.map_err(io)? as usize;
        if len > MAX_PART {
            return Err(ReplicationError::Codec(format!("frame of {len} bytes")));
        }
        let mut payload = vec![0u8; len];
        stream.read_exact(&mut payload).await.map_err(io)?;
        let batch = match kind {
            KIND_BATCH => payload,
            KIND_PART | KIND_LAST => {
                if pending.len() + payload.len() > MAX_BATCH {
                    return Err(ReplicationError::Codec("batch over the size limit".into()));
                }
                pending.extend_from_slice(&payload);
                if kind == KIND_PART {
                    continue;
                }
                std::mem::take(&mut pending)
            }
            other => {
                return Err(ReplicationError::Codec(format!(
                    "unknown frame kind {other}"
                )));
            }
        };
        service.deliver(from, decode_batch(&batch)?);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use raft::prelude::{Message, MessageType};

    fn envelope(range: u64, to: NodeId, payload: usize) -> RaftEnvelope {
        let mut message = Message::default();
        message.set_msg_type(MessageType::MsgSnapshot);
        message.from = 1;
        message.to = to;
        message.mut_snapshot().data = vec![7u8; payload].into();
        RaftEnvelope { range, message }
    }

    #[test]
    fn batches_round_trip() {
        let batch = vec![envelope(1, 2, 3), envelope(2, 2, 0)];
        assert_eq!(decode_batch(&encode_batch(&batch).unwrap()).unwrap(), batch);
        assert!(decode_batch(&[0, 0, 0, 1]).is_err());
    }

    struct Recorder {
        cluster: u128,
        delivered: mpsc::UnboundedSender<(NodeId, Vec<RaftEnvelope>)>,
        learned: Mutex<Vec<(NodeId, SocketAddr)>>,
    }

    impl NodeService for Recorder {
        fn cluster_id(&self) -> Option<u128> {
            Some(self.cluster)
        }
        fn learn_address(&self, node: NodeId, addr: SocketAddr) {
            self.learned.lock().push((node, addr));
        }
        fn deliver(&self, from: NodeId, batch: Vec<RaftEnvelope>) {
            let _ = self.delivered.send((from, batch));
        }
        fn control(
            self: Arc<Self>,
            request: Vec<u8>,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<u8>> + Send>> {
            Box::pin(async move { [b"echo:".as_slice(), &request].concat() })
        }
        fn request(
            self: Arc<Self>,
            request: Vec<u8>,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<u8>> + Send>> {
            Box::pin(async move { [b"answer:".as_slice(), &request].concat() })
        }
    }

    fn introduction(cluster_id: u128) -> Introduction {
        Introduction {
            cluster_id,
            node: 1,
            addr: "127.0.0.1:9".parse().unwrap(),
        }
    }

    /// Small and multi-part (over 1 MiB) batches cross a real socket, in
    /// order, tagged with the sender, whose address the receiver learns;
    /// control calls get their answer; another cluster is refused.
    #[tokio::test]
    async fn delivers_small_and_chunked_batches() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let service = Arc::new(Recorder {
            cluster: 42,
            delivered: tx,
            learned: Mutex::new(Vec::new()),
        });
        tokio::spawn(serve(listener, service.clone()));
        let book: AddressBook = Arc::new(RwLock::new(HashMap::from([(2, addr)])));
        let stranger = TcpTransport::new(
            introduction(7),
            book.clone(),
            tokio::runtime::Handle::current(),
        );
        stranger.send(2, vec![envelope(4, 2, 1)]);
        let transport =
            TcpTransport::new(introduction(42), book, tokio::runtime::Handle::current());
        transport.send(2, vec![envelope(5, 2, 10)]);
        transport.send(2, vec![envelope(6, 2, 3 << 20)]);
        let mut got = Vec::new();
        while got.len() < 2 {
            let (from, batch) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(from, 1);
            got.extend(batch);
        }
        assert_eq!(got[0].range, 5);
        assert_eq!(got[1].range, 6);
        assert_eq!(got[1].message.get_snapshot().get_data().len(), 3 << 20);
        assert_eq!(
            service.learned.lock()[0],
            (1, "127.0.0.1:9".parse().unwrap())
        );
        let answer = call(addr, b"ping", Duration::from_secs(5)).await.unwrap();
        assert_eq!(answer, b"echo:ping");
        // Requests: several on one pooled connection, a large one, and
        // none across clusters.
        let requests = crate::tcp_requests::TcpRequests::new(42, book_for(2, addr));
        let strangers = crate::tcp_requests::TcpRequests::new(7, book_for(2, addr));
        let answers = tokio::task::spawn_blocking(move || {
            use crate::NodeRequests;
            let timeout = Duration::from_secs(5);
            let big = vec![9u8; 3 << 20];
            (
                requests.request(2, b"one", timeout).unwrap(),
                requests.request(2, b"two", timeout).unwrap(),
                requests.request(2, &big, timeout).unwrap().len(),
                requests.request(3, b"nobody", timeout).is_err(),
                strangers.request(2, b"one", timeout).is_err(),
            )
        })
        .await
        .unwrap();
        assert_eq!(answers.0, b"answer:one");
        assert_eq!(answers.1, b"answer:two");
        assert_eq!(answers.2, (3 << 20) + 7);
        assert!(answers.3, "a node without an address cannot be asked");
        assert!(answers.4, "another cluster is not answered");
    }

    fn book_for(node: NodeId, addr: SocketAddr) -> AddressBook {
        Arc::new(RwLock::new(HashMap::from([(node, addr)])))
    }
}
