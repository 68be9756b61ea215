//! Views: named queries, stored in the catalog and planned where they are
//! read.
//!
//! `CREATE VIEW v AS <query>` plans the query once, to check it and learn
//! its columns and the relations it reads, then stores a [`ViewDescriptor`]
//! under the view's name (`0x01 'w' <database> <schema> <name>`) in the
//! statement's transaction. Views share the relation namespace with tables
//! and indexes (42P07), and get an id from the table id counter, so their
//! OIDs are stable and never collide with a table's.
//!
//! A query naming the view gets the stored query planned in its own
//! session (`providers.rs`), as DataFusion's `ViewTable`: the optimizer
//! inlines it, so filters reach the underlying tables' scans and their
//! indexes. A view holds no data and reads at the statement's snapshot like
//! any table.
//!
//! **Dependencies.** A view records the relations its query reads.
//! Dropping a relation a view reads fails with 2BP01, unless `CASCADE`,
//! which drops those views too. Since a view can only name relations that
//! exist and none can be dropped while read, views never form a cycle, and
//! planning one always ends. `CREATE OR REPLACE VIEW` is not supported
//! (it could create a cycle without this check being redone).

use std::sync::Arc;

use datafusion::sql::sqlparser::ast;
use serde::{Deserialize, Serialize};
use shoal_kv::Txn;

use crate::catalog;
use crate::error::{Result, SqlError};
use crate::names::{self, quote};
use crate::providers::PUBLIC_SCHEMA;
use crate::session::{Output, Session};

/// A stored view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewDescriptor {
    /// From the table id counter: the OID is `FIRST_USER_OID + id`.
    pub id: u32,
    pub database: String,
    pub schema: String,
    pub name: String,
    /// The query, as planned when the view is read.
    pub sql: String,
    /// Output column names.
    pub columns: Vec<String>,
    /// Names of the relations (tables, views) the query reads.
    pub depends_on: Vec<String>,
}

impl ViewDescriptor {
    pub fn oid(&self) -> u32 {
        crate::descriptor::FIRST_USER_OID + self.id
    }
}

/// Catalog key kind of ViewDescriptors (`catalog::named_key`).
const KIND: u8 = b'w';

fn view_key(database: &str, schema: &str, name: &str) -> Vec<u8> {
    catalog::named_key(KIND, database, schema, name)
}

fn decode(bytes: &[u8]) -> Result<ViewDescriptor> {
    catalog::decode_named(bytes)
}

/// A view by name.
pub fn view_by_name(txn: &Txn, database: &str, name: &str) -> Result<Option<ViewDescriptor>> {
    txn.get_untracked(&view_key(database, PUBLIC_SCHEMA, name))?
        .map(|b| decode(&b))
        .transpose()
}

/// Every view of a database, in name order.
pub fn list_views(txn: &Txn, database: &str) -> Result<Vec<ViewDescriptor>> {
    catalog::list_named(txn, KIND, database, PUBLIC_SCHEMA)
}

/// Whether a view has this name (for the shared relation namespace).
pub fn view_exists(txn: &Txn, database: &str, schema: &str, name: &str) -> Result<bool> {
    Ok(txn
        .get_untracked(&view_key(database, schema, name))?
        .is_some())
}

/// `CREATE VIEW`.
pub async fn create_view(session: &Session, txn: &Txn, create: &ast::CreateView) -> Result<Output> {
    if create.materialized {
        return Err(SqlError::NotSupported("materialized views".into()));
    }
    if create.or_replace || create.or_alter {
        return Err(SqlError::NotSupported("CREATE OR REPLACE VIEW".into()));
    }
    if create.temporary {
        return Err(SqlError::NotSupported("temporary views".into()));
    }
    let database = session.database();
    let name = names::table_name(&create.name, database)?;
    if catalog::relation_exists(txn, database, PUBLIC_SCHEMA, &name)? {
        if create.if_not_exists {
            return Ok(Output::command("CREATE VIEW"));
        }
        return Err(SqlError::DuplicateTable(name));
    }
    let query = create.query.to_string();
    let plan = session
        .plan(&ast::Statement::Query(create.query.clone()))
        .await?;
    let mut columns: Vec<String> = plan
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let sql = if create.columns.is_empty() {
        query
    } else {
        if create.columns.len() > columns.len() {
            return Err(SqlError::Syntax(
                "CREATE VIEW specifies more column names than columns".into(),
            ));
        }
        for (c, def) in columns.iter_mut().zip(&create.columns) {
            *c = names::fold(&def.name);
        }
        let list: Vec<String> = columns.iter().map(|c| quote(c)).collect();
        format!(
            "SELECT * FROM ({query}) AS {}({})",
            quote(&name),
            list.join(", ")
        )
    };
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = columns.iter().find(|c| !seen.insert(c.as_str())) {
        return Err(SqlError::DuplicateColumn(format!(
            "column \"{dup}\" specified more than once"
        )));
    }
    let view = ViewDescriptor {
        id: catalog::allocate_table_id(txn)?,
        database: database.to_string(),
        schema: PUBLIC_SCHEMA.to_string(),
        name,
        sql,
        columns,
        depends_on: relations_named(txn, database, &create.query)?,
    };
    put_view(txn, &view)?;
    Ok(Output::command("CREATE VIEW"))
}

fn put_view(txn: &Txn, view: &ViewDescriptor) -> Result<()> {
    let json = serde_json::to_vec(view)
        .map_err(|e| SqlError::Internal(format!("cannot encode view: {e}")))?;
    txn.put(view_key(&view.database, &view.schema, &view.name), json)?;
    Ok(())
}

/// The user relations (tables, views) a query names, subqueries included.
/// Taken from the text, not the plan: planning inlines views, and a view
/// must depend on the views it names, not only on their tables. A name
/// that is no relation (a CTE's) is left out.
fn relations_named(txn: &Txn, database: &str, query: &ast::Query) -> Result<Vec<String>> {
    let mut named = Vec::new();
    let _ = ast::visit_relations(query, |name: &ast::ObjectName| {
        if let Ok(n) = names::table_name(name, database)
            && !named.contains(&n)
        {
            named.push(n);
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    let mut out = Vec::with_capacity(named.len());
    for n in named {
        if catalog::relation_exists(txn, database, PUBLIC_SCHEMA, &n)? {
            out.push(n);
        }
    }
    Ok(out)
}

/// `DROP VIEW [IF EXISTS] name [, …] [CASCADE]`.
pub fn drop_views(
    txn: &Txn,
    database: &str,
    if_exists: bool,
    names_list: &[ast::ObjectName],
    cascade: bool,
) -> Result<Output> {
    for name in names_list {
        let name = names::table_name(name, database)?;
        if view_by_name(txn, database, &name)?.is_none() {
            if catalog::relation_exists(txn, database, PUBLIC_SCHEMA, &name)? {
                return Err(SqlError::WrongObjectType(format!(
                    "\"{name}\" is not a view"
                )));
            }
            if if_exists {
                continue;
            }
            return Err(SqlError::UndefinedTable(name));
        }
        drop_dependents(txn, database, &name, cascade)?;
        txn.delete(view_key(database, PUBLIC_SCHEMA, &name))?;
    }
    Ok(Output::command("DROP VIEW"))
}

/// Before `relation` is dropped: the views reading it are dropped too
/// (`CASCADE`, recursively), or the drop fails with 2BP01.
/// A view that depends on `relation`, if any.
pub fn dependent(txn: &Txn, database: &str, relation: &str) -> Result<Option<String>> {
    Ok(list_views(txn, database)?
        .into_iter()
        .find(|v| v.depends_on.iter().any(|d| d == relation))
        .map(|v| v.name))
}

pub fn drop_dependents(txn: &Txn, database: &str, relation: &str, cascade: bool) -> Result<()> {
    let mut doomed = vec![relation.to_string()];
    let mut i = 0;
    let views = list_views(txn, database)?;
    while i < doomed.len() {
        for v in &views {
            if v.depends_on.contains(&doomed[i]) && !doomed.contains(&v.name) {
                if !cascade {
                    return Err(SqlError::DependentObjects(format!(
                        "cannot drop {} because other objects depend on it: view {} depends on {}",
                        relation, v.name, doomed[i]
                    )));
                }
                doomed.push(v.name.clone());
            }
        }
        i += 1;
    }
    for name in &doomed[1..] {
        txn.delete(view_key(database, PUBLIC_SCHEMA, name))?;
    }
    Ok(())
}

/// The provider of a view read in `state`'s session (module docs).
pub async fn provider(
    state: &datafusion::execution::SessionState,
    view: &ViewDescriptor,
) -> Result<Arc<dyn datafusion::datasource::TableProvider>> {
    let stmt = Session::parse(&view.sql)?
        .pop()
        .ok_or_else(|| SqlError::Internal(format!("view \"{}\" has no query", view.name)))?;
    let plan = state
        .statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(
            stmt,
        )))
        .await?;
    Ok(Arc::new(datafusion::catalog::view::ViewTable::new(
        plan,
        Some(view.sql.clone()),
    )))
}
