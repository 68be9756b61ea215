//! Up-replication and repair: how a range's leader brings its live replica
//! count to the target, one safe step at a time.
//!
//! [`plan`] is a pure function of what the leader knows — the membership,
//! each replica's matched index, the commit index, the live nodes that
//! could hold a replica, the nodes dead long enough to give up on — so its
//! policy is unit-tested without a cluster. The node calls it periodically
//! on ranges it leads and proposes the change it returns.
//!
//! Policy, in order:
//!
//! 1. Nothing while the range is in a joint configuration (raft-rs leaves
//!    it on its own).
//! 2. A learner that has caught up (matched the commit index) becomes a
//!    voter: in place of a dead voter if there is one — one joint change
//!    that adds it and removes the dead one, so the voter count never
//!    drops — or simply promoted while voters are below the target.
//! 3. A learner on a dead node is removed (it would block rule 4).
//! 4. If the range has fewer live replicas than the target and no learner
//!    in flight, one live node without a replica is added as a **learner**:
//!    it receives a snapshot and the log without counting towards the
//!    quorum, so adding it never makes the range unavailable, however long
//!    the snapshot takes.
//! 5. A dead voter that no live node can replace (each holds a replica
//!    already) is removed while more than three voters remain: a range
//!    wanting five replicas on a four-node cluster that lost one keeps the
//!    three live ones, instead of counting a dead one in its quorum.
//! 6. Otherwise nothing. One change at a time.
//!
//! [`plan_everywhere`] adds one more rule for a range every node should
//! hold (the first range): once the voters are complete, a learner on each
//! other live node.
//!
//! A node that merely stopped heartbeating is neither a candidate nor dead:
//! it may come back, and moving its replicas costs a snapshot each. It is
//! only replaced once dead for `server.time_until_store_dead`.

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

/// The next membership change for a range, if any. `candidates` are the
/// live nodes, `dead` the nodes given up on. See the module docs.
pub fn plan(
    view: &RangeView,
    candidates: &[NodeId],
    dead: &[NodeId],
    target: usize,
) -> Option<ConfChangeV2> {
    let cs = &view.conf_state;
    if !cs.voters_outgoing.is_empty() || !cs.learners_next.is_empty() {
        return None;
    }
    let (voters, learners) = (&cs.voters, &cs.learners);
    let caught_up = learners.iter().copied().find(|learner| {
        !dead.contains(learner)
            && view
                .matched
                .iter()
                .any(|&(id, matched)| id == *learner && matched >= view.commit)
    });
    if let Some(learner) = caught_up {
        if let Some(&gone) = voters.iter().find(|v| dead.contains(v)) {
            let mut change = single(ConfChangeType::AddNode, learner);
            change
                .mut_changes()
                .extend(single(ConfChangeType::RemoveNode, gone).take_changes());
            return Some(change);
        }
        if voters.len() < target {
            return Some(single(ConfChangeType::AddNode, learner));
        }
    }
    if let Some(&gone) = learners.iter().find(|l| dead.contains(l)) {
        return Some(single(ConfChangeType::RemoveNode, gone));
    }
    let live_voters = voters.iter().filter(|v| !dead.contains(v)).count();
    if live_voters + learners.len() < target && learners.is_empty() {
        let newcomer = candidates
            .iter()
            .copied()
            .find(|n| !voters.contains(n) && !learners.contains(n) && !dead.contains(n));
        if let Some(node) = newcomer {
            return Some(single(ConfChangeType::AddLearnerNode, node));
        }
    }
    let replaceable = candidates
        .iter()
        .any(|n| !voters.contains(n) && !learners.contains(n) && !dead.contains(n));
    if !replaceable
        && learners.is_empty()
        && voters.len() > MIN_VOTERS
        && let Some(&gone) = voters.iter().find(|v| dead.contains(v))
    {
        return Some(single(ConfChangeType::RemoveNode, gone));
    }
    None
}

/// Voters a range never drops below to shed a dead one it cannot replace.
const MIN_VOTERS: usize = 3;

/// [`plan`] for a range every live node should hold (the first range: the
/// cluster state and range directory each node reads locally). Once
/// [`plan`] has nothing to do — `target` voters, repairs done — a live node
/// holding no replica gets a **learner**, one at a time (each catches up
/// before the next is added). Learners never count towards the quorum,
/// and a caught-up one is what [`plan`] promotes in place of a dead voter.
pub fn plan_everywhere(
    view: &RangeView,
    candidates: &[NodeId],
    dead: &[NodeId],
    target: usize,
) -> Option<ConfChangeV2> {
    if let Some(change) = plan(view, candidates, dead, target) {
        return Some(change);
    }
    let cs = &view.conf_state;
    if !cs.voters_outgoing.is_empty() || !cs.learners_next.is_empty() {
        return None;
    }
    let catching_up = cs.learners.iter().any(|learner| {
        !view
            .matched
            .iter()
            .any(|&(id, matched)| id == *learner && matched >= view.commit)
    });
    if catching_up {
        return None;
    }
    candidates
        .iter()
        .copied()
        .find(|n| !cs.voters.contains(n) && !cs.learners.contains(n) && !dead.contains(n))
        .map(|node| single(ConfChangeType::AddLearnerNode, node))
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
        assert_eq!(describe(plan(&v, &[1, 2, 3], &[], 3)), "AddLearnerNode 2");
        // Learner still behind: wait (no second learner).
        let v = view(&[1], &[2], &[(1, 10), (2, 4)], 10);
        assert_eq!(describe(plan(&v, &[1, 2, 3], &[], 3)), "none");
        // Caught up: promote.
        let v = view(&[1], &[2], &[(1, 10), (2, 10)], 10);
        assert_eq!(describe(plan(&v, &[1, 2, 3], &[], 3)), "AddNode 2");
        // Two voters: next learner.
        let v = view(&[1, 2], &[], &[(1, 12), (2, 12)], 12);
        assert_eq!(describe(plan(&v, &[1, 2, 3], &[], 3)), "AddLearnerNode 3");
        // At the target: nothing, even with spare nodes.
        let v = view(&[1, 2, 3], &[], &[], 12);
        assert_eq!(describe(plan(&v, &[1, 2, 3, 4], &[], 3)), "none");
        // No candidate: nothing.
        let v = view(&[1], &[], &[], 1);
        assert_eq!(describe(plan(&v, &[1], &[], 3)), "none");
    }

    #[test]
    fn a_range_held_everywhere_gets_learners_past_its_voters() {
        // Five voters on seven nodes: node 6 joins as a learner…
        let v = view(&[1, 2, 3, 4, 5], &[], &[], 9);
        let all = [1, 2, 3, 4, 5, 6, 7];
        assert_eq!(
            describe(plan_everywhere(&v, &all, &[], 5)),
            "AddLearnerNode 6"
        );
        // …node 7 only once node 6 has caught up.
        let v = view(&[1, 2, 3, 4, 5], &[6], &[(6, 3)], 9);
        assert_eq!(describe(plan_everywhere(&v, &all, &[], 5)), "none");
        let v = view(&[1, 2, 3, 4, 5], &[6], &[(6, 9)], 9);
        assert_eq!(
            describe(plan_everywhere(&v, &all, &[], 5)),
            "AddLearnerNode 7"
        );
        // Every node holds it: nothing.
        let v = view(&[1, 2, 3, 4, 5], &[6, 7], &[(6, 9), (7, 9)], 9);
        assert_eq!(describe(plan_everywhere(&v, &all, &[], 5)), "none");
        // A voter dies: a caught-up learner takes its place.
        assert_eq!(
            describe(plan_everywhere(&v, &[1, 2, 3, 4, 6, 7], &[5], 5)),
            "AddNode 6, RemoveNode 5"
        );
        // Short of voters: the usual growth first.
        let v = view(&[1, 2, 3], &[], &[], 9);
        assert_eq!(
            describe(plan_everywhere(&v, &all, &[], 5)),
            "AddLearnerNode 4"
        );
    }

    #[test]
    fn replaces_a_dead_voter_through_a_learner() {
        // Node 3 is dead; node 4 is live and holds nothing: add it as a
        // learner (node 3 is not a candidate).
        let v = view(&[1, 2, 3], &[], &[(1, 20), (2, 20), (3, 5)], 20);
        assert_eq!(describe(plan(&v, &[1, 2, 4], &[3], 3)), "AddLearnerNode 4");
        // Learner behind: wait.
        let v = view(&[1, 2, 3], &[4], &[(1, 20), (2, 20), (4, 9)], 20);
        assert_eq!(describe(plan(&v, &[1, 2, 4], &[3], 3)), "none");
        // Caught up: swap it in for the dead voter in one joint change.
        let v = view(&[1, 2, 3], &[4], &[(1, 20), (2, 20), (4, 20)], 20);
        assert_eq!(
            describe(plan(&v, &[1, 2, 4], &[3], 3)),
            "AddNode 4, RemoveNode 3"
        );
        // In the joint configuration: wait for raft-rs to leave it.
        let mut v = view(&[1, 2, 4], &[], &[], 20);
        v.conf_state.voters_outgoing = vec![1, 2, 3];
        assert_eq!(describe(plan(&v, &[1, 2, 4], &[3], 3)), "none");
        // No live spare: keep the dead voter (removing it would leave two
        // voters, which tolerate no failure at all).
        let v = view(&[1, 2, 3], &[], &[(1, 20), (2, 20)], 20);
        assert_eq!(describe(plan(&v, &[1, 2], &[3], 3)), "none");
        // Five voters wanted, four nodes, one dead: the three live ones
        // are all there is; the dead voter goes.
        let v = view(&[1, 2, 3, 4], &[], &[(1, 20), (2, 20), (3, 20)], 20);
        assert_eq!(describe(plan(&v, &[1, 2, 3], &[4], 5)), "RemoveNode 4");
        // A dead learner is removed so another can be added.
        let v = view(&[1, 2], &[3], &[(1, 20), (2, 20)], 20);
        assert_eq!(describe(plan(&v, &[1, 2, 4], &[3], 3)), "RemoveNode 3");
        // A node that is merely not live (not a candidate, not dead) is
        // left alone.
        let v = view(&[1, 2, 3], &[], &[(1, 20), (2, 20)], 20);
        assert_eq!(describe(plan(&v, &[1, 2, 4], &[], 3)), "none");
    }
}
