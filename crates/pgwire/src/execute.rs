//! Execute: runs a bound portal and writes its answer.
//!
//! This is pgwire's own Execute handling, done here so that it can run a
//! portal the handler holds (`pipeline.rs` runs a group's first Execute
//! only once the next message arrives, which may be a Flush: pgwire's
//! Flush handler is given no portal store to look the portal up in).
//!
//! A portal runs once: its statement is executed and the response kept
//! in the portal, then rows are fetched from it — all of them, or at
//! most the Execute's row limit, ending with PortalSuspended so a later
//! Execute fetches more. Other answers (a command tag, COPY) are written
//! at once. Everything goes through [`Corked`], so it reaches the client
//! at Sync or Flush; a COPY FROM STDIN is flushed at once, since the
//! client sends its data only once it has the CopyInResponse.
//!
//! A cancel request for the connection (`CancelRequest` on another
//! socket) interrupts the statement with 57014 while it runs.

use std::fmt::Debug;
use std::sync::Arc;

use futures::future::{Either, select};
use futures::{Sink, SinkExt, StreamExt};
use pgwire::api::portal::{Portal, PortalExecutionState};
use pgwire::api::results::{Response, Tag};
use pgwire::api::{ClientInfo, ConnectionHandle, PgWireConnectionState};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::extendedquery::PortalSuspended;
use pgwire::messages::response::EmptyQueryResponse;
use shoal_sql::time_zone::TimeZone;
use shoal_sql::{Output, Session, SqlError};

use crate::corked::Corked;
use crate::handler::{QueryHandler, StoredStatement, respond};

impl QueryHandler {
    /// Runs `portal` and writes its answer: rows (at most `max_rows`
    /// when not 0), a command tag, or the start of a COPY. `given` is the
    /// outcome of a statement the handler ran itself (`DEALLOCATE`).
    pub(crate) async fn run_portal<C>(
        &self,
        client: &mut C,
        portal: &Portal<StoredStatement>,
        max_rows: usize,
        given: Option<Result<Output, SqlError>>,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.start_status(client, || {
            portal
                .statement
                .statement
                .statement()
                .is_some_and(Session::is_rollback_to_savepoint)
        })
        .await;
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        let mut status = client.transaction_status();
        client.set_state(PgWireConnectionState::QueryInProgress);
        let started = !matches!(*portal.state().lock().await, PortalExecutionState::Initial);
        let mut fetch = started;
        if !started {
            let response = match given {
                Some(output) => {
                    respond(output, &portal.result_column_format, &TimeZone::default())?
                }
                None => self.cancellable_response(client, portal).await?,
            };
            let mut out = Corked(&mut *client);
            match response {
                Response::Query(rows) => {
                    portal.start(rows).await;
                    fetch = true;
                }
                Response::EmptyQuery => {
                    out.feed(PgWireBackendMessage::EmptyQueryResponse(
                        EmptyQueryResponse::new(),
                    ))
                    .await?;
                }
                Response::Execution(tag) => {
                    pgwire::api::query::send_execution_response(&mut out, tag).await?;
                }
                Response::TransactionStart(tag) => {
                    pgwire::api::query::send_execution_response(&mut out, tag).await?;
                    status = status.to_in_transaction_state();
                }
                Response::TransactionEnd(tag) => {
                    pgwire::api::query::send_execution_response(&mut out, tag).await?;
                    status = status.to_idle_state();
                }
                Response::Error(info) => return Err(PgWireError::UserError(info)),
                Response::CopyIn(copy) => {
                    client.set_state(PgWireConnectionState::CopyInProgress(true));
                    pgwire::api::copy::send_copy_in_response(&mut *client, copy).await?;
                    // The client sends its data only once it has this.
                    client.flush().await?;
                }
                Response::CopyOut(copy) => {
                    pgwire::api::copy::send_copy_out_response(&mut out, copy).await?;
                }
                Response::CopyBoth(_) => {
                    return Err(crate::sqlstate::to_pgwire(&SqlError::Internal(
                        "COPY BOTH answered by a statement".into(),
                    )));
                }
            }
        }
        if fetch {
            let fetched = portal.fetch(max_rows).await?;
            let mut response = fetched.response;
            let tag = response.command_tag().to_owned();
            let mut out = Corked(&mut *client);
            let mut rows = 0;
            while let Some(row) = response.data_rows().next().await {
                out.feed(PgWireBackendMessage::DataRow(row?)).await?;
                rows += 1;
            }
            let end = match fetched.suspended {
                true => PgWireBackendMessage::PortalSuspended(PortalSuspended::new()),
                false => {
                    PgWireBackendMessage::CommandComplete(Tag::new(&tag).with_rows(rows).into())
                }
            };
            out.feed(end).await?;
        }
        if !matches!(client.state(), PgWireConnectionState::CopyInProgress(_)) {
            client.set_state(PgWireConnectionState::ReadyForQuery);
            client.set_transaction_status(status);
        }
        Ok(())
    }

    /// The portal's response, or 57014 if a cancel request for the
    /// connection arrives first.
    async fn cancellable_response<C: ClientInfo>(
        &self,
        client: &C,
        portal: &Portal<StoredStatement>,
    ) -> PgWireResult<Response> {
        let handle = client.session_extensions().get::<Arc<ConnectionHandle>>();
        let Some(handle) = handle else {
            return self.portal_response(portal).await;
        };
        let cancelled = handle.start_query().await;
        match select(Box::pin(self.portal_response(portal)), cancelled).await {
            Either::Left((response, _)) => response,
            Either::Right(_) => Err(PgWireError::QueryCanceled),
        }
    }
}
