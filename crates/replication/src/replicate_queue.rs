//! Up-replication: how a range's leader brings its replica count to the
//! target, one safe step at a time.
//!
//! [`plan`] is a pure function of what the leader knows — the membership,
//! each replica's matched index, the commit index, the nodes that could
//! hold a replica — so its policy is unit-tested without a cluster. The
//! node calls it periodically on ranges it leads and proposes the change it
//! returns.
//!
//! Policy, in order:
//!
//! 1. A learner that has caught up (matched the commit index) is promoted
//!    to voter — while voters are below the target.
//! 2. Otherwise, if the range has fewer replicas than the target, one
//!    candidate node without a replica is added as a **learner**: it
//!    receives a snapshot and the log without counting towards the quorum,
//!    so adding it never makes the range unavailable, however long the
//!    snapshot takes.
//! 3. Otherwise nothing. One change at a time: each change is a simple
//!    (single-step) membership change, safe by Raft's one-at-a-time rule.

use raft::prelude::{ConfChangeSingle, ConfChangeType, ConfChangeV2, ConfState};

use crate::NodeId;

/// What the leader knows about a range, for planning.
#[derive(Debug, Clone)]
pub struct RangeView {
    /// Current membership.
    pub conf_state: ConfState,
    /// Matched log index per replica (from the leader's progress).
    pub matched: Vec<(NodeId, u64)>,
    /// The leader's commit index.
    pub commit: u64,
}

/// The next membership change for a range, if any. See the module docs.
pub fn plan(view: &RangeView, candidates: &[NodeId], target: usize) -> Option<ConfChangeV2> {
    let voters = &view.conf_state.voters;
    let learners = &view.conf_state.learners;
    if voters.len() < target {
        let caught_up = learners.iter().copied().find(|learner| {
            view.matched
                .iter()
                .any(|&(id, matched)| id == *learner && matched >= view.commit)
        });
        if let Some(learner) = caught_up {
            return Some(single(ConfChangeType::AddNode, learner));
        }
    }
    if voters.len() + learners.len() < target && learners.is_empty() {
        let newcomer = candidates
            .iter()
            .copied()
            .find(|n| !voters.contains(n) && !learners.contains(n));
        if let Some(node) = newcomer {
            return Some(single(ConfChangeType::AddLearnerNode, node));
        }
    }
    None
}

/// A change of one node.
pub fn single(kind: ConfChangeType, node: NodeId) -> ConfChangeV2 {
    let mut one = ConfChangeSingle::default();
    one.set_change_type(kind);
    one.node_id = node;
    let mut change = ConfChangeV2::default();
    change.mut_changes().push(one);
    change
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(voters: &[u64], learners: &[u64], matched: &[(u64, u64)], commit: u64) -> RangeView {
        RangeView {
            conf_state: ConfState::from((voters.to_vec(), learners.to_vec())),
            matched: matched.to_vec(),
            commit,
        }
    }

    fn describe(change: Option<ConfChangeV2>) -> String {
        match change {
            None => "none".to_string(),
            Some(c) => c
                .get_changes()
                .iter()
                .map(|s| format!("{:?} {}", s.get_change_type(), s.node_id))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    #[test]
    fn grows_through_learners_to_the_target() {
        // Alone: add a learner.
        let v = view(&[1], &[], &[(1, 10)], 10);
        assert_eq!(describe(plan(&v, &[1, 2, 3], 3)), "AddLearnerNode 2");
        // Learner still behind: wait (no second learner).
        let v = view(&[1], &[2], &[(1, 10), (2, 4)], 10);
        assert_eq!(describe(plan(&v, &[1, 2, 3], 3)), "none");
        // Caught up: promote.
        let v = view(&[1], &[2], &[(1, 10), (2, 10)], 10);
        assert_eq!(describe(plan(&v, &[1, 2, 3], 3)), "AddNode 2");
        // Two voters: next learner.
        let v = view(&[1, 2], &[], &[(1, 12), (2, 12)], 12);
        assert_eq!(describe(plan(&v, &[1, 2, 3], 3)), "AddLearnerNode 3");
        // At the target: nothing, even with spare nodes.
        let v = view(&[1, 2, 3], &[], &[], 12);
        assert_eq!(describe(plan(&v, &[1, 2, 3, 4], 3)), "none");
        // No candidate: nothing.
        let v = view(&[1], &[], &[], 1);
        assert_eq!(describe(plan(&v, &[1], 3)), "none");
    }
}
