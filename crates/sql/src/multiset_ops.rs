//! `INTERSECT ALL` and `EXCEPT ALL` with PostgreSQL's multiset counts.
//!
//! DataFusion plans both as a semi or anti join, which keeps every copy of
//! a left row that has any match (`{1,1,1} INTERSECT ALL {1}` gives three
//! 1s, not one) or drops every copy (`{1,1,1} EXCEPT ALL {1}` gives none,
//! not two). So each such operation is rewritten before planning to
//! number the copies of each distinct row on both sides and apply the
//! distinct operation to (row, copy number):
//!
//! ```sql
//! SELECT c1 AS "x", … FROM (
//!   SELECT *, row_number() OVER (PARTITION BY c1, …) AS "shoal.copy"
//!     FROM (left) AS "shoal.l"(c1, …)
//!   INTERSECT | EXCEPT
//!   SELECT *, row_number() OVER (PARTITION BY c1, …) AS "shoal.copy"
//!     FROM (right) AS "shoal.r"(c1, …)
//! ) AS "shoal.m"
//! ```
//!
//! The k-th copy of a row that appears m times on the left survives
//! `INTERSECT` when the right has at least k copies — min(m, n) in all —
//! and `EXCEPT` when it has fewer — max(m − n, 0): PostgreSQL's counts.
//! NULLs are alike both in the numbering and in the set operation, as in
//! PostgreSQL. The left operand is planned first for its width and column
//! names, which the result keeps.
//!
//! Operations anywhere in a query's body (set operations nested at any
//! depth, parenthesized queries) are rewritten; one inside a subquery of
//! an expression is refused (0A000) rather than answered wrongly.

use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;

use datafusion::sql::sqlparser::ast::{self, SetExpr, SetOperator, SetQuantifier, Statement};

use crate::error::{Result, SqlError};
use crate::session::Session;

/// Whether `stmt` holds an `INTERSECT ALL` or `EXCEPT ALL` anywhere.
pub(crate) fn present(stmt: &Statement) -> bool {
    struct Finder;
    impl ast::Visitor for Finder {
        type Break = ();
        fn pre_visit_query(&mut self, query: &ast::Query) -> ControlFlow<()> {
            if in_body(&query.body) {
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    ast::Visit::visit(stmt, &mut Finder).is_break()
}

/// Whether a query body's set-operation tree holds one.
fn in_body(body: &SetExpr) -> bool {
    match body {
        SetExpr::SetOperation {
            op,
            set_quantifier,
            left,
            right,
        } => multiset(*op, *set_quantifier) || in_body(left) || in_body(right),
        _ => false,
    }
}

fn multiset(op: SetOperator, quantifier: SetQuantifier) -> bool {
    matches!(op, SetOperator::Intersect | SetOperator::Except)
        && matches!(quantifier, SetQuantifier::All)
}

/// Rewrites every `INTERSECT ALL` and `EXCEPT ALL` of `stmt` (module
/// docs).
pub(crate) async fn rewrite(session: &Session, stmt: &mut Statement) -> Result<()> {
    if let Statement::Query(query) = stmt {
        rewrite_query(session, query, None).await?;
    }
    if present(stmt) {
        return Err(SqlError::NotSupported(
            "INTERSECT ALL or EXCEPT ALL inside a subquery expression".into(),
        ));
    }
    Ok(())
}

type Step<'a> = Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;

fn rewrite_query<'a>(
    session: &'a Session,
    query: &'a mut ast::Query,
    outer: Option<&'a ast::With>,
) -> Step<'a> {
    Box::pin(async move {
        let with = query.with.clone().or_else(|| outer.cloned());
        rewrite_body(session, &mut query.body, with).await
    })
}

fn rewrite_body<'a>(
    session: &'a Session,
    body: &'a mut SetExpr,
    with: Option<ast::With>,
) -> Step<'a> {
    Box::pin(async move {
        match body {
            SetExpr::Query(query) => rewrite_query(session, query, with.as_ref()).await,
            SetExpr::SetOperation {
                op,
                set_quantifier,
                left,
                right,
            } => {
                rewrite_body(session, left, with.clone()).await?;
                rewrite_body(session, right, with.clone()).await?;
                if !multiset(*op, *set_quantifier) {
                    return Ok(());
                }
                let probe = match &with {
                    Some(with) => format!("{with} {left}"),
                    None => left.to_string(),
                };
                let plan = session.plan_sql(&probe).await?;
                let names: Vec<String> = plan
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
                *body = numbered(*op, left, right, &names)?;
                Ok(())
            }
            _ => Ok(()),
        }
    })
}

/// The rewritten operation (module docs).
fn numbered(op: SetOperator, left: &SetExpr, right: &SetExpr, names: &[String]) -> Result<SetExpr> {
    let columns: Vec<String> = (1..=names.len()).map(|i| format!("c{i}")).collect();
    let list = columns.join(", ");
    let outputs: Vec<String> = columns
        .iter()
        .zip(names)
        .map(|(c, name)| format!("{c} AS \"{}\"", name.replace('"', "\"\"")))
        .collect();
    let side = |operand: &SetExpr, alias: &str| {
        format!(
            "SELECT *, row_number() OVER (PARTITION BY {list}) AS \"shoal.copy\" \
             FROM ({operand}) AS \"{alias}\"({list})"
        )
    };
    let op = match op {
        SetOperator::Intersect => "INTERSECT",
        _ => "EXCEPT",
    };
    let sql = format!(
        "SELECT {} FROM ({} {op} {}) AS \"shoal.m\"",
        outputs.join(", "),
        side(left, "shoal.l"),
        side(right, "shoal.r")
    );
    match Session::parse(&sql)?.pop() {
        Some(Statement::Query(query)) => Ok(SetExpr::Query(query)),
        _ => Err(SqlError::Internal(format!(
            "rewritten set operation: {sql}"
        ))),
    }
}
