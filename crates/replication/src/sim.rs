//! A whole Raft cluster in one process, over a simulated network that drops,
//! delays, reorders and partitions messages — reproducibly, from a seed.
//!
//! Each simulated node is a [`MultiRaft`] over its own [`CrashDisk`].
//! Time advances in *rounds*: every round delivers the messages due, runs
//! one `handle_ready` per live node and queues what they sent, each message
//! with a random delay (or dropped, or cut by a partition). Every
//! `rounds_per_tick` rounds the nodes tick. Nothing depends on wall time or
//! thread scheduling, so a failing seed replays exactly.
//!
//! raft-rs draws election timeouts from an unseeded generator, so each
//! simulated node gets a *fixed* timeout instead, drawn from the seed and
//! distinct from the other nodes' (no endless split votes): which node
//! wins an election is then a function of the seed and the faults.
//!
//! Crashing a node drops its driver and crashes its disk: of the writes
//! since the node's last synced write, a prefix survives — its length drawn
//! from the seed, anywhere from none to all — and the rest are lost, as on
//! a machine that loses power (`shoal_storage::crash_disk`). Restarting
//! opens a new driver over what survived.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shoal_storage::{ColumnFamily, CrashDisk, Engine, KvPair};

use crate::clock::{SystemClock, WallClock};
use crate::error::{ReplicationError, Result};
use crate::multiraft::{MultiRaft, RaftConfig};
use crate::{
    DataSpan, EntryContext, Event, MergeOutcome, MergeRequest, MergeStep, NodeId, RaftEnvelope,
    RangeBounds, RangeId, SplitOutcome, SplitRequest, StateMachine, Token,
};

/// A register file, the state machine of Raft tests: the command `k=v`
/// sets register `k` (refused with the reply `wrong range` if the range
/// does not own `k`); `floor:k` stores the entry's timestamp floor in
/// register `k` (in decimal); `split:k:n` splits the range at `k`, the
/// keys from `k` on going to new range `n`; `freeze` and
/// `merge:r:i:g:v,v,v:l,l:k` are the merge steps (`apply/merge.rs`: merge
/// frozen range `r`, frozen at `i`, starting at `k`, into this one seen at
/// generation `g` with voters `v` and learners `l`), answered `frozen:i`,
/// `merged` or `refused: why`; anything else changes nothing. A frozen
/// range refuses `k=v` with `wrong range`. Other replies are the entry's
/// log index, so a test sees where each command landed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Registers;

impl StateMachine for Registers {
    fn data_spans(_range: RangeId, bounds: &RangeBounds) -> Vec<DataSpan> {
        vec![DataSpan {
            start: bounds.start.clone(),
            end: bounds.end.clone().unwrap_or_else(|| vec![0xff]),
        }]
    }

    fn split_request(command: &[u8]) -> Option<SplitRequest> {
        let text = std::str::from_utf8(command).ok()?;
        let (at, new_range) = text.strip_prefix("split:")?.split_once(':')?;
        Some(SplitRequest {
            at: at.as_bytes().to_vec(),
            new_range: new_range.parse().ok()?,
            left_bytes: 0,
            sticky_until: 0,
        })
    }

    fn merge_request(command: &[u8]) -> Option<MergeStep> {
        let text = std::str::from_utf8(command).ok()?;
        if text == "freeze" {
            return Some(MergeStep::Freeze);
        }
        let mut parts = text.strip_prefix("merge:")?.split(':');
        let mut number = || parts.next()?.parse::<u64>().ok();
        let (right, freeze_index, left_generation) = (number()?, number()?, number()?);
        let mut ids = || -> Option<Vec<u64>> {
            let list = parts.next()?;
            list.split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().ok())
                .collect()
        };
        let (voters, learners) = (ids()?, ids()?);
        let right_start = parts.next()?.as_bytes().to_vec();
        Some(MergeStep::Merge(MergeRequest {
            right,
            right_start,
            freeze_index,
            left_generation,
            voters,
            learners,
        }))
    }

    fn apply_merge_step(
        &mut self,
        _ctx: &EntryContext<'_>,
        _step: &MergeStep,
        outcome: &MergeOutcome,
        _engine: &dyn shoal_storage::Engine,
        _batch: &mut shoal_storage::WriteBatch,
    ) -> Result<Vec<u8>> {
        Ok(match outcome {
            MergeOutcome::Frozen { index } => format!("frozen:{index}").into_bytes(),
            MergeOutcome::Merged { .. } => b"merged".to_vec(),
            MergeOutcome::Refused(why) => format!("refused: {why}").into_bytes(),
        })
    }

    fn apply(
        &mut self,
        ctx: &EntryContext<'_>,
        command: &[u8],
        _engine: &dyn shoal_storage::Engine,
        batch: &mut shoal_storage::WriteBatch,
    ) -> Result<Vec<u8>> {
        let text = String::from_utf8_lossy(command);
        if let Some(key) = text.strip_prefix("floor:") {
            batch.put(key.as_bytes().to_vec(), ctx.floor.to_string().into_bytes());
        } else if let Some((key, value)) = text.split_once('=') {
            // A register outside the range is refused, as the KV layer
            // refuses keys its range does not own — and so is any while
            // the range is frozen for a merge.
            if ctx.frozen || !ctx.bounds.contains(key.as_bytes()) {
                return Ok(b"wrong range".to_vec());
            }
            batch.put(key.as_bytes().to_vec(), value.as_bytes().to_vec());
        }
        Ok(ctx.index.to_be_bytes().to_vec())
    }

    fn apply_split(
        &mut self,
        ctx: &EntryContext<'_>,
        _split: &SplitRequest,
        outcome: &SplitOutcome,
        _engine: &dyn shoal_storage::Engine,
        _batch: &mut shoal_storage::WriteBatch,
    ) -> Result<Vec<u8>> {
        Ok(match outcome {
            SplitOutcome::Done { .. } => ctx.index.to_be_bytes().to_vec(),
            SplitOutcome::Refused(why) => format!("refused: {why}").into_bytes(),
        })
    }
}

/// How hostile the simulated network is.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// The seed of every random choice.
    pub seed: u64,
    /// Probability that a message is lost.
    pub drop_rate: f64,
    /// Most rounds a message may be delayed (0: delivered next round).
    /// Random delays reorder messages.
    pub max_delay: u64,
    /// Rounds per Raft tick.
    pub rounds_per_tick: u64,
}

impl NetConfig {
    /// A reliable network (no loss, no delay) with `seed`.
    pub fn reliable(seed: u64) -> NetConfig {
        NetConfig {
            seed,
            drop_rate: 0.0,
            max_delay: 0,
            rounds_per_tick: 4,
        }
    }
}

struct SimNode<S: StateMachine> {
    engine: Arc<CrashDisk>,
    driver: Option<MultiRaft<S>>,
    /// The node's configuration, with its fixed election timeout.
    config: RaftConfig,
}

/// Gives each node a fixed election timeout in
/// `[election_tick, 2 × election_tick)`, distinct per node while there are
/// enough values.
fn with_fixed_timeouts(base: &RaftConfig, nodes: usize, rng: &mut StdRng) -> Vec<RaftConfig> {
    let span = base.election_tick.max(1);
    let mut offsets: Vec<usize> = (0..span).collect();
    let mut configs = Vec::with_capacity(nodes);
    for i in 0..nodes {
        let pick = if offsets.is_empty() {
            i % span
        } else {
            offsets.swap_remove(rng.gen_range(0..offsets.len()))
        };
        let timeout = base.election_tick + pick;
        configs.push(RaftConfig {
            min_election_tick: timeout,
            max_election_tick: timeout + 1,
            ..base.clone()
        });
    }
    configs
}

/// A simulated cluster. See the module documentation.
pub struct SimCluster<S: StateMachine> {
    nodes: BTreeMap<NodeId, SimNode<S>>,
    make_state_machine: Box<dyn Fn(NodeId) -> S>,
    net: NetConfig,
    rng: StdRng,
    round: u64,
    next_token: Token,
    /// (deliver at round, envelope), in send order.
    in_flight: Vec<(u64, RaftEnvelope)>,
    /// Directed links that drop everything.
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Events per token, from whichever node reported them.
    outcomes: BTreeMap<Token, Event>,
    /// Messages delivered, dropped.
    pub delivered: u64,
    /// Messages lost to drops and partitions.
    pub dropped: u64,
    /// Unsynced writes lost to crashes.
    pub lost_writes: u64,
    /// The wall clock every node reads (timestamp floors only).
    clock: Arc<dyn WallClock>,
}

impl<S: StateMachine> SimCluster<S> {
    /// A cluster of `voters`, all bootstrapped with range 1 holding every
    /// voter, plus empty nodes `spares` (no replicas; they join by
    /// membership change).
    pub fn new(
        voters: &[NodeId],
        spares: &[NodeId],
        raft_config: RaftConfig,
        net: NetConfig,
        make_state_machine: impl Fn(NodeId) -> S + 'static,
    ) -> Result<SimCluster<S>> {
        let mut rng = StdRng::seed_from_u64(net.seed);
        let ids: Vec<NodeId> = voters.iter().chain(spares).copied().collect();
        let configs = with_fixed_timeouts(&raft_config, ids.len(), &mut rng);
        let mut nodes = BTreeMap::new();
        for (&id, config) in ids.iter().zip(configs) {
            let engine = Arc::new(CrashDisk::new());
            if voters.contains(&id) {
                MultiRaft::<S>::bootstrap_range(engine.as_ref(), 1, voters)?;
            }
            let driver =
                MultiRaft::open(id, engine.clone(), config.clone(), make_state_machine(id))?;
            nodes.insert(
                id,
                SimNode {
                    engine,
                    driver: Some(driver),
                    config,
                },
            );
        }
        Ok(SimCluster {
            nodes,
            make_state_machine: Box::new(make_state_machine),
            rng,
            net,
            round: 0,
            next_token: 1,
            in_flight: Vec::new(),
            cut: BTreeSet::new(),
            outcomes: BTreeMap::new(),
            delivered: 0,
            dropped: 0,
            lost_writes: 0,
            clock: Arc::new(SystemClock),
        })
    }

    /// Makes every node, now and after restarts, read `clock`.
    pub fn set_clock(&mut self, clock: Arc<dyn WallClock>) {
        for node in self.nodes.values_mut() {
            if let Some(driver) = node.driver.as_mut() {
                driver.set_clock(clock.clone());
            }
        }
        self.clock = clock;
    }

    /// The seed this cluster's randomness came from.
    pub fn seed(&self) -> u64 {
        self.net.seed
    }

    /// Node ids, crashed or not.
    pub fn node_ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// The driver of a live node.
    pub fn driver(&self, node: NodeId) -> Option<&MultiRaft<S>> {
        self.nodes.get(&node).and_then(|n| n.driver.as_ref())
    }

    /// The driver of a live node, mutably.
    pub fn driver_mut(&mut self, node: NodeId) -> Option<&mut MultiRaft<S>> {
        self.nodes.get_mut(&node).and_then(|n| n.driver.as_mut())
    }

    /// Sets the probability that a message is lost.
    pub fn set_drop_rate(&mut self, rate: f64) {
        self.net.drop_rate = rate;
    }

    /// Cuts every link between the groups `a` and `b`, both directions.
    pub fn partition(&mut self, a: &[NodeId], b: &[NodeId]) {
        for &x in a {
            for &y in b {
                self.cut.insert((x, y));
                self.cut.insert((y, x));
            }
        }
    }

    /// Cuts `node` off from every other node.
    pub fn isolate(&mut self, node: NodeId) {
        let others: Vec<NodeId> = self.nodes.keys().copied().filter(|&n| n != node).collect();
        self.partition(&[node], &others);
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Stops a node: its driver and in-memory state are gone, and its disk
    /// keeps a prefix (drawn from the seed) of the writes since its last
    /// synced one (module docs).
    pub fn crash(&mut self, node: NodeId) {
        if let Some(n) = self.nodes.get_mut(&node)
            && n.driver.take().is_some()
        {
            let unsynced = n.engine.unsynced();
            let keep = self.rng.gen_range(0..=unsynced);
            self.lost_writes += (unsynced - keep) as u64;
            // A memory disk cannot fail to crash.
            let _ = n.engine.crash(keep);
        }
    }

    /// Starts a crashed node again from its engine.
    pub fn restart(&mut self, node: NodeId) -> Result<()> {
        let Some(n) = self.nodes.get_mut(&node) else {
            return Err(ReplicationError::Raft(format!("no node {node}")));
        };
        if n.driver.is_none() {
            let mut driver = MultiRaft::open(
                node,
                n.engine.clone(),
                n.config.clone(),
                (self.make_state_machine)(node),
            )?;
            driver.set_clock(self.clock.clone());
            n.driver = Some(driver);
        }
        Ok(())
    }

    /// One round: deliver due messages, run every live node's Raft cycle,
    /// queue what they sent; tick when the round count says so.
    pub fn round(&mut self) -> Result<()> {
        self.round += 1;
        let now = self.round;
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.in_flight)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.in_flight = later;
        for (_, envelope) in due {
            let to = envelope.message.to;
            match self.nodes.get_mut(&to).and_then(|n| n.driver.as_mut()) {
                Some(driver) => {
                    self.delivered += 1;
                    driver.step(envelope)?;
                }
                None => self.dropped += 1,
            }
        }
        let tick = now.is_multiple_of(self.net.rounds_per_tick.max(1));
        let mut sent = Vec::new();
        for node in self.nodes.values_mut() {
            let Some(driver) = node.driver.as_mut() else {
                continue;
            };
            if tick {
                driver.tick();
            }
            driver.handle_ready()?;
            let from = driver.node_id();
            for (to, envelopes) in driver.take_messages() {
                sent.extend(envelopes.into_iter().map(|e| (from, to, e)));
            }
            for event in driver.take_events() {
                let token = match &event {
                    Event::Applied { token, .. }
                    | Event::Failed { token, .. }
                    | Event::ReadReady { token, .. } => *token,
                    Event::LeaderChanged { .. } => continue,
                };
                self.outcomes.insert(token, event);
            }
        }
        for (from, to, envelope) in sent {
            if self.cut.contains(&(from, to)) || self.rng.gen_bool(self.net.drop_rate) {
                self.dropped += 1;
                continue;
            }
            let delay = if self.net.max_delay == 0 {
                0
            } else {
                self.rng.gen_range(0..=self.net.max_delay)
            };
            self.in_flight.push((now + 1 + delay, envelope));
        }
        Ok(())
    }

    /// Runs rounds until `done` holds (true) or `max_rounds` pass (false).
    pub fn run_until(
        &mut self,
        max_rounds: u64,
        mut done: impl FnMut(&SimCluster<S>) -> bool,
    ) -> Result<bool> {
        for _ in 0..max_rounds {
            if done(self) {
                return Ok(true);
            }
            self.round()?;
        }
        Ok(done(self))
    }

    /// Runs `n` rounds.
    pub fn run(&mut self, n: u64) -> Result<()> {
        for _ in 0..n {
            self.round()?;
        }
        Ok(())
    }

    /// The range a live node's own replicas route `key` to, by their
    /// bounds (the first node with one containing it).
    pub fn route(&self, key: &[u8]) -> Option<RangeId> {
        self.node_ids().into_iter().find_map(|n| {
            let bounds = self.driver(n)?.local_bounds();
            let bounds = bounds.read();
            bounds
                .iter()
                .find(|(_, (b, _))| b.contains(key))
                .map(|(&range, _)| range)
        })
    }

    /// The live node that leads `range` in the highest term, if any.
    pub fn leader(&self, range: RangeId) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter_map(|(&id, n)| {
                let d = n.driver.as_ref()?;
                d.is_leader(range).then(|| (d.term(range).unwrap_or(0), id))
            })
            .max()
            .map(|(_, id)| id)
    }

    /// Runs until `range` has a leader that every live replica knows of.
    pub fn elect(&mut self, range: RangeId, max_rounds: u64) -> Result<Option<NodeId>> {
        self.run_until(max_rounds, |c| {
            let Some(leader) = c.leader(range) else {
                return false;
            };
            c.nodes.values().all(|n| {
                n.driver.as_ref().is_none_or(|d| {
                    d.conf_state(range).is_none() || d.leader(range) == Some(leader)
                })
            })
        })?;
        Ok(self.leader(range))
    }

    fn token(&mut self) -> Token {
        let token = self.next_token;
        self.next_token += 1;
        token
    }

    /// Proposes `command` to `range` at `node`; the outcome is later found
    /// with [`SimCluster::outcome`].
    pub fn propose(&mut self, node: NodeId, range: RangeId, command: Vec<u8>) -> Result<Token> {
        let token = self.token();
        let driver = self
            .driver_mut(node)
            .ok_or_else(|| ReplicationError::Raft(format!("node {node} is down")))?;
        driver.propose(range, token, command)?;
        Ok(token)
    }

    /// Asks `node` for a linearizable read of `range`.
    pub fn read(&mut self, node: NodeId, range: RangeId) -> Result<Token> {
        self.read_at(node, range, 0)
    }

    /// Asks `node` for a linearizable read of `range` that registers
    /// `read_ts` with the leader (see `peer.rs`, *Timestamp floors*).
    pub fn read_at(&mut self, node: NodeId, range: RangeId, read_ts: u64) -> Result<Token> {
        let token = self.token();
        let driver = self
            .driver_mut(node)
            .ok_or_else(|| ReplicationError::Raft(format!("node {node} is down")))?;
        driver.read(range, token, read_ts)?;
        Ok(token)
    }

    /// Proposes a membership change of `range` at `node`.
    pub fn change_membership(
        &mut self,
        node: NodeId,
        range: RangeId,
        change: crate::ConfChangeV2,
    ) -> Result<Token> {
        let token = self.token();
        let driver = self
            .driver_mut(node)
            .ok_or_else(|| ReplicationError::Raft(format!("node {node} is down")))?;
        driver.change_membership(range, token, change)?;
        Ok(token)
    }

    /// What became of request `token`, if anything yet.
    pub fn outcome(&self, token: Token) -> Option<&Event> {
        self.outcomes.get(&token)
    }

    /// Whether request `token` has an outcome.
    pub fn resolved(&self, token: Token) -> bool {
        self.outcomes.contains_key(&token)
    }

    /// Every pair in `node`'s data column family.
    pub fn data(&self, node: NodeId) -> Result<Vec<KvPair>> {
        let Some(n) = self.nodes.get(&node) else {
            return Ok(Vec::new());
        };
        n.engine
            .scan_cf(ColumnFamily::Data, b"", None)
            .map(|r| r.map_err(ReplicationError::from))
            .collect()
    }

    /// Whether the range is quiet: it has a leader that has applied its
    /// whole log, every live member (voter or learner, as the leader knows
    /// them) has a replica that applied as far, and so has every other live
    /// replica.
    pub fn converged(&self, range: RangeId) -> bool {
        let Some(leader) = self.leader(range).and_then(|l| self.driver(l)) else {
            return false;
        };
        let (Some(last), Some(applied), Some(members)) = (
            leader.last_index(range),
            leader.applied_index(range),
            leader.conf_state(range),
        ) else {
            return false;
        };
        let members_caught_up = members.voters.iter().chain(&members.learners).all(|&id| {
            self.nodes.get(&id).is_none_or(|n| {
                n.driver
                    .as_ref()
                    .is_none_or(|d| d.applied_index(range) == Some(applied))
            })
        });
        last == applied
            && members_caught_up
            && self
                .nodes
                .values()
                .filter_map(|n| n.driver.as_ref()?.applied_index(range))
                .all(|a| a == applied)
    }
}
