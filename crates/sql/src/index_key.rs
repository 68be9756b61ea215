//! How secondary index entries become key-value pairs.
//!
//! An index entry lives under its table's prefix, after the index id:
//!
//! ```text
//! 0x02 <table id u32 BE> <index id u8> <indexed columns> [<primary key columns>]  -> <primary key columns>
//! ```
//!
//! The indexed columns are encoded with the storage layer's keycode, each
//! ascending or descending as declared, so one value (or a prefix of the
//! columns, or a range of the first) is a contiguous span of entries and a
//! scan reads them in index order. The value is the row's primary key
//! columns, encoded as in the row's own key: the primary index key is
//! `index_prefix(table) + value`, one get away.
//!
//! **Uniqueness is a write conflict.** A non-unique index appends the
//! primary key to every entry key, so rows with equal indexed values get
//! distinct entries. A unique index does so only for entries with a NULL
//! indexed column (NULLs are distinct, as in PostgreSQL); every other entry
//! key is the indexed values alone. Two transactions inserting the same
//! value therefore write the *same* key, and the KV layer's write rules —
//! first committer wins, READ COMMITTED row locks, serializable proofs —
//! decide between them exactly as for two writers of one row. Within a
//! transaction the entry's presence is the check (`dml.rs`).

use shoal_storage::keycode;

use crate::descriptor::{IndexDescriptor, TableDescriptor};
use crate::error::Result;
use crate::row::{encode_key, index_prefix, key_datum, table_prefix};
use crate::types::Datum;

/// The first key of an index's entries.
pub fn entries_prefix(table_id: u32, index_id: u8) -> Vec<u8> {
    let mut k = table_prefix(table_id);
    k.push(index_id);
    k
}

/// Whether the entry for `row` must be unique: a unique index, and no
/// NULL among the indexed values.
pub fn enforces_uniqueness(index: &IndexDescriptor, row: &[Datum]) -> bool {
    index.unique && index.columns.iter().all(|c| !row[c.column].is_null())
}

/// The entry key prefix of the rows whose leading indexed columns equal
/// `values` (all of them for a full entry key before the primary key; fewer
/// for a scan's bounds).
pub fn encode_values(
    desc: &TableDescriptor,
    index: &IndexDescriptor,
    values: &[Datum],
) -> Result<Vec<u8>> {
    let mut key = entries_prefix(desc.id, index.id);
    for (c, d) in index.columns.iter().zip(values) {
        let kd = key_datum(d, &desc.columns[c.column].ty)?;
        keycode::encode_datum(&kd, c.descending, &mut key);
    }
    Ok(key)
}

/// The entry (key, value) of a full row (datums in column order).
pub fn entry(
    desc: &TableDescriptor,
    index: &IndexDescriptor,
    row: &[Datum],
) -> Result<(Vec<u8>, Vec<u8>)> {
    let values: Vec<Datum> = index
        .columns
        .iter()
        .map(|c| row[c.column].clone())
        .collect();
    let mut key = encode_values(desc, index, &values)?;
    let primary = encode_key(desc, row)?;
    let value = primary[index_prefix(desc.id).len()..].to_vec();
    if !enforces_uniqueness(index, row) {
        key.extend_from_slice(&value);
    }
    Ok((key, value))
}

/// The primary index key of the row an entry's value points at.
pub fn row_key(desc: &TableDescriptor, entry_value: &[u8]) -> Vec<u8> {
    let mut key = index_prefix(desc.id);
    key.extend_from_slice(entry_value);
    key
}

/// The indexed values of a row as PostgreSQL shows them in messages:
/// `(a, b)=(1, x)`.
pub fn entry_text(desc: &TableDescriptor, index: &IndexDescriptor, row: &[Datum]) -> String {
    let columns: Vec<usize> = index.columns.iter().map(|c| c.column).collect();
    crate::dml::columns_text(desc, &columns, row)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::descriptor::{ColumnDescriptor, IndexColumn};
    use crate::types::SqlType;

    fn table(unique: bool, descending: bool) -> TableDescriptor {
        let c = ColumnDescriptor::plain;
        TableDescriptor {
            id: 9,
            database: "shoal".into(),
            schema: "public".into(),
            name: "t".into(),
            columns: vec![c("id", SqlType::Integer), c("v", SqlType::Text)],
            primary_key: vec![0],
            version: 1,
            indexes: vec![IndexDescriptor {
                id: 2,
                name: "t_v_idx".into(),
                columns: vec![IndexColumn {
                    column: 1,
                    descending,
                }],
                include: Vec::new(),
                unique,
                constraint: false,
            }],
            next_index_id: 3,
            checks: Vec::new(),
            foreign_keys: Vec::new(),
            referenced_by: Vec::new(),
        }
    }

    fn row(id: i64, v: Option<&str>) -> Vec<Datum> {
        vec![
            Datum::Int(id),
            v.map_or(Datum::Null, |s| Datum::Text(s.into())),
        ]
    }

    #[test]
    fn entries_point_at_their_rows() {
        let t = table(false, false);
        let r = row(7, Some("x"));
        let (key, value) = entry(&t, &t.indexes[0], &r).unwrap();
        assert_eq!(row_key(&t, &value), encode_key(&t, &r).unwrap());
        assert_eq!(crate::row::pretty_key(&key), "/Table/9/2/\"x\"/7");
    }

    #[test]
    fn unique_entries_collide_unless_null() {
        let t = table(true, false);
        let i = &t.indexes[0];
        let a = entry(&t, i, &row(1, Some("x"))).unwrap().0;
        let b = entry(&t, i, &row(2, Some("x"))).unwrap().0;
        assert_eq!(a, b, "equal values write one key");
        let n1 = entry(&t, i, &row(1, None)).unwrap().0;
        let n2 = entry(&t, i, &row(2, None)).unwrap().0;
        assert_ne!(n1, n2, "NULLs are distinct");
    }

    #[test]
    fn descending_columns_sort_backwards() {
        let t = table(false, true);
        let i = &t.indexes[0];
        let a = entry(&t, i, &row(1, Some("a"))).unwrap().0;
        let b = entry(&t, i, &row(1, Some("b"))).unwrap().0;
        assert!(b < a);
        let t = table(false, false);
        let i = &t.indexes[0];
        let a = entry(&t, i, &row(1, Some("a"))).unwrap().0;
        let b = entry(&t, i, &row(1, Some("b"))).unwrap().0;
        assert!(a < b);
    }
}
