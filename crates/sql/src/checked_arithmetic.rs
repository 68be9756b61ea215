//! Arithmetic that overflows is an error, as in PostgreSQL.
//!
//! DataFusion evaluates `+`, `-` and `*` with Arrow's wrapping kernels:
//! `2147483647 * 2147483647` on two int4 columns comes back as 1, and an
//! `UPDATE … SET n = n * 1000` can store a wrapped value. PostgreSQL
//! refuses with 22003 ("integer out of range"). DataFusion's binary
//! expressions have a checked mode (`BinaryExpr::with_fail_on_overflow`),
//! which nothing in its planner turns on; this physical optimizer rule,
//! run after all of DataFusion's, turns it on in every projection and
//! filter. The checked kernels raise Arrow's overflow error, which
//! `error.rs` maps to `NumericOutOfRange` (22003). Floats are untouched
//! by the checked kernels (they reach infinity, as Arrow defines).
//!
//! Projections and filters are where a query's and a DML statement's
//! expressions are evaluated. Arguments of aggregates (`sum(a * b)`), join
//! conditions and sort keys are evaluated elsewhere and still wrap; so
//! does an aggregate's own accumulation (`sum` of int8), which PostgreSQL
//! widens to numeric.

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::BinaryExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};

/// The rule (module docs).
#[derive(Debug, Default)]
pub struct CheckedArithmetic;

impl PhysicalOptimizerRule for CheckedArithmetic {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(checked_node).data()
    }

    fn name(&self) -> &str {
        "shoal_checked_arithmetic"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `node` with checked arithmetic, if it is a projection or a filter with
/// any arithmetic.
fn checked_node(node: Arc<dyn ExecutionPlan>) -> Result<Transformed<Arc<dyn ExecutionPlan>>> {
    if let Some(projection) = node.downcast_ref::<ProjectionExec>() {
        let mut changed = false;
        let mut exprs = Vec::with_capacity(projection.expr().len());
        for e in projection.expr() {
            let expr = checked_expr(Arc::clone(&e.expr))?;
            changed |= expr.transformed;
            exprs.push(ProjectionExpr {
                expr: expr.data,
                alias: e.alias.clone(),
            });
        }
        if !changed {
            return Ok(Transformed::no(node));
        }
        // The output schema's field metadata (which carries types such as
        // uuid and varchar to the wire) is kept.
        let rebuilt = ProjectionExec::try_new_with_schema_metadata(
            exprs,
            Arc::clone(projection.input()),
            &projection.schema(),
        )?;
        return Ok(Transformed::yes(Arc::new(rebuilt)));
    }
    if let Some(filter) = node.downcast_ref::<FilterExec>() {
        let predicate = checked_expr(Arc::clone(filter.predicate()))?;
        if !predicate.transformed {
            return Ok(Transformed::no(node));
        }
        let rebuilt = FilterExecBuilder::from(filter)
            .with_predicate(predicate.data)
            .build()?;
        return Ok(Transformed::yes(Arc::new(rebuilt)));
    }
    Ok(Transformed::no(node))
}

/// `expr` with every `+`, `-` and `*` checked.
fn checked_expr(expr: Arc<dyn PhysicalExpr>) -> Result<Transformed<Arc<dyn PhysicalExpr>>> {
    expr.transform_up(|e| {
        let Some(binary) = e.downcast_ref::<BinaryExpr>() else {
            return Ok(Transformed::no(e));
        };
        if !matches!(
            binary.op(),
            Operator::Plus | Operator::Minus | Operator::Multiply
        ) {
            return Ok(Transformed::no(e));
        }
        let checked = BinaryExpr::new(
            Arc::clone(binary.left()),
            *binary.op(),
            Arc::clone(binary.right()),
        )
        .with_fail_on_overflow(true);
        Ok(Transformed::yes(Arc::new(checked) as Arc<dyn PhysicalExpr>))
    })
}
