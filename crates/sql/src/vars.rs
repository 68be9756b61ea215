//! Session variables: what `SET`, `SHOW` and `current_setting` read and write.
//!
//! Clients set several of these at connect time (JDBC sets `extra_float_digits`,
//! psql reads `server_version`, ORMs set `search_path` and `TimeZone`). Names
//! are case-insensitive. Setting a name Shoal does not know is an error
//! (42704), as in PostgreSQL; values are stored as given and only checked for
//! the few variables whose value changes behaviour.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

use crate::error::{Result, SqlError};

/// The server version Shoal reports; clients compare against it.
pub const SERVER_VERSION: &str = "15.0";

/// Defaults, in PostgreSQL's spelling of names and values.
const DEFAULTS: &[(&str, &str)] = &[
    ("application_name", ""),
    ("block_size", "8192"),
    ("bytea_output", "hex"),
    ("client_encoding", "UTF8"),
    ("client_min_messages", "notice"),
    ("DateStyle", "ISO, MDY"),
    ("default_transaction_isolation", "serializable"),
    ("default_transaction_read_only", "off"),
    ("extra_float_digits", "1"),
    ("idle_in_transaction_session_timeout", "0"),
    ("integer_datetimes", "on"),
    ("IntervalStyle", "postgres"),
    ("is_superuser", "on"),
    ("lock_timeout", "0"),
    ("max_identifier_length", "63"),
    ("max_index_keys", "32"),
    ("search_path", "\"$user\", public"),
    ("server_encoding", "UTF8"),
    ("server_version", SERVER_VERSION),
    ("server_version_num", "150000"),
    ("standard_conforming_strings", "on"),
    ("statement_timeout", "0"),
    ("synchronous_commit", "on"),
    ("TimeZone", "UTC"),
    ("transaction_isolation", "serializable"),
    ("transaction_read_only", "off"),
];

/// Variables that can be read but not set.
const READ_ONLY: &[&str] = &[
    "block_size",
    "integer_datetimes",
    "is_superuser",
    "max_identifier_length",
    "max_index_keys",
    "server_encoding",
    "server_version",
    "server_version_num",
];

/// The zone a `TimeZone` value names (UTC if it names none, which
/// [`Vars::set`] does not let happen).
pub fn time_zone(value: Option<&str>) -> crate::time_zone::TimeZone {
    value
        .and_then(crate::time_zone::TimeZone::parse)
        .unwrap_or_default()
}

/// Every variable and its default, for `pg_settings`.
pub fn defaults() -> impl Iterator<Item = (&'static str, &'static str)> {
    DEFAULTS.iter().copied()
}

/// Whether variable `name` (canonical spelling) can be read but not set.
pub fn is_read_only(name: &str) -> bool {
    READ_ONLY.contains(&name)
}

#[derive(Debug)]
pub struct Vars {
    /// Lower-cased name -> (canonical name, value).
    values: BTreeMap<String, (String, String)>,
    /// The same, shared with the session's `current_setting` function,
    /// which runs inside queries ([`Vars::reader`]).
    shared: VarsReader,
}

/// A read-only view of a session's variables, for functions that run
/// inside queries.
#[derive(Debug, Clone, Default)]
pub struct VarsReader(Arc<RwLock<BTreeMap<String, String>>>);

impl VarsReader {
    /// The value of variable `name` (any case), if it exists.
    pub fn get(&self, name: &str) -> Option<String> {
        self.0.read().get(&name.to_lowercase()).cloned()
    }
}

impl Default for Vars {
    fn default() -> Self {
        let values: BTreeMap<String, (String, String)> = DEFAULTS
            .iter()
            .map(|(k, v)| (k.to_lowercase(), (k.to_string(), v.to_string())))
            .collect();
        let shared = VarsReader::default();
        *shared.0.write() = values
            .iter()
            .map(|(k, (_, v))| (k.clone(), v.clone()))
            .collect();
        Vars { values, shared }
    }
}

/// A duration setting's limit (`statement_timeout`, `lock_timeout`): None
/// for 0 (no limit) or a value [`Vars::set`] would not have taken.
pub fn timeout(value: &str) -> Option<Duration> {
    parse_duration(value).flatten()
}

/// A duration as PostgreSQL reads one: a number in milliseconds, or with a
/// unit (`us`, `ms`, `s`, `min`, `h`, `d`). `Some(None)` is 0 (no limit);
/// None is not a duration.
fn parse_duration(value: &str) -> Option<Option<Duration>> {
    let value = value.trim().trim_matches('\'');
    let split = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().ok()?;
    let ms = match unit.trim() {
        "" | "ms" => number,
        "us" => number / 1000.0,
        "s" => number * 1000.0,
        "min" => number * 60_000.0,
        "h" => number * 3_600_000.0,
        "d" => number * 86_400_000.0,
        _ => return None,
    };
    if !ms.is_finite() || ms > 1e12 {
        return None;
    }
    Some((ms > 0.0).then(|| Duration::from_secs_f64(ms / 1000.0)))
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
        let value = self.checked(name, value)?;
        let lower = name.to_lowercase();
        if let Some((canonical, _)) = self.values.get(&lower).cloned() {
            self.shared.0.write().insert(lower.clone(), value.clone());
            self.values.insert(lower, (canonical, value));
        }
        Ok(())
    }

    /// The value [`Vars::set`] would store, normalized, without storing it.
    pub fn checked(&self, name: &str, value: &str) -> Result<String> {
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
        Ok(value)
    }

    fn check(&self, name: &str, value: &str) -> Result<String> {
        let invalid = || {
            SqlError::InvalidParameter(format!(
                "invalid value for parameter \"{name}\": \"{value}\""
            ))
        };
        match name {
            "statement_timeout" | "lock_timeout" => {
                parse_duration(value).ok_or_else(invalid)?;
                Ok(value.trim().trim_matches('\'').to_string())
            }
            // Accepted only as "no limit": Shoal does not end idle sessions.
            "idle_in_transaction_session_timeout" => match parse_duration(value) {
                None => Err(invalid()),
                Some(Some(_)) => Err(SqlError::NotSupported(
                    "idle_in_transaction_session_timeout other than 0".into(),
                )),
                Some(None) => Ok("0".into()),
            },
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
                match crate::time_zone::TimeZone::parse(v) {
                    Some(_) => Ok(v.to_string()),
                    None => Err(SqlError::InvalidParameter(format!(
                        "invalid value for parameter \"TimeZone\": \"{v}\""
                    ))),
                }
            }
            "transaction_isolation" | "default_transaction_isolation" => {
                // READ UNCOMMITTED runs as READ COMMITTED, as in
                // PostgreSQL (`read_committed`), and keeps its name.
                match value.to_lowercase().as_str() {
                    "repeatable read" | "snapshot" => Ok("repeatable read".into()),
                    "read committed" => Ok("read committed".into()),
                    "read uncommitted" => Ok("read uncommitted".into()),
                    "serializable" => Ok("serializable".into()),
                    _ => Err(invalid()),
                }
            }
            _ => Ok(value.to_string()),
        }
    }

    /// A view that follows every later change.
    pub fn reader(&self) -> VarsReader {
        self.shared.clone()
    }

    /// All variables, for `SHOW ALL`.
    pub fn all(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.values().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Whether a normalized `transaction_isolation` value takes a new snapshot
/// for every statement (READ COMMITTED, and READ UNCOMMITTED, which runs
/// as it).
pub fn read_committed(value: &str) -> bool {
    matches!(value, "read committed" | "read uncommitted")
}

/// The isolation a normalized `transaction_isolation` value names (READ
/// COMMITTED is snapshot isolation per statement: `read_committed`).
pub fn isolation(value: &str) -> shoal_kv::Isolation {
    if value == "serializable" {
        shoal_kv::Isolation::Serializable
    } else {
        shoal_kv::Isolation::Snapshot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_read_as_postgresql_reads_them() {
        assert_eq!(timeout("0"), None);
        assert_eq!(timeout("150"), Some(Duration::from_millis(150)));
        assert_eq!(timeout("2s"), Some(Duration::from_secs(2)));
        assert_eq!(timeout("'1min'"), Some(Duration::from_secs(60)));
        assert_eq!(timeout("bogus"), None);
        let mut vars = Vars::default();
        assert!(vars.set("statement_timeout", "250ms").is_ok());
        assert_eq!(vars.get("statement_timeout"), Some("250ms"));
        assert!(matches!(
            vars.set("lock_timeout", "soon"),
            Err(SqlError::InvalidParameter(_))
        ));
        assert!(vars.set("idle_in_transaction_session_timeout", "0").is_ok());
        assert!(matches!(
            vars.set("idle_in_transaction_session_timeout", "5s"),
            Err(SqlError::NotSupported(_))
        ));
    }
}
