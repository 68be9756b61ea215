//! Executing records over a PostgreSQL connection and judging the answers.
//!
//! The runner walks a file's records in order with a little state: the current
//! `hash-threshold` and the result hash of each query label seen so far. Every SQL
//! text is sent with the simple query protocol, so values come back as text exactly as
//! `psql` would show them, and a record may hold several statements.
//!
//! The work is split in two so that the judging can be tested without a server:
//!
//! * `Session::execute` turns one round trip into an `Exec`: rows, a server error,
//!   a lost connection, or a timeout;
//! * `judge` decides pass or fail from the record and the `Exec`, and `compare`
//!   matches a formatted, ordered value list against the expected one.
//!
//! Comparison rules. A hashed expectation (`N values hashing to <md5>`) compares the
//! count and the hash. A value list matches if its lines equal the values one for one
//! (the SQLite corpus: one value per line), or, failing that, if the whitespace-split
//! words of both sides are equal (Shoal's files: a row per line). `hash-threshold`
//! does not change what passes — an expectation is matched in the form it was written —
//! it only makes failure reports show long actual results as a hash.
//!
//! A `statement error` passes on any error, except that a pattern shaped like a SQLSTATE
//! (five characters, upper-case letters and digits, at least one digit, e.g. `42P01`)
//! must equal the error's code. Other patterns (regular expressions in sqllogictest-rs
//! files) are shown in reports but not enforced: no regex engine is linked.
//!
//! Connection trouble. Each round trip is bounded by the per-record timeout. On a
//! timeout the query is cancelled and the session reopened, because a dropped
//! tokio-postgres future leaves its query running ahead of every later one. A closed
//! connection fails the record in flight and the runner reconnects; session state such
//! as an open transaction is lost, which the report notes. A FATAL server error also
//! ends the session, so it triggers the same reconnect, before the next record. When reconnecting fails —
//! the server is gone — or the connection has been lost too often, or queries keep
//! timing out, the rest of the file is abandoned: its records count as failed without
//! being sent, so a crash never hangs the run or inflates the pass count.

use std::collections::HashMap;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use crate::format::{arrange, format_row, hash_values};
use crate::parser::{Expected, Query, Record, RecordKind, StatementExpect};
use crate::report::{Failure, FailureDetail, FileReport};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);
/// Lost connections tolerated per file before the rest of it is abandoned.
const MAX_RECONNECTS: usize = 3;
/// Timeouts in a row after which the server is considered hung.
const MAX_CONSECUTIVE_TIMEOUTS: usize = 3;

pub struct RunConfig {
    /// The name matched by `skipif` / `onlyif`.
    pub engine: String,
    pub timeout: Duration,
    pub fail_fast: bool,
}

/// The result of one round trip.
#[derive(Debug)]
pub enum Exec {
    Rows(Vec<Vec<Option<String>>>),
    /// A server error. `fatal` (severity FATAL or PANIC) means the server also
    /// closed the session, as PostgreSQL does after e.g. `pg_terminate_backend`.
    Error {
        code: String,
        message: String,
        fatal: bool,
    },
    Lost(String),
    TimedOut(Duration),
}

struct Session {
    client: Client,
    connection: JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl Session {
    async fn connect(config: &str) -> Result<Session, String> {
        let (client, connection) =
            tokio::time::timeout(CONNECT_TIMEOUT, tokio_postgres::connect(config, NoTls))
                .await
                .map_err(|_| format!("connecting timed out after {}s", CONNECT_TIMEOUT.as_secs()))?
                .map_err(|e| format!("connecting failed: {}", describe(&e)))?;
        let connection = tokio::spawn(async move {
            // The error also reaches the client as a closed connection; nothing to add.
            let _ = connection.await;
        });
        Ok(Session { client, connection })
    }

    async fn execute(&self, sql: &str, timeout: Duration) -> Exec {
        let messages = match tokio::time::timeout(timeout, self.client.simple_query(sql)).await {
            Err(_) => return Exec::TimedOut(timeout),
            Ok(Ok(messages)) => messages,
            Ok(Err(e)) => {
                return match e.as_db_error() {
                    Some(db) => Exec::Error {
                        code: db.code().code().to_string(),
                        message: db.message().to_string(),
                        fatal: matches!(db.severity(), "FATAL" | "PANIC"),
                    },
                    None if e.is_closed() || self.client.is_closed() => Exec::Lost(describe(&e)),
                    None => Exec::Error {
                        code: String::new(),
                        message: describe(&e),
                        fatal: false,
                    },
                };
            }
        };
        let rows = messages
            .iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_string))
                        .collect(),
                ),
                _ => None,
            })
            .collect();
        Exec::Rows(rows)
    }

    /// Best effort: asks the server to stop the query still running after a timeout.
    async fn cancel(&self) {
        let token = self.client.cancel_token();
        let _ = tokio::time::timeout(CANCEL_TIMEOUT, token.cancel_query(NoTls)).await;
    }
}

/// Per-file state carried from record to record.
#[derive(Default)]
pub struct FileState {
    hash_threshold: usize,
    /// Label → (hash, line of the query that set it).
    labels: HashMap<String, (String, usize)>,
}

/// Runs `records` against the server at `config`, recording into `report`. Returns
/// `false` if `fail_fast` stopped the run.
pub async fn run_file(
    records: &[Record],
    config: &str,
    cfg: &RunConfig,
    report: &mut FileReport,
) -> bool {
    let mut state = FileState::default();
    let mut session = match Session::connect(config).await {
        Ok(s) => Some(s),
        Err(e) => {
            report.note(format!("{e}; every record counted as failed"));
            None
        }
    };
    let mut reconnects = 0;
    let mut timeouts_in_a_row = 0;
    for record in records {
        if !record.applies_to(&cfg.engine) {
            if record.sql().is_some() {
                report.skip();
            }
            continue;
        }
        let sql = match &record.kind {
            RecordKind::HashThreshold(n) => {
                state.hash_threshold = *n;
                continue;
            }
            RecordKind::Halt => break,
            RecordKind::Statement { sql, .. } => sql,
            RecordKind::Query(q) => &q.sql,
        };
        let Some(live) = &session else {
            report.abandon();
            continue;
        };
        let exec = live.execute(sql, cfg.timeout).await;

        match &exec {
            Exec::TimedOut(_) => {
                timeouts_in_a_row += 1;
                live.cancel().await;
                session = None;
                if timeouts_in_a_row >= MAX_CONSECUTIVE_TIMEOUTS {
                    report.note(format!(
                        "{timeouts_in_a_row} records in a row timed out (last at line {}); \
                         the rest of the file counted as failed",
                        record.line
                    ));
                } else {
                    session = reopen(config, record.line, "timed out", report).await;
                }
            }
            // The record is judged on the error like any other, but the session is
            // gone: reconnect now rather than fail the next record on a dead socket.
            Exec::Error {
                fatal: true,
                message,
                ..
            } => {
                timeouts_in_a_row = 0;
                // Close the old socket before opening the new one.
                drop(session.take());
                let why = format!("ended the session ({message})");
                session = reopen(config, record.line, &why, report).await;
            }
            Exec::Lost(msg) => {
                timeouts_in_a_row = 0;
                reconnects += 1;
                session = None;
                if reconnects > MAX_RECONNECTS {
                    report.note(format!(
                        "connection lost at line {} ({msg}) for the {reconnects}th time; \
                         the rest of the file counted as failed",
                        record.line
                    ));
                } else {
                    let why = format!("lost the connection ({msg})");
                    session = reopen(config, record.line, &why, report).await;
                }
            }
            Exec::Rows(_) | Exec::Error { .. } => timeouts_in_a_row = 0,
        }

        match judge(record, exec, &mut state) {
            Ok(()) => report.pass(),
            Err(detail) => {
                report.fail(Failure {
                    line: record.line,
                    kind: match record.kind {
                        RecordKind::Query(_) => "query",
                        _ => "statement",
                    },
                    sql: sql.clone(),
                    detail,
                });
                if cfg.fail_fast {
                    return false;
                }
            }
        }
    }
    true
}

/// Opens a new session after trouble at `line`, noting the outcome in the report.
async fn reopen(config: &str, line: usize, why: &str, report: &mut FileReport) -> Option<Session> {
    match Session::connect(config).await {
        Ok(s) => {
            report.note(format!(
                "line {line} {why}; reconnected (session state was reset)"
            ));
            Some(s)
        }
        Err(e) => {
            report.note(format!(
                "line {line} {why}; reconnecting failed ({e}): server down? the rest of the file counted as failed"
            ));
            None
        }
    }
}

/// A client error with its causes (`error connecting to server: Connection refused`);
/// tokio-postgres's own `Display` stops at the outermost layer (`db error`).
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.message().to_string();
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn is_sqlstate(pattern: &str) -> bool {
    pattern.len() == 5
        && pattern
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        && pattern.bytes().any(|b| b.is_ascii_digit())
}

fn describe_error(code: &str, message: &str) -> String {
    if code.is_empty() {
        format!("error: {message}")
    } else {
        format!("error: {message} (SQLSTATE {code})")
    }
}

/// Decides whether `record` passed given what the server did.
pub fn judge(record: &Record, exec: Exec, state: &mut FileState) -> Result<(), FailureDetail> {
    let fail = |m: String| Err(FailureDetail::Message(m));
    let rows = match exec {
        Exec::TimedOut(after) => return fail(format!("timed out after {}s", after.as_secs())),
        Exec::Lost(msg) => return fail(format!("connection lost: {msg}")),
        Exec::Error { code, message, .. } => {
            return match &record.kind {
                RecordKind::Statement {
                    expect: StatementExpect::Error(Some(p)),
                    ..
                } if is_sqlstate(p) && *p != code => fail(format!(
                    "expected SQLSTATE {p}, got {}",
                    describe_error(&code, &message)
                )),
                RecordKind::Statement {
                    expect: StatementExpect::Error(_),
                    ..
                } => Ok(()),
                _ => fail(describe_error(&code, &message)),
            };
        }
        Exec::Rows(rows) => rows,
    };
    match &record.kind {
        RecordKind::Statement {
            expect: StatementExpect::Ok,
            ..
        } => Ok(()),
        RecordKind::Statement {
            expect: StatementExpect::Error(pattern),
            ..
        } => fail(match pattern {
            Some(p) => format!("succeeded, but an error was expected: {p}"),
            None => "succeeded, but an error was expected".to_string(),
        }),
        RecordKind::Query(query) => judge_rows(query, record.line, rows, state),
        RecordKind::HashThreshold(_) | RecordKind::Halt => Ok(()),
    }
}

fn judge_rows(
    query: &Query,
    line: usize,
    rows: Vec<Vec<Option<String>>>,
    state: &mut FileState,
) -> Result<(), FailureDetail> {
    if let Some(row) = rows.first()
        && row.len() != query.types.len()
    {
        return Err(FailureDetail::Message(format!(
            "query returned {} columns, the record declares {}",
            row.len(),
            query.types.len()
        )));
    }
    let formatted = rows.iter().map(|r| format_row(r, &query.types)).collect();
    let values = arrange(formatted, query.sort);
    compare(&query.expected, &values, state.hash_threshold)?;
    if let Some(label) = &query.label {
        let hash = hash_values(&values);
        match state.labels.get(label) {
            Some((first, first_line)) if *first != hash => {
                return Err(FailureDetail::Message(format!(
                    "label {label}: results hash to {hash}, but the query at line {first_line} hashed to {first}"
                )));
            }
            Some(_) => {}
            // Only a query that matched its own expectation sets the label's hash, so
            // one wrong answer is reported once, not again at every later use.
            None => {
                state.labels.insert(label.clone(), (hash, line));
            }
        }
    }
    Ok(())
}

/// Matches ordered, formatted values against an expectation (rules in the module doc).
pub fn compare(
    expected: &Expected,
    actual: &[String],
    hash_threshold: usize,
) -> Result<(), FailureDetail> {
    match expected {
        Expected::Hash { count, md5 } => {
            let hash = hash_values(actual);
            if actual.len() == *count && hash == *md5 {
                return Ok(());
            }
            Err(FailureDetail::Mismatch {
                expected: format!("{count} values hashing to {md5}"),
                actual: format!("{} values hashing to {hash}", actual.len()),
            })
        }
        Expected::Values(lines) => {
            if lines.len() == actual.len() && lines.iter().zip(actual).all(|(l, a)| l == a) {
                return Ok(());
            }
            let expected_words = lines.iter().flat_map(|l| l.split_whitespace());
            let actual_words = actual.iter().flat_map(|a| a.split_whitespace());
            if expected_words.eq(actual_words) {
                return Ok(());
            }
            let actual = if hash_threshold > 0 && actual.len() > hash_threshold {
                format!("{} values hashing to {}", actual.len(), hash_values(actual))
            } else {
                actual.join(" ")
            };
            Err(FailureDetail::Mismatch {
                expected: lines.join(" "),
                actual,
            })
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::parser::parse;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn rows(v: &[&[Option<&str>]]) -> Exec {
        Exec::Rows(
            v.iter()
                .map(|r| r.iter().map(|c| c.map(str::to_string)).collect())
                .collect(),
        )
    }

    fn error(code: &str) -> Exec {
        Exec::Error {
            code: code.into(),
            message: "boom".into(),
            fatal: false,
        }
    }

    fn one(text: &str) -> Record {
        parse(text).unwrap().remove(0)
    }

    #[test]
    fn statements() {
        let mut st = FileState::default();
        let ok = one("statement ok\nINSERT INTO t VALUES (1)\n");
        assert!(judge(&ok, rows(&[]), &mut st).is_ok());
        assert!(judge(&ok, error("42P01"), &mut st).is_err());
        let any_error = one("statement error\nSELECT nope\n");
        assert!(judge(&any_error, error("42703"), &mut st).is_ok());
        assert!(judge(&any_error, rows(&[]), &mut st).is_err());
        let regex = one("statement error column .* does not exist\nSELECT nope\n");
        assert!(judge(&regex, error("42703"), &mut st).is_ok());
        let code = one("statement error 42P01\nSELECT * FROM nope\n");
        assert!(judge(&code, error("42P01"), &mut st).is_ok());
        assert!(judge(&code, error("42703"), &mut st).is_err());
        let query_error = one("query error\nSELECT 1/0\n");
        assert!(judge(&query_error, error("22012"), &mut st).is_ok());
        assert!(judge(&ok, Exec::TimedOut(Duration::from_secs(60)), &mut st).is_err());
        assert!(judge(&any_error, Exec::Lost("closed".into()), &mut st).is_err());
    }

    #[test]
    fn queries_format_sort_and_compare() {
        let mut st = FileState::default();
        let q = one("query IT rowsort\nSELECT a, b FROM t\n----\n1\nNULL\n2\n(empty)\n");
        let out = rows(&[&[Some("2.7"), Some("")], &[Some("1"), None]]);
        assert_eq!(judge(&q, out, &mut st), Ok(()));
        // Shoal's style: a row per line.
        let q = one("query IT rowsort\nSELECT a, b FROM t\n----\n1 NULL\n2 (empty)\n");
        let out = rows(&[&[Some("2"), Some("")], &[Some("1"), None]]);
        assert_eq!(judge(&q, out, &mut st), Ok(()));
        let out = rows(&[&[Some("3"), Some("")], &[Some("1"), None]]);
        assert_eq!(
            judge(&q, out, &mut st),
            Err(FailureDetail::Mismatch {
                expected: "1 NULL 2 (empty)".into(),
                actual: "1 NULL 3 (empty)".into()
            })
        );
        assert!(judge(&q, error("XX000"), &mut st).is_err());
        // Wrong column count.
        assert!(judge(&q, rows(&[&[Some("1")]]), &mut st).is_err());
        // No result section: must be empty.
        let q = one("query I\nSELECT 1 WHERE false\n");
        assert!(judge(&q, rows(&[]), &mut st).is_ok());
        assert!(judge(&q, rows(&[&[Some("1")]]), &mut st).is_err());
    }

    #[test]
    fn hashed_results() {
        // md5("1\n2\n")
        let exp = Expected::Hash {
            count: 2,
            md5: "6ddb4095eb719e2a9f0a3f95677d24e0".into(),
        };
        assert!(compare(&exp, &strings(&["1", "2"]), 1).is_ok());
        assert!(compare(&exp, &strings(&["2", "1"]), 1).is_err());
        let mut st = FileState::default();
        let q = one(
            "query I valuesort\nSELECT a FROM t\n----\n2 values hashing to 6ddb4095eb719e2a9f0a3f95677d24e0\n",
        );
        assert!(judge(&q, rows(&[&[Some("2")], &[Some("1")]]), &mut st).is_ok());
    }

    #[test]
    fn long_actual_results_are_reported_as_a_hash() {
        let exp = Expected::Values(strings(&["1", "2", "3"]));
        match compare(&exp, &strings(&["1", "2", "4"]), 2) {
            Err(FailureDetail::Mismatch { actual, .. }) => {
                assert!(actual.starts_with("3 values hashing to "), "{actual}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn labels_must_agree() {
        let mut st = FileState::default();
        let a = one("query I rowsort label-1\nSELECT 1\n----\n1\n");
        let b = one("query I nosort label-1\nSELECT 1\n----\n1\n");
        let c = one("query I nosort label-1\nSELECT 2\n----\n2\n");
        assert!(judge(&a, rows(&[&[Some("1")]]), &mut st).is_ok());
        assert!(judge(&b, rows(&[&[Some("1")]]), &mut st).is_ok());
        let err = judge(&c, rows(&[&[Some("2")]]), &mut st).unwrap_err();
        assert!(format!("{err:?}").contains("label-1"));
    }

    #[test]
    fn sqlstate_shape() {
        assert!(is_sqlstate("42P01"));
        assert!(is_sqlstate("23505"));
        assert!(!is_sqlstate("ERROR"));
        assert!(!is_sqlstate("42p01"));
        assert!(!is_sqlstate("4200"));
    }
}
