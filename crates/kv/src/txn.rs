//! [`Txn`]: a snapshot-isolation transaction.
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
use crate::store::Kv;

/// Buffered writes copied out of the transaction per lock acquisition.
const OWN_WRITES_CHUNK: usize = 256;

type Buffer = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

struct TxnState {
    writes: Buffer,
    finished: bool,
}

/// A snapshot-isolation transaction. See the module documentation.
pub struct Txn {
    kv: Arc<Kv>,
    read_ts: Timestamp,
    state: Mutex<TxnState>,
    /// Ranges joined to the snapshot → their uncertainty limit.
    synced: Mutex<HashMap<RangeId, Timestamp>>,
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
    /// synced range `first` (with no uncertainty: the read timestamp is
    /// at or above everything it had applied).
    pub(crate) fn new(kv: Arc<Kv>, read_ts: Timestamp, first: RangeId) -> Self {
        Self {
            kv,
            read_ts,
            state: Mutex::new(TxnState {
                writes: BTreeMap::new(),
                finished: false,
            }),
            synced: Mutex::new(HashMap::from([(first, read_ts)])),
        }
    }

    /// The range holding `key` — joined to the snapshot — its bounds and
    /// uncertainty limit. The route is checked again after joining: if the
    /// range split meanwhile (the barrier waited for the split to apply
    /// here), the key's new range is joined instead, whose leader knows
    /// this transaction's timestamp only once it registers it.
    fn synced_route(&self, key: &[u8]) -> Result<(RangeId, RangeBounds, Timestamp)> {
        /// Splits of the key's range a read follows before giving up.
        const MAX_REROUTES: usize = 16;
        let mut routed = self.kv.route(key)?;
        for _ in 0..MAX_REROUTES {
            let limit = self.sync(routed.0)?;
            let now = self.kv.route(key)?;
            if now == routed {
                return Ok((routed.0, routed.1, limit));
            }
            routed = now;
        }
        Err(KvError::Unavailable(format!(
            "the range holding key {} kept splitting; retry",
            crate::error::printable_key(key)
        )))
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
    fn settle_intents(&self, start: &[u8], end: Option<&[u8]>, limit: Timestamp) -> Result<()> {
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
    fn settle_intent_at(&self, key: &[u8], limit: Timestamp) -> Result<()> {
        let Some(raw) = self.kv.engine.get(&crate::intents::intent_key(key))? else {
            return Ok(());
        };
        let intent = crate::intents::Intent::decode(&raw)?;
        if intent.prepare_ts > limit {
            return Ok(());
        }
        let deadline = std::time::Instant::now() + self.kv.timeout;
        self.kv.resolve_intent(key, &intent, deadline)
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

    /// The value of `key`: the transaction's own buffered write if any, else
    /// the snapshot's.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        {
            let state = self.live()?;
            if let Some(own) = state.writes.get(key) {
                return Ok(own.clone());
            }
        }
        let (range, _, limit) = self.synced_route(key)?;
        self.settle_intent_at(key, limit)?;
        let value = self.observe_uncertainty(mvcc::read_visible_within(
            self.kv.engine.as_ref(),
            key,
            self.read_ts,
            limit,
        ))?;
        self.kv.check_snapshot(range, self.read_ts)?;
        Ok(value)
    }

    /// Up to `limit` visible pairs in [start, end) in key order (own writes
    /// merged, own deletes hidden). Caller resumes with start = last key +
    /// `[0x00]`. An empty `end` means "to the end of the key space".
    pub fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        drop(self.live()?);
        let end = (!end.is_empty()).then_some(end);
        let mut out = Vec::new();
        let mut from = start.to_vec();
        // One range at a time, in key order.
        while out.len() < limit && end.is_none_or(|e| from.as_slice() < e) {
            let (range, bounds, uncertainty) = self.synced_route(&from)?;
            let piece_end = match (bounds.end.as_deref(), end) {
                (Some(b), Some(e)) => Some(b.min(e)),
                (b, e) => b.or(e),
            };
            let piece = self.observe_uncertainty(self.scan_range(
                &from,
                piece_end,
                limit - out.len(),
                uncertainty,
            ))?;
            self.kv.check_snapshot(range, self.read_ts)?;
            out.extend(piece);
            match piece_end {
                Some(next) if bounds.end.as_deref() == Some(next) => from = next.to_vec(),
                _ => break,
            }
        }
        Ok(out)
    }

    /// [`Txn::scan`] within one range's bounds.
    fn scan_range(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        uncertainty: Timestamp,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if limit == 0 || end.is_some_and(|e| start >= e) {
            return Ok(Vec::new());
        }
        self.settle_intents(start, end, uncertainty)?;
        let mut committed = self
            .kv
            .visible_scan(start, end, self.read_ts)
            .with_uncertainty(uncertainty);
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
        drop(committed);
        Ok(out)
    }

    /// Buffers a write of `value` to `key`.
    pub fn put(&self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.live()?.writes.insert(key, Some(value));
        Ok(())
    }

    /// Buffers a delete of `key`.
    pub fn delete(&self, key: Vec<u8>) -> Result<()> {
        self.live()?.writes.insert(key, None);
        Ok(())
    }

    /// Buffers a statement's writes at once (`None` = delete); later entries
    /// for the same key win.
    pub fn write_all(&self, writes: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<()> {
        self.live()?.writes.extend(writes);
        Ok(())
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
        let writes = {
            let mut state = self.live()?;
            state.finished = true;
            std::mem::take(&mut state.writes)
        };
        let outcome = if writes.is_empty() {
            Ok(self.read_ts)
        } else {
            self.kv.commit_writes(self.read_ts, writes)
        };
        self.kv.unregister(self.read_ts);
        outcome
    }

    /// Discards the buffered writes and finishes the transaction. Idempotent.
    pub fn rollback(&self) {
        let was_live = {
            let mut state = self.state.lock();
            state.writes.clear();
            !std::mem::replace(&mut state.finished, true)
        };
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
