//! Merges on the apply side: a range takes over its right-hand neighbour.
//!
//! A merge joins two adjacent ranges, L (left) and R (right), into L. No
//! data moves: every node keeps its data in one engine, so a node holding
//! both replicas already has all the keys L will own. What must be true is
//! that **every replica of L is on a node whose replica of R is complete**
//! — R's data there is final and nothing can still change it — when L's
//! replica there starts owning R's keys. The protocol gets there in two
//! log entries, driven by whoever merges (`shoal-kv`'s `merge.rs`):
//!
//! 1. **Freeze R** ([`MergeStep::Freeze`], in R's log at index `f`), once
//!    R's replicas sit on L's nodes. From `f` on, every replica of R
//!    refuses whatever would change its data (the state machine sees
//!    [`EntryContext::frozen`]), any split, and any membership change but
//!    adding learners (each gets a snapshot of the frozen data: one more
//!    complete replica, never one fewer; the generation stays, so every
//!    replica of L computes the same merged generation). The
//!    freeze entry's timestamp floor is kept: it is above every read R's
//!    leader registered before freezing, and L must write above it once it
//!    owns R's keys. The driver then waits until every replica of R has
//!    applied `f`.
//! 2. **Merge into L** ([`MergeStep::Merge`], in L's log). The request
//!    names L's generation and membership as the driver saw them when it
//!    found each of L's replicas next to a replica of R that applied `f`,
//!    and R's first key. Every replica of L checks, from L's replicated
//!    state only, that the generation is still that one (it moves with
//!    every change of L's bounds, membership or freezing, so an equal
//!    generation means an unchanged L), that the membership is the one
//!    named, that L is not itself frozen, and that it ends where R begins.
//!    Then L's bounds grow to R's end, its generation passes both, and the
//!    state machine folds in R's own state ([`MergeOutcome::Merged`]). The
//!    node's replica of R is deleted — its Raft state only, never the data
//!    — once the Raft thread hears of the merge.
//!
//! **R is never unfrozen.** Only L's log knows whether the merge happened:
//! a merge whose answer was lost may have applied on some of L's replicas
//! while others — and R's replicas next to them — lag behind. Thawing R
//! then would let those lagging replicas of R take writes that L, where
//! the merge applied, never sees. So a refused merge (L changed meanwhile)
//! is proposed again, with L's new generation, until it applies — and a
//! merge that did apply refuses every later copy, L no longer ending where
//! R began. While L changes, R waits frozen; where a replica of L sits on
//! a node without one of R (L was repaired or moved meanwhile), the driver
//! adds R a learner there.
//!
//! **Why every L replica finds its R replica complete.** The driver saw
//! every listed replica of L next to a replica of R that had applied `f`
//! before it proposed the merge; L's membership is checked to be exactly
//! that list; a frozen R's replicas are never removed, so they stay until
//! the merge deletes them (a node outside L's replicas may delete its own
//! replica of R once it sees the merge in the directory — no replica of L
//! is there to need it). Writes to the engine are ordered, and
//! the node's Raft log — where the merge entry must be appended before it
//! can apply — is synced after R's apply at `f` was written, so even a
//! crash cannot leave a node with L's merge applied and R's freeze not. A
//! replica that finds otherwise has a broken invariant; it stops applying
//! (an error, like a failed engine write) rather than take over keys it
//! does not hold.
//!
//! A replica of L created later from a snapshot taken after the merge gets
//! the merged span and data whole. A node left with a replica of R that
//! was not among L's (it was removed from R while down) deletes it when the
//! directory shows a newer range covering its keys (`shoal-kv`'s
//! `directory.rs`).

use super::Applier;
use crate::apply_state::{ApplyState, Freeze};
use crate::error::{ReplicationError, Result};
use crate::{MergeOutcome, MergeRequest, MergeStep, RangeId, StateMachine};

impl<S: StateMachine> Applier<S> {
    /// Carries out `step`, the command of entry `index` (with timestamp
    /// floor `floor`) of `range`, on `state`; decides from replicated state
    /// only.
    pub(super) fn merge_step(
        &mut self,
        range: RangeId,
        index: u64,
        floor: u64,
        state: &mut ApplyState,
        step: &MergeStep,
    ) -> Result<MergeOutcome> {
        let refused = |why: &str| Ok(MergeOutcome::Refused(why.to_string()));
        match step {
            MergeStep::Freeze => {
                if let Some(frozen) = state.frozen {
                    return Ok(MergeOutcome::Frozen {
                        index: frozen.index,
                    });
                }
                if !state.conf_state.voters_outgoing.is_empty() {
                    return refused("a membership change is in progress");
                }
                state.frozen = Some(Freeze { index, floor });
                state.generation += 1;
                tracing::info!(range, index, "frozen for a merge");
                Ok(MergeOutcome::Frozen { index })
            }
            MergeStep::Merge(request) => self.merge(range, state, request),
        }
    }

    /// Step 3 of the module documentation, on `state` (the left-hand
    /// range's).
    fn merge(
        &mut self,
        range: RangeId,
        state: &mut ApplyState,
        request: &MergeRequest,
    ) -> Result<MergeOutcome> {
        let refused = |why: String| Ok(MergeOutcome::Refused(why));
        if state.generation != request.left_generation {
            return refused(format!(
                "range {range} changed (generation {} is not {})",
                state.generation, request.left_generation
            ));
        }
        if state.frozen.is_some() {
            return refused(format!("range {range} is frozen for another merge"));
        }
        let sorted = |ids: &[u64]| {
            let mut ids = ids.to_vec();
            ids.sort_unstable();
            ids
        };
        if !state.conf_state.voters_outgoing.is_empty()
            || sorted(&state.conf_state.voters) != sorted(&request.voters)
            || sorted(&state.conf_state.learners) != sorted(&request.learners)
        {
            return refused(format!("range {range} has other replicas"));
        }
        let Some(end) = state.bounds.end.clone() else {
            return refused(format!("range {range} has no right-hand neighbour"));
        };
        if end != request.right_start {
            // Merged already (a copy of this request applied), or split.
            return refused(format!(
                "range {range} does not end where range {} began",
                request.right
            ));
        }
        if request.right == range {
            return refused("a range cannot merge with itself".to_string());
        }
        let right = self.state(request.right)?;
        let complete = right.frozen.map(|f| f.index) == Some(request.freeze_index)
            && right.applied_index >= request.freeze_index
            && right.bounds.start == end;
        let Some(freeze) = right.frozen.filter(|_| complete) else {
            // See "Why every L replica finds its R replica complete".
            return Err(ReplicationError::Corrupt(format!(
                "range {range} cannot take over range {}: the local replica is not frozen at {} \
                 next to it (applied {}, bounds from {:x?})",
                request.right, request.freeze_index, right.applied_index, right.bounds.start
            )));
        };
        state.bounds.end = right.bounds.end.clone();
        state.generation = state.generation.max(right.generation) + 1;
        // Nothing of the right-hand range may apply any more: its entries
        // after the freeze changed nothing, and its replica is deleted when
        // the Raft thread hears of the merge. Its applied state stays until
        // then (the tombstone records it).
        tracing::info!(
            range,
            right = request.right,
            generation = state.generation,
            "merged the right-hand range"
        );
        Ok(MergeOutcome::Merged {
            right: request.right,
            right_floor: freeze.floor,
        })
    }
}
