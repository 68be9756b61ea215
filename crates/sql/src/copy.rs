//! `COPY … FROM STDIN` and `COPY … TO STDOUT`, in PostgreSQL's text, CSV
//! and binary formats.
//!
//! **Out.** `COPY t [(cols)] TO STDOUT` and `COPY (query) TO STDOUT` run
//! the query and hand its batches to the front end
//! ([`Output::CopyOut`](crate::Output)), which writes one line per row in
//! the chosen format ([`CopyFormat::line`]) with the same value text as
//! query results.
//!
//! **In.** `COPY t [(cols)] FROM STDIN` answers [`Output::CopyIn`]: the
//! front end gathers the client's data, then calls
//! [`Session::copy_in`](crate::Session::copy_in), which parses it into
//! rows ([`CopyFormat::parse`]) and inserts them as ordinary `INSERT`s of
//! text values into the named columns, a chunk at a time, in one
//! transaction: a COPY is all or nothing, and every row meets the same
//! casts (22P02 on bad text), defaults and constraints as an `INSERT`.
//! The data is held whole while it is parsed: memory grows with the size
//! of one COPY.
//!
//! **Binary.** The binary format's framing (signature, per-row field
//! counts, length-prefixed values) and each value's binary form are the
//! wire protocol's, so the front end reads and writes it: data in is
//! decoded by each target column's type ([`CopyIn::types`]) to the same
//! text values the other formats give, and inserted the same way
//! ([`Session::copy_in_rows`](crate::Session::copy_in_rows)).
//!
//! Not yet: `COPY … TO/FROM 'file'` and `PROGRAM` (0A000), `FORCE_QUOTE`
//! and friends.

use datafusion::sql::sqlparser::ast::{self, CopyLegacyCsvOption, CopyLegacyOption, CopyOption};

use datafusion::common::ScalarValue;
use datafusion::sql::sqlparser::ast::Statement;
use shoal_kv::Txn;

use crate::error::{Result, SqlError};
use crate::names::{self, quote};
use crate::session::{Output, Session};

/// How COPY data is laid out.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyFormat {
    pub csv: bool,
    /// PostgreSQL's binary COPY format (the front end frames it).
    pub binary: bool,
    pub delimiter: char,
    /// The text that stands for NULL (`\N` in text, empty in CSV).
    pub null: String,
    pub header: bool,
    pub quote: char,
    pub escape: char,
}

impl CopyFormat {
    fn text() -> Self {
        CopyFormat {
            csv: false,
            binary: false,
            delimiter: '\t',
            null: "\\N".into(),
            header: false,
            quote: '"',
            escape: '"',
        }
    }

    fn csv() -> Self {
        CopyFormat {
            csv: true,
            delimiter: ',',
            null: String::new(),
            ..Self::text()
        }
    }

    /// The format a statement's options ask for.
    pub fn of(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> Result<CopyFormat> {
        let mut csv = false;
        let mut binary = false;
        for o in options {
            if let CopyOption::Format(f) = o {
                match f.value.to_lowercase().as_str() {
                    "csv" => (csv, binary) = (true, false),
                    "text" => (csv, binary) = (false, false),
                    "binary" => (csv, binary) = (false, true),
                    other => {
                        return Err(SqlError::InvalidParameter(format!(
                            "COPY format \"{other}\" not recognized"
                        )));
                    }
                }
            }
        }
        for o in legacy {
            match o {
                CopyLegacyOption::Csv(_) => csv = true,
                CopyLegacyOption::Binary => binary = true,
                _ => {}
            }
        }
        if csv && binary {
            return Err(SqlError::Syntax("cannot specify CSV in BINARY mode".into()));
        }
        let mut format = if csv { Self::csv() } else { Self::text() };
        format.binary = binary;
        for o in options {
            match o {
                // FREEZE is a hint for PostgreSQL's heap; nothing to do.
                CopyOption::Format(_) | CopyOption::Encoding(_) | CopyOption::Freeze(_) => {}
                CopyOption::Delimiter(c) => format.delimiter = *c,
                CopyOption::Null(n) => format.null = n.clone(),
                CopyOption::Header(h) => format.header = *h,
                CopyOption::Quote(c) if csv => format.quote = *c,
                CopyOption::Escape(c) if csv => format.escape = *c,
                other => {
                    return Err(SqlError::NotSupported(format!("COPY option {other}")));
                }
            }
        }
        for o in legacy {
            match o {
                CopyLegacyOption::Delimiter(c) => format.delimiter = *c,
                CopyLegacyOption::Null(n) => format.null = n.clone(),
                CopyLegacyOption::Header => format.header = true,
                CopyLegacyOption::Binary => {}
                CopyLegacyOption::Csv(opts) => {
                    for c in opts {
                        match c {
                            CopyLegacyCsvOption::Header => format.header = true,
                            CopyLegacyCsvOption::Quote(q) => format.quote = *q,
                            CopyLegacyCsvOption::Escape(e) => format.escape = *e,
                            other => {
                                return Err(SqlError::NotSupported(format!("COPY option {other}")));
                            }
                        }
                    }
                }
                other => return Err(SqlError::NotSupported(format!("COPY option {other}"))),
            }
        }
        if binary
            && format
                != (CopyFormat {
                    binary,
                    ..Self::text()
                })
        {
            return Err(SqlError::Syntax(
                "COPY in BINARY mode takes no delimiter, NULL, header, quote or escape".into(),
            ));
        }
        if format.header && !format.csv {
            return Err(SqlError::NotSupported("COPY HEADER in text format".into()));
        }
        Ok(format)
    }

    /// One row as a line of COPY output (with its newline); `None` is NULL.
    pub fn line(&self, fields: &[Option<String>]) -> String {
        let mut out = String::new();
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                out.push(self.delimiter);
            }
            match f {
                None => out.push_str(&self.null),
                Some(v) if self.csv => {
                    let special = v.is_empty()
                        || *v == self.null
                        || v == "\\."
                        || v.contains(|c| {
                            c == self.delimiter || c == self.quote || c == '\n' || c == '\r'
                        });
                    if special {
                        out.push(self.quote);
                        for c in v.chars() {
                            if c == self.quote || c == self.escape {
                                out.push(self.escape);
                            }
                            out.push(c);
                        }
                        out.push(self.quote);
                    } else {
                        out.push_str(v);
                    }
                }
                Some(v) => {
                    for c in v.chars() {
                        match c {
                            '\\' => out.push_str("\\\\"),
                            '\n' => out.push_str("\\n"),
                            '\r' => out.push_str("\\r"),
                            '\t' => out.push_str("\\t"),
                            c if c == self.delimiter => {
                                out.push('\\');
                                out.push(c);
                            }
                            c => out.push(c),
                        }
                    }
                }
            }
        }
        out.push('\n');
        out
    }

    /// The rows of COPY input data, each field's text or `None` for NULL.
    pub fn parse(&self, data: &str) -> Result<Vec<Vec<Option<String>>>> {
        if self.binary {
            return Err(SqlError::Internal(
                "binary COPY data is read by the front end".into(),
            ));
        }
        let mut rows = if self.csv {
            self.parse_csv(data)?
        } else {
            self.parse_text(data)?
        };
        if self.header && !rows.is_empty() {
            rows.remove(0);
        }
        Ok(rows)
    }

    fn parse_text(&self, data: &str) -> Result<Vec<Vec<Option<String>>>> {
        let mut rows = Vec::new();
        // The piece after the last newline is no line.
        let mut lines: Vec<&str> = data.split('\n').collect();
        if lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        for line in lines {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line == "\\." {
                break;
            }
            let mut fields = Vec::new();
            // Escapes give bytes (`\303\251` is one character): the field
            // is checked as UTF-8 when it ends.
            let mut field: Vec<u8> = Vec::new();
            let mut raw = String::new();
            let mut chars = line.chars().peekable();
            let finish = |field: &mut Vec<u8>,
                          raw: &mut String,
                          fields: &mut Vec<Option<String>>|
             -> Result<()> {
                if *raw == self.null {
                    fields.push(None);
                } else {
                    let text = String::from_utf8(std::mem::take(field)).map_err(|_| {
                        SqlError::CharacterNotInRepertoire(
                            "invalid byte sequence for encoding \"UTF8\"".into(),
                        )
                    })?;
                    if text.contains('\0') {
                        return Err(SqlError::CharacterNotInRepertoire(
                            "invalid byte sequence for encoding \"UTF8\": 0x00".into(),
                        ));
                    }
                    fields.push(Some(text));
                }
                field.clear();
                raw.clear();
                Ok(())
            };
            let push = |field: &mut Vec<u8>, c: char| {
                let mut buf = [0u8; 4];
                field.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            };
            while let Some(c) = chars.next() {
                if c == self.delimiter {
                    finish(&mut field, &mut raw, &mut fields)?;
                    continue;
                }
                raw.push(c);
                if c != '\\' {
                    push(&mut field, c);
                    continue;
                }
                let Some(next) = chars.next() else {
                    return Err(bad_copy("end-of-copy marker corrupt"));
                };
                raw.push(next);
                match next {
                    'n' => field.push(b'\n'),
                    'r' => field.push(b'\r'),
                    't' => field.push(b'\t'),
                    'b' => field.push(8),
                    'f' => field.push(12),
                    'v' => field.push(11),
                    '0'..='7' => {
                        let mut value = next.to_digit(8).unwrap_or(0);
                        for _ in 0..2 {
                            match chars.peek().and_then(|d| d.to_digit(8)) {
                                Some(d) => {
                                    value = value * 8 + d;
                                    if let Some(d) = chars.next() {
                                        raw.push(d);
                                    }
                                }
                                None => break,
                            }
                        }
                        field.push((value & 0xFF) as u8);
                    }
                    'x' => {
                        let mut value = 0;
                        let mut digits = 0;
                        while digits < 2 {
                            match chars.peek().and_then(|d| d.to_digit(16)) {
                                Some(d) => {
                                    value = value * 16 + d;
                                    digits += 1;
                                    if let Some(d) = chars.next() {
                                        raw.push(d);
                                    }
                                }
                                None => break,
                            }
                        }
                        if digits == 0 {
                            field.push(b'x');
                        } else {
                            field.push(value as u8);
                        }
                    }
                    other => push(&mut field, other),
                }
            }
            finish(&mut field, &mut raw, &mut fields)?;
            rows.push(fields);
        }
        Ok(rows)
    }

    fn parse_csv(&self, data: &str) -> Result<Vec<Vec<Option<String>>>> {
        let mut rows = Vec::new();
        let mut fields: Vec<Option<String>> = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut in_quotes = false;
        let mut chars = data.chars().peekable();
        let mut at_line_start = true;
        let end_field =
            |field: &mut String, quoted: &mut bool, fields: &mut Vec<Option<String>>| {
                if !*quoted && *field == self.null {
                    fields.push(None);
                } else {
                    fields.push(Some(std::mem::take(field)));
                }
                field.clear();
                *quoted = false;
            };
        while let Some(c) = chars.next() {
            if in_quotes {
                if self.escape != self.quote
                    && c == self.escape
                    && (chars.peek() == Some(&self.quote) || chars.peek() == Some(&self.escape))
                {
                    if let Some(q) = chars.next() {
                        field.push(q);
                    }
                } else if c == self.quote {
                    if self.escape == self.quote && chars.peek() == Some(&self.quote) {
                        chars.next();
                        field.push(self.quote);
                    } else {
                        in_quotes = false;
                    }
                } else {
                    field.push(c);
                }
                continue;
            }
            if at_line_start && c == '\\' && chars.peek() == Some(&'.') {
                let rest: String = chars.clone().take(2).collect();
                if rest == "." || rest == ".\n" || rest == ".\r" {
                    break;
                }
            }
            at_line_start = false;
            if c == self.quote {
                in_quotes = true;
                quoted = true;
            } else if c == self.delimiter {
                end_field(&mut field, &mut quoted, &mut fields);
            } else if c == '\n' || c == '\r' {
                if c == '\r' && chars.peek() == Some(&'\n') {
                    chars.next();
                }
                end_field(&mut field, &mut quoted, &mut fields);
                rows.push(std::mem::take(&mut fields));
                at_line_start = true;
            } else {
                field.push(c);
            }
        }
        if in_quotes {
            return Err(bad_copy("unterminated CSV quoted field"));
        }
        if !field.is_empty() || quoted || !fields.is_empty() {
            end_field(&mut field, &mut quoted, &mut fields);
            rows.push(fields);
        }
        Ok(rows)
    }
}

/// PostgreSQL's COPY options take any boolean spelling (`FREEZE on`,
/// `HEADER off`); the parser knows `true` and `false` only. In a leading
/// `COPY` statement's final option list (`… WITH (…)`), an `on`/`off`
/// right after `FREEZE` or `HEADER` is rewritten; nothing else changes.
pub fn rewrite_sql(sql: &str) -> Option<String> {
    let first = sql
        .trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()?;
    if !first.eq_ignore_ascii_case("copy") {
        return None;
    }
    let lower = sql.to_ascii_lowercase();
    let open = lower.rfind('(')?;
    let before = lower[..open].trim_end();
    if !(before.ends_with("with") || before.ends_with("stdin") || before.ends_with("stdout")) {
        return None;
    }
    let mut out = sql[..open].to_string();
    let mut changed = false;
    let mut previous = String::new();
    let mut word = String::new();
    let mut flush = |word: &mut String, out: &mut String, previous: &mut String| {
        if word.is_empty() {
            return;
        }
        let lw = word.to_ascii_lowercase();
        if (lw == "on" || lw == "off") && (previous == "freeze" || previous == "header") {
            out.push_str(if lw == "on" { "true" } else { "false" });
            changed = true;
        } else {
            out.push_str(word);
        }
        *previous = lw;
        word.clear();
    };
    for c in sql[open..].chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out, &mut previous);
            if !c.is_whitespace() {
                previous.clear();
            }
            out.push(c);
        }
    }
    flush(&mut word, &mut out, &mut previous);
    changed.then_some(out)
}

fn bad_copy(what: &str) -> SqlError {
    SqlError::BadCopyFile(what.into())
}

/// A `COPY` statement: `TO STDOUT` runs its query and returns the rows to
/// write; `FROM STDIN` checks its table and columns and returns what the
/// front end needs to gather the data (module docs).
pub(crate) async fn statement(
    session: &Session,
    txn: &Txn,
    stmt: &Statement,
    params: Vec<ScalarValue>,
) -> Result<Output> {
    let Statement::Copy {
        source,
        to,
        target: copy_target,
        options,
        legacy_options,
        values,
    } = stmt
    else {
        return Err(SqlError::Internal("not a COPY statement".into()));
    };
    let format = CopyFormat::of(options, legacy_options)?;
    if !values.is_empty() {
        return Err(SqlError::NotSupported("COPY data inline".into()));
    }
    match (to, copy_target) {
        (true, ast::CopyTarget::Stdout) => {
            let plan = match source {
                ast::CopySource::Table {
                    table_name,
                    columns,
                } => {
                    let desc = crate::dml::lookup(session, txn, table_name)?;
                    let (table, columns) = target(&desc, columns)?;
                    session
                        .plan_sql(&format!("SELECT {} FROM {table}", columns.join(", ")))
                        .await?
                }
                ast::CopySource::Query(q) => session.plan(&Statement::Query(q.clone())).await?,
            };
            let schema = plan.schema().inner().clone();
            let batches = session.collect(plan, params).await?;
            Ok(Output::CopyOut {
                format,
                schema,
                batches,
            })
        }
        (false, ast::CopyTarget::Stdin) => {
            let ast::CopySource::Table {
                table_name,
                columns,
            } = source
            else {
                return Err(SqlError::Syntax("COPY FROM needs a table".into()));
            };
            let desc = crate::dml::lookup(session, txn, table_name)?;
            let (table, columns) = target(&desc, columns)?;
            let types = columns_of(&desc, &columns)
                .into_iter()
                .map(|ty| ty.pg_oid())
                .collect();
            Ok(Output::CopyIn(CopyIn {
                table,
                columns,
                types,
                format,
            }))
        }
        _ => Err(SqlError::NotSupported(
            "COPY to or from a file or program (use STDIN / STDOUT, or psql's \\copy)".into(),
        )),
    }
}

/// A `COPY … FROM STDIN` waiting for its data.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyIn {
    /// The table, quoted for SQL.
    pub table: String,
    /// The target columns, quoted for SQL.
    pub columns: Vec<String>,
    /// The `pg_type` OID of each target column (binary data is decoded by
    /// it).
    pub types: Vec<u32>,
    pub format: CopyFormat,
}

/// The types of the target columns (quoted names, as [`target`] gives).
fn columns_of(
    desc: &crate::descriptor::TableDescriptor,
    quoted: &[String],
) -> Vec<crate::types::SqlType> {
    quoted
        .iter()
        .map(|q| {
            let name = q
                .strip_prefix('"')
                .and_then(|n| n.strip_suffix('"'))
                .unwrap_or(q)
                .replace("\"\"", "\"");
            desc.column_index(&name)
                .map(|p| desc.columns[p].ty.clone())
                .unwrap_or(crate::types::SqlType::Text)
        })
        .collect()
}

/// Refuses rows of the wrong width (22P04), before any is inserted.
pub fn check_widths(copy: &CopyIn, rows: &[Vec<Option<String>>]) -> Result<()> {
    for (n, row) in rows.iter().enumerate() {
        if row.len() != copy.columns.len() {
            let line = n + 1;
            return Err(SqlError::BadCopyFile(if row.len() < copy.columns.len() {
                format!("missing data for a column, line {line}")
            } else {
                format!("extra data after last expected column, line {line}")
            }));
        }
    }
    Ok(())
}

/// The `INSERT` of one chunk of COPY rows (values as text literals,
/// NULL as `NULL`), or an error for a row of the wrong width.
pub fn insert_sql(
    copy: &CopyIn,
    rows: &[Vec<Option<String>>],
    first_line: usize,
) -> Result<String> {
    let mut sql = format!(
        "INSERT INTO {} ({}) VALUES ",
        copy.table,
        copy.columns.join(", ")
    );
    for (n, row) in rows.iter().enumerate() {
        if row.len() != copy.columns.len() {
            let line = first_line + n + 1;
            return Err(SqlError::BadCopyFile(if row.len() < copy.columns.len() {
                format!("missing data for a column, line {line}")
            } else {
                format!("extra data after last expected column, line {line}")
            }));
        }
        if n > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            match v {
                None => sql.push_str("NULL"),
                Some(v) => {
                    sql.push('\'');
                    sql.push_str(&v.replace('\'', "''"));
                    sql.push('\'');
                }
            }
        }
        sql.push(')');
    }
    Ok(sql)
}

/// The table and columns of a `COPY t [(cols)]`, as SQL.
pub fn target(
    desc: &crate::descriptor::TableDescriptor,
    columns: &[ast::Ident],
) -> Result<(String, Vec<String>)> {
    let names: Vec<String> = if columns.is_empty() {
        desc.visible_columns()
            .into_iter()
            .map(|p| desc.columns[p].name.clone())
            .collect()
    } else {
        let mut out = Vec::with_capacity(columns.len());
        for c in columns {
            let name = names::fold(c);
            if desc
                .column_index(&name)
                .filter(|p| !desc.columns[*p].hidden)
                .is_none()
            {
                return Err(SqlError::UndefinedColumn(format!(
                    "column \"{name}\" of relation \"{}\" does not exist",
                    desc.name
                )));
            }
            out.push(name);
        }
        out
    };
    Ok((
        format!("{}.{}", quote(&desc.schema), quote(&desc.name)),
        names.iter().map(|n| quote(n)).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(v: &[&str]) -> Vec<Option<String>> {
        v.iter().map(|s| Some(s.to_string())).collect()
    }

    #[test]
    fn text_round_trip() -> Result<()> {
        let f = CopyFormat::text();
        let row = vec![Some("a\tb\\c\nd".to_string()), None, Some(String::new())];
        let line = f.line(&row);
        assert_eq!(line, "a\\tb\\\\c\\nd\t\\N\t\n");
        assert_eq!(f.parse(&line)?, vec![row]);
        assert_eq!(
            f.parse("1\tx\n2\ty\n\\.\n3\tz\n")?,
            vec![some(&["1", "x"]), some(&["2", "y"])]
        );
        assert_eq!(f.parse("\\101\\x42")?, vec![some(&["AB"])]);
        // Escaped bytes make UTF-8 characters; an empty line is an empty
        // field.
        assert_eq!(
            f.parse("caf\\303\\251\n\n")?,
            vec![some(&["café"]), some(&[""])]
        );
        assert!(f.parse("\\0").is_err());
        Ok(())
    }

    #[test]
    fn on_off_options_become_booleans() {
        assert_eq!(
            rewrite_sql("copy t from stdin with (freeze on, header off)").as_deref(),
            Some("copy t from stdin with (freeze true, header false)")
        );
        assert_eq!(
            rewrite_sql("COPY (SELECT 'it''s' FROM a JOIN b header ON x) TO STDOUT"),
            None
        );
        assert_eq!(rewrite_sql("SELECT 1"), None);
    }

    #[test]
    fn csv_round_trip() -> Result<()> {
        let f = CopyFormat::csv();
        let row = vec![
            Some("a,b".to_string()),
            None,
            Some(String::new()),
            Some("say \"hi\"\nbye".into()),
        ];
        let line = f.line(&row);
        assert_eq!(line, "\"a,b\",,\"\",\"say \"\"hi\"\"\nbye\"\n");
        assert_eq!(f.parse(&line)?, vec![row]);
        let with_header = CopyFormat {
            header: true,
            ..CopyFormat::csv()
        };
        assert_eq!(
            with_header.parse("id,name\r\n1,x\r\n")?,
            vec![some(&["1", "x"])]
        );
        assert!(f.parse("\"open").is_err());
        let escaped = CopyFormat {
            escape: '\\',
            ..CopyFormat::csv()
        };
        let row = vec![Some("a\\\"b".to_string())];
        assert_eq!(escaped.parse(&escaped.line(&row))?, vec![row]);
        assert_eq!(f.line(&[Some("\\.".into())]), "\"\\.\"\n");
        Ok(())
    }

    #[test]
    fn binary_format_options() -> Result<()> {
        let binary = CopyFormat::of(&[CopyOption::Format(ast::Ident::new("binary"))], &[])?;
        assert!(binary.binary && !binary.csv);
        assert!(CopyFormat::of(&[], &[CopyLegacyOption::Binary])?.binary);
        assert!(
            CopyFormat::of(
                &[
                    CopyOption::Format(ast::Ident::new("binary")),
                    CopyOption::Delimiter(',')
                ],
                &[]
            )
            .is_err()
        );
        Ok(())
    }

    #[test]
    fn insert_checks_row_width() {
        let copy = CopyIn {
            table: "t".into(),
            columns: vec!["a".into(), "b".into()],
            types: vec![23, 25],
            format: CopyFormat::text(),
        };
        assert_eq!(
            insert_sql(&copy, &[vec![Some("it's".into()), None]], 0)
                .ok()
                .as_deref(),
            Some("INSERT INTO t (a, b) VALUES ('it''s', NULL)")
        );
        assert!(insert_sql(&copy, &[vec![None]], 0).is_err());
    }
}
