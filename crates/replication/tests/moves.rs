//! Replica moves and leadership transfers in the simulated cluster, under
//! message loss, delay and partitions. Four nodes hold three ranges of
//! three replicas each; each range's replicas move to new sets of nodes
//! one step at a time (a learner added, then promoted while the replica
//! it replaces is removed in one joint change, the leader handing over
//! first if it is the one leaving) — one range leaves node 1 and comes
//! back, through its tombstone — while leaderships move at random and
//! registers are written throughout. After every round no node holds two
//! ranges claiming a key; at the end every range has exactly its target
//! voters, a node a range left holds none of its data, and every register
//! is on exactly the nodes holding its range.
//! A failing assertion names the seed; the run replays exactly from it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use rand::{Rng, SeedableRng};
use shoal_replication::sim::{NetConfig, Registers, SimCluster};
use shoal_replication::{Event, NodeId, RaftConfig, RangeId};

mod support;
use support::{split_range, step_towards};

const KEYS: usize = 90;
const RANGES: [RangeId; 3] = [1, 2, 3];

fn key(i: usize) -> String {
    format!("k{i:03}")
}

/// Each range's voter sets, one after the other.
fn targets(range: RangeId) -> Vec<BTreeSet<NodeId>> {
    let set = |nodes: &[NodeId]| nodes.iter().copied().collect::<BTreeSet<_>>();
    match range {
        1 => vec![set(&[2, 3, 4]), set(&[1, 3, 4])],
        2 => vec![set(&[1, 2, 4])],
        // Leaves node 1, then comes back to it.
        _ => vec![set(&[2, 3, 4]), set(&[1, 2, 3])],
    }
}

/// The range a live node routes `key` to, by its own replicas' bounds.
fn route(c: &SimCluster<Registers>, key: &str) -> Option<RangeId> {
    c.route(key.as_bytes())
}

/// What the KV layer does with the range directory: a replica the range's
/// leader no longer lists, behind the leader's applied index, missed its
/// removal (the leader stopped talking to it before it learned) and is
/// removed. Returns how many were.
fn collect_stale_replicas(c: &mut SimCluster<Registers>) -> usize {
    let mut removed = 0;
    for &range in &RANGES {
        let Some(leader) = c.leader(range) else {
            continue;
        };
        let driver = c.driver(leader).unwrap();
        let (Some(members), Some(applied)) =
            (driver.conf_state(range), driver.applied_index(range))
        else {
            continue;
        };
        for node in c.node_ids() {
            let listed = members.voters.contains(&node) || members.learners.contains(&node);
            let behind = c
                .driver(node)
                .and_then(|d| d.applied_index(range))
                .is_some_and(|a| a < applied);
            if !listed && behind && c.driver_mut(node).unwrap().remove_replica(range).unwrap() {
                removed += 1;
            }
        }
    }
    removed
}

#[test]
fn replicas_and_leaderships_move_under_faults_without_losing_a_register() {
    let mut transfers_total = 0;
    for seed in 0..16u64 {
        let net = NetConfig {
            seed,
            drop_rate: 0.05,
            max_delay: 4,
            rounds_per_tick: 4,
        };
        let mut c =
            SimCluster::new(&[1, 2, 3], &[4], RaftConfig::default(), net, |_| Registers).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        // Three ranges: split at k030 and k060 first.
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
        let mut stage = [0usize; 3];
        let mut writes: Vec<Option<u64>> = vec![None; KEYS];
        let mut done = [false; KEYS];
        let mut transfers = 0;
        let mut step = 0u64;
        loop {
            step += 1;
            let finished = RANGES
                .iter()
                .all(|&r| stage[r as usize - 1] >= targets(r).len());
            assert!(
                step < 60_000,
                "seed {seed}: never finished: stages {stage:?}, {} writes left",
                done.iter().filter(|d| !**d).count()
            );
            let faulty = step < 6_000;
            if faulty && step % 1_500 == 700 {
                c.isolate(rng.gen_range(1..=4));
            }
            if step % 1_500 == 1_100 || !faulty {
                c.heal();
            }
            if !faulty {
                c.set_drop_rate(0.0);
            }
            // Moves: a step every few rounds.
            if step.is_multiple_of(10) {
                for &range in &RANGES {
                    let i = range as usize - 1;
                    let plan = targets(range);
                    if let Some(target) = plan.get(stage[i])
                        && step_towards(&mut c, range, target)
                    {
                        stage[i] += 1;
                    }
                }
            }
            // Leaderships move at random too.
            if faulty && step % 600 == 300 {
                let range = RANGES[rng.gen_range(0..RANGES.len())];
                if let Some(leader) = c.leader(range) {
                    let voters = c.driver(leader).unwrap().conf_state(range).unwrap().voters;
                    let to = voters[rng.gen_range(0..voters.len())];
                    if to != leader
                        && c.driver_mut(leader)
                            .unwrap()
                            .transfer_leader(range, to)
                            .is_ok()
                    {
                        transfers += 1;
                    }
                }
            }
            // Registers: a few writes in flight, resent when lost.
            for i in 0..KEYS {
                let Some(token) = writes[i].filter(|_| !done[i]) else {
                    continue;
                };
                match c.outcome(token) {
                    Some(Event::Applied { reply, .. }) if reply != b"wrong range" => done[i] = true,
                    Some(_) => writes[i] = None,
                    None if step.is_multiple_of(400) => writes[i] = None,
                    None => {}
                }
            }
            let in_flight = (0..KEYS)
                .filter(|&i| !done[i] && writes[i].is_some())
                .count();
            if in_flight < 4 && step.is_multiple_of(5) {
                let i = rng.gen_range(0..KEYS);
                if !done[i]
                    && writes[i].is_none()
                    && let Some(range) = route(&c, &key(i))
                    && let Some(leader) = c.leader(range)
                {
                    writes[i] = c
                        .propose(leader, range, format!("{}=v{i}", key(i)).into_bytes())
                        .ok();
                }
            }
            if finished && done.iter().all(|&d| d) && !faulty {
                break;
            }
            c.round().unwrap();
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
        transfers_total += transfers;
        let mut collected = 0;
        let mut rounds = 0;
        while !RANGES.iter().all(|&r| c.converged(r)) {
            rounds += 1;
            assert!(rounds < 8_000, "seed {seed}: ranges never converged");
            collected += collect_stale_replicas(&mut c);
            c.round().unwrap();
        }
        eprintln!(
            "seed {seed}: {transfers} leaderships moved, {collected} stale replicas collected"
        );
        for &range in &RANGES {
            let target = targets(range).pop().unwrap();
            for node in c.node_ids() {
                let driver = c.driver(node).unwrap();
                let holds = driver.local_bounds().read().contains_key(&range);
                assert_eq!(
                    holds,
                    target.contains(&node),
                    "seed {seed}: range {range} on node {node}"
                );
                if holds {
                    let voters: BTreeSet<NodeId> = driver
                        .conf_state(range)
                        .unwrap()
                        .voters
                        .into_iter()
                        .collect();
                    assert_eq!(voters, target, "seed {seed}: range {range} on node {node}");
                }
            }
        }
        // Every register on exactly the nodes holding its range.
        for node in c.node_ids() {
            let data = c.data(node).unwrap();
            let bounds = c.driver(node).unwrap().local_bounds();
            let held: Vec<(Vec<u8>, Vec<u8>)> = (0..KEYS)
                .filter(|&i| {
                    bounds
                        .read()
                        .values()
                        .any(|(b, _)| b.contains(key(i).as_bytes()))
                })
                .map(|i| (key(i).into_bytes(), format!("v{i}").into_bytes()))
                .collect();
            assert_eq!(data, held, "seed {seed}: node {node}");
        }
    }
    assert!(transfers_total > 0, "no leadership moved");
}
