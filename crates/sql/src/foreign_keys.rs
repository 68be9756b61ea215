//! `FOREIGN KEY` constraints: declared in DDL, kept whole by every write.
//!
//! A foreign key is stored in the referencing (child) table's descriptor;
//! the referenced (parent) table lists the child's id in `referenced_by`
//! (`descriptor.rs`). The referenced columns must be the parent's primary
//! key or the columns of one of its unique indexes, so "does the parent
//! hold this key" is one point read: the parent's row key, or its unique
//! index entry (`index_key.rs`), built from the child's values.
//!
//! **What a statement keeps** (run by `StatementWrites::apply`, after the
//! statement's own writes are in the transaction, level by level):
//! - a row a statement puts into a child, whose referencing columns are all
//!   non-NULL (MATCH SIMPLE) and new or changed, must find its parent;
//! - a parent row deleted, or whose referenced columns change, acts on its
//!   children by the constraint's `ON DELETE` / `ON UPDATE` action:
//!   `CASCADE` deletes them or carries the new values into them, `SET NULL`
//!   nulls their referencing columns — both written as a further level of
//!   the same statement, whose rows are checked in turn — and `NO ACTION` /
//!   `RESTRICT` refuse the change if children still reference a key no row
//!   of the parent holds any more.
//!
//! The existence checks run once every level has been written, so a
//! statement sees its own cascades (PostgreSQL checks at the end of the
//! statement too). Violations are 23503.
//!
//! Not yet covered: a transaction whose snapshot predates the `CREATE
//! TABLE` or `ALTER TABLE` that declared a foreign key still reads the
//! parent's old descriptor (catalog reads are not versioned per statement
//! until schema leases exist), so it can change parent rows unchecked.
//!
//! **Between transactions** a child must never commit pointing at a
//! parent deleted concurrently. Under SERIALIZABLE the reads prove it:
//! the child's transaction read the parent's key and the parent's read the
//! children's span, so whichever commits second finds its read overwritten
//! and fails with 40001. Snapshot reads (REPEATABLE READ, READ COMMITTED)
//! prove nothing, so there the child's statement also writes the parent's
//! row (or unique entry) back unchanged — PostgreSQL's `FOR KEY SHARE`,
//! taken as a write: the parent's delete and the child's insert then write
//! one key, and the usual rules decide — first committer wins under
//! REPEATABLE READ; under READ COMMITTED the second waits for the first's
//! row lock and runs its statement again on a new snapshot, meeting the
//! committed child (23503) or the missing parent (23503), as in
//! PostgreSQL. Stricter than PostgreSQL: two snapshot-isolated
//! transactions adding children to one parent also meet at its row (the
//! second waits, or fails with 40001 under REPEATABLE READ).
//!
//! **Finding children** uses an index whose leading columns are the
//! referencing columns (the child's primary key, or a secondary index) when
//! there is one, else a scan of the child table, as PostgreSQL does without
//! such an index.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::sql::sqlparser::ast;
use shoal_kv::Txn;
use shoal_storage::keycode;

use crate::catalog;
use crate::descriptor::{ForeignKey, ReferentialAction, TableDescriptor};
use crate::error::{Result, SqlError};
use crate::names;
use crate::row::{decode_row, encode_key, encode_key_values, index_prefix, key_datum, prefix_end};
use crate::types::{Datum, SqlType};

/// Which column types can reference each other: those whose values are
/// stored, and compared, as the same kind of datum.
fn key_class(ty: &SqlType) -> &'static str {
    match ty {
        SqlType::SmallInt | SqlType::Integer | SqlType::BigInt => "integer",
        SqlType::Text | SqlType::Varchar(_) => "text",
        SqlType::Char(_) => "char",
        SqlType::Real | SqlType::Double => "float",
        SqlType::Numeric { .. } => "numeric",
        SqlType::Boolean => "boolean",
        SqlType::Bytea => "bytea",
        SqlType::Date => "date",
        SqlType::Timestamp | SqlType::TimestampTz => "timestamp",
        SqlType::Uuid => "uuid",
        SqlType::Json => "json",
        SqlType::Jsonb => "jsonb",
        SqlType::Interval => "interval",
        SqlType::Array(_) => "array",
    }
}

fn action(a: Option<&ast::ReferentialAction>) -> Result<ReferentialAction> {
    Ok(match a {
        None | Some(ast::ReferentialAction::NoAction) => ReferentialAction::NoAction,
        Some(ast::ReferentialAction::Restrict) => ReferentialAction::Restrict,
        Some(ast::ReferentialAction::Cascade) => ReferentialAction::Cascade,
        Some(ast::ReferentialAction::SetNull) => ReferentialAction::SetNull,
        Some(ast::ReferentialAction::SetDefault) => {
            return Err(SqlError::NotSupported(
                "ON DELETE / ON UPDATE SET DEFAULT".into(),
            ));
        }
    })
}

fn column_position(desc: &TableDescriptor, ident: &ast::Ident) -> Result<usize> {
    let name = names::fold(ident);
    desc.column_index(&name)
        .filter(|i| !desc.columns[*i].hidden)
        .ok_or_else(|| {
            SqlError::UndefinedColumn(format!(
                "column \"{name}\" referenced in foreign key constraint does not exist"
            ))
        })
}

/// The index of `parent` whose columns are `columns` (as a set): its
/// primary key (1) or a unique index — what a reference may point at.
fn unique_key(parent: &TableDescriptor, columns: &[usize]) -> Option<u8> {
    let wanted: HashSet<usize> = columns.iter().copied().collect();
    if wanted.len() != columns.len() {
        return None;
    }
    let pk: HashSet<usize> = parent.primary_key.iter().copied().collect();
    if pk == wanted && !parent.has_hidden_rowid() {
        return Some(crate::row::PRIMARY_INDEX);
    }
    parent
        .indexes
        .iter()
        .find(|i| i.unique && i.columns.iter().map(|c| c.column).collect::<HashSet<_>>() == wanted)
        .map(|i| i.id)
}

/// A declared foreign key of `child` (which holds its columns already),
/// validated against its parent: `parent` is `None` for a reference to
/// the child itself. Its id is the caller's to allocate. `columns` are the referencing column names (one, for
/// a column's `REFERENCES`).
pub(crate) fn declare(
    child: &TableDescriptor,
    parent: Option<&TableDescriptor>,
    fk: &ast::ForeignKeyConstraint,
    columns: &[ast::Ident],
) -> Result<ForeignKey> {
    let characteristics = fk.characteristics.unwrap_or_default();
    if characteristics.enforced == Some(false) {
        return Err(SqlError::NotSupported("NOT ENFORCED foreign keys".into()));
    }
    let deferrable = characteristics.deferrable == Some(true);
    let initially_deferred = characteristics.initially == Some(ast::DeferrableInitial::Deferred);
    if initially_deferred && !deferrable {
        return Err(SqlError::Syntax(
            "constraint declared INITIALLY DEFERRED must be DEFERRABLE".into(),
        ));
    }
    if matches!(
        fk.match_kind,
        Some(ast::ConstraintReferenceMatchKind::Full | ast::ConstraintReferenceMatchKind::Partial)
    ) {
        return Err(SqlError::NotSupported(
            "MATCH FULL / MATCH PARTIAL foreign keys".into(),
        ));
    }
    let parent = parent.unwrap_or(child);
    let positions = columns
        .iter()
        .map(|c| column_position(child, c))
        .collect::<Result<Vec<_>>>()?;
    let parent_columns = if fk.referred_columns.is_empty() {
        if parent.has_hidden_rowid() {
            return Err(SqlError::InvalidForeignKey(format!(
                "there is no primary key for referenced table \"{}\"",
                parent.name
            )));
        }
        parent.primary_key.clone()
    } else {
        fk.referred_columns
            .iter()
            .map(|c| column_position(parent, c))
            .collect::<Result<Vec<_>>>()?
    };
    if positions.len() != parent_columns.len() {
        return Err(SqlError::InvalidForeignKey(
            "number of referencing and referenced columns for foreign key disagree".into(),
        ));
    }
    if parent_columns.iter().collect::<HashSet<_>>().len() != parent_columns.len() {
        return Err(SqlError::InvalidForeignKey(
            "foreign key referenced-columns list must not contain duplicates".into(),
        ));
    }
    let Some(parent_index) = unique_key(parent, &parent_columns) else {
        return Err(SqlError::InvalidForeignKey(format!(
            "there is no unique constraint matching given keys for referenced table \"{}\"",
            parent.name
        )));
    };
    let name = match &fk.name {
        Some(n) => {
            let n = names::fold(n);
            if child.has_constraint_named(&n) {
                return Err(SqlError::DuplicateObject(format!(
                    "constraint \"{n}\" for relation \"{}\" already exists",
                    child.name
                )));
            }
            n
        }
        None => {
            let cols: Vec<&str> = positions
                .iter()
                .map(|p| child.columns[*p].name.as_str())
                .collect();
            let base = format!("{}_{}_fkey", child.name, cols.join("_"));
            let mut candidate = base.clone();
            let mut n = 0;
            while child.has_constraint_named(&candidate) {
                n += 1;
                candidate = format!("{base}{n}");
            }
            candidate
        }
    };
    for (c, p) in positions.iter().zip(&parent_columns) {
        let (ct, pt) = (&child.columns[*c].ty, &parent.columns[*p].ty);
        // `char(n)` values are stored padded to n: only the same type
        // compares equal key for key.
        let padded = matches!(ct, SqlType::Char(_)) || matches!(pt, SqlType::Char(_));
        if key_class(ct) != key_class(pt) || (padded && ct != pt) {
            return Err(SqlError::DatatypeMismatch(format!(
                "foreign key constraint \"{name}\" cannot be implemented: key columns \"{}\" and \"{}\" are of incompatible types: {} and {}",
                child.columns[*c].name,
                parent.columns[*p].name,
                ct.pg_name(),
                pt.pg_name()
            )));
        }
    }
    Ok(ForeignKey {
        id: 0,
        name,
        columns: positions,
        parent: parent.id,
        parent_columns,
        parent_index,
        on_delete: action(fk.on_delete.as_ref())?,
        on_update: action(fk.on_update.as_ref())?,
        deferrable,
        initially_deferred,
    })
}

/// The values of `columns` in `row`, or `None` if one is NULL (a
/// reference with a NULL column references nothing: MATCH SIMPLE).
pub(crate) fn values_of(row: &[Datum], columns: &[usize]) -> Option<Vec<Datum>> {
    columns
        .iter()
        .map(|c| (!row[*c].is_null()).then(|| row[*c].clone()))
        .collect()
}

/// Whether two datums of a column type are the same key.
fn same_key(a: &Datum, b: &Datum, ty: &SqlType) -> Result<bool> {
    let (mut x, mut y) = (Vec::new(), Vec::new());
    keycode::encode_datum(&key_datum(a, ty)?, false, &mut x);
    keycode::encode_datum(&key_datum(b, ty)?, false, &mut y);
    Ok(x == y)
}

/// The key and value of `parent`'s row (or unique index entry) that
/// foreign key `fk` finds for its referencing `values`, if there is one.
pub(crate) fn parent_key(
    txn: &Txn,
    parent: &TableDescriptor,
    fk: &ForeignKey,
    values: &[Datum],
) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut row = vec![Datum::Null; parent.columns.len()];
    for (c, v) in fk.parent_columns.iter().zip(values) {
        row[*c] = v.clone();
    }
    let key = if fk.parent_index == crate::row::PRIMARY_INDEX {
        encode_key(parent, &row)?
    } else {
        let Some(index) = parent.indexes.iter().find(|i| i.id == fk.parent_index) else {
            // The index cannot be dropped while a foreign key needs it
            // (`index_ddl.rs`); a descriptor without it is corrupt.
            return Err(SqlError::Internal(format!(
                "the unique index of \"{}\" behind foreign key \"{}\" is missing",
                parent.name, fk.name
            )));
        };
        let ordered: Vec<Datum> = index
            .columns
            .iter()
            .map(|c| row[c.column].clone())
            .collect();
        crate::index_key::encode_values(parent, index, &ordered)?
    };
    Ok(txn.get(&key)?.map(|value| (key, value)))
}

/// The foreign key of another table that needs index `index_id` of
/// `parent` (to refuse dropping it), with that table's name.
pub(crate) fn needing_index(
    txn: &Txn,
    parent: &TableDescriptor,
    index_id: u8,
) -> Result<Option<(String, String)>> {
    for &child_id in &parent.referenced_by {
        let child = if child_id == parent.id {
            None
        } else {
            catalog::table_by_id(txn, child_id)?
        };
        let child = child.as_deref().unwrap_or(parent);
        if let Some(fk) = references(child, parent.id).find(|fk| fk.parent_index == index_id) {
            return Ok(Some((fk.name.clone(), child.name.clone())));
        }
    }
    Ok(None)
}

/// Up to `limit` rows of `child` whose referencing columns of `fk` equal
/// `values` (module docs: by index when one leads with them, else by a
/// scan of the table).
pub(crate) fn referencing_rows(
    txn: &Txn,
    child: &TableDescriptor,
    fk: &ForeignKey,
    values: &[Datum],
    limit: usize,
) -> Result<Vec<Vec<Datum>>> {
    const CHUNK: usize = 256;
    let matches = |row: &[Datum]| -> Result<bool> {
        for (c, v) in fk.columns.iter().zip(values) {
            if row[*c].is_null() || !same_key(&row[*c], v, &child.columns[*c].ty)? {
                return Ok(false);
            }
        }
        Ok(true)
    };
    let value_of = |column: usize| {
        fk.columns
            .iter()
            .position(|c| *c == column)
            .map(|i| values[i].clone())
    };
    let n = fk.columns.len();
    let wanted: HashSet<usize> = fk.columns.iter().copied().collect();
    let mut out = Vec::new();
    // Through a secondary index leading with the referencing columns.
    if let Some(index) = child.indexes.iter().find(|i| {
        i.columns.len() >= n
            && i.columns[..n]
                .iter()
                .map(|c| c.column)
                .collect::<HashSet<_>>()
                == wanted
    }) {
        let lead: Vec<Datum> = index.columns[..n]
            .iter()
            .filter_map(|c| value_of(c.column))
            .collect();
        let start = crate::index_key::encode_values(child, index, &lead)?;
        let end = prefix_end(&start);
        let mut from = start;
        loop {
            let chunk = txn.scan(&from, &end, CHUNK)?;
            let done = chunk.len() < CHUNK;
            for (key, value) in &chunk {
                let row_key = crate::index_key::row_key(child, value);
                if let Some(stored) = txn.get(&row_key)? {
                    let row = decode_row(child, &row_key, &stored)?;
                    if matches(&row)? {
                        out.push(row);
                        if out.len() >= limit {
                            return Ok(out);
                        }
                    }
                }
                from = key.clone();
                from.push(0);
            }
            if done {
                return Ok(out);
            }
        }
    }
    // Through the primary key when it leads with them, else all rows.
    let leads = child.primary_key.len() >= n
        && child.primary_key[..n]
            .iter()
            .copied()
            .collect::<HashSet<_>>()
            == wanted;
    let start = if leads {
        let lead: Vec<Datum> = child.primary_key[..n]
            .iter()
            .filter_map(|c| value_of(*c))
            .collect();
        encode_key_values(child, &lead)?
    } else {
        index_prefix(child.id)
    };
    crate::row::scan_rows(txn, child, &start, &prefix_end(&start), |_, row| {
        if matches(&row)? {
            out.push(row);
        }
        Ok(out.len() < limit)
    })?;
    Ok(out)
}

/// A table's descriptor by id, `this` when it is the one asked for.
pub(crate) fn table(
    txn: &Txn,
    this: &Arc<TableDescriptor>,
    id: u32,
) -> Result<Arc<TableDescriptor>> {
    if id == this.id {
        return Ok(this.clone());
    }
    catalog::table_by_id(txn, id)?.ok_or_else(|| {
        SqlError::Internal(format!(
            "table {id}, named by a foreign key of \"{}\", is missing",
            this.name
        ))
    })
}

/// The 23503 of a child row whose parent is missing.
pub(crate) fn missing_parent(
    child: &TableDescriptor,
    fk: &ForeignKey,
    parent: &TableDescriptor,
    row: &[Datum],
) -> SqlError {
    SqlError::ForeignKeyViolation {
        message: format!(
            "insert or update on table \"{}\" violates foreign key constraint \"{}\"",
            child.name, fk.name
        ),
        detail: format!(
            "Key {} is not present in table \"{}\".",
            crate::dml::columns_text(child, &fk.columns, row),
            parent.name
        ),
    }
}

/// The 23503 of a parent row change that would leave children dangling.
pub(crate) fn still_referenced(
    parent: &TableDescriptor,
    fk: &ForeignKey,
    child: &TableDescriptor,
    old: &[Datum],
) -> SqlError {
    SqlError::ForeignKeyViolation {
        message: format!(
            "update or delete on table \"{}\" violates foreign key constraint \"{}\" on table \"{}\"",
            parent.name, fk.name, child.name
        ),
        detail: format!(
            "Key {} is still referenced from table \"{}\".",
            crate::dml::columns_text(parent, &fk.parent_columns, old),
            child.name
        ),
    }
}

/// The foreign keys of `child` that reference `parent`.
pub(crate) fn references(
    child: &TableDescriptor,
    parent: u32,
) -> impl Iterator<Item = &ForeignKey> {
    child
        .foreign_keys
        .iter()
        .filter(move |fk| fk.parent == parent)
}

/// Whether the values of `columns` differ between two versions of a row.
pub(crate) fn changed(
    desc: &TableDescriptor,
    columns: &[usize],
    old: &[Datum],
    new: &[Datum],
) -> Result<bool> {
    for c in columns {
        let (a, b) = (&old[*c], &new[*c]);
        if a.is_null() != b.is_null() {
            return Ok(true);
        }
        if !a.is_null() && !same_key(a, b, &desc.columns[*c].ty)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// What a change to a parent row does to one child row: `None` to delete
/// it, or its new version. `new_parent` is `None` for a delete.
pub(crate) fn act_on_child(
    fk: &ForeignKey,
    action: ReferentialAction,
    child_row: &[Datum],
    new_parent: Option<&[Datum]>,
) -> Option<Vec<Datum>> {
    let mut row = child_row.to_vec();
    match (action, new_parent) {
        (ReferentialAction::Cascade, None) => return None,
        (ReferentialAction::Cascade, Some(parent)) => {
            for (c, p) in fk.columns.iter().zip(&fk.parent_columns) {
                row[*c] = parent[*p].clone();
            }
        }
        _ => {
            for c in &fk.columns {
                row[*c] = Datum::Null;
            }
        }
    }
    Some(row)
}

/// Declares a foreign key of `child` and records it on both sides: in
/// `child` (which the caller stores) and in its parent's `referenced_by`
/// (stored here, unless the parent is `child` itself).
pub(crate) fn add(
    txn: &Txn,
    child: &mut TableDescriptor,
    fk: &ast::ForeignKeyConstraint,
    columns: &[ast::Ident],
) -> Result<()> {
    // An unqualified parent is looked for in the child's schema, then in
    // `public`.
    let (parent_schema, parent_name) = names::split(&fk.foreign_table, &child.database)?;
    let parent_schema = match parent_schema {
        Some(s) => s,
        None if child.schema != crate::providers::PUBLIC_SCHEMA
            && !catalog::relation_exists(txn, &child.database, &child.schema, &parent_name)?
            && parent_name != child.name =>
        {
            crate::providers::PUBLIC_SCHEMA.to_string()
        }
        None => child.schema.clone(),
    };
    if parent_name == child.name && parent_schema == child.schema {
        let mut declared = declare(child, None, fk, columns)?;
        declared.id = child.allocate_object_id()?;
        child.foreign_keys.push(declared);
        if !child.referenced_by.contains(&child.id) {
            child.referenced_by.push(child.id);
        }
        return Ok(());
    }
    let Some(parent) = catalog::table_by_name(txn, &child.database, &parent_schema, &parent_name)?
    else {
        if crate::views::view_exists(txn, &child.database, &parent_schema, &parent_name)? {
            return Err(SqlError::WrongObjectType(format!(
                "referenced relation \"{parent_name}\" is not a table"
            )));
        }
        return Err(SqlError::UndefinedTable(parent_name));
    };
    let mut declared = declare(child, Some(&parent), fk, columns)?;
    declared.id = child.allocate_object_id()?;
    child.foreign_keys.push(declared);
    if !parent.referenced_by.contains(&child.id) {
        let mut parent = (*parent).clone();
        parent.referenced_by.push(child.id);
        parent.version += 1;
        catalog::put_table(txn, &parent)?;
    }
    Ok(())
}

/// Before `dropping` (the ids of every table one `DROP TABLE` drops) go:
/// refuses to drop a table other tables reference (2BP01), unless
/// `cascade`, which drops those foreign keys; and takes each dropped
/// table out of its parents' `referenced_by`.
pub(crate) fn detach_for_drop(
    txn: &Txn,
    dropping: &[Arc<TableDescriptor>],
    cascade: bool,
) -> Result<()> {
    let ids: HashSet<u32> = dropping.iter().map(|d| d.id).collect();
    for desc in dropping {
        for &child_id in &desc.referenced_by {
            if ids.contains(&child_id) {
                continue;
            }
            let Some(child) = catalog::table_by_id(txn, child_id)? else {
                continue;
            };
            let Some(fk) = references(&child, desc.id).next() else {
                continue;
            };
            if !cascade {
                return Err(SqlError::DependentObjects(format!(
                    "cannot drop table {} because other objects depend on it: constraint {} on table {} depends on table {}",
                    desc.name, fk.name, child.name, desc.name
                )));
            }
            let mut child = (*child).clone();
            child.foreign_keys.retain(|fk| fk.parent != desc.id);
            child.version += 1;
            catalog::put_table(txn, &child)?;
        }
        let parents: HashSet<u32> = desc.foreign_keys.iter().map(|fk| fk.parent).collect();
        for parent_id in parents {
            if ids.contains(&parent_id) {
                continue;
            }
            let Some(parent) = catalog::table_by_id(txn, parent_id)? else {
                continue;
            };
            let mut parent = (*parent).clone();
            parent.referenced_by.retain(|id| *id != desc.id);
            parent.version += 1;
            catalog::put_table(txn, &parent)?;
        }
    }
    Ok(())
}

/// The tables a `TRUNCATE` of `tables` empties: those, and with `cascade`
/// every table referencing one of them, transitively. Without `cascade` a
/// table referenced from outside the list is refused, as in PostgreSQL.
pub(crate) fn truncation_set(
    txn: &Txn,
    mut tables: Vec<Arc<TableDescriptor>>,
    cascade: bool,
) -> Result<Vec<Arc<TableDescriptor>>> {
    let mut n = 0;
    while n < tables.len() {
        let desc = tables[n].clone();
        n += 1;
        for &child_id in &desc.referenced_by {
            if tables.iter().any(|t| t.id == child_id) {
                continue;
            }
            let Some(child) = catalog::table_by_id(txn, child_id)? else {
                continue;
            };
            if !cascade {
                return Err(SqlError::NotSupported(format!(
                    "cannot truncate a table referenced in a foreign key constraint: table \"{}\" references \"{}\"; truncate table \"{}\" at the same time, or use TRUNCATE … CASCADE",
                    child.name, desc.name, child.name
                )));
            }
            tables.push(child);
        }
    }
    Ok(tables)
}
