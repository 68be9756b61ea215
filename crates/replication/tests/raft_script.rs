//! Data-driven scripts for the Raft driver: each `testdata/*.txt` builds a
//! simulated cluster (`shoal_replication::sim`) and drives it command by
//! command; the recorded output is the expected behaviour. Everything is a
//! function of the seed, so the scripts are exact. `UPDATE_EXPECT=1`
//! rewrites them.
//!
//! Commands (nodes are ids; the state machine is a register file, a command
//! `k=v` sets `k`, its reply is the entry's index):
//! * `cluster voters=1,2,3 [spares=4] [seed=N] [compact=N] [drop=P] [delay=N]`
//! * `elect` — run until a leader; prints it and its term.
//! * `propose <node> <k=v>`, `read <node>` — prints the request's token, or
//!   the immediate error.
//! * `add-learner <at> <node>`, `promote <at> <node>`, `transfer <from> <to>`
//! * `replace <at> <old> <new>` — one joint-consensus change promoting the
//!   learner `new` and removing `old`.
//! * `run <rounds>`, `settle` — advance time; `settle` runs until every
//!   live replica has applied the same index.
//! * `isolate <node>`, `partition <a,b> <c,…>`, `heal`, `crash <node>`,
//!   `restart <node>`
//! * `outcome <token>` — applied (at which index), failed (why), read
//!   ready, or pending.
//! * `status` — per node: role, term, applied index, log length,
//!   membership, snapshots installed.
//! * `data <node>` — the node's registers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use shoal_datadriven as script;
use shoal_replication::sim::{NetConfig, Registers, SimCluster};
use shoal_replication::{ConfChangeType, Event, NodeId, RaftConfig, RangeId, replicate_queue};

const RANGE: RangeId = 1;

fn ids(list: &str) -> Vec<NodeId> {
    list.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect()
}

fn join(ids: &[u64]) -> String {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

#[derive(Default)]
struct Harness {
    cluster: Option<SimCluster<Registers>>,
}

impl Harness {
    fn c(&mut self) -> &mut SimCluster<Registers> {
        self.cluster.as_mut().expect("no cluster yet")
    }

    fn token(result: shoal_replication::Result<u64>) -> String {
        match result {
            Ok(token) => format!("token {token}"),
            Err(e) => format!("error: {e}"),
        }
    }

    fn run(&mut self, line: &str) -> String {
        let tokens = script::tokenize(line);
        let (command, args) = tokens.split_first().expect("empty command");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match (command.as_str(), args.as_slice()) {
            ("cluster", opts) => {
                let (mut voters, mut spares) = (Vec::new(), Vec::new());
                let mut config = RaftConfig::default();
                let mut net = NetConfig::reliable(1);
                for opt in opts {
                    match opt.split_once('=').expect("option=value") {
                        ("voters", v) => voters = ids(v),
                        ("spares", v) => spares = ids(v),
                        ("seed", v) => net.seed = v.parse().unwrap(),
                        ("compact", v) => config.log_compact_threshold = v.parse().unwrap(),
                        ("drop", v) => net.drop_rate = v.parse().unwrap(),
                        ("delay", v) => net.max_delay = v.parse().unwrap(),
                        (k, _) => panic!("bad option {k}"),
                    }
                }
                self.cluster =
                    Some(SimCluster::new(&voters, &spares, config, net, |_| Registers).unwrap());
                "ok".into()
            }
            ("elect", []) => {
                let c = self.c();
                match c.elect(RANGE, 5000).unwrap() {
                    Some(leader) => format!(
                        "leader {leader} term {}",
                        c.driver(leader).unwrap().term(RANGE).unwrap()
                    ),
                    None => "no leader".into(),
                }
            }
            ("propose", [node, kv]) => {
                let result = self
                    .c()
                    .propose(node.parse().unwrap(), RANGE, kv.as_bytes().to_vec());
                Self::token(result)
            }
            ("read", [node]) => Self::token(self.c().read(node.parse().unwrap(), RANGE)),
            ("add-learner", [at, node]) => {
                let change =
                    replicate_queue::single(ConfChangeType::AddLearnerNode, node.parse().unwrap());
                Self::token(
                    self.c()
                        .change_membership(at.parse().unwrap(), RANGE, change),
                )
            }
            ("promote", [at, node]) => {
                let change =
                    replicate_queue::single(ConfChangeType::AddNode, node.parse().unwrap());
                Self::token(
                    self.c()
                        .change_membership(at.parse().unwrap(), RANGE, change),
                )
            }
            ("replace", [at, old, new]) => {
                // One joint-consensus change: promote `new`, remove `old`.
                let mut change =
                    replicate_queue::single(ConfChangeType::AddNode, new.parse().unwrap());
                let removal =
                    replicate_queue::single(ConfChangeType::RemoveNode, old.parse().unwrap());
                change
                    .mut_changes()
                    .extend(removal.get_changes().iter().cloned());
                Self::token(
                    self.c()
                        .change_membership(at.parse().unwrap(), RANGE, change),
                )
            }
            ("transfer", [from, to]) => {
                let c = self.c();
                match c
                    .driver_mut(from.parse().unwrap())
                    .unwrap()
                    .transfer_leader(RANGE, to.parse().unwrap())
                {
                    Ok(()) => "ok".into(),
                    Err(e) => format!("error: {e}"),
                }
            }
            ("run", [rounds]) => {
                self.c().run(rounds.parse().unwrap()).unwrap();
                "ok".into()
            }
            ("settle", []) => {
                let c = self.c();
                if !c.run_until(5000, |c| c.converged(RANGE)).unwrap() {
                    return "did not converge".into();
                }
                let applied: Vec<String> = c
                    .node_ids()
                    .into_iter()
                    .filter_map(|n| Some(format!("{n}:{}", c.driver(n)?.applied_index(RANGE)?)))
                    .collect();
                format!("applied {}", applied.join(" "))
            }
            ("isolate", [node]) => {
                self.c().isolate(node.parse().unwrap());
                "ok".into()
            }
            ("partition", [a, b]) => {
                self.c().partition(&ids(a), &ids(b));
                "ok".into()
            }
            ("heal", []) => {
                self.c().heal();
                "ok".into()
            }
            ("crash", [node]) => {
                self.c().crash(node.parse().unwrap());
                "ok".into()
            }
            ("restart", [node]) => {
                self.c().restart(node.parse().unwrap()).unwrap();
                "ok".into()
            }
            ("outcome", [token]) => match self.c().outcome(token.parse().unwrap()) {
                None => "pending".into(),
                Some(Event::Applied { reply, .. }) if reply.is_empty() => {
                    "applied (membership change)".into()
                }
                Some(Event::Applied { reply, .. }) => format!(
                    "applied at index {}",
                    u64::from_be_bytes(reply.as_slice().try_into().unwrap_or([0; 8]))
                ),
                Some(Event::ReadReady { .. }) => "read ready".into(),
                Some(Event::Failed { error, .. }) => format!("failed: {error}"),
                Some(other) => format!("{other:?}"),
            },
            ("status", []) => {
                let c = self.c();
                let mut lines = Vec::new();
                for n in c.node_ids() {
                    let Some(d) = c.driver(n) else {
                        lines.push(format!("node {n}: down"));
                        continue;
                    };
                    let Some(cs) = d.conf_state(RANGE) else {
                        lines.push(format!("node {n}: no replica"));
                        continue;
                    };
                    let role = if d.is_leader(RANGE) {
                        "leader"
                    } else {
                        "follower"
                    };
                    let stats = d.stats();
                    lines.push(format!(
                        "node {n}: {role} term={} applied={} log={} voters={} learners={} snapshots={}",
                        d.term(RANGE).unwrap_or(0),
                        d.applied_index(RANGE).unwrap_or(0),
                        stats.log_entries,
                        join(&cs.voters),
                        join(&cs.learners),
                        stats.snapshots_installed,
                    ));
                }
                lines.join("\n")
            }
            ("data", [node]) => {
                let pairs = self.c().data(node.parse().unwrap()).unwrap();
                if pairs.is_empty() {
                    return "(empty)".into();
                }
                pairs
                    .iter()
                    .map(|(k, v)| {
                        format!(
                            "{}={}",
                            String::from_utf8_lossy(k),
                            String::from_utf8_lossy(v)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            }
            _ => panic!("bad command: {line}"),
        }
    }
}

fn scripts() -> Vec<PathBuf> {
    script::scripts_in(&script::package_dir(env!("CARGO_MANIFEST_DIR")).join("tests/testdata"))
}

#[test]
fn raft_scripts() {
    for path in scripts() {
        let mut harness = Harness::default();
        script::run_script(&path, |line| harness.run(line));
    }
}
