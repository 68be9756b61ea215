//! `ALTER TABLE … ADD / DROP / RENAME CONSTRAINT`, and the constraint
//! bookkeeping other `ALTER TABLE` actions share.
//!
//! An added constraint is checked against the rows already there, in the
//! statement's transaction, reading the table a chunk at a time (as
//! PostgreSQL does, without `NOT VALID`, which is refused): a `UNIQUE`
//! builds its index (23505 on a duplicate), a `CHECK` evaluates over
//! every row (23514), a foreign key looks up every row's parent (23503).
//! A primary key is each row's address: it cannot be dropped, and adding
//! one to a table keyed by its hidden rowid (`pgbench -i` does, after
//! loading) rewrites every row under its new key and rebuilds the
//! indexes, in the statement's transaction, holding the rows in memory
//! meanwhile (old and new keys share one key span, so every old key must
//! go before any new one is written). Until schema leases exist, a
//! transaction still writing by the old descriptor when this commits
//! would add a row under a rowid key the new layout cannot read: run it
//! when the table's loader is done, as pgbench does.
//!
//! Dropping a `UNIQUE` constraint, or a column, that other tables' foreign
//! keys rely on needs `CASCADE`, which drops those foreign keys (2BP01
//! without), as in PostgreSQL.

use datafusion::sql::sqlparser::ast::{self, TableConstraint};
use shoal_kv::Txn;

use crate::catalog;
use crate::checks::CompiledChecks;
use crate::ddl::AfterCommit;
use crate::descriptor::{ForeignKey, TableDescriptor};
use crate::error::{Result, SqlError};
use crate::foreign_keys::values_of;
use crate::names;
use crate::session::Session;
use crate::types::Datum;

/// `ADD CONSTRAINT` (and a table constraint of `ADD COLUMN`).
pub(crate) fn add(
    session: &Session,
    txn: &Txn,
    desc: &mut TableDescriptor,
    constraint: &TableConstraint,
) -> Result<()> {
    match constraint {
        TableConstraint::Unique(unique) => {
            let positions = crate::ddl::unique_columns(unique, &desc.columns)?;
            add_unique(txn, desc, unique.name.as_ref().map(names::fold), positions)
        }
        TableConstraint::Check(check) => add_check(session, txn, desc, check.name.as_ref(), check),
        TableConstraint::ForeignKey(fk) => add_foreign_key(txn, desc, fk, &fk.columns),
        TableConstraint::PrimaryKey(pk) => add_primary_key(txn, desc, pk),
        other => Err(SqlError::NotSupported(format!("constraint {other}"))),
    }
}

/// A `UNIQUE` constraint over existing rows: its index, built.
pub(crate) fn add_unique(
    txn: &Txn,
    desc: &mut TableDescriptor,
    name: Option<String>,
    positions: Vec<usize>,
) -> Result<()> {
    if let Some(n) = &name
        && desc.has_constraint_named(n)
    {
        return Err(duplicate(desc, n));
    }
    let before = desc.indexes.len();
    crate::ddl::add_unique_constraints(txn, desc, vec![(name, positions)], false)?;
    for index in desc.indexes[before..].iter() {
        crate::index_ddl::build(txn, desc, index)?;
        catalog::put_index_name(txn, desc, &index.name)?;
    }
    Ok(())
}

fn duplicate(desc: &TableDescriptor, name: &str) -> SqlError {
    SqlError::DuplicateObject(format!(
        "constraint \"{name}\" for relation \"{}\" already exists",
        desc.name
    ))
}

/// A `CHECK` over existing rows: every row must pass it.
pub(crate) fn add_check(
    session: &Session,
    txn: &Txn,
    desc: &mut TableDescriptor,
    name: Option<&ast::Ident>,
    check: &ast::CheckConstraint,
) -> Result<()> {
    let declared =
        crate::checks::declare(session.context(), desc, name, &check.expr, check.enforced)?;
    let only = TableDescriptor {
        checks: vec![declared.clone()],
        ..desc.clone()
    };
    let compiled = CompiledChecks::compile(session.context(), &only)?;
    let violated = || SqlError::CheckViolation {
        message: format!(
            "check constraint \"{}\" of relation \"{}\" is violated by some row",
            declared.name, desc.name
        ),
        detail: String::new(),
    };
    const BATCH: usize = 1024;
    let mut rows: Vec<Vec<Datum>> = Vec::with_capacity(BATCH);
    let mut verdict = Ok(());
    let run = |rows: &mut Vec<Vec<Datum>>| -> Result<()> {
        let slices: Vec<&[Datum]> = rows.iter().map(Vec::as_slice).collect();
        let result = compiled.check(&only, &slices);
        rows.clear();
        match result {
            Err(SqlError::CheckViolation { .. }) => Err(violated()),
            other => other,
        }
    };
    crate::row::scan_table(txn, desc, |_, row| {
        rows.push(row);
        if rows.len() >= BATCH {
            verdict = run(&mut rows);
        }
        Ok(verdict.is_ok())
    })?;
    verdict?;
    run(&mut rows)?;
    desc.checks.push(declared);
    Ok(())
}

/// A foreign key over existing rows: every reference must find its parent.
pub(crate) fn add_foreign_key(
    txn: &Txn,
    desc: &mut TableDescriptor,
    fk: &ast::ForeignKeyConstraint,
    columns: &[ast::Ident],
) -> Result<()> {
    crate::foreign_keys::add(txn, desc, fk, columns)?;
    let Some(declared) = desc.foreign_keys.last().cloned() else {
        return Err(SqlError::Internal(
            "a declared foreign key is missing".into(),
        ));
    };
    let parent = if declared.parent == desc.id {
        std::sync::Arc::new(desc.clone())
    } else {
        crate::foreign_keys::table(txn, &std::sync::Arc::new(desc.clone()), declared.parent)?
    };
    let mut missing = None;
    crate::row::scan_table(txn, desc, |_, row| {
        if let Some(values) = values_of(&row, &declared.columns)
            && crate::foreign_keys::parent_key(txn, &parent, &declared, &values)?.is_none()
        {
            missing = Some(row);
            return Ok(false);
        }
        Ok(true)
    })?;
    if let Some(row) = missing {
        return Err(crate::foreign_keys::missing_parent(
            desc, &declared, &parent, &row,
        ));
    }
    Ok(())
}

/// `DROP CONSTRAINT [IF EXISTS] name [CASCADE]`.
pub(crate) fn drop(
    txn: &Txn,
    desc: &mut TableDescriptor,
    ident: &ast::Ident,
    if_exists: bool,
    cascade: bool,
    after: &mut Vec<AfterCommit>,
) -> Result<()> {
    let name = names::fold(ident);
    if name == desc.pkey_name() && !desc.has_hidden_rowid() {
        return Err(SqlError::NotSupported(
            "dropping a primary key (the key is each row's address)".into(),
        ));
    }
    if let Some(index) = desc
        .indexes
        .iter()
        .find(|i| i.constraint && i.name == name)
        .cloned()
    {
        let message = format!(
            "cannot drop constraint {name} on table {} because other objects depend on it",
            desc.name
        );
        drop_inbound(
            txn,
            desc,
            |fk| fk.parent_index == index.id,
            cascade,
            &message,
        )?;
        return remove_index(txn, desc, index.id, after);
    }
    if let Some(n) = desc.checks.iter().position(|c| c.name == name) {
        desc.checks.remove(n);
        return Ok(());
    }
    if let Some(fk) = desc.foreign_keys.iter().find(|f| f.name == name) {
        let id = fk.id;
        return remove_foreign_key(txn, desc, id);
    }
    if if_exists {
        return Ok(());
    }
    Err(SqlError::UndefinedObject(format!(
        "constraint \"{name}\" of relation \"{}\" does not exist",
        desc.name
    )))
}

/// `RENAME CONSTRAINT old TO new`.
pub(crate) fn rename(
    txn: &Txn,
    desc: &mut TableDescriptor,
    old: &ast::Ident,
    new: &ast::Ident,
) -> Result<()> {
    let (from, to) = (names::fold(old), names::fold(new));
    if desc.has_constraint_named(&to) {
        return Err(duplicate(desc, &to));
    }
    if let Some(check) = desc.checks.iter_mut().find(|c| c.name == from) {
        check.name = to;
        return Ok(());
    }
    if let Some(fk) = desc.foreign_keys.iter_mut().find(|f| f.name == from) {
        fk.name = to;
        return Ok(());
    }
    if let Some(n) = desc
        .indexes
        .iter()
        .position(|i| i.constraint && i.name == from)
    {
        if catalog::relation_exists(txn, &desc.database, &desc.schema, &to)? {
            return Err(SqlError::DuplicateTable(to));
        }
        catalog::delete_index_name(txn, desc, &from)?;
        desc.indexes[n].name = to.clone();
        catalog::put_index_name(txn, desc, &to)?;
        return Ok(());
    }
    if from == desc.pkey_name() {
        return Err(SqlError::NotSupported(
            "renaming a primary key constraint (named after its table)".into(),
        ));
    }
    Err(SqlError::UndefinedObject(format!(
        "constraint \"{from}\" of relation \"{}\" does not exist",
        desc.name
    )))
}

/// Takes a secondary index out of the descriptor; its entries are purged
/// after commit.
pub(crate) fn remove_index(
    txn: &Txn,
    desc: &mut TableDescriptor,
    id: u8,
    after: &mut Vec<AfterCommit>,
) -> Result<()> {
    let Some(n) = desc.indexes.iter().position(|i| i.id == id) else {
        return Ok(());
    };
    let index = desc.indexes.remove(n);
    catalog::delete_index_name(txn, desc, &index.name)?;
    after.push(AfterCommit::PurgeIndex(desc.id, id));
    Ok(())
}

/// Takes one of `desc`'s own foreign keys out, and `desc` out of its
/// parent's `referenced_by` when no other key references that parent.
pub(crate) fn remove_foreign_key(txn: &Txn, desc: &mut TableDescriptor, id: u8) -> Result<()> {
    let Some(n) = desc.foreign_keys.iter().position(|f| f.id == id) else {
        return Ok(());
    };
    let fk = desc.foreign_keys.remove(n);
    if desc.foreign_keys.iter().any(|f| f.parent == fk.parent) {
        return Ok(());
    }
    if fk.parent == desc.id {
        let own = desc.id;
        desc.referenced_by.retain(|c| *c != own);
        return Ok(());
    }
    if let Some(parent) = catalog::table_by_id(txn, fk.parent)? {
        let mut parent = (*parent).clone();
        parent.referenced_by.retain(|c| *c != desc.id);
        parent.version += 1;
        catalog::put_table(txn, &parent)?;
    }
    Ok(())
}

/// The foreign keys (of any table, `desc` included) that reference
/// `desc`'s columns at `positions`: dropped with `cascade`, else 2BP01
/// (`message` says what was being dropped).
pub(crate) fn drop_references_to_columns(
    txn: &Txn,
    desc: &mut TableDescriptor,
    positions: &[usize],
    cascade: bool,
    message: &str,
) -> Result<()> {
    drop_inbound(
        txn,
        desc,
        |fk| fk.parent_columns.iter().any(|c| positions.contains(c)),
        cascade,
        message,
    )
}

pub(crate) fn drop_inbound(
    txn: &Txn,
    desc: &mut TableDescriptor,
    hits: impl Fn(&ForeignKey) -> bool,
    cascade: bool,
    message: &str,
) -> Result<()> {
    let own = desc.id;
    for child_id in desc.referenced_by.clone() {
        if child_id == own {
            let doomed: Vec<(u8, String)> = desc
                .foreign_keys
                .iter()
                .filter(|fk| fk.parent == own && hits(fk))
                .map(|fk| (fk.id, fk.name.clone()))
                .collect();
            for (id, name) in doomed {
                if !cascade {
                    return Err(depends(message, &name, &desc.name));
                }
                remove_foreign_key(txn, desc, id)?;
            }
            continue;
        }
        let Some(child) = catalog::table_by_id(txn, child_id)? else {
            continue;
        };
        let doomed: Vec<&ForeignKey> = child
            .foreign_keys
            .iter()
            .filter(|fk| fk.parent == own && hits(fk))
            .collect();
        let Some(first) = doomed.first() else {
            continue;
        };
        if !cascade {
            return Err(depends(message, &first.name, &child.name));
        }
        let mut changed = (*child).clone();
        changed
            .foreign_keys
            .retain(|fk| !(fk.parent == own && hits(fk)));
        changed.version += 1;
        catalog::put_table(txn, &changed)?;
        if !changed.foreign_keys.iter().any(|fk| fk.parent == own) {
            desc.referenced_by.retain(|c| *c != child_id);
        }
    }
    Ok(())
}

fn depends(message: &str, fk: &str, child: &str) -> SqlError {
    SqlError::DependentObjects(format!(
        "{message}: constraint {fk} on table {child} depends on it"
    ))
}

/// `ADD PRIMARY KEY (cols)` on a table keyed by its hidden rowid: every
/// row moves to its new key (module docs). NULLs are 23502, duplicates
/// 23505, as PostgreSQL's index build reports them.
fn add_primary_key(
    txn: &Txn,
    desc: &mut TableDescriptor,
    pk: &ast::PrimaryKeyConstraint,
) -> Result<()> {
    if !desc.has_hidden_rowid() {
        return Err(SqlError::InvalidTableDefinition(format!(
            "multiple primary keys for table \"{}\" are not allowed",
            desc.name
        )));
    }
    if let Some(name) = &pk.name
        && names::fold(name) != desc.pkey_name()
    {
        return Err(SqlError::NotSupported(format!(
            "a primary key not named {} (it is named after its table)",
            desc.pkey_name()
        )));
    }
    if catalog::relation_exists(txn, &desc.database, &desc.schema, &desc.pkey_name())? {
        return Err(SqlError::DuplicateTable(desc.pkey_name()));
    }
    let mut positions = Vec::with_capacity(pk.columns.len());
    for ic in &pk.columns {
        let ast::Expr::Identifier(ident) = &ic.column.expr else {
            return Err(SqlError::NotSupported(format!(
                "expression {} in a primary key",
                ic.column.expr
            )));
        };
        let pos = crate::alter_table::existing_column(desc, ident)?;
        if !desc.columns[pos].ty.is_key_type() {
            return Err(SqlError::NotSupported(format!(
                "{} as a primary key column type",
                desc.columns[pos].ty.pg_name()
            )));
        }
        if positions.contains(&pos) {
            return Err(SqlError::DuplicateColumn(format!(
                "column \"{}\" appears twice in primary key constraint",
                desc.columns[pos].name
            )));
        }
        positions.push(pos);
    }
    let old = desc.clone();
    let rowid = old.primary_key[0];
    let mut new = old.clone();
    new.primary_key = positions.clone();
    for p in &positions {
        new.columns[*p].nullable = false;
    }
    let c = &mut new.columns[rowid];
    c.name = format!("________pg_dropped_{rowid}________");
    c.dropped = true;
    c.nullable = true;
    // Read everything, then move: old and new keys share one span.
    let mut rows: Vec<Vec<Datum>> = Vec::new();
    crate::row::scan_table(txn, &old, |_, row| {
        rows.push(row);
        Ok(true)
    })?;
    for p in &positions {
        if rows.iter().any(|r| r[*p].is_null()) {
            return Err(crate::alter_table::contains_nulls(
                desc,
                &desc.columns[*p].name,
            ));
        }
    }
    let mut writes: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::with_capacity(rows.len() * 2);
    for row in &rows {
        writes.push((crate::row::encode_key(&old, row)?, None));
        for index in &old.indexes {
            writes.push((crate::index_key::entry(&old, index, row)?.0, None));
        }
    }
    txn.write_all(writes)?;
    let mut seen = std::collections::HashSet::with_capacity(rows.len());
    let mut writes: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::with_capacity(rows.len());
    for row in &rows {
        let key = crate::row::encode_key(&new, row)?;
        if !seen.insert(key.clone()) {
            return Err(SqlError::UniqueIndexBuild {
                index: new.pkey_name(),
                detail: format!("Key {} is duplicated.", crate::dml::key_text(&new, row)),
            });
        }
        writes.push((key, Some(crate::row::encode_value(&new, row))));
    }
    txn.write_all(writes)?;
    for index in &new.indexes {
        crate::index_ddl::build(txn, &new, index)?;
    }
    *desc = new;
    Ok(())
}
