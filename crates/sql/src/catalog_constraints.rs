//! A table's constraints as PostgreSQL's catalogs show them.
//!
//! `pg_constraint` and `pg_get_constraintdef` describe the same list,
//! built here once: the
//! primary key and `UNIQUE` constraints (from `catalog_indexes.rs`), then
//! checks and foreign keys. Every constraint's OID is derived from its
//! table's OID and its id within the table (ids are shared with indexes
//! and never reused: `descriptor.rs`), so it is the same on every node and
//! after every restart, and splits back into table and id without a
//! lookup (`catalog_indexes::split_constraint_oid`).

use std::sync::Arc;

use crate::catalog_indexes::{attnum, constraint_oid, indexes};
use crate::descriptor::{ForeignKey, ReferentialAction, TableDescriptor};
use crate::names::quote_if_needed;

/// One constraint of a table, for the catalogs.
pub struct ConstraintView {
    pub id: u8,
    pub oid: i64,
    pub name: String,
    /// `p`, `u`, `c` or `f`.
    pub kind: &'static str,
    /// The index behind it (for a foreign key, the parent's), or 0.
    pub index_oid: i64,
    /// The constrained (or, for a check, read) columns, by position.
    pub key: Vec<usize>,
    /// A foreign key's parent and its referenced columns.
    pub parent: Option<(Arc<TableDescriptor>, Vec<usize>)>,
    pub on_update: &'static str,
    pub on_delete: &'static str,
    /// A check's expression (`conbin`, as `pg_get_expr` returns it).
    pub expression: Option<String>,
    /// `condeferrable`, `condeferred`.
    pub deferrable: bool,
    pub deferred: bool,
    /// `pg_get_constraintdef`.
    pub definition: String,
}

fn column_list(desc: &TableDescriptor, columns: &[usize]) -> String {
    columns
        .iter()
        .map(|p| quote_if_needed(&desc.columns[*p].name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The index of `parent` a foreign key's references land on: its primary
/// key's or a unique index's (`foreign_keys.rs` accepts nothing else).
fn referenced_index(parent: &TableDescriptor, fk: &ForeignKey) -> i64 {
    let mut wanted = fk.parent_columns.clone();
    wanted.sort_unstable();
    indexes(parent)
        .into_iter()
        .find(|i| {
            let mut cols: Vec<usize> = i.key.iter().map(|(p, _)| *p).collect();
            cols.sort_unstable();
            i.unique && cols == wanted
        })
        .map_or(0, |i| i.oid)
}

fn foreign_key_definition(
    desc: &TableDescriptor,
    fk: &ForeignKey,
    parent: &TableDescriptor,
) -> String {
    let mut def = format!(
        "FOREIGN KEY ({}) REFERENCES {}({})",
        column_list(desc, &fk.columns),
        quote_if_needed(&parent.name),
        column_list(parent, &fk.parent_columns)
    );
    for (word, action) in [("UPDATE", fk.on_update), ("DELETE", fk.on_delete)] {
        if action != ReferentialAction::NoAction {
            def.push_str(&format!(" ON {word} {}", action.sql()));
        }
    }
    if fk.deferrable {
        def.push_str(" DEFERRABLE");
    }
    if fk.initially_deferred {
        def.push_str(" INITIALLY DEFERRED");
    }
    def
}

/// Every constraint of `desc`; `tables` (the database's tables) resolve
/// foreign keys' parents.
pub fn constraints(desc: &TableDescriptor, tables: &[Arc<TableDescriptor>]) -> Vec<ConstraintView> {
    let mut out = Vec::new();
    for index in indexes(desc) {
        let Some((oid, kind)) = index.constraint else {
            continue;
        };
        let key: Vec<usize> = index.key.iter().map(|(p, _)| *p).collect();
        out.push(ConstraintView {
            id: index.id,
            oid,
            definition: format!(
                "{} ({})",
                if kind == "p" { "PRIMARY KEY" } else { "UNIQUE" },
                column_list(desc, &key)
            ),
            name: index.name,
            kind,
            index_oid: index.oid,
            key,
            parent: None,
            on_update: " ",
            on_delete: " ",
            expression: None,
            deferrable: false,
            deferred: false,
        });
    }
    for check in &desc.checks {
        out.push(ConstraintView {
            id: check.id,
            oid: constraint_oid(desc, check.id),
            name: check.name.clone(),
            kind: "c",
            index_oid: 0,
            key: crate::checks::columns_read(desc, check),
            parent: None,
            on_update: " ",
            on_delete: " ",
            expression: Some(crate::checks::parenthesized(&check.expr)),
            definition: crate::checks::definition(check),
            deferrable: false,
            deferred: false,
        });
    }
    for fk in &desc.foreign_keys {
        let Some(parent) = tables.iter().find(|t| t.id == fk.parent) else {
            continue;
        };
        out.push(ConstraintView {
            id: fk.id,
            oid: constraint_oid(desc, fk.id),
            name: fk.name.clone(),
            kind: "f",
            index_oid: referenced_index(parent, fk),
            key: fk.columns.clone(),
            parent: Some((parent.clone(), fk.parent_columns.clone())),
            on_update: fk.on_update.pg_code(),
            on_delete: fk.on_delete.pg_code(),
            expression: None,
            definition: foreign_key_definition(desc, fk, parent),
            deferrable: fk.deferrable,
            deferred: fk.initially_deferred,
        });
    }
    out
}

/// `pg_constraint.conkey` / `confkey`: attnums.
pub fn attnums(desc: &TableDescriptor, columns: &[usize]) -> Vec<i64> {
    columns.iter().map(|p| attnum(desc, *p)).collect()
}
