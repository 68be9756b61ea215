//! The commands the KV layer replicates, and their replies.
//!
//! A transaction's writes reach storage only as a [`Command::Commit`]
//! applied by every replica of the range (`apply.rs`); garbage collection
//! removes versions only through [`Command::Gc`], so every replica holds
//! the same versions and a snapshot of any replica is a snapshot of the
//! range.
//!
//! Encoding (all integers big-endian):
//!
//! ```text
//! Commit: 1 | id u128 | read_ts u64 | ts_hint u64 | n u32 | n × (key, value?)
//!           | spans | max_ts? | lock_id u128
//! spans:  n u32 | n × (start field, end field)   (end empty: unbounded)
//! Gc:     2 | threshold u64 | n u32 | n × version key
//! field:  len u32 | bytes          value?: 0 (delete) | 1 field
//!
//! RegisterNode: 3 | node_id u64 (0: allocate) | addr field
//! Heartbeat:    4 | node_id u64 | expiration u64
//! Setting:      5 | name field | value field
//! Decommission: 6 | node_id u64
//! Split:        7 | at field | new_range u64 | left_bytes u64
//! AllocateRangeId: 8
//! Prepare:      9 | id u128 | primary field | read_ts | ts_hint | expiry | n u32 | n × (key, value?)
//!                 | lock_id u128 | part u32
//! EndTxn:      10 | id u128 | primary field | 0 (abort, at u64) or 1 (commit, commit_ts u64)
//! Resolve:     11 | id u128 | 0 (abort) or 1 commit_ts | n u32 | n × key
//! SetSpanConfig: 12 | start field | 0 or 1 end field | max_bytes u64
//! SetDescriptor: 13 | range record (`directory.rs`)
//! FinishTxns:  17 | n u32 | n × id u128
//! Refresh:     18 | txn_id u128 | read_ts u64 | refresh_ts u64 | spans
//! Lock:        19 | id u128 | primary field | record u8 | holder field | expiry u64
//!                 | since u64 | n u32 | n × key field
//! ```
//!
//! Replies: `1 | commit_ts` (committed), `2 | key` (write conflict),
//! `3 | removed u64` (collected), `4 | gc_threshold` (snapshot too old),
//! `5 | node_id` (registered), `6 | expiration` (alive until), `7` (setting
//! stored), `8` (node marked), `9 | range id` (allocated), `10` (a key is
//! outside the range), `11` (split), `12 | reason field` (split refused),
//! `13 | ts` (prepared), `14 | key field | intent field` (a key holds
//! another transaction's intent), `15 | status` (the transaction record),
//! `16 | n u64` (intents resolved), `20 | key field` (a read was
//! overwritten), `21 | ts` (too late: the commit would land at `ts`), `22`
//! (reads refreshed), `23 | n u32 | n × key field` (locked; the keys
//! changed since the lock's snapshot).

use shoal_replication::{MergeRequest, ReplicationError};

use crate::clock::Timestamp;
use crate::codec::{
    Reader, corrupt, put_field, put_keys, put_nodes, put_optional_ts, put_spans, put_writes,
};
use crate::directory::RangeRecord;
use crate::error::{KvError, Result};
use crate::reads::Span;

/// Writes of a transaction: key → new value, or `None` for a delete.
pub type Writes = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// A replicated KV command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Commit `writes` (`None` = delete) of a transaction that read at
    /// `read_ts`, unless a written key has a version newer than `read_ts`
    /// or a span of `reads` a version in `(read_ts, commit_ts]`
    /// (`reads.rs`). The commit timestamp is `max(ts_hint, floor, last
    /// commit + 1)`; above `max_ts`, nothing is written ([`Reply::TooLate`]).
    Commit {
        /// A random id: a commit proposed twice (a retry after a lost
        /// answer) is applied once, and the second copy gets the first's
        /// reply.
        id: u128,
        /// The transaction's snapshot.
        read_ts: Timestamp,
        /// The proposer's clock reading.
        ts_hint: Timestamp,
        /// Key → new value, or `None` for a delete.
        writes: Writes,
        /// Spans of this range the transaction read, to prove at the
        /// commit timestamp (serializable transactions; else empty).
        reads: Vec<Span>,
        /// The highest acceptable commit timestamp, if any.
        max_ts: Option<Timestamp>,
        /// The transaction's row locks (`write_locks.rs`; 0: none), whose
        /// lock intents do not stop its own writes.
        lock_id: u128,
    },
    /// Prove that nothing in `spans` was committed in `(read_ts,
    /// refresh_ts]`, waiting out intents of transactions other than
    /// `txn_id` (0: none), then raise the range's last commit timestamp to
    /// `refresh_ts` so later commits land above it (`reads.rs`).
    Refresh {
        /// The refreshing transaction, whose own intents are skipped.
        txn_id: u128,
        /// Its snapshot.
        read_ts: Timestamp,
        /// Up to when its reads must hold.
        refresh_ts: Timestamp,
        /// Spans of this range it read.
        spans: Vec<Span>,
    },
    /// Remove the listed version keys (chosen by the proposer as invisible
    /// at `threshold`) and raise the range's GC threshold to `threshold`.
    Gc {
        /// No snapshot below this may read any more.
        threshold: Timestamp,
        /// Engine keys of versions to remove.
        keys: Vec<Vec<u8>>,
    },
    /// Record that node `node_id` (0: the next free id) listens on `addr`,
    /// in the cluster's node registry. An address already registered keeps
    /// its id, so a node retrying its join is not counted twice.
    RegisterNode {
        /// The node, or 0 to allocate one.
        node_id: u64,
        /// Its node-to-node address.
        addr: String,
    },
    /// Node `node_id` is alive until `expiration` (wall-clock microseconds;
    /// see `liveness.rs`).
    Heartbeat {
        /// The node.
        node_id: u64,
        /// Until when.
        expiration: u64,
    },
    /// Set cluster setting `name` to `value` (validated and normalized by
    /// the proposer; see `settings.rs`).
    SetSetting {
        /// The setting.
        name: String,
        /// Its new value.
        value: String,
    },
    /// Mark node `node_id` as being decommissioned (see `registry.rs`).
    Decommission {
        /// The node.
        node_id: u64,
    },
    /// Split the range at user key `at`: keys from `at` on move to the new
    /// range `new_range` (carried out by the replication layer's apply
    /// side; see `apply.rs`).
    Split {
        /// The new range's first key.
        at: Vec<u8>,
        /// Its id, allocated with [`Command::AllocateRangeId`].
        new_range: u64,
        /// The proposer's count of the bytes the left-hand side keeps.
        left_bytes: u64,
        /// Until when (hybrid time; `u64::MAX`: for ever, 0: not at all)
        /// the new boundary is kept from being merged away (`merge.rs`).
        sticky_until: Timestamp,
    },
    /// Let the merge driver remove the boundary at `at`, the range's first
    /// key (`ALTER TABLE … UNSPLIT AT`; `merge.rs`): its stickiness is
    /// dropped. A range not starting at `at` answers [`Reply::WrongRange`].
    Unstick {
        /// The range's first key, as the proposer saw it.
        at: Vec<u8>,
    },
    /// Freeze the range for a merge into its left-hand neighbour
    /// (`shoal-replication`'s `apply/merge.rs`).
    Freeze,
    /// Take over the frozen right-hand neighbour the request names
    /// (`shoal-replication`'s `apply/merge.rs`).
    Merge(MergeRequest),
    /// Delete the directory record of `range` if it is at most at
    /// `generation` (first range; the range was merged away).
    DropDescriptor {
        /// The range.
        range: u64,
        /// Its generation when it was merged.
        generation: u64,
    },
    /// Hand out the next unused range id (first range only).
    AllocateRangeId,
    /// Phase one of a commit spanning ranges (`distributed.rs`): check the
    /// writes like a commit, then hold them as intents.
    Prepare(Prepare),
    /// Decide a transaction, in its primary range: commit at `commit_ts`,
    /// or abort (`None`; `at` is the wall-clock time, for GC). The first
    /// decision stands; the reply is the record after the command.
    EndTxn {
        /// The transaction.
        txn_id: u128,
        /// `Some(commit_ts)` to commit, `None` to abort.
        commit_ts: Option<Timestamp>,
        /// The proposer's wall clock.
        at: u64,
    },
    /// Mark committed transactions' records finished (in their primary
    /// range): every intent of theirs is resolved. Records that are not
    /// committed (or not here) are left alone; the reply is how many were
    /// marked.
    FinishTxns {
        /// The transactions.
        txn_ids: Vec<u128>,
    },
    /// Set the span configuration of `[start, end)` (first range only; see
    /// `span_config.rs`).
    SetSpanConfig {
        /// First key of the span.
        start: Vec<u8>,
        /// End of the span (`None`: unbounded).
        end: Option<Vec<u8>>,
        /// Split ranges holding more bytes than this (`None`: unchanged).
        max_bytes: Option<u64>,
        /// Merge ranges holding fewer bytes than this (`None`: unchanged).
        min_bytes: Option<u64>,
    },
    /// Store a range's descriptor in the directory, unless the stored one
    /// is as new (first range only; see `directory.rs`).
    SetDescriptor(RangeRecord),
    /// Lock keys of this range for a transaction (`write_locks.rs`).
    Lock(LockRequest),
    /// Turn the transaction's intents on `keys` into versions at
    /// `commit_ts`, or remove them (`None`: aborted).
    Resolve {
        /// The transaction.
        txn_id: u128,
        /// Its commit timestamp, or `None` if it aborted.
        commit_ts: Option<Timestamp>,
        /// Keys it wrote in this range.
        keys: Vec<Vec<u8>>,
    },
}

/// A [`Command::Prepare`]: check `writes` like a commit, then hold them as
/// intents at a prepare timestamp; in the range holding `primary_key`,
/// also write the transaction record, pending until `expiry` (wall µs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepare {
    /// The transaction.
    pub txn_id: u128,
    /// Its first written key: the record lives in its range.
    pub primary_key: Vec<u8>,
    /// The transaction's snapshot.
    pub read_ts: Timestamp,
    /// The proposer's clock reading.
    pub ts_hint: Timestamp,
    /// When the record may be presumed abandoned.
    pub expiry: u64,
    /// This range's writes.
    pub writes: Writes,
    /// The transaction's row locks (0: none), whose lock intents the
    /// prepare replaces with its own.
    pub lock_id: u128,
    /// Which part of the transaction's writes this is (`prepare.rs`): each
    /// part leaves its own marker.
    pub part: u32,
}

/// A [`Command::Lock`]: put a lock intent of transaction `txn_id` on each of
/// `keys` unless another transaction holds an intent on one (then nothing
/// is written: [`Reply::IntentConflict`]); in the range holding
/// `primary_key`, first create or renew the transaction's record, pending
/// until `expiry` (a decided record: [`Reply::TxnEnded`], the locks are
/// lost). With `record` set, a range not holding `primary_key` answers
/// [`Reply::WrongRange`]. The reply [`Reply::Locked`] lists the keys with a version newer
/// than `since`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRequest {
    /// The locking transaction.
    pub txn_id: u128,
    /// Its first locked key: the record lives in its range.
    pub primary_key: Vec<u8>,
    /// Whether this request is for the record's range.
    pub record: bool,
    /// Who holds the locks (opaque: the SQL layer's session).
    pub holder: Vec<u8>,
    /// When the record may be presumed abandoned (wall µs).
    pub expiry: u64,
    /// The snapshot the locker read the keys at.
    pub since: Timestamp,
    /// Keys of this range to lock (may be empty: only the record).
    pub keys: Vec<Vec<u8>>,
}

/// What applying a [`Command`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Committed at this timestamp.
    Committed(Timestamp),
    /// A written key had a newer version (first committer wins).
    Conflict(Vec<u8>),
    /// Garbage collected: versions removed.
    Collected(u64),
    /// The transaction's snapshot is below the GC threshold.
    TooOld(Timestamp),
    /// The node's id in the registry.
    Registered(u64),
    /// The node's liveness expiration now.
    Alive(u64),
    /// The cluster setting was stored.
    SettingStored,
    /// The node was marked.
    NodeMarked,
    /// A range id nobody else got.
    RangeIdAllocated(u64),
    /// A key of the command lies outside the range (it split meanwhile).
    WrongRange,
    /// The range split.
    Split,
    /// The split was refused; why.
    SplitRefused(String),
    /// Prepared at this timestamp.
    Prepared(Timestamp),
    /// `key` holds an intent of another transaction (encoded
    /// [`Intent`](crate::intents::Intent)).
    IntentConflict {
        /// The key.
        key: Vec<u8>,
        /// The intent, encoded.
        intent: Vec<u8>,
    },
    /// The transaction record after an [`Command::EndTxn`] (encoded
    /// [`TxnStatus`](crate::intents::TxnStatus)).
    TxnEnded(Vec<u8>),
    /// Intents resolved.
    Resolved(u64),
    /// The range is frozen since this log index.
    Frozen(u64),
    /// The right-hand range was merged in.
    Merged,
    /// The merge step was refused; why.
    MergeRefused(String),
    /// A read span holds a version the transaction should have seen: this
    /// key was committed after its snapshot, at or below the proof's limit.
    ReadConflict(Vec<u8>),
    /// The commit would land at this timestamp, above its `max_ts`;
    /// nothing was written.
    TooLate(Timestamp),
    /// The reads hold, and later commits land above the refresh timestamp.
    Refreshed,
    /// The keys are locked; these changed since the lock's snapshot.
    Locked(Vec<Vec<u8>>),
    /// The range's first key is no longer sticky.
    Unstuck,
}

const COMMIT: u8 = 1;
const GC: u8 = 2;
const REGISTER_NODE: u8 = 3;
const HEARTBEAT: u8 = 4;
const SET_SETTING: u8 = 5;
const DECOMMISSION: u8 = 6;
const SPLIT: u8 = 7;
const ALLOCATE_RANGE_ID: u8 = 8;
const PREPARE: u8 = 9;
const END_TXN: u8 = 10;
const RESOLVE: u8 = 11;
const SET_SPAN_CONFIG: u8 = 12;
const SET_DESCRIPTOR: u8 = 13;
const FREEZE: u8 = 14;
const MERGE: u8 = 15;
const DROP_DESCRIPTOR: u8 = 16;
const FINISH_TXNS: u8 = 17;
const REFRESH: u8 = 18;
const LOCK: u8 = 19;
const UNSTICK: u8 = 20;

const COMMITTED: u8 = 1;
const CONFLICT: u8 = 2;
const COLLECTED: u8 = 3;
const TOO_OLD: u8 = 4;
const REGISTERED: u8 = 5;
const ALIVE: u8 = 6;
const SETTING_STORED: u8 = 7;
const NODE_MARKED: u8 = 8;
const RANGE_ID_ALLOCATED: u8 = 9;
const WRONG_RANGE: u8 = 10;
const SPLIT_DONE: u8 = 11;
const SPLIT_REFUSED: u8 = 12;
const PREPARED: u8 = 13;
const INTENT_CONFLICT: u8 = 14;
const TXN_ENDED: u8 = 15;
const RESOLVED: u8 = 16;
const FROZEN: u8 = 17;
const MERGED: u8 = 18;
const MERGE_REFUSED: u8 = 19;
const READ_CONFLICT: u8 = 20;
const TOO_LATE: u8 = 21;
const REFRESHED: u8 = 22;
const LOCKED: u8 = 23;
const UNSTUCK: u8 = 24;

impl Command {
    /// The command's wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Command::Commit {
                id,
                read_ts,
                ts_hint,
                writes,
                reads,
                max_ts,
                lock_id,
            } => {
                out.push(COMMIT);
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(&read_ts.to_be_bytes());
                out.extend_from_slice(&ts_hint.to_be_bytes());
                put_writes(&mut out, writes);
                put_spans(&mut out, reads);
                put_optional_ts(&mut out, *max_ts);
                out.extend_from_slice(&lock_id.to_be_bytes());
            }
            Command::Refresh {
                txn_id,
                read_ts,
                refresh_ts,
                spans,
            } => {
                out.push(REFRESH);
                out.extend_from_slice(&txn_id.to_be_bytes());
                out.extend_from_slice(&read_ts.to_be_bytes());
                out.extend_from_slice(&refresh_ts.to_be_bytes());
                put_spans(&mut out, spans);
            }
            Command::Gc { threshold, keys } => {
                out.push(GC);
                out.extend_from_slice(&threshold.to_be_bytes());
                put_keys(&mut out, keys);
            }
            Command::RegisterNode { node_id, addr } => {
                out.push(REGISTER_NODE);
                out.extend_from_slice(&node_id.to_be_bytes());
                put_field(&mut out, addr.as_bytes());
            }
            Command::Heartbeat {
                node_id,
                expiration,
            } => {
                out.push(HEARTBEAT);
                out.extend_from_slice(&node_id.to_be_bytes());
                out.extend_from_slice(&expiration.to_be_bytes());
            }
            Command::SetSetting { name, value } => {
                out.push(SET_SETTING);
                put_field(&mut out, name.as_bytes());
                put_field(&mut out, value.as_bytes());
            }
            Command::Decommission { node_id } => {
                out.push(DECOMMISSION);
                out.extend_from_slice(&node_id.to_be_bytes());
            }
            Command::Split {
                at,
                new_range,
                left_bytes,
                sticky_until,
            } => {
                out.push(SPLIT);
                put_field(&mut out, at);
                out.extend_from_slice(&new_range.to_be_bytes());
                out.extend_from_slice(&left_bytes.to_be_bytes());
                out.extend_from_slice(&sticky_until.to_be_bytes());
            }
            Command::Unstick { at } => {
                out.push(UNSTICK);
                put_field(&mut out, at);
            }
            Command::Freeze => out.push(FREEZE),
            Command::Merge(m) => {
                out.push(MERGE);
                for word in [m.right, m.freeze_index, m.left_generation] {
                    out.extend_from_slice(&word.to_be_bytes());
                }
                put_field(&mut out, &m.right_start);
                put_nodes(&mut out, &m.voters);
                put_nodes(&mut out, &m.learners);
            }
            Command::DropDescriptor { range, generation } => {
                out.push(DROP_DESCRIPTOR);
                out.extend_from_slice(&range.to_be_bytes());
                out.extend_from_slice(&generation.to_be_bytes());
            }
            Command::AllocateRangeId => out.push(ALLOCATE_RANGE_ID),
            Command::Prepare(Prepare {
                txn_id,
                primary_key,
                read_ts,
                ts_hint,
                expiry,
                writes,
                lock_id,
                part,
            }) => {
                out.push(PREPARE);
                out.extend_from_slice(&txn_id.to_be_bytes());
                put_field(&mut out, primary_key);
                out.extend_from_slice(&read_ts.to_be_bytes());
                out.extend_from_slice(&ts_hint.to_be_bytes());
                out.extend_from_slice(&expiry.to_be_bytes());
                put_writes(&mut out, writes);
                out.extend_from_slice(&lock_id.to_be_bytes());
                out.extend_from_slice(&part.to_be_bytes());
            }
            Command::Lock(LockRequest {
                txn_id,
                primary_key,
                record,
                holder,
                expiry,
                since,
                keys,
            }) => {
                out.push(LOCK);
                out.extend_from_slice(&txn_id.to_be_bytes());
                put_field(&mut out, primary_key);
                out.push(u8::from(*record));
                put_field(&mut out, holder);
                out.extend_from_slice(&expiry.to_be_bytes());
                out.extend_from_slice(&since.to_be_bytes());
                put_keys(&mut out, keys);
            }
            Command::EndTxn {
                txn_id,
                commit_ts,
                at,
            } => {
                out.push(END_TXN);
                out.extend_from_slice(&txn_id.to_be_bytes());
                put_optional_ts(&mut out, *commit_ts);
                out.extend_from_slice(&at.to_be_bytes());
            }
            Command::FinishTxns { txn_ids } => {
                out.push(FINISH_TXNS);
                out.extend_from_slice(&(txn_ids.len() as u32).to_be_bytes());
                for id in txn_ids {
                    out.extend_from_slice(&id.to_be_bytes());
                }
            }
            Command::SetSpanConfig {
                start,
                end,
                max_bytes,
                min_bytes,
            } => {
                out.push(SET_SPAN_CONFIG);
                put_field(&mut out, start);
                match end {
                    None => out.push(0),
                    Some(end) => {
                        out.push(1);
                        put_field(&mut out, end);
                    }
                }
                put_optional_ts(&mut out, *max_bytes);
                put_optional_ts(&mut out, *min_bytes);
            }
            Command::SetDescriptor(record) => {
                out.push(SET_DESCRIPTOR);
                out.extend_from_slice(&record.encode());
            }
            Command::Resolve {
                txn_id,
                commit_ts,
                keys,
            } => {
                out.push(RESOLVE);
                out.extend_from_slice(&txn_id.to_be_bytes());
                put_optional_ts(&mut out, *commit_ts);
                put_keys(&mut out, keys);
            }
        }
        out
    }

    /// Parses [`Command::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<Command> {
        let mut r = Reader(bytes);
        let command = match r.u8()? {
            COMMIT => Command::Commit {
                id: r.u128()?,
                read_ts: r.u64()?,
                ts_hint: r.u64()?,
                writes: r.writes()?,
                reads: r.spans()?,
                max_ts: r.optional_ts()?,
                lock_id: r.u128()?,
            },
            REFRESH => Command::Refresh {
                txn_id: r.u128()?,
                read_ts: r.u64()?,
                refresh_ts: r.u64()?,
                spans: r.spans()?,
            },
            PREPARE => Command::Prepare(Prepare {
                txn_id: r.u128()?,
                primary_key: r.field()?,
                read_ts: r.u64()?,
                ts_hint: r.u64()?,
                expiry: r.u64()?,
                writes: r.writes()?,
                lock_id: r.u128()?,
                part: r.u32()?,
            }),
            LOCK => Command::Lock(LockRequest {
                txn_id: r.u128()?,
                primary_key: r.field()?,
                record: match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(corrupt("bad record flag")),
                },
                holder: r.field()?,
                expiry: r.u64()?,
                since: r.u64()?,
                keys: r.keys()?,
            }),
            END_TXN => Command::EndTxn {
                txn_id: r.u128()?,
                commit_ts: r.optional_ts()?,
                at: r.u64()?,
            },
            FINISH_TXNS => {
                let n = r.u32()?;
                let mut txn_ids = Vec::with_capacity(n.min(4096) as usize);
                for _ in 0..n {
                    txn_ids.push(r.u128()?);
                }
                Command::FinishTxns { txn_ids }
            }
            SET_SPAN_CONFIG => Command::SetSpanConfig {
                start: r.field()?,
                end: match r.u8()? {
                    0 => None,
                    1 => Some(r.field()?),
                    _ => return Err(corrupt("bad end tag")),
                },
                max_bytes: r.optional_ts()?,
                min_bytes: r.optional_ts()?,
            },
            SET_DESCRIPTOR => Command::SetDescriptor(RangeRecord::read(&mut r)?),
            RESOLVE => Command::Resolve {
                txn_id: r.u128()?,
                commit_ts: r.optional_ts()?,
                keys: r.keys()?,
            },
            GC => Command::Gc {
                threshold: r.u64()?,
                keys: r.keys()?,
            },
            REGISTER_NODE => {
                let node_id = r.u64()?;
                let addr = String::from_utf8(r.field()?).map_err(|_| corrupt("address"))?;
                Command::RegisterNode { node_id, addr }
            }
            HEARTBEAT => Command::Heartbeat {
                node_id: r.u64()?,
                expiration: r.u64()?,
            },
            SET_SETTING => {
                let text =
                    |bytes: Vec<u8>| String::from_utf8(bytes).map_err(|_| corrupt("setting"));
                Command::SetSetting {
                    name: text(r.field()?)?,
                    value: text(r.field()?)?,
                }
            }
            DECOMMISSION => Command::Decommission { node_id: r.u64()? },
            SPLIT => Command::Split {
                at: r.field()?,
                new_range: r.u64()?,
                left_bytes: r.u64()?,
                sticky_until: r.u64()?,
            },
            UNSTICK => Command::Unstick { at: r.field()? },
            FREEZE => Command::Freeze,
            MERGE => {
                let (right, freeze_index, left_generation) = (r.u64()?, r.u64()?, r.u64()?);
                let right_start = r.field()?;
                let voters = r.nodes()?;
                let learners = r.nodes()?;
                Command::Merge(MergeRequest {
                    right,
                    right_start,
                    freeze_index,
                    left_generation,
                    voters,
                    learners,
                })
            }
            DROP_DESCRIPTOR => Command::DropDescriptor {
                range: r.u64()?,
                generation: r.u64()?,
            },
            ALLOCATE_RANGE_ID => Command::AllocateRangeId,
            _ => return Err(corrupt("unknown command")),
        };
        r.finish()?;
        Ok(command)
    }
}

impl Reply {
    /// The reply's wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Reply::Committed(ts) => {
                out.push(COMMITTED);
                out.extend_from_slice(&ts.to_be_bytes());
            }
            Reply::Conflict(key) => {
                out.push(CONFLICT);
                put_field(&mut out, key);
            }
            Reply::Collected(n) => {
                out.push(COLLECTED);
                out.extend_from_slice(&n.to_be_bytes());
            }
            Reply::TooOld(ts) => {
                out.push(TOO_OLD);
                out.extend_from_slice(&ts.to_be_bytes());
            }
            Reply::Registered(id) => {
                out.push(REGISTERED);
                out.extend_from_slice(&id.to_be_bytes());
            }
            Reply::Alive(expiration) => {
                out.push(ALIVE);
                out.extend_from_slice(&expiration.to_be_bytes());
            }
            Reply::SettingStored => out.push(SETTING_STORED),
            Reply::NodeMarked => out.push(NODE_MARKED),
            Reply::RangeIdAllocated(id) => {
                out.push(RANGE_ID_ALLOCATED);
                out.extend_from_slice(&id.to_be_bytes());
            }
            Reply::WrongRange => out.push(WRONG_RANGE),
            Reply::Split => out.push(SPLIT_DONE),
            Reply::SplitRefused(why) => {
                out.push(SPLIT_REFUSED);
                put_field(&mut out, why.as_bytes());
            }
            Reply::Prepared(ts) => {
                out.push(PREPARED);
                out.extend_from_slice(&ts.to_be_bytes());
            }
            Reply::IntentConflict { key, intent } => {
                out.push(INTENT_CONFLICT);
                put_field(&mut out, key);
                put_field(&mut out, intent);
            }
            Reply::TxnEnded(status) => {
                out.push(TXN_ENDED);
                put_field(&mut out, status);
            }
            Reply::Resolved(n) => {
                out.push(RESOLVED);
                out.extend_from_slice(&n.to_be_bytes());
            }
            Reply::Frozen(index) => {
                out.push(FROZEN);
                out.extend_from_slice(&index.to_be_bytes());
            }
            Reply::Merged => out.push(MERGED),
            Reply::MergeRefused(why) => {
                out.push(MERGE_REFUSED);
                put_field(&mut out, why.as_bytes());
            }
            Reply::ReadConflict(key) => {
                out.push(READ_CONFLICT);
                put_field(&mut out, key);
            }
            Reply::TooLate(ts) => {
                out.push(TOO_LATE);
                out.extend_from_slice(&ts.to_be_bytes());
            }
            Reply::Refreshed => out.push(REFRESHED),
            Reply::Locked(changed) => {
                out.push(LOCKED);
                put_keys(&mut out, changed);
            }
            Reply::Unstuck => out.push(UNSTUCK),
        }
        out
    }

    /// The error for this reply arriving where it does not answer `what`
    /// (a command and its reply disagree: a broken invariant of the state
    /// machine, reported rather than trusted).
    pub fn unexpected(self, what: &str) -> KvError {
        KvError::Replication(ReplicationError::Corrupt(format!(
            "{what} was answered with {self:?}"
        )))
    }

    /// Parses [`Reply::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<Reply> {
        let mut r = Reader(bytes);
        let reply = match r.u8()? {
            COMMITTED => Reply::Committed(r.u64()?),
            CONFLICT => Reply::Conflict(r.field()?),
            COLLECTED => Reply::Collected(r.u64()?),
            TOO_OLD => Reply::TooOld(r.u64()?),
            REGISTERED => Reply::Registered(r.u64()?),
            ALIVE => Reply::Alive(r.u64()?),
            SETTING_STORED => Reply::SettingStored,
            NODE_MARKED => Reply::NodeMarked,
            RANGE_ID_ALLOCATED => Reply::RangeIdAllocated(r.u64()?),
            WRONG_RANGE => Reply::WrongRange,
            SPLIT_DONE => Reply::Split,
            SPLIT_REFUSED => Reply::SplitRefused(
                String::from_utf8(r.field()?).map_err(|_| corrupt("split refusal"))?,
            ),
            PREPARED => Reply::Prepared(r.u64()?),
            INTENT_CONFLICT => Reply::IntentConflict {
                key: r.field()?,
                intent: r.field()?,
            },
            TXN_ENDED => Reply::TxnEnded(r.field()?),
            RESOLVED => Reply::Resolved(r.u64()?),
            FROZEN => Reply::Frozen(r.u64()?),
            MERGED => Reply::Merged,
            MERGE_REFUSED => Reply::MergeRefused(
                String::from_utf8(r.field()?).map_err(|_| corrupt("merge refusal"))?,
            ),
            READ_CONFLICT => Reply::ReadConflict(r.field()?),
            TOO_LATE => Reply::TooLate(r.u64()?),
            REFRESHED => Reply::Refreshed,
            LOCKED => Reply::Locked(r.keys()?),
            UNSTUCK => Reply::Unstuck,
            _ => return Err(corrupt("unknown reply")),
        };
        r.finish()?;
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn commands_and_replies_round_trip() {
        let commands = [
            Command::Commit {
                id: u128::MAX - 3,
                read_ts: 5,
                ts_hint: 9,
                writes: vec![(b"a".to_vec(), Some(b"1".to_vec())), (b"b".to_vec(), None)],
                reads: Vec::new(),
                max_ts: None,
                lock_id: 0,
            },
            Command::Commit {
                id: 2,
                read_ts: 5,
                ts_hint: 9,
                writes: vec![(b"a".to_vec(), None)],
                reads: vec![
                    Span::point(b"x"),
                    Span {
                        start: b"m".to_vec(),
                        end: Vec::new(),
                    },
                ],
                max_ts: Some(11),
                lock_id: 42,
            },
            Command::Refresh {
                txn_id: 7 << 90,
                read_ts: 3,
                refresh_ts: 8,
                spans: vec![Span::point(b"k")],
            },
            Command::Gc {
                threshold: 3,
                keys: vec![b"va".to_vec(), Vec::new()],
            },
            Command::RegisterNode {
                node_id: 0,
                addr: "127.0.0.1:1".to_string(),
            },
            Command::Heartbeat {
                node_id: 3,
                expiration: 1 << 50,
            },
            Command::SetSetting {
                name: "server.time_until_store_dead".to_string(),
                value: "15s".to_string(),
            },
            Command::Decommission { node_id: 4 },
            Command::Split {
                at: b"\x02k".to_vec(),
                new_range: 9,
                left_bytes: 1 << 20,
                sticky_until: u64::MAX,
            },
            Command::Freeze,
            Command::Unstick { at: b"m".to_vec() },
            Command::Merge(MergeRequest {
                right: 4,
                right_start: b"m".to_vec(),
                freeze_index: 12,
                left_generation: 7,
                voters: vec![1, 2, 3],
                learners: vec![5],
            }),
            Command::DropDescriptor {
                range: 4,
                generation: 6,
            },
            Command::AllocateRangeId,
            Command::Prepare(Prepare {
                txn_id: 3 << 70,
                primary_key: b"p".to_vec(),
                read_ts: 4,
                ts_hint: 5,
                expiry: 6,
                writes: vec![(b"a".to_vec(), None), (b"b".to_vec(), Some(Vec::new()))],
                lock_id: 7,
                part: 9,
            }),
            Command::Lock(LockRequest {
                txn_id: 9,
                primary_key: b"p".to_vec(),
                record: true,
                holder: b"h".to_vec(),
                expiry: 10,
                since: 11,
                keys: vec![b"k".to_vec(), Vec::new()],
            }),
            Command::EndTxn {
                txn_id: 8,
                commit_ts: Some(9),
                at: 1,
            },
            Command::EndTxn {
                txn_id: 8,
                commit_ts: None,
                at: 2,
            },
            Command::FinishTxns {
                txn_ids: vec![8, u128::MAX],
            },
            Command::Resolve {
                txn_id: 8,
                commit_ts: None,
                keys: vec![b"k".to_vec()],
            },
            Command::SetSpanConfig {
                start: b"a".to_vec(),
                end: Some(b"b".to_vec()),
                max_bytes: Some(1 << 20),
                min_bytes: Some(1 << 18),
            },
            Command::SetSpanConfig {
                start: Vec::new(),
                end: None,
                max_bytes: Some(7),
                min_bytes: None,
            },
            Command::SetDescriptor(crate::directory::RangeRecord {
                range: 3,
                bounds: shoal_replication::RangeBounds {
                    start: b"a".to_vec(),
                    end: None,
                },
                generation: 2,
                index: 9,
                voters: vec![1, 2],
                learners: Vec::new(),
                leader: 1,
            }),
        ];
        for command in commands {
            let bytes = command.encode();
            assert_eq!(Command::decode(&bytes).unwrap(), command);
            assert!(Command::decode(&bytes[..bytes.len() - 1]).is_err());
        }
        for reply in [
            Reply::Committed(7),
            Reply::Conflict(b"k".to_vec()),
            Reply::Collected(3),
            Reply::TooOld(2),
            Reply::Registered(4),
            Reply::Alive(9),
            Reply::SettingStored,
            Reply::NodeMarked,
            Reply::RangeIdAllocated(3),
            Reply::WrongRange,
            Reply::Split,
            Reply::SplitRefused("no".to_string()),
            Reply::Frozen(12),
            Reply::Unstuck,
            Reply::Merged,
            Reply::MergeRefused("changed".to_string()),
            Reply::Prepared(5),
            Reply::IntentConflict {
                key: b"k".to_vec(),
                intent: b"i".to_vec(),
            },
            Reply::TxnEnded(vec![1, 2]),
            Reply::Resolved(2),
            Reply::ReadConflict(b"r".to_vec()),
            Reply::TooLate(12),
            Reply::Refreshed,
            Reply::Locked(vec![b"changed".to_vec()]),
            Reply::Locked(Vec::new()),
        ] {
            assert_eq!(Reply::decode(&reply.encode()).unwrap(), reply);
        }
        assert!(Reply::decode(&[]).is_err());
    }
}
