//! Which statements a READ ONLY transaction refuses (25006).
//!
//! A block begun `READ ONLY` (or any statement while
//! `default_transaction_read_only` is on) may read, set session
//! variables, end itself and copy out; everything else writes to the
//! database — rows, schema, sequences — and is refused before it runs,
//! named as PostgreSQL names it in the error.

use datafusion::sql::sqlparser::ast::Statement;

/// The name of the write `stmt` is, or `None` if it only reads.
pub fn write_kind(stmt: &Statement) -> Option<String> {
    let kind = match stmt {
        Statement::Query(q) => {
            return (!q.locks.is_empty()).then(|| "SELECT FOR UPDATE".into());
        }
        // EXPLAIN ANALYZE runs its statement.
        Statement::Explain {
            analyze: true,
            statement,
            ..
        } => return write_kind(statement),
        Statement::Explain { .. }
        | Statement::ExplainTable { .. }
        | Statement::Set(_)
        | Statement::ShowVariable { .. }
        | Statement::ShowVariables { .. }
        | Statement::ShowTables { .. }
        | Statement::ShowColumns { .. }
        | Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. }
        | Statement::Deallocate { .. }
        | Statement::Discard { .. }
        | Statement::Prepare { .. }
        | Statement::Execute { .. }
        | Statement::Reset(_) => return None,
        Statement::Copy { to: true, .. } => return None,
        Statement::Copy { .. } => "COPY FROM",
        Statement::Insert(_) => "INSERT",
        Statement::Update(_) => "UPDATE",
        Statement::Delete(_) => "DELETE",
        Statement::Truncate { .. } => "TRUNCATE TABLE",
        Statement::CreateTable(_) => "CREATE TABLE",
        Statement::CreateIndex(_) => "CREATE INDEX",
        Statement::CreateView { .. } => "CREATE VIEW",
        Statement::CreateSequence { .. } => "CREATE SEQUENCE",
        Statement::Drop { .. } => "DROP",
        Statement::AlterTable { .. } => "ALTER TABLE",
        Statement::CreateSchema { .. } => "CREATE SCHEMA",
        Statement::CreateDatabase { .. } => "CREATE DATABASE",
        _ => "this statement",
    };
    Some(kind.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(sql: &str) -> Option<String> {
        let stmt = crate::session::Session::parse(sql)
            .expect("parses")
            .pop()
            .expect("one statement");
        write_kind(&stmt)
    }

    #[test]
    fn reads_pass_and_writes_are_named() {
        assert_eq!(kind("SELECT 1"), None);
        assert_eq!(kind("SET search_path = public"), None);
        assert_eq!(kind("COMMIT"), None);
        assert_eq!(kind("INSERT INTO t VALUES (1)"), Some("INSERT".into()));
        assert_eq!(kind("UPDATE t SET a = 1"), Some("UPDATE".into()));
        assert_eq!(kind("DROP TABLE t"), Some("DROP".into()));
        assert_eq!(kind("EXPLAIN SELECT 1"), None);
        assert_eq!(kind("EXPLAIN ANALYZE DELETE FROM t"), Some("DELETE".into()));
        assert_eq!(kind("CREATE SCHEMA s"), Some("CREATE SCHEMA".into()));
        assert_eq!(
            kind("SELECT * FROM t FOR UPDATE"),
            Some("SELECT FOR UPDATE".into())
        );
    }
}
