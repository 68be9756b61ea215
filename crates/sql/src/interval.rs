//! `interval` values as PostgreSQL prints them (`IntervalStyle =
//! postgres`): `1 year 2 mons 3 days 04:05:06.5`.
//!
//! An interval keeps months, days and time apart (a month is not a fixed
//! number of days, nor a day a fixed number of hours across a DST change),
//! as Arrow's `MonthDayNano` does; the SQL layer stores microseconds.
//! Years and months print from the months, days from the days, and the
//! time as `[-]HH:MM:SS[.ffffff]`; a zero interval prints `00:00:00`. A
//! time following a negative part gets an explicit `+`, so `-1 days
//! +02:00:00` reads back as written.

/// The Arrow type intervals are computed in.
pub const ARROW_TYPE: datafusion::arrow::datatypes::DataType =
    datafusion::arrow::datatypes::DataType::Interval(
        datafusion::arrow::datatypes::IntervalUnit::MonthDayNano,
    );

/// A function's interval results: one value when its arguments were all
/// single values (`scalar`), else a column.
pub fn column(
    values: Vec<Option<datafusion::arrow::datatypes::IntervalMonthDayNano>>,
    scalar: bool,
) -> datafusion::error::Result<datafusion::logical_expr::ColumnarValue> {
    use datafusion::logical_expr::ColumnarValue;
    let array = datafusion::arrow::array::IntervalMonthDayNanoArray::from(values);
    Ok(match scalar {
        true => ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&array, 0)?),
        false => ColumnarValue::Array(std::sync::Arc::new(array)),
    })
}

/// The text of an interval of `months`, `days` and `micros`.
pub fn format(months: i32, days: i32, micros: i64) -> String {
    let mut parts: Vec<String> = Vec::new();
    let plural = |n: i64, unit: &str| {
        if n == 1 {
            format!("{n} {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    let (years, mons) = (months / 12, months % 12);
    if years != 0 {
        parts.push(plural(years as i64, "year"));
    }
    if mons != 0 {
        parts.push(plural(mons as i64, "mon"));
    }
    if days != 0 {
        parts.push(plural(days as i64, "day"));
    }
    if micros != 0 || parts.is_empty() {
        let negative_before = months < 0 || days < 0;
        let sign = if micros < 0 {
            "-"
        } else if negative_before {
            "+"
        } else {
            ""
        };
        let total = micros.unsigned_abs();
        let (secs, frac) = (total / 1_000_000, total % 1_000_000);
        let mut time = format!(
            "{sign}{:02}:{:02}:{:02}",
            secs / 3600,
            (secs / 60) % 60,
            secs % 60
        );
        if frac != 0 {
            let f = format!("{frac:06}");
            time.push('.');
            time.push_str(f.trim_end_matches('0'));
        }
        parts.push(time);
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_as_postgres_does() {
        assert_eq!(format(0, 0, 0), "00:00:00");
        assert_eq!(format(0, 1, 7_200_000_000), "1 day 02:00:00");
        assert_eq!(
            format(14, 3, 14_706_500_000),
            "1 year 2 mons 3 days 04:05:06.5"
        );
        assert_eq!(format(0, -1, 7_200_000_000), "-1 days +02:00:00");
        assert_eq!(format(-1, 0, 0), "-1 mons");
        assert_eq!(format(0, 0, -90_000_000), "-00:01:30");
        assert_eq!(format(0, 2, 0), "2 days");
        assert_eq!(format(0, 0, 100 * 3_600_000_000), "100:00:00");
    }
}
