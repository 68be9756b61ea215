//! Text to `interval`, reading what PostgreSQL reads.
//!
//! Arrow's parser takes `1 day 2 hours` but not the form PostgreSQL
//! prints, `1 day 02:00:00`, so an interval a client read could not be
//! written back. `shoal_interval_in(text)` reads PostgreSQL's input
//! syntax; casts to interval (`x::interval`, `interval '…'`), interval
//! columns' literals and text parameters go through it (`compat.rs`,
//! `dml.rs`).
//!
//! Accepted, as in PostgreSQL (`IntervalStyle = postgres`):
//! - quantities with units, in any order: `1 year 2 mons 3 days`,
//!   `1.5 hours`, `-2 weeks`, `3d`, `10 min`, with an optional leading
//!   `@` and a trailing `ago` that negates the whole;
//! - a time `[+|-]HH:MM[:SS[.ffffff]]`, hours past 24 allowed;
//! - a bare number: seconds, or days when a time follows (`3 04:05:06`);
//! - `Y-M` for years and months (`1-2`);
//! - ISO 8601 durations: `P1Y2M3DT4H5M6.5S`, `P2W`.
//!
//! Fractions move down as PostgreSQL moves them: of a month to days (30
//! to a month), of a day or week to
//! time; of a year (or decade, century, millennium) only to whole months.
//! Anything else is 22007; a field out of range is 22015.

use datafusion::arrow::array::Array;
use datafusion::arrow::datatypes::{DataType, IntervalMonthDayNano};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use crate::error::SqlError;

pub const NAME: &str = "shoal_interval_in";

const INTERVAL: DataType = crate::interval::ARROW_TYPE;
const MICROS_PER_SECOND: f64 = 1e6;
const MICROS_PER_DAY: f64 = 86_400.0 * 1e6;

/// An interval being read: PostgreSQL's three fields, the time in
/// microseconds kept as a float until the end so fractions add up.
#[derive(Default)]
struct Parts {
    months: f64,
    days: f64,
    micros: f64,
}

impl Parts {
    /// Adds `n` of a unit: `months`, `days` and `micros` per unit.
    /// Fractions move down (module docs).
    fn add(&mut self, n: f64, unit: Unit) {
        match unit {
            Unit::Years(per) => {
                let years = n * per;
                let whole = years.trunc();
                self.months += whole * 12.0 + ((years - whole) * 12.0).round_ties_even();
            }
            Unit::Months(per) => {
                let months = n * per;
                let whole = months.trunc();
                self.months += whole;
                self.add(months - whole, Unit::Days(30.0));
            }
            Unit::Days(per) => {
                let days = n * per;
                let whole = days.trunc();
                self.days += whole;
                self.micros += (days - whole) * MICROS_PER_DAY;
            }
            Unit::Micros(per) => self.micros += n * per,
        }
    }

    fn negate(&mut self) {
        self.months = -self.months;
        self.days = -self.days;
        self.micros = -self.micros;
    }

    fn finish(self, text: &str) -> Result<IntervalMonthDayNano, SqlError> {
        let range = || {
            SqlError::IntervalFieldOverflow(format!(
                "interval field value out of range: \"{text}\""
            ))
        };
        let field = |x: f64| -> Result<i32, SqlError> {
            let x = x.round();
            if !x.is_finite() || x > f64::from(i32::MAX) || x < f64::from(i32::MIN) {
                return Err(range());
            }
            Ok(x as i32)
        };
        let micros = self.micros.round();
        if !micros.is_finite() || micros.abs() >= 9.2e18 {
            return Err(range());
        }
        let nanos = (micros as i64).checked_mul(1000).ok_or_else(range)?;
        Ok(IntervalMonthDayNano::new(
            field(self.months)?,
            field(self.days)?,
            nanos,
        ))
    }
}

/// What one of a unit is worth.
#[derive(Clone, Copy)]
enum Unit {
    /// Years: a fraction counts in whole months.
    Years(f64),
    Months(f64),
    Days(f64),
    Micros(f64),
}

fn unit(name: &str) -> Option<Unit> {
    let name = name.to_ascii_lowercase();
    Some(match name.as_str() {
        "millennium" | "millennia" | "millenniums" | "mil" | "mils" => Unit::Years(1_000.0),
        "century" | "centuries" | "cent" | "c" => Unit::Years(100.0),
        "decade" | "decades" | "dec" | "decs" => Unit::Years(10.0),
        "year" | "years" | "yr" | "yrs" | "y" => Unit::Years(1.0),
        "month" | "months" | "mon" | "mons" => Unit::Months(1.0),
        "week" | "weeks" | "w" => Unit::Days(7.0),
        "day" | "days" | "d" => Unit::Days(1.0),
        "hour" | "hours" | "hr" | "hrs" | "h" => Unit::Micros(3_600.0 * MICROS_PER_SECOND),
        "minute" | "minutes" | "min" | "mins" | "m" => Unit::Micros(60.0 * MICROS_PER_SECOND),
        "second" | "seconds" | "sec" | "secs" | "s" => Unit::Micros(MICROS_PER_SECOND),
        "millisecond" | "milliseconds" | "ms" | "msec" | "msecs" | "millisecon" => {
            Unit::Micros(1_000.0)
        }
        "microsecond" | "microseconds" | "us" | "usec" | "usecs" | "microsecon" => {
            Unit::Micros(1.0)
        }
        _ => return None,
    })
}

/// Reads `text` as PostgreSQL reads an interval.
pub fn parse(text: &str) -> Result<IntervalMonthDayNano, SqlError> {
    let invalid = || {
        SqlError::InvalidDatetimeFormat(format!(
            "invalid input syntax for type interval: \"{text}\""
        ))
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(invalid());
    }
    if let Some(iso) = trimmed
        .strip_prefix('P')
        .or_else(|| trimmed.strip_prefix('p'))
    {
        return iso8601(iso).ok_or_else(invalid)?.finish(text);
    }
    // Split into words, each number apart from a unit written against it
    // (`3d`, `10min`).
    let mut words: Vec<String> = Vec::new();
    for word in trimmed
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
    {
        let split = word
            .char_indices()
            .find(|(i, c)| *i > 0 && c.is_ascii_alphabetic())
            .map(|(i, _)| i)
            .filter(|_| word.starts_with(|c: char| c.is_ascii_digit() || "+-.".contains(c)));
        match split {
            Some(i) => {
                words.push(word[..i].to_string());
                words.push(word[i..].to_string());
            }
            None => words.push(word.to_string()),
        }
    }
    let mut parts = Parts::default();
    let mut ago = false;
    let mut i = 0;
    if words.first().is_some_and(|w| w == "@") {
        i = 1;
    }
    let mut seen_any = false;
    while i < words.len() {
        let word = &words[i];
        if word.eq_ignore_ascii_case("ago") && i + 1 == words.len() {
            ago = true;
            break;
        }
        if word.contains(':') {
            parts.micros += match time(word) {
                Some(Ok(micros)) => micros,
                Some(Err(())) => {
                    return Err(SqlError::IntervalFieldOverflow(format!(
                        "interval field value out of range: \"{text}\""
                    )));
                }
                None => return Err(invalid()),
            };
            seen_any = true;
            i += 1;
            continue;
        }
        if let Some((years, months)) = year_month(word) {
            parts.months += years * 12.0 + months;
            seen_any = true;
            i += 1;
            continue;
        }
        let n: f64 = word.parse().map_err(|_| invalid())?;
        if !n.is_finite() {
            return Err(invalid());
        }
        match words.get(i + 1).and_then(|w| unit(w)) {
            Some(u) => {
                parts.add(n, u);
                i += 2;
            }
            None => {
                // A bare number: days before a time, else seconds.
                let before_time = words.get(i + 1).is_some_and(|w| w.contains(':'));
                let u = match before_time {
                    true => Unit::Days(1.0),
                    false => Unit::Micros(MICROS_PER_SECOND),
                };
                if words.get(i + 1).is_some_and(|w| !w.contains(':'))
                    && !words[i + 1].eq_ignore_ascii_case("ago")
                {
                    return Err(invalid());
                }
                parts.add(n, u);
                i += 1;
            }
        }
        seen_any = true;
    }
    if !seen_any {
        return Err(invalid());
    }
    if ago {
        parts.negate();
    }
    parts.finish(text)
}

/// `[+|-]H:M[:S[.f]]` in microseconds; `None` if it is not a time,
/// `Err` if its minutes or seconds are 60 or more.
fn time(word: &str) -> Option<Result<f64, ()>> {
    let (negative, body) = match word.as_bytes().first()? {
        b'-' => (true, &word[1..]),
        b'+' => (false, &word[1..]),
        _ => (false, word),
    };
    let fields: Vec<&str> = body.split(':').collect();
    if fields.len() < 2 || fields.len() > 3 {
        return None;
    }
    let whole = |f: &str| -> Option<f64> {
        (!f.is_empty() && f.bytes().all(|b| b.is_ascii_digit())).then(|| f.parse().ok())?
    };
    let hours = whole(fields[0])?;
    let minutes = whole(fields[1])?;
    let seconds = match fields.get(2) {
        Some(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') => {
            s.parse::<f64>().ok()?
        }
        Some(_) => return None,
        None => 0.0,
    };
    if minutes >= 60.0 || seconds >= 60.0 {
        return Some(Err(()));
    }
    let micros = ((hours * 60.0 + minutes) * 60.0 + seconds) * MICROS_PER_SECOND;
    Some(Ok(if negative { -micros } else { micros }))
}

/// SQL's `Y-M`: years and months.
fn year_month(word: &str) -> Option<(f64, f64)> {
    let (negative, body) = match word.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, word.strip_prefix('+').unwrap_or(word)),
    };
    let (y, m) = body.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(y) || !digits(m) {
        return None;
    }
    let (y, m): (f64, f64) = (y.parse().ok()?, m.parse().ok()?);
    Some(if negative { (-y, -m) } else { (y, m) })
}

/// The part of an ISO 8601 duration after `P`.
fn iso8601(body: &str) -> Option<Parts> {
    let mut parts = Parts::default();
    let mut in_time = false;
    let mut number = String::new();
    let mut any = false;
    for c in body.chars() {
        match c.to_ascii_uppercase() {
            'T' if number.is_empty() && !in_time => in_time = true,
            c if c.is_ascii_digit() || c == '.' || c == '-' || c == '+' => number.push(c),
            designator => {
                let n: f64 = number.parse().ok()?;
                number.clear();
                let u = match (designator, in_time) {
                    ('Y', false) => Unit::Years(1.0),
                    ('M', false) => Unit::Months(1.0),
                    ('W', false) => Unit::Days(7.0),
                    ('D', false) => Unit::Days(1.0),
                    ('H', true) => Unit::Micros(3_600.0 * MICROS_PER_SECOND),
                    ('M', true) => Unit::Micros(60.0 * MICROS_PER_SECOND),
                    ('S', true) => Unit::Micros(MICROS_PER_SECOND),
                    _ => return None,
                };
                parts.add(n, u);
                any = true;
            }
        }
    }
    (number.is_empty() && any).then_some(parts)
}

/// `shoal_interval_in(x)`: text read as an interval; an interval as is.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct IntervalIn {
    signature: Signature,
}

impl Default for IntervalIn {
    fn default() -> Self {
        IntervalIn {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for IntervalIn {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(INTERVAL)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let [arg] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(format!(
                "{NAME} takes one argument"
            )));
        };
        if matches!(arg.data_type(), DataType::Interval(_)) {
            return arg.cast_to(&INTERVAL, None);
        }
        let scalar = matches!(arg, ColumnarValue::Scalar(_));
        let texts = datafusion::arrow::compute::cast(&arg.to_array(1)?, &DataType::Utf8)?;
        let texts = datafusion::common::cast::as_string_array(&texts)?;
        let mut out = Vec::with_capacity(texts.len());
        for r in 0..texts.len() {
            out.push(match texts.is_null(r) {
                true => None,
                false => Some(
                    parse(texts.value(r)).map_err(|e| DataFusionError::External(Box::new(e)))?,
                ),
            });
        }
        crate::interval::column(out, scalar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> String {
        let i = parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        crate::interval::format(i.months, i.days, i.nanoseconds / 1000)
    }

    #[test]
    fn reads_what_postgres_reads() {
        for (input, expected) in [
            ("1 day 02:00:00", "1 day 02:00:00"),
            ("04:05:06.5", "04:05:06.5"),
            (
                "1 year 2 mons 3 days 04:05:06",
                "1 year 2 mons 3 days 04:05:06",
            ),
            ("-1 days +02:00:00", "-1 days +02:00:00"),
            ("1 day -02:00:00", "1 day -02:00:00"),
            ("1.5 years", "1 year 6 mons"),
            ("1.1 years", "1 year 1 mon"),
            ("P1.1Y", "1 year 1 mon"),
            ("1.5 decades", "15 years"),
            ("1.5 months", "1 mon 15 days"),
            ("1.5 days", "1 day 12:00:00"),
            ("2 weeks", "14 days"),
            ("3d 4h", "3 days 04:00:00"),
            ("10min", "00:10:00"),
            ("@ 1 hour ago", "-01:00:00"),
            ("1 day, 2:00:00", "1 day 02:00:00"),
            ("90", "00:01:30"),
            ("3 04:05:06", "3 days 04:05:06"),
            ("1-2", "1 year 2 mons"),
            ("P1Y2M3DT4H5M6S", "1 year 2 mons 3 days 04:05:06"),
            ("P2W", "14 days"),
            ("PT1.5H", "01:30:00"),
            ("100:00:00", "100:00:00"),
            ("0", "00:00:00"),
        ] {
            assert_eq!(text(input), expected, "{input}");
        }
    }

    #[test]
    fn refuses_what_postgres_refuses() {
        for bad in ["", "abc", "1 fortnight", "1:2:3:4", "P", "P1X"] {
            assert!(
                matches!(parse(bad), Err(SqlError::InvalidDatetimeFormat(_))),
                "{bad:?}"
            );
        }
        for out_of_range in ["3000000000 days", "1 day 25:61:00"] {
            assert!(
                matches!(parse(out_of_range), Err(SqlError::IntervalFieldOverflow(_))),
                "{out_of_range}"
            );
        }
    }
}
