//! The chaos driver: a cluster of real `shoal` processes, a workload, and
//! a nemesis breaking the cluster while the workload runs; then a check of
//! everything the clients saw.
//!
//! # A run
//!
//! 1. Start `nodes` processes on loopback with fault injection enabled
//!    (`TestCluster`, `--fault-injection`) and create the workload's table.
//! 2. Start `clients_per_node` clients per node. Each loops until the
//!    deadline: invoke one random operation (`workloads.rs`), time it,
//!    record how it ended (`history.rs`). An operation gets
//!    [`OP_TIMEOUT`]; one that does not answer ends `info`, and its
//!    client drops the connection and continues as a new process on the
//!    next node (a process never has two operations in flight).
//! 3. Meanwhile the nemesis loop (`nemesis.rs`): a quiet second or two,
//!    then one fault — or two at once, when the run allows it — chosen
//!    from the run's nemeses, held two to four seconds (a clock fault
//!    jumps once while held), healed.
//! 4. At the deadline: heal everything, wait for every client, then read
//!    the final state on every node (retrying while the cluster
//!    recovers: a cluster that does not serve again within
//!    [`RECOVERY`] is itself an anomaly).
//! 5. Check the history and the final reads; write the history as
//!    elle-cli JSON; report the seed, the faults injected, the operations
//!    (ok / fail / info) and the anomalies.
//!
//! # Reproducing
//!
//! Everything random — the operations, the nemesis schedule, the victims
//! — comes from generators seeded by the run's seed, printed first.
//! Processes and the network are real, so a seed reproduces the schedule
//! of faults and the operations tried, not the interleaving.
//! `SHOAL_CHAOS_SEED` sets the seed, `SHOAL_CHAOS_SECONDS` the length of
//! each run (`make chaos` runs long ones).

pub mod history;
pub mod nemesis;
pub mod workloads;

use std::fmt;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::cluster::{TestCluster, try_connect};
use history::{History, Kind, Op, describe, since};
use nemesis::{Fault, Injector, Nemesis};
use workloads::{Counter, Workload};

/// How long one operation may take before its outcome counts as unknown.
pub const OP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the healed cluster has to serve the final reads.
pub const RECOVERY: Duration = Duration::from_secs(90);

/// One chaos run's settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub seed: u64,
    pub workload: Workload,
    pub nemeses: Vec<Nemesis>,
    /// Whether two faults may be in force at once.
    pub overlap: bool,
    pub nodes: usize,
    pub clients_per_node: usize,
    pub duration: Duration,
}

impl Config {
    /// A run of `workload` under `nemeses` on `nodes` nodes; the seed and
    /// length come from `SHOAL_CHAOS_SEED` and `SHOAL_CHAOS_SECONDS` when
    /// set, else a fresh seed and `seconds`.
    pub fn new(workload: Workload, nemeses: &[Nemesis], nodes: usize, seconds: u64) -> Config {
        let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        let seed = env("SHOAL_CHAOS_SEED").unwrap_or_else(|| rand::thread_rng().r#gen());
        Config {
            seed,
            workload,
            nemeses: nemeses.to_vec(),
            overlap: false,
            nodes,
            clients_per_node: 2,
            duration: Duration::from_secs(env("SHOAL_CHAOS_SECONDS").unwrap_or(seconds)),
        }
    }
}

/// What a run did and found.
#[derive(Debug)]
pub struct Report {
    pub config: Config,
    /// How many faults were injected (clock jumps included).
    pub injected: usize,
    /// Every fault injected and every heal, with its time (seconds into
    /// the run).
    pub timeline: Vec<String>,
    pub ok: usize,
    pub failed: usize,
    pub unknown: usize,
    /// What the checkers found wrong: empty for a good run.
    pub anomalies: Vec<String>,
    /// What could not be checked.
    pub notes: Vec<String>,
    /// The history as elle-cli JSON.
    pub history_file: std::path::PathBuf,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        let nemeses: Vec<&str> = c.nemeses.iter().map(|n| n.name()).collect();
        writeln!(
            f,
            "chaos {} seed={} nodes={} nemeses={}{} {}s",
            c.workload.name(),
            c.seed,
            c.nodes,
            nemeses.join(","),
            if c.overlap { " (two at once)" } else { "" },
            c.duration.as_secs()
        )?;
        writeln!(f, "  faults injected: {}", self.injected)?;
        for fault in &self.timeline {
            writeln!(f, "    {fault}")?;
        }
        writeln!(
            f,
            "  operations: {} ok, {} failed, {} unknown",
            self.ok, self.failed, self.unknown
        )?;
        writeln!(f, "  anomalies: {}", self.anomalies.len())?;
        for anomaly in &self.anomalies {
            writeln!(f, "    {anomaly}")?;
        }
        for note in &self.notes {
            writeln!(f, "  note: {note}")?;
        }
        write!(f, "  history: {}", self.history_file.display())
    }
}

/// Runs one chaos run (module docs).
pub async fn run(config: Config) -> Report {
    let nemeses: Vec<&str> = config.nemeses.iter().map(|n| n.name()).collect();
    // Past the test harness's capture, so that a run that hangs still
    // shows its seed.
    let _ = writeln!(
        std::io::stderr(),
        "chaos: {} seed={} nodes={} nemeses={}",
        config.workload.name(),
        config.seed,
        config.nodes,
        nemeses.join(",")
    );
    let mut cluster = TestCluster::start(config.nodes, &["--fault-injection"]).await;
    let mut ids = Vec::new();
    for i in 0..config.nodes {
        ids.push(cluster.status(i).await.map_or(i as u64 + 1, |s| s.node_id));
    }
    let injector = Injector { ids };
    setup(&cluster, config.workload).await;

    let start = Instant::now();
    let deadline = start + config.duration;
    let unique = Arc::new(Counter::default());
    let conn_strs: Vec<String> = cluster.nodes.iter().map(|n| n.conn_str()).collect();
    let clients = config.nodes * config.clients_per_node;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = ClientLoop {
            workload: config.workload,
            conn_strs: conn_strs.clone(),
            node: c % config.nodes,
            process: c as u64,
            stride: clients as u64,
            seed: config.seed ^ (c as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            start,
            deadline,
            unique: unique.clone(),
        };
        tasks.push(tokio::spawn(client.run()));
    }

    let mut rng = StdRng::seed_from_u64(config.seed);
    let (timeline, injected) =
        nemesis_loop(&config, &mut cluster, &injector, &mut rng, start, deadline).await;

    let mut ops: Vec<Op> = Vec::new();
    for task in tasks {
        if let Ok(mut done) = task.await {
            ops.append(&mut done);
        }
    }
    let history = History::new(start, ops);
    let (finals, recovered) = final_reads(&cluster, config.workload).await;
    let (mut anomalies, notes) = config.workload.check(&history.ops, &finals);
    if let Some(problem) = recovered {
        anomalies.push(problem);
    }
    let history_file = std::env::temp_dir().join(format!(
        "shoal-chaos-{}-{}.json",
        config.workload.name(),
        config.seed
    ));
    if let Err(e) = std::fs::write(&history_file, history.to_json()) {
        eprintln!("chaos: cannot write {}: {e}", history_file.display());
    }
    Report {
        injected,
        timeline,
        ok: history.count(Kind::Ok),
        failed: history.count(Kind::Fail),
        unknown: history.count(Kind::Info),
        anomalies,
        notes,
        history_file,
        config,
    }
}

/// Creates the workload's table through the first node that takes it.
async fn setup(cluster: &TestCluster, workload: Workload) {
    let limit = Instant::now() + Duration::from_secs(30);
    loop {
        for node in &cluster.nodes {
            if let Some(client) = try_connect(&node.conn_str()).await {
                match workload.setup(&client).await {
                    Ok(()) => return,
                    Err(e) => eprintln!("chaos: setup failed, retrying: {}", describe(&e)),
                }
            }
        }
        assert!(
            Instant::now() < limit,
            "the workload's setup never succeeded"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Injects and heals faults until `deadline`; returns what it did, in
/// order, and how many faults it injected.
async fn nemesis_loop(
    config: &Config,
    cluster: &mut TestCluster,
    injector: &Injector,
    rng: &mut StdRng,
    start: Instant,
    deadline: Instant,
) -> (Vec<String>, usize) {
    let mut log = Vec::new();
    let mut injected = 0;
    let at = |start: Instant| format!("{:6.1}s", start.elapsed().as_secs_f64());
    while !config.nemeses.is_empty() {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(1000..2000))).await;
        let hold = Duration::from_millis(rng.gen_range(2000..4000));
        if Instant::now() + hold >= deadline {
            break;
        }
        let count = if config.overlap && rng.gen_bool(0.5) {
            2
        } else {
            1
        };
        let mut chosen: Vec<Nemesis> = config.nemeses.clone();
        chosen.shuffle(rng);
        chosen.truncate(count);
        // Faults that need a node's endpoint go in while every node answers:
        // kills and pauses last.
        chosen.sort_by_key(|n| matches!(n, Nemesis::Kill | Nemesis::Pause));
        let mut held: Vec<Fault> = Vec::new();
        for nemesis in chosen {
            let busy: Vec<usize> = held.iter().filter_map(fault_node).collect();
            let (fault, text) = injector
                .inject(cluster, rng, nemesis, &busy, config.workload.splits())
                .await;
            log.push(format!("{} {text}", at(start)));
            injected += 1;
            held.push(fault);
        }
        tokio::time::sleep(hold / 2).await;
        for fault in &held {
            if let Some(text) = injector.jump(cluster, rng, fault).await {
                log.push(format!("{} {text}", at(start)));
                injected += 1;
            }
        }
        tokio::time::sleep(hold / 2).await;
        // Paused, killed and failed-disk nodes first, so that every node
        // answers when its links, clock and disk are put back.
        held.sort_by_key(|f| {
            !matches!(
                f,
                Fault::Killed(_) | Fault::Paused(_) | Fault::DiskFailed(_)
            )
        });
        for fault in held {
            injector.heal(cluster, fault).await;
        }
        log.push(format!("{} healed", at(start)));
    }
    (log, injected)
}

/// The node a fault holds, if it holds one.
fn fault_node(fault: &Fault) -> Option<usize> {
    match *fault {
        Fault::Killed(i)
        | Fault::Paused(i)
        | Fault::Clock(i)
        | Fault::SlowDisk(i)
        | Fault::DiskFailed(i) => Some(i),
        Fault::Cut(_) | Fault::Done => None,
    }
}

/// The final state as every node reads it, and a problem if some node
/// would not answer within [`RECOVERY`].
async fn final_reads(cluster: &TestCluster, workload: Workload) -> (Vec<Value>, Option<String>) {
    let limit = Instant::now() + RECOVERY;
    let mut finals = Vec::new();
    for (i, node) in cluster.nodes.iter().enumerate() {
        let mut last_error = String::from("no connection");
        let value = loop {
            if let Some(client) = try_connect(&node.conn_str()).await {
                match workload.final_read(&client).await {
                    Ok(value) => break value,
                    Err(e) => last_error = describe(&e),
                }
            }
            if Instant::now() > limit {
                let problem = format!(
                    "node {} did not serve the final read within {}s after healing: {last_error}",
                    i + 1,
                    RECOVERY.as_secs()
                );
                return (finals, Some(problem));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        finals.extend(value);
    }
    (finals, None)
}

/// One client's loop (module docs, step 2).
struct ClientLoop {
    workload: Workload,
    conn_strs: Vec<String>,
    node: usize,
    process: u64,
    stride: u64,
    seed: u64,
    start: Instant,
    deadline: Instant,
    unique: Arc<Counter>,
}

impl ClientLoop {
    async fn run(mut self) -> Vec<Op> {
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut ops = Vec::new();
        let mut client = None;
        while Instant::now() < self.deadline {
            let Some(conn) = &client else {
                let conn_str = &self.conn_strs[self.node];
                client = tokio::time::timeout(Duration::from_secs(2), try_connect(conn_str))
                    .await
                    .ok()
                    .flatten();
                if client.is_none() {
                    self.next_node();
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                continue;
            };
            let planned = self.workload.plan(&mut rng, &self.unique);
            let invoked = since(self.start);
            let done = tokio::time::timeout(OP_TIMEOUT, planned.execute(conn)).await;
            let completed = since(self.start);
            let (f, invoke, value, kind, error) = match done {
                Ok(done) => (done.f, done.invoke, done.value, done.kind, done.error),
                Err(_) => (
                    planned.f(),
                    planned.invoke(),
                    planned.invoke(),
                    Kind::Info,
                    Some(format!("no answer within {}s", OP_TIMEOUT.as_secs())),
                ),
            };
            let broken = conn.is_closed() || kind == Kind::Info;
            ops.push(Op {
                process: self.process,
                f,
                invoke,
                value,
                kind,
                error,
                invoked,
                completed,
            });
            if broken {
                // Its operation may still be in flight: a new process, on
                // a fresh connection to the next node.
                if kind == Kind::Info {
                    self.process += self.stride;
                }
                client = None;
                self.next_node();
            }
        }
        ops
    }

    fn next_node(&mut self) {
        self.node = (self.node + 1) % self.conn_strs.len();
    }
}
