//! `SELECT … FOR UPDATE` and `FOR SHARE`: locking reads.
//!
//! Shoal buffers a transaction's writes and checks them at commit (first
//! committer wins, `kv/commit.rs`); it keeps no lock table that readers
//! could consult. A locking read therefore locks the rows it returns the
//! way a write would: inside a transaction block each returned row is
//! written back unchanged. Two transactions that lock, or lock and write,
//! the same row cannot both commit — the second gets 40001 at `COMMIT`
//! instead of waiting at the `SELECT` as in PostgreSQL — so a locked row
//! still cannot change under its holder. `FOR SHARE` locks the same way,
//! which is stricter than PostgreSQL: two sharers of a row conflict.
//!
//! What cannot be given is refused with 0A000 rather than ignored:
//! `NOWAIT` and `SKIP LOCKED` (no transaction can see another's locks
//! before it commits), and locking reads over joins, subqueries, `GROUP BY`
//! or `DISTINCT`. Outside a block a locking read is a plain read: its locks
//! would end with the statement.
//!
//! The rows to lock are found by a second query over the same snapshot:
//! the statement with its select list replaced by the table's primary key
//! (through the DML view, which shows hidden row ids), keeping `WHERE`,
//! `ORDER BY` and `LIMIT`, so `… ORDER BY id LIMIT 1 FOR UPDATE` locks
//! exactly the row it returns.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::common::ScalarValue;
use datafusion::sql::sqlparser::ast::{
    self, Expr, GroupByExpr, Ident, ObjectName, SelectItem, SetExpr, Statement, TableAlias,
    TableFactor,
};
use shoal_kv::Txn;

use crate::descriptor::TableDescriptor;
use crate::dml::{alias_of, batch_datums, lookup};
use crate::error::{Result, SqlError};
use crate::names;
use crate::providers::DML_PREFIX;
use crate::session::{Output, Session};

/// Runs locking query `query` in `txn`; `lock` tells whether the rows are
/// to be locked (inside a transaction block).
pub async fn select(
    session: &Session,
    txn: &Arc<Txn>,
    query: &ast::Query,
    params: Vec<ScalarValue>,
    lock: bool,
) -> Result<Output> {
    let (desc, keys_query) = keys_query(session, txn, query)?;
    let mut plain = query.clone();
    plain.locks.clear();
    let plan = session.plan(&Statement::Query(Box::new(plain))).await?;
    let output = session.run_query(plan, params.clone()).await?;
    if lock {
        let plan = session
            .plan(&Statement::Query(Box::new(keys_query)))
            .await?;
        let batches = session.collect(plan, params).await?;
        for batch in &batches {
            let mut casted = HashMap::new();
            for r in 0..batch.num_rows() {
                let key_values = batch_datums(batch, 0, &desc, &desc.primary_key, &mut casted, r)?;
                let key = crate::row::encode_key_values(&desc, &key_values)?;
                if let Some(row) = txn.get(&key)? {
                    txn.put(key, row)?;
                }
            }
        }
    }
    Ok(output)
}

fn unsupported(what: &str) -> SqlError {
    SqlError::NotSupported(format!("{what} with FOR UPDATE / FOR SHARE"))
}

/// Checks that `query` is a locking read Shoal can give, and returns its
/// table and the query of the primary keys of the rows it locks.
fn keys_query(
    session: &Session,
    txn: &Txn,
    query: &ast::Query,
) -> Result<(Arc<TableDescriptor>, ast::Query)> {
    if query.locks.iter().any(|l| l.nonblock.is_some()) {
        return Err(SqlError::NotSupported(
            "NOWAIT and SKIP LOCKED (Shoal locks rows at commit, so no transaction sees another's locks)"
                .into(),
        ));
    }
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
    for lock in &query.locks {
        if let Some(of) = &lock.of {
            let named = names::table_name(of, session.database())?;
            if named != alias_name && named != desc.name {
                return Err(SqlError::UndefinedTable(format!(
                    "relation \"{named}\" in FOR UPDATE/FOR SHARE clause not found in FROM clause"
                )));
            }
        }
    }
    *name = ObjectName::from(vec![Ident::with_quote(
        '"',
        format!("{DML_PREFIX}{}", desc.name),
    )]);
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
    Ok((desc, keys))
}
