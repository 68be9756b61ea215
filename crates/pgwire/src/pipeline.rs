//! The statements of the extended protocol before one Sync: one implicit
//! transaction, as in PostgreSQL.
//!
//! A driver's batch (JDBC's `executeBatch`, libpq's pipeline mode,
//! psycopg's `executemany`) sends Bind/Execute for each statement and one
//! Sync after the last. PostgreSQL runs them all in one implicit
//! transaction that commits at Sync: if the third fails, the first two
//! did not happen either. Shoal does the same with the session's implicit
//! block (`shoal_sql`'s `session/implicit_block.rs`).
//!
//! Most groups hold one statement: Bind, Execute, Sync. That one must
//! keep running in a transaction of its own — through the fast path,
//! committed at once and retried after a serialization failure, which
//! is only safe while the client has seen nothing of it. So the first
//! Execute of a group outside a block is *held* ([`Pipeline::held`]), and
//! the next message decides:
//! - Sync: the held statement runs alone, exactly as before.
//! - Anything else (the next statement's Parse or Bind, a Describe, a
//!   Close, Flush): the group has more to it. The implicit block opens,
//!   the held Execute runs in it, then the message is handled. Every
//!   later Execute of the group runs in the block too, and Sync commits
//!   it, or rolls it back if any message of the group failed.
//!
//! Holding an Execute changes no answer's order: the held statement runs
//! before anything the next message answers. Its portal is still there
//! when it runs, since only a message that releases it first could
//! rebind or close it; and a group that ends in an error pgwire found on
//! its own (the connection is then waiting for Sync) drops it, as
//! PostgreSQL would have rolled it back.
//!
//! What a group does not do (PostgreSQL does):
//! - A serialization failure inside a group, or when it commits at Sync,
//!   is reported (40001), not retried: the client already has the
//!   group's earlier answers.
//! - A simple Query inside a group first closes the group.
//!
//! pgwire waits for Sync both after an error and after a COPY FROM STDIN
//! of the extended protocol ends; the handler notes the latter
//! ([`Pipeline::copied`]) so the group's block still commits.

use std::fmt::Debug;
use std::sync::Arc;

use datafusion::sql::sqlparser::ast::Statement;
use futures::{Sink, SinkExt};
use pgwire::api::portal::Portal;
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireConnectionState};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::extendedquery::Execute;
use pgwire::messages::response::EmptyQueryResponse;
use shoal_sql::TxnStatus;

use crate::handler::{QueryHandler, StoredStatement};
use crate::sqlstate::to_pgwire;

/// Where the connection's current group (the messages up to the next
/// Sync) stands.
#[derive(Default)]
pub(crate) struct Pipeline {
    /// The portal of the group's first Execute and its row limit, not
    /// yet run (module docs).
    held: Option<(Arc<Portal<StoredStatement>>, usize)>,
    /// The group's implicit block has been opened.
    grouped: bool,
    /// A message of the group failed: its block rolls back at Sync.
    failed: bool,
    /// A COPY FROM STDIN of the group ended well: pgwire then waits for
    /// Sync as it does after an error, which this tells apart.
    copied: bool,
}

impl QueryHandler {
    /// The connection's group state (poisoning cannot leave it half
    /// changed: each change is one assignment).
    fn pipeline(&self) -> std::sync::MutexGuard<'_, Pipeline> {
        self.pipeline
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Notes that a message of the group failed.
    pub(crate) fn group_failed(&self) {
        self.pipeline().failed = true;
    }

    /// Notes how a COPY FROM STDIN of the extended protocol ended.
    pub(crate) fn group_copied(&self, ok: bool) {
        let mut pipeline = self.pipeline();
        match ok {
            true => pipeline.copied = true,
            false => pipeline.failed = true,
        }
    }

    /// Before any message of a group but Sync: runs the held Execute, in
    /// the group's implicit block, since the group goes on.
    pub(crate) async fn release_held<C>(&self, client: &mut C) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Some((held, max_rows)) = self.pipeline().held.take() else {
            return Ok(());
        };
        self.run_in_group(client, &held, max_rows).await
    }

    /// Execute: held if it may be the group's only statement, else run
    /// (in the group's block, if it has one).
    pub(crate) async fn pipeline_execute<C>(
        &self,
        client: &mut C,
        message: Execute,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = StoredStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.release_held(client).await?;
        let name = message.name.as_deref().unwrap_or(pgwire::api::DEFAULT_NAME);
        let max_rows = message.max_rows.max(0) as usize;
        let portal = match client.portal_store().get_portal(name) {
            Some(Entry::Value(portal)) => portal,
            Some(Entry::Empty) => {
                client
                    .feed(PgWireBackendMessage::EmptyQueryResponse(
                        EmptyQueryResponse::new(),
                    ))
                    .await?;
                return Ok(());
            }
            None => return Err(PgWireError::PortalNotFound(name.to_owned())),
        };
        let statement = portal.statement.statement.statement();
        // DEALLOCATE forgets statements of the connection's store.
        if let Some(Statement::Deallocate { name, .. }) = statement {
            let output = self.deallocate(client.portal_store(), name);
            return self
                .run_portal(client, &portal, max_rows, Some(output))
                .await;
        }
        if self.pipeline().grouped {
            return self.run_in_group(client, &portal, max_rows).await;
        }
        let begins = matches!(statement, Some(Statement::StartTransaction { .. }));
        if !begins && self.session_idle().await {
            self.pipeline().held = Some((portal, max_rows));
            return Ok(());
        }
        self.run_portal(client, &portal, max_rows, None).await
    }

    /// Sync: runs the held Execute alone, or closes the group's block.
    /// `false` when a COPY FROM STDIN now waits for the client's data, so
    /// Sync must not answer yet.
    pub(crate) async fn pipeline_sync<C>(&self, client: &mut C) -> PgWireResult<bool>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Pipeline {
            held,
            grouped,
            failed,
            copied,
        } = std::mem::take(&mut *self.pipeline());
        // An error pgwire met on its own ended the group: it waits for
        // this Sync (as it does after a COPY that went well).
        let errored = !copied && matches!(client.state(), PgWireConnectionState::AwaitingSync);
        if let Some((held, max_rows)) = held.filter(|_| !errored) {
            if let Err(e) = self.run_portal(client, &held, max_rows, None).await {
                report(client, e).await?;
                client.set_state(PgWireConnectionState::ReadyForQuery);
            }
            return Ok(!matches!(
                client.state(),
                PgWireConnectionState::CopyInProgress(_)
            ));
        }
        if grouped {
            let ok = !failed && !errored;
            let ended = match self.session.lock().await.as_mut() {
                Some(session) => session.end_implicit_block(ok),
                None => Ok(()),
            };
            if let Err(e) = ended {
                report(client, to_pgwire(&e)).await?;
            }
        }
        Ok(true)
    }

    /// A simple Query in the middle of a group: the group ends first,
    /// committed if nothing of it failed.
    pub(crate) async fn end_group_for_query<C>(&self, client: &mut C) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let pending = {
            let pipeline = self.pipeline();
            pipeline.held.is_some() || pipeline.grouped
        };
        if pending {
            self.pipeline_sync(client).await?;
        }
        Ok(())
    }

    /// Runs an Execute of a group that goes on past it, in the group's
    /// implicit block (opened now if the group has none, or a COMMIT in
    /// it closed the last).
    async fn run_in_group<C>(
        &self,
        client: &mut C,
        portal: &Portal<StoredStatement>,
        max_rows: usize,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.pipeline().grouped = true;
        let opened = match self.session.lock().await.as_mut() {
            Some(session) => session.begin_implicit_block(),
            None => Ok(()),
        };
        let result = match opened {
            Ok(()) => self.run_portal(client, portal, max_rows, None).await,
            Err(e) => Err(to_pgwire(&e)),
        };
        if result.is_err() {
            self.group_failed();
        }
        result
    }

    /// Whether the session is outside any block.
    async fn session_idle(&self) -> bool {
        self.session
            .lock()
            .await
            .as_ref()
            .is_some_and(|s| s.txn_status() == TxnStatus::Idle)
    }
}

/// Sends an error met while answering Sync, before its ReadyForQuery.
async fn report<C>(client: &mut C, error: PgWireError) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    if let PgWireError::IoError(_) = error {
        return Err(error);
    }
    let info: ErrorInfo = error.into();
    client
        .feed(PgWireBackendMessage::ErrorResponse(info.into()))
        .await?;
    Ok(())
}
