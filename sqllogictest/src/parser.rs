//! The sqllogictest record format.
//!
//! A test file is a sequence of *records* separated by blank lines. This module turns
//! the text of one file into a `Vec<Record>` and nothing else: it never talks to a
//! server and never formats values, so every rule about the file format lives here and
//! can be tested on small snippets.
//!
//! The format follows the SQLite corpus, which must be read unmodified:
//!
//! ```text
//! # a comment line
//! skipif mysql                 <- zero or more conditions
//! onlyif postgresql
//! statement ok                 <- or: statement error [pattern]
//! CREATE TABLE t(a INTEGER)    <- SQL, one or more lines, up to a blank line
//!
//! query IT rowsort my-label    <- column types, sort mode, optional label
//! SELECT a, b FROM t
//! ----                         <- expected results, up to a blank line
//! 1
//! x
//!
//! hash-threshold 8             <- control records
//! halt
//! ```
//!
//! Design choices and the invariants they protect:
//!
//! * **Line endings.** Most corpus files use CRLF; `str::lines` drops the `\r`, and the
//!   header and condition lines are further trimmed, so a file parses the same either way.
//! * **Comments** (`#` in the first column) are skipped between records and among the
//!   conditions, but never inside SQL or a result block, where `#foo` may be a genuine
//!   value. Header and condition lines may end in a `# comment`, as in the corpus's
//!   `onlyif mssql # IF EXISTS support`.
//! * **Results are kept as the raw lines.** Whether a line holds one value (the SQLite
//!   corpus) or several whitespace-separated values (Shoal's own files) is decided when
//!   comparing, because only then is the actual result known. The one exception is the
//!   single line `N values hashing to <md5>`, which is recognised here.
//! * **`query error`** is accepted as a synonym of `statement error`: both mean "this SQL
//!   must fail", so the parser folds them into one record kind.
//! * **Strictness.** An unknown record kind, type letter or sort mode is a parse error
//!   with its line number rather than a silently skipped record: a typo in a test must
//!   not turn into a test that never runs.

use std::fmt;

/// How a column's values are printed before comparison (see `format.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Integer,
    Real,
    Text,
}

/// The order in which a query's values are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortMode {
    /// Values in the order the server returned them.
    #[default]
    Unsorted,
    /// Rows sorted by their formatted values, then flattened.
    Rows,
    /// All values sorted individually.
    Values,
}

/// A `skipif` / `onlyif` line in front of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    SkipIf(String),
    OnlyIf(String),
}

/// What a statement is expected to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatementExpect {
    Ok,
    /// The statement must fail; the optional text after `error` is kept for reports
    /// (and, when it is a SQLSTATE code, checked by the runner).
    Error(Option<String>),
}

/// The expected output of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// The raw lines after `----` (possibly none).
    Values(Vec<String>),
    /// `count values hashing to md5`.
    Hash { count: usize, md5: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub sql: String,
    pub types: Vec<ColumnType>,
    pub sort: SortMode,
    pub label: Option<String>,
    pub expected: Expected,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKind {
    Statement {
        sql: String,
        expect: StatementExpect,
    },
    Query(Query),
    HashThreshold(usize),
    Halt,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// 1-based line number of the record's header (`statement`, `query`, ...).
    pub line: usize,
    pub conditions: Vec<Condition>,
    pub kind: RecordKind,
}

impl Record {
    /// Whether the record's conditions let it run on `engine`. Every condition must
    /// agree: one matching `skipif` or one non-matching `onlyif` excludes the record.
    pub fn applies_to(&self, engine: &str) -> bool {
        self.conditions.iter().all(|c| match c {
            Condition::SkipIf(e) => e != engine,
            Condition::OnlyIf(e) => e == engine,
        })
    }

    /// The SQL a record runs, if it runs any.
    pub fn sql(&self) -> Option<&str> {
        match &self.kind {
            RecordKind::Statement { sql, .. } => Some(sql),
            RecordKind::Query(q) => Some(&q.sql),
            RecordKind::HashThreshold(_) | RecordKind::Halt => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

fn err<T>(line: usize, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        line,
        message: message.into(),
    })
}

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

fn is_comment(line: &str) -> bool {
    line.starts_with('#')
}

/// The words of a header or condition line, without a trailing `# comment` (the
/// corpus writes `onlyif mssql # IF EXISTS support`).
fn words(line: &str) -> Vec<&str> {
    line.split_whitespace()
        .take_while(|w| !w.starts_with('#'))
        .collect()
}

/// Parses the whole text of a test file.
pub fn parse(text: &str) -> Result<Vec<Record>, ParseError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut records = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if is_blank(lines[i]) || is_comment(lines[i]) {
            i += 1;
            continue;
        }
        let conditions = parse_conditions(&lines, &mut i)?;
        let line = i + 1;
        let header = words(lines[i]);
        i += 1;
        let Some(&first) = header.first() else {
            return err(line, "record header is only a comment");
        };
        let kind = match first {
            "statement" => parse_statement(&lines, &mut i, line, &header)?,
            "query" => parse_query(&lines, &mut i, line, &header)?,
            "hash-threshold" => match header.get(1).map(|n| n.parse::<usize>()) {
                Some(Ok(n)) if header.len() == 2 => RecordKind::HashThreshold(n),
                _ => return err(line, "expected `hash-threshold <count>`"),
            },
            "halt" if header.len() == 1 => RecordKind::Halt,
            other => return err(line, format!("unknown record type `{other}`")),
        };
        records.push(Record {
            line,
            conditions,
            kind,
        });
    }
    Ok(records)
}

/// Consumes `skipif`/`onlyif` lines (and interleaved comments), leaving `i` on the
/// record header. A condition with nothing after it is an error: it would otherwise
/// silently attach to the next record after a blank line.
fn parse_conditions(lines: &[&str], i: &mut usize) -> Result<Vec<Condition>, ParseError> {
    let mut conditions = Vec::new();
    loop {
        let Some(line) = lines.get(*i) else {
            return err(*i, "condition is not followed by a record");
        };
        if is_blank(line) {
            return err(*i + 1, "condition is not followed by a record");
        }
        if is_comment(line) {
            *i += 1;
            continue;
        }
        let tokens = words(line);
        let mut tokens = tokens.into_iter();
        let make: fn(String) -> Condition = match tokens.next() {
            Some("skipif") => Condition::SkipIf,
            Some("onlyif") => Condition::OnlyIf,
            _ => return Ok(conditions),
        };
        match (tokens.next(), tokens.next()) {
            (Some(engine), None) => conditions.push(make(engine.to_string())),
            _ => return err(*i + 1, "expected `skipif <engine>` or `onlyif <engine>`"),
        }
        *i += 1;
    }
}

/// Takes lines up to the next blank line or end of file. With `stop_at_separator`,
/// also stops at a `----` line and reports whether it was seen (consuming it).
fn take_block<'a>(
    lines: &[&'a str],
    i: &mut usize,
    stop_at_separator: bool,
) -> (Vec<&'a str>, bool) {
    let mut block = Vec::new();
    while let Some(&line) = lines.get(*i) {
        if is_blank(line) {
            break;
        }
        *i += 1;
        if stop_at_separator && line.trim_end() == "----" {
            return (block, true);
        }
        block.push(line);
    }
    (block, false)
}

fn parse_sql(
    lines: &[&str],
    i: &mut usize,
    line: usize,
    stop_at_separator: bool,
) -> Result<(String, bool), ParseError> {
    let (sql, separator) = take_block(lines, i, stop_at_separator);
    if sql.is_empty() {
        return err(line, "record has no SQL");
    }
    Ok((sql.join("\n"), separator))
}

/// The text after the first `skip` words of a line, trimmed; `None` if empty. Used for
/// error patterns, which may contain spaces.
fn rest_of_line(header: &[&str], skip: usize) -> Option<String> {
    let rest = header[skip.min(header.len())..].join(" ");
    (!rest.is_empty()).then_some(rest)
}

fn parse_statement(
    lines: &[&str],
    i: &mut usize,
    line: usize,
    header: &[&str],
) -> Result<RecordKind, ParseError> {
    let expect = match header.get(1).copied() {
        Some("ok") if header.len() == 2 => StatementExpect::Ok,
        Some("error") => StatementExpect::Error(rest_of_line(header, 2)),
        _ => {
            return err(
                line,
                "expected `statement ok` or `statement error [pattern]`",
            );
        }
    };
    let (sql, _) = parse_sql(lines, i, line, false)?;
    Ok(RecordKind::Statement { sql, expect })
}

fn parse_query(
    lines: &[&str],
    i: &mut usize,
    line: usize,
    header: &[&str],
) -> Result<RecordKind, ParseError> {
    let Some(&types) = header.get(1) else {
        return err(line, "expected `query <types> [sortmode] [label]`");
    };
    if types == "error" {
        let expect = StatementExpect::Error(rest_of_line(header, 2));
        let (sql, separator) = parse_sql(lines, i, line, true)?;
        if separator {
            return err(line, "`query error` takes no result section");
        }
        return Ok(RecordKind::Statement { sql, expect });
    }
    let types = types
        .chars()
        .map(|c| match c {
            'I' => Ok(ColumnType::Integer),
            'R' => Ok(ColumnType::Real),
            'T' => Ok(ColumnType::Text),
            other => err(
                line,
                format!("unknown column type `{other}` (expected I, R or T)"),
            ),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let sort = match header.get(2).copied() {
        None | Some("nosort") => SortMode::Unsorted,
        Some("rowsort") => SortMode::Rows,
        Some("valuesort") => SortMode::Values,
        Some(other) => return err(line, format!("unknown sort mode `{other}`")),
    };
    let label = header.get(3).map(|l| l.to_string());
    if header.len() > 4 {
        return err(line, "too many words in query header");
    }
    let (sql, separator) = parse_sql(lines, i, line, true)?;
    let results = if separator {
        take_block(lines, i, false).0
    } else {
        Vec::new()
    };
    Ok(RecordKind::Query(Query {
        sql,
        types,
        sort,
        label,
        expected: parse_expected(&results),
    }))
}

/// Recognises the single-line `N values hashing to <md5>` form; anything else is kept
/// as value lines.
fn parse_expected(results: &[&str]) -> Expected {
    if let [only] = results {
        let words: Vec<&str> = only.split_whitespace().collect();
        if let [count, "values", "hashing", "to", md5] = words[..]
            && let Ok(count) = count.parse()
            && md5.len() == 32
            && md5.chars().all(|c| c.is_ascii_hexdigit())
        {
            return Expected::Hash {
                count,
                md5: md5.to_ascii_lowercase(),
            };
        }
    }
    Expected::Values(results.iter().map(|l| l.trim_end().to_string()).collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn query(r: &Record) -> &Query {
        match &r.kind {
            RecordKind::Query(q) => q,
            other => panic!("not a query: {other:?}"),
        }
    }

    #[test]
    fn statements() {
        let recs = parse(
            "statement ok\nCREATE TABLE t(a INT)\n\n# comment\nstatement error\nSELECT *\nFROM nope\n\n\
             statement error 42P01\nSELECT 1\n\nstatement error relation .* does not exist\nx\n",
        )
        .unwrap();
        assert_eq!(recs.len(), 4);
        assert_eq!(recs[0].line, 1);
        assert_eq!(
            recs[0].kind,
            RecordKind::Statement {
                sql: "CREATE TABLE t(a INT)".into(),
                expect: StatementExpect::Ok
            }
        );
        assert_eq!(recs[1].line, 5);
        assert_eq!(
            recs[1].kind,
            RecordKind::Statement {
                sql: "SELECT *\nFROM nope".into(),
                expect: StatementExpect::Error(None)
            }
        );
        assert_eq!(recs[2].sql(), Some("SELECT 1"));
        match &recs[3].kind {
            RecordKind::Statement { expect, .. } => {
                assert_eq!(
                    expect,
                    &StatementExpect::Error(Some("relation .* does not exist".into()))
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn queries_with_values_hash_and_labels() {
        let text = "query IRT rowsort lbl-1\r\nSELECT a, b, c\r\nFROM t\r\n----\r\n1\r\n2.000\r\n(empty)\r\n\r\n\
                    query I valuesort\nSELECT 1\n----\n30 values hashing to 0123456789ABCDEF0123456789abcdef\n\n\
                    query II\nSELECT 1, 2\n----\n1 2\n3\t4\n\nquery T\nSELECT ''\n";
        let recs = parse(text).unwrap();
        assert_eq!(recs.len(), 4);
        let q = query(&recs[0]);
        assert_eq!(
            q.types,
            vec![ColumnType::Integer, ColumnType::Real, ColumnType::Text]
        );
        assert_eq!(q.sort, SortMode::Rows);
        assert_eq!(q.label.as_deref(), Some("lbl-1"));
        assert_eq!(q.sql, "SELECT a, b, c\nFROM t");
        assert_eq!(
            q.expected,
            Expected::Values(vec!["1".into(), "2.000".into(), "(empty)".into()])
        );
        let q = query(&recs[1]);
        assert_eq!(q.sort, SortMode::Values);
        assert_eq!(
            q.expected,
            Expected::Hash {
                count: 30,
                md5: "0123456789abcdef0123456789abcdef".into()
            }
        );
        let q = query(&recs[2]);
        assert_eq!(q.sort, SortMode::Unsorted);
        assert_eq!(
            q.expected,
            Expected::Values(vec!["1 2".into(), "3\t4".into()])
        );
        // No result section: the query must return nothing.
        assert_eq!(query(&recs[3]).expected, Expected::Values(vec![]));
    }

    #[test]
    fn query_error_is_a_failing_statement() {
        let recs = parse("query error division by zero\nSELECT 1/0\n").unwrap();
        assert_eq!(
            recs[0].kind,
            RecordKind::Statement {
                sql: "SELECT 1/0".into(),
                expect: StatementExpect::Error(Some("division by zero".into()))
            }
        );
    }

    #[test]
    fn conditions_and_control_records() {
        let text = "hash-threshold 8\n\nskipif mysql # not compatible\n# why\nonlyif postgresql\nstatement ok \nSELECT 1\n\n\
                    skipif postgresql\nquery I\nSELECT 2\n----\n2\n\nonlyif sqlite\nhalt\n\nhalt\n";
        let recs = parse(text).unwrap();
        assert_eq!(recs.len(), 5);
        assert_eq!(recs[0].kind, RecordKind::HashThreshold(8));
        assert_eq!(
            recs[1].conditions,
            vec![
                Condition::SkipIf("mysql".into()),
                Condition::OnlyIf("postgresql".into())
            ]
        );
        assert_eq!(recs[1].line, 6);
        assert!(recs[1].applies_to("postgresql"));
        assert!(!recs[1].applies_to("mysql"));
        assert!(!recs[1].applies_to("sqlite"));
        assert!(!recs[2].applies_to("postgresql"));
        assert!(recs[2].applies_to("mssql"));
        assert_eq!(recs[3].kind, RecordKind::Halt);
        assert!(!recs[3].applies_to("postgresql"));
        assert!(recs[4].applies_to("postgresql"));
    }

    #[test]
    fn result_lines_are_not_comments() {
        let recs = parse("query T\nSELECT '#x'\n----\n#x\n").unwrap();
        assert_eq!(
            query(&recs[0]).expected,
            Expected::Values(vec!["#x".into()])
        );
    }

    #[test]
    fn errors_carry_line_numbers() {
        let cases = [
            ("statement ok\n", 1, "no SQL"),
            ("\n\nfrobnicate\n", 3, "unknown record type"),
            ("query X\nSELECT 1\n", 1, "unknown column type"),
            ("query I shuffle\nSELECT 1\n", 1, "unknown sort mode"),
            (
                "skipif mysql\n\nstatement ok\nSELECT 1\n",
                2,
                "not followed",
            ),
            ("skipif mysql", 1, "not followed"),
            ("hash-threshold many\n", 1, "hash-threshold"),
            ("statement maybe\nSELECT 1\n", 1, "statement ok"),
            ("query error\nSELECT 1\n----\n1\n", 1, "no result section"),
        ];
        for (text, line, fragment) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.message.contains(fragment), "{text:?}: {e}");
        }
    }

    /// Every corpus file of the shared corpus (`../shared/sqllogictest` beside
    /// the repository) must parse unmodified.
    #[test]
    fn shared_corpus_parses() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/sqllogictest");
        if !dir.is_dir() {
            eprintln!("skipped: corpus directory {} is absent", dir.display());
            return;
        }
        let files = crate::files::find_test_files(&[dir]).unwrap();
        assert!(!files.is_empty());
        for file in files {
            let text = crate::files::read_text(&file).unwrap();
            let records = parse(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let separators = text.lines().filter(|l| l.trim_end() == "----").count();
            let queries = records
                .iter()
                .filter(|r| matches!(r.kind, RecordKind::Query(_)))
                .count();
            assert_eq!(queries, separators, "{}", file.display());
        }
    }
}
