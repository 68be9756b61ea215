//! `CREATE INDEX`, `DROP INDEX`, and the indexes behind `UNIQUE`
//! constraints.
//!
//! An index is added to its table's descriptor and built in the statement's
//! own transaction: the table's rows are read a chunk at a time at the
//! transaction's snapshot and an entry is written for each
//! (`index_key.rs`). The descriptor change and every entry commit together
//! or not at all, so no query ever sees a half-built index, and a
//! `CREATE INDEX` inside `BEGIN … ROLLBACK` leaves nothing.
//!
//! **Concurrent writers.** The build reads the whole table; under
//! SERIALIZABLE (the default) a transaction committing a row there before
//! the build commits fails the build's proof, and the statement is retried
//! (40001 inside a block). Not stopped: any transaction that read the
//! table's *old* descriptor and commits after the build — a statement
//! running during it, or a block begun before it that writes afterwards
//! (it keeps its snapshot, and the old descriptor with it). Catalog reads
//! are not proven (`catalog.rs`), so such a writer commits rows without
//! entries and unchecked against the new unique index. PostgreSQL's
//! `CREATE INDEX` takes a lock that waits for those transactions and
//! keeps writers out; Shoal needs schema leases (every node acknowledging
//! a descriptor version before the next step, as F1 and CockroachDB do)
//! to do the same across nodes. Until then: build indexes while no
//! transaction writes the table, as migrations do. This is written in
//! `docs/architecture.md`.
//!
//! The build's writes are buffered in its transaction until commit, like
//! any statement's: memory grows with the table (about the size of its
//! primary keys). Building in batches of their own transactions needs the
//! same schema leases and is left for them.
//!
//! `DROP INDEX` takes the index out of the descriptor in the statement's
//! transaction; its entries are purged once that commits
//! ([`AfterCommit::PurgeIndex`]). Index ids are never reused, so a leftover
//! entry can never be read as a newer index's.

use std::collections::HashSet;

use datafusion::sql::sqlparser::ast::{self, ObjectName};
use shoal_kv::Txn;

use crate::catalog;
use crate::ddl::AfterCommit;
use crate::descriptor::{IndexColumn, IndexDescriptor, TableDescriptor};
use crate::error::{Result, SqlError};
use crate::index_key;
use crate::names;
use crate::session::Output;

pub fn create_index(txn: &Txn, scope: &names::Scope, create: &ast::CreateIndex) -> Result<Output> {
    if create.predicate.is_some() {
        return Err(SqlError::NotSupported(
            "partial indexes (CREATE INDEX … WHERE)".into(),
        ));
    }
    if create.nulls_distinct == Some(false) {
        return Err(SqlError::NotSupported("NULLS NOT DISTINCT".into()));
    }
    if !create.with.is_empty() || !create.index_options.is_empty() {
        return Err(SqlError::NotSupported("index storage parameters".into()));
    }
    if let Some(using) = &create.using
        && !using.to_string().eq_ignore_ascii_case("btree")
    {
        return Err(SqlError::NotSupported(format!(
            "index access method {using}"
        )));
    }
    let database = scope.database.as_str();
    let (schema, table) = scope.resolve(txn, &create.table_name)?;
    let desc = catalog::table_by_name(txn, database, &schema, &table)?
        .ok_or(SqlError::UndefinedTable(table))?;
    let columns = create
        .columns
        .iter()
        .map(|c| index_column(&desc, c))
        .collect::<Result<Vec<_>>>()?;
    let include = create
        .include
        .iter()
        .map(|ident| column_position(&desc, &names::fold(ident)))
        .collect::<Result<Vec<_>>>()?;
    let name = match &create.name {
        Some(name) => {
            // An index lives in its table's schema.
            let (_, name) = names::split(name, database)?;
            if catalog::relation_exists(txn, database, &desc.schema, &name)? {
                if create.if_not_exists {
                    return Ok(Output::command("CREATE INDEX"));
                }
                return Err(SqlError::DuplicateTable(name));
            }
            name
        }
        None => free_name(txn, &desc, &columns, "idx")?,
    };
    let mut desc = (*desc).clone();
    let index = add_index(&mut desc, name, columns, include, create.unique, false)?;
    build(txn, &desc, &index)?;
    desc.version += 1;
    catalog::put_table(txn, &desc)?;
    catalog::put_index_name(txn, &desc, &index.name)?;
    Ok(Output::command("CREATE INDEX"))
}

/// A column of an index, from its declaration.
fn index_column(desc: &TableDescriptor, c: &ast::IndexColumn) -> Result<IndexColumn> {
    let name = match &c.column.expr {
        ast::Expr::Identifier(ident) => names::fold(ident),
        other => {
            return Err(SqlError::NotSupported(format!(
                "expression {other} in an index"
            )));
        }
    };
    // Index keys compare as bytes: the default btree classes and the
    // `*_pattern_ops` classes (byte-wise, for `LIKE 'prefix%'`, which
    // Django declares for indexed text) order entries the same way.
    if let Some(class) = &c.operator_class {
        let class = class.to_string().to_lowercase();
        let class = class.strip_prefix("pg_catalog.").unwrap_or(&class);
        let known = [
            "text_pattern_ops",
            "varchar_pattern_ops",
            "bpchar_pattern_ops",
        ]
        .contains(&class)
            || (class.ends_with("_ops") && crate::pg_catalog::is_default_opclass(class));
        if !known {
            return Err(SqlError::NotSupported(format!(
                "index operator class {class}"
            )));
        }
    }
    if c.column.options.nulls_first.is_some() {
        return Err(SqlError::NotSupported(
            "NULLS FIRST / LAST in an index".into(),
        ));
    }
    let column = column_position(desc, &name)?;
    let ty = &desc.columns[column].ty;
    if !ty.is_key_type() {
        return Err(SqlError::NotSupported(format!(
            "{} as an index column type",
            ty.pg_name()
        )));
    }
    Ok(IndexColumn {
        column,
        descending: c.column.options.asc == Some(false),
    })
}

fn column_position(desc: &TableDescriptor, name: &str) -> Result<usize> {
    desc.column_index(name)
        .filter(|p| !desc.columns[*p].hidden)
        .ok_or_else(|| SqlError::UndefinedColumn(format!("column \"{name}\" does not exist")))
}

/// PostgreSQL's name for an unnamed index: table, columns and a suffix
/// (`idx`, or `key` for a UNIQUE constraint), numbered until it is free.
pub(crate) fn free_name(
    txn: &Txn,
    desc: &TableDescriptor,
    columns: &[IndexColumn],
    suffix: &str,
) -> Result<String> {
    let mut base = desc.name.clone();
    for c in columns {
        base.push('_');
        base.push_str(&desc.columns[c.column].name);
    }
    base.push('_');
    base.push_str(suffix);
    let taken_here = |n: &str| desc.index_named(n).is_some() || n == desc.pkey_name();
    for n in 0..1000 {
        let candidate = if n == 0 {
            base.clone()
        } else {
            format!("{base}{n}")
        };
        if !taken_here(&candidate)
            && !catalog::relation_exists(txn, &desc.database, &desc.schema, &candidate)?
        {
            return Ok(candidate);
        }
    }
    Err(SqlError::DuplicateTable(base))
}

/// Adds an index to a descriptor (the caller stores the descriptor and the
/// name, and builds the entries if the table has rows).
pub(crate) fn add_index(
    desc: &mut TableDescriptor,
    name: String,
    columns: Vec<IndexColumn>,
    include: Vec<usize>,
    unique: bool,
    constraint: bool,
) -> Result<IndexDescriptor> {
    let mut seen = HashSet::new();
    for c in &columns {
        if !seen.insert(c.column) {
            // PostgreSQL allows a column twice; nothing gains from it here.
            return Err(SqlError::NotSupported(format!(
                "column \"{}\" twice in one index",
                desc.columns[c.column].name
            )));
        }
    }
    let index = IndexDescriptor {
        id: desc.allocate_object_id()?,
        name,
        columns,
        include,
        unique,
        constraint,
    };
    desc.indexes.push(index.clone());
    Ok(index)
}

/// Writes an entry for every row of the table (module docs).
pub(crate) fn build(txn: &Txn, desc: &TableDescriptor, index: &IndexDescriptor) -> Result<()> {
    crate::row::scan_table(txn, desc, |_, row| {
        let (entry_key, entry_value) = index_key::entry(desc, index, &row)?;
        if index_key::enforces_uniqueness(index, &row) && txn.get(&entry_key)?.is_some() {
            return Err(SqlError::UniqueIndexBuild {
                index: index.name.clone(),
                detail: format!(
                    "Key {} is duplicated.",
                    index_key::entry_text(desc, index, &row)
                ),
            });
        }
        // Written row by row so the next row's check sees this one.
        txn.put(entry_key, entry_value)?;
        Ok(true)
    })
}

/// `DROP INDEX [IF EXISTS] name [, …]`.
pub fn drop_indexes(
    txn: &Txn,
    scope: &names::Scope,
    if_exists: bool,
    names_list: &[ObjectName],
    after_commit: &mut Vec<AfterCommit>,
) -> Result<Output> {
    for name in names_list {
        let database = scope.database.as_str();
        let (schema, name) = scope.resolve(txn, name)?;
        let Some(table) = catalog::index_owner(txn, database, &schema, &name)? else {
            if catalog::table_by_name(txn, database, &schema, &name)?.is_some() {
                return Err(SqlError::WrongObjectType(format!(
                    "\"{name}\" is not an index"
                )));
            }
            if let Some(owner) = catalog::pkey_owner(txn, database, &schema, &name)? {
                return Err(constraint_needs(&name, &owner.name));
            }
            if if_exists {
                continue;
            }
            return Err(SqlError::UndefinedObject(format!(
                "index \"{name}\" does not exist"
            )));
        };
        // Read again: an earlier name of this statement may have changed it.
        let table = catalog::table_by_id(txn, table.id)?
            .ok_or_else(|| SqlError::Internal(format!("index \"{name}\" has no table")))?;
        let Some(index) = table.index_named(&name).cloned() else {
            return Err(SqlError::Internal(format!(
                "index \"{name}\" missing from table \"{}\"",
                table.name
            )));
        };
        if index.constraint {
            return Err(constraint_needs(&name, &table.name));
        }
        if let Some((fk, child)) = crate::foreign_keys::needing_index(txn, &table, index.id)? {
            return Err(SqlError::DependentObjects(format!(
                "cannot drop index {name} because constraint {fk} on table {child} requires it"
            )));
        }
        let mut desc = (*table).clone();
        desc.indexes.retain(|i| i.id != index.id);
        desc.version += 1;
        catalog::put_table(txn, &desc)?;
        catalog::delete_index_name(txn, &desc, &name)?;
        after_commit.push(AfterCommit::PurgeIndex(desc.id, index.id));
    }
    Ok(Output::command("DROP INDEX"))
}

fn constraint_needs(index: &str, table: &str) -> SqlError {
    SqlError::DependentObjects(format!(
        "cannot drop index {index} because constraint {index} on table {table} requires it"
    ))
}
