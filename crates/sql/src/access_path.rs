//! Access paths: which keys a table scan reads, and through which index.
//!
//! A scan gets the query's filters from DataFusion. Before anything is
//! read, they are turned into key spans of each index the table has — the
//! primary index and every secondary one ([`Shape`]) — and the narrowest
//! is chosen ([`choose`]):
//!
//! - equality on every key column of the primary index is a point get;
//! - equality or `IN` on a prefix of an index's columns is one short span
//!   per value (or per combination, up to [`MAX_POINTS`]);
//! - a comparison on the first column after that prefix bounds the span
//!   (a `DESC` column swaps which end it bounds).
//!
//! Paths are ranked by how many leading columns are fixed by equality,
//! then by whether a comparison bounds them; on a tie the primary index
//! wins, since reading through a secondary index costs one more get per
//! row. Spans only ever need to be a superset of the answer: DataFusion
//! checks every row it is given against the filters (NULLs inside a
//! bounded span, for instance, are filtered out there), except the bounds
//! on an integer primary key that the scan applies exactly itself
//! (`exact_filters.rs`).

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use shoal_storage::keycode;

use crate::descriptor::{IndexDescriptor, TableDescriptor};
use crate::error::Result;
use crate::row::{index_prefix, key_datum, prefix_end};
use crate::scan::Span;
use crate::types::{Datum, SqlType, datum_from_array};

/// Most point lookups one scan turns an IN list (or a product of them) into.
pub const MAX_POINTS: usize = 4096;

/// The key layout of one index, as far as choosing spans needs it.
pub struct Shape {
    /// The index's id: 1 for the primary index.
    pub index_id: u8,
    /// The first key of the index.
    prefix: Vec<u8>,
    /// (column position, descending) of each key column, in key order.
    columns: Vec<(usize, bool)>,
    /// Whether a key with every column fixed is one entry (the primary
    /// index; secondary entry keys may carry the primary key after it).
    points: bool,
}

impl Shape {
    pub fn primary(desc: &TableDescriptor) -> Shape {
        Shape {
            index_id: crate::row::PRIMARY_INDEX,
            prefix: index_prefix(desc.id),
            columns: desc.primary_key.iter().map(|p| (*p, false)).collect(),
            points: true,
        }
    }

    pub fn secondary(desc: &TableDescriptor, index: &IndexDescriptor) -> Shape {
        Shape {
            index_id: index.id,
            prefix: crate::index_key::entries_prefix(desc.id, index.id),
            columns: index
                .columns
                .iter()
                .map(|c| (c.column, c.descending))
                .collect(),
            points: false,
        }
    }

    /// The key prefix of entries whose leading columns equal `values`.
    fn encode(&self, desc: &TableDescriptor, values: &[Datum]) -> Result<Vec<u8>> {
        let mut key = self.prefix.clone();
        for ((pos, descending), d) in self.columns.iter().zip(values) {
            let kd = key_datum(d, &desc.columns[*pos].ty)?;
            keycode::encode_datum(&kd, *descending, &mut key);
        }
        Ok(key)
    }

    /// Every key of the index.
    pub fn whole(&self) -> Span {
        Span::Range(self.prefix.clone(), prefix_end(&self.prefix))
    }
}

/// The spans a scan reads and the index they are keys of.
#[derive(Debug, PartialEq)]
pub struct Access {
    /// 1 for the primary index, else a secondary index's id: its entries
    /// are read and each row fetched by the primary key they hold.
    pub index_id: u8,
    pub spans: Vec<Span>,
}

/// How narrow a path is: leading columns fixed by equality, then whether a
/// comparison bounds the next one.
type Rank = (usize, bool);

/// The narrowest path for `filters` (module docs). `visible` says which
/// column positions the query can name (the others are never constrained).
pub fn choose(desc: &TableDescriptor, visible: &[usize], filters: &[Expr]) -> Result<Access> {
    let mut conjuncts = Vec::new();
    for f in filters {
        split_and(f, &mut conjuncts);
    }
    let primary = Shape::primary(desc);
    let mut best: Option<(Rank, Access)> = None;
    let shapes = std::iter::once(primary).chain(
        desc.indexes
            .iter()
            .map(|index| Shape::secondary(desc, index)),
    );
    for shape in shapes {
        let Some((rank, spans)) = narrow(desc, &shape, visible, &conjuncts)? else {
            continue;
        };
        if spans.is_empty() {
            // Contradictory filters: nothing can match.
            return Ok(Access {
                index_id: shape.index_id,
                spans,
            });
        }
        if best.as_ref().is_none_or(|(r, _)| rank > *r) {
            best = Some((
                rank,
                Access {
                    index_id: shape.index_id,
                    spans,
                },
            ));
        }
    }
    Ok(match best {
        Some((_, access)) => access,
        None => Access {
            index_id: crate::row::PRIMARY_INDEX,
            spans: vec![Shape::primary(desc).whole()],
        },
    })
}

/// The constraints found on one key column.
#[derive(Default)]
struct ColumnConstraint {
    /// Values the column must equal (intersection of all `=`/`IN` found).
    eq: Option<Vec<Datum>>,
    lower: Option<(Datum, bool)>,
    upper: Option<(Datum, bool)>,
}

/// The spans of `shape` that can hold matches, with their rank; `None`
/// when the filters do not narrow this index at all.
pub(crate) fn narrow(
    desc: &TableDescriptor,
    shape: &Shape,
    visible: &[usize],
    conjuncts: &[&Expr],
) -> Result<Option<(Rank, Vec<Span>)>> {
    let names: Vec<Option<&str>> = shape
        .columns
        .iter()
        .map(|(pos, _)| {
            visible
                .contains(pos)
                .then(|| desc.columns[*pos].name.as_str())
        })
        .collect();
    let types: Vec<&SqlType> = shape
        .columns
        .iter()
        .map(|(pos, _)| &desc.columns[*pos].ty)
        .collect();
    let mut cons: Vec<ColumnConstraint> = names.iter().map(|_| Default::default()).collect();
    for c in conjuncts {
        collect_constraint(&names, &types, c, &mut cons);
    }
    // Prefixes of equal key columns: the product of their value sets.
    let mut prefixes: Vec<Vec<Datum>> = vec![Vec::new()];
    let mut k = 0;
    while k < cons.len() {
        let Some(values) = &cons[k].eq else { break };
        if values.is_empty() {
            return Ok(Some(((usize::MAX, true), Vec::new())));
        }
        if prefixes.len() * values.len() > MAX_POINTS {
            break;
        }
        prefixes = prefixes
            .iter()
            .flat_map(|p| {
                values.iter().map(move |v| {
                    let mut p = p.clone();
                    p.push(v.clone());
                    p
                })
            })
            .collect();
        k += 1;
    }
    let bounded = cons
        .get(k)
        .is_some_and(|c| c.lower.is_some() || c.upper.is_some());
    if k == 0 && !bounded {
        return Ok(None);
    }
    let mut spans = Vec::with_capacity(prefixes.len());
    for prefix in prefixes {
        let key = shape.encode(desc, &prefix)?;
        if k == cons.len() && shape.points {
            spans.push(Span::Point(key));
            continue;
        }
        let (mut start, mut end) = (key.clone(), prefix_end(&key));
        if let Some(c) = cons.get(k) {
            let descending = shape.columns[k].1;
            // Under DESC the smallest values come last: a lower bound on
            // the value is an upper bound on the key, and the other way.
            let (low, high) = if descending {
                (&c.upper, &c.lower)
            } else {
                (&c.lower, &c.upper)
            };
            let bound = |v: &Datum| {
                let mut with = prefix.clone();
                with.push(v.clone());
                shape.encode(desc, &with)
            };
            if let Some((v, inclusive)) = low {
                let b = bound(v)?;
                start = if *inclusive { b } else { prefix_end(&b) };
            }
            if let Some((v, inclusive)) = high {
                let b = bound(v)?;
                end = if *inclusive { prefix_end(&b) } else { b };
            }
        }
        if start < end {
            spans.push(Span::Range(start, end));
        }
    }
    Ok(Some(((k, bounded), spans)))
}

/// The conjuncts of `e` (`a AND b AND c` → a, b, c), appended to `out`.
pub(crate) fn split_and<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
    match e {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => {
            split_and(left, out);
            split_and(right, out);
        }
        other => out.push(other),
    }
}

fn column_position(names: &[Option<&str>], e: &Expr) -> Option<usize> {
    match e {
        Expr::Column(c) => names.iter().position(|n| *n == Some(c.name.as_str())),
        _ => None,
    }
}

/// A literal converted to the key column's type, or None if it does not
/// convert exactly (then the filter is not used to narrow the scan).
fn literal_datum(ty: &SqlType, e: &Expr) -> Option<Datum> {
    let Expr::Literal(v, _) = e else { return None };
    if v.is_null() {
        return Some(Datum::Null);
    }
    let target = ty.arrow_type();
    let cast: ScalarValue = if v.data_type() == target {
        v.clone()
    } else {
        let c = v.cast_to(&target).ok()?;
        // Only exact conversions narrow the scan; `id = 2.5` must not become `id = 2`.
        if c.cast_to(&v.data_type()).ok()? != *v {
            return None;
        }
        c
    };
    let arr = cast.to_array().ok()?;
    datum_from_array(&arr, 0, ty).ok()
}

fn collect_constraint(
    names: &[Option<&str>],
    types: &[&SqlType],
    e: &Expr,
    cons: &mut [ColumnConstraint],
) {
    match e {
        Expr::BinaryExpr(BinaryExpr {
            op: Operator::Or, ..
        }) => {
            // DataFusion writes a short `IN` list as `c = x OR c = y`.
            if let Some((pos, values)) = equalities_of_one_column(names, types, e) {
                intersect_eq(&mut cons[pos], values);
            }
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (pos, lit, op) = match (column_position(names, left), column_position(names, right))
            {
                (Some(p), None) => (p, right.as_ref(), *op),
                (None, Some(p)) => match op.swap() {
                    Some(swapped) => (p, left.as_ref(), swapped),
                    None => return,
                },
                _ => return,
            };
            let Some(d) = literal_datum(types[pos], lit) else {
                return;
            };
            let c = &mut cons[pos];
            match op {
                Operator::Eq => intersect_eq(c, vec![d]),
                Operator::Gt => c.lower = Some((d, false)),
                Operator::GtEq => c.lower = Some((d, true)),
                Operator::Lt => c.upper = Some((d, false)),
                Operator::LtEq => c.upper = Some((d, true)),
                _ => {}
            }
        }
        Expr::InList(list) if !list.negated => {
            let Some(pos) = column_position(names, &list.expr) else {
                return;
            };
            let mut values = Vec::with_capacity(list.list.len());
            for item in &list.list {
                match literal_datum(types[pos], item) {
                    Some(d) => values.push(d),
                    None => return,
                }
            }
            intersect_eq(&mut cons[pos], values);
        }
        Expr::Between(b) if !b.negated => {
            let Some(pos) = column_position(names, &b.expr) else {
                return;
            };
            if let (Some(lo), Some(hi)) = (
                literal_datum(types[pos], &b.low),
                literal_datum(types[pos], &b.high),
            ) {
                cons[pos].lower = Some((lo, true));
                cons[pos].upper = Some((hi, true));
            }
        }
        _ => {}
    }
}

/// `c = x OR c = y OR c IN (…)`, all on one key column: the column and
/// its values.
fn equalities_of_one_column(
    names: &[Option<&str>],
    types: &[&SqlType],
    e: &Expr,
) -> Option<(usize, Vec<Datum>)> {
    let mut disjuncts = Vec::new();
    split_or(e, &mut disjuncts);
    let mut column = None;
    let mut values = Vec::new();
    for d in disjuncts {
        let (pos, items): (usize, Vec<&Expr>) = match d {
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::Eq,
                right,
            }) => match (column_position(names, left), column_position(names, right)) {
                (Some(p), None) => (p, vec![right.as_ref()]),
                (None, Some(p)) => (p, vec![left.as_ref()]),
                _ => return None,
            },
            Expr::InList(list) if !list.negated => (
                column_position(names, &list.expr)?,
                list.list.iter().collect(),
            ),
            _ => return None,
        };
        if *column.get_or_insert(pos) != pos {
            return None;
        }
        for item in items {
            values.push(literal_datum(types[pos], item)?);
        }
    }
    Some((column?, values))
}

fn split_or<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
    match e {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            split_or(left, out);
            split_or(right, out);
        }
        other => out.push(other),
    }
}

fn intersect_eq(c: &mut ColumnConstraint, values: Vec<Datum>) {
    let mut uniq: Vec<Datum> = Vec::with_capacity(values.len());
    for v in values {
        if v.is_null() {
            continue; // `= NULL` matches nothing
        }
        if !uniq.iter().any(|u| same_key(u, &v)) {
            uniq.push(v);
        }
    }
    c.eq = Some(match c.eq.take() {
        None => uniq,
        Some(prev) => prev
            .into_iter()
            .filter(|v| uniq.iter().any(|u| same_key(u, v)))
            .collect(),
    });
}

/// Whether two values are one key: as the key encoding sees them, where
/// every NaN is one value (as in PostgreSQL), unlike `==` on floats.
fn same_key(a: &Datum, b: &Datum) -> bool {
    match (a, b) {
        (Datum::Float(x), Datum::Float(y)) => x == y || (x.is_nan() && y.is_nan()),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use datafusion::prelude::{col, lit};

    use super::*;
    use crate::descriptor::{ColumnDescriptor, IndexColumn};
    use crate::row::encode_key_values;

    fn desc() -> TableDescriptor {
        let c = |name: &str, ty: SqlType| ColumnDescriptor {
            nullable: false,
            ..ColumnDescriptor::plain(name, ty)
        };
        TableDescriptor {
            id: 9,
            database: "shoal".into(),
            schema: "public".into(),
            name: "t".into(),
            columns: vec![
                c("a", SqlType::Integer),
                c("b", SqlType::Text),
                c("v", SqlType::Double),
                c("w", SqlType::Integer),
            ],
            primary_key: vec![0, 1],
            version: 1,
            indexes: vec![IndexDescriptor {
                id: 2,
                name: "t_w_idx".into(),
                columns: vec![IndexColumn {
                    column: 3,
                    descending: true,
                }],
                include: Vec::new(),
                unique: false,
                constraint: false,
            }],
            next_index_id: 3,
            checks: Vec::new(),
            foreign_keys: Vec::new(),
            referenced_by: Vec::new(),
        }
    }

    fn spans(filters: &[Expr]) -> Access {
        choose(&desc(), &[0, 1, 2, 3], filters).unwrap()
    }

    fn key(values: &[Datum]) -> Vec<u8> {
        encode_key_values(&desc(), values).unwrap()
    }

    fn primary(spans: Vec<Span>) -> Access {
        Access { index_id: 1, spans }
    }

    #[test]
    fn full_key_equality_is_a_point_get() {
        assert_eq!(
            spans(&[col("a").eq(lit(5i32)).and(col("b").eq(lit("x")))]),
            primary(vec![Span::Point(key(&[
                Datum::Int(5),
                Datum::Text("x".into())
            ]))])
        );
    }

    #[test]
    fn in_lists_become_one_span_per_value() {
        let prefix = |v| {
            let k = key(&[Datum::Int(v)]);
            Span::Range(k.clone(), prefix_end(&k))
        };
        assert_eq!(
            spans(&[col("a").in_list(vec![lit(1i32), lit(3i32), lit(1i32)], false)]),
            primary(vec![prefix(1), prefix(3)])
        );
    }

    #[test]
    fn ors_of_equalities_are_in_lists() {
        let prefix = |v| {
            let k = key(&[Datum::Int(v)]);
            Span::Range(k.clone(), prefix_end(&k))
        };
        assert_eq!(
            spans(&[col("a").eq(lit(1i32)).or(col("a").eq(lit(3i32)))]),
            primary(vec![prefix(1), prefix(3)])
        );
        // Different columns, or anything else in the OR, do not narrow.
        let table = primary(vec![Shape::primary(&desc()).whole()]);
        assert_eq!(
            spans(&[col("a").eq(lit(1i32)).or(col("w").eq(lit(3i32)))]),
            table
        );
        assert_eq!(
            spans(&[col("a").eq(lit(1i32)).or(col("a").gt(lit(3i32)))]),
            table
        );
    }

    #[test]
    fn ranges_bound_the_span() {
        let five = key(&[Datum::Int(5)]);
        let nine = key(&[Datum::Int(9)]);
        assert_eq!(
            spans(&[col("a").gt(lit(5i32)), col("a").lt_eq(lit(9i32))]),
            primary(vec![Span::Range(prefix_end(&five), prefix_end(&nine))])
        );
    }

    #[test]
    fn other_filters_scan_the_table() {
        let table = primary(vec![Shape::primary(&desc()).whole()]);
        // Not a key column of any index.
        assert_eq!(spans(&[col("v").eq(lit(1.0))]), table);
        // Second key column alone does not narrow.
        assert_eq!(spans(&[col("b").eq(lit("x"))]), table);
        // A literal that does not convert exactly must not narrow (`a = 2.5` matches nothing,
        // but DataFusion decides that, not the scan).
        assert_eq!(spans(&[col("a").eq(lit(2.5f64))]), table);
        // A column the query cannot name is never constrained.
        assert_eq!(
            choose(&desc(), &[1, 2], &[col("a").eq(lit(1i32))]).unwrap(),
            table
        );
    }

    #[test]
    fn contradictory_equalities_read_nothing() {
        assert!(
            spans(&[col("a").eq(lit(1i32)), col("a").eq(lit(2i32))])
                .spans
                .is_empty()
        );
    }

    #[test]
    fn an_index_serves_its_columns() {
        let d = desc();
        let shape = Shape::secondary(&d, &d.indexes[0]);
        let seven = shape.encode(&d, &[Datum::Int(7)]).unwrap();
        assert_eq!(
            spans(&[col("w").eq(lit(7i32))]),
            Access {
                index_id: 2,
                spans: vec![Span::Range(seven.clone(), prefix_end(&seven))]
            }
        );
        // Descending: `w > 7` is the keys before 7's.
        assert_eq!(
            spans(&[col("w").gt(lit(7i32))]),
            Access {
                index_id: 2,
                spans: vec![Span::Range(shape.encode(&d, &[]).unwrap(), seven)]
            }
        );
        // The primary key wins a tie.
        assert_eq!(
            spans(&[col("w").eq(lit(7i32)), col("a").eq(lit(1i32))]).index_id,
            1
        );
    }
}
