//! What the extended protocol learns about a statement when it is
//! prepared: the types of its parameters and the columns of its result
//! ([`Prepared`]), read off DataFusion's plan of it.
//!
//! A parameter's Arrow type comes from where it is used (DataFusion infers
//! placeholder types; a `LIMIT $1` is a bigint); where the Arrow type does
//! not tell the PostgreSQL type (a jsonb operand is `Utf8`), the
//! placeholder's field carries a `pg_type` entry that becomes its OID.
//! Result columns are named as the client sees them (`compat.rs` makes
//! DataFusion's names unique; the suffix is dropped here).

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::logical_expr::LogicalPlan;

use crate::error::{Result, SqlError};
use crate::types::PG_TYPE_KEY;

/// What the extended protocol needs to know about a statement before it runs.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Type of each `$n`, `None` where nothing tells it (then clients send text).
    pub param_types: Vec<Option<DataType>>,
    /// PostgreSQL type OID of each `$n` where its Arrow type does not tell it
    /// (a uuid or varchar column's parameter is Arrow `Utf8`).
    pub param_oids: Vec<Option<u32>>,
    /// Columns of the result, or None for statements that return no rows.
    pub schema: Option<SchemaRef>,
    /// A shortcut that skips planning at execution, when the statement has
    /// a shape [`crate::fastpath`] knows.
    pub fast: Option<crate::fastpath::FastPlan>,
    /// The `search_path` the fast plan resolved names under; it applies
    /// only while the session's is the same.
    pub search_path: Option<String>,
    /// The query's optimized plan, kept across executions (`plan_cache.rs`).
    pub plans: Arc<crate::plan_cache::PlanCache>,
}

impl Prepared {
    pub fn new(param_types: Vec<Option<DataType>>, schema: Option<SchemaRef>) -> Prepared {
        Prepared {
            param_types,
            param_oids: Vec::new(),
            schema,
            fast: None,
            search_path: None,
            plans: Arc::default(),
        }
    }
}

/// The result columns of a plan as the client sees them.
pub(crate) fn output_schema(plan: &LogicalPlan) -> SchemaRef {
    let arrow = plan.schema().as_arrow();
    Arc::new(Schema::new_with_metadata(
        arrow
            .fields()
            .iter()
            .map(|f| {
                f.as_ref()
                    .clone()
                    .with_name(crate::compat::output_name(f.name()))
            })
            .collect::<Vec<Field>>(),
        arrow.metadata().clone(),
    ))
}

/// A schema of text columns with the given names.
pub(crate) fn text_schema(names: &[String]) -> SchemaRef {
    Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(n, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ))
}

/// The PostgreSQL types of parameters whose Arrow type does not tell it:
/// a placeholder the planner typed with a `pg_type` field entry (a jsonb
/// operand, `json_functions.rs`).
pub(crate) fn param_oids(plan: &LogicalPlan, count: usize) -> Result<Vec<Option<u32>>> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::Expr;
    let mut oids = vec![None; count];
    plan.apply(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::Placeholder(p) = e
                    && let Some(pg) = p.field.as_ref().and_then(|f| f.metadata().get(PG_TYPE_KEY))
                    && let Ok(n) = p.id.trim_start_matches('$').parse::<usize>()
                    && let Some(slot) = n.checked_sub(1).and_then(|i| oids.get_mut(i))
                {
                    *slot = crate::pg_catalog::type_oid(pg).map(|o| o as u32);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    Ok(oids)
}

/// The parameter types of a plan, ordered `$1`, `$2`, ….
pub(crate) fn param_types(plan: &LogicalPlan) -> Result<Vec<Option<DataType>>> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    let mut types = plan.get_parameter_types()?;
    // A parameter that is a LIMIT or OFFSET is a bigint, as in PostgreSQL
    // (DataFusion leaves it untyped).
    plan.apply(|node| {
        if let LogicalPlan::Limit(limit) = node {
            for e in [&limit.skip, &limit.fetch].into_iter().flatten() {
                if let datafusion::logical_expr::Expr::Placeholder(p) = e.as_ref()
                    && let Some(ty @ None) = types.get_mut(&p.id)
                {
                    *ty = Some(DataType::Int64);
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    let mut out = Vec::new();
    for (id, ty) in types {
        let n: usize = id
            .trim_start_matches('$')
            .parse()
            .map_err(|_| SqlError::Syntax(format!("invalid parameter name {id}")))?;
        if n == 0 {
            return Err(SqlError::Syntax("there is no parameter $0".into()));
        }
        if out.len() < n {
            out.resize(n, None);
        }
        out[n - 1] = ty;
    }
    Ok(out)
}
