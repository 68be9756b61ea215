//! Replication: every range is a Raft group; this crate drives the groups
//! of one node.
//!
//! # Shape
//!
//! * [`MultiRaft`] (`multiraft.rs`) owns every replica on the node and runs
//!   raft-rs's cycle for all of them at once — one engine write and one
//!   fsync per round, one message batch per destination node. It is a pure
//!   state machine: time is [`MultiRaft::tick`], the network is
//!   [`MultiRaft::step`] in and [`MultiRaft::take_messages`] out, results
//!   are [`MultiRaft::take_events`].
//! * [`Peer`](peer) wraps one raft-rs `RawNode` with its pending proposals
//!   and reads.
//! * [`PeerStorage`] (`peer_storage.rs`) is the replica's log and state as
//!   raft-rs reads it, cached in memory and persisted to the engine's Raft
//!   column family ([`keys`] gives the layout; [`ApplyState`] the progress
//!   record).
//! * [`apply`] applies committed entries off the append path (its own
//!   thread in a real node, inline in the simulator), cuts snapshots and
//!   releases reads.
//! * [`snapshot`] captures and installs a range's data.
//! * [`StateMachine`] is what committed commands mean: the KV layer
//!   implements it. Replication moves opaque bytes.
//! * [`Transport`] carries [`RaftEnvelope`]s between nodes; [`sim`] is a
//!   seeded, lossy in-process network and cluster for tests.
//!
//! # Life of a replicated write
//!
//! The leader's owner calls `propose(range, token, command)`; the entry is
//! appended to the leader's log and sent to the followers in the same round
//! (the leader's fsync and the followers' overlap). Each follower persists
//! it (synced) and acknowledges; once a majority has it, the leader marks
//! it committed and hands it to the apply side ([`apply`]), which applies it
//! through the [`StateMachine`] (data and applied index in one unsynced
//! batch — the log is the durable record) while the Raft thread goes on
//! appending, and reports [`Event::Applied`] with the state machine's reply.
//! Followers apply when they learn the commit index from the next append or
//! heartbeat.
//!
//! # Invariants
//!
//! * A proposal is reported applied only after a quorum persisted its entry
//!   and the leader applied it; reported dropped only when its log slot
//!   went to a different entry (so it never ran).
//! * Every replica applies the same commands in the same order; state
//!   machines must be deterministic.
//! * Peer ids are node ids: a node holds at most one replica of a range.

pub mod apply;
pub mod apply_state;
pub mod blocking;
pub mod clock;
pub mod error;
pub mod faults;
pub mod keys;
pub mod lease;
mod logging;
pub mod multiraft;
mod peer;
pub mod peer_storage;
pub mod replica_gc;
pub mod replicate_queue;
pub mod runner;
pub mod sim;
pub mod snapshot;
pub mod tcp;
pub mod tcp_requests;
pub mod transport;

pub use apply_state::{ApplyState, Freeze, RangeBounds};
pub use error::{ReplicationError, Result};
pub use multiraft::{MultiRaft, RaftConfig, RaftStats};
pub use peer_storage::PeerStorage;
pub use raft::prelude::{ConfChangeSingle, ConfChangeType, ConfChangeV2, ConfState, Message};
pub use runner::{NoTransport, RaftHandle, RaftRunner};
pub use snapshot::{DataSpan, SnapshotHeader};
pub use transport::{NodeRequests, RaftEnvelope, Transport};

use shoal_storage::{Engine, WriteBatch};

/// A node's id, also its Raft peer id. Never 0 (raft-rs's "none").
pub type NodeId = u64;

/// A range's id.
pub type RangeId = u64;

/// The owner's handle for a request (proposal or read), echoed in its
/// [`Event`].
pub type Token = u64;

/// What the driver reports to its owner.
#[derive(Debug, Clone)]
pub enum Event {
    /// The proposal `token` was committed and applied; `reply` is the state
    /// machine's answer.
    Applied {
        /// The proposal.
        token: Token,
        /// What [`StateMachine::apply`] returned.
        reply: Vec<u8>,
    },
    /// The request `token` failed.
    Failed {
        /// The request.
        token: Token,
        /// Why.
        error: ReplicationError,
    },
    /// The read `token` may now be served from this node's applied state.
    ReadReady {
        /// The read.
        token: Token,
        /// Its range.
        range: RangeId,
    },
    /// This node learned of a new leader of `range` (or lost track of it).
    LeaderChanged {
        /// The range.
        range: RangeId,
        /// The leader, if known.
        leader: Option<NodeId>,
    },
}

/// Where a committed command applies.
#[derive(Debug, Clone, Copy)]
pub struct EntryContext<'a> {
    /// The range.
    pub range: RangeId,
    /// The entry's log index.
    pub index: u64,
    /// The timestamp floor the leader stamped on the entry: a state machine
    /// that chooses timestamps when it applies must choose none below it
    /// (see `peer.rs`, *Timestamp floors*).
    pub floor: u64,
    /// The keys the range owns (after the entry, for a split or merge).
    pub bounds: &'a RangeBounds,
    /// Whether the range is frozen for a merge ([`MergeStep::Freeze`]): a
    /// state machine must then change nothing its data spans hold — the
    /// left-hand neighbour is about to take them over as they are.
    pub frozen: bool,
}

/// A step of merging a range into its left-hand neighbour (`apply/merge.rs`
/// tells the whole protocol). Like splits, the apply side carries them
/// out itself, then asks the state machine for its part and the reply
/// ([`StateMachine::apply_merge_step`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeStep {
    /// Sent to the right-hand range: from this entry on it refuses every
    /// command that would change its data, every membership change and
    /// every split, until it is merged away. It is never unfrozen: whether
    /// the merge happened is known only to the left-hand range.
    Freeze,
    /// Sent to the left-hand range: it takes over the frozen right-hand
    /// range's keys.
    Merge(MergeRequest),
}

/// The left-hand side of a merge: what the proposer saw, and what every
/// replica checks again before it takes the right-hand range over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeRequest {
    /// The right-hand range, frozen.
    pub right: RangeId,
    /// Its first key: where the left-hand range must end.
    pub right_start: Vec<u8>,
    /// The log index at which the right-hand range froze.
    pub freeze_index: u64,
    /// The left-hand range's generation when the proposer checked that
    /// each of its replicas sits next to a complete replica of the
    /// right-hand range. Every change of bounds, membership or freezing
    /// bumps it.
    pub left_generation: u64,
    /// The left-hand range's voters then.
    pub voters: Vec<NodeId>,
    /// Its learners then.
    pub learners: Vec<NodeId>,
}

/// What the apply side decided about a [`MergeStep`] — identically on every
/// replica, from replicated state only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The range is frozen since log index `index` (now, or earlier).
    Frozen {
        /// The freeze's log index.
        index: u64,
    },
    /// The left-hand range now owns the right-hand range's keys too.
    Merged {
        /// The range merged away.
        right: RangeId,
        /// The timestamp floor of the right-hand range's freeze entry:
        /// above every read its leader registered before it froze.
        right_floor: u64,
    },
    /// Nothing changed.
    Refused(String),
}

/// A command that splits its range: the keys from `at` on move to the new
/// range `new_range`, whose replicas are the range's own. Every replica
/// applies it at the same log index; no data moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitRequest {
    /// The first key of the right-hand range.
    pub at: Vec<u8>,
    /// The right-hand range's id (unused anywhere).
    pub new_range: RangeId,
    /// The proposer's estimate of the bytes the left-hand range keeps (for
    /// the state machine's size accounting; replication ignores it).
    pub left_bytes: u64,
    /// Until when the new boundary should not be merged away (for the
    /// state machine; replication ignores it).
    pub sticky_until: u64,
}

/// What the apply side decided about a [`SplitRequest`] — identically on
/// every replica, from replicated state only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitOutcome {
    /// The range now ends at the split key. `create_child` says whether
    /// this replica writes the right-hand range's state (false when it
    /// already has a newer one, from a snapshot).
    Done {
        /// Whether this replica creates the right-hand range here.
        create_child: bool,
    },
    /// Nothing changed.
    Refused(String),
}

/// What committed commands do. Implemented by the KV layer.
pub trait StateMachine: Send {
    /// The data column family spans holding the data of `range` when it
    /// owns `bounds`: what a snapshot carries and replaces. Spans of
    /// different ranges never overlap.
    fn data_spans(range: RangeId, bounds: &RangeBounds) -> Vec<DataSpan>;

    /// The split `command` asks for, if it is a split. The apply side
    /// carries splits out itself (see `apply.rs`) and then calls
    /// [`StateMachine::apply_split`].
    fn split_request(command: &[u8]) -> Option<SplitRequest>;

    /// Applies the command at `ctx`: adds its effects on the data column
    /// family to `batch` (which the driver writes together with the new
    /// applied index) and returns the reply for the proposer.
    ///
    /// Must be deterministic — it runs on every replica and must reach the
    /// same state everywhere — and may read `engine`, which holds every
    /// earlier command's effects. An error means the local engine failed:
    /// the replica stops rather than diverge.
    fn apply(
        &mut self,
        ctx: &EntryContext<'_>,
        command: &[u8],
        engine: &dyn Engine,
        batch: &mut WriteBatch,
    ) -> Result<Vec<u8>>;

    /// A split was applied (or refused): add the state machine's part to
    /// `batch` (for a done split that creates the child here, the
    /// right-hand range's own state) and return the reply for the proposer.
    /// `ctx.bounds` are the left-hand range's bounds after the split.
    fn apply_split(
        &mut self,
        ctx: &EntryContext<'_>,
        split: &SplitRequest,
        outcome: &SplitOutcome,
        engine: &dyn Engine,
        batch: &mut WriteBatch,
    ) -> Result<Vec<u8>>;

    /// The merge step `command` asks for, if it is one (none by default:
    /// a state machine that never merges).
    fn merge_request(command: &[u8]) -> Option<MergeStep> {
        let _ = command;
        None
    }

    /// A merge step was carried out (or refused): add the state machine's
    /// part to `batch` — for [`MergeOutcome::Merged`], taking over the
    /// right-hand range's own state, which is in `engine` up to its freeze
    /// — and return the reply for the proposer. `ctx.bounds` are the
    /// range's bounds after the step.
    fn apply_merge_step(
        &mut self,
        ctx: &EntryContext<'_>,
        step: &MergeStep,
        outcome: &MergeOutcome,
        engine: &dyn Engine,
        batch: &mut WriteBatch,
    ) -> Result<Vec<u8>> {
        let _ = (ctx, step, outcome, engine, batch);
        Ok(Vec::new())
    }

    /// The batch carrying the effects of entry `index` is now in the
    /// engine: state published to readers may move forward.
    fn applied(&mut self, range: RangeId, index: u64) {
        let _ = (range, index);
    }

    /// A snapshot with this data is about to replace the range's data:
    /// publish, before it becomes visible, anything readers must not miss.
    fn before_snapshot(&mut self, range: RangeId, data: &[u8]) {
        let _ = (range, data);
    }

    /// The range's data was replaced by a snapshot; drop anything cached.
    fn on_snapshot(&mut self, range: RangeId, engine: &dyn Engine) {
        let _ = (range, engine);
    }

    /// This node's replica of the range was removed and its data deleted;
    /// drop anything cached.
    fn on_destroy(&mut self, range: RangeId) {
        let _ = range;
    }
}
