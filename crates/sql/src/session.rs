//! A client session: transaction state, variables, and the dispatch of each
//! statement to DataFusion (queries) or to Shoal's own DDL and DML code.
//!
//! ## Transactions
//!
//! A session is either idle, inside an explicit transaction block
//! (`BEGIN`…`COMMIT`), or inside a failed block. A statement outside a block
//! runs in an implicit transaction that commits when the statement succeeds
//! and is discarded when it fails, so every statement is atomic. Inside a
//! block, a failing statement puts the block into the failed state: its
//! writes were never applied (DML applies a statement's writes only once all
//! of them are computed and checked), and every later statement is refused
//! with 25P02 until `ROLLBACK` (or `COMMIT`, which then rolls back) or
//! `ROLLBACK TO SAVEPOINT`.
//!
//! ## Savepoints
//!
//! `SAVEPOINT name` pushes a mark of the transaction's buffered writes
//! (`shoal_kv::Savepoint`) on a stack, with how much DDL follow-up work was
//! queued. `ROLLBACK TO SAVEPOINT name` finds the newest savepoint of that
//! name, returns the writes (and the follow-up queue) to it, drops the
//! savepoints above it and leaves a failed block usable again; `RELEASE`
//! drops it and those above it, keeping the writes. As in PostgreSQL,
//! names may repeat (the newest wins), an unknown name is 3B001, and all
//! three are refused with 25P01 outside a block.
//!
//! ## Statements
//!
//! The statement's transaction is put into the session's [`TxnSlot`] before
//! planning, so DataFusion's catalog lookups and table scans read the same
//! snapshot the statement writes against. Queries are planned and run by
//! DataFusion; `INSERT`, `UPDATE` and `DELETE` compute their rows with a
//! DataFusion query and write through the transaction (see `dml.rs`);
//! `CREATE TABLE` and `DROP TABLE` change the catalog (see `ddl.rs`).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;

use datafusion::arrow::array::StringArray;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionConfig;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{self, Statement};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use shoal_kv::{Kv, Txn};

use crate::error::{Result, SqlError};
use crate::functions;
pub use crate::prepared::Prepared;
use crate::prepared::{output_schema, param_oids, param_types, text_schema};
use crate::providers::{ShoalCatalog, TxnSlot};
use crate::vars::Vars;
use crate::{ddl, dml};

mod implicit_block;
mod planning_state;

/// The shared state of a node's SQL layer; sessions are opened from it.
/// How many times a statement in a transaction of its own is run again
/// after a serialization failure before the failure is reported.
const IMPLICIT_RETRIES: u32 = 8;

pub struct Database {
    kv: Arc<Kv>,
    /// Counters shown in `shoal_internal.node_metrics`.
    metrics: Arc<crate::cluster_views::SqlMetrics>,
    /// The advisory locks this node's sessions hold (`locks.rs`).
    locks: Arc<crate::locks::LockTable>,
    /// The next session's id, unique on this node across restarts: it
    /// starts from the clock (`advisory.rs` names lock holders by it).
    next_session: std::sync::atomic::AtomicU64,
    /// This node's blocks of sequence values (`sequences.rs`).
    sequences: Arc<crate::sequences::SequenceCache>,
    /// The runtime every session plans with: one bounded memory pool for
    /// the node's queries (`query_memory.rs`).
    runtime: Arc<datafusion::execution::runtime_env::RuntimeEnv>,
}

impl Database {
    /// The SQL layer of a node whose queries may hold `query_memory`
    /// bytes together (`query_memory.rs`).
    pub fn new(kv: Arc<Kv>, query_memory: usize) -> Arc<Database> {
        let runtime = crate::query_memory::runtime(query_memory).unwrap_or_else(|e| {
            // Building a runtime without a disk manager does no I/O; should
            // it fail all the same, queries run unbounded, said loudly.
            tracing::error!("queries' memory is not bounded: {e}");
            Arc::new(Default::default())
        });
        let first_session = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64)
            .wrapping_shl(12);
        Arc::new(Database {
            locks: crate::locks::LockTable::new(kv.clone()),
            kv,
            metrics: Arc::default(),
            next_session: std::sync::atomic::AtomicU64::new(first_session),
            sequences: Arc::default(),
            runtime,
        })
    }

    /// Statements in transactions of their own that were run again after a
    /// serialization failure, since the node started.
    pub fn retries(&self) -> u64 {
        self.metrics
            .statement_retries
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn count_retry(&self) {
        self.metrics
            .statement_retries
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn kv(&self) -> &Arc<Kv> {
        &self.kv
    }

    /// Opens a session on `database` for `user`.
    pub fn open_session(self: &Arc<Self>, database: &str, user: &str) -> Result<Session> {
        if !crate::databases::BUILTIN.contains(&database) {
            let txn = self.kv.begin()?;
            let exists = crate::databases::exists(&txn, database);
            txn.rollback();
            if !exists? {
                return Err(SqlError::UndefinedDatabase(database.to_string()));
            }
        }
        let slot: TxnSlot = Arc::default();
        let config = SessionConfig::new()
            .with_default_catalog_and_schema(database, crate::providers::SEARCH_PATH_SCHEMA)
            .with_information_schema(true)
            .with_create_default_catalog_and_schema(false)
            .with_target_partitions(2);
        // Shoal's decorrelation runs before DataFusion's rules, while the
        // subquery still has the shape it was planned with.
        // So do PostgreSQL's casts of intervals and floats to text, and of
        // floats and numerics to integers, before constant folding casts
        // them with Arrow.
        let mut rules: Vec<Arc<dyn datafusion::optimizer::OptimizerRule + Send + Sync>> = vec![
            Arc::new(crate::decorrelate::DecorrelateAggregateSubquery::default()),
            Arc::new(crate::interval_text::rule()),
            Arc::new(crate::float_text::rule()),
            Arc::new(crate::rounding_casts::rule()),
        ];
        rules.extend(datafusion::optimizer::Optimizer::new().rules);
        let mut builder = datafusion::execution::SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(self.runtime.clone())
            .with_default_features()
            .with_optimizer_rules(rules)
            // Last of the physical rules: `+ - *` raise 22003 on overflow.
            .with_physical_optimizer_rule(Arc::new(crate::checked_arithmetic::CheckedArithmetic));
        // The JSON operators are planned before DataFusion's own, which
        // would take `@>` and `||` for array operators.
        if let Some(planners) = builder.expr_planners() {
            planners.insert(0, Arc::new(crate::json_functions::JsonOperators::default()));
            // DataFusion has no `interval * number`.
            planners.insert(
                0,
                Arc::new(crate::interval_arithmetic::IntervalArithmetic::default()),
            );
            // And so are subscripts of catalog vectors (`catalog_table.rs`).
            planners.insert(0, Arc::new(crate::catalog_table::VectorSubscripts));
        }
        let state = builder.build();
        let ctx = SessionContext::new_with_state(state);
        let vars = Vars::default();
        let catalog = Arc::new(ShoalCatalog::new(
            database.to_string(),
            slot.clone(),
            self.kv.clone(),
            self.metrics.clone(),
            (vars.reader(), user.to_string()),
        ));
        // The rows a statement returns are read from a catalog of its own
        // (`returning.rs`).
        let statement_rows = Arc::new(datafusion::catalog::MemoryCatalogProvider::new());
        datafusion::catalog::CatalogProvider::register_schema(
            statement_rows.as_ref(),
            crate::returning::SCHEMA,
            Arc::new(datafusion::catalog::MemorySchemaProvider::new()),
        )?;
        ctx.register_catalog(crate::returning::CATALOG, statement_rows);
        // Views are planned in the session that reads them.
        catalog.set_session(ctx.state_weak_ref());
        ctx.register_catalog(database, catalog);
        functions::register(&ctx, database, user, vars.reader());
        ctx.register_udaf(crate::single::udaf());
        functions::register_catalog_functions(
            &ctx,
            database,
            slot.clone(),
            (vars.reader(), user.to_string()),
        );
        crate::json_functions::register(&ctx);
        crate::bytea_functions::register(&ctx);
        ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
            crate::array_functions::ArrayIn::default(),
        ));
        ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
            crate::array_functions::ExpandArray::default(),
        ));
        ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
            crate::array_subquery::ArrayMap::default(),
        ));
        ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
            crate::at_time_zone::AtTimeZone::default(),
        ));
        ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
            crate::interval_input::IntervalIn::default(),
        ));
        for with_zone in [true, false] {
            ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
                crate::datetime_functions::TimestampIn::new(with_zone),
            ));
        }
        crate::sequence_functions::register(
            &ctx,
            crate::sequence_functions::SequenceAccess {
                kv: self.kv.clone(),
                cache: self.sequences.clone(),
                database: database.to_string(),
                vars: vars.reader(),
                user: user.to_string(),
                last: Arc::default(),
            },
        );
        Ok(Session {
            db: self.clone(),
            database: database.to_string(),
            user: user.to_string(),
            ctx,
            slot,
            state: TxnState::Idle,
            vars,
            after_commit: Vec::new(),
            savepoints: Vec::new(),
            block_settings: crate::settings_undo::BlockSettings::default(),
            advisory: crate::advisory::SessionLocks::new(
                self.locks.clone(),
                self.next_session
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            ),
            deferred: Arc::default(),
            implicit_block: false,
            plans: None,
            planning: Default::default(),
        })
    }
}

/// Where the session stands with respect to transaction blocks; reported to
/// the client in every ReadyForQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnStatus {
    Idle,
    InBlock,
    Failed,
}

enum TxnState {
    Idle,
    InBlock(Arc<Txn>),
    /// A statement of the block failed. The transaction is kept, unused,
    /// for `ROLLBACK TO SAVEPOINT`.
    Failed(Arc<Txn>),
}

/// An open savepoint (module docs).
struct SavepointEntry {
    name: String,
    mark: shoal_kv::Savepoint,
    /// How many `after_commit` actions were queued when it was taken.
    after_commit: usize,
    /// The block's variable changes then (`settings_undo.rs`).
    settings: usize,
}

/// What a statement produced.
#[derive(Debug)]
pub enum Output {
    /// Rows, with their schema (also for zero rows).
    Rows {
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    },
    /// A command tag such as `INSERT 0 3` (`rows` present) or `CREATE TABLE`.
    Command {
        tag: String,
        rows: Option<u64>,
    },
    /// Rows a data change returned (`RETURNING`), with its command tag
    /// (`INSERT`, `UPDATE`, `DELETE`); the row count is the rows'.
    Returned {
        tag: String,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    },
    /// A transaction block began, ended (committed) or was rolled back.
    Begin,
    Commit,
    Rollback,
    /// `COPY … TO STDOUT`: rows for the front end to write in `format`.
    CopyOut {
        format: crate::copy::CopyFormat,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    },
    /// `COPY … FROM STDIN`: the front end gathers the data, then calls
    /// [`Session::copy_in`].
    CopyIn(crate::copy::CopyIn),
}

impl Output {
    pub fn command(tag: &str) -> Output {
        Output::Command {
            tag: tag.to_string(),
            rows: None,
        }
    }

    pub fn count(tag: &str, rows: u64) -> Output {
        Output::Command {
            tag: tag.to_string(),
            rows: Some(rows),
        }
    }
}

pub struct Session {
    db: Arc<Database>,
    database: String,
    user: String,
    ctx: SessionContext,
    slot: TxnSlot,
    state: TxnState,
    vars: Vars,
    /// What the open transaction's DDL leaves to do once it commits
    /// (`ddl.rs`).
    after_commit: Vec<ddl::AfterCommit>,
    /// The open transaction's savepoints, oldest first.
    savepoints: Vec<SavepointEntry>,
    /// The open block's changes to session variables (`settings_undo.rs`).
    block_settings: crate::settings_undo::BlockSettings,
    /// The advisory locks this session holds.
    advisory: crate::advisory::SessionLocks,
    /// The open transaction's deferred foreign key checks
    /// (`statement_constraints.rs`).
    deferred: Arc<parking_lot::Mutex<crate::statement_constraints::DeferredChecks>>,
    /// The open block is the implicit one of a group of statements
    /// (`session/implicit_block.rs`), not one a `BEGIN` opened.
    implicit_block: bool,
    /// The plan cache of the prepared statement being executed, if the
    /// statement running is one (`plan_cache.rs`).
    plans: Option<Arc<crate::plan_cache::PlanCache>>,
    /// The DataFusion state statements plan with, copied once
    /// (`session/planning_state.rs`).
    planning: planning_state::PlanningState,
}

impl Session {
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Refuses a statement that PostgreSQL runs only outside transaction
    /// blocks (25001).
    fn outside_block(&self, what: &str) -> Result<()> {
        match self.state {
            TxnState::InBlock(_) | TxnState::Failed(_) => Err(SqlError::ActiveTransaction(
                format!("{what} cannot run inside a transaction block"),
            )),
            _ => Ok(()),
        }
    }

    /// Where names are looked up: the database and `search_path`.
    pub fn scope(&self) -> crate::names::Scope {
        crate::names::Scope {
            database: self.database.clone(),
            path: crate::names::parse_search_path(
                self.vars.get("search_path").unwrap_or_default(),
                &self.user,
            ),
        }
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn vars(&self) -> &Vars {
        &self.vars
    }

    /// The open transaction's deferred foreign key checks.
    pub(crate) fn deferred_checks(
        &self,
    ) -> Arc<parking_lot::Mutex<crate::statement_constraints::DeferredChecks>> {
        self.deferred.clone()
    }

    /// Commits `txn` once its deferred checks pass.
    fn check_and_commit(&self, txn: &Txn) -> Result<shoal_kv::Timestamp> {
        self.deferred.lock().check(txn)?;
        self.commit_txn(txn)
    }

    pub fn txn_status(&self) -> TxnStatus {
        match self.state {
            TxnState::Idle => TxnStatus::Idle,
            TxnState::InBlock(_) => TxnStatus::InBlock,
            TxnState::Failed(_) => TxnStatus::Failed,
        }
    }

    /// Whether `stmt` is `ROLLBACK TO SAVEPOINT`, the one statement that
    /// can take a failed block back to a usable one.
    pub fn is_rollback_to_savepoint(stmt: &Statement) -> bool {
        matches!(
            stmt,
            Statement::Rollback {
                savepoint: Some(_),
                ..
            }
        )
    }

    /// Splits SQL text into statements (PostgreSQL dialect).
    pub fn parse(sql: &str) -> Result<Vec<Statement>> {
        Parser::parse_sql(&PostgreSqlDialect {}, &crate::pre_parse::rewrite(sql))
            .map_err(|e| SqlError::Syntax(syntax_message(&e.to_string())))
    }

    /// Describes a statement for the extended protocol without running it.
    pub async fn prepare(&mut self, stmt: &Statement) -> Result<Prepared> {
        let outcome = AssertUnwindSafe(self.prepare_contained(stmt))
            .catch_unwind()
            .await;
        self.contain_panic(outcome)
    }

    async fn prepare_contained(&mut self, stmt: &Statement) -> Result<Prepared> {
        crate::compat::refuse_ignored(stmt)?;
        let mut stmt = stmt.clone();
        crate::compat::rewrite(&mut stmt);
        let stmt = &stmt;
        if matches!(self.state, TxnState::Failed(_)) && !is_txn_end(stmt) {
            return Err(SqlError::InFailedTransaction);
        }
        let (txn, implicit) = self.statement_txn()?;
        *self.slot.lock() = Some(txn.clone());
        let result = self.prepare_in(stmt, &txn).await;
        if implicit {
            txn.rollback();
        }
        *self.slot.lock() = None;
        result
    }

    async fn prepare_in(&mut self, stmt: &Statement, txn: &Arc<Txn>) -> Result<Prepared> {
        if let Some(call) = crate::set_config::recognize(stmt) {
            let types = call.param_types(param_types(&self.plan_sql(&call.args_query()).await?)?);
            return Ok(Prepared::new(types, Some(call.schema())));
        }
        if let Some(call) = crate::sleep::recognize(stmt) {
            let types = call.param_types(param_types(&self.plan_sql(&call.args_query()).await?)?);
            return Ok(Prepared::new(types, Some(call.schema())));
        }
        if let Some(call) = crate::advisory::recognize(stmt) {
            let types = match call.args_query() {
                Some(sql) => call.param_types(param_types(&self.plan_sql(&sql).await?)?),
                None => Vec::new(),
            };
            return Ok(Prepared::new(types, Some(call.schema())));
        }
        let mut prepared = match stmt {
            Statement::Query(q) if crate::split::target(q).is_some() => {
                Prepared::new(Vec::new(), Some(crate::split::schema()))
            }
            Statement::Query(q) if crate::relocate::target(q).is_some() => {
                Prepared::new(Vec::new(), Some(crate::relocate::schema()))
            }
            Statement::Query(q) => match self.plan(stmt).await {
                Ok(plan) => {
                    let mut p = Prepared::new(param_types(&plan)?, Some(output_schema(&plan)));
                    p.param_oids = param_oids(&plan, p.param_types.len())?;
                    p
                }
                Err(e) => match crate::pg_catalog::provably_empty(q) {
                    Some(names) => Prepared::new(Vec::new(), Some(text_schema(&names))),
                    None => return Err(e),
                },
            },
            Statement::Explain { .. } => {
                let plan = self.plan(stmt).await?;
                Prepared::new(param_types(&plan)?, Some(output_schema(&plan)))
            }
            Statement::Update(update) if crate::zone::target(update).is_some() => {
                Prepared::new(Vec::new(), None)
            }
            Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_) => {
                let (types, oids) = dml::param_types(self, txn, stmt).await?;
                let schema = dml::returning_schema(self, txn, stmt).await?;
                let mut p = Prepared::new(types, schema);
                p.param_oids = oids;
                p
            }
            Statement::ShowVariable { variable } if show_ranges_target(variable).is_some() => {
                Prepared::new(Vec::new(), Some(crate::cluster_views::ranges_schema()))
            }
            Statement::ShowVariable { variable }
                if let Some(name) = crate::cluster_settings::show_target(variable) =>
            {
                Prepared::new(Vec::new(), Some(show_schema(&name)))
            }
            Statement::ShowVariable { variable } => {
                Prepared::new(Vec::new(), Some(show_schema(&self.show_name(variable))))
            }
            _ => Prepared::new(Vec::new(), None),
        };
        prepared.fast = crate::fastpath::analyze(txn, &self.scope(), stmt)?;
        if prepared.fast.is_some() {
            prepared.search_path = self.vars.get("search_path").map(str::to_string);
        }
        Ok(prepared)
    }

    /// Runs a prepared statement: through its fast plan when it has one that
    /// still applies, else like [`Session::execute`].
    pub async fn execute_prepared(
        &mut self,
        prepared: &Prepared,
        stmt: &Statement,
        params: Vec<ScalarValue>,
    ) -> Result<Output> {
        self.plans = Some(prepared.plans.clone());
        let outcome = AssertUnwindSafe(async {
            match self.statement_timeout() {
                None => self.execute_prepared_now(prepared, stmt, params).await,
                Some(limit) => {
                    let run = self.execute_prepared_now(prepared, stmt, params);
                    let outcome = tokio::time::timeout(limit, run).await;
                    self.finish_timed(outcome)
                }
            }
        })
        .catch_unwind()
        .await;
        self.contain_panic(outcome)
    }

    /// `statement_timeout`, if set.
    fn statement_timeout(&self) -> Option<std::time::Duration> {
        self.vars
            .get("statement_timeout")
            .and_then(crate::vars::timeout)
    }

    /// The outcome of a statement run under `statement_timeout`: one that
    /// ran out was dropped where it waited, having written nothing (writes
    /// are buffered and applied by a statement only once complete); its
    /// transaction is rolled back if it was its own, else the block fails.
    fn finish_timed(
        &mut self,
        outcome: std::result::Result<Result<Output>, tokio::time::error::Elapsed>,
    ) -> Result<Output> {
        let Ok(result) = outcome else {
            let interrupted = self.slot.lock().take();
            match &self.state {
                TxnState::InBlock(txn) => self.fail_block(txn.clone()),
                TxnState::Idle => {
                    if let Some(txn) = interrupted {
                        txn.rollback();
                    }
                    self.after_end(false);
                }
                TxnState::Failed(_) => {}
            }
            return Err(SqlError::StatementTimeout);
        };
        result
    }

    async fn execute_prepared_now(
        &mut self,
        prepared: &Prepared,
        stmt: &Statement,
        params: Vec<ScalarValue>,
    ) -> Result<Output> {
        // A fast plan resolved its table's name in the search path it was
        // made under.
        let Some(fast) = prepared.fast.as_ref().filter(|_| {
            !self.read_only() && prepared.search_path.as_deref() == self.vars.get("search_path")
        }) else {
            return self.execute_now(stmt, params).await;
        };
        if matches!(self.state, TxnState::Failed(_)) {
            return Err(SqlError::InFailedTransaction);
        }
        let (txn, implicit) = self.statement_txn()?;
        // As in `execute_now`: a READ COMMITTED block locks its writes.
        let mark = match !implicit && self.read_committed_block() {
            true => Some(txn.savepoint()?),
            false => None,
        };
        match crate::fastpath::execute(fast, &txn, &params) {
            Ok(Some(out)) => {
                if let Some(mark) = mark {
                    return match self.lock_statement(&txn, mark).await {
                        Ok(true) => Ok(out),
                        // Rows it wrote changed first: run it again, the
                        // general way, on a new snapshot.
                        Ok(false) => {
                            self.db.count_retry();
                            self.execute_now(stmt, params).await
                        }
                        Err(e) => {
                            self.fail_block(txn);
                            Err(e)
                        }
                    };
                }
                if implicit {
                    match self.commit_txn(&txn) {
                        // Run again the general way, which retries it.
                        Err(SqlError::SerializationFailure(_)) => {
                            self.db.count_retry();
                            return self.execute_now(stmt, params).await;
                        }
                        // The same, once the lock it met is released.
                        Err(SqlError::RowLocked(blocked, _)) => {
                            crate::row_waits::wait_for(&self.row_waits(), &blocked).await?;
                            return self.execute_now(stmt, params).await;
                        }
                        other => {
                            other?;
                        }
                    }
                }
                Ok(out)
            }
            Ok(None) => {
                if implicit {
                    txn.rollback();
                } else if mark.is_some() {
                    self.forget_statement_mark(&txn);
                }
                self.execute_now(stmt, params).await
            }
            // Run again the general way, which retries it.
            Err(SqlError::SerializationFailure(_)) if implicit => {
                txn.rollback();
                self.db.count_retry();
                self.execute_now(stmt, params).await
            }
            Err(e) => {
                if implicit {
                    txn.rollback();
                } else {
                    if mark.is_some() {
                        self.forget_statement_mark(&txn);
                    }
                    self.fail_block(txn);
                }
                Err(e)
            }
        }
    }

    /// Runs one statement with the given parameter values, within
    /// `statement_timeout` (57014) if it is set.
    /// The data of a `COPY … FROM STDIN` (module `copy.rs`): parsed and
    /// inserted in one transaction — the open block's, or one of its own.
    /// Returns the number of rows.
    pub async fn copy_in(&mut self, copy: &crate::copy::CopyIn, data: &[u8]) -> Result<u64> {
        let parsed = std::str::from_utf8(data)
            .map_err(|_| {
                SqlError::CharacterNotInRepertoire(
                    "invalid byte sequence for encoding \"UTF8\"".into(),
                )
            })
            .and_then(|text| copy.format.parse(text));
        self.copy_in_rows(copy, parsed).await
    }

    /// The rows of a `COPY … FROM STDIN`, each field's text (`None`:
    /// NULL), or the error reading them: inserted in one transaction as
    /// [`Session::copy_in`] does. Returns the number of rows.
    pub async fn copy_in_rows(
        &mut self,
        copy: &crate::copy::CopyIn,
        parsed: Result<Vec<Vec<Option<String>>>>,
    ) -> Result<u64> {
        const CHUNK: usize = 1000;
        let parsed = parsed.and_then(|rows| crate::copy::check_widths(copy, &rows).map(|()| rows));
        let rows = match parsed {
            Ok(rows) => rows,
            Err(e) => {
                self.abort_copy();
                return Err(e);
            }
        };
        let own = matches!(self.state, TxnState::Idle);
        if own {
            self.execute(
                &Statement::StartTransaction {
                    modes: Vec::new(),
                    begin: true,
                    transaction: None,
                    modifier: None,
                    statements: Vec::new(),
                    exception: None,
                    has_end_keyword: false,
                },
                Vec::new(),
            )
            .await?;
        }
        let mut result = Ok(rows.len() as u64);
        for (n, chunk) in rows.chunks(CHUNK).enumerate() {
            let inserted = match crate::copy::insert_sql(copy, chunk, n * CHUNK)
                .and_then(|sql| Session::parse(&sql))
            {
                Ok(stmts) => match stmts.first() {
                    Some(stmt) => self.execute(stmt, Vec::new()).await.map(|_| ()),
                    None => Ok(()),
                },
                Err(e) => Err(e),
            };
            if let Err(e) = inserted {
                if !own {
                    self.abort_copy();
                }
                result = Err(e);
                break;
            }
        }
        if own {
            match &result {
                Ok(_) => {
                    self.commit()?;
                }
                Err(_) => {
                    self.rollback();
                }
            }
        }
        result
    }

    /// A `COPY … FROM STDIN` that failed or was given up fails the open
    /// block, as in PostgreSQL (outside one there is nothing to undo).
    pub fn abort_copy(&mut self) {
        if let TxnState::InBlock(txn) = &self.state {
            let txn = txn.clone();
            self.fail_block(txn);
        }
    }

    pub async fn execute(&mut self, stmt: &Statement, params: Vec<ScalarValue>) -> Result<Output> {
        self.plans = None;
        let outcome = AssertUnwindSafe(async {
            match self.statement_timeout() {
                None => self.execute_now(stmt, params).await,
                Some(limit) => {
                    let run = self.execute_now(stmt, params);
                    let outcome = tokio::time::timeout(limit, run).await;
                    self.finish_timed(outcome)
                }
            }
        })
        .catch_unwind()
        .await;
        self.contain_panic(outcome)
    }

    /// The outcome of a statement that may have panicked: a panic — a bug
    /// in the SQL layer or in DataFusion (whose debug builds assert
    /// invariants some queries break) — fails the statement with XX000
    /// and its transaction block, instead of ending the connection.
    fn contain_panic<T>(&mut self, outcome: std::thread::Result<Result<T>>) -> Result<T> {
        let panic = match outcome {
            Ok(result) => return result,
            Err(panic) => panic,
        };
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(%message, "a statement panicked");
        if let TxnState::InBlock(txn) = &self.state {
            self.fail_block(txn.clone());
        }
        Err(SqlError::Internal(format!(
            "the statement failed unexpectedly: {message}"
        )))
    }

    async fn execute_now(&mut self, stmt: &Statement, params: Vec<ScalarValue>) -> Result<Output> {
        crate::compat::refuse_ignored(stmt)?;
        let mut stmt = stmt.clone();
        crate::compat::rewrite(&mut stmt);
        let stmt = &stmt;
        match stmt {
            Statement::StartTransaction { modes, .. } => return self.begin(modes),
            Statement::Commit { chain: false, .. } => return self.commit(),
            Statement::Rollback {
                chain: false,
                savepoint: None,
            } => return Ok(self.rollback()),
            Statement::Rollback {
                chain: false,
                savepoint: Some(name),
            } => return self.rollback_to_savepoint(&crate::names::fold(name)),
            Statement::Savepoint { name } => return self.savepoint(&crate::names::fold(name)),
            Statement::ReleaseSavepoint { name } => {
                return self.release_savepoint(&crate::names::fold(name));
            }
            _ => {}
        }
        if matches!(self.state, TxnState::Failed(_)) {
            return Err(SqlError::InFailedTransaction);
        }
        if let Some(kind) = crate::read_only::write_kind(stmt)
            && self.read_only()
        {
            if let TxnState::InBlock(txn) = &self.state {
                self.fail_block(txn.clone());
            }
            return Err(SqlError::ReadOnlyTransaction(kind));
        }
        if let Some(call) = crate::set_config::recognize(stmt) {
            let result = self.set_config(&call, params).await;
            if let (Err(_), TxnState::InBlock(txn)) = (&result, &self.state) {
                self.fail_block(txn.clone());
            }
            return result;
        }
        if let Some(call) = crate::sleep::recognize(stmt) {
            let result = self.sleep(&call, params).await;
            if let (Err(_), TxnState::InBlock(txn)) = (&result, &self.state) {
                self.fail_block(txn.clone());
            }
            return result;
        }
        if let Some(call) = crate::advisory::recognize(stmt) {
            let result = self.advisory(&call, params).await;
            match &self.state {
                TxnState::Idle => self.advisory.end_transaction(),
                TxnState::InBlock(txn) if result.is_err() => {
                    self.fail_block(txn.clone());
                }
                _ => {}
            }
            return result;
        }
        let mut attempt = 0;
        let mut reruns = 0;
        loop {
            let (txn, implicit) = self.statement_txn()?;
            // A block that has shown the client nothing of its snapshot
            // may start over on a new one.
            let fresh = !implicit && !txn.is_used() && self.savepoints.is_empty();
            // As in PostgreSQL, a block's first query fixes its isolation.
            if !matches!(
                stmt,
                Statement::Set(_)
                    | Statement::Reset(_)
                    | Statement::ShowVariable { .. }
                    | Statement::StartTransaction { .. }
            ) {
                txn.pin_isolation();
            }
            // A READ COMMITTED block locks what each statement wrote
            // (`row_waits.rs`); the mark is where a statement run again
            // starts from.
            let mark = match !implicit && self.read_committed_block() {
                true => Some(txn.savepoint()?),
                false => None,
            };
            *self.slot.lock() = Some(txn.clone());
            let result = self.dispatch(stmt, params.clone(), &txn).await;
            *self.slot.lock() = None;
            let result = match (result, implicit) {
                (Ok(out), true) => {
                    let committed = self.check_and_commit(&txn);
                    if committed.is_err() {
                        txn.rollback();
                    }
                    self.after_end(committed.is_ok());
                    committed.map(|_| out)
                }
                (Ok(out), false) => {
                    let Some(mark) = mark else {
                        return Ok(out);
                    };
                    let locked = self.lock_statement(&txn, mark).await;
                    match locked {
                        Ok(true) => return Ok(out),
                        Ok(false)
                            if reruns < crate::row_waits::MAX_RERUNS
                                && crate::row_waits::reruns_safely(stmt) =>
                        {
                            reruns += 1;
                            self.db.count_retry();
                            continue;
                        }
                        Ok(false) => {
                            self.fail_block(txn);
                            return Err(SqlError::SerializationFailure(
                                "could not serialize access due to concurrent update: rows the \
                                 statement wrote changed before it could lock them"
                                    .to_string(),
                            ));
                        }
                        Err(e) => {
                            self.fail_block(txn);
                            return Err(e);
                        }
                    }
                }
                (Err(e), true) => {
                    txn.rollback();
                    self.after_end(false);
                    Err(e)
                }
                // A serialization failure of a query or data change (a read
                // within another node's clock uncertainty) is retried where
                // the client saw nothing of the snapshot: the block's first
                // statement starts it over, a READ COMMITTED statement
                // runs again on a new snapshot of its own.
                (Err(SqlError::SerializationFailure(_)), false)
                    if (fresh || mark.is_some())
                        && reruns < crate::row_waits::MAX_RERUNS
                        && crate::row_waits::reruns_safely(stmt) =>
                {
                    reruns += 1;
                    self.db.count_retry();
                    match mark {
                        Some(mark) => {
                            txn.rollback_to(mark)?;
                            self.forget_statement_mark(&txn);
                        }
                        None => {
                            let next = self.db.kv.begin()?;
                            next.set_isolation(txn.isolation());
                            txn.rollback();
                            self.state = TxnState::InBlock(next);
                        }
                    }
                    continue;
                }
                (Err(e), false) => {
                    if mark.is_some() {
                        self.forget_statement_mark(&txn);
                    }
                    self.fail_block(txn);
                    return Err(e);
                }
            };
            // A statement in a transaction of its own has shown the client
            // nothing yet: one that met a row lock waits for it and runs
            // again; a serialization failure is retried here, with a new
            // snapshot, instead of being reported.
            match result {
                Err(SqlError::RowLocked(blocked, _)) => {
                    crate::row_waits::wait_for(&self.row_waits(), &blocked).await?;
                }
                Err(SqlError::SerializationFailure(_)) if attempt < IMPLICIT_RETRIES => {
                    attempt += 1;
                    self.db.count_retry();
                    tokio::time::sleep(std::time::Duration::from_millis(1 << attempt.min(6))).await;
                }
                other => return other,
            }
        }
    }

    /// Marks the open block failed. Unless a savepoint may bring it back,
    /// it can only roll back now: its row locks go at once
    /// (`row_waits.rs`), as PostgreSQL releases an aborted transaction's
    /// locks at the error — a deadlock's victim frees the others.
    fn fail_block(&mut self, txn: Arc<Txn>) {
        if self.savepoints.is_empty() {
            txn.release_locks();
        }
        self.state = TxnState::Failed(txn);
    }

    /// Whether the session's transaction isolation is READ COMMITTED.
    /// Whether writes are refused: in a READ ONLY block, or outside a
    /// block when `default_transaction_read_only` is on.
    fn read_only(&self) -> bool {
        let name = match self.state {
            TxnState::Idle => "default_transaction_read_only",
            _ => "transaction_read_only",
        };
        self.vars.get(name).is_some_and(|v| v == "on")
    }

    fn read_committed_block(&self) -> bool {
        self.vars
            .get("transaction_isolation")
            .is_some_and(crate::vars::read_committed)
    }

    /// What waits for row locks need of this session (`row_waits.rs`).
    fn row_waits(&self) -> crate::row_waits::RowWaits<'_> {
        crate::row_waits::RowWaits {
            kv: &self.db.kv,
            table: self.advisory.table(),
            owner: self.advisory.owner(),
            limits: self.wait_limits(),
        }
    }

    /// Locks what the statement just run in `txn` wrote
    /// (`row_waits.rs`): `false` if it must run again, its writes undone
    /// to `mark`.
    async fn lock_statement(&self, txn: &Arc<Txn>, mark: shoal_kv::Savepoint) -> Result<bool> {
        let locked = crate::row_waits::lock_statement(&self.row_waits(), txn, mark, |e| {
            self.commit_error(e)
        })
        .await;
        self.forget_statement_mark(txn);
        locked
    }

    /// Drops the undo log a statement mark opened, unless the block's own
    /// savepoints need it.
    fn forget_statement_mark(&self, txn: &Txn) {
        if self.savepoints.is_empty() {
            txn.release_savepoints();
        }
    }

    /// The transaction a statement runs in: the open block's, or a new
    /// implicit one (then `true`). Under READ COMMITTED every statement of
    /// a block after its first gets a new snapshot (`Txn::renew`).
    fn statement_txn(&mut self) -> Result<(Arc<Txn>, bool)> {
        Ok(match &self.state {
            TxnState::InBlock(txn) if txn.is_used() && self.read_committed_block() => {
                // A lost update found while renewing fails the block.
                let txn = match txn.renew() {
                    Ok(next) => next,
                    Err(e) => {
                        let e = self.commit_error(e);
                        self.fail_block(txn.clone());
                        return Err(e);
                    }
                };
                // The locks moved to the new snapshot's transaction: the
                // keeper renews them there (`row_waits.rs`).
                if txn.has_locks() {
                    self.advisory
                        .table()
                        .keep_row_locks(self.advisory.owner(), &txn);
                }
                self.state = TxnState::InBlock(txn.clone());
                (txn, false)
            }
            TxnState::InBlock(txn) => (txn.clone(), false),
            _ => {
                let txn = self.db.kv.begin()?;
                txn.set_isolation(crate::vars::isolation(&self.default_isolation()));
                (txn, true)
            }
        })
    }

    /// `default_transaction_isolation`, normalized.
    fn default_isolation(&self) -> String {
        self.vars
            .get("default_transaction_isolation")
            .unwrap_or("serializable")
            .to_string()
    }

    /// `SET default_transaction_isolation` (or `SET SESSION
    /// CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL`): outside a block,
    /// `transaction_isolation` follows at once.
    fn set_default_isolation(&mut self, value: &str) -> Result<()> {
        self.assign("default_transaction_isolation", value, false)
    }

    /// After `default_transaction_isolation` changed: outside a block,
    /// `transaction_isolation` follows at once.
    fn follow_default_isolation(&mut self) -> Result<()> {
        if matches!(self.state, TxnState::Idle) {
            let level = self.default_isolation();
            self.vars.set("transaction_isolation", &level)?;
        }
        Ok(())
    }

    /// `SET TRANSACTION ISOLATION LEVEL` (or `SET transaction_isolation`):
    /// in a block, before its first query, it sets the block's level;
    /// outside one it has no effect, as in PostgreSQL.
    fn set_isolation(&mut self, value: &str) -> Result<()> {
        let level = self.vars.checked("transaction_isolation", value)?;
        match &self.state {
            TxnState::InBlock(txn) => {
                // READ COMMITTED and REPEATABLE READ share one KV isolation:
                // the session's level must not change either, once fixed.
                let same = self.vars.get("transaction_isolation") == Some(level.as_str());
                if (txn.is_used() && !same) || !txn.set_isolation(crate::vars::isolation(&level)) {
                    return Err(SqlError::ActiveTransaction(
                        "SET TRANSACTION ISOLATION LEVEL must be called before any query".into(),
                    ));
                }
                self.vars.set("transaction_isolation", &level)
            }
            TxnState::Failed(_) => Err(SqlError::InFailedTransaction),
            TxnState::Idle => Ok(()),
        }
    }

    async fn dispatch(
        &mut self,
        stmt: &Statement,
        params: Vec<ScalarValue>,
        txn: &Arc<Txn>,
    ) -> Result<Output> {
        match stmt {
            Statement::Query(q) if let Some(target) = crate::split::target(q) => {
                crate::split::run(self, txn, target, params).await
            }
            Statement::Query(q) if let Some(relocation) = crate::relocate::target(q) => {
                crate::relocate::run(txn.kv().clone(), relocation).await
            }
            Statement::Query(q) if !q.locks.is_empty() => {
                let in_block = matches!(self.state, TxnState::InBlock(_));
                crate::locking::select(self, txn, q, params, in_block).await
            }
            Statement::Query(q) => match self.plan_and_run_query(stmt, params).await {
                // A query that reads an always-empty system catalog through
                // inner joins only returns no rows, whatever the expressions
                // DataFusion cannot plan or run (psql's `\d` asks for
                // policies and publications this way).
                Err(e) if !matches!(e, SqlError::Canceled) => {
                    match crate::pg_catalog::provably_empty(q) {
                        Some(names) => Ok(Output::Rows {
                            schema: text_schema(&names),
                            batches: Vec::new(),
                        }),
                        None => Err(e),
                    }
                }
                result => result,
            },
            Statement::Explain { .. } => self.plan_and_run(stmt, params).await,
            Statement::Insert(insert) => dml::insert(self, txn, insert, params).await,
            Statement::Update(update)
                if let Some((table, settings)) = crate::zone::target(update) =>
            {
                crate::zone::configure(txn, &self.scope(), &table, settings)
            }
            Statement::Update(update) => dml::update(self, txn, update, params).await,
            Statement::Delete(delete) => dml::delete(self, txn, delete, params).await,
            Statement::CreateTable(create) => ddl::create_table(
                &self.ctx,
                txn,
                &self.scope(),
                create,
                &mut self.after_commit,
            ),
            Statement::AlterTable(alter) => {
                let (output, after) = crate::alter_table::alter_table(self, txn, alter).await?;
                self.after_commit.extend(after);
                Ok(output)
            }
            Statement::CreateSequence {
                temporary,
                if_not_exists,
                name,
                sequence_options,
                owned_by,
                ..
            } => {
                if *temporary || owned_by.is_some() {
                    return Err(SqlError::NotSupported(
                        "temporary sequences and OWNED BY".into(),
                    ));
                }
                crate::sequences::create_statement(
                    txn,
                    &self.scope(),
                    name,
                    *if_not_exists,
                    sequence_options,
                )
            }
            Statement::CreateView(create) => crate::views::create_view(self, txn, create).await,
            Statement::CreateIndex(create) => {
                crate::index_ddl::create_index(txn, &self.scope(), create)
            }
            Statement::Drop {
                object_type,
                if_exists,
                names,
                cascade,
                ..
            } if *object_type == ast::ObjectType::Database => {
                self.outside_block("DROP DATABASE")?;
                crate::databases::drop(
                    txn,
                    &self.database,
                    *if_exists,
                    names,
                    &mut self.after_commit,
                )
            }
            Statement::Drop {
                object_type,
                if_exists,
                names,
                cascade,
                ..
            } => ddl::drop(
                txn,
                &self.scope(),
                *object_type,
                *if_exists,
                names,
                *cascade,
                &mut self.after_commit,
            ),
            Statement::Set(set) => self.set(set),
            Statement::Reset(reset) => self.reset(&reset.reset),
            Statement::ShowVariable { variable } => {
                if let Some(target) = show_ranges_target(variable) {
                    self.show_ranges(txn, target)
                } else if let Some(name) = crate::cluster_settings::show_target(variable) {
                    show_value(&name, &self.db.kv.cluster_setting(&name)?)
                } else {
                    self.show(variable)
                }
            }
            Statement::Truncate(truncate) => ddl::truncate(txn, &self.scope(), truncate),
            Statement::CreateSchema {
                schema_name,
                if_not_exists,
                with: None,
                options: None,
                default_collate_spec: None,
                clone: None,
            } => {
                crate::schemas::create(txn, &self.database, &self.user, schema_name, *if_not_exists)
            }
            Statement::CreateDatabase {
                db_name,
                if_not_exists,
                location: None,
                managed_location: None,
                or_replace: false,
                clone: None,
                ..
            } => {
                self.outside_block("CREATE DATABASE")?;
                crate::databases::create(txn, db_name, *if_not_exists)
            }
            Statement::Copy { .. } => crate::copy::statement(self, txn, stmt, params).await,
            other => Err(SqlError::NotSupported(format!(
                "statement {}",
                statement_keyword(other)
            ))),
        }
    }

    /// The session's DataFusion context.
    pub(crate) fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The session's time zone (`SET TIME ZONE`).
    pub fn time_zone(&self) -> crate::time_zone::TimeZone {
        crate::vars::time_zone(self.vars.get("TimeZone"))
    }

    /// Keeps DataFusion's time zone (that of `now()`, and of text cast to
    /// `timestamptz`) the session's.
    fn follow_time_zone(&self) {
        let zone = Some(self.time_zone().arrow_name());
        let state = self.ctx.state_ref();
        // Read first: the write lock is taken only when the zone changed.
        if state.read().config().options().execution.time_zone == zone {
            return;
        }
        let mut state = state.write();
        state.config_mut().options_mut().execution.time_zone = zone;
        self.planning.forget();
    }

    /// Plans a statement with DataFusion.
    pub(crate) async fn plan(&self, stmt: &Statement) -> Result<LogicalPlan> {
        self.follow_time_zone();
        let mut stmt = stmt.clone();
        if crate::multiset_ops::present(&stmt) {
            crate::multiset_ops::rewrite(self, &mut stmt).await?;
        }
        let (state, _) = self.planning.get(&self.ctx);
        Ok(state
            .statement_to_plan(DfStatement::Statement(Box::new(stmt)))
            .await?)
    }

    /// Plans SQL text with DataFusion (used by DML for its internal queries).
    pub(crate) async fn plan_sql(&self, sql: &str) -> Result<LogicalPlan> {
        let stmt = Self::parse(sql)?
            .pop()
            .ok_or_else(|| SqlError::Internal("empty internal query".into()))?;
        self.plan(&stmt).await
    }

    /// Binds parameters and runs a query plan to completion.
    async fn plan_and_run(&mut self, stmt: &Statement, params: Vec<ScalarValue>) -> Result<Output> {
        let plan = self.plan(stmt).await?;
        self.run_query(plan, params).await
    }

    /// [`Session::plan_and_run`] for a query, through the prepared
    /// statement's kept plan when there is one (`plan_cache.rs`).
    async fn plan_and_run_query(
        &mut self,
        stmt: &Statement,
        params: Vec<ScalarValue>,
    ) -> Result<Output> {
        let Some(plans) = self.plans.clone() else {
            return self.plan_and_run(stmt, params).await;
        };
        self.follow_time_zone();
        let (state, task) = self.planning.get(&self.ctx);
        let search_path = self.vars.get("search_path");
        let plan = match plans.lookup(&state, stmt, search_path, &params).await? {
            crate::plan_cache::Lookup::Ready(plan) => plan,
            crate::plan_cache::Lookup::Uncacheable => {
                // Let go of the kept state first, so planning reuses it.
                drop((state, task));
                return self.plan_and_run(stmt, params).await;
            }
            // This execution takes the general path; the next ones the
            // kept plan, if it could be kept.
            crate::plan_cache::Lookup::Plan => {
                let plan = self.plan(stmt).await?;
                plans.keep(&state, stmt, search_path, &plan);
                return self.run_query(plan, params).await;
            }
        };
        let schema = output_schema(&plan);
        let physical = state
            .query_planner()
            .create_physical_plan(&plan, state.as_ref())
            .await?;
        drop(state);
        let batches = datafusion::physical_plan::collect(physical, task).await?;
        Ok(Output::Rows { schema, batches })
    }

    pub(crate) async fn run_query(
        &self,
        plan: LogicalPlan,
        params: Vec<ScalarValue>,
    ) -> Result<Output> {
        let schema = output_schema(&plan);
        let batches = self.collect(plan, params).await?;
        Ok(Output::Rows { schema, batches })
    }

    pub(crate) async fn collect(
        &self,
        plan: LogicalPlan,
        params: Vec<ScalarValue>,
    ) -> Result<Vec<RecordBatch>> {
        let plan = if params.is_empty() {
            plan
        } else {
            plan.replace_params_with_values(&ParamValues::from(params))?
        };
        // DDL and session statements DataFusion carries out itself go
        // through its context; queries and DML are planned here, with the
        // kept state.
        if matches!(plan, LogicalPlan::Ddl(_) | LogicalPlan::Statement(_)) {
            let df = self.ctx.execute_logical_plan(plan).await?;
            return Ok(df.collect().await?);
        }
        let (state, task) = self.planning.get(&self.ctx);
        let physical = state.create_physical_plan(&plan).await?;
        drop(state);
        Ok(datafusion::physical_plan::collect(physical, task).await?)
    }

    fn begin(&mut self, modes: &[ast::TransactionMode]) -> Result<Output> {
        let mut level = None;
        let mut read_only = None;
        for mode in modes {
            match mode {
                ast::TransactionMode::IsolationLevel(l) => {
                    level = Some(self.vars.checked("transaction_isolation", &l.to_string())?);
                }
                ast::TransactionMode::AccessMode(ast::TransactionAccessMode::ReadOnly) => {
                    read_only = Some("on");
                }
                ast::TransactionMode::AccessMode(ast::TransactionAccessMode::ReadWrite) => {
                    read_only = Some("off");
                }
            }
        }
        match self.state {
            TxnState::Idle => {
                let level = match level {
                    Some(level) => level,
                    None => self.default_isolation(),
                };
                let txn = self.db.kv.begin()?;
                txn.set_isolation(crate::vars::isolation(&level));
                self.vars.set("transaction_isolation", &level)?;
                if let Some(read_only) = read_only {
                    self.vars.set("transaction_read_only", read_only)?;
                }
                self.state = TxnState::InBlock(txn);
                Ok(Output::Begin)
            }
            // A group's implicit block becomes a block of the client's.
            TxnState::InBlock(_) if self.implicit_block => {
                self.adopt_implicit_block(level, read_only)
            }
            // PostgreSQL warns and stays in the block.
            TxnState::InBlock(_) => Ok(Output::Begin),
            TxnState::Failed(_) => Err(SqlError::InFailedTransaction),
        }
    }

    /// Runs an advisory lock function (`advisory.rs`): its arguments are
    /// evaluated in the statement's transaction, the lock operation after.
    async fn advisory(
        &mut self,
        call: &crate::advisory::LockCall,
        params: Vec<ScalarValue>,
    ) -> Result<Output> {
        let id = match call.args_query() {
            None => None,
            Some(sql) => call.lock_id(&self.evaluate(&sql, params).await?)?,
        };
        let limits = self.wait_limits();
        self.advisory.run(call, id, limits).await
    }

    /// How long a lock wait may last (`lock_timeout`, `statement_timeout`).
    pub(crate) fn wait_limits(&self) -> crate::advisory::WaitLimits {
        let timeout = |name: &str| self.vars.get(name).and_then(crate::vars::timeout);
        crate::advisory::WaitLimits {
            lock_timeout: timeout("lock_timeout"),
            statement_timeout: timeout("statement_timeout"),
        }
    }

    /// Takes a row lock for the statement's transaction (`locking.rs`):
    /// waiting within `limits`, or, without `wait`, only if it is free.
    pub(crate) async fn lock_row(
        &mut self,
        id: crate::locks::LockId,
        mode: crate::locks::LockMode,
        wait: bool,
        limits: crate::advisory::WaitLimits,
    ) -> Result<bool> {
        self.advisory
            .lock_for_transaction(id, mode, wait, limits)
            .await
    }

    /// Commits `txn`, its waits for other transactions' intents bounded by
    /// `lock_timeout`; a failure as the client reads it.
    fn commit_txn(&self, txn: &Txn) -> Result<shoal_kv::Timestamp> {
        txn.set_lock_timeout(self.wait_limits().lock_timeout);
        txn.commit().map_err(|e| self.commit_error(e))
    }

    /// A failed commit as the client reads it: a write conflict names the
    /// table and primary key it happened on (read from the catalog as of
    /// now), a conflict on another key says which key.
    fn commit_error(&self, e: shoal_kv::KvError) -> SqlError {
        let locked_note = ", locked by another transaction".to_string();
        let (key, note, what) = match &e {
            shoal_kv::KvError::WriteConflict { key, note } => (key, note, "concurrent update on"),
            shoal_kv::KvError::Locked(blocked) => {
                (&blocked.key, &locked_note, "concurrent update on")
            }
            shoal_kv::KvError::ReadConflict { key, note } => (
                key,
                note,
                "read/write dependencies among transactions: this transaction read",
            ),
            _ => return e.into(),
        };
        let named = crate::row::table_of_key(key).and_then(|id| {
            let txn = self.db.kv.begin().ok()?;
            let desc = crate::catalog::table_by_id(&txn, id).ok()??;
            txn.rollback();
            let mut row = vec![crate::types::Datum::Null; desc.columns.len()];
            crate::row::decode_key_into(&desc, key, &mut row).ok()?;
            Some(format!(
                "table \"{}\", key {}",
                desc.name,
                crate::dml::key_text(&desc, &row)
            ))
        });
        let on = named.unwrap_or_else(|| format!("key {}", crate::row::pretty_key(key)));
        let changed = if what.ends_with("read") {
            ", changed since by another transaction"
        } else {
            ""
        };
        let message = format!("could not serialize access due to {what} {on}{changed}{note}");
        match e {
            shoal_kv::KvError::Locked(blocked) => SqlError::RowLocked(blocked, message),
            _ => SqlError::SerializationFailure(message),
        }
    }

    /// Runs `set_config` (`set_config.rs`): its arguments evaluated in the
    /// statement's transaction, then applied as `SET [LOCAL]`.
    async fn set_config(
        &mut self,
        call: &crate::set_config::SetConfigCall,
        params: Vec<ScalarValue>,
    ) -> Result<Output> {
        let setting = call.setting(&self.evaluate(&call.args_query(), params).await?)?;
        let value = setting.value.as_deref().unwrap_or("default");
        self.assign(&setting.name, value, setting.local)?;
        let now = self.vars.get(&setting.name).map(str::to_string);
        single_value(call.schema(), Arc::new(StringArray::from(vec![now])))
    }

    /// `SET [LOCAL] name = value`, with PostgreSQL's rules for blocks
    /// (`settings_undo.rs`): outside a block `SET` lasts and `SET LOCAL`
    /// changes nothing.
    /// Whether `name` is a session variable.
    pub(crate) fn knows_variable(&self, name: &str) -> bool {
        self.vars.canonical_name(name).is_some()
    }

    /// Sets a session variable as `SET name = value` would.
    pub(crate) fn configure(&mut self, name: &str, value: &str) -> Result<()> {
        self.assign(name, value, false)
    }

    /// The value of a session variable, as `SHOW` gives it.
    pub fn variable(&self, name: &str) -> Option<String> {
        self.vars.get(name).map(str::to_string)
    }

    fn assign(&mut self, name: &str, value: &str, local: bool) -> Result<()> {
        let canonical = self.vars.canonical_name(name).map(str::to_string);
        if canonical.as_deref() == Some("transaction_isolation") {
            return self.set_isolation(value);
        }
        let checked = self.vars.checked(name, value)?;
        match (&self.state, canonical) {
            (TxnState::InBlock(_), Some(canonical)) => {
                let before = self.vars.get(&canonical).unwrap_or_default().to_string();
                self.block_settings
                    .record(&canonical, &before, &checked, local);
                self.vars.set(&canonical, &checked)?;
            }
            _ if local => return Ok(()),
            _ => self.vars.set(name, &checked)?,
        }
        if self.vars.canonical_name(name) == Some("default_transaction_isolation") {
            self.follow_default_isolation()?;
        }
        Ok(())
    }

    /// Runs `pg_sleep` (`sleep.rs`): its argument evaluated in the
    /// statement's transaction, the wait after.
    async fn sleep(
        &mut self,
        call: &crate::sleep::SleepCall,
        params: Vec<ScalarValue>,
    ) -> Result<Output> {
        let evaluated = self.evaluate(&call.args_query(), params).await?;
        call.run(&evaluated).await
    }

    /// Runs internal query `sql` (a function's arguments) in the
    /// statement's transaction: the open block's, or one of its own, rolled
    /// back after.
    async fn evaluate(&mut self, sql: &str, params: Vec<ScalarValue>) -> Result<Vec<RecordBatch>> {
        let (txn, implicit) = self.statement_txn()?;
        *self.slot.lock() = Some(txn.clone());
        let evaluated = match self.plan_sql(sql).await {
            Ok(plan) => self.collect(plan, params).await,
            Err(e) => Err(e),
        };
        *self.slot.lock() = None;
        if implicit {
            txn.rollback();
        }
        evaluated
    }

    /// `SAVEPOINT name` (module docs).
    fn savepoint(&mut self, name: &str) -> Result<Output> {
        self.refuse_in_implicit_block("SAVEPOINT")?;
        let txn = match &self.state {
            TxnState::InBlock(txn) => txn,
            TxnState::Failed(_) => return Err(SqlError::InFailedTransaction),
            TxnState::Idle => return Err(outside_block("SAVEPOINT")),
        };
        let mark = txn.savepoint()?;
        self.savepoints.push(SavepointEntry {
            name: name.to_string(),
            mark,
            after_commit: self.after_commit.len(),
            settings: self.block_settings.mark(),
        });
        Ok(Output::command("SAVEPOINT"))
    }

    /// `RELEASE [SAVEPOINT] name`: drops it and every later savepoint.
    fn release_savepoint(&mut self, name: &str) -> Result<Output> {
        self.refuse_in_implicit_block("RELEASE SAVEPOINT")?;
        let txn = match &self.state {
            TxnState::InBlock(txn) => txn.clone(),
            TxnState::Failed(_) => return Err(SqlError::InFailedTransaction),
            TxnState::Idle => return Err(outside_block("RELEASE SAVEPOINT")),
        };
        let Some(at) = self.find_savepoint(name) else {
            self.fail_block(txn);
            return Err(SqlError::UndefinedSavepoint(name.to_string()));
        };
        self.savepoints.truncate(at);
        if self.savepoints.is_empty() {
            txn.release_savepoints();
        }
        Ok(Output::command("RELEASE"))
    }

    /// `ROLLBACK TO [SAVEPOINT] name`: undoes what the block did since, and
    /// leaves a failed block usable.
    fn rollback_to_savepoint(&mut self, name: &str) -> Result<Output> {
        self.refuse_in_implicit_block("ROLLBACK TO SAVEPOINT")?;
        let txn = match &self.state {
            TxnState::InBlock(txn) | TxnState::Failed(txn) => txn.clone(),
            TxnState::Idle => return Err(outside_block("ROLLBACK TO SAVEPOINT")),
        };
        let Some(at) = self.find_savepoint(name) else {
            self.fail_block(txn);
            return Err(SqlError::UndefinedSavepoint(name.to_string()));
        };
        let entry = &self.savepoints[at];
        if let Err(e) = txn.rollback_to(entry.mark) {
            self.fail_block(txn);
            return Err(e.into());
        }
        self.after_commit.truncate(entry.after_commit);
        self.block_settings
            .roll_back_to(entry.settings, &mut self.vars);
        self.savepoints.truncate(at + 1);
        self.state = TxnState::InBlock(txn);
        Ok(Output::command("ROLLBACK"))
    }

    /// The newest open savepoint called `name`.
    fn find_savepoint(&self, name: &str) -> Option<usize> {
        self.savepoints.iter().rposition(|s| s.name == name)
    }

    fn commit(&mut self) -> Result<Output> {
        match std::mem::replace(&mut self.state, TxnState::Idle) {
            TxnState::Idle => Ok(Output::Commit),
            TxnState::InBlock(txn) => {
                let committed = self.check_and_commit(&txn);
                if committed.is_err() {
                    txn.rollback();
                }
                self.after_end(committed.is_ok());
                committed?;
                Ok(Output::Commit)
            }
            TxnState::Failed(txn) => {
                txn.rollback();
                self.after_end(false);
                Ok(Output::Rollback)
            }
        }
    }

    fn rollback(&mut self) -> Output {
        if let TxnState::InBlock(txn) | TxnState::Failed(txn) =
            std::mem::replace(&mut self.state, TxnState::Idle)
        {
            txn.rollback();
        }
        self.after_end(false);
        Output::Rollback
    }

    /// What follows the end of a transaction: if it committed, what its
    /// DDL left to do (`ddl::after_commit`).
    fn after_end(&mut self, committed: bool) {
        self.implicit_block = false;
        self.savepoints.clear();
        self.deferred.lock().clear();
        self.block_settings.end(committed, &mut self.vars);
        let level = self.default_isolation();
        if let Err(e) = self.vars.set("transaction_isolation", &level) {
            tracing::error!(error = %e, "cannot reset transaction_isolation");
        }
        let read_only = self
            .vars
            .get("default_transaction_read_only")
            .map(|v| v.to_string())
            .unwrap_or_else(|| "off".into());
        if let Err(e) = self.vars.set("transaction_read_only", &read_only) {
            tracing::error!(error = %e, "cannot reset transaction_read_only");
        }
        self.advisory.end_transaction();
        let actions = std::mem::take(&mut self.after_commit);
        if committed {
            ddl::after_commit(&self.db.kv, &actions);
        }
    }

    /// `RESET name` (`SET name TO DEFAULT`) and `RESET ALL`, which leaves
    /// the transaction's isolation alone, as PostgreSQL does.
    fn reset(&mut self, reset: &ast::Reset) -> Result<Output> {
        match reset {
            ast::Reset::ConfigurationParameter(name) => {
                self.assign(&name.to_string(), "DEFAULT", false)?;
            }
            ast::Reset::ALL => {
                let names: Vec<String> = self
                    .vars
                    .all()
                    .map(|(name, _)| name.to_string())
                    .filter(|name| {
                        name != "transaction_isolation" && !crate::vars::is_read_only(name)
                    })
                    .collect();
                for name in names {
                    self.assign(&name, "DEFAULT", false)?;
                }
            }
        }
        Ok(Output::command("RESET"))
    }

    fn set(&mut self, set: &ast::Set) -> Result<Output> {
        match set {
            ast::Set::SingleAssignment {
                variable, values, ..
            } if let Some((command, tables)) = crate::maintenance::target(variable, values) => {
                // The block's transaction sees the tables it created.
                let own = !matches!(self.state, TxnState::InBlock(_));
                let txn = match &self.state {
                    TxnState::InBlock(txn) => txn.clone(),
                    _ => self.db.kv.begin()?,
                };
                for table in tables {
                    let name = crate::pre_parse::parse_table_name(&table)?;
                    let (schema, name) = self.scope().resolve(&txn, &name)?;
                    if crate::catalog::table_by_name(&txn, &self.database, &schema, &name)?
                        .is_none()
                    {
                        if own {
                            txn.rollback();
                        }
                        return Err(SqlError::UndefinedTable(name));
                    }
                }
                if own {
                    txn.rollback();
                }
                return Ok(Output::command(&command));
            }
            ast::Set::SingleAssignment {
                variable, values, ..
            } if let Some((names, deferred)) = crate::set_constraints::target(variable, values) => {
                // Outside a block it has no effect, as in PostgreSQL.
                if let TxnState::InBlock(txn) = &self.state {
                    self.deferred.lock().set(txn, names, deferred)?;
                }
                return Ok(Output::command("SET CONSTRAINTS"));
            }
            ast::Set::SingleAssignment {
                variable, values, ..
            } if let Some(setting) = crate::cluster_settings::setting_name(variable) => {
                let value = values.iter().map(set_value).collect::<Vec<_>>().join(", ");
                self.db.kv.set_cluster_setting(&setting, &value)?;
                return Ok(Output::command("SET CLUSTER SETTING"));
            }
            ast::Set::SingleAssignment {
                variable,
                values,
                scope,
                ..
            } => {
                let name = variable.to_string();
                // A quoted schema keeps its quotes in `search_path` (and
                // so its case), as PostgreSQL shows it.
                let item = |v: &ast::Expr| match v {
                    ast::Expr::Identifier(i)
                        if i.quote_style.is_some() && name.eq_ignore_ascii_case("search_path") =>
                    {
                        crate::names::quote(&i.value)
                    }
                    other => set_value(other),
                };
                let value = values.iter().map(item).collect::<Vec<_>>().join(", ");
                let local = matches!(scope, Some(ast::ContextModifier::Local));
                self.assign(&name, &value, local)?;
            }
            ast::Set::SetTimeZone { value, local } => {
                self.assign("TimeZone", &set_value(value), *local)?;
            }
            ast::Set::SetNames { charset_name, .. } => {
                self.vars.set("client_encoding", &charset_name.value)?;
            }
            ast::Set::SetTransaction { modes, session, .. } => {
                for mode in modes {
                    if let ast::TransactionMode::IsolationLevel(level) = mode {
                        if *session {
                            self.set_default_isolation(&level.to_string())?;
                        } else {
                            self.set_isolation(&level.to_string())?;
                        }
                    }
                }
            }
            other => return Err(SqlError::NotSupported(format!("{other}"))),
        }
        Ok(Output::command("SET"))
    }

    fn show_name(&self, variable: &[ast::Ident]) -> String {
        let name = variable
            .iter()
            .map(|i| i.value.clone())
            .collect::<Vec<_>>()
            .join(" ");
        match name.to_lowercase().as_str() {
            "time zone" => "TimeZone".into(),
            "transaction isolation level" => "transaction_isolation".into(),
            _ => self
                .vars
                .canonical_name(&name)
                .map(str::to_string)
                .unwrap_or(name),
        }
    }

    /// `SHOW RANGES` (every range) or `SHOW RANGES FROM TABLE t` (the
    /// ranges holding the table's keys).
    fn show_ranges(&self, txn: &Txn, table: Option<&[ast::Ident]>) -> Result<Output> {
        let span = match table {
            None => None,
            Some(name) => {
                let name = ast::ObjectName::from(name.to_vec());
                let (schema, table) = self.scope().resolve(txn, &name)?;
                let desc = crate::catalog::table_by_name(txn, &self.database, &schema, &table)?
                    .ok_or(SqlError::UndefinedTable(table))?;
                let start = crate::row::table_prefix(desc.id);
                let end = crate::row::prefix_end(&start);
                Some((start, end))
            }
        };
        let batch = crate::cluster_views::ranges_batch(
            &self.db.kv,
            span.as_ref().map(|(s, e)| (s.as_slice(), e.as_slice())),
        )?;
        Ok(Output::Rows {
            schema: batch.schema(),
            batches: vec![batch],
        })
    }

    fn show(&self, variable: &[ast::Ident]) -> Result<Output> {
        let name = self.show_name(variable);
        if name.eq_ignore_ascii_case("all") {
            let schema = Arc::new(Schema::new(vec![
                Field::new("name", DataType::Utf8, false),
                Field::new("setting", DataType::Utf8, false),
            ]));
            let (names, values): (Vec<&str>, Vec<&str>) = self.vars.all().unzip();
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from(names)),
                    Arc::new(StringArray::from(values)),
                ],
            )
            .map_err(|e| SqlError::Internal(e.to_string()))?;
            return Ok(Output::Rows {
                schema,
                batches: vec![batch],
            });
        }
        let Some(value) = self.vars.get(&name) else {
            return Err(SqlError::UndefinedObject(format!(
                "unrecognized configuration parameter \"{name}\""
            )));
        };
        show_value(&name, value)
    }
}

/// The one-row, one-column answer of `SHOW name`.
fn show_value(name: &str, value: &str) -> Result<Output> {
    single_value(show_schema(name), Arc::new(StringArray::from(vec![value])))
}

/// A one-row answer: `value` (one element) under `schema` (one column).
pub(crate) fn single_value(
    schema: SchemaRef,
    value: datafusion::arrow::array::ArrayRef,
) -> Result<Output> {
    let batch = RecordBatch::try_new(schema.clone(), vec![value])
        .map_err(|e| SqlError::Internal(e.to_string()))?;
    Ok(Output::Rows {
        schema,
        batches: vec![batch],
    })
}

impl Drop for Session {
    fn drop(&mut self) {
        if let TxnState::InBlock(txn) | TxnState::Failed(txn) = &self.state {
            txn.rollback();
        }
        self.advisory.release_all();
    }
}

/// Whether `SHOW <variable>` is `SHOW RANGES` (`Some(None)`) or
/// `SHOW RANGES FROM TABLE <name>` (`Some(Some(name))`); the parser reads
/// both as a variable name of several words.
fn show_ranges_target(variable: &[ast::Ident]) -> Option<Option<&[ast::Ident]>> {
    let word = |i: usize, w: &str| {
        variable
            .get(i)
            .is_some_and(|id| id.quote_style.is_none() && id.value.eq_ignore_ascii_case(w))
    };
    if !word(0, "ranges") {
        return None;
    }
    match variable.len() {
        1 => Some(None),
        n if n > 3 && word(1, "from") && word(2, "table") => Some(Some(&variable[3..])),
        _ => None,
    }
}

fn show_schema(name: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        name.to_lowercase(),
        DataType::Utf8,
        false,
    )]))
}

/// The text of a `SET` value: string literals without quotes, anything else
/// as written.
fn set_value(e: &ast::Expr) -> String {
    match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => s.clone(),
            other => other.to_string(),
        },
        ast::Expr::Identifier(i) => i.value.clone(),
        other => other.to_string(),
    }
}

/// The error for a savepoint statement outside a transaction block.
fn outside_block(what: &str) -> SqlError {
    SqlError::NoActiveTransaction(format!("{what} can only be used in transaction blocks"))
}

fn is_txn_end(stmt: &Statement) -> bool {
    matches!(stmt, Statement::Commit { .. } | Statement::Rollback { .. })
}

/// The leading keyword(s) of a statement, for "not supported" messages.
fn statement_keyword(stmt: &Statement) -> String {
    let text = stmt.to_string();
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// sqlparser's messages read "sql parser error: Expected: …"; PostgreSQL says
/// "syntax error at or near …". Keep sqlparser's detail, drop its prefix.
fn syntax_message(m: &str) -> String {
    let m = m.strip_prefix("sql parser error: ").unwrap_or(m);
    format!("syntax error: {m}")
}
