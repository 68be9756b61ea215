//! Reading a table: the DataFusion table provider over a table's key range.
//!
//! [`TableScan`] is created per statement and captures the statement's
//! transaction, so every range it reads is read at the transaction's snapshot
//! (plus the transaction's own writes).
//!
//! Filters are turned into key spans of the primary index or of a secondary
//! index before anything is read (`access_path.rs`). Through a secondary
//! index, the scan reads entries and gets each row by the primary key the
//! entry holds. Most filters are reported to DataFusion as `Inexact`, so
//! DataFusion still evaluates them on what is returned: the spans only ever
//! need to be a superset of the answer. Bounds on an integer primary key
//! are the exception: the scan applies them exactly and reports them
//! `Exact` (`exact_filters.rs`). A `LIMIT` that DataFusion hands
//! down stops the scan early. `EXPLAIN` shows the path chosen
//! (`ShoalScanExec`: the table, the index, the number of spans).
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
use datafusion::common::{Constraint, Constraints};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use shoal_kv::Txn;

use crate::descriptor::TableDescriptor;
use crate::error::{Result, SqlError};
use crate::exact_filters::KeyBounds;
use crate::row::{PRIMARY_INDEX, decode_row};
use crate::types::ColumnBuilder;

/// Rows read from KV per Arrow batch.
pub const CHUNK_ROWS: usize = 1024;

/// A table as DataFusion sees it during one statement.
pub struct TableScan {
    desc: Arc<TableDescriptor>,
    txn: Arc<Txn>,
    /// Positions in `desc.columns` of the columns this provider exposes.
    columns: Vec<usize>,
    schema: SchemaRef,
    /// The primary key over `columns` (none for a hidden rowid).
    constraints: Constraints,
    /// Hidden columns are exposed (the DML view).
    with_hidden: bool,
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
        // The primary key, as DataFusion's constraint: grouping by it lets
        // a query select the table's other columns too (PostgreSQL's
        // functional dependency, which ORMs' `GROUP BY id` relies on).
        let key: Option<Vec<usize>> = desc
            .primary_key
            .iter()
            .map(|p| columns.iter().position(|c| c == p))
            .collect();
        let constraints = Constraints::new_unverified(match key {
            Some(key) if !desc.has_hidden_rowid() => vec![Constraint::PrimaryKey(key)],
            _ => Vec::new(),
        });
        TableScan {
            desc,
            txn,
            columns,
            schema,
            constraints,
            with_hidden,
        }
    }

    /// Which table, at which descriptor version, in which view: a plan
    /// made over this provider holds over another of the same identity.
    pub fn identity(&self) -> (u32, u32, bool) {
        (self.desc.id, self.desc.version, self.with_hidden)
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

    fn constraints(&self) -> Option<&Constraints> {
        Some(&self.constraints)
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Bounds on an integer primary key are applied exactly
        // (`exact_filters.rs`); DataFusion re-checks every other filter,
        // which only narrows the key spans read.
        Ok(filters
            .iter()
            .map(|f| {
                if crate::exact_filters::claim(&self.desc, &self.columns, f) {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Inexact
                }
            })
            .collect())
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
        let access = crate::access_path::choose(&self.desc, &self.columns, filters)?;
        let label = path_label(&self.desc, &access);
        let key_bounds = crate::exact_filters::bounds(&self.desc, &self.columns, filters)?;
        let via_index = access.index_id != PRIMARY_INDEX;
        let spans = if via_index {
            access.spans
        } else {
            key_bounds.restrict(access.spans)
        };
        let key_bounds = Arc::new(key_bounds);
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
                    via_index,
                    key_bounds: key_bounds.clone(),
                    output: output.clone(),
                    schema: schema.clone(),
                    limit,
                }) as Arc<dyn PartitionStream>
            })
            .collect();
        let inner =
            StreamingTableExec::try_new(schema, partitions, None, Vec::new(), false, limit)?;
        Ok(Arc::new(crate::scan_exec::ShoalScanExec::new(inner, label)))
    }
}

/// What `EXPLAIN` says a scan reads.
fn path_label(desc: &TableDescriptor, access: &crate::access_path::Access) -> String {
    let index = match desc.indexes.iter().find(|i| i.id == access.index_id) {
        Some(i) => format!("index {}", i.name),
        None if desc.has_hidden_rowid() => "primary index".to_string(),
        None => format!("index {}", desc.pkey_name()),
    };
    let whole = access.spans.len() == 1
        && access.spans[0] == crate::access_path::Shape::primary(desc).whole();
    if whole {
        format!("table={}, full scan", desc.name)
    } else {
        format!("table={}, {index}, spans={}", desc.name, access.spans.len())
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

/// One partition: reads the spans in order and yields Arrow batches.
struct KeyScan {
    desc: Arc<TableDescriptor>,
    txn: Arc<Txn>,
    spans: Vec<Span>,
    /// The spans are of a secondary index: rows are fetched by the primary
    /// keys its entries hold.
    via_index: bool,
    /// The primary keys the exactly applied filters allow
    /// (`exact_filters.rs`): enforced by the spans of the primary index,
    /// row by row through a secondary one.
    key_bounds: Arc<KeyBounds>,
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
        if let KeyBounds::Unbound(why) = self.key_bounds.as_ref() {
            let error = DataFusionError::Execution(why.clone());
            return Box::pin(RecordBatchStreamAdapter::new(
                self.schema.clone(),
                futures::stream::iter([Err(error)]),
            ));
        }
        let mut reader = SpanReader {
            desc: self.desc.clone(),
            txn: self.txn.clone(),
            spans: self.spans.clone().into_iter().collect(),
            via_index: self.via_index,
            key_bounds: self.key_bounds.clone(),
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
    via_index: bool,
    key_bounds: Arc<KeyBounds>,
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
        if self.via_index {
            pairs = self.fetch_rows(pairs).map_err(DataFusionError::from)?;
        }
        self.remaining -= pairs.len();
        self.build(pairs).map(Some).map_err(DataFusionError::from)
    }

    /// The rows that index entries point at. Entry and row are read at
    /// one snapshot and written by one transaction, so every entry has its
    /// row; one without is a broken invariant of the index, reported
    /// rather than skipped.
    fn fetch_rows(&self, entries: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut rows = Vec::with_capacity(entries.len());
        for (entry, primary) in entries {
            let key = crate::index_key::row_key(&self.desc, &primary);
            if !self.key_bounds.allows(&key) {
                continue;
            }
            match self.txn.get(&key)? {
                Some(value) => rows.push((key, value)),
                None => {
                    return Err(SqlError::Internal(format!(
                        "index entry {} has no row",
                        crate::row::pretty_key(&entry)
                    )));
                }
            }
        }
        Ok(rows)
    }

    fn build(&self, pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Result<RecordBatch> {
        batch_from_pairs(&self.desc, &self.output, &self.schema, &pairs)
    }
}

/// The Arrow batch of the columns `output` (positions in `desc.columns`,
/// in `schema`'s order) of the rows stored as `pairs` (primary key, value),
/// built column by column straight from the decoded rows.
pub fn batch_from_pairs(
    desc: &TableDescriptor,
    output: &[usize],
    schema: &SchemaRef,
    pairs: &[(Vec<u8>, Vec<u8>)],
) -> Result<RecordBatch> {
    let mut builders: Vec<ColumnBuilder> = output
        .iter()
        .map(|i| ColumnBuilder::new(&desc.columns[*i].ty, pairs.len()))
        .collect();
    for (k, v) in pairs {
        let row = decode_row(desc, k, v)?;
        for (b, i) in builders.iter_mut().zip(output) {
            b.append(&row[*i])?;
        }
    }
    let arrays = builders.into_iter().map(ColumnBuilder::finish).collect();
    let options = RecordBatchOptions::new().with_row_count(Some(pairs.len()));
    RecordBatch::try_new_with_options(schema.clone(), arrays, &options)
        .map_err(|e| SqlError::Internal(e.to_string()))
}

fn to_df(e: shoal_kv::KvError) -> DataFusionError {
    DataFusionError::External(Box::new(SqlError::from(e)))
}

#[cfg(test)]
mod tests {
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
}
