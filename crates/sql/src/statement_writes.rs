//! The writes of one DML statement: rows and their index entries, checked
//! against each other and against the transaction's snapshot before any is
//! applied, so a failing statement leaves nothing behind and a statement
//! never collides with itself (see [`StatementWrites`]).
//!
//! Rows of tables with checks, foreign keys or references to them are
//! also remembered as [`RowChange`]s, which `apply` hands to
//! `statement_constraints.rs` once the writes are in the transaction.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::execution::context::SessionContext;
use parking_lot::Mutex;
use shoal_kv::Txn;

use crate::descriptor::{IndexDescriptor, TableDescriptor};
use crate::dml::key_text;
use crate::error::{Result, SqlError};
use crate::row::{encode_key, encode_value};
use crate::statement_constraints::DeferredChecks;
use crate::types::Datum;

fn unique_violation(desc: &TableDescriptor, row: &[Datum]) -> SqlError {
    SqlError::UniqueViolation {
        constraint: desc.pkey_name(),
        detail: format!("Key {} already exists.", key_text(desc, row)),
    }
}

fn index_violation(desc: &TableDescriptor, index: &IndexDescriptor, row: &[Datum]) -> SqlError {
    SqlError::UniqueViolation {
        constraint: index.name.clone(),
        detail: format!(
            "Key {} already exists.",
            crate::index_key::entry_text(desc, index, row)
        ),
    }
}

/// The writes of one statement, checked against each other and against the
/// transaction's snapshot before any is applied: rows and the entries of
/// every secondary index (`index_key.rs`).
///
/// Row deletions and an `UPDATE`'s old entries are taken out first; the
/// keys and unique entries an `UPDATE` puts are checked in [`Self::apply`],
/// after every old one is gone, so a statement that shifts values among its
/// rows (`SET u = u + 1`) does not collide with itself. An `INSERT` checks
/// each row as it comes, as PostgreSQL does.
pub(crate) struct StatementWrites {
    writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// Keys this statement deletes, then keys it puts.
    deleted: HashSet<Vec<u8>>,
    inserted: HashSet<Vec<u8>>,
    /// Rows an `UPDATE` gave a new primary key, inserted by `apply`.
    moved: Vec<(Arc<TableDescriptor>, Vec<Datum>)>,
    /// Index entries an `UPDATE` changed in place: (table, index position,
    /// new row), put by `apply`.
    entries: Vec<(Arc<TableDescriptor>, usize, Vec<Datum>)>,
    /// Row changes whose constraints `apply` enforces (module docs).
    changes: Vec<RowChange>,
    /// The session, to compile check constraints with.
    context: Option<SessionContext>,
    /// The session's deferred foreign key checks.
    deferred: Option<Arc<Mutex<DeferredChecks>>>,
}

/// One row a statement inserts (`old` is `None`), deletes (`new` is
/// `None`) or updates, in a table with constraints to keep.
pub(crate) struct RowChange {
    pub(crate) desc: Arc<TableDescriptor>,
    pub(crate) old: Option<Vec<Datum>>,
    pub(crate) new: Option<Vec<Datum>>,
}

impl StatementWrites {
    /// The writes of a statement on tables without checks or foreign
    /// keys (the prepared fast paths, which leave those to the general
    /// path).
    pub(crate) fn new() -> Self {
        StatementWrites {
            writes: Vec::new(),
            deleted: HashSet::new(),
            inserted: HashSet::new(),
            moved: Vec::new(),
            entries: Vec::new(),
            changes: Vec::new(),
            context: None,
            deferred: None,
        }
    }

    /// The writes of a statement of `session`.
    pub(crate) fn for_session(session: &crate::session::Session) -> Self {
        let mut writes = Self::new();
        writes.context = Some(session.context().clone());
        writes.deferred = Some(session.deferred_checks());
        writes
    }

    fn remember(
        &mut self,
        desc: &Arc<TableDescriptor>,
        old: Option<&[Datum]>,
        new: Option<&[Datum]>,
    ) {
        if desc.has_row_constraints() {
            self.changes.push(RowChange {
                desc: desc.clone(),
                old: old.map(<[Datum]>::to_vec),
                new: new.map(<[Datum]>::to_vec),
            });
        }
    }

    /// Deletes one key (a row of a table without indexes, checks or
    /// references to it).
    pub(crate) fn delete(&mut self, key: Vec<u8>) {
        self.deleted.insert(key.clone());
        self.writes.push((key, None));
    }

    /// Deletes a row (datums in column order) and its index entries.
    pub(crate) fn delete_row(&mut self, desc: &Arc<TableDescriptor>, row: &[Datum]) -> Result<()> {
        self.remember(desc, Some(row), None);
        self.remove_row(desc, row)
    }

    fn remove_row(&mut self, desc: &TableDescriptor, row: &[Datum]) -> Result<()> {
        self.delete(encode_key(desc, row)?);
        for index in &desc.indexes {
            self.delete(crate::index_key::entry(desc, index, row)?.0);
        }
        Ok(())
    }

    /// Replaces row `old` with `new`: in place when the primary key stays,
    /// else as a delete and an insert (checked by `apply`).
    pub(crate) fn update_row(
        &mut self,
        desc: &Arc<TableDescriptor>,
        old: &[Datum],
        new: Vec<Datum>,
    ) -> Result<()> {
        self.remember(desc, Some(old), Some(&new));
        let old_key = encode_key(desc, old)?;
        let new_key = encode_key(desc, &new)?;
        if old_key != new_key {
            self.remove_row(desc, old)?;
            self.moved.push((desc.clone(), new));
            return Ok(());
        }
        for (n, index) in desc.indexes.iter().enumerate() {
            let (before, _) = crate::index_key::entry(desc, index, old)?;
            let (after, _) = crate::index_key::entry(desc, index, &new)?;
            if before != after {
                self.delete(before);
                self.entries.push((desc.clone(), n, new.clone()));
            }
        }
        self.writes.push((new_key, Some(encode_value(desc, &new))));
        Ok(())
    }

    /// Whether this statement put `key`.
    pub(crate) fn put_here(&self, key: &[u8]) -> bool {
        self.inserted.contains(key)
    }

    /// Whether this statement deleted `key` (and has not put it again).
    pub(crate) fn deleted_here(&self, key: &[u8]) -> bool {
        self.deleted.contains(key) && !self.inserted.contains(key)
    }

    /// Whether `key` holds something, counting this statement's writes.
    fn taken(&self, txn: &Txn, key: &[u8]) -> Result<bool> {
        Ok(self.inserted.contains(key) || (!self.deleted.contains(key) && txn.get(key)?.is_some()))
    }

    /// Puts a row whose key must not exist yet (before the statement, or
    /// earlier in it), with its index entries.
    pub(crate) fn insert_new(
        &mut self,
        txn: &Txn,
        desc: &Arc<TableDescriptor>,
        row: &[Datum],
    ) -> Result<()> {
        self.remember(desc, None, Some(row));
        self.put_new(txn, desc, row)
    }

    fn put_new(&mut self, txn: &Txn, desc: &TableDescriptor, row: &[Datum]) -> Result<()> {
        let key = encode_key(desc, row)?;
        if self.taken(txn, &key)? {
            return Err(unique_violation(desc, row));
        }
        self.inserted.insert(key.clone());
        self.writes.push((key, Some(encode_value(desc, row))));
        for index in &desc.indexes {
            self.insert_entry(txn, desc, index, row)?;
        }
        Ok(())
    }

    fn insert_entry(
        &mut self,
        txn: &Txn,
        desc: &TableDescriptor,
        index: &IndexDescriptor,
        row: &[Datum],
    ) -> Result<()> {
        let (key, value) = crate::index_key::entry(desc, index, row)?;
        if crate::index_key::enforces_uniqueness(index, row) && self.taken(txn, &key)? {
            return Err(index_violation(desc, index, row));
        }
        self.inserted.insert(key.clone());
        self.writes.push((key, Some(value)));
        Ok(())
    }

    /// Checks and writes everything, then keeps the constraints of the
    /// rows changed (`statement_constraints.rs`).
    pub(crate) fn apply(self, txn: &Txn) -> Result<()> {
        let context = self.context.clone();
        let deferred = self.deferred.clone();
        let changes = self.write(txn)?;
        if changes.is_empty() {
            return Ok(());
        }
        crate::statement_constraints::enforce(txn, context.as_ref(), deferred.as_deref(), changes)
    }

    /// Checks and writes the rows and entries, returning the changes whose
    /// constraints are still to keep.
    pub(crate) fn write(mut self, txn: &Txn) -> Result<Vec<RowChange>> {
        for (desc, row) in std::mem::take(&mut self.moved) {
            self.put_new(txn, &desc, &row)?;
        }
        for (desc, n, row) in std::mem::take(&mut self.entries) {
            self.insert_entry(txn, &desc, &desc.indexes[n], &row)?;
        }
        if !self.writes.is_empty() {
            txn.write_all(self.writes)?;
        }
        Ok(self.changes)
    }
}
