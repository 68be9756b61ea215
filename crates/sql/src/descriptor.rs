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
}
