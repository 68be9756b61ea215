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
//!
//! Constraints live in descriptors too: `CHECK` expressions as SQL text,
//! foreign keys in the referencing (child) table, and in the referenced
//! (parent) table the ids of its children (`referenced_by`), so a write to
//! either side finds what it must keep whole without searching the
//! catalog. A foreign key's DDL changes both descriptors in one
//! transaction.

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
    /// What rows written before the column was added read in it (its
    /// `DEFAULT` when added, in stored form; `row.rs`): PostgreSQL's
    /// `attmissingval`, so adding a column never rewrites the table.
    #[serde(default)]
    pub missing: Option<Vec<u8>>,
    /// Dropped by `ALTER TABLE … DROP COLUMN`: kept (hidden, renamed,
    /// nullable) so the positions of stored values stay as they were,
    /// like PostgreSQL's `attisdropped`.
    #[serde(default)]
    pub dropped: bool,
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
            missing: None,
            dropped: false,
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
    /// The id the next secondary index, check or foreign key gets (ids 0
    /// and 1 are never secondary: 1 is the primary index).
    #[serde(default = "first_secondary_index_id")]
    pub next_index_id: u8,
    /// `CHECK` constraints, in creation order (`checks.rs`).
    #[serde(default)]
    pub checks: Vec<CheckConstraint>,
    /// This table's `FOREIGN KEY` constraints (`foreign_keys.rs`).
    #[serde(default)]
    pub foreign_keys: Vec<ForeignKey>,
    /// Ids of the tables whose foreign keys reference this one (this
    /// table's own id for a self-reference), each once: what a write to
    /// this table must look at to keep their references whole.
    #[serde(default)]
    pub referenced_by: Vec<u32>,
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

/// A `CHECK (expr)` constraint: every row written must make `expr` true
/// or NULL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckConstraint {
    /// Drawn from the table's `next_index_id`, like an index's: it derives
    /// the constraint's OID (`catalog_constraints.rs`).
    pub id: u8,
    pub name: String,
    /// The expression as SQL text over the table's column names.
    pub expr: String,
}

/// A `FOREIGN KEY (columns) REFERENCES parent (parent_columns)` constraint
/// of the table that holds it (the child).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForeignKey {
    /// Drawn from the table's `next_index_id`, like a check's.
    pub id: u8,
    pub name: String,
    /// Positions of the referencing columns in this table.
    pub columns: Vec<usize>,
    /// The referenced table's id.
    pub parent: u32,
    /// Positions of the referenced columns in the parent, pairwise with
    /// `columns`: the parent's primary key or a unique index's columns.
    pub parent_columns: Vec<usize>,
    /// The parent's index holding those columns: 1 for its primary key,
    /// else a unique index's id (which cannot be dropped while this key
    /// needs it).
    pub parent_index: u8,
    pub on_delete: ReferentialAction,
    pub on_update: ReferentialAction,
    /// `DEFERRABLE`: its checks may wait for `COMMIT`
    /// (`statement_constraints.rs`).
    #[serde(default)]
    pub deferrable: bool,
    /// `INITIALLY DEFERRED`: they do unless `SET CONSTRAINTS` says
    /// otherwise.
    #[serde(default)]
    pub initially_deferred: bool,
}

/// What a change to a referenced row does to the rows referencing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReferentialAction {
    /// Refuse the change if referencing rows remain at the end of the
    /// statement (the default).
    NoAction,
    /// Refuse the change if referencing rows exist.
    Restrict,
    /// Delete the referencing rows, or change their references along.
    Cascade,
    /// Set the referencing columns to NULL.
    SetNull,
}

impl ReferentialAction {
    /// As `pg_constraint.confdeltype` / `confupdtype` spell it.
    pub fn pg_code(self) -> &'static str {
        match self {
            ReferentialAction::NoAction => "a",
            ReferentialAction::Restrict => "r",
            ReferentialAction::Cascade => "c",
            ReferentialAction::SetNull => "n",
        }
    }

    /// As SQL spells it.
    pub fn sql(self) -> &'static str {
        match self {
            ReferentialAction::NoAction => "NO ACTION",
            ReferentialAction::Restrict => "RESTRICT",
            ReferentialAction::Cascade => "CASCADE",
            ReferentialAction::SetNull => "SET NULL",
        }
    }
}

/// Field metadata key: the OID of the table a result column comes from.
pub const TABLE_OID_KEY: &str = "pg_table_oid";
/// Field metadata key: that column's number in its table (`attnum`).
pub const ATTNUM_KEY: &str = "pg_attnum";

impl TableDescriptor {
    /// The table's OID in `pg_class`: derived from its id, so it is the same
    /// on every node and after every restart.
    pub fn oid(&self) -> u32 {
        FIRST_USER_OID + self.id
    }

    /// Whether writes to this table have constraints beyond NOT NULL and
    /// uniqueness to keep: checks, foreign keys, or references to it.
    pub fn has_row_constraints(&self) -> bool {
        !self.checks.is_empty() || !self.foreign_keys.is_empty() || !self.referenced_by.is_empty()
    }

    /// A new id for an index or constraint of this table (never reused).
    pub fn allocate_object_id(&mut self) -> crate::error::Result<u8> {
        if self.next_index_id == u8::MAX {
            return Err(crate::error::SqlError::ProgramLimitExceeded(format!(
                "table \"{}\" has too many indexes and constraints",
                self.name
            )));
        }
        let id = self.next_index_id;
        self.next_index_id += 1;
        Ok(id)
    }

    /// Whether a constraint (primary key, unique, check or foreign key) of
    /// this table is named `name`.
    pub fn has_constraint_named(&self, name: &str) -> bool {
        name == self.pkey_name()
            || self.indexes.iter().any(|i| i.constraint && i.name == name)
            || self.checks.iter().any(|c| c.name == name)
            || self.foreign_keys.iter().any(|f| f.name == name)
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

    /// The Arrow schema over the given column positions. Each visible
    /// column's field names the table's OID and the column's number, which
    /// the front end reports in RowDescription (drivers show them as a
    /// result column's table).
    pub fn arrow_schema(&self, columns: &[usize]) -> SchemaRef {
        let visible = self.visible_columns();
        Arc::new(Schema::new(
            columns
                .iter()
                .map(|i| {
                    let c = &self.columns[*i];
                    let field = c.ty.arrow_field(&c.name, c.nullable);
                    match visible.iter().position(|p| p == i) {
                        Some(n) => {
                            let mut metadata = field.metadata().clone();
                            metadata.insert(TABLE_OID_KEY.into(), self.oid().to_string());
                            metadata.insert(ATTNUM_KEY.into(), (n + 1).to_string());
                            field.with_metadata(metadata)
                        }
                        None => field,
                    }
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
