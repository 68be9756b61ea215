//! Fast paths for prepared point reads, inserts, upserts and updates.
//!
//! Key-value traffic — `SELECT … FROM t WHERE pk = $1`,
//! `INSERT INTO t VALUES ($1, $2, …)` (also with `ON CONFLICT (pk) DO
//! UPDATE SET v = excluded.v`, the put: `fast_upsert.rs`) and `UPDATE t SET
//! c = $1, n = n + $2 WHERE pk = $3`, prepared once and executed many
//! times — must not pay for
//! SQL planning on every execution. When a statement is prepared,
//! [`analyze`] recognizes these shapes and records a [`FastPlan`]: which
//! table (by id and descriptor version), which parameter feeds which key or
//! column, which columns to return or how to compute them. Executing the
//! plan is then one KV get (plus the descriptor check), one KV put, or
//! both, with no DataFusion involvement. An update computes only what is
//! exact without a planner: a parameter, or an integer column plus or
//! minus an integer parameter or constant (overflow is 22003, as on the
//! general path); anything else takes the general path.
//!
//! A fast plan is only a shortcut: it must give exactly what the general
//! path gives. If the table's descriptor changed since preparation (DDL),
//! the plan is not used and the statement runs the general way; nor is it
//! when the session's `search_path` differs from the one the plan resolved
//! its table under. An unqualified name gets a fast plan only while the
//! path has one existing schema, so which table it names cannot depend on
//! the order of the path.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatchOptions;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::sql::sqlparser::ast::{self, Expr, SelectItem, SetExpr, Statement};
use shoal_kv::Txn;

use crate::catalog;
use crate::descriptor::TableDescriptor;
use crate::dml::{StatementWrites, check_row, next_rowid};
use crate::error::{Result, SqlError};
use crate::names;
use crate::names::Scope;
use crate::row::{decode_row, encode_key_values, encode_value};
use crate::session::Output;
use crate::types::{ColumnBuilder, Datum, datum_from_array};

#[derive(Debug, Clone)]
pub enum FastPlan {
    /// `SELECT cols FROM t WHERE pk1 = $a AND pk2 = $b …`
    PointSelect {
        table_id: u32,
        version: u32,
        /// Parameter index (0-based) for each primary key column, in key order.
        key_params: Vec<usize>,
        /// Column positions returned.
        output: Vec<usize>,
        schema: SchemaRef,
    },
    /// `INSERT INTO t [(cols)] VALUES ($1, …)` — one row, parameters only.
    PointInsert {
        table_id: u32,
        version: u32,
        /// (column position, parameter index) for each target column.
        targets: Vec<(usize, usize)>,
    },
    /// `INSERT INTO t [(cols)] VALUES ($1, …) ON CONFLICT (pk) DO NOTHING |
    /// DO UPDATE SET c = excluded.c | $n, …` (`fast_upsert.rs`).
    PointUpsert {
        table_id: u32,
        version: u32,
        /// (column position, parameter index) for each target column.
        targets: Vec<(usize, usize)>,
        on_conflict: crate::fast_upsert::OnConflict,
    },
    /// `UPDATE t SET c = … [, …] WHERE pk1 = $a AND …` — one row by key.
    PointUpdate {
        table_id: u32,
        version: u32,
        /// Parameter index for each primary key column, in key order.
        key_params: Vec<usize>,
        /// (column position, new value) for each assignment.
        sets: Vec<(usize, NewValue)>,
    },
}

/// What a fast update assigns to a column.
#[derive(Debug, Clone)]
pub enum NewValue {
    /// A parameter (0-based index).
    Param(usize),
    /// Integer column `column` plus `operand` (subtraction negated).
    Add {
        column: usize,
        operand: Operand,
        negate: bool,
    },
}

/// The integer added to a column in a fast update.
#[derive(Debug, Clone, Copy)]
pub enum Operand {
    Param(usize),
    Const(i64),
}

/// Parameter index of `$n` (0-based).
pub(crate) fn param_index(e: &Expr) -> Option<usize> {
    match e {
        Expr::Value(v) => match &v.value {
            ast::Value::Placeholder(p) => p
                .trim_start_matches('$')
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .map(|n| n - 1),
            _ => None,
        },
        Expr::Nested(inner) => param_index(inner),
        _ => None,
    }
}

/// The column a plain column reference names, if it refers to `alias`.
fn column_ref(e: &Expr, alias: &str) -> Option<String> {
    match e {
        Expr::Identifier(i) => Some(names::fold(i)),
        Expr::CompoundIdentifier(parts) if parts.len() == 2 && names::fold(&parts[0]) == alias => {
            Some(names::fold(&parts[1]))
        }
        Expr::Nested(inner) => column_ref(inner, alias),
        _ => None,
    }
}

fn conjuncts<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
    match e {
        Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::And,
            right,
        } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        Expr::Nested(inner) => conjuncts(inner, out),
        other => out.push(other),
    }
}

/// Recognizes a fast-path statement. `None` means "use the general path".
pub fn analyze(txn: &Txn, scope: &Scope, stmt: &Statement) -> Result<Option<FastPlan>> {
    match stmt {
        Statement::Query(q) => point_select(txn, scope, q),
        Statement::Insert(ins) => point_insert(txn, scope, ins),
        Statement::Update(update) => point_update(txn, scope, update),
        _ => Ok(None),
    }
}

/// The table a plain `FROM t [AS a]` (or `UPDATE t [AS a]`) names, and the
/// name the statement calls it by; `None` for anything else or a table
/// that does not exist (the general path reports it).
fn plain_table(
    txn: &Txn,
    scope: &Scope,
    relation: &ast::TableFactor,
) -> Result<Option<(Arc<TableDescriptor>, String)>> {
    let ast::TableFactor::Table {
        name,
        alias,
        args: None,
        ..
    } = relation
    else {
        return Ok(None);
    };
    let Some(desc) = named_table(txn, scope, name)? else {
        return Ok(None);
    };
    let alias = alias
        .as_ref()
        .map(|a| names::fold(&a.name))
        .unwrap_or_else(|| desc.name.clone());
    Ok(Some((desc, alias)))
}

/// The table a name certainly denotes: a qualified name's, or an
/// unqualified one's when the search path has a single schema that
/// exists (with more, which one holds the name can change after the plan
/// is made, so the general path resolves it each time).
fn named_table(
    txn: &Txn,
    scope: &Scope,
    name: &ast::ObjectName,
) -> Result<Option<Arc<TableDescriptor>>> {
    let Ok((schema, table)) = names::split(name, &scope.database) else {
        return Ok(None);
    };
    let schema = match schema {
        Some(schema) => schema,
        None => match scope.existing(txn)?.as_slice() {
            [only] => only.clone(),
            _ => return Ok(None),
        },
    };
    catalog::table_by_name(txn, &scope.database, &schema, &table)
}

/// Whether a column of type `ty` holds an integer fast updates can add to.
fn is_integer(ty: &crate::types::SqlType) -> bool {
    use crate::types::SqlType;
    matches!(ty, SqlType::SmallInt | SqlType::Integer | SqlType::BigInt)
}

fn point_update(txn: &Txn, scope: &Scope, update: &ast::Update) -> Result<Option<FastPlan>> {
    if update.from.is_some() || update.returning.is_some() || update.or.is_some() {
        return Ok(None);
    }
    let table = &update.table;
    if !table.joins.is_empty() {
        return Ok(None);
    }
    let Some((desc, alias)) = plain_table(txn, scope, &table.relation)? else {
        return Ok(None);
    };
    let Some(selection) = &update.selection else {
        return Ok(None);
    };
    let Some(key_params) = key_equalities(&desc, &alias, selection) else {
        return Ok(None);
    };
    let column_of = |e: &Expr| column_ref(e, &alias).and_then(|c| desc.column_index(&c));
    let mut sets: Vec<(usize, NewValue)> = Vec::new();
    for assignment in &update.assignments {
        let ast::AssignmentTarget::ColumnName(target) = &assignment.target else {
            return Ok(None);
        };
        let Some(ident) = target.0.last().and_then(|p| p.as_ident()) else {
            return Ok(None);
        };
        let Some(pos) = desc.column_index(&names::fold(ident)) else {
            return Ok(None);
        };
        if desc.columns[pos].hidden
            || desc.primary_key.contains(&pos)
            || sets.iter().any(|(p, _)| *p == pos)
        {
            return Ok(None);
        }
        let value = if let Some(p) = param_index(&assignment.value) {
            NewValue::Param(p)
        } else {
            let Expr::BinaryOp { left, op, right } = strip_nested(&assignment.value) else {
                return Ok(None);
            };
            let negate = match op {
                ast::BinaryOperator::Plus => false,
                ast::BinaryOperator::Minus => true,
                _ => return Ok(None),
            };
            let Some(column) = column_of(left) else {
                return Ok(None);
            };
            let operand = match (param_index(right), integer_literal(right)) {
                (Some(p), _) => Operand::Param(p),
                (None, Some(n)) => Operand::Const(n),
                _ => return Ok(None),
            };
            if !is_integer(&desc.columns[column].ty) || !is_integer(&desc.columns[pos].ty) {
                return Ok(None);
            }
            NewValue::Add {
                column,
                operand,
                negate,
            }
        };
        sets.push((pos, value));
    }
    Ok(Some(FastPlan::PointUpdate {
        table_id: desc.id,
        version: desc.version,
        key_params,
        sets,
    }))
}

fn strip_nested(e: &Expr) -> &Expr {
    match e {
        Expr::Nested(inner) => strip_nested(inner),
        other => other,
    }
}

/// The value of a plain integer literal.
fn integer_literal(e: &Expr) -> Option<i64> {
    match strip_nested(e) {
        Expr::Value(v) => match &v.value {
            ast::Value::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

/// The parameter feeding each primary key column when `selection` is
/// exactly `pk_i = $n` for every key column (ANDed), else `None`.
fn key_equalities(desc: &TableDescriptor, alias: &str, selection: &Expr) -> Option<Vec<usize>> {
    let mut parts = Vec::new();
    conjuncts(selection, &mut parts);
    let mut key_params: Vec<Option<usize>> = vec![None; desc.primary_key.len()];
    for part in parts {
        let Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::Eq,
            right,
        } = part
        else {
            return None;
        };
        let (col, param) = match (
            column_ref(left, alias),
            param_index(right),
            column_ref(right, alias),
            param_index(left),
        ) {
            (Some(c), Some(p), _, _) => (c, p),
            (_, _, Some(c), Some(p)) => (c, p),
            _ => return None,
        };
        let pos = desc.column_index(&col)?;
        let k = desc.primary_key.iter().position(|p| *p == pos)?;
        if key_params[k].replace(param).is_some() {
            return None;
        }
    }
    key_params.into_iter().collect()
}

fn point_select(txn: &Txn, scope: &Scope, q: &ast::Query) -> Result<Option<FastPlan>> {
    if q.with.is_some()
        || q.order_by.is_some()
        || q.limit_clause.is_some()
        || q.fetch.is_some()
        || !q.locks.is_empty()
    {
        return Ok(None);
    }
    let SetExpr::Select(sel) = q.body.as_ref() else {
        return Ok(None);
    };
    if sel.distinct.is_some()
        || sel.having.is_some()
        || sel.from.len() != 1
        || !sel.from[0].joins.is_empty()
    {
        return Ok(None);
    }
    if !matches!(&sel.group_by, ast::GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty())
    {
        return Ok(None);
    }
    let Some((desc, alias)) = plain_table(txn, scope, &sel.from[0].relation)? else {
        return Ok(None);
    };
    // Projection: plain visible columns or `*`.
    let mut output = Vec::new();
    for item in &sel.projection {
        match item {
            SelectItem::Wildcard(opts)
                if opts.opt_exclude.is_none()
                    && opts.opt_except.is_none()
                    && opts.opt_replace.is_none()
                    && opts.opt_rename.is_none() =>
            {
                output.extend(desc.visible_columns())
            }
            SelectItem::UnnamedExpr(e) => {
                match column_ref(e, &alias).and_then(|c| desc.column_index(&c)) {
                    Some(p) if !desc.columns[p].hidden => output.push(p),
                    _ => return Ok(None),
                }
            }
            _ => return Ok(None),
        }
    }
    let mut seen = std::collections::HashSet::new();
    if output.iter().any(|p| !seen.insert(*p)) {
        return Ok(None); // duplicate names take the general path's naming
    }
    // WHERE: exactly `pk_i = $n` for every key column.
    let Some(key_params) = sel
        .selection
        .as_ref()
        .and_then(|selection| key_equalities(&desc, &alias, selection))
    else {
        return Ok(None);
    };
    let schema = desc.arrow_schema(&output);
    Ok(Some(FastPlan::PointSelect {
        table_id: desc.id,
        version: desc.version,
        key_params,
        output,
        schema,
    }))
}

fn point_insert(txn: &Txn, scope: &Scope, ins: &ast::Insert) -> Result<Option<FastPlan>> {
    if ins.returning.is_some() || ins.or.is_some() {
        return Ok(None);
    }
    let ast::TableObject::TableName(name) = &ins.table else {
        return Ok(None);
    };
    let Some(source) = &ins.source else {
        return Ok(None);
    };
    let SetExpr::Values(values) = source.body.as_ref() else {
        return Ok(None);
    };
    if values.rows.len() != 1 || source.order_by.is_some() || source.limit_clause.is_some() {
        return Ok(None);
    }
    let Some(desc) = named_table(txn, scope, name)? else {
        return Ok(None);
    };
    let columns: Vec<usize> = if ins.columns.is_empty() {
        desc.visible_columns()
    } else {
        let mut cols = Vec::new();
        for c in &ins.columns {
            let Some(ident) = c.0.last().and_then(|p| p.as_ident()) else {
                return Ok(None);
            };
            match desc.column_index(&names::fold(ident)) {
                Some(p) if !desc.columns[p].hidden && !cols.contains(&p) => cols.push(p),
                _ => return Ok(None),
            }
        }
        cols
    };
    let row = &values.rows[0].content;
    if row.len() != columns.len() {
        return Ok(None);
    }
    // Defaults are computed by the general path.
    if desc
        .visible_columns()
        .iter()
        .any(|p| !columns.contains(p) && desc.columns[*p].default.is_some())
    {
        return Ok(None);
    }
    let mut targets = Vec::with_capacity(row.len());
    for (e, pos) in row.iter().zip(&columns) {
        let Some(p) = param_index(e) else {
            return Ok(None);
        };
        targets.push((*pos, p));
    }
    Ok(Some(match &ins.on {
        None => FastPlan::PointInsert {
            table_id: desc.id,
            version: desc.version,
            targets,
        },
        // An alias names the existing row in `DO UPDATE`; the general path
        // resolves it.
        Some(_) if ins.table_alias.is_some() => return Ok(None),
        Some(on) => match crate::fast_upsert::analyze(&desc, on) {
            Some(on_conflict) => FastPlan::PointUpsert {
                table_id: desc.id,
                version: desc.version,
                targets,
                on_conflict,
            },
            None => return Ok(None),
        },
    }))
}

/// The key a plan's key parameters name; `None` if one is NULL (`pk =
/// NULL` matches nothing).
fn key_of(
    desc: &TableDescriptor,
    key_params: &[usize],
    params: &[ScalarValue],
) -> Result<Option<Vec<u8>>> {
    let key_values = key_params
        .iter()
        .zip(&desc.primary_key)
        .map(|(p, pos)| param_datum(params, *p, desc, *pos))
        .collect::<Result<Vec<_>>>()?;
    if key_values.iter().any(Datum::is_null) {
        return Ok(None);
    }
    encode_key_values(desc, &key_values).map(Some)
}

/// The new value of an assignment of a fast update, on `row` as read.
fn new_value(
    value: &NewValue,
    row: &[Datum],
    desc: &TableDescriptor,
    pos: usize,
    params: &[ScalarValue],
) -> Result<Datum> {
    use crate::types::SqlType;
    let (column, operand, negate) = match value {
        NewValue::Param(p) => return param_datum(params, *p, desc, pos),
        NewValue::Add {
            column,
            operand,
            negate,
        } => (*column, *operand, *negate),
    };
    let ty = &desc.columns[pos].ty;
    let out_of_range = || SqlError::NumericOutOfRange(format!("{} out of range", ty.pg_name()));
    let base = match row.get(column) {
        Some(Datum::Int(n)) => *n,
        _ => return Ok(Datum::Null),
    };
    let operand = match operand {
        Operand::Const(n) => n,
        Operand::Param(p) => match params.get(p).map(|v| v.cast_to(&DataType::Int64)) {
            Some(Ok(ScalarValue::Int64(Some(n)))) => n,
            Some(Ok(ScalarValue::Int64(None))) | None => return Ok(Datum::Null),
            Some(_) => return Err(out_of_range()),
        },
    };
    let result = if negate {
        base.checked_sub(operand)
    } else {
        base.checked_add(operand)
    }
    .ok_or_else(out_of_range)?;
    let fits = match ty {
        SqlType::SmallInt => i16::try_from(result).is_ok(),
        SqlType::Integer => i32::try_from(result).is_ok(),
        _ => true,
    };
    if !fits {
        return Err(out_of_range());
    }
    Ok(Datum::Int(result))
}

/// The descriptor a plan was made for, if it is still current.
fn current(txn: &Txn, table_id: u32, version: u32) -> Result<Option<Arc<TableDescriptor>>> {
    Ok(catalog::table_by_id(txn, table_id)?.filter(|d| d.version == version))
}

/// [`current`], for a write: a table with checks or foreign keys, or
/// referenced by some, takes the general path, which keeps them.
fn current_for_write(
    txn: &Txn,
    table_id: u32,
    version: u32,
) -> Result<Option<Arc<TableDescriptor>>> {
    Ok(current(txn, table_id, version)?.filter(|d| !d.has_row_constraints()))
}

/// A parameter value as a datum of the column's type (with the column's checks).
pub(crate) fn param_datum(
    params: &[ScalarValue],
    idx: usize,
    desc: &TableDescriptor,
    pos: usize,
) -> Result<Datum> {
    let ty = &desc.columns[pos].ty;
    let value = params.get(idx).cloned().unwrap_or(ScalarValue::Null);
    if value.is_null() {
        return Ok(Datum::Null);
    }
    let target = ty.arrow_type();
    let value = if value.data_type() == target {
        value
    } else if matches!(target, DataType::Utf8) {
        value.cast_to(&DataType::Utf8)?
    } else {
        value.cast_to(&target).map_err(|_| {
            SqlError::InvalidText(format!("invalid input for type {}: {value}", ty.pg_name()))
        })?
    };
    let array = value.to_array()?;
    datum_from_array(&array, 0, ty)
}

/// The row an insert proposes: each target column from its parameter,
/// NULL elsewhere.
fn proposed_row(
    desc: &TableDescriptor,
    targets: &[(usize, usize)],
    params: &[ScalarValue],
) -> Result<Vec<Datum>> {
    let mut row = vec![Datum::Null; desc.columns.len()];
    for (pos, p) in targets {
        row[*pos] = param_datum(params, *p, desc, *pos)?;
    }
    Ok(row)
}

/// Runs a fast plan. `Ok(None)`: the plan no longer applies.
pub fn execute(plan: &FastPlan, txn: &Txn, params: &[ScalarValue]) -> Result<Option<Output>> {
    match plan {
        FastPlan::PointSelect {
            table_id,
            version,
            key_params,
            output,
            schema,
        } => {
            let Some(desc) = current(txn, *table_id, *version)? else {
                return Ok(None);
            };
            let mut builders: Vec<ColumnBuilder> = output
                .iter()
                .map(|p| ColumnBuilder::new(&desc.columns[*p].ty, 1))
                .collect();
            let mut rows = 0;
            if let Some(key) = key_of(&desc, key_params, params)?
                && let Some(value) = txn.get(&key)?
            {
                let row = decode_row(&desc, &key, &value)?;
                for (b, p) in builders.iter_mut().zip(output) {
                    b.append(&row[*p])?;
                }
                rows = 1;
            }
            let arrays = builders.into_iter().map(ColumnBuilder::finish).collect();
            let batch = RecordBatch::try_new_with_options(
                schema.clone(),
                arrays,
                &RecordBatchOptions::new().with_row_count(Some(rows)),
            )
            .map_err(|e| SqlError::Internal(e.to_string()))?;
            Ok(Some(Output::Rows {
                schema: schema.clone(),
                batches: vec![batch],
            }))
        }
        FastPlan::PointInsert {
            table_id,
            version,
            targets,
        } => {
            let Some(desc) = current_for_write(txn, *table_id, *version)? else {
                return Ok(None);
            };
            let mut row = proposed_row(&desc, targets, params)?;
            if desc.has_hidden_rowid() {
                row[desc.primary_key[0]] = Datum::Int(next_rowid());
            }
            check_row(&desc, &row)?;
            let mut writes = StatementWrites::new();
            writes.insert_new(txn, &desc, &row)?;
            writes.apply(txn)?;
            Ok(Some(Output::count("INSERT", 1)))
        }
        FastPlan::PointUpsert {
            table_id,
            version,
            targets,
            on_conflict,
        } => {
            let Some(desc) = current_for_write(txn, *table_id, *version)? else {
                return Ok(None);
            };
            let row = proposed_row(&desc, targets, params)?;
            crate::fast_upsert::execute(txn, &desc, row, on_conflict, params).map(Some)
        }
        FastPlan::PointUpdate {
            table_id,
            version,
            key_params,
            sets,
        } => {
            let Some(desc) = current_for_write(txn, *table_id, *version)? else {
                return Ok(None);
            };
            let Some(key) = key_of(&desc, key_params, params)? else {
                return Ok(Some(Output::count("UPDATE", 0)));
            };
            let Some(value) = txn.get(&key)? else {
                return Ok(Some(Output::count("UPDATE", 0)));
            };
            let old = decode_row(&desc, &key, &value)?;
            // Every assignment sees the row as it was, as in SQL.
            let mut row = old.clone();
            for (pos, value) in sets {
                row[*pos] = new_value(value, &old, &desc, *pos, params)?;
            }
            check_row(&desc, &row)?;
            if desc.indexes.is_empty() {
                txn.put(key, encode_value(&desc, &row))?;
            } else {
                let mut writes = StatementWrites::new();
                writes.update_row(&desc, &old, row)?;
                writes.apply(txn)?;
            }
            Ok(Some(Output::count("UPDATE", 1)))
        }
    }
}
