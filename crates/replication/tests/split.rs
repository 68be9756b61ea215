//! Range splits in the simulated cluster, under message loss, delay,
//! partitions and crashes. After every round no node holds two ranges
//! that claim the same key; after every run: the ranges' bounds cover the
//! key space without gap or overlap and agree on every node, every range
//! has all its replicas caught up, and every register written — before,
//! during or after the splits — is present, identically, on every node.
//! A failing assertion names the seed; the run replays exactly from it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rand::{Rng, SeedableRng};
use shoal_replication::sim::{Registers, SimCluster};
use shoal_replication::{Event, NodeId, RaftConfig, RangeBounds, RangeId};

mod support;
use support::lossy;

const KEYS: usize = 120;

fn key(i: usize) -> String {
    format!("k{i:03}")
}

/// The splits to make: (split key, new range id), each splitting the range
/// that holds the key at the time.
const SPLITS: [(&str, RangeId); 3] = [("k030", 2), ("k060", 3), ("k090", 4)];

/// The range a live node routes `key` to, by its own replicas' bounds.
fn route(c: &SimCluster<Registers>, key: &str) -> Option<RangeId> {
    c.route(key.as_bytes())
}

/// Every node's ranges, sorted by start key.
fn layout(c: &SimCluster<Registers>, node: NodeId) -> Vec<(RangeId, RangeBounds)> {
    let bounds = c.driver(node).unwrap().local_bounds();
    let mut ranges: Vec<(RangeId, RangeBounds)> = bounds
        .read()
        .iter()
        .map(|(&r, (b, _))| (r, b.clone()))
        .collect();
    ranges.sort_by(|a, b| a.1.start.cmp(&b.1.start));
    ranges
}

fn applied_reply(c: &SimCluster<Registers>, token: u64) -> Option<Vec<u8>> {
    match c.outcome(token) {
        Some(Event::Applied { reply, .. }) => Some(reply.clone()),
        _ => None,
    }
}

/// Proposes `command` at the leader of `range`, if it has one.
fn propose(c: &mut SimCluster<Registers>, range: RangeId, command: String) -> Option<u64> {
    let leader = c.leader(range)?;
    c.propose(leader, range, command.into_bytes()).ok()
}

#[test]
fn splits_under_faults_keep_every_register_in_exactly_one_range() {
    let mut rerouted_total = 0;
    for seed in support::seeds(0..4) {
        let mut c = SimCluster::new(&[1, 2, 3], &[], RaftConfig::default(), lossy(seed), |_| {
            Registers
        })
        .unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        // key index → the token of its latest attempt (None: not yet sent
        // or needs sending again).
        let mut writes: Vec<Option<u64>> = vec![None; KEYS];
        let mut done = [false; KEYS];
        let mut splits: Vec<Option<u64>> = vec![None; SPLITS.len()];
        let mut split_done = [false; SPLITS.len()];
        let mut step = 0u64;
        let mut rerouted = 0;
        let mut split_steps = Vec::new();
        loop {
            step += 1;
            assert!(
                step < 40_000,
                "seed {seed}: never finished: splits {split_done:?} {splits:?}, {} writes left, leaders {:?}",
                done.iter().filter(|d| !**d).count(),
                [1, 2, 3, 4].map(|r| c.leader(r))
            );
            let faulty = step < 5_000;
            if faulty && step % 1_500 == 700 {
                c.isolate(rng.gen_range(1..=3));
            }
            if step % 1_500 == 1_100 {
                c.heal();
            }
            if faulty && step % 2_000 == 1_900 {
                let victim = rng.gen_range(1..=3);
                c.crash(victim);
                c.run(30).unwrap();
                c.restart(victim).unwrap();
            }
            if !faulty {
                c.heal();
                c.set_drop_rate(0.0);
            }
            // Collect outcomes, resend what did not take.
            for i in 0..KEYS {
                let Some(token) = writes[i].filter(|_| !done[i]) else {
                    continue;
                };
                if !c.resolved(token) {
                    if step.is_multiple_of(400) {
                        writes[i] = None; // lost with a dead leader: resend
                    }
                    continue;
                }
                match applied_reply(&c, token) {
                    Some(reply) if reply == b"wrong range" => {
                        rerouted += 1;
                        writes[i] = None;
                    }
                    Some(_) => done[i] = true,
                    None => writes[i] = None,
                }
            }
            for (s, &(at, new_range)) in SPLITS.iter().enumerate() {
                if split_done[s] {
                    continue;
                }
                match splits[s] {
                    Some(token) if c.resolved(token) => match applied_reply(&c, token) {
                        Some(reply) if reply.starts_with(b"refused") => {
                            // Refused only if already split there (a
                            // resent copy): the layout says.
                            assert!(
                                route(&c, at) == Some(new_range),
                                "seed {seed}: split at {at} refused: {}",
                                String::from_utf8_lossy(&reply)
                            );
                            split_done[s] = true;
                        }
                        Some(_) => {
                            split_done[s] = true;
                            split_steps.push(step);
                        }
                        None => splits[s] = None,
                    },
                    Some(_) if step.is_multiple_of(400) => splits[s] = None,
                    Some(_) => {}
                    // Splits go one after another, during the faults.
                    None if (s == 0 || split_done[s - 1]) && step > 800 + 1_450 * s as u64 => {
                        if let Some(range) = route(&c, at) {
                            splits[s] = propose(&mut c, range, format!("split:{at}:{new_range}"));
                        }
                    }
                    None => {}
                }
            }
            // Keep a few writes in flight, to random registers, so that
            // some race every split.
            let in_flight = (0..KEYS)
                .filter(|&i| !done[i] && writes[i].is_some())
                .count();
            if in_flight < 4 && step.is_multiple_of(5) {
                let i = rng.gen_range(0..KEYS);
                if !done[i]
                    && writes[i].is_none()
                    && let Some(range) = route(&c, &key(i))
                {
                    writes[i] = propose(&mut c, range, format!("{}=v{i}", key(i)));
                }
            }
            if done.iter().all(|&d| d) && split_done.iter().all(|&d| d) && !faulty {
                break;
            }
            c.round().unwrap();
            // After every round: no node holds two ranges claiming a key.
            for node in c.node_ids() {
                if c.driver(node).is_none() {
                    continue;
                }
                let ranges = layout(&c, node);
                for pair in ranges.windows(2) {
                    assert!(
                        !pair[0].1.overlaps(&pair[1].1),
                        "seed {seed}, step {step}: node {node} has overlapping ranges {ranges:?}"
                    );
                }
            }
        }
        eprintln!(
            "seed {seed}: splits at steps {split_steps:?}, {rerouted} writes rerouted, {step} steps"
        );
        rerouted_total += rerouted;
        // Settle every range.
        let ranges = [1, 2, 3, 4];
        assert!(
            c.run_until(8_000, |c| ranges.iter().all(|&r| c.converged(r)))
                .unwrap(),
            "seed {seed}: ranges never converged"
        );
        // The layout: four ranges covering everything, the same everywhere.
        let reference = layout(&c, 1);
        let starts: Vec<&[u8]> = reference.iter().map(|(_, b)| b.start.as_slice()).collect();
        assert_eq!(
            starts,
            [&b""[..], b"k030", b"k060", b"k090"],
            "seed {seed}: {reference:?}"
        );
        for pair in reference.windows(2) {
            assert_eq!(
                pair[0].1.end.as_deref(),
                Some(pair[1].1.start.as_slice()),
                "seed {seed}: gap or overlap in {reference:?}"
            );
        }
        assert_eq!(reference.last().unwrap().1.end, None, "seed {seed}");
        for node in [2, 3] {
            assert_eq!(layout(&c, node), reference, "seed {seed}: node {node}");
        }
        for &range in &ranges {
            let members = c.driver(1).unwrap().conf_state(range).unwrap();
            assert_eq!(members.voters, [1, 2, 3], "seed {seed}: range {range}");
        }
        // Every register, on every node, once.
        let data = c.data(1).unwrap();
        assert_eq!(data.len(), KEYS, "seed {seed}");
        for (i, (k, v)) in data.iter().enumerate() {
            assert_eq!(k, key(i).as_bytes(), "seed {seed}");
            assert_eq!(v, format!("v{i}").as_bytes(), "seed {seed}");
        }
        for node in [2, 3] {
            assert_eq!(c.data(node).unwrap(), data, "seed {seed}: node {node}");
        }
    }
    // Some writes raced a split and were refused by their old range: the
    // race the test is about happened.
    assert!(rerouted_total > 0);
}
