//! Counting outcomes and printing them.
//!
//! A run produces one `FileReport` per file and one `Totals`. The runner records into
//! the report; printing happens only here, so the output format is defined in one place:
//!
//! ```text
//! select1.test: 1020 passed, 3 failed, 12 skipped (4.21s)
//!   line 581: query
//!     sql: SELECT ...
//!     expected: 1 2 3
//!     actual:   1 2 4
//!   note: ...
//! slt: 1020 passed, 3 failed
//! ```
//!
//! The last line is the machine-read contract with CI: exactly `slt: N passed, M
//! failed`, on its own line, always last. Failures are kept only up to the print limit
//! (five per file unless `--verbose`) so a hopeless corpus file does not hold a
//! hundred thousand copies of its SQL in memory; the count stays exact.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

/// How many characters of SQL and of each result listing a failure shows.
const SQL_CHARS: usize = 200;
const RESULT_CHARS: usize = 300;

/// Failures printed per file without `--verbose`.
pub const DEFAULT_FAILURE_LIMIT: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureDetail {
    /// The server answered, but not as the record expected.
    Message(String),
    /// The results differ.
    Mismatch { expected: String, actual: String },
}

#[derive(Debug, Clone)]
pub struct Failure {
    pub line: usize,
    /// `statement` or `query`.
    pub kind: &'static str,
    pub sql: String,
    pub detail: FailureDetail,
}

#[derive(Debug)]
pub struct FileReport {
    pub path: PathBuf,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub elapsed: Duration,
    /// The first failures, up to `failure_limit`.
    pub failures: Vec<Failure>,
    /// File-level events: parse errors, lost connections, server start-up failures.
    pub notes: Vec<String>,
    /// Failures not described by a `Failure`: file errors and records abandoned after
    /// the server went away. They are counted in `failed` but never listed one by one.
    unlisted: usize,
    failure_limit: Option<usize>,
}

impl FileReport {
    /// `failure_limit` of `None` keeps every failure (`--verbose`).
    pub fn new(path: PathBuf, failure_limit: Option<usize>) -> Self {
        FileReport {
            path,
            passed: 0,
            failed: 0,
            skipped: 0,
            elapsed: Duration::ZERO,
            failures: Vec::new(),
            notes: Vec::new(),
            unlisted: 0,
            failure_limit,
        }
    }

    pub fn pass(&mut self) {
        self.passed += 1;
    }

    pub fn skip(&mut self) {
        self.skipped += 1;
    }

    pub fn fail(&mut self, failure: Failure) {
        self.failed += 1;
        if self
            .failure_limit
            .is_none_or(|limit| self.failures.len() < limit)
        {
            self.failures.push(failure);
        }
    }

    /// A problem with the file as a whole (it could not be read or parsed, the server
    /// would not start). It counts as one failure so the totals line shows it.
    pub fn file_error(&mut self, message: String) {
        self.failed += 1;
        self.unlisted += 1;
        self.notes.push(message);
    }

    /// A record that could not be run because the server is gone. The note that
    /// explains why is added once by the caller.
    pub fn abandon(&mut self) {
        self.failed += 1;
        self.unlisted += 1;
    }

    pub fn note(&mut self, message: String) {
        self.notes.push(message);
    }

    pub fn render(&self) -> String {
        let mut out = format!(
            "{}: {} passed, {} failed, {} skipped ({:.2}s)\n",
            self.path.display(),
            self.passed,
            self.failed,
            self.skipped,
            self.elapsed.as_secs_f64()
        );
        for f in &self.failures {
            let _ = writeln!(out, "  line {}: {}", f.line, f.kind);
            let _ = writeln!(
                out,
                "    sql: {}",
                truncate(&f.sql.replace('\n', " "), SQL_CHARS)
            );
            match &f.detail {
                FailureDetail::Message(m) => {
                    let _ = writeln!(out, "    {}", truncate(m, RESULT_CHARS));
                }
                FailureDetail::Mismatch { expected, actual } => {
                    let _ = writeln!(out, "    expected: {}", truncate(expected, RESULT_CHARS));
                    let _ = writeln!(out, "    actual:   {}", truncate(actual, RESULT_CHARS));
                }
            }
        }
        let hidden = self.failed - self.failures.len() - self.unlisted;
        if hidden > 0 {
            let _ = writeln!(
                out,
                "  ... and {hidden} more failures (use --verbose to see all)"
            );
        }
        for n in &self.notes {
            let _ = writeln!(out, "  note: {n}");
        }
        out
    }
}

/// Keeps the first `max` characters, marking the cut.
pub fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s.to_string(),
    }
}

#[derive(Debug, Default)]
pub struct Totals {
    pub files: usize,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl Totals {
    pub fn add(&mut self, report: &FileReport) {
        self.files += 1;
        self.passed += report.passed;
        self.failed += report.failed;
        self.skipped += report.skipped;
    }

    /// Two lines; the second is the CI contract and must stay last.
    pub fn render(&self) -> String {
        format!(
            "slt: {} files, {} skipped\nslt: {} passed, {} failed\n",
            self.files, self.skipped, self.passed, self.failed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(line: usize) -> Failure {
        Failure {
            line,
            kind: "query",
            sql: "SELECT\n1".into(),
            detail: FailureDetail::Mismatch {
                expected: "1".into(),
                actual: "2".into(),
            },
        }
    }

    #[test]
    fn limits_kept_failures_but_counts_all() {
        let mut r = FileReport::new("a.slt".into(), Some(2));
        for line in 1..=4 {
            r.fail(failure(line));
        }
        r.pass();
        assert_eq!(r.failed, 4);
        assert_eq!(r.failures.len(), 2);
        let text = r.render();
        assert!(
            text.starts_with("a.slt: 1 passed, 4 failed, 0 skipped ("),
            "{text}"
        );
        assert!(
            text.contains("  line 1: query\n    sql: SELECT 1\n    expected: 1\n    actual:   2\n")
        );
        assert!(text.contains("... and 2 more failures"));
    }

    #[test]
    fn file_error_is_one_failure_without_hidden_count() {
        let mut r = FileReport::new("b.test".into(), Some(5));
        r.file_error("line 3: unknown record type `x`".into());
        let text = r.render();
        assert!(text.contains("0 passed, 1 failed"));
        assert!(text.contains("note: line 3"));
        assert!(!text.contains("more failures"), "{text}");
    }

    #[test]
    fn abandoned_records_are_failures_but_not_hidden_ones() {
        let mut r = FileReport::new("d.slt".into(), Some(5));
        r.fail(failure(1));
        r.abandon();
        r.abandon();
        r.note("server connection lost".into());
        let text = r.render();
        assert!(text.contains("0 passed, 3 failed"), "{text}");
        assert!(!text.contains("more failures"), "{text}");
    }

    #[test]
    fn totals_line_is_last() {
        let mut t = Totals::default();
        let mut r = FileReport::new("c.slt".into(), None);
        r.pass();
        r.skip();
        t.add(&r);
        let text = t.render();
        assert_eq!(text.lines().last(), Some("slt: 1 passed, 0 failed"));
    }

    #[test]
    fn truncation() {
        assert_eq!(truncate("abcdef", 3), "abc...");
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("ééé", 1), "é...");
    }
}
