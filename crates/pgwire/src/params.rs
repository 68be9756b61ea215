//! Bind parameters: wire bytes to typed values.
//!
//! The type of each `$n` is the one the client declared in Parse, else the
//! one Shoal inferred while preparing (else text). The bytes are decoded in
//! the format the client chose (text or binary) for that declared type, then
//! converted to the type the plan expects.

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};
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
) -> Result<ScalarValue, SqlError> {
    let value = match raw {
        None => ScalarValue::Null,
        Some(bytes) if format == FieldFormat::Binary => decode_binary(bytes, declared)?,
        Some(bytes) => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| SqlError::InvalidText("invalid UTF-8 in parameter".into()))?;
            decode_text(text, declared)?
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
    value.cast_to(&target).map_err(|_| {
        SqlError::DatatypeMismatch(format!(
            "parameter of type {} cannot be used as {target}",
            declared.name()
        ))
    })
}

fn decode_text(text: &str, ty: &Type) -> Result<ScalarValue, SqlError> {
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
        Type::DATE => {
            let d = NaiveDate::parse_from_str(t, "%Y-%m-%d").map_err(|_| invalid(ty, text))?;
            ScalarValue::Date32(Some(days(d)))
        }
        Type::TIMESTAMP => ScalarValue::TimestampMicrosecond(
            Some(parse_timestamp(t).ok_or_else(|| invalid(ty, text))?),
            None,
        ),
        Type::TIMESTAMPTZ => ScalarValue::TimestampMicrosecond(
            Some(parse_timestamptz(t).ok_or_else(|| invalid(ty, text))?),
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

fn parse_timestamp(t: &str) -> Option<i64> {
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(t, f) {
            return Some(dt.and_utc().timestamp_micros());
        }
        if let Ok(d) = NaiveDate::parse_from_str(t, f) {
            return Some(d.and_time(NaiveTime::MIN).and_utc().timestamp_micros());
        }
    }
    None
}

fn parse_timestamptz(t: &str) -> Option<i64> {
    for f in [
        "%Y-%m-%d %H:%M:%S%.f%#z",
        "%Y-%m-%dT%H:%M:%S%.f%#z",
        "%Y-%m-%d %H:%M:%S%.f %#z",
    ] {
        if let Ok(dt) = DateTime::parse_from_str(t, f) {
            return Some(dt.timestamp_micros());
        }
    }
    // Without an offset the session time zone (UTC) applies.
    parse_timestamp(t)
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
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            ScalarValue::Utf8(Some(get::<String>(ty, bytes)?))
        }
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
        _ => {
            return Err(SqlError::NotSupported(format!(
                "binary parameters of type {}",
                ty.name()
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_params_follow_the_declared_type() -> Result<(), SqlError> {
        let b = Bytes::from_static(b"42");
        assert_eq!(
            decode(
                Some(&b),
                FieldFormat::Text,
                &Type::INT4,
                Some(&DataType::Int64)
            )?,
            ScalarValue::Int64(Some(42))
        );
        let b = Bytes::from_static(b"x42");
        assert!(decode(Some(&b), FieldFormat::Text, &Type::INT4, None).is_err());
        assert_eq!(
            decode(None, FieldFormat::Text, &Type::INT4, Some(&DataType::Int32))?,
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
                Some(&DataType::Int64)
            )?,
            ScalarValue::Int64(Some(7))
        );
        let short = Bytes::from_static(b"\x01");
        assert!(decode(Some(&short), FieldFormat::Binary, &Type::INT8, None).is_err());
        Ok(())
    }
}
