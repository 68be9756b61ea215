//! Casts of floats and numerics to integers round, as in PostgreSQL.
//!
//! Arrow's cast truncates: `2.7::float8::int` is 2, `-2.7::numeric::int`
//! is -2. PostgreSQL rounds — a float to the nearest integer, halfway
//! cases to the even one (`rint`), a numeric halfway cases away from zero
//! — which is what `round` does to each (`float_round.rs`). So
//! [`rule`], an optimizer rule run before DataFusion's own (which
//! would fold a constant cast first; `cast_rewrite.rs`), rounds the operand
//! of every cast of a float or a numeric to an integer type: `CAST(x AS
//! int)` becomes `CAST(round(x) AS int)`. A value out of the integer's
//! range still fails the cast (22003). Values DML stores are cast by
//! `dml::cast_column`, which rounds them first with [`round_for_integer`].

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Float32Type, Float64Type};
use datafusion::common::Result;

/// The rule rounding what casts of floats and numerics to integers cast
/// (module docs).
pub fn rule() -> crate::cast_rewrite::CastThrough {
    crate::cast_rewrite::CastThrough {
        name: "shoal_rounding_casts",
        target: DataType::is_integer,
        operand: |t| {
            matches!(
                t,
                DataType::Float16
                    | DataType::Float32
                    | DataType::Float64
                    | DataType::Decimal128(..)
            )
        },
        function: Arc::new(crate::float_round::udf()),
        operand_as: None,
    }
}

/// `array` rounded to whole numbers as PostgreSQL rounds it on the way to
/// an integer type `target` (module docs), if it is a float or numeric
/// array and `target` an integer type; `None` otherwise.
pub(crate) fn round_for_integer(array: &ArrayRef, target: &DataType) -> Result<Option<ArrayRef>> {
    if !target.is_integer() {
        return Ok(None);
    }
    let rounded: ArrayRef = match array.data_type() {
        DataType::Float64 => Arc::new(
            datafusion::common::cast::as_float64_array(array)?
                .unary::<_, Float64Type>(f64::round_ties_even),
        ),
        DataType::Float32 => Arc::new(
            datafusion::common::cast::as_float32_array(array)?
                .unary::<_, Float32Type>(f32::round_ties_even),
        ),
        &DataType::Decimal128(precision, scale) if scale > 0 => {
            let unit = 10i128.pow(u32::from(scale.unsigned_abs()));
            let decimals = datafusion::common::cast::as_decimal128_array(array)?;
            let whole = decimals.unary::<_, Decimal128Type>(|v| {
                let (q, r) = (v / unit, v % unit);
                // Halfway and beyond goes away from zero.
                if r.unsigned_abs() * 2 >= unit.unsigned_abs() {
                    q + v.signum()
                } else {
                    q
                }
            });
            Arc::new(whole.with_precision_and_scale(precision, 0)?)
        }
        _ => return Ok(None),
    };
    Ok(Some(rounded))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use datafusion::arrow::array::{Decimal128Array, Float64Array, Int32Array};
    use datafusion::arrow::compute::cast;

    use super::*;

    fn to_int(array: ArrayRef) -> Vec<Option<i32>> {
        let rounded = round_for_integer(&array, &DataType::Int32)
            .unwrap()
            .unwrap();
        let ints = cast(&rounded, &DataType::Int32).unwrap();
        let ints = ints.as_any().downcast_ref::<Int32Array>().unwrap();
        ints.iter().collect()
    }

    #[test]
    fn floats_round_halfway_to_even_and_numerics_away_from_zero() {
        let floats = Float64Array::from(vec![Some(2.7), Some(-2.7), Some(2.5), Some(3.5), None]);
        assert_eq!(
            to_int(Arc::new(floats)),
            [Some(3), Some(-3), Some(2), Some(4), None]
        );
        let decimals =
            Decimal128Array::from(vec![Some(250), Some(-250), Some(249), Some(-251), None])
                .with_precision_and_scale(5, 2)
                .unwrap();
        assert_eq!(
            to_int(Arc::new(decimals)),
            [Some(3), Some(-3), Some(2), Some(-3), None]
        );
        let ints: ArrayRef = Arc::new(Int32Array::from(vec![1]));
        assert!(
            round_for_integer(&ints, &DataType::Int64)
                .unwrap()
                .is_none()
        );
        let floats: ArrayRef = Arc::new(Float64Array::from(vec![1.5]));
        assert!(
            round_for_integer(&floats, &DataType::Utf8)
                .unwrap()
                .is_none()
        );
    }
}
