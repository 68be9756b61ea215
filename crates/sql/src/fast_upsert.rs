//! The prepared fast path of a one-row upsert, the key-value "put":
//!
//! ```sql
//! INSERT INTO t (k, v) VALUES ($1, $2)
//!   ON CONFLICT (k) DO UPDATE SET v = excluded.v     -- or DO NOTHING
//! ```
//!
//! The general path (`upsert.rs`) plans the `SET` expressions with
//! DataFusion for every execution; a put must not pay that. This module
//! recognizes the shapes whose answer needs no planner — the conflict
//! target is exactly the primary key, and every assignment is a
//! parameter or the proposed row's own value of the same column
//! (`c = excluded.c`) — and runs them as one point read and one write:
//!
//! 1. the proposed row is built from the parameters and checked (NOT NULL,
//!    lengths), as the general path checks it before looking for a
//!    conflict;
//! 2. the row under its primary key is read at the transaction's snapshot;
//! 3. absent: the row is inserted (with its index entries); present: `DO
//!    NOTHING` answers `INSERT 0 0`, `DO UPDATE` rewrites the row with the
//!    assigned columns and checks it again.
//!
//! Everything else — a `WHERE` on the update, expressions, a target that is
//! a unique index, `DO NOTHING` without a target on a table with unique
//! indexes (whose entries are arbiters too), `RETURNING` — takes the
//! general path, which gives the same answers more slowly. Tables with
//! checks or foreign keys never get here (`fastpath.rs`).

use datafusion::common::ScalarValue;
use datafusion::sql::sqlparser::ast::{self, Expr};
use shoal_kv::Txn;

use crate::descriptor::TableDescriptor;
use crate::dml::check_row;
use crate::error::Result;
use crate::names;
use crate::row::{decode_row, encode_key, encode_value};
use crate::session::Output;
use crate::statement_writes::StatementWrites;
use crate::types::Datum;

/// What an assignment of a fast `DO UPDATE` writes into a column.
#[derive(Debug, Clone, Copy)]
pub enum Assigned {
    /// A parameter (0-based index).
    Param(usize),
    /// The proposed row's value of the same column (`c = excluded.c`).
    Excluded,
}

/// What a fast upsert does on a conflict: nothing, or these assignments
/// (column position, value).
pub type OnConflict = Option<Vec<(usize, Assigned)>>;

/// The fast form of `on`, for an insert into `desc`; `None` when the
/// general path must run it.
pub fn analyze(desc: &TableDescriptor, on: &ast::OnInsert) -> Option<OnConflict> {
    let ast::OnInsert::OnConflict(clause) = on else {
        return None;
    };
    if desc.has_hidden_rowid() {
        return None;
    }
    let pk_is_the_only_arbiter = match &clause.conflict_target {
        Some(ast::ConflictTarget::Columns(columns)) => {
            let mut named = Vec::with_capacity(columns.len());
            for c in columns {
                named.push(desc.column_index(&names::fold(c))?);
            }
            named.sort_unstable();
            named.dedup();
            let mut key = desc.primary_key.clone();
            key.sort_unstable();
            // A unique index on exactly the key's columns is an arbiter
            // as well; leave that rare case to the general path.
            named == key
                && !desc.indexes.iter().any(|i| {
                    let mut cols: Vec<usize> = i.columns.iter().map(|c| c.column).collect();
                    cols.sort_unstable();
                    i.unique && cols == key
                })
        }
        // Without a target only DO NOTHING is valid (the general path
        // reports DO UPDATE's 42601), and every unique index is an arbiter.
        None => {
            matches!(clause.action, ast::OnConflictAction::DoNothing)
                && !desc.indexes.iter().any(|i| i.unique)
        }
        Some(ast::ConflictTarget::OnConstraint(_)) => false,
    };
    if !pk_is_the_only_arbiter {
        return None;
    }
    let update = match &clause.action {
        ast::OnConflictAction::DoNothing => return Some(None),
        ast::OnConflictAction::DoUpdate(update) => update,
    };
    if update.selection.is_some() {
        return None;
    }
    let mut sets: Vec<(usize, Assigned)> = Vec::with_capacity(update.assignments.len());
    for assignment in &update.assignments {
        let ast::AssignmentTarget::ColumnName(target) = &assignment.target else {
            return None;
        };
        let ident = target.0.last()?.as_ident()?;
        let pos = desc.column_index(&names::fold(ident))?;
        if desc.columns[pos].hidden
            || desc.primary_key.contains(&pos)
            || sets.iter().any(|(p, _)| *p == pos)
        {
            return None;
        }
        let value = match crate::fastpath::param_index(&assignment.value) {
            Some(p) => Assigned::Param(p),
            None if is_excluded(&assignment.value, &desc.columns[pos].name) => Assigned::Excluded,
            None => return None,
        };
        sets.push((pos, value));
    }
    Some(Some(sets))
}

/// Whether `e` is `excluded.<column>`.
fn is_excluded(e: &Expr, column: &str) -> bool {
    match e {
        Expr::CompoundIdentifier(parts) if parts.len() == 2 => {
            names::fold(&parts[0]) == "excluded" && names::fold(&parts[1]) == column
        }
        Expr::Nested(inner) => is_excluded(inner, column),
        _ => false,
    }
}

/// Runs a fast upsert of the proposed `row` (already built from the
/// parameters) into `desc`.
pub fn execute(
    txn: &Txn,
    desc: &std::sync::Arc<TableDescriptor>,
    row: Vec<Datum>,
    on_conflict: &OnConflict,
    params: &[ScalarValue],
) -> Result<Output> {
    check_row(desc, &row)?;
    let key = encode_key(desc, &row)?;
    let Some(stored) = txn.get(&key)? else {
        if desc.indexes.is_empty() {
            txn.put(key, encode_value(desc, &row))?;
        } else {
            let mut writes = StatementWrites::new();
            writes.insert_new(txn, desc, &row)?;
            writes.apply(txn)?;
        }
        return Ok(Output::count("INSERT", 1));
    };
    let Some(sets) = on_conflict else {
        return Ok(Output::count("INSERT", 0));
    };
    let old = decode_row(desc, &key, &stored)?;
    let mut new = old.clone();
    for (pos, value) in sets {
        new[*pos] = match value {
            Assigned::Param(p) => crate::fastpath::param_datum(params, *p, desc, *pos)?,
            Assigned::Excluded => row[*pos].clone(),
        };
    }
    check_row(desc, &new)?;
    if desc.indexes.is_empty() {
        txn.put(key, encode_value(desc, &new))?;
    } else {
        let mut writes = StatementWrites::new();
        writes.update_row(desc, &old, new)?;
        writes.apply(txn)?;
    }
    Ok(Output::count("INSERT", 1))
}
