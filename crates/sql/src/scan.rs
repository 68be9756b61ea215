//! Reading a table: the DataFusion table provider over a table's key range.
//!
//! [`TableScan`] is created per statement and captures the statement's
//! transaction, so every range it reads is read at the transaction's snapshot
//! (plus the transaction's own writes).
//!
//! Filters on primary key columns are turned into key spans before anything is
//! read (see [`key_spans`]): equality on every key column becomes a point get,
//! equality or IN on a prefix of the key becomes one short span per value, and
//! a comparison on the first non-equal key column bounds the span. Filters are
//! reported to DataFusion as `Inexact`, so DataFusion still evaluates them on
//! what is returned: the spans only ever need to be a superset of the answer.
//! A `LIMIT` that DataFusion hands down stops the scan early.
//!
//! Rows are read in chunks of [`CHUNK_ROWS`] and turned into one Arrow batch
//! per chunk, so memory stays bounded whatever the table's size.
//!
//! The spans are cut at range boundaries and each range's pieces become
//! one DataFusion partition ([`by_range`]), so a scan over many ranges
//! reads them in parallel. A scan with a `LIMIT` stays one partition, read
//! in key order, so it stops after the first rows instead of starting on
//! every range.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatchOptions;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::Session;
use datafusion::common::ScalarValue;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use shoal_kv::Txn;

use crate::descriptor::TableDescriptor;
use crate::error::{Result, SqlError};
use crate::row::{decode_row, encode_key_values, index_prefix, prefix_end};
use crate::types::{ColumnBuilder, Datum, datum_from_array};

/// Rows read from KV per Arrow batch.
pub const CHUNK_ROWS: usize = 1024;

/// Most point lookups one scan turns an IN list (or a product of them) into.
const MAX_POINTS: usize = 4096;

/// A table as DataFusion sees it during one statement.
pub struct TableScan {
    desc: Arc<TableDescriptor>,
    txn: Arc<Txn>,
    /// Positions in `desc.columns` of the columns this provider exposes.
    columns: Vec<usize>,
    schema: SchemaRef,
}

impl fmt::Debug for TableScan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TableScan({})", self.desc.name)
    }
}

impl TableScan {
    /// A provider for user queries (hidden columns left out), or for DML
    /// (`with_hidden`: the rowid is exposed so rows can be addressed).
    pub fn new(desc: Arc<TableDescriptor>, txn: Arc<Txn>, with_hidden: bool) -> TableScan {
        let columns: Vec<usize> = if with_hidden {
            (0..desc.columns.len()).collect()
        } else {
            desc.visible_columns()
        };
        let schema = desc.arrow_schema(&columns);
        TableScan {
            desc,
            txn,
            columns,
            schema,
        }
    }

    /// Which provider column is the key column at `key_pos` of the primary key.
    fn key_column_names(&self) -> Vec<Option<String>> {
        self.desc
            .primary_key
            .iter()
            .map(|pos| {
                self.columns
                    .contains(pos)
                    .then(|| self.desc.columns[*pos].name.clone())
            })
            .collect()
    }
}

#[async_trait]
impl TableProvider for TableScan {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Every filter is re-checked by DataFusion; we only use them to narrow
        // the key spans read.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let output: Vec<usize> = match projection {
            Some(p) => p.iter().map(|i| self.columns[*i]).collect(),
            None => self.columns.clone(),
        };
        let schema = self.desc.arrow_schema(&output);
        let spans = key_spans(&self.desc, &self.key_column_names(), filters)?;
        let groups = match limit {
            Some(_) => vec![spans],
            None => by_range(spans, &self.txn.kv().ranges()),
        };
        let partitions: Vec<Arc<dyn PartitionStream>> = groups
            .into_iter()
            .map(|spans| {
                Arc::new(KeyScan {
                    desc: self.desc.clone(),
                    txn: self.txn.clone(),
                    spans,
                    output: output.clone(),
                    schema: schema.clone(),
                    limit,
                }) as Arc<dyn PartitionStream>
            })
            .collect();
        Ok(Arc::new(StreamingTableExec::try_new(
            schema,
            partitions,
            None,
            Vec::new(),
            false,
            limit,
        )?))
    }
}

/// `spans` cut at the boundaries of `ranges` and grouped by range, in key
/// order within each group: one group per range with something to read
/// (at least one group, possibly empty).
pub fn by_range(spans: Vec<Span>, ranges: &[shoal_kv::RangeDescriptor]) -> Vec<Vec<Span>> {
    let mut groups: std::collections::BTreeMap<usize, Vec<Span>> = Default::default();
    let owner = |key: &[u8]| {
        ranges
            .iter()
            .position(|r| r.contains(key))
            .unwrap_or(usize::MAX)
    };
    for span in spans {
        match span {
            Span::Point(key) => groups
                .entry(owner(&key))
                .or_default()
                .push(Span::Point(key)),
            Span::Range(start, end) => {
                let mut from = start;
                while from < end {
                    let i = owner(&from);
                    let piece_end = match ranges.get(i).and_then(|r| r.end_key.as_deref()) {
                        Some(e) if e < end.as_slice() => e.to_vec(),
                        _ => end.clone(),
                    };
                    groups
                        .entry(i)
                        .or_default()
                        .push(Span::Range(from, piece_end.clone()));
                    from = piece_end;
                }
            }
        }
    }
    if groups.is_empty() {
        return vec![Vec::new()];
    }
    groups.into_values().collect()
}

/// A half-open span of KV keys, or a single key.
#[derive(Debug, Clone, PartialEq)]
pub enum Span {
    Point(Vec<u8>),
    Range(Vec<u8>, Vec<u8>),
}

/// The constraints found on one key column.
#[derive(Default)]
struct ColumnConstraint {
    /// Values the column must equal (intersection of all `=`/`IN` found).
    eq: Option<Vec<Datum>>,
    lower: Option<(Datum, bool)>,
    upper: Option<(Datum, bool)>,
}

/// Turns filters into the key spans that can hold matching rows.
fn key_spans(
    desc: &TableDescriptor,
    key_names: &[Option<String>],
    filters: &[Expr],
) -> Result<Vec<Span>> {
    let mut cons: Vec<ColumnConstraint> = key_names
        .iter()
        .map(|_| ColumnConstraint::default())
        .collect();
    let mut conjuncts = Vec::new();
    for f in filters {
        split_and(f, &mut conjuncts);
    }
    for c in conjuncts {
        collect_constraint(desc, key_names, c, &mut cons);
    }
    let table_span = || {
        let p = index_prefix(desc.id);
        Span::Range(p.clone(), prefix_end(&p))
    };
    // Prefixes of equal key columns: the product of their value sets.
    let mut prefixes: Vec<Vec<Datum>> = vec![Vec::new()];
    let mut k = 0;
    while k < cons.len() {
        let Some(values) = &cons[k].eq else { break };
        if values.is_empty() {
            return Ok(Vec::new());
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
    if k == 0
        && cons
            .first()
            .is_none_or(|c| c.lower.is_none() && c.upper.is_none())
    {
        return Ok(vec![table_span()]);
    }
    let mut spans = Vec::with_capacity(prefixes.len());
    for prefix in prefixes {
        let key = encode_key_values(desc, &prefix)?;
        if k == cons.len() {
            spans.push(Span::Point(key));
            continue;
        }
        let (mut start, mut end) = (key.clone(), prefix_end(&key));
        let c = &cons[k];
        if let Some((v, inclusive)) = &c.lower {
            let mut with = prefix.clone();
            with.push(v.clone());
            let bound = encode_key_values(desc, &with)?;
            start = if *inclusive {
                bound
            } else {
                prefix_end(&bound)
            };
        }
        if let Some((v, inclusive)) = &c.upper {
            let mut with = prefix.clone();
            with.push(v.clone());
            let bound = encode_key_values(desc, &with)?;
            end = if *inclusive {
                prefix_end(&bound)
            } else {
                bound
            };
        }
        if start < end {
            spans.push(Span::Range(start, end));
        }
    }
    Ok(spans)
}

fn split_and<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
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

fn column_position(key_names: &[Option<String>], e: &Expr) -> Option<usize> {
    match e {
        Expr::Column(c) => key_names
            .iter()
            .position(|n| n.as_deref() == Some(c.name.as_str())),
        _ => None,
    }
}

/// A literal converted to the key column's type, or None if it does not
/// convert exactly (then the filter is not used to narrow the scan).
fn literal_datum(desc: &TableDescriptor, key_pos: usize, e: &Expr) -> Option<Datum> {
    let Expr::Literal(v, _) = e else { return None };
    let ty = &desc.columns[desc.primary_key[key_pos]].ty;
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
    desc: &TableDescriptor,
    key_names: &[Option<String>],
    e: &Expr,
    cons: &mut [ColumnConstraint],
) {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (pos, lit, op) = match (
                column_position(key_names, left),
                column_position(key_names, right),
            ) {
                (Some(p), None) => (p, right.as_ref(), *op),
                (None, Some(p)) => match op.swap() {
                    Some(swapped) => (p, left.as_ref(), swapped),
                    None => return,
                },
                _ => return,
            };
            let Some(d) = literal_datum(desc, pos, lit) else {
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
            let Some(pos) = column_position(key_names, &list.expr) else {
                return;
            };
            let mut values = Vec::with_capacity(list.list.len());
            for item in &list.list {
                match literal_datum(desc, pos, item) {
                    Some(d) => values.push(d),
                    None => return,
                }
            }
            intersect_eq(&mut cons[pos], values);
        }
        Expr::Between(b) if !b.negated => {
            let Some(pos) = column_position(key_names, &b.expr) else {
                return;
            };
            if let (Some(lo), Some(hi)) = (
                literal_datum(desc, pos, &b.low),
                literal_datum(desc, pos, &b.high),
            ) {
                cons[pos].lower = Some((lo, true));
                cons[pos].upper = Some((hi, true));
            }
        }
        _ => {}
    }
}

fn intersect_eq(c: &mut ColumnConstraint, values: Vec<Datum>) {
    // Deduplicate by key encoding order is not needed for correctness; keep
    // the first occurrence of each value.
    let mut uniq: Vec<Datum> = Vec::with_capacity(values.len());
    for v in values {
        if v.is_null() {
            continue; // `= NULL` matches nothing
        }
        if !uniq.contains(&v) {
            uniq.push(v);
        }
    }
    c.eq = Some(match c.eq.take() {
        None => uniq,
        Some(prev) => prev.into_iter().filter(|v| uniq.contains(v)).collect(),
    });
}

/// One partition: reads the spans in order and yields Arrow batches.
struct KeyScan {
    desc: Arc<TableDescriptor>,
    txn: Arc<Txn>,
    spans: Vec<Span>,
    output: Vec<usize>,
    schema: SchemaRef,
    limit: Option<usize>,
}

impl fmt::Debug for KeyScan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyScan({}, {} spans)", self.desc.name, self.spans.len())
    }
}

impl PartitionStream for KeyScan {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let mut reader = SpanReader {
            desc: self.desc.clone(),
            txn: self.txn.clone(),
            spans: self.spans.clone().into_iter().collect(),
            output: self.output.clone(),
            schema: self.schema.clone(),
            remaining: self.limit.unwrap_or(usize::MAX),
            resume: None,
        };
        let iter = std::iter::from_fn(move || reader.next_batch().transpose());
        Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            futures::stream::iter(iter),
        ))
    }
}

struct SpanReader {
    desc: Arc<TableDescriptor>,
    txn: Arc<Txn>,
    spans: std::collections::VecDeque<Span>,
    output: Vec<usize>,
    schema: SchemaRef,
    remaining: usize,
    /// Where to continue inside the current range span.
    resume: Option<Vec<u8>>,
}

impl SpanReader {
    fn next_batch(&mut self) -> DfResult<Option<RecordBatch>> {
        let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        while pairs.len() < CHUNK_ROWS && self.remaining > pairs.len() {
            let Some(span) = self.spans.front().cloned() else {
                break;
            };
            match span {
                Span::Point(key) => {
                    self.spans.pop_front();
                    if let Some(v) = self.txn.get(&key).map_err(to_df)? {
                        pairs.push((key, v));
                    }
                }
                Span::Range(start, end) => {
                    let from = self.resume.take().unwrap_or(start);
                    let want = (CHUNK_ROWS - pairs.len()).min(self.remaining - pairs.len());
                    let chunk = self.txn.scan(&from, &end, want).map_err(to_df)?;
                    let full = chunk.len() == want;
                    if let Some((last, _)) = chunk.last() {
                        let mut next = last.clone();
                        next.push(0);
                        self.resume = Some(next);
                    }
                    pairs.extend(chunk);
                    if !full {
                        self.resume = None;
                        self.spans.pop_front();
                    }
                }
            }
        }
        if pairs.is_empty() {
            return Ok(None);
        }
        self.remaining -= pairs.len();
        self.build(pairs).map(Some).map_err(DataFusionError::from)
    }

    fn build(&self, pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Result<RecordBatch> {
        let mut builders: Vec<ColumnBuilder> = self
            .output
            .iter()
            .map(|i| ColumnBuilder::new(&self.desc.columns[*i].ty, pairs.len()))
            .collect();
        for (k, v) in &pairs {
            let row = decode_row(&self.desc, k, v)?;
            for (b, i) in builders.iter_mut().zip(&self.output) {
                b.append(&row[*i])?;
            }
        }
        let arrays = builders.into_iter().map(ColumnBuilder::finish).collect();
        let options = RecordBatchOptions::new().with_row_count(Some(pairs.len()));
        RecordBatch::try_new_with_options(self.schema.clone(), arrays, &options)
            .map_err(|e| SqlError::Internal(e.to_string()))
    }
}

fn to_df(e: shoal_kv::KvError) -> DataFusionError {
    DataFusionError::External(Box::new(SqlError::from(e)))
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::{col, lit};

    use super::*;

    #[test]
    fn spans_are_cut_and_grouped_by_range() {
        let range = |id: u64, start: &[u8], end: Option<&[u8]>| shoal_kv::RangeDescriptor {
            range_id: id,
            start_key: start.to_vec(),
            end_key: end.map(<[u8]>::to_vec),
            generation: 1,
        };
        let ranges = [
            range(1, b"", Some(b"d")),
            range(2, b"d", Some(b"m")),
            range(3, b"m", None),
        ];
        let r = |a: &[u8], b: &[u8]| Span::Range(a.to_vec(), b.to_vec());
        let p = |a: &[u8]| Span::Point(a.to_vec());
        let groups = by_range(vec![r(b"b", b"p"), p(b"e"), p(b"z")], &ranges);
        assert_eq!(
            groups,
            [
                vec![r(b"b", b"d")],
                vec![r(b"d", b"m"), p(b"e")],
                vec![r(b"m", b"p"), p(b"z")],
            ]
        );
        assert_eq!(by_range(Vec::new(), &ranges), [Vec::<Span>::new()]);
    }
    use crate::descriptor::ColumnDescriptor;
    use crate::types::SqlType;

    fn desc() -> TableDescriptor {
        let c = |name: &str, ty: SqlType| ColumnDescriptor {
            name: name.into(),
            ty,
            nullable: false,
            hidden: false,
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
            ],
            primary_key: vec![0, 1],
            version: 1,
        }
    }

    fn names() -> Vec<Option<String>> {
        vec![Some("a".into()), Some("b".into())]
    }

    fn key(values: &[Datum]) -> Vec<u8> {
        encode_key_values(&desc(), values).unwrap()
    }

    #[test]
    fn full_key_equality_is_a_point_get() {
        let spans = key_spans(
            &desc(),
            &names(),
            &[col("a").eq(lit(5i32)).and(col("b").eq(lit("x")))],
        )
        .unwrap();
        assert_eq!(
            spans,
            vec![Span::Point(key(&[Datum::Int(5), Datum::Text("x".into())]))]
        );
    }

    #[test]
    fn in_lists_become_one_span_per_value() {
        let spans = key_spans(
            &desc(),
            &names(),
            &[col("a").in_list(vec![lit(1i32), lit(3i32), lit(1i32)], false)],
        )
        .unwrap();
        let prefix = |v| {
            let k = key(&[Datum::Int(v)]);
            Span::Range(k.clone(), prefix_end(&k))
        };
        assert_eq!(spans, vec![prefix(1), prefix(3)]);
    }

    #[test]
    fn ranges_bound_the_span() {
        let spans = key_spans(
            &desc(),
            &names(),
            &[col("a").gt(lit(5i32)), col("a").lt_eq(lit(9i32))],
        )
        .unwrap();
        let five = key(&[Datum::Int(5)]);
        let nine = key(&[Datum::Int(9)]);
        assert_eq!(
            spans,
            vec![Span::Range(prefix_end(&five), prefix_end(&nine))]
        );
    }

    #[test]
    fn other_filters_scan_the_table() {
        let table = {
            let p = index_prefix(9);
            vec![Span::Range(p.clone(), prefix_end(&p))]
        };
        // Not a key column.
        assert_eq!(
            key_spans(&desc(), &names(), &[col("v").eq(lit(1.0))]).unwrap(),
            table
        );
        // Second key column alone does not narrow.
        assert_eq!(
            key_spans(&desc(), &names(), &[col("b").eq(lit("x"))]).unwrap(),
            table
        );
        // A literal that does not convert exactly must not narrow (`a = 2.5` matches nothing,
        // but DataFusion decides that, not the scan).
        assert_eq!(
            key_spans(&desc(), &names(), &[col("a").eq(lit(2.5f64))]).unwrap(),
            table
        );
    }

    #[test]
    fn contradictory_equalities_read_nothing() {
        let spans = key_spans(
            &desc(),
            &names(),
            &[col("a").eq(lit(1i32)), col("a").eq(lit(2i32))],
        )
        .unwrap();
        assert!(spans.is_empty());
    }
}
