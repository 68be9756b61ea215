//! Column defaults as PostgreSQL's catalogs show them
//! (`pg_get_expr(pg_attrdef.adbin, …)`, psql's `\d`).
//!
//! Shoal keeps a default as the SQL text it was given (`nextval('t_id_seq')`,
//! `'x'`, `-1`). PostgreSQL keeps the parsed expression, already coerced
//! to the column's type, and prints it back with the casts that make it
//! re-parse to the same thing: `nextval('t_id_seq'::regclass)`,
//! `'x'::text`, `'-1'::integer`. Tools compare the two forms (schema
//! diffing in migration tools, ORMs recognizing a serial column), so the
//! catalogs print PostgreSQL's.
//!
//! A constant is printed as PostgreSQL prints a constant of the column's
//! type (ruleutils' `get_const_expr`):
//! - `integer`: the number; a negative one quoted, with `::integer`;
//! - `numeric`: the number when it has a decimal point or exponent and no
//!   sign, else quoted with `::numeric`;
//! - `boolean`: `true` or `false`;
//! - any other type: the quoted text with a cast to the type.
//!
//! The sequence argument of `nextval` and friends gets `::regclass`, as
//! the function takes one. Anything else prints as written. A NULL
//! default is no default, as in PostgreSQL, which stores none.

use datafusion::sql::sqlparser::ast::{
    self, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, UnaryOperator, Value,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::types::SqlType;

/// How the catalogs show a column's default `text` (module docs); `None`
/// for `NULL`.
pub fn display(text: &str, ty: &SqlType) -> Option<String> {
    let Ok(mut expr) = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(text)
        .and_then(|mut p| p.parse_expr())
    else {
        return Some(text.to_string());
    };
    if let Some(value) = constant(&expr) {
        return value.map(|v| constant_text(&v, ty));
    }
    if regclass_argument(&mut expr) {
        return Some(expr.to_string());
    }
    Some(text.to_string())
}

/// The text of a constant default (`Some(None)` for NULL), or `None` if
/// the expression is not a constant.
fn constant(expr: &Expr) -> Option<Option<String>> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Null => Some(None),
            Value::Number(n, _) => Some(Some(n.clone())),
            Value::Boolean(b) => Some(Some(b.to_string())),
            Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) => Some(Some(s.clone())),
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match expr.as_ref() {
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) => Some(Some(format!("-{n}"))),
                _ => None,
            },
            _ => None,
        },
        Expr::Nested(inner) => constant(inner),
        // A cast to one of Shoal's own types, as stored: `'1 day'::interval`
        // is kept as `shoal_interval_in('1 day')`.
        Expr::Function(f) if crate::compat::is_input_function(&f.name.to_string()) => {
            let FunctionArguments::List(list) = &f.args else {
                return None;
            };
            match list.args.first() {
                Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(e))) => constant(e),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A constant of type `ty` as `get_const_expr` prints it.
fn constant_text(value: &str, ty: &SqlType) -> String {
    let quoted = || format!("'{}'", value.replace('\'', "''"));
    match ty {
        SqlType::Integer if value.parse::<i32>().is_ok() => match value.starts_with('-') {
            false => value.to_string(),
            true => format!("{}::integer", quoted()),
        },
        SqlType::Numeric { .. }
            if value.starts_with(|c: char| c.is_ascii_digit())
                && value.contains(['.', 'e', 'E'])
                && value.parse::<f64>().is_ok() =>
        {
            value.to_string()
        }
        SqlType::Boolean => match value.to_ascii_lowercase().as_str() {
            "t" | "true" | "y" | "yes" | "on" | "1" => "true".into(),
            "f" | "false" | "n" | "no" | "off" | "0" => "false".into(),
            _ => quoted(),
        },
        _ => format!("{}::{}", quoted(), label(ty)),
    }
}

/// The type name a constant's cast shows: without a length or precision
/// (PostgreSQL's constant has none; the column's coercion adds it).
fn label(ty: &SqlType) -> String {
    match ty {
        SqlType::Numeric { .. } => "numeric".into(),
        SqlType::Varchar(_) => "character varying".into(),
        SqlType::Char(_) => "bpchar".into(),
        SqlType::Array(element) => format!("{}[]", label(element)),
        other => other.pg_name(),
    }
}

/// Adds `::regclass` to the quoted sequence name of a sequence function
/// call; `true` if it did.
fn regclass_argument(expr: &mut Expr) -> bool {
    let Expr::Function(f) = expr else {
        return false;
    };
    let name = f.name.to_string().to_ascii_lowercase();
    if !matches!(
        name.as_str(),
        "nextval" | "currval" | "setval" | "pg_catalog.nextval"
    ) {
        return false;
    }
    let FunctionArguments::List(list) = &mut f.args else {
        return false;
    };
    let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(first))) = list.args.first_mut() else {
        return false;
    };
    if !matches!(first, Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_))) {
        return false;
    }
    let sequence = std::mem::replace(first, Expr::Value(Value::Null.into()));
    *first = Expr::Cast {
        kind: ast::CastKind::DoubleColon,
        expr: Box::new(sequence),
        // Spelled as PostgreSQL prints it (sqlparser's own is upper case).
        data_type: ast::DataType::Custom(
            ast::ObjectName::from(vec![ast::Ident::new("regclass")]),
            Vec::new(),
        ),
        array: false,
        format: None,
    };
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_defaults_as_postgres_does() {
        let numeric = SqlType::Numeric {
            precision: 10,
            scale: 2,
        };
        for (text, ty, expected) in [
            (
                "nextval('t_id_seq')",
                SqlType::Integer,
                "nextval('t_id_seq'::regclass)",
            ),
            (
                "nextval('app.t_id_seq')",
                SqlType::BigInt,
                "nextval('app.t_id_seq'::regclass)",
            ),
            ("'x'", SqlType::Text, "'x'::text"),
            (
                "'it''s'",
                SqlType::Varchar(Some(20)),
                "'it''s'::character varying",
            ),
            ("0", SqlType::Integer, "0"),
            ("-1", SqlType::Integer, "'-1'::integer"),
            ("0", SqlType::BigInt, "'0'::bigint"),
            ("1.5", numeric.clone(), "1.5"),
            ("0", numeric, "'0'::numeric"),
            ("true", SqlType::Boolean, "true"),
            ("'{}'", SqlType::Jsonb, "'{}'::jsonb"),
            (
                "'{}'",
                SqlType::Array(Box::new(SqlType::Integer)),
                "'{}'::integer[]",
            ),
            ("now()", SqlType::TimestampTz, "now()"),
            ("gen_random_uuid()", SqlType::Uuid, "gen_random_uuid()"),
            ("'x'::text", SqlType::Text, "'x'::text"),
            (
                "shoal_interval_in('1 day')",
                SqlType::Interval,
                "'1 day'::interval",
            ),
            ("shoal_jsonb_in('{}')", SqlType::Jsonb, "'{}'::jsonb"),
        ] {
            assert_eq!(display(text, &ty).as_deref(), Some(expected), "{text}");
        }
        assert_eq!(display("NULL", &SqlType::Text), None);
    }
}
