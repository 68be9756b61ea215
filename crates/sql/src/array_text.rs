//! PostgreSQL's text form of one-dimensional arrays: `{1,2,NULL}`,
//! `{"a b","c\"d"}`.
//!
//! Elements are separated by commas; an element is either bare (surrounding
//! whitespace dropped; `NULL` in any case is a null) or double-quoted, with
//! backslash escaping the next character. Used wherever text becomes an
//! array: casts and inserts into array columns, `COPY`, and path arguments
//! (`'{a,b}'`) of the JSON functions.

use crate::error::{Result, SqlError};

fn malformed(text: &str, why: &str) -> SqlError {
    SqlError::InvalidText(format!("malformed array literal: \"{text}\" ({why})"))
}

/// The elements of array text; `None` for a NULL element.
pub fn parse(text: &str) -> Result<Vec<Option<String>>> {
    let trimmed = text.trim();
    let inner = trimmed
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| malformed(text, "array value must start with \"{\""))?;
    let mut out = Vec::new();
    if inner.trim().is_empty() {
        return Ok(out);
    }
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut item = String::new();
        let mut quoted = false;
        if chars.peek() == Some(&'"') {
            quoted = true;
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => item.push(
                        chars
                            .next()
                            .ok_or_else(|| malformed(text, "unexpected end"))?,
                    ),
                    Some('"') => break,
                    Some(c) => item.push(c),
                    None => return Err(malformed(text, "unterminated quoted element")),
                }
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
        } else {
            while let Some(&c) = chars.peek() {
                match c {
                    ',' => break,
                    // An element that is itself an array.
                    '{' if item.is_empty() => {
                        return Err(SqlError::NotSupported("multidimensional arrays".into()));
                    }
                    '{' | '}' | '"' => {
                        return Err(malformed(text, "unexpected character"));
                    }
                    '\\' => {
                        chars.next();
                        item.push(
                            chars
                                .next()
                                .ok_or_else(|| malformed(text, "unexpected end"))?,
                        );
                        continue;
                    }
                    _ => item.push(c),
                }
                chars.next();
            }
            item = item.trim_end().to_string();
            if item.is_empty() {
                return Err(malformed(text, "empty element"));
            }
        }
        if !quoted && item.eq_ignore_ascii_case("null") {
            out.push(None);
        } else {
            out.push(Some(item));
        }
        match chars.next() {
            Some(',') => continue,
            None => return Ok(out),
            Some(_) => return Err(malformed(text, "junk after element")),
        }
    }
}

/// One element in array text: quoted when it is empty, `NULL`-like, or
/// holds a delimiter, quote, backslash or whitespace.
pub fn quote_element(item: &str) -> String {
    let needs = item.is_empty()
        || item.eq_ignore_ascii_case("null")
        || item
            .chars()
            .any(|c| matches!(c, '{' | '}' | ',' | '"' | '\\') || c.is_whitespace());
    if !needs {
        return item.to_string();
    }
    let mut out = String::with_capacity(item.len() + 2);
    out.push('"');
    for c in item.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bare_quoted_and_null_elements() {
        assert_eq!(
            parse(r#"{1, "a b" ,NULL,"NULL",c\,d}"#).unwrap(),
            vec![
                Some("1".into()),
                Some("a b".into()),
                None,
                Some("NULL".into()),
                Some("c,d".into())
            ]
        );
        assert_eq!(parse("{}").unwrap(), Vec::<Option<String>>::new());
        for bad in ["1,2", "{1,,2}", "{{1},{2}}", "{\"a}", "{a\"b}"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn quoting_round_trips() {
        for item in ["plain", "", "a b", "NULL", "q\"uo\\te", "x,y"] {
            let text = format!("{{{}}}", quote_element(item));
            assert_eq!(parse(&text).unwrap(), vec![Some(item.to_string())]);
        }
    }
}
