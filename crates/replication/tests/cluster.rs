//! In-process cluster tests: elections, replication, partitions, log repair,
//! snapshots, restarts and membership changes over the simulated network.
//! A failing assertion names the seed; the run replays exactly from it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

mod support;

use rand::{Rng, SeedableRng};
use shoal_replication::clock::ManualClock;
use shoal_replication::sim::{NetConfig, Registers, SimCluster};
use shoal_replication::{
    ConfChangeSingle, ConfChangeType, ConfChangeV2, Event, NodeId, RaftConfig, RangeId,
};

const RANGE: RangeId = 1;

fn cluster(
    voters: &[NodeId],
    spares: &[NodeId],
    config: RaftConfig,
    net: NetConfig,
) -> SimCluster<Registers> {
    SimCluster::new(voters, spares, config, net, |_| Registers).unwrap()
}

fn three(seed: u64) -> SimCluster<Registers> {
    cluster(
        &[1, 2, 3],
        &[],
        RaftConfig::default(),
        NetConfig::reliable(seed),
    )
}

fn applied(c: &SimCluster<Registers>, token: u64) -> bool {
    matches!(c.outcome(token), Some(Event::Applied { .. }))
}

fn value(c: &SimCluster<Registers>, node: NodeId, key: &str) -> Option<String> {
    c.data(node)
        .unwrap()
        .into_iter()
        .find(|(k, _)| k == key.as_bytes())
        .map(|(_, v)| String::from_utf8(v).unwrap())
}

/// Proposes `key=value` at the current leader and runs until it applies.
fn write(c: &mut SimCluster<Registers>, key: &str, value: &str) {
    let seed = c.seed();
    let leader = c.elect(RANGE, 2000).unwrap().expect("a leader");
    let token = c
        .propose(leader, RANGE, format!("{key}={value}").into_bytes())
        .unwrap();
    assert!(
        c.run_until(2000, |c| c.resolved(token)).unwrap(),
        "seed {seed}: write {key} never resolved"
    );
    assert!(applied(c, token), "seed {seed}: {:?}", c.outcome(token));
}

fn settle(c: &mut SimCluster<Registers>) {
    let seed = c.seed();
    assert!(
        c.run_until(4000, |c| c.converged(RANGE)).unwrap(),
        "seed {seed}: replicas never converged"
    );
}

#[test]
fn elects_a_leader_and_replicates_to_every_node() {
    let mut c = three(1);
    let leader = c.elect(RANGE, 2000).unwrap().expect("a leader");
    let tokens: Vec<u64> = (0..50)
        .map(|i| {
            c.propose(leader, RANGE, format!("k{i:02}=v{i}").into_bytes())
                .unwrap()
        })
        .collect();
    assert!(
        c.run_until(2000, |c| tokens.iter().all(|&t| c.resolved(t)))
            .unwrap()
    );
    assert!(tokens.iter().all(|&t| applied(&c, t)));
    settle(&mut c);
    let expected = c.data(leader).unwrap();
    assert_eq!(expected.len(), 50);
    for node in [1, 2, 3] {
        assert_eq!(c.data(node).unwrap(), expected, "node {node}");
    }
    // A follower's proposal is forwarded to the leader and applied; the
    // follower recognizes its own entry and reports it.
    let follower = [1, 2, 3].into_iter().find(|&n| n != leader).unwrap();
    let token = c.propose(follower, RANGE, b"x=y".to_vec()).unwrap();
    assert!(c.run_until(2000, |c| c.resolved(token)).unwrap());
    assert!(applied(&c, token), "{:?}", c.outcome(token));
    settle(&mut c);
    assert_eq!(value(&c, leader, "x").as_deref(), Some("y"));
    // With no leader known (alone, after its term ran out), a node refuses
    // at once instead of queueing.
    c.isolate(follower);
    assert!(
        c.run_until(2000, |c| c
            .driver(follower)
            .unwrap()
            .leader(RANGE)
            .is_none())
            .unwrap()
    );
    let err = c.propose(follower, RANGE, b"x=z".to_vec()).unwrap_err();
    assert!(err.to_string().contains("unknown node"), "{err}");
}

#[test]
fn an_isolated_leader_never_acknowledges_a_write() {
    let mut c = three(2);
    write(&mut c, "before", "1");
    let old = c.leader(RANGE).unwrap();
    c.isolate(old);
    let stranded = c.propose(old, RANGE, b"stranded=1".to_vec()).unwrap();
    // The majority elects a new leader and keeps accepting writes.
    assert!(
        c.run_until(3000, |c| c.leader(RANGE).is_some_and(|l| l != old))
            .unwrap()
    );
    let new = c.leader(RANGE).unwrap();
    let token = c.propose(new, RANGE, b"after=2".to_vec()).unwrap();
    assert!(c.run_until(2000, |c| c.resolved(token)).unwrap());
    assert!(applied(&c, token));
    assert!(
        !applied(&c, stranded),
        "the minority leader acknowledged a write"
    );
    // Healing: the old leader's entry is overwritten, its proposal dropped.
    c.heal();
    assert!(c.run_until(3000, |c| c.resolved(stranded)).unwrap());
    assert!(
        matches!(c.outcome(stranded), Some(Event::Failed { .. })),
        "{:?}",
        c.outcome(stranded)
    );
    settle(&mut c);
    for node in [1, 2, 3] {
        assert_eq!(value(&c, node, "stranded"), None);
        assert_eq!(value(&c, node, "after").as_deref(), Some("2"));
    }
}

#[test]
fn a_minority_never_serves_reads() {
    let mut c = three(3);
    write(&mut c, "k", "1");
    let old = c.leader(RANGE).unwrap();
    c.isolate(old);
    let stale = c.read(old, RANGE).unwrap();
    assert!(
        c.run_until(3000, |c| c.leader(RANGE).is_some_and(|l| l != old))
            .unwrap()
    );
    let new = c.leader(RANGE).unwrap();
    write(&mut c, "k", "2");
    // The isolated node steps down (check quorum) and fails the read; it
    // never reports it ready.
    assert!(c.run_until(3000, |c| c.resolved(stale)).unwrap());
    assert!(
        matches!(c.outcome(stale), Some(Event::Failed { .. })),
        "{:?}",
        c.outcome(stale)
    );
    assert!(!c.driver(old).unwrap().is_leader(RANGE));
    let fresh = c.read(new, RANGE).unwrap();
    assert!(c.run_until(2000, |c| c.resolved(fresh)).unwrap());
    assert!(matches!(c.outcome(fresh), Some(Event::ReadReady { .. })));
    assert_eq!(value(&c, new, "k").as_deref(), Some("2"));
}

#[test]
fn a_lagging_follower_catches_up_from_the_log() {
    let mut c = three(4);
    let leader = c.elect(RANGE, 2000).unwrap().unwrap();
    let lagging = [1, 2, 3].into_iter().find(|&n| n != leader).unwrap();
    c.isolate(lagging);
    for i in 0..40 {
        write(&mut c, &format!("k{i}"), "v");
    }
    assert_eq!(value(&c, lagging, "k0"), None);
    c.heal();
    settle(&mut c);
    assert_eq!(
        c.data(lagging).unwrap(),
        c.data(c.leader(RANGE).unwrap()).unwrap()
    );
    assert_eq!(c.driver(lagging).unwrap().stats().snapshots_installed, 0);
}

#[test]
fn a_follower_behind_the_compacted_log_gets_a_snapshot() {
    let config = RaftConfig {
        log_compact_threshold: 16,
        ..RaftConfig::default()
    };
    let mut c = cluster(&[1, 2, 3], &[], config, NetConfig::reliable(5));
    let leader = c.elect(RANGE, 2000).unwrap().unwrap();
    let lagging = [1, 2, 3].into_iter().find(|&n| n != leader).unwrap();
    c.isolate(lagging);
    for i in 0..150 {
        write(&mut c, &format!("k{i:03}"), &i.to_string());
    }
    c.heal();
    settle(&mut c);
    let leader = c.leader(RANGE).unwrap();
    assert_eq!(c.data(lagging).unwrap(), c.data(leader).unwrap());
    assert!(c.driver(lagging).unwrap().stats().snapshots_installed >= 1);
    // The log stays bounded everywhere.
    for node in [1, 2, 3] {
        assert!(c.driver(node).unwrap().stats().log_entries <= 100);
    }
    // And the snapshotted follower keeps replicating afterwards.
    write(&mut c, "after", "snapshot");
    settle(&mut c);
    assert_eq!(value(&c, lagging, "after").as_deref(), Some("snapshot"));
}

#[test]
fn restarted_nodes_recover_their_log_and_data() {
    let mut c = three(6);
    for i in 0..20 {
        write(&mut c, &format!("k{i}"), "v");
    }
    settle(&mut c);
    for node in [1, 2, 3] {
        c.crash(node);
    }
    for node in [1, 2, 3] {
        c.restart(node).unwrap();
    }
    write(&mut c, "later", "yes");
    settle(&mut c);
    for node in [1, 2, 3] {
        assert_eq!(c.data(node).unwrap().len(), 21, "node {node}");
    }
}

#[test]
fn a_new_node_joins_as_learner_then_voter() {
    let config = RaftConfig {
        log_compact_threshold: 8,
        ..RaftConfig::default()
    };
    let mut c = cluster(&[1, 2, 3], &[4], config, NetConfig::reliable(7));
    for i in 0..30 {
        write(&mut c, &format!("k{i}"), "v");
    }
    let leader = c.leader(RANGE).unwrap();
    let change = |kind, node| {
        let mut single = ConfChangeSingle::default();
        single.set_change_type(kind);
        single.node_id = node;
        let mut change = ConfChangeV2::default();
        change.mut_changes().push(single);
        change
    };
    let token = c
        .change_membership(leader, RANGE, change(ConfChangeType::AddLearnerNode, 4))
        .unwrap();
    assert!(c.run_until(2000, |c| c.resolved(token)).unwrap());
    assert!(applied(&c, token));
    settle(&mut c);
    assert_eq!(c.data(4).unwrap().len(), 30);
    assert_eq!(
        c.driver(4).unwrap().conf_state(RANGE).unwrap().learners,
        [4]
    );
    let leader = c.leader(RANGE).unwrap();
    let token = c
        .change_membership(leader, RANGE, change(ConfChangeType::AddNode, 4))
        .unwrap();
    assert!(c.run_until(2000, |c| c.resolved(token)).unwrap());
    assert!(applied(&c, token));
    settle(&mut c);
    let mut voters = c.driver(1).unwrap().conf_state(RANGE).unwrap().voters;
    voters.sort_unstable();
    assert_eq!(voters, [1, 2, 3, 4]);
    // Four voters, quorum three: one may crash and writes still commit.
    let victim = [1, 2, 3]
        .into_iter()
        .find(|&n| Some(n) != c.leader(RANGE))
        .unwrap();
    c.crash(victim);
    write(&mut c, "four", "voters");
    settle(&mut c);
    assert_eq!(value(&c, 4, "four").as_deref(), Some("voters"));
}

#[test]
fn leadership_moves_on_request() {
    let mut c = three(8);
    write(&mut c, "k", "1");
    let leader = c.leader(RANGE).unwrap();
    let target = [1, 2, 3].into_iter().find(|&n| n != leader).unwrap();
    c.driver_mut(leader)
        .unwrap()
        .transfer_leader(RANGE, target)
        .unwrap();
    assert!(
        c.run_until(2000, |c| c.leader(RANGE) == Some(target))
            .unwrap()
    );
    write(&mut c, "k", "2");
    settle(&mut c);
    assert_eq!(value(&c, leader, "k").as_deref(), Some("2"));
}

/// Random loss, delay, reordering, partitions and crashes, then heal: every
/// replica ends identical, every acknowledged write is present, every
/// dropped one absent.
#[test]
fn random_faults_never_lose_or_invent_a_write() {
    let mut lost_writes = 0;
    for seed in support::seeds(100..106) {
        let net = NetConfig {
            seed,
            drop_rate: 0.1,
            max_delay: 6,
            rounds_per_tick: 4,
        };
        let mut c = cluster(&[1, 2, 3], &[], RaftConfig::default(), net);
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut proposals = Vec::new();
        for step in 0..3000u64 {
            if step % 500 == 250 {
                let victim = rng.gen_range(1..=3);
                c.isolate(victim);
            }
            if step % 500 == 400 {
                c.heal();
            }
            if step % 700 == 600 {
                let victim = rng.gen_range(1..=3);
                c.crash(victim);
                c.run(40).unwrap();
                c.restart(victim).unwrap();
            }
            if step % 7 == 0
                && let Some(leader) = c.leader(RANGE)
                && let Ok(token) = c.propose(leader, RANGE, format!("w{step}=x").into_bytes())
            {
                proposals.push((token, format!("w{step}")));
            }
            c.round().unwrap();
        }
        c.heal();
        c.set_drop_rate(0.0);
        // A final write from a settled leader commits everything before it.
        write(&mut c, "final", "x");
        settle(&mut c);
        let reference = c.data(1).unwrap();
        for node in [2, 3] {
            assert_eq!(
                c.data(node).unwrap(),
                reference,
                "seed {seed}: node {node} differs"
            );
        }
        let mut acknowledged = 0;
        for (token, key) in &proposals {
            let present = value(&c, 1, key).is_some();
            match c.outcome(*token) {
                Some(Event::Applied { .. }) => {
                    acknowledged += 1;
                    assert!(present, "seed {seed}: acknowledged {key} lost");
                }
                Some(Event::Failed { error, .. }) if error.to_string().contains("dropped") => {
                    assert!(!present, "seed {seed}: dropped {key} was applied");
                }
                _ => {}
            }
        }
        assert!(
            acknowledged > 50,
            "seed {seed}: only {acknowledged} writes acknowledged"
        );
        lost_writes += c.lost_writes;
    }
    // The crashes did lose unsynced writes (applied state, mostly), and
    // Raft's synced log brought everything back.
    assert!(lost_writes > 0, "no crash lost an unsynced write");
}

/// The floor the entry of `floor:key` carried, as `node` applied it.
fn floor_of(c: &SimCluster<Registers>, node: NodeId, key: &str) -> u64 {
    value(c, node, key)
        .expect("floor recorded")
        .parse()
        .unwrap()
}

#[test]
fn commands_appended_after_a_read_get_a_floor_above_its_timestamp() {
    for seed in support::seeds(0..5) {
        let mut c = three(seed);
        let clock = Arc::new(ManualClock::new(1_000_000));
        c.set_clock(clock.clone());
        write(&mut c, "warm", "up");
        let leader = c.leader(RANGE).unwrap();
        let followers: Vec<NodeId> = c.node_ids().into_iter().filter(|&n| n != leader).collect();
        // A read far above the leader's starting floor (clock + offset).
        let read_ts = 90_000_000;
        let read = c.read_at(followers[0], RANGE, read_ts).unwrap();
        assert!(c.run_until(2000, |c| c.resolved(read)).unwrap());
        assert!(matches!(c.outcome(read), Some(Event::ReadReady { .. })));
        // Proposed by the other follower, stamped by the leader.
        let token = c
            .propose(followers[1], RANGE, b"floor:after".to_vec())
            .unwrap();
        assert!(c.run_until(2000, |c| c.resolved(token)).unwrap());
        settle(&mut c);
        for node in c.node_ids() {
            assert_eq!(floor_of(&c, node, "after"), read_ts + 1, "seed {seed}");
        }
    }
}

#[test]
fn a_new_leader_starts_its_floor_at_its_clock_plus_the_offset() {
    let offset = RaftConfig::default().max_clock_offset_micros;
    for seed in support::seeds(0..5) {
        let mut c = three(seed);
        let clock = Arc::new(ManualClock::new(5_000_000));
        c.set_clock(clock.clone());
        write(&mut c, "first", "x");
        let old = c.leader(RANGE).unwrap();
        let floor = {
            let token = c.propose(old, RANGE, b"floor:f1".to_vec()).unwrap();
            assert!(c.run_until(2000, |c| c.resolved(token)).unwrap());
            settle(&mut c);
            floor_of(&c, old, "f1")
        };
        assert!(floor > 5_000_000 + offset, "seed {seed}: floor {floor}");
        clock.advance(3_000_000);
        c.crash(old);
        let new = c.elect(RANGE, 4000).unwrap().expect("a new leader");
        assert_ne!(new, old);
        let token = c.propose(new, RANGE, b"floor:f2".to_vec()).unwrap();
        assert!(c.run_until(2000, |c| c.resolved(token)).unwrap());
        assert!(
            floor_of(&c, new, "f2") > 8_000_000 + offset,
            "seed {seed}: a new leader's floor starts at its clock plus the offset"
        );
    }
}
