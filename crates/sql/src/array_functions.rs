//! `shoal_array_in(text, 'element type')`: the input function of array
//! casts (`'{1,2}'::int[]`, `CAST($1 AS text[])`), which DataFusion's casts
//! cannot do from text. `compat.rs` rewrites such casts into calls of it;
//! the element type travels as a literal so the result's type is known
//! when the query is planned.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::error::SqlError;
use crate::types::SqlType;

pub const NAME: &str = "shoal_array_in";

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ArrayIn {
    signature: Signature,
}

impl Default for ArrayIn {
    fn default() -> Self {
        ArrayIn {
            signature: Signature::new(TypeSignature::Any(2), Volatility::Immutable),
        }
    }
}

fn external(e: SqlError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// The array type whose element type is named by `name`.
fn array_type(name: &str) -> DfResult<SqlType> {
    let element = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(name)
        .and_then(|mut p| p.parse_data_type())
        .map_err(|e| external(SqlError::Syntax(e.to_string())))?;
    Ok(SqlType::Array(Box::new(
        SqlType::from_ast(&element).map_err(external)?,
    )))
}

fn literal_type(arg: Option<&ScalarValue>) -> DfResult<SqlType> {
    match arg {
        Some(ScalarValue::Utf8(Some(name))) => array_type(name),
        _ => Err(DataFusionError::Plan(format!(
            "{NAME} needs the element type as a literal"
        ))),
    }
}

impl ScalarUDFImpl for ArrayIn {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Err(DataFusionError::Internal(format!(
            "{NAME}: the return field comes from the arguments"
        )))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let ty = literal_type(args.scalar_arguments.get(1).copied().flatten())?;
        Ok(Arc::new(Field::new(NAME, ty.arrow_type(), true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let ty = match args.args.get(1) {
            Some(ColumnarValue::Scalar(s)) => literal_type(Some(s))?,
            _ => literal_type(None)?,
        };
        let text = match args.args.first() {
            Some(ColumnarValue::Array(a)) => a.clone(),
            Some(ColumnarValue::Scalar(s)) => s.to_array_of_size(args.number_rows.max(1))?,
            None => return Err(DataFusionError::Internal(format!("{NAME}: no argument"))),
        };
        let text = match text.data_type() {
            DataType::Utf8 => text,
            _ => datafusion::arrow::compute::cast(&text, &DataType::Utf8)?,
        };
        let out = crate::dml::cast_column(&text, &ty).map_err(external)?;
        Ok(ColumnarValue::Array(out))
    }
}
