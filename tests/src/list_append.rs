//! An Elle-style checker of list-append histories (Kingsbury & Alvaro,
//! "Elle: Inferring Isolation Anomalies from Experimental Observations").
//!
//! # The workload it judges
//!
//! Every key holds a list. A transaction is a few operations, each an
//! *append* of a value to a key's list or a *read* of a key's whole list.
//! Appended values are unique per key, so every value names the one
//! transaction that appended it, and since lists only grow, the longest
//! list read of a key reveals the order in which its appends were
//! installed (its *version order*); every other read of the key must be a
//! prefix of it.
//!
//! # What it infers
//!
//! Between transactions that committed (and those whose outcome is
//! unknown but whose appends somebody read: they committed), edges:
//!
//! * **ww**: `T1` appended the value right before `T2`'s in a key's order;
//! * **wr**: `T2` read a list whose last value `T1` appended;
//! * **rw**: `T1` read a list that `T2`'s append extends next (an
//!   anti-dependency: `T1` did not see `T2`'s write).
//!
//! # The anomalies (Adya's)
//!
//! * **G0** (write cycle): a cycle of ww edges.
//! * **G1a** (aborted read): a committed read shows a value of a
//!   transaction that aborted.
//! * **G1b** (intermediate read): a committed read ends with a value its
//!   transaction later followed with another append to the same key.
//! * **G1c** (circular information flow): a cycle of ww and wr edges.
//! * **G-single** (read skew): a cycle with exactly one rw edge.
//! * **G2** (anti-dependency cycle, e.g. write skew): a cycle with more
//!   than one rw edge.
//! * **Incompatible order**: two reads of a key that are not prefixes of
//!   one another — the key's history forked.
//!
//! A serializable history has none of them. The checker is tested first
//! on hand-made histories with each anomaly (this file's tests), so that
//! finding none in a real run means something.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

/// One operation of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Append `value` to the list of `key`.
    Append {
        /// The key.
        key: u32,
        /// The value, unique per key.
        value: u32,
    },
    /// The whole list of `key`, as read (`None`: the read did not answer).
    Read {
        /// The key.
        key: u32,
        /// The list read.
        list: Option<Vec<u32>>,
    },
}

/// How a transaction ended, as its client knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// COMMIT succeeded.
    Committed,
    /// It certainly did not commit (an error before or at COMMIT that
    /// says so).
    Aborted,
    /// Nobody knows (the connection broke during COMMIT).
    Unknown,
}

/// A transaction of the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    /// Its operations, in order.
    pub ops: Vec<Op>,
    /// How it ended.
    pub outcome: Outcome,
}

/// What kind of dependency an edge is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dep {
    /// Write → write.
    Ww,
    /// Write → read.
    Wr,
    /// Read → later write (anti-dependency).
    Rw,
}

/// An anomaly found, with the transactions (indexes into the history)
/// that show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anomaly {
    /// A cycle of ww edges.
    G0(Vec<usize>),
    /// `reader` read `value` of `key`, appended by aborted `writer`.
    G1a {
        /// The committed reader.
        reader: usize,
        /// The aborted writer.
        writer: usize,
        /// The key.
        key: u32,
        /// The value.
        value: u32,
    },
    /// `reader` read `key` ending at `value`, an intermediate append of
    /// `writer`.
    G1b {
        /// The reader.
        reader: usize,
        /// The writer.
        writer: usize,
        /// The key.
        key: u32,
        /// The value.
        value: u32,
    },
    /// A cycle of ww and wr edges.
    G1c(Vec<usize>),
    /// A cycle with exactly one rw edge.
    GSingle(Vec<usize>),
    /// A cycle with more than one rw edge.
    G2(Vec<usize>),
    /// Two reads of `key` that are not prefixes of one another.
    IncompatibleOrder {
        /// The key.
        key: u32,
    },
}

impl Anomaly {
    /// The anomaly's name, as in the literature.
    pub fn name(&self) -> &'static str {
        match self {
            Anomaly::G0(_) => "G0",
            Anomaly::G1a { .. } => "G1a",
            Anomaly::G1b { .. } => "G1b",
            Anomaly::G1c(_) => "G1c",
            Anomaly::GSingle(_) => "G-single",
            Anomaly::G2(_) => "G2",
            Anomaly::IncompatibleOrder { .. } => "incompatible-order",
        }
    }
}

type Graph = HashMap<usize, Vec<(usize, Dep)>>;

/// Every anomaly of `history` (module docs); empty for a serializable one.
pub fn check(history: &[Txn]) -> Vec<Anomaly> {
    let mut anomalies = Vec::new();
    // (key, value) → (writer, whether it is the writer's last append to key).
    let mut writer: HashMap<(u32, u32), (usize, bool)> = HashMap::new();
    for (t, txn) in history.iter().enumerate() {
        let mut last: HashMap<u32, u32> = HashMap::new();
        for op in &txn.ops {
            if let Op::Append { key, value } = op {
                last.insert(*key, *value);
            }
        }
        for op in &txn.ops {
            if let Op::Append { key, value } = op {
                writer.insert((*key, *value), (t, last.get(key) == Some(value)));
            }
        }
    }
    let reads = |t: usize| {
        history[t].ops.iter().filter_map(|op| match op {
            Op::Read {
                key,
                list: Some(list),
            } => Some((*key, list)),
            _ => None,
        })
    };
    let committed: Vec<usize> = (0..history.len())
        .filter(|&t| history[t].outcome == Outcome::Committed)
        .collect();

    // Transactions known to have committed: those whose COMMIT succeeded,
    // and those of unknown outcome whose appends one of them read.
    let mut in_graph: HashSet<usize> = committed.iter().copied().collect();
    let mut frontier = committed.clone();
    while let Some(r) = frontier.pop() {
        for (key, list) in reads(r) {
            for &value in list {
                if let Some(&(w, _)) = writer.get(&(key, value))
                    && history[w].outcome == Outcome::Unknown
                    && in_graph.insert(w)
                {
                    frontier.push(w);
                }
            }
        }
    }
    let mut committed: Vec<usize> = in_graph.iter().copied().collect();
    committed.sort_unstable();

    // Aborted and intermediate reads.
    for &r in &committed {
        for (key, list) in reads(r) {
            for &value in list {
                if let Some(&(w, _)) = writer.get(&(key, value))
                    && history[w].outcome == Outcome::Aborted
                {
                    anomalies.push(Anomaly::G1a {
                        reader: r,
                        writer: w,
                        key,
                        value,
                    });
                }
            }
            if let Some(&value) = list.last()
                && let Some(&(w, is_last)) = writer.get(&(key, value))
                && w != r
                && !is_last
            {
                anomalies.push(Anomaly::G1b {
                    reader: r,
                    writer: w,
                    key,
                    value,
                });
            }
        }
    }

    // Version orders: the longest committed read of each key.
    let mut order: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for &r in &committed {
        for (key, list) in reads(r) {
            let longest = order.entry(key).or_default();
            if list.len() > longest.len() {
                *longest = list.clone();
            }
        }
    }
    let mut forked = HashSet::new();
    for &r in &committed {
        for (key, list) in reads(r) {
            if !order[&key].starts_with(list) && forked.insert(key) {
                anomalies.push(Anomaly::IncompatibleOrder { key });
            }
        }
    }

    // The dependency graph among transactions in it.
    let mut graph: Graph = HashMap::new();
    let mut edge = |from: usize, to: usize, dep: Dep| {
        if from != to && in_graph.contains(&from) && in_graph.contains(&to) {
            graph.entry(from).or_default().push((to, dep));
        }
    };
    let author = |key: u32, value: u32| writer.get(&(key, value)).map(|&(w, _)| w);
    for (&key, values) in &order {
        for pair in values.windows(2) {
            if let (Some(a), Some(b)) = (author(key, pair[0]), author(key, pair[1])) {
                edge(a, b, Dep::Ww);
            }
        }
    }
    for &r in &committed {
        for (key, list) in reads(r) {
            if let Some(w) = list.last().and_then(|&v| author(key, v)) {
                edge(w, r, Dep::Wr);
            }
            if let Some(w) = order[&key].get(list.len()).and_then(|&v| author(key, v)) {
                edge(r, w, Dep::Rw);
            }
        }
    }
    anomalies.extend(cycles(&graph));
    anomalies
}

/// The cycle anomalies of `graph`, one per strongly connected component
/// and kind.
fn cycles(graph: &Graph) -> Vec<Anomaly> {
    let mut found = Vec::new();
    let only = |deps: &[Dep]| -> Graph {
        graph
            .iter()
            .map(|(&from, to)| {
                let kept = to
                    .iter()
                    .filter(|(_, d)| deps.contains(d))
                    .copied()
                    .collect();
                (from, kept)
            })
            .collect()
    };
    let write_only = only(&[Dep::Ww]);
    let no_anti = only(&[Dep::Ww, Dep::Wr]);
    for component in components(&write_only) {
        found.push(Anomaly::G0(component));
    }
    for component in components(&no_anti) {
        if !found
            .iter()
            .any(|a| matches!(a, Anomaly::G0(c) if c.iter().all(|t| component.contains(t))))
        {
            found.push(Anomaly::G1c(component));
        }
    }
    for component in components(graph) {
        let members: HashSet<usize> = component.iter().copied().collect();
        let anti: Vec<(usize, usize)> = component
            .iter()
            .flat_map(|&from| {
                graph[&from]
                    .iter()
                    .filter(|(to, d)| *d == Dep::Rw && members.contains(to))
                    .map(move |&(to, _)| (from, to))
            })
            .collect();
        if anti.is_empty() {
            continue; // Already reported as G0 or G1c.
        }
        // One rw edge closed by ww/wr edges is G-single; otherwise every
        // cycle through the component needs two or more rw edges: G2.
        let single = anti
            .iter()
            .find_map(|&(from, to)| path(&no_anti, to, from, &members).map(|p| (from, p)));
        found.push(match single {
            Some((from, mut cycle)) => {
                cycle.insert(0, from);
                cycle.pop();
                Anomaly::GSingle(cycle)
            }
            None => Anomaly::G2(component),
        });
    }
    found
}

/// A path from `from` to `to` inside `members`, both ends included.
fn path(graph: &Graph, from: usize, to: usize, members: &HashSet<usize>) -> Option<Vec<usize>> {
    let mut parent: HashMap<usize, usize> = HashMap::new();
    let mut queue = VecDeque::from([from]);
    let mut seen = HashSet::from([from]);
    while let Some(at) = queue.pop_front() {
        if at == to {
            let mut out = vec![to];
            let mut cur = to;
            while let Some(&p) = parent.get(&cur) {
                out.push(p);
                cur = p;
            }
            out.reverse();
            return Some(out);
        }
        for &(next, _) in graph.get(&at).map(Vec::as_slice).unwrap_or_default() {
            if members.contains(&next) && seen.insert(next) {
                parent.insert(next, at);
                queue.push_back(next);
            }
        }
    }
    None
}

/// The strongly connected components of more than one node (Tarjan's
/// algorithm, iterative), each sorted.
fn components(graph: &Graph) -> Vec<Vec<usize>> {
    let mut index: HashMap<usize, usize> = HashMap::new();
    let mut low: HashMap<usize, usize> = HashMap::new();
    let mut on_stack: HashSet<usize> = HashSet::new();
    let mut stack: Vec<usize> = Vec::new();
    let mut out = Vec::new();
    let mut next = 0;
    let mut nodes: Vec<usize> = graph.keys().copied().collect();
    nodes.sort_unstable();
    let succ = |n: usize| -> Vec<usize> {
        graph
            .get(&n)
            .map(|v| v.iter().map(|(t, _)| *t).collect())
            .unwrap_or_default()
    };
    for root in nodes {
        if index.contains_key(&root) {
            continue;
        }
        // (node, its successors, how many of them are done)
        let mut work: Vec<(usize, Vec<usize>, usize)> = Vec::new();
        index.insert(root, next);
        low.insert(root, next);
        next += 1;
        stack.push(root);
        on_stack.insert(root);
        work.push((root, succ(root), 0));
        while let Some((node, succs, done)) = work.last_mut() {
            let node = *node;
            if let Some(&s) = succs.get(*done) {
                *done += 1;
                if let Entry::Vacant(slot) = index.entry(s) {
                    slot.insert(next);
                    low.insert(s, next);
                    next += 1;
                    stack.push(s);
                    on_stack.insert(s);
                    work.push((s, succ(s), 0));
                } else if on_stack.contains(&s) {
                    let l = low[&node].min(index[&s]);
                    low.insert(node, l);
                }
                continue;
            }
            work.pop();
            if let Some((parent, _, _)) = work.last() {
                let l = low[parent].min(low[&node]);
                low.insert(*parent, l);
            }
            if low[&node] == index[&node] {
                let mut component = Vec::new();
                while let Some(member) = stack.pop() {
                    on_stack.remove(&member);
                    component.push(member);
                    if member == node {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort_unstable();
                    out.push(component);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(key: u32, value: u32) -> Op {
        Op::Append { key, value }
    }

    fn read(key: u32, list: &[u32]) -> Op {
        Op::Read {
            key,
            list: Some(list.to_vec()),
        }
    }

    fn ok(ops: Vec<Op>) -> Txn {
        Txn {
            ops,
            outcome: Outcome::Committed,
        }
    }

    fn names(history: &[Txn]) -> Vec<&'static str> {
        let mut names: Vec<_> = check(history).iter().map(Anomaly::name).collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn a_serial_history_is_clean() {
        let history = vec![
            ok(vec![append(1, 1), append(2, 1)]),
            ok(vec![read(1, &[1]), append(1, 2)]),
            ok(vec![read(1, &[1, 2]), read(2, &[1]), append(2, 2)]),
            ok(vec![read(2, &[1, 2]), read(3, &[])]),
        ];
        assert!(check(&history).is_empty(), "{:?}", check(&history));
    }

    #[test]
    fn write_cycles_are_g0() {
        // T0 before T1 on key 1, T1 before T0 on key 2.
        let history = vec![
            ok(vec![append(1, 1), append(2, 2)]),
            ok(vec![append(1, 2), append(2, 1)]),
            ok(vec![read(1, &[1, 2]), read(2, &[1, 2])]),
        ];
        assert_eq!(check(&history)[0], Anomaly::G0(vec![0, 1]));
    }

    #[test]
    fn reading_an_aborted_write_is_g1a() {
        let history = vec![
            Txn {
                ops: vec![append(1, 1)],
                outcome: Outcome::Aborted,
            },
            ok(vec![read(1, &[1])]),
        ];
        assert_eq!(names(&history), ["G1a"]);
    }

    #[test]
    fn reading_an_intermediate_write_is_g1b() {
        let history = vec![
            ok(vec![append(1, 1), append(1, 2)]),
            ok(vec![read(1, &[1])]),
        ];
        assert!(names(&history).contains(&"G1b"));
    }

    #[test]
    fn circular_information_flow_is_g1c() {
        // Each reads the other's write.
        let history = vec![
            ok(vec![append(1, 1), read(2, &[1])]),
            ok(vec![append(2, 1), read(1, &[1])]),
        ];
        assert_eq!(names(&history), ["G1c"]);
    }

    #[test]
    fn read_skew_is_g_single() {
        // T1 moves x and y; T0 reads the old x and the new y.
        let history = vec![
            ok(vec![read(1, &[]), read(2, &[1])]),
            ok(vec![append(1, 1), append(2, 1)]),
            ok(vec![read(1, &[1]), read(2, &[1])]),
        ];
        assert_eq!(names(&history), ["G-single"]);
    }

    #[test]
    fn write_skew_is_g2() {
        // Each reads both keys empty and appends to one of them.
        let history = vec![
            ok(vec![read(1, &[]), read(2, &[]), append(1, 1)]),
            ok(vec![read(1, &[]), read(2, &[]), append(2, 1)]),
            ok(vec![read(1, &[1]), read(2, &[1])]),
        ];
        assert_eq!(names(&history), ["G2"]);
    }

    #[test]
    fn forked_histories_are_incompatible() {
        let history = vec![
            ok(vec![append(1, 1)]),
            ok(vec![append(1, 2)]),
            ok(vec![read(1, &[1])]),
            ok(vec![read(1, &[2])]),
        ];
        assert!(names(&history).contains(&"incompatible-order"));
    }

    #[test]
    fn an_unknown_outcome_counts_once_its_write_is_seen() {
        // The unknown transaction committed (its value was read), and with
        // it the history has write skew.
        let history = vec![
            ok(vec![read(1, &[]), read(2, &[]), append(1, 1)]),
            Txn {
                ops: vec![read(1, &[]), read(2, &[]), append(2, 1)],
                outcome: Outcome::Unknown,
            },
            ok(vec![read(1, &[1]), read(2, &[1])]),
        ];
        assert_eq!(names(&history), ["G2"]);
        // Unseen, it is left out.
        let history = vec![
            ok(vec![read(1, &[]), read(2, &[]), append(1, 1)]),
            Txn {
                ops: vec![read(1, &[]), read(2, &[]), append(2, 1)],
                outcome: Outcome::Unknown,
            },
            ok(vec![read(1, &[1]), read(2, &[])]),
        ];
        assert!(check(&history).is_empty());
    }
}
