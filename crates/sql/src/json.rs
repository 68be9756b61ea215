//! JSON documents: the values behind the `json` and `jsonb` types.
//!
//! Both types travel through DataFusion as Arrow `Utf8` (a `pg_type` field
//! entry tells the front end which one a column is), so every text function
//! and comparison works on them unchanged. What differs is the text:
//!
//! - `json` keeps the document exactly as the client wrote it, once it has
//!   been checked to be JSON;
//! - `jsonb` stores the document's *canonical* text, as PostgreSQL prints
//!   it: object keys sorted by length and then bytes, a repeated key keeping
//!   its last value, and `", "` / `": "` between items. Two equal documents
//!   therefore have equal text, so `=`, `DISTINCT`, `GROUP BY` and unique
//!   indexes on jsonb compare documents, not spellings.
//!
//! Numbers keep the digits they were written with (`1.50` stays `1.50`,
//! as PostgreSQL's numeric does); containment compares them by value.
//!
//! This module is pure: parsing, printing, and the operators (`->`, `#>`,
//! `@>`, `?`, `||`, `-`, `jsonb_set`) as functions of values. The SQL
//! functions and the operator planner that call it live in
//! `json_functions.rs`.

use serde_json::{Map, Value};

use crate::error::{Result, SqlError};

/// Parses JSON text; invalid text is 22P02 as in PostgreSQL.
pub fn parse(text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| {
        SqlError::InvalidText(format!(
            "invalid input syntax for type json: {e} in \"{}\"",
            shorten(text)
        ))
    })
}

fn shorten(text: &str) -> String {
    let mut s: String = text.chars().take(60).collect();
    if s.len() < text.len() {
        s.push('…');
    }
    s
}

/// The canonical jsonb text of JSON `text`.
pub fn canonical(text: &str) -> Result<String> {
    Ok(to_text(&parse(text)?))
}

/// A value in jsonb's output form.
pub fn to_text(v: &Value) -> String {
    let mut out = String::new();
    write(v, &mut out);
    out
}

/// Object keys in jsonb order: shorter keys first, then bytewise.
fn sorted_keys(m: &Map<String, Value>) -> Vec<&String> {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    keys
}

fn write(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            out.push('{');
            for (i, k) in sorted_keys(m).into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push_str(": ");
                write(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// `jsonb_pretty`: four-space indentation, one item per line.
pub fn pretty(v: &Value) -> String {
    fn go(v: &Value, depth: usize, out: &mut String) {
        let pad = |d: usize| "    ".repeat(d);
        match v {
            Value::Object(m) if !m.is_empty() => {
                out.push_str("{\n");
                let keys = sorted_keys(m);
                for (i, k) in keys.iter().enumerate() {
                    out.push_str(&pad(depth + 1));
                    out.push_str(&Value::String((*k).clone()).to_string());
                    out.push_str(": ");
                    go(&m[*k], depth + 1, out);
                    out.push_str(if i + 1 < keys.len() { ",\n" } else { "\n" });
                }
                out.push_str(&pad(depth));
                out.push('}');
            }
            Value::Array(items) if !items.is_empty() => {
                out.push_str("[\n");
                for (i, item) in items.iter().enumerate() {
                    out.push_str(&pad(depth + 1));
                    go(item, depth + 1, out);
                    out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
                }
                out.push_str(&pad(depth));
                out.push(']');
            }
            other => write(other, out),
        }
    }
    let mut out = String::new();
    go(v, 0, &mut out);
    out
}

/// A step of a path: an object key or an array position (negative counts
/// from the end).
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Key(String),
    Index(i64),
}

/// The element `step` selects in `v`, if any. A key selects in objects
/// only; a position selects in arrays only.
pub fn get<'a>(v: &'a Value, step: &Step) -> Option<&'a Value> {
    match (v, step) {
        (Value::Object(m), Step::Key(k)) => m.get(k),
        (Value::Array(items), Step::Index(i)) => items.get(position(*i, items.len())?),
        _ => None,
    }
}

/// An array position as an index into `len` items; negative counts back.
fn position(i: i64, len: usize) -> Option<usize> {
    let i = if i < 0 { len as i64 + i } else { i };
    (0..len as i64).contains(&i).then_some(i as usize)
}

/// The element at a path of text steps (`#>`): each step is a key in an
/// object or a number in an array.
pub fn get_path<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, step| match cur {
        Value::Object(m) => m.get(step),
        Value::Array(items) => items.get(position(step.trim().parse().ok()?, items.len())?),
        _ => None,
    })
}

/// `->>` and `#>>`: a string element as its bare text, JSON null as SQL
/// NULL, anything else as jsonb text.
pub fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(to_text(other)),
    }
}

/// `@>`: whether `a` contains `b`, as PostgreSQL defines it: an object
/// contains the keys of `b` with contained values; an array contains every
/// element of `b` somewhere among its own (and a top-level array contains a
/// lone scalar it holds); scalars contain equal scalars.
pub fn contains(a: &Value, b: &Value) -> bool {
    contains_at(a, b, true)
}

fn contains_at(a: &Value, b: &Value, top: bool) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => y
            .iter()
            .all(|(k, bv)| x.get(k).is_some_and(|av| contains_at(av, bv, false))),
        (Value::Array(x), Value::Array(y)) => y.iter().all(|bv| {
            x.iter().any(|av| match (av, bv) {
                (Value::Array(_), Value::Array(_)) | (Value::Object(_), Value::Object(_)) => {
                    contains_at(av, bv, false)
                }
                _ => scalar_eq(av, bv),
            })
        }),
        (Value::Array(x), scalar) if top && !scalar.is_object() => {
            x.iter().any(|av| scalar_eq(av, scalar))
        }
        _ => scalar_eq(a, b),
    }
}

/// Equality of scalars, numbers by value (`1` equals `1.0`).
fn scalar_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || matches!((x.as_f64(), y.as_f64()), (Some(p), Some(q)) if p == q)
        }
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => false,
        _ => a == b,
    }
}

/// `?`: whether `key` is a key of an object, or a string element of an
/// array, at the top level.
pub fn has_key(v: &Value, key: &str) -> bool {
    match v {
        Value::Object(m) => m.contains_key(key),
        Value::Array(items) => items.iter().any(|i| i.as_str() == Some(key)),
        Value::String(s) => s == key,
        _ => false,
    }
}

/// `||`: objects merge (the right side wins on a shared key); otherwise
/// both sides become arrays (a scalar or object is a one-element array)
/// and are concatenated.
pub fn concat(a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut m = x.clone();
            for (k, v) in y {
                m.insert(k.clone(), v.clone());
            }
            Value::Object(m)
        }
        _ => {
            let items = |v: &Value| match v {
                Value::Array(items) => items.clone(),
                other => vec![other.clone()],
            };
            let mut out = items(a);
            out.extend(items(b));
            Value::Array(out)
        }
    }
}

/// `- text`: removes a key from an object, or matching string elements
/// from an array.
pub fn remove_key(v: &Value, key: &str) -> Result<Value> {
    Ok(match v {
        Value::Object(m) => {
            let mut m = m.clone();
            m.remove(key);
            Value::Object(m)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .filter(|i| i.as_str() != Some(key))
                .cloned()
                .collect(),
        ),
        _ => return Err(scalar_error("delete from")),
    })
}

/// `- integer`: removes an array element by position.
pub fn remove_index(v: &Value, i: i64) -> Result<Value> {
    match v {
        Value::Array(items) => {
            let mut items = items.clone();
            if let Some(p) = position(i, items.len()) {
                items.remove(p);
            }
            Ok(Value::Array(items))
        }
        Value::Object(_) => Err(SqlError::InvalidParameter(
            "cannot delete from object using integer index".into(),
        )),
        _ => Err(scalar_error("delete from")),
    }
}

fn scalar_error(what: &str) -> SqlError {
    SqlError::InvalidParameter(format!("cannot {what} scalar"))
}

/// `jsonb_set(target, path, value, create_missing)`: `target` with the
/// element at `path` replaced by `value`, or added if the last step is
/// missing and `create_missing` holds. Steps through missing parents leave
/// the target as it is, as PostgreSQL does.
pub fn set_path(target: &Value, path: &[String], value: &Value, create: bool) -> Result<Value> {
    if matches!(target, Value::Object(_) | Value::Array(_)) {
        let mut out = target.clone();
        set_in(&mut out, path, value, create)?;
        Ok(out)
    } else {
        Err(scalar_error("set path in"))
    }
}

fn set_in(cur: &mut Value, path: &[String], value: &Value, create: bool) -> Result<()> {
    let Some((step, rest)) = path.split_first() else {
        return Ok(());
    };
    match cur {
        Value::Object(m) => {
            if rest.is_empty() {
                if create || m.contains_key(step) {
                    m.insert(step.clone(), value.clone());
                }
            } else if let Some(child) = m.get_mut(step) {
                set_in(child, rest, value, create)?;
            }
        }
        Value::Array(items) => {
            let i: i64 = step.trim().parse().map_err(|_| {
                SqlError::InvalidText(format!(
                    "path element \"{step}\" is not an integer: \"{step}\""
                ))
            })?;
            match position(i, items.len()) {
                Some(p) if rest.is_empty() => items[p] = value.clone(),
                Some(p) => set_in(&mut items[p], rest, value, create)?,
                // Past either end: add at that end.
                None if rest.is_empty() && create => {
                    if i < 0 {
                        items.insert(0, value.clone());
                    } else {
                        items.push(value.clone());
                    }
                }
                None => {}
            }
        }
        _ => {}
    }
    Ok(())
}

/// `jsonb_strip_nulls`: object fields whose value is null are removed,
/// at every depth.
pub fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

/// `jsonb_typeof`.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The steps of a path given as PostgreSQL array text (`'{a,b,0}'`).
pub fn parse_path(text: &str) -> Result<Vec<String>> {
    Ok(crate::array_text::parse(text)?
        .into_iter()
        .flatten()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(s: &str) -> Value {
        parse(s).expect("test json")
    }

    #[test]
    fn canonical_text_sorts_keys_by_length_then_bytes() {
        assert_eq!(
            canonical(r#"{"bb":1,"a":[1,2.50,"x"],"c":{"z":null,"y":true},"a":3}"#).unwrap(),
            r#"{"a": 3, "c": {"y": true, "z": null}, "bb": 1}"#
        );
        assert!(canonical("{bad").is_err());
    }

    #[test]
    fn containment_follows_postgres() {
        let doc = j(r#"{"a":1,"b":{"c":[1,2,{"d":"x"}]},"t":["p","q"]}"#);
        assert!(contains(&doc, &j(r#"{"a":1.0}"#)));
        assert!(contains(&doc, &j(r#"{"b":{"c":[2,{"d":"x"}]}}"#)));
        assert!(!contains(&doc, &j(r#"{"b":{"c":[3]}}"#)));
        assert!(contains(&j("[1,2,3]"), &j("2")));
        assert!(!contains(&j(r#"{"a":[1]}"#), &j(r#"{"a":1}"#)));
        assert!(has_key(&doc, "t") && !has_key(&doc, "p"));
        assert!(has_key(&j(r#"["p","q"]"#), "p"));
    }

    #[test]
    fn paths_get_and_set() {
        let doc = j(r#"{"a":{"b":[10,20,30]}}"#);
        let path = parse_path("{a,b,-1}").unwrap();
        assert_eq!(get_path(&doc, &path), Some(&j("30")));
        let set = set_path(&doc, &parse_path("{a,b,0}").unwrap(), &j("1"), true).unwrap();
        assert_eq!(to_text(&set), r#"{"a": {"b": [1, 20, 30]}}"#);
        let added = set_path(&doc, &parse_path("{a,c}").unwrap(), &j("true"), true).unwrap();
        assert_eq!(to_text(&added), r#"{"a": {"b": [10, 20, 30], "c": true}}"#);
        let kept = set_path(&doc, &parse_path("{x,y}").unwrap(), &j("1"), true).unwrap();
        assert_eq!(kept, doc);
        assert!(set_path(&j("1"), &path, &j("1"), true).is_err());
    }

    #[test]
    fn concat_and_remove() {
        assert_eq!(
            to_text(&concat(&j(r#"{"a":1,"b":2}"#), &j(r#"{"b":3}"#))),
            r#"{"a": 1, "b": 3}"#
        );
        assert_eq!(to_text(&concat(&j("[1]"), &j("2"))), "[1, 2]");
        assert_eq!(
            to_text(&remove_key(&j(r#"["a","b","a"]"#), "a").unwrap()),
            r#"["b"]"#
        );
        assert_eq!(to_text(&remove_index(&j("[1,2,3]"), -1).unwrap()), "[1, 2]");
        assert!(remove_key(&j("3"), "a").is_err());
    }
}
