//! Prepared queries keep their optimized plan.
//!
//! A query prepared once and executed many times (sysbench's range
//! selects, an ORM's `SELECT … WHERE id BETWEEN $1 AND $2`) would
//! otherwise be turned from SQL into a logical plan, analyzed and
//! optimized on every execution — about a third of the server's CPU on
//! such traffic. Each [`crate::prepared::Prepared`] statement owns a
//! [`PlanCache`]: its first execution plans and optimizes the query with
//! its placeholders still in place and keeps that plan (the first
//! execution itself runs the general way); later executions fill in the
//! parameter values and go straight to physical planning.
//!
//! A kept plan must give exactly what planning afresh gives, so it is kept
//! only when nothing in it can differ between executions but the
//! parameters and the data:
//! - it reads only Shoal tables (no system catalog, view or cluster view,
//!   whose providers capture what they show when planned), and has only
//!   plain relational nodes (no extension node, DML, DDL or `EXPLAIN`);
//! - every function in it is immutable (`now()`, `random()`, `nextval`,
//!   `current_setting` are folded or read at planning, so a plan holding
//!   one is not kept);
//! - every placeholder has a type (each execution's values are cast to it,
//!   as the analyzer would have).
//!
//! A kept plan is used only for the statement it was made for (compared
//! whole), under the `search_path` and time zone it was made under, and
//! only while every table it reads still resolves, by the name the plan
//! recorded, to the same table at the same descriptor version: before each
//! execution the names are looked up again, which also binds the scans to
//! the execution's transaction. Anything else — DDL on a table, a table
//! created earlier on the path, a changed setting — plans afresh and keeps
//! the new plan. A plan that cannot be kept is remembered as such, so
//! such a statement pays for the check once, not on every execution.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{ParamValues, ScalarValue, TableReference};
use datafusion::datasource::{DefaultTableSource, TableProvider, provider_as_source};
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan, Volatility};
use datafusion::sql::sqlparser::ast::Statement;
use parking_lot::Mutex;

use crate::error::Result;
use crate::scan::TableScan;

/// What a prepared statement keeps of its planning (module docs).
#[derive(Default)]
pub struct PlanCache {
    entry: Mutex<Option<Arc<Entry>>>,
}

impl std::fmt::Debug for PlanCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlanCache")
    }
}

/// What the plan was made from and under; it serves only the same.
#[derive(PartialEq)]
struct Key {
    stmt: Statement,
    search_path: Option<String>,
    time_zone: Option<String>,
}

struct Entry {
    key: Key,
    /// None: the statement's plan cannot be kept (module docs).
    plan: Option<Kept>,
}

struct Kept {
    /// Analyzed and optimized, placeholders in place.
    plan: LogicalPlan,
    /// Each table the plan reads: its name as planned, id and version.
    tables: Vec<(TableReference, u32, u32, bool)>,
    /// The type of each placeholder, by id (`$1`).
    params: HashMap<String, DataType>,
}

/// A kept plan ready to run: scans bound to this execution, values in.
pub enum Lookup {
    Ready(LogicalPlan),
    /// No kept plan applies; plan afresh (and offer it with
    /// [`PlanCache::keep`]). Also when a value does not cast to its
    /// placeholder's type: the general path reports that.
    Plan,
    /// The statement's plan is known not to be keepable: plan afresh.
    Uncacheable,
}

impl PlanCache {
    /// The kept plan for `stmt` under these settings, rebound to the
    /// session's current transaction and with `params` filled in.
    pub async fn lookup(
        &self,
        state: &SessionState,
        stmt: &Statement,
        search_path: Option<&str>,
        params: &[ScalarValue],
    ) -> Result<Lookup> {
        let Some(entry) = self.entry.lock().clone() else {
            return Ok(Lookup::Plan);
        };
        let key = &entry.key;
        if key.search_path.as_deref() != search_path
            || key.time_zone != time_zone(state)
            || key.stmt != *stmt
        {
            return Ok(Lookup::Plan);
        }
        let Some(kept) = &entry.plan else {
            return Ok(Lookup::Uncacheable);
        };
        if kept.params.len() > params.len() {
            return Ok(Lookup::Plan);
        }
        let Some(values) = cast_params(&kept.params, params) else {
            return Ok(Lookup::Plan);
        };
        // Look every table up again by the name the plan used: the same
        // table at the same version, bound to this execution's transaction.
        let mut fresh: HashMap<TableReference, Arc<dyn TableProvider>> = HashMap::new();
        for (name, id, version, hidden) in &kept.tables {
            // A table read twice (a self-join) is looked up once.
            if fresh.contains_key(name) {
                continue;
            }
            let provider = match state.schema_for_ref(name.clone()) {
                Ok(schema) => schema.table(name.table()).await?,
                Err(_) => None,
            };
            let same = provider.as_ref().is_some_and(|p| {
                p.downcast_ref::<TableScan>()
                    .is_some_and(|t| t.identity() == (*id, *version, *hidden))
            });
            match provider {
                Some(p) if same => {
                    fresh.insert(name.clone(), p);
                }
                _ => return Ok(Lookup::Plan),
            }
        }
        let plan = kept
            .plan
            .clone()
            .transform_up_with_subqueries(|node| match node {
                LogicalPlan::TableScan(mut scan) => {
                    if let Some(p) = fresh.get(&scan.table_name) {
                        scan.source = provider_as_source(p.clone());
                    }
                    Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
                }
                other => Ok(Transformed::no(other)),
            })?
            .data;
        let plan = match values.is_empty() {
            true => plan,
            false => plan.replace_params_with_values(&ParamValues::from(values))?,
        };
        Ok(Lookup::Ready(plan))
    }

    /// Offers a freshly made (unoptimized) plan of `stmt`: keeps it
    /// optimized if it can be kept, else remembers that it cannot.
    pub fn keep(
        &self,
        state: &SessionState,
        stmt: &Statement,
        search_path: Option<&str>,
        plan: &LogicalPlan,
    ) {
        let key = Key {
            stmt: stmt.clone(),
            search_path: search_path.map(str::to_string),
            time_zone: time_zone(state),
        };
        let kept = keepable(plan).and_then(|(tables, params)| {
            let optimized = state.optimize(plan).ok()?;
            Some(Kept {
                plan: optimized,
                tables,
                params,
            })
        });
        *self.entry.lock() = Some(Arc::new(Entry { key, plan: kept }));
    }
}

fn time_zone(state: &SessionState) -> Option<String> {
    state.config().options().execution.time_zone.clone()
}

type Tables = Vec<(TableReference, u32, u32, bool)>;

/// The tables and placeholder types of a plan that may be kept, or None.
fn keepable(plan: &LogicalPlan) -> Option<(Tables, HashMap<String, DataType>)> {
    let mut tables: Tables = Vec::new();
    let mut params: HashMap<String, DataType> = HashMap::new();
    let mut ok = true;
    let visit = plan.apply_with_subqueries(|node| {
        match node {
            LogicalPlan::TableScan(scan) => {
                let table = scan
                    .source
                    .downcast_ref::<DefaultTableSource>()
                    .and_then(|s| s.table_provider.downcast_ref::<TableScan>());
                match table {
                    Some(t) => {
                        let (id, version, hidden) = t.identity();
                        tables.push((scan.table_name.clone(), id, version, hidden));
                    }
                    None => ok = false,
                }
            }
            LogicalPlan::Projection(_)
            | LogicalPlan::Filter(_)
            | LogicalPlan::Aggregate(_)
            | LogicalPlan::Sort(_)
            | LogicalPlan::Limit(_)
            | LogicalPlan::SubqueryAlias(_)
            | LogicalPlan::Subquery(_)
            | LogicalPlan::Distinct(_)
            | LogicalPlan::Join(_)
            | LogicalPlan::Union(_)
            | LogicalPlan::Window(_)
            | LogicalPlan::EmptyRelation(_)
            | LogicalPlan::Values(_) => {}
            _ => ok = false,
        }
        node.apply_expressions(|e| {
            e.apply(|e| {
                match e {
                    Expr::ScalarFunction(f)
                        if f.func.signature().volatility != Volatility::Immutable =>
                    {
                        ok = false;
                    }
                    Expr::Placeholder(p) => match &p.field {
                        Some(field) => {
                            params.insert(p.id.clone(), field.data_type().clone());
                        }
                        None => ok = false,
                    },
                    _ => {}
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })?;
        Ok(match ok {
            true => TreeNodeRecursion::Continue,
            false => TreeNodeRecursion::Stop,
        })
    });
    (visit.is_ok() && ok).then_some((tables, params))
}

/// The values of `$1…$n`, each cast to its placeholder's type; None if
/// one does not cast (the general path reports that).
fn cast_params(
    types: &HashMap<String, DataType>,
    params: &[ScalarValue],
) -> Option<Vec<ScalarValue>> {
    params
        .iter()
        .enumerate()
        .map(|(i, v)| match types.get(&format!("${}", i + 1)) {
            Some(ty) if v.data_type() != *ty => v.cast_to(ty).ok(),
            _ => Some(v.clone()),
        })
        .collect()
}
