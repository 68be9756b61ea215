//! Schemas: `CREATE SCHEMA`, `DROP SCHEMA`, and the catalog records
//! behind them.
//!
//! A schema is a namespace of relations inside a database. Every database
//! has `public`, which always exists and cannot be dropped; the system
//! schemas (`pg_catalog`, `information_schema`, Shoal's own) hold no user
//! relations. Other schemas are catalog records (`0x01 'S' <database>
//! <name>`, JSON), created and dropped in the statement's transaction like
//! any catalog write. A schema's OID is derived from an id of the table id
//! counter, so it is the same on every node and never reused.
//!
//! A relation records its schema in its own key and descriptor; a name is
//! turned into (schema, name) by the session's [`Scope`](crate::names::Scope)
//! (`search_path`). Creating a relation in a schema rewrites the schema's
//! record in the same transaction, so it conflicts with a concurrent
//! `DROP SCHEMA` instead of leaving a relation in no schema.
//!
//! `DROP SCHEMA … CASCADE` drops the schema's views, then its tables (with
//! the foreign keys and views elsewhere that depend on them, as `DROP TABLE
//! … CASCADE` does), then its remaining sequences; without `CASCADE` a
//! schema that holds anything is not dropped (2BP01).

use serde::{Deserialize, Serialize};
use shoal_kv::Txn;

use datafusion::sql::sqlparser::ast;

use crate::catalog;
use crate::ddl::AfterCommit;
use crate::error::{Result, SqlError};
use crate::names::{self, Scope};
use crate::providers::PUBLIC_SCHEMA;
use crate::session::Output;

/// A user schema.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SchemaDescriptor {
    pub id: u32,
    pub database: String,
    pub name: String,
}

impl SchemaDescriptor {
    pub fn oid(&self) -> u32 {
        crate::descriptor::FIRST_USER_OID + self.id
    }
}

/// Catalog key kind of schema records (`catalog::named_key`, with an
/// empty schema part).
const KIND: u8 = b'S';

fn schema_key(database: &str, name: &str) -> Vec<u8> {
    catalog::named_key(KIND, database, "", name)
}

/// Schemas that exist in every database and hold no user relations.
pub fn is_system(name: &str) -> bool {
    matches!(
        name,
        crate::pg_catalog::PG_CATALOG
            | crate::information_schema::SCHEMA
            | "information_schema"
            | crate::cluster_views::SHOAL_INTERNAL
    )
}

/// Whether user relations can live in schema `name`.
pub fn schema_exists(txn: &Txn, database: &str, name: &str) -> Result<bool> {
    if name == PUBLIC_SCHEMA {
        return Ok(true);
    }
    if is_system(name) {
        return Ok(false);
    }
    Ok(txn.get_untracked(&schema_key(database, name))?.is_some())
}

/// A user schema's record.
pub fn schema_by_name(txn: &Txn, database: &str, name: &str) -> Result<Option<SchemaDescriptor>> {
    txn.get_untracked(&schema_key(database, name))?
        .map(|b| catalog::decode_named(&b))
        .transpose()
}

/// The user schemas of a database (not `public`), in name order.
pub fn list_schemas(txn: &Txn, database: &str) -> Result<Vec<SchemaDescriptor>> {
    catalog::list_named(txn, KIND, database, "")
}

/// The OID of each schema of `database` by name, for catalog rows: user
/// schemas, `pg_catalog`, and `public`'s for any other name.
pub fn namespace_oids(txn: &Txn, database: &str) -> Result<impl Fn(&str) -> i64 + use<>> {
    use crate::pg_catalog::{PG_CATALOG, PG_CATALOG_OID, PUBLIC_OID};
    let mut oids: std::collections::HashMap<String, i64> = list_schemas(txn, database)?
        .into_iter()
        .map(|s| (s.name.clone(), s.oid() as i64))
        .collect();
    oids.insert(PG_CATALOG.to_string(), PG_CATALOG_OID);
    Ok(move |schema: &str| oids.get(schema).copied().unwrap_or(PUBLIC_OID))
}

fn put(txn: &Txn, schema: &SchemaDescriptor) -> Result<()> {
    let json = serde_json::to_vec(schema)
        .map_err(|e| SqlError::Internal(format!("cannot encode schema: {e}")))?;
    txn.put(schema_key(&schema.database, &schema.name), json)?;
    Ok(())
}

/// Marks that the transaction creates a relation in `schema`: its record
/// is written again, so a concurrent `DROP SCHEMA` conflicts with it.
pub fn touch(txn: &Txn, database: &str, schema: &str) -> Result<()> {
    if let Some(s) = schema_by_name(txn, database, schema)? {
        put(txn, &s)?;
    }
    Ok(())
}

/// `CREATE SCHEMA [IF NOT EXISTS] name [AUTHORIZATION user]`.
pub fn create(
    txn: &Txn,
    database: &str,
    user: &str,
    name: &ast::SchemaName,
    if_not_exists: bool,
) -> Result<Output> {
    let (name, owner) = match name {
        ast::SchemaName::Simple(n) => (n, None),
        ast::SchemaName::NamedAuthorization(n, owner) => (n, Some(owner)),
        ast::SchemaName::UnnamedAuthorization(owner) => {
            return Err(SqlError::NotSupported(format!(
                "CREATE SCHEMA AUTHORIZATION {owner} without a schema name"
            )));
        }
    };
    if let Some(owner) = owner
        && names::fold(owner) != user
    {
        return Err(SqlError::NotSupported(
            "schemas owned by another role".into(),
        ));
    }
    let name = single_name(name)?;
    if name.starts_with("pg_") {
        return Err(SqlError::ReservedName(format!(
            "unacceptable schema name \"{name}\": the prefix \"pg_\" is reserved for system schemas"
        )));
    }
    if name == PUBLIC_SCHEMA || is_system(&name) || schema_by_name(txn, database, &name)?.is_some()
    {
        if if_not_exists {
            return Ok(Output::command("CREATE SCHEMA"));
        }
        return Err(SqlError::DuplicateSchema(name));
    }
    put(
        txn,
        &SchemaDescriptor {
            id: catalog::allocate_table_id(txn)?,
            database: database.to_string(),
            name,
        },
    )?;
    Ok(Output::command("CREATE SCHEMA"))
}

fn single_name(name: &ast::ObjectName) -> Result<String> {
    match name.0.as_slice() {
        [part] => part
            .as_ident()
            .map(names::fold)
            .ok_or_else(|| SqlError::Syntax(format!("invalid schema name {name}"))),
        _ => Err(SqlError::Syntax(format!("improper schema name {name}"))),
    }
}

/// `DROP SCHEMA [IF EXISTS] name [, …] [CASCADE | RESTRICT]`.
pub fn drop(
    txn: &Txn,
    scope: &Scope,
    if_exists: bool,
    names_list: &[ast::ObjectName],
    cascade: bool,
    after_commit: &mut Vec<AfterCommit>,
) -> Result<Output> {
    let database = scope.database.as_str();
    for name in names_list {
        let name = single_name(name)?;
        if name == PUBLIC_SCHEMA || is_system(&name) {
            return Err(SqlError::NotSupported(format!(
                "dropping schema \"{name}\""
            )));
        }
        let Some(schema) = schema_by_name(txn, database, &name)? else {
            if if_exists {
                continue;
            }
            return Err(SqlError::InvalidSchemaName(format!(
                "schema \"{name}\" does not exist"
            )));
        };
        drop_contents(txn, database, &name, cascade, after_commit)?;
        txn.delete(schema_key(database, &schema.name))?;
    }
    Ok(Output::command("DROP SCHEMA"))
}

/// Drops every relation of a schema (`cascade`), or fails if it has any.
pub(crate) fn drop_contents(
    txn: &Txn,
    database: &str,
    schema: &str,
    cascade: bool,
    after_commit: &mut Vec<AfterCommit>,
) -> Result<()> {
    let tables: Vec<_> = catalog::list_tables(txn, database)?
        .into_iter()
        .filter(|d| d.schema == schema)
        .collect();
    let views = crate::views::list_views(txn, database, schema)?;
    let sequences = crate::sequences::list_sequences(txn, database, schema)?;
    if !cascade {
        let first = tables
            .first()
            .map(|t| format!("table {}", t.name))
            .or_else(|| views.first().map(|v| format!("view {}", v.name)))
            .or_else(|| sequences.first().map(|q| format!("sequence {}", q.name)));
        if let Some(object) = first {
            return Err(SqlError::DependentObjects(format!(
                "cannot drop schema {schema} because other objects depend on it: {object} depends on schema {schema}"
            )));
        }
        return Ok(());
    }
    for view in &views {
        // An earlier view's cascade may have dropped it already.
        if crate::views::view_exists(txn, database, schema, &view.name)? {
            crate::views::drop_view(txn, view, true)?;
        }
    }
    crate::ddl::drop_tables(txn, tables, true, after_commit)?;
    for seq in crate::sequences::list_sequences(txn, database, schema)? {
        crate::sequences::delete(txn, &seq)?;
    }
    Ok(())
}
