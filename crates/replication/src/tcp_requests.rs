//! Requests between nodes over TCP: the [`NodeRequests`] of a real
//! cluster.
//!
//! # Connections
//!
//! A request connection opens like every node connection (`tcp.rs`): the
//! magic bytes, the protocol version, its kind (`Q`), then the cluster id
//! (16 bytes). A node of another cluster (or of none yet) closes it. Then
//! it carries requests and answers in turn, each `length u32 | payload`,
//! one at a time; the serving side answers each before reading the next.
//!
//! The asking side is blocking (its callers are blocking KV calls) and
//! keeps idle connections per node for reuse, so a request costs one round
//! trip, not a handshake. A pooled connection that fails before answering
//! (its peer restarted) is replaced by a fresh one once; any other failure
//! is reported, and the caller asks another node.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{ReplicationError, Result};
use crate::faults::NetFaults;
use crate::tcp::{AddressBook, CONN_REQUESTS, MAGIC, NodeService, PROTOCOL_VERSION, io_error};
use crate::{NodeId, NodeRequests};

/// Largest request or answer.
const MAX_MESSAGE: usize = 256 << 20;
/// Idle connections kept per node.
const MAX_IDLE: usize = 16;

/// Asks other nodes over TCP. See the module documentation.
pub struct TcpRequests {
    cluster_id: u128,
    addresses: AddressBook,
    idle: Mutex<HashMap<NodeId, Vec<TcpStream>>>,
    faults: Arc<NetFaults>,
}

impl std::fmt::Debug for TcpRequests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpRequests").finish_non_exhaustive()
    }
}

impl TcpRequests {
    /// Requests of a node of cluster `cluster_id`, to the nodes in
    /// `addresses`.
    pub fn new(cluster_id: u128, addresses: AddressBook) -> Self {
        TcpRequests {
            cluster_id,
            addresses,
            idle: Mutex::new(HashMap::new()),
            faults: Arc::default(),
        }
    }

    /// The same requests, to a peer `faults` has cut waiting out their
    /// timeout and failing as unreachable (`faults.rs`).
    pub fn with_faults(mut self, faults: Arc<NetFaults>) -> Self {
        self.faults = faults;
        self
    }

    fn connect(&self, to: NodeId, timeout: Duration) -> std::io::Result<TcpStream> {
        let addr = self.addresses.read().get(&to).copied().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no address is known for node {to}"),
            )
        })?;
        let mut stream = TcpStream::connect_timeout(&addr, timeout.max(Duration::from_millis(1)))?;
        stream.set_nodelay(true)?;
        let mut hello = MAGIC.to_vec();
        hello.push(PROTOCOL_VERSION);
        hello.push(CONN_REQUESTS);
        hello.extend_from_slice(&self.cluster_id.to_be_bytes());
        stream.write_all(&hello)?;
        Ok(stream)
    }
}

/// One request and its answer on `stream`, by `deadline`.
fn exchange(stream: &mut TcpStream, payload: &[u8], deadline: Instant) -> std::io::Result<Vec<u8>> {
    let remaining = || {
        Some(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        )
    };
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&n| n as usize <= MAX_MESSAGE)
        .ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "request too large")
        })?;
    let mut frame = Vec::with_capacity(4 + payload.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(payload);
    stream.set_write_timeout(remaining())?;
    stream.write_all(&frame)?;
    stream.set_read_timeout(remaining())?;
    let mut header = [0u8; 4];
    stream.read_exact(&mut header)?;
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_MESSAGE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "answer too large",
        ));
    }
    let mut answer = vec![0u8; len];
    stream.set_read_timeout(remaining())?;
    stream.read_exact(&mut answer)?;
    Ok(answer)
}

impl NodeRequests for TcpRequests {
    fn request(&self, to: NodeId, payload: &[u8], timeout: Duration) -> Result<Vec<u8>> {
        crate::blocking::wait(|| self.request_now(to, payload, timeout))
    }

    fn nodes(&self) -> Vec<NodeId> {
        let mut nodes: Vec<NodeId> = self.addresses.read().keys().copied().collect();
        nodes.sort_unstable();
        nodes
    }
}

impl TcpRequests {
    /// [`NodeRequests::request`], waiting on this thread.
    fn request_now(&self, to: NodeId, payload: &[u8], timeout: Duration) -> Result<Vec<u8>> {
        if self.faults.is_cut(to) {
            std::thread::sleep(timeout);
            return Err(ReplicationError::Unreachable(format!(
                "cannot reach node {to}: the link is cut by fault injection"
            )));
        }
        let deadline = Instant::now() + timeout;
        let failed = |e: std::io::Error| io_error(format!("request to node {to} failed: {e}"));
        let unreachable = |e: std::io::Error| {
            ReplicationError::Unreachable(format!("cannot reach node {to}: {e}"))
        };
        let pooled = self.idle.lock().get_mut(&to).and_then(Vec::pop);
        let (stream, answer) = match pooled {
            Some(mut stream) => match exchange(&mut stream, payload, deadline) {
                Ok(answer) => (stream, answer),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                    ) =>
                {
                    return Err(failed(e));
                }
                Err(_) => {
                    // Closed while idle: the peer restarted.
                    let mut fresh = self
                        .connect(to, deadline.saturating_duration_since(Instant::now()))
                        .map_err(unreachable)?;
                    let answer = exchange(&mut fresh, payload, deadline).map_err(failed)?;
                    (fresh, answer)
                }
            },
            None => {
                let mut fresh = self.connect(to, timeout).map_err(unreachable)?;
                let answer = exchange(&mut fresh, payload, deadline).map_err(failed)?;
                (fresh, answer)
            }
        };
        // Idle connections wait without a timeout.
        if stream.set_read_timeout(None).is_ok() {
            let mut idle = self.idle.lock();
            let pool = idle.entry(to).or_default();
            if pool.len() < MAX_IDLE {
                pool.push(stream);
            }
        } else {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        Ok(answer)
    }
}

/// Serves a request connection (its kind byte already read): checks the
/// cluster id, then answers requests one after the other until the asking
/// side closes.
pub(crate) async fn serve_requests(
    mut stream: tokio::io::BufReader<tokio::net::TcpStream>,
    service: Arc<dyn NodeService>,
) -> Result<()> {
    let io = |e: std::io::Error| io_error(e.to_string());
    let cluster_id = stream.read_u128().await.map_err(io)?;
    if service.cluster_id() != Some(cluster_id) {
        return Err(ReplicationError::Codec(format!(
            "a request of another cluster ({cluster_id:032x})"
        )));
    }
    loop {
        let len = match stream.read_u32().await {
            Ok(len) => len as usize,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(io(e)),
        };
        if len > MAX_MESSAGE {
            return Err(ReplicationError::Codec("request too large".to_string()));
        }
        let mut request = vec![0u8; len];
        stream.read_exact(&mut request).await.map_err(io)?;
        let answer = service.clone().request(request).await;
        let len = u32::try_from(answer.len())
            .ok()
            .filter(|&n| n as usize <= MAX_MESSAGE)
            .ok_or_else(|| ReplicationError::Codec("answer too large".to_string()))?;
        let mut frame = Vec::with_capacity(4 + answer.len());
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&answer);
        let inner = stream.get_mut();
        inner.write_all(&frame).await.map_err(io)?;
        inner.flush().await.map_err(io)?;
    }
}
