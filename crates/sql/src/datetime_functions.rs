//! `shoal_timestamptz_in(text)` and `shoal_timestamp_in(text)`: text read
//! as a `timestamptz` / `timestamp` the way PostgreSQL reads it
//! (`datetime.rs`: seconds optional, `T` or space, an offset after the
//! time), a `timestamptz` without an offset being wall-clock time in the
//! session's zone — which DataFusion passes to every function as its
//! `time_zone` option, kept the session's by `Session::follow_time_zone`.
//! Casts to these types (`compat.rs`) and INSERT's text for `timestamptz`
//! columns (`dml.rs`) become calls of them.

use std::sync::Arc;

use datafusion::arrow::array::{Array, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};

use crate::time_zone::TimeZone;
use crate::types::UTC;

pub const NAME: &str = "shoal_timestamptz_in";
pub const TIMESTAMP_NAME: &str = "shoal_timestamp_in";

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TimestampIn {
    /// `timestamptz` (read in the session's zone) or `timestamp`.
    with_zone: bool,
    signature: Signature,
}

impl TimestampIn {
    pub fn new(with_zone: bool) -> Self {
        TimestampIn {
            with_zone,
            signature: Signature::new(TypeSignature::Any(1), Volatility::Stable),
        }
    }
}

impl ScalarUDFImpl for TimestampIn {
    fn name(&self) -> &str {
        if self.with_zone { NAME } else { TIMESTAMP_NAME }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Timestamp(
            TimeUnit::Microsecond,
            self.with_zone.then(|| UTC.into()),
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let zone = args
            .config_options
            .execution
            .time_zone
            .as_deref()
            .and_then(TimeZone::parse)
            .unwrap_or_default();
        let text = ColumnarValue::values_to_arrays(&args.args)?
            .pop()
            .ok_or_else(|| DataFusionError::Internal(format!("{NAME}: no argument")))?;
        let text = datafusion::arrow::compute::cast(&text, &DataType::Utf8)?;
        let text = text
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| DataFusionError::Internal(format!("{NAME}: not text")))?;
        let read = |t: &str| match self.with_zone {
            true => crate::datetime::timestamptz_micros_in(t, &zone),
            false => crate::datetime::timestamp_micros(t),
        };
        let out = text
            .iter()
            .map(|v| v.map(read).transpose())
            .collect::<crate::error::Result<TimestampMicrosecondArray>>()
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let out = match self.with_zone {
            true => out.with_timezone(UTC),
            false => out,
        };
        let out: Arc<dyn Array> = Arc::new(out);
        Ok(ColumnarValue::Array(out))
    }
}
