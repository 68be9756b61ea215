//! How DataFusion finds Shoal's tables: catalog and schema providers.
//!
//! A session registers one [`ShoalCatalog`] named after its database. Each
//! user schema (`public`, and those `CREATE SCHEMA` made) resolves names
//! through the KV catalog, reading with the session's current transaction
//! (held in a [`TxnSlot`]); so a table created earlier in the same
//! transaction is visible and one dropped is gone. A schema-qualified name
//! (`app.t`) is looked up in that schema only; a schema that does not
//! exist holds nothing (42P01, as in PostgreSQL).
//!
//! An unqualified name is looked up through the session's default schema,
//! [`SEARCH_PATH_SCHEMA`]: the schemas of `search_path` that exist, in
//! order, then `pg_catalog`, so `SELECT … FROM pg_class` reads the system
//! catalog as in PostgreSQL. (PostgreSQL searches `pg_catalog` first; a
//! user table of the same name wins here, so a table is never hidden,
//! qualified or not.) `search_path` is read on every lookup, so `SET`,
//! `SET LOCAL` and a rolled-back block's settings all take effect at once.
//!
//! DML plans its reads through the same providers under a reserved name
//! ([`DML_PREFIX`] + table name, qualified by the table's schema) that
//! also exposes hidden key columns, so `DELETE` and `UPDATE` can address
//! rows of tables without a primary key.

use std::fmt;
use std::sync::{Arc, OnceLock, Weak};

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider};
use datafusion::datasource::TableProvider;
use datafusion::error::{DataFusionError, Result as DfResult};
use parking_lot::Mutex;
use shoal_kv::{Kv, Txn};

use crate::catalog;
use crate::cluster_views::{ClusterSchema, SHOAL_INTERNAL};
use crate::error::SqlError;
use crate::pg_catalog::{PG_CATALOG, PgCatalogSchema};
use crate::scan::TableScan;

/// Table names starting with this resolve to the DML view of a table.
pub const DML_PREFIX: &str = "shoal_dml$";

/// The schema every database has.
pub const PUBLIC_SCHEMA: &str = "public";

/// The session's default schema in DataFusion: unqualified names are
/// looked up through it, in the schemas of `search_path`, then in
/// `pg_catalog`. Not a schema a client can name or see listed.
pub const SEARCH_PATH_SCHEMA: &str = "shoal$search_path";

/// The transaction the session's current statement runs in.
pub type TxnSlot = Arc<Mutex<Option<Arc<Txn>>>>;

/// What a session's catalog needs to know of it: its variables
/// (`search_path`) and its user (`$user`).
pub type SessionVars = (crate::vars::VarsReader, String);

pub struct ShoalCatalog {
    database: String,
    slot: TxnSlot,
    vars: SessionVars,
    pg_catalog: Arc<PgCatalogSchema>,
    cluster: Arc<ClusterSchema>,
    /// `information_schema` views DataFusion lacks (not listed).
    information: Arc<crate::information_schema::InformationSchemaExtras>,
    session: Arc<OnceLock<SessionRef>>,
}

impl ShoalCatalog {
    pub fn new(
        database: String,
        slot: TxnSlot,
        kv: Arc<Kv>,
        metrics: Arc<crate::cluster_views::SqlMetrics>,
        vars: SessionVars,
    ) -> ShoalCatalog {
        let pg_catalog = Arc::new(PgCatalogSchema::new(database.clone(), slot.clone()));
        let information = Arc::new(crate::information_schema::InformationSchemaExtras::new(
            database.clone(),
            slot.clone(),
        ));
        ShoalCatalog {
            database,
            slot,
            vars,
            information,
            pg_catalog,
            cluster: Arc::new(ClusterSchema::new(kv, metrics)),
            session: Default::default(),
        }
    }

    /// The session whose planner views are planned with (`views.rs`).
    pub fn set_session(&self, state: SessionRef) {
        let _ = self.session.set(state);
    }

    /// The provider of one user schema (which need not exist: then it
    /// holds nothing).
    fn user_schema(&self, name: &str) -> ShoalSchema {
        ShoalSchema {
            database: self.database.clone(),
            schema: name.to_string(),
            slot: self.slot.clone(),
            session: self.session.clone(),
        }
    }

    fn txn(&self) -> Option<Arc<Txn>> {
        self.slot.lock().clone()
    }
}

/// The planner state of the session a catalog belongs to: weak, since the
/// session owns the catalog.
pub type SessionRef = Weak<parking_lot::RwLock<datafusion::execution::SessionState>>;

impl fmt::Debug for ShoalCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShoalCatalog({})", self.database)
    }
}

impl CatalogProvider for ShoalCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names = vec![PUBLIC_SCHEMA.to_string()];
        if let Some(txn) = self.txn() {
            match crate::schemas::list_schemas(&txn, &self.database) {
                Ok(schemas) => names.extend(schemas.into_iter().map(|s| s.name)),
                Err(e) => tracing::warn!("listing schemas failed: {e}"),
            }
        }
        names.push(PG_CATALOG.to_string());
        names.push(SHOAL_INTERNAL.to_string());
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        match name {
            PG_CATALOG => Some(self.pg_catalog.clone() as Arc<dyn SchemaProvider>),
            SHOAL_INTERNAL => Some(self.cluster.clone() as Arc<dyn SchemaProvider>),
            crate::information_schema::SCHEMA => {
                Some(self.information.clone() as Arc<dyn SchemaProvider>)
            }
            SEARCH_PATH_SCHEMA => Some(Arc::new(SearchPath {
                catalog_schemas: self.user_schema(PUBLIC_SCHEMA),
                vars: self.vars.clone(),
                pg_catalog: self.pg_catalog.clone(),
            })),
            _ => Some(Arc::new(self.user_schema(name))),
        }
    }
}

/// The search path as a schema (see [`SEARCH_PATH_SCHEMA`]).
struct SearchPath {
    /// A provider of the session's database, to look schemas up with.
    catalog_schemas: ShoalSchema,
    vars: SessionVars,
    pg_catalog: Arc<PgCatalogSchema>,
}

impl fmt::Debug for SearchPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SearchPath({})", self.catalog_schemas.database)
    }
}

impl SearchPath {
    /// The schemas of the path that exist, in order.
    fn schemas(&self) -> DfResult<Vec<ShoalSchema>> {
        let base = &self.catalog_schemas;
        let scope = crate::names::Scope {
            database: base.database.clone(),
            path: crate::names::parse_search_path(
                &self.vars.0.get("search_path").unwrap_or_default(),
                &self.vars.1,
            ),
        };
        let txn = base.txn()?;
        Ok(scope
            .existing(&txn)
            .map_err(|e| DataFusionError::External(Box::new(e)))?
            .into_iter()
            .map(|schema| ShoalSchema {
                schema,
                ..base.clone()
            })
            .collect())
    }
}

#[async_trait]
impl SchemaProvider for SearchPath {
    fn table_names(&self) -> Vec<String> {
        Vec::new()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        for schema in self.schemas()? {
            if let Some(t) = schema.table(name).await? {
                return Ok(Some(t));
            }
        }
        self.pg_catalog.table(name).await
    }

    fn table_exist(&self, name: &str) -> bool {
        self.pg_catalog.table_exist(name)
            || self
                .schemas()
                .is_ok_and(|schemas| schemas.iter().any(|s| s.table_exist(name)))
    }
}

#[derive(Clone)]
pub struct ShoalSchema {
    database: String,
    schema: String,
    slot: TxnSlot,
    session: Arc<OnceLock<SessionRef>>,
}

impl fmt::Debug for ShoalSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShoalSchema({}.{})", self.database, self.schema)
    }
}

impl ShoalSchema {
    fn txn(&self) -> DfResult<Arc<Txn>> {
        self.slot.lock().clone().ok_or_else(|| {
            DataFusionError::External(Box::new(SqlError::Internal(
                "no transaction for catalog lookup".into(),
            )))
        })
    }
}

#[async_trait]
impl SchemaProvider for ShoalSchema {
    fn table_names(&self) -> Vec<String> {
        let Ok(txn) = self.txn() else {
            return Vec::new();
        };
        let views = crate::views::list_views(&txn, &self.database, &self.schema);
        match catalog::list_tables(&txn, &self.database) {
            Ok(tables) => tables
                .iter()
                .filter(|t| t.schema == self.schema)
                .map(|t| t.name.clone())
                .chain(views.into_iter().flatten().map(|v| v.name))
                .collect(),
            Err(e) => {
                tracing::warn!("listing tables failed: {e}");
                Vec::new()
            }
        }
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let txn = self.txn()?;
        let (name, with_hidden) = match name.strip_prefix(DML_PREFIX) {
            Some(rest) => (rest, true),
            None => (name, false),
        };
        if let Some(d) = catalog::table_by_name(&txn, &self.database, &self.schema, name)? {
            return Ok(Some(Arc::new(TableScan::new(d, txn, with_hidden))));
        }
        let Some(view) = crate::views::view_by_name(&txn, &self.database, &self.schema, name)?
        else {
            return Ok(None);
        };
        let state = self
            .session
            .get()
            .and_then(Weak::upgrade)
            .map(|s| s.read().clone())
            .ok_or_else(|| {
                DataFusionError::External(Box::new(SqlError::Internal(
                    "no session to plan a view in".into(),
                )))
            })?;
        Ok(Some(crate::views::provider(&state, &view).await?))
    }

    fn table_exist(&self, name: &str) -> bool {
        let Ok(txn) = self.txn() else { return false };
        matches!(
            catalog::table_by_name(&txn, &self.database, &self.schema, name),
            Ok(Some(_))
        ) || matches!(
            crate::views::view_exists(&txn, &self.database, &self.schema, name),
            Ok(true)
        )
    }
}
