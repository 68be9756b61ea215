//! Splits on the apply side: a split entry shrinks the range and creates
//! the right-hand range's Raft state in the same batch (see the parent
//! module's documentation).

use protobuf::Message as _;
use shoal_storage::{ColumnFamily, WriteBatch};

use super::{Applier, SplitApplied};
use crate::apply_state::{ApplyState, RangeBounds};
use crate::error::{ReplicationError, Result};
use crate::keys;
use crate::peer_storage::{INITIAL_INDEX, INITIAL_TERM, PeerStorage};
use crate::{RangeId, SplitOutcome, SplitRequest, StateMachine};

impl<S: StateMachine> Applier<S> {
    /// Decides a split of `range` (from replicated state only, so every
    /// replica decides alike) and, if it is accepted, shrinks `state` and
    /// adds the right-hand range's initial Raft state to `batch` — unless
    /// this node already has an initialized replica of it.
    pub(super) fn split(
        &mut self,
        range: RangeId,
        state: &mut ApplyState,
        split: &SplitRequest,
        batch: &mut WriteBatch,
    ) -> Result<SplitOutcome> {
        let refused = |why: &str| Ok(SplitOutcome::Refused(why.to_string()));
        if state.frozen.is_some() {
            return refused("the range is frozen for a merge");
        }
        if !state.conf_state.voters_outgoing.is_empty() {
            return refused("a membership change is in progress");
        }
        if !state.bounds.splits_at(&split.at) {
            return refused("the split key is not inside the range");
        }
        if split.new_range == range || split.new_range == 0 {
            return refused("bad range id for the new range");
        }
        let child_bounds = RangeBounds {
            start: split.at.clone(),
            end: state.bounds.end.take(),
        };
        state.bounds.end = Some(split.at.clone());
        state.generation += 1;
        let existing = self.state(split.new_range)?;
        if !existing.conf_state.voters.is_empty() {
            tracing::info!(
                range,
                child = split.new_range,
                "split: keeping the newer replica of the new range"
            );
            return Ok(SplitOutcome::Done {
                create_child: false,
            });
        }
        let child = ApplyState {
            applied_index: INITIAL_INDEX,
            applied_term: INITIAL_TERM,
            conf_state: state.conf_state.clone(),
            bounds: child_bounds,
            generation: state.generation,
            frozen: None,
        };
        let voted = match self
            .engine
            .get_cf(ColumnFamily::Raft, &keys::hard_state(split.new_range))?
        {
            Some(bytes) => Some(
                raft::prelude::HardState::parse_from_bytes(&bytes)
                    .map_err(|e| ReplicationError::Corrupt(format!("hard state: {e}")))?,
            ),
            None => None,
        };
        PeerStorage::write_initial(split.new_range, &child, voted, batch)?;
        self.states.insert(split.new_range, child);
        Ok(SplitOutcome::Done { create_child: true })
    }

    /// After a split's batch is written: publishes both ranges' bounds and
    /// the new range's applied index.
    pub(super) fn publish_split(
        &mut self,
        range: RangeId,
        state: &ApplyState,
        split: &SplitApplied,
    ) {
        let mut bounds = self.bounds.write();
        bounds.insert(range, (state.bounds.clone(), state.generation));
        if split.created
            && let Some(child) = self.states.get(&split.child)
        {
            bounds.insert(split.child, (child.bounds.clone(), child.generation));
            self.published
                .write()
                .insert(split.child, child.applied_index);
        }
    }
}
