//! Arrow results to PostgreSQL wire values, in text and binary format.
//!
//! Each Arrow column gets a PostgreSQL type (by Arrow type, refined by the
//! `pg_type` field metadata the SQL layer sets for uuid, varchar and char).
//! Text output follows PostgreSQL's own output functions — `t`/`f` for
//! booleans, shortest round-trip floats with PostgreSQL's exponent style,
//! numerics with their declared scale, `\x…` for bytea, ISO timestamps —
//! because clients parse these strings. Binary output follows the types'
//! send functions (big-endian integers, days and microseconds since
//! 2000-01-01).

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use chrono::{DateTime, NaiveDate};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, Float32Array, Float64Array, Int8Array,
    Int16Array, Int32Array, Int64Array, UInt8Array, UInt16Array, UInt32Array, UInt64Array,
};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Field, IntervalMonthDayNanoType, IntervalUnit, Schema, TimeUnit,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use pgwire::api::Type;
use pgwire::api::portal::Format;
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;
use pgwire::types::ToSqlText;
use postgres_types::{IsNull, ToSql};
use shoal_sql::time_zone::TimeZone;
use shoal_sql::{PG_CHAR_LENGTH_KEY, PG_TYPE_KEY};

/// Microseconds between 1970-01-01 and 2000-01-01, PostgreSQL's epoch.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days between 1970-01-01 and 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;

/// The PostgreSQL type of an Arrow field.
pub fn pg_type(field: &Field) -> Type {
    if let Some(t) = field.metadata().get(PG_TYPE_KEY) {
        match t.as_str() {
            "uuid" => return Type::UUID,
            "json" => return Type::JSON,
            "jsonb" => return Type::JSONB,
            "varchar" => return Type::VARCHAR,
            "bpchar" => return Type::BPCHAR,
            "oid" => return Type::OID,
            "char" => return Type::CHAR,
            "name" => return Type::NAME,
            "int2vector" => return Type::INT2_VECTOR,
            "oidvector" => return Type::OID_VECTOR,
            _ => {}
        }
    }
    pg_type_of(field.data_type())
}

pub fn pg_type_of(dt: &DataType) -> Type {
    match dt {
        DataType::Boolean => Type::BOOL,
        DataType::Int8 | DataType::UInt8 | DataType::Int16 => Type::INT2,
        DataType::UInt16 | DataType::Int32 => Type::INT4,
        DataType::UInt32 | DataType::Int64 | DataType::UInt64 => Type::INT8,
        DataType::Float16 | DataType::Float32 => Type::FLOAT4,
        DataType::Float64 => Type::FLOAT8,
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => Type::NUMERIC,
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => Type::BYTEA,
        DataType::Date32 | DataType::Date64 => Type::DATE,
        DataType::Timestamp(_, None) => Type::TIMESTAMP,
        DataType::Timestamp(_, Some(_)) => Type::TIMESTAMPTZ,
        DataType::Time32(_) | DataType::Time64(_) => Type::TIME,
        DataType::Interval(_) => Type::INTERVAL,
        DataType::List(element) | DataType::LargeList(element) => {
            match pg_type_of(element.data_type()) {
                Type::BOOL => Type::BOOL_ARRAY,
                Type::INT2 => Type::INT2_ARRAY,
                Type::INT4 => Type::INT4_ARRAY,
                Type::INT8 => Type::INT8_ARRAY,
                Type::FLOAT4 => Type::FLOAT4_ARRAY,
                Type::FLOAT8 => Type::FLOAT8_ARRAY,
                Type::NUMERIC => Type::NUMERIC_ARRAY,
                Type::BYTEA => Type::BYTEA_ARRAY,
                Type::DATE => Type::DATE_ARRAY,
                Type::TIMESTAMP => Type::TIMESTAMP_ARRAY,
                Type::TIMESTAMPTZ => Type::TIMESTAMPTZ_ARRAY,
                _ => Type::TEXT_ARRAY,
            }
        }
        _ => Type::TEXT,
    }
}

/// An `int2vector` / `oidvector` (a list column) in PostgreSQL's text
/// form: the numbers, space separated.
fn vector_text(col: &ArrayRef, r: usize) -> String {
    let values = match col.data_type() {
        DataType::List(_) => col.as_list::<i32>().value(r),
        DataType::LargeList(_) => col.as_list::<i64>().value(r),
        _ => return String::new(),
    };
    let opts = FormatOptions::default();
    let Ok(f) = ArrayFormatter::try_new(values.as_ref(), &opts) else {
        return String::new();
    };
    (0..values.len())
        .map(|i| f.value(i).to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// An array in PostgreSQL's text form: `{1,2}`, `{"a b",NULL}`.
fn array_text(values: &ArrayRef, zone: &TimeZone) -> String {
    let opts = FormatOptions::default();
    let Ok(fallback) = ArrayFormatter::try_new(values.as_ref(), &opts) else {
        return "{}".into();
    };
    let items: Vec<String> = (0..values.len())
        .map(|i| {
            if values.is_null(i) {
                return "NULL".into();
            }
            let text = text_value(values, i, &fallback, zone);
            // PostgreSQL's array_out quotes any element, whatever its
            // type, that is empty, NULL-like, or holds a delimiter.
            let needs_quotes = text.is_empty()
                || text.eq_ignore_ascii_case("null")
                || text
                    .chars()
                    .any(|c| matches!(c, ',' | '{' | '}' | '"' | '\\') || c.is_whitespace());
            if needs_quotes {
                format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
            } else {
                text
            }
        })
        .collect();
    format!("{{{}}}", items.join(","))
}

/// Row description for a result schema.
pub fn fields(schema: &Schema, format: &Format) -> Vec<FieldInfo> {
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let meta = |key: &str| f.metadata().get(key);
            FieldInfo::new(
                f.name().clone(),
                meta(shoal_sql::descriptor::TABLE_OID_KEY).and_then(|v| v.parse().ok()),
                meta(shoal_sql::descriptor::ATTNUM_KEY).and_then(|v| v.parse().ok()),
                pg_type(f),
                format.format_for(i),
            )
        })
        .collect()
}

/// One already-encoded value; lets [`DataRowEncoder`] frame bytes we made.
#[derive(Debug)]
struct Encoded(Option<Vec<u8>>);

impl ToSql for Encoded {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match &self.0 {
            None => Ok(IsNull::Yes),
            Some(b) => {
                out.put_slice(b);
                Ok(IsNull::No)
            }
        }
    }
    fn accepts(_ty: &Type) -> bool {
        true
    }
    postgres_types::to_sql_checked!();
}

impl ToSqlText for Encoded {
    fn to_sql_text(
        &self,
        ty: &Type,
        out: &mut BytesMut,
        _o: &pgwire::types::format::FormatOptions,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        self.to_sql(ty, out)
    }
}

/// A text formatter per column of a batch (the fallback of [`text_value`]).
fn formatters<'a>(
    batch: &'a RecordBatch,
    opts: &'a FormatOptions<'a>,
) -> PgWireResult<Vec<ArrayFormatter<'a>>> {
    batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), opts))
        .collect::<Result<_, _>>()
        .map_err(|e| PgWireError::ApiError(Box::new(e)))
}

/// Every row of a batch as PostgreSQL's text of each value (`None`:
/// NULL), for `COPY … TO STDOUT`.
pub fn batch_texts(batch: &RecordBatch, zone: &TimeZone) -> PgWireResult<Vec<Vec<Option<String>>>> {
    let opts = FormatOptions::default().with_null("");
    let formatters = formatters(batch, &opts)?;
    let widths = char_widths(batch);
    Ok((0..batch.num_rows())
        .map(|r| {
            batch
                .columns()
                .iter()
                .enumerate()
                .map(|(c, col)| {
                    (!col.is_null(r)).then(|| {
                        let mut text = text_value(col, r, &formatters[c], zone);
                        if let Some(width) = widths[c] {
                            let chars = text.chars().count();
                            text.extend(std::iter::repeat_n(' ', width.saturating_sub(chars)));
                        }
                        text
                    })
                })
                .collect()
        })
        .collect())
}

/// Every row of a batch as each value's binary form (`None`: NULL), for
/// binary `COPY … TO STDOUT`.
pub fn batch_binary(batch: &RecordBatch) -> PgWireResult<Vec<Vec<Option<Vec<u8>>>>> {
    let types: Vec<Type> = batch.schema().fields().iter().map(|f| pg_type(f)).collect();
    let widths = char_widths(batch);
    (0..batch.num_rows())
        .map(|r| {
            batch
                .columns()
                .iter()
                .zip(&types)
                .zip(&widths)
                .map(|((col, ty), width)| {
                    (!col.is_null(r))
                        .then(|| {
                            let mut value = binary_value(col, r, ty)?;
                            pad_char(&mut value, *width);
                            Ok(value)
                        })
                        .transpose()
                })
                .collect()
        })
        .collect()
}

/// The text PostgreSQL prints for a single value.
pub fn scalar_text(
    value: &datafusion::common::ScalarValue,
    zone: &TimeZone,
) -> PgWireResult<Option<String>> {
    if value.is_null() {
        return Ok(None);
    }
    let col = value
        .to_array()
        .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    let opts = FormatOptions::default().with_null("");
    let formatter = ArrayFormatter::try_new(col.as_ref(), &opts)
        .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    Ok(Some(text_value(&col, 0, &formatter, zone)))
}

/// Encodes every row of a batch.
pub fn encode_batch(
    batch: &RecordBatch,
    fields: &Arc<Vec<FieldInfo>>,
    zone: &TimeZone,
) -> PgWireResult<Vec<DataRow>> {
    let mut encoder = DataRowEncoder::new(fields.clone());
    let mut rows = Vec::with_capacity(batch.num_rows());
    let opts = FormatOptions::default().with_null("");
    let formatters = formatters(batch, &opts)?;
    let widths = char_widths(batch);
    for r in 0..batch.num_rows() {
        for (c, col) in batch.columns().iter().enumerate() {
            let field = &fields[c];
            let mut value = if col.is_null(r) {
                None
            } else if field.format() == FieldFormat::Binary {
                Some(binary_value(col, r, field.datatype())?)
            } else if matches!(field.datatype(), &Type::INT2_VECTOR | &Type::OID_VECTOR) {
                Some(vector_text(col, r).into_bytes())
            } else {
                Some(text_value(col, r, &formatters[c], zone).into_bytes())
            };
            if let Some(value) = &mut value {
                pad_char(value, widths[c]);
            }
            encoder.encode_field(&Encoded(value))?;
        }
        rows.push(encoder.take_row());
    }
    Ok(rows)
}

/// The length of each `char(n)` column of a batch (`PG_CHAR_LENGTH_KEY`).
fn char_widths(batch: &RecordBatch) -> Vec<Option<usize>> {
    batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.metadata().get(PG_CHAR_LENGTH_KEY)?.parse().ok())
        .collect()
}

/// Pads a `char(n)` value (UTF-8 text, in either format) with spaces to
/// `n` characters, as PostgreSQL prints it.
fn pad_char(value: &mut Vec<u8>, width: Option<usize>) {
    let Some(width) = width else { return };
    let chars = String::from_utf8_lossy(value).chars().count();
    value.resize(value.len() + width.saturating_sub(chars), b' ');
}

/// A timestamp's text: wall-clock time, and for a `timestamptz` (`zone`
/// given) the time in that zone followed by its offset then (`-05`).
fn format_micros(micros: i64, zone: Option<&TimeZone>) -> String {
    let offset = zone.map(|z| z.offset_at(micros));
    let local = micros.saturating_add(offset.unwrap_or(0) as i64 * 1_000_000);
    match DateTime::from_timestamp_micros(local) {
        Some(dt) => {
            let mut s = dt.naive_utc().format("%Y-%m-%d %H:%M:%S").to_string();
            let frac = local.rem_euclid(1_000_000);
            if frac != 0 {
                let f = format!("{frac:06}");
                s.push('.');
                s.push_str(f.trim_end_matches('0'));
            }
            if let Some(offset) = offset {
                s.push_str(&shoal_sql::time_zone::format_offset(offset));
            }
            s
        }
        None => micros.to_string(),
    }
}

fn to_micros(v: i64, unit: &TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => v.saturating_mul(1_000_000),
        TimeUnit::Millisecond => v.saturating_mul(1_000),
        TimeUnit::Microsecond => v,
        TimeUnit::Nanosecond => v.div_euclid(1_000),
    }
}

fn text_value(col: &ArrayRef, r: usize, fallback: &ArrayFormatter, zone: &TimeZone) -> String {
    match col.data_type() {
        DataType::Boolean => {
            let v = col.as_boolean().value(r);
            if v { "t".into() } else { "f".into() }
        }
        DataType::Float64 => shoal_sql::float_text::format_float(
            col.as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                .value(r),
            false,
        ),
        DataType::Float32 => shoal_sql::float_text::format_float(
            col.as_primitive::<datafusion::arrow::datatypes::Float32Type>()
                .value(r) as f64,
            true,
        ),
        DataType::Decimal128(_, s) => shoal_sql::types::format_decimal(
            col.as_primitive::<datafusion::arrow::datatypes::Decimal128Type>()
                .value(r),
            *s,
        ),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => {
            let bytes = binary_bytes(col, r);
            let mut s = String::with_capacity(2 + bytes.len() * 2);
            s.push_str("\\x");
            for b in bytes {
                s.push_str(&format!("{b:02x}"));
            }
            s
        }
        DataType::Timestamp(unit, tz) => {
            let raw = timestamp_raw(col, r);
            format_micros(to_micros(raw, unit), tz.as_ref().map(|_| zone))
        }
        DataType::List(_) => array_text(&col.as_list::<i32>().value(r), zone),
        DataType::LargeList(_) => array_text(&col.as_list::<i64>().value(r), zone),
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            let v = col.as_primitive::<IntervalMonthDayNanoType>().value(r);
            shoal_sql::interval::format(v.months, v.days, v.nanoseconds.div_euclid(1000))
        }
        DataType::Date32 => {
            let d = col.as_primitive::<Date32Type>().value(r);
            match NaiveDate::from_num_days_from_ce_opt(d + 719_163) {
                Some(date) => date.format("%Y-%m-%d").to_string(),
                None => d.to_string(),
            }
        }
        _ => fallback.value(r).to_string(),
    }
}

fn timestamp_raw(col: &ArrayRef, r: usize) -> i64 {
    use datafusion::arrow::datatypes::*;
    match col.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => {
            col.as_primitive::<TimestampSecondType>().value(r)
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            col.as_primitive::<TimestampMillisecondType>().value(r)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            col.as_primitive::<TimestampMicrosecondType>().value(r)
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            col.as_primitive::<TimestampNanosecondType>().value(r)
        }
        _ => 0,
    }
}

fn binary_bytes(col: &ArrayRef, r: usize) -> Vec<u8> {
    match col.data_type() {
        DataType::Binary => col.as_binary::<i32>().value(r).to_vec(),
        DataType::LargeBinary => col.as_binary::<i64>().value(r).to_vec(),
        DataType::BinaryView => col.as_binary_view().value(r).to_vec(),
        DataType::FixedSizeBinary(_) => col.as_fixed_size_binary().value(r).to_vec(),
        _ => Vec::new(),
    }
}

fn unsupported_binary(ty: &Type) -> PgWireError {
    PgWireError::UserError(Box::new(pgwire::error::ErrorInfo::new(
        "ERROR".into(),
        "0A000".into(),
        format!("binary output of type {} is not supported", ty.name()),
    )))
}

fn binary_value(col: &ArrayRef, r: usize, ty: &Type) -> PgWireResult<Vec<u8>> {
    let mut out = BytesMut::new();
    let any = col.as_any();
    macro_rules! int {
        ($arr:ty) => {
            any.downcast_ref::<$arr>().map(|a| a.value(r) as i64)
        };
    }
    let as_int = || -> Option<i64> {
        int!(Int8Array)
            .or_else(|| int!(Int16Array))
            .or_else(|| int!(Int32Array))
            .or_else(|| int!(Int64Array))
            .or_else(|| int!(UInt8Array))
            .or_else(|| int!(UInt16Array))
            .or_else(|| int!(UInt32Array))
            .or_else(|| int!(UInt64Array))
    };
    match *ty {
        Type::INT2 => out.put_i16(as_int().ok_or_else(|| unsupported_binary(ty))? as i16),
        Type::INT4 => out.put_i32(as_int().ok_or_else(|| unsupported_binary(ty))? as i32),
        Type::INT8 => out.put_i64(as_int().ok_or_else(|| unsupported_binary(ty))?),
        Type::OID => out.put_u32(as_int().ok_or_else(|| unsupported_binary(ty))? as u32),
        Type::CHAR => out.put_slice(text_of(col, r)?.as_bytes().get(..1).unwrap_or_default()),
        Type::FLOAT4 => {
            let v = any
                .downcast_ref::<Float32Array>()
                .map(|a| a.value(r))
                .ok_or_else(|| unsupported_binary(ty))?;
            out.put_f32(v)
        }
        Type::FLOAT8 => {
            let v = any
                .downcast_ref::<Float64Array>()
                .map(|a| a.value(r))
                .ok_or_else(|| unsupported_binary(ty))?;
            out.put_f64(v)
        }
        Type::BOOL => {
            let v = any
                .downcast_ref::<BooleanArray>()
                .map(|a| a.value(r))
                .ok_or_else(|| unsupported_binary(ty))?;
            out.put_u8(v as u8)
        }
        Type::NUMERIC => {
            let (v, scale) = match (any.downcast_ref::<Decimal128Array>(), col.data_type()) {
                (Some(a), DataType::Decimal128(_, s)) => (a.value(r), *s),
                _ => return Err(unsupported_binary(ty)),
            };
            let d = rust_decimal::Decimal::try_from_i128_with_scale(v, scale.max(0) as u32)
                .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
            d.to_sql(ty, &mut out).map_err(PgWireError::ApiError)?;
        }
        Type::BYTEA => out.put_slice(&binary_bytes(col, r)),
        Type::UUID => {
            let s = text_of(col, r)?;
            let u = uuid::Uuid::parse_str(&s).map_err(|e| PgWireError::ApiError(Box::new(e)))?;
            out.put_slice(u.as_bytes())
        }
        Type::DATE => {
            let d = match col.data_type() {
                DataType::Date32 => col.as_primitive::<Date32Type>().value(r),
                _ => return Err(unsupported_binary(ty)),
            };
            out.put_i32(d - PG_EPOCH_DAYS)
        }
        // interval send: microseconds, days, months.
        Type::INTERVAL => {
            let v = match col.data_type() {
                DataType::Interval(IntervalUnit::MonthDayNano) => {
                    col.as_primitive::<IntervalMonthDayNanoType>().value(r)
                }
                _ => return Err(unsupported_binary(ty)),
            };
            out.put_i64(v.nanoseconds.div_euclid(1000));
            out.put_i32(v.days);
            out.put_i32(v.months);
        }
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            let DataType::Timestamp(unit, _) = col.data_type() else {
                return Err(unsupported_binary(ty));
            };
            out.put_i64(to_micros(timestamp_raw(col, r), unit) - PG_EPOCH_MICROS)
        }
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::JSON => {
            out.put_slice(text_of(col, r)?.as_bytes())
        }
        // jsonb's binary form is a version byte, then the text.
        Type::JSONB => {
            out.put_u8(1);
            out.put_slice(text_of(col, r)?.as_bytes())
        }
        _ if matches!(col.data_type(), DataType::List(_) | DataType::LargeList(_)) => {
            return binary_array(col, r, ty);
        }
        _ => return Err(unsupported_binary(ty)),
    }
    Ok(out.to_vec())
}

/// A list value in PostgreSQL's binary array format: dimensions, a
/// has-NULL flag, the element type, each dimension's length and lower
/// bound (1, or 0 for `int2vector` / `oidvector`), then each element as a
/// length and its binary form.
fn binary_array(col: &ArrayRef, r: usize, ty: &Type) -> PgWireResult<Vec<u8>> {
    let values = match col.data_type() {
        DataType::List(_) => col.as_list::<i32>().value(r),
        DataType::LargeList(_) => col.as_list::<i64>().value(r),
        _ => return Err(unsupported_binary(ty)),
    };
    let element = match ty.kind() {
        postgres_types::Kind::Array(element) => element.clone(),
        _ if *ty == Type::INT2_VECTOR => Type::INT2,
        _ if *ty == Type::OID_VECTOR => Type::OID,
        _ => return Err(unsupported_binary(ty)),
    };
    let lower = if *ty == Type::INT2_VECTOR || *ty == Type::OID_VECTOR {
        0
    } else {
        1
    };
    let mut out = BytesMut::new();
    out.put_i32(if values.is_empty() { 0 } else { 1 });
    out.put_i32(i32::from(values.null_count() > 0));
    out.put_u32(element.oid());
    if !values.is_empty() {
        out.put_i32(values.len() as i32);
        out.put_i32(lower);
    }
    for i in 0..values.len() {
        if values.is_null(i) {
            out.put_i32(-1);
            continue;
        }
        let bytes = binary_value(&values, i, &element)?;
        out.put_i32(bytes.len() as i32);
        out.put_slice(&bytes);
    }
    Ok(out.to_vec())
}

fn text_of(col: &ArrayRef, r: usize) -> PgWireResult<String> {
    let opts = FormatOptions::default();
    let f = ArrayFormatter::try_new(col.as_ref(), &opts)
        .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    Ok(f.value(r).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_keep_their_scale() {
        assert_eq!(shoal_sql::types::format_decimal(150, 2), "1.50");
        assert_eq!(shoal_sql::types::format_decimal(-5, 2), "-0.05");
        assert_eq!(shoal_sql::types::format_decimal(7, 0), "7");
    }

    #[test]
    fn timestamps_print_iso() {
        assert_eq!(format_micros(0, None), "1970-01-01 00:00:00");
        assert_eq!(
            format_micros(1_500_000, Some(&TimeZone::UTC)),
            "1970-01-01 00:00:01.5+00"
        );
        let kolkata = TimeZone::parse("Asia/Kolkata").expect("zone");
        assert_eq!(
            format_micros(1_500_000, Some(&kolkata)),
            "1970-01-01 05:30:01.5+05:30"
        );
    }
}
