//! `pg_sleep(seconds)`: a statement that waits.
//!
//! Like the advisory lock functions (`advisory.rs`), it is recognized as a
//! lone `SELECT pg_sleep(x) [AS name]` and run by the session rather than
//! by DataFusion, so the wait is asynchronous: it holds no worker thread,
//! is cancelled by a cancel request and ended by `statement_timeout`
//! (57014). Elsewhere in a query the function is unknown (42883).

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{Array, Float64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::sql::sqlparser::ast::{Expr, Statement};

use crate::advisory::{lone_call, type_placeholders};
use crate::error::{Result, SqlError};
use crate::session::Output;

/// The longest sleep taken at once: beyond it, a statement_timeout or a
/// cancel request is the way out.
const MAX_SLEEP: Duration = Duration::from_secs(365 * 24 * 3600);

/// A recognized `SELECT pg_sleep(x)`.
#[derive(Debug, Clone)]
pub struct SleepCall {
    arg: Expr,
    column: String,
}

/// The sleep `stmt` is, if it is exactly `SELECT pg_sleep(x) [AS name]`.
pub fn recognize(stmt: &Statement) -> Option<SleepCall> {
    let (name, mut args, column) = lone_call(stmt)?;
    if name != "pg_sleep" || args.len() != 1 {
        return None;
    }
    Some(SleepCall {
        arg: args.pop()?,
        column,
    })
}

impl SleepCall {
    /// The query evaluating the argument in seconds.
    pub fn args_query(&self) -> String {
        format!("SELECT CAST(({}) AS double precision)", self.arg)
    }

    /// The parameter types to describe: `inferred`, with a bare `$n`
    /// argument typed `double precision`.
    pub fn param_types(&self, inferred: Vec<Option<DataType>>) -> Vec<Option<DataType>> {
        type_placeholders(
            std::slice::from_ref(&self.arg),
            &DataType::Float64,
            inferred,
        )
    }

    /// The result's one column (`void`, sent as an empty text).
    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new(
            &self.column,
            DataType::Utf8,
            true,
        )]))
    }

    /// Sleeps for the evaluated argument (`batches`): NULL or a negative
    /// number returns at once.
    pub async fn run(&self, batches: &[RecordBatch]) -> Result<Output> {
        let seconds = batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .and_then(|b| b.column(0).as_any().downcast_ref::<Float64Array>().cloned())
            .ok_or_else(|| SqlError::Internal("pg_sleep: argument not evaluated".into()))?;
        let null = seconds.is_null(0);
        if !null {
            let wait = Duration::try_from_secs_f64(seconds.value(0).max(0.0)).unwrap_or(MAX_SLEEP);
            tokio::time::sleep(wait.min(MAX_SLEEP)).await;
        }
        let value = if null { None } else { Some("") };
        crate::session::single_value(self.schema(), Arc::new(StringArray::from(vec![value])))
    }
}
