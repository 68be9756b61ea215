//! READ COMMITTED writers wait for each other: the SQL side of row locks
//! (`shoal-kv`'s `write_locks.rs`).
//!
//! In PostgreSQL's READ COMMITTED, two transactions updating one row never
//! fail: the second waits until the first ends, then applies its change to
//! the row as the first left it. Shoal buffers writes until commit, so
//! without more the second to commit would fail with 40001. Instead:
//!
//! * **Each statement of a READ COMMITTED block locks the keys it wrote**
//!   as it ends ([`lock_statement`]). If another transaction committed a
//!   change to one of them after the statement's snapshot, the statement's
//!   writes are undone to where it began (an internal savepoint) and it
//!   runs again on a new snapshot — PostgreSQL's re-check of an updated
//!   row, done for the whole statement, at most [`MAX_RERUNS`] times (only
//!   data changes and queries run again; other statements fail with
//!   40001, their effects reaching past the write buffer). The
//!   locks it took stay held: the block holds every row it wrote until it
//!   ends, as in PostgreSQL.
//! * **A writer that meets a lock waits** ([`wait_for`]) — a statement of
//!   its own at its commit, a READ COMMITTED statement when it locks —
//!   and then tries again. A REPEATABLE READ or SERIALIZABLE block that
//!   meets one at `COMMIT` fails with 40001: PostgreSQL would have made it
//!   wait at the row and then fail the same way if the holder committed.
//! * **Waiting** looks at the holder's record with backoff (up to
//!   [`MAX_BACKOFF`]; each look is a short read) and holds no thread while
//!   it sleeps. `lock_timeout` (55P03)
//!   and `statement_timeout` (57014) bound it. After `DEADLOCK_TIMEOUT` the
//!   waiter announces a wait record naming the holder's session
//!   (`deadlocks.rs`), so cycles through row locks, advisory locks and
//!   locking reads, on any nodes, are found; the youngest session of a
//!   cycle gets 40P01.
//! * **A lock names its holder**: every lock intent carries a tag, the
//!   holding session's node and id ([`holder_tag`]), which is what the
//!   waits-for graph needs.
//!
//! While a transaction holds row locks, its node's lock keeper renews
//! their record (`locks.rs`), so an idle block keeps them; a dead node's
//! expire.
//!
//! Stricter than PostgreSQL, for now: `ROLLBACK TO SAVEPOINT` keeps the
//! locks taken since the savepoint (PostgreSQL releases them); and a
//! locking read (`locking.rs`) consults the lock table only, so on a row a
//! READ COMMITTED block holds through a plain write, `NOWAIT` and `SKIP
//! LOCKED` wait for the block (at its write-back) instead of failing or
//! skipping, and a block locking its own updated row with `FOR UPDATE`
//! while another session waits on that row's write-back can meet 40P01.

use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::sql::sqlparser::ast::Statement;
use shoal_kv::write_locks::Blocked;
use shoal_kv::{Kv, KvError, Savepoint, Txn};

use crate::advisory::WaitLimits;
use crate::deadlocks::DEADLOCK_TIMEOUT;
use crate::error::{Result, SqlError};
use crate::locks::{LockTable, Owner};

/// How many times one statement runs again because rows it wrote changed
/// before it locked them, before the block fails with 40001.
pub const MAX_RERUNS: usize = 32;

/// The longest pause between two looks at a lock's holder.
const MAX_BACKOFF: Duration = Duration::from_millis(20);

/// Whether `stmt` may run again after its writes were undone: data
/// changes and queries only (module docs). Anything else — DDL, whose
/// effects reach past the write buffer — fails the block with 40001
/// instead.
pub fn reruns_safely(stmt: &Statement) -> bool {
    matches!(
        stmt,
        Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_) | Statement::Query(_)
    )
}

/// The tag a session's lock intents carry: its node and id.
pub fn holder_tag(owner: Owner) -> Vec<u8> {
    let mut tag = Vec::with_capacity(16);
    tag.extend_from_slice(&owner.node.to_be_bytes());
    tag.extend_from_slice(&owner.session.to_be_bytes());
    tag
}

/// The session a lock intent's tag names.
fn holder_of(tag: &[u8]) -> Option<Owner> {
    let (node, session) = tag.split_first_chunk::<8>()?;
    let session: [u8; 8] = session.try_into().ok()?;
    Some(Owner {
        node: u64::from_be_bytes(*node),
        session: u64::from_be_bytes(session),
    })
}

/// What a wait for row locks needs of its session.
pub struct RowWaits<'s> {
    pub kv: &'s Kv,
    pub table: &'s Arc<LockTable>,
    pub owner: Owner,
    pub limits: WaitLimits,
}

/// Withdraws a wait record when the wait ends, however it ends.
struct Announced<'s> {
    table: &'s LockTable,
    owner: Owner,
    on: bool,
}

impl Drop for Announced<'_> {
    fn drop(&mut self) {
        if self.on
            && let Err(e) = self.table.clear_wait(self.owner)
        {
            tracing::warn!(error = %e, "withdrawing a row lock wait failed; it expires on its own");
        }
    }
}

/// Waits until the lock `blocked` is released (module docs, *Waiting*).
pub async fn wait_for(waits: &RowWaits<'_>, blocked: &Blocked) -> Result<()> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    let mut next_check = started + DEADLOCK_TIMEOUT;
    let mut announced = Announced {
        table: waits.table,
        owner: waits.owner,
        on: false,
    };
    loop {
        if waits.kv.lock_released(blocked)? {
            return Ok(());
        }
        let waited = started.elapsed();
        if waits.limits.lock_timeout.is_some_and(|t| waited >= t) {
            return Err(SqlError::LockTimeout);
        }
        if waits.limits.statement_timeout.is_some_and(|t| waited >= t) {
            return Err(SqlError::StatementTimeout);
        }
        if Instant::now() >= next_check
            && let Some(holder) = holder_of(blocked.holder())
        {
            next_check = Instant::now() + DEADLOCK_TIMEOUT;
            waits.table.announce_holder_wait(waits.owner, holder)?;
            announced.on = true;
            if let Some(cycle) = waits.table.deadlock_victim(waits.owner)? {
                let detail = crate::deadlocks::describe_cycle(&cycle, "a row lock");
                return Err(SqlError::DeadlockDetected(detail));
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_BACKOFF);
    }
}

/// Locks what the statement just run in `txn` wrote (module docs): `true`
/// if none of it changed since the statement's snapshot; `false` if some
/// did, and the statement's writes are undone to `mark` for it to run
/// again. `failure` turns a KV error into the client's.
pub async fn lock_statement(
    waits: &RowWaits<'_>,
    txn: &Arc<Txn>,
    mark: Savepoint,
    failure: impl Fn(KvError) -> SqlError,
) -> Result<bool> {
    let tag = holder_tag(waits.owner);
    loop {
        match txn.lock_writes(&tag) {
            Ok(changed) => {
                if txn.has_locks() {
                    waits.table.keep_row_locks(waits.owner, txn);
                }
                if changed.is_empty() {
                    return Ok(true);
                }
                txn.rollback_to(mark)?;
                return Ok(false);
            }
            Err(KvError::Locked(blocked)) => wait_for(waits, &blocked).await?,
            Err(e) => return Err(failure(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_tags_round_trip() {
        let owner = Owner {
            node: 7,
            session: u64::MAX - 2,
        };
        assert_eq!(holder_of(&holder_tag(owner)), Some(owner));
        assert_eq!(holder_of(b"short"), None);
    }
}
