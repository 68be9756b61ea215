//! Databases: `CREATE DATABASE`, `DROP DATABASE`, and the catalog records
//! behind them.
//!
//! Every cluster has the databases `shoal` and `postgres` (tools connect to
//! `postgres` first); other databases are catalog records (`0x01 'B'
//! <name>`, JSON) created in a transaction of their own. Each database is
//! its own namespace of schemas and relations: catalog keys start with the
//! database's name, and a session sees only the database it connected to.
//!
//! As in PostgreSQL, neither statement runs inside a transaction block
//! (25001), and a session cannot drop the database it is connected to
//! (55006). `DROP DATABASE` drops every schema and relation of the
//! database in its transaction and purges their rows after it commits.
//! Sessions of other nodes connected to a dropped database are not
//! disconnected: their next catalog read finds nothing, and new connections
//! are refused (3D000).

use serde::{Deserialize, Serialize};
use shoal_kv::Txn;

use datafusion::sql::sqlparser::ast;

use crate::catalog;
use crate::ddl::AfterCommit;
use crate::error::{Result, SqlError};
use crate::providers::PUBLIC_SCHEMA;
use crate::session::Output;

/// The databases every cluster has.
pub const BUILTIN: &[&str] = &["shoal", "postgres"];

/// A created database.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatabaseDescriptor {
    pub id: u32,
    pub name: String,
}

/// Catalog key kind of database records (`catalog::named_key`, with empty
/// database and schema parts).
const KIND: u8 = b'B';

fn database_key(name: &str) -> Vec<u8> {
    catalog::named_key(KIND, "", "", name)
}

/// The OID of a database: fixed for the built-in ones, derived from its
/// id for the others.
pub fn oid(txn: &Txn, name: &str) -> Result<Option<i64>> {
    Ok(match name {
        "postgres" => Some(5),
        "shoal" => Some(16_000),
        _ => database_by_name(txn, name)?
            .map(|d| i64::from(crate::descriptor::FIRST_USER_OID + d.id)),
    })
}

pub fn database_by_name(txn: &Txn, name: &str) -> Result<Option<DatabaseDescriptor>> {
    txn.get_untracked(&database_key(name))?
        .map(|b| catalog::decode_named(&b))
        .transpose()
}

/// Whether a database of this name exists.
pub fn exists(txn: &Txn, name: &str) -> Result<bool> {
    Ok(BUILTIN.contains(&name) || database_by_name(txn, name)?.is_some())
}

/// Every database with its OID: the built-in ones, then the created ones
/// in name order.
pub fn list(txn: &Txn) -> Result<Vec<(String, i64)>> {
    let mut out: Vec<(String, i64)> = vec![("postgres".into(), 5), ("shoal".into(), 16_000)];
    for d in catalog::list_named::<DatabaseDescriptor>(txn, KIND, "", "")? {
        let oid = i64::from(crate::descriptor::FIRST_USER_OID + d.id);
        out.push((d.name, oid));
    }
    Ok(out)
}

fn single_name(name: &ast::ObjectName) -> Result<String> {
    match name.0.as_slice() {
        [part] => part
            .as_ident()
            .map(crate::names::fold)
            .ok_or_else(|| SqlError::Syntax(format!("invalid database name {name}"))),
        _ => Err(SqlError::Syntax(format!("improper database name {name}"))),
    }
}

/// `CREATE DATABASE [IF NOT EXISTS] name`.
pub fn create(txn: &Txn, name: &ast::ObjectName, if_not_exists: bool) -> Result<Output> {
    let name = single_name(name)?;
    if exists(txn, &name)? {
        if if_not_exists {
            return Ok(Output::command("CREATE DATABASE"));
        }
        return Err(SqlError::DuplicateDatabase(name));
    }
    let record = DatabaseDescriptor {
        id: catalog::allocate_table_id(txn)?,
        name,
    };
    let json = serde_json::to_vec(&record)
        .map_err(|e| SqlError::Internal(format!("cannot encode database: {e}")))?;
    txn.put(database_key(&record.name), json)?;
    Ok(Output::command("CREATE DATABASE"))
}

/// `DROP DATABASE [IF EXISTS] name`, from a session connected to
/// `current`.
pub fn drop(
    txn: &Txn,
    current: &str,
    if_exists: bool,
    names_list: &[ast::ObjectName],
    after_commit: &mut Vec<AfterCommit>,
) -> Result<Output> {
    for name in names_list {
        let name = single_name(name)?;
        if name == current {
            return Err(SqlError::ObjectInUse(
                "cannot drop the currently open database".into(),
            ));
        }
        if BUILTIN.contains(&name.as_str()) {
            return Err(SqlError::NotSupported(format!(
                "dropping database \"{name}\""
            )));
        }
        if database_by_name(txn, &name)?.is_none() {
            if if_exists {
                continue;
            }
            return Err(SqlError::UndefinedDatabase(name));
        }
        for schema in crate::schemas::list_schemas(txn, &name)? {
            crate::schemas::drop_contents(txn, &name, &schema.name, true, after_commit)?;
        }
        crate::schemas::drop_contents(txn, &name, PUBLIC_SCHEMA, true, after_commit)?;
        for schema in crate::schemas::list_schemas(txn, &name)? {
            txn.delete(catalog::named_key(b'S', &name, "", &schema.name))?;
        }
        txn.delete(database_key(&name))?;
    }
    Ok(Output::command("DROP DATABASE"))
}
