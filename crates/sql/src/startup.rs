//! Settings a client gives when it connects.
//!
//! A startup packet carries, besides `user` and `database`, any session
//! variable by name (`TimeZone`, `application_name`, `DateStyle`, …) and
//! `options`: command-line style switches, `-c name=value` or
//! `--name=value`, separated by spaces (a backslash keeps the next
//! character, a space included). libpq's `PGOPTIONS` and drivers'
//! `options=` connection settings arrive this way — sysbench's
//! `-c default_transaction_isolation=…`, JDBC's `options=-c
//! search_path=app`. Each is applied as `SET` would apply it; in
//! `options`, a value `SET` would refuse or an unknown name refuses the
//! connection (FATAL), as in PostgreSQL. Parameters of the packet that
//! name no variable Shoal has are ignored (drivers send some only newer
//! servers know), and so are values Shoal does not take there (a client
//! encoding other than UTF-8, a POSIX-style zone): the variable keeps its
//! default, since the driver sent it on its own.

use crate::error::{Result, SqlError};
use crate::session::Session;

/// Startup parameters that are not session variables.
const NOT_VARIABLES: &[&str] = &["user", "database", "options", "replication"];

/// The `name=value` settings of an `options` value.
pub fn options(value: &str) -> Result<Vec<(String, String)>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => word.extend(chars.next()),
            c if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    let mut out = Vec::new();
    let mut words = words.into_iter();
    while let Some(w) = words.next() {
        let setting = if w == "-c" {
            words.next()
        } else if let Some(rest) = w.strip_prefix("-c") {
            Some(rest.to_string())
        } else {
            w.strip_prefix("--").map(str::to_string)
        };
        let Some(setting) = setting else {
            return Err(SqlError::Syntax(format!(
                "invalid command-line argument for server process: {w}"
            )));
        };
        let Some((name, value)) = setting.split_once('=') else {
            return Err(SqlError::Syntax(format!("-c {setting} requires a value")));
        };
        out.push((name.replace('-', "_"), value.to_string()));
    }
    Ok(out)
}

impl Session {
    /// Applies the startup packet's parameters (module docs).
    pub fn apply_startup<'a>(
        &mut self,
        params: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<()> {
        let mut settings = Vec::new();
        let mut from_options = Vec::new();
        for (name, value) in params {
            if name.eq_ignore_ascii_case("options") {
                from_options.extend(options(value)?);
            } else if !NOT_VARIABLES.contains(&name) && !name.starts_with("_pq_") {
                settings.push((name.to_string(), value.to_string()));
            }
        }
        for (name, value) in settings {
            if !self.knows_variable(&name) {
                continue;
            }
            // A value Shoal does not take (libpq in a C locale asks for
            // client encoding SQL_ASCII; a POSIX-style zone such as
            // EST5EDT): the session keeps its default rather than refusing
            // a client that did not ask for the setting by `options`.
            if let Err(e) = self.configure(&name, &value) {
                tracing::debug!(%name, %value, "startup parameter not applied: {e}");
            }
        }
        // `options` come last: they win over the packet's own parameters.
        for (name, value) in from_options {
            if !self.knows_variable(&name) {
                return Err(SqlError::UndefinedObject(format!(
                    "unrecognized configuration parameter \"{name}\""
                )));
            }
            self.configure(&name, &value)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_switches() -> Result<()> {
        assert_eq!(
            options("-c default_transaction_isolation=read\\ committed --search-path=app")?,
            vec![
                (
                    "default_transaction_isolation".to_string(),
                    "read committed".to_string()
                ),
                ("search_path".to_string(), "app".to_string())
            ]
        );
        assert_eq!(
            options("-cstatement_timeout=5s")?,
            vec![("statement_timeout".to_string(), "5s".to_string())]
        );
        assert!(options("-x").is_err());
        assert!(options("-c name").is_err());
        assert_eq!(options("  ")?, Vec::new());
        Ok(())
    }
}
