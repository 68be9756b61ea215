//! The session's `TimeZone`: how `timestamptz` values are shown and how
//! times written without a zone are read.
//!
//! A `timestamptz` is an instant (microseconds since 1970 UTC); the zone
//! only matters at the edges. Output prints the instant as wall-clock time
//! in the session's zone with that moment's offset (`2024-01-01
//! 05:00:00-05`); input without an offset is wall-clock time in the
//! session's zone. A zone is a name from the IANA database
//! (`America/New_York`, with its daylight-saving rules), `UTC`/`GMT`/`Z`,
//! or a fixed offset (`+05:30`, `-7`: hours east of Greenwich, as `SET TIME
//! ZONE -7` means in PostgreSQL).
//!
//! Wall-clock times that a daylight-saving change skips are read as if the
//! clock had not changed (moved forward by the gap); times it repeats are
//! read as the earlier instant, as PostgreSQL does.

use chrono::{FixedOffset, NaiveDateTime, Offset, TimeZone as _};

/// A time zone a session can be set to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TimeZone {
    Fixed(FixedOffset),
    Named(chrono_tz::Tz),
}

impl Default for TimeZone {
    fn default() -> Self {
        TimeZone::UTC
    }
}

impl TimeZone {
    pub const UTC: TimeZone = TimeZone::Named(chrono_tz::Tz::UTC);

    /// The zone a `TimeZone` setting names, if it names one.
    pub fn parse(name: &str) -> Option<TimeZone> {
        let name = name.trim();
        let lower = name.to_ascii_lowercase();
        if ["utc", "gmt", "z", "zulu", "universal", "etc/utc"].contains(&lower.as_str()) {
            return Some(TimeZone::UTC);
        }
        if let Some(offset) = parse_offset(name) {
            return Some(TimeZone::Fixed(offset));
        }
        if let Ok(tz) = name.parse::<chrono_tz::Tz>() {
            return Some(TimeZone::Named(tz));
        }
        chrono_tz::TZ_VARIANTS
            .iter()
            .find(|tz| tz.name().eq_ignore_ascii_case(name))
            .map(|tz| TimeZone::Named(*tz))
    }

    /// The name Arrow and DataFusion take for this zone.
    pub fn arrow_name(&self) -> String {
        match self {
            TimeZone::Named(tz) => tz.name().to_string(),
            TimeZone::Fixed(offset) => format_offset_full(offset.local_minus_utc()),
        }
    }

    /// The zone's offset from UTC, in seconds, at instant `utc_micros`.
    pub fn offset_at(&self, utc_micros: i64) -> i32 {
        match self {
            TimeZone::Fixed(offset) => offset.local_minus_utc(),
            TimeZone::Named(tz) => {
                let Some(utc) = chrono::DateTime::from_timestamp_micros(utc_micros) else {
                    return 0;
                };
                tz.offset_from_utc_datetime(&utc.naive_utc())
                    .fix()
                    .local_minus_utc()
            }
        }
    }

    /// The instant (microseconds since 1970 UTC) of wall-clock time
    /// `local` in this zone.
    pub fn local_to_utc(&self, local: NaiveDateTime) -> i64 {
        let naive = local.and_utc().timestamp_micros();
        let offset = match self {
            TimeZone::Fixed(offset) => offset.local_minus_utc(),
            TimeZone::Named(tz) => match tz.offset_from_local_datetime(&local) {
                chrono::LocalResult::Single(o) => o.fix().local_minus_utc(),
                chrono::LocalResult::Ambiguous(earlier, _) => earlier.fix().local_minus_utc(),
                // In a gap: the offset before it, so the time moves forward.
                chrono::LocalResult::None => self.offset_at(naive - 86_400_000_000),
            },
        };
        naive - offset as i64 * 1_000_000
    }
}

/// `±HH[:MM[:SS]]`, `±HHMM`, or a bare number of hours.
fn parse_offset(text: &str) -> Option<FixedOffset> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        b'0'..=b'9' => (1, text),
        _ => return None,
    };
    let parts: Vec<&str> = if rest.contains(':') {
        rest.split(':').collect()
    } else if rest.len() == 4 && rest.chars().all(|c| c.is_ascii_digit()) {
        vec![&rest[..2], &rest[2..]]
    } else {
        vec![rest]
    };
    if parts.is_empty() || parts.len() > 3 {
        return None;
    }
    let mut seconds = 0i32;
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() || part.len() > 2 || !part.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let n: i32 = part.parse().ok()?;
        if i > 0 && n >= 60 {
            return None;
        }
        seconds += n * [3600, 60, 1][i];
    }
    FixedOffset::east_opt(sign * seconds)
}

/// An offset as PostgreSQL prints it after a time: `+00`, `-05`, `+05:30`.
pub fn format_offset(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let s = seconds.unsigned_abs();
    let (h, m, sec) = (s / 3600, (s / 60) % 60, s % 60);
    match (m, sec) {
        (0, 0) => format!("{sign}{h:02}"),
        (_, 0) => format!("{sign}{h:02}:{m:02}"),
        _ => format!("{sign}{h:02}:{m:02}:{sec:02}"),
    }
}

/// An offset with hours and minutes (`+05:30`, `+00:00`), as Arrow names
/// fixed zones.
fn format_offset_full(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let s = seconds.unsigned_abs();
    format!("{sign}{:02}:{:02}", s / 3600, (s / 60) % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn local(y: i32, mo: u32, d: u32, h: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .and_then(|d| d.and_hms_opt(h, 0, 0))
            .expect("test date")
    }

    #[test]
    fn names_and_offsets() {
        assert_eq!(TimeZone::parse("utc"), Some(TimeZone::UTC));
        assert_eq!(
            TimeZone::parse("america/new_york"),
            Some(TimeZone::Named(chrono_tz::Tz::America__New_York))
        );
        assert_eq!(
            TimeZone::parse("+05:30"),
            FixedOffset::east_opt(19800).map(TimeZone::Fixed)
        );
        assert_eq!(
            TimeZone::parse("-7"),
            FixedOffset::east_opt(-7 * 3600).map(TimeZone::Fixed)
        );
        assert_eq!(TimeZone::parse("Mars/Olympus"), None);
        assert_eq!(TimeZone::parse("+25"), None);
        assert_eq!(format_offset(-5 * 3600), "-05");
        assert_eq!(format_offset(19800), "+05:30");
        assert_eq!(format_offset(0), "+00");
    }

    #[test]
    fn daylight_saving_follows_the_zone() {
        let ny = TimeZone::parse("America/New_York").expect("zone");
        // Winter: UTC-5; summer: UTC-4.
        let winter = ny.local_to_utc(local(2024, 1, 15, 12));
        assert_eq!(ny.offset_at(winter), -5 * 3600);
        let summer = ny.local_to_utc(local(2024, 7, 15, 12));
        assert_eq!(ny.offset_at(summer), -4 * 3600);
        assert_eq!(summer, local(2024, 7, 15, 16).and_utc().timestamp_micros());
        // 02:30 on 2024-03-10 does not exist there: read as 03:30 EDT.
        let gap = ny.local_to_utc(
            NaiveDate::from_ymd_opt(2024, 3, 10)
                .and_then(|d| d.and_hms_opt(2, 30, 0))
                .expect("date"),
        );
        assert_eq!(
            gap,
            NaiveDate::from_ymd_opt(2024, 3, 10)
                .and_then(|d| d.and_hms_opt(7, 30, 0))
                .expect("date")
                .and_utc()
                .timestamp_micros()
        );
    }
}
