//! A table's indexes as PostgreSQL's catalogs show them.
//!
//! `pg_class`, `pg_index`, `pg_constraint`, `pg_indexes`,
//! `pg_get_indexdef` and `pg_get_constraintdef` (through
//! `catalog_constraints.rs`) all describe the same
//! indexes: the primary key's (index 1, absent for a table keyed by its
//! hidden rowid) and each secondary one. [`indexes`] lists them once, with
//! their derived OIDs, so every catalog agrees with every other.
//!
//! OIDs are derived, never allocated (`descriptor.rs`): an index's is
//! `2^30 + table OID + (index id − 1) · 2^22` and its constraint's (primary
//! key or `UNIQUE`) the same above `2^31`, so each splits back into table
//! and index without a lookup.

use crate::descriptor::{INDEX_OID_BASE, INDEX_OID_STRIDE, TableDescriptor};
use crate::names::quote_if_needed;

/// Above every index OID: constraint OIDs.
pub const CONSTRAINT_OID_BASE: u32 = 1 << 31;

/// One index of a table, for the catalogs.
pub struct IndexView {
    pub id: u8,
    pub oid: i64,
    pub name: String,
    pub unique: bool,
    pub primary: bool,
    /// The constraint behind it, if any: its OID and kind (`p`, `u`).
    pub constraint: Option<(i64, &'static str)>,
    /// Key columns (positions in the table) and whether each is DESC.
    pub key: Vec<(usize, bool)>,
    pub include: Vec<usize>,
}

/// The OID of constraint (or index) id `index_id`'s constraint.
pub fn constraint_oid(desc: &TableDescriptor, index_id: u8) -> i64 {
    i64::from(CONSTRAINT_OID_BASE)
        + i64::from(desc.oid())
        + (i64::from(index_id) - 1) * i64::from(INDEX_OID_STRIDE)
}

/// The table's indexes, the primary key's first.
pub fn indexes(desc: &TableDescriptor) -> Vec<IndexView> {
    let mut out = Vec::with_capacity(desc.indexes.len() + 1);
    if !desc.has_hidden_rowid() {
        out.push(IndexView {
            id: 1,
            oid: i64::from(desc.index_oid(1)),
            name: desc.pkey_name(),
            unique: true,
            primary: true,
            constraint: Some((constraint_oid(desc, 1), "p")),
            key: desc.primary_key.iter().map(|p| (*p, false)).collect(),
            include: Vec::new(),
        });
    }
    for index in &desc.indexes {
        out.push(IndexView {
            id: index.id,
            oid: i64::from(desc.index_oid(index.id)),
            name: index.name.clone(),
            unique: index.unique,
            primary: false,
            constraint: index
                .constraint
                .then(|| (constraint_oid(desc, index.id), "u")),
            key: index
                .columns
                .iter()
                .map(|c| (c.column, c.descending))
                .collect(),
            include: index.include.clone(),
        });
    }
    out
}

/// A column's `attnum`: 1-based among the columns a user sees.
pub fn attnum(desc: &TableDescriptor, pos: usize) -> i64 {
    let visible = desc.visible_columns();
    visible.iter().position(|v| *v == pos).unwrap_or(0) as i64 + 1
}

/// `pg_index.indkey`: the key and included columns' attnums.
pub fn indkey(desc: &TableDescriptor, view: &IndexView) -> Vec<i64> {
    view.key
        .iter()
        .map(|(p, _)| *p)
        .chain(view.include.iter().copied())
        .map(|p| attnum(desc, p))
        .collect()
}

/// `pg_index.indoption`: 3 for each DESC key column (PostgreSQL's DESC
/// flag, with its NULLS FIRST bit set alongside, as DESC implies), else 0.
pub fn indoption(view: &IndexView) -> Vec<i64> {
    view.key
        .iter()
        .map(|(_, d)| if *d { 3 } else { 0 })
        .collect()
}

fn column_list(desc: &TableDescriptor, columns: impl Iterator<Item = (usize, bool)>) -> String {
    columns
        .map(|(p, d)| {
            let name = quote_if_needed(&desc.columns[p].name);
            if d { format!("{name} DESC") } else { name }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `pg_get_indexdef`: the statement that makes the index.
pub fn definition(desc: &TableDescriptor, view: &IndexView) -> String {
    let mut def = format!(
        "CREATE {}INDEX {} ON public.{} USING btree ({})",
        if view.unique { "UNIQUE " } else { "" },
        quote_if_needed(&view.name),
        quote_if_needed(&desc.name),
        column_list(desc, view.key.iter().copied())
    );
    if !view.include.is_empty() {
        def.push_str(&format!(
            " INCLUDE ({})",
            column_list(desc, view.include.iter().map(|p| (*p, false)))
        ));
    }
    def
}

/// The table OID and index id an index OID was derived from.
pub fn split_index_oid(oid: i64) -> Option<(i64, u8)> {
    split(oid, INDEX_OID_BASE)
}

/// The table OID and index id a constraint OID was derived from.
pub fn split_constraint_oid(oid: i64) -> Option<(i64, u8)> {
    split(oid, CONSTRAINT_OID_BASE)
}

fn split(oid: i64, base: u32) -> Option<(i64, u8)> {
    let offset = oid.checked_sub(i64::from(base)).filter(|o| *o >= 0)?;
    let stride = i64::from(INDEX_OID_STRIDE);
    let index_id = u8::try_from(offset / stride + 1).ok()?;
    Some((offset % stride, index_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_split_back() {
        let table_oid = 16_384 + 101;
        let index = i64::from(INDEX_OID_BASE) + table_oid + 4 * i64::from(INDEX_OID_STRIDE);
        assert_eq!(split_index_oid(index), Some((table_oid, 5)));
        assert_eq!(split_index_oid(table_oid), None);
        let constraint = i64::from(CONSTRAINT_OID_BASE) + table_oid;
        assert_eq!(split_constraint_oid(constraint), Some((table_oid, 1)));
    }
}
