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
//! **Names.** A view's relations are bound when it is created, as in
//! PostgreSQL: the stored query names each with its schema, so readers
//! with another `search_path` read the same tables.
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
    /// The PostgreSQL type OID of each output column, as planned when the
    /// view was created (`information_schema.columns`).
    #[serde(default)]
    pub column_types: Vec<i64>,
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
pub fn view_by_name(
    txn: &Txn,
    database: &str,
    schema: &str,
    name: &str,
) -> Result<Option<ViewDescriptor>> {
    txn.get_untracked(&view_key(database, schema, name))?
        .map(|b| decode(&b))
        .transpose()
}

/// The views of one schema, in name order.
pub fn list_views(txn: &Txn, database: &str, schema: &str) -> Result<Vec<ViewDescriptor>> {
    catalog::list_named(txn, KIND, database, schema)
}

/// The views of every schema of a database.
pub fn all_views(txn: &Txn, database: &str) -> Result<Vec<ViewDescriptor>> {
    catalog::list_named_in_database(txn, KIND, database)
}

/// Whether a view has this name (for the shared relation namespace).
pub fn view_exists(txn: &Txn, database: &str, schema: &str, name: &str) -> Result<bool> {
    Ok(txn
        .get_untracked(&view_key(database, schema, name))?
        .is_some())
}

/// How a view records a relation it reads: the bare name in `public`
/// (as views stored before schemas did), schema and name elsewhere.
fn dependency(schema: &str, name: &str) -> String {
    match schema {
        PUBLIC_SCHEMA => name.to_string(),
        _ => format!("{schema}\u{1f}{name}"),
    }
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
    let scope = session.scope();
    let database = scope.database.as_str();
    let (schema, name) = scope.target(txn, &create.name)?;
    if catalog::relation_exists(txn, database, &schema, &name)? {
        if create.if_not_exists {
            return Ok(Output::command("CREATE VIEW"));
        }
        return Err(SqlError::DuplicateTable(name));
    }
    crate::schemas::touch(txn, database, &schema)?;
    // Names are bound now, as in PostgreSQL: the stored query names each
    // relation with its schema, whatever the reader's search path.
    let (query, depends_on) = bind_relations(txn, &scope, &create.query)?;
    let plan = session
        .plan(&ast::Statement::Query(Box::new(query.clone())))
        .await?;
    let query = query.to_string();
    let column_types = plan
        .schema()
        .fields()
        .iter()
        .map(|f| crate::functions::field_type_oid(f))
        .collect();
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
        schema,
        name,
        sql,
        columns,
        column_types,
        depends_on,
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

/// The query with every user relation it names (subqueries included)
/// qualified by its schema, and those relations as dependencies. Taken
/// from the text, not the plan: planning inlines views, and a view must
/// depend on the views it names, not only on their tables. A name that is
/// no relation (a CTE's) is left as written.
fn bind_relations(
    txn: &Txn,
    scope: &names::Scope,
    query: &ast::Query,
) -> Result<(ast::Query, Vec<String>)> {
    let mut query = query.clone();
    let mut ctes = std::collections::HashSet::new();
    let _ = ast::visit_statements(&ast::Statement::Query(Box::new(query.clone())), |s| {
        if let ast::Statement::Query(q) = s
            && let Some(with) = &q.with
        {
            for cte in &with.cte_tables {
                ctes.insert(names::fold(&cte.alias.name));
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    let mut depends_on = Vec::new();
    let mut failure = None;
    let _ = ast::visit_relations_mut(&mut query, |name: &mut ast::ObjectName| {
        if name.0.len() == 1
            && name.0[0]
                .as_ident()
                .is_some_and(|i| ctes.contains(&names::fold(i)))
        {
            return std::ops::ControlFlow::<()>::Continue(());
        }
        // A name that does not resolve (a catalog table's) is left as written.
        if let Ok((schema, n)) = scope.resolve(txn, name) {
            match catalog::relation_exists(txn, &scope.database, &schema, &n) {
                Ok(true) => {
                    let d = dependency(&schema, &n);
                    if !depends_on.contains(&d) {
                        depends_on.push(d);
                    }
                    *name = ast::ObjectName::from(vec![
                        ast::Ident::with_quote('"', schema),
                        ast::Ident::with_quote('"', n),
                    ]);
                }
                Ok(false) => {}
                Err(e) => failure = Some(e),
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    match failure {
        Some(e) => Err(e),
        None => Ok((query, depends_on)),
    }
}

/// `DROP VIEW [IF EXISTS] name [, …] [CASCADE]`.
pub fn drop_views(
    txn: &Txn,
    scope: &names::Scope,
    if_exists: bool,
    names_list: &[ast::ObjectName],
    cascade: bool,
) -> Result<Output> {
    let database = scope.database.as_str();
    for name in names_list {
        let (schema, name) = scope.resolve(txn, name)?;
        let Some(view) = view_by_name(txn, database, &schema, &name)? else {
            if catalog::relation_exists(txn, database, &schema, &name)? {
                return Err(SqlError::WrongObjectType(format!(
                    "\"{name}\" is not a view"
                )));
            }
            if if_exists {
                continue;
            }
            return Err(SqlError::UndefinedTable(name));
        };
        drop_view(txn, &view, cascade)?;
    }
    Ok(Output::command("DROP VIEW"))
}

/// Drops one view, and with `cascade` the views reading it.
pub fn drop_view(txn: &Txn, view: &ViewDescriptor, cascade: bool) -> Result<()> {
    drop_dependents(txn, &view.database, &view.schema, &view.name, cascade)?;
    txn.delete(view_key(&view.database, &view.schema, &view.name))?;
    Ok(())
}

/// A view that depends on `relation`, if any.
pub fn dependent(
    txn: &Txn,
    database: &str,
    schema: &str,
    relation: &str,
) -> Result<Option<String>> {
    let d = dependency(schema, relation);
    Ok(all_views(txn, database)?
        .into_iter()
        .find(|v| v.depends_on.contains(&d))
        .map(|v| v.name))
}

/// Before `relation` is dropped: the views reading it are dropped too
/// (`CASCADE`, recursively), or the drop fails with 2BP01.
pub fn drop_dependents(
    txn: &Txn,
    database: &str,
    schema: &str,
    relation: &str,
    cascade: bool,
) -> Result<()> {
    let views = all_views(txn, database)?;
    let mut doomed: Vec<(String, String)> = vec![(schema.to_string(), relation.to_string())];
    let mut i = 0;
    while i < doomed.len() {
        let d = dependency(&doomed[i].0, &doomed[i].1);
        for v in &views {
            let key = (v.schema.clone(), v.name.clone());
            if v.depends_on.contains(&d) && !doomed.contains(&key) {
                if !cascade {
                    return Err(SqlError::DependentObjects(format!(
                        "cannot drop {} because other objects depend on it: view {} depends on {}",
                        relation, v.name, doomed[i].1
                    )));
                }
                doomed.push(key);
            }
        }
        i += 1;
    }
    for (schema, name) in &doomed[1..] {
        txn.delete(view_key(database, schema, name))?;
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
