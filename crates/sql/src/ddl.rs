//! `CREATE TABLE` and `DROP TABLE`.
//!
//! A new table gets a fresh id and a descriptor in the catalog, written in
//! the statement's transaction. Constraints Shoal does not enforce yet
//! (UNIQUE, CHECK, FOREIGN KEY, DEFAULT) are refused with "not supported"
//! rather than accepted and ignored: a constraint that silently does nothing
//! would let bad data in.
//!
//! A new table gets its own range once its transaction commits: its key
//! span is split off ([`AfterCommit::SplitOff`]; splits are not
//! transactional, so they wait for the commit).
//!
//! Dropping a table deletes its descriptor in the statement's transaction;
//! from then on nothing can reach its rows (table ids are never reused).
//! Once that transaction commits, the rows are deleted range by range in
//! transactions of their own ([`AfterCommit::Purge`]), so dropping a big
//! table never builds one big transaction. If the node stops before that
//! ends, the rest stays, unreachable.

use std::collections::HashSet;

use datafusion::sql::sqlparser::ast::{
    self, ColumnOption, ObjectName, ObjectType, TableConstraint,
};
use std::sync::Arc;

use shoal_kv::{Kv, Txn};

use crate::catalog;
use crate::descriptor::{ColumnDescriptor, ROWID_COLUMN, TableDescriptor};
use crate::error::{Result, SqlError};
use crate::names;
use crate::providers::PUBLIC_SCHEMA;
use crate::row::{index_prefix, prefix_end, table_prefix};
use crate::session::Output;
use crate::types::SqlType;

pub fn create_table(
    txn: &Txn,
    database: &str,
    create: &ast::CreateTable,
    after_commit: &mut Vec<AfterCommit>,
) -> Result<Output> {
    if create.query.is_some() {
        return Err(SqlError::NotSupported("CREATE TABLE … AS".into()));
    }
    if create.temporary {
        return Err(SqlError::NotSupported("temporary tables".into()));
    }
    if create.like.is_some() || create.clone.is_some() || create.partition_of.is_some() {
        return Err(SqlError::NotSupported(
            "CREATE TABLE … LIKE / PARTITION OF".into(),
        ));
    }
    let name = names::table_name(&create.name, database)?;
    if catalog::table_by_name(txn, database, PUBLIC_SCHEMA, &name)?.is_some() {
        if create.if_not_exists {
            return Ok(Output::command("CREATE TABLE"));
        }
        return Err(SqlError::DuplicateTable(name));
    }
    if create.columns.is_empty() {
        return Err(SqlError::NotSupported("tables without columns".into()));
    }
    let mut columns = Vec::with_capacity(create.columns.len() + 1);
    let mut primary_key: Option<Vec<usize>> = None;
    let mut seen = HashSet::new();
    for (pos, def) in create.columns.iter().enumerate() {
        let col_name = names::fold(&def.name);
        if !seen.insert(col_name.clone()) {
            return Err(SqlError::DuplicateColumn(format!(
                "column \"{col_name}\" specified more than once"
            )));
        }
        let ty = SqlType::from_ast(&def.data_type)?;
        let mut nullable = true;
        for opt in &def.options {
            match &opt.option {
                ColumnOption::Null => nullable = true,
                ColumnOption::NotNull => nullable = false,
                ColumnOption::PrimaryKey(_) => {
                    if primary_key.is_some() {
                        return Err(multiple_pk(&name));
                    }
                    primary_key = Some(vec![pos]);
                }
                other => {
                    return Err(SqlError::NotSupported(format!("column constraint {other}")));
                }
            }
        }
        columns.push(ColumnDescriptor {
            name: col_name,
            ty,
            nullable,
            hidden: false,
        });
    }
    for constraint in &create.constraints {
        match constraint {
            TableConstraint::PrimaryKey(pk) => {
                if primary_key.is_some() {
                    return Err(multiple_pk(&name));
                }
                let mut positions = Vec::with_capacity(pk.columns.len());
                for ic in &pk.columns {
                    let col = match &ic.column.expr {
                        ast::Expr::Identifier(ident) => names::fold(ident),
                        other => {
                            return Err(SqlError::NotSupported(format!(
                                "expression {other} in a primary key"
                            )));
                        }
                    };
                    if ic.column.options.asc == Some(false) {
                        return Err(SqlError::NotSupported("DESC primary key columns".into()));
                    }
                    let p = columns.iter().position(|c| c.name == col).ok_or_else(|| {
                        SqlError::UndefinedColumn(format!(
                            "column \"{col}\" named in key does not exist"
                        ))
                    })?;
                    if positions.contains(&p) {
                        return Err(SqlError::DuplicateColumn(format!(
                            "column \"{col}\" appears twice in primary key constraint"
                        )));
                    }
                    positions.push(p);
                }
                primary_key = Some(positions);
            }
            other => {
                return Err(SqlError::NotSupported(format!("table constraint {other}")));
            }
        }
    }
    let primary_key = match primary_key {
        Some(pk) => {
            for p in &pk {
                if !columns[*p].ty.is_key_type() {
                    return Err(SqlError::NotSupported(format!(
                        "{} as a primary key column type",
                        columns[*p].ty.pg_name()
                    )));
                }
                // PostgreSQL makes primary key columns NOT NULL.
                columns[*p].nullable = false;
            }
            pk
        }
        None => {
            if columns.iter().any(|c| c.name == ROWID_COLUMN) {
                return Err(SqlError::NotSupported(format!(
                    "a column named \"{ROWID_COLUMN}\" in a table without a primary key"
                )));
            }
            columns.push(ColumnDescriptor {
                name: ROWID_COLUMN.into(),
                ty: SqlType::BigInt,
                nullable: false,
                hidden: true,
            });
            vec![columns.len() - 1]
        }
    };
    let desc = TableDescriptor {
        id: catalog::allocate_table_id(txn)?,
        database: database.to_string(),
        schema: PUBLIC_SCHEMA.to_string(),
        name,
        columns,
        primary_key,
        version: 1,
    };
    catalog::put_table(txn, &desc)?;
    after_commit.push(AfterCommit::SplitOff(desc.id));
    Ok(Output::command("CREATE TABLE"))
}

fn multiple_pk(table: &str) -> SqlError {
    SqlError::InvalidTableDefinition(format!(
        "multiple primary keys for table \"{table}\" are not allowed"
    ))
}

pub fn drop(
    txn: &Txn,
    database: &str,
    object_type: ObjectType,
    if_exists: bool,
    names_list: &[ObjectName],
    _cascade: bool,
    after_commit: &mut Vec<AfterCommit>,
) -> Result<Output> {
    if object_type != ObjectType::Table {
        return Err(SqlError::NotSupported(format!("DROP {object_type}")));
    }
    let mut found = Vec::new();
    for name in names_list {
        let table = names::table_name(name, database)?;
        match catalog::table_by_name(txn, database, PUBLIC_SCHEMA, &table)? {
            Some(desc) => found.push(desc),
            None if if_exists => {}
            None => return Err(SqlError::UndefinedTable(table)),
        }
    }
    for desc in found {
        catalog::delete_table(txn, &desc)?;
        after_commit.push(AfterCommit::Purge(desc.id));
    }
    Ok(Output::command("DROP TABLE"))
}

/// What DDL leaves to do once its transaction has committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterCommit {
    /// Give the new table its own range.
    SplitOff(u32),
    /// Delete the rows of the dropped table.
    Purge(u32),
}

/// Carries out what committed DDL left to do (module docs). A failure is
/// logged, not returned: the DDL itself has committed, and a table without
/// its own range, or an unreachable row left behind, changes no answer.
pub fn after_commit(kv: &Arc<Kv>, actions: &[AfterCommit]) {
    for &action in actions {
        let result = match action {
            AfterCommit::SplitOff(table_id) => {
                let start = table_prefix(table_id);
                let end = prefix_end(&start);
                kv.split_at(&start)
                    .and_then(|_| kv.split_at(&end))
                    .map(|_| 0)
            }
            AfterCommit::Purge(table_id) => {
                let start = index_prefix(table_id);
                kv.purge_span(&start, &prefix_end(&start), 1024)
            }
        };
        match result {
            Ok(rows) => tracing::debug!(?action, rows, "finished after commit"),
            Err(e) => tracing::warn!(?action, error = %e, "could not finish after commit"),
        }
    }
}
