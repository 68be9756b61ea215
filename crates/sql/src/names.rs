//! Identifiers as PostgreSQL treats them: unquoted names fold to lower case,
//! quoted names keep their spelling; and the reverse, quoting a name so it
//! can be put back into SQL text that DataFusion parses.
//!
//! Names of relations resolve through a [`Scope`]: the session's database
//! and the schemas of its `search_path`. A qualified name (`s.t`) is in its
//! own schema; an unqualified one is in the first existing path schema that
//! holds a relation of that name, and a new relation goes into the first
//! existing path schema. Every statement Shoal plans itself (DDL, DML
//! targets, COPY, sequences, `regclass`) resolves names here; DataFusion's
//! planning does the same through the search-path schema provider
//! (`providers.rs`).

use datafusion::sql::sqlparser::ast::{Ident, ObjectName};

use shoal_kv::Txn;

use crate::catalog;
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

/// Splits `[database.][schema.]name` into its schema, if given, and name;
/// a database other than the session's is not supported.
pub fn split(name: &ObjectName, database: &str) -> Result<(Option<String>, String)> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| {
            p.as_ident()
                .map(fold)
                .ok_or_else(|| SqlError::Syntax(format!("invalid name {name}")))
        })
        .collect::<Result<_>>()?;
    match parts.as_slice() {
        [t] => Ok((None, t.clone())),
        [s, t] => Ok((Some(s.clone()), t.clone())),
        [d, s, t] if d == database => Ok((Some(s.clone()), t.clone())),
        [d, _, _] => Err(SqlError::NotSupported(format!(
            "cross-database references: \"{d}\""
        ))),
        _ => Err(SqlError::Syntax(format!("improper qualified name: {name}"))),
    }
}

/// A relation name written as text (`'s.t'::regclass`, `nextval('s.q')`):
/// its schema, if given, and name; unquoted parts fold to lower case.
pub fn parse_text_name(text: &str) -> (Option<String>, String) {
    let mut parts = Vec::new();
    let mut part = String::new();
    let mut chars = text.trim().chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                part.push('"');
            }
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut part)),
            c if quoted => part.push(c),
            c => part.extend(c.to_lowercase()),
        }
    }
    parts.push(part);
    let name = parts.pop().unwrap_or_default();
    (parts.pop(), name)
}

/// The schemas of `search_path`'s value, `$user` standing for `user`.
pub fn parse_search_path(value: &str, user: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(
            |s| match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                Some(quoted) => quoted.replace("\"\"", "\""),
                None => s.to_lowercase(),
            },
        )
        .map(|s| if s == "$user" { user.to_string() } else { s })
        .collect()
}

/// Where a session looks names up: its database, and the schemas of its
/// `search_path` in order. An unqualified name is the first path schema's
/// relation of that name; a new relation of an unqualified name goes into
/// the first path schema that exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub database: String,
    pub path: Vec<String>,
}

impl Scope {
    /// A scope searching `public` only.
    pub fn public(database: &str) -> Scope {
        Scope {
            database: database.to_string(),
            path: vec![PUBLIC_SCHEMA.to_string()],
        }
    }

    /// The schemas of the path that exist, in order (the system schemas
    /// hold no user relations and are left out).
    pub fn existing(&self, txn: &Txn) -> Result<Vec<String>> {
        let mut out = Vec::with_capacity(self.path.len());
        for s in &self.path {
            if !out.contains(s)
                && !crate::schemas::is_system(s)
                && crate::schemas::schema_exists(txn, &self.database, s)?
            {
                out.push(s.clone());
            }
        }
        Ok(out)
    }

    /// The schema and name of an existing relation. An unqualified name
    /// that no path schema holds resolves to the first path schema, where
    /// the caller then finds nothing.
    pub fn resolve(&self, txn: &Txn, name: &ObjectName) -> Result<(String, String)> {
        let (schema, name) = split(name, &self.database)?;
        if let Some(schema) = schema {
            return Ok((schema, name));
        }
        let existing = self.existing(txn)?;
        if existing.len() > 1 {
            for s in &existing {
                if catalog::relation_exists(txn, &self.database, s, &name)? {
                    return Ok((s.clone(), name));
                }
            }
        }
        let first = existing
            .first()
            .or(self.path.first())
            .cloned()
            .unwrap_or_default();
        Ok((first, name))
    }

    /// The schema and name a new relation of this name gets: its own
    /// schema, which must exist (3F000), or the first path schema that
    /// exists.
    pub fn target(&self, txn: &Txn, name: &ObjectName) -> Result<(String, String)> {
        match split(name, &self.database)? {
            (Some(schema), name) => {
                if crate::schemas::is_system(&schema) {
                    return Err(SqlError::NotSupported(format!(
                        "creating relations in schema \"{schema}\""
                    )));
                }
                if !crate::schemas::schema_exists(txn, &self.database, &schema)? {
                    return Err(SqlError::InvalidSchemaName(format!(
                        "schema \"{schema}\" does not exist"
                    )));
                }
                Ok((schema, name))
            }
            (None, name) => match self.existing(txn)?.into_iter().next() {
                Some(schema) => Ok((schema, name)),
                None => Err(SqlError::InvalidSchemaName(
                    "no schema has been selected to create in".into(),
                )),
            },
        }
    }
}

/// A relation's name as SQL text: qualified unless it is in `public`.
pub fn qualified(schema: &str, name: &str) -> String {
    match schema {
        PUBLIC_SCHEMA => quote(name),
        _ => format!("{}.{}", quote(schema), quote(name)),
    }
}

/// A relation's name as PostgreSQL prints it for a `public` search path:
/// bare in `public`, schema-qualified elsewhere.
pub fn display(schema: &str, name: &str) -> String {
    match schema {
        PUBLIC_SCHEMA => quote_if_needed(name),
        _ => format!("{}.{}", quote_if_needed(schema), quote_if_needed(name)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_text() {
        assert_eq!(parse_text_name("t_id_seq"), (None, "t_id_seq".into()));
        assert_eq!(
            parse_text_name("public.T_ID_SEQ"),
            (Some("public".into()), "t_id_seq".into())
        );
        assert_eq!(
            parse_text_name("\"My.Schema\".\"Mi\"\"xed\""),
            (Some("My.Schema".into()), "Mi\"xed".into())
        );
    }

    #[test]
    fn search_paths() {
        assert_eq!(
            parse_search_path("\"$user\", public", "ann"),
            vec!["ann".to_string(), "public".to_string()]
        );
        assert_eq!(
            parse_search_path("App, \"Odd\"\"Name\"", "ann"),
            vec!["app".to_string(), "Odd\"Name".to_string()]
        );
    }
}
