//! A linearizability checker for the history of one key, seen as a
//! register that calls read, write and compare-and-set.
//!
//! # What it decides
//!
//! Clients record each call they make to a key: the operation, when it was
//! invoked, and when (or whether) it returned. The history is
//! *linearizable* if every call can be given one instant between its
//! invocation and its return at which it took effect, such that the calls,
//! in the order of those instants, are a legal run of the register: each
//! read sees the value left by the write or compare-and-set before it, and
//! each successful compare-and-set found the value it expected. That is
//! what a client of a strongly consistent database may assume of a key.
//!
//! # The model
//!
//! The register holds `Option<i64>`: `None` is "no value" (row absent,
//! column NULL); the caller says what it held before the history began. A
//! read of `seen` is legal when the register holds `seen`; a write of `v`
//! always is, and leaves `Some(v)`; a compare-and-set `from → to` is legal
//! when the register holds `Some(from)`, and leaves `Some(to)`.
//!
//! # Calls whose outcome is not known
//!
//! A call that definitely had no effect ([`Outcome::Failed`]) is dropped,
//! and so is a read whose answer was lost: it changed nothing. A write or
//! compare-and-set whose answer was lost ([`Outcome::Unknown`]) may have
//! taken effect at any moment after its invocation, or never: it returns
//! at +∞, and may be left out of the linearization. The history is
//! linearizable when every call that returned successfully is placed.
//!
//! Such a call whose value no call read or expected after its invocation
//! is dropped too: had it taken effect, the next call to take effect would
//! have overwritten its value unseen, so leaving it out changes no
//! verdict, and the search does not double for each (common when a node
//! dies under load).
//!
//! # The algorithm
//!
//! Wing and Gong's search with Lowe's memoization ("WGL"). The calls become
//! a list of events sorted by time: an *entry* at each invocation and a
//! *return* at each successful return (unknown calls have none). An entry
//! and a return with the same time stamp are taken in that order, so the
//! two calls count as concurrent: the permissive choice, as it only adds
//! orders to try.
//!
//! The search walks the list from its head. At an entry that the register
//! allows in its current state, it linearizes the call: applies it, takes
//! its entry and return out of the list, pushes what it needs to undo
//! this on a stack, and starts again from the head. An entry the register
//! does not allow is stepped over, to be tried again after other calls.
//! Reaching the return of a call not yet linearized means no order tried
//! so far lets it take effect in time: the search undoes the latest
//! choice, puts that call back, and goes on from the entry after it. The
//! history is linearizable when the walk runs off the end of the list
//! (only unknown calls can be left there), and not when the stack is
//! empty at a return. The loop keeps its own stack, so long histories do
//! not recurse.
//!
//! Lowe's observation: what remains to be done depends only on *which*
//! calls are linearized and on the register's value, not on their order.
//! Every (set of linearized calls, value) pair reached is remembered, the
//! set as a bitset, and a choice that leads back to one is not explored
//! again.
//!
//! # Cost
//!
//! At any point of the search, let `t` be the earliest return of a call
//! not yet linearized: every call that returned before `t` is linearized,
//! and every linearized call was invoked by `t`. So a set is fixed by `t`
//! and by which calls in flight at `t` it holds: with `n` calls and at most
//! `c` in flight at once (an unknown call is in flight from its invocation
//! on), there are at most `n · 2^c` sets, each with at most one state per
//! value the register can hold. A state costs a walk over the calls in
//! flight and hashing `n` bits. A mostly sequential history takes about
//! linear time; heavy concurrency or many unknown calls cost exponentially,
//! and `budget` caps the number of states explored.
//!
//! # Reports
//!
//! A history that is not linearizable is reported with the longest prefix
//! the search could linearize (indices into the input slice, in order), the
//! register's value after it, the call whose return was reached, and every
//! call that could have been placed next, none of which the register
//! allowed. A call that returned before it was invoked makes the input
//! invalid: it is reported as not linearizable, naming such calls.

use std::collections::{HashMap, HashSet};

/// What a call did to the register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegOp {
    /// Read the register and saw `seen` (None: no value / NULL / row absent).
    Read { seen: Option<i64> },
    /// Wrote `value`.
    Write { value: i64 },
    /// Compare-and-set: if the register held `from`, it now holds `to`.
    /// Record only CAS calls that report success as `Ok`; a CAS that
    /// reported "no match" is [`Outcome::Failed`] (it did not change the
    /// register), and one whose answer was lost is [`Outcome::Unknown`].
    Cas { from: i64, to: i64 },
}

/// How a call ended, as its client knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Returned successfully at this time (same clock as `invoked`, e.g.
    /// nanoseconds since the run started).
    Ok { returned: u64 },
    /// Definitely had no effect (error before commit, aborted transaction,
    /// CAS mismatch).
    Failed,
    /// Unknown: the client lost the answer (timeout, connection dropped).
    /// It may have taken effect at any moment after `invoked`, or never.
    Unknown,
}

/// One call of a client to the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The client that made it (informational only).
    pub process: u64,
    /// What it did.
    pub op: RegOp,
    /// When it was invoked.
    pub invoked: u64,
    /// How it ended.
    pub outcome: Outcome,
}

/// Why a history is not linearizable, or why checking gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Some order of the calls explains every answer.
    Linearizable,
    /// No order does, or the input was invalid. The explanation, for a
    /// human, gives the longest prefix that could be linearized and the
    /// calls that could not be placed after it (module docs).
    NotLinearizable { explanation: String },
    /// The search explored `explored` states, the budget, undecided.
    GaveUp { explored: u64 },
}

/// Checks one key's history starting from `initial`. `budget` bounds the
/// number of search states explored ([`Verdict::GaveUp`] past it).
pub fn check(initial: Option<i64>, calls: &[Call], budget: u64) -> Verdict {
    let invalid: Vec<String> = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| matches!(c.outcome, Outcome::Ok { returned } if returned < c.invoked))
        .map(|(i, _)| format!("  {}", describe(calls, i)))
        .collect();
    if !invalid.is_empty() {
        let explanation = format!(
            "invalid history: calls returned before they were invoked:\n{}",
            invalid.join("\n")
        );
        return Verdict::NotLinearizable { explanation };
    }
    History::new(calls).search(initial, budget)
}

/// The register's answer to `op` in `state`: the next state, or `None`
/// when the operation cannot happen in that state.
fn step(state: Option<i64>, op: RegOp) -> Option<Option<i64>> {
    match op {
        RegOp::Read { seen } => (seen == state).then_some(state),
        RegOp::Write { value } => Some(Some(value)),
        RegOp::Cas { from, to } => (state == Some(from)).then_some(Some(to)),
    }
}

/// A set of calls, by index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(len: usize) -> Self {
        Bits(vec![0; len.div_ceil(64)])
    }

    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }

    fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
}

/// The calls that constrain the register, and their events in time order.
struct History<'a> {
    calls: &'a [Call],
    /// Input index of each kept call.
    kept: Vec<usize>,
    /// The events, sorted by time, entries before returns at equal times:
    /// (kept index of the call, whether it is its return).
    events: Vec<(usize, bool)>,
}

/// The events as a doubly linked list that calls can be taken out of and
/// put back into, in reverse order. Node 0 is the head, node `i + 1` is
/// event `i`, and the last node is the tail.
struct Links {
    next: Vec<usize>,
    prev: Vec<usize>,
}

impl Links {
    fn new(events: usize) -> Self {
        Links {
            next: (0..events + 2).map(|i| i + 1).collect(),
            prev: (0..events + 2).map(|i| i.saturating_sub(1)).collect(),
        }
    }

    fn unlink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = next;
        self.prev[next] = prev;
    }

    /// Undoes `unlink(node)`, when every later unlink has been undone.
    fn relink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = node;
        self.prev[next] = node;
    }
}

impl<'a> History<'a> {
    fn new(calls: &'a [Call]) -> Self {
        // For each value, the latest time at which a call observed it: a
        // read that saw it, or a compare-and-set that expected it.
        let mut observed: HashMap<i64, u64> = HashMap::new();
        for call in calls {
            let value = match call.op {
                RegOp::Read { seen: Some(value) } => value,
                RegOp::Cas { from, .. } => from,
                RegOp::Read { seen: None } | RegOp::Write { .. } => continue,
            };
            let until = match call.outcome {
                Outcome::Ok { returned } => returned,
                Outcome::Unknown if matches!(call.op, RegOp::Cas { .. }) => u64::MAX,
                Outcome::Unknown | Outcome::Failed => continue,
            };
            let latest = observed.entry(value).or_insert(until);
            *latest = (*latest).max(until);
        }
        let kept: Vec<usize> = (0..calls.len())
            .filter(|&i| match (calls[i].outcome, calls[i].op) {
                (Outcome::Ok { .. }, _) => true,
                (Outcome::Failed, _) | (Outcome::Unknown, RegOp::Read { .. }) => false,
                // An unknown call whose value nobody observed afterwards
                // changes nothing that any call can tell: leave it out.
                (Outcome::Unknown, RegOp::Write { value: v } | RegOp::Cas { to: v, .. }) => {
                    observed.get(&v).is_some_and(|&t| t >= calls[i].invoked)
                }
            })
            .collect();
        // (time, is a return, kept index) orders the events.
        let mut keyed: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * kept.len());
        for (k, &i) in kept.iter().enumerate() {
            keyed.push((calls[i].invoked, false, k));
            if let Outcome::Ok { returned } = calls[i].outcome {
                keyed.push((returned, true, k));
            }
        }
        keyed.sort_unstable();
        let events = keyed.into_iter().map(|(_, ret, k)| (k, ret)).collect();
        History {
            calls,
            kept,
            events,
        }
    }

    fn search(&self, initial: Option<i64>, budget: u64) -> Verdict {
        let tail = self.events.len() + 1;
        let mut links = Links::new(self.events.len());
        let mut return_node = vec![None; self.kept.len()];
        for (i, &(k, is_return)) in self.events.iter().enumerate() {
            if is_return {
                return_node[k] = Some(i + 1);
            }
        }
        let call_of = |node: usize| self.events[node - 1].0;

        let mut linearized = Bits::new(self.kept.len());
        let mut state = initial;
        // Each linearized call's entry node, and the value before it.
        let mut stack: Vec<(usize, Option<i64>)> = Vec::new();
        let mut seen: HashSet<(Bits, Option<i64>)> = HashSet::new();
        let mut explored: u64 = 0;
        // The longest linearized prefix so far, and the value after it;
        // `best[..same]` is still the bottom of the stack, so a longer
        // prefix is copied from there on, at a cost paid by the pushes.
        let mut best: Vec<usize> = Vec::new();
        let mut best_state = initial;
        let mut same = 0;

        let mut node = links.next[0];
        while node != tail {
            let (k, is_return) = self.events[node - 1];
            if !is_return {
                if let Some(after) = step(state, self.calls[self.kept[k]].op) {
                    linearized.set(k);
                    let key = (linearized.clone(), after);
                    if !seen.contains(&key) {
                        if explored >= budget {
                            return Verdict::GaveUp { explored };
                        }
                        explored += 1;
                        seen.insert(key);
                        stack.push((node, state));
                        state = after;
                        links.unlink(node);
                        if let Some(ret) = return_node[k] {
                            links.unlink(ret);
                        }
                        if stack.len() > best.len() {
                            best.truncate(same);
                            best.extend(stack[same..].iter().map(|&(n, _)| call_of(n)));
                            best_state = state;
                            same = stack.len();
                        }
                        node = links.next[0];
                        continue;
                    }
                    linearized.clear(k);
                }
                node = links.next[node];
            } else {
                // The call returns here and is not linearized: backtrack.
                let Some((entry, before)) = stack.pop() else {
                    let explanation = self.explain(&best, best_state, explored);
                    return Verdict::NotLinearizable { explanation };
                };
                same = same.min(stack.len());
                let call = call_of(entry);
                if let Some(ret) = return_node[call] {
                    links.relink(ret);
                }
                links.relink(entry);
                linearized.clear(call);
                state = before;
                node = links.next[entry];
            }
        }
        Verdict::Linearizable
    }

    /// Says why no call can follow `prefix` (kept indices, in order), after
    /// which the register holds `state`.
    fn explain(&self, prefix: &[usize], state: Option<i64>, explored: u64) -> String {
        let mut placed = Bits::new(self.kept.len());
        for &k in prefix {
            placed.set(k);
        }
        // The calls that could go next are those invoked before the first
        // return of a call not yet placed: exactly what the search tried.
        let mut candidates = Vec::new();
        let mut blocked = None;
        for &(k, is_return) in self.events.iter().filter(|e| !placed.get(e.0)) {
            if is_return {
                blocked = Some(k);
                break;
            }
            candidates.push(k);
        }
        let stuck = match blocked {
            Some(k) => format!(
                "call {} had to take effect before it returned",
                self.kept[k]
            ),
            None => "the search stopped".to_string(),
        };
        let mut lines = vec![format!(
            "not linearizable: after the longest prefix that could be linearized \
             ({} calls, listed below) the register holds {}; {stuck}, but none of \
             the calls that could go next is possible in that state:",
            prefix.len(),
            value_text(state)
        )];
        for k in candidates {
            lines.push(format!("  {}", describe(self.calls, self.kept[k])));
        }
        let order: Vec<String> = prefix.iter().map(|&k| self.kept[k].to_string()).collect();
        lines.push(format!(
            "longest linearizable prefix, in linearization order: [{}]",
            order.join(", ")
        ));
        lines.push(format!("({explored} search states explored)"));
        lines.join("\n")
    }
}

/// A register value, for a human.
fn value_text(value: Option<i64>) -> String {
    value.map_or_else(|| "no value".to_string(), |v| v.to_string())
}

/// Call `i` of `calls`, for a human.
fn describe(calls: &[Call], i: usize) -> String {
    let call = &calls[i];
    let op = match call.op {
        RegOp::Read { seen } => format!("read {}", value_text(seen)),
        RegOp::Write { value } => format!("write {value}"),
        RegOp::Cas { from, to } => format!("cas {from} -> {to}"),
    };
    let end = match call.outcome {
        Outcome::Ok { returned } => format!("returned at {returned}"),
        Outcome::Failed => "failed".to_string(),
        Outcome::Unknown => "outcome unknown".to_string(),
    };
    format!(
        "call {i} (process {}): {op}, invoked at {}, {end}",
        call.process, call.invoked
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: u64 = 100_000;

    fn read(seen: Option<i64>) -> RegOp {
        RegOp::Read { seen }
    }

    fn write(value: i64) -> RegOp {
        RegOp::Write { value }
    }

    fn cas(from: i64, to: i64) -> RegOp {
        RegOp::Cas { from, to }
    }

    fn ok(process: u64, op: RegOp, invoked: u64, returned: u64) -> Call {
        ended(process, op, invoked, Outcome::Ok { returned })
    }

    fn ended(process: u64, op: RegOp, invoked: u64, outcome: Outcome) -> Call {
        Call {
            process,
            op,
            invoked,
            outcome,
        }
    }

    fn explanation(verdict: Verdict) -> String {
        match verdict {
            Verdict::NotLinearizable { explanation } => explanation,
            other => panic!("expected NotLinearizable, got {other:?}"),
        }
    }

    #[test]
    fn sequential_read_after_write() {
        let calls = [
            ok(0, write(1), 0, 10),
            ok(0, read(Some(1)), 20, 30),
            ok(1, write(2), 40, 50),
            ok(1, read(Some(2)), 60, 70),
        ];
        assert_eq!(check(None, &calls, BUDGET), Verdict::Linearizable);
    }

    #[test]
    fn concurrent_writes_may_be_seen_in_either_order() {
        for (first, second) in [(1, 2), (2, 1)] {
            let calls = [
                ok(0, write(1), 0, 100),
                ok(1, write(2), 0, 100),
                ok(2, read(Some(first)), 10, 20),
                ok(2, read(Some(second)), 30, 40),
                ok(3, read(Some(second)), 200, 210),
            ];
            assert_eq!(check(None, &calls, BUDGET), Verdict::Linearizable);
        }
    }

    #[test]
    fn stale_read_after_completed_write() {
        let calls = [
            ok(0, write(1), 0, 10),
            ok(0, write(2), 20, 30),
            ok(1, read(Some(1)), 40, 50),
        ];
        let text = explanation(check(None, &calls, BUDGET));
        assert!(text.contains("holds 2; call 2 had to"), "{text}");
        assert!(text.contains("order: [0, 1]"), "{text}");
        assert!(text.contains("call 2 (process 1): read 1"), "{text}");
    }

    #[test]
    fn read_of_a_value_never_written() {
        let calls = [ok(0, write(1), 0, 10), ok(1, read(Some(7)), 5, 20)];
        explanation(check(Some(0), &calls, BUDGET));
    }

    #[test]
    fn read_of_a_write_invoked_after_the_read_returned() {
        let calls = [ok(0, read(Some(5)), 0, 10), ok(1, write(5), 20, 30)];
        explanation(check(None, &calls, BUDGET));
    }

    #[test]
    fn lost_update_by_two_cas_from_the_same_value() {
        let calls = [ok(0, cas(0, 1), 0, 10), ok(1, cas(0, 2), 20, 30)];
        explanation(check(Some(0), &calls, BUDGET));
    }

    #[test]
    fn overlapping_cas_where_one_fails() {
        let calls = [
            ok(0, cas(0, 1), 0, 10),
            ended(1, cas(0, 2), 5, Outcome::Failed),
            ok(2, read(Some(1)), 20, 30),
        ];
        assert_eq!(check(Some(0), &calls, BUDGET), Verdict::Linearizable);
    }

    #[test]
    fn unknown_write_later_read() {
        let calls = [
            ended(0, write(1), 0, Outcome::Unknown),
            ok(1, read(Some(0)), 10, 20),
            ok(1, read(Some(1)), 1_000, 1_010),
        ];
        assert_eq!(check(Some(0), &calls, BUDGET), Verdict::Linearizable);
    }

    #[test]
    fn unknown_write_never_observed() {
        let calls = [
            ended(0, write(1), 0, Outcome::Unknown),
            ended(0, read(Some(9)), 5, Outcome::Unknown),
            ok(1, read(Some(0)), 10, 20),
            ok(1, write(2), 30, 40),
            ok(1, read(Some(2)), 50, 60),
        ];
        assert_eq!(check(Some(0), &calls, BUDGET), Verdict::Linearizable);
    }

    #[test]
    fn unknown_cas_that_cannot_apply_stays_out() {
        // The first is kept (the second expects its value), never placed.
        let calls = [
            ended(0, cas(3, 4), 0, Outcome::Unknown),
            ended(1, cas(4, 5), 0, Outcome::Unknown),
            ok(2, read(Some(0)), 10, 20),
        ];
        assert_eq!(check(Some(0), &calls, BUDGET), Verdict::Linearizable);
    }

    #[test]
    fn unknown_write_observed_then_unobserved() {
        let calls = [
            ended(0, write(1), 0, Outcome::Unknown),
            ok(1, read(Some(1)), 10, 20),
            ok(1, read(Some(0)), 30, 40),
        ];
        let text = explanation(check(Some(0), &calls, BUDGET));
        assert!(text.contains("call 2 (process 1): read 0"), "{text}");
    }

    #[test]
    fn many_unobserved_unknown_writes_stay_cheap() {
        let mut calls: Vec<Call> = (0..60)
            .map(|v| ended(v, write(100 + v as i64), 0, Outcome::Unknown))
            .collect();
        calls.push(ok(90, write(1), 10, 20));
        calls.push(ok(90, write(2), 30, 40));
        calls.push(ok(91, read(Some(1)), 50, 60));
        explanation(check(None, &calls, 1_000));
        calls.pop();
        calls.push(ok(91, read(Some(100)), 50, 60));
        assert_eq!(check(None, &calls, 1_000), Verdict::Linearizable);
    }

    #[test]
    fn initial_none_read() {
        let calls = [ok(0, read(None), 0, 10), ok(0, write(3), 20, 30)];
        assert_eq!(check(None, &calls, BUDGET), Verdict::Linearizable);
        explanation(check(Some(3), &calls[..1], BUDGET));
    }

    #[test]
    fn entries_and_returns_at_the_same_time_overlap() {
        let calls = [ok(0, read(Some(1)), 0, 10), ok(1, write(1), 10, 20)];
        assert_eq!(check(None, &calls, BUDGET), Verdict::Linearizable);
    }

    #[test]
    fn budget_of_one_gives_up() {
        let calls = [
            ok(0, write(1), 0, 100),
            ok(1, write(2), 0, 100),
            ok(2, read(Some(1)), 10, 20),
        ];
        assert_eq!(check(None, &calls, 1), Verdict::GaveUp { explored: 1 });
    }

    #[test]
    fn long_mostly_sequential_history_finishes() {
        let mut calls = Vec::new();
        let mut t = 0;
        let mut i: i64 = 0;
        while calls.len() < 2_000 {
            calls.push(ok(0, write(i), t, t + 10));
            if i % 4 == 0 {
                // Another writer overlaps the read, which sees either write.
                let other = 10_000 + i;
                let (during, last) = if i % 8 == 0 {
                    (other, other)
                } else {
                    (i, other)
                };
                calls.push(ok(1, write(other), t + 5, t + 25));
                calls.push(ok(0, read(Some(during)), t + 12, t + 20));
                calls.push(ok(1, read(Some(last)), t + 30, t + 40));
            } else if i % 7 == 0 {
                // An unknown write, observed every other time.
                let seen = if i % 2 == 0 { -i } else { i };
                calls.push(ended(2, write(-i), t + 11, Outcome::Unknown));
                calls.push(ok(0, read(Some(seen)), t + 30, t + 40));
            } else {
                calls.push(ok(0, read(Some(i)), t + 12, t + 20));
                calls.push(ok(1, read(Some(i)), t + 15, t + 40));
            }
            t += 100;
            i += 1;
        }
        // About one state per call: the search hardly backtracks.
        assert_eq!(check(None, &calls, 3_000), Verdict::Linearizable);
    }

    #[test]
    fn returned_before_invoked_is_invalid() {
        let calls = [ok(0, write(1), 0, 10), ok(1, read(Some(1)), 30, 20)];
        let text = explanation(check(None, &calls, BUDGET));
        assert!(text.contains("invalid history"), "{text}");
        assert!(text.contains("call 1 (process 1)"), "{text}");
    }
}
