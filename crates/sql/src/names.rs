//! Identifiers as PostgreSQL treats them: unquoted names fold to lower case,
//! quoted names keep their spelling; and the reverse, quoting a name so it
//! can be put back into SQL text that DataFusion parses.

use datafusion::sql::sqlparser::ast::{Ident, ObjectName};

use crate::error::{Result, SqlError};
use crate::providers::PUBLIC_SCHEMA;

/// The name an identifier denotes.
pub fn fold(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

/// Double-quotes a name for SQL text.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Resolves `[database.][schema.]table` to a table name in the session's
/// database and the public schema; anything else is an error.
pub fn table_name(name: &ObjectName, database: &str) -> Result<String> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| {
            p.as_ident()
                .map(fold)
                .ok_or_else(|| SqlError::Syntax(format!("invalid table name {name}")))
        })
        .collect::<Result<_>>()?;
    match parts.as_slice() {
        [t] => Ok(t.clone()),
        [s, t] if s == PUBLIC_SCHEMA => Ok(t.clone()),
        [d, s, t] if d == database && s == PUBLIC_SCHEMA => Ok(t.clone()),
        [s, _] => Err(SqlError::UndefinedObject(format!(
            "schema \"{s}\" does not exist"
        ))),
        [d, _, _] => Err(SqlError::NotSupported(format!(
            "cross-database references: \"{d}\""
        ))),
        _ => Err(SqlError::Syntax(format!("improper qualified name: {name}"))),
    }
}

/// Quotes a name only when PostgreSQL would (not a plain lower-case identifier).
pub fn quote_if_needed(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain { name.to_string() } else { quote(name) }
}
