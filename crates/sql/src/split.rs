//! `ALTER TABLE t SPLIT AT <query>`: split a table's key space by hand.
//!
//! The SQL parser has no such statement, so [`rewrite_sql`] turns a leading
//! `ALTER TABLE name SPLIT AT rest` into the query
//!
//! ```sql
//! WITH "shoal.split_at" AS (SELECT 'name' AS t) rest
//! ```
//!
//! which parses (`rest` is a `VALUES` list or a `SELECT`), and [`target`]
//! recognizes by its marker. Each row of `rest` is a primary-key prefix of
//! the table — one value per leading key column, cast to the column's type
//! as `INSERT` would — and becomes a split point: the row's key is made the
//! first key of a range ([`Kv::split_at`](shoal_kv::Kv::split_at)). The
//! answer has a row per split point: the range that now starts there and
//! its start key. Splitting where a range already starts succeeds and
//! changes nothing.
//!
//! A split is not transactional (as in CockroachDB): it takes effect at
//! once, whether or not the surrounding transaction commits.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::{self, Statement};
use shoal_kv::Txn;

use crate::catalog;
use crate::dml::cast_column;
use crate::error::{Result, SqlError};
use crate::row;
use crate::session::{Output, Session};
use crate::types::datum_from_array;

/// The name of the common table expression marking a rewritten split.
const MARKER: &str = "shoal.split_at";

/// Rewrites a leading `ALTER TABLE name SPLIT AT` so that the parser
/// accepts it (module docs); `None` for any other text.
pub fn rewrite_sql(sql: &str) -> Option<String> {
    let (name, points) = crate::pre_parse::alter_table(sql, &["split", "at"])?;
    Some(format!(
        "WITH \"{MARKER}\" AS (SELECT {} AS t) {points}",
        crate::pre_parse::quote_literal(name)
    ))
}

/// The table name and split-point query of a rewritten split.
pub fn target(query: &ast::Query) -> Option<(String, ast::Query)> {
    let with = query.with.as_ref()?;
    let [cte] = with.cte_tables.as_slice() else {
        return None;
    };
    if cte.alias.name.value != MARKER || cte.alias.name.quote_style != Some('"') {
        return None;
    }
    let ast::SetExpr::Select(select) = cte.query.body.as_ref() else {
        return None;
    };
    let [ast::SelectItem::ExprWithAlias { expr, .. }] = select.projection.as_slice() else {
        return None;
    };
    let ast::Expr::Value(value) = expr else {
        return None;
    };
    let ast::Value::SingleQuotedString(name) = &value.value else {
        return None;
    };
    let mut body = query.clone();
    body.with = None;
    Some((name.clone(), body))
}

/// The columns of a split's answer.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("range_id", DataType::Int64, false),
        Field::new("start_key", DataType::Utf8, false),
    ]))
}

/// Splits `table` at each row of `points`.
pub async fn split_at(
    session: &Session,
    txn: &Arc<Txn>,
    table: &str,
    points: ast::Query,
    params: Vec<ScalarValue>,
) -> Result<Output> {
    let name = crate::pre_parse::parse_table_name(table)?;
    let (in_schema, table) = session.scope().resolve(txn, &name)?;
    let desc = catalog::table_by_name(txn, session.database(), &in_schema, &table)?
        .ok_or(SqlError::UndefinedTable(table.clone()))?;
    let plan = session.plan(&Statement::Query(Box::new(points))).await?;
    let width = plan.schema().fields().len();
    if width > desc.primary_key.len() {
        return Err(SqlError::Syntax(format!(
            "too many columns in SPLIT AT data: {width} given, the primary key of \"{table}\" has {}",
            desc.primary_key.len()
        )));
    }
    let batches = session.collect(plan, params).await?;
    let kv = txn.kv();
    let (mut ranges, mut keys) = (Vec::new(), Vec::new());
    for batch in &batches {
        let mut casted: HashMap<usize, ArrayRef> = HashMap::new();
        for r in 0..batch.num_rows() {
            let mut values = Vec::with_capacity(width);
            for (i, &pos) in desc.primary_key.iter().take(width).enumerate() {
                let ty = &desc.columns[pos].ty;
                let array = match casted.entry(i) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(cast_column(batch.column(i), ty)?)
                    }
                };
                values.push(datum_from_array(array, r, ty)?);
            }
            let key = row::encode_key_values(&desc, &values)?;
            let range = kv.split_at(&key)?;
            ranges.push(i64::try_from(range).unwrap_or(i64::MAX));
            keys.push(row::pretty_key(&key));
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ranges)),
        Arc::new(StringArray::from(keys)),
    ];
    let batch =
        RecordBatch::try_new(schema(), columns).map_err(|e| SqlError::Internal(e.to_string()))?;
    Ok(Output::Rows {
        schema: batch.schema(),
        batches: vec![batch],
    })
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn parse(sql: &str) -> ast::Query {
        let stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .pop()
            .unwrap();
        match stmt {
            Statement::Query(q) => *q,
            other => panic!("not a query: {other}"),
        }
    }

    #[test]
    fn alter_table_split_at_becomes_a_marked_query() {
        let sql = rewrite_sql("  alter TABLE \"My T\"  SPLIT at VALUES (10), (20)").unwrap();
        let (table, body) = target(&parse(&sql)).unwrap();
        assert_eq!(table, "\"My T\"");
        assert_eq!(body.to_string(), "VALUES (10), (20)");
        let sql = rewrite_sql("ALTER TABLE public.kv SPLIT AT SELECT 'o''k'").unwrap();
        let (table, body) = target(&parse(&sql)).unwrap();
        assert_eq!(table, "public.kv");
        assert_eq!(body.to_string(), "SELECT 'o''k'");
        for other in [
            "ALTER TABLE t ADD COLUMN c int",
            "SELECT 'ALTER TABLE t SPLIT AT VALUES (1)'",
            "ALTER TABLE",
        ] {
            assert_eq!(rewrite_sql(other), None);
        }
        assert!(target(&parse("WITH x AS (SELECT 't' AS t) VALUES (1)")).is_none());
    }
}
