//! One client connection: startup, simple and extended query protocol.
//!
//! A [`Connection`] is made for every accepted socket and owns that client's
//! [`Session`]. The session is opened when startup completes (it needs the
//! database and user names from the startup message) and lives behind a
//! mutex because pgwire calls the handlers through shared references; only
//! this connection ever takes the lock, so it is never contended.
//!
//! Errors of SQL statements in the simple protocol are returned as
//! `Response::Error`, so pgwire sends an ErrorResponse and goes on with the
//! rest of the query string as PostgreSQL does (the session has already
//! failed the block). In the extended protocol they are returned as `Err`:
//! pgwire then sends the ErrorResponse and discards every message up to
//! Sync, so a batch stops at its first failing statement. At Sync the
//! status reported is the session's own, which a failed COMMIT has already
//! taken back to idle.
//!
//! Statements sent together run in one transaction: a simple Query's
//! statements (`run_query_string` below), and the extended protocol's up to
//! Sync (`pipeline.rs`, which decides when an Execute runs; `execute.rs`
//! runs it).
//!
//! pgwire derives the status each ReadyForQuery reports from the status
//! before the statement and the responses it produced. Nothing in that
//! scheme takes a failed block back to a usable one, as a successful
//! `ROLLBACK TO SAVEPOINT` does, so before every statement the handler
//! starts pgwire from the session's own status ([`QueryHandler::
//! start_status`]), counting a failed block about to run `ROLLBACK TO` as
//! usable: if that statement fails, its error marks the block failed again.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::sql::sqlparser::ast::{self, Statement};
use futures::{Sink, SinkExt, stream};
use pgwire::api::auth::StartupHandler;
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use pgwire::api::copy::CopyHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{CopyResponse, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionManager, METADATA_DATABASE, METADATA_USER,
    PgWireServerHandlers, Type,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use pgwire::messages::extendedquery::{Bind, Close, Describe, Execute, Flush, Parse};
use pgwire::messages::response::TransactionStatus;
use pgwire::messages::simplequery::Query;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use shoal_sql::copy::CopyIn;
use shoal_sql::time_zone::TimeZone;
use shoal_sql::{Database, Output, Prepared, Session, SqlError, TxnStatus};
use tokio::sync::Mutex;

use crate::corked::Corked;
use crate::encode;
use crate::params;
use crate::sqlstate::{error_info, to_pgwire};

type SessionCell = Arc<Mutex<Option<Session>>>;

/// The handlers of one connection.
pub struct Connection {
    queries: Arc<QueryHandler>,
    startup: Arc<Startup>,
    cancel: Arc<DefaultCancelHandler>,
}

impl Connection {
    pub fn new(db: Arc<Database>, connections: Arc<ConnectionManager>) -> Connection {
        let session: SessionCell = Arc::default();
        Connection {
            queries: Arc::new(QueryHandler {
                session: session.clone(),
                parser: Arc::new(StatementParser {
                    session: session.clone(),
                }),
                prepared: Default::default(),
                copy: Default::default(),
                pipeline: Default::default(),
            }),
            startup: Arc::new(Startup {
                db,
                session,
                connections: connections.clone(),
            }),
            cancel: Arc::new(DefaultCancelHandler::new(connections)),
        }
    }
}

impl PgWireServerHandlers for Connection {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.queries.clone()
    }

    fn copy_handler(&self) -> Arc<impl CopyHandler> {
        self.queries.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.queries.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.cancel.clone()
    }
}

/// Opens the session once the client has said who it is and where to.
pub struct Startup {
    db: Arc<Database>,
    session: SessionCell,
    connections: Arc<ConnectionManager>,
}

#[async_trait]
impl NoopStartupHandler for Startup {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(self.connections.clone())
    }

    async fn post_startup<C>(
        &self,
        client: &mut C,
        _message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let user = client
            .metadata()
            .get(METADATA_USER)
            .cloned()
            .unwrap_or_else(|| "shoal".into());
        // PostgreSQL's default database is the one named like the user.
        let database = client
            .metadata()
            .get(METADATA_DATABASE)
            .cloned()
            .unwrap_or_else(|| user.clone());
        // A connection that cannot start is refused (FATAL closes it).
        let fatal = |e: SqlError| {
            let mut info = error_info(&e);
            info.severity = "FATAL".into();
            PgWireError::UserError(Box::new(info))
        };
        let mut session = self.db.open_session(&database, &user).map_err(fatal)?;
        // The packet's settings (`options`, `TimeZone`, …): `startup.rs`.
        session
            .apply_startup(
                client
                    .metadata()
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .map_err(fatal)?;
        // pgwire's default startup already reported its own parameter values;
        // a later ParameterStatus overrides them, so clients see the same
        // values as `SHOW` (psql picks its describe queries by server_version).
        let reported: Vec<(&str, String)> = [
            "server_version",
            "DateStyle",
            "TimeZone",
            "search_path",
            "application_name",
            "client_encoding",
        ]
        .into_iter()
        .filter_map(|name| session.variable(name).map(|v| (name, v)))
        .collect();
        *self.session.lock().await = Some(session);
        for (name, value) in reported {
            client
                .feed(PgWireBackendMessage::ParameterStatus(
                    pgwire::messages::startup::ParameterStatus::new(name.to_string(), value),
                ))
                .await?;
        }
        Ok(())
    }
}

/// A statement as the extended protocol stores it between Parse and Execute.
#[derive(Debug, Clone)]
pub struct StoredStatement {
    stmt: Option<Statement>,
    prepared: Prepared,
}

impl StoredStatement {
    /// The statement (`None` for an empty query string).
    pub(crate) fn statement(&self) -> Option<&Statement> {
        self.stmt.as_ref()
    }
}

pub struct StatementParser {
    session: SessionCell,
}

#[async_trait]
impl QueryParser for StatementParser {
    type Statement = StoredStatement;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<StoredStatement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let mut stmts = Session::parse(sql).map_err(|e| to_pgwire(&e))?;
        if stmts.len() > 1 {
            return Err(to_pgwire(&SqlError::Syntax(
                "cannot insert multiple commands into a prepared statement".into(),
            )));
        }
        let Some(stmt) = stmts.pop() else {
            return Ok(Some(StoredStatement {
                stmt: None,
                prepared: Prepared::new(Vec::new(), None),
            }));
        };
        let mut guard = self.session.lock().await;
        let session = guard.as_mut().ok_or_else(no_session)?;
        let prepared = session.prepare(&stmt).await.map_err(|e| to_pgwire(&e))?;
        Ok(Some(StoredStatement {
            stmt: Some(stmt),
            prepared,
        }))
    }

    fn get_parameter_types(&self, stmt: &StoredStatement) -> PgWireResult<Vec<Type>> {
        Ok(server_param_types(&stmt.prepared))
    }

    fn get_result_schema(
        &self,
        stmt: &StoredStatement,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        Ok(match &stmt.prepared.schema {
            Some(schema) => encode::fields(schema, format.unwrap_or(&Format::UnifiedText)),
            None => Vec::new(),
        })
    }
}

/// The types Shoal asks the client to send parameters as.
fn server_param_types(prepared: &Prepared) -> Vec<Type> {
    prepared
        .param_types
        .iter()
        .enumerate()
        .map(|(i, t)| {
            match prepared
                .param_oids
                .get(i)
                .copied()
                .flatten()
                .and_then(Type::from_oid)
            {
                Some(ty) => ty,
                None => params::wire_type(t.as_ref()),
            }
        })
        .collect()
}

fn no_session() -> PgWireError {
    to_pgwire(&SqlError::Internal("connection has no session".into()))
}

pub struct QueryHandler {
    pub(crate) session: SessionCell,
    parser: Arc<StatementParser>,
    /// Names of the client's prepared statements, for `DEALLOCATE ALL`
    /// (pgwire's store cannot list them).
    prepared: std::sync::Mutex<std::collections::HashSet<String>>,
    /// A `COPY … FROM STDIN` under way, and the data received so far.
    copy: std::sync::Mutex<Option<(CopyIn, Vec<u8>)>>,
    /// The extended protocol's messages up to the next Sync
    /// (`pipeline.rs`).
    pub(crate) pipeline: std::sync::Mutex<crate::pipeline::Pipeline>,
}

impl QueryHandler {
    /// The `COPY … FROM STDIN` under way (poisoning cannot leave it half
    /// changed: each change is one assignment or append).
    fn copy_in(&self) -> std::sync::MutexGuard<'_, Option<(CopyIn, Vec<u8>)>> {
        self.copy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The client's prepared statement names (poisoning cannot leave the
    /// set half-changed: each change is one insert or remove).
    fn prepared(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.prepared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `DEALLOCATE [PREPARE] { name | ALL }`: forgets prepared statements
    /// (drivers send it after DDL, or to recycle names).
    pub(crate) fn deallocate<S: PortalStore>(
        &self,
        store: &S,
        name: &ast::Ident,
    ) -> Result<Output, SqlError> {
        if name.quote_style.is_none() && name.value.eq_ignore_ascii_case("all") {
            for stmt in self.prepared().drain() {
                store.rm_statement(&stmt);
            }
            return Ok(Output::command("DEALLOCATE ALL"));
        }
        let name = if name.quote_style.is_none() {
            name.value.to_lowercase()
        } else {
            name.value.clone()
        };
        if !self.prepared().remove(&name) {
            return Err(SqlError::UndefinedPreparedStatement(name));
        }
        store.rm_statement(&name);
        Ok(Output::command("DEALLOCATE"))
    }

    /// Sets the status pgwire starts from for the next statement to the
    /// session's (module docs); `rolls_back_to_savepoint` tells whether
    /// that statement is `ROLLBACK TO SAVEPOINT`.
    pub(crate) async fn start_status<C: ClientInfo>(
        &self,
        client: &mut C,
        rolls_back_to_savepoint: impl FnOnce() -> bool,
    ) {
        let guard = self.session.lock().await;
        let Some(session) = guard.as_ref() else {
            return;
        };
        let status = match session.txn_status() {
            TxnStatus::Idle => TransactionStatus::Idle,
            TxnStatus::InBlock => TransactionStatus::Transaction,
            TxnStatus::Failed if rolls_back_to_savepoint() => TransactionStatus::Transaction,
            TxnStatus::Failed => TransactionStatus::Error,
        };
        client.set_transaction_status(status);
    }
}

/// Turns a statement's outcome into a pgwire response.
pub(crate) fn respond(
    result: Result<Output, SqlError>,
    format: &Format,
    zone: &TimeZone,
) -> PgWireResult<Response> {
    let output = match result {
        Ok(o) => o,
        Err(e) => {
            tracing::debug!("statement failed: {e}");
            return Ok(Response::Error(Box::new(error_info(&e))));
        }
    };
    Ok(match output {
        Output::Rows { schema, batches } => {
            let fields = Arc::new(encode::fields(&schema, format));
            let mut rows = Vec::new();
            for b in &batches {
                rows.extend(encode::encode_batch(b, &fields, zone)?.into_iter().map(Ok));
            }
            Response::Query(QueryResponse::new(fields, stream::iter(rows)))
        }
        Output::Returned {
            tag,
            schema,
            batches,
        } => {
            let fields = Arc::new(encode::fields(&schema, format));
            let mut rows = Vec::new();
            for b in &batches {
                rows.extend(encode::encode_batch(b, &fields, zone)?.into_iter().map(Ok));
            }
            let mut response = QueryResponse::new(fields, stream::iter(rows));
            // PostgreSQL's INSERT tag carries an OID (always 0) before the count.
            response.set_command_tag(if tag == "INSERT" { "INSERT 0" } else { &tag });
            Response::Query(response)
        }
        Output::Command { tag, rows } => {
            let mut t = Tag::new(&tag);
            if tag == "INSERT" {
                t = t.with_oid(0);
            }
            if let Some(n) = rows {
                t = t.with_rows(n as usize);
            }
            Response::Execution(t)
        }
        Output::Begin => Response::TransactionStart(Tag::new("BEGIN")),
        Output::Commit => Response::TransactionEnd(Tag::new("COMMIT")),
        Output::Rollback => Response::TransactionEnd(Tag::new("ROLLBACK")),
        Output::CopyOut {
            format,
            schema,
            batches,
        } => {
            if format.binary {
                // As PostgreSQL frames it (and drivers expect): the header
                // rides with the first row, the trailer in a message of its
                // own, or with the header when there are no rows.
                let mut header = crate::copy_binary::header();
                let mut messages = Vec::new();
                for b in &batches {
                    for row in encode::batch_binary(b)? {
                        let mut bytes = std::mem::take(&mut header);
                        bytes.extend(crate::copy_binary::row(&row));
                        messages.push(Ok(CopyData::new(bytes.into())));
                    }
                }
                header.extend(crate::copy_binary::trailer());
                messages.push(Ok(CopyData::new(header.into())));
                // Made as a text response, which appends no trailer of
                // its own, then marked binary.
                let mut response =
                    CopyResponse::new(0, schema.fields().len(), stream::iter(messages));
                response.format = 1;
                return Ok(Response::CopyOut(response));
            }
            // One message per row (pgwire counts them for the tag); the
            // header rides with the first row.
            let mut header = String::new();
            if format.header {
                let names: Vec<Option<String>> = schema
                    .fields()
                    .iter()
                    .map(|f| Some(shoal_sql::compat::output_name(f.name()).to_string()))
                    .collect();
                header = format.line(&names);
            }
            let mut lines = Vec::new();
            for b in &batches {
                for row in encode::batch_texts(b, zone)? {
                    let line = std::mem::take(&mut header) + &format.line(&row);
                    lines.push(Ok(CopyData::new(line.into_bytes().into())));
                }
            }
            if !header.is_empty() {
                lines.push(Ok(CopyData::new(header.into_bytes().into())));
            }
            Response::CopyOut(CopyResponse::new(
                0,
                schema.fields().len(),
                stream::iter(lines),
            ))
        }
        // The query handlers start COPY FROM STDIN themselves.
        Output::CopyIn(_) => Response::Error(Box::new(error_info(&SqlError::Internal(
            "COPY FROM STDIN answered as a result".into(),
        )))),
    })
}

#[async_trait]
impl SimpleQueryHandler for QueryHandler {
    async fn on_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.end_group_for_query(client).await?;
        self.start_status(client, || {
            Session::parse(&query.query)
                .ok()
                .and_then(|stmts| stmts.first().map(Session::is_rollback_to_savepoint))
                .unwrap_or(false)
        })
        .await;
        let result = self._on_query(client, query).await;
        // A query string cancelled while it ran (pgwire drops it at the
        // cancel) leaves its implicit block open: nothing of it stays.
        if self.copy_in().is_none()
            && let Some(session) = self.session.lock().await.as_mut()
            && session.in_implicit_block()
        {
            let _ = session.end_implicit_block(false);
        }
        result
    }

    async fn do_query<C>(&self, _client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let stmts = match Session::parse(query) {
            Ok(s) => s,
            Err(e) => return Ok(vec![Response::Error(Box::new(error_info(&e)))]),
        };
        let mut guard = self.session.lock().await;
        let session = guard.as_mut().ok_or_else(no_session)?;
        // A query in the middle of a COPY ends it, failed, with the
        // implicit block of the query string it ended.
        if self.copy_in().take().is_some() {
            session.abort_copy();
            let _ = session.end_implicit_block(false);
        }
        if stmts.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        // Several statements run in one implicit block
        // (`shoal_sql::session::implicit_block`); one made only of queries
        // and data changes runs again whole after a serialization failure,
        // since the client has seen nothing of it yet.
        // Only a block of the query string's own may run again: one the
        // client opened has shown it what it did.
        let group = stmts.len() > 1;
        let reruns = group
            && session.txn_status() == TxnStatus::Idle
            && stmts.iter().all(Session::reruns_in_group);
        let mut attempt = 0;
        loop {
            let run = self.run_query_string(_client, session, &stmts, group).await;
            match run {
                Ok(Run::Conflict(_)) if reruns && attempt < GROUP_RERUNS => {
                    attempt += 1;
                    session.count_group_retry();
                    tokio::time::sleep(std::time::Duration::from_millis(1 << attempt.min(6))).await;
                }
                Ok(Run::Done(responses) | Run::Conflict(responses)) => return Ok(responses),
                Err(e) => {
                    // Nothing of the group reaches the client: it must not
                    // stay open either.
                    let _ = session.end_implicit_block(false);
                    return Err(e);
                }
            }
        }
    }
}

/// How many times a query string of several statements runs again whole
/// after a serialization failure before the failure is reported.
const GROUP_RERUNS: u32 = 8;

/// The outcome of running a query string's statements once.
enum Run {
    /// Its responses.
    Done(Vec<Response>),
    /// Its responses, ending with a serialization failure that running it
    /// again may avoid.
    Conflict(Vec<Response>),
}

impl QueryHandler {
    /// Runs the statements of one simple Query message, in one implicit
    /// block when `group` (several statements), stopping at the first
    /// that fails, as PostgreSQL does.
    async fn run_query_string<C>(
        &self,
        client: &mut C,
        session: &mut Session,
        stmts: &[Statement],
        group: bool,
    ) -> PgWireResult<Run>
    where
        C: ClientPortalStore,
        C::PortalStore: PortalStore,
    {
        let mut responses = Vec::with_capacity(stmts.len());
        let mut conflict = false;
        for (i, stmt) in stmts.iter().enumerate() {
            let opened = match group {
                true => session.begin_implicit_block(),
                false => Ok(()),
            };
            let output = match opened {
                Ok(()) => match stmt {
                    Statement::Deallocate { name, .. } => {
                        self.deallocate(client.portal_store(), name)
                    }
                    _ => session.execute(stmt, Vec::new()).await,
                },
                Err(e) => Err(e),
            };
            if let Ok(Output::CopyIn(copy)) = output {
                if i + 1 < stmts.len() {
                    let _ = session.end_implicit_block(false);
                    responses.push(Response::Error(Box::new(error_info(
                        &SqlError::NotSupported(
                            "COPY FROM STDIN followed by more statements in one query".into(),
                        ),
                    ))));
                    return Ok(Run::Done(responses));
                }
                // The client's data follows (`CopyHandler` below), which
                // ends the implicit block.
                let columns = copy.columns.len();
                let format = i8::from(copy.format.binary);
                *self.copy_in() = Some((copy, Vec::new()));
                responses.push(Response::CopyIn(CopyResponse::new(
                    format,
                    columns,
                    stream::empty(),
                )));
                return Ok(Run::Done(responses));
            }
            conflict = matches!(output, Err(SqlError::SerializationFailure(_)));
            let response = respond(output, &Format::UnifiedText, &session.time_zone())?;
            let failed = matches!(response, Response::Error(_));
            responses.push(response);
            // PostgreSQL stops at the first failing statement of a query string.
            if failed {
                break;
            }
        }
        let failed = matches!(responses.last(), Some(Response::Error(_)));
        if let Err(e) = session.end_implicit_block(!failed) {
            conflict = matches!(e, SqlError::SerializationFailure(_));
            responses.push(Response::Error(Box::new(error_info(&e))));
        }
        Ok(match conflict {
            true => Run::Conflict(responses),
            false => Run::Done(responses),
        })
    }
}

#[async_trait]
impl ExtendedQueryHandler for QueryHandler {
    type Statement = StoredStatement;
    type QueryParser = StatementParser;

    fn query_parser(&self) -> Arc<StatementParser> {
        self.parser.clone()
    }

    /// Held, or run (`pipeline.rs`).
    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let result = self.pipeline_execute(client, message).await;
        if result.is_err() {
            self.group_failed();
        }
        result
    }

    /// Runs what the group held first (`pipeline.rs`), then flushes.
    async fn on_flush<C>(&self, client: &mut C, _message: Flush) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let released = self.release_held(client).await;
        client.flush().await?;
        released
    }

    /// pgwire's Parse, with ParseComplete left for Sync (`corked.rs`).
    async fn on_parse<C>(&self, client: &mut C, message: Parse) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.release_held(client).await?;
        let name = message.name.clone().filter(|n| !n.is_empty());
        PgwireDefaults(self)
            .on_parse(&mut Corked(client), message)
            .await
            .inspect_err(|_| self.group_failed())?;
        if let Some(name) = name {
            self.prepared().insert(name);
        }
        Ok(())
    }

    /// pgwire's Bind, with BindComplete left for Sync (`corked.rs`).
    async fn on_bind<C>(&self, client: &mut C, message: Bind) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.release_held(client).await?;
        PgwireDefaults(self)
            .on_bind(&mut Corked(client), message)
            .await
            .inspect_err(|_| self.group_failed())
    }

    /// pgwire's Describe, its answer left for Sync (`corked.rs`). A
    /// statement that returns no rows is answered with its parameters and
    /// NoData (pgwire would send an empty RowDescription when it has
    /// parameters, which drivers read as a query and so lose its row
    /// count).
    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.release_held(client).await?;
        if message.target_type == b'S' {
            let name = message.name.as_deref().unwrap_or(pgwire::api::DEFAULT_NAME);
            if let Some(pgwire::api::store::Entry::Value(stmt)) =
                client.portal_store().get_statement(name)
                && stmt.statement.prepared.schema.is_none()
            {
                let server = server_param_types(&stmt.statement.prepared);
                let count = stmt.parameter_types.len().max(server.len());
                let oids = (0..count)
                    .map(|i| {
                        stmt.parameter_types
                            .get(i)
                            .cloned()
                            .flatten()
                            .or_else(|| server.get(i).cloned())
                            .unwrap_or(Type::UNKNOWN)
                            .oid()
                    })
                    .collect();
                let mut corked = Corked(client);
                corked
                    .feed(PgWireBackendMessage::ParameterDescription(
                        pgwire::messages::data::ParameterDescription::new(oids),
                    ))
                    .await?;
                corked
                    .feed(PgWireBackendMessage::NoData(
                        pgwire::messages::data::NoData::new(),
                    ))
                    .await?;
                return Ok(());
            }
        }
        self._on_describe(&mut Corked(client), message)
            .await
            .inspect_err(|_| self.group_failed())
    }

    /// pgwire's Sync, reporting the session's transaction status (a
    /// statement that failed outside a block, or a COMMIT that failed,
    /// leaves no failed block behind).
    async fn on_sync<C>(
        &self,
        client: &mut C,
        message: pgwire::messages::extendedquery::Sync,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !self.pipeline_sync(client).await? {
            return Ok(());
        }
        self.start_status(client, || false).await;
        PgwireDefaults(self).on_sync(client, message).await
    }

    /// pgwire's Close, with CloseComplete left for Sync (`corked.rs`).
    async fn on_close<C>(&self, client: &mut C, message: Close) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.release_held(client).await?;
        if message.target_type == b'S'
            && let Some(name) = &message.name
        {
            self.prepared().remove(name);
        }
        PgwireDefaults(self)
            .on_close(&mut Corked(client), message)
            .await
            .inspect_err(|_| self.group_failed())
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<StoredStatement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = StoredStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // DEALLOCATE forgets statements of this connection's store.
        if let Some(Statement::Deallocate { name, .. }) = &portal.statement.statement.stmt {
            return match self.deallocate(client.portal_store(), name) {
                Ok(output) => respond(
                    Ok(output),
                    &portal.result_column_format,
                    &TimeZone::default(),
                ),
                Err(e) => Err(to_pgwire(&e)),
            };
        }
        self.portal_response(portal).await
    }
}

impl QueryHandler {
    /// Runs a bound portal's statement (not `DEALLOCATE`, which needs the
    /// connection's statements: `do_query`) and makes its response; a
    /// failure is `Err`, so pgwire discards the rest of the group.
    pub(crate) async fn portal_response(
        &self,
        portal: &Portal<StoredStatement>,
    ) -> PgWireResult<Response> {
        let stored = &portal.statement.statement;
        let Some(stmt) = &stored.stmt else {
            return Ok(Response::EmptyQuery);
        };
        let server_types = server_param_types(&stored.prepared);
        let mut guard = self.session.lock().await;
        let session = guard.as_mut().ok_or_else(no_session)?;
        let zone = session.time_zone();
        let mut values = Vec::with_capacity(portal.parameters.len());
        for (i, raw) in portal.parameters.iter().enumerate() {
            let expected = stored.prepared.param_types.get(i).cloned().flatten();
            let declared = portal
                .statement
                .parameter_types
                .get(i)
                .cloned()
                .flatten()
                .or_else(|| server_types.get(i).cloned())
                .unwrap_or(Type::TEXT);
            match params::decode(
                raw.as_ref(),
                portal.parameter_format.format_for(i),
                &declared,
                expected.as_ref(),
                &zone,
            ) {
                Ok(v) => values.push(v),
                Err(e) => return Err(to_pgwire(&e)),
            }
        }
        let output = session
            .execute_prepared(&stored.prepared, stmt, values)
            .await;
        drop(guard);
        // COPY FROM STDIN: the client's data follows (`CopyHandler`).
        if let Ok(Output::CopyIn(copy)) = output {
            let columns = copy.columns.len();
            let format = i8::from(copy.format.binary);
            *self.copy_in() = Some((copy, Vec::new()));
            return Ok(Response::CopyIn(CopyResponse::new(
                format,
                columns,
                stream::empty(),
            )));
        }
        let response = respond(output, &portal.result_column_format, &zone)?;
        match response {
            Response::Error(info) => Err(PgWireError::UserError(info)),
            other => Ok(other),
        }
    }
}

/// pgwire's own handling of Parse, Bind and Close (the trait's default
/// bodies, which [`QueryHandler`]'s overrides cannot call), for those
/// overrides to run through [`Corked`]. Everything else is the handler's.
struct PgwireDefaults<'a>(&'a QueryHandler);

#[async_trait]
impl ExtendedQueryHandler for PgwireDefaults<'_> {
    type Statement = StoredStatement;
    type QueryParser = StatementParser;

    fn query_parser(&self) -> Arc<StatementParser> {
        self.0.query_parser()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<StoredStatement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = StoredStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        ExtendedQueryHandler::do_query(self.0, client, portal, max_rows).await
    }
}

/// The data of a `COPY … FROM STDIN` (`shoal_sql::copy`): gathered as it
/// comes, inserted at `CopyDone`.
#[async_trait]
impl CopyHandler for QueryHandler {
    async fn on_copy_data<C>(&self, _client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match self.copy_in().as_mut() {
            Some((_, data)) => {
                data.extend_from_slice(&copy_data.data);
                Ok(())
            }
            None => Err(to_pgwire(&SqlError::Syntax(
                "COPY data received outside COPY FROM STDIN".into(),
            ))),
        }
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Some((copy, data)) = self.copy_in().take() else {
            return Err(to_pgwire(&SqlError::Syntax(
                "COPY done outside COPY FROM STDIN".into(),
            )));
        };
        let mut guard = self.session.lock().await;
        let session = guard.as_mut().ok_or_else(no_session)?;
        let result = match copy.format.binary {
            true => {
                let rows = crate::copy_binary::parse(&data, &copy.types, &session.time_zone());
                session.copy_in_rows(&copy, rows).await
            }
            false => session.copy_in(&copy, &data).await,
        };
        // A COPY ending a simple query of several statements ends its
        // implicit block; in the extended protocol, Sync does.
        let result = match simple_copy(client) {
            true => match session.end_implicit_block(result.is_ok()) {
                Ok(()) => result,
                Err(e) => Err(e),
            },
            false => result,
        };
        let status = match session.txn_status() {
            TxnStatus::Idle => TransactionStatus::Idle,
            TxnStatus::InBlock => TransactionStatus::Transaction,
            TxnStatus::Failed => TransactionStatus::Error,
        };
        drop(guard);
        client.set_transaction_status(status);
        if !simple_copy(client) {
            self.group_copied(result.is_ok());
        }
        let rows = result.map_err(|e| to_pgwire(&e))?;
        let tag = Tag::new("COPY").with_rows(rows as usize);
        client
            .send(PgWireBackendMessage::CommandComplete(tag.into()))
            .await?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if self.copy_in().take().is_some()
            && let Some(session) = self.session.lock().await.as_mut()
        {
            session.abort_copy();
            if simple_copy(client) {
                let _ = session.end_implicit_block(false);
            } else {
                self.group_copied(false);
            }
        }
        to_pgwire(&SqlError::CopyFailed(format!(
            "COPY from stdin failed: {}",
            fail.message
        )))
    }
}

/// Whether the COPY under way was started by a simple Query message.
fn simple_copy<C: ClientInfo>(client: &C) -> bool {
    matches!(
        client.state(),
        pgwire::api::PgWireConnectionState::CopyInProgress(false)
    )
}
