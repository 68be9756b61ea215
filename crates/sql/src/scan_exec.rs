//! The physical plan node of a table read, as `EXPLAIN` shows it.
//!
//! A scan executes as DataFusion's streaming table node over Shoal's
//! partitions (`scan.rs`); this node wraps it only to say, in `EXPLAIN`,
//! which access path the scan took (`access_path.rs`): the table, the
//! index read and how many key spans, or a full scan. Everything else —
//! partitions, properties, execution — is the inner node's.

use std::fmt;
use std::sync::Arc;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::Result as DfResult;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::streaming::StreamingTableExec;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PhysicalExpr, PlanProperties,
};

/// A table scan and the access path it took.
#[derive(Debug)]
pub struct ShoalScanExec {
    inner: Arc<StreamingTableExec>,
    label: String,
}

impl ShoalScanExec {
    pub fn new(inner: StreamingTableExec, label: String) -> ShoalScanExec {
        ShoalScanExec {
            inner: Arc::new(inner),
            label,
        }
    }
}

impl DisplayAs for ShoalScanExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "ShoalScanExec: {}", self.label)?;
        if !matches!(t, DisplayFormatType::TreeRender) {
            write!(f, ", ")?;
            self.inner.fmt_as(t, f)?;
        }
        Ok(())
    }
}

impl ExecutionPlan for ShoalScanExec {
    fn name(&self) -> &str {
        "ShoalScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.inner.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(datafusion::error::DataFusionError::Internal(
                "a table scan has no inputs".into(),
            ))
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        self.inner.execute(partition, context)
    }
}
