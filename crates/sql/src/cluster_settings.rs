//! `SET CLUSTER SETTING name = value` and `SHOW CLUSTER SETTING name`.
//!
//! Cluster settings (`shoal_kv::settings`) are replicated values every node
//! reads the same. The PostgreSQL parser knows neither statement, so:
//!
//! * `SET CLUSTER SETTING a.b = v` is rewritten, before parsing, into
//!   `SET "shoal.cluster_setting"."a.b" = v` — an ordinary `SET` of a
//!   variable under a reserved quoted prefix, which [`setting_name`]
//!   recognizes. Only a statement that *begins* the SQL text is rewritten
//!   (the text of other statements, string literals included, is left
//!   alone).
//! * `SHOW CLUSTER SETTING a.b` already parses, as `SHOW` of the words
//!   `cluster setting a b` ([`show_target`]).
//!
//! A setting takes effect at once, for the whole cluster; it is not part of
//! the session's transaction (as in CockroachDB).

use std::borrow::Cow;

use datafusion::sql::sqlparser::ast::{Ident, ObjectName};

/// The reserved variable prefix `SET CLUSTER SETTING` becomes.
const MARKER: &str = "shoal.cluster_setting";

/// Rewrites a leading `SET CLUSTER SETTING` so that the parser accepts it.
pub fn rewrite_sql(sql: &str) -> Cow<'_, str> {
    let trimmed = sql.trim_start();
    let mut words = trimmed.splitn(4, char::is_whitespace);
    let leading = [words.next(), words.next(), words.next()];
    let is_cluster_setting = matches!(
        leading,
        [Some(a), Some(b), Some(c)]
            if a.eq_ignore_ascii_case("set")
                && b.eq_ignore_ascii_case("cluster")
                && c.eq_ignore_ascii_case("setting")
    );
    let Some(rest) = words.next().filter(|_| is_cluster_setting) else {
        return Cow::Borrowed(sql);
    };
    let rest = rest.trim_start();
    let name_end = rest
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(rest.len());
    let (name, tail) = rest.split_at(name_end);
    let name = name.trim_matches('"').replace('"', "\"\"");
    Cow::Owned(format!("SET \"{MARKER}\".\"{name}\"{tail}"))
}

/// The cluster setting a (rewritten) `SET` names, if it is one.
pub fn setting_name(variable: &ObjectName) -> Option<String> {
    let parts: Vec<&Ident> = variable.0.iter().filter_map(|p| p.as_ident()).collect();
    match parts.as_slice() {
        [marker, name] if marker.value == MARKER && marker.quote_style.is_some() => {
            Some(name.value.to_lowercase())
        }
        _ => None,
    }
}

/// The cluster setting `SHOW cluster setting a b` names, if it is one.
pub fn show_target(variable: &[Ident]) -> Option<String> {
    match variable {
        [cluster, setting, name @ ..]
            if !name.is_empty()
                && cluster.value.eq_ignore_ascii_case("cluster")
                && setting.value.eq_ignore_ascii_case("setting") =>
        {
            Some(
                name.iter()
                    .map(|i| i.value.to_lowercase())
                    .collect::<Vec<_>>()
                    .join("."),
            )
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use datafusion::sql::sqlparser::ast::{Set, Statement};
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn parse(sql: &str) -> Statement {
        Parser::parse_sql(&PostgreSqlDialect {}, &rewrite_sql(sql))
            .unwrap()
            .remove(0)
    }

    #[test]
    fn set_cluster_setting_becomes_a_marked_set() {
        for sql in [
            "SET CLUSTER SETTING server.time_until_store_dead = '15s'",
            "  set cluster setting server.time_until_store_dead TO '15s';",
        ] {
            let Statement::Set(Set::SingleAssignment { variable, .. }) = parse(sql) else {
                panic!("{sql}: not a SET");
            };
            assert_eq!(
                setting_name(&variable).as_deref(),
                Some("server.time_until_store_dead"),
                "{sql}"
            );
        }
        assert_eq!(
            rewrite_sql("SELECT 'SET CLUSTER SETTING x = 1'"),
            "SELECT 'SET CLUSTER SETTING x = 1'"
        );
        let Statement::Set(Set::SingleAssignment { variable, .. }) = parse("SET search_path = x")
        else {
            panic!("not a SET");
        };
        assert_eq!(setting_name(&variable), None);
    }

    #[test]
    fn show_cluster_setting_names_the_setting() {
        let Statement::ShowVariable { variable } =
            parse("SHOW CLUSTER SETTING server.time_until_store_dead")
        else {
            panic!("not a SHOW");
        };
        assert_eq!(
            show_target(&variable).as_deref(),
            Some("server.time_until_store_dead")
        );
        let Statement::ShowVariable { variable } = parse("SHOW search_path") else {
            panic!("not a SHOW");
        };
        assert_eq!(show_target(&variable), None);
    }
}
