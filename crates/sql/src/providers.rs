//! How DataFusion finds Shoal's tables: catalog and schema providers.
//!
//! A session registers one [`ShoalCatalog`] named after its database. The
//! `public` schema resolves names through the KV catalog, reading with the
//! session's current transaction (held in a [`TxnSlot`]); so a table created
//! earlier in the same transaction is visible and one dropped is gone.
//!
//! A name that is no user table or view is looked up in `pg_catalog` too,
//! so `SELECT … FROM pg_class` reads the system catalog as in PostgreSQL.
//! (PostgreSQL searches `pg_catalog` first; a user table of the same name
//! wins here, so a table is never hidden, qualified or not.)
//!
//! DML plans its reads through the same providers under a reserved name
//! ([`DML_PREFIX`] + table name) that also exposes hidden key columns, so
//! `DELETE` and `UPDATE` can address rows of tables without a primary key.

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

/// The schema user tables live in.
pub const PUBLIC_SCHEMA: &str = "public";

/// The transaction the session's current statement runs in.
pub type TxnSlot = Arc<Mutex<Option<Arc<Txn>>>>;

pub struct ShoalCatalog {
    public: Arc<ShoalSchema>,
    pg_catalog: Arc<PgCatalogSchema>,
    cluster: Arc<ClusterSchema>,
    /// `information_schema` views DataFusion lacks (not listed).
    information: Arc<crate::information_schema::InformationSchemaExtras>,
}

impl ShoalCatalog {
    pub fn new(
        database: String,
        slot: TxnSlot,
        kv: Arc<Kv>,
        metrics: Arc<crate::cluster_views::SqlMetrics>,
    ) -> ShoalCatalog {
        let pg_catalog = Arc::new(PgCatalogSchema::new(database.clone(), slot.clone()));
        let information = Arc::new(crate::information_schema::InformationSchemaExtras::new(
            database.clone(),
            slot.clone(),
        ));
        ShoalCatalog {
            information,
            public: Arc::new(ShoalSchema {
                database,
                slot,
                pg_catalog: pg_catalog.clone(),
                session: Default::default(),
            }),
            pg_catalog,
            cluster: Arc::new(ClusterSchema::new(kv, metrics)),
        }
    }
}

impl ShoalCatalog {
    /// The session whose planner views are planned with (`views.rs`).
    pub fn set_session(&self, state: SessionRef) {
        let _ = self.public.session.set(state);
    }
}

/// The planner state of the session a catalog belongs to: weak, since the
/// session owns the catalog.
pub type SessionRef = Weak<parking_lot::RwLock<datafusion::execution::SessionState>>;

impl fmt::Debug for ShoalCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShoalCatalog({})", self.public.database)
    }
}

impl CatalogProvider for ShoalCatalog {
    fn schema_names(&self) -> Vec<String> {
        vec![
            PUBLIC_SCHEMA.to_string(),
            PG_CATALOG.to_string(),
            SHOAL_INTERNAL.to_string(),
        ]
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        match name {
            PUBLIC_SCHEMA => Some(self.public.clone() as Arc<dyn SchemaProvider>),
            PG_CATALOG => Some(self.pg_catalog.clone() as Arc<dyn SchemaProvider>),
            SHOAL_INTERNAL => Some(self.cluster.clone() as Arc<dyn SchemaProvider>),
            crate::information_schema::SCHEMA => {
                Some(self.information.clone() as Arc<dyn SchemaProvider>)
            }
            _ => None,
        }
    }
}

pub struct ShoalSchema {
    database: String,
    slot: TxnSlot,
    /// Searched first for unqualified names (module docs).
    pg_catalog: Arc<PgCatalogSchema>,
    session: OnceLock<SessionRef>,
}

impl fmt::Debug for ShoalSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShoalSchema({}.public)", self.database)
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
        let views = crate::views::list_views(&txn, &self.database);
        match catalog::list_tables(&txn, &self.database) {
            Ok(tables) => tables
                .iter()
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
        if let Some(d) = catalog::table_by_name(&txn, &self.database, PUBLIC_SCHEMA, name)? {
            return Ok(Some(Arc::new(TableScan::new(d, txn, with_hidden))));
        }
        let Some(view) = crate::views::view_by_name(&txn, &self.database, name)? else {
            return self.pg_catalog.table(name).await;
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
        if self.pg_catalog.table_exist(name) {
            return true;
        }
        let Ok(txn) = self.txn() else { return false };
        matches!(
            catalog::table_by_name(&txn, &self.database, PUBLIC_SCHEMA, name),
            Ok(Some(_))
        ) || matches!(
            crate::views::view_exists(&txn, &self.database, PUBLIC_SCHEMA, name),
            Ok(true)
        )
    }
}
