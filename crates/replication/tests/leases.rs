//! Read leases (`lease.rs`): when a leader may pass read barriers alone,
//! and the two rules that keep a rival from being elected while it does —
//! a transfer ends the lease before the target can campaign, and a node
//! just started grants no vote during its first election timeout.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use raft::prelude::{Message, MessageType};
use shoal_replication::sim::{NetConfig, Registers, SimCluster};
use shoal_replication::{MultiRaft, NodeId, RaftConfig, RaftEnvelope, RangeId};
use shoal_storage::MemoryEngine;

const RANGE: RangeId = 1;
/// The tick the drivers' leases are computed for. The simulator runs far
/// faster than real time, so these leases outlast the test: it checks
/// when a lease is held, never how long.
const TICK: Duration = Duration::from_millis(100);

fn holds_lease(c: &SimCluster<Registers>, node: NodeId) -> bool {
    let leases = c.driver(node).unwrap().leases();
    let lease = leases.read().get(&RANGE).cloned();
    lease.is_some_and(|l| l.try_read(0, Instant::now()).is_some())
}

fn cluster_with_leases(seed: u64) -> SimCluster<Registers> {
    let mut c = SimCluster::new(
        &[1, 2, 3],
        &[],
        RaftConfig::default(),
        NetConfig::reliable(seed),
        |_| Registers,
    )
    .unwrap();
    for node in [1, 2, 3] {
        c.driver_mut(node).unwrap().enable_lease_reads(TICK);
    }
    c
}

/// Runs a read at `node` to completion.
fn read(c: &mut SimCluster<Registers>, node: NodeId) {
    let token = c.read(node, RANGE).unwrap();
    assert!(c.run_until(2000, |c| c.resolved(token)).unwrap());
}

#[test]
fn a_confirmed_read_gives_the_leader_a_lease_and_a_transfer_ends_it() {
    let mut c = cluster_with_leases(21);
    let leader = c.elect(RANGE, 4000).unwrap().expect("a leader");
    assert!(!holds_lease(&c, leader), "no lease before a confirmed read");
    read(&mut c, leader);
    assert!(holds_lease(&c, leader));
    for follower in [1, 2, 3].into_iter().filter(|&n| n != leader) {
        assert!(!holds_lease(&c, follower), "followers never hold leases");
    }

    let target = [1, 2, 3].into_iter().find(|&n| n != leader).unwrap();
    c.driver_mut(leader)
        .unwrap()
        .transfer_leader(RANGE, target)
        .unwrap();
    // Ended by the call itself: the target's `TimeoutNow` has not left.
    assert!(!holds_lease(&c, leader));
    assert!(
        c.run_until(2000, |c| c.leader(RANGE) == Some(target))
            .unwrap()
    );
    assert!(!holds_lease(&c, leader));
    assert!(!holds_lease(&c, target), "a new leader starts without one");
    read(&mut c, target);
    assert!(holds_lease(&c, target));
}

#[test]
fn a_transfer_asked_for_by_a_follower_ends_the_lease_in_the_same_step() {
    let mut c = cluster_with_leases(22);
    let leader = c.elect(RANGE, 4000).unwrap().expect("a leader");
    read(&mut c, leader);
    assert!(holds_lease(&c, leader));
    // What a follower's `transfer_leader` sends its leader.
    let target = [1, 2, 3].into_iter().find(|&n| n != leader).unwrap();
    let mut message = Message::default();
    message.set_msg_type(MessageType::MsgTransferLeader);
    message.from = target;
    message.to = leader;
    message.term = c.driver(leader).unwrap().term(RANGE).unwrap();
    c.driver_mut(leader)
        .unwrap()
        .step(RaftEnvelope {
            range: RANGE,
            message,
        })
        .unwrap();
    assert!(!holds_lease(&c, leader));
    assert!(
        c.run_until(2000, |c| c.leader(RANGE) == Some(target))
            .unwrap()
    );
}

/// A pre-vote request for `RANGE` from node 3 to node 1, in a later term.
fn pre_vote(term: u64) -> RaftEnvelope {
    let mut message = Message::default();
    message.set_msg_type(MessageType::MsgRequestPreVote);
    message.from = 3;
    message.to = 1;
    message.term = term;
    message.log_term = 10;
    message.index = 100;
    RaftEnvelope {
        range: RANGE,
        message,
    }
}

/// Whether node `driver` answered a pre-vote since the last call.
fn answered(driver: &mut MultiRaft<Registers>) -> bool {
    driver.handle_ready().unwrap();
    driver
        .take_messages()
        .values()
        .flatten()
        .any(|e| e.message.get_msg_type() == MessageType::MsgRequestPreVoteResponse)
}

#[test]
fn a_node_just_started_grants_no_vote_during_its_first_election_timeout() {
    let engine = Arc::new(MemoryEngine::new());
    MultiRaft::<Registers>::bootstrap_range(engine.as_ref(), RANGE, &[1, 2, 3]).unwrap();
    let config = RaftConfig::default();
    let election_tick = config.election_tick;
    let mut driver = MultiRaft::open(1, engine, config, Registers).unwrap();
    driver.enable_lease_reads(TICK);
    for _ in 0..election_tick - 1 {
        driver.tick();
        driver.step(pre_vote(5)).unwrap();
        assert!(
            !answered(&mut driver),
            "a vote request in the first timeout"
        );
    }
    driver.tick();
    driver.step(pre_vote(5)).unwrap();
    assert!(
        answered(&mut driver),
        "answered once the timeout has passed"
    );
}

#[test]
fn without_leases_a_node_just_started_votes_at_once() {
    let engine = Arc::new(MemoryEngine::new());
    MultiRaft::<Registers>::bootstrap_range(engine.as_ref(), RANGE, &[1, 2, 3]).unwrap();
    let mut driver = MultiRaft::open(1, engine, RaftConfig::default(), Registers).unwrap();
    driver.step(pre_vote(5)).unwrap();
    assert!(answered(&mut driver));
}
