//! Table descriptors: the schema of a table as the catalog stores it.
//!
//! A descriptor is written as JSON under a catalog key (see `catalog.rs`) in
//! the same transaction as the DDL that made it, so schema changes are as
//! durable and as atomic as row writes. Columns keep their declaration order;
//! the primary key names columns by position. A table declared without a
//! primary key gets a hidden `rowid` column (last, never shown by `SELECT *`)
//! that serves as its key, as in CockroachDB.
//!
//! `version` grows with every change to the descriptor; rows record the
//! version they were written under, so a later `ADD COLUMN` can read old rows
//! (missing trailing columns read as NULL).
//!
//! Secondary indexes live in the table's descriptor ([`IndexDescriptor`]):
//! an index is part of its table's schema, changes with it in one catalog
//! write, and its entries share the table's key prefix (`index_key.rs`).
//! Index ids are never reused within a table (`next_index_id`), so the
//! entries of a dropped index can be purged after its `DROP INDEX` commits
//! without ever being mistaken for a newer index's.

use std::sync::Arc;

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::types::SqlType;

/// The name of the hidden key column of tables without a primary key.
pub const ROWID_COLUMN: &str = "rowid";

/// First OID handed to user tables, as in PostgreSQL (FirstNormalObjectId).
pub const FIRST_USER_OID: u32 = 16384;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDescriptor {
    pub name: String,
    pub ty: SqlType,
    pub nullable: bool,
    /// Hidden columns (the implicit rowid) are not part of `SELECT *`.
    #[serde(default)]
    pub hidden: bool,
    /// The `DEFAULT` expression, as SQL text (`nextval('t_id_seq')` for
    /// `SERIAL`): what an `INSERT` that names no value for the column
    /// writes.
    #[serde(default)]
    pub default: Option<String>,
}

impl ColumnDescriptor {
    /// A visible, nullable column without a default.
    pub fn plain(name: &str, ty: SqlType) -> ColumnDescriptor {
        ColumnDescriptor {
            name: name.into(),
            ty,
            nullable: true,
            hidden: false,
            default: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableDescriptor {
    /// Unique, never reused; also the table's key prefix.
    pub id: u32,
    pub database: String,
    pub schema: String,
    pub name: String,
    pub columns: Vec<ColumnDescriptor>,
    /// Positions in `columns` of the primary key, in key order.
    pub primary_key: Vec<usize>,
    pub version: u32,
    /// Secondary indexes, in creation order.
    #[serde(default)]
    pub indexes: Vec<IndexDescriptor>,
    /// The id the next secondary index gets (ids 0 and 1 are never
    /// secondary: 1 is the primary index).
    #[serde(default = "first_secondary_index_id")]
    pub next_index_id: u8,
}

fn first_secondary_index_id() -> u8 {
    2
}

/// One column of an index key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexColumn {
    /// Position in the table's `columns`.
    pub column: usize,
    /// Stored in descending order (`DESC`).
    #[serde(default)]
    pub descending: bool,
}

/// A secondary index: its entries map the indexed columns (then the
/// primary key) to the row's primary key (`index_key.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexDescriptor {
    /// The index's id within its table: the key byte after the table id.
    pub id: u8,
    pub name: String,
    pub columns: Vec<IndexColumn>,
    /// `INCLUDE` columns: recorded for the catalog; rows are always read
    /// from the primary index, so the entries need not carry them.
    #[serde(default)]
    pub include: Vec<usize>,
    pub unique: bool,
    /// Made by a `UNIQUE` constraint (shown in `pg_constraint`), not by
    /// `CREATE UNIQUE INDEX`.
    #[serde(default)]
    pub constraint: bool,
}

impl TableDescriptor {
    /// The table's OID in `pg_class`: derived from its id, so it is the same
    /// on every node and after every restart.
    pub fn oid(&self) -> u32 {
        FIRST_USER_OID + self.id
    }

    /// Whether the key is the hidden rowid.
    pub fn has_hidden_rowid(&self) -> bool {
        self.primary_key.len() == 1 && self.columns[self.primary_key[0]].hidden
    }

    /// Positions of the columns a user sees, in order.
    pub fn visible_columns(&self) -> Vec<usize> {
        (0..self.columns.len())
            .filter(|i| !self.columns[*i].hidden)
            .collect()
    }

    /// Position of a column by name (case-sensitive after identifier folding).
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    pub fn is_key_column(&self, idx: usize) -> bool {
        self.primary_key.contains(&idx)
    }

    /// The Arrow schema over the given column positions.
    pub fn arrow_schema(&self, columns: &[usize]) -> SchemaRef {
        Arc::new(Schema::new(
            columns
                .iter()
                .map(|i| {
                    let c = &self.columns[*i];
                    c.ty.arrow_field(&c.name, c.nullable)
                })
                .collect::<Vec<_>>(),
        ))
    }

    /// Name of the primary key constraint, as PostgreSQL would name it.
    pub fn pkey_name(&self) -> String {
        format!("{}_pkey", self.name)
    }

    /// A secondary index by name.
    pub fn index_named(&self, name: &str) -> Option<&IndexDescriptor> {
        self.indexes.iter().find(|i| i.name == name)
    }

    /// The OID of index `index_id` (1 is the primary key's): derived like
    /// the table's, above every table OID (tables ids stay below 2^22, the
    /// stride between index ids).
    pub fn index_oid(&self, index_id: u8) -> u32 {
        INDEX_OID_BASE + self.oid() + (u32::from(index_id.max(1)) - 1) * INDEX_OID_STRIDE
    }
}

/// Added to a table's OID for its primary key index's OID.
pub const INDEX_OID_BASE: u32 = 1 << 30;
/// Between the OIDs of one table's consecutive index ids.
pub const INDEX_OID_STRIDE: u32 = 1 << 22;
