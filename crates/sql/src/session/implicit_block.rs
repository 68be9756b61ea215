//! The implicit transaction block of a group of statements.
//!
//! PostgreSQL runs the statements a client sends together as one
//! transaction: those of one simple Query message with several
//! statements, and those of the extended protocol before one Sync (a
//! pipeline, such as a driver's batch). If one of them fails, none of
//! them happened. This is the *implicit block*: it opens before the
//! group's first statement and closes when the group ends, committing if
//! nothing failed and rolling back otherwise.
//!
//! The front end says where a group starts and ends
//! ([`Session::begin_implicit_block`], [`Session::end_implicit_block`]);
//! a statement on its own never opens one — it runs in a transaction of
//! its own, retried on a serialization failure, as before. In between,
//! the block is an ordinary block of the session's (`TxnState::InBlock`)
//! marked `implicit_block`, so every statement runs in it exactly as in a
//! block the client opened, with PostgreSQL's differences:
//! - `BEGIN` makes it the client's block: it stays open past the group,
//!   with the statements already run in it ([`Session::
//!   adopt_implicit_block`]);
//! - `COMMIT` and `ROLLBACK` end it, and the group's next statement opens
//!   a new one;
//! - savepoints are refused (25P01), as they are outside blocks;
//! - statements refused inside blocks (`CREATE DATABASE`) are refused
//!   (25001).
//!
//! A group whose statements all run again safely may be run again whole
//! after a serialization failure, as long as the client has seen nothing
//! of it ([`Session::reruns_in_group`]); the front end decides, since
//! only it knows what it has sent.

use datafusion::sql::sqlparser::ast::Statement;

use super::{Output, Session, TxnState};
use crate::error::{Result, SqlError};

impl Session {
    /// Opens the implicit block of a group before one of its statements,
    /// unless a block is open already (the client's, or this group's).
    pub fn begin_implicit_block(&mut self) -> Result<()> {
        if matches!(self.state, TxnState::Idle) {
            self.begin(&[])?;
            self.implicit_block = true;
        }
        Ok(())
    }

    /// Whether the open block is a group's implicit one.
    pub fn in_implicit_block(&self) -> bool {
        self.implicit_block
    }

    /// Closes the group's implicit block, if one is open: commits it when
    /// `ok` (nothing of the group failed) and it has not failed itself,
    /// else rolls it back. The error is the commit's.
    pub fn end_implicit_block(&mut self, ok: bool) -> Result<()> {
        if !self.implicit_block {
            return Ok(());
        }
        match (&self.state, ok) {
            (TxnState::InBlock(_), true) => self.commit().map(|_| ()),
            _ => {
                self.rollback();
                Ok(())
            }
        }
    }

    /// `BEGIN` inside a group's implicit block: the block becomes the
    /// client's, keeping what the group did so far. Its modes apply as
    /// `SET TRANSACTION` would: the isolation only before the first query.
    pub(super) fn adopt_implicit_block(
        &mut self,
        level: Option<String>,
        read_only: Option<&str>,
    ) -> Result<Output> {
        let TxnState::InBlock(txn) = &self.state else {
            return Err(SqlError::Internal("no implicit block to adopt".into()));
        };
        if let Some(level) = level {
            if txn.is_used() {
                return Err(SqlError::ActiveTransaction(
                    "SET TRANSACTION ISOLATION LEVEL must be called before any query".into(),
                ));
            }
            txn.set_isolation(crate::vars::isolation(&level));
            self.vars.set("transaction_isolation", &level)?;
        }
        if let Some(read_only) = read_only {
            self.vars.set("transaction_read_only", read_only)?;
        }
        self.implicit_block = false;
        Ok(Output::Begin)
    }

    /// Refuses savepoint commands in an implicit block (25P01), as
    /// PostgreSQL does.
    pub(super) fn refuse_in_implicit_block(&self, what: &str) -> Result<()> {
        match self.implicit_block {
            true => Err(super::outside_block(what)),
            false => Ok(()),
        }
    }

    /// Counts a group run again after a serialization failure (the
    /// node's retry counter).
    pub fn count_group_retry(&self) {
        self.db.count_retry();
    }

    /// Whether `stmt` may run again as part of a group run again whole:
    /// a query or data change, with no effect outside the transaction
    /// (advisory locks, settings, sleeps) and no transaction control.
    pub fn reruns_in_group(stmt: &Statement) -> bool {
        crate::row_waits::reruns_safely(stmt)
            && crate::advisory::recognize(stmt).is_none()
            && crate::set_config::recognize(stmt).is_none()
            && crate::sleep::recognize(stmt).is_none()
    }
}
