//! Keeping a statement's checks and foreign keys, once its rows are
//! written.
//!
//! `StatementWrites::apply` writes a statement's rows and index entries
//! into the transaction, then hands the [`RowChange`]s of tables with
//! constraints here. [`enforce`] works in *levels*: the statement's own
//! changes are level one; the rows its `ON DELETE` / `ON UPDATE` actions
//! delete or change (`foreign_keys.rs`) are written as the next level, whose
//! changes are handled the same way, until a level changes nothing. Every
//! new row of every level meets its table's `CHECK` constraints before its
//! level's actions run.
//!
//! What must hold *at the end of the statement* is checked last, over the
//! transaction as every level left it: each new reference finds its
//! parent, and each parent key a `NO ACTION` / `RESTRICT` constraint
//! guards is either still held by some row or referenced by none. So a
//! statement that moves a key from one row to another, or deletes parents
//! and children together, passes, as in PostgreSQL. (`RESTRICT` is
//! checked like `NO ACTION`, at the end of the statement, where PostgreSQL
//! checks it at once.)
//!
//! A chain of cascades is bounded ([`MAX_LEVELS`]) so a pathological
//! schema fails with 54000 instead of running without end.
//!
//! **Deferred checks.** The end-of-statement checks of a `DEFERRABLE`
//! foreign key that is deferred (`INITIALLY DEFERRED`, or by `SET
//! CONSTRAINTS`) wait in the session's [`DeferredChecks`] until `COMMIT`
//! (or `SET CONSTRAINTS … IMMEDIATE`), then run over the transaction as it
//! is: a reference whose row was since deleted, rolled back to a savepoint
//! or changed is skipped (its new version queued its own check). The
//! actions (`CASCADE`, `SET NULL`) are never deferred, as in PostgreSQL.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use parking_lot::Mutex;

use datafusion::execution::context::SessionContext;
use shoal_kv::{Isolation, Txn};

use crate::checks::CompiledChecks;
use crate::descriptor::{ReferentialAction, TableDescriptor};
use crate::dml::check_row;
use crate::error::{Result, SqlError};
use crate::foreign_keys::{self, values_of};
use crate::row::encode_key;
use crate::statement_writes::{RowChange, StatementWrites};
use crate::types::Datum;

/// The deepest chain of cascading actions one statement may run.
pub const MAX_LEVELS: usize = 10_000;

/// A new reference that must find its parent: (child, foreign key
/// position, child row).
type Reference = (Arc<TableDescriptor>, usize, Vec<Datum>);

/// A parent key that must not stay referenced: (parent, child, foreign key
/// position in the child, old parent row).
type GuardedKey = (
    Arc<TableDescriptor>,
    Arc<TableDescriptor>,
    usize,
    Vec<Datum>,
);

/// Keeps the constraints of `level`'s changes and of everything they
/// cascade to (module docs).
pub(crate) fn enforce(
    txn: &Txn,
    context: Option<&SessionContext>,
    deferred: Option<&Mutex<DeferredChecks>>,
    mut level: Vec<RowChange>,
) -> Result<()> {
    let mut compiled: HashMap<(u32, u32), CompiledChecks> = HashMap::new();
    let mut references: Vec<Reference> = Vec::new();
    let mut guarded: Vec<GuardedKey> = Vec::new();
    let mut levels = 0;
    while !level.is_empty() {
        levels += 1;
        if levels > MAX_LEVELS {
            return Err(SqlError::ProgramLimitExceeded(format!(
                "foreign key actions cascade deeper than {MAX_LEVELS} levels"
            )));
        }
        check(context, &level, &mut compiled)?;
        let mut actions = ChildActions::default();
        for change in &level {
            note_references(change, &mut references)?;
            act_on_children(txn, change, &mut actions, &mut guarded)?;
        }
        let mut next = StatementWrites::new();
        actions.write_to(&mut next)?;
        level = next.write(txn)?;
    }
    if let Some(deferred) = deferred {
        let mut deferred = deferred.lock();
        references.retain(|(child, n, row)| {
            let later = deferred.defers(&child.foreign_keys[*n]);
            if later {
                deferred.references.push((child.clone(), *n, row.clone()));
            }
            !later
        });
        guarded.retain(|(parent, child, n, old)| {
            let later = deferred.defers(&child.foreign_keys[*n]);
            if later {
                deferred
                    .guarded
                    .push((parent.clone(), child.clone(), *n, old.clone()));
            }
            !later
        });
    }
    check_references(txn, references, guarded)
}

/// The end-of-statement checks: each reference finds its parent, each
/// guarded parent key is still held or referenced by nothing.
fn check_references(txn: &Txn, references: Vec<Reference>, guarded: Vec<GuardedKey>) -> Result<()> {
    for (child, n, row) in references {
        let fk = &child.foreign_keys[n];
        let parent = foreign_keys::table(txn, &child, fk.parent)?;
        let Some(values) = values_of(&row, &fk.columns) else {
            continue;
        };
        let Some((key, value)) = foreign_keys::parent_key(txn, &parent, fk, &values)? else {
            return Err(foreign_keys::missing_parent(&child, fk, &parent, &row));
        };
        // Snapshot reads prove nothing at commit: the parent's row is
        // written back unchanged (`foreign_keys.rs`, between transactions).
        if txn.isolation() != Isolation::Serializable {
            txn.put(key, value)?;
        }
    }
    for (parent, child, n, old) in guarded {
        let fk = &child.foreign_keys[n];
        let Some(values) = values_of(&old, &fk.parent_columns) else {
            continue;
        };
        if foreign_keys::parent_key(txn, &parent, fk, &values)?.is_some() {
            continue;
        }
        if !foreign_keys::referencing_rows(txn, &child, fk, &values, 1)?.is_empty() {
            return Err(foreign_keys::still_referenced(&parent, fk, &child, &old));
        }
    }
    Ok(())
}

/// The `CHECK` constraints of a level's new rows, table by table.
fn check(
    context: Option<&SessionContext>,
    level: &[RowChange],
    compiled: &mut HashMap<(u32, u32), CompiledChecks>,
) -> Result<()> {
    let mut by_table: Vec<(&Arc<TableDescriptor>, Vec<&[Datum]>)> = Vec::new();
    for change in level {
        let Some(new) = &change.new else { continue };
        if change.desc.checks.is_empty() {
            continue;
        }
        match by_table
            .iter_mut()
            .find(|(d, _)| d.id == change.desc.id && d.version == change.desc.version)
        {
            Some((_, rows)) => rows.push(new),
            None => by_table.push((&change.desc, vec![new])),
        }
    }
    for (desc, rows) in by_table {
        let checks = match compiled.entry((desc.id, desc.version)) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let Some(context) = context else {
                    return Err(SqlError::Internal(format!(
                        "the checks of \"{}\" need a session to compile in",
                        desc.name
                    )));
                };
                e.insert(CompiledChecks::compile(context, desc)?)
            }
        };
        checks.check(desc, &rows)?;
    }
    Ok(())
}

/// The references a new or changed row makes, to check at the end.
fn note_references(change: &RowChange, references: &mut Vec<Reference>) -> Result<()> {
    let Some(new) = &change.new else {
        return Ok(());
    };
    for (n, fk) in change.desc.foreign_keys.iter().enumerate() {
        let changed = match &change.old {
            None => true,
            Some(old) => foreign_keys::changed(&change.desc, &fk.columns, old, new)?,
        };
        if changed && values_of(new, &fk.columns).is_some() {
            references.push((change.desc.clone(), n, new.clone()));
        }
    }
    Ok(())
}

/// The changes one level's actions make to child rows, merged per row:
/// several actions can reach one row (two foreign keys to parents deleted
/// together), and each must see what the others made of it — a delete wins
/// over any change.
#[derive(Default)]
struct ChildActions {
    /// (table id, row key), in the order first reached.
    order: Vec<(u32, Vec<u8>)>,
    /// The row as read, and what it becomes (`None`: deleted).
    rows: HashMap<(u32, Vec<u8>), ChildRow>,
}

struct ChildRow {
    desc: Arc<TableDescriptor>,
    old: Vec<Datum>,
    new: Option<Vec<Datum>>,
}

impl ChildActions {
    /// Applies one action to a child row (as read from the transaction).
    fn act(
        &mut self,
        child: &Arc<TableDescriptor>,
        row: Vec<Datum>,
        act: impl FnOnce(&[Datum]) -> Option<Vec<Datum>>,
    ) -> Result<()> {
        let key = (child.id, encode_key(child, &row)?);
        match self.rows.entry(key) {
            Entry::Occupied(mut e) => {
                let pending = e.get_mut();
                if let Some(current) = &pending.new {
                    pending.new = act(current);
                }
            }
            Entry::Vacant(e) => {
                self.order.push(e.key().clone());
                let new = act(&row);
                e.insert(ChildRow {
                    desc: child.clone(),
                    old: row,
                    new,
                });
            }
        }
        Ok(())
    }

    /// Hands the merged changes to the next level's writes.
    fn write_to(mut self, next: &mut StatementWrites) -> Result<()> {
        for key in &self.order {
            let Some(ChildRow { desc, old, new }) = self.rows.remove(key) else {
                continue;
            };
            match new {
                None => next.delete_row(&desc, &old)?,
                Some(new) => {
                    check_row(&desc, &new)?;
                    next.update_row(&desc, &old, new)?;
                }
            }
        }
        Ok(())
    }
}

/// What a deleted parent row, or one whose referenced key changed, does to
/// its children: cascades and nulls go to `actions`; keys guarded by `NO
/// ACTION` / `RESTRICT` to `guarded`.
fn act_on_children(
    txn: &Txn,
    change: &RowChange,
    actions: &mut ChildActions,
    guarded: &mut Vec<GuardedKey>,
) -> Result<()> {
    let Some(old) = &change.old else {
        return Ok(());
    };
    let parent = &change.desc;
    for &child_id in &parent.referenced_by {
        let child = foreign_keys::table(txn, parent, child_id)?;
        for (n, fk) in child.foreign_keys.iter().enumerate() {
            if fk.parent != parent.id {
                continue;
            }
            let Some(values) = values_of(old, &fk.parent_columns) else {
                continue;
            };
            if let Some(new) = &change.new
                && !foreign_keys::changed(parent, &fk.parent_columns, old, new)?
            {
                continue;
            }
            let action = match change.new {
                Some(_) => fk.on_update,
                None => fk.on_delete,
            };
            if matches!(
                action,
                ReferentialAction::NoAction | ReferentialAction::Restrict
            ) {
                guarded.push((parent.clone(), child.clone(), n, old.clone()));
                continue;
            }
            for row in foreign_keys::referencing_rows(txn, &child, fk, &values, usize::MAX)? {
                actions.act(&child, row, |current| {
                    foreign_keys::act_on_child(fk, action, current, change.new.as_deref())
                })?;
            }
        }
    }
    Ok(())
}

/// A session's deferred foreign key checks and its `SET CONSTRAINTS`
/// choices, for the open transaction (module docs).
#[derive(Default)]
pub struct DeferredChecks {
    references: Vec<Reference>,
    guarded: Vec<GuardedKey>,
    /// `SET CONSTRAINTS ALL …`: deferred (`true`) or immediate.
    all: Option<bool>,
    /// `SET CONSTRAINTS name, … …`, by constraint name.
    named: HashMap<String, bool>,
}

impl DeferredChecks {
    /// Whether the checks of `fk` wait for the end of the transaction.
    fn defers(&self, fk: &crate::descriptor::ForeignKey) -> bool {
        fk.deferrable
            && self
                .named
                .get(&fk.name)
                .copied()
                .or(self.all)
                .unwrap_or(fk.initially_deferred)
    }

    /// `SET CONSTRAINTS {ALL | names} {DEFERRED | IMMEDIATE}`; making
    /// constraints immediate runs their waiting checks now.
    pub fn set(&mut self, txn: &Txn, names: Option<Vec<String>>, deferred: bool) -> Result<()> {
        match names {
            None => {
                self.all = Some(deferred);
                self.named.clear();
            }
            Some(names) => {
                for name in names {
                    self.named.insert(name, deferred);
                }
            }
        }
        if deferred {
            return Ok(());
        }
        self.run(txn, |fk, me| !me.defers(fk))
    }

    /// Runs every waiting check (at `COMMIT`).
    pub fn check(&mut self, txn: &Txn) -> Result<()> {
        self.run(txn, |_, _| true)
    }

    /// Runs the waiting checks of the foreign keys `now` picks.
    fn run(
        &mut self,
        txn: &Txn,
        now: impl Fn(&crate::descriptor::ForeignKey, &Self) -> bool,
    ) -> Result<()> {
        let (mut references, mut guarded) = (Vec::new(), Vec::new());
        for r in std::mem::take(&mut self.references) {
            if now(&r.0.foreign_keys[r.1], self) {
                references.push(r);
            } else {
                self.references.push(r);
            }
        }
        for g in std::mem::take(&mut self.guarded) {
            if now(&g.1.foreign_keys[g.2], self) {
                guarded.push(g);
            } else {
                self.guarded.push(g);
            }
        }
        // A reference whose row is gone or changed since is not checked:
        // its new version, if any, queued a check of its own.
        let mut current = Vec::with_capacity(references.len());
        for (child, n, row) in references {
            let key = encode_key(&child, &row)?;
            let Some(stored) = txn.get(&key)? else {
                continue;
            };
            let now = crate::row::decode_row(&child, &key, &stored)?;
            let fk = &child.foreign_keys[n];
            if foreign_keys::changed(&child, &fk.columns, &row, &now)? {
                continue;
            }
            current.push((child, n, now));
        }
        check_references(txn, current, guarded)
    }

    /// Forgets everything, at the end of a transaction.
    pub fn clear(&mut self) {
        *self = DeferredChecks::default();
    }
}
