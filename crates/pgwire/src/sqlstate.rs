//! The one place where Shoal's typed errors become PostgreSQL SQLSTATE codes.
//!
//! Clients and ORMs branch on these codes (23505 → "already exists",
//! 40001 → "retry the transaction"), so each [`SqlError`] meaning maps to the
//! code PostgreSQL uses for the same situation.

use pgwire::error::{ErrorInfo, PgWireError};
use shoal_sql::SqlError;

/// The SQLSTATE of an error.
pub fn sqlstate(e: &SqlError) -> &'static str {
    match e {
        SqlError::Syntax(_) => "42601",
        SqlError::UndefinedTable(_) => "42P01",
        SqlError::DuplicateTable(_) => "42P07",
        SqlError::UndefinedColumn(_) => "42703",
        SqlError::DuplicateColumn(_) => "42701",
        SqlError::UndefinedFunction(_) => "42883",
        SqlError::InvalidTableDefinition(_) => "42P16",
        SqlError::UndefinedObject(_) => "42704",
        SqlError::UniqueViolation { .. } | SqlError::UniqueIndexBuild { .. } => "23505",
        SqlError::DependentObjects(_) => "2BP01",
        SqlError::ForeignKeyViolation { .. } => "23503",
        SqlError::CheckViolation { .. } => "23514",
        SqlError::InvalidForeignKey(_) => "42830",
        SqlError::DuplicateObject(_) => "42710",
        SqlError::SequenceLimit(_) => "2200H",
        SqlError::InvalidColumnReference(_) => "42P10",
        SqlError::NotInPrerequisiteState(_) => "55000",
        SqlError::WrongObjectType(_) => "42809",
        SqlError::ProgramLimitExceeded(_) => "54000",
        SqlError::OutOfMemory(_) => "53200",
        SqlError::NotNullViolation { .. } | SqlError::ColumnContainsNulls(_) => "23502",
        SqlError::InvalidText(_) => "22P02",
        SqlError::BadCopyFile(_) => "22P04",
        SqlError::CopyFailed(_) => "57014",
        SqlError::CharacterNotInRepertoire(_) => "22021",
        SqlError::NumericOutOfRange(_) => "22003",
        SqlError::StringTooLong(_) => "22001",
        SqlError::DivisionByZero => "22012",
        SqlError::DatetimeOverflow(_) => "22008",
        SqlError::InvalidDatetimeFormat(_) => "22007",
        SqlError::IntervalFieldOverflow(_) => "22015",
        SqlError::DatatypeMismatch(_) => "42804",
        SqlError::InvalidParameter(_) => "22023",
        SqlError::CardinalityViolation(_) => "21000",
        SqlError::CantChangeRuntimeParam(_) => "55P02",
        SqlError::UndefinedDatabase(_) => "3D000",
        SqlError::DuplicateDatabase(_) => "42P04",
        SqlError::InvalidSchemaName(_) => "3F000",
        SqlError::DuplicateSchema(_) => "42P06",
        SqlError::ReservedName(_) => "42939",
        SqlError::ObjectInUse(_) => "55006",
        SqlError::NotSupported(_) => "0A000",
        SqlError::SerializationFailure(_) | SqlError::RowLocked(..) => "40001",
        SqlError::InFailedTransaction => "25P02",
        SqlError::ReadOnlyTransaction(_) => "25006",
        SqlError::ActiveTransaction(_) => "25001",
        SqlError::NoActiveTransaction(_) => "25P01",
        SqlError::UndefinedSavepoint(_) => "3B001",
        SqlError::UndefinedPreparedStatement(_) => "26000",
        SqlError::Canceled | SqlError::StatementTimeout => "57014",
        SqlError::LockTimeout | SqlError::LockNotAvailable(_) => "55P03",
        SqlError::DeadlockDetected(_) => "40P01",
        SqlError::Unavailable(_) => "58000",
        SqlError::RangeUnavailable(_) => "57P03",
        SqlError::CompletionUnknown(_) => "40003",
        SqlError::SnapshotTooOld(_) => "72000",
        SqlError::Internal(_) => "XX000",
    }
}

/// The wire error for a Shoal error.
pub fn error_info(e: &SqlError) -> ErrorInfo {
    let mut info = ErrorInfo::new("ERROR".to_string(), sqlstate(e).to_string(), e.to_string());
    if let SqlError::UniqueViolation { detail, .. }
    | SqlError::UniqueIndexBuild { detail, .. }
    | SqlError::ForeignKeyViolation { detail, .. }
    | SqlError::CheckViolation { detail, .. } = e
        && !detail.is_empty()
    {
        info.detail = Some(detail.clone());
    }
    info
}

pub fn to_pgwire(e: &SqlError) -> PgWireError {
    PgWireError::UserError(Box::new(error_info(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_of_the_issue() {
        assert_eq!(
            sqlstate(&SqlError::UniqueViolation {
                constraint: "t_pkey".into(),
                detail: String::new()
            }),
            "23505"
        );
        assert_eq!(
            sqlstate(&SqlError::NotNullViolation {
                table: "t".into(),
                column: "a".into()
            }),
            "23502"
        );
        assert_eq!(sqlstate(&SqlError::UndefinedTable("t".into())), "42P01");
        assert_eq!(sqlstate(&SqlError::UndefinedColumn("c".into())), "42703");
        assert_eq!(sqlstate(&SqlError::Syntax("x".into())), "42601");
        assert_eq!(sqlstate(&SqlError::InvalidText("x".into())), "22P02");
        assert_eq!(sqlstate(&SqlError::DivisionByZero), "22012");
        assert_eq!(sqlstate(&SqlError::NotSupported("x".into())), "0A000");
        assert_eq!(
            sqlstate(&SqlError::SerializationFailure("x".into())),
            "40001"
        );
        assert_eq!(sqlstate(&SqlError::InFailedTransaction), "25P02");
    }
}
