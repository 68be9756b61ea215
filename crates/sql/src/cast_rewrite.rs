//! Rewriting casts by the type of what they cast: [`CastThrough`], the one
//! optimizer rule that `interval_text.rs`, `float_text.rs` and
//! `rounding_casts.rs` each configure.
//!
//! A cast shows its input's type only once the plan is typed, and
//! DataFusion's own rules fold a constant cast with Arrow's kernels
//! first; so these rules run before DataFusion's, and each rewrites the
//! casts to the types it cares about, by the type of their operand,
//! keeping every expression's name: `CAST(x AS target)` becomes
//! `CAST(f(x) AS target)`. Plans with no such cast cost one look at each
//! expression; only the others get their inputs' schema built. Subqueries
//! are walked too.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{Cast, Expr, ExprSchemable, LogicalPlan, ScalarUDF};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

/// Replaces `CAST(x AS target)`, for the targets and operand types it is
/// for, with `CAST(f(x) AS target)` (module docs).
#[derive(Debug)]
pub struct CastThrough {
    /// The rule's name in plans and EXPLAIN.
    pub name: &'static str,
    /// The cast targets it rewrites.
    pub target: fn(&DataType) -> bool,
    /// The operand types it rewrites.
    pub operand: fn(&DataType) -> bool,
    /// `f`.
    pub function: Arc<ScalarUDF>,
    /// The type the operand is cast to before `f`, if any.
    pub operand_as: Option<DataType>,
}

impl OptimizerRule for CastThrough {
    fn name(&self) -> &str {
        self.name
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        rewrite_casts(plan, self.target, |e, schema| self.rewrite_cast(e, schema))
    }
}

impl CastThrough {
    fn rewrite_cast(&self, expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
        let Expr::Cast(Cast { expr: inner, field }) = &expr else {
            return Ok(Transformed::no(expr));
        };
        let target = field.data_type();
        if !(self.target)(target) || !inner.get_type(schema).is_ok_and(|t| (self.operand)(&t)) {
            return Ok(Transformed::no(expr));
        }
        let operand = match &self.operand_as {
            Some(t) => Expr::Cast(Cast::new(inner.clone(), t.clone())),
            None => inner.as_ref().clone(),
        };
        let call = Expr::ScalarFunction(ScalarFunction::new_udf(
            self.function.clone(),
            vec![operand],
        ));
        Ok(Transformed::yes(Expr::Cast(Cast::new(
            Box::new(call),
            target.clone(),
        ))))
    }
}

/// Whether `t` is a string type.
pub(crate) fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// `plan` with `rewrite` applied to every expression (bottom up) of each
/// node that casts to a type `wanted` accepts; `rewrite` gets the node's
/// input schema, to type the cast's operand.
fn rewrite_casts(
    plan: LogicalPlan,
    wanted: impl Fn(&DataType) -> bool,
    rewrite: impl Fn(Expr, &DFSchema) -> Result<Transformed<Expr>>,
) -> Result<Transformed<LogicalPlan>> {
    plan.transform_up_with_subqueries(|node| {
        let inputs = node.inputs();
        if inputs.is_empty() || !casts_to(&node, &wanted)? {
            return Ok(Transformed::no(node));
        }
        let mut schema = DFSchema::empty();
        for input in inputs {
            schema.merge(input.schema());
        }
        let names = NamePreserver::new(&node);
        node.map_expressions(|expr| {
            let saved = names.save(&expr);
            let rewritten = expr.transform_up(|e| rewrite(e, &schema))?;
            Ok(rewritten.update_data(|e| saved.restore(e)))
        })
    })
}

/// Whether any expression of `node` casts to a type `wanted` accepts.
fn casts_to(node: &LogicalPlan, wanted: &impl Fn(&DataType) -> bool) -> Result<bool> {
    let mut found = false;
    node.apply_expressions(|expr| {
        found |= expr.exists(|e| {
            Ok(matches!(e, Expr::Cast(Cast { field, .. }) if wanted(field.data_type())))
        })?;
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })?;
    Ok(found)
}
