//! `shoal_single(x)`: the value of a scalar subquery that is not an aggregate.
//!
//! In PostgreSQL a scalar subquery yields NULL for no rows, its value for one
//! row, and fails with 21000 for more. DataFusion can only turn *aggregated*
//! correlated subqueries into joins, so `compat.rs` wraps the select item of
//! a non-aggregate scalar subquery in this aggregate, which has exactly
//! PostgreSQL's semantics: psql's `\d` and ORM introspection queries use
//! such subqueries to look up a column's default or collation.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, TypeSignature, Volatility,
};

use crate::error::SqlError;

pub const NAME: &str = "shoal_single";

#[derive(Debug, PartialEq, Eq, Hash)]
struct Single {
    signature: Signature,
}

pub fn udaf() -> AggregateUDF {
    AggregateUDF::new_from_impl(Single {
        signature: Signature::new(TypeSignature::Any(1), Volatility::Immutable),
    })
}

fn too_many() -> DataFusionError {
    DataFusionError::External(Box::new(SqlError::CardinalityViolation(
        "more than one row returned by a subquery used as an expression".into(),
    )))
}

impl AggregateUDFImpl for Single {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types.first().cloned().unwrap_or(DataType::Null))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(SingleAccumulator {
            value: ScalarValue::try_from(args.return_field.data_type())?,
            rows: 0,
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(
                args.return_field
                    .as_ref()
                    .clone()
                    .with_name(format!("{}[value]", args.name))
                    .with_nullable(true),
            ),
            Arc::new(Field::new(
                format!("{}[rows]", args.name),
                DataType::UInt64,
                false,
            )),
        ])
    }
}

#[derive(Debug)]
struct SingleAccumulator {
    value: ScalarValue,
    rows: u64,
}

impl SingleAccumulator {
    fn add(&mut self, value: ScalarValue, rows: u64) -> Result<()> {
        if rows == 0 {
            return Ok(());
        }
        self.rows += rows;
        if self.rows > 1 {
            return Err(too_many());
        }
        self.value = value;
        Ok(())
    }
}

impl Accumulator for SingleAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let Some(array) = values.first() else {
            return Ok(());
        };
        for i in 0..array.len() {
            self.add(ScalarValue::try_from_array(array, i)?, 1)?;
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(self.value.clone())
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.value.size()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            self.value.clone(),
            ScalarValue::UInt64(Some(self.rows)),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let (Some(values), Some(rows)) = (states.first(), states.get(1)) else {
            return Ok(());
        };
        let Some(rows) = rows.as_any().downcast_ref::<UInt64Array>() else {
            return Err(DataFusionError::Internal("shoal_single state".into()));
        };
        for i in 0..values.len() {
            self.add(ScalarValue::try_from_array(values, i)?, rows.value(i))?;
        }
        Ok(())
    }
}
