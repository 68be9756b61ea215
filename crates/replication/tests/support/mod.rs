//! Helpers shared by the simulated-cluster tests.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeSet;

use shoal_replication::replicate_queue::single;
use shoal_replication::sim::{Registers, SimCluster};
use shoal_replication::{ConfChangeType, NodeId, RangeId};

/// Takes the next step of moving `range` to the voters `target`, decided
/// from its leader's view; `true` once the range has exactly them.
pub fn step_towards(
    c: &mut SimCluster<Registers>,
    range: RangeId,
    target: &BTreeSet<NodeId>,
) -> bool {
    let Some(leader) = c.leader(range) else {
        return false;
    };
    let Some(view) = c.driver(leader).and_then(|d| d.range_view(range)) else {
        return false;
    };
    let cs = &view.conf_state;
    if !cs.voters_outgoing.is_empty() || !cs.learners_next.is_empty() {
        return false;
    }
    let voters: BTreeSet<NodeId> = cs.voters.iter().copied().collect();
    if voters == *target && cs.learners.is_empty() {
        return true;
    }
    let change = if let Some(&add) = target
        .iter()
        .find(|n| !voters.contains(n) && !cs.learners.contains(n))
    {
        Some(single(ConfChangeType::AddLearnerNode, add))
    } else if let Some(&learner) = cs.learners.iter().find(|l| target.contains(l)) {
        let caught_up = view
            .matched
            .iter()
            .any(|&(n, m)| n == learner && m >= view.commit);
        let leaving = voters.iter().copied().find(|v| !target.contains(v));
        match leaving {
            _ if !caught_up => None,
            Some(gone) if gone == leader => {
                // Hand over first: a leader does not remove itself.
                let heir = voters.iter().copied().find(|&v| v != leader).unwrap();
                let _ = c.driver_mut(leader).unwrap().transfer_leader(range, heir);
                None
            }
            Some(gone) => {
                let mut change = single(ConfChangeType::AddNode, learner);
                change
                    .mut_changes()
                    .extend(single(ConfChangeType::RemoveNode, gone).take_changes());
                Some(change)
            }
            None => Some(single(ConfChangeType::AddNode, learner)),
        }
    } else {
        None
    };
    if let Some(change) = change {
        let _ = c.change_membership(leader, range, change);
    }
    false
}

/// Splits the range holding `at` there, the keys from `at` on going to
/// `new_range` (waiting for a split already under way first); whether it
/// applied within a few thousand rounds.
pub fn split_range(c: &mut SimCluster<Registers>, at: &str, new_range: RangeId) -> bool {
    let split = |c: &SimCluster<Registers>| c.route(at.as_bytes()) == Some(new_range);
    if c.run_until(4_000, split).unwrap_or(false) {
        return true;
    }
    let Some(range) = c.route(at.as_bytes()) else {
        return false;
    };
    let Some(leader) = c.leader(range) else {
        return false;
    };
    c.propose(
        leader,
        range,
        format!("split:{at}:{new_range}").into_bytes(),
    )
    .unwrap();
    c.run_until(4_000, split).unwrap_or(false)
}
