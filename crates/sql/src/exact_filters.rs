//! Filters a scan applies exactly, so that DataFusion need not apply them
//! again.
//!
//! A table scan turns its filters into key spans (`access_path.rs`), but it
//! reports them to DataFusion as `Inexact`: the spans are only a superset of
//! the answer, and DataFusion puts a filter above the scan that checks every
//! row. For the most common range query of all — `WHERE id BETWEEN $1 AND
//! $2` on an integer primary key — that filter is pure cost: the span is
//! exactly the answer. Worse, building it is not cheap: a filter node
//! estimates its selectivity by interval analysis each time the physical
//! planner or optimizer builds or rebuilds it, which was about a twelfth of
//! the server's CPU on sysbench's range selects.
//!
//! So a bound on the first primary key column is reported as `Exact` when
//! the scan can apply it exactly whatever the values are ([`claim`]):
//! - the column is an integer (`smallint`, `integer`, `bigint`), whose key
//!   encoding orders as its values do (unlike text, whose comparison is the
//!   collation's, or floats, with NaN and -0);
//! - the filter is `column op value` (`=`, `<`, `<=`, `>`, `>=`, either way
//!   round) or `column BETWEEN value AND value`, where each value is a
//!   literal or a parameter of exactly the column's type — nothing to
//!   convert, so nothing converts inexactly.
//!
//! A claim is made before the values are known (a prepared statement's kept
//! plan is planned once with its parameters in place), and the optimizer may
//! push filters into a scan in more than one pass. So the scan does not
//! trust that its chosen path happens to cover the claimed filters; it
//! enforces them itself ([`bounds`]): every filter of a claimable shape
//! becomes part of one primary-key span ([`KeyBounds`]), computed in exact
//! integer arithmetic. Reading the primary index, the scan cuts its spans to
//! it; reading a secondary index, it drops every row whose primary key falls
//! outside it. A NULL value matches nothing, so the span is empty. A
//! parameter still without a value makes the scan fail when run (planning
//! alone, as `EXPLAIN` does, is fine), as DataFusion's own filter would.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use shoal_storage::keycode::{self, KeyDatum};

use crate::descriptor::TableDescriptor;
use crate::error::{Result, SqlError};
use crate::row::{index_prefix, prefix_end};
use crate::scan::Span;
use crate::types::SqlType;

/// Whether the scan of `desc` (exposing the column positions `visible`)
/// applies `filter` exactly (module docs).
pub fn claim(desc: &TableDescriptor, visible: &[usize], filter: &Expr) -> bool {
    let Some((name, ty)) = key_column(desc, visible) else {
        return false;
    };
    let target = ty.arrow_type();
    comparisons(name, filter).is_some_and(|found| {
        found.iter().all(|(_, value)| match value {
            Expr::Literal(v, _) => v.data_type() == target,
            Expr::Placeholder(p) => p.field.as_ref().is_some_and(|f| *f.data_type() == target),
            _ => false,
        })
    })
}

/// The primary keys the claimable filters among `filters` allow.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyBounds {
    /// No filter of a claimable shape: nothing to enforce.
    Any,
    /// Keys in `[start, end)`.
    Within(Vec<u8>, Vec<u8>),
    /// No key: a NULL value, or bounds that contradict each other.
    Nothing,
    /// A parameter has no value: running the scan is an error.
    Unbound(String),
}

/// What the filters of a claimable shape among `filters` allow (module
/// docs). Every such filter counts, claimed or not: enforcing one that
/// DataFusion also checks only narrows what is read.
pub fn bounds(desc: &TableDescriptor, visible: &[usize], filters: &[Expr]) -> Result<KeyBounds> {
    let Some((name, _)) = key_column(desc, visible) else {
        return Ok(KeyBounds::Any);
    };
    // Inclusive, in i128 so that `id > i64::MAX` has somewhere to go.
    let (mut low, mut high) = (i128::MIN, i128::MAX);
    let mut any = false;
    let mut conjuncts = Vec::new();
    for filter in filters {
        crate::access_path::split_and(filter, &mut conjuncts);
    }
    for conjunct in conjuncts {
        let Some(found) = comparisons(name, conjunct) else {
            continue;
        };
        any = true;
        for (op, value) in found {
            let v = match value {
                Expr::Placeholder(p) => {
                    return Ok(KeyBounds::Unbound(format!(
                        "there is no value for parameter {}",
                        p.id
                    )));
                }
                Expr::Literal(v, _) => match integer(v)? {
                    Some(v) => v,
                    None => return Ok(KeyBounds::Nothing),
                },
                _ => continue,
            };
            match op {
                Operator::Eq => (low, high) = (low.max(v), high.min(v)),
                Operator::Gt => low = low.max(v + 1),
                Operator::GtEq => low = low.max(v),
                Operator::Lt => high = high.min(v - 1),
                Operator::LtEq => high = high.min(v),
                _ => {}
            }
        }
    }
    if !any {
        return Ok(KeyBounds::Any);
    }
    if low > high || low > i64::MAX as i128 || high < i64::MIN as i128 {
        return Ok(KeyBounds::Nothing);
    }
    let prefix = index_prefix(desc.id);
    let key = |v: i128| {
        let mut k = prefix.clone();
        keycode::encode_datum(&KeyDatum::Int(v as i64), false, &mut k);
        k
    };
    let start = if low <= i64::MIN as i128 {
        prefix.clone()
    } else {
        key(low)
    };
    let end = if high >= i64::MAX as i128 {
        prefix_end(&prefix)
    } else {
        prefix_end(&key(high))
    };
    Ok(KeyBounds::Within(start, end))
}

impl KeyBounds {
    /// `spans` of the primary index cut to these bounds, in their order.
    pub fn restrict(&self, spans: Vec<Span>) -> Vec<Span> {
        let (start, end) = match self {
            KeyBounds::Any | KeyBounds::Unbound(_) => return spans,
            KeyBounds::Nothing => return Vec::new(),
            KeyBounds::Within(start, end) => (start, end),
        };
        spans
            .into_iter()
            .filter_map(|span| match span {
                Span::Point(k) => (k >= *start && k < *end).then_some(Span::Point(k)),
                Span::Range(a, b) => {
                    let a = a.max(start.clone());
                    let b = b.min(end.clone());
                    (a < b).then_some(Span::Range(a, b))
                }
            })
            .collect()
    }

    /// Whether a row with primary key `key` is allowed.
    pub fn allows(&self, key: &[u8]) -> bool {
        match self {
            KeyBounds::Any | KeyBounds::Unbound(_) => true,
            KeyBounds::Nothing => false,
            KeyBounds::Within(start, end) => key >= start.as_slice() && key < end.as_slice(),
        }
    }
}

/// The first primary key column's name and type, if the scan exposes it
/// and it is an integer.
fn key_column<'a>(desc: &'a TableDescriptor, visible: &[usize]) -> Option<(&'a str, &'a SqlType)> {
    let first = *desc.primary_key.first()?;
    if !visible.contains(&first) {
        return None;
    }
    let column = desc.columns.get(first)?;
    matches!(
        column.ty,
        SqlType::SmallInt | SqlType::Integer | SqlType::BigInt
    )
    .then_some((column.name.as_str(), &column.ty))
}

/// `filter` as comparisons of the column `name` with values (literals or
/// parameters), the column on the left; None if it is not of that shape.
fn comparisons<'a>(name: &str, filter: &'a Expr) -> Option<Vec<(Operator, &'a Expr)>> {
    let is_column = |e: &Expr| matches!(e, Expr::Column(c) if c.name == name);
    let is_value = |e: &Expr| matches!(e, Expr::Literal(..) | Expr::Placeholder(_));
    match filter {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            if !matches!(
                op,
                Operator::Eq | Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq
            ) {
                return None;
            }
            if is_column(left) && is_value(right) {
                Some(vec![(*op, right.as_ref())])
            } else if is_column(right) && is_value(left) {
                Some(vec![(op.swap()?, left.as_ref())])
            } else {
                None
            }
        }
        Expr::Between(b) if !b.negated && is_column(&b.expr) => {
            (is_value(&b.low) && is_value(&b.high)).then(|| {
                vec![
                    (Operator::GtEq, b.low.as_ref()),
                    (Operator::LtEq, b.high.as_ref()),
                ]
            })
        }
        _ => None,
    }
}

/// An integer literal's value; None for NULL. Any other type is refused:
/// a claimed filter's values have the column's integer type.
fn integer(v: &ScalarValue) -> Result<Option<i128>> {
    Ok(match v {
        ScalarValue::Int8(x) => x.map(i128::from),
        ScalarValue::Int16(x) => x.map(i128::from),
        ScalarValue::Int32(x) => x.map(i128::from),
        ScalarValue::Int64(x) => x.map(i128::from),
        ScalarValue::UInt8(x) => x.map(i128::from),
        ScalarValue::UInt16(x) => x.map(i128::from),
        ScalarValue::UInt32(x) => x.map(i128::from),
        ScalarValue::UInt64(x) => x.map(i128::from),
        ScalarValue::Null => None,
        other => {
            return Err(SqlError::Internal(format!(
                "a {} value bounds an integer key",
                other.data_type()
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use datafusion::logical_expr::expr::Placeholder;
    use datafusion::prelude::{col, lit};

    use super::*;
    use crate::descriptor::ColumnDescriptor;

    fn table() -> TableDescriptor {
        TableDescriptor {
            id: 7,
            database: "shoal".into(),
            schema: "public".into(),
            name: "t".into(),
            columns: vec![
                ColumnDescriptor::plain("id", SqlType::Integer),
                ColumnDescriptor::plain("k", SqlType::Integer),
            ],
            primary_key: vec![0],
            version: 1,
            indexes: Vec::new(),
            next_index_id: 2,
            checks: Vec::new(),
            foreign_keys: Vec::new(),
            referenced_by: Vec::new(),
        }
    }

    fn param(ty: Option<datafusion::arrow::datatypes::DataType>) -> Expr {
        Expr::Placeholder(Placeholder::new_with_field(
            "$1".into(),
            ty.map(|t| std::sync::Arc::new(datafusion::arrow::datatypes::Field::new("", t, true))),
        ))
    }

    fn key(v: i64) -> Vec<u8> {
        let mut k = index_prefix(7);
        keycode::encode_datum(&KeyDatum::Int(v), false, &mut k);
        k
    }

    #[test]
    fn claims_integer_key_bounds_of_the_column_type_only() {
        let t = table();
        let cols = [0, 1];
        assert!(claim(&t, &cols, &col("id").gt_eq(lit(5i32))));
        assert!(claim(&t, &cols, &lit(5i32).lt(col("id"))));
        assert!(claim(&t, &cols, &col("id").between(lit(1i32), lit(9i32))));
        assert!(claim(
            &t,
            &cols,
            &col("id").eq(param(Some(datafusion::arrow::datatypes::DataType::Int32)))
        ));
        // Another type, no type, another column, another operator, a
        // negation, the key hidden from the scan.
        assert!(!claim(&t, &cols, &col("id").gt_eq(lit(5i64))));
        assert!(!claim(&t, &cols, &col("id").eq(param(None))));
        assert!(!claim(&t, &cols, &col("k").eq(lit(5i32))));
        assert!(!claim(&t, &cols, &col("id").not_eq(lit(5i32))));
        assert!(!claim(
            &t,
            &cols,
            &col("id").not_between(lit(1i32), lit(9i32))
        ));
        assert!(!claim(&t, &[1], &col("id").eq(lit(5i32))));
    }

    #[test]
    fn bounds_intersect_exactly() {
        let t = table();
        let cols = [0, 1];
        let b = |filters: Vec<Expr>| bounds(&t, &cols, &filters).unwrap();
        assert_eq!(b(vec![col("k").eq(lit(1i32))]), KeyBounds::Any);
        assert_eq!(
            b(vec![col("id").gt(lit(3i32)), col("id").lt_eq(lit(8i32))]),
            KeyBounds::Within(key(4), prefix_end(&key(8)))
        );
        // Two lower bounds: the tighter one holds, whichever comes first.
        assert_eq!(
            b(vec![
                col("id").gt_eq(lit(9i32)).and(col("id").gt_eq(lit(2i32))),
                col("id").lt(lit(20i32))
            ]),
            KeyBounds::Within(key(9), prefix_end(&key(19)))
        );
        assert_eq!(
            b(vec![col("id").eq(lit(5i32)), col("id").gt(lit(5i32))]),
            KeyBounds::Nothing
        );
        assert_eq!(
            b(vec![col("id").gt(lit(ScalarValue::Int32(None)))]),
            KeyBounds::Nothing
        );
        assert_eq!(b(vec![col("id").gt(lit(i64::MAX))]), KeyBounds::Nothing);
        assert_eq!(
            b(vec![col("id").lt_eq(lit(i64::MAX))]),
            KeyBounds::Within(index_prefix(7), prefix_end(&index_prefix(7)))
        );
        assert!(matches!(
            b(vec![col("id").eq(param(None))]),
            KeyBounds::Unbound(_)
        ));
        assert!(bounds(&t, &cols, &[col("id").eq(lit(2.5f64))]).is_err());
    }

    #[test]
    fn restricts_spans_and_rows() {
        let bounds = KeyBounds::Within(key(4), key(10));
        let spans = vec![
            Span::Point(key(2)),
            Span::Point(key(5)),
            Span::Range(key(0), key(6)),
            Span::Range(key(9), key(30)),
            Span::Range(key(11), key(30)),
        ];
        assert_eq!(
            bounds.restrict(spans),
            vec![
                Span::Point(key(5)),
                Span::Range(key(4), key(6)),
                Span::Range(key(9), key(10)),
            ]
        );
        assert!(bounds.allows(&key(4)));
        assert!(!bounds.allows(&key(10)));
        assert!(
            KeyBounds::Nothing
                .restrict(vec![Span::Point(key(5))])
                .is_empty()
        );
    }
}
