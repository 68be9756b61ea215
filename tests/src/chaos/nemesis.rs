//! Nemeses: the faults a chaos run injects into a cluster of real `shoal`
//! processes, and how each is healed.
//!
//! | nemesis | fault | heal |
//! |---|---|---|
//! | `kill` | `kill -9` of one node | start it again on the same store |
//! | `pause` | `SIGSTOP` of one node (it keeps its sockets, answers nothing) | `SIGCONT` |
//! | `partition-halves` | the nodes cut into a minority and a majority | links healed |
//! | `partition-leader` | the first range's leader cut from every other node | links healed |
//! | `partition-ring` | each node reaches only its two ring neighbours — a majority of five, but no two nodes see the same one (five nodes or more; halves otherwise) | links healed |
//! | `partition-one-way` | one node's messages to another lost, the other way open | links healed |
//! | `clock` | one node's clock set up to 400 ms ahead or behind (within the cluster's 500 ms maximum offset), sometimes jumping again while held | offset 0 |
//! | `splits` | a storm of manual range splits in the workload's table | (none needed) |
//! | `slow-disk` | every write to one node's store waits 20–300 ms (its Raft log appends and applies stall) | delay 0 |
//! | `disk-failure` | every write to one node's store fails from then on: its Raft thread stops, it acknowledges nothing more | `kill -9` and start it again on the same store |
//!
//! Partitions, clocks and disks go through each node's fault-injection endpoint
//! (`shoal start --fault-injection`; `crates/shoal/src/fault_injection.rs`):
//! a cut drops Raft messages and fails requests to the cut peers, so a
//! symmetric partition is every node on one side cutting every node on the
//! other. Every fault is described in words as it is injected; the run's
//! report lists them.

use std::collections::BTreeMap;
use std::process::Command;

use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::cluster::{TestCluster, http_request, try_connect};

/// A kind of fault (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nemesis {
    Kill,
    Pause,
    PartitionHalves,
    PartitionLeader,
    PartitionRing,
    PartitionOneWay,
    Clock,
    Splits,
    SlowDisk,
    DiskFailure,
}

impl Nemesis {
    /// Every nemesis.
    pub const ALL: [Nemesis; 10] = [
        Nemesis::Kill,
        Nemesis::Pause,
        Nemesis::PartitionHalves,
        Nemesis::PartitionLeader,
        Nemesis::PartitionRing,
        Nemesis::PartitionOneWay,
        Nemesis::Clock,
        Nemesis::Splits,
        Nemesis::SlowDisk,
        Nemesis::DiskFailure,
    ];

    /// Its name in reports and in `SHOAL_CHAOS_NEMESES`.
    pub fn name(self) -> &'static str {
        match self {
            Nemesis::Kill => "kill",
            Nemesis::Pause => "pause",
            Nemesis::PartitionHalves => "partition-halves",
            Nemesis::PartitionLeader => "partition-leader",
            Nemesis::PartitionRing => "partition-ring",
            Nemesis::PartitionOneWay => "partition-one-way",
            Nemesis::Clock => "clock",
            Nemesis::Splits => "splits",
            Nemesis::SlowDisk => "slow-disk",
            Nemesis::DiskFailure => "disk-failure",
        }
    }

    /// The nemesis called `name`.
    pub fn parse(name: &str) -> Option<Nemesis> {
        Nemesis::ALL.into_iter().find(|n| n.name() == name)
    }
}

/// A fault in force, with what it takes to heal it.
#[derive(Debug)]
pub enum Fault {
    Killed(usize),
    Paused(usize),
    /// Node index → the node indexes it cannot reach.
    Cut(BTreeMap<usize, Vec<usize>>),
    Clock(usize),
    SlowDisk(usize),
    /// Its writes fail; healed by a restart.
    DiskFailed(usize),
    /// Nothing to heal.
    Done,
}

/// Injects and heals faults on one cluster.
pub struct Injector {
    /// Node id of each node index (ids survive restarts).
    pub ids: Vec<u64>,
}

impl Injector {
    /// Injects `nemesis` on `cluster`, sparing nodes in `busy` (held by
    /// another fault); returns the fault and its description. `splits` is
    /// the statement prefix and key range for split storms.
    pub async fn inject(
        &self,
        cluster: &mut TestCluster,
        rng: &mut StdRng,
        nemesis: Nemesis,
        busy: &[usize],
        splits: Option<(&str, i64)>,
    ) -> (Fault, String) {
        let n = cluster.nodes.len();
        let free: Vec<usize> = (0..n).filter(|i| !busy.contains(i)).collect();
        let Some(&victim) = free.choose(rng) else {
            return (Fault::Done, format!("{}: no node free", nemesis.name()));
        };
        match nemesis {
            Nemesis::Kill => {
                cluster.nodes[victim].kill9();
                (
                    Fault::Killed(victim),
                    format!("kill -9 n{}", self.ids[victim]),
                )
            }
            Nemesis::Pause => {
                signal(cluster, victim, "-STOP");
                (
                    Fault::Paused(victim),
                    format!("SIGSTOP n{}", self.ids[victim]),
                )
            }
            Nemesis::PartitionHalves => {
                let mut order: Vec<usize> = (0..n).collect();
                order.shuffle(rng);
                let (minority, majority) = order.split_at(n / 2);
                let cuts = both_ways(minority, majority);
                let text = format!(
                    "partition {} | {}",
                    self.names(minority),
                    self.names(majority)
                );
                (self.cut(cluster, cuts).await, text)
            }
            Nemesis::PartitionLeader => {
                let leader = cluster.leader_now().await.unwrap_or(victim);
                let others: Vec<usize> = (0..n).filter(|&i| i != leader).collect();
                let cuts = both_ways(&[leader], &others);
                let text = format!("isolate leader n{}", self.ids[leader]);
                (self.cut(cluster, cuts).await, text)
            }
            Nemesis::PartitionRing if n >= 5 => {
                let mut order: Vec<usize> = (0..n).collect();
                order.shuffle(rng);
                let mut cuts = BTreeMap::new();
                for (pos, &node) in order.iter().enumerate() {
                    let near = [order[(pos + 1) % n], order[(pos + n - 1) % n]];
                    let far: Vec<usize> = order
                        .iter()
                        .copied()
                        .filter(|&o| o != node && !near.contains(&o))
                        .collect();
                    cuts.insert(node, far);
                }
                let ring: Vec<String> =
                    order.iter().map(|&i| format!("n{}", self.ids[i])).collect();
                let text = format!("majority ring {}", ring.join("-"));
                (self.cut(cluster, cuts).await, text)
            }
            Nemesis::PartitionRing => {
                Box::pin(self.inject(cluster, rng, Nemesis::PartitionHalves, busy, splits)).await
            }
            Nemesis::PartitionOneWay => {
                let others: Vec<usize> = (0..n).filter(|&i| i != victim).collect();
                let Some(&to) = others.choose(rng) else {
                    return (Fault::Done, "one-way: one node only".to_string());
                };
                let cuts = BTreeMap::from([(victim, vec![to])]);
                let text = format!("cut n{} -> n{} one way", self.ids[victim], self.ids[to]);
                (self.cut(cluster, cuts).await, text)
            }
            Nemesis::Clock => {
                let offset: i64 = rng.gen_range(-400..=400);
                set_clock(cluster, victim, offset).await;
                (
                    Fault::Clock(victim),
                    format!("clock of n{} {offset:+} ms", self.ids[victim]),
                )
            }
            Nemesis::SlowDisk => {
                let delay: u64 = rng.gen_range(20..=300);
                fault_request(cluster, victim, &format!("/faults/disk?delay_ms={delay}")).await;
                (
                    Fault::SlowDisk(victim),
                    format!("disk of n{} slow: {delay} ms per write", self.ids[victim]),
                )
            }
            Nemesis::DiskFailure => {
                fault_request(cluster, victim, "/faults/disk?fail=true").await;
                (
                    Fault::DiskFailed(victim),
                    format!("disk of n{} fails every write", self.ids[victim]),
                )
            }
            Nemesis::Splits => {
                let Some((prefix, keys)) = splits else {
                    return (
                        Fault::Done,
                        "splits: the workload has no table to split".into(),
                    );
                };
                let points: Vec<String> = (0..4)
                    .map(|_| format!("({})", rng.gen_range(0..keys.max(1))))
                    .collect();
                let sql = format!("{prefix} SPLIT AT VALUES {}", points.join(", "));
                let done = match try_connect(&cluster.nodes[victim].conn_str()).await {
                    Some(client) => match client.batch_execute(&sql).await {
                        Ok(()) => "done".to_string(),
                        Err(e) => format!("failed: {e}"),
                    },
                    None => "no connection".to_string(),
                };
                (
                    Fault::Done,
                    format!("split storm {} ({done})", points.join(" ")),
                )
            }
        }
    }

    /// Heals `fault`.
    pub async fn heal(&self, cluster: &mut TestCluster, fault: Fault) {
        match fault {
            Fault::Killed(i) => cluster.nodes[i].spawn_process(),
            Fault::Paused(i) => signal(cluster, i, "-CONT"),
            Fault::Cut(cuts) => {
                for i in cuts.into_keys() {
                    set_cut(cluster, i, &[]).await;
                }
            }
            Fault::Clock(i) => set_clock(cluster, i, 0).await,
            Fault::SlowDisk(i) => fault_request(cluster, i, "/faults/disk?delay_ms=0").await,
            Fault::DiskFailed(i) => {
                cluster.nodes[i].kill9();
                cluster.nodes[i].spawn_process();
            }
            Fault::Done => {}
        }
    }

    /// Moves the clock of a node already under a clock fault again: a jump.
    pub async fn jump(
        &self,
        cluster: &TestCluster,
        rng: &mut StdRng,
        fault: &Fault,
    ) -> Option<String> {
        let Fault::Clock(i) = *fault else { return None };
        let offset: i64 = rng.gen_range(-400..=400);
        set_clock(cluster, i, offset).await;
        Some(format!("clock of n{} jumps to {offset:+} ms", self.ids[i]))
    }

    async fn cut(&self, cluster: &TestCluster, cuts: BTreeMap<usize, Vec<usize>>) -> Fault {
        for (&node, peers) in &cuts {
            let ids: Vec<u64> = peers.iter().map(|&p| self.ids[p]).collect();
            set_cut(cluster, node, &ids).await;
        }
        Fault::Cut(cuts)
    }

    fn names(&self, nodes: &[usize]) -> String {
        let names: Vec<String> = nodes.iter().map(|&i| format!("n{}", self.ids[i])).collect();
        names.join(",")
    }
}

/// Every node of `a` cut from every node of `b`, and the other way.
fn both_ways(a: &[usize], b: &[usize]) -> BTreeMap<usize, Vec<usize>> {
    let mut cuts = BTreeMap::new();
    for &x in a {
        cuts.insert(x, b.to_vec());
    }
    for &y in b {
        cuts.insert(y, a.to_vec());
    }
    cuts
}

/// Sends `kill <signal>` to node `i`'s process (ours, by pid).
fn signal(cluster: &TestCluster, i: usize, signal: &str) {
    if let Some(pid) = cluster.nodes[i].pid() {
        let _ = Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status();
    }
}

/// Tells node `i` which node ids it cannot reach.
async fn set_cut(cluster: &TestCluster, i: usize, peers: &[u64]) {
    let list: Vec<String> = peers.iter().map(ToString::to_string).collect();
    fault_request(cluster, i, &format!("/faults/cut?peers={}", list.join(","))).await;
}

/// Sets node `i`'s clock offset.
async fn set_clock(cluster: &TestCluster, i: usize, offset_ms: i64) {
    fault_request(cluster, i, &format!("/faults/clock?offset_ms={offset_ms}")).await;
}

/// Sends a fault request to node `i` until it is answered (a busy node's
/// endpoint may be slow), for up to 30 s. A node that is down needs none:
/// it starts again with no faults.
async fn fault_request(cluster: &TestCluster, i: usize, path: &str) {
    let node = &cluster.nodes[i];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while node.is_running() {
        if http_request(node.http_addr, "POST", path).await.is_some() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node {} did not take fault request {path} within 30 s",
            i + 1
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
