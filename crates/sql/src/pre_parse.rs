//! Statements the SQL parser does not know, rewritten before it sees them.
//!
//! `SET CLUSTER SETTING` (`cluster_settings.rs`), `ALTER TABLE … SPLIT
//! AT` / `UNSPLIT` (`split.rs`), `ALTER RANGE … RELOCATE` (`relocate.rs`),
//! `ALTER TABLE … CONFIGURE ZONE` (`zone.rs`), `SET
//! CONSTRAINTS` (`set_constraints.rs`), `VACUUM` / `ANALYZE`
//! (`maintenance.rs`) and COPY's `on`/`off` options (`copy.rs`) are
//! rewritten into statements the parser accepts, marked (a reserved,
//! quoted name no user statement can mean) so that the session recognizes
//! them. A query string may hold
//! several statements, so the text is first cut at its top-level
//! semicolons — with the parser's own tokenizer, so a semicolon inside a
//! string, a quoted name or a comment does not cut — and each statement is
//! rewritten on its own.

use std::borrow::Cow;

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

/// `sql` with every statement the parser does not know rewritten.
pub fn rewrite(sql: &str) -> Cow<'_, str> {
    let rewrite_one = |stmt: &str| -> Option<String> {
        if let Cow::Owned(s) = crate::cluster_settings::rewrite_sql(stmt) {
            return Some(s);
        }
        crate::split::rewrite_sql(stmt)
            .or_else(|| crate::relocate::rewrite_sql(stmt))
            .or_else(|| crate::zone::rewrite_sql(stmt))
            .or_else(|| crate::set_constraints::rewrite_sql(stmt))
            .or_else(|| crate::maintenance::rewrite_sql(stmt))
            .or_else(|| crate::copy::rewrite_sql(stmt))
    };
    // The common case, one statement: no tokenizing.
    if !sql.contains(';') {
        return rewrite_one(sql).map_or(Cow::Borrowed(sql), Cow::Owned);
    }
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else {
        // The parser reports the error.
        return Cow::Borrowed(sql);
    };
    let mut statements = vec![String::new()];
    for token in tokens {
        match token {
            Token::SemiColon => statements.push(String::new()),
            other => {
                if let Some(current) = statements.last_mut() {
                    current.push_str(&other.to_string());
                }
            }
        }
    }
    let rewritten: Vec<Option<String>> = statements.iter().map(|s| rewrite_one(s)).collect();
    if rewritten.iter().all(Option::is_none) {
        return Cow::Borrowed(sql);
    }
    let joined: Vec<String> = statements
        .into_iter()
        .zip(rewritten)
        .map(|(original, new)| new.unwrap_or(original))
        .collect();
    Cow::Owned(joined.join(";"))
}

/// For `ALTER TABLE <name> <words…> <rest>` (words matched without
/// regard to case): the table name as written, and the rest.
pub(crate) fn alter_table<'a>(sql: &'a str, words: &[&str]) -> Option<(&'a str, &'a str)> {
    let mut rest = sql.trim_start();
    for word in ["alter", "table"] {
        rest = take_word(rest, word)?;
    }
    let (name, mut rest) = take_name(rest)?;
    for word in words {
        rest = take_word(rest, word)?;
    }
    Some((name, rest))
}

/// `text` after `word` (case-insensitive) and the whitespace after it.
fn take_word<'a>(text: &'a str, word: &str) -> Option<&'a str> {
    let head = text.get(..word.len())?;
    let rest = &text[word.len()..];
    (head.eq_ignore_ascii_case(word) && rest.starts_with(char::is_whitespace))
        .then(|| rest.trim_start())
}

/// A possibly qualified, possibly quoted table name at the start of `text`,
/// and what follows it.
fn take_name(text: &str) -> Option<(&str, &str)> {
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                return (i > 0).then(|| (&text[..i], text[i..].trim_start()));
            }
            _ => {}
        }
    }
    None
}

/// For a query `WITH "<marker>" AS (SELECT '<text>' AS t) <body>` that a
/// rewrite above produced: the marker, the text and the body.
pub(crate) fn marked_query(
    query: &datafusion::sql::sqlparser::ast::Query,
) -> Option<(&str, String, datafusion::sql::sqlparser::ast::Query)> {
    use datafusion::sql::sqlparser::ast::{Expr, SelectItem, SetExpr, Value};
    let with = query.with.as_ref()?;
    let [cte] = with.cte_tables.as_slice() else {
        return None;
    };
    if cte.alias.name.quote_style != Some('"') || !cte.alias.name.value.starts_with("shoal.") {
        return None;
    }
    let SetExpr::Select(select) = cte.query.body.as_ref() else {
        return None;
    };
    let [SelectItem::ExprWithAlias { expr, .. }] = select.projection.as_slice() else {
        return None;
    };
    let Expr::Value(value) = expr else {
        return None;
    };
    let Value::SingleQuotedString(text) = &value.value else {
        return None;
    };
    let mut body = query.clone();
    body.with = None;
    Some((cte.alias.name.value.as_str(), text.clone(), body))
}

/// The string values of a `SET "<marker>" = 'a', 'b', …` that a rewrite
/// above produced, if `variable` is that reserved, quoted marker.
pub(crate) fn marker_values(
    variable: &datafusion::sql::sqlparser::ast::ObjectName,
    values: &[datafusion::sql::sqlparser::ast::Expr],
    marker: &str,
) -> Option<Vec<String>> {
    use datafusion::sql::sqlparser::ast::{Expr, Value};
    let [part] = variable.0.as_slice() else {
        return None;
    };
    let ident = part.as_ident()?;
    if ident.value != marker || ident.quote_style.is_none() {
        return None;
    }
    Some(
        values
            .iter()
            .filter_map(|v| match v {
                Expr::Value(v) => match &v.value {
                    Value::SingleQuotedString(s) => Some(s.clone()),
                    _ => None,
                },
                _ => None,
            })
            .collect(),
    )
}

/// `name` as an SQL string literal.
pub(crate) fn quote_literal(name: &str) -> String {
    format!("'{}'", name.replace('\'', "''"))
}

/// Parses a table name as written back into a name.
pub(crate) fn parse_table_name(
    table: &str,
) -> crate::error::Result<datafusion::sql::sqlparser::ast::ObjectName> {
    datafusion::sql::sqlparser::parser::Parser::new(&PostgreSqlDialect {})
        .try_with_sql(table)
        .and_then(|mut p| p.parse_object_name(false))
        .map_err(|e| crate::error::SqlError::Syntax(format!("bad table name {table}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_statement_is_rewritten_on_its_own() {
        let sql = "CREATE TABLE t (k int PRIMARY KEY); ALTER TABLE t SPLIT AT VALUES (5);\
                   SET CLUSTER SETTING server.time_until_store_dead = '15s'; SELECT ';'";
        let out = rewrite(sql);
        let stmts = crate::session::Session::parse(&out).unwrap();
        assert_eq!(stmts.len(), 4);
        assert!(out.contains("shoal.split_at"));
        assert!(out.contains("shoal.cluster_setting"));
        assert!(out.contains("SELECT ';'"));
        assert_eq!(rewrite("SELECT 1; SELECT 2"), "SELECT 1; SELECT 2");
    }
}
