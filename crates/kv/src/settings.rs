//! Cluster settings: named values every node reads the same, set with
//! `SET CLUSTER SETTING name = value` and replicated in the first range.
//!
//! Each known setting has a kind, a default and a validator ([`SETTINGS`]).
//! A value is checked and normalized *before* it is proposed, so the
//! replicated record always holds a valid value in its canonical form; a
//! record absent means the default. Records are raw keys of the data column
//! family, outside the MVCC space: `s c <name>` → value (UTF-8).
//!
//! Known settings: `server.time_until_store_dead` (a duration) and
//! `kv.range_split.load_qps_threshold` (a whole number).
//!
//! Durations are written as CockroachDB writes them (`15s`, `5m`, `1h30m`,
//! `300ms`; units h, m, s, ms, combinable) or as a PostgreSQL interval
//! (`15 seconds`, `5 minutes`).

use std::time::Duration;

use shoal_storage::{Engine, StorageError, WriteBatch};

use crate::error::{KvError, Result};

/// How long a node may go without renewing its liveness before its
/// replicas are rebuilt on other nodes.
pub const TIME_UNTIL_STORE_DEAD: &str = "server.time_until_store_dead";

/// Requests per second through one node above which a range is split
/// at a key dividing its load (CockroachDB's name and default).
pub const LOAD_QPS_THRESHOLD: &str = "kv.range_split.load_qps_threshold";

/// A setting's type, and the values it accepts.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A duration of at least `min`.
    Duration { min: Duration },
    /// A whole number of at least `min`.
    Integer { min: u64 },
}

struct Spec {
    name: &'static str,
    default: &'static str,
    kind: Kind,
}

/// Every known setting.
const SETTINGS: &[Spec] = &[
    Spec {
        name: TIME_UNTIL_STORE_DEAD,
        default: "5m",
        // Longer than a liveness TTL, so a live node between two heartbeats
        // is never declared dead.
        kind: Kind::Duration {
            min: Duration::from_secs(10),
        },
    },
    Spec {
        name: LOAD_QPS_THRESHOLD,
        default: "2500",
        kind: Kind::Integer { min: 1 },
    },
];

const PREFIX: &[u8] = b"sc";

fn record_key(name: &str) -> Vec<u8> {
    let mut key = PREFIX.to_vec();
    key.extend_from_slice(name.as_bytes());
    key
}

fn spec(name: &str) -> Result<&'static Spec> {
    SETTINGS
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| KvError::UnknownSetting(name.to_string()))
}

/// `value` checked against setting `name` and put in canonical form.
pub fn normalize(name: &str, value: &str) -> Result<String> {
    let invalid = |why: String| KvError::InvalidSetting(format!("{name}: {why}"));
    match spec(name)?.kind {
        Kind::Duration { min } => {
            let d = parse_duration(value)
                .ok_or_else(|| invalid(format!("{value:?} is not a duration (e.g. 15s, 5m)")))?;
            if d < min {
                return Err(invalid(format!(
                    "{} is below the minimum {}",
                    format_duration(d),
                    format_duration(min)
                )));
            }
            Ok(format_duration(d))
        }
        Kind::Integer { min } => {
            let n: u64 = value
                .trim()
                .parse()
                .map_err(|_| invalid(format!("{value:?} is not a whole number")))?;
            if n < min {
                return Err(invalid(format!("{n} is below the minimum {min}")));
            }
            Ok(n.to_string())
        }
    }
}

/// The value of integer setting `name`.
pub fn get_u64(engine: &dyn Engine, name: &str) -> Result<u64> {
    let value = get(engine, name)?;
    value
        .parse()
        .map_err(|_| StorageError::Corrupt(format!("cluster setting {name}: {value:?}")).into())
}

/// The value of setting `name`: the replicated one, else the default.
pub fn get(engine: &dyn Engine, name: &str) -> Result<String> {
    let spec = spec(name)?;
    match engine.get(&record_key(name))? {
        Some(bytes) => String::from_utf8(bytes)
            .map_err(|_| StorageError::Corrupt(format!("cluster setting {name}")).into()),
        None => Ok(spec.default.to_string()),
    }
}

/// The value of duration setting `name`.
pub fn get_duration(engine: &dyn Engine, name: &str) -> Result<Duration> {
    let value = get(engine, name)?;
    parse_duration(&value)
        .ok_or_else(|| StorageError::Corrupt(format!("cluster setting {name}: {value:?}")).into())
}

/// Applies a setting (already normalized by the proposer).
pub fn put(name: &str, value: &str, batch: &mut WriteBatch) {
    batch.put(record_key(name), value.as_bytes().to_vec());
}

/// Parses `15s`, `1h30m`, `300ms`, or `15 seconds` / `5 minutes`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim().to_ascii_lowercase();
    if let Some((number, unit)) = text.split_once(' ') {
        let n: u64 = number.trim().parse().ok()?;
        let secs = match unit.trim().trim_end_matches('s') {
            "millisecond" | "msec" => return Some(Duration::from_millis(n)),
            "second" | "sec" => n,
            "minute" | "min" => n.checked_mul(60)?,
            "hour" => n.checked_mul(3600)?,
            _ => return None,
        };
        return Some(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = text.as_str();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let n: u64 = rest.get(..digits)?.parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let part = match &rest[..unit_len] {
            "h" => Duration::from_secs(n.checked_mul(3600)?),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "s" => Duration::from_secs(n),
            "ms" => Duration::from_millis(n),
            _ => return None,
        };
        total = total.checked_add(part)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// The canonical form: `1h30m`, `15s`, `250ms`, `0s`.
pub fn format_duration(d: Duration) -> String {
    let mut out = String::new();
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let ms = d.subsec_millis();
    for (n, unit) in [(h, "h"), (m, "m"), (s, "s"), (u64::from(ms), "ms")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use shoal_storage::MemoryEngine;

    use super::*;

    #[test]
    fn durations_parse_and_print() {
        for (text, secs_ms) in [
            ("15s", 15_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("300ms", 300),
            ("1m15s", 75_000),
            ("15 seconds", 15_000),
            ("2 minutes", 120_000),
            ("1 hour", 3_600_000),
        ] {
            assert_eq!(
                parse_duration(text),
                Some(Duration::from_millis(secs_ms)),
                "{text}"
            );
        }
        for bad in ["", "15", "s", "15x", "-5s", "fifteen seconds"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert_eq!(format_duration(Duration::from_secs(5_400)), "1h30m");
        assert_eq!(format_duration(Duration::from_millis(1_250)), "1s250ms");
    }

    #[test]
    fn settings_are_validated_and_default() {
        let engine = MemoryEngine::new();
        assert_eq!(get(&engine, TIME_UNTIL_STORE_DEAD).unwrap(), "5m");
        assert_eq!(
            normalize(TIME_UNTIL_STORE_DEAD, "15 seconds").unwrap(),
            "15s"
        );
        assert!(matches!(
            normalize(TIME_UNTIL_STORE_DEAD, "5s"),
            Err(KvError::InvalidSetting(_))
        ));
        assert!(matches!(
            normalize(TIME_UNTIL_STORE_DEAD, "soon"),
            Err(KvError::InvalidSetting(_))
        ));
        assert!(matches!(
            normalize("no.such.setting", "1"),
            Err(KvError::UnknownSetting(_))
        ));
        assert_eq!(get_u64(&engine, LOAD_QPS_THRESHOLD).unwrap(), 2500);
        assert_eq!(normalize(LOAD_QPS_THRESHOLD, " 100 ").unwrap(), "100");
        assert!(normalize(LOAD_QPS_THRESHOLD, "0").is_err());
        assert!(normalize(LOAD_QPS_THRESHOLD, "many").is_err());
        let mut batch = WriteBatch::new();
        put(TIME_UNTIL_STORE_DEAD, "15s", &mut batch);
        engine.write(batch, false).unwrap();
        assert_eq!(
            get_duration(&engine, TIME_UNTIL_STORE_DEAD).unwrap(),
            Duration::from_secs(15)
        );
    }
}
