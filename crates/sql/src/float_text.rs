//! Floats as text, as PostgreSQL prints them.
//!
//! PostgreSQL prints a `double precision` or `real` with the fewest
//! digits that read back exactly, in exponent form outside 1e-4 ≤ |x| <
//! 1e15 (1e6 for `real`) — `100`, `0.1`, `1e+16`, `1.5e-07` — and `NaN`,
//! `Infinity`, `-Infinity`; Arrow's cast to text prints `100.0` and
//! `1e16`. [`format_float`] is PostgreSQL's form (with the default
//! `extra_float_digits` of 1 or more): the wire encoder sends floats in
//! it, and [`rule`], an optimizer rule run before DataFusion's own
//! (`cast_rewrite.rs`), makes every cast of a float to text (`x::text`,
//! `'v' || x`) call `shoal_float_text(x)`, which prints it the same way.

use std::sync::Arc;

use datafusion::arrow::array::{Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// PostgreSQL's text of a float8 (`single`: of a float4) (module docs).
pub fn format_float(v: f64, single: bool) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let digits_limit = if single { 1e6 } else { 1e15 };
    let abs = v.abs();
    if (1e-4..digits_limit).contains(&abs) {
        if single {
            format!("{}", v as f32)
        } else {
            format!("{v}")
        }
    } else {
        let s = if single {
            format!("{:e}", v as f32)
        } else {
            format!("{v:e}")
        };
        match s.split_once('e') {
            Some((mantissa, exp)) => {
                let (sign, digits) = match exp.strip_prefix('-') {
                    Some(d) => ('-', d),
                    None => ('+', exp),
                };
                format!("{mantissa}e{sign}{digits:0>2}")
            }
            None => s,
        }
    }
}

/// The rule replacing casts of floats to text (module docs).
pub fn rule() -> crate::cast_rewrite::CastThrough {
    crate::cast_rewrite::CastThrough {
        name: "shoal_float_text",
        target: crate::cast_rewrite::is_text,
        operand: |t| matches!(t, DataType::Float32 | DataType::Float64),
        function: Arc::new(ScalarUDF::new_from_impl(FloatToText::default())),
        operand_as: None,
    }
}

/// `shoal_float_text(float)`: PostgreSQL's text of a float.
#[derive(Debug, PartialEq, Eq, Hash)]
struct FloatToText {
    signature: Signature,
}

impl Default for FloatToText {
    fn default() -> Self {
        FloatToText {
            signature: Signature::uniform(
                1,
                vec![DataType::Float64, DataType::Float32],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for FloatToText {
    fn name(&self) -> &str {
        "shoal_float_text"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [arg] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(
                "shoal_float_text takes one argument".into(),
            ));
        };
        let scalar = matches!(arg, ColumnarValue::Scalar(_));
        let array = arg.to_array(1)?;
        let texts: StringArray = match array.data_type() {
            DataType::Float32 => datafusion::common::cast::as_float32_array(&array)?
                .iter()
                .map(|v| v.map(|v| format_float(f64::from(v), true)))
                .collect(),
            _ => datafusion::common::cast::as_float64_array(&array)?
                .iter()
                .map(|v| v.map(|v| format_float(v, false)))
                .collect(),
        };
        Ok(match scalar {
            true => ColumnarValue::Scalar(ScalarValue::try_from_array(&texts, 0)?),
            false => ColumnarValue::Array(Arc::new(texts)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_postgres_does() {
        assert_eq!(format_float(1.5, false), "1.5");
        assert_eq!(format_float(0.1, false), "0.1");
        assert_eq!(format_float(1e20, false), "1e+20");
        assert_eq!(format_float(1.5e-5, false), "1.5e-05");
        assert_eq!(format_float(f64::NAN, false), "NaN");
        assert_eq!(format_float(-f64::INFINITY, false), "-Infinity");
        assert_eq!(format_float(100.0, false), "100");
        assert_eq!(format_float(-0.0, false), "-0");
        assert_eq!(format_float(1234567.0, true), "1.234567e+06");
    }
}
