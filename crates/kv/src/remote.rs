//! Serving ranges this node holds no replica of, by asking a node that
//! does.
//!
//! # Who asks whom
//!
//! A key is routed to a local replica if this node has one (`store.rs`),
//! else to the range's record in the directory (`directory.rs`), whose
//! replicas are asked in turn — the leader it names first — through the
//! node's [`NodeRequests`]. The asked node serves only from its own
//! replicas, never asking a third: a request is one hop. It answers
//! [`Answer::Failed`] with [`WireError::NotHere`] if it holds no replica
//! containing what was asked (the range moved or split since the record
//! was written); the asking node then tries the next replica, and when
//! none has it, reloads its directory and routes again, until the request
//! deadline. Any other answer — data, a write conflict, an unavailable
//! range — is the answer.
//!
//! # Requests
//!
//! * `Sync { range, read_ts }` — the read barrier of `Kv::begin` for a
//!   node without a replica of the first range; answers the range's
//!   `last_commit` after it.
//! * `Get` / `Scan` at a read timestamp — what `Txn::get` and `Txn::scan`
//!   read from a local replica, done on the asked node: the range joins
//!   the snapshot there (its barrier registers the timestamp with the
//!   leader), intents are settled, uncertainty is checked. The asking
//!   transaction merges its own buffered writes itself. A scan is asked
//!   for within one range's bounds and answers at most `limit` pairs.
//! * `Propose { range, command }` — a command proposed on the asked node
//!   with its retries ([`RaftHandle::propose_idempotent`]: every command
//!   proposed this way is applied at most once).
//! * `ReadRaw { range, key }` — a raw key of a range after its barrier (a
//!   transaction record).
//! * `Directory` — the records the first range holds (asked by a node
//!   without a replica of it); `MetaRecords { range }` — those a meta range
//!   holds (`meta.rs`).
//! * `RangeSize { range }` — a range's size in bytes (`SHOW RANGES`).
//! * `Relocate { range, from, to }` / `TransferLease { range, to }` — a
//!   step of the rebalancer's move, on the range's leader
//!   (`rebalance.rs`).
//! * `SplitAt { key }` — `ALTER TABLE … SPLIT AT` for a range held by the
//!   asked node (which measures the sides' sizes from its replica).
//! * `MergeInfo { range }` / `AppliedIndex { range }` — what the merge
//!   driver needs of a range, from the asked node's replica (`merge.rs`).
//!
//! Wire format: a tag byte, then the fields (`codec.rs`). Errors travel as
//! a code and their fields, so a remote write conflict or uncertain read
//! is the same [`KvError`] as a local one.
//!
//! [`RaftHandle::propose_idempotent`]: shoal_replication::RaftHandle::propose_idempotent

use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal_replication::{RangeId, ReplicationError};

use crate::clock::Timestamp;
use crate::codec::{Reader, corrupt, put_field, put_optional_field};
use crate::directory::RangeRecord;
use crate::error::{KvError, Result};
use crate::store::Kv;

/// Key-value pairs in key order.
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Pairs a forwarded scan asks for at once.
pub(crate) const SCAN_BATCH: usize = 1024;
/// Bytes of pairs after which a forwarded scan's answer stops early.
const SCAN_BYTES: usize = 4 << 20;
/// Pairs the serving side reads between checks of [`SCAN_BYTES`].
const SCAN_CHUNK: usize = 128;

/// A request to another node. See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    Sync {
        range: RangeId,
        read_ts: Timestamp,
    },
    Get {
        read_ts: Timestamp,
        key: Vec<u8>,
    },
    Scan {
        read_ts: Timestamp,
        start: Vec<u8>,
        end: Option<Vec<u8>>,
        limit: u32,
    },
    Propose {
        range: RangeId,
        command: Vec<u8>,
    },
    ReadRaw {
        range: RangeId,
        key: Vec<u8>,
    },
    Directory,
    RangeSize {
        range: RangeId,
    },
    Relocate {
        range: RangeId,
        from: u64,
        to: u64,
    },
    TransferLease {
        range: RangeId,
        to: u64,
    },
    SplitAt {
        key: Vec<u8>,
    },
    MergeInfo {
        range: RangeId,
    },
    AppliedIndex {
        range: RangeId,
    },
    MetaRecords {
        range: RangeId,
    },
}

/// The answer to a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    Synced(Timestamp),
    Value(Option<Vec<u8>>),
    /// Pairs, and whether the span may hold more after them.
    Pairs(Pairs, bool),
    Reply(Vec<u8>),
    Records(Vec<RangeRecord>),
    Size(u64),
    Done,
    Range(RangeId),
    Index(u64),
    Failed(WireError),
}

/// A [`KvError`] as it crosses the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WireError {
    /// The asked node holds no replica with what was asked.
    NotHere(String),
    WriteConflict {
        key: Vec<u8>,
        note: String,
    },
    SnapshotTooOld {
        read_ts: u64,
        threshold: u64,
    },
    Uncertain {
        key: String,
        ts: u64,
    },
    Unavailable(String),
    Ambiguous(String),
    InvalidSplit {
        key: String,
        reason: String,
    },
    Other(String),
}

const SYNC: u8 = 1;
const GET: u8 = 2;
const SCAN: u8 = 3;
const PROPOSE: u8 = 4;
const READ_RAW: u8 = 5;
const DIRECTORY: u8 = 6;
const RANGE_SIZE: u8 = 7;
const RELOCATE: u8 = 8;
const TRANSFER_LEASE: u8 = 9;
const SPLIT_AT: u8 = 10;
const MERGE_INFO: u8 = 11;
const APPLIED_INDEX: u8 = 12;
const META_RECORDS: u8 = 13;

const SYNCED: u8 = 1;
const VALUE: u8 = 2;
const PAIRS: u8 = 3;
const REPLY: u8 = 4;
const RECORDS: u8 = 5;
const SIZE: u8 = 6;
const FAILED: u8 = 7;
const DONE: u8 = 8;
const RANGE: u8 = 9;
const INDEX: u8 = 10;

impl Request {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let u64 = |out: &mut Vec<u8>, n: u64| out.extend_from_slice(&n.to_be_bytes());
        match self {
            Request::Sync { range, read_ts } => {
                out.push(SYNC);
                u64(&mut out, *range);
                u64(&mut out, *read_ts);
            }
            Request::Get { read_ts, key } => {
                out.push(GET);
                u64(&mut out, *read_ts);
                put_field(&mut out, key);
            }
            Request::Scan {
                read_ts,
                start,
                end,
                limit,
            } => {
                out.push(SCAN);
                u64(&mut out, *read_ts);
                put_field(&mut out, start);
                put_optional_field(&mut out, end.as_deref());
                out.extend_from_slice(&limit.to_be_bytes());
            }
            Request::Propose { range, command } => {
                out.push(PROPOSE);
                u64(&mut out, *range);
                put_field(&mut out, command);
            }
            Request::ReadRaw { range, key } => {
                out.push(READ_RAW);
                u64(&mut out, *range);
                put_field(&mut out, key);
            }
            Request::Directory => out.push(DIRECTORY),
            Request::RangeSize { range } => {
                out.push(RANGE_SIZE);
                u64(&mut out, *range);
            }
            Request::Relocate { range, from, to } => {
                out.push(RELOCATE);
                u64(&mut out, *range);
                u64(&mut out, *from);
                u64(&mut out, *to);
            }
            Request::TransferLease { range, to } => {
                out.push(TRANSFER_LEASE);
                u64(&mut out, *range);
                u64(&mut out, *to);
            }
            Request::SplitAt { key } => {
                out.push(SPLIT_AT);
                put_field(&mut out, key);
            }
            Request::MergeInfo { range } => {
                out.push(MERGE_INFO);
                u64(&mut out, *range);
            }
            Request::AppliedIndex { range } => {
                out.push(APPLIED_INDEX);
                u64(&mut out, *range);
            }
            Request::MetaRecords { range } => {
                out.push(META_RECORDS);
                u64(&mut out, *range);
            }
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Request> {
        let mut r = Reader(bytes);
        let request = match r.u8()? {
            SYNC => Request::Sync {
                range: r.u64()?,
                read_ts: r.u64()?,
            },
            GET => Request::Get {
                read_ts: r.u64()?,
                key: r.field()?,
            },
            SCAN => Request::Scan {
                read_ts: r.u64()?,
                start: r.field()?,
                end: r.optional_field()?,
                limit: r.u32()?,
            },
            PROPOSE => Request::Propose {
                range: r.u64()?,
                command: r.field()?,
            },
            READ_RAW => Request::ReadRaw {
                range: r.u64()?,
                key: r.field()?,
            },
            DIRECTORY => Request::Directory,
            RANGE_SIZE => Request::RangeSize { range: r.u64()? },
            RELOCATE => Request::Relocate {
                range: r.u64()?,
                from: r.u64()?,
                to: r.u64()?,
            },
            TRANSFER_LEASE => Request::TransferLease {
                range: r.u64()?,
                to: r.u64()?,
            },
            SPLIT_AT => Request::SplitAt { key: r.field()? },
            MERGE_INFO => Request::MergeInfo { range: r.u64()? },
            APPLIED_INDEX => Request::AppliedIndex { range: r.u64()? },
            META_RECORDS => Request::MetaRecords { range: r.u64()? },
            _ => return Err(corrupt("unknown request")),
        };
        r.finish()?;
        Ok(request)
    }
}

impl Answer {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Answer::Synced(ts) => {
                out.push(SYNCED);
                out.extend_from_slice(&ts.to_be_bytes());
            }
            Answer::Value(value) => {
                out.push(VALUE);
                put_optional_field(&mut out, value.as_deref());
            }
            Answer::Pairs(pairs, more) => {
                out.push(PAIRS);
                out.push(u8::from(*more));
                out.extend_from_slice(&(pairs.len() as u32).to_be_bytes());
                for (key, value) in pairs {
                    put_field(&mut out, key);
                    put_field(&mut out, value);
                }
            }
            Answer::Reply(reply) => {
                out.push(REPLY);
                put_field(&mut out, reply);
            }
            Answer::Records(records) => {
                out.push(RECORDS);
                out.extend_from_slice(&(records.len() as u32).to_be_bytes());
                for record in records {
                    put_field(&mut out, &record.encode());
                }
            }
            Answer::Size(n) => {
                out.push(SIZE);
                out.extend_from_slice(&n.to_be_bytes());
            }
            Answer::Done => out.push(DONE),
            Answer::Range(range) => {
                out.push(RANGE);
                out.extend_from_slice(&range.to_be_bytes());
            }
            Answer::Index(index) => {
                out.push(INDEX);
                out.extend_from_slice(&index.to_be_bytes());
            }
            Answer::Failed(error) => {
                out.push(FAILED);
                error.put(&mut out);
            }
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Answer> {
        let mut r = Reader(bytes);
        let answer = match r.u8()? {
            SYNCED => Answer::Synced(r.u64()?),
            VALUE => Answer::Value(r.optional_field()?),
            PAIRS => {
                let more = r.u8()? != 0;
                let n = r.u32()? as usize;
                let mut pairs = Vec::with_capacity(n.min(SCAN_BATCH));
                for _ in 0..n {
                    pairs.push((r.field()?, r.field()?));
                }
                Answer::Pairs(pairs, more)
            }
            REPLY => Answer::Reply(r.field()?),
            RECORDS => {
                let n = r.u32()? as usize;
                let mut records = Vec::with_capacity(n.min(1 << 16));
                for _ in 0..n {
                    records.push(RangeRecord::decode(&r.field()?)?);
                }
                Answer::Records(records)
            }
            SIZE => Answer::Size(r.u64()?),
            DONE => Answer::Done,
            RANGE => Answer::Range(r.u64()?),
            INDEX => Answer::Index(r.u64()?),
            FAILED => Answer::Failed(WireError::read(&mut r)?),
            _ => return Err(corrupt("unknown answer")),
        };
        r.finish()?;
        Ok(answer)
    }
}

impl WireError {
    fn from_kv(error: KvError) -> WireError {
        match error {
            KvError::Misrouted(m) => WireError::NotHere(m),
            KvError::Replication(ReplicationError::RangeNotFound(r)) => {
                WireError::NotHere(format!("range {r} has no replica on the asked node"))
            }
            KvError::WriteConflict { key, note } => WireError::WriteConflict { key, note },
            KvError::SnapshotTooOld { read_ts, threshold } => {
                WireError::SnapshotTooOld { read_ts, threshold }
            }
            KvError::ReadWithinUncertainty { key, ts } => WireError::Uncertain { key, ts },
            KvError::Unavailable(m) => WireError::Unavailable(m),
            KvError::Ambiguous(m) => WireError::Ambiguous(m),
            KvError::InvalidSplit { key, reason } => WireError::InvalidSplit { key, reason },
            other => WireError::Other(other.to_string()),
        }
    }

    fn into_kv(self, node: u64) -> KvError {
        match self {
            WireError::NotHere(m) => KvError::Misrouted(m),
            WireError::WriteConflict { key, note } => KvError::WriteConflict { key, note },
            WireError::SnapshotTooOld { read_ts, threshold } => {
                KvError::SnapshotTooOld { read_ts, threshold }
            }
            WireError::Uncertain { key, ts } => KvError::ReadWithinUncertainty { key, ts },
            WireError::Unavailable(m) => KvError::Unavailable(m),
            WireError::Ambiguous(m) => KvError::Ambiguous(m),
            WireError::InvalidSplit { key, reason } => KvError::InvalidSplit { key, reason },
            WireError::Other(message) => KvError::Remote { node, message },
        }
    }

    fn put(&self, out: &mut Vec<u8>) {
        match self {
            WireError::NotHere(m) => {
                out.push(1);
                put_field(out, m.as_bytes());
            }
            WireError::WriteConflict { key, note } => {
                out.push(2);
                put_field(out, key);
                put_field(out, note.as_bytes());
            }
            WireError::SnapshotTooOld { read_ts, threshold } => {
                out.push(3);
                out.extend_from_slice(&read_ts.to_be_bytes());
                out.extend_from_slice(&threshold.to_be_bytes());
            }
            WireError::Uncertain { key, ts } => {
                out.push(4);
                put_field(out, key.as_bytes());
                out.extend_from_slice(&ts.to_be_bytes());
            }
            WireError::Unavailable(m) => {
                out.push(5);
                put_field(out, m.as_bytes());
            }
            WireError::Ambiguous(m) => {
                out.push(6);
                put_field(out, m.as_bytes());
            }
            WireError::Other(m) => {
                out.push(7);
                put_field(out, m.as_bytes());
            }
            WireError::InvalidSplit { key, reason } => {
                out.push(8);
                put_field(out, key.as_bytes());
                put_field(out, reason.as_bytes());
            }
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<WireError> {
        let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
        Ok(match r.u8()? {
            1 => WireError::NotHere(text(r.field()?)),
            2 => WireError::WriteConflict {
                key: r.field()?,
                note: text(r.field()?),
            },
            3 => WireError::SnapshotTooOld {
                read_ts: r.u64()?,
                threshold: r.u64()?,
            },
            4 => WireError::Uncertain {
                key: text(r.field()?),
                ts: r.u64()?,
            },
            5 => WireError::Unavailable(text(r.field()?)),
            6 => WireError::Ambiguous(text(r.field()?)),
            7 => WireError::Other(text(r.field()?)),
            8 => WireError::InvalidSplit {
                key: text(r.field()?),
                reason: text(r.field()?),
            },
            _ => return Err(corrupt("unknown error code")),
        })
    }
}

/// Up to `limit` pairs of `[start, end)` read by `reader`, stopping early
/// past [`SCAN_BYTES`]; and whether the span may hold more.
fn scan_budgeted(
    reader: &crate::txn::Txn,
    start: Vec<u8>,
    end: Option<&[u8]>,
    limit: usize,
) -> Result<(Pairs, bool)> {
    let (mut pairs, mut bytes, mut from) = (Vec::new(), 0usize, start);
    loop {
        let want = limit.saturating_sub(pairs.len()).min(SCAN_CHUNK);
        if want == 0 {
            return Ok((pairs, true));
        }
        let piece = reader.scan(&from, end.unwrap_or(&[]), want)?;
        let exhausted = piece.len() < want;
        for (key, value) in piece {
            bytes += key.len() + value.len();
            from.clone_from(&key);
            from.push(0);
            pairs.push((key, value));
        }
        if exhausted {
            return Ok((pairs, false));
        }
        if bytes >= SCAN_BYTES {
            return Ok((pairs, true));
        }
    }
}

/// The answer of a node that cannot serve requests now (`why`): the asking
/// node tries another.
pub fn not_serving(why: &str) -> Vec<u8> {
    Answer::Failed(WireError::NotHere(why.to_string())).encode()
}

impl Kv {
    /// Serves a request of another node (see the module documentation);
    /// returns the encoded answer. Never asks a third node.
    pub fn serve_request(self: &Arc<Self>, bytes: &[u8]) -> Vec<u8> {
        let answer = Request::decode(bytes)
            .and_then(|request| self.answer(request))
            .unwrap_or_else(|e| Answer::Failed(WireError::from_kv(e)));
        answer.encode()
    }

    fn answer(self: &Arc<Self>, request: Request) -> Result<Answer> {
        match request {
            Request::Sync { range, read_ts } => {
                self.local_only(range)?;
                self.raft.read_barrier_at(range, read_ts, self.timeout)?;
                Ok(Answer::Synced(self.last_commit(range)?))
            }
            Request::Get { read_ts, key } => {
                self.local_route(&key)?;
                let reader = self.reader(read_ts);
                let value = reader.get(&key);
                reader.rollback();
                Ok(Answer::Value(value?))
            }
            Request::Scan {
                read_ts,
                start,
                end,
                limit,
            } => {
                let (_, bounds) = self.local_route(&start)?;
                let within = match (&end, &bounds.end) {
                    (_, None) => true,
                    (None, Some(_)) => false,
                    (Some(e), Some(b)) => e <= b,
                };
                if !within {
                    return Err(KvError::Misrouted(
                        "the scanned span crosses a range boundary on the asked node".to_string(),
                    ));
                }
                let reader = self.reader(read_ts);
                let answer = scan_budgeted(&reader, start, end.as_deref(), limit as usize);
                reader.rollback();
                let (pairs, more) = answer?;
                Ok(Answer::Pairs(pairs, more))
            }
            Request::Propose { range, command } => {
                self.local_only(range)?;
                Ok(Answer::Reply(self.raft.propose_idempotent(
                    range,
                    command,
                    self.timeout,
                )?))
            }
            Request::ReadRaw { range, key } => {
                self.local_only(range)?;
                self.raft.read_barrier(range, self.timeout)?;
                Ok(Answer::Value(self.engine.get(&key)?))
            }
            Request::Directory => {
                self.local_only(crate::store::FIRST_RANGE)?;
                Ok(Answer::Records(self.first_range_records()?))
            }
            Request::MetaRecords { range } => Ok(Answer::Records(self.meta_records_here(range)?)),
            Request::RangeSize { range } => {
                self.local_only(range)?;
                Ok(Answer::Size(
                    self.published.bytes(range, self.engine.as_ref())?,
                ))
            }
            Request::SplitAt { key } => {
                self.local_route(&key)?;
                Ok(Answer::Range(self.split_at(&key)?))
            }
            Request::MergeInfo { range } => {
                self.local_only(range)?;
                Ok(Answer::Reply(self.merge_info_here(range)?.encode()))
            }
            Request::AppliedIndex { range } => {
                self.local_only(range)?;
                Ok(Answer::Index(self.applied_index_here(range)?))
            }
            request @ (Request::Relocate { .. } | Request::TransferLease { .. }) => {
                self.admin(request)?;
                Ok(Answer::Done)
            }
        }
    }

    /// Fails with [`KvError::Misrouted`] unless this node holds `range`.
    fn local_only(&self, range: RangeId) -> Result<()> {
        if self.is_local(range) {
            Ok(())
        } else {
            Err(KvError::Misrouted(format!(
                "range {range} has no replica on node {}",
                self.raft.node_id()
            )))
        }
    }

    /// Asks the replicas of `record`'s range, the leader first, until one
    /// answers (see the module documentation). [`KvError::Misrouted`] if
    /// none holds it any more.
    pub(crate) fn ask(&self, record: &RangeRecord, request: &Request) -> Result<Answer> {
        self.ask_within(record, request, self.timeout + Duration::from_secs(1))
    }

    /// [`Kv::ask`] within `budget` for every replica asked together.
    pub(crate) fn ask_within(
        &self,
        record: &RangeRecord,
        request: &Request,
        budget: Duration,
    ) -> Result<Answer> {
        let Some(requests) = self.requests.as_ref() else {
            return Err(KvError::Misrouted(format!(
                "range {} has no replica on this node",
                record.range
            )));
        };
        let payload = request.encode();
        // A proposal whose answer was lost may have been carried out: if no
        // replica answers, its outcome is unknown (it is safe to send again,
        // every command proposed this way being applied at most once).
        let changes = matches!(request, Request::Propose { .. } | Request::SplitAt { .. });
        let mut maybe_delivered = false;
        let mut last = KvError::Misrouted(format!("range {} has no known replica", record.range));
        let me = self.raft.node_id();
        let deadline = Instant::now() + budget;
        for node in record.candidates().into_iter().filter(|&n| n != me) {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            match requests.request(node, &payload, remaining) {
                Ok(bytes) => match Answer::decode(&bytes) {
                    Ok(Answer::Failed(WireError::NotHere(m))) => last = KvError::Misrouted(m),
                    Ok(Answer::Failed(e)) => return Err(e.into_kv(node)),
                    Ok(answer) => return Ok(answer),
                    Err(e) => {
                        tracing::warn!(node, error = %e, "undecodable answer");
                        maybe_delivered |= changes;
                        last = KvError::Misrouted(format!("node {node} answered garbage: {e}"));
                    }
                },
                Err(e) => {
                    tracing::debug!(node, range = record.range, error = %e, "forwarding failed");
                    maybe_delivered |= changes && !matches!(e, ReplicationError::Unreachable(_));
                    last = KvError::Misrouted(e.to_string());
                }
            }
        }
        if maybe_delivered {
            return Err(KvError::Ambiguous(format!(
                "no replica of range {} answered a request that may have been carried out",
                record.range
            )));
        }
        Err(last)
    }

    /// Asks node `node` (not this one) alone.
    pub(crate) fn ask_node(&self, node: u64, request: &Request) -> Result<Answer> {
        let Some(requests) = self.requests.as_ref() else {
            return Err(KvError::Misrouted("this node asks no other".to_string()));
        };
        let bytes = requests
            .request(node, &request.encode(), self.timeout)
            .map_err(|e| KvError::Misrouted(e.to_string()))?;
        match Answer::decode(&bytes)? {
            Answer::Failed(e) => Err(e.into_kv(node)),
            answer => Ok(answer),
        }
    }

    /// Asks any other node for the directory (this node holds no replica
    /// of the first range).
    pub(crate) fn ask_directory(&self) -> Result<Vec<RangeRecord>> {
        let Some(requests) = self.requests.as_ref() else {
            return Ok(Vec::new());
        };
        let payload = Request::Directory.encode();
        let me = self.raft.node_id();
        let deadline = Instant::now() + Duration::from_secs(2);
        for node in self.peers().into_iter().filter(|&n| n != me) {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            if let Ok(bytes) = requests.request(node, &payload, remaining)
                && let Ok(Answer::Records(records)) = Answer::decode(&bytes)
            {
                return Ok(records);
            }
        }
        Err(KvError::Unavailable(
            "no node answered with the range directory".to_string(),
        ))
    }

    /// Runs `attempt` until it is not [`KvError::Misrouted`], reloading
    /// the directory between attempts, until the request timeout.
    pub(crate) fn rerouting<T>(&self, mut attempt: impl FnMut() -> Result<T>) -> Result<T> {
        let deadline = Instant::now() + self.timeout;
        let mut pause = Duration::from_millis(5);
        loop {
            match attempt() {
                Err(KvError::Misrouted(why)) => {
                    if Instant::now() >= deadline {
                        return Err(KvError::Unavailable(format!(
                            "no node holding the range answered: {why}"
                        )));
                    }
                    shoal_replication::blocking::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(200));
                    self.reload_directory();
                }
                other => return other,
            }
        }
    }
}

/// The committed pairs of a span of another node's range, asked for
/// [`SCAN_BATCH`] at a time as they are pulled (`Txn::scan` merges them
/// with its own writes).
pub(crate) struct RemoteScan<'a> {
    kv: &'a Kv,
    record: RangeRecord,
    read_ts: Timestamp,
    from: Vec<u8>,
    end: Option<Vec<u8>>,
    batch: std::collections::VecDeque<(Vec<u8>, Vec<u8>)>,
    done: bool,
}

impl<'a> RemoteScan<'a> {
    pub(crate) fn new(
        kv: &'a Kv,
        record: RangeRecord,
        read_ts: Timestamp,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> Self {
        RemoteScan {
            kv,
            record,
            read_ts,
            from: start.to_vec(),
            end: end.map(<[u8]>::to_vec),
            batch: std::collections::VecDeque::new(),
            done: false,
        }
    }

    fn fetch(&mut self) -> Result<()> {
        let request = Request::Scan {
            read_ts: self.read_ts,
            start: self.from.clone(),
            end: self.end.clone(),
            limit: SCAN_BATCH as u32,
        };
        let Answer::Pairs(pairs, more) = self.kv.ask(&self.record, &request)? else {
            return Err(KvError::Remote {
                node: 0,
                message: "a scan was answered with something else".to_string(),
            });
        };
        self.done = !more;
        if let Some((last, _)) = pairs.last() {
            self.from = last.clone();
            self.from.push(0);
        }
        self.batch.extend(pairs);
        Ok(())
    }
}

impl Iterator for RemoteScan<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.batch.is_empty()
            && !self.done
            && let Err(e) = self.fetch()
        {
            self.done = true;
            return Some(Err(e));
        }
        self.batch.pop_front().map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers_round_trip() {
        let requests = [
            Request::Sync {
                range: 3,
                read_ts: 9,
            },
            Request::Get {
                read_ts: 4,
                key: b"k".to_vec(),
            },
            Request::Scan {
                read_ts: 4,
                start: b"a".to_vec(),
                end: None,
                limit: 10,
            },
            Request::Scan {
                read_ts: 4,
                start: Vec::new(),
                end: Some(b"z".to_vec()),
                limit: 1,
            },
            Request::Propose {
                range: 2,
                command: vec![1, 2, 3],
            },
            Request::ReadRaw {
                range: 2,
                key: b"x".to_vec(),
            },
            Request::Directory,
            Request::RangeSize { range: 5 },
            Request::Relocate {
                range: 5,
                from: 1,
                to: 4,
            },
            Request::TransferLease { range: 5, to: 2 },
            Request::SplitAt { key: b"m".to_vec() },
            Request::MergeInfo { range: 6 },
            Request::AppliedIndex { range: 6 },
            Request::MetaRecords { range: 2 },
        ];
        for request in requests {
            let bytes = request.encode();
            assert_eq!(Request::decode(&bytes).ok(), Some(request));
            assert!(Request::decode(&bytes[..bytes.len() - 1]).is_err());
        }
        let answers = [
            Answer::Synced(5),
            Answer::Index(9),
            Answer::Value(None),
            Answer::Value(Some(b"v".to_vec())),
            Answer::Pairs(vec![(b"a".to_vec(), b"1".to_vec())], true),
            Answer::Reply(vec![7]),
            Answer::Records(Vec::new()),
            Answer::Size(99),
            Answer::Done,
            Answer::Range(4),
            Answer::Failed(WireError::NotHere("moved".to_string())),
            Answer::Failed(WireError::SnapshotTooOld {
                read_ts: 1,
                threshold: 2,
            }),
            Answer::Failed(WireError::Uncertain {
                key: "k".to_string(),
                ts: 3,
            }),
            Answer::Failed(WireError::WriteConflict {
                key: b"k\x00".to_vec(),
                note: ", more".to_string(),
            }),
            Answer::Failed(WireError::Unavailable("no quorum".to_string())),
            Answer::Failed(WireError::Ambiguous("late".to_string())),
            Answer::Failed(WireError::Other("disk".to_string())),
        ];
        for answer in answers {
            let bytes = answer.encode();
            assert_eq!(Answer::decode(&bytes).ok(), Some(answer));
        }
        assert!(Request::decode(&[99]).is_err());
    }

    #[test]
    fn errors_keep_their_meaning_across_the_wire() {
        let wire = WireError::from_kv(KvError::ReadWithinUncertainty {
            key: "k".to_string(),
            ts: 7,
        });
        assert!(matches!(
            wire.into_kv(2),
            KvError::ReadWithinUncertainty { ts: 7, .. }
        ));
        let wire = WireError::from_kv(KvError::Replication(ReplicationError::RangeNotFound(4)));
        assert!(matches!(wire.into_kv(2), KvError::Misrouted(_)));
        let wire = WireError::from_kv(KvError::TxnFinished);
        assert!(matches!(wire.into_kv(2), KvError::Remote { node: 2, .. }));
    }
}
