//! `ALTER TABLE t SPLIT AT <query>`, `ALTER TABLE t UNSPLIT AT <query>`
//! and `ALTER TABLE t UNSPLIT ALL`: a table's range boundaries by hand.
//!
//! The SQL parser has no such statements, so [`rewrite_sql`] turns a
//! leading `ALTER TABLE name SPLIT AT rest` into the query
//!
//! ```sql
//! WITH "shoal.split_at" AS (SELECT 'name' AS t) rest
//! ```
//!
//! which parses (`rest` is a `VALUES` list or a `SELECT`), and [`target`]
//! recognizes by its marker (`"shoal.unsplit_at"` for `UNSPLIT AT`;
//! `"shoal.unsplit_all"`, with a body that is never run, for `UNSPLIT
//! ALL`). Each row of `rest` is a primary-key prefix of the table — one
//! value per leading key column, cast to the column's type as `INSERT`
//! would — whose key is the point:
//!
//! * `SPLIT AT` makes it the first key of a range
//!   ([`Kv::split_at`](shoal_kv::Kv::split_at)), a boundary that stays
//!   (it is *sticky*: the merge driver leaves it alone). Splitting where a
//!   range already starts succeeds and changes nothing.
//! * `UNSPLIT AT` takes the stickiness away from a boundary
//!   ([`Kv::unsplit_at`](shoal_kv::Kv::unsplit_at)): the ranges on either
//!   side merge once both are small (`range_min_bytes`). A point that is
//!   not a range's first key is an error (22023).
//! * `UNSPLIT ALL` does that to every boundary inside the table (not the
//!   ones that give the table its own ranges).
//!
//! The answer has a row per point: the range that starts there and its
//! start key. None of these is transactional (as in CockroachDB): each
//! takes effect at once, whether or not the surrounding transaction
//! commits.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::{self, Statement};
use shoal_kv::Txn;

use crate::catalog;
use crate::descriptor::TableDescriptor;
use crate::dml::cast_column;
use crate::error::{Result, SqlError};
use crate::row;
use crate::session::{Output, Session};
use crate::types::datum_from_array;

/// What a rewritten statement asks for (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundaries {
    Split,
    Unsplit,
    UnsplitAll,
}

/// The name of the common table expression marking each statement.
const MARKERS: [(Boundaries, &str); 3] = [
    (Boundaries::Split, "shoal.split_at"),
    (Boundaries::Unsplit, "shoal.unsplit_at"),
    (Boundaries::UnsplitAll, "shoal.unsplit_all"),
];

/// A recognized statement: what it asks, the table as written, and the
/// query of its points.
#[derive(Debug, Clone)]
pub struct Target {
    pub asks: Boundaries,
    pub table: String,
    pub points: ast::Query,
}

/// Rewrites a leading `ALTER TABLE name SPLIT AT`, `UNSPLIT AT` or
/// `UNSPLIT ALL` so that the parser accepts it (module docs); `None` for
/// any other text.
pub fn rewrite_sql(sql: &str) -> Option<String> {
    let marked = |asks: Boundaries, name: &str, body: &str| {
        let (_, marker) = MARKERS.iter().find(|(a, _)| *a == asks)?;
        Some(format!(
            "WITH \"{marker}\" AS (SELECT {} AS t) {body}",
            crate::pre_parse::quote_literal(name)
        ))
    };
    if let Some((name, points)) = crate::pre_parse::alter_table(sql, &["split", "at"]) {
        return marked(Boundaries::Split, name, points);
    }
    if let Some((name, points)) = crate::pre_parse::alter_table(sql, &["unsplit", "at"]) {
        return marked(Boundaries::Unsplit, name, points);
    }
    let (name, rest) = crate::pre_parse::alter_table(sql, &["unsplit"])?;
    rest.trim_end()
        .eq_ignore_ascii_case("all")
        .then(|| marked(Boundaries::UnsplitAll, name, "SELECT 1"))
        .flatten()
}

/// The statement a rewritten query stands for.
pub fn target(query: &ast::Query) -> Option<Target> {
    let (marker, table, points) = crate::pre_parse::marked_query(query)?;
    let &(asks, _) = MARKERS.iter().find(|(_, m)| *m == marker)?;
    Some(Target {
        asks,
        table,
        points,
    })
}

/// The columns of a split's answer.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("range_id", DataType::Int64, false),
        Field::new("start_key", DataType::Utf8, false),
    ]))
}

/// Carries out `target` (module docs).
pub async fn run(
    session: &Session,
    txn: &Arc<Txn>,
    target: Target,
    params: Vec<ScalarValue>,
) -> Result<Output> {
    let name = crate::pre_parse::parse_table_name(&target.table)?;
    let (in_schema, table) = session.scope().resolve(txn, &name)?;
    let desc = catalog::table_by_name(txn, session.database(), &in_schema, &table)?
        .ok_or(SqlError::UndefinedTable(table.clone()))?;
    let kv = txn.kv();
    let done: Vec<(u64, Vec<u8>)> = match target.asks {
        Boundaries::UnsplitAll => {
            let start = row::table_prefix(desc.id);
            kv.unsplit_span(&start, &row::prefix_end(&start))?
        }
        asks => {
            let keys = point_keys(session, &desc, target.points, params).await?;
            let mut done = Vec::with_capacity(keys.len());
            for key in keys {
                let range = match asks {
                    Boundaries::Split => kv.split_at(&key)?,
                    _ => kv.unsplit_at(&key)?,
                };
                done.push((range, key));
            }
            done
        }
    };
    let ranges: Vec<i64> = done
        .iter()
        .map(|(range, _)| i64::try_from(*range).unwrap_or(i64::MAX))
        .collect();
    let keys: Vec<String> = done.iter().map(|(_, key)| row::pretty_key(key)).collect();
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

/// The key of each row of `points`, a primary-key prefix of `desc`.
async fn point_keys(
    session: &Session,
    desc: &TableDescriptor,
    points: ast::Query,
    params: Vec<ScalarValue>,
) -> Result<Vec<Vec<u8>>> {
    let plan = session.plan(&Statement::Query(Box::new(points))).await?;
    let width = plan.schema().fields().len();
    if width > desc.primary_key.len() {
        return Err(SqlError::Syntax(format!(
            "too many columns in SPLIT AT data: {width} given, the primary key of \"{}\" has {}",
            desc.name,
            desc.primary_key.len()
        )));
    }
    let batches = session.collect(plan, params).await?;
    let mut keys = Vec::new();
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
            keys.push(row::encode_key_values(desc, &values)?);
        }
    }
    Ok(keys)
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
        let t = target(&parse(&sql)).unwrap();
        assert_eq!(t.asks, Boundaries::Split);
        assert_eq!(t.table, "\"My T\"");
        assert_eq!(t.points.to_string(), "VALUES (10), (20)");
        let sql = rewrite_sql("ALTER TABLE public.kv SPLIT AT SELECT 'o''k'").unwrap();
        let t = target(&parse(&sql)).unwrap();
        assert_eq!(t.table, "public.kv");
        assert_eq!(t.points.to_string(), "SELECT 'o''k'");
        for other in [
            "ALTER TABLE t ADD COLUMN c int",
            "SELECT 'ALTER TABLE t SPLIT AT VALUES (1)'",
            "ALTER TABLE",
            "ALTER TABLE t UNSPLIT",
            "ALTER TABLE t UNSPLIT ALL ROWS",
        ] {
            assert_eq!(rewrite_sql(other), None, "{other}");
        }
        assert!(target(&parse("WITH x AS (SELECT 't' AS t) VALUES (1)")).is_none());
    }

    #[test]
    fn unsplit_at_and_unsplit_all_are_marked_apart() {
        let sql = rewrite_sql("ALTER TABLE t UNSPLIT AT VALUES (3)").unwrap();
        let t = target(&parse(&sql)).unwrap();
        assert_eq!((t.asks, t.table.as_str()), (Boundaries::Unsplit, "t"));
        assert_eq!(t.points.to_string(), "VALUES (3)");
        let sql = rewrite_sql("alter table s.t unsplit ALL  ").unwrap();
        let t = target(&parse(&sql)).unwrap();
        assert_eq!((t.asks, t.table.as_str()), (Boundaries::UnsplitAll, "s.t"));
    }
}
