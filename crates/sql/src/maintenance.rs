//! `VACUUM` and `ANALYZE`, which tools send (pgbench after loading data).
//!
//! Neither has work to do in Shoal: old MVCC versions are collected by
//! each range's garbage collector on its own schedule (`shoal-kv`'s GC),
//! and the planner keeps no table statistics. They are accepted — after
//! checking that the tables they name exist (42P01), as PostgreSQL does —
//! and answer with their command tag.
//!
//! PostgreSQL's `VACUUM [(options)] [FULL] [FREEZE] [VERBOSE] [ANALYZE]
//! [table [(columns)], …]` is not what the SQL parser knows, so the
//! statement is rewritten before parsing (`pre_parse.rs`) into a `SET` of a
//! reserved variable whose values are the command and the tables:
//! `SET "shoal.maintenance" = 'vacuum', 't1', 't2'`.

use datafusion::sql::sqlparser::ast::{Expr, ObjectName};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

/// The reserved variable the statements become.
const MARKER: &str = "shoal.maintenance";

/// Rewrites a leading `VACUUM` or `ANALYZE` so that the parser accepts it.
pub fn rewrite_sql(sql: &str) -> Option<String> {
    let first = sql
        .trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()?;
    if !["vacuum", "analyze", "analyse"]
        .iter()
        .any(|w| first.eq_ignore_ascii_case(w))
    {
        return None;
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    let mut words = tokens
        .iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .peekable();
    let command = match words.next()? {
        Token::Word(w) if w.value.eq_ignore_ascii_case("vacuum") => "vacuum",
        Token::Word(w)
            if w.value.eq_ignore_ascii_case("analyze")
                || w.value.eq_ignore_ascii_case("analyse") =>
        {
            "analyze"
        }
        _ => return None,
    };
    let mut values = vec![format!("'{command}'")];
    let mut depth = 0;
    let mut expect_table = true;
    let mut name = String::new();
    let flush = |name: &mut String, values: &mut Vec<String>| {
        if !name.is_empty() {
            values.push(crate::pre_parse::quote_literal(name));
            name.clear();
        }
    };
    for token in words {
        match token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            _ if depth > 0 => {}
            Token::Comma => {
                flush(&mut name, &mut values);
                expect_table = true;
            }
            Token::Word(w)
                if name.is_empty()
                    && w.quote_style.is_none()
                    && ["full", "freeze", "verbose", "analyze", "analyse"]
                        .contains(&w.value.to_lowercase().as_str()) => {}
            Token::Word(w) if expect_table || !name.is_empty() => {
                if !name.is_empty() && !name.ends_with('.') {
                    return None;
                }
                name.push_str(&w.to_string());
                expect_table = false;
            }
            Token::Period if !name.is_empty() => name.push('.'),
            Token::SemiColon => {}
            _ => return None,
        }
    }
    flush(&mut name, &mut values);
    Some(format!("SET \"{MARKER}\" = {}", values.join(", ")))
}

/// The command (`VACUUM` or `ANALYZE`) and table names a rewritten `SET`
/// carries, if it is one.
pub fn target(variable: &ObjectName, values: &[Expr]) -> Option<(String, Vec<String>)> {
    let texts = crate::pre_parse::marker_values(variable, values, MARKER)?;
    let (command, tables) = texts.split_first()?;
    Some((command.to_uppercase(), tables.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_vacuum_and_analyze() {
        assert_eq!(
            rewrite_sql("vacuum analyze pgbench_branches, public.\"T\"").as_deref(),
            Some("SET \"shoal.maintenance\" = 'vacuum', 'pgbench_branches', 'public.\"T\"'")
        );
        assert_eq!(
            rewrite_sql("VACUUM (VERBOSE, ANALYZE) t (a, b)").as_deref(),
            Some("SET \"shoal.maintenance\" = 'vacuum', 't'")
        );
        assert_eq!(
            rewrite_sql("ANALYZE").as_deref(),
            Some("SET \"shoal.maintenance\" = 'analyze'")
        );
        assert_eq!(rewrite_sql("SELECT 1"), None);
    }
}
