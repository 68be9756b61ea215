//! [`KvStateMachine`]: what a committed KV command does to a replica.
//!
//! Every replica of a range runs the same commands in the same order, so
//! everything here is a function of the command and the replica's data:
//!
//! * **Commit** — the write rule of snapshot isolation, decided at apply
//!   time: if any written key has a version newer than the transaction's
//!   read timestamp, the reply is [`Reply::Conflict`] and nothing is
//!   written. Otherwise the commit timestamp is
//!   `max(ts_hint, floor, last + 1)`, where `last` is the range's newest
//!   commit timestamp (so they strictly increase in log order) and `floor`
//!   is what the leader stamped on the entry, above every read it
//!   registered before appending it (`shoal-replication`'s `peer.rs`,
//!   *Timestamp floors*); every write becomes a version at it.
//!   A key outside the range's bounds (it split after the proposer routed
//!   the command) is refused with [`Reply::WrongRange`]; the proposer
//!   routes again. The new `last` is stored in the same batch, and
//!   so is a commit record under the command's id: the same commit
//!   proposed again (its proposer lost the answer and retried) finds the
//!   record and gets the same reply without writing twice.
//!   A serializable transaction's commit also carries the spans it read
//!   in the range: a version in them newer than its snapshot is
//!   [`Reply::ReadConflict`]; and it may carry a `max_ts`, above which
//!   nothing is written ([`Reply::TooLate`]; `reads.rs`).
//! * **Refresh** — proves a serializable transaction's reads in the range
//!   up to a timestamp and raises the range's last commit timestamp to it
//!   (`reads.rs`).
//! * **Gc** — deletes the listed versions and raises the GC threshold
//!   (both range-local: `keys.rs`).
//! * **RegisterNode** — adds a node to the registry (`registry.rs`).
//! * **Heartbeat** — renews a node's liveness (`liveness.rs`).
//! * **SetSetting** — stores a cluster setting (`settings.rs`).
//! * **Decommission** — marks a node to be drained (`registry.rs`).
//! * **AllocateRangeId** — hands out the next range id (first range).
//! * **Freeze / Merge** — merge steps, carried out by the
//!   replication layer's apply side; a frozen range refuses every command
//!   that would change its data, and a merge folds the right-hand range's
//!   own state into the left-hand one's (`apply_merge.rs`).
//! * **SetDescriptor / DropDescriptor** — write or delete a range's
//!   directory record, in meta1 or meta2 (`meta.rs`).
//! * **Split** — carried out by the replication layer's apply side (which
//!   shrinks the range's bounds and creates the right-hand range's Raft
//!   state); here the right-hand range gets a copy of the range-local state
//!   — last commit timestamp, GC threshold, commit records — so its
//!   timestamps continue above everything its keys have seen, and a commit
//!   retried after the split is still recognized.
//!
//! # What readers may rely on ([`Published`])
//!
//! Per range: after the batch of a commit is in the engine (`applied`
//! hook), its timestamp is published as the range's `last_commit`. Every
//! version at or below it is then in the engine, and no later commit can
//! add one at or below it (timestamps grow in log order) — nor at or below
//! any read timestamp the leader registered before appending it (the
//! floor). That is what makes a snapshot immutable (`store.rs`), and why a
//! snapshot taken on a follower after a read barrier is as good as one
//! taken on the leader.
//!
//! The GC threshold is published *before* its deletions reach the engine
//! (in `apply`, and from the snapshot's data before a snapshot is
//! installed): a reader checks the threshold after reading, so a read that
//! may have missed a collected version always notices.
//!
//! # Generations
//!
//! Each range also has a *generation*, a number this node never hands out
//! twice: an entry that changed the range's data (its batch held more
//! than the apply state), a split, a merge step, and a snapshot each give
//! the range a new one — after the change is in the engine and before the
//! entry's index is published, so a reader past a read barrier sees the
//! generation of everything the barrier waited for. A replica removed and
//! added again starts from a new one too. Two reads of a range that see
//! the same generation therefore saw the same data, which is what lets
//! `read_cache.rs` answer a read without the engine.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::RwLock;
use shoal_replication::{
    DataSpan, EntryContext, MergeOutcome, MergeStep, RangeBounds, RangeId, ReplicationError,
    SplitOutcome, SplitRequest, StateMachine,
};
use shoal_storage::{Engine, StorageError, WriteBatch};

use crate::clock::Timestamp;
use crate::command::{Command, Reply, Writes};
use crate::error::{KvError, Result};
use crate::keys;
use crate::mvcc;
use crate::reads::{Span, check_reads};

/// The next range id to hand out (first range; absent: 2).
const NEXT_RANGE_ID_KEY: &[u8] = b"si";

/// What readers on this node may rely on for one range.
#[derive(Debug, Default)]
struct PublishedRange {
    last_commit: AtomicU64,
    gc_threshold: AtomicU64,
    bytes: AtomicU64,
    /// Frozen for a merge: reads are refused (`merge.rs`).
    frozen: AtomicBool,
    /// Changes whenever the range's data may have changed here (module
    /// docs, *Generations*); never the same for two states of the data.
    generation: AtomicU64,
}

/// State of the local replicas that readers on this node use. Timestamps
/// only grow (`fetch_max`), whoever publishes them; the size is the last
/// one applied.
#[derive(Debug, Default)]
pub struct Published {
    ranges: RwLock<HashMap<RangeId, Arc<PublishedRange>>>,
    /// The last generation handed out, to any range of this node.
    generations: AtomicU64,
    /// Transaction decisions applied here, for waiters (`decisions.rs`).
    pub(crate) decisions: crate::decisions::Decisions,
}

impl Published {
    fn range(&self, range: RangeId, engine: &dyn Engine) -> Result<Arc<PublishedRange>> {
        if let Some(published) = self.ranges.read().get(&range) {
            return Ok(published.clone());
        }
        // First use since the node opened: start from what is stored.
        let fresh = PublishedRange {
            last_commit: AtomicU64::new(read_u64(engine, &keys::last_commit(range))?),
            gc_threshold: AtomicU64::new(read_u64(engine, &keys::gc_threshold(range))?),
            bytes: AtomicU64::new(read_u64(engine, &keys::size(range))?),
            frozen: AtomicBool::new(stored_frozen(engine, range)?),
            generation: AtomicU64::new(0),
        };
        let mut ranges = self.ranges.write();
        let entry = ranges.entry(range).or_insert_with(|| {
            Arc::new(PublishedRange {
                bytes: AtomicU64::new(fresh.bytes.load(Ordering::Relaxed)),
                frozen: AtomicBool::new(fresh.frozen.load(Ordering::Relaxed)),
                generation: AtomicU64::new(self.next_generation()),
                ..PublishedRange::default()
            })
        });
        entry
            .last_commit
            .fetch_max(fresh.last_commit.into_inner(), Ordering::AcqRel);
        entry
            .gc_threshold
            .fetch_max(fresh.gc_threshold.into_inner(), Ordering::AcqRel);
        Ok(entry.clone())
    }

    /// The newest commit timestamp of `range` whose data is in the local
    /// engine.
    pub fn last_commit(&self, range: RangeId, engine: &dyn Engine) -> Result<Timestamp> {
        Ok(self
            .range(range, engine)?
            .last_commit
            .load(Ordering::Acquire))
    }

    /// Snapshots of `range` below this may have lost versions to GC.
    pub fn gc_threshold(&self, range: RangeId, engine: &dyn Engine) -> Result<Timestamp> {
        Ok(self
            .range(range, engine)?
            .gc_threshold
            .load(Ordering::Acquire))
    }

    /// The bytes of `range`'s versions (keys and values), as applied here.
    pub fn bytes(&self, range: RangeId, engine: &dyn Engine) -> Result<u64> {
        Ok(self.range(range, engine)?.bytes.load(Ordering::Acquire))
    }

    /// Whether `range` is frozen for a merge here: its reads are refused
    /// and routed again once it has merged (`merge.rs`).
    pub fn frozen(&self, range: RangeId, engine: &dyn Engine) -> Result<bool> {
        Ok(self.range(range, engine)?.frozen.load(Ordering::Acquire))
    }

    /// The generation of `range`'s data here (module docs,
    /// *Generations*).
    pub(crate) fn generation(&self, range: RangeId, engine: &dyn Engine) -> Result<u64> {
        Ok(self
            .range(range, engine)?
            .generation
            .load(Ordering::Acquire))
    }

    /// A generation no range of this node had before.
    fn next_generation(&self) -> u64 {
        self.generations.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// `range`'s entry, created with a new generation if it has none.
    fn entry(&self, range: RangeId) -> Arc<PublishedRange> {
        if let Some(entry) = self.ranges.read().get(&range) {
            return entry.clone();
        }
        self.ranges
            .write()
            .entry(range)
            .or_insert_with(|| {
                Arc::new(PublishedRange {
                    generation: AtomicU64::new(self.next_generation()),
                    ..PublishedRange::default()
                })
            })
            .clone()
    }

    /// Gives `range` a new generation: its data changed here. Called
    /// after the change is in the engine, before readers may rely on it.
    fn bump_generation(&self, range: RangeId) {
        let generation = self.next_generation();
        self.entry(range)
            .generation
            .store(generation, Ordering::Release);
    }

    /// Publishes whether `range` is frozen.
    pub(crate) fn publish_frozen(&self, range: RangeId, frozen: bool) {
        self.entry(range).frozen.store(frozen, Ordering::Release);
    }

    /// Forgets `range` (its replica is gone).
    pub(crate) fn forget(&self, range: RangeId) {
        self.ranges.write().remove(&range);
    }

    pub(crate) fn publish(&self, range: RangeId, last_commit: Timestamp, gc_threshold: Timestamp) {
        let entry = self.entry(range);
        entry.last_commit.fetch_max(last_commit, Ordering::AcqRel);
        entry.gc_threshold.fetch_max(gc_threshold, Ordering::AcqRel);
    }

    fn publish_state(&self, range: RangeId, state: &RangeState) {
        self.publish(range, state.last_commit, state.gc_threshold);
        if let Some(entry) = self.ranges.read().get(&range) {
            entry.bytes.store(state.bytes, Ordering::Release);
        }
    }
}

/// A range's state as the state machine keeps it (possibly ahead of the
/// engine within an entry).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RangeState {
    pub(crate) last_commit: Timestamp,
    pub(crate) gc_threshold: Timestamp,
    /// Bytes of the range's versions, keys and values.
    pub(crate) bytes: u64,
}

impl RangeState {
    /// Adds `bytes` (negative: removes) to the size, and its write to
    /// `batch`.
    pub(crate) fn grow(&mut self, range: RangeId, bytes: i64, batch: &mut WriteBatch) {
        self.bytes = self.bytes.saturating_add_signed(bytes);
        batch.put(keys::size(range), self.bytes.to_be_bytes());
    }
}

/// The bytes a version of `key` with `value` takes.
pub(crate) fn version_bytes(key: &[u8], value: Option<&[u8]>) -> i64 {
    let bytes = mvcc::version_prefix(key).len() + 8 + 1 + value.map_or(0, <[u8]>::len);
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

/// The KV layer's [`StateMachine`]. See the module documentation.
pub struct KvStateMachine {
    pub(crate) ranges: HashMap<RangeId, RangeState>,
    /// Ranges created by a split in the entry being applied: published
    /// with it.
    created: Vec<RangeId>,
    pub(crate) published: Arc<Published>,
    /// Transactions the entry being applied decided: their waiters are
    /// woken once it is written (`decisions.rs`).
    pub(crate) decided: Vec<u128>,
    /// The entry being applied changed the range's data: it gets a new
    /// generation once written.
    changed: bool,
}

impl std::fmt::Debug for KvStateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvStateMachine")
            .field("ranges", &self.ranges)
            .finish()
    }
}

/// Whether the stored apply state of `range` says it is frozen.
fn stored_frozen(engine: &dyn Engine, range: RangeId) -> Result<bool> {
    let key = shoal_replication::keys::apply_state(range);
    Ok(
        match engine.get_cf(shoal_storage::ColumnFamily::Raft, &key)? {
            Some(raw) => shoal_replication::ApplyState::decode(&raw)?
                .frozen
                .is_some(),
            None => false,
        },
    )
}

fn read_u64(engine: &dyn Engine, key: &[u8]) -> Result<Timestamp> {
    match engine.get(key)? {
        None => Ok(0),
        Some(bytes) => {
            let raw: [u8; 8] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| StorageError::Corrupt(format!("{key:x?} is {} bytes", bytes.len())))?;
            Ok(u64::from_be_bytes(raw))
        }
    }
}

impl KvStateMachine {
    /// The state machine over the data in `engine`, and what it publishes.
    pub fn open(_engine: &dyn Engine) -> Result<(KvStateMachine, Arc<Published>)> {
        let published = Arc::new(Published::default());
        let machine = KvStateMachine {
            ranges: HashMap::new(),
            created: Vec::new(),
            published: published.clone(),
            decided: Vec::new(),
            changed: false,
        };
        Ok((machine, published))
    }

    /// The state of `range`, loaded from the engine the first time.
    pub(crate) fn range(&mut self, range: RangeId, engine: &dyn Engine) -> Result<RangeState> {
        if let Some(state) = self.ranges.get(&range) {
            return Ok(*state);
        }
        let state = RangeState {
            last_commit: read_u64(engine, &keys::last_commit(range))?,
            gc_threshold: read_u64(engine, &keys::gc_threshold(range))?,
            bytes: read_u64(engine, &keys::size(range))?,
        };
        self.ranges.insert(range, state);
        Ok(state)
    }

    fn commit(
        &mut self,
        ctx: &EntryContext<'_>,
        (id, read_ts, ts_hint, max_ts, lock_id): (
            u128,
            Timestamp,
            Timestamp,
            Option<Timestamp>,
            u128,
        ),
        (writes, reads): (Writes, &[Span]),
        engine: &dyn Engine,
        batch: &mut WriteBatch,
    ) -> Result<Reply> {
        let range = ctx.range;
        let record = keys::commit_record(range, id);
        if let Some(ts) = engine.get(&record)? {
            let ts: [u8; 8] = ts
                .as_slice()
                .try_into()
                .map_err(|_| StorageError::Corrupt("commit record".to_string()))?;
            return Ok(Reply::Committed(u64::from_be_bytes(ts)));
        }
        if writes.iter().any(|(key, _)| !ctx.bounds.contains(key))
            || reads.iter().any(|span| !span.within(ctx.bounds))
        {
            return Ok(Reply::WrongRange);
        }
        let mut state = self.range(range, engine)?;
        if let Some(refusal) = check_writes(&state, read_ts, &writes, &[lock_id], engine)? {
            return Ok(refusal);
        }
        let commit_ts = ts_hint.max(ctx.floor).max(state.last_commit + 1);
        if max_ts.is_some_and(|max| commit_ts > max) {
            return Ok(Reply::TooLate(commit_ts));
        }
        if let Some(refusal) = check_reads(engine, reads, read_ts, commit_ts, None)? {
            return Ok(refusal);
        }
        let mut added = 0;
        for (key, value) in writes {
            added += version_bytes(&key, value.as_deref());
            batch.put(
                mvcc::version_key(&key, commit_ts),
                mvcc::encode_value(value.as_deref()),
            );
        }
        state.grow(range, added, batch);
        batch.put(keys::last_commit(range), commit_ts.to_be_bytes());
        batch.put(record, commit_ts.to_be_bytes());
        state.last_commit = commit_ts;
        self.ranges.insert(range, state);
        Ok(Reply::Committed(commit_ts))
    }

    /// [`Command::Refresh`] (`reads.rs`).
    fn refresh(
        &mut self,
        ctx: &EntryContext<'_>,
        (txn_id, read_ts, refresh_ts): (u128, Timestamp, Timestamp),
        spans: &[Span],
        engine: &dyn Engine,
        batch: &mut WriteBatch,
    ) -> Result<Reply> {
        if spans.iter().any(|span| !span.within(ctx.bounds)) {
            return Ok(Reply::WrongRange);
        }
        let mut state = self.range(ctx.range, engine)?;
        if read_ts < state.gc_threshold {
            return Ok(Reply::TooOld(state.gc_threshold));
        }
        let own = (txn_id != 0).then_some(txn_id);
        if let Some(refusal) = check_reads(engine, spans, read_ts, refresh_ts, own)? {
            return Ok(refusal);
        }
        if refresh_ts > state.last_commit {
            state.last_commit = refresh_ts;
            batch.put(keys::last_commit(ctx.range), refresh_ts.to_be_bytes());
            self.ranges.insert(ctx.range, state);
        }
        Ok(Reply::Refreshed)
    }

    fn gc(
        &mut self,
        ctx: &EntryContext<'_>,
        threshold: Timestamp,
        doomed: Vec<Vec<u8>>,
        engine: &dyn Engine,
        batch: &mut WriteBatch,
    ) -> Result<Reply> {
        let mut state = self.range(ctx.range, engine)?;
        if threshold > state.gc_threshold {
            state.gc_threshold = threshold;
            self.ranges.insert(ctx.range, state);
            // Before the deletions reach the engine (module docs).
            self.published.publish(ctx.range, 0, threshold);
            batch.put(keys::gc_threshold(ctx.range), threshold.to_be_bytes());
        }
        // Only this range's own keys: a list built before a split may name
        // versions the right-hand range owns now.
        let spans = keys::data_spans(ctx.range, ctx.bounds);
        let owned = |key: &[u8]| {
            spans
                .iter()
                .any(|s| key >= s.start.as_slice() && key < s.end.as_slice())
        };
        let (mut removed, mut freed) = (0, 0i64);
        for key in doomed {
            if owned(&key) {
                if key.first() == Some(&mvcc::VERSION_PREFIX)
                    && let Some(value) = engine.get(&key)?
                {
                    freed += i64::try_from(key.len() + value.len()).unwrap_or(0);
                }
                batch.delete(key);
                removed += 1;
            }
        }
        if freed > 0 {
            let mut state = self.range(ctx.range, engine)?;
            state.grow(ctx.range, -freed, batch);
            self.ranges.insert(ctx.range, state);
        }
        Ok(Reply::Collected(removed))
    }

    fn allocate_range_id(&mut self, engine: &dyn Engine, batch: &mut WriteBatch) -> Result<Reply> {
        let next = read_u64(engine, NEXT_RANGE_ID_KEY)?.max(2);
        batch.put(NEXT_RANGE_ID_KEY, (next + 1).to_be_bytes());
        Ok(Reply::RangeIdAllocated(next))
    }

    fn split(
        &mut self,
        ctx: &EntryContext<'_>,
        split: &SplitRequest,
        engine: &dyn Engine,
        batch: &mut WriteBatch,
    ) -> Result<()> {
        let mut state = self.range(ctx.range, engine)?;
        let child = split.new_range;
        // Every range-local record: commit records, transaction records,
        // prepare markers (the timestamps are written below, with what this
        // entry may have changed).
        for_each_range_record(engine, ctx.range, child, |copy, value| {
            batch.put(copy, value);
            Ok(())
        })?;
        if split.sticky_until != 0 {
            batch.put(keys::sticky(child), split.sticky_until.to_be_bytes());
        }
        batch.put(keys::last_commit(child), state.last_commit.to_be_bytes());
        batch.put(keys::gc_threshold(child), state.gc_threshold.to_be_bytes());
        // The proposer counted the left-hand side; the rest moved right.
        let left = split.left_bytes.min(state.bytes);
        let mut right = state;
        right.bytes = 0;
        right.grow(
            child,
            i64::try_from(state.bytes - left).unwrap_or(i64::MAX),
            batch,
        );
        state.bytes = 0;
        state.grow(ctx.range, i64::try_from(left).unwrap_or(i64::MAX), batch);
        self.ranges.insert(ctx.range, state);
        self.ranges.insert(child, right);
        self.created.push(child);
        Ok(())
    }

    /// Applies one decoded-or-not command: [`StateMachine::apply`]'s work.
    fn apply_command(
        &mut self,
        ctx: &EntryContext<'_>,
        command: &[u8],
        engine: &dyn Engine,
        batch: &mut WriteBatch,
    ) -> shoal_replication::Result<Vec<u8>> {
        let (range, index) = (ctx.range, ctx.index);

        let command = match Command::decode(command) {
            Ok(command) => command,
            Err(e) => {
                // Every replica fails to decode it the same way: skip it,
                // and the proposer gets an empty (undecodable) reply.
                tracing::error!(range, index, error = %e, "undecodable kv command");
                return Ok(Vec::new());
            }
        };
        if ctx.frozen
            && let Some(refusal) = crate::apply_merge::refused_while_frozen(&command)
        {
            return encode_reply(Ok(refusal));
        }
        let reply = match command {
            Command::Commit {
                id,
                read_ts,
                ts_hint,
                writes,
                reads,
                max_ts,
                lock_id,
            } => self.commit(
                ctx,
                (id, read_ts, ts_hint, max_ts, lock_id),
                (writes, &reads),
                engine,
                batch,
            ),
            Command::Refresh {
                txn_id,
                read_ts,
                refresh_ts,
                spans,
            } => self.refresh(ctx, (txn_id, read_ts, refresh_ts), &spans, engine, batch),
            Command::Gc { threshold, keys } => self.gc(ctx, threshold, keys, engine, batch),
            Command::RegisterNode { node_id, addr } => {
                crate::registry::register(engine, node_id, &addr, batch).map(Reply::Registered)
            }
            Command::Heartbeat {
                node_id,
                expiration,
            } => crate::liveness::heartbeat(engine, node_id, expiration, batch).map(Reply::Alive),
            Command::SetSetting { name, value } => {
                crate::settings::put(&name, &value, batch);
                Ok(Reply::SettingStored)
            }
            Command::Decommission { node_id } => {
                crate::registry::mark_decommissioning(batch, node_id);
                Ok(Reply::NodeMarked)
            }
            Command::AllocateRangeId => self.allocate_range_id(engine, batch),
            Command::SetSpanConfig {
                start,
                end,
                max_bytes,
                min_bytes,
            } => {
                crate::span_config::put(&start, end.as_deref(), max_bytes, min_bytes, batch);
                Ok(Reply::SettingStored)
            }
            Command::SetDescriptor(record) => self.set_descriptor(ctx, &record, engine, batch),
            Command::Prepare(prepare) => self.prepare(ctx, prepare, engine, batch),
            Command::EndTxn {
                txn_id,
                commit_ts,
                at,
            } => self.end_txn(ctx, txn_id, commit_ts, at, engine, batch),
            Command::FinishTxns { txn_ids } => self.finish_txns(ctx, &txn_ids, engine, batch),
            Command::Resolve {
                txn_id,
                commit_ts,
                keys,
            } => self.resolve(ctx, txn_id, commit_ts, keys, engine, batch),
            Command::Lock(request) => self.lock(ctx, request, engine, batch),
            Command::DropDescriptor { range, generation } => {
                self.drop_descriptor(ctx, (range, generation), engine, batch)
            }
            Command::Unstick { at } if at != ctx.bounds.start => Ok(Reply::WrongRange),
            Command::Unstick { .. } => {
                // A frozen range's boundary is on its way out already.
                if !ctx.frozen {
                    batch.delete(keys::sticky(range));
                }
                Ok(Reply::Unstuck)
            }
            // Splits go to `apply_split` and merge steps to
            // `apply_merge_step`; one arriving here was not recognized,
            // which cannot happen.
            Command::Split { .. } => Ok(Reply::SplitRefused("not a split".to_string())),
            Command::Freeze | Command::Merge(_) => {
                Ok(Reply::MergeRefused("not a merge step".to_string()))
            }
        };
        encode_reply(reply)
    }
}

impl StateMachine for KvStateMachine {
    fn data_spans(range: RangeId, bounds: &RangeBounds) -> Vec<DataSpan> {
        keys::data_spans(range, bounds)
    }

    fn split_request(command: &[u8]) -> Option<SplitRequest> {
        match Command::decode(command) {
            Ok(Command::Split {
                at,
                new_range,
                left_bytes,
                sticky_until,
            }) => Some(SplitRequest {
                at,
                new_range,
                left_bytes,
                sticky_until,
            }),
            _ => None,
        }
    }

    fn apply(
        &mut self,
        ctx: &EntryContext<'_>,
        command: &[u8],
        engine: &dyn Engine,
        batch: &mut WriteBatch,
    ) -> shoal_replication::Result<Vec<u8>> {
        let before = batch.len();
        let reply = self.apply_command(ctx, command, engine, batch);
        self.changed |= batch.len() != before;
        reply
    }
    fn apply_split(
        &mut self,
        ctx: &EntryContext<'_>,
        split: &SplitRequest,
        outcome: &SplitOutcome,
        engine: &dyn Engine,
        batch: &mut WriteBatch,
    ) -> shoal_replication::Result<Vec<u8>> {
        self.changed = true;
        let reply = match outcome {
            SplitOutcome::Refused(why) => Ok(Reply::SplitRefused(why.clone())),
            SplitOutcome::Done { create_child } => {
                if *create_child {
                    self.split(ctx, split, engine, batch).map(|()| Reply::Split)
                } else {
                    Ok(Reply::Split)
                }
            }
        };
        encode_reply(reply)
    }

    fn merge_request(command: &[u8]) -> Option<MergeStep> {
        crate::apply_merge::merge_request(command)
    }

    fn apply_merge_step(
        &mut self,
        ctx: &EntryContext<'_>,
        _step: &MergeStep,
        outcome: &MergeOutcome,
        engine: &dyn Engine,
        batch: &mut WriteBatch,
    ) -> shoal_replication::Result<Vec<u8>> {
        self.changed = true;
        let reply = self.merge_step(ctx, outcome, engine, batch);
        encode_reply(reply)
    }

    fn applied(&mut self, range: RangeId, _index: u64) {
        if std::mem::take(&mut self.changed) {
            self.published.bump_generation(range);
        }
        if let Some(state) = self.ranges.get(&range) {
            self.published.publish_state(range, state);
        }
        for txn_id in std::mem::take(&mut self.decided) {
            self.published.decisions.note(txn_id);
        }
        for child in std::mem::take(&mut self.created) {
            if let Some(state) = self.ranges.get(&child) {
                self.published.publish_state(child, state);
            }
        }
    }

    fn before_snapshot(&mut self, range: RangeId, data: &[u8]) {
        self.published.bump_generation(range);
        if let Ok((header, _)) = shoal_replication::SnapshotHeader::parse(data) {
            self.published
                .publish_frozen(range, header.frozen.is_some());
        }
        // The snapshot's data may lack versions collected below its GC
        // threshold; readers must learn that threshold before they can see
        // the data (they check it after reading).
        match shoal_replication::snapshot::find(data, &keys::gc_threshold(range)) {
            Ok(Some(raw)) => {
                if let Ok(raw) = <[u8; 8]>::try_from(raw.as_slice()) {
                    self.published.publish(range, 0, u64::from_be_bytes(raw));
                }
            }
            Ok(None) => {}
            Err(e) => tracing::error!(range, error = %e, "unreadable snapshot data"),
        }
    }

    fn on_destroy(&mut self, range: RangeId) {
        self.ranges.remove(&range);
        self.published.forget(range);
    }

    fn on_snapshot(&mut self, range: RangeId, engine: &dyn Engine) {
        self.published.bump_generation(range);
        self.ranges.remove(&range);
        match self.range(range, engine) {
            Ok(state) => self.published.publish_state(range, &state),
            Err(e) => tracing::error!(range, error = %e, "cannot reload kv state after snapshot"),
        }
    }
}

/// Calls `each` with every range-local record of `from` but its summaries
/// (`keys::is_range_summary`), under its name in range `to`, and its value:
/// what a split copies to the new range and a merge takes over.
pub(crate) fn for_each_range_record(
    engine: &dyn Engine,
    from: RangeId,
    to: RangeId,
    mut each: impl FnMut(Vec<u8>, Vec<u8>) -> Result<()>,
) -> Result<()> {
    let prefix = keys::range_local_prefix(from);
    let end = mvcc::prefix_end(&prefix).unwrap_or_default();
    for pair in engine.scan(&prefix, Some(&end)) {
        let (key, value) = pair?;
        let suffix = &key[prefix.len()..];
        if keys::is_range_summary(suffix) {
            continue;
        }
        let mut renamed = keys::range_local_prefix(to);
        renamed.extend_from_slice(suffix);
        each(renamed, value)?;
    }
    Ok(())
}

/// Why `writes`, read at `read_ts`, may not be written, if they may not:
/// the snapshot is too old, a key has a newer version (first committer
/// wins), or a key holds an intent of a transaction other than those in
/// `own` (the writer's own commit, and its locks: 0 stands for none).
pub(crate) fn check_writes(
    state: &RangeState,
    read_ts: Timestamp,
    writes: &[(Vec<u8>, Option<Vec<u8>>)],
    own: &[u128],
    engine: &dyn Engine,
) -> Result<Option<Reply>> {
    if read_ts < state.gc_threshold {
        return Ok(Some(Reply::TooOld(state.gc_threshold)));
    }
    for (key, _) in writes {
        if let Some(ts) = mvcc::newest_version_ts(engine, key)?
            && ts > read_ts
        {
            return Ok(Some(Reply::Conflict(key.clone())));
        }
        if let Some(raw) = engine.get(&crate::intents::intent_key(key))? {
            let intent = crate::intents::Intent::decode(&raw)?;
            if !own.contains(&intent.txn_id) {
                return Ok(Some(Reply::IntentConflict {
                    key: key.clone(),
                    intent: raw,
                }));
            }
        }
    }
    Ok(None)
}

fn encode_reply(reply: Result<Reply>) -> shoal_replication::Result<Vec<u8>> {
    match reply {
        Ok(reply) => Ok(reply.encode()),
        Err(KvError::Storage(e)) => Err(ReplicationError::Storage(e)),
        Err(KvError::Replication(e)) => Err(e),
        Err(other) => Err(ReplicationError::Corrupt(other.to_string())),
    }
}
