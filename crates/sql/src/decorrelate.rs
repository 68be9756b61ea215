//! Correlated scalar subqueries with aggregates, joined instead of looped.
//!
//! DataFusion turns a correlated scalar subquery into a join only when the
//! correlation is an equality (`x.k = t.k`). A query such as
//!
//! ```sql
//! SELECT a, (SELECT count(*) FROM t AS x WHERE x.b < t.b) FROM t
//! ```
//!
//! correlates through `<`, and DataFusion leaves it unplanned. This rule
//! handles the common shape — a subquery whose result is one aggregate
//! (`count`, `sum`, `avg`, `min`, `max`) over a filtered input, with the
//! outer references only in that filter — by the classic *domain*
//! rewrite:
//!
//! 1. `D` = the distinct values of the outer columns the subquery uses;
//! 2. evaluate the subquery once per domain row: filter `D × input` with
//!    the correlation predicate (outer references now read `D`), group by
//!    `D`'s columns, aggregate;
//! 3. left-join the outer rows to that result on the outer columns (NULLs
//!    match NULLs, as a correlated reference to NULL would see NULL).
//!
//! A domain row with no matching input has no group, so the join yields
//! NULL; that is what `sum`/`avg`/`min`/`max` return over no rows, and for
//! `count` the rule substitutes 0. Anything outside this shape is left for
//! DataFusion, which reports it as not supported.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, NullEquality, Result, ScalarValue};
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{
    Expr, Filter, JoinType, LogicalPlan, LogicalPlanBuilder, Projection, Subquery,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

#[derive(Debug, Default)]
pub struct DecorrelateAggregateSubquery {
    next_alias: AtomicUsize,
}

impl OptimizerRule for DecorrelateAggregateSubquery {
    fn name(&self) -> &str {
        "shoal_decorrelate_aggregate_subquery"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let mut plan = plan;
        let mut changed = false;
        // One subquery per round; a node may hold several.
        for _ in 0..64 {
            match self.rewrite_one(&plan)? {
                Some(p) => {
                    plan = p;
                    changed = true;
                }
                None => break,
            }
        }
        Ok(if changed {
            Transformed::yes(plan)
        } else {
            Transformed::no(plan)
        })
    }
}

/// What a supported subquery looks like, taken apart.
struct Shape {
    /// The aggregate node's input below the correlated filter.
    filter_input: Arc<LogicalPlan>,
    predicate: Expr,
    aggregates: Vec<Expr>,
    /// The subquery's single output expression, over the aggregate's output.
    output: Expr,
    /// Whether the output is a bare `count` (0 on no rows, not NULL).
    is_count: bool,
    outer_columns: Vec<Column>,
}

fn analyze(sq: &Subquery) -> Option<Shape> {
    let LogicalPlan::Projection(proj) = sq.subquery.as_ref() else {
        return None;
    };
    if proj.expr.len() != 1 {
        return None;
    }
    let LogicalPlan::Aggregate(agg) = proj.input.as_ref() else {
        return None;
    };
    if !agg.group_expr.is_empty() {
        return None;
    }
    let LogicalPlan::Filter(filter) = agg.input.as_ref() else {
        return None;
    };
    // Outer references only in the filter predicate.
    if has_outer(&filter.input)
        || proj
            .expr
            .iter()
            .chain(agg.aggr_expr.iter())
            .any(expr_has_outer)
    {
        return None;
    }
    let mut outer = BTreeSet::new();
    filter
        .predicate
        .apply(|e| {
            if let Expr::OuterReferenceColumn(_, c) = e {
                outer.insert(c.clone());
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .ok()?;
    if outer.is_empty() {
        return None;
    }
    let output = strip_alias(&proj.expr[0]);
    let is_count = match output_aggregate(&output, &agg.aggr_expr) {
        Some(name) if matches!(name.as_str(), "count") => true,
        Some(name)
            if matches!(
                name.as_str(),
                "sum" | "avg" | "min" | "max" | "shoal_single"
            ) =>
        {
            false
        }
        _ => return None,
    };
    Some(Shape {
        filter_input: filter.input.clone(),
        predicate: filter.predicate.clone(),
        aggregates: agg.aggr_expr.clone(),
        output,
        is_count,
        outer_columns: outer.into_iter().collect(),
    })
}

fn strip_alias(e: &Expr) -> Expr {
    match e {
        Expr::Alias(a) => strip_alias(&a.expr),
        other => other.clone(),
    }
}

/// The name of the aggregate function the output is exactly (up to casts
/// and aliases), if it is one.
fn output_aggregate(output: &Expr, aggregates: &[Expr]) -> Option<String> {
    let column = match output {
        Expr::Column(c) => c.clone(),
        Expr::Cast(c) => return output_aggregate(&c.expr, aggregates),
        _ => return None,
    };
    aggregates.iter().find_map(|a| {
        let name = a.schema_name().to_string();
        if name != column.name {
            return None;
        }
        match strip_alias(a) {
            Expr::AggregateFunction(AggregateFunction { func, params })
                if params.filter.is_none() && !params.distinct =>
            {
                Some(func.name().to_ascii_lowercase())
            }
            _ => None,
        }
    })
}

fn expr_has_outer(e: &Expr) -> bool {
    let mut found = false;
    let _ = e.apply(|x| {
        if matches!(x, Expr::OuterReferenceColumn(..)) {
            found = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

fn has_outer(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply_with_subqueries(|p| {
        if p.expressions().iter().any(expr_has_outer) {
            found = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// Finds the first supported correlated scalar subquery in `exprs`.
fn find(exprs: &[Expr]) -> Option<(Subquery, Shape)> {
    let mut hit = None;
    for e in exprs {
        let _ = e.apply(|x| {
            if let Expr::ScalarSubquery(sq) = x
                && let Some(shape) = analyze(sq)
            {
                hit = Some((sq.clone(), shape));
                return Ok(TreeNodeRecursion::Stop);
            }
            Ok(TreeNodeRecursion::Continue)
        });
        if hit.is_some() {
            break;
        }
    }
    hit
}

impl DecorrelateAggregateSubquery {
    fn rewrite_one(&self, plan: &LogicalPlan) -> Result<Option<LogicalPlan>> {
        let (exprs, input) = match plan {
            LogicalPlan::Projection(p) => (p.expr.clone(), p.input.clone()),
            LogicalPlan::Filter(f) => (vec![f.predicate.clone()], f.input.clone()),
            _ => return Ok(None),
        };
        let Some((subquery, shape)) = find(&exprs) else {
            return Ok(None);
        };
        let n = self.next_alias.fetch_add(1, Ordering::Relaxed);
        let domain_alias = format!("__shoal_domain_{n}");
        let result_alias = format!("__shoal_sq_{n}");
        let keys: Vec<String> = (0..shape.outer_columns.len())
            .map(|i| format!("__k{i}"))
            .collect();

        // 1. The domain of outer values.
        let domain = LogicalPlanBuilder::from(input.as_ref().clone())
            .project(
                shape
                    .outer_columns
                    .iter()
                    .zip(&keys)
                    .map(|(c, k)| Expr::Column(c.clone()).alias(k.clone())),
            )?
            .distinct()?
            .alias(domain_alias.as_str())?
            .build()?;

        // 2. The subquery per domain row.
        let predicate = shape.predicate.clone().transform(|e| {
            Ok(match e {
                Expr::OuterReferenceColumn(field, c) => {
                    match shape.outer_columns.iter().position(|o| *o == c) {
                        Some(i) => Transformed::yes(Expr::Column(Column::new(
                            Some(domain_alias.clone()),
                            keys[i].clone(),
                        ))),
                        // Unreachable: `outer_columns` was collected from this
                        // very predicate. Left as it was, never invented.
                        None => Transformed::no(Expr::OuterReferenceColumn(field, c)),
                    }
                }
                other => Transformed::no(other),
            })
        })?;
        let group: Vec<Expr> = keys
            .iter()
            .map(|k| Expr::Column(Column::new(Some(domain_alias.clone()), k.clone())))
            .collect();
        let mut out: Vec<Expr> = keys
            .iter()
            .map(|k| {
                Expr::Column(Column::new(Some(domain_alias.clone()), k.clone())).alias(k.clone())
            })
            .collect();
        out.push(shape.output.clone().alias("__value"));
        let per_domain = LogicalPlanBuilder::from(domain)
            .cross_join(shape.filter_input.as_ref().clone())?
            .filter(predicate.data)?
            .aggregate(group, shape.aggregates.clone())?
            .project(out)?
            .alias(result_alias.as_str())?
            .build()?;

        // 3. Outer rows joined to their subquery value.
        let right_keys: Vec<Column> = keys
            .iter()
            .map(|k| Column::new(Some(result_alias.clone()), k.clone()))
            .collect();
        let joined = LogicalPlanBuilder::from(input.as_ref().clone())
            .join_detailed(
                per_domain,
                JoinType::Left,
                (shape.outer_columns.clone(), right_keys),
                None,
                NullEquality::NullEqualsNull,
            )?
            .build()?;
        let value = Expr::Column(Column::new(Some(result_alias.clone()), "__value"));
        let value = if shape.is_count {
            datafusion::functions::expr_fn::coalesce(vec![
                value,
                Expr::Literal(ScalarValue::Int64(Some(0)), None),
            ])
        } else {
            value
        };
        // The subquery's place in an expression now reads the joined value.
        let substitute = |e: Expr| -> Result<Expr> {
            Ok(e.transform(|x| {
                Ok(match x {
                    Expr::ScalarSubquery(sq) if sq == subquery => Transformed::yes(value.clone()),
                    other => Transformed::no(other),
                })
            })?
            .data)
        };
        let replace = |e: Expr| -> Result<Expr> {
            let name = e.name_for_alias()?;
            let replaced = substitute(e)?;
            Ok(if matches!(replaced, Expr::Alias(_)) {
                replaced
            } else {
                replaced.alias_if_changed(name)?
            })
        };
        let rewritten = match plan {
            LogicalPlan::Projection(p) => {
                let exprs = p
                    .expr
                    .iter()
                    .cloned()
                    .map(replace)
                    .collect::<Result<Vec<_>>>()?;
                LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(joined))?)
            }
            LogicalPlan::Filter(f) => {
                let predicate = substitute(f.predicate.clone())?;
                let filtered = LogicalPlan::Filter(Filter::try_new(predicate, Arc::new(joined))?);
                // Keep the Filter's original output columns.
                let columns: Vec<Expr> = input
                    .schema()
                    .columns()
                    .into_iter()
                    .map(Expr::Column)
                    .collect();
                LogicalPlanBuilder::from(filtered)
                    .project(columns)?
                    .build()?
            }
            _ => return Ok(None),
        };
        Ok(Some(rewritten))
    }
}
