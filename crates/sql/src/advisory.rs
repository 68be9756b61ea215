//! PostgreSQL's advisory lock functions, held cluster-wide (`locks.rs`).
//!
//! `pg_advisory_lock`, `pg_try_advisory_lock`, `pg_advisory_unlock`, their
//! `_shared` variants, the transaction-scoped `pg_advisory_xact_lock` and
//! `pg_try_advisory_xact_lock` (and `_shared`), `pg_advisory_unlock_all`,
//! and Shoal's `shoal_lock_fence(key)`: the fencing token of the session's
//! hold on a `bigint` key (NULL when it holds none).
//!
//! ## Where they run
//!
//! These functions wait, and have effects beyond the statement's
//! transaction, so they are not DataFusion functions: the session
//! recognizes a statement that is exactly `SELECT f(args) [AS name]` (how
//! clients call them), evaluates the arguments with DataFusion, and runs
//! the lock operation itself, asynchronously, so a wait can be cancelled and
//! is bounded by `lock_timeout` (55P03) and `statement_timeout` (57014).
//! Anywhere else in a query they are unknown functions (42883).
//!
//! ## Counting
//!
//! As in PostgreSQL, a session may take one lock several times, in session
//! and in transaction scope; each acquisition needs its own release (the
//! transaction's at its end). The record in `locks.rs` holds one entry per
//! session and mode, taken on the first acquisition and dropped with the
//! last release. Waiting is polling with backoff, up to 250 ms apart; a
//! wait longer than `DEADLOCK_TIMEOUT` looks for a deadlock every
//! `DEADLOCK_TIMEOUT`, and the youngest session of a cycle gets 40P01
//! (`deadlocks.rs`); waiters queue first come first (`locks.rs`, *Queue*).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, SelectItem, SetExpr, Statement,
};

use crate::deadlocks::DEADLOCK_TIMEOUT;
use crate::error::{Result, SqlError};
use crate::locks::{LockId, LockMode, LockTable, Owner};
use crate::names;
use crate::session::Output;

/// Longest pause between two attempts of a waiting acquisition.
const MAX_BACKOFF: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Session,
    Transaction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LockFn {
    Lock {
        mode: LockMode,
        scope: Scope,
        wait: bool,
    },
    Unlock(LockMode),
    UnlockAll,
    Fence,
}

impl LockFn {
    fn by_name(name: &str) -> Option<LockFn> {
        use LockMode::{Exclusive, Shared};
        use Scope::{Session, Transaction};
        let lock = |mode, scope, wait| Some(LockFn::Lock { mode, scope, wait });
        match name {
            "pg_advisory_lock" => lock(Exclusive, Session, true),
            "pg_advisory_lock_shared" => lock(Shared, Session, true),
            "pg_try_advisory_lock" => lock(Exclusive, Session, false),
            "pg_try_advisory_lock_shared" => lock(Shared, Session, false),
            "pg_advisory_xact_lock" => lock(Exclusive, Transaction, true),
            "pg_advisory_xact_lock_shared" => lock(Shared, Transaction, true),
            "pg_try_advisory_xact_lock" => lock(Exclusive, Transaction, false),
            "pg_try_advisory_xact_lock_shared" => lock(Shared, Transaction, false),
            "pg_advisory_unlock" => Some(LockFn::Unlock(Exclusive)),
            "pg_advisory_unlock_shared" => Some(LockFn::Unlock(Shared)),
            "pg_advisory_unlock_all" => Some(LockFn::UnlockAll),
            "shoal_lock_fence" => Some(LockFn::Fence),
            _ => None,
        }
    }

    fn result_type(self) -> DataType {
        match self {
            LockFn::Lock { wait: true, .. } | LockFn::UnlockAll => DataType::Utf8,
            LockFn::Lock { wait: false, .. } | LockFn::Unlock(_) => DataType::Boolean,
            LockFn::Fence => DataType::Int64,
        }
    }
}

/// A recognized `SELECT f(args)` (module docs).
#[derive(Debug, Clone)]
pub struct LockCall {
    func: LockFn,
    args: Vec<Expr>,
    column: String,
}

/// The function call `stmt` is, if it is exactly `SELECT f(args) [AS
/// name]` (`f` possibly qualified with `pg_catalog`): the function's name,
/// its arguments, and the result column's name.
pub(crate) fn lone_call(stmt: &Statement) -> Option<(String, Vec<Expr>, String)> {
    let Statement::Query(query) = stmt else {
        return None;
    };
    if query.with.is_some()
        || query.order_by.is_some()
        || query.limit_clause.is_some()
        || !query.locks.is_empty()
    {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    if !select.from.is_empty()
        || select.selection.is_some()
        || select.having.is_some()
        || select.distinct.is_some()
        || select.projection.len() != 1
    {
        return None;
    }
    let (expr, alias) = match &select.projection[0] {
        SelectItem::UnnamedExpr(e) => (e, None),
        SelectItem::ExprWithAlias { expr, alias } => (expr, Some(names::fold(alias))),
        _ => return None,
    };
    let Expr::Function(function) = expr else {
        return None;
    };
    let parts = &function.name.0;
    let name = match parts.as_slice() {
        [name] => name.as_ident().map(names::fold)?,
        [schema, name] if schema.as_ident().map(names::fold).as_deref() == Some("pg_catalog") => {
            name.as_ident().map(names::fold)?
        }
        _ => return None,
    };
    let args: Vec<Expr> = match &function.args {
        FunctionArguments::None => Vec::new(),
        FunctionArguments::List(list) if list.duplicate_treatment.is_none() => list
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?,
        _ => return None,
    };
    let column = alias.unwrap_or_else(|| name.clone());
    Some((name, args, column))
}

/// The lock call `stmt` is, if it is exactly `SELECT f(args) [AS name]`
/// with one of the module's functions and a valid number of arguments.
pub fn recognize(stmt: &Statement) -> Option<LockCall> {
    let (name, args, column) = lone_call(stmt)?;
    let func = LockFn::by_name(&name)?;
    let arity_ok = match func {
        LockFn::UnlockAll => args.is_empty(),
        LockFn::Fence => args.len() == 1,
        LockFn::Lock { .. } | LockFn::Unlock(_) => matches!(args.len(), 1 | 2),
    };
    arity_ok.then_some(LockCall { func, args, column })
}

impl LockCall {
    /// A query evaluating the arguments as `bigint`s, or None for a call
    /// without arguments. The two-`integer` form is narrowed by
    /// [`LockCall::lock_id`] (out of range: 22003), but its parameters are
    /// typed `integer`, as clients bind them.
    pub fn args_query(&self) -> Option<String> {
        let pair = self.args.len() == 2;
        let casts: Vec<String> = self
            .args
            .iter()
            .map(|a| {
                let placeholder = placeholder_index(a).is_some();
                let ty = if pair && placeholder {
                    "integer"
                } else {
                    "bigint"
                };
                format!("CAST(({a}) AS {ty})")
            })
            .collect();
        (!casts.is_empty()).then(|| format!("SELECT {}", casts.join(", ")))
    }

    /// The parameter types to describe: `inferred` (from planning
    /// [`LockCall::args_query`]), with each argument that is a bare `$n`
    /// typed as its key (`bigint`, or `integer` in the two-key form).
    pub fn param_types(&self, inferred: Vec<Option<DataType>>) -> Vec<Option<DataType>> {
        let ty = if self.args.len() == 2 {
            DataType::Int32
        } else {
            DataType::Int64
        };
        type_placeholders(&self.args, &ty, inferred)
    }

    /// The result's one column.
    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new(
            &self.column,
            self.func.result_type(),
            true,
        )]))
    }

    /// The lock key the evaluated arguments name (None if one is NULL).
    pub fn lock_id(&self, batches: &[RecordBatch]) -> Result<Option<LockId>> {
        let Some(row) = batches.iter().find(|b| b.num_rows() > 0) else {
            return Err(SqlError::Internal("lock arguments gave no row".into()));
        };
        let value = |i: usize| -> Result<Option<i64>> {
            let column = row
                .columns()
                .get(i)
                .ok_or_else(|| SqlError::Internal("lock argument missing".into()))?;
            let column = datafusion::arrow::compute::cast(column, &DataType::Int64)
                .map_err(|e| SqlError::Internal(e.to_string()))?;
            let ints = column
                .as_any()
                .downcast_ref::<Int64Array>()
                .ok_or_else(|| SqlError::Internal("lock argument is not an integer".into()))?;
            Ok((!ints.is_null(0)).then(|| ints.value(0)))
        };
        Ok(match self.args.len() {
            1 => value(0)?.map(LockId::bigint),
            _ => match (value(0)?, value(1)?) {
                (Some(high), Some(low)) => {
                    let narrow = |v: i64| {
                        i32::try_from(v)
                            .map_err(|_| SqlError::NumericOutOfRange("integer out of range".into()))
                    };
                    Some(LockId::pair(narrow(high)?, narrow(low)?))
                }
                _ => None,
            },
        })
    }
}

/// `inferred` parameter types (from planning a function's arguments), with
/// every argument that is a bare `$n` typed `ty`.
pub(crate) fn type_placeholders(
    args: &[Expr],
    ty: &DataType,
    mut inferred: Vec<Option<DataType>>,
) -> Vec<Option<DataType>> {
    for n in args.iter().filter_map(placeholder_index) {
        if inferred.len() <= n {
            inferred.resize(n + 1, None);
        }
        inferred[n] = Some(ty.clone());
    }
    inferred
}

/// The 0-based index of a bare `$n` argument.
pub(crate) fn placeholder_index(arg: &Expr) -> Option<usize> {
    match arg {
        Expr::Value(v) => match &v.value {
            datafusion::sql::sqlparser::ast::Value::Placeholder(p) => {
                p.strip_prefix('$')?.parse::<usize>().ok()?.checked_sub(1)
            }
            _ => None,
        },
        Expr::Nested(inner) => placeholder_index(inner),
        _ => None,
    }
}

/// A session's wait for a lock: its place in the lock's queue and, once
/// announced, its wait record; both withdrawn when the wait ends however
/// it ends (acquired, refused, timed out or cancelled).
struct Waiting {
    table: Arc<LockTable>,
    owner: Owner,
    id: LockId,
    queued: bool,
    announced: bool,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if self.queued
            && let Err(e) = self.table.leave_queue(self.id, self.owner)
        {
            tracing::warn!(error = %e, "leaving a lock queue failed; the place expires on its own");
        }
        if self.announced
            && let Err(e) = self.table.clear_wait(self.owner)
        {
            tracing::warn!(error = %e, "withdrawing a lock wait failed; it expires on its own");
        }
    }
}

/// What a deadlock error tells the victim: the sessions waiting for each
/// other, from itself.
fn deadlock_detail(cycle: &[Owner], id: LockId) -> String {
    let lock = match id.space {
        1 => format!("advisory lock {} (bigint key)", id.key),
        2 => format!(
            "advisory lock ({}, {})",
            (id.key >> 32) as u32 as i32,
            id.key as u32 as i32
        ),
        _ => "a row lock".to_string(),
    };
    crate::deadlocks::describe_cycle(cycle, &lock)
}

/// How long a wait may last, from `lock_timeout` and `statement_timeout`
/// (0: no limit), and which error ends it.
#[derive(Debug, Clone, Copy, Default)]
pub struct WaitLimits {
    pub lock_timeout: Option<Duration>,
    pub statement_timeout: Option<Duration>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Held {
    session: u32,
    transaction: u32,
    fence: u64,
}

/// One session's advisory locks (module docs, *Counting*).
pub struct SessionLocks {
    table: Arc<LockTable>,
    owner: Owner,
    held: HashMap<(LockId, LockMode), Held>,
}

impl SessionLocks {
    pub fn new(table: Arc<LockTable>, session: u64) -> SessionLocks {
        let owner = Owner {
            node: table.node(),
            session,
        };
        SessionLocks {
            table,
            owner,
            held: HashMap::new(),
        }
    }

    /// The session these locks belong to.
    pub fn owner(&self) -> Owner {
        self.owner
    }

    /// The node's lock table.
    pub fn table(&self) -> &Arc<LockTable> {
        &self.table
    }

    /// Runs `call` on the key `id` (None: an argument was NULL, and the
    /// functions, being strict, return NULL).
    pub async fn run(
        &mut self,
        call: &LockCall,
        id: Option<LockId>,
        limits: WaitLimits,
    ) -> Result<Output> {
        let value: ArrayRef = match (call.func, id) {
            (LockFn::UnlockAll, _) => {
                self.release_scope(Scope::Session);
                Arc::new(StringArray::from(vec![""]))
            }
            (LockFn::Fence, Some(id)) => {
                let fence = [LockMode::Exclusive, LockMode::Shared]
                    .iter()
                    .filter_map(|mode| self.held.get(&(id, *mode)))
                    .map(|h| h.fence)
                    .max();
                Arc::new(Int64Array::from(vec![fence.map(|f| f as i64)]))
            }
            (LockFn::Lock { mode, scope, wait }, Some(id)) => {
                let got = self.acquire(id, mode, scope, wait, limits).await?;
                if wait {
                    Arc::new(StringArray::from(vec![""]))
                } else {
                    Arc::new(BooleanArray::from(vec![got]))
                }
            }
            (LockFn::Unlock(mode), Some(id)) => {
                Arc::new(BooleanArray::from(vec![self.release(id, mode)?]))
            }
            (_, None) => datafusion::arrow::array::new_null_array(&call.func.result_type(), 1),
        };
        crate::session::single_value(call.schema(), value)
    }

    /// Takes `id` in `mode` for the transaction (a row lock,
    /// `locking.rs`), waiting as the lock functions do unless `wait` is
    /// false; whether it was taken.
    pub async fn lock_for_transaction(
        &mut self,
        id: LockId,
        mode: LockMode,
        wait: bool,
        limits: WaitLimits,
    ) -> Result<bool> {
        self.acquire(id, mode, Scope::Transaction, wait, limits)
            .await
    }

    async fn acquire(
        &mut self,
        id: LockId,
        mode: LockMode,
        scope: Scope,
        wait: bool,
        limits: WaitLimits,
    ) -> Result<bool> {
        let held = self.held.entry((id, mode)).or_default();
        if held.session + held.transaction > 0 {
            match scope {
                Scope::Session => held.session += 1,
                Scope::Transaction => held.transaction += 1,
            }
            return Ok(true);
        }
        let started = Instant::now();
        let mut pause = Duration::from_millis(5);
        let mut waiting: Option<Waiting> = None;
        let mut next_check = started + DEADLOCK_TIMEOUT;
        loop {
            if let Some(fence) = self.table.try_acquire(id, mode, self.owner, wait)? {
                if let Some(waiting) = &mut waiting {
                    // Granted: out of the queue already.
                    waiting.queued = false;
                }
                let held = self.held.entry((id, mode)).or_default();
                held.fence = fence;
                match scope {
                    Scope::Session => held.session = 1,
                    Scope::Transaction => held.transaction = 1,
                }
                return Ok(true);
            }
            if !wait {
                self.held.remove(&(id, mode));
                return Ok(false);
            }
            // Queued now: leave the queue however the wait ends.
            let waiting = waiting.get_or_insert_with(|| Waiting {
                table: self.table.clone(),
                owner: self.owner,
                id,
                queued: true,
                announced: false,
            });
            let waited = started.elapsed();
            if limits.lock_timeout.is_some_and(|t| waited >= t) {
                self.held.remove(&(id, mode));
                return Err(SqlError::LockTimeout);
            }
            if limits.statement_timeout.is_some_and(|t| waited >= t) {
                self.held.remove(&(id, mode));
                return Err(SqlError::StatementTimeout);
            }
            if Instant::now() >= next_check {
                next_check = Instant::now() + DEADLOCK_TIMEOUT;
                self.table.announce_wait(self.owner, id, mode)?;
                waiting.announced = true;
                if let Some(cycle) = self.table.deadlock_victim(self.owner)? {
                    self.held.remove(&(id, mode));
                    return Err(SqlError::DeadlockDetected(deadlock_detail(&cycle, id)));
                }
            }
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = self.table.released() => {}
            }
            pause = (pause * 2).min(MAX_BACKOFF);
        }
    }

    /// Releases one session-scope acquisition; false if there is none.
    fn release(&mut self, id: LockId, mode: LockMode) -> Result<bool> {
        let Some(held) = self.held.get_mut(&(id, mode)) else {
            return Ok(false);
        };
        if held.session == 0 {
            return Ok(false);
        }
        held.session -= 1;
        if held.session + held.transaction == 0 {
            self.held.remove(&(id, mode));
            self.table.release(id, mode, self.owner)?;
        }
        Ok(true)
    }

    /// Drops every acquisition of `scope` (a failed release is left to the
    /// lease, which ends it within `LOCK_TTL`).
    fn release_scope(&mut self, scope: Scope) {
        let mut freed = Vec::new();
        for (&key, held) in &mut self.held {
            match scope {
                Scope::Session => held.session = 0,
                Scope::Transaction => held.transaction = 0,
            }
            if held.session + held.transaction == 0 {
                freed.push(key);
            }
        }
        for (id, mode) in freed {
            self.held.remove(&(id, mode));
            if let Err(e) = self.table.release(id, mode, self.owner) {
                tracing::warn!(error = %e, "releasing an advisory lock failed; its lease will end it");
            }
        }
    }

    /// The transaction ended: its locks go.
    pub fn end_transaction(&mut self) {
        if self.held.values().any(|h| h.transaction > 0) {
            self.release_scope(Scope::Transaction);
        }
    }

    /// The session ended: every lock goes.
    pub fn release_all(&mut self) {
        self.release_scope(Scope::Transaction);
        self.release_scope(Scope::Session);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn call(sql: &str) -> Option<LockCall> {
        let stmts = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
        recognize(stmts.first()?)
    }

    #[test]
    fn recognizes_only_a_lone_call() {
        let c = call("SELECT pg_advisory_lock(42)").expect("recognized");
        assert_eq!(c.column, "pg_advisory_lock");
        assert_eq!(
            c.args_query().as_deref(),
            Some("SELECT CAST((42) AS bigint)")
        );
        let c = call("select PG_CATALOG.pg_try_advisory_lock($1, $2) as got").expect("pair");
        assert_eq!(c.column, "got");
        assert_eq!(
            c.args_query().as_deref(),
            Some("SELECT CAST(($1) AS integer), CAST(($2) AS integer)")
        );
        assert!(call("SELECT pg_advisory_unlock_all()").is_some());
        assert!(call("SELECT pg_advisory_lock(1) FROM t").is_none());
        assert!(call("SELECT pg_advisory_lock(1), 2").is_none());
        assert!(call("SELECT pg_advisory_lock(1, 2, 3)").is_none());
        assert!(call("SELECT pg_advisory_unlock_all(1)").is_none());
        assert!(call("SELECT now()").is_none());
    }
}
