//! `CHECK` constraints: declared, compiled, and evaluated over the rows a
//! statement writes.
//!
//! A constraint is stored in its table's descriptor as SQL text over the
//! table's column names (`CheckConstraint`). It is validated when declared
//! — it must plan against the table's columns, yield a boolean, and read
//! nothing but the row (no subqueries) — and named as PostgreSQL names it:
//! `<table>_<column>_check` when it reads one column, else `<table>_check`,
//! numbered when taken.
//!
//! A statement that writes rows of a table with checks compiles them once
//! ([`CompiledChecks`]) into DataFusion physical expressions over a batch
//! holding every column, and evaluates them over the new rows just before
//! they are applied (`statement_writes.rs`). As in PostgreSQL, a row passes
//! when each check is true *or NULL*; false is 23514 with the failing row
//! in the detail.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::execution::context::SessionContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::sql::sqlparser::ast::{self, Expr, Visit, Visitor};
use std::ops::ControlFlow;

use crate::descriptor::{CheckConstraint, TableDescriptor};
use crate::error::{Result, SqlError};
use crate::names;
use crate::types::{ColumnBuilder, Datum};

/// The schema checks are planned and evaluated against: every column of
/// the table, nullable (NOT NULL is checked on its own, before).
fn row_schema(desc: &TableDescriptor) -> SchemaRef {
    Arc::new(Schema::new(
        desc.columns
            .iter()
            .map(|c| c.ty.arrow_field(&c.name, true))
            .collect::<Vec<_>>(),
    ))
}

/// A table's checks, ready to evaluate.
pub(crate) struct CompiledChecks {
    schema: SchemaRef,
    exprs: Vec<(String, Arc<dyn PhysicalExpr>)>,
}

/// Plans one check expression against the table's columns.
fn plan(
    ctx: &SessionContext,
    desc: &TableDescriptor,
    schema: &SchemaRef,
    sql: &str,
) -> Result<Arc<dyn PhysicalExpr>> {
    let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
    let expr = ctx.parse_sql_expr(sql, &df_schema)?;
    let physical = ctx.create_physical_expr(expr, &df_schema)?;
    let ty = physical.data_type(schema)?;
    if ty != DataType::Boolean && ty != DataType::Null {
        return Err(SqlError::DatatypeMismatch(format!(
            "argument of CHECK constraint on table \"{}\" must be type boolean",
            desc.name
        )));
    }
    Ok(physical)
}

impl CompiledChecks {
    pub(crate) fn compile(ctx: &SessionContext, desc: &TableDescriptor) -> Result<CompiledChecks> {
        let schema = row_schema(desc);
        let mut exprs = Vec::with_capacity(desc.checks.len());
        for check in &desc.checks {
            exprs.push((check.name.clone(), plan(ctx, desc, &schema, &check.expr)?));
        }
        Ok(CompiledChecks { schema, exprs })
    }

    /// Fails with 23514 on the first row that makes a check false.
    pub(crate) fn check(&self, desc: &TableDescriptor, rows: &[&[Datum]]) -> Result<()> {
        if self.exprs.is_empty() || rows.is_empty() {
            return Ok(());
        }
        let mut arrays = Vec::with_capacity(desc.columns.len());
        for (i, column) in desc.columns.iter().enumerate() {
            let mut builder = ColumnBuilder::new(&column.ty, rows.len());
            for row in rows {
                builder.append(&row[i])?;
            }
            arrays.push(builder.finish());
        }
        let batch = RecordBatch::try_new_with_options(
            self.schema.clone(),
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(rows.len())),
        )
        .map_err(|e| SqlError::Internal(e.to_string()))?;
        for (name, expr) in &self.exprs {
            let verdicts = expr.evaluate(&batch)?.into_array(rows.len())?;
            if verdicts.data_type() == &DataType::Null {
                continue;
            }
            let verdicts = verdicts.as_boolean();
            for (r, row) in rows.iter().enumerate() {
                if verdicts.is_valid(r) && !verdicts.value(r) {
                    return Err(SqlError::CheckViolation {
                        message: format!(
                            "new row for relation \"{}\" violates check constraint \"{name}\"",
                            desc.name
                        ),
                        detail: failing_row(desc, row),
                    });
                }
            }
        }
        Ok(())
    }
}

/// `Failing row contains (…).`, as PostgreSQL words it.
pub(crate) fn failing_row(desc: &TableDescriptor, row: &[Datum]) -> String {
    let values: Vec<String> = desc
        .visible_columns()
        .into_iter()
        .map(|i| crate::dml::display_datum(&row[i]))
        .collect();
    format!("Failing row contains ({}).", values.join(", "))
}

/// Finds the columns an expression reads, and anything a check may not
/// hold.
#[derive(Default)]
struct Reads {
    columns: Vec<String>,
    subquery: bool,
}

impl Visitor for Reads {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        match expr {
            Expr::Identifier(ident) => {
                let name = names::fold(ident);
                if !self.columns.contains(&name) {
                    self.columns.push(name);
                }
            }
            Expr::CompoundIdentifier(parts) => {
                if let Some(last) = parts.last() {
                    let name = names::fold(last);
                    if !self.columns.contains(&name) {
                        self.columns.push(name);
                    }
                }
            }
            Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => {
                self.subquery = true;
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// Positions of the table columns a check reads, in order of first use
/// (`pg_constraint.conkey`).
pub(crate) fn columns_read(desc: &TableDescriptor, check: &CheckConstraint) -> Vec<usize> {
    let Ok(expr) = crate::dml::parse_expr(&check.expr) else {
        return Vec::new();
    };
    let mut reads = Reads::default();
    let _ = expr.visit(&mut reads);
    reads
        .columns
        .iter()
        .filter_map(|c| desc.column_index(c))
        .collect()
}

/// `pg_get_constraintdef` of a check: its expression parenthesized as
/// PostgreSQL prints it.
pub(crate) fn definition(check: &CheckConstraint) -> String {
    format!("CHECK ({})", parenthesized(&check.expr))
}

/// The expression as PostgreSQL deparses a check's: in parentheses unless
/// a lone column or already enclosed.
pub(crate) fn parenthesized(expr: &str) -> String {
    let bare = expr.chars().all(|c| c.is_alphanumeric() || c == '_');
    if bare || (expr.starts_with('(') && expr.ends_with(')') && balanced_inside(expr)) {
        expr.to_string()
    } else {
        format!("({expr})")
    }
}

/// Whether the parentheses opening and closing `expr` pair with each other.
fn balanced_inside(expr: &str) -> bool {
    let mut depth = 0i32;
    for (i, c) in expr.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 && i + 1 < expr.len() {
                    return false;
                }
            }
            _ => {}
        }
    }
    depth == 0
}

/// A declared `CHECK`, validated against the table (which must already
/// hold its columns), named and given an id; the caller adds it to the
/// descriptor.
pub(crate) fn declare(
    ctx: &SessionContext,
    desc: &mut TableDescriptor,
    name: Option<&ast::Ident>,
    expr: &Expr,
    enforced: Option<bool>,
) -> Result<CheckConstraint> {
    if enforced == Some(false) {
        return Err(SqlError::NotSupported(
            "NOT ENFORCED CHECK constraints".into(),
        ));
    }
    let mut reads = Reads::default();
    let _ = expr.visit(&mut reads);
    if reads.subquery {
        return Err(SqlError::NotSupported(
            "cannot use subquery in check constraint".into(),
        ));
    }
    let sql = expr.to_string();
    plan(ctx, desc, &row_schema(desc), &sql)?;
    let name = match name {
        Some(n) => {
            let n = names::fold(n);
            if desc.has_constraint_named(&n) {
                return Err(SqlError::DuplicateObject(format!(
                    "constraint \"{n}\" for relation \"{}\" already exists",
                    desc.name
                )));
            }
            n
        }
        None => {
            let base = match reads.columns.as_slice() {
                [one] if desc.column_index(one).is_some() => {
                    format!("{}_{one}_check", desc.name)
                }
                _ => format!("{}_check", desc.name),
            };
            let mut candidate = base.clone();
            let mut n = 0;
            while desc.has_constraint_named(&candidate) {
                n += 1;
                candidate = format!("{base}{n}");
            }
            candidate
        }
    };
    Ok(CheckConstraint {
        id: desc.allocate_object_id()?,
        name,
        expr: sql,
    })
}
