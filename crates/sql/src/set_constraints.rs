//! `SET CONSTRAINTS { ALL | name [, …] } { DEFERRED | IMMEDIATE }`.
//!
//! The SQL parser does not know the statement, so it is rewritten before
//! parsing (`pre_parse.rs`) into an ordinary `SET` of a reserved, quoted
//! variable whose values are the mode and then the names:
//! `SET "shoal.set_constraints" = 'deferred', 'all'`. [`target`]
//! recognizes it; the session applies it to its deferred foreign key checks
//! (`statement_constraints.rs`). Outside a transaction block it does
//! nothing, as in PostgreSQL.

use datafusion::sql::sqlparser::ast::{Expr, ObjectName};

/// The reserved variable the statement becomes.
const MARKER: &str = "shoal.set_constraints";

/// Rewrites a leading `SET CONSTRAINTS` so that the parser accepts it.
pub fn rewrite_sql(sql: &str) -> Option<String> {
    let trimmed = sql.trim();
    let lower = trimmed.to_ascii_lowercase();
    let rest = lower.strip_prefix("set")?;
    if !rest.starts_with(char::is_whitespace) {
        return None;
    }
    let rest = rest.trim_start().strip_prefix("constraints")?;
    if !rest.starts_with(char::is_whitespace) {
        return None;
    }
    // Work on the original text (quoted names keep their case).
    let body = trimmed[trimmed.len() - rest.len()..].trim();
    let (list, mode) = body.rsplit_once(char::is_whitespace)?;
    let mode = mode.to_ascii_lowercase();
    if mode != "deferred" && mode != "immediate" {
        return None;
    }
    let mut values = vec![format!("'{mode}'")];
    for name in list.split(',') {
        let name = name.trim();
        let last = name.rsplit('.').next().unwrap_or(name).trim();
        let folded = match last.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
            Some(quoted) => quoted.replace("\"\"", "\""),
            None if last.eq_ignore_ascii_case("all") && list.trim().eq_ignore_ascii_case("all") => {
                "all".to_string()
            }
            None => last.to_lowercase(),
        };
        values.push(format!("'{}'", folded.replace('\'', "''")));
    }
    Some(format!("SET \"{MARKER}\" = {}", values.join(", ")))
}

/// The constraints (`None`: all) and mode (`true`: deferred) a rewritten
/// `SET` names, if it is one.
pub fn target(variable: &ObjectName, values: &[Expr]) -> Option<(Option<Vec<String>>, bool)> {
    let texts = crate::pre_parse::marker_values(variable, values, MARKER)?;
    let (mode, names) = texts.split_first()?;
    let names = match names {
        [all] if all == "all" => None,
        names => Some(names.to_vec()),
    };
    Some((names, mode == "deferred"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_set_constraints() {
        assert_eq!(
            rewrite_sql("SET CONSTRAINTS ALL DEFERRED").as_deref(),
            Some("SET \"shoal.set_constraints\" = 'deferred', 'all'")
        );
        assert_eq!(
            rewrite_sql("set constraints public.A_fk, \"B\" immediate").as_deref(),
            Some("SET \"shoal.set_constraints\" = 'immediate', 'a_fk', 'B'")
        );
        assert_eq!(rewrite_sql("SET constraint_exclusion = on"), None);
        assert_eq!(rewrite_sql("SET CONSTRAINTS ALL"), None);
    }
}
