//! [`MultiRaft`]: every replica on this node, driven together.
//!
//! The driver is a plain state machine with no threads, sockets or clocks of
//! its own. Its owner feeds it inputs and carries out its outputs:
//!
//! * inputs: [`MultiRaft::tick`] (the logical clock, one call per tick
//!   interval), [`MultiRaft::step`] (a message from another node),
//!   [`MultiRaft::propose`], [`MultiRaft::read`] and membership changes;
//! * outputs: [`MultiRaft::take_messages`] (per destination node, to hand
//!   to a [`Transport`](crate::Transport)) and [`MultiRaft::take_events`]
//!   (proposal outcomes, read readiness, leadership changes).
//!
//! The real node runs it on one thread; the simulated cluster in
//! [`crate::sim`] runs several in one test, delivering messages however a
//! seeded random network decides.
//!
//! # One round: [`MultiRaft::handle_ready`]
//!
//! raft-rs's cycle is tick → step → ready → persist → send → apply →
//! advance. Here the *persist* step is shared by every replica with work:
//!
//! A round looks only at the replicas that got input since the last one (a
//! message, a proposal, a read, a tick, an apply report): with many idle
//! ranges, a request costs the same as with one.
//!
//! 1. For each replica with a `Ready`: send the messages that may leave
//!    before persistence (a leader's appends — the leader's own disk write
//!    proceeds in parallel with its followers'); install a snapshot if one
//!    arrived (waiting for the apply side, see `apply.rs`); queue entries
//!    already committed *and* persisted for applying; add new log entries
//!    and the hard state to the shared batch.
//! 2. Write the shared batch once, synced if any replica needs it: one fsync
//!    for all ranges — group commit.
//! 3. For each such replica: send the messages that had to wait for
//!    persistence (votes, append acknowledgements), `advance_append`, and
//!    queue what became committed.
//! 4. Hand the queued entries to the apply side ([`Applying`]) — it applies
//!    them while the next round appends — and take in what it reported
//!    ([`MultiRaft::on_apply_output`]): proposals answered, applied index
//!    moved forward.
//! 5. Release reads whose index is applied, report leadership changes,
//!    compact logs that grew past the threshold, ask the apply side for the
//!    snapshots raft-rs wanted.
//!
//! Messages are gathered per destination node over the whole round, so the
//! transport sends one frame per peer node per round however many ranges
//! talked to it.
//!
//! # Durability
//!
//! Log entries and hard states are synced before any message that depends
//! on them leaves (step 2 before step 3). Applied data is written unsynced
//! together with its applied index (`apply.rs`): after a crash, the log
//! replays whatever the engine lost. The log is compacted only up to what
//! the apply side reported written, so that engine write precedes the
//! compaction's.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use raft::prelude::{ConfChangeV2, ConfState, MessageType};
use raft::{ProgressState, RawNode, ReadOnlyOption, SnapshotStatus};
use shoal_storage::{ColumnFamily, Engine, WriteBatch};

use crate::apply::{
    AppliedIndexes, Applier, ApplyOutput, ApplyTask, Applying, LocalBounds, Notify,
};
use crate::clock::{SystemClock, WallClock};
use crate::error::{ReplicationError, Result};
use crate::keys;
use crate::lease::Leases;
use crate::logging::raft_logger;
use crate::peer::Peer;
use crate::peer_storage::PeerStorage;
use crate::snapshot::SnapshotHeader;
use crate::{Event, NodeId, RaftEnvelope, RangeId, StateMachine, Token};

/// Raft timing and sizes. Ticks are the driver's only notion of time.
#[derive(Debug, Clone)]
pub struct RaftConfig {
    /// Ticks without a leader before a follower campaigns (randomized up to
    /// twice this by raft-rs).
    pub election_tick: usize,
    /// Ticks between a leader's heartbeats.
    pub heartbeat_tick: usize,
    /// The randomized election timeout is drawn from
    /// `[min_election_tick, max_election_tick)`; 0 means raft-rs's default
    /// (`election_tick`, `2 × election_tick`). A one-tick range makes it
    /// fixed, which the simulator uses to stay reproducible (raft-rs draws
    /// from an unseeded generator).
    pub min_election_tick: usize,
    /// See `min_election_tick`.
    pub max_election_tick: usize,
    /// Most bytes of entries in one append message.
    pub max_size_per_msg: u64,
    /// Most append messages in flight to one follower.
    pub max_inflight_msgs: usize,
    /// Log entries a replica keeps before compacting up to its applied
    /// index.
    pub log_compact_threshold: usize,
    /// Ticks after which an unacknowledged snapshot is reported failed, so
    /// the leader sends another.
    pub snapshot_timeout_ticks: u64,
    /// The most any node's clock may be ahead of another's, in
    /// microseconds: a new leader's timestamp floor starts this far ahead
    /// of its clock (`peer.rs`, *Timestamp floors*).
    pub max_clock_offset_micros: u64,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            election_tick: 10,
            heartbeat_tick: 2,
            min_election_tick: 0,
            max_election_tick: 0,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            log_compact_threshold: 1024,
            snapshot_timeout_ticks: 100,
            max_clock_offset_micros: 500_000,
        }
    }
}

/// Counters for tests and monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RaftStats {
    /// Snapshots installed on this node since it opened.
    pub snapshots_installed: u64,
    /// Snapshots this node sent as a leader since it opened.
    pub snapshots_sent: u64,
    /// The longest log held by a replica here.
    pub log_entries: usize,
}

/// All replicas of one node. See the module documentation.
pub struct MultiRaft<S: StateMachine> {
    pub(crate) node: NodeId,
    engine: Arc<dyn Engine>,
    config: RaftConfig,
    pub(crate) peers: BTreeMap<RangeId, Peer>,
    pub(crate) applying: Applying<S>,
    /// Applied indexes as the apply side published them.
    applied: AppliedIndexes,
    /// Every initialized replica's bounds, as the apply side published them.
    bounds: LocalBounds,
    /// Tasks gathered during a round, handed to `applying` at its end.
    apply_queue: Vec<ApplyTask>,
    outbox: BTreeMap<NodeId, Vec<RaftEnvelope>>,
    pub(crate) events: Vec<Event>,
    /// Replicas that got input since the last round: the only ones a round
    /// looks at, so an idle range costs nothing but its tick.
    pub(crate) dirty: BTreeSet<RangeId>,
    /// Ranges whose replica was removed here → the applied index it had
    /// reached (`replica_gc.rs`).
    pub(crate) tombstones: HashMap<RangeId, u64>,
    ticks: u64,
    stats: RaftStats,
    clock: Arc<dyn WallClock>,
    /// Every replica's read lease, for readers on other threads
    /// (`lease.rs`).
    leases: Leases,
    /// How long a confirmed read request lets a leader serve reads alone;
    /// `None` (the default): leases are off.
    lease_length: Option<Duration>,
}

impl<S: StateMachine> std::fmt::Debug for MultiRaft<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MultiRaft")
            .field("node", &self.node)
            .field("ranges", &self.peers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<S: StateMachine> MultiRaft<S> {
    /// Writes the initial state of `range` with members `voters` (synced).
    /// Done once, by the node that initializes the cluster.
    pub fn bootstrap_range(engine: &dyn Engine, range: RangeId, voters: &[NodeId]) -> Result<()> {
        if engine
            .get_cf(ColumnFamily::Raft, &keys::apply_state(range))?
            .is_some()
        {
            return Err(ReplicationError::Raft(format!(
                "range {range} is already bootstrapped"
            )));
        }
        let mut batch = WriteBatch::new();
        PeerStorage::bootstrap(range, voters, &mut batch)?;
        engine.write(batch, true)?;
        Ok(())
    }

    /// Opens every replica stored in `engine`.
    pub fn open(
        node: NodeId,
        engine: Arc<dyn Engine>,
        config: RaftConfig,
        state_machine: S,
    ) -> Result<MultiRaft<S>> {
        let applied = AppliedIndexes::default();
        let bounds = LocalBounds::default();
        let mut driver = MultiRaft {
            node,
            engine: engine.clone(),
            config,
            peers: BTreeMap::new(),
            applying: Applying::Inline(Box::new(Applier::new(
                engine.clone(),
                state_machine,
                applied.clone(),
                bounds.clone(),
            ))),
            applied,
            bounds,
            apply_queue: Vec::new(),
            outbox: BTreeMap::new(),
            events: Vec::new(),
            dirty: BTreeSet::new(),
            tombstones: crate::replica_gc::load_tombstones(engine.as_ref())?,
            ticks: 0,
            stats: RaftStats::default(),
            clock: Arc::new(SystemClock),
            leases: Leases::default(),
            lease_length: None,
        };
        for range in stored_ranges(driver.engine.as_ref())? {
            driver.create_peer(range)?;
        }
        driver.drop_merged_leftovers()?;
        Ok(driver)
    }

    /// Deletes (keeping the data) the replicas of ranges merged into
    /// another local replica before the node stopped, whose deletion did
    /// not happen (it follows the merge: `apply/merge.rs`): a replica
    /// whose keys another covers whole at a newer generation.
    fn drop_merged_leftovers(&mut self) -> Result<()> {
        let leftovers: Vec<RangeId> = {
            let bounds = self.bounds.read();
            bounds
                .iter()
                .filter(|&(&range, (inner, generation))| {
                    bounds.iter().any(|(&other, (outer, other_generation))| {
                        other != range && other_generation > generation && outer.covers(inner)
                    })
                })
                .map(|(&range, _)| range)
                .collect()
        };
        for range in leftovers {
            tracing::info!(
                node = self.node,
                range,
                "deleting the replica of a range merged away"
            );
            self.drop_replica(range, true)?;
        }
        Ok(())
    }

    /// Opens the replica of `range` from the engine (uninitialized if
    /// nothing is stored), replacing any replica of it held in memory.
    fn create_peer(&mut self, range: RangeId) -> Result<()> {
        let storage = PeerStorage::open(range, self.engine.clone(), S::data_spans)?;
        let applied = storage.apply_state().applied_index;
        if storage.is_initialized() {
            let state = storage.apply_state();
            self.bounds
                .write()
                .insert(range, (state.bounds.clone(), state.generation));
        }
        let config = raft::Config {
            id: self.node,
            election_tick: self.config.election_tick,
            heartbeat_tick: self.config.heartbeat_tick,
            min_election_tick: self.config.min_election_tick,
            max_election_tick: self.config.max_election_tick,
            applied,
            max_size_per_msg: self.config.max_size_per_msg,
            max_inflight_msgs: self.config.max_inflight_msgs,
            check_quorum: true,
            pre_vote: true,
            read_only_option: ReadOnlyOption::Safe,
            ..Default::default()
        };
        let raw = RawNode::new(&config, storage, &raft_logger(self.node, range))?;
        tracing::debug!(node = self.node, range, applied, "opened replica");
        let peer = Peer::new(raw, self.lease_length);
        let replaced = self.leases.write().insert(range, peer.lease.clone());
        if let Some(old) = replaced {
            old.lock().end();
        }
        self.peers.insert(range, peer);
        self.dirty.insert(range);
        Ok(())
    }

    /// Turns on leaseholder reads (`lease.rs`) for a driver ticked every
    /// `tick`: a lease lasts `(election_tick - 2)` ticks less a tenth. Call
    /// before the first tick; replicas opened earlier get leases too.
    pub fn enable_lease_reads(&mut self, tick: Duration) {
        let ticks = u32::try_from(self.config.election_tick.saturating_sub(2)).unwrap_or(0);
        if ticks == 0 {
            return;
        }
        let length = tick * ticks * 9 / 10;
        self.lease_length = Some(length);
        for peer in self.peers.values_mut() {
            peer.set_lease_length(length);
        }
    }

    /// The read leases of this node's replicas, for readers on any thread.
    pub fn leases(&self) -> Leases {
        self.leases.clone()
    }

    /// Each replica's applied index as the apply side published it.
    pub fn applied_indexes(&self) -> AppliedIndexes {
        self.applied.clone()
    }

    /// Ends and forgets the lease of `range`'s replica (it is going away).
    pub(crate) fn end_lease(&mut self, range: RangeId) {
        let removed = self.leases.write().remove(&range);
        if let Some(lease) = removed {
            lease.lock().end();
        }
    }

    /// Reads physical time from `clock` (the system clock by default; see
    /// `peer.rs`, *Timestamp floors*, for its one use).
    pub fn set_clock(&mut self, clock: Arc<dyn WallClock>) {
        self.clock = clock;
    }

    /// The clock reading plus the maximum clock offset: where a new
    /// leader's timestamp floor starts.
    fn now_plus_offset(&self) -> u64 {
        self.clock
            .now_micros()
            .saturating_add(self.config.max_clock_offset_micros)
    }

    /// Every initialized replica's bounds and generation, kept current by
    /// the apply side (shared: reading it needs no round trip to the Raft
    /// thread).
    pub fn local_bounds(&self) -> LocalBounds {
        self.bounds.clone()
    }

    /// This node's id (also its Raft peer id in every range).
    pub fn node_id(&self) -> NodeId {
        self.node
    }

    /// The engine all replicas live in.
    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.engine
    }

    /// Counters since the node opened.
    pub fn stats(&self) -> RaftStats {
        RaftStats {
            log_entries: self
                .peers
                .values()
                .map(|p| p.raw.store().log_len())
                .max()
                .unwrap_or(0),
            ..self.stats
        }
    }

    /// The ranges with a replica here.
    pub fn ranges(&self) -> Vec<RangeId> {
        self.peers.keys().copied().collect()
    }

    /// The replica of `range`, marked as having input this round.
    fn peer(&mut self, range: RangeId) -> Result<&mut Peer> {
        let peer = self
            .peers
            .get_mut(&range)
            .ok_or(ReplicationError::RangeNotFound(range))?;
        self.dirty.insert(range);
        Ok(peer)
    }

    /// Whether this node's replica leads `range`.
    pub fn is_leader(&self, range: RangeId) -> bool {
        self.peers.get(&range).is_some_and(Peer::is_leader)
    }

    /// The leader this node knows of for `range`.
    pub fn leader(&self, range: RangeId) -> Option<NodeId> {
        self.peers.get(&range).and_then(Peer::leader)
    }

    /// The applied index of this node's replica of `range`.
    pub fn applied_index(&self, range: RangeId) -> Option<u64> {
        self.peers
            .get(&range)
            .map(|p| p.raw.store().apply_state().applied_index)
    }

    /// The last index in this node's log of `range`.
    pub fn last_index(&self, range: RangeId) -> Option<u64> {
        self.peers
            .get(&range)
            .map(|p| p.raw.raft.raft_log.last_index())
    }

    /// The membership of `range` as of this replica's applied index.
    pub fn conf_state(&self, range: RangeId) -> Option<ConfState> {
        self.peers
            .get(&range)
            .map(|p| p.raw.store().apply_state().conf_state.clone())
    }

    /// What this node, if it leads `range`, knows for planning membership.
    pub fn range_view(&self, range: RangeId) -> Option<crate::replicate_queue::RangeView> {
        let peer = self.peers.get(&range)?;
        if !peer.is_leader() {
            return None;
        }
        Some(crate::replicate_queue::RangeView {
            conf_state: peer.raw.store().apply_state().conf_state.clone(),
            matched: peer
                .raw
                .raft
                .prs()
                .iter()
                .map(|(&id, p)| (id, p.matched))
                .collect(),
            commit: peer.raw.raft.raft_log.committed,
        })
    }

    /// The current term of this node's replica of `range`.
    pub fn term(&self, range: RangeId) -> Option<u64> {
        self.peers.get(&range).map(|p| p.raw.raft.term)
    }

    /// Advances the logical clock by one tick.
    pub fn tick(&mut self) {
        self.ticks += 1;
        let ticks = self.ticks;
        let timeout = self.config.snapshot_timeout_ticks;
        self.dirty.extend(self.peers.keys().copied());
        for peer in self.peers.values_mut() {
            peer.raw.tick();
            if peer
                .generated_at
                .is_some_and(|at| ticks.saturating_sub(at) > timeout)
            {
                // Snapshots are large: keep one only while it may be sent.
                peer.raw.mut_store().drop_generated();
                peer.generated_at = None;
            }
            if !peer.is_leader() {
                peer.snapshots_sent.clear();
                continue;
            }
            // A snapshot lost in transit leaves the follower's progress
            // paused in Snapshot state forever; report it failed so the
            // leader probes and sends another.
            let stuck: Vec<NodeId> = peer
                .snapshots_sent
                .iter()
                .filter(|&(_, &sent)| ticks.saturating_sub(sent) > timeout)
                .map(|(&id, _)| id)
                .collect();
            for id in stuck {
                peer.snapshots_sent.remove(&id);
                let in_snapshot = peer
                    .raw
                    .raft
                    .prs()
                    .get(id)
                    .is_some_and(|p| p.state == ProgressState::Snapshot);
                if in_snapshot {
                    tracing::info!(
                        range = peer.range(),
                        to = id,
                        "snapshot timed out; retrying"
                    );
                    peer.raw.report_snapshot(id, SnapshotStatus::Failure);
                }
            }
        }
    }

    /// Delivers a message from another node. A message for a range this
    /// node has no replica of creates an empty one when it comes from a
    /// leader (append, heartbeat, snapshot): that is how a new replica is
    /// born, to be filled by a snapshot.
    pub fn step(&mut self, envelope: RaftEnvelope) -> Result<()> {
        let RaftEnvelope { range, message } = envelope;
        if message.to != self.node {
            return Err(ReplicationError::Raft(format!(
                "message for node {} delivered to node {}",
                message.to, self.node
            )));
        }
        if raft::raw_node::is_local_msg(message.get_msg_type()) {
            return Err(ReplicationError::Raft(
                "a local message type arrived from the network".to_string(),
            ));
        }
        // raft-rs trusts these shapes (it indexes a read request's context,
        // and turns forwarded proposals into entries as they are): messages
        // that break them are dropped, not stepped.
        match message.get_msg_type() {
            MessageType::MsgReadIndex | MessageType::MsgReadIndexResp
                if message.entries.len() != 1 =>
            {
                return Ok(());
            }
            MessageType::MsgPropose
                if message
                    .entries
                    .iter()
                    .any(|e| e.get_entry_type() != raft::prelude::EntryType::EntryNormal) =>
            {
                return Ok(());
            }
            _ => {}
        }
        if crate::replica_gc::stale_message(
            &message,
            self.tombstones.get(&range).copied(),
            self.peers.get(&range).map(|p| p.raw.store().last_index()),
        ) {
            // Sent to this node's replica from before its removal.
            return Ok(());
        }
        if message.get_msg_type() == MessageType::MsgSnapshot
            && !self.make_room_for_snapshot(range, message.get_snapshot())?
        {
            // This node still holds (part of) these keys in another range
            // — it has not applied the split that created this one. The
            // leader retries; by then the split will have created it here.
            return Ok(());
        }
        if !self.peers.contains_key(&range) {
            // A leader's messages create the replica (a new learner's
            // first contact), and so do vote requests (a range just split
            // off elects its leader before every replica has applied the
            // split; the vote must be recorded, and the split keeps it).
            let creates = matches!(
                message.get_msg_type(),
                MessageType::MsgAppend
                    | MessageType::MsgHeartbeat
                    | MessageType::MsgSnapshot
                    | MessageType::MsgRequestVote
                    | MessageType::MsgRequestPreVote
            );
            if !creates {
                return Ok(());
            }
            tracing::info!(
                node = self.node,
                range,
                from = message.from,
                "creating replica"
            );
            self.create_peer(range)?;
        }
        if self.lease_length.is_some()
            && self.ticks < self.config.election_tick as u64
            && grants_vote(&message)
        {
            // A node just started may have acknowledged a leader before it
            // stopped and forgotten it since: its vote could elect a rival
            // while that leader's lease holds. It waits out one election
            // timeout first (`lease.rs`).
            return Ok(());
        }
        let now_plus_offset = self.now_plus_offset();
        let peer = self.peer(range)?;
        match peer.step(message, now_plus_offset) {
            Ok(()) => Ok(()),
            // Stale or misdirected messages are routine in a distributed
            // system; Raft has already ignored them.
            Err(raft::Error::StepPeerNotFound | raft::Error::StepLocalMsg) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether a snapshot of `range` with this data may be installed: it
    /// covers no keys an initialized replica of another range here still
    /// owns — once replicas it supersedes are deleted. A replica whose
    /// keys the snapshot covers whole, at a newer generation, is of a range
    /// since merged into `range` (a replica of `range` lagging behind the
    /// merge cannot replay it without that range's data, and must start
    /// from the snapshot; `apply/merge.rs`) or removed from it: it goes,
    /// with its data. Any other overlap is a split not yet applied here.
    fn make_room_for_snapshot(
        &mut self,
        range: RangeId,
        snapshot: &raft::prelude::Snapshot,
    ) -> Result<bool> {
        let Ok((header, _)) = SnapshotHeader::parse(snapshot.get_data()) else {
            return Ok(false);
        };
        let overlapping: Vec<(RangeId, bool)> = self
            .bounds
            .read()
            .iter()
            .filter(|&(&other, (bounds, _))| other != range && bounds.overlaps(&header.bounds))
            .map(|(&other, (bounds, generation))| {
                let superseded = *generation < header.generation && header.bounds.covers(bounds);
                (other, superseded)
            })
            .collect();
        if overlapping.iter().any(|&(_, superseded)| !superseded) {
            return Ok(false);
        }
        // Only a snapshot raft-rs will take deletes anything: one at or
        // below what the local replica has committed is refused, and that
        // replica applies the merge from its log, needing the replicas the
        // snapshot would supersede.
        let committed = self
            .peers
            .get(&range)
            .map(|p| p.raw.raft.raft_log.committed);
        if !overlapping.is_empty() && committed.is_some_and(|c| snapshot.get_metadata().index <= c)
        {
            return Ok(false);
        }
        for (other, _) in overlapping {
            tracing::info!(
                node = self.node,
                range,
                other,
                "a snapshot supersedes a replica"
            );
            self.drop_replica(other, false)?;
        }
        Ok(true)
    }

    /// Proposes `command` to `range`. The outcome arrives as an
    /// [`Event`] for `token`; an immediate error means nothing was
    /// proposed (not the leader).
    pub fn propose(&mut self, range: RangeId, token: Token, command: Vec<u8>) -> Result<()> {
        let now_plus_offset = self.now_plus_offset();
        self.peer(range)?.propose(token, command, now_plus_offset)
    }

    /// Stops tracking proposal `token` of `range` (its owner gave up); true
    /// if it was still pending.
    pub fn forget(&mut self, range: RangeId, token: Token) -> bool {
        self.peers
            .get_mut(&range)
            .is_some_and(|peer| peer.forget(token))
    }

    /// Asks for a linearizable read of `range` at `read_ts`:
    /// [`Event::ReadReady`] for `token` means this node's applied state
    /// includes every write acknowledged before the call, and every
    /// command applied later gets a floor above `read_ts` (0: none asked).
    pub fn read(&mut self, range: RangeId, token: Token, read_ts: u64) -> Result<()> {
        self.peer(range)?.read(token, read_ts)
    }

    /// Proposes a membership change of `range`.
    pub fn change_membership(
        &mut self,
        range: RangeId,
        token: Token,
        change: ConfChangeV2,
    ) -> Result<()> {
        self.peer(range)?.propose_conf_change(token, change)
    }

    /// Asks the leader of `range` (this node) to hand leadership to `to`.
    pub fn transfer_leader(&mut self, range: RangeId, to: NodeId) -> Result<()> {
        let peer = self.peer(range)?;
        if !peer.is_leader() {
            return Err(ReplicationError::NotLeader {
                range,
                leader: peer.leader(),
            });
        }
        peer.raw.transfer_leader(to);
        // The target campaigns as soon as it hears: no lease may outlive
        // this call (`lease.rs`).
        peer.check_lease();
        Ok(())
    }

    /// Starts an election for `range` now instead of waiting for a timeout.
    pub fn campaign(&mut self, range: RangeId) -> Result<()> {
        self.peer(range)?.raw.campaign()?;
        Ok(())
    }

    /// Tells `range`'s Raft that `to` could not be reached.
    pub fn report_unreachable(&mut self, range: RangeId, to: NodeId) {
        if let Some(peer) = self.peers.get_mut(&range) {
            peer.raw.report_unreachable(to);
            self.dirty.insert(range);
        }
    }

    /// Messages to send, per destination node, since the last call.
    pub fn take_messages(&mut self) -> BTreeMap<NodeId, Vec<RaftEnvelope>> {
        std::mem::take(&mut self.outbox)
    }

    /// Events since the last call.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// One round of the Raft cycle for every replica with work. See the
    /// module documentation. Every message ends up in the outbox.
    pub fn handle_ready(&mut self) -> Result<()> {
        let mut early = BTreeMap::new();
        self.handle_ready_with(&mut |to, envelopes: Vec<RaftEnvelope>| {
            early.entry(to).or_insert_with(Vec::new).extend(envelopes)
        })?;
        for (to, envelopes) in early {
            let queued = self.outbox.remove(&to).unwrap_or_default();
            let mut all = envelopes;
            all.extend(queued);
            self.outbox.insert(to, all);
        }
        Ok(())
    }

    /// Like [`MultiRaft::handle_ready`], handing the messages that may
    /// leave before the round's fsync to `send_early` just before it, so the
    /// followers' disk writes overlap the leader's.
    pub fn handle_ready_with(
        &mut self,
        send_early: &mut dyn FnMut(NodeId, Vec<RaftEnvelope>),
    ) -> Result<()> {
        let ticks = self.ticks;
        let mut outputs = Vec::new();
        let mut batch = WriteBatch::new();
        let mut sync = false;
        let mut readies = Vec::new();
        let now_plus_offset = self.now_plus_offset();
        let active = std::mem::take(&mut self.dirty);
        for &range in &active {
            let Some(peer) = self.peers.get_mut(&range) else {
                continue;
            };
            peer.check_lease();
            peer.issue_reads(now_plus_offset);
            if !peer.raw.has_ready() {
                continue;
            }
            let mut ready = peer.raw.ready();
            route(&mut self.outbox, peer, range, ready.take_messages(), ticks);
            if !ready.snapshot().is_empty() {
                // Rare and large: installed on its own (synced, by the apply
                // side once it is idle) so the committed entries below
                // apply on top of it and the entries appended below land
                // after the log it clears.
                let mut install = WriteBatch::new();
                peer.raw
                    .mut_store()
                    .apply_snapshot(ready.snapshot(), &mut install)?;
                for task in self.apply_queue.drain(..) {
                    if let Some(output) = self.applying.submit(task)? {
                        outputs.push(output);
                    }
                }
                outputs.push(self.applying.run_now(ApplyTask::Install {
                    range,
                    snapshot: ready.snapshot().clone(),
                    batch: install,
                })?);
                peer.on_snapshot_installed(ready.snapshot().get_metadata().index);
                self.stats.snapshots_installed += 1;
                tracing::info!(
                    node = self.node,
                    range,
                    index = ready.snapshot().get_metadata().index,
                    "installed snapshot"
                );
            }
            for state in ready.take_read_states() {
                let Some((index, tokens)) = peer.on_read_state(&state.request_ctx, state.index)
                else {
                    continue;
                };
                if tokens.is_empty() {
                    // A lease renewal: nobody waits for it.
                    continue;
                }
                let applied = self.applied.read().get(&range).copied().unwrap_or(0);
                if index <= applied {
                    self.events.extend(
                        tokens
                            .into_iter()
                            .map(|token| Event::ReadReady { token, range }),
                    );
                } else {
                    // The apply side releases them when it gets there.
                    self.apply_queue.push(ApplyTask::Read {
                        range,
                        index,
                        tokens,
                    });
                }
            }
            queue_entries(&mut self.apply_queue, range, ready.take_committed_entries());
            let store = peer.raw.mut_store();
            store.append(ready.entries(), &mut batch)?;
            if let Some(hard_state) = ready.hs() {
                store.set_hard_state(hard_state, &mut batch)?;
            }
            sync |= ready.must_sync();
            readies.push((range, ready));
        }
        for (to, envelopes) in std::mem::take(&mut self.outbox) {
            send_early(to, envelopes);
        }
        if !batch.is_empty() {
            self.engine.write(batch, sync)?;
        }
        for (range, mut ready) in readies {
            let Some(peer) = self.peers.get_mut(&range) else {
                continue;
            };
            route(
                &mut self.outbox,
                peer,
                range,
                ready.take_persisted_messages(),
                ticks,
            );
            let mut light = peer.raw.advance_append(ready);
            if let Some(commit) = light.commit_index() {
                peer.raw.mut_store().set_commit(commit);
            }
            route(&mut self.outbox, peer, range, light.take_messages(), ticks);
            queue_entries(&mut self.apply_queue, range, light.take_committed_entries());
        }
        self.flush_apply_queue(&mut outputs)?;
        for output in outputs {
            self.on_apply_output(output)?;
        }
        let looked_at: Vec<RangeId> = active.union(&self.dirty).copied().collect();
        for range in looked_at {
            let Some(peer) = self.peers.get_mut(&range) else {
                continue;
            };
            let leader = peer.leader();
            let term = peer.raw.raft.term;
            if term != peer.reported_term {
                // A read confirmed in an older term proves nothing now.
                peer.fail_reads(&mut self.events);
                peer.reported_term = term;
            }
            if leader != peer.reported_leader {
                // Reads in flight relied on the old leader's answer.
                peer.fail_reads(&mut self.events);
                peer.reported_leader = leader;
                self.events.push(Event::LeaderChanged { range, leader });
            }
            compact_if_needed(peer, self.node, self.config.log_compact_threshold)?;
            self.stats.snapshots_sent += std::mem::take(&mut peer.snapshot_count);
            if peer.raw.store().take_snapshot_request().is_some() && !peer.generating {
                peer.generating = true;
                self.apply_queue.push(ApplyTask::Generate { range });
            }
        }
        let mut outputs = Vec::new();
        self.flush_apply_queue(&mut outputs)?;
        for output in outputs {
            self.on_apply_output(output)?;
        }
        // Work left over (reads a new leader cannot answer yet, messages
        // raised after the round's ready) keeps the replica in the next
        // round.
        for range in active {
            if self
                .peers
                .get(&range)
                .is_some_and(|p| p.raw.has_ready() || p.has_waiting_reads())
            {
                self.dirty.insert(range);
            }
        }
        Ok(())
    }

    /// Hands the queued tasks to the apply side; outputs of tasks that ran
    /// here (inline) are added to `outputs`.
    pub(crate) fn flush_apply_queue(&mut self, outputs: &mut Vec<ApplyOutput>) -> Result<()> {
        for task in self.apply_queue.drain(..) {
            if let Some(output) = self.applying.submit(task)? {
                outputs.push(output);
            }
        }
        Ok(())
    }

    /// Takes in what the apply side reported: answers proposals, moves the
    /// applied index (and with it reads and compaction), applies membership
    /// changes to raft-rs, keeps generated snapshots. Reports about a
    /// replica this node no longer has are ignored.
    pub fn on_apply_output(&mut self, output: ApplyOutput) -> Result<()> {
        let range = match &output {
            ApplyOutput::Applied { range, .. } | ApplyOutput::Generated { range, .. } => *range,
        };
        if self.peers.contains_key(&range) {
            self.dirty.insert(range);
        }
        match output {
            ApplyOutput::Applied {
                range,
                applied_index,
                entries,
                reads,
            } => {
                let children: Vec<RangeId> = entries
                    .iter()
                    .filter_map(|e| e.split.as_ref().filter(|s| s.created).map(|s| s.child))
                    .collect();
                let merged: Vec<RangeId> = entries.iter().filter_map(|e| e.merged).collect();
                let now_plus_offset = self.now_plus_offset();
                // A leader of the split range knows every read registered
                // on the new range's keys so far: its floor carries over.
                let floor = self
                    .peers
                    .get_mut(&range)
                    .filter(|p| p.is_leader())
                    .map(|p| p.leader_floor(now_plus_offset));
                if let Some(peer) = self.peers.get_mut(&range) {
                    peer.on_applied(applied_index, entries, &mut self.events);
                }
                for child in children {
                    self.create_split_child(child, floor)?;
                }
                for right in merged {
                    tracing::info!(node = self.node, range, right, "merged range");
                    self.drop_replica(right, true)?;
                }
                self.events.extend(
                    reads
                        .into_iter()
                        .map(|token| Event::ReadReady { token, range }),
                );
                self.collect_if_removed(range)?;
            }
            ApplyOutput::Generated { range, snapshot } => {
                if let Some(peer) = self.peers.get_mut(&range) {
                    peer.generating = false;
                    peer.generated_at = Some(self.ticks);
                    peer.raw.mut_store().set_generated(snapshot);
                }
            }
        }
        Ok(())
    }
}

impl<S: StateMachine> MultiRaft<S> {
    /// Opens the replica a split created here (replacing an uninitialized
    /// one a message created first). The split range's leader (`floor`: its
    /// timestamp floor) campaigns at once, so the new range has a leader
    /// within a round trip instead of an election timeout — and if it wins
    /// that first election, it keeps the floor instead of starting one in
    /// the future (`peer.rs`, *Timestamp floors*).
    fn create_split_child(&mut self, child: RangeId, floor: Option<u64>) -> Result<()> {
        let initialized = self
            .peers
            .get(&child)
            .is_some_and(|p| p.raw.store().is_initialized());
        if initialized {
            return Ok(());
        }
        self.create_peer(child)?;
        tracing::info!(node = self.node, range = child, "created range by split");
        if let Some(floor) = floor {
            let peer = self.peer(child)?;
            peer.inherit_floor(floor);
            peer.raw.campaign()?;
        }
        Ok(())
    }
}

/// Queues committed `entries` of `range` for the apply side.
fn queue_entries(queue: &mut Vec<ApplyTask>, range: RangeId, entries: Vec<raft::prelude::Entry>) {
    if !entries.is_empty() {
        queue.push(ApplyTask::Entries { range, entries });
    }
}

impl<S: StateMachine + 'static> MultiRaft<S> {
    /// Moves applying onto its own thread (see `apply.rs`); every output
    /// it reports must be handed to [`MultiRaft::on_apply_output`].
    /// `notify` hears of each applied entry and released read at once.
    pub fn start_apply_thread(
        &mut self,
        report: Box<dyn Fn(Result<ApplyOutput>) + Send>,
        notify: Notify,
    ) -> Result<std::thread::JoinHandle<()>> {
        self.applying
            .start_thread(format!("apply-{}", self.node), report, notify)
    }
}

/// Files `messages` of `range` under their destination nodes, noting
/// snapshots sent.
fn route(
    outbox: &mut BTreeMap<NodeId, Vec<RaftEnvelope>>,
    peer: &mut Peer,
    range: RangeId,
    messages: Vec<raft::prelude::Message>,
    ticks: u64,
) {
    for message in messages {
        if message.get_msg_type() == MessageType::MsgSnapshot {
            peer.snapshots_sent.insert(message.to, ticks);
            peer.snapshot_count += 1;
        }
        outbox
            .entry(message.to)
            .or_default()
            .push(RaftEnvelope { range, message });
    }
}

/// Compacts the log of `peer` once it holds more than `threshold` entries.
/// A leader keeps what its followers still need unless they lag by more
/// than four thresholds (they will get a snapshot instead).
fn compact_if_needed(peer: &mut Peer, node: NodeId, threshold: usize) -> Result<()> {
    let store = peer.raw.store();
    if store.log_len() <= threshold {
        return Ok(());
    }
    let applied = store.apply_state().applied_index;
    let mut target = applied;
    if peer.is_leader() {
        let slowest = peer
            .raw
            .raft
            .prs()
            .iter()
            .filter(|&(&id, _)| id != node)
            .map(|(_, p)| p.matched)
            .min();
        if let Some(slowest) = slowest
            && applied.saturating_sub(slowest) < 4 * threshold as u64
        {
            target = target.min(slowest);
        }
    }
    let mut batch = WriteBatch::new();
    let store = peer.raw.mut_store();
    store.compact(target, &mut batch)?;
    if !batch.is_empty() {
        store.engine().write(batch, false)?;
    }
    Ok(())
}

/// The ranges with a replica stored in `engine`: one seek per range.
fn stored_ranges(engine: &dyn Engine) -> Result<Vec<RangeId>> {
    let mut ranges = Vec::new();
    let (mut from, end) = (keys::replica_span(0).0, keys::replica_span(u64::MAX).1);
    loop {
        let Some(pair) = engine.scan_cf(ColumnFamily::Raft, &from, Some(&end)).next() else {
            break;
        };
        let (key, _) = pair?;
        let Some(raw) = key.get(1..9).and_then(|s| <[u8; 8]>::try_from(s).ok()) else {
            return Err(ReplicationError::Corrupt(format!(
                "raft key {key:?} has no range id"
            )));
        };
        let range = u64::from_be_bytes(raw);
        // A replica that has only voted (created by a message, never
        // initialized) is kept too: its vote must survive a restart.
        let has_state = |key: Vec<u8>| engine.get_cf(ColumnFamily::Raft, &key).map(|v| v.is_some());
        if has_state(keys::apply_state(range))? || has_state(keys::hard_state(range))? {
            ranges.push(range);
        }
        if range == u64::MAX {
            break;
        }
        from = keys::replica_span(range).1;
    }
    Ok(ranges)
}

/// Whether stepping `message` could make this node vote for a candidate
/// in a new term (a vote or pre-vote request not forced by a transfer).
fn grants_vote(message: &raft::prelude::Message) -> bool {
    matches!(
        message.get_msg_type(),
        MessageType::MsgRequestVote | MessageType::MsgRequestPreVote
    ) && message.get_context() != raft::CAMPAIGN_TRANSFER
}
