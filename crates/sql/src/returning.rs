//! `RETURNING`: the rows a data change wrote (or deleted), as a query
//! result.
//!
//! The same per-statement table serves `ON CONFLICT DO UPDATE`
//! (`upsert.rs`, [`plan_over_rows`]).
//!
//! A DML statement collects the full rows it inserted, the new rows it
//! updated, or the rows it deleted (`dml.rs`). Those rows become a table of
//! this statement only — the table's visible columns, registered under
//! [`ROWS_TABLE`] in a per-session in-memory catalog — and the `RETURNING`
//! list is planned as `SELECT <list> FROM that AS <alias>`, through the
//! same parse and planning steps as any query. So every expression, cast,
//! function and PostgreSQL output name a `SELECT` knows works in
//! `RETURNING` too, and `RETURNING *` is the visible columns. The command
//! tag stays the statement's (`INSERT 0 n`, `UPDATE n`, `DELETE n`).
//!
//! The rows are held in memory until the statement ends, as PostgreSQL
//! holds the rows it returns.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::MemTable;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast;

use crate::descriptor::TableDescriptor;
use crate::error::{Result, SqlError};
use crate::names::quote;
use crate::session::{Output, Session};
use crate::types::{ColumnBuilder, Datum};

/// The catalog holding the rows of the statement being run.
pub const CATALOG: &str = "shoal_statement";
/// Its one schema.
pub const SCHEMA: &str = "rows";
/// The table the returned rows are read from.
pub const ROWS_TABLE: &str = "returned";

/// The plan of a `RETURNING` list over `rows` (full rows in column order).
async fn plan(
    session: &Session,
    desc: &TableDescriptor,
    alias: &str,
    rows: &[Vec<Datum>],
    items: &[ast::SelectItem],
) -> Result<LogicalPlan> {
    let visible = desc.visible_columns();
    let columns: Vec<_> = visible
        .iter()
        .map(|p| (desc.columns[*p].name.clone(), desc.columns[*p].ty.clone()))
        .collect();
    let rows: Vec<Vec<Datum>> = rows
        .iter()
        .map(|row| visible.iter().map(|p| row[*p].clone()).collect())
        .collect();
    let list: Vec<String> = items.iter().map(ToString::to_string).collect();
    plan_over_rows(session, &columns, &rows, |table| {
        format!(
            "SELECT {} FROM {table} AS {}",
            list.join(", "),
            quote(alias)
        )
    })
    .await
}

/// Plans `query(table)` where `table` names a table of this statement
/// holding `rows` (datums in the order of `columns`: name and type).
pub(crate) async fn plan_over_rows(
    session: &Session,
    columns: &[(String, crate::types::SqlType)],
    rows: &[Vec<Datum>],
    query: impl FnOnce(&str) -> String,
) -> Result<LogicalPlan> {
    let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(
        columns
            .iter()
            .map(|(name, ty)| ty.arrow_field(name, true))
            .collect::<Vec<_>>(),
    ));
    let mut builders: Vec<ColumnBuilder> = columns
        .iter()
        .map(|(_, ty)| ColumnBuilder::new(ty, rows.len()))
        .collect();
    for row in rows {
        for (b, d) in builders.iter_mut().zip(row) {
            b.append(d)?;
        }
    }
    let arrays = builders.into_iter().map(ColumnBuilder::finish).collect();
    let batch = RecordBatch::try_new_with_options(
        schema.clone(),
        arrays,
        &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(rows.len())),
    )
    .map_err(|e| SqlError::Internal(e.to_string()))?;
    let table = MemTable::try_new(schema, vec![vec![batch]])?;
    let schema_provider = session
        .context()
        .catalog(CATALOG)
        .and_then(|c| c.schema(SCHEMA))
        .ok_or_else(|| SqlError::Internal("no catalog for a statement's rows".into()))?;
    schema_provider.register_table(ROWS_TABLE.to_string(), Arc::new(table))?;
    let sql = query(&format!("{CATALOG}.{SCHEMA}.{ROWS_TABLE}"));
    let planned = session.plan_sql(&sql).await;
    schema_provider.deregister_table(ROWS_TABLE)?;
    planned
}

/// The result of `RETURNING items` over the rows a statement wrote, with
/// the statement's command tag.
pub async fn output(
    session: &Session,
    desc: &TableDescriptor,
    alias: &str,
    rows: &[Vec<Datum>],
    items: &[ast::SelectItem],
    params: Vec<ScalarValue>,
    tag: &str,
) -> Result<Output> {
    let plan = plan(session, desc, alias, rows, items).await?;
    match session.run_query(plan, params).await? {
        Output::Rows { schema, batches } => Ok(Output::Returned {
            tag: tag.to_string(),
            schema,
            batches,
        }),
        other => Ok(other),
    }
}

/// The columns `RETURNING items` produces (for Describe).
pub async fn schema(
    session: &Session,
    desc: &TableDescriptor,
    alias: &str,
    items: &[ast::SelectItem],
) -> Result<SchemaRef> {
    let plan = plan(session, desc, alias, &[], items).await?;
    Ok(crate::prepared::output_schema(&plan))
}
