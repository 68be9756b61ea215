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
//! | `merges` | `UNSPLIT ALL` on the workload's table: the merge driver merges its small ranges back (moving replicas together first where they differ) | (none needed) |
//! | `leader-transfers` | the leadership of up to four ranges (system ranges too) moved to another voter at once, `ALTER RANGE … RELOCATE LEASE` | (none needed) |
//! | `replica-moves` | a replica of up to two ranges moved to a node that held none, at once, `ALTER RANGE … RELOCATE FROM … TO` (four nodes or more; leader transfers otherwise) | (none needed) |
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
    Merges,
    LeaderTransfers,
    ReplicaMoves,
}

impl Nemesis {
    /// Every nemesis.
    pub const ALL: [Nemesis; 13] = [
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
        Nemesis::Merges,
        Nemesis::LeaderTransfers,
        Nemesis::ReplicaMoves,
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
            Nemesis::Merges => "merges",
            Nemesis::LeaderTransfers => "leader-transfers",
            Nemesis::ReplicaMoves => "replica-moves",
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
                let done = statements(cluster, victim, vec![sql]).await.join("");
                (
                    Fault::Done,
                    format!("split storm {} ({done})", points.join(" ")),
                )
            }
            Nemesis::Merges => {
                let Some((prefix, _)) = splits else {
                    return (
                        Fault::Done,
                        "merges: the workload has no table to merge".into(),
                    );
                };
                let done = statements(cluster, victim, vec![format!("{prefix} UNSPLIT ALL")]).await;
                (
                    Fault::Done,
                    format!("merge storm: unsplit all ({})", done.join(", ")),
                )
            }
            Nemesis::LeaderTransfers => {
                let mut moves = Vec::new();
                for range in sample(ranges(cluster, victim).await, rng, 4) {
                    let others: Vec<u64> = range
                        .voters
                        .iter()
                        .copied()
                        .filter(|&v| Some(v) != range.leader)
                        .collect();
                    if let Some(&to) = others.choose(rng) {
                        moves.push((range.id, to));
                    }
                }
                let sql = moves
                    .iter()
                    .map(|(r, to)| format!("ALTER RANGE {r} RELOCATE LEASE TO {to}"))
                    .collect();
                let done = statements(cluster, victim, sql).await;
                let text: Vec<String> = moves
                    .iter()
                    .zip(done)
                    .map(|((r, to), done)| format!("r{r}->n{to} ({done})"))
                    .collect();
                (Fault::Done, storm_text("leader transfers", &text))
            }
            Nemesis::ReplicaMoves if n > 3 => {
                let mut moves = Vec::new();
                for range in sample(ranges(cluster, victim).await, rng, 2) {
                    let spare: Vec<u64> = self
                        .ids
                        .iter()
                        .copied()
                        .filter(|id| !range.voters.contains(id))
                        .collect();
                    if let (Some(&from), Some(&to)) = (range.voters.choose(rng), spare.choose(rng))
                    {
                        moves.push((range.id, from, to));
                    }
                }
                let sql = moves
                    .iter()
                    .map(|(r, from, to)| format!("ALTER RANGE {r} RELOCATE FROM {from} TO {to}"))
                    .collect();
                let done = statements(cluster, victim, sql).await;
                let text: Vec<String> = moves
                    .iter()
                    .zip(done)
                    .map(|((r, from, to), done)| format!("r{r} n{from}->n{to} ({done})"))
                    .collect();
                (Fault::Done, storm_text("replica moves", &text))
            }
            Nemesis::ReplicaMoves => {
                Box::pin(self.inject(cluster, rng, Nemesis::LeaderTransfers, busy, splits)).await
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

/// How long a storm waits for its statements (a replica move may wait
/// for a snapshot; one that takes longer goes on without the nemesis).
const STORM_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs `sql`, each statement on its own connection to node `i`, all at
/// once; returns each one's outcome in words.
async fn statements(cluster: &TestCluster, i: usize, sql: Vec<String>) -> Vec<String> {
    let conn_str = cluster.nodes[i].conn_str();
    let runs: Vec<_> = sql
        .into_iter()
        .map(|sql| {
            let conn_str = conn_str.clone();
            tokio::spawn(async move {
                let Some(client) = try_connect(&conn_str).await else {
                    return "no connection".to_string();
                };
                match tokio::time::timeout(STORM_WAIT, client.batch_execute(&sql)).await {
                    Ok(Ok(())) => "done".to_string(),
                    Ok(Err(e)) => match e.as_db_error() {
                        Some(db) => format!("failed: {}", db.message()),
                        None => format!("failed: {e}"),
                    },
                    Err(_) => "still running".to_string(),
                }
            })
        })
        .collect();
    let mut outcomes = Vec::with_capacity(runs.len());
    for run in runs {
        outcomes.push(run.await.unwrap_or_else(|e| format!("failed: {e}")));
    }
    outcomes
}

/// "`what` a (done) b (failed: …)", or why there was nothing to do.
fn storm_text(what: &str, moves: &[String]) -> String {
    if moves.is_empty() {
        return format!("{what}: no range to move (none listed, or each mid-move)");
    }
    format!("{what} {}", moves.join(" "))
}

/// A range as a storm sees it.
struct RangeView {
    id: i64,
    voters: Vec<u64>,
    leader: Option<u64>,
}

/// Every range, as node `i` sees them (none if it does not answer).
async fn ranges(cluster: &TestCluster, i: usize) -> Vec<RangeView> {
    let Some(client) = try_connect(&cluster.nodes[i].conn_str()).await else {
        return Vec::new();
    };
    let sql = "SELECT range_id, replicas, lease_holder FROM shoal_internal.ranges";
    let Ok(Ok(rows)) = tokio::time::timeout(STORM_WAIT, client.query(sql, &[])).await else {
        return Vec::new();
    };
    rows.iter()
        .map(|row| {
            let replicas: String = row.get(1);
            RangeView {
                id: row.get(0),
                voters: crate::cluster::node_ids(&replicas),
                leader: row
                    .get::<_, Option<i64>>(2)
                    .and_then(|l| u64::try_from(l).ok()),
            }
        })
        .collect()
}

/// Up to `k` of `items`, chosen at random.
fn sample<T>(mut items: Vec<T>, rng: &mut StdRng, k: usize) -> Vec<T> {
    items.shuffle(rng);
    items.truncate(k);
    items
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
