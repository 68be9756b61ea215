//! Rewriting casts by the type of what they cast: the walk the optimizer
//! rules of `interval_text.rs` and `rounding_casts.rs` share.
//!
//! A cast shows its input's type only once the plan is typed, and
//! DataFusion's own rules fold a constant cast with Arrow's kernels
//! first; so these rules run before DataFusion's, and each rewrites the
//! casts to the types it cares about, by the type of their operand,
//! keeping every expression's name. Plans with no such cast cost one look
//! at each expression; only the others get their inputs' schema built.
//! Subqueries are walked too.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{Cast, Expr, LogicalPlan};

/// `plan` with `rewrite` applied to every expression (bottom up) of each
/// node that casts to a type `wanted` accepts; `rewrite` gets the node's
/// input schema, to type the cast's operand.
pub(crate) fn rewrite_casts(
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
