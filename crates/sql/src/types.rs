//! SQL column types and the values they hold.
//!
//! A [`SqlType`] is what a user declared (`varchar(20)`, `numeric(10,2)`); it
//! decides three things: the Arrow type DataFusion computes with, the
//! PostgreSQL type a client is told about, and the checks a value must pass
//! before it is stored (length of a `varchar(n)`, precision of a `numeric`).
//!
//! A [`Datum`] is one stored value, independent of Arrow. Rows are encoded
//! from and decoded to datums (see `row.rs`); Arrow arrays are built from
//! datums when a range is scanned and datums are read back out of Arrow
//! arrays when DML writes what a query computed.
//!
//! `uuid` and the character types are Arrow `Utf8`: DataFusion then compares
//! them with string literals as PostgreSQL does, and a field metadata entry
//! (`pg_type`) tells the front end which PostgreSQL type to report.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BinaryArray, BinaryBuilder, BooleanArray, BooleanBuilder, Date32Array,
    Date32Builder, Decimal128Array, Decimal128Builder, Float32Array, Float32Builder, Float64Array,
    Float64Builder, Int16Array, Int16Builder, Int32Array, Int32Builder, Int64Array, Int64Builder,
    IntervalMonthDayNanoArray, IntervalMonthDayNanoBuilder, ListArray, StringBuilder,
    TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::{DataType, Field, IntervalMonthDayNano, IntervalUnit, TimeUnit};
use datafusion::sql::sqlparser::ast;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SqlError};

/// Field metadata key naming the PostgreSQL type of an Arrow field whose
/// Arrow type alone is ambiguous (uuid, varchar, char are all `Utf8`).
pub const PG_TYPE_KEY: &str = "pg_type";

/// Field metadata key: the length `n` of a `char(n)` column's field.
///
/// `char(n)` is stored padded with spaces to `n`, as PostgreSQL stores it,
/// but trailing spaces mean nothing to it: `'ab'::char(5) = 'ab'`,
/// `length('ab'::char(5)) = 2`, a cast to text drops them. Arrow has no
/// such type, so values enter query execution without their padding
/// ([`ColumnBuilder`]) — comparisons, functions and casts then behave as
/// PostgreSQL's — and the front end pads a field carrying this key back to
/// `n` on output, as PostgreSQL prints a `char(n)` column.
pub const PG_CHAR_LENGTH_KEY: &str = "pg_char_length";

/// The time zone of `timestamptz` values in Arrow: instants are kept in UTC.
pub const UTC: &str = "+00:00";

/// A declared column type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SqlType {
    SmallInt,
    Integer,
    BigInt,
    Real,
    Double,
    /// `numeric(precision, scale)`; unconstrained numeric is (38, 10).
    Numeric {
        precision: u8,
        scale: i8,
    },
    Boolean,
    Text,
    Varchar(Option<u32>),
    Char(u32),
    Bytea,
    Date,
    Timestamp,
    TimestampTz,
    Uuid,
    /// A JSON document kept as written.
    Json,
    /// A JSON document kept in canonical form (`json.rs`).
    Jsonb,
    /// Months, days and microseconds, kept apart as PostgreSQL keeps them.
    Interval,
    /// A one-dimensional array of a scalar type.
    Array(Box<SqlType>),
}

impl SqlType {
    /// The type named in a `CREATE TABLE` column definition.
    pub fn from_ast(dt: &ast::DataType) -> Result<SqlType> {
        use ast::DataType as D;
        let char_len = |l: &Option<ast::CharacterLength>| -> Result<Option<u32>> {
            match l {
                None | Some(ast::CharacterLength::Max) => Ok(None),
                Some(ast::CharacterLength::IntegerLength { length, .. }) => {
                    if *length == 0 || *length > 10_485_760 {
                        Err(SqlError::InvalidParameter(format!(
                            "length for type varchar must be between 1 and 10485760, got {length}"
                        )))
                    } else {
                        Ok(Some(*length as u32))
                    }
                }
            }
        };
        Ok(match dt {
            D::SmallInt(_) | D::Int2(_) => SqlType::SmallInt,
            D::Int(_) | D::Integer(_) | D::Int4(_) => SqlType::Integer,
            D::BigInt(_) | D::Int8(_) => SqlType::BigInt,
            D::Real | D::Float4 => SqlType::Real,
            D::Double(_) | D::DoublePrecision | D::Float8 => SqlType::Double,
            D::Float(info) => match info {
                ast::ExactNumberInfo::Precision(p) if *p <= 24 => SqlType::Real,
                _ => SqlType::Double,
            },
            D::Numeric(info) | D::Decimal(info) | D::Dec(info) => match info {
                ast::ExactNumberInfo::None => SqlType::Numeric {
                    precision: 38,
                    scale: 10,
                },
                ast::ExactNumberInfo::Precision(p) => numeric(*p, 0)?,
                ast::ExactNumberInfo::PrecisionAndScale(p, s) => numeric(*p, *s)?,
            },
            D::Boolean | D::Bool => SqlType::Boolean,
            D::Text | D::String(_) => SqlType::Text,
            D::Varchar(l) | D::CharacterVarying(l) => SqlType::Varchar(char_len(l)?),
            D::Char(l) | D::Character(l) => SqlType::Char(char_len(l)?.unwrap_or(1)),
            D::Bytea => SqlType::Bytea,
            D::Date => SqlType::Date,
            D::Timestamp(_, ast::TimezoneInfo::WithTimeZone | ast::TimezoneInfo::Tz) => {
                SqlType::TimestampTz
            }
            D::Timestamp(_, _) => SqlType::Timestamp,
            D::Uuid => SqlType::Uuid,
            D::JSON => SqlType::Json,
            D::Interval { .. } => SqlType::Interval,
            D::Array(
                ast::ArrayElemTypeDef::SquareBracket(inner, _)
                | ast::ArrayElemTypeDef::AngleBracket(inner)
                | ast::ArrayElemTypeDef::Parenthesis(inner),
            ) => match SqlType::from_ast(inner)? {
                SqlType::Array(_) => {
                    return Err(SqlError::NotSupported(
                        "multidimensional array types".into(),
                    ));
                }
                element => SqlType::Array(Box::new(element)),
            },
            D::JSONB => SqlType::Jsonb,
            D::Custom(name, _) => match name.to_string().to_ascii_lowercase().as_str() {
                "timestamptz" => SqlType::TimestampTz,
                "uuid" => SqlType::Uuid,
                "json" => SqlType::Json,
                "jsonb" => SqlType::Jsonb,
                "interval" => SqlType::Interval,
                "int2" => SqlType::SmallInt,
                "int4" => SqlType::Integer,
                "int8" => SqlType::BigInt,
                "float4" => SqlType::Real,
                "float8" => SqlType::Double,
                "bpchar" => SqlType::Char(1),
                other => {
                    return Err(SqlError::UndefinedObject(format!(
                        "type \"{other}\" does not exist"
                    )));
                }
            },
            other => return Err(SqlError::NotSupported(format!("type {other}"))),
        })
    }

    /// The Arrow type DataFusion computes with.
    pub fn arrow_type(&self) -> DataType {
        match self {
            SqlType::SmallInt => DataType::Int16,
            SqlType::Integer => DataType::Int32,
            SqlType::BigInt => DataType::Int64,
            SqlType::Real => DataType::Float32,
            SqlType::Double => DataType::Float64,
            SqlType::Numeric { precision, scale } => DataType::Decimal128(*precision, *scale),
            SqlType::Boolean => DataType::Boolean,
            SqlType::Text
            | SqlType::Varchar(_)
            | SqlType::Char(_)
            | SqlType::Uuid
            | SqlType::Json
            | SqlType::Jsonb => DataType::Utf8,
            SqlType::Bytea => DataType::Binary,
            SqlType::Date => DataType::Date32,
            SqlType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            SqlType::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
            SqlType::Interval => DataType::Interval(IntervalUnit::MonthDayNano),
            SqlType::Array(element) => {
                DataType::List(Arc::new(Field::new("item", element.arrow_type(), true)))
            }
        }
    }

    /// An Arrow field for a column of this type, carrying the PostgreSQL type
    /// name where the Arrow type alone does not tell it.
    pub fn arrow_field(&self, name: &str, nullable: bool) -> Field {
        let field = Field::new(name, self.arrow_type(), nullable);
        let pg = match self {
            SqlType::Uuid => Some("uuid"),
            SqlType::Varchar(_) => Some("varchar"),
            SqlType::Char(_) => Some("bpchar"),
            SqlType::Json => Some("json"),
            SqlType::Jsonb => Some("jsonb"),
            _ => None,
        };
        let mut metadata = HashMap::new();
        if let Some(pg) = pg {
            metadata.insert(PG_TYPE_KEY.into(), pg.into());
        }
        if let SqlType::Char(n) = self {
            metadata.insert(PG_CHAR_LENGTH_KEY.into(), n.to_string());
        }
        if metadata.is_empty() {
            field
        } else {
            field.with_metadata(metadata)
        }
    }

    /// The name PostgreSQL's `format_type` would print.
    pub fn pg_name(&self) -> String {
        match self {
            SqlType::SmallInt => "smallint".into(),
            SqlType::Integer => "integer".into(),
            SqlType::BigInt => "bigint".into(),
            SqlType::Real => "real".into(),
            SqlType::Double => "double precision".into(),
            SqlType::Numeric { precision, scale } => format!("numeric({precision},{scale})"),
            SqlType::Boolean => "boolean".into(),
            SqlType::Text => "text".into(),
            SqlType::Varchar(None) => "character varying".into(),
            SqlType::Varchar(Some(n)) => format!("character varying({n})"),
            SqlType::Char(n) => format!("character({n})"),
            SqlType::Bytea => "bytea".into(),
            SqlType::Date => "date".into(),
            SqlType::Timestamp => "timestamp without time zone".into(),
            SqlType::TimestampTz => "timestamp with time zone".into(),
            SqlType::Uuid => "uuid".into(),
            SqlType::Json => "json".into(),
            SqlType::Jsonb => "jsonb".into(),
            SqlType::Interval => "interval".into(),
            SqlType::Array(element) => format!("{}[]", element.pg_name()),
        }
    }

    /// The type's name in `pg_type` (`int4`, `varchar`); an array is
    /// named by its element, as PostgreSQL names array casts.
    pub fn typname(&self) -> String {
        match self {
            SqlType::SmallInt => "int2".into(),
            SqlType::Integer => "int4".into(),
            SqlType::BigInt => "int8".into(),
            SqlType::Real => "float4".into(),
            SqlType::Double => "float8".into(),
            SqlType::Numeric { .. } => "numeric".into(),
            SqlType::Boolean => "bool".into(),
            SqlType::Text => "text".into(),
            SqlType::Varchar(_) => "varchar".into(),
            SqlType::Char(_) => "bpchar".into(),
            SqlType::Bytea => "bytea".into(),
            SqlType::Date => "date".into(),
            SqlType::Timestamp => "timestamp".into(),
            SqlType::TimestampTz => "timestamptz".into(),
            SqlType::Uuid => "uuid".into(),
            SqlType::Json => "json".into(),
            SqlType::Jsonb => "jsonb".into(),
            SqlType::Interval => "interval".into(),
            SqlType::Array(element) => element.typname(),
        }
    }

    /// PostgreSQL's type OID (pg_type.oid) for this type.
    pub fn pg_oid(&self) -> u32 {
        match self {
            SqlType::SmallInt => 21,
            SqlType::Integer => 23,
            SqlType::BigInt => 20,
            SqlType::Real => 700,
            SqlType::Double => 701,
            SqlType::Numeric { .. } => 1700,
            SqlType::Boolean => 16,
            SqlType::Text => 25,
            SqlType::Varchar(_) => 1043,
            SqlType::Char(_) => 1042,
            SqlType::Bytea => 17,
            SqlType::Date => 1082,
            SqlType::Timestamp => 1114,
            SqlType::TimestampTz => 1184,
            SqlType::Uuid => 2950,
            SqlType::Json => 114,
            SqlType::Jsonb => 3802,
            SqlType::Interval => 1186,
            SqlType::Array(element) => array_oid(element.pg_oid()),
        }
    }

    /// Whether this type may be part of a primary key.
    pub fn is_key_type(&self) -> bool {
        !matches!(
            self,
            SqlType::Numeric { .. } | SqlType::Json | SqlType::Interval | SqlType::Array(_)
        )
    }
}

/// Element type OIDs and the OIDs of their array types (pg_type's
/// `typarray`).
const ARRAY_TYPES: &[(u32, u32)] = &[
    (16, 1000),
    (17, 1001),
    (20, 1016),
    (21, 1005),
    (23, 1007),
    (25, 1009),
    (114, 199),
    (700, 1021),
    (701, 1022),
    (1042, 1014),
    (1043, 1015),
    (1082, 1182),
    (1114, 1115),
    (1184, 1185),
    (1186, 1187),
    (1700, 1231),
    (2950, 2951),
    (3802, 3807),
];

/// The OID of the array type over element type `element`; 0 if there is
/// none.
pub fn array_oid(element: u32) -> u32 {
    ARRAY_TYPES
        .iter()
        .find(|(e, _)| *e == element)
        .map_or(0, |(_, a)| *a)
}

/// The element type of array type `array`, if it is one.
pub fn array_element(array: u32) -> Option<u32> {
    ARRAY_TYPES
        .iter()
        .find(|(_, a)| *a == array)
        .map(|(e, _)| *e)
}

fn numeric(p: u64, s: i64) -> Result<SqlType> {
    if !(1..=38).contains(&p) {
        return Err(SqlError::InvalidParameter(format!(
            "NUMERIC precision {p} must be between 1 and 38"
        )));
    }
    if s < 0 || s as u64 > p {
        return Err(SqlError::InvalidParameter(format!(
            "NUMERIC scale {s} must be between 0 and precision {p}"
        )));
    }
    Ok(SqlType::Numeric {
        precision: p as u8,
        scale: s as i8,
    })
}

/// One stored value.
#[derive(Debug, Clone, PartialEq)]
pub enum Datum {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// Unscaled value; the scale comes from the column's type.
    Decimal(i128),
    Text(String),
    Bytes(Vec<u8>),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since 1970-01-01 00:00:00 (UTC for timestamptz).
    Timestamp(i64),
    Uuid([u8; 16]),
    /// An interval: months, days and microseconds.
    Interval {
        months: i32,
        days: i32,
        micros: i64,
    },
    /// An array's elements.
    Array(Vec<Datum>),
}

impl Datum {
    pub fn is_null(&self) -> bool {
        matches!(self, Datum::Null)
    }
}

/// Reads row `row` of an Arrow array as a datum of `ty`, checking what the
/// column's declared type demands (length, range, uuid syntax). The array has
/// already been cast to the column's Arrow type.
pub fn datum_from_array(array: &ArrayRef, row: usize, ty: &SqlType) -> Result<Datum> {
    if array.is_null(row) {
        return Ok(Datum::Null);
    }
    let bad = || {
        SqlError::Internal(format!(
            "unexpected array type {} for {ty:?}",
            array.data_type()
        ))
    };
    macro_rules! get {
        ($t:ty) => {
            array
                .as_any()
                .downcast_ref::<$t>()
                .ok_or_else(bad)?
                .value(row)
        };
    }
    Ok(match ty {
        SqlType::SmallInt => Datum::Int(get!(Int16Array) as i64),
        SqlType::Integer => Datum::Int(get!(Int32Array) as i64),
        SqlType::BigInt => Datum::Int(get!(Int64Array)),
        SqlType::Real => Datum::Float(get!(Float32Array) as f64),
        SqlType::Double => Datum::Float(get!(Float64Array)),
        SqlType::Numeric { .. } => Datum::Decimal(get!(Decimal128Array)),
        SqlType::Boolean => Datum::Bool(get!(BooleanArray)),
        SqlType::Text => Datum::Text(string_value(array, row).ok_or_else(bad)?),
        SqlType::Varchar(limit) => {
            let s = string_value(array, row).ok_or_else(bad)?;
            if let Some(n) = limit
                && s.chars().count() > *n as usize
            {
                return Err(SqlError::StringTooLong(format!(
                    "value too long for type character varying({n})"
                )));
            }
            Datum::Text(s)
        }
        SqlType::Char(n) => {
            let s = string_value(array, row).ok_or_else(bad)?;
            let trimmed = s.trim_end_matches(' ');
            let len = trimmed.chars().count();
            if len > *n as usize {
                return Err(SqlError::StringTooLong(format!(
                    "value too long for type character({n})"
                )));
            }
            // PostgreSQL pads char(n) with spaces to its length.
            let mut padded = trimmed.to_string();
            padded.extend(std::iter::repeat_n(' ', *n as usize - len));
            Datum::Text(padded)
        }
        SqlType::Uuid => {
            let s = string_value(array, row).ok_or_else(bad)?;
            Datum::Uuid(parse_uuid(&s)?)
        }
        SqlType::Json => {
            let s = string_value(array, row).ok_or_else(bad)?;
            crate::json::parse(&s)?;
            Datum::Text(s)
        }
        SqlType::Jsonb => {
            let s = string_value(array, row).ok_or_else(bad)?;
            Datum::Text(crate::json::canonical(&s)?)
        }
        SqlType::Bytea => Datum::Bytes(get!(BinaryArray).to_vec()),
        SqlType::Date => Datum::Date(get!(Date32Array)),
        SqlType::Timestamp | SqlType::TimestampTz => {
            Datum::Timestamp(get!(TimestampMicrosecondArray))
        }
        SqlType::Interval => {
            let v = get!(IntervalMonthDayNanoArray);
            Datum::Interval {
                months: v.months,
                days: v.days,
                micros: v.nanoseconds.div_euclid(1000),
            }
        }
        SqlType::Array(element) => {
            let values = array
                .as_any()
                .downcast_ref::<ListArray>()
                .ok_or_else(bad)?
                .value(row);
            let mut items = Vec::with_capacity(values.len());
            for i in 0..values.len() {
                items.push(datum_from_array(&values, i, element)?);
            }
            Datum::Array(items)
        }
    })
}

fn string_value(array: &ArrayRef, row: usize) -> Option<String> {
    use datafusion::arrow::array::{LargeStringArray, StringArray, StringViewArray};
    let any = array.as_any();
    if let Some(a) = any.downcast_ref::<StringArray>() {
        Some(a.value(row).to_string())
    } else if let Some(a) = any.downcast_ref::<StringViewArray>() {
        Some(a.value(row).to_string())
    } else {
        any.downcast_ref::<LargeStringArray>()
            .map(|a| a.value(row).to_string())
    }
}

/// Parses a uuid in any of the spellings PostgreSQL accepts on input
/// (hyphens optional, braces optional, any case).
pub fn parse_uuid(s: &str) -> Result<[u8; 16]> {
    uuid::Uuid::try_parse(s.trim())
        .map(|u| *u.as_bytes())
        .map_err(|_| SqlError::InvalidText(format!("invalid input syntax for type uuid: \"{s}\"")))
}

/// Formats a uuid as PostgreSQL prints it.
pub fn format_uuid(bytes: &[u8; 16]) -> String {
    uuid::Uuid::from_bytes(*bytes).hyphenated().to_string()
}

/// A `numeric` as text: the unscaled value with the decimal point put
/// back (`12345`, scale 2 → `123.45`).
pub fn format_decimal(v: i128, scale: i8) -> String {
    if scale <= 0 {
        return (v * 10i128.pow((-scale) as u32)).to_string();
    }
    let neg = v < 0;
    let digits = v.unsigned_abs().to_string();
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{}{int}.{frac}", if neg { "-" } else { "" })
}

/// Builds one Arrow array of `ty` from a column of datums.
pub struct ColumnBuilder {
    ty: SqlType,
    inner: Builder,
}

enum Builder {
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Dec(Decimal128Builder),
    Bool(BooleanBuilder),
    Str(StringBuilder),
    Bin(BinaryBuilder),
    Date(Date32Builder),
    Ts(TimestampMicrosecondBuilder),
    Interval(IntervalMonthDayNanoBuilder),
    /// Arrays: the elements of every row in one child column, and where
    /// each row's elements end.
    List {
        element: SqlType,
        child: Box<ColumnBuilder>,
        offsets: Vec<i32>,
        valid: Vec<bool>,
    },
}

impl ColumnBuilder {
    pub fn new(ty: &SqlType, capacity: usize) -> ColumnBuilder {
        let inner = match ty {
            SqlType::SmallInt => Builder::I16(Int16Builder::with_capacity(capacity)),
            SqlType::Integer => Builder::I32(Int32Builder::with_capacity(capacity)),
            SqlType::BigInt => Builder::I64(Int64Builder::with_capacity(capacity)),
            SqlType::Real => Builder::F32(Float32Builder::with_capacity(capacity)),
            SqlType::Double => Builder::F64(Float64Builder::with_capacity(capacity)),
            SqlType::Numeric { .. } => Builder::Dec(Decimal128Builder::with_capacity(capacity)),
            SqlType::Boolean => Builder::Bool(BooleanBuilder::with_capacity(capacity)),
            SqlType::Text
            | SqlType::Varchar(_)
            | SqlType::Char(_)
            | SqlType::Uuid
            | SqlType::Json
            | SqlType::Jsonb => Builder::Str(StringBuilder::with_capacity(capacity, capacity * 8)),
            SqlType::Bytea => Builder::Bin(BinaryBuilder::with_capacity(capacity, capacity * 8)),
            SqlType::Date => Builder::Date(Date32Builder::with_capacity(capacity)),
            SqlType::Timestamp | SqlType::TimestampTz => {
                Builder::Ts(TimestampMicrosecondBuilder::with_capacity(capacity))
            }
            SqlType::Interval => {
                Builder::Interval(IntervalMonthDayNanoBuilder::with_capacity(capacity))
            }
            SqlType::Array(element) => Builder::List {
                element: element.as_ref().clone(),
                child: Box::new(ColumnBuilder::new(element, capacity)),
                offsets: vec![0],
                valid: Vec::with_capacity(capacity),
            },
        };
        ColumnBuilder {
            ty: ty.clone(),
            inner,
        }
    }

    /// Appends one value; a datum of the wrong kind is a corrupt row.
    pub fn append(&mut self, d: &Datum) -> Result<()> {
        let corrupt =
            || SqlError::Internal(format!("stored value {d:?} does not fit {:?}", self.ty));
        match (&mut self.inner, d) {
            (Builder::I16(b), Datum::Null) => b.append_null(),
            (Builder::I32(b), Datum::Null) => b.append_null(),
            (Builder::I64(b), Datum::Null) => b.append_null(),
            (Builder::F32(b), Datum::Null) => b.append_null(),
            (Builder::F64(b), Datum::Null) => b.append_null(),
            (Builder::Dec(b), Datum::Null) => b.append_null(),
            (Builder::Bool(b), Datum::Null) => b.append_null(),
            (Builder::Str(b), Datum::Null) => b.append_null(),
            (Builder::Bin(b), Datum::Null) => b.append_null(),
            (Builder::Date(b), Datum::Null) => b.append_null(),
            (Builder::Ts(b), Datum::Null) => b.append_null(),
            (Builder::Interval(b), Datum::Null) => b.append_null(),
            (
                Builder::Interval(b),
                Datum::Interval {
                    months,
                    days,
                    micros,
                },
            ) => b.append_value(IntervalMonthDayNano::new(
                *months,
                *days,
                micros.saturating_mul(1000),
            )),
            (
                Builder::List {
                    child,
                    offsets,
                    valid,
                    ..
                },
                Datum::Null | Datum::Array(_),
            ) => {
                let mut end = offsets.last().copied().unwrap_or(0);
                if let Datum::Array(elements) = d {
                    for e in elements {
                        child.append(e)?;
                        end += 1;
                    }
                }
                valid.push(!d.is_null());
                offsets.push(end);
            }
            (Builder::I16(b), Datum::Int(v)) => b.append_value(*v as i16),
            (Builder::I32(b), Datum::Int(v)) => b.append_value(*v as i32),
            (Builder::I64(b), Datum::Int(v)) => b.append_value(*v),
            (Builder::F32(b), Datum::Float(v)) => b.append_value(*v as f32),
            (Builder::F64(b), Datum::Float(v)) => b.append_value(*v),
            (Builder::Dec(b), Datum::Decimal(v)) => b.append_value(*v),
            (Builder::Bool(b), Datum::Bool(v)) => b.append_value(*v),
            // Padding is not part of a char(n) value (PG_CHAR_LENGTH_KEY).
            (Builder::Str(b), Datum::Text(v)) if matches!(self.ty, SqlType::Char(_)) => {
                b.append_value(v.trim_end_matches(' '))
            }
            (Builder::Str(b), Datum::Text(v)) => b.append_value(v),
            (Builder::Str(b), Datum::Uuid(v)) => b.append_value(format_uuid(v)),
            (Builder::Bin(b), Datum::Bytes(v)) => b.append_value(v),
            (Builder::Date(b), Datum::Date(v)) => b.append_value(*v),
            (Builder::Ts(b), Datum::Timestamp(v)) => b.append_value(*v),
            _ => return Err(corrupt()),
        }
        Ok(())
    }

    pub fn finish(self) -> ArrayRef {
        match self.inner {
            Builder::Interval(mut b) => Arc::new(b.finish()),
            Builder::List {
                element,
                child,
                offsets,
                valid,
            } => {
                let field = Arc::new(Field::new("item", element.arrow_type(), true));
                Arc::new(ListArray::new(
                    field,
                    OffsetBuffer::new(ScalarBuffer::from(offsets)),
                    child.finish(),
                    Some(NullBuffer::from(valid)),
                ))
            }
            Builder::I16(mut b) => Arc::new(b.finish()),
            Builder::I32(mut b) => Arc::new(b.finish()),
            Builder::I64(mut b) => Arc::new(b.finish()),
            Builder::F32(mut b) => Arc::new(b.finish()),
            Builder::F64(mut b) => Arc::new(b.finish()),
            Builder::Dec(mut b) => {
                let arr = b.finish();
                match self.ty.arrow_type() {
                    DataType::Decimal128(p, s) => {
                        match arr.clone().with_precision_and_scale(p, s) {
                            Ok(a) => Arc::new(a),
                            Err(_) => Arc::new(arr),
                        }
                    }
                    _ => Arc::new(arr),
                }
            }
            Builder::Bool(mut b) => Arc::new(b.finish()),
            Builder::Str(mut b) => Arc::new(b.finish()),
            Builder::Bin(mut b) => Arc::new(b.finish()),
            Builder::Date(mut b) => Arc::new(b.finish()),
            Builder::Ts(mut b) => match self.ty {
                SqlType::TimestampTz => Arc::new(b.finish().with_timezone(UTC)),
                _ => Arc::new(b.finish()),
            },
        }
    }
}
