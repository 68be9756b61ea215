//! `x AT TIME ZONE zone`, as PostgreSQL means it: `shoal_at_time_zone(x,
//! zone)`, which the compat rewrite puts in its place.
//!
//! - A `timestamptz` gives the wall-clock `timestamp` it shows in `zone`
//!   (`'2024-07-15 12:00+00'::timestamptz AT TIME ZONE 'America/New_York'`
//!   is `2024-07-15 08:00:00`).
//! - A `timestamp` is read as wall-clock time in `zone`, giving the
//!   `timestamptz` of that instant (a time in a daylight-saving gap moves
//!   forward, as `time_zone.rs` reads local times).
//!
//! DataFusion's own `AT TIME ZONE` only relabels the value's zone, so it
//! returns a `timestamptz` either way. Zones are IANA names or offsets, as
//! `SET TIME ZONE` takes them; an unknown one is 22023.

use datafusion::arrow::array::{Array, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};

use crate::error::SqlError;
use crate::time_zone::TimeZone;
use crate::types::UTC;

pub const NAME: &str = "shoal_at_time_zone";

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AtTimeZone {
    signature: Signature,
}

impl Default for AtTimeZone {
    fn default() -> Self {
        AtTimeZone {
            signature: Signature::new(TypeSignature::Any(2), Volatility::Immutable),
        }
    }
}

/// Whether the first argument is a `timestamptz` (else it is read as a
/// `timestamp`).
fn with_zone(t: &DataType) -> bool {
    matches!(t, DataType::Timestamp(_, Some(_)))
}

fn external(e: SqlError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

impl ScalarUDFImpl for AtTimeZone {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        let from_zone = arg_types.first().is_some_and(with_zone);
        Ok(DataType::Timestamp(
            TimeUnit::Microsecond,
            (!from_zone).then(|| UTC.into()),
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let from_zone = args
            .arg_fields
            .first()
            .is_some_and(|f| with_zone(f.data_type()));
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [times, zones] = arrays.as_slice() else {
            return Err(DataFusionError::Internal(format!(
                "{NAME} takes two arguments"
            )));
        };
        let micros_type = DataType::Timestamp(TimeUnit::Microsecond, None);
        let times = datafusion::arrow::compute::cast(times, &micros_type)?;
        let times = datafusion::common::cast::as_timestamp_microsecond_array(&times)?;
        let zones = datafusion::arrow::compute::cast(zones, &DataType::Utf8)?;
        let zones = datafusion::common::cast::as_string_array(&zones)?;
        let mut out = Vec::with_capacity(times.len());
        for r in 0..times.len() {
            if times.is_null(r) || zones.is_null(r) {
                out.push(None);
                continue;
            }
            let name = zones.value(r);
            let zone = TimeZone::parse(name).ok_or_else(|| {
                external(SqlError::InvalidParameter(format!(
                    "time zone \"{name}\" not recognized"
                )))
            })?;
            let t = times.value(r);
            out.push(Some(if from_zone {
                // The instant's wall-clock time in the zone.
                t.checked_add(i64::from(zone.offset_at(t)) * 1_000_000)
                    .ok_or_else(|| {
                        external(SqlError::NumericOutOfRange("timestamp out of range".into()))
                    })?
            } else {
                let local = chrono::DateTime::from_timestamp_micros(t)
                    .ok_or_else(|| {
                        external(SqlError::NumericOutOfRange("timestamp out of range".into()))
                    })?
                    .naive_utc();
                zone.local_to_utc(local)
            }));
        }
        let array = TimestampMicrosecondArray::from(out);
        let array = match from_zone {
            true => array,
            false => array.with_timezone(UTC),
        };
        Ok(match scalar {
            true => ColumnarValue::Scalar(ScalarValue::try_from_array(&array, 0)?),
            false => ColumnarValue::Array(std::sync::Arc::new(array)),
        })
    }
}
