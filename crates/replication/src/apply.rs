//! The apply side: committed entries become state off the Raft thread.
//!
//! raft-rs hands the driver committed entries in every `Ready`. Applying
//! them — running the [`StateMachine`], writing its effects — is CPU and
//! engine work that has nothing to do with agreeing on the log, so it does
//! not run on the append path: the Raft thread packs entries into an
//! [`ApplyTask`] and goes on persisting and sending the next round while an
//! [`Applier`] works through its queue. (TiKV splits its store the same
//! way: a raft poller and an apply poller.)
//!
//! # Who owns what
//!
//! * The applier owns the state machine and each replica's
//!   [`ApplyState`]: it alone writes it, in the batch carrying the entry's
//!   effects. It reports every applied entry back ([`ApplyOutput`]) and the
//!   Raft thread mirrors the progress: proposals are answered, reads whose
//!   index is applied are released, raft-rs learns the applied index
//!   (`advance_apply_to`), the log may be compacted up to it.
//! * Membership changes are applied on both sides, from the same inputs:
//!   the applier computes the next configuration (with raft-rs's own code,
//!   on a scratch node) and persists it with the applied index; the Raft
//!   thread then applies the same change to its `RawNode` when the report
//!   arrives. A change raft-rs refuses is refused on both sides.
//! * Splits are applied here too: a split entry (the state machine
//!   recognizes it, [`StateMachine::split_request`]) shrinks the range's
//!   bounds in its apply state and — in the same batch — writes the
//!   right-hand range's initial Raft state (same members, log starting at
//!   [`INITIAL_INDEX`](crate::peer_storage::INITIAL_INDEX)), unless this node already holds a newer replica
//!   of it. Whether a split is accepted depends only on replicated state
//!   (the bounds and the membership), so every replica decides the same.
//!   The Raft thread creates the new replica when the report arrives.
//! * Merges likewise (`apply/merge.rs`): a frozen range refuses changes;
//!   the left-hand range takes over its frozen neighbour's keys, and the
//!   Raft thread deletes the neighbour's replica (not its data) when the
//!   report arrives. Every change of a range's bounds, membership or
//!   freezing bumps its generation.
//! * Snapshots must be cut at one applied index, which only the applier
//!   sees, so generating one is an apply task too. Installing one replaces
//!   data the applier writes, so the Raft thread waits for the install task
//!   to finish — every earlier task has finished by then, the queue being
//!   first in, first out — before it persists anything after it.
//!
//! # Two ways to run
//!
//! [`Applying::Inline`] runs each task as it is submitted: the simulated
//! cluster uses it so a seed replays exactly. [`Applying::Thread`] queues
//! tasks for an apply thread; its reports come back to the Raft thread as
//! inputs. The tasks and their effects are the same either way.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};

use protobuf::Message as _;
use raft::RawNode;
use raft::prelude::{
    ConfChange, ConfChangeSingle, ConfChangeV2, ConfState, Entry, EntryType, Snapshot,
};
use shoal_storage::{ColumnFamily, Engine, WriteBatch};

use crate::apply_state::{ApplyState, RangeBounds};
use crate::error::{ReplicationError, Result};
use crate::keys;
use crate::peer::{CONF_CHANGE_REJECTED, ProposalHeader};
use crate::snapshot::{self, SnapshotHeader};
use crate::{EntryContext, MergeOutcome, RangeId, SplitOutcome, StateMachine, Token};

mod bounds;
mod merge;
mod split;

pub use bounds::ReplicaBounds;

/// Work for the apply side.
#[derive(Debug)]
pub enum ApplyTask {
    /// Apply committed entries of `range`, in order.
    Entries {
        /// The range.
        range: RangeId,
        /// Committed entries; those at or below the applied index are
        /// skipped.
        entries: Vec<Entry>,
    },
    /// Release reads of `range` once its applied index reaches `index`
    /// (their read index, confirmed by the leader).
    Read {
        /// The range.
        range: RangeId,
        /// The read index.
        index: u64,
        /// The reads waiting for it.
        tokens: Vec<Token>,
    },
    /// Cut a snapshot of `range` at its applied index.
    Generate {
        /// The range.
        range: RangeId,
    },
    /// Delete this node's replica of `range` — its data, Raft state and
    /// log — leaving a tombstone (`replica_gc.rs`).
    Destroy {
        /// The range.
        range: RangeId,
        /// Keep the data: the range was merged into its left-hand
        /// neighbour, which owns it now.
        keep_data: bool,
    },
    /// Write an installed snapshot (`batch` replaces the data, log and
    /// states) and tell the state machine.
    Install {
        /// The range.
        range: RangeId,
        /// The snapshot.
        snapshot: Snapshot,
        /// Everything the install writes.
        batch: WriteBatch,
    },
}

/// One entry the apply side applied, as the Raft thread needs to know it.
#[derive(Debug, Clone)]
pub struct AppliedEntry {
    /// Its log index.
    pub index: u64,
    /// Who proposed it, if it carries a header.
    pub(crate) header: Option<ProposalHeader>,
    /// The state machine's reply.
    pub reply: Vec<u8>,
    /// The membership change it made, if it was an accepted one.
    pub conf_change: Option<ConfChangeV2>,
    /// The split it made, if it was an accepted one.
    pub split: Option<SplitApplied>,
    /// The range's bounds and generation after the entry, if it changed
    /// them (split, merge, membership change, freeze).
    pub layout: Option<(RangeBounds, u64)>,
    /// The right-hand range this entry merged into the range.
    pub merged: Option<RangeId>,
}

/// A split the apply side carried out.
#[derive(Debug, Clone)]
pub struct SplitApplied {
    /// The new, right-hand range.
    pub child: RangeId,
    /// The split range's bounds now.
    pub bounds: RangeBounds,
    /// Its generation now (the child starts with the same).
    pub generation: u64,
    /// Whether this node created the child's replica (see
    /// [`SplitOutcome::Done`]).
    pub created: bool,
}

/// What the apply side reports for a task.
#[derive(Debug)]
pub enum ApplyOutput {
    /// Entries were applied (or reads released); `applied_index` is the
    /// range's applied index now.
    Applied {
        /// The range.
        range: RangeId,
        /// Its applied index now.
        applied_index: u64,
        /// The entries this task applied.
        entries: Vec<AppliedEntry>,
        /// Reads whose read index the applied index reached.
        reads: Vec<Token>,
    },
    /// A snapshot was cut.
    Generated {
        /// The range.
        range: RangeId,
        /// The snapshot, at the applied index it was cut at.
        snapshot: Snapshot,
    },
}

/// What the apply side tells waiters directly, as soon as it happens.
#[derive(Debug, Clone, Copy)]
pub enum Notice<'a> {
    /// An entry's effects are written.
    Applied(&'a AppliedEntry),
    /// A read may be served.
    ReadReady(Token),
}

/// Receives [`Notice`]s on the apply thread.
pub type Notify = Box<dyn Fn(Notice<'_>) + Send>;

/// Each range's applied index as the apply side last published it (after
/// the engine write), for the Raft thread to release a read at once when
/// its index is already applied.
pub type AppliedIndexes = Arc<parking_lot::RwLock<HashMap<RangeId, u64>>>;

/// The bounds and generation of every initialized replica on this node, as
/// of its applied index: what the node's requests are routed by. Published
/// when a replica opens, splits or installs a snapshot.
pub type LocalBounds = Arc<parking_lot::RwLock<ReplicaBounds>>;

/// Applies tasks: owns the state machine and every replica's apply state.
pub struct Applier<S: StateMachine> {
    engine: Arc<dyn Engine>,
    state_machine: S,
    states: HashMap<RangeId, ApplyState>,
    /// Reads waiting for their range to apply up to their read index.
    reads: HashMap<RangeId, Vec<(u64, Token)>>,
    notify: Option<Notify>,
    published: AppliedIndexes,
    bounds: LocalBounds,
    /// Replicas of ranges merged into a neighbour here, not yet deleted:
    /// their data is the neighbour's now (`apply/merge.rs`).
    merged_away: std::collections::HashSet<RangeId>,
}

impl<S: StateMachine> Applier<S> {
    /// An applier writing to `engine` through `state_machine`, publishing
    /// applied indexes to `published` and replica bounds to `bounds`.
    pub fn new(
        engine: Arc<dyn Engine>,
        state_machine: S,
        published: AppliedIndexes,
        bounds: LocalBounds,
    ) -> Applier<S> {
        Applier {
            engine,
            state_machine,
            states: HashMap::new(),
            reads: HashMap::new(),
            notify: None,
            published,
            bounds,
            merged_away: std::collections::HashSet::new(),
        }
    }

    /// Carries out `task`.
    pub fn run(&mut self, task: ApplyTask) -> Result<ApplyOutput> {
        match task {
            ApplyTask::Entries { range, entries } => self.apply_entries(range, entries),
            ApplyTask::Read {
                range,
                index,
                tokens,
            } => {
                let waiting = self.reads.entry(range).or_default();
                waiting.extend(tokens.into_iter().map(|token| (index, token)));
                let applied_index = self.state(range)?.applied_index;
                Ok(ApplyOutput::Applied {
                    range,
                    applied_index,
                    entries: Vec::new(),
                    reads: self.release_reads(range, applied_index),
                })
            }
            ApplyTask::Generate { range } => self.generate(range),
            ApplyTask::Destroy { range, keep_data } => self.destroy(range, keep_data),
            ApplyTask::Install {
                range,
                snapshot,
                batch,
            } => self.install(range, &snapshot, batch),
        }
    }

    /// The apply state of `range`, loaded from the engine the first time.
    fn state(&mut self, range: RangeId) -> Result<ApplyState> {
        if let Some(state) = self.states.get(&range) {
            return Ok(state.clone());
        }
        let state = match self
            .engine
            .get_cf(ColumnFamily::Raft, &keys::apply_state(range))?
        {
            Some(bytes) => ApplyState::decode(&bytes)?,
            None => ApplyState::default(),
        };
        self.states.insert(range, state.clone());
        Ok(state)
    }

    /// Applies entries in order: each entry's effects and the new apply
    /// state go to the engine in one (unsynced) batch.
    fn apply_entries(&mut self, range: RangeId, entries: Vec<Entry>) -> Result<ApplyOutput> {
        let mut state = self.state(range)?;
        let mut applied = Vec::with_capacity(entries.len());
        for entry in entries {
            let index = entry.index;
            if index <= state.applied_index {
                continue;
            }
            let mut batch = WriteBatch::new();
            let mut out = AppliedEntry {
                index,
                header: None,
                reply: Vec::new(),
                conf_change: None,
                split: None,
                layout: None,
                merged: None,
            };
            let layout_before = (state.generation, state.bounds.clone());
            match entry.get_entry_type() {
                // Empty entries are appended by new leaders (and replace
                // conf changes raft-rs refused).
                EntryType::EntryNormal if entry.get_data().is_empty() => {}
                EntryType::EntryNormal => match ProposalHeader::unwrap(entry.get_data()) {
                    Ok((header, command)) => {
                        out.header = Some(header);
                        self.apply_command(
                            range,
                            index,
                            header.floor,
                            command,
                            &mut state,
                            &mut out,
                            &mut batch,
                        )?;
                    }
                    // The same on every replica: skip it, never stop.
                    Err(_) => tracing::warn!(range, index, "skipping an entry without a header"),
                },
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                    out.header = ProposalHeader::unwrap(entry.get_context())
                        .ok()
                        .map(|(h, _)| h);
                    // A change raft-rs or the decoder rejects is rejected the
                    // same way on every replica: a no-op, never a stop. So is
                    // any change of a frozen range but adding learners
                    // (`apply/merge.rs`).
                    let next = next_conf_state(&state.conf_state, &entry).and_then(|next| {
                        let adds_learners = next.0.get_changes().iter().all(|c| {
                            c.get_change_type() == raft::prelude::ConfChangeType::AddLearnerNode
                        });
                        match state.frozen {
                            Some(_) if !adds_learners => Err(ReplicationError::Raft(
                                "the range is frozen for a merge".to_string(),
                            )),
                            _ => Ok(next),
                        }
                    });
                    match next {
                        Ok((change, conf_state)) => {
                            tracing::info!(range, index, voters = ?conf_state.voters, learners = ?conf_state.learners, "membership changed");
                            state.conf_state = conf_state;
                            // A frozen range's generation stays as the
                            // freeze left it: every replica of the range
                            // merging it computes the merged generation
                            // from it, whether or not it applied a learner
                            // added since (`apply/merge.rs`).
                            if state.frozen.is_none() {
                                state.generation += 1;
                            }
                            out.conf_change = Some(change);
                        }
                        Err(e) => {
                            tracing::warn!(range, index, error = %e, "rejected a membership change");
                            out.reply = CONF_CHANGE_REJECTED.to_vec();
                        }
                    }
                }
            }
            if (state.generation, &state.bounds) != (layout_before.0, &layout_before.1) {
                out.layout = Some((state.bounds.clone(), state.generation));
            }
            state.applied_index = index;
            state.applied_term = entry.term;
            state.put(range, &mut batch)?;
            self.engine.write(batch, false)?;
            if let Some(split) = &out.split {
                self.publish_split(range, &state, split);
            } else if out.layout.is_some() {
                self.bounds
                    .write()
                    .insert(range, (state.bounds.clone(), state.generation));
            }
            if let Some(right) = out.merged {
                // The left-hand range covers its keys now; its replica is
                // deleted (keeping the data) once the Raft thread hears.
                self.bounds.write().remove(&right);
                self.merged_away.insert(right);
            }
            self.state_machine.applied(range, index);
            if let Some(notify) = &self.notify {
                // Published before the proposer hears, so a read it makes
                // next finds its write applied (`lease.rs`).
                self.published.write().insert(range, index);
                notify(Notice::Applied(&out));
            }
            applied.push(out);
        }
        // Kept once per task, not per entry: a failed write stops the apply
        // thread, so the copy is never read behind the engine's back.
        let applied_index = state.applied_index;
        self.states.insert(range, state);
        Ok(ApplyOutput::Applied {
            range,
            applied_index,
            entries: applied,
            reads: self.release_reads(range, applied_index),
        })
    }

    /// Applies the command of a normal entry: a split or merge step is
    /// carried out here and then shown to the state machine; anything
    /// else goes to the state machine alone.
    #[allow(clippy::too_many_arguments)]
    fn apply_command(
        &mut self,
        range: RangeId,
        index: u64,
        floor: u64,
        command: &[u8],
        state: &mut ApplyState,
        out: &mut AppliedEntry,
        batch: &mut WriteBatch,
    ) -> Result<()> {
        if let Some(split) = S::split_request(command) {
            let outcome = self.split(range, state, &split, batch)?;
            let ctx = context(range, index, floor, state);
            out.reply = self.state_machine.apply_split(
                &ctx,
                &split,
                &outcome,
                self.engine.as_ref(),
                batch,
            )?;
            if let SplitOutcome::Done { create_child } = outcome {
                out.split = Some(SplitApplied {
                    child: split.new_range,
                    bounds: state.bounds.clone(),
                    generation: state.generation,
                    created: create_child,
                });
            }
        } else if let Some(step) = S::merge_request(command) {
            let outcome = self.merge_step(range, index, floor, state, &step)?;
            let ctx = context(range, index, floor, state);
            out.reply = self.state_machine.apply_merge_step(
                &ctx,
                &step,
                &outcome,
                self.engine.as_ref(),
                batch,
            )?;
            if let MergeOutcome::Merged { right, .. } = outcome {
                out.merged = Some(right);
            }
        } else {
            let ctx = context(range, index, floor, state);
            out.reply = self
                .state_machine
                .apply(&ctx, command, self.engine.as_ref(), batch)?;
        }
        Ok(())
    }

    /// Publishes `applied` as the applied index of `range` and releases the
    /// reads whose read index it reached.
    fn release_reads(&mut self, range: RangeId, applied: u64) -> Vec<Token> {
        self.published.write().insert(range, applied);
        let Some(waiting) = self.reads.get_mut(&range) else {
            return Vec::new();
        };
        let mut ready = Vec::new();
        waiting.retain(|&(index, token)| {
            let done = index <= applied;
            if done {
                ready.push(token);
            }
            !done
        });
        if waiting.is_empty() {
            self.reads.remove(&range);
        }
        if let Some(notify) = &self.notify {
            for &token in &ready {
                notify(Notice::ReadReady(token));
            }
        }
        ready
    }

    /// Cuts a snapshot of `range` at its applied index: nothing else writes
    /// the range's data meanwhile, so the pairs read match that index.
    fn generate(&mut self, range: RangeId) -> Result<ApplyOutput> {
        let state = self.state(range)?;
        let header = SnapshotHeader {
            bounds: state.bounds.clone(),
            generation: state.generation,
            frozen: state.frozen,
        };
        let spans = S::data_spans(range, &state.bounds);
        let data = snapshot::capture(self.engine.as_ref(), &header, &spans)?;
        let mut snap = Snapshot {
            data: data.into(),
            ..Default::default()
        };
        let meta = snap.mut_metadata();
        meta.index = state.applied_index;
        meta.term = state.applied_term;
        meta.set_conf_state(state.conf_state);
        tracing::info!(
            range,
            index = state.applied_index,
            bytes = snap.get_data().len(),
            "generated snapshot"
        );
        Ok(ApplyOutput::Generated {
            range,
            snapshot: snap,
        })
    }

    /// Writes an installed snapshot (synced: the log it replaces is gone).
    fn install(
        &mut self,
        range: RangeId,
        snap: &Snapshot,
        batch: WriteBatch,
    ) -> Result<ApplyOutput> {
        if self.merged_away.contains(&range) {
            // Its keys are the left-hand range's now, which may have
            // written them since: the snapshot would overwrite that. The
            // replica is about to be deleted anyway.
            tracing::info!(range, "dropping a snapshot of a range merged away here");
            let applied_index = self.state(range)?.applied_index;
            return Ok(ApplyOutput::Applied {
                range,
                applied_index,
                entries: Vec::new(),
                reads: Vec::new(),
            });
        }
        let meta = snap.get_metadata();
        let (header, _) = SnapshotHeader::parse(snap.get_data())?;
        self.state_machine.before_snapshot(range, snap.get_data());
        self.engine.write(batch, true)?;
        self.state_machine.on_snapshot(range, self.engine.as_ref());
        self.bounds
            .write()
            .insert(range, (header.bounds.clone(), header.generation));
        self.states.insert(
            range,
            ApplyState {
                applied_index: meta.index,
                applied_term: meta.term,
                conf_state: meta.get_conf_state().clone(),
                bounds: header.bounds,
                generation: header.generation,
                frozen: header.frozen,
            },
        );
        Ok(ApplyOutput::Applied {
            range,
            applied_index: meta.index,
            entries: Vec::new(),
            reads: self.release_reads(range, meta.index),
        })
    }
}

impl<S: StateMachine> Applier<S> {
    /// Deletes the replica of `range` in one synced batch: its data spans,
    /// its Raft state and log, and a tombstone recording the applied index
    /// it reached (a later snapshot must be newer to create it again).
    fn destroy(&mut self, range: RangeId, keep_data: bool) -> Result<ApplyOutput> {
        // A replica merged away here keeps its data whoever deletes it.
        let keep_data = keep_data || self.merged_away.remove(&range);
        let initialized = self
            .engine
            .get_cf(ColumnFamily::Raft, &keys::apply_state(range))?
            .is_some();
        let state = self.state(range)?;
        let mut batch = WriteBatch::new();
        // An uninitialized replica (created by a message, never given a
        // snapshot) owns no data: its default bounds are the whole key
        // space, which belongs to the node's other replicas.
        if initialized && !keep_data {
            for span in S::data_spans(range, &state.bounds) {
                batch.delete_range_cf(ColumnFamily::Data, span.start, span.end);
            }
        }
        let (start, end) = keys::replica_span(range);
        batch.delete_range_cf(ColumnFamily::Raft, start, end);
        batch.put_cf(
            ColumnFamily::Raft,
            keys::tombstone(range),
            state.applied_index.to_be_bytes().to_vec(),
        );
        // Unpublished before the data goes: a read that finds the data
        // gone then finds the replica gone too, when it checks after
        // reading (`shoal-kv`'s `check_snapshot`), and routes again.
        self.bounds.write().remove(&range);
        self.published.write().remove(&range);
        self.engine.write(batch, true)?;
        self.states.remove(&range);
        self.reads.remove(&range);
        self.state_machine.on_destroy(range);
        Ok(ApplyOutput::Applied {
            range,
            applied_index: state.applied_index,
            entries: Vec::new(),
            reads: Vec::new(),
        })
    }
}

/// Where a command of `range` at `index` applies, given its state.
fn context<'a>(range: RangeId, index: u64, floor: u64, state: &'a ApplyState) -> EntryContext<'a> {
    EntryContext {
        range,
        index,
        floor,
        bounds: &state.bounds,
        frozen: state.frozen.is_some(),
    }
}

/// The configuration after applying the conf change in `entry` to
/// `current`, computed by raft-rs itself on a scratch node so that it
/// matches what the Raft thread's node will compute exactly.
fn next_conf_state(current: &ConfState, entry: &Entry) -> Result<(ConfChangeV2, ConfState)> {
    let corrupt =
        |e: protobuf::ProtobufError| ReplicationError::Corrupt(format!("conf change: {e}"));
    let change = if entry.get_entry_type() == EntryType::EntryConfChange {
        // The single change of the first protocol version, as a V2 change.
        let old = ConfChange::parse_from_bytes(entry.get_data()).map_err(corrupt)?;
        let mut single = ConfChangeSingle::default();
        single.set_change_type(old.get_change_type());
        single.node_id = old.node_id;
        let mut change = ConfChangeV2::default();
        change.set_changes(vec![single].into());
        change.context = old.context;
        change
    } else {
        ConfChangeV2::parse_from_bytes(entry.get_data()).map_err(corrupt)?
    };
    let config = raft::Config {
        // Any id works: the scratch node only tracks the configuration.
        id: u64::MAX,
        ..Default::default()
    };
    let storage = raft::storage::MemStorage::new_with_conf_state(current.clone());
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let mut scratch = RawNode::new(&config, storage, &logger)?;
    let next = scratch.apply_conf_change(&change)?;
    Ok((change, next))
}

/// A task for the apply thread, and where its output goes: the caller
/// waiting for it, or (none) the Raft thread's inputs.
type ApplyJob = (ApplyTask, Option<SyncSender<Result<ApplyOutput>>>);

/// Where apply tasks run. See the module documentation.
pub enum Applying<S: StateMachine> {
    /// On the caller's thread, as they are submitted.
    Inline(Box<Applier<S>>),
    /// On the apply thread.
    Thread(Sender<ApplyJob>),
}

impl<S: StateMachine> Applying<S> {
    /// Runs or queues `task`: its output if it ran here, `None` if the
    /// apply thread will report it.
    pub fn submit(&mut self, task: ApplyTask) -> Result<Option<ApplyOutput>> {
        match self {
            Applying::Inline(applier) => applier.run(task).map(Some),
            Applying::Thread(jobs) => {
                jobs.send((task, None))
                    .map_err(|_| ReplicationError::Stopped)?;
                Ok(None)
            }
        }
    }

    /// Runs `task` after every task submitted before it and waits for its
    /// output.
    pub fn run_now(&mut self, task: ApplyTask) -> Result<ApplyOutput> {
        match self {
            Applying::Inline(applier) => applier.run(task),
            Applying::Thread(jobs) => {
                let (tx, rx) = mpsc::sync_channel(1);
                jobs.send((task, Some(tx)))
                    .map_err(|_| ReplicationError::Stopped)?;
                rx.recv().map_err(|_| ReplicationError::Stopped)?
            }
        }
    }
}

impl<S: StateMachine + 'static> Applying<S> {
    /// Moves the applier onto its own thread; `report` receives the output
    /// of every task submitted (not run) from now on, and `notify` hears of
    /// each applied entry and released read the moment it happens (to
    /// answer waiters without a round trip through the Raft thread). The thread ends when this
    /// `Applying` is dropped, or after a task fails (its error is reported:
    /// the engine failed, and applying further could diverge).
    pub fn start_thread(
        &mut self,
        name: String,
        report: Box<dyn Fn(Result<ApplyOutput>) + Send>,
        notify: Notify,
    ) -> Result<std::thread::JoinHandle<()>> {
        let (tx, rx) = mpsc::channel();
        let Applying::Inline(_) = self else {
            return Err(ReplicationError::Raft(
                "the apply thread is already running".to_string(),
            ));
        };
        let Applying::Inline(mut applier) = std::mem::replace(self, Applying::Thread(tx)) else {
            return Err(ReplicationError::Raft("unreachable apply mode".to_string()));
        };
        applier.notify = Some(notify);
        std::thread::Builder::new()
            .name(name)
            .spawn(move || apply_loop(*applier, rx, report.as_ref()))
            .map_err(|e| ReplicationError::Raft(format!("cannot start apply thread: {e}")))
    }
}

fn apply_loop<S: StateMachine>(
    mut applier: Applier<S>,
    jobs: Receiver<ApplyJob>,
    report: &dyn Fn(Result<ApplyOutput>),
) {
    for (task, waiter) in jobs {
        let output = applier.run(task);
        let failed = output.is_err();
        match waiter {
            Some(waiter) => {
                let _ = waiter.send(output);
            }
            None => report(output),
        }
        if failed {
            tracing::error!("apply thread stopped on a storage failure");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use raft::prelude::{ConfChangeSingle, ConfChangeType};

    use super::*;

    fn entry(change: &ConfChangeV2) -> Entry {
        let mut entry = Entry::default();
        entry.set_entry_type(EntryType::EntryConfChangeV2);
        entry.data = change.write_to_bytes().unwrap().into();
        entry
    }

    fn single(kind: ConfChangeType, node: u64) -> ConfChangeSingle {
        let mut change = ConfChangeSingle::default();
        change.set_change_type(kind);
        change.node_id = node;
        change
    }

    #[test]
    fn conf_changes_follow_raft_rules() {
        let three = ConfState::from((vec![1, 2, 3], vec![]));
        let mut add_learner = ConfChangeV2::default();
        add_learner.set_changes(vec![single(ConfChangeType::AddLearnerNode, 4)].into());
        let (_, next) = next_conf_state(&three, &entry(&add_learner)).unwrap();
        assert_eq!(
            (next.voters.clone(), next.learners.clone()),
            (vec![1, 2, 3], vec![4])
        );

        // Two changes at once go through a joint configuration.
        let mut swap = ConfChangeV2::default();
        swap.set_changes(
            vec![
                single(ConfChangeType::AddNode, 4),
                single(ConfChangeType::RemoveNode, 1),
            ]
            .into(),
        );
        let (_, joint) = next_conf_state(&next, &entry(&swap)).unwrap();
        assert_eq!(joint.voters_outgoing, vec![1, 2, 3]);
        assert!(joint.auto_leave);
        let (_, left) = next_conf_state(&joint, &entry(&ConfChangeV2::default())).unwrap();
        let mut voters = left.voters.clone();
        voters.sort_unstable();
        assert_eq!(voters, vec![2, 3, 4]);
        assert!(left.voters_outgoing.is_empty());

        // Raft's rules refuse what would leave no voter.
        let alone = ConfState::from((vec![1], vec![]));
        let mut remove = ConfChangeV2::default();
        remove.set_changes(vec![single(ConfChangeType::RemoveNode, 1)].into());
        assert!(next_conf_state(&alone, &entry(&remove)).is_err());
    }
}
