//! Rebalancing: which replicas and leaderships to move so every node
//! carries its share.
//!
//! [`plan`] is a pure function of the cluster's layout — each range's
//! voters, learners and leader, and the nodes that may hold replicas — so
//! its policy is tested without a cluster. One node runs it (the leader of
//! the first range: exactly one at a time) and asks each range's leader to
//! carry out the moves, a step at a time (`shoal-kv`'s `rebalance.rs`).
//!
//! # Policy
//!
//! 1. **Moves in flight first.** A range with a learner and all its voters
//!    is in the middle of a move: it is finished (the learner replaces the
//!    voter on the most loaded node) before anything else moves. A range
//!    short of voters is the replicate queue's, not the rebalancer's: left
//!    alone.
//! 2. **Replica counts.** While the most loaded node holds two replicas
//!    more than the least loaded, one replica moves from the first to the
//!    second — from a range the second does not hold yet. Repeated, this
//!    leaves counts differing by at most one (within ±15% of the mean once
//!    a node holds seven replicas or more).
//! 3. **Leader counts.** Likewise for leaderships, moved by a leadership
//!    transfer to another voter of the range, which costs no data. When no
//!    range led by the loaded node has a voter on the unloaded one, a
//!    leadership is passed along through a third node (two transfers).
//!
//! At most `max_moves` moves a round: each one costs a snapshot, and the
//! next round sees their effect before planning more.

use std::collections::{BTreeMap, BTreeSet};

/// One range's replicas, as the planner sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeReplicas {
    /// The range.
    pub range: u64,
    /// Voting replicas' nodes.
    pub voters: Vec<u64>,
    /// Learners' nodes.
    pub learners: Vec<u64>,
    /// Its leader, if known.
    pub leader: Option<u64>,
    /// How many voters the range should have.
    pub target: usize,
}

/// A move the planner asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// Replace `range`'s replica on `from` with one on `to`.
    Replica {
        /// The range.
        range: u64,
        /// The node giving up its replica.
        from: u64,
        /// The node receiving one.
        to: u64,
    },
    /// Hand `range`'s leadership from `from` to `to` (a voter).
    Lease {
        /// The range.
        range: u64,
        /// The current leader.
        from: u64,
        /// The new leader.
        to: u64,
    },
}

impl Move {
    /// The range moved.
    pub fn range(&self) -> u64 {
        match self {
            Move::Replica { range, .. } | Move::Lease { range, .. } => *range,
        }
    }
}

/// Counts per node, every eligible node present.
fn counts(nodes: &[u64], of: impl Iterator<Item = u64>) -> BTreeMap<u64, usize> {
    let mut counts: BTreeMap<u64, usize> = nodes.iter().map(|&n| (n, 0)).collect();
    for node in of {
        if let Some(c) = counts.get_mut(&node) {
            *c += 1;
        }
    }
    counts
}

/// The first move from a node holding more to one holding at least two
/// fewer — the most loaded giver and least loaded taker first — that
/// `feasible` finds moves for.
fn pick<T>(
    counts: &BTreeMap<u64, usize>,
    mut feasible: impl FnMut(u64, u64) -> Option<T>,
) -> Option<T> {
    let mut by_load: Vec<(u64, usize)> = counts.iter().map(|(&n, &c)| (n, c)).collect();
    by_load.sort_by_key(|&(n, c)| (c, n));
    for &(hi, hi_count) in by_load.iter().rev() {
        for &(lo, lo_count) in &by_load {
            if hi_count <= lo_count + 1 {
                break;
            }
            if let Some(found) = feasible(hi, lo) {
                return Some(found);
            }
        }
    }
    None
}

/// The moves for this round. `nodes` are the nodes that may hold replicas
/// (live, not being drained). See the module documentation.
pub fn plan(ranges: &[RangeReplicas], nodes: &[u64], max_moves: usize) -> Vec<Move> {
    let mut moves = Vec::new();
    let mut busy: BTreeSet<u64> = BTreeSet::new();
    let mut replicas = counts(
        nodes,
        ranges
            .iter()
            .flat_map(|r| r.voters.iter().chain(&r.learners).copied()),
    );
    // 1. Finish moves in flight.
    for r in ranges {
        if r.voters.len() < r.target {
            // The replicate queue's.
            busy.insert(r.range);
            continue;
        }
        if r.learners.is_empty() {
            continue;
        }
        busy.insert(r.range);
        let Some(&to) = r.learners.iter().find(|l| replicas.contains_key(l)) else {
            continue;
        };
        let from = r
            .voters
            .iter()
            .copied()
            .max_by_key(|v| (replicas.get(v).copied().unwrap_or(usize::MAX), *v));
        if let Some(from) = from
            && moves.len() < max_moves
        {
            moves.push(Move::Replica {
                range: r.range,
                from,
                to,
            });
            if let Some(c) = replicas.get_mut(&from) {
                *c = c.saturating_sub(1);
            }
        }
    }
    // 2. Replica counts.
    while moves.len() < max_moves {
        let found = pick(&replicas, |hi, lo| {
            // Prefer a range `hi` does not lead: no leadership has to move.
            ranges
                .iter()
                .filter(|r| !busy.contains(&r.range))
                .filter(|r| r.voters.contains(&hi) && !r.voters.contains(&lo))
                .min_by_key(|r| (r.leader == Some(hi), r.range))
                .map(|r| (r.range, hi, lo))
        });
        let Some((range, from, to)) = found else {
            break;
        };
        busy.insert(range);
        moves.push(Move::Replica { range, from, to });
        *replicas.entry(from).or_default() -= 1;
        *replicas.entry(to).or_default() += 1;
    }
    // 3. Leader counts.
    let mut leaders = counts(nodes, ranges.iter().filter_map(|r| r.leader));
    let lease = |busy: &BTreeSet<u64>, from: u64, to: u64, not: Option<u64>| {
        ranges
            .iter()
            .filter(|r| !busy.contains(&r.range) && Some(r.range) != not)
            .find(|r| r.leader == Some(from) && r.voters.contains(&to))
            .map(|r| r.range)
    };
    while moves.len() < max_moves {
        let mut found = pick(&leaders, |hi, lo| {
            lease(&busy, hi, lo, None).map(|range| vec![(range, hi, lo)])
        });
        if found.is_none() && moves.len() + 2 <= max_moves {
            // No range led by a loaded node has a voter on an unloaded
            // one: pass a leadership along through a third node.
            found = pick(&leaders, |hi, lo| {
                leaders
                    .keys()
                    .filter(|&&mid| mid != hi && mid != lo)
                    .find_map(|&mid| {
                        let first = lease(&busy, hi, mid, None)?;
                        let second = lease(&busy, mid, lo, Some(first))?;
                        Some(vec![(first, hi, mid), (second, mid, lo)])
                    })
            });
        }
        let Some(found) = found else {
            break;
        };
        for (range, from, to) in found {
            busy.insert(range);
            moves.push(Move::Lease { range, from, to });
            *leaders.entry(from).or_default() -= 1;
            *leaders.entry(to).or_default() += 1;
        }
    }
    moves
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(range: u64, voters: &[u64], learners: &[u64], leader: u64) -> RangeReplicas {
        RangeReplicas {
            range,
            voters: voters.to_vec(),
            learners: learners.to_vec(),
            leader: Some(leader),
            target: 3,
        }
    }

    /// Applies `moves` to `ranges` as if each completed.
    fn carry_out(ranges: &mut [RangeReplicas], moves: &[Move]) {
        for m in moves {
            let r = ranges
                .iter_mut()
                .find(|r| r.range == m.range())
                .expect("planned for a known range");
            match *m {
                Move::Replica { from, to, .. } => {
                    r.learners.retain(|&l| l != to);
                    r.voters.retain(|&v| v != from);
                    r.voters.push(to);
                    if r.leader == Some(from) {
                        r.leader = r.voters.first().copied();
                    }
                }
                Move::Lease { to, .. } => r.leader = Some(to),
            }
        }
    }

    #[test]
    fn new_nodes_receive_replicas_and_leases_until_balanced() {
        // Twenty ranges on nodes 1-3, all led by node 1; nodes 4 and 5 new.
        let mut ranges: Vec<RangeReplicas> =
            (1..=20).map(|id| range(id, &[1, 2, 3], &[], 1)).collect();
        let nodes = [1, 2, 3, 4, 5];
        for _ in 0..100 {
            let moves = plan(&ranges, &nodes, 4);
            if moves.is_empty() {
                break;
            }
            carry_out(&mut ranges, &moves);
        }
        let replicas = counts(&nodes, ranges.iter().flat_map(|r| r.voters.iter().copied()));
        let leaders = counts(&nodes, ranges.iter().filter_map(|r| r.leader));
        let spread = |c: &BTreeMap<u64, usize>| {
            c.values().max().copied().unwrap_or(0) - c.values().min().copied().unwrap_or(0)
        };
        assert!(spread(&replicas) <= 1, "replicas {replicas:?}");
        assert!(spread(&leaders) <= 1, "leaders {leaders:?}");
        for r in &ranges {
            let mut v = r.voters.clone();
            v.sort_unstable();
            v.dedup();
            assert_eq!(v.len(), 3, "range {} has {:?}", r.range, r.voters);
        }
    }

    #[test]
    fn a_move_in_flight_is_finished_first() {
        let ranges = vec![range(1, &[1, 2, 3], &[4], 1), range(2, &[1, 2, 3], &[], 2)];
        let moves = plan(&ranges, &[1, 2, 3, 4], 1);
        assert_eq!(moves.len(), 1);
        assert!(matches!(
            moves[0],
            Move::Replica {
                range: 1,
                to: 4,
                ..
            }
        ));
    }

    #[test]
    fn ranges_short_of_voters_and_balanced_clusters_are_left_alone() {
        let ranges = vec![
            range(1, &[1, 2], &[], 1),
            range(2, &[1, 2, 3], &[], 2),
            range(3, &[1, 2, 3], &[], 3),
        ];
        assert!(plan(&ranges, &[1, 2, 3], 4).is_empty());
    }
}
