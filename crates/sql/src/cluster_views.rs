//! The cluster seen from SQL: the `shoal_internal` schema (`nodes`,
//! `ranges`) and `SHOW RANGES [FROM TABLE t]`.
//!
//! Both are built, when a statement names them, from the node's view of
//! the cluster ([`Kv::node_status`], [`Kv::range_status`]): its own
//! replicas, and the range directory for the others. They are not
//! transactional — membership and leadership are facts of the moment, not
//! versioned data.
//!
//! | `shoal_internal.nodes` | |
//! |---|---|
//! | `node_id` int8 | the node |
//! | `address` text | its node-to-node address |
//! | `is_live` bool | its liveness record is unexpired |
//! | `membership` text | `active`, `decommissioning` or `decommissioned` |
//! | `replicas` int8 | ranges with a replica on it |
//! | `leases` int8 | ranges it leads (serves reads and orders writes for) |
//!
//! `shoal_internal.node_metrics` has a row per counter of this node
//! (`name`, `value`): `sql.statement_retries` (statements outside a block
//! run again after a serialization failure), `kv.replicas` and
//! `kv.leases` (ranges held and led here).
//!
//! `shoal_internal.ranges` and `SHOW RANGES` have the columns `range_id`,
//! `start_key`, `end_key`, `replicas`, `lease_holder`, `range_size_bytes`.
//! Keys are shown as `/Table/<id>/<index>/<key values>` (`/Catalog/…` for
//! the catalog, escaped bytes otherwise), the ends of the key space as
//! `/Min` and `/Max`; `replicas` is the node ids as a
//! PostgreSQL array literal (`{1,2,3}`, as text: array types come with the
//! compatibility work); the size counts every stored version of the range's
//! keys (its size record, kept by every replica; NULL if no replica of a
//! range held elsewhere answered in time).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, BooleanArray, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{MemTable, SchemaProvider};
use datafusion::datasource::TableProvider;
use datafusion::error::{DataFusionError, Result as DfResult};
use shoal_kv::{Kv, RangeStatus};

use crate::error::{Result, SqlError};

/// The schema holding the cluster views.
pub const SHOAL_INTERNAL: &str = "shoal_internal";

const TABLES: &[&str] = &["nodes", "ranges", "node_metrics"];

/// Counters the SQL layer keeps for `shoal_internal.node_metrics`.
#[derive(Debug, Default)]
pub struct SqlMetrics {
    /// Statements outside a block run again after a serialization failure.
    pub statement_retries: std::sync::atomic::AtomicU64,
}

/// The `shoal_internal` schema.
pub struct ClusterSchema {
    kv: Arc<Kv>,
    metrics: Arc<SqlMetrics>,
}

impl ClusterSchema {
    pub fn new(kv: Arc<Kv>, metrics: Arc<SqlMetrics>) -> ClusterSchema {
        ClusterSchema { kv, metrics }
    }
}

impl fmt::Debug for ClusterSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterSchema")
    }
}

#[async_trait]
impl SchemaProvider for ClusterSchema {
    fn table_names(&self) -> Vec<String> {
        TABLES.iter().map(|t| t.to_string()).collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let batch = match name {
            "nodes" => nodes_batch(&self.kv),
            "ranges" => ranges_batch(&self.kv, None),
            "node_metrics" => metrics_batch(&self.kv, &self.metrics),
            _ => return Ok(None),
        }
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
        Ok(Some(Arc::new(table)))
    }

    fn table_exist(&self, name: &str) -> bool {
        TABLES.contains(&name)
    }
}

fn kv_error(e: shoal_kv::KvError) -> SqlError {
    SqlError::from(e)
}

fn batch(fields: Vec<Field>, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| SqlError::Internal(e.to_string()))
}

/// The rows of `shoal_internal.nodes`.
pub fn nodes_batch(kv: &Kv) -> Result<RecordBatch> {
    let nodes = kv.node_status().map_err(kv_error)?;
    let int = |f: fn(&shoal_kv::NodeStatus) -> u64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(
            nodes
                .iter()
                .map(|n| i64::try_from(f(n)).unwrap_or(i64::MAX)),
        ))
    };
    batch(
        vec![
            Field::new("node_id", DataType::Int64, false),
            Field::new("address", DataType::Utf8, false),
            Field::new("is_live", DataType::Boolean, false),
            Field::new("membership", DataType::Utf8, false),
            Field::new("replicas", DataType::Int64, false),
            Field::new("leases", DataType::Int64, false),
        ],
        vec![
            int(|n| n.node_id),
            Arc::new(StringArray::from_iter_values(
                nodes.iter().map(|n| n.address.as_str()),
            )),
            Arc::new(BooleanArray::from_iter(nodes.iter().map(|n| Some(n.live)))),
            Arc::new(StringArray::from_iter_values(
                nodes.iter().map(shoal_kv::NodeStatus::membership),
            )),
            int(|n| n.replicas),
            int(|n| n.leases),
        ],
    )
}

/// The rows of `shoal_internal.node_metrics`.
pub fn metrics_batch(kv: &Kv, metrics: &SqlMetrics) -> Result<RecordBatch> {
    let ranges = kv.local_ranges();
    let me = kv.raft().node_id();
    let leases = ranges
        .iter()
        .filter(|r| kv.raft().leader(r.range_id) == Some(me))
        .count();
    let rows: [(&str, u64); 4] = [
        (
            "sql.statement_retries",
            metrics
                .statement_retries
                .load(std::sync::atomic::Ordering::Relaxed),
        ),
        ("kv.replicas", ranges.len() as u64),
        ("kv.leases", leases as u64),
        // Read barriers passed under a leader's lease (`lease.rs`).
        ("kv.lease_reads", kv.raft().lease_reads()),
    ];
    batch(
        vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("value", DataType::Int64, false),
        ],
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| i64::try_from(r.1).unwrap_or(i64::MAX)),
            )),
        ],
    )
}

/// The schema of `SHOW RANGES` and `shoal_internal.ranges`.
pub fn ranges_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("range_id", DataType::Int64, false),
        Field::new("start_key", DataType::Utf8, false),
        Field::new("end_key", DataType::Utf8, false),
        Field::new("replicas", DataType::Utf8, false),
        Field::new("lease_holder", DataType::Int64, true),
        Field::new("range_size_bytes", DataType::Int64, true),
    ]))
}

/// The ranges overlapping the user-key span `[start, end)` (all ranges for
/// `None`), one row each.
pub fn ranges_batch(kv: &Kv, span: Option<(&[u8], &[u8])>) -> Result<RecordBatch> {
    let ranges: Vec<RangeStatus> = kv
        .range_status()
        .map_err(kv_error)?
        .into_iter()
        .filter(|r| {
            span.is_none_or(|(start, end)| {
                r.start_key.as_slice() < end && r.end_key.as_deref().is_none_or(|e| e > start)
            })
        })
        .collect();
    let key = |k: &[u8], edge: &str| {
        if k.is_empty() {
            edge.to_string()
        } else {
            crate::row::pretty_key(k)
        }
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(
            ranges
                .iter()
                .map(|r| i64::try_from(r.range_id).unwrap_or(i64::MAX)),
        )),
        Arc::new(StringArray::from_iter_values(
            ranges.iter().map(|r| key(&r.start_key, "/Min")),
        )),
        Arc::new(StringArray::from_iter_values(ranges.iter().map(|r| {
            r.end_key
                .as_deref()
                .map_or_else(|| "/Max".to_string(), |e| key(e, "/Min"))
        }))),
        Arc::new(StringArray::from_iter_values(ranges.iter().map(|r| {
            let ids: Vec<String> = r.replicas.iter().map(u64::to_string).collect();
            format!("{{{}}}", ids.join(","))
        }))),
        Arc::new(Int64Array::from_iter(ranges.iter().map(|r| {
            r.lease_holder.map(|l| i64::try_from(l).unwrap_or(i64::MAX))
        }))),
        Arc::new(Int64Array::from_iter(ranges.iter().map(|r| {
            r.size_bytes.map(|n| i64::try_from(n).unwrap_or(i64::MAX))
        }))),
    ];
    RecordBatch::try_new(ranges_schema(), columns).map_err(|e| SqlError::Internal(e.to_string()))
}
