//! [`PeerStorage`]: one replica's Raft log and state, as raft-rs sees it.
//!
//! raft-rs reads the log through its `Storage` trait and never writes it:
//! the driver persists what a `Ready` hands it. `PeerStorage` therefore has
//! two faces:
//!
//! * **Reads** (`raft::Storage`): served from memory. The log entries not
//!   yet compacted are cached in a `VecDeque`, so `entries`/`term` never
//!   touch the disk. Compaction keeps the cache bounded.
//! * **Writes** (`append`, `set_hard_state`, `apply_snapshot`, `compact`):
//!   update memory and add the matching operations to a caller-supplied
//!   [`WriteBatch`]. The driver collects the batches of every replica that
//!   has work in one round and writes them with a single sync — group
//!   commit across ranges.
//!
//! The apply state here is a *mirror*: the apply side (`apply.rs`) owns and
//! writes it, and the driver copies what the apply side reports
//! ([`PeerStorage::note_applied`]), so it may lag the engine a little.
//!
//! # Snapshots
//!
//! raft-rs asks `snapshot()` for a snapshot to send a lagging follower. The
//! data must be cut at one applied index, and only the apply side knows the
//! engine at one — so the first call answers "temporarily unavailable" and
//! records the request ([`PeerStorage::take_snapshot_request`]); the driver
//! has the apply side generate one and hands it back
//! ([`PeerStorage::set_generated`]); raft-rs's next attempt (the follower's
//! next heartbeat response) sends it.
//!
//! Invariants (checked by raft-rs's usage, relied on here):
//!
//! * The cache holds exactly the entries `truncated_index + 1 ..= last`, in
//!   order, with no gaps.
//! * `truncated_index <= applied_index <= commit`: only applied entries are
//!   compacted, so a snapshot can always be cut at `applied_index`.
//!
//! A replica created by an incoming message for a range this node does not
//! know yet starts *uninitialized* (everything zero, no members); the
//! leader finds its log empty and sends a snapshot, which initializes it.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::Arc;

use protobuf::Message as _;
use raft::prelude::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError as RaftStorageError};
use shoal_storage::{ColumnFamily, Engine, WriteBatch};

use crate::RangeId;
use crate::apply_state::{ApplyState, RangeBounds, TruncatedState};
use crate::error::{ReplicationError, Result};
use crate::keys;
use crate::snapshot::{self, DataSpan, SnapshotHeader};

/// Maps a range and its bounds to the data column family spans holding its
/// data: the state machine's [`StateMachine::data_spans`](crate::StateMachine::data_spans).
pub type SpanFn = fn(RangeId, &RangeBounds) -> Vec<DataSpan>;

/// The index and term a bootstrapped range's log starts after. Non-zero so
/// that a replica created empty (index 0) is always behind and receives a
/// snapshot rather than an append.
pub const INITIAL_INDEX: u64 = 5;
/// See [`INITIAL_INDEX`].
pub const INITIAL_TERM: u64 = 5;

/// One replica's Raft storage. See the module documentation.
pub struct PeerStorage {
    range: RangeId,
    engine: Arc<dyn Engine>,
    spans: SpanFn,
    hard_state: HardState,
    apply: ApplyState,
    truncated: TruncatedState,
    entries: VecDeque<Entry>,
    /// The lowest index raft-rs asked a snapshot for and did not get.
    snapshot_request: Cell<Option<u64>>,
    /// The snapshot the apply side generated last, to hand to raft-rs.
    generated: RefCell<Option<Snapshot>>,
    /// No snapshot below this index may be sent: the index of the last
    /// merge this replica applied (a replica built from an earlier one
    /// would replay the merge without the merged range's data).
    snapshot_floor: u64,
}

impl std::fmt::Debug for PeerStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerStorage")
            .field("range", &self.range)
            .field("applied", &self.apply.applied_index)
            .field("truncated", &self.truncated.index)
            .field("last", &self.last_index())
            .finish()
    }
}

fn codec<E: std::fmt::Display>(e: E) -> ReplicationError {
    ReplicationError::Codec(e.to_string())
}

impl PeerStorage {
    /// Loads the replica of `range` from `engine`; a replica never written
    /// comes back uninitialized.
    pub fn open(range: RangeId, engine: Arc<dyn Engine>, spans: SpanFn) -> Result<PeerStorage> {
        let raft = ColumnFamily::Raft;
        let mut hard_state = match engine.get_cf(raft, &keys::hard_state(range))? {
            Some(bytes) => HardState::parse_from_bytes(&bytes)
                .map_err(|e| ReplicationError::Corrupt(format!("hard state: {e}")))?,
            None => HardState::default(),
        };
        let apply = match engine.get_cf(raft, &keys::apply_state(range))? {
            Some(bytes) => ApplyState::decode(&bytes)?,
            None => ApplyState::default(),
        };
        let truncated = match engine.get_cf(raft, &keys::truncated_state(range))? {
            Some(bytes) => TruncatedState::decode(&bytes)?,
            None => TruncatedState::default(),
        };
        // The commit index is persisted lazily (with the next hard state
        // change), so it may lag what was applied; an applied entry was
        // committed, and raft-rs requires `applied <= commit`.
        hard_state.commit = hard_state.commit.max(apply.applied_index);
        let (start, end) = (
            keys::log_entry(range, truncated.index + 1),
            keys::log_entry(range, u64::MAX),
        );
        let mut entries = VecDeque::new();
        for pair in engine.scan_cf(raft, &start, Some(&end)) {
            let (key, value) = pair?;
            let entry = Entry::parse_from_bytes(&value)
                .map_err(|e| ReplicationError::Corrupt(format!("log entry: {e}")))?;
            let expected = truncated.index + 1 + entries.len() as u64;
            if keys::log_index(range, &key) != Some(expected) || entry.index != expected {
                return Err(ReplicationError::Corrupt(format!(
                    "range {range}: log entry {} found where {expected} belongs",
                    entry.index
                )));
            }
            entries.push_back(entry);
        }
        Ok(PeerStorage {
            range,
            engine,
            spans,
            hard_state,
            apply,
            truncated,
            entries,
            snapshot_request: Cell::new(None),
            generated: RefCell::new(None),
            snapshot_floor: 0,
        })
    }

    /// The state of a range bootstrapped on this node with `voters` and
    /// every key: an empty log starting after [`INITIAL_INDEX`], everything
    /// applied. Adds it to `batch`; the caller writes it (synced) before
    /// use.
    pub fn bootstrap(range: RangeId, voters: &[u64], batch: &mut WriteBatch) -> Result<()> {
        let apply = ApplyState {
            applied_index: INITIAL_INDEX,
            applied_term: INITIAL_TERM,
            conf_state: ConfState::from((voters.to_vec(), Vec::<u64>::new())),
            bounds: RangeBounds::everything(),
            generation: 1,
            frozen: None,
        };
        Self::write_initial(range, &apply, None, batch)
    }

    /// Adds to `batch` the initial state of a range whose apply state is
    /// `apply` (at [`INITIAL_INDEX`]): a split's right-hand range, or a
    /// bootstrapped one. `voted` is the hard state a replica created by a
    /// message already persisted: its term and vote are kept — a vote must
    /// never be forgotten.
    pub fn write_initial(
        range: RangeId,
        apply: &ApplyState,
        voted: Option<HardState>,
        batch: &mut WriteBatch,
    ) -> Result<()> {
        let truncated = TruncatedState {
            index: INITIAL_INDEX,
            term: INITIAL_TERM,
        };
        let mut hard_state = voted.unwrap_or_default();
        if hard_state.term < INITIAL_TERM {
            hard_state.term = INITIAL_TERM;
            hard_state.vote = 0;
        }
        hard_state.commit = hard_state.commit.max(INITIAL_INDEX);
        batch.put_cf(
            ColumnFamily::Raft,
            keys::hard_state(range),
            hard_state.write_to_bytes().map_err(codec)?,
        );
        apply.put(range, batch)?;
        truncated.put(range, batch);
        Ok(())
    }

    /// The range this replica belongs to.
    pub fn range(&self) -> RangeId {
        self.range
    }

    /// The apply state as last reported by the apply side.
    pub fn apply_state(&self) -> &ApplyState {
        &self.apply
    }

    /// Where the log begins.
    pub fn truncated_state(&self) -> TruncatedState {
        self.truncated
    }

    /// The data column family spans this range owns as of its applied
    /// index (as mirrored here).
    pub fn spans(&self) -> Vec<DataSpan> {
        (self.spans)(self.range, &self.apply.bounds)
    }

    /// The engine holding this replica.
    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.engine
    }

    /// Whether the replica has a membership (bootstrapped or snapshotted).
    pub fn is_initialized(&self) -> bool {
        !self.apply.conf_state.voters.is_empty()
    }

    /// The last log index (the truncated index when the log is empty).
    pub fn last_index(&self) -> u64 {
        self.entries
            .back()
            .map_or(self.truncated.index, |e| e.index)
    }

    /// Appends `entries` from a `Ready`, replacing any conflicting suffix.
    pub fn append(&mut self, entries: &[Entry], batch: &mut WriteBatch) -> Result<()> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        if first.index <= self.truncated.index {
            // raft-rs never appends below a snapshot it installed; a broken
            // invariant of the library, not bad input.
            return Err(ReplicationError::Corrupt(format!(
                "range {}: append at {} below truncated index {}",
                self.range, first.index, self.truncated.index
            )));
        }
        let old_last = self.last_index();
        if first.index <= old_last {
            // Drop the conflicting suffix, in memory and on disk.
            let keep = (first.index - self.truncated.index - 1) as usize;
            self.entries.truncate(keep);
            batch.delete_range_cf(
                ColumnFamily::Raft,
                keys::log_entry(self.range, first.index),
                keys::log_entry(self.range, old_last + 1),
            );
        } else if first.index != old_last + 1 {
            return Err(ReplicationError::Corrupt(format!(
                "range {}: append at {} leaves a gap after {old_last}",
                self.range, first.index
            )));
        }
        for entry in entries {
            batch.put_cf(
                ColumnFamily::Raft,
                keys::log_entry(self.range, entry.index),
                entry.write_to_bytes().map_err(codec)?,
            );
            self.entries.push_back(entry.clone());
        }
        Ok(())
    }

    /// Records a new hard state.
    pub fn set_hard_state(&mut self, hard_state: &HardState, batch: &mut WriteBatch) -> Result<()> {
        self.hard_state = hard_state.clone();
        batch.put_cf(
            ColumnFamily::Raft,
            keys::hard_state(self.range),
            hard_state.write_to_bytes().map_err(codec)?,
        );
        Ok(())
    }

    /// Moves the commit index (from a `LightReady`); persisted with the next
    /// hard state write. Losing it in a crash is harmless: Raft learns the
    /// commit index again from the leader.
    pub fn set_commit(&mut self, commit: u64) {
        self.hard_state.commit = commit;
    }

    /// Mirrors what the apply side reported: entries up to `index` are
    /// applied (and written), with `conf_state` the membership if it
    /// changed. Memory only — the apply side wrote it.
    /// (The mirror's `applied_term` is not kept: only the apply side cuts
    /// snapshots.)
    pub fn note_applied(&mut self, index: u64, conf_state: Option<ConfState>) {
        if index > self.apply.applied_index {
            self.apply.applied_index = index;
        }
        if let Some(conf_state) = conf_state {
            self.apply.conf_state = conf_state;
        }
    }

    /// Mirrors a change of layout the apply side applied (split, merge,
    /// membership, freeze): the range now owns `bounds`, at `generation`.
    pub fn note_layout(&mut self, bounds: RangeBounds, generation: u64) {
        self.apply.bounds = bounds;
        self.apply.generation = generation;
    }

    /// Takes the lowest index raft-rs asked a snapshot for since the last
    /// call, if it asked.
    pub fn take_snapshot_request(&self) -> Option<u64> {
        self.snapshot_request.take()
    }

    /// Keeps a snapshot the apply side generated, for raft-rs's next ask.
    pub fn set_generated(&mut self, snapshot: Snapshot) {
        *self.generated.get_mut() = Some(snapshot);
    }

    /// Notes a merge applied at `index`: snapshots cut before it are never
    /// sent (see `snapshot_floor`).
    pub fn note_merge(&mut self, index: u64) {
        self.snapshot_floor = self.snapshot_floor.max(index);
        self.drop_generated_before(index);
    }

    /// Forgets the generated snapshot (it is large; a new one is cut when
    /// needed).
    pub fn drop_generated(&mut self) {
        *self.generated.get_mut() = None;
    }

    /// Forgets the generated snapshot if it was cut before `index`.
    fn drop_generated_before(&mut self, index: u64) {
        let stale = self
            .generated
            .get_mut()
            .as_ref()
            .is_some_and(|s| s.get_metadata().index < index);
        if stale {
            *self.generated.get_mut() = None;
        }
    }

    /// Installs a snapshot from the leader: replaces the range's data and
    /// log, and moves every index to the snapshot's. The caller makes sure
    /// the apply side is idle for the range while the batch is written.
    pub fn apply_snapshot(&mut self, snap: &Snapshot, batch: &mut WriteBatch) -> Result<()> {
        let meta = snap.get_metadata();
        let (header, pairs) = SnapshotHeader::parse(snap.get_data())?;
        snapshot::install(pairs, &(self.spans)(self.range, &header.bounds), batch)?;
        let (start, end) = keys::replica_span(self.range);
        let log_start = keys::log_entry(self.range, 0);
        let log_end = keys::log_entry(self.range, u64::MAX);
        debug_assert!(start < log_start && log_end < end);
        batch.delete_range_cf(ColumnFamily::Raft, log_start, log_end);
        self.entries.clear();
        *self.generated.get_mut() = None;
        self.apply = ApplyState {
            applied_index: meta.index,
            applied_term: meta.term,
            conf_state: meta.get_conf_state().clone(),
            bounds: header.bounds,
            generation: header.generation,
            frozen: header.frozen,
        };
        self.apply.put(self.range, batch)?;
        self.truncated = TruncatedState {
            index: meta.index,
            term: meta.term,
        };
        self.truncated.put(self.range, batch);
        let mut hard_state = self.hard_state.clone();
        hard_state.commit = hard_state.commit.max(meta.index);
        hard_state.term = hard_state.term.max(meta.term);
        self.set_hard_state(&hard_state, batch)
    }

    /// Removes log entries up to `index` (at most the applied index); the
    /// log keeps the term of `index` for matching.
    pub fn compact(&mut self, index: u64, batch: &mut WriteBatch) -> Result<()> {
        let index = index.min(self.apply.applied_index);
        if index <= self.truncated.index {
            return Ok(());
        }
        let term = self.term_of(index)?;
        let drop = (index - self.truncated.index) as usize;
        self.entries.drain(..drop.min(self.entries.len()));
        batch.delete_range_cf(
            ColumnFamily::Raft,
            keys::log_entry(self.range, self.truncated.index + 1),
            keys::log_entry(self.range, index + 1),
        );
        self.truncated = TruncatedState { index, term };
        self.truncated.put(self.range, batch);
        // A follower that installed an older snapshot would need entries
        // now gone.
        self.drop_generated_before(index);
        Ok(())
    }

    /// Number of entries held in the log.
    pub fn log_len(&self) -> usize {
        self.entries.len()
    }

    fn term_of(&self, index: u64) -> Result<u64, raft::Error> {
        if index == self.truncated.index {
            return Ok(self.truncated.term);
        }
        if index < self.truncated.index {
            return Err(raft::Error::Store(RaftStorageError::Compacted));
        }
        let offset = (index - self.truncated.index - 1) as usize;
        self.entries
            .get(offset)
            .map(|e| e.term)
            .ok_or(raft::Error::Store(RaftStorageError::Unavailable))
    }
}

/// Whether `node` is a voter or learner of `conf_state`, on either side of
/// a joint configuration.
fn names_member(conf_state: &ConfState, node: u64) -> bool {
    [
        &conf_state.voters,
        &conf_state.learners,
        &conf_state.voters_outgoing,
        &conf_state.learners_next,
    ]
    .iter()
    .any(|ids| ids.contains(&node))
}

impl raft::Storage for PeerStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.apply.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low <= self.truncated.index {
            return Err(raft::Error::Store(RaftStorageError::Compacted));
        }
        if high > self.last_index() + 1 || low > high {
            return Err(raft::Error::Store(RaftStorageError::Unavailable));
        }
        let max_size = max_size.into().unwrap_or(u64::MAX);
        let from = (low - self.truncated.index - 1) as usize;
        let to = (high - self.truncated.index - 1) as usize;
        let mut out = Vec::with_capacity(to - from);
        let mut size = 0u64;
        for entry in self.entries.range(from..to) {
            size += u64::from(entry.compute_size());
            // Always return at least one entry, as the trait requires.
            if !out.is_empty() && size > max_size {
                break;
            }
            out.push(entry.clone());
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.term_of(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.truncated.index + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(PeerStorage::last_index(self))
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        // Usable: cut at or after what raft-rs asks for, not below the log's
        // start (the follower continues from the log after it) nor below
        // the last merge (`snapshot_floor`), and naming
        // the follower as a member (one cut before it was added would be
        // refused by it).
        let floor = request_index
            .max(self.truncated.index)
            .max(self.snapshot_floor);
        if let Some(snapshot) = self.generated.borrow().as_ref()
            && snapshot.get_metadata().index >= floor
            && names_member(snapshot.get_metadata().get_conf_state(), to)
        {
            return Ok(snapshot.clone());
        }
        let wanted = self
            .snapshot_request
            .get()
            .map_or(request_index, |w| w.min(request_index));
        self.snapshot_request.set(Some(wanted));
        Err(raft::Error::Store(
            RaftStorageError::SnapshotTemporarilyUnavailable,
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use raft::Storage as _;
    use shoal_storage::MemoryEngine;

    use super::*;
    use crate::snapshot::DataSpan;

    fn spans(_range: RangeId, _bounds: &RangeBounds) -> Vec<DataSpan> {
        vec![DataSpan::everything()]
    }

    fn snapshot_at(index: u64, voters: Vec<u64>) -> Snapshot {
        let mut snapshot = Snapshot::default();
        snapshot.mut_metadata().index = index;
        snapshot.mut_metadata().term = 1;
        snapshot
            .mut_metadata()
            .set_conf_state(ConfState::from((voters, Vec::new())));
        snapshot
    }

    #[test]
    fn no_snapshot_from_before_a_merge_is_sent() {
        let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
        let mut batch = WriteBatch::new();
        PeerStorage::bootstrap(7, &[1, 2, 3], &mut batch).unwrap();
        engine.write(batch, true).unwrap();
        let mut storage = PeerStorage::open(7, engine, spans).unwrap();
        storage.set_generated(snapshot_at(9, vec![1, 2, 3]));
        assert_eq!(storage.snapshot(0, 3).unwrap().get_metadata().index, 9);
        // A merge applied at 11: a replica built from the snapshot at 9
        // would replay it without the merged range's data.
        storage.note_merge(11);
        assert!(storage.snapshot(0, 3).is_err());
        assert_eq!(storage.take_snapshot_request(), Some(0));
        storage.set_generated(snapshot_at(12, vec![1, 2, 3]));
        assert_eq!(storage.snapshot(0, 3).unwrap().get_metadata().index, 12);
    }
}
