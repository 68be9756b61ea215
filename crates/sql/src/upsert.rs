//! `INSERT … ON CONFLICT [target] DO NOTHING | DO UPDATE SET … [WHERE …]`.
//!
//! The *arbiters* are the unique indexes a proposed row is checked
//! against: those the target names (its columns must be exactly a primary
//! key's or a unique index's, else 42P10), or every one (primary key and
//! unique indexes) for `DO NOTHING` without a target. Each proposed row is
//! looked up under each arbiter — the primary key with one get, a unique
//! index through its entry — at the statement's snapshot and among the
//! statement's own writes:
//!
//! - no conflict: the row is inserted as usual;
//! - `DO NOTHING`: the row is skipped;
//! - `DO UPDATE`: the existing row is updated. The `SET` and `WHERE`
//!   expressions see the existing row under the table's name (or alias)
//!   and the proposed one as `excluded`; they are planned over a table of
//!   this statement holding both (`returning::plan_over_rows`), where
//!   `excluded.c` reads a column named `excluded$c`. A row the statement
//!   itself inserted or already updated cannot be updated again (21000),
//!   as in PostgreSQL.
//!
//! Concurrency follows from the write rules: two transactions upserting
//! one key write one key, so one of them waits (READ COMMITTED) or fails
//! with 40001 and is retried; PostgreSQL's "insert or update, atomically"
//! holds because the loser never commits a stale decision.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast;
use shoal_kv::Txn;

use crate::descriptor::TableDescriptor;
use crate::error::{Result, SqlError};
use crate::index_key;
use crate::names::{self, quote};
use crate::row::{decode_row, encode_key};
use crate::session::Session;
use crate::statement_writes::StatementWrites;
use crate::types::{Datum, SqlType};

/// Where a proposed row may conflict: the primary key, or a unique index
/// (position in `desc.indexes`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Arbiter {
    Primary,
    Index(usize),
}

/// The `ON CONFLICT` clause of one statement, resolved against its table.
pub struct Upsert<'a> {
    arbiters: Vec<Arbiter>,
    update: Option<&'a ast::DoUpdate>,
    /// Primary keys of the rows `DO UPDATE` will change.
    claimed: HashSet<Vec<u8>>,
    /// (existing row, proposed row) pairs for `DO UPDATE`.
    pending: Vec<(Vec<Datum>, Vec<Datum>)>,
}

/// What to do with one proposed row.
pub enum Decision {
    Insert,
    Skip,
    /// Deferred to [`Upsert::finish`].
    Update,
}

impl<'a> Upsert<'a> {
    /// The clause of `insert`, if it has one.
    pub fn new(desc: &TableDescriptor, on: Option<&'a ast::OnInsert>) -> Result<Option<Self>> {
        let Some(on) = on else { return Ok(None) };
        let ast::OnInsert::OnConflict(clause) = on else {
            return Err(SqlError::NotSupported("ON DUPLICATE KEY UPDATE".into()));
        };
        let update = match &clause.action {
            ast::OnConflictAction::DoNothing => None,
            ast::OnConflictAction::DoUpdate(u) => Some(u),
        };
        let arbiters = match &clause.conflict_target {
            None if update.is_some() => {
                return Err(SqlError::Syntax(
                    "ON CONFLICT DO UPDATE requires inference specification or constraint name"
                        .into(),
                ));
            }
            None => std::iter::once(Arbiter::Primary)
                .filter(|_| !desc.has_hidden_rowid())
                .chain(
                    desc.indexes
                        .iter()
                        .enumerate()
                        .filter(|(_, i)| i.unique)
                        .map(|(n, _)| Arbiter::Index(n)),
                )
                .collect(),
            Some(ast::ConflictTarget::Columns(columns)) => {
                let mut wanted: Vec<usize> = Vec::with_capacity(columns.len());
                for c in columns {
                    let name = names::fold(c);
                    let pos = desc.column_index(&name).ok_or_else(|| {
                        SqlError::UndefinedColumn(format!("column \"{name}\" does not exist"))
                    })?;
                    wanted.push(pos);
                }
                wanted.sort_unstable();
                let same = |cols: &mut Vec<usize>| {
                    cols.sort_unstable();
                    *cols == wanted
                };
                let mut found = Vec::new();
                if !desc.has_hidden_rowid() && same(&mut desc.primary_key.clone()) {
                    found.push(Arbiter::Primary);
                }
                for (n, index) in desc.indexes.iter().enumerate() {
                    if index.unique && same(&mut index.columns.iter().map(|c| c.column).collect()) {
                        found.push(Arbiter::Index(n));
                    }
                }
                if found.is_empty() {
                    return Err(no_matching_constraint());
                }
                found
            }
            Some(ast::ConflictTarget::OnConstraint(name)) => {
                let (_, name) = names::split(name, &desc.database)?;
                if name == desc.pkey_name() && !desc.has_hidden_rowid() {
                    vec![Arbiter::Primary]
                } else {
                    match desc.indexes.iter().position(|i| i.name == name && i.unique) {
                        Some(n) => vec![Arbiter::Index(n)],
                        None => {
                            return Err(SqlError::UndefinedObject(format!(
                                "constraint \"{name}\" for table \"{}\" does not exist",
                                desc.name
                            )));
                        }
                    }
                }
            }
        };
        Ok(Some(Upsert {
            arbiters,
            update,
            claimed: HashSet::new(),
            pending: Vec::new(),
        }))
    }

    /// Decides the fate of one proposed row (module docs).
    pub(crate) fn decide(
        &mut self,
        txn: &Txn,
        desc: &TableDescriptor,
        writes: &StatementWrites,
        row: &[Datum],
    ) -> Result<Decision> {
        for arbiter in &self.arbiters {
            let Some(found) = conflict(txn, desc, writes, *arbiter, row)? else {
                continue;
            };
            if self.update.is_none() {
                return Ok(Decision::Skip);
            }
            let existing = match found {
                Found::Here => return Err(affected_twice()),
                Found::Existing(existing) => existing,
            };
            if !self.claimed.insert(encode_key(desc, &existing)?) {
                return Err(affected_twice());
            }
            self.pending.push((existing, row.to_vec()));
            return Ok(Decision::Update);
        }
        Ok(Decision::Insert)
    }

    /// Runs `DO UPDATE` on the conflicting rows; returns the rows updated
    /// (new values), in proposal order.
    pub(crate) async fn finish(
        self,
        session: &Session,
        desc: &std::sync::Arc<TableDescriptor>,
        alias: &str,
        writes: &mut StatementWrites,
        params: Vec<datafusion::common::ScalarValue>,
    ) -> Result<Vec<Vec<Datum>>> {
        let Some(update) = self.update else {
            return Ok(Vec::new());
        };
        if self.pending.is_empty() {
            return Ok(Vec::new());
        }
        let visible = desc.visible_columns();
        let mut assigned = Vec::with_capacity(update.assignments.len());
        let mut exprs = Vec::with_capacity(update.assignments.len());
        for a in &update.assignments {
            let ast::AssignmentTarget::ColumnName(col) = &a.target else {
                return Err(SqlError::NotSupported(
                    "SET (a, b) = … in ON CONFLICT".into(),
                ));
            };
            let (pos, name) = crate::dml::target_column(desc, col)?;
            if assigned.contains(&pos) {
                return Err(SqlError::DuplicateColumn(format!(
                    "multiple assignments to same column \"{name}\""
                )));
            }
            assigned.push(pos);
            exprs.push(excluded_columns(a.value.clone()).to_string());
        }
        let condition = update
            .selection
            .clone()
            .map_or_else(|| "TRUE".to_string(), |e| excluded_columns(e).to_string());
        // Existing columns, then `excluded$` ones, then the proposal's number.
        let mut columns: Vec<(String, SqlType)> = visible
            .iter()
            .map(|p| (desc.columns[*p].name.clone(), desc.columns[*p].ty.clone()))
            .collect();
        columns.extend(visible.iter().map(|p| {
            (
                format!("excluded${}", desc.columns[*p].name),
                desc.columns[*p].ty.clone(),
            )
        }));
        columns.push(("shoal$n".to_string(), SqlType::BigInt));
        let rows: Vec<Vec<Datum>> = self
            .pending
            .iter()
            .enumerate()
            .map(|(n, (existing, proposed))| {
                visible
                    .iter()
                    .map(|p| existing[*p].clone())
                    .chain(visible.iter().map(|p| proposed[*p].clone()))
                    .chain(std::iter::once(Datum::Int(n as i64)))
                    .collect()
            })
            .collect();
        let plan = crate::returning::plan_over_rows(session, &columns, &rows, |table| {
            format!(
                "SELECT {}, ({condition}) IS TRUE, \"shoal$n\" FROM {table} AS {}",
                exprs.join(", "),
                quote(alias)
            )
        })
        .await?;
        let batches = session.collect(plan, params).await?;
        let mut updated = Vec::new();
        let width = assigned.len();
        for batch in &batches {
            let mut casted = HashMap::new();
            for r in 0..batch.num_rows() {
                let values = crate::dml::batch_datums(batch, 0, desc, &assigned, &mut casted, r)?;
                let keep = matches!(
                    crate::types::datum_from_array(batch.column(width), r, &SqlType::Boolean)?,
                    Datum::Bool(true)
                );
                let n = match crate::types::datum_from_array(
                    batch.column(width + 1),
                    r,
                    &SqlType::BigInt,
                )? {
                    Datum::Int(n) => n as usize,
                    _ => return Err(SqlError::Internal("upsert row number".into())),
                };
                if !keep {
                    continue;
                }
                let Some((existing, _)) = self.pending.get(n) else {
                    return Err(SqlError::Internal("upsert row out of range".into()));
                };
                let mut new = existing.clone();
                for (pos, v) in assigned.iter().zip(values) {
                    new[*pos] = v;
                }
                crate::dml::check_row(desc, &new)?;
                writes.update_row(desc, existing, new.clone())?;
                updated.push((n, new));
            }
        }
        updated.sort_by_key(|(n, _)| *n);
        Ok(updated.into_iter().map(|(_, row)| row).collect())
    }
}

/// Where a proposed row's conflict is.
enum Found {
    /// With a row this statement wrote.
    Here,
    /// With a row already there (full datums).
    Existing(Vec<Datum>),
}

/// The row `row` conflicts with under one arbiter, if any.
fn conflict(
    txn: &Txn,
    desc: &TableDescriptor,
    writes: &StatementWrites,
    arbiter: Arbiter,
    row: &[Datum],
) -> Result<Option<Found>> {
    let row_key = match arbiter {
        Arbiter::Primary => encode_key(desc, row)?,
        Arbiter::Index(n) => {
            let index = &desc.indexes[n];
            if !index_key::enforces_uniqueness(index, row) {
                return Ok(None);
            }
            let (entry, _) = index_key::entry(desc, index, row)?;
            if writes.put_here(&entry) {
                return Ok(Some(Found::Here));
            }
            if writes.deleted_here(&entry) {
                return Ok(None);
            }
            match txn.get(&entry)? {
                Some(primary) => index_key::row_key(desc, &primary),
                None => return Ok(None),
            }
        }
    };
    if writes.put_here(&row_key) {
        return Ok(Some(Found::Here));
    }
    if writes.deleted_here(&row_key) {
        return Ok(None);
    }
    match txn.get(&row_key)? {
        Some(value) => Ok(Some(Found::Existing(decode_row(desc, &row_key, &value)?))),
        None => Ok(None),
    }
}

/// `excluded.c` rewritten to the column `excluded$c` of the statement's
/// table (module docs).
fn excluded_columns(mut expr: ast::Expr) -> ast::Expr {
    let _ = ast::visit_expressions_mut(&mut expr, |e| {
        if let ast::Expr::CompoundIdentifier(parts) = e
            && let [table, column] = parts.as_slice()
            && table.value.eq_ignore_ascii_case("excluded")
        {
            let name = format!("excluded${}", names::fold(column));
            *e = ast::Expr::Identifier(ast::Ident::with_quote('"', name));
        }
        ControlFlow::<()>::Continue(())
    });
    expr
}

fn no_matching_constraint() -> SqlError {
    SqlError::InvalidColumnReference(
        "there is no unique or exclusion constraint matching the ON CONFLICT specification".into(),
    )
}

fn affected_twice() -> SqlError {
    SqlError::CardinalityViolation(
        "ON CONFLICT DO UPDATE command cannot affect row a second time".into(),
    )
}
