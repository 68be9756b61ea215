//! Bind parameters: wire bytes to typed values.
//!
//! The type of each `$n` is the one the client declared in Parse, else the
//! one Shoal inferred while preparing (else text). The bytes are decoded in
//! the format the client chose (text or binary) for that declared type, then
//! converted to the type the plan expects.

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use pgwire::api::Type;
use pgwire::api::results::FieldFormat;
use postgres_types::FromSql;
use shoal_sql::SqlError;

fn invalid(ty: &Type, text: &str) -> SqlError {
    SqlError::InvalidText(format!(
        "invalid input syntax for type {}: \"{text}\"",
        ty.name()
    ))
}

fn binary_err(ty: &Type) -> SqlError {
    SqlError::InvalidParameter(format!(
        "incorrect binary data format in bind parameter of type {}",
        ty.name()
    ))
}

/// The PostgreSQL type a parameter of an inferred Arrow type is sent as.
pub fn wire_type(dt: Option<&DataType>) -> Type {
    match dt {
        Some(dt) => crate::encode::pg_type_of(dt),
        None => Type::TEXT,
    }
}

/// Decodes one parameter.
pub fn decode(
    raw: Option<&Bytes>,
    format: FieldFormat,
    declared: &Type,
    expected: Option<&DataType>,
    zone: &shoal_sql::time_zone::TimeZone,
) -> Result<ScalarValue, SqlError> {
    let value = match raw {
        None => ScalarValue::Null,
        Some(bytes) if format == FieldFormat::Binary => decode_binary(bytes, declared)?,
        Some(bytes) => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| SqlError::InvalidText("invalid UTF-8 in parameter".into()))?;
            decode_text(text, declared, zone)?
        }
    };
    let target = match expected {
        Some(t) => t.clone(),
        None => {
            return Ok(if value.is_null() {
                ScalarValue::Utf8(None)
            } else {
                value
            });
        }
    };
    if value.data_type() == target {
        return Ok(value);
    }
    if let (DataType::List(element), ScalarValue::Utf8(Some(text))) = (&target, &value) {
        return array_value(text, element);
    }
    value.cast_to(&target).map_err(|_| {
        SqlError::DatatypeMismatch(format!(
            "parameter of type {} cannot be used as {target}",
            declared.name()
        ))
    })
}

/// Array text as a list of `element`'s type.
fn array_value(
    text: &str,
    element: &datafusion::arrow::datatypes::FieldRef,
) -> Result<ScalarValue, SqlError> {
    use datafusion::arrow::array::{Array, StringArray};
    let items = StringArray::from(shoal_sql::array_text::parse(text)?);
    let options = datafusion::arrow::compute::CastOptions {
        safe: false,
        ..Default::default()
    };
    let values =
        datafusion::arrow::compute::cast_with_options(&items, element.data_type(), &options)
            .map_err(|_| {
                SqlError::InvalidText(format!(
                    "invalid input syntax for type {}[]: \"{text}\"",
                    crate::encode::pg_type_of(element.data_type()).name()
                ))
            })?;
    Ok(ScalarValue::List(std::sync::Arc::new(
        datafusion::arrow::array::ListArray::new(
            element.clone(),
            datafusion::arrow::buffer::OffsetBuffer::from_lengths([values.len()]),
            values,
            None,
        ),
    )))
}

fn decode_text(
    text: &str,
    ty: &Type,
    zone: &shoal_sql::time_zone::TimeZone,
) -> Result<ScalarValue, SqlError> {
    let t = text.trim();
    Ok(match *ty {
        Type::INT2 => ScalarValue::Int16(Some(t.parse().map_err(|_| invalid(ty, text))?)),
        Type::INT4 => ScalarValue::Int32(Some(t.parse().map_err(|_| invalid(ty, text))?)),
        Type::INT8 | Type::OID => {
            ScalarValue::Int64(Some(t.parse().map_err(|_| invalid(ty, text))?))
        }
        Type::FLOAT4 => {
            ScalarValue::Float32(Some(parse_float(t).ok_or_else(|| invalid(ty, text))? as f32))
        }
        Type::FLOAT8 => {
            ScalarValue::Float64(Some(parse_float(t).ok_or_else(|| invalid(ty, text))?))
        }
        Type::BOOL => ScalarValue::Boolean(Some(parse_bool(t).ok_or_else(|| invalid(ty, text))?)),
        Type::NUMERIC => {
            let d: rust_decimal::Decimal = t.parse().map_err(|_| invalid(ty, text))?;
            ScalarValue::Decimal128(Some(d.mantissa()), 38, d.scale() as i8)
        }
        Type::BYTEA => ScalarValue::Binary(Some(shoal_sql::dml::parse_bytea(text)?)),
        Type::DATE => ScalarValue::Date32(Some(shoal_sql::datetime::date_days(t)?)),
        Type::TIMESTAMP => {
            ScalarValue::TimestampMicrosecond(Some(shoal_sql::datetime::timestamp_micros(t)?), None)
        }
        Type::TIMESTAMPTZ => ScalarValue::TimestampMicrosecond(
            Some(shoal_sql::datetime::timestamptz_micros_in(t, zone)?),
            Some("+00:00".into()),
        ),
        Type::UUID => {
            let u = uuid::Uuid::try_parse(t).map_err(|_| invalid(ty, text))?;
            ScalarValue::Utf8(Some(u.hyphenated().to_string()))
        }
        _ => ScalarValue::Utf8(Some(text.to_string())),
    })
}

fn days(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()).num_days() as i32
}

fn parse_bool(t: &str) -> Option<bool> {
    match t.to_ascii_lowercase().as_str() {
        "t" | "true" | "y" | "yes" | "on" | "1" => Some(true),
        "f" | "false" | "n" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

fn parse_float(t: &str) -> Option<f64> {
    match t.to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "infinity" | "inf" | "+infinity" => Some(f64::INFINITY),
        "-infinity" | "-inf" => Some(f64::NEG_INFINITY),
        _ => t.parse().ok(),
    }
}

fn decode_binary(bytes: &[u8], ty: &Type) -> Result<ScalarValue, SqlError> {
    fn get<'a, T: FromSql<'a>>(ty: &Type, b: &'a [u8]) -> Result<T, SqlError> {
        T::from_sql(ty, b).map_err(|_| binary_err(ty))
    }
    Ok(match *ty {
        Type::INT2 => ScalarValue::Int16(Some(get(ty, bytes)?)),
        Type::INT4 => ScalarValue::Int32(Some(get(ty, bytes)?)),
        Type::INT8 => ScalarValue::Int64(Some(get(ty, bytes)?)),
        Type::OID => ScalarValue::Int64(Some(get::<u32>(ty, bytes)? as i64)),
        Type::FLOAT4 => ScalarValue::Float32(Some(get(ty, bytes)?)),
        Type::FLOAT8 => ScalarValue::Float64(Some(get(ty, bytes)?)),
        Type::BOOL => ScalarValue::Boolean(Some(get(ty, bytes)?)),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::JSON => {
            ScalarValue::Utf8(Some(get::<String>(&Type::TEXT, bytes)?))
        }
        Type::JSONB => match bytes.split_first() {
            Some((1, text)) => ScalarValue::Utf8(Some(get::<String>(&Type::TEXT, text)?)),
            _ => return Err(binary_err(ty)),
        },
        Type::BYTEA => ScalarValue::Binary(Some(bytes.to_vec())),
        Type::NUMERIC => {
            let d: rust_decimal::Decimal = get(ty, bytes)?;
            ScalarValue::Decimal128(Some(d.mantissa()), 38, d.scale() as i8)
        }
        Type::DATE => ScalarValue::Date32(Some(days(get::<NaiveDate>(ty, bytes)?))),
        Type::TIMESTAMP => {
            let dt: NaiveDateTime = get(ty, bytes)?;
            ScalarValue::TimestampMicrosecond(Some(dt.and_utc().timestamp_micros()), None)
        }
        Type::TIMESTAMPTZ => {
            let dt: DateTime<chrono::Utc> = get(ty, bytes)?;
            ScalarValue::TimestampMicrosecond(Some(dt.timestamp_micros()), Some("+00:00".into()))
        }
        Type::UUID => {
            let u: uuid::Uuid = get(ty, bytes)?;
            ScalarValue::Utf8(Some(u.hyphenated().to_string()))
        }
        // interval send: microseconds, days, months.
        Type::INTERVAL => {
            let (Some(micros), Some(days), Some(months)) = (
                bytes
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map(i64::from_be_bytes),
                bytes
                    .get(8..12)
                    .and_then(|b| b.try_into().ok())
                    .map(i32::from_be_bytes),
                bytes
                    .get(12..16)
                    .and_then(|b| b.try_into().ok())
                    .map(i32::from_be_bytes),
            ) else {
                return Err(binary_err(ty));
            };
            ScalarValue::IntervalMonthDayNano(Some(
                datafusion::arrow::datatypes::IntervalMonthDayNano::new(
                    months,
                    days,
                    micros.saturating_mul(1000),
                ),
            ))
        }
        _ if matches!(ty.kind(), postgres_types::Kind::Array(_)) => {
            ScalarValue::Utf8(Some(binary_array_text(bytes, ty)?))
        }
        _ => {
            return Err(SqlError::NotSupported(format!(
                "binary parameters of type {}",
                ty.name()
            )));
        }
    })
}

/// A one-dimensional array in binary form, as array text (`{1,2,NULL}`),
/// which array columns read (`dml.rs`): the header (dimensions, has-null
/// flag, element type, length and lower bound), then each element as a
/// length (-1 for NULL) and its binary form.
fn binary_array_text(bytes: &[u8], ty: &Type) -> Result<String, SqlError> {
    let postgres_types::Kind::Array(element) = ty.kind() else {
        return Err(binary_err(ty));
    };
    let mut rest = bytes;
    let int = |rest: &mut &[u8]| -> Result<i32, SqlError> {
        let (head, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| binary_err(ty))?;
        *rest = tail;
        Ok(i32::from_be_bytes(*head))
    };
    let dims = int(&mut rest)?;
    let _has_null = int(&mut rest)?;
    let _element_oid = int(&mut rest)?;
    let count = match dims {
        0 => 0,
        1 => {
            let len = int(&mut rest)?;
            let _lower = int(&mut rest)?;
            usize::try_from(len).map_err(|_| binary_err(ty))?
        }
        _ => {
            return Err(SqlError::NotSupported(
                "multidimensional array parameters".into(),
            ));
        }
    };
    let mut items = Vec::with_capacity(count.min(rest.len()));
    for _ in 0..count {
        let len = int(&mut rest)?;
        if len < 0 {
            items.push("NULL".to_string());
            continue;
        }
        let len = len as usize;
        if rest.len() < len {
            return Err(binary_err(ty));
        }
        let (item, tail) = rest.split_at(len);
        rest = tail;
        let value = decode_binary(item, element)?;
        let text = match value.cast_to(&DataType::Utf8) {
            Ok(ScalarValue::Utf8(Some(t))) => t,
            _ => return Err(binary_err(ty)),
        };
        items.push(shoal_sql::array_text::quote_element(&text));
    }
    Ok(format!("{{{}}}", items.join(",")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UTC: shoal_sql::time_zone::TimeZone = shoal_sql::time_zone::TimeZone::UTC;

    #[test]
    fn text_params_follow_the_declared_type() -> Result<(), SqlError> {
        let b = Bytes::from_static(b"42");
        assert_eq!(
            decode(
                Some(&b),
                FieldFormat::Text,
                &Type::INT4,
                Some(&DataType::Int64),
                &UTC
            )?,
            ScalarValue::Int64(Some(42))
        );
        let b = Bytes::from_static(b"x42");
        assert!(decode(Some(&b), FieldFormat::Text, &Type::INT4, None, &UTC).is_err());
        assert_eq!(
            decode(
                None,
                FieldFormat::Text,
                &Type::INT4,
                Some(&DataType::Int32),
                &UTC
            )?,
            ScalarValue::Int32(None)
        );
        Ok(())
    }

    #[test]
    fn binary_params() -> Result<(), SqlError> {
        let b = Bytes::from(7i64.to_be_bytes().to_vec());
        assert_eq!(
            decode(
                Some(&b),
                FieldFormat::Binary,
                &Type::INT8,
                Some(&DataType::Int64),
                &UTC
            )?,
            ScalarValue::Int64(Some(7))
        );
        let short = Bytes::from_static(b"\x01");
        assert!(decode(Some(&short), FieldFormat::Binary, &Type::INT8, None, &UTC).is_err());
        Ok(())
    }

    #[test]
    fn times_without_an_offset_are_in_the_session_zone() -> Result<(), SqlError> {
        let tokyo = shoal_sql::time_zone::TimeZone::parse("Asia/Tokyo").expect("zone");
        let b = Bytes::from_static(b"2024-01-01 09:00:00");
        assert_eq!(
            decode(
                Some(&b),
                FieldFormat::Text,
                &Type::TIMESTAMPTZ,
                None,
                &tokyo
            )?,
            decode(
                Some(&Bytes::from_static(b"2024-01-01 00:00:00+00")),
                FieldFormat::Text,
                &Type::TIMESTAMPTZ,
                None,
                &UTC
            )?
        );
        Ok(())
    }
}
