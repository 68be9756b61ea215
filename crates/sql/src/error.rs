//! Errors of the SQL layer, typed by what went wrong for the client.
//!
//! Every variant names a *meaning* (a unique key was violated, a table does not
//! exist, the input text is malformed), never an origin (DataFusion, Arrow, KV).
//! The Postgres front end maps each meaning to exactly one SQLSTATE; nothing
//! below it knows SQLSTATE codes. Errors that come up from DataFusion are
//! classified once, in [`SqlError::from_datafusion`].

use datafusion::error::DataFusionError;
use shoal_kv::KvError;

/// Result type of the SQL layer.
pub type Result<T> = std::result::Result<T, SqlError>;

/// What went wrong while planning or executing a statement.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("{0}")]
    Syntax(String),
    #[error("relation \"{0}\" does not exist")]
    UndefinedTable(String),
    #[error("relation \"{0}\" already exists")]
    DuplicateTable(String),
    #[error("{0}")]
    UndefinedColumn(String),
    #[error("{0}")]
    DuplicateColumn(String),
    #[error("{0}")]
    UndefinedFunction(String),
    #[error("{0}")]
    InvalidTableDefinition(String),
    #[error("{0}")]
    UndefinedObject(String),
    #[error("duplicate key value violates unique constraint \"{constraint}\"")]
    UniqueViolation { constraint: String, detail: String },
    /// Existing rows break the unique index being built.
    #[error("could not create unique index \"{index}\"")]
    UniqueIndexBuild { index: String, detail: String },
    /// The object named is of another kind than the statement needs.
    /// A row references a key its parent lacks, or a change to a parent
    /// would leave rows referencing nothing: the message names the
    /// constraint, the detail the key.
    #[error("{message}")]
    ForeignKeyViolation { message: String, detail: String },
    /// A row makes a CHECK constraint false (the detail, if not empty,
    /// shows the row).
    #[error("{message}")]
    CheckViolation { message: String, detail: String },
    /// Bytes that are not valid in the database's encoding (UTF-8).
    #[error("{0}")]
    CharacterNotInRepertoire(String),
    /// The client gave up a `COPY … FROM STDIN` (CopyFail).
    #[error("{0}")]
    CopyFailed(String),
    /// COPY data that does not parse, or rows of the wrong width.
    #[error("{0}")]
    BadCopyFile(String),
    /// A column made NOT NULL over rows holding NULL.
    #[error("{0}")]
    ColumnContainsNulls(String),
    /// A foreign key that cannot be declared as written.
    #[error("{0}")]
    InvalidForeignKey(String),
    /// A named object (a constraint) that exists already.
    #[error("{0}")]
    DuplicateObject(String),
    #[error("{0}")]
    WrongObjectType(String),
    /// Another object depends on the one being dropped.
    #[error("{0}")]
    DependentObjects(String),
    /// A reference to columns matches no object (`ON CONFLICT (c)` with no
    /// unique index on `c`).
    #[error("{0}")]
    InvalidColumnReference(String),
    /// A sequence reached its bound.
    #[error("{0}")]
    SequenceLimit(String),
    /// The object is not ready for the request (`currval` before `nextval`).
    #[error("{0}")]
    NotInPrerequisiteState(String),
    /// A limit of the system was reached (`too many indexes`).
    #[error("{0}")]
    ProgramLimitExceeded(String),
    /// A query asked for more memory than the node's queries may hold
    /// (`query_memory.rs`).
    #[error("out of memory: {0}")]
    OutOfMemory(String),
    #[error(
        "null value in column \"{column}\" of relation \"{table}\" violates not-null constraint"
    )]
    NotNullViolation { table: String, column: String },
    #[error("{0}")]
    InvalidText(String),
    #[error("{0}")]
    NumericOutOfRange(String),
    #[error("{0}")]
    StringTooLong(String),
    #[error("division by zero")]
    DivisionByZero,
    /// A date, time or interval out of its type's range (22008).
    #[error("{0}")]
    DatetimeOverflow(String),
    /// An interval's field out of range (22015).
    #[error("{0}")]
    IntervalFieldOverflow(String),
    /// Text that does not read as a date, time or interval (22007).
    #[error("{0}")]
    InvalidDatetimeFormat(String),
    #[error("{0}")]
    DatatypeMismatch(String),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("{0}")]
    CardinalityViolation(String),
    #[error("{0}")]
    CantChangeRuntimeParam(String),
    #[error("database \"{0}\" does not exist")]
    UndefinedDatabase(String),
    #[error("database \"{0}\" already exists")]
    DuplicateDatabase(String),
    /// A schema that does not exist, or none to create in.
    #[error("{0}")]
    InvalidSchemaName(String),
    #[error("schema \"{0}\" already exists")]
    DuplicateSchema(String),
    /// A reserved name (`pg_…` schemas).
    #[error("{0}")]
    ReservedName(String),
    /// The object is in use (the session's own database).
    #[error("{0}")]
    ObjectInUse(String),
    #[error("{0} is not supported")]
    NotSupported(String),
    #[error("{0}")]
    SerializationFailure(String),
    #[error("current transaction is aborted, commands ignored until end of transaction block")]
    InFailedTransaction,
    /// A write in a READ ONLY transaction.
    #[error("cannot execute {0} in a read-only transaction")]
    ReadOnlyTransaction(String),
    #[error("{0}")]
    ActiveTransaction(String),
    #[error("{0}")]
    NoActiveTransaction(String),
    #[error("prepared statement \"{0}\" does not exist")]
    UndefinedPreparedStatement(String),
    #[error("savepoint \"{0}\" does not exist")]
    UndefinedSavepoint(String),
    #[error("canceling statement due to user request")]
    Canceled,
    #[error("canceling statement due to statement timeout")]
    StatementTimeout,
    #[error("canceling statement due to lock timeout")]
    LockTimeout,
    #[error("{0}")]
    LockNotAvailable(String),
    #[error("deadlock detected: {0}")]
    DeadlockDetected(String),
    /// A write met another transaction's row lock (`row_waits.rs`): a
    /// statement of its own waits for the lock and runs again; anywhere
    /// else the client sees a serialization failure with this message.
    #[error("{1}")]
    RowLocked(Box<shoal_kv::write_locks::Blocked>, String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    RangeUnavailable(String),
    #[error("{0}")]
    CompletionUnknown(String),
    #[error("{0}")]
    SnapshotTooOld(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl SqlError {
    /// Sorts a DataFusion error into a meaning. DataFusion reports most user
    /// mistakes as plan or schema errors with a message; the message is kept
    /// for the client and the class decides the SQLSTATE.
    /// An error several consumers of one plan node share (DataFusion
    /// hands it out behind an `Arc`): a serialization failure from a scan
    /// below stays one, so a statement of its own is retried; the rest
    /// keep their message.
    fn from_shared(inner: &DataFusionError) -> SqlError {
        /// The message of the serialization failure at the bottom of `e`,
        /// if that is what it is.
        fn serialization_failure(e: &DataFusionError) -> Option<String> {
            match e {
                DataFusionError::External(e) => {
                    if let Some(SqlError::SerializationFailure(m)) = e.downcast_ref::<SqlError>() {
                        return Some(m.clone());
                    }
                    if let Some(
                        kv @ (KvError::WriteConflict { .. }
                        | KvError::ReadConflict { .. }
                        | KvError::ReadWithinUncertainty { .. }),
                    ) = e.downcast_ref::<KvError>()
                    {
                        return Some(kv.to_string());
                    }
                    e.downcast_ref::<DataFusionError>()
                        .and_then(serialization_failure)
                }
                DataFusionError::Context(_, e) | DataFusionError::Diagnostic(_, e) => {
                    serialization_failure(e)
                }
                DataFusionError::Shared(e) => serialization_failure(e),
                _ => None,
            }
        }
        /// The meaning of a client's mistake at the bottom of `e` (a
        /// relation a `regclass` cast names that does not exist, text that
        /// does not parse), rebuilt since the shared error cannot be
        /// taken apart.
        fn mistake(e: &DataFusionError) -> Option<SqlError> {
            use datafusion::arrow::error::ArrowError;
            match e {
                DataFusionError::External(e) => match e.downcast_ref::<SqlError>() {
                    Some(sql) => rebuild(sql),
                    None => e.downcast_ref::<DataFusionError>().and_then(mistake),
                },
                DataFusionError::Context(_, e) | DataFusionError::Diagnostic(_, e) => mistake(e),
                DataFusionError::Shared(e) => mistake(e),
                DataFusionError::ResourcesExhausted(m) => Some(SqlError::OutOfMemory(m.clone())),
                DataFusionError::ArrowError(e, _) => match e.as_ref() {
                    ArrowError::DivideByZero => Some(SqlError::DivisionByZero),
                    ArrowError::CastError(m) | ArrowError::ParseError(m) => {
                        Some(cast_error(m.clone()))
                    }
                    _ => None,
                },
                _ => None,
            }
        }
        fn rebuild(e: &SqlError) -> Option<SqlError> {
            use SqlError as E;
            Some(match e {
                E::UndefinedTable(m) => E::UndefinedTable(m.clone()),
                E::UndefinedColumn(m) => E::UndefinedColumn(m.clone()),
                E::UndefinedFunction(m) => E::UndefinedFunction(m.clone()),
                E::UndefinedObject(m) => E::UndefinedObject(m.clone()),
                E::InvalidText(m) => E::InvalidText(m.clone()),
                E::NumericOutOfRange(m) => E::NumericOutOfRange(m.clone()),
                E::StringTooLong(m) => E::StringTooLong(m.clone()),
                E::DatatypeMismatch(m) => E::DatatypeMismatch(m.clone()),
                E::InvalidParameter(m) => E::InvalidParameter(m.clone()),
                E::CardinalityViolation(m) => E::CardinalityViolation(m.clone()),
                E::NotSupported(m) => E::NotSupported(m.clone()),
                E::DivisionByZero => E::DivisionByZero,
                E::DatetimeOverflow(m) => E::DatetimeOverflow(m.clone()),
                E::InvalidDatetimeFormat(m) => E::InvalidDatetimeFormat(m.clone()),
                E::IntervalFieldOverflow(m) => E::IntervalFieldOverflow(m.clone()),
                E::Canceled => E::Canceled,
                E::StatementTimeout => E::StatementTimeout,
                E::OutOfMemory(m) => E::OutOfMemory(m.clone()),
                _ => return None,
            })
        }
        match serialization_failure(inner) {
            Some(message) => SqlError::SerializationFailure(message),
            None => mistake(inner).unwrap_or_else(|| {
                SqlError::from_datafusion(DataFusionError::External(Box::new(
                    std::io::Error::other(inner.to_string()),
                )))
            }),
        }
    }

    pub fn from_datafusion(err: DataFusionError) -> SqlError {
        use datafusion::arrow::error::ArrowError;
        use datafusion::common::SchemaError;
        match err {
            DataFusionError::Context(_, inner) => SqlError::from_datafusion(*inner),
            DataFusionError::Diagnostic(_, inner) => SqlError::from_datafusion(*inner),
            DataFusionError::Shared(inner) => SqlError::from_shared(&inner),
            DataFusionError::Collection(mut errs) if !errs.is_empty() => {
                SqlError::from_datafusion(errs.remove(0))
            }
            DataFusionError::External(e) => match e.downcast::<SqlError>() {
                Ok(sql) => *sql,
                Err(e) => match e.downcast::<KvError>() {
                    Ok(kv) => SqlError::from(*kv),
                    Err(e) => match e.downcast::<DataFusionError>() {
                        Ok(df) => SqlError::from_datafusion(*df),
                        Err(e) => SqlError::Internal(e.to_string()),
                    },
                },
            },
            DataFusionError::ResourcesExhausted(m) => SqlError::OutOfMemory(m),
            DataFusionError::SQL(e, _) => SqlError::Syntax(strip(&e.to_string())),
            DataFusionError::SchemaError(e, _) => match *e {
                SchemaError::FieldNotFound { .. } => {
                    SqlError::UndefinedColumn(strip(&e.to_string()))
                }
                SchemaError::DuplicateQualifiedField { .. }
                | SchemaError::DuplicateUnqualifiedField { .. } => {
                    SqlError::DuplicateColumn(strip(&e.to_string()))
                }
                other => SqlError::DatatypeMismatch(strip(&other.to_string())),
            },
            DataFusionError::ArrowError(e, _) => match *e {
                ArrowError::DivideByZero => SqlError::DivisionByZero,
                ArrowError::CastError(m) | ArrowError::ParseError(m) => cast_error(m),
                ArrowError::ComputeError(m) if m.contains("Overflow") || m.contains("overflow") => {
                    SqlError::NumericOutOfRange(m)
                }
                ArrowError::ArithmeticOverflow(m) => SqlError::NumericOutOfRange(m),
                // A scan's error, passed through Arrow's record batch stream.
                ArrowError::ExternalError(e) => match e.downcast::<DataFusionError>() {
                    Ok(df) => SqlError::from_datafusion(*df),
                    Err(e) => SqlError::from_datafusion(DataFusionError::External(e)),
                },
                other => SqlError::Internal(other.to_string()),
            },
            DataFusionError::NotImplemented(m) => SqlError::NotSupported(m),
            DataFusionError::Plan(m) => classify_plan_message(m),
            DataFusionError::Execution(m) => classify_execution_message(m),
            other => {
                let msg = strip(&other.to_string());
                classify_execution_message(msg)
            }
        }
    }
}

/// DataFusion uses plan errors for several user mistakes; the wording is the
/// only thing that tells them apart.
fn classify_plan_message(m: String) -> SqlError {
    let lower = m.to_ascii_lowercase();
    if lower.contains("table '") && lower.contains("not found") {
        // `catalog.schema.table`: named as written, unqualified when the
        // search path was asked.
        let full = m.split('\'').nth(1).unwrap_or("");
        let parts: Vec<&str> = full.split('.').collect();
        let name = match parts.as_slice() {
            [.., schema, table] if *schema != crate::providers::SEARCH_PATH_SCHEMA => {
                format!("{schema}.{table}")
            }
            [.., table] => table.to_string(),
            [] => String::new(),
        };
        return SqlError::UndefinedTable(name);
    }
    if lower.contains("invalid function") || lower.contains("no function matches") {
        return SqlError::UndefinedFunction(strip(&m));
    }
    if lower.contains("division by zero") || lower.contains("divide by zero") {
        return SqlError::DivisionByZero;
    }
    if lower.contains("cannot cast") || lower.contains("cannot coerce") {
        return SqlError::DatatypeMismatch(strip(&m));
    }
    if lower.contains("null_aware anti join only supports single column") {
        // DataFusion plans `NOT IN (subquery)` whose NULLs matter only over
        // one column: a correlated one compares more.
        return SqlError::NotSupported(
            "NOT IN (subquery) with a correlated subquery, or over more than one column".into(),
        );
    }
    SqlError::DatatypeMismatch(strip(&m))
}

fn classify_execution_message(m: String) -> SqlError {
    let lower = m.to_ascii_lowercase();
    if lower.contains("divide by zero") || lower.contains("division by zero") {
        SqlError::DivisionByZero
    } else if lower.contains("cannot cast")
        || lower.contains("cast error")
        || lower.contains("parse")
    {
        SqlError::InvalidText(strip(&m))
    } else if lower.contains("overflow") {
        SqlError::NumericOutOfRange(strip(&m))
    } else {
        SqlError::Internal(strip(&m))
    }
}

/// DataFusion prefixes messages with its own error class ("Error during
/// planning: ..."); clients should see only the sentence about their query.
fn strip(m: &str) -> String {
    let mut s = m.trim();
    for prefix in [
        "Error during planning: ",
        "Schema error: ",
        "SQL error: ",
        "Execution error: ",
        "This feature is not implemented: ",
        "Arrow error: ",
        "Optimizer rule",
    ] {
        if let Some(rest) = s.strip_prefix(prefix) {
            s = rest;
        }
    }
    s.to_string()
}

/// The error of a cast Arrow refused: a number out of the target type's
/// range (22003) — Arrow's "Can't cast value …" between numeric types, or
/// an overflowing decimal — else text that does not read as the type
/// (22P02).
fn cast_error(message: String) -> SqlError {
    if message.starts_with("Can't cast value") || message.to_lowercase().contains("overflow") {
        SqlError::NumericOutOfRange(message)
    } else {
        SqlError::InvalidText(message)
    }
}

impl From<KvError> for SqlError {
    fn from(e: KvError) -> Self {
        match e {
            KvError::WriteConflict { .. } | KvError::ReadConflict { .. } => {
                SqlError::SerializationFailure(e.to_string())
            }
            KvError::TxnFinished => SqlError::NoActiveTransaction(e.to_string()),
            KvError::LockTimeout { .. } => SqlError::LockTimeout,
            KvError::SnapshotTooOld { .. } => SqlError::SnapshotTooOld(e.to_string()),
            KvError::Unavailable(_) | KvError::Misrouted(_) => {
                SqlError::RangeUnavailable(e.to_string())
            }
            KvError::UnknownSetting(_) => SqlError::UndefinedObject(e.to_string()),
            KvError::InvalidSetting(_) => SqlError::InvalidParameter(e.to_string()),
            KvError::UnknownNode(_) => SqlError::UndefinedObject(e.to_string()),
            KvError::ReadWithinUncertainty { .. } => SqlError::SerializationFailure(e.to_string()),
            KvError::Locked(blocked) => {
                let message = KvError::Locked(blocked.clone()).to_string();
                SqlError::RowLocked(blocked, message)
            }
            KvError::InvalidSplit { .. } | KvError::InvalidRangeRequest(_) => {
                SqlError::InvalidParameter(e.to_string())
            }
            KvError::UnknownRange(_) => SqlError::UndefinedObject(e.to_string()),
            KvError::Ambiguous(_) => SqlError::CompletionUnknown(format!(
                "{e}; the transaction may or may not have committed"
            )),
            other => SqlError::Unavailable(other.to_string()),
        }
    }
}

impl From<DataFusionError> for SqlError {
    fn from(e: DataFusionError) -> Self {
        SqlError::from_datafusion(e)
    }
}

impl From<SqlError> for DataFusionError {
    fn from(e: SqlError) -> Self {
        DataFusionError::External(Box::new(e))
    }
}

/// Raise a [`SqlError::NotSupported`] with a formatted message.
#[macro_export]
macro_rules! not_supported {
    ($($arg:tt)*) => {
        Err($crate::error::SqlError::NotSupported(format!($($arg)*)))
    };
}
