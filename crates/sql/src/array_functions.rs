//! Array functions DataFusion lacks.
//!
//! - `shoal_array_in(text, 'element type')`: the input function of array
//!   casts (`'{1,2}'::int[]`, `CAST($1 AS text[])`), which DataFusion's
//!   casts cannot do from text. `compat.rs` rewrites such casts into calls
//!   of it; the element type travels as a literal so the result's type is
//!   known when the query is planned.
//! - `shoal_expand_array(a)`: the elements of an integer array with their
//!   positions, as a list of `{x, n}` structs — unnested, PostgreSQL's
//!   `information_schema._pg_expandarray`, which JDBC's key metadata
//!   queries call.

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

pub const EXPAND_NAME: &str = "shoal_expand_array";

/// `shoal_expand_array(a)` (module docs).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ExpandArray {
    signature: Signature,
}

impl Default for ExpandArray {
    fn default() -> Self {
        ExpandArray {
            signature: Signature::new(TypeSignature::Any(1), Volatility::Immutable),
        }
    }
}

fn expanded_fields() -> datafusion::arrow::datatypes::Fields {
    datafusion::arrow::datatypes::Fields::from(vec![
        Field::new("x", DataType::Int64, true),
        Field::new("n", DataType::Int64, false),
    ])
}

impl ScalarUDFImpl for ExpandArray {
    fn name(&self) -> &str {
        EXPAND_NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::List(Arc::new(Field::new(
            "item",
            DataType::Struct(expanded_fields()),
            true,
        ))))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        use datafusion::arrow::array::{Array, AsArray, Int64Array, ListArray, StructArray};
        use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
        let input = ColumnarValue::values_to_arrays(&args.args)?
            .pop()
            .ok_or_else(|| DataFusionError::Internal(format!("{EXPAND_NAME}: no argument")))?;
        let list = match input.data_type() {
            DataType::List(_) => input.as_list::<i32>().clone(),
            DataType::Null => ListArray::new_null(
                Arc::new(Field::new("item", DataType::Int64, true)),
                input.len(),
            ),
            other => {
                return Err(DataFusionError::Plan(format!(
                    "{EXPAND_NAME} takes an array, not {other}"
                )));
            }
        };
        let values = datafusion::arrow::compute::cast(list.values(), &DataType::Int64)?;
        let mut lengths = Vec::with_capacity(list.len());
        let mut positions = Vec::with_capacity(values.len());
        let offsets = list.value_offsets();
        for row in 0..list.len() {
            let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
            lengths.push(end - start);
            positions.extend((1..=(end - start) as i64).map(Some));
        }
        let values = values.slice(offsets[0] as usize, positions.len());
        let structs = StructArray::try_new(
            expanded_fields(),
            vec![values, Arc::new(Int64Array::from(positions))],
            None,
        )?;
        let out = ListArray::try_new(
            Arc::new(Field::new(
                "item",
                DataType::Struct(expanded_fields()),
                true,
            )),
            OffsetBuffer::from_lengths(lengths),
            Arc::new(structs),
            list.nulls()
                .cloned()
                .or_else(|| Some(NullBuffer::new_valid(list.len()))),
        )?;
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}
