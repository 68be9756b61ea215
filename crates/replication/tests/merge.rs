//! Range merges in the simulated cluster, under message loss, delay,
//! partitions, leadership moves and a crash. Four nodes; one range is
//! split in three, and the last third is moved onto other nodes. Then a
//! driver following the merge protocol (`apply/merge.rs`) merges them back
//! one pair at a time — colocate, freeze, wait for every replica to apply
//! the freeze, merge — while registers are written throughout (a frozen
//! range refuses them; the writer routes again). Some merges are first
//! proposed with an outdated generation, as a driver with a stale view
//! would, and lost merge answers are proposed again: a refused merge is
//! proposed again with the new generation, the range staying frozen, and
//! a copy arriving after the merge applied is refused. After every round no node holds two ranges claiming a key; at
//! the end one range covers the whole key space on exactly its voters,
//! with every register, identically, and no node keeps a merged range.
//! A failing assertion names the seed; the run replays exactly from it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use rand::{Rng, SeedableRng};
use shoal_replication::sim::{NetConfig, Registers, SimCluster};
use shoal_replication::{Event, NodeId, RaftConfig, RangeBounds, RangeId};

mod support;
use support::{RegisterWriter, assert_no_overlap, key, split_range, step_towards, three_ranges};

const KEYS: usize = 90;

/// Where a merge of `right` into `left` stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Moving `right`'s replicas onto `left`'s nodes.
    Colocate,
    /// The freeze proposed, as this token.
    Freezing(u64),
    /// Frozen at this index: waiting for every replica to apply it.
    Frozen(u64),
    /// The merge (of the freeze at this index) proposed, as this token.
    Merging(u64, u64),
    Done,
}

struct Merge {
    left: RangeId,
    right: RangeId,
    phase: Phase,
    /// The round the current proposal was made in.
    since: u64,
    refusals: usize,
    /// Propose the first merge with an outdated generation, as a driver
    /// with a stale view would: it must be refused, and the merge proposed
    /// again (the right-hand range staying frozen).
    stale_first: bool,
    /// Propose every merge twice, as a driver whose first answer was lost
    /// would: the second copy must be refused and change nothing.
    twice: bool,
}

fn reply(c: &SimCluster<Registers>, token: u64) -> Option<Result<String, ()>> {
    match c.outcome(token)? {
        Event::Applied { reply, .. } => Some(Ok(String::from_utf8_lossy(reply).into_owned())),
        _ => Some(Err(())),
    }
}

/// The voters of `range` as its leader applied them, outside a joint
/// configuration and without learners; and the range's generation there.
fn settled_voters(c: &SimCluster<Registers>, range: RangeId) -> Option<(BTreeSet<NodeId>, u64)> {
    let leader = c.leader(range)?;
    let driver = c.driver(leader)?;
    let cs = driver.conf_state(range)?;
    if !cs.voters_outgoing.is_empty() || !cs.learners.is_empty() || !cs.learners_next.is_empty() {
        return None;
    }
    let generation = driver.local_bounds().read().get(&range)?.1;
    Some((cs.voters.into_iter().collect(), generation))
}

/// Whether a live node's replica of `left` already covers `right`'s keys.
fn merged(c: &SimCluster<Registers>, left: RangeId, at: &str) -> bool {
    c.node_ids().into_iter().any(|n| {
        c.driver(n).is_some_and(|d| {
            d.local_bounds()
                .read()
                .get(&left)
                .is_some_and(|(b, _)| b.contains(at.as_bytes()))
        })
    })
}

/// One step of the driver (the KV layer's `merge.rs`, in miniature).
fn drive(c: &mut SimCluster<Registers>, m: &mut Merge, at: &str, step: u64) {
    let stale = step - m.since > 600;
    match m.phase {
        Phase::Done => {}
        Phase::Colocate => {
            let Some((voters, _)) = settled_voters(c, m.left) else {
                return;
            };
            if step_towards(c, m.right, &voters)
                && let Some(leader) = c.leader(m.right)
                && let Ok(token) = c.propose(leader, m.right, b"freeze".to_vec())
            {
                m.phase = Phase::Freezing(token);
                m.since = step;
            }
        }
        Phase::Freezing(token) => match reply(c, token) {
            Some(Ok(r)) if r.starts_with("frozen:") => {
                m.phase = Phase::Frozen(r["frozen:".len()..].parse().unwrap());
            }
            Some(_) => m.phase = Phase::Colocate,
            None if stale => m.phase = Phase::Colocate,
            None => {}
        },
        Phase::Frozen(index) => {
            if merged(c, m.left, at) {
                m.phase = Phase::Done;
                return;
            }
            // Every member of the frozen range, as a replica that applied
            // the freeze lists them, has applied it.
            let members = c.node_ids().into_iter().find_map(|n| {
                let d = c.driver(n)?;
                (d.applied_index(m.right)? >= index).then(|| d.conf_state(m.right))?
            });
            let Some(members) = members else { return };
            let applied = members.voters.iter().chain(&members.learners).all(|&n| {
                c.driver(n)
                    .and_then(|d| d.applied_index(m.right))
                    .is_some_and(|a| a >= index)
            });
            let Some((voters, generation)) = settled_voters(c, m.left) else {
                return;
            };
            if !applied {
                return;
            }
            let theirs: BTreeSet<NodeId> = members.voters.iter().copied().collect();
            if theirs != voters || !members.learners.is_empty() {
                // The simulated cluster moves nothing else meanwhile.
                return;
            }
            let Some(leader) = c.leader(m.left) else {
                return;
            };
            let list: Vec<String> = voters.iter().map(u64::to_string).collect();
            let generation = if m.stale_first && m.refusals == 0 {
                generation - 1
            } else {
                generation
            };
            let command = format!(
                "merge:{}:{index}:{generation}:{}::{at}",
                m.right,
                list.join(",")
            );
            if let Ok(token) = c.propose(leader, m.left, command.clone().into_bytes()) {
                if m.twice {
                    let _ = c.propose(leader, m.left, command.into_bytes());
                }
                m.phase = Phase::Merging(index, token);
                m.since = step;
            }
        }
        Phase::Merging(index, token) => match reply(c, token) {
            Some(Ok(r)) if r == "merged" => m.phase = Phase::Done,
            _ if merged(c, m.left, at) => m.phase = Phase::Done,
            // Refused (the generation moved) or lost: ask again, with the
            // generation as it is now. A copy arriving after the merge
            // applied is refused; the check above sees the merge.
            Some(Ok(r)) if r.starts_with("refused") => {
                m.refusals += 1;
                m.phase = Phase::Frozen(index);
            }
            Some(_) => m.phase = Phase::Frozen(index),
            None if stale => m.phase = Phase::Frozen(index),
            None => {}
        },
    }
}

/// Deletes replicas nobody needs: those a range's leader no longer lists
/// (behind it), and those of a merged range on a node that holds no
/// replica of the range that took it over — what the KV layer's directory
/// sweep does.
fn collect_stale_replicas(c: &mut SimCluster<Registers>, merges: &[Merge]) {
    for range in [1, 2, 3] {
        let gone = merges
            .iter()
            .find(|m| m.right == range && m.phase == Phase::Done);
        let leader_view = c.leader(range).and_then(|l| {
            let d = c.driver(l)?;
            Some((d.conf_state(range)?, d.applied_index(range)?))
        });
        for node in c.node_ids() {
            let Some(driver) = c.driver(node) else {
                continue;
            };
            let Some(applied) = driver.applied_index(range) else {
                continue;
            };
            let stale = match (gone, &leader_view) {
                (Some(m), _) => driver.applied_index(m.left).is_none(),
                (None, Some((members, leader_applied))) => {
                    !members.voters.contains(&node)
                        && !members.learners.contains(&node)
                        && applied < *leader_applied
                }
                (None, None) => false,
            };
            if stale {
                c.driver_mut(node).unwrap().remove_replica(range).unwrap();
            }
        }
    }
}

#[test]
fn merges_under_faults_keep_every_register_in_exactly_one_range() {
    let mut refusals = 0;
    for seed in support::seeds(0..16) {
        let mut c = three_ranges(seed);
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        // Range 3 moves away from node 1, so merging it needs colocation.
        let away: BTreeSet<NodeId> = [2, 3, 4].into_iter().collect();
        let mut moved = false;
        for _ in 0..20_000 {
            if step_towards(&mut c, 3, &away) {
                moved = true;
                break;
            }
            c.run(10).unwrap();
        }
        assert!(moved, "seed {seed}: range 3 never moved");
        let mut merges = [
            Merge {
                left: 2,
                right: 3,
                phase: Phase::Colocate,
                since: 0,
                refusals: 0,
                stale_first: seed % 2 == 1,
                twice: seed % 3 == 0,
            },
            Merge {
                left: 1,
                right: 2,
                phase: Phase::Colocate,
                since: 0,
                refusals: 0,
                stale_first: seed % 4 == 0,
                twice: seed % 3 == 1,
            },
        ];
        let boundary = ["k060", "k030"];
        let mut writer = RegisterWriter::new(KEYS);
        let mut step = 0u64;
        let crashed: NodeId = rng.gen_range(1..=4);
        loop {
            step += 1;
            assert!(
                step < 80_000,
                "seed {seed}: never finished: {:?}, {} writes left",
                merges.iter().map(|m| m.phase).collect::<Vec<_>>(),
                writer.left()
            );
            let faulty = step < 8_000;
            if faulty && step % 2_000 == 700 {
                c.isolate(rng.gen_range(1..=4));
            }
            if step % 2_000 == 1_200 || !faulty {
                c.heal();
            }
            if step == 3_000 {
                c.crash(crashed);
            }
            if step == 3_600 {
                c.restart(crashed).unwrap();
            }
            if !faulty {
                c.set_drop_rate(0.0);
            }
            if step.is_multiple_of(10) {
                // One merge after the other: the second's right-hand range
                // is the first's left.
                let current = merges.iter().position(|m| m.phase != Phase::Done);
                if let Some(i) = current {
                    drive(&mut c, &mut merges[i], boundary[i], step);
                }
            }
            if faulty && step % 700 == 350 {
                let range = rng.gen_range(1..=3);
                if let Some(leader) = c.leader(range)
                    && let Some(cs) = c.driver(leader).and_then(|d| d.conf_state(range))
                {
                    let to = cs.voters[rng.gen_range(0..cs.voters.len())];
                    if to != leader {
                        let _ = c.driver_mut(leader).unwrap().transfer_leader(range, to);
                    }
                }
            }
            writer.step(&mut c, step, &mut rng);
            let finished = merges.iter().all(|m| m.phase == Phase::Done);
            if finished && writer.left() == 0 && !faulty {
                break;
            }
            c.round().unwrap();
            assert_no_overlap(&c, seed, step);
        }
        refusals += merges.iter().map(|m| m.refusals).sum::<usize>();
        // The merged range moves a replica to the node it lacks: the new
        // replica must start from a snapshot taken after the merges, not
        // replay them without the merged ranges' data.
        let (voters, _) = (0..20_000)
            .find_map(|_| {
                let settled = settled_voters(&c, 1);
                if settled.is_none() {
                    c.run(1).unwrap();
                }
                settled
            })
            .expect("range 1 settles");
        let missing = c
            .node_ids()
            .into_iter()
            .find(|n| !voters.contains(n))
            .unwrap();
        let mut target = voters.clone();
        target.remove(voters.iter().next().unwrap());
        target.insert(missing);
        let mut moved = false;
        for _ in 0..20_000 {
            if step_towards(&mut c, 1, &target) {
                moved = true;
                break;
            }
            // A replica of a merged range the new node missed the removal
            // of would keep its snapshot out.
            collect_stale_replicas(&mut c, &merges);
            c.run(10).unwrap();
        }
        if !moved {
            let leader = c.leader(1);
            let view = leader.and_then(|l| c.driver(l)?.range_view(1));
            let applied: Vec<_> = c
                .node_ids()
                .into_iter()
                .map(|n| (n, c.driver(n).and_then(|d| d.applied_index(1))))
                .collect();
            panic!(
                "seed {seed}: the merged range never moved to {target:?}: leader {leader:?}, {view:?}, applied {applied:?}"
            );
        }
        let mut rounds = 0;
        while !c.converged(1) {
            rounds += 1;
            assert!(rounds < 8_000, "seed {seed}: range 1 never converged");
            collect_stale_replicas(&mut c, &merges);
            c.round().unwrap();
        }
        collect_stale_replicas(&mut c, &merges);
        let voters: BTreeSet<NodeId> = {
            let leader = c.leader(1).unwrap();
            let cs = c.driver(leader).unwrap().conf_state(1).unwrap();
            cs.voters.into_iter().collect()
        };
        let everything: Vec<(Vec<u8>, Vec<u8>)> = (0..KEYS)
            .map(|i| (key(i).into_bytes(), format!("v{i}").into_bytes()))
            .collect();
        for node in c.node_ids() {
            let driver = c.driver(node).unwrap();
            let bounds = driver.local_bounds();
            let held: Vec<(RangeId, RangeBounds)> = bounds
                .read()
                .iter()
                .map(|(&r, (b, _))| (r, b.clone()))
                .collect();
            let data = c.data(node).unwrap();
            if voters.contains(&node) {
                assert_eq!(
                    held,
                    vec![(1, RangeBounds::everything())],
                    "seed {seed}: node {node}"
                );
                assert_eq!(data, everything, "seed {seed}: node {node}");
            } else {
                assert!(held.is_empty(), "seed {seed}: node {node} holds {held:?}");
                assert!(data.is_empty(), "seed {seed}: node {node} kept data");
            }
        }
        eprintln!("seed {seed}: merged; {refusals} merges refused so far");
    }
    assert!(refusals >= 8, "the refusal path ran {refusals} times");
}

/// Proposes `command` to `range`'s leader and runs until it applied there;
/// its reply.
fn apply(c: &mut SimCluster<Registers>, range: RangeId, command: &str) -> String {
    for _ in 0..50 {
        let Some(leader) = c.leader(range) else {
            c.run(50).unwrap();
            continue;
        };
        let Ok(token) = c.propose(leader, range, command.as_bytes().to_vec()) else {
            c.run(50).unwrap();
            continue;
        };
        if c.run_until(2_000, |c| c.resolved(token)).unwrap()
            && let Some(Ok(r)) = reply(c, token)
        {
            return r;
        }
    }
    panic!("{command} never applied to range {range}");
}

#[test]
fn a_replica_that_missed_a_merge_starts_again_from_a_snapshot() {
    for seed in support::seeds(0..4) {
        // A short log: the merged range's log is compacted past the merge
        // while one replica is cut off.
        let config = RaftConfig {
            log_compact_threshold: 8,
            ..RaftConfig::default()
        };
        let mut c = SimCluster::new(&[1, 2, 3], &[], config, NetConfig::reliable(seed), |_| {
            Registers
        })
        .unwrap();
        c.elect(1, 2_000).unwrap().unwrap();
        assert!(split_range(&mut c, "k050", 2), "seed {seed}");
        for i in 0..KEYS {
            let range = c.route(key(i).as_bytes()).unwrap();
            apply(&mut c, range, &format!("{}=v{i}", key(i)));
        }
        let frozen = apply(&mut c, 2, "freeze");
        let index: u64 = frozen["frozen:".len()..].parse().unwrap();
        assert!(
            c.run_until(2_000, |c| c.node_ids().iter().all(|&n| c
                .driver(n)
                .and_then(|d| d.applied_index(2))
                .is_some_and(|a| a >= index)))
                .unwrap(),
            "seed {seed}: the freeze never applied everywhere"
        );
        // Cut off a node leading neither range, then merge without it.
        let leaders = [c.leader(1).unwrap(), c.leader(2).unwrap()];
        let behind = (1..=3).find(|n| !leaders.contains(n)).unwrap();
        c.isolate(behind);
        let (voters, generation) = settled_voters(&c, 1).unwrap();
        let list: Vec<String> = voters.iter().map(u64::to_string).collect();
        let merge = format!("merge:2:{index}:{generation}:{}::k050", list.join(","));
        assert_eq!(apply(&mut c, 1, &merge), "merged", "seed {seed}");
        for i in 0..KEYS {
            apply(&mut c, 1, &format!("{}=w{i}", key(i)));
        }
        c.heal();
        let caught_up = c
            .run_until(20_000, |c| {
                c.converged(1)
                    && c.driver(behind)
                        .is_some_and(|d| !d.local_bounds().read().contains_key(&2))
            })
            .unwrap();
        assert!(caught_up, "seed {seed}: node {behind} never caught up");
        let held: Vec<(RangeId, RangeBounds)> = c
            .driver(behind)
            .unwrap()
            .local_bounds()
            .read()
            .iter()
            .map(|(&r, (b, _))| (r, b.clone()))
            .collect();
        assert_eq!(held, vec![(1, RangeBounds::everything())], "seed {seed}");
        assert_eq!(
            c.data(behind).unwrap(),
            c.data(leaders[0]).unwrap(),
            "seed {seed}"
        );
    }
}
