//! `ALTER RANGE r RELOCATE LEASE TO n` and `ALTER RANGE r RELOCATE
//! [VOTERS] FROM a TO b`: moving a range's leadership, or one of its
//! voting replicas, by hand (CockroachDB's statements; range and node ids
//! as `SHOW RANGES` and `shoal_internal.nodes` show them).
//!
//! The parser knows no `ALTER RANGE`, so [`rewrite_sql`] turns the
//! statement into a marked query (`pre_parse.rs`),
//!
//! ```sql
//! WITH "shoal.relocate" AS (SELECT 'voters 5 1 4' AS t) SELECT 1
//! ```
//!
//! which [`target`] reads back. Text that starts `ALTER RANGE` but is not
//! one of the two forms is left for the parser to reject (42601).
//!
//! The move itself is the KV layer's ([`Kv::relocate_lease`],
//! [`Kv::relocate_replica`]): it waits, on a blocking thread, until the
//! range looks as asked (at most half a minute) and answers one row, the
//! range and `ok`. An unknown range is 42704; a move the range's
//! membership does not allow (`to` not voting for a lease, `from` not
//! voting, `to` voting already or not live) is 22023. It is not
//! transactional: it takes effect at once, in or out of a transaction
//! block.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use shoal_kv::Kv;

use crate::error::{Result, SqlError};
use crate::session::Output;

/// The name of the common table expression marking a rewritten statement.
const MARKER: &str = "shoal.relocate";

/// What an `ALTER RANGE … RELOCATE` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relocation {
    /// `RELOCATE LEASE TO to`.
    Lease { range: u64, to: u64 },
    /// `RELOCATE [VOTERS] FROM from TO to`.
    Replica { range: u64, from: u64, to: u64 },
}

impl Relocation {
    fn range(self) -> u64 {
        match self {
            Relocation::Lease { range, .. } | Relocation::Replica { range, .. } => range,
        }
    }

    /// The words the marked query carries.
    fn encode(self) -> String {
        match self {
            Relocation::Lease { range, to } => format!("lease {range} {to}"),
            Relocation::Replica { range, from, to } => format!("voters {range} {from} {to}"),
        }
    }

    fn decode(text: &str) -> Option<Relocation> {
        let words: Vec<&str> = text.split(' ').collect();
        let number = |i: usize| words.get(i)?.parse::<u64>().ok();
        match words.first().copied()? {
            "lease" if words.len() == 3 => Some(Relocation::Lease {
                range: number(1)?,
                to: number(2)?,
            }),
            "voters" if words.len() == 4 => Some(Relocation::Replica {
                range: number(1)?,
                from: number(2)?,
                to: number(3)?,
            }),
            _ => None,
        }
    }
}

/// Rewrites a leading `ALTER RANGE … RELOCATE …` so that the parser
/// accepts it (module docs); `None` for any other text.
pub fn rewrite_sql(sql: &str) -> Option<String> {
    let head = sql.trim_start().get(..5)?;
    if !head.eq_ignore_ascii_case("alter") {
        return None;
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    let mut words = tokens
        .iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .peekable();
    let mut keyword = |word: &str| matches!(words.next(), Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word));
    if !(keyword("alter") && keyword("range")) {
        return None;
    }
    let rest: Vec<&Token> = words.collect();
    let word = |t: &Token, w: &str| matches!(t, Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w));
    let number = |t: &Token| match t {
        Token::Number(n, false) => n.parse::<u64>().ok(),
        _ => None,
    };
    let relocation = match rest.as_slice() {
        [range, relocate, lease, to, node]
            if word(relocate, "relocate") && word(lease, "lease") && word(to, "to") =>
        {
            Relocation::Lease {
                range: number(range)?,
                to: number(node)?,
            }
        }
        [range, relocate, voters, from_w, from, to_w, to]
            if word(relocate, "relocate")
                && word(voters, "voters")
                && word(from_w, "from")
                && word(to_w, "to") =>
        {
            Relocation::Replica {
                range: number(range)?,
                from: number(from)?,
                to: number(to)?,
            }
        }
        [range, relocate, from_w, from, to_w, to]
            if word(relocate, "relocate") && word(from_w, "from") && word(to_w, "to") =>
        {
            Relocation::Replica {
                range: number(range)?,
                from: number(from)?,
                to: number(to)?,
            }
        }
        _ => return None,
    };
    Some(format!(
        "WITH \"{MARKER}\" AS (SELECT '{}' AS t) SELECT 1",
        relocation.encode()
    ))
}

/// The relocation a rewritten query stands for.
pub fn target(query: &ast::Query) -> Option<Relocation> {
    let (marker, text, _) = crate::pre_parse::marked_query(query)?;
    (marker == MARKER)
        .then(|| Relocation::decode(&text))
        .flatten()
}

/// The columns of the answer.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("range_id", DataType::Int64, false),
        Field::new("result", DataType::Utf8, false),
    ]))
}

/// Carries out `relocation` (module docs).
pub async fn run(kv: Arc<Kv>, relocation: Relocation) -> Result<Output> {
    tokio::task::spawn_blocking(move || match relocation {
        Relocation::Lease { range, to } => kv.relocate_lease(range, to),
        Relocation::Replica { range, from, to } => kv.relocate_replica(range, from, to),
    })
    .await
    .map_err(|e| SqlError::Internal(format!("relocation stopped: {e}")))??;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![
            i64::try_from(relocation.range()).unwrap_or(i64::MAX),
        ])),
        Arc::new(StringArray::from(vec!["ok"])),
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
    #![allow(clippy::unwrap_used)]

    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn relocation(sql: &str) -> Option<Relocation> {
        let rewritten = rewrite_sql(sql)?;
        let stmt = Parser::parse_sql(&PostgreSqlDialect {}, &rewritten)
            .unwrap()
            .pop()
            .unwrap();
        match stmt {
            ast::Statement::Query(q) => target(&q),
            other => panic!("not a query: {other}"),
        }
    }

    #[test]
    fn both_forms_are_recognized() {
        assert_eq!(
            relocation("alter range 12 relocate lease to 3"),
            Some(Relocation::Lease { range: 12, to: 3 })
        );
        let replica = Some(Relocation::Replica {
            range: 5,
            from: 1,
            to: 4,
        });
        assert_eq!(
            relocation("ALTER RANGE 5 RELOCATE VOTERS FROM 1 TO 4"),
            replica
        );
        assert_eq!(relocation("  ALTER RANGE 5 RELOCATE FROM 1 TO 4 "), replica);
    }

    #[test]
    fn anything_else_is_left_to_the_parser() {
        for sql in [
            "ALTER RANGE 5 RELOCATE LEASE TO",
            "ALTER RANGE x RELOCATE LEASE TO 2",
            "ALTER RANGE 5 RELOCATE LEASE TO -2",
            "ALTER RANGE 5 RELOCATE NONVOTERS FROM 1 TO 2",
            "ALTER RANGE 5 RELOCATE LEASE TO 2 FOR SELECT 1",
            "ALTER TABLE t RELOCATE LEASE TO 2",
            "ALTER RANGE 99999999999999999999 RELOCATE LEASE TO 2",
            "SELECT 'ALTER RANGE 5 RELOCATE LEASE TO 2'",
        ] {
            assert_eq!(rewrite_sql(sql), None, "{sql}");
        }
        let q = Parser::parse_sql(
            &PostgreSqlDialect {},
            "WITH \"shoal.relocate\" AS (SELECT 'lease x' AS t) SELECT 1",
        )
        .unwrap()
        .pop()
        .unwrap();
        let ast::Statement::Query(q) = q else {
            panic!()
        };
        assert_eq!(target(&q), None);
    }
}
