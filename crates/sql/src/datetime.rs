//! PostgreSQL's input forms of `date`, `timestamp` and `timestamptz`.
//!
//! Drivers do not all send times the same way: pgjdbc sends
//! `2026-01-02 03:04:05.123456+01` for a `timestamp` parameter and
//! `2026-07-21 +00` for a `date`; ORMs send ISO 8601 with a `T`; people type
//! `2024-01-01 10:00`. PostgreSQL reads all of these, and so does this
//! module:
//!
//! - a date `YYYY-MM-DD`, then optionally a time `HH:MM[:SS[.ffffff]]`
//!   after a space or `T`, then optionally a zone: `Z`, `UTC`, `GMT`, or
//!   an offset `±HH[[:]MM]`;
//! - `epoch`, `infinity` and `-infinity` are not accepted here (they stay
//!   an error, 22P02, rather than a wrong value).
//!
//! For `timestamp` the zone is ignored, as PostgreSQL ignores it; for
//! `timestamptz` a missing zone means the session's (`time_zone.rs`); for
//! `date` any time and zone after the date are ignored.

use chrono::{FixedOffset, NaiveDate, NaiveDateTime, NaiveTime};

use crate::error::{Result, SqlError};
use crate::time_zone::TimeZone;

/// A time as written: the wall-clock date and time, and the zone offset
/// if one was given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Written {
    pub local: NaiveDateTime,
    pub offset: Option<FixedOffset>,
}

fn invalid(kind: &str, text: &str) -> SqlError {
    SqlError::InvalidText(format!("invalid input syntax for type {kind}: \"{text}\""))
}

/// Parses date, optional time and optional zone.
pub fn parse(text: &str) -> Option<Written> {
    let t = text.trim();
    if t.len() < 10 || !t.is_char_boundary(10) {
        return None;
    }
    let (date, rest) = t.split_at(10);
    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    let rest = rest.trim_start_matches(['T', 't']).trim_start();
    // The time runs up to a zone marker (a sign or a letter).
    let time_end = rest
        .find(|c: char| c == '+' || c == '-' || c.is_ascii_alphabetic())
        .unwrap_or(rest.len());
    let (time, zone) = rest.split_at(time_end);
    let time = time.trim();
    let time = if time.is_empty() {
        NaiveTime::MIN
    } else {
        NaiveTime::parse_from_str(time, "%H:%M:%S%.f")
            .or_else(|_| NaiveTime::parse_from_str(time, "%H:%M"))
            .ok()?
    };
    Some(Written {
        local: date.and_time(time),
        offset: parse_zone(zone.trim())?,
    })
}

/// A zone suffix: none, `Z`/`UTC`/`GMT`, or `±HH`, `±HH:MM`, `±HHMM`.
/// `None` if it is not one of these.
fn parse_zone(zone: &str) -> Option<Option<FixedOffset>> {
    if zone.is_empty() {
        return Some(None);
    }
    if ["z", "utc", "gmt"].contains(&zone.to_ascii_lowercase().as_str()) {
        return FixedOffset::east_opt(0).map(Some);
    }
    let (sign, digits) = match zone.split_at(1) {
        ("+", d) => (1, d),
        ("-", d) => (-1, d),
        _ => return None,
    };
    let digits: String = digits.chars().filter(|c| *c != ':').collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (h, m, s) = match digits.len() {
        1 | 2 => (digits.parse::<i32>().ok()?, 0, 0),
        4 => (digits[..2].parse().ok()?, digits[2..].parse().ok()?, 0),
        6 => (
            digits[..2].parse().ok()?,
            digits[2..4].parse().ok()?,
            digits[4..].parse().ok()?,
        ),
        _ => return None,
    };
    FixedOffset::east_opt(sign * (h * 3600 + m * 60 + s)).map(Some)
}

/// `timestamp` input: microseconds since 1970 of the wall-clock time
/// (a zone, if written, is ignored).
pub fn timestamp_micros(text: &str) -> Result<i64> {
    parse(text)
        .map(|w| w.local.and_utc().timestamp_micros())
        .ok_or_else(|| invalid("timestamp", text))
}

/// `timestamptz` input: microseconds since 1970 UTC of the instant; a
/// time without a zone is read in UTC.
pub fn timestamptz_micros(text: &str) -> Result<i64> {
    timestamptz_micros_in(text, &TimeZone::UTC)
}

/// `timestamptz` input, a time without a zone being in `zone`.
pub fn timestamptz_micros_in(text: &str, zone: &TimeZone) -> Result<i64> {
    let w = parse(text).ok_or_else(|| invalid("timestamp with time zone", text))?;
    Ok(match w.offset {
        Some(offset) => {
            w.local.and_utc().timestamp_micros() - offset.local_minus_utc() as i64 * 1_000_000
        }
        None => zone.local_to_utc(w.local),
    })
}

/// `date` input: days since 1970-01-01 (anything after the date ignored).
pub fn date_days(text: &str) -> Result<i32> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    parse(text)
        .map(|w| (w.local.date() - epoch).num_days() as i32)
        .ok_or_else(|| invalid("date", text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_drivers_send() {
        let base = timestamp_micros("2026-01-02 03:04:05").unwrap();
        assert_eq!(timestamp_micros("2026-01-02T03:04:05").unwrap(), base);
        assert_eq!(timestamp_micros("2026-01-02 03:04:05+01").unwrap(), base);
        assert_eq!(
            timestamp_micros("2026-01-02 03:04:05.5-07:30").unwrap(),
            base + 500_000
        );
        assert_eq!(
            timestamp_micros("2026-01-02 03:04").unwrap(),
            base - 5_000_000
        );
        assert_eq!(timestamptz_micros("2026-01-02 04:04:05+01").unwrap(), base);
        assert_eq!(timestamptz_micros("2026-01-02T03:04:05Z").unwrap(), base);
        assert_eq!(
            timestamptz_micros("2026-01-02 00:04:05-0300").unwrap(),
            base
        );
        assert_eq!(date_days("1970-01-11 +00").unwrap(), 10);
        assert_eq!(date_days("1970-01-11").unwrap(), 10);
        for bad in [
            "2026-13-01",
            "2026-01-02 25:00",
            "2026-01-02 03:04 +1x",
            "soon",
            "2026",
        ] {
            assert!(timestamp_micros(bad).is_err(), "{bad}");
        }
    }
}
