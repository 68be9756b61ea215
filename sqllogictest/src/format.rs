//! Value formatting, result ordering and hashing.
//!
//! The runner sends every query over the simple query protocol, so every value
//! arrives as text (or NULL). Before comparison each value is rewritten by the type
//! letter its query declared, following the SQLite corpus conventions, so that a file
//! written against SQLite passes unchanged against a PostgreSQL-speaking server:
//!
//! | value              | `I`                     | `R`              | `T`                      |
//! |--------------------|-------------------------|------------------|--------------------------|
//! | NULL               | `NULL`                  | `NULL`           | `NULL`                   |
//! | empty string       | `(empty)`               | `(empty)`        | `(empty)`                |
//! | otherwise          | integer, truncated      | `%.3f`           | non-printable → `@`      |
//!
//! For `I`, PostgreSQL may answer with a float or numeric text (`7.5`, `1e3`) where
//! SQLite had an integer, and with `t`/`f` for booleans; the value is truncated toward
//! zero and booleans become 1/0. Plain decimal text is truncated textually so numerics
//! wider than 64 bits stay exact. Text that is not a number at all is kept (as `T`
//! would print it) so the mismatch is visible rather than hidden behind a `0`.
//!
//! After formatting, the sort mode orders the values (`rowsort` compares rows as lists
//! of formatted strings, `valuesort` each value alone; both byte-wise, like `strcmp`),
//! and the ordered list is what is compared or hashed. The hash is the MD5 of every
//! value followed by `\n`, in lowercase hex — the corpus's `N values hashing to <md5>`.

use md5::{Digest, Md5};

use crate::parser::{ColumnType, SortMode};

/// Formats one value received from the server.
pub fn format_value(value: Option<&str>, ty: ColumnType) -> String {
    let Some(text) = value else {
        return "NULL".to_string();
    };
    if text.is_empty() {
        return "(empty)".to_string();
    }
    let formatted = match ty {
        ColumnType::Integer => format_integer(text),
        ColumnType::Real => format_real(text),
        ColumnType::Text => None,
    };
    formatted.unwrap_or_else(|| format_text(text))
}

fn format_text(text: &str) -> String {
    text.chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '@' })
        .collect()
}

fn as_bool(text: &str) -> Option<i64> {
    match text {
        "t" | "true" => Some(1),
        "f" | "false" => Some(0),
        _ => None,
    }
}

fn format_integer(text: &str) -> Option<String> {
    if let Some(b) = as_bool(text) {
        return Some(b.to_string());
    }
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !int_part.is_empty() && all_digits(int_part) && all_digits(frac_part) {
        let trimmed = int_part.trim_start_matches('0');
        return Some(match (trimmed.is_empty(), negative) {
            (true, _) => "0".to_string(),
            (false, true) => format!("-{trimmed}"),
            (false, false) => trimmed.to_string(),
        });
    }
    // Exponent forms and the like: go through f64.
    let f: f64 = text.parse().ok()?;
    if !f.is_finite() {
        return None;
    }
    let t = f.trunc();
    Some(if t.abs() < 9.0e18 {
        (t as i64).to_string()
    } else {
        format!("{t:.0}")
    })
}

fn format_real(text: &str) -> Option<String> {
    if let Some(b) = as_bool(text) {
        return Some(format!("{:.3}", b as f64));
    }
    let f: f64 = text.parse().ok()?;
    Some(format!("{f:.3}"))
}

/// Formats a row by the declared column types. Extra columns (a mismatch the runner
/// reports separately) are formatted as text.
pub fn format_row(row: &[Option<String>], types: &[ColumnType]) -> Vec<String> {
    row.iter()
        .enumerate()
        .map(|(i, v)| {
            format_value(
                v.as_deref(),
                types.get(i).copied().unwrap_or(ColumnType::Text),
            )
        })
        .collect()
}

/// Orders formatted rows by `mode` and flattens them into the compared value list.
pub fn arrange(mut rows: Vec<Vec<String>>, mode: SortMode) -> Vec<String> {
    if mode == SortMode::Rows {
        rows.sort();
    }
    let mut values: Vec<String> = rows.into_iter().flatten().collect();
    if mode == SortMode::Values {
        values.sort();
    }
    values
}

/// MD5 over every value followed by a newline, as lowercase hex.
pub fn hash_values(values: &[String]) -> String {
    let mut hasher = Md5::new();
    for v in values {
        hasher.update(v.as_bytes());
        hasher.update(b"\n");
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ColumnType::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn nulls_and_empty_strings() {
        for ty in [Integer, Real, Text] {
            assert_eq!(format_value(None, ty), "NULL");
            assert_eq!(format_value(Some(""), ty), "(empty)");
        }
    }

    #[test]
    fn integers() {
        let cases = [
            ("42", "42"),
            ("-7", "-7"),
            ("+7", "7"),
            ("7.9", "7"),
            ("-7.9", "-7"),
            ("-0.5", "0"),
            ("0.000", "0"),
            ("12345678901234567890123.5", "12345678901234567890123"),
            ("1e3", "1000"),
            ("-2.5e1", "-25"),
            ("t", "1"),
            ("f", "0"),
            ("abc", "abc"),
            ("NaN", "NaN"),
        ];
        for (input, want) in cases {
            assert_eq!(format_value(Some(input), Integer), want, "{input}");
        }
    }

    #[test]
    fn reals() {
        let cases = [
            ("1", "1.000"),
            ("-2.5", "-2.500"),
            ("0.0005", "0.001"),
            ("1.23456", "1.235"),
            ("1e3", "1000.000"),
            ("-0", "-0.000"),
            ("t", "1.000"),
            ("x", "x"),
        ];
        for (input, want) in cases {
            assert_eq!(format_value(Some(input), Real), want, "{input}");
        }
    }

    #[test]
    fn text_replaces_non_printable_characters() {
        assert_eq!(format_value(Some("a b~"), Text), "a b~");
        assert_eq!(format_value(Some("tab\there"), Text), "tab@here");
        assert_eq!(format_value(Some("héllo\n"), Text), "h@llo@");
        assert_eq!(format_value(Some("12.5"), Text), "12.5");
    }

    #[test]
    fn rows_with_extra_columns_format_as_text() {
        let row = vec![Some("1.5".into()), None, Some("x\u{7f}".into())];
        assert_eq!(
            format_row(&row, &[Integer, Real]),
            strings(&["1", "NULL", "x@"])
        );
    }

    #[test]
    fn sort_modes() {
        let rows = vec![
            strings(&["b", "1"]),
            strings(&["a", "2"]),
            strings(&["a", "10"]),
        ];
        assert_eq!(
            arrange(rows.clone(), SortMode::Unsorted),
            strings(&["b", "1", "a", "2", "a", "10"])
        );
        // Row-wise, string comparison: "10" < "2".
        assert_eq!(
            arrange(rows.clone(), SortMode::Rows),
            strings(&["a", "10", "a", "2", "b", "1"])
        );
        assert_eq!(
            arrange(rows, SortMode::Values),
            strings(&["1", "10", "2", "a", "a", "b"])
        );
    }

    #[test]
    fn md5_hashing() {
        // md5("1\n2\n")
        assert_eq!(
            hash_values(&strings(&["1", "2"])),
            "6ddb4095eb719e2a9f0a3f95677d24e0"
        );
        // md5("")
        assert_eq!(hash_values(&[]), "d41d8cd98f00b204e9800998ecf8427e");
    }
}
