//! The history of a chaos run: every operation a client invoked, when, and
//! how it ended — as the checkers read it, and as JSON for elle-cli.
//!
//! # What an outcome means
//!
//! A client knows one of three things about an operation it sent:
//!
//! * **ok** — the database answered success; the operation took effect
//!   (a read saw what it reports).
//! * **fail** — the database said it did not take effect: an error whose
//!   SQLSTATE promises nothing was written (serialization failure,
//!   deadlock, a constraint, a statement that never reached COMMIT).
//! * **info** — nobody knows: the connection broke, the answer timed out,
//!   or the error leaves the outcome open (`40003`, an unavailable range
//!   while committing). The operation may or may not have taken effect,
//!   at any moment after it was invoked; checkers must allow both.
//!
//! [`classify`] sorts errors conservatively: only SQLSTATEs that promise
//! nothing happened are `fail`; everything else is `info`. A misfiled
//! `info` only weakens a check; a misfiled `fail` would invent anomalies.
//!
//! # The JSON form
//!
//! [`History::to_json`] writes the Jepsen/elle-cli shape: one object per
//! event — an `invoke` event and a completion (`ok`, `fail` or `info`) per
//! operation — with `index`, `time` (nanoseconds since the run started),
//! `process`, `type`, `f` and `value`, in time order. A list-append
//! transaction's value is `[["append", k, v], ["r", k, [..]], …]`, the
//! form elle-cli's `list-append` model reads.

use std::time::Instant;

use serde_json::{Value, json};
use tokio_postgres::error::SqlState;

/// How an operation ended (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Took effect.
    Ok,
    /// Certainly did not take effect.
    Fail,
    /// Unknown.
    Info,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Ok => "ok",
            Kind::Fail => "fail",
            Kind::Info => "info",
        }
    }
}

/// One operation: what was asked, when, and what came of it.
#[derive(Debug, Clone)]
pub struct Op {
    /// The client process; a process whose operation ended `info` is
    /// retired and its client continues as a new process (Jepsen's rule:
    /// a process has at most one operation in flight).
    pub process: u64,
    /// The operation's function: `read`, `write`, `cas`, `transfer`, …
    pub f: &'static str,
    /// What was asked (arguments).
    pub invoke: Value,
    /// What came back (the read value, or the arguments again).
    pub value: Value,
    /// How it ended.
    pub kind: Kind,
    /// The error, for `fail` and `info`.
    pub error: Option<String>,
    /// Nanoseconds since the run started, at invocation.
    pub invoked: u64,
    /// Nanoseconds since the run started, at completion.
    pub completed: u64,
}

/// All operations of a run, in no particular order; times are since
/// `start`.
#[derive(Debug)]
pub struct History {
    pub start: Instant,
    pub ops: Vec<Op>,
}

impl History {
    /// A history of `ops` timed from `start`.
    pub fn new(start: Instant, ops: Vec<Op>) -> History {
        History { start, ops }
    }

    /// The number of operations that ended `kind`.
    pub fn count(&self, kind: Kind) -> usize {
        self.ops.iter().filter(|op| op.kind == kind).count()
    }

    /// The history as elle-cli JSON (module docs): an array of events in
    /// time order.
    pub fn to_json(&self) -> String {
        let mut events: Vec<(u64, u8, Value)> = Vec::with_capacity(2 * self.ops.len());
        for op in &self.ops {
            events.push((
                op.invoked,
                0,
                json!({"process": op.process, "type": "invoke", "f": op.f, "value": op.invoke}),
            ));
            let mut done = json!({
                "process": op.process,
                "type": op.kind.name(),
                "f": op.f,
                "value": op.value,
            });
            if let Some(error) = &op.error {
                done["error"] = json!(error);
            }
            events.push((op.completed, 1, done));
        }
        events.sort_by_key(|(time, order, _)| (*time, *order));
        let lines: Vec<String> = events
            .into_iter()
            .enumerate()
            .map(|(index, (time, _, mut event))| {
                event["index"] = json!(index);
                event["time"] = json!(time);
                event.to_string()
            })
            .collect();
        format!("[\n{}\n]\n", lines.join(",\n"))
    }
}

/// An error as a report shows it: `SQLSTATE: message` for the database's
/// errors, the client's own description (with its cause) otherwise.
pub fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => match std::error::Error::source(error) {
            Some(cause) => format!("{error}: {cause}"),
            None => error.to_string(),
        },
    }
}

/// Nanoseconds from `start` to now.
pub fn since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Whether a failed statement certainly had no effect (`Fail`) or may have
/// (`Info`) — module docs. `committing` says whether the statement could
/// have committed something (an autocommit write, or COMMIT); an error
/// before COMMIT in an explicit transaction is always `Fail`.
pub fn classify(error: &tokio_postgres::Error, committing: bool) -> Kind {
    let Some(code) = error.code() else {
        // No SQLSTATE: the connection broke or timed out.
        return if committing { Kind::Info } else { Kind::Fail };
    };
    if !committing {
        return Kind::Fail;
    }
    let certain = [
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::UNIQUE_VIOLATION,
        SqlState::CHECK_VIOLATION,
        SqlState::NOT_NULL_VIOLATION,
        SqlState::FOREIGN_KEY_VIOLATION,
        SqlState::IN_FAILED_SQL_TRANSACTION,
        SqlState::LOCK_NOT_AVAILABLE,
        SqlState::FEATURE_NOT_SUPPORTED,
        SqlState::UNDEFINED_TABLE,
        SqlState::SYNTAX_ERROR,
    ];
    if certain.contains(code) {
        Kind::Fail
    } else {
        Kind::Info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_events_come_in_time_order_with_indexes() {
        let mut history = History::new(Instant::now(), Vec::new());
        history.ops.push(Op {
            process: 1,
            f: "write",
            invoke: json!(5),
            value: json!(5),
            kind: Kind::Ok,
            error: None,
            invoked: 10,
            completed: 40,
        });
        history.ops.push(Op {
            process: 2,
            f: "read",
            invoke: Value::Null,
            value: Value::Null,
            kind: Kind::Info,
            error: Some("timed out".into()),
            invoked: 20,
            completed: 30,
        });
        let events: Vec<Value> = serde_json::from_str(&history.to_json()).unwrap();
        let shape: Vec<(u64, &str, u64)> = events
            .iter()
            .map(|e| {
                (
                    e["index"].as_u64().unwrap(),
                    e["type"].as_str().unwrap(),
                    e["time"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                (0, "invoke", 10),
                (1, "invoke", 20),
                (2, "info", 30),
                (3, "ok", 40)
            ]
        );
        assert_eq!(events[2]["error"], "timed out");
        assert_eq!(history.count(Kind::Ok), 1);
    }
}
