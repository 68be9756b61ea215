//! `set_config(name, value, is_local)`: `SET` as a function.
//!
//! It changes the session, which no function inside a DataFusion query
//! can, so — like `pg_sleep` (`sleep.rs`) and the advisory lock functions
//! (`advisory.rs`) — it is recognized as a lone `SELECT set_config(…) [AS
//! name]`, its arguments are evaluated with DataFusion, and the session
//! applies the setting exactly as `SET` (or, with `is_local`, `SET LOCAL`)
//! would, returning the new value as text. Elsewhere in a query the
//! function is unknown (42883).

use std::sync::Arc;

use datafusion::arrow::array::{Array, BooleanArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::sql::sqlparser::ast::{Expr, Statement};

use crate::advisory::{lone_call, type_placeholders};
use crate::error::{Result, SqlError};

/// A recognized `SELECT set_config(name, value, is_local)`.
#[derive(Debug, Clone)]
pub struct SetConfigCall {
    args: Vec<Expr>,
    column: String,
}

/// What a call asks for, evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub name: String,
    /// `None`: back to the default.
    pub value: Option<String>,
    pub local: bool,
}

/// The call `stmt` is, if it is exactly `SELECT set_config(a, b, c) [AS name]`.
pub fn recognize(stmt: &Statement) -> Option<SetConfigCall> {
    let (name, args, column) = lone_call(stmt)?;
    (name == "set_config" && args.len() == 3).then_some(SetConfigCall { args, column })
}

impl SetConfigCall {
    /// The query evaluating the arguments.
    pub fn args_query(&self) -> String {
        format!(
            "SELECT CAST(({}) AS text), CAST(({}) AS text), CAST(({}) AS boolean)",
            self.args[0], self.args[1], self.args[2]
        )
    }

    /// The parameter types to describe: `inferred`, with bare `$n`
    /// arguments typed text, text and boolean.
    pub fn param_types(&self, inferred: Vec<Option<DataType>>) -> Vec<Option<DataType>> {
        let texts = type_placeholders(&self.args[..2], &DataType::Utf8, inferred);
        type_placeholders(&self.args[2..], &DataType::Boolean, texts)
    }

    /// The result's one column.
    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new(
            &self.column,
            DataType::Utf8,
            true,
        )]))
    }

    /// The evaluated arguments (`batches`, from [`SetConfigCall::args_query`]).
    pub fn setting(&self, batches: &[RecordBatch]) -> Result<Setting> {
        let missing = || SqlError::Internal("set_config: arguments not evaluated".into());
        let batch = batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .ok_or_else(missing)?;
        let text = |i: usize| -> Result<Option<String>> {
            // Text may come as any of Arrow's string layouts.
            let column = datafusion::arrow::compute::cast(batch.column(i), &DataType::Utf8)
                .map_err(|e| SqlError::Internal(e.to_string()))?;
            let column = column
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(missing)?;
            Ok((!column.is_null(0)).then(|| column.value(0).to_string()))
        };
        let local = batch
            .column(2)
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(missing)?;
        let Some(name) = text(0)? else {
            return Err(SqlError::InvalidParameter(
                "SET requires parameter name".into(),
            ));
        };
        Ok(Setting {
            name,
            value: text(1)?,
            local: !local.is_null(0) && local.value(0),
        })
    }
}
