//! [`Txn`]: a transaction, snapshot-isolated or serializable.
//!
//! # Lifecycle
//!
//! [`Kv::begin`](crate::Kv::begin) fixes the read timestamp. Reads see the
//! snapshot at that timestamp overlaid with the transaction's own writes.
//! Each range joins the snapshot when the transaction first reads it
//! (`sync`: a read barrier registering the timestamp; see `store.rs`), and
//! a scan crosses ranges one after the other.
//! Writes are **buffered** in the transaction (a sorted map; `None` marks a
//! delete) and reach storage only at commit, in one batch (`commit.rs`).
//! `commit` and `rollback` both *finish* the transaction; after that every
//! fallible method returns [`KvError::TxnFinished`]. A failed commit (write
//! conflict, I/O) also finishes it, as in PostgreSQL, where a serialization
//! failure aborts the transaction.
//!
//! # Isolation
//!
//! Under [`Isolation::Snapshot`] (PostgreSQL's REPEATABLE READ) a commit
//! checks only its writes: first committer wins. Under
//! [`Isolation::Serializable`] the transaction also records what it read
//! and proves at commit that none of it changed before the commit
//! timestamp (`reads.rs`). Reads through [`Txn::get_untracked`] and
//! [`Txn::scan_untracked`] are left out of that proof: the SQL layer reads
//! schema with them, so a commit does not have to revisit the catalog.
//!
//! # Statement snapshots (READ COMMITTED)
//!
//! [`Txn::renew`] gives the transaction a new snapshot for its next
//! statement: a new read timestamp, with the buffered writes, savepoints
//! and isolation moved over. A commit checks its writes for conflicts from
//! the transaction's *conflict base*, which must be no later than the
//! snapshot any written key was written under. Renewing keeps that true
//! and moves the base forward when it can: it checks, at the new
//! snapshot, that no other transaction committed a buffered key since the
//! base — one that did is a lost update, refused at once
//! ([`KvError::WriteConflict`]) — and then the new snapshot is the base.
//! So a key is checked from the statement that wrote it, never from
//! earlier: a statement may write a row another transaction changed
//! before it began. Where the check cannot tell (a key in a range held
//! elsewhere, an undecided intent, more than [`MAX_RENEW_CHECKS`]
//! buffered keys) the base stays where it was, which is only stricter. A
//! serializable transaction's base never moves: the commit proves its
//! reads from the base too, and they were made at earlier snapshots.
//! A READ COMMITTED caller also locks what each statement wrote
//! ([`Txn::lock_writes`], `write_locks.rs`), so no other transaction can
//! change those rows before this one ends: writers wait for it, as in
//! PostgreSQL, rather than fail it.
//!
//! # Savepoints
//!
//! Because writes are buffered, a savepoint is only a position in an
//! *undo log*: while a savepoint is open, every buffered write first
//! records what the buffer held for its key (a value, a delete, or
//! nothing). [`Txn::rollback_to`] replays the log backwards down to the
//! savepoint's position, restoring the buffer exactly; nothing ever
//! reached storage, so nothing else needs undoing. The log costs nothing
//! while no savepoint is open, and [`Txn::release_savepoints`] drops it.
//!
//! # Sharing
//!
//! A `Txn` is `Send + Sync` and shared as `Arc<Txn>` by the concurrent
//! readers of one statement. The state mutex is held only to touch the
//! write buffer, never across engine reads, so readers proceed in parallel.
//!
//! # Scans and bounded memory
//!
//! [`Txn::scan`] merges two sorted streams: the committed snapshot
//! (streaming from the engine) and the buffered writes (copied out of the
//! buffer a chunk at a time). For equal keys the buffered write wins; a
//! buffered delete hides the key. At most `limit` pairs are returned and the
//! caller resumes after the last key, so neither a big table nor a big write
//! buffer is ever materialized.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use parking_lot::Mutex;

use shoal_replication::{RangeBounds, RangeId};

use crate::clock::Timestamp;
use crate::error::{KvError, Result};
use crate::mvcc;
use crate::reads::{ReadSet, Span};
use crate::settled_span::SettledSpan;
use crate::store::Kv;
use crate::write_locks::Locks;

/// The most buffered keys [`Txn::renew`] checks to move the conflict base
/// forward (module docs, *Statement snapshots*).
pub const MAX_RENEW_CHECKS: usize = 1024;

/// Buffered writes copied out of the transaction per lock acquisition.
const OWN_WRITES_CHUNK: usize = 256;

type Buffer = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// What the buffer held for a key before a write: `None` if the key had no
/// buffered write, else the buffered value (`Some(None)`: a delete).
type Undo = (Vec<u8>, Option<Option<Vec<u8>>>);

struct TxnState {
    writes: Buffer,
    /// What a serializable transaction read (`reads.rs`).
    reads: ReadSet,
    isolation: Isolation,
    /// Whether any read or write happened (the isolation is fixed then).
    used: bool,
    /// How long the commit waits for each other transaction's intent.
    lock_wait: Option<std::time::Duration>,
    /// Recorded while a savepoint is open (module docs).
    undo: Option<Vec<Undo>>,
    /// Keys written since the last [`Txn::lock_writes`], once it locks.
    to_lock: Option<Vec<Vec<u8>>>,
    finished: bool,
}

impl TxnState {
    fn write(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        if let Some(to_lock) = &mut self.to_lock {
            to_lock.push(key.clone());
        }
        match &mut self.undo {
            Some(undo) => {
                self.used = true;
                let before = self.writes.insert(key.clone(), value);
                undo.push((key, before));
            }
            None => {
                self.used = true;
                self.writes.insert(key, value);
            }
        }
    }
}

/// How a transaction is isolated from concurrent ones (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// Snapshot isolation: PostgreSQL's REPEATABLE READ.
    #[default]
    Snapshot,
    /// Serializable: snapshot isolation plus proven reads.
    Serializable,
}

/// A position in a transaction's buffered writes ([`Txn::savepoint`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Savepoint(usize);

/// A snapshot-isolation transaction. See the module documentation.
pub struct Txn {
    kv: Arc<Kv>,
    read_ts: Timestamp,
    /// Where the commit checks write conflicts (and proves reads) from:
    /// the read timestamp, or after [`Txn::renew`] a snapshot no later than
    /// any written key's (module docs, *Statement snapshots*).
    conflict_base: std::sync::atomic::AtomicU64,
    state: Mutex<TxnState>,
    /// Ranges joined to the snapshot → their uncertainty limit.
    synced: Mutex<HashMap<RangeId, Timestamp>>,
    /// The row locks, once the transaction locks its writes
    /// (`write_locks.rs`).
    locks: Mutex<Option<Locks>>,
    /// Reading for another node: local replicas only (`remote.rs`).
    serving: bool,
    /// Untracked reads kept for the rest of the snapshot
    /// (`untracked_memo.rs`).
    memo: crate::untracked_memo::UntrackedMemo,
    /// The span whose intents were last settled (`settle_intents`).
    settled: Mutex<SettledSpan>,
}

/// Where a key is read (`Txn::locate`).
enum Located {
    Local {
        range: RangeId,
        bounds: RangeBounds,
        limit: Timestamp,
    },
    Remote {
        range: RangeId,
        bounds: RangeBounds,
    },
}

impl Located {
    fn bounds(&self) -> &RangeBounds {
        match self {
            Located::Local { bounds, .. } | Located::Remote { bounds, .. } => bounds,
        }
    }
}

impl std::fmt::Debug for Txn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.lock();
        f.debug_struct("Txn")
            .field("read_ts", &self.read_ts)
            .field("buffered_writes", &state.writes.len())
            .field("finished", &state.finished)
            .finish()
    }
}

impl Txn {
    /// Called by `Kv::begin`, which has already registered `read_ts` and
    /// synced the local range `first`, if any (with no uncertainty: the
    /// read timestamp is at or above everything it had applied). Without
    /// one, the transaction reads for another node (`Kv::reader`).
    pub(crate) fn new(kv: Arc<Kv>, read_ts: Timestamp, first: Option<RangeId>) -> Self {
        Self {
            kv,
            read_ts,
            conflict_base: std::sync::atomic::AtomicU64::new(read_ts),
            state: Mutex::new(TxnState {
                writes: BTreeMap::new(),
                reads: ReadSet::default(),
                isolation: Isolation::Snapshot,
                used: false,
                lock_wait: None,
                undo: None,
                to_lock: None,
                finished: false,
            }),
            synced: Mutex::new(first.map(|r| (r, read_ts)).into_iter().collect()),
            locks: Mutex::new(None),
            serving: false,
            memo: Default::default(),
            settled: Default::default(),
        }
    }

    /// A reader for another node: it reads local replicas only.
    pub(crate) fn serving(mut self) -> Self {
        self.serving = true;
        self
    }

    /// Where `key` is read: a local replica — joined to the snapshot, with
    /// its bounds and uncertainty limit — or another node's range. A local
    /// route is checked again after joining: if the range split meanwhile
    /// (the barrier waited for the split to apply here), the key's new
    /// range is joined instead, whose leader knows this transaction's
    /// timestamp only once it registers it.
    fn locate(&self, key: &[u8]) -> Result<Located> {
        /// Splits of the key's range a read follows before giving up.
        const MAX_REROUTES: usize = 16;
        // Serving another node: local replicas only, never a second hop.
        let route = |key: &[u8]| {
            if self.serving {
                self.kv.local_route(key)
            } else {
                self.kv.route(key)
            }
        };
        let mut routed = route(key)?;
        for _ in 0..MAX_REROUTES {
            if !self.kv.is_local(routed.0) {
                return Ok(Located::Remote {
                    range: routed.0,
                    bounds: routed.1,
                });
            }
            let limit = self.sync(routed.0)?;
            let now = route(key)?;
            if now == routed {
                return Ok(Located::Local {
                    range: routed.0,
                    bounds: routed.1,
                    limit,
                });
            }
            routed = now;
        }
        Err(KvError::Unavailable(format!(
            "the range holding key {} kept splitting; retry",
            crate::error::printable_key(key)
        )))
    }

    /// Runs `read` until it is routed right: at once when serving another
    /// node (which routes again itself), else as `Kv::rerouting` does.
    fn routed<T>(&self, read: impl FnMut() -> Result<T>) -> Result<T> {
        let mut read = read;
        if self.serving {
            read()
        } else {
            self.kv.rerouting(read)
        }
    }

    /// Joins `range` to the snapshot, once; returns its uncertainty limit.
    fn sync(&self, range: RangeId) -> Result<Timestamp> {
        if let Some(&limit) = self.synced.lock().get(&range) {
            return Ok(limit);
        }
        let limit = self.kv.sync_range(range, self.read_ts)?;
        self.synced.lock().insert(range, limit);
        Ok(limit)
    }

    /// Waits for the transactions holding intents on keys in `[start, end)`
    /// that may commit at or below `limit`, and resolves those intents, so
    /// the versions read next are the whole truth (`distributed.rs`).
    /// Intents prepared above `limit` are left: they commit above it.
    /// A span of `range` inside the one settled last is not looked at
    /// again; else the span is settled and returned, for the caller to
    /// remember once its read has been validated (`settled_span.rs`).
    fn settle_intents(
        &self,
        range: RangeId,
        start: &[u8],
        end: Option<&[u8]>,
        limit: Timestamp,
    ) -> Result<Option<SettledSpan>> {
        if self.settled.lock().covers(range, start, end, limit) {
            return Ok(None);
        }
        self.settle_intents_now(start, end, limit)?;
        Ok(Some(SettledSpan::new(range, start, end, limit)))
    }

    /// [`Txn::settle_intents`] without the memory of the last span.
    fn settle_intents_now(&self, start: &[u8], end: Option<&[u8]>, limit: Timestamp) -> Result<()> {
        const BATCH: usize = 64;
        let (lower, upper) = crate::intents::intent_span(start, end);
        let deadline = std::time::Instant::now() + self.kv.timeout;
        let mut from = lower;
        loop {
            let mut found = Vec::new();
            for pair in self.kv.engine.scan(&from, Some(&upper)) {
                let (key, raw) = pair?;
                let intent = crate::intents::Intent::decode(&raw)?;
                from = key.clone();
                from.push(0);
                if intent.prepare_ts <= limit {
                    found.push((crate::intents::intent_user_key(&key)?, intent));
                    if found.len() == BATCH {
                        break;
                    }
                }
            }
            if found.is_empty() {
                return Ok(());
            }
            for (key, intent) in &found {
                self.kv.resolve_intent(key, intent, deadline)?;
            }
            if found.len() < BATCH {
                return Ok(());
            }
        }
    }

    /// [`Txn::settle_intents`] for one key: a point lookup, the read path's
    /// common case.
    /// Whether the key had an intent (settled or left).
    fn settle_intent_at(&self, key: &[u8], limit: Timestamp) -> Result<bool> {
        let Some(raw) = self.kv.engine.get(&crate::intents::intent_key(key))? else {
            return Ok(false);
        };
        let intent = crate::intents::Intent::decode(&raw)?;
        if intent.prepare_ts > limit {
            return Ok(true);
        }
        let deadline = std::time::Instant::now() + self.kv.timeout;
        self.kv.resolve_intent(key, &intent, deadline)?;
        Ok(true)
    }

    /// Notes an uncertain version's timestamp in the node's clock, so the
    /// transaction that retries reads above it.
    fn observe_uncertainty<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(KvError::ReadWithinUncertainty { ts, .. }) = &result {
            self.kv.clock.observe(*ts);
        }
        result
    }

    /// The store this transaction belongs to.
    pub fn kv(&self) -> &Arc<Kv> {
        &self.kv
    }

    /// The snapshot timestamp this transaction reads at.
    pub fn read_ts(&self) -> Timestamp {
        self.read_ts
    }

    /// The isolation the transaction runs at.
    pub fn isolation(&self) -> Isolation {
        self.state.lock().isolation
    }

    /// Sets the isolation; only before the first read or write, or
    /// [`Txn::pin_isolation`] (else `false`, and nothing changes).
    pub fn set_isolation(&self, isolation: Isolation) -> bool {
        let mut state = self.state.lock();
        if state.used && state.isolation != isolation {
            return false;
        }
        state.isolation = isolation;
        true
    }

    /// Bounds how long the commit waits for each other transaction's
    /// intent (`lock_timeout`; `None`: up to the request timeout).
    pub fn set_lock_timeout(&self, wait: Option<std::time::Duration>) {
        self.state.lock().lock_wait = wait;
    }

    fn lock_wait(&self) -> Option<std::time::Duration> {
        self.state.lock().lock_wait
    }

    /// Fixes the isolation as it is now, as if the transaction had read.
    pub fn pin_isolation(&self) {
        self.state.lock().used = true;
    }

    /// Whether the transaction has read or written anything yet.
    pub fn is_used(&self) -> bool {
        self.state.lock().used
    }

    /// Notes a read of `span`: recorded if the transaction is serializable.
    fn track(&self, span: impl FnOnce() -> Span) {
        let mut state = self.state.lock();
        state.used = true;
        if state.isolation == Isolation::Serializable && !self.serving {
            state.reads.record(span());
        }
    }

    /// The value of `key`: the transaction's own buffered write if any, else
    /// the snapshot's.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let value = match self.own_write(key)? {
            Some(own) => own,
            None => self.read_snapshot(key)?,
        };
        self.track(|| Span::point(key));
        Ok(value)
    }

    /// [`Txn::get`], left out of a serializable transaction's proof at
    /// commit (module docs). What it reads is kept for the rest of the
    /// snapshot (`untracked_memo.rs`).
    pub fn get_untracked(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(own) = self.own_write(key)? {
            return Ok(own);
        }
        if let Some(kept) = self.memo.get(key) {
            return Ok(kept);
        }
        let value = self.read_snapshot_cached(key)?;
        self.memo.remember(key, &value);
        Ok(value)
    }

    /// The transaction's own buffered write of `key`, if it has one
    /// (`Some(None)`: it deleted the key).
    fn own_write(&self, key: &[u8]) -> Result<Option<Option<Vec<u8>>>> {
        Ok(self.live()?.writes.get(key).cloned())
    }

    /// The value of `key` in the snapshot, without the transaction's own
    /// writes.
    fn read_snapshot(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.observe_uncertainty(self.routed(|| match self.locate(key)? {
            Located::Local { range, limit, .. } => {
                self.kv.load.record(range, key);
                self.settle_intent_at(key, limit)?;
                let value =
                    mvcc::read_visible_within(self.kv.engine.as_ref(), key, self.read_ts, limit)?;
                self.kv.check_snapshot(range, self.read_ts)?;
                Ok(value)
            }
            Located::Remote { range, .. } => self.read_remote(range, key),
        }))
    }

    /// [`Txn::read_snapshot`], answered from the node's read cache when an
    /// entry proves the answer, and remembered there when it can be
    /// (`read_cache.rs`).
    fn read_snapshot_cached(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let engine = self.kv.engine.as_ref();
        self.observe_uncertainty(self.routed(|| match self.locate(key)? {
            Located::Local { range, limit, .. } => {
                // Taken before the engine is read (`read_cache.rs`).
                let generation = self.kv.published.generation(range, engine)?;
                if let Some(value) = self.kv.read_cache.get(key, range, generation, self.read_ts) {
                    // Not counted as the range's load: it cost the range
                    // nothing.
                    self.kv.check_snapshot(range, self.read_ts)?;
                    return Ok(value);
                }
                self.kv.load.record(range, key);
                let had_intent = self.settle_intent_at(key, limit)?;
                let value = mvcc::read_visible_within(engine, key, self.read_ts, limit)?;
                self.kv.check_snapshot(range, self.read_ts)?;
                if !had_intent {
                    let newest = mvcc::newest_version_ts(engine, key)?.unwrap_or(0);
                    if newest <= self.read_ts {
                        let cache = &self.kv.read_cache;
                        cache.remember(key, (range, generation), newest, &value);
                    }
                }
                Ok(value)
            }
            Located::Remote { range, .. } => self.read_remote(range, key),
        }))
    }

    /// `key` at the snapshot, asked of a node holding `range`.
    fn read_remote(&self, range: RangeId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let request = crate::remote::Request::Get {
            read_ts: self.read_ts,
            key: key.to_vec(),
        };
        match self.kv.ask(&self.kv.record_of(range)?, &request)? {
            crate::remote::Answer::Value(value) => Ok(value),
            other => Err(crate::store::unexpected_answer(&other)),
        }
    }

    /// Up to `limit` visible pairs in [start, end) in key order (own writes
    /// merged, own deletes hidden). Caller resumes with start = last key +
    /// `[0x00]`. An empty `end` means "to the end of the key space".
    pub fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let pairs = self.scan_untracked(start, end, limit)?;
        // A full answer covered its span only up to its last key.
        self.track(|| match pairs.last() {
            Some((last, _)) if pairs.len() >= limit => Span {
                start: start.to_vec(),
                end: Span::point(last).end,
            },
            _ => Span {
                start: start.to_vec(),
                end: end.to_vec(),
            },
        });
        Ok(pairs)
    }

    /// [`Txn::scan`], left out of a serializable transaction's proof at
    /// commit (module docs).
    pub fn scan_untracked(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        drop(self.live()?);
        let end = (!end.is_empty()).then_some(end);
        let mut out = Vec::new();
        let mut from = start.to_vec();
        // One range at a time, in key order.
        while out.len() < limit && end.is_none_or(|e| from.as_slice() < e) {
            let want = limit - out.len();
            let (piece, range_end) = self.observe_uncertainty(self.routed(|| {
                let located = self.locate(&from)?;
                let range_end = located.bounds().end.clone();
                let piece_end = match (range_end.as_deref(), end) {
                    (Some(b), Some(e)) => Some(b.min(e)),
                    (b, e) => b.or(e),
                };
                let piece = match &located {
                    Located::Local { range, limit, .. } => {
                        self.kv.load.record(*range, &from);
                        let settled = self.settle_intents(*range, &from, piece_end, *limit)?;
                        let mut committed = self
                            .kv
                            .visible_scan(&from, piece_end, self.read_ts)
                            .with_uncertainty(*limit);
                        let piece = self.merge_own(&from, piece_end, want, &mut committed)?;
                        drop(committed);
                        self.kv.check_snapshot(*range, self.read_ts)?;
                        // Only a read the range still stands behind is
                        // remembered as settled (`settled_span.rs`).
                        if let Some(settled) = settled {
                            *self.settled.lock() = settled;
                        }
                        piece
                    }
                    Located::Remote { range, .. } => {
                        let record = self.kv.record_of(*range)?;
                        let mut committed = crate::remote::RemoteScan::new(
                            &self.kv,
                            record,
                            self.read_ts,
                            &from,
                            piece_end,
                        );
                        self.merge_own(&from, piece_end, want, &mut committed)?
                    }
                };
                Ok((piece, range_end))
            }))?;
            out.extend(piece);
            match (range_end, end) {
                (Some(next), Some(e)) if next.as_slice() < e => from = next,
                (Some(next), None) => from = next,
                _ => break,
            }
        }
        Ok(out)
    }

    /// Up to `limit` pairs of `[start, end)` (within one range): the
    /// `committed` ones merged with the transaction's own writes.
    fn merge_own(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        committed: &mut dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>)>>,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if limit == 0 || end.is_some_and(|e| start >= e) {
            return Ok(Vec::new());
        }
        let mut own = OwnWrites::new(self, start, end);
        let mut next_committed = committed.next().transpose()?;
        let mut out = Vec::new();
        while out.len() < limit {
            let take_own = match (&next_committed, own.peek()) {
                (None, None) => break,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some((ck, _)), Some((ok, _))) => ok <= ck,
            };
            if take_own {
                let Some((key, value)) = own.pop() else { break };
                if next_committed.as_ref().is_some_and(|(ck, _)| *ck == key) {
                    // The buffered write shadows the committed version.
                    next_committed = committed.next().transpose()?;
                }
                if let Some(value) = value {
                    out.push((key, value));
                }
            } else if let Some(pair) = next_committed.take() {
                out.push(pair);
                next_committed = committed.next().transpose()?;
            }
        }
        Ok(out)
    }

    /// Buffers a write of `value` to `key`.
    pub fn put(&self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.live()?.write(key, Some(value));
        Ok(())
    }

    /// Buffers a delete of `key`.
    pub fn delete(&self, key: Vec<u8>) -> Result<()> {
        self.live()?.write(key, None);
        Ok(())
    }

    /// Buffers a statement's writes at once (`None` = delete); later entries
    /// for the same key win.
    pub fn write_all(&self, writes: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<()> {
        let mut state = self.live()?;
        for (key, value) in writes {
            state.write(key, value);
        }
        Ok(())
    }

    /// Marks the buffered writes as they are now; [`Txn::rollback_to`]
    /// returns to this mark (module docs, *Savepoints*).
    pub fn savepoint(&self) -> Result<Savepoint> {
        let mut state = self.live()?;
        Ok(Savepoint(state.undo.get_or_insert_with(Vec::new).len()))
    }

    /// Undoes every write buffered since `savepoint` was taken. The mark
    /// stays valid (PostgreSQL keeps a savepoint rolled back to), as do
    /// older ones; marks taken after it must not be used again.
    pub fn rollback_to(&self, savepoint: Savepoint) -> Result<()> {
        let mut state = self.live()?;
        let state = &mut *state;
        let Some(undo) = state.undo.as_mut() else {
            // No savepoint is open: nothing was logged after any mark.
            return Ok(());
        };
        while undo.len() > savepoint.0 {
            let Some((key, before)) = undo.pop() else {
                break;
            };
            match before {
                Some(value) => state.writes.insert(key, value),
                None => state.writes.remove(&key),
            };
        }
        Ok(())
    }

    /// Forgets every savepoint: the writes stay, the undo log goes.
    pub fn release_savepoints(&self) {
        self.state.lock().undo = None;
    }

    /// The same transaction with a new snapshot for its next statement
    /// (module docs, *Statement snapshots*): the buffered writes,
    /// savepoint log, recorded reads and settings move to the returned
    /// transaction, whose conflict base is the new snapshot if no buffered
    /// key changed since this one's base (a change: `WriteConflict`, and
    /// `self` stays live), else — or if serializable — this one's.
    /// Finishes `self`.
    pub fn renew(&self) -> Result<Arc<Txn>> {
        let next = self.kv.begin()?;
        let base = self.conflict_base();
        let keys: Option<Vec<Vec<u8>>> = {
            let state = self.live()?;
            (state.isolation == Isolation::Snapshot && state.writes.len() <= MAX_RENEW_CHECKS)
                .then(|| state.writes.keys().cloned().collect())
        };
        let next_base = match keys {
            Some(keys) if next.unchanged_since(&keys, base)? => next.read_ts,
            _ => base,
        };
        {
            let mut state = self.live()?;
            let mut moved = next.state.lock();
            moved.writes = std::mem::take(&mut state.writes);
            moved.reads = std::mem::take(&mut state.reads);
            moved.undo = state.undo.take();
            moved.isolation = state.isolation;
            moved.used = state.used;
            moved.lock_wait = state.lock_wait;
            moved.to_lock = state.to_lock.take();
            state.finished = true;
        }
        *next.locks.lock() = self.locks.lock().take();
        next.conflict_base
            .store(next_base, std::sync::atomic::Ordering::Relaxed);
        self.kv.unregister(self.read_ts);
        Ok(next)
    }

    /// Whether, at this snapshot, no other transaction has committed any of
    /// `keys` after `base`: `Ok(true)` if none did, `Ok(false)` if that
    /// cannot be told for some key (held elsewhere, or an undecided intent
    /// above this snapshot's uncertainty limit), `WriteConflict` naming
    /// the first key that changed.
    fn unchanged_since(&self, keys: &[Vec<u8>], base: Timestamp) -> Result<bool> {
        let mut known = true;
        for key in keys {
            let changed = self.routed(|| match self.locate(key)? {
                Located::Remote { .. } => Ok(None),
                Located::Local { limit, .. } => {
                    self.settle_intent_at(key, limit)?;
                    let engine = self.kv.engine.as_ref();
                    // A lock intent holds no value: the versions tell.
                    if let Some(raw) = engine.get(&crate::intents::intent_key(key))?
                        && !crate::intents::Intent::decode(&raw)?.is_lock()
                    {
                        return Ok(None);
                    }
                    Ok(Some(
                        mvcc::newest_version_ts(engine, key)?.is_some_and(|ts| ts > base),
                    ))
                }
            })?;
            match changed {
                Some(true) => {
                    return Err(KvError::WriteConflict {
                        key: key.clone(),
                        note: String::new(),
                    });
                }
                Some(false) => {}
                None => known = false,
            }
        }
        Ok(known)
    }

    /// Locks the keys written since the last call (all buffered keys, the
    /// first time) for `holder` (`write_locks.rs`), from this snapshot;
    /// returns the keys another transaction changed since the snapshot,
    /// which the caller must write again from a newer one. Fails with
    /// [`KvError::Locked`] if another transaction holds one: the keys not
    /// locked yet stay to lock at the next call, after the caller waited.
    /// From the first call on, the commit and rollback release the locks.
    pub fn lock_writes(&self, holder: &[u8]) -> Result<Vec<Vec<u8>>> {
        // Held across the requests: one locking call at a time per
        // transaction (the session's, or its node's keeper renewing).
        let mut held = self.locks.lock();
        let keys = {
            let mut state = self.live()?;
            match state.to_lock.replace(Vec::new()) {
                Some(keys) => keys,
                None => state.writes.keys().cloned().collect(),
            }
        };
        let locks = held.get_or_insert_with(|| Locks::new(holder.to_vec()));
        let outcome = self.kv.lock_keys(locks, keys.clone(), self.read_ts);
        if outcome.is_err() {
            let mut state = self.state.lock();
            if let Some(to_lock) = &mut state.to_lock {
                to_lock.extend(keys.into_iter().filter(|key| !locks.locked.contains(key)));
            }
        }
        outcome
    }

    /// Renews the record of this transaction's row locks, if it has any,
    /// so waiters do not presume it dead while it idles.
    /// Gives up after `patience`.
    pub fn renew_locks(&self, patience: std::time::Duration) -> Result<()> {
        let mut held = self.locks.lock();
        drop(self.live()?);
        match held.as_mut() {
            Some(locks) => self.kv.renew_lock_record(locks, patience),
            None => Ok(()),
        }
    }

    /// Releases the row locks now, the transaction staying open (it can
    /// only roll back: a failed block).
    pub fn release_locks(&self) {
        let locks = self.locks.lock().take();
        if let Some(locks) = locks {
            self.kv.release_locks(locks);
        }
    }

    /// Whether the transaction holds row locks (`write_locks.rs`).
    pub fn has_locks(&self) -> bool {
        self.locks
            .lock()
            .as_ref()
            .is_some_and(|locks| locks.primary.is_some())
    }

    /// Where the commit checks write conflicts from (module docs,
    /// *Statement snapshots*).
    pub fn conflict_base(&self) -> Timestamp {
        self.conflict_base
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether any write is buffered.
    pub fn has_writes(&self) -> bool {
        !self.state.lock().writes.is_empty()
    }

    /// Commits: a read-only transaction returns its read timestamp; otherwise
    /// the buffered writes are checked for conflicts (first committer wins)
    /// and written in one durable batch at a new commit timestamp, which is
    /// returned. Finishes the transaction whatever the outcome.
    pub fn commit(&self) -> Result<Timestamp> {
        let (writes, reads) = {
            let mut state = self.live()?;
            state.finished = true;
            state.undo = None;
            let writes = std::mem::take(&mut state.writes);
            let reads = state.reads.take(|key| writes.contains_key(key));
            (writes, reads)
        };
        // Taken after the state lock is let go: a locking call holds the
        // locks' mutex first, then the state's.
        let locks = self.locks.lock().take();
        // A read-only transaction is serialized at its snapshot: nothing
        // to prove (`reads.rs`).
        let outcome = if writes.is_empty() {
            Ok(self.read_ts)
        } else {
            let lock_id = locks.as_ref().map_or(0, |locks| locks.id);
            self.kv.commit_writes(
                self.conflict_base(),
                writes,
                &reads,
                (self.lock_wait(), lock_id),
            )
        };
        if let Some(locks) = locks {
            self.kv.release_locks(locks);
        }
        self.kv.unregister(self.read_ts);
        outcome
    }

    /// Discards the buffered writes and finishes the transaction. Idempotent.
    pub fn rollback(&self) {
        let was_live = {
            let mut state = self.state.lock();
            state.writes.clear();
            state.reads = ReadSet::default();
            state.undo = None;
            !std::mem::replace(&mut state.finished, true)
        };
        let locks = self.locks.lock().take();
        if let Some(locks) = locks {
            self.kv.release_locks(locks);
        }
        if was_live {
            self.kv.unregister(self.read_ts);
        }
    }

    /// The state, if the transaction is still live.
    fn live(&self) -> Result<parking_lot::MutexGuard<'_, TxnState>> {
        let state = self.state.lock();
        if state.finished {
            return Err(KvError::TxnFinished);
        }
        Ok(state)
    }
}

impl Drop for Txn {
    fn drop(&mut self) {
        // Unregisters the snapshot so GC can advance.
        self.rollback();
    }
}

/// A cursor over the buffered writes in a span, refilled a chunk at a time
/// so the state lock is never held while the engine is read.
struct OwnWrites<'t> {
    txn: &'t Txn,
    next_from: Bound<Vec<u8>>,
    end: Option<Vec<u8>>,
    chunk: VecDeque<(Vec<u8>, Option<Vec<u8>>)>,
    exhausted: bool,
}

impl<'t> OwnWrites<'t> {
    fn new(txn: &'t Txn, start: &[u8], end: Option<&[u8]>) -> Self {
        Self {
            txn,
            next_from: Bound::Included(start.to_vec()),
            end: end.map(<[u8]>::to_vec),
            chunk: VecDeque::new(),
            exhausted: false,
        }
    }

    fn fill(&mut self) {
        if !self.chunk.is_empty() || self.exhausted {
            return;
        }
        let lower = match &self.next_from {
            Bound::Included(k) => Bound::Included(k.as_slice()),
            Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
            Bound::Unbounded => Bound::Unbounded,
        };
        let upper = match &self.end {
            Some(e) => Bound::Excluded(e.as_slice()),
            None => Bound::Unbounded,
        };
        // `scan` rejected start >= end, and next_from only moves forward to
        // a key below end, so the range is well-formed (BTreeMap::range
        // would panic otherwise).
        let state = self.txn.state.lock();
        self.chunk.extend(
            state
                .writes
                .range::<[u8], _>((lower, upper))
                .take(OWN_WRITES_CHUNK)
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        drop(state);
        match self.chunk.back() {
            Some((last, _)) if self.chunk.len() == OWN_WRITES_CHUNK => {
                self.next_from = Bound::Excluded(last.clone());
            }
            _ => self.exhausted = true,
        }
    }

    fn peek(&mut self) -> Option<&(Vec<u8>, Option<Vec<u8>>)> {
        self.fill();
        self.chunk.front()
    }

    fn pop(&mut self) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
        self.fill();
        self.chunk.pop_front()
    }
}
