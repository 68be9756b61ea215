//! `round(double precision)` as PostgreSQL computes it: to the nearest
//! integer, halfway cases to the even one (C's `rint`: `round(2.5)` is 2,
//! `round(-0.5)` is -0), where DataFusion's `round` sends every halfway
//! case away from zero. Every other form — `round(numeric)`, whose
//! halfway cases PostgreSQL does send away from zero, integers, and the
//! two-argument form — is DataFusion's own, to which this function
//! delegates its types, work and ordering.
//!
//! One thing is done differently on the way: an integer number of decimal
//! places is taken as it is, not cast to `int4` first. DataFusion's own
//! signature casts it, and the result type of `round(numeric, 3)` depends
//! on whether the places are a literal, which `CAST(3 AS int4)` is not
//! until constant folding: the comparison in `n <> round(n, 3)` was typed
//! for one result type and ran with another (an internal error). The
//! places are cast when the function runs instead.
//!
//! It is registered under DataFusion's name, in its place, in every
//! session (`functions.rs`).

use std::sync::Arc;

use datafusion::arrow::array::Array;
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

/// `round`, ties to even for floating-point arguments (module docs).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FloatRound {
    inner: Arc<ScalarUDF>,
    signature: Signature,
}

impl Default for FloatRound {
    fn default() -> Self {
        FloatRound {
            inner: datafusion::functions::math::round(),
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for FloatRound {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let value = match arg_types.first() {
            Some(DataType::Null) => DataType::Float64,
            Some(t) if t.is_numeric() => t.clone(),
            Some(t) => {
                return Err(DataFusionError::Plan(format!(
                    "function round({t}) does not exist"
                )));
            }
            None => {
                return Err(DataFusionError::Plan(
                    "function round() takes one or two arguments".into(),
                ));
            }
        };
        match &arg_types[1..] {
            [] => Ok(vec![value]),
            [DataType::Null] => Ok(vec![value, DataType::Int32]),
            [places] if places.is_integer() => Ok(vec![value, places.clone()]),
            [places] => Err(DataFusionError::Plan(format!(
                "function round({}, {places}) does not exist",
                arg_types[0]
            ))),
            _ => Err(DataFusionError::Plan(
                "function round() takes one or two arguments".into(),
            )),
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        // The places as DataFusion's round takes them (module docs).
        if let (Some(places), Some(field)) = (args.args.get_mut(1), args.arg_fields.get_mut(1))
            && field.data_type() != &DataType::Int32
        {
            *places = places.cast_to(&DataType::Int32, None)?;
            *field = Arc::new(field.as_ref().clone().with_data_type(DataType::Int32));
        }
        let float = match args.arg_fields.as_slice() {
            [field] => matches!(field.data_type(), DataType::Float64 | DataType::Float32),
            _ => false,
        };
        if !float {
            return self.inner.invoke_with_args(args);
        }
        let [value] = args.args.as_slice() else {
            return self.inner.invoke_with_args(args);
        };
        let scalar = matches!(value, ColumnarValue::Scalar(_));
        let array = value.to_array(1)?;
        let rounded: Arc<dyn Array> = match array.data_type() {
            DataType::Float64 => {
                let floats = datafusion::common::cast::as_float64_array(&array)?;
                Arc::new(
                    floats.unary::<_, datafusion::arrow::datatypes::Float64Type>(
                        f64::round_ties_even,
                    ),
                ) as Arc<dyn Array>
            }
            _ => {
                let floats = datafusion::common::cast::as_float32_array(&array)?;
                Arc::new(
                    floats.unary::<_, datafusion::arrow::datatypes::Float32Type>(
                        f32::round_ties_even,
                    ),
                )
            }
        };
        Ok(match scalar {
            true => ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(
                &rounded, 0,
            )?),
            false => ColumnarValue::Array(rounded),
        })
    }

    fn output_ordering(&self, input: &[ExprProperties]) -> DfResult<SortProperties> {
        self.inner.output_ordering(input)
    }
}

/// Rounds with this crate's `round` in place of DataFusion's.
pub fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(FloatRound::default())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use datafusion::prelude::SessionContext;

    use super::*;

    #[tokio::test]
    async fn floats_round_halfway_cases_to_even_and_numerics_away_from_zero() {
        let ctx = SessionContext::new();
        ctx.register_udf(udf());
        let batches = ctx
            .sql(
                "SELECT round(CAST(2.5 AS DOUBLE)) AS a, round(CAST(-0.5 AS DOUBLE)) AS b, \
                 round(CAST(3.5 AS DOUBLE)) AS c, round(CAST(0.5 AS REAL)) AS d, \
                 round(CAST(2.5 AS DECIMAL(4, 2))) AS e, round(CAST(2.345 AS DOUBLE), 2) AS f, \
                 round(CAST(x AS DOUBLE)) AS g FROM (VALUES (1.5), (4.5)) AS t(x)",
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("| "))
            .skip(1)
            .collect();
        assert_eq!(
            rows,
            [
                "| 2.0 | -0.0 | 4.0 | 0.0 | 3 | 2.35 | 2.0 |",
                "| 2.0 | -0.0 | 4.0 | 0.0 | 3 | 2.35 | 4.0 |",
            ],
            "{text}"
        );
    }
}
