//! `ALTER TABLE t CONFIGURE ZONE USING range_max_bytes = n,
//! range_min_bytes = m`: how big the table's ranges may grow before they
//! split, and how small they may shrink before they merge (CockroachDB's
//! syntax).
//!
//! The parser has no such statement, so [`rewrite_sql`] turns it into
//!
//! ```sql
//! UPDATE "shoal.configure_zone" SET range_max_bytes = n WHERE t = 'name'
//! ```
//!
//! which parses, with the settings as assignments, and [`target`]
//! recognizes by its reserved table name. The value becomes the span
//! configuration of the table's key span (`shoal_kv::span_config`); the
//! nodes' maintenance loops then split its ranges that hold more, and the
//! placement loop merges neighbours that hold less (`shoal_kv::merge`). A
//! minimum at or above the maximum is refused (22023). Settings Shoal
//! does not act on (`gc.ttlseconds`, `num_replicas`, …) are refused with
//! 0A000 rather than stored and ignored.

use datafusion::sql::sqlparser::ast;
use shoal_kv::Txn;

use crate::catalog;
use crate::error::{Result, SqlError};
use crate::names;
use crate::row;
use crate::session::Output;

/// The reserved table name marking a rewritten `CONFIGURE ZONE`.
const MARKER: &str = "shoal.configure_zone";

/// Rewrites a leading `ALTER TABLE name CONFIGURE ZONE USING …` so that
/// the parser accepts it (module docs); `None` for any other text.
pub fn rewrite_sql(sql: &str) -> Option<String> {
    let (name, settings) = crate::pre_parse::alter_table(sql, &["configure", "zone", "using"])?;
    Some(format!(
        "UPDATE \"{MARKER}\" SET {settings} WHERE t = {}",
        crate::pre_parse::quote_literal(name)
    ))
}

/// The table name and settings of a rewritten `CONFIGURE ZONE`.
pub fn target(update: &ast::Update) -> Option<(String, &[ast::Assignment])> {
    let ast::TableFactor::Table { name, .. } = &update.table.relation else {
        return None;
    };
    let [ast::ObjectNamePart::Identifier(ident)] = name.0.as_slice() else {
        return None;
    };
    if ident.value != MARKER || ident.quote_style != Some('"') {
        return None;
    }
    let Some(ast::Expr::BinaryOp { right, .. }) = &update.selection else {
        return None;
    };
    let ast::Expr::Value(value) = right.as_ref() else {
        return None;
    };
    let ast::Value::SingleQuotedString(table) = &value.value else {
        return None;
    };
    Some((table.clone(), update.assignments.as_slice()))
}

/// Applies the settings to `table`'s key span.
pub fn configure(
    txn: &Txn,
    scope: &names::Scope,
    table: &str,
    settings: &[ast::Assignment],
) -> Result<Output> {
    let name = crate::pre_parse::parse_table_name(table)?;
    let (schema, table) = scope.resolve(txn, &name)?;
    let desc = catalog::table_by_name(txn, &scope.database, &schema, &table)?
        .ok_or(SqlError::UndefinedTable(table.clone()))?;
    let (mut max_bytes, mut min_bytes) = (None, None);
    for assignment in settings {
        let setting = assignment.target.to_string().to_lowercase();
        match setting.as_str() {
            "range_max_bytes" => max_bytes = Some(integer(&setting, &assignment.value)?),
            "range_min_bytes" => min_bytes = Some(integer(&setting, &assignment.value)?),
            _ => {
                return Err(SqlError::NotSupported(format!(
                    "zone configuration setting {setting}"
                )));
            }
        }
    }
    if max_bytes.is_none() && min_bytes.is_none() {
        return Err(SqlError::Syntax(
            "CONFIGURE ZONE USING needs range_max_bytes or range_min_bytes = <bytes>".into(),
        ));
    }
    let start = row::table_prefix(desc.id);
    let end = row::prefix_end(&start);
    txn.kv()
        .set_range_bytes(&start, Some(&end), max_bytes, min_bytes)?;
    Ok(Output::command("CONFIGURE ZONE"))
}

/// The non-negative integer literal `value`.
fn integer(setting: &str, value: &ast::Expr) -> Result<u64> {
    let invalid =
        || SqlError::InvalidParameter(format!("{setting} must be a number of bytes, not {value}"));
    let ast::Expr::Value(v) = value else {
        return Err(invalid());
    };
    match &v.value {
        ast::Value::Number(n, _) => n.parse().map_err(|_| invalid()),
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::ast::Statement;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    #[test]
    fn configure_zone_becomes_a_marked_update() {
        let sql = rewrite_sql(
            "ALTER TABLE kv CONFIGURE ZONE USING range_max_bytes = 1048576, range_min_bytes = 1",
        )
        .unwrap();
        let stmt = Parser::parse_sql(&PostgreSqlDialect {}, &sql)
            .unwrap()
            .pop()
            .unwrap();
        let Statement::Update(update) = stmt else {
            panic!("{stmt}");
        };
        let (table, settings) = target(&update).unwrap();
        assert_eq!(table, "kv");
        assert_eq!(settings.len(), 2);
        assert_eq!(integer("x", &settings[0].value).unwrap(), 1_048_576);
        assert!(rewrite_sql("ALTER TABLE kv SPLIT AT VALUES (1)").is_none());
    }
}
