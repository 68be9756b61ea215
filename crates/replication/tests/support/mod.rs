//! Helpers shared by the simulated-cluster tests.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeSet;

use shoal_replication::replicate_queue::single;
use shoal_replication::sim::{Registers, SimCluster};
use shoal_replication::{ConfChangeType, NodeId, RangeId};

/// The seeds a randomized test runs: `default`, or `SHOAL_SIM_SEEDS`
/// seeds from its start (`make chaos` runs many), or the one seed
/// `SHOAL_SIM_SEED` (to replay a failure, which names its seed).
pub fn seeds(default: std::ops::Range<u64>) -> std::ops::Range<u64> {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    if let Some(seed) = env("SHOAL_SIM_SEED") {
        return seed..seed + 1;
    }
    match env("SHOAL_SIM_SEEDS") {
        Some(count) => default.start..default.start + count,
        None => default,
    }
}

/// [`seeds`], then `regressions` — seeds that once found a bug, kept so
/// every run replays them — unless one seed was asked for.
pub fn seeds_and(default: std::ops::Range<u64>, regressions: &[u64]) -> Vec<u64> {
    let mut all: Vec<u64> = seeds(default).collect();
    if std::env::var("SHOAL_SIM_SEED").is_err() {
        all.extend(
            regressions
                .iter()
                .filter(|s| !all.contains(s))
                .collect::<Vec<_>>(),
        );
    }
    all
}

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

/// Register `i`'s key.
pub fn key(i: usize) -> String {
    format!("k{i:03}")
}

/// A network losing 5% of messages and delaying the rest by up to four
/// rounds.
pub fn lossy(seed: u64) -> shoal_replication::sim::NetConfig {
    shoal_replication::sim::NetConfig {
        seed,
        drop_rate: 0.05,
        max_delay: 4,
        rounds_per_tick: 4,
    }
}

/// Four nodes over a lossy network; range 1 on nodes 1–3, split at k030
/// (range 2) and k060 (range 3).
pub fn three_ranges(seed: u64) -> SimCluster<Registers> {
    let mut c = SimCluster::new(
        &[1, 2, 3],
        &[4],
        shoal_replication::RaftConfig::default(),
        lossy(seed),
        |_| Registers,
    )
    .unwrap();
    assert!(
        c.elect(1, 2_000).unwrap().is_some(),
        "seed {seed}: no leader"
    );
    for (at, new_range) in [("k030", 2), ("k060", 3)] {
        assert!(
            split_range(&mut c, at, new_range),
            "seed {seed}: split at {at} never applied"
        );
    }
    c
}

/// Writes register `i` = `v<i>` for every key, a few at a time, resending
/// what was lost or refused ("wrong range": routed again).
pub struct RegisterWriter {
    /// Key index → the token of its latest attempt (none: not yet sent, or
    /// to send again).
    writes: Vec<Option<u64>>,
    done: Vec<bool>,
}

impl RegisterWriter {
    /// A writer of `keys` registers.
    pub fn new(keys: usize) -> RegisterWriter {
        RegisterWriter {
            writes: vec![None; keys],
            done: vec![false; keys],
        }
    }

    /// Takes in outcomes and sends what is due, at round `step`.
    pub fn step(&mut self, c: &mut SimCluster<Registers>, step: u64, rng: &mut impl rand::Rng) {
        use shoal_replication::Event;
        for i in 0..self.writes.len() {
            let Some(token) = self.writes[i].filter(|_| !self.done[i]) else {
                continue;
            };
            match c.outcome(token) {
                Some(Event::Applied { reply, .. }) if reply != b"wrong range" => {
                    self.done[i] = true;
                }
                Some(_) => self.writes[i] = None,
                None if step.is_multiple_of(400) => self.writes[i] = None,
                None => {}
            }
        }
        let in_flight = (0..self.writes.len())
            .filter(|&i| !self.done[i] && self.writes[i].is_some())
            .count();
        if in_flight < 4 && step.is_multiple_of(5) {
            let i = rng.gen_range(0..self.writes.len());
            if !self.done[i]
                && self.writes[i].is_none()
                && let Some(range) = c.route(key(i).as_bytes())
                && let Some(leader) = c.leader(range)
            {
                self.writes[i] = c
                    .propose(leader, range, format!("{}=v{i}", key(i)).into_bytes())
                    .ok();
            }
        }
    }

    /// Registers not written yet.
    pub fn left(&self) -> usize {
        self.done.iter().filter(|d| !**d).count()
    }
}

/// Panics if a live node holds two ranges claiming a key.
pub fn assert_no_overlap(c: &SimCluster<Registers>, seed: u64, step: u64) {
    for node in c.node_ids() {
        let Some(driver) = c.driver(node) else {
            continue;
        };
        let bounds = driver.local_bounds();
        let mut ranges: Vec<_> = bounds.read().values().map(|(b, _)| b.clone()).collect();
        ranges.sort_by(|a, b| a.start.cmp(&b.start));
        for pair in ranges.windows(2) {
            assert!(
                !pair[0].overlaps(&pair[1]),
                "seed {seed}, step {step}: node {node} has overlapping ranges"
            );
        }
    }
}
