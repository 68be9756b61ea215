//! `interval` to text as PostgreSQL prints it.
//!
//! Arrow's cast prints `1 days 2 hours 3 mins`; PostgreSQL prints
//! `1 day 02:03:00` (`interval.rs`), and a client that casts an interval
//! to text (`every::text`, `'every ' || every`) expects that. An
//! optimizer rule ([`rule`], run before DataFusion's own, which
//! would fold a constant cast first; `cast_rewrite.rs`) replaces each cast
//! of an interval to a string type with `shoal_interval_text(x)`, keeping
//! the expression's name.

use std::sync::Arc;

use datafusion::arrow::array::{Array, IntervalMonthDayNanoArray, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

const INTERVAL: DataType = crate::interval::ARROW_TYPE;

/// The rule replacing casts of intervals to text (module docs).
pub fn rule() -> crate::cast_rewrite::CastThrough {
    crate::cast_rewrite::CastThrough {
        name: "shoal_interval_text",
        target: crate::cast_rewrite::is_text,
        operand: |t| matches!(t, DataType::Interval(_)),
        function: Arc::new(ScalarUDF::new_from_impl(IntervalToText::default())),
        operand_as: Some(INTERVAL),
    }
}

/// `shoal_interval_text(interval)`: PostgreSQL's text of an interval.
#[derive(Debug, PartialEq, Eq, Hash)]
struct IntervalToText {
    signature: Signature,
}

impl Default for IntervalToText {
    fn default() -> Self {
        IntervalToText {
            signature: Signature::exact(vec![INTERVAL], Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for IntervalToText {
    fn name(&self) -> &str {
        "shoal_interval_text"
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
                "shoal_interval_text takes one argument".into(),
            ));
        };
        let scalar = matches!(arg, ColumnarValue::Scalar(_));
        let array = arg.to_array(1)?;
        let intervals = array
            .as_any()
            .downcast_ref::<IntervalMonthDayNanoArray>()
            .ok_or_else(|| {
                DataFusionError::Internal("shoal_interval_text: not an interval".into())
            })?;
        let texts: StringArray = (0..intervals.len())
            .map(|r| {
                (!intervals.is_null(r)).then(|| {
                    let v = intervals.value(r);
                    crate::interval::format(v.months, v.days, v.nanoseconds / 1000)
                })
            })
            .collect();
        Ok(match scalar {
            true => ColumnarValue::Scalar(ScalarValue::try_from_array(&texts, 0)?),
            false => ColumnarValue::Array(Arc::new(texts)),
        })
    }
}
