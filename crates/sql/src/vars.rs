//! Session variables: what `SET`, `SHOW` and `current_setting` read and write.
//!
//! Clients set several of these at connect time (JDBC sets `extra_float_digits`,
//! psql reads `server_version`, ORMs set `search_path` and `TimeZone`). Names
//! are case-insensitive. Setting a name Shoal does not know is an error
//! (42704), as in PostgreSQL; values are stored as given and only checked for
//! the few variables whose value changes behaviour.

use std::collections::BTreeMap;

use crate::error::{Result, SqlError};

/// The server version Shoal reports; clients compare against it.
pub const SERVER_VERSION: &str = "15.0";

/// Defaults, in PostgreSQL's spelling of names and values.
const DEFAULTS: &[(&str, &str)] = &[
    ("application_name", ""),
    ("bytea_output", "hex"),
    ("client_encoding", "UTF8"),
    ("client_min_messages", "notice"),
    ("DateStyle", "ISO, MDY"),
    ("default_transaction_isolation", "repeatable read"),
    ("default_transaction_read_only", "off"),
    ("extra_float_digits", "1"),
    ("idle_in_transaction_session_timeout", "0"),
    ("integer_datetimes", "on"),
    ("IntervalStyle", "postgres"),
    ("is_superuser", "on"),
    ("lock_timeout", "0"),
    ("max_identifier_length", "63"),
    ("search_path", "\"$user\", public"),
    ("server_encoding", "UTF8"),
    ("server_version", SERVER_VERSION),
    ("server_version_num", "150000"),
    ("standard_conforming_strings", "on"),
    ("statement_timeout", "0"),
    ("synchronous_commit", "on"),
    ("TimeZone", "UTC"),
    ("transaction_isolation", "repeatable read"),
    ("transaction_read_only", "off"),
];

/// Variables that can be read but not set.
const READ_ONLY: &[&str] = &[
    "integer_datetimes",
    "is_superuser",
    "max_identifier_length",
    "server_encoding",
    "server_version",
    "server_version_num",
];

#[derive(Debug, Clone)]
pub struct Vars {
    /// Lower-cased name -> (canonical name, value).
    values: BTreeMap<String, (String, String)>,
}

impl Default for Vars {
    fn default() -> Self {
        Vars {
            values: DEFAULTS
                .iter()
                .map(|(k, v)| (k.to_lowercase(), (k.to_string(), v.to_string())))
                .collect(),
        }
    }
}

impl Vars {
    /// The value of a variable, or None if Shoal has no such variable.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(&name.to_lowercase())
            .map(|(_, v)| v.as_str())
    }

    /// Canonical spelling of a variable's name.
    pub fn canonical_name(&self, name: &str) -> Option<&str> {
        self.values
            .get(&name.to_lowercase())
            .map(|(k, _)| k.as_str())
    }

    /// Sets a variable; `DEFAULT` restores the default.
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        let lower = name.to_lowercase();
        let Some((canonical, _)) = self.values.get(&lower).cloned() else {
            return Err(SqlError::UndefinedObject(format!(
                "unrecognized configuration parameter \"{name}\""
            )));
        };
        if READ_ONLY.contains(&canonical.as_str()) {
            return Err(SqlError::CantChangeRuntimeParam(format!(
                "parameter \"{canonical}\" cannot be changed"
            )));
        }
        let value = if value.eq_ignore_ascii_case("default") {
            DEFAULTS
                .iter()
                .find(|(k, _)| *k == canonical)
                .map(|(_, v)| v.to_string())
                .unwrap_or_default()
        } else {
            self.check(&canonical, value)?
        };
        self.values.insert(lower, (canonical, value));
        Ok(())
    }

    fn check(&self, name: &str, value: &str) -> Result<String> {
        let invalid = || {
            SqlError::InvalidParameter(format!(
                "invalid value for parameter \"{name}\": \"{value}\""
            ))
        };
        match name {
            "client_encoding" => {
                let v = value.to_uppercase().replace(['-', '_'], "");
                if v == "UTF8" || v == "UNICODE" {
                    Ok("UTF8".into())
                } else {
                    Err(SqlError::NotSupported(format!(
                        "client encoding \"{value}\" (only UTF8)"
                    )))
                }
            }
            "standard_conforming_strings" => match value.to_lowercase().as_str() {
                "on" | "true" | "1" => Ok("on".into()),
                _ => Err(SqlError::NotSupported(
                    "standard_conforming_strings = off".into(),
                )),
            },
            "extra_float_digits" => {
                let n: i32 = value.trim().parse().map_err(|_| invalid())?;
                if !(-15..=3).contains(&n) {
                    return Err(invalid());
                }
                Ok(n.to_string())
            }
            "TimeZone" => {
                let v = value.trim();
                if v.eq_ignore_ascii_case("utc")
                    || v.eq_ignore_ascii_case("gmt")
                    || v == "Etc/UTC"
                    || v == "+00:00"
                    || v == "0"
                {
                    Ok(v.to_string())
                } else {
                    Err(SqlError::NotSupported(format!(
                        "time zone \"{v}\" (only UTC)"
                    )))
                }
            }
            "transaction_isolation" | "default_transaction_isolation" => {
                match value.to_lowercase().as_str() {
                    "repeatable read" | "read committed" | "snapshot" => {
                        Ok("repeatable read".into())
                    }
                    "serializable" => Err(SqlError::NotSupported(
                        "SERIALIZABLE isolation (Shoal gives snapshot isolation, REPEATABLE READ, for now)"
                            .into(),
                    )),
                    _ => Err(invalid()),
                }
            }
            _ => Ok(value.to_string()),
        }
    }

    /// All variables, for `SHOW ALL`.
    pub fn all(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.values().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}
