//! Removing a replica from a node once its range no longer lists the node.
//!
//! # When
//!
//! * **It applies its own removal.** After applying entries or a
//!   snapshot, the Raft thread looks at the replica's configuration: if
//!   this node is in none of its voter or learner sets (incoming or
//!   outgoing), the replica is removed — unless its log, past the applied
//!   index, holds a membership change: that may add the node back, and
//!   the replica may have acknowledged it already (a leader counting on
//!   entries the node then deleted would never send them again). It waits
//!   for those entries to apply.
//! * **It missed its removal** (the node was down, or cut off, when the
//!   range dropped it). Nothing in Raft tells it: the range's other
//!   members no longer talk to it. The KV layer compares each replica with
//!   the range's directory record and asks for the removal when the
//!   record — described at a later applied index than the replica's —
//!   does not list this node ([`MultiRaft::remove_replica`]).
//!
//! # How
//!
//! The replica leaves the driver (its pending reads fail with "not
//! leader", so their callers route again), then the apply side — after
//! finishing every task queued before — deletes its data spans, Raft state
//! and log in one synced batch and writes a **tombstone**: the applied
//! index the replica reached. Routing stops at once (its bounds are
//! unpublished in the same step).
//!
//! The node may be added to the range again later. It then gets a fresh
//! replica the usual way — the leader's messages create an empty one, a
//! snapshot fills it — but only from a snapshot newer than the tombstone:
//! a snapshot sent before the removal (still in flight, or resent by a
//! leader that had not yet applied it) would bring the old membership
//! back, so it is dropped.

use std::collections::HashMap;

use raft::prelude::{ConfState, Message, MessageType};
use shoal_storage::{ColumnFamily, Engine};

use crate::Event;
use crate::apply::ApplyTask;
use crate::error::{ReplicationError, Result};
use crate::multiraft::MultiRaft;
use crate::{NodeId, RangeId, StateMachine, keys};

/// Whether `node` is in any of `conf_state`'s sets.
pub fn is_member(conf_state: &ConfState, node: NodeId) -> bool {
    conf_state.voters.contains(&node)
        || conf_state.voters_outgoing.contains(&node)
        || conf_state.learners.contains(&node)
        || conf_state.learners_next.contains(&node)
}

/// The tombstones stored in `engine`: range → applied index at removal.
pub(crate) fn load_tombstones(engine: &dyn Engine) -> Result<HashMap<RangeId, u64>> {
    let (start, end) = keys::tombstone_span();
    let mut out = HashMap::new();
    for pair in engine.scan_cf(ColumnFamily::Raft, &start, Some(&end)) {
        let (key, value) = pair?;
        let range = key
            .get(1..9)
            .and_then(|raw| <[u8; 8]>::try_from(raw).ok())
            .map(u64::from_be_bytes);
        let index = <[u8; 8]>::try_from(value.as_slice())
            .ok()
            .map(u64::from_be_bytes);
        match (range, index) {
            (Some(range), Some(index)) => {
                out.insert(range, index);
            }
            _ => {
                return Err(ReplicationError::Corrupt(format!(
                    "tombstone {key:x?} is malformed"
                )));
            }
        }
    }
    Ok(out)
}

/// Whether `message` was meant for a replica removed here (at applied
/// index `tombstone`, if any) and must be dropped. `last_index` is the
/// local replica's last log index, if there is one.
///
/// * Without a replica, a range removed here is created again only by a
///   leader that knows the node as a new member: an append past the
///   tombstone (which gets rejected, so a snapshot follows), a heartbeat
///   acknowledging nothing yet, or a snapshot past the tombstone.
///   Heartbeats and votes of the old membership create nothing.
/// * A replica created again after its removal takes no snapshot at or
///   below the tombstone either (module docs).
/// * A heartbeat may not carry a commit index beyond the replica's log: a
///   leader only sends what the replica acknowledged, so such a heartbeat
///   was meant for the removed replica (whose log is gone) — and raft-rs
///   would panic on it.
pub(crate) fn stale_message(
    message: &Message,
    tombstone: Option<u64>,
    last_index: Option<u64>,
) -> bool {
    match (last_index, tombstone) {
        (Some(last), removed_at) => match message.get_msg_type() {
            MessageType::MsgHeartbeat => message.commit > last,
            // A replica created again after its removal starts from a
            // snapshot newer than the tombstone; an older one (delayed, or
            // resent) carries the membership it was removed from.
            MessageType::MsgSnapshot => {
                removed_at.is_some_and(|at| message.get_snapshot().get_metadata().index <= at)
            }
            _ => false,
        },
        (None, Some(removed_at)) => match message.get_msg_type() {
            MessageType::MsgSnapshot => message.get_snapshot().get_metadata().index <= removed_at,
            MessageType::MsgAppend => message.index <= removed_at,
            // A leader heartbeats a member with the commit index it has
            // acknowledged: zero for a new one (an idle range sends a new
            // learner nothing else), more for the removed replica.
            MessageType::MsgHeartbeat => message.commit > 0,
            _ => true,
        },
        (None, None) => false,
    }
}

impl<S: StateMachine> MultiRaft<S> {
    /// Removes the replica of `range` if its applied configuration no
    /// longer lists this node (called after each apply report).
    pub(crate) fn collect_if_removed(&mut self, range: RangeId) -> Result<()> {
        let Some(peer) = self.peers.get(&range) else {
            return Ok(());
        };
        let store = peer.raw.store();
        if !store.is_initialized() || is_member(&store.apply_state().conf_state, self.node) {
            return Ok(());
        }
        // The log past the applied index may add this node back — and the
        // replica may already have acknowledged those entries to a leader
        // counting it as a member again. Deleting it then would lose
        // entries a quorum was counted on, and leave the leader believing
        // the node holds them (it never backs up below what a follower
        // acknowledged). The replica waits until they are applied; if
        // they never are (a deposed leader's tail), the KV layer's
        // directory check removes it.
        let applied = store.apply_state().applied_index;
        let pending = peer.raw.raft.raft_log.entries(
            applied + 1,
            None,
            raft::GetEntriesContext::empty(false),
        );
        let may_readd = match pending {
            Ok(entries) => entries
                .iter()
                .any(|e| e.get_entry_type() != raft::prelude::EntryType::EntryNormal),
            // Compacted past or unavailable: nothing is known about the
            // tail, so the replica stays.
            Err(_) => peer.raw.raft.raft_log.last_index() > applied,
        };
        if may_readd {
            return Ok(());
        }
        tracing::info!(node = self.node, range, "removed from the range");
        self.remove_replica(range).map(|_| ())
    }

    /// Removes this node's replica of `range` and deletes its data (module
    /// docs). Returns whether there was one.
    pub fn remove_replica(&mut self, range: RangeId) -> Result<bool> {
        self.drop_replica(range, false)
    }

    /// Removes this node's replica of `range`, and its data unless
    /// `keep_data` (a range merged away: its left-hand neighbour owns the
    /// data now). Returns whether there was one.
    pub(crate) fn drop_replica(&mut self, range: RangeId, keep_data: bool) -> Result<bool> {
        let Some(mut peer) = self.peers.remove(&range) else {
            return Ok(false);
        };
        peer.fail_reads(&mut self.events);
        self.end_lease(range);
        // Entries queued for the replica apply first (the queue is first in,
        // first out); their reports name a replica no longer here and are
        // ignored.
        let mut outputs = Vec::new();
        self.flush_apply_queue(&mut outputs)?;
        // The tombstone is the index the apply side reached and stored.
        let applied = match self
            .applying
            .run_now(ApplyTask::Destroy { range, keep_data })?
        {
            crate::apply::ApplyOutput::Applied { applied_index, .. } => applied_index,
            crate::apply::ApplyOutput::Generated { .. } => {
                peer.raw.store().apply_state().applied_index
            }
        };
        self.tombstones.insert(range, applied);
        self.dirty.remove(&range);
        self.events.push(Event::LeaderChanged {
            range,
            leader: None,
        });
        for output in outputs {
            self.on_apply_output(output)?;
        }
        tracing::info!(node = self.node, range, applied, "deleted replica");
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: MessageType, index: u64, commit: u64) -> Message {
        let mut m = Message::default();
        m.set_msg_type(kind);
        m.index = index;
        m.commit = commit;
        if kind == MessageType::MsgSnapshot {
            m.mut_snapshot().mut_metadata().index = index;
        }
        m
    }

    #[test]
    fn only_a_new_membership_recreates_a_removed_replica() {
        use MessageType::*;
        let removed_at = Some(20);
        // The old membership: dropped.
        assert!(stale_message(
            &message(MsgHeartbeat, 0, 18),
            removed_at,
            None
        ));
        assert!(stale_message(&message(MsgAppend, 19, 18), removed_at, None));
        assert!(stale_message(
            &message(MsgSnapshot, 20, 0),
            removed_at,
            None
        ));
        assert!(stale_message(
            &message(MsgRequestVote, 25, 0),
            removed_at,
            None
        ));
        // A leader that added the node again: kept.
        assert!(!stale_message(
            &message(MsgHeartbeat, 0, 0),
            removed_at,
            None
        ));
        assert!(!stale_message(
            &message(MsgAppend, 31, 30),
            removed_at,
            None
        ));
        assert!(!stale_message(
            &message(MsgSnapshot, 31, 0),
            removed_at,
            None
        ));
        // Never removed here: anything may create it.
        assert!(!stale_message(&message(MsgRequestVote, 1, 0), None, None));
        // A replica whose log ends at 5 never gets a heartbeat committing 18.
        assert!(stale_message(&message(MsgHeartbeat, 0, 18), None, Some(5)));
        assert!(!stale_message(&message(MsgHeartbeat, 0, 5), None, Some(5)));
        assert!(!stale_message(&message(MsgAppend, 9, 18), None, Some(5)));
        // Created again (empty) by the new membership's leader: a delayed
        // snapshot of the old membership is still dropped, a new one kept.
        assert!(stale_message(
            &message(MsgSnapshot, 7, 0),
            removed_at,
            Some(0)
        ));
        assert!(!stale_message(
            &message(MsgSnapshot, 31, 0),
            removed_at,
            Some(0)
        ));
    }
}
