//! `SELECT … FOR UPDATE` and `FOR SHARE`: locking reads.
//!
//! A locking read takes a **row lock** on every row it returns: a lock of
//! the cluster-wide lock table (`locks.rs`, key space 3, keyed by a 64-bit
//! hash of the row's key), held until the transaction ends — exclusive for
//! `FOR UPDATE` / `FOR NO KEY UPDATE`, shared for `FOR SHARE` / `FOR KEY
//! SHARE`. Lockers of one row therefore wait for each other as in
//! PostgreSQL: bounded by `lock_timeout` (55P03) and `statement_timeout`
//! (57014), with deadlocks across nodes broken by 40P01. `NOWAIT` fails at
//! once with 55P03 when a row is locked; `SKIP LOCKED` leaves such rows
//! out (the job-queue pattern: `… ORDER BY id LIMIT 1 FOR UPDATE SKIP
//! LOCKED`). A hash collision between two rows can only make a locker
//! wait, never let two hold one row.
//!
//! Plain writes take no locks of this table: Shoal buffers a transaction's
//! writes and checks them at commit (first committer wins,
//! `kv/commit.rs`); only READ COMMITTED blocks lock what they wrote, with
//! lock intents (`row_waits.rs`). So inside a block each locked row is also
//! written back unchanged: a transaction that changes a locked row and its
//! holder cannot both commit — under READ COMMITTED the write-back is
//! row-locked and writers wait, as in PostgreSQL; otherwise the second to
//! commit gets 40001. `FOR SHARE` writes back too, so two sharers that
//! both commit conflict: stricter than PostgreSQL.
//!
//! Refused with 0A000: locking reads over joins, subqueries, `GROUP BY` or
//! `DISTINCT`; `SKIP LOCKED` with `OFFSET`, with a `LIMIT` that is not a
//! number, or on a table without a primary key. Outside a block the row
//! locks last for the statement.
//!
//! The rows to lock are found by a second query over the same snapshot:
//! the statement with its select list replaced by the table's primary key
//! (through the DML view, which shows hidden row ids), keeping `WHERE`,
//! `ORDER BY` and `LIMIT`, so `… ORDER BY id LIMIT 1 FOR UPDATE` locks
//! exactly the row it returns. With `SKIP LOCKED` the keys query has no
//! `LIMIT`: rows are locked in order until `LIMIT` of them are, and the
//! answer is the statement restricted to those rows' keys (passed as extra
//! parameters).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::common::ScalarValue;
use datafusion::sql::sqlparser::ast::{
    self, BinaryOperator, Expr, GroupByExpr, Ident, LimitClause, LockType, NonBlock, ObjectName,
    SelectItem, SetExpr, Statement, TableAlias, TableFactor, Value,
};
use shoal_kv::Txn;

use crate::descriptor::TableDescriptor;
use crate::dml::{alias_of, batch_datums, lookup};
use crate::error::{Result, SqlError};
use crate::locks::{LockId, LockMode};
use crate::names;
use crate::providers::DML_PREFIX;
use crate::session::{Output, Session};

/// What a locking read asks for, once checked.
struct Target {
    desc: Arc<TableDescriptor>,
    /// The name the query gives the table.
    alias: String,
    /// The query of the primary keys of the rows to lock.
    keys: ast::Query,
    mode: LockMode,
    nonblock: Option<NonBlock>,
}

/// Runs locking query `query` in `txn`; `in_block` tells whether locked rows
/// are also written back (inside a transaction block).
pub async fn select(
    session: &mut Session,
    txn: &Arc<Txn>,
    query: &ast::Query,
    params: Vec<ScalarValue>,
    in_block: bool,
) -> Result<Output> {
    let target = target(session, txn, query)?;
    let skip = target.nonblock == Some(NonBlock::SkipLocked);
    let wanted = if skip {
        limit_count(query, &params)?
    } else {
        None
    };
    let plan = session
        .plan(&Statement::Query(Box::new(target.keys.clone())))
        .await?;
    let batches = session.collect(plan, params.clone()).await?;
    let limits = session.wait_limits();
    let mut locked: Vec<Vec<ScalarValue>> = Vec::new();
    'rows: for batch in &batches {
        let mut casted = HashMap::new();
        for r in 0..batch.num_rows() {
            if wanted.is_some_and(|w| locked.len() >= w) {
                break 'rows;
            }
            let desc = &target.desc;
            let key_values = batch_datums(batch, 0, desc, &desc.primary_key, &mut casted, r)?;
            let key = crate::row::encode_key_values(desc, &key_values)?;
            let id = LockId::row(&key);
            let wait = target.nonblock.is_none();
            if !session.lock_row(id, target.mode, wait, limits).await? {
                if skip {
                    continue;
                }
                return Err(SqlError::LockNotAvailable(format!(
                    "could not obtain lock on row in relation \"{}\"",
                    desc.name
                )));
            }
            if in_block && let Some(row) = txn.get(&key)? {
                txn.put(key, row)?;
            }
            if skip {
                let scalars = (0..batch.num_columns())
                    .map(|c| ScalarValue::try_from_array(batch.column(c).as_ref(), r))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                locked.push(scalars);
            }
        }
    }
    let mut plain = query.clone();
    plain.locks.clear();
    let mut params = params;
    if skip {
        restrict_to(&mut plain, &target, &locked, &mut params)?;
    }
    let plan = session.plan(&Statement::Query(Box::new(plain))).await?;
    session.run_query(plan, params).await
}

/// Restricts `query` to the rows whose primary keys are `keys`, passed as
/// parameters appended to `params` (an empty `keys` matches nothing).
fn restrict_to(
    query: &mut ast::Query,
    target: &Target,
    keys: &[Vec<ScalarValue>],
    params: &mut Vec<ScalarValue>,
) -> Result<()> {
    let SetExpr::Select(select) = query.body.as_mut() else {
        return Err(unsupported("UNION, INTERSECT, EXCEPT or VALUES"));
    };
    let column = |p: usize| {
        Expr::CompoundIdentifier(vec![
            Ident::with_quote('"', target.alias.clone()),
            Ident::with_quote('"', target.desc.columns[p].name.clone()),
        ])
    };
    let mut any: Option<Expr> = None;
    for key in keys {
        let mut all: Option<Expr> = None;
        for (&p, value) in target.desc.primary_key.iter().zip(key) {
            params.push(value.clone());
            let equal = Expr::BinaryOp {
                left: Box::new(column(p)),
                op: BinaryOperator::Eq,
                right: Box::new(Expr::Value(
                    Value::Placeholder(format!("${}", params.len())).into(),
                )),
            };
            all = Some(match all {
                None => equal,
                Some(left) => and(left, equal),
            });
        }
        if let Some(all) = all {
            any = Some(match any {
                None => Expr::Nested(Box::new(all)),
                Some(left) => Expr::BinaryOp {
                    left: Box::new(left),
                    op: BinaryOperator::Or,
                    right: Box::new(Expr::Nested(Box::new(all))),
                },
            });
        }
    }
    let chosen = any.unwrap_or(Expr::Value(Value::Boolean(false).into()));
    select.selection = Some(match select.selection.take() {
        None => chosen,
        Some(filter) => and(
            Expr::Nested(Box::new(filter)),
            Expr::Nested(Box::new(chosen)),
        ),
    });
    Ok(())
}

fn and(left: Expr, right: Expr) -> Expr {
    Expr::BinaryOp {
        left: Box::new(left),
        op: BinaryOperator::And,
        right: Box::new(right),
    }
}

/// The `LIMIT` of a `SKIP LOCKED` query: a number, or a parameter holding
/// one (`None`: no limit).
fn limit_count(query: &ast::Query, params: &[ScalarValue]) -> Result<Option<usize>> {
    let limit = match &query.limit_clause {
        None => return Ok(None),
        Some(LimitClause::LimitOffset {
            limit,
            offset: None,
            limit_by,
        }) if limit_by.is_empty() => limit,
        Some(_) => return Err(unsupported("SKIP LOCKED and OFFSET")),
    };
    let not_a_number = || unsupported("SKIP LOCKED and a LIMIT that is not a number");
    let value = match limit {
        None => return Ok(None),
        Some(Expr::Value(v)) => match &v.value {
            Value::Number(n, _) => n.parse::<i64>().map_err(|_| not_a_number())?,
            Value::Placeholder(p) => {
                let index: usize = p
                    .trim_start_matches('$')
                    .parse()
                    .map_err(|_| not_a_number())?;
                match index.checked_sub(1).and_then(|i| params.get(i)) {
                    Some(ScalarValue::Int64(Some(n))) => *n,
                    Some(ScalarValue::Int32(Some(n))) => i64::from(*n),
                    _ => return Err(not_a_number()),
                }
            }
            _ => return Err(not_a_number()),
        },
        Some(_) => return Err(not_a_number()),
    };
    if value < 0 {
        return Err(SqlError::InvalidParameter(
            "LIMIT must not be negative".into(),
        ));
    }
    Ok(Some(usize::try_from(value).unwrap_or(usize::MAX)))
}

fn unsupported(what: &str) -> SqlError {
    SqlError::NotSupported(format!("{what} with FOR UPDATE / FOR SHARE"))
}

/// Checks that `query` is a locking read Shoal can give, and returns what
/// it locks and how.
fn target(session: &Session, txn: &Txn, query: &ast::Query) -> Result<Target> {
    let mode = if query.locks.iter().any(|l| l.lock_type == LockType::Update) {
        LockMode::Exclusive
    } else {
        LockMode::Shared
    };
    // The strictest of the clauses' choices: waiting, then NOWAIT.
    let nonblock = if query.locks.iter().any(|l| l.nonblock.is_none()) {
        None
    } else if query
        .locks
        .iter()
        .any(|l| l.nonblock == Some(NonBlock::Nowait))
    {
        Some(NonBlock::Nowait)
    } else {
        Some(NonBlock::SkipLocked)
    };
    if query.with.is_some() {
        return Err(unsupported("WITH"));
    }
    let mut keys = query.clone();
    keys.locks.clear();
    let SetExpr::Select(select) = keys.body.as_mut() else {
        return Err(unsupported("UNION, INTERSECT, EXCEPT or VALUES"));
    };
    let grouped =
        !matches!(&select.group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty());
    if grouped || select.having.is_some() || select.distinct.is_some() {
        return Err(unsupported("GROUP BY, HAVING or DISTINCT"));
    }
    let [from] = select.from.as_mut_slice() else {
        return Err(unsupported("a query over several tables"));
    };
    if !from.joins.is_empty() {
        return Err(unsupported("a join"));
    }
    let TableFactor::Table { name, alias, .. } = &mut from.relation else {
        return Err(unsupported("a subquery or table function"));
    };
    let desc = lookup(session, txn, name)?;
    let alias_name = alias_of(alias.as_ref(), &desc);
    if nonblock == Some(NonBlock::SkipLocked) {
        if desc.has_hidden_rowid() {
            return Err(unsupported("SKIP LOCKED on a table without a primary key"));
        }
        keys.limit_clause = None;
    }
    for lock in &query.locks {
        if let Some(of) = &lock.of {
            let (_, named) = names::split(of, session.database())?;
            if named != alias_name && named != desc.name {
                return Err(SqlError::UndefinedTable(format!(
                    "relation \"{named}\" in FOR UPDATE/FOR SHARE clause not found in FROM clause"
                )));
            }
        }
    }
    *name = ObjectName::from(vec![
        Ident::with_quote('"', desc.schema.clone()),
        Ident::with_quote('"', format!("{DML_PREFIX}{}", desc.name)),
    ]);
    if alias.is_none() {
        *alias = Some(TableAlias {
            explicit: true,
            name: Ident::with_quote('"', alias_name.clone()),
            columns: Vec::new(),
            at: None,
        });
    }
    select.projection = desc
        .primary_key
        .iter()
        .map(|p| {
            SelectItem::UnnamedExpr(Expr::CompoundIdentifier(vec![
                Ident::with_quote('"', alias_name.clone()),
                Ident::with_quote('"', desc.columns[*p].name.clone()),
            ]))
        })
        .collect();
    Ok(Target {
        desc,
        alias: alias_name,
        keys,
        mode,
        nonblock,
    })
}
