//! Statements the SQL parser does not know, rewritten before it sees them.
//!
//! `SET CLUSTER SETTING` (`cluster_settings.rs`) and `ALTER TABLE … SPLIT
//! AT` (`split.rs`) are rewritten into statements the parser accepts,
//! marked so that the session recognizes them. A query string may hold
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
        let once = crate::cluster_settings::rewrite_sql(stmt);
        match crate::split::rewrite_sql(&once) {
            Cow::Owned(s) => Some(s),
            Cow::Borrowed(_) => match once {
                Cow::Owned(s) => Some(s),
                Cow::Borrowed(_) => None,
            },
        }
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
