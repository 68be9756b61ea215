//! `ARRAY(SELECT …)`: a subquery's rows as one array, wherever it appears.
//!
//! DataFusion plans no array constructor over a subquery, so the compat
//! rewrite ([`rewrite`]) turns each into something it does plan, with the
//! same meaning:
//!
//! - **Over the elements of one array** — `ARRAY(SELECT e FROM unnest(a)
//!   x [WHERE p])`, where `e` and `p` read only the element (psql's `\d+`
//!   maps table options this way) — it becomes `shoal_array_map(a, 'e',
//!   'p')`: `e` evaluated for each element `p` keeps. Written as a
//!   subquery this would be correlated through `unnest`, which DataFusion
//!   cannot decorrelate; as a function it is a plain expression. No
//!   elements give `{}`, as in PostgreSQL.
//! - **Any other single-column subquery** becomes `coalesce((SELECT
//!   array_agg(e [ORDER BY …]) FROM …), make_array())`, an aggregate
//!   subquery that decorrelation turns into a join; no rows give `{}`, as
//!   in PostgreSQL.
//!
//! An unnamed output column `ARRAY(…)` is named `array`, as in PostgreSQL.
//!
//! `shoal_array_map` compiles its expression once per element type with
//! DataFusion's own functions, over a one-column schema (`element`), and
//! evaluates it over all elements of a batch of arrays at once.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, ListArray, RecordBatch};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{self, Expr, Statement, visit_expressions_mut};
use parking_lot::Mutex;

use crate::compat::call;

pub const MAP_NAME: &str = "shoal_array_map";

/// The column the mapped expression reads each element as.
const ELEMENT: &str = "element";

/// Rewrites every `ARRAY(SELECT …)` of a statement (module docs).
pub fn rewrite(stmt: &mut Statement) {
    if let Statement::Query(q) = stmt
        && let ast::SetExpr::Select(select) = q.body.as_mut()
    {
        for item in select.projection.iter_mut() {
            if let ast::SelectItem::UnnamedExpr(e) = item
                && array_subquery(e).is_some()
            {
                *item = ast::SelectItem::ExprWithAlias {
                    expr: e.clone(),
                    alias: ast::Ident::with_quote('"', "array"),
                };
            }
        }
    }
    let _ = visit_expressions_mut(stmt, |expr| {
        if let Some(sub) = array_subquery(expr)
            && let Some(rewritten) = map_over_unnest(sub).or_else(|| aggregate(sub))
        {
            *expr = rewritten;
        }
        ControlFlow::<()>::Continue(())
    });
}

/// The subquery of an `ARRAY(SELECT …)`.
fn array_subquery(expr: &Expr) -> Option<&ast::Query> {
    let Expr::Function(f) = expr else {
        return None;
    };
    let is_array = f.name.0.len() == 1
        && f.name.0[0]
            .as_ident()
            .is_some_and(|i| i.quote_style.is_none() && i.value.eq_ignore_ascii_case("array"));
    match &f.args {
        ast::FunctionArguments::Subquery(sub) if is_array => Some(sub),
        _ => None,
    }
}

/// The select of a query with one output column and nothing that groups,
/// limits or combines rows; and that column's expression.
fn single_column(q: &ast::Query) -> Option<(&ast::Select, &Expr)> {
    let ast::SetExpr::Select(select) = q.body.as_ref() else {
        return None;
    };
    let grouped = !matches!(&select.group_by, ast::GroupByExpr::Expressions(e, _) if e.is_empty());
    if q.with.is_some()
        || q.limit_clause.is_some()
        || q.fetch.is_some()
        || select.projection.len() != 1
        || grouped
        || select.having.is_some()
        || select.distinct.is_some()
    {
        return None;
    }
    match &select.projection[0] {
        ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } => {
            Some((select, e))
        }
        _ => None,
    }
}

/// `ARRAY(SELECT e FROM unnest(a) x [WHERE p])` → `shoal_array_map(a,
/// 'e', 'p')`, when `e` and `p` read nothing but the element.
fn map_over_unnest(q: &ast::Query) -> Option<Expr> {
    let (select, element) = single_column(q)?;
    if q.order_by.is_some() || select.from.len() != 1 || !select.from[0].joins.is_empty() {
        return None;
    }
    let (array, alias) = match &select.from[0].relation {
        ast::TableFactor::UNNEST {
            alias,
            array_exprs,
            with_offset: false,
            with_ordinality: false,
            ..
        } if array_exprs.len() == 1 => (array_exprs[0].clone(), alias.clone()),
        ast::TableFactor::Table {
            name,
            args: Some(args),
            alias,
            ..
        } if name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .is_some_and(|i| i.value.eq_ignore_ascii_case("unnest"))
            && args.args.len() == 1 =>
        {
            let ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(a)) = &args.args[0] else {
                return None;
            };
            (a.clone(), alias.clone())
        }
        _ => return None,
    };
    // The names the element goes by: `x` for `unnest(a) x`; `c` and
    // `t.c` for `unnest(a) AS t(c)`; `unnest` without an alias.
    let (table, column) = match &alias {
        None => (None, "unnest".to_string()),
        Some(a) => match a.columns.as_slice() {
            [] => (None, crate::names::fold(&a.name)),
            [c] => (
                Some(crate::names::fold(&a.name)),
                crate::names::fold(&c.name),
            ),
            _ => return None,
        },
    };
    let rename = |e: &Expr| -> Option<Expr> {
        let mut e = e.clone();
        let mut only_element = true;
        let _ = visit_expressions_mut(&mut e, |x| {
            let is_element = match x {
                Expr::Identifier(i) => crate::names::fold(i) == column,
                Expr::CompoundIdentifier(parts) => match parts.as_slice() {
                    [t, c] => {
                        table.as_deref() == Some(crate::names::fold(t).as_str())
                            && crate::names::fold(c) == column
                    }
                    _ => false,
                },
                Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => {
                    only_element = false;
                    false
                }
                Expr::Function(f) if !matches!(f.args, ast::FunctionArguments::List(_)) => {
                    only_element = false;
                    false
                }
                _ => return ControlFlow::<()>::Continue(()),
            };
            if is_element {
                *x = Expr::Identifier(ast::Ident::new(ELEMENT));
            } else if matches!(x, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
                only_element = false;
            }
            ControlFlow::<()>::Continue(())
        });
        only_element.then_some(e)
    };
    let mapped = rename(element)?;
    let filter = match &select.selection {
        Some(p) => rename(p)?.to_string(),
        None => String::new(),
    };
    let text = |s: String| Expr::value(ast::Value::SingleQuotedString(s));
    Some(call(
        MAP_NAME,
        vec![array, text(mapped.to_string()), text(filter)],
    ))
}

/// `ARRAY(SELECT e FROM … [ORDER BY …])` → `coalesce((SELECT array_agg(e
/// [ORDER BY …]) FROM …), make_array())`.
fn aggregate(q: &ast::Query) -> Option<Expr> {
    let (_, element) = single_column(q)?;
    let element = element.clone();
    let mut sub = q.clone();
    let order: Vec<ast::OrderByExpr> = match sub.order_by.take() {
        None => Vec::new(),
        Some(ast::OrderBy {
            kind: ast::OrderByKind::Expressions(list),
            ..
        }) => list
            .into_iter()
            .map(|mut o| {
                // `ORDER BY 1` names the one output column.
                if let Expr::Value(v) = &o.expr
                    && matches!(&v.value, ast::Value::Number(n, _) if n == "1")
                {
                    o.expr = element.clone();
                }
                o
            })
            .collect(),
        Some(_) => return None,
    };
    let ast::SetExpr::Select(inner) = sub.body.as_mut() else {
        return None;
    };
    let mut agg = call("array_agg", vec![element]);
    if let Expr::Function(f) = &mut agg
        && let ast::FunctionArguments::List(list) = &mut f.args
        && !order.is_empty()
    {
        list.clauses
            .push(ast::FunctionArgumentClause::OrderBy(order));
    }
    inner.projection = vec![ast::SelectItem::UnnamedExpr(agg)];
    // No rows aggregate to NULL; PostgreSQL's ARRAY() of no rows is `{}`.
    Some(call(
        "coalesce",
        vec![
            Expr::Subquery(Box::new(sub)),
            call("make_array", Vec::new()),
        ],
    ))
}

type Compiled = (
    Arc<dyn PhysicalExpr>,
    Option<Arc<dyn PhysicalExpr>>,
    DataType,
);

/// `shoal_array_map(array, 'expression', 'filter')` (module docs).
#[derive(Debug)]
pub struct ArrayMap {
    signature: Signature,
    compiled: Mutex<HashMap<(DataType, String, String), Compiled>>,
}

impl Default for ArrayMap {
    fn default() -> Self {
        ArrayMap {
            signature: Signature::any(3, Volatility::Immutable),
            compiled: Mutex::new(HashMap::new()),
        }
    }
}

impl PartialEq for ArrayMap {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for ArrayMap {}

impl std::hash::Hash for ArrayMap {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        MAP_NAME.hash(state)
    }
}

fn element_type(list: &DataType) -> DataType {
    match list {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            f.data_type().clone()
        }
        _ => DataType::Utf8,
    }
}

fn literal(v: Option<&ScalarValue>) -> DfResult<String> {
    match v {
        Some(ScalarValue::Utf8(Some(s))) => Ok(s.clone()),
        Some(ScalarValue::Utf8(None)) | None => Ok(String::new()),
        _ => Err(DataFusionError::Plan(format!(
            "{MAP_NAME} takes its expressions as text literals"
        ))),
    }
}

impl ArrayMap {
    fn compile(&self, element: &DataType, expr: &str, filter: &str) -> DfResult<Compiled> {
        let key = (element.clone(), expr.to_string(), filter.to_string());
        if let Some(c) = self.compiled.lock().get(&key) {
            return Ok(c.clone());
        }
        let schema = DFSchema::try_from(Schema::new(vec![Field::new(
            ELEMENT,
            element.clone(),
            true,
        )]))?;
        let ctx = SessionContext::new();
        let mapped = ctx.create_physical_expr(ctx.parse_sql_expr(expr, &schema)?, &schema)?;
        let ty = mapped.data_type(schema.as_arrow())?;
        let filter = match filter.is_empty() {
            true => None,
            false => Some(ctx.create_physical_expr(ctx.parse_sql_expr(filter, &schema)?, &schema)?),
        };
        let compiled = (mapped, filter, ty);
        self.compiled.lock().insert(key, compiled.clone());
        Ok(compiled)
    }
}

impl ScalarUDFImpl for ArrayMap {
    fn name(&self) -> &str {
        MAP_NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Err(DataFusionError::Internal(format!(
            "{MAP_NAME}: the type comes from return_field_from_args"
        )))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let element = element_type(args.arg_fields[0].data_type());
        let expr = literal(args.scalar_arguments.get(1).copied().flatten())?;
        let filter = literal(args.scalar_arguments.get(2).copied().flatten())?;
        let (_, _, ty) = self.compile(&element, &expr, &filter)?;
        Ok(Arc::new(Field::new(
            MAP_NAME,
            DataType::List(Arc::new(Field::new_list_field(ty, true))),
            true,
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let list_type = args.arg_fields[0].data_type().clone();
        let element = element_type(&list_type);
        let scalar_arg = |i: usize| match args.args.get(i) {
            Some(ColumnarValue::Scalar(s)) => literal(Some(s)),
            _ => literal(None),
        };
        let (mapped, filter, ty) = self.compile(&element, &scalar_arg(1)?, &scalar_arg(2)?)?;
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let rows = if scalar { 1 } else { args.number_rows };
        let input = args.args[0].to_array(rows)?;
        let input = match input.data_type() {
            DataType::List(_) => input,
            // A NULL array (untyped, or another list type) maps to `{}`.
            _ => datafusion::arrow::compute::cast(
                &datafusion::arrow::array::new_null_array(
                    &DataType::List(Arc::new(Field::new_list_field(element.clone(), true))),
                    rows,
                ),
                &DataType::List(Arc::new(Field::new_list_field(element.clone(), true))),
            )?,
        };
        let list = datafusion::common::cast::as_list_array(&input)?;
        let values: ArrayRef = list.values().clone();
        let schema = Arc::new(Schema::new(vec![Field::new(
            ELEMENT,
            element.clone(),
            true,
        )]));
        let batch = RecordBatch::try_new(schema.clone(), vec![values.clone()])?;
        let kept = match &filter {
            Some(f) => {
                let v = f.evaluate(&batch)?.into_array(values.len())?;
                Some(datafusion::common::cast::as_boolean_array(&v)?.clone())
            }
            None => None,
        };
        // Keep each element of a non-NULL array that the filter passes;
        // the expression is evaluated on those only (as PostgreSQL
        // evaluates the select list of rows WHERE kept).
        let offsets = list.value_offsets();
        let mut keep = vec![false; values.len()];
        let mut lengths = Vec::with_capacity(list.len());
        for row in 0..list.len() {
            let mut n = 0;
            if list.is_valid(row) {
                for (j, k) in keep
                    .iter_mut()
                    .enumerate()
                    .take(offsets[row + 1] as usize)
                    .skip(offsets[row] as usize)
                {
                    let pass = kept.as_ref().is_none_or(|b| b.is_valid(j) && b.value(j));
                    if pass {
                        *k = true;
                        n += 1;
                    }
                }
            }
            lengths.push(n);
        }
        let selected = datafusion::arrow::compute::filter(&values, &BooleanArray::from(keep))?;
        let batch = RecordBatch::try_new(schema, vec![selected.clone()])?;
        let out_values = mapped.evaluate(&batch)?.into_array(selected.len())?;
        let out = ListArray::try_new(
            Arc::new(Field::new_list_field(ty, true)),
            OffsetBuffer::from_lengths(lengths),
            out_values,
            None,
        )?;
        Ok(match scalar {
            true => ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?),
            false => ColumnarValue::Array(Arc::new(out)),
        })
    }
}
