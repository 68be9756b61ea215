//! Scalar functions whose results carry a PostgreSQL type that Arrow
//! alone cannot tell (`jsonb`, `json` and `uuid` are all `Utf8`), and whose
//! bodies need to know which arguments are documents.
//!
//! A [`udf`] runs a row at a time over scalar values: each row's
//! arguments arrive as [`Arg`]s (value, and whether the argument's field is
//! `json`/`jsonb`), and the result field carries the `pg_type` entry of its
//! [`Returns`], so the front end reports the right type to clients.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    TypeSignature, Volatility,
};

use crate::error::SqlError;
use crate::types::PG_TYPE_KEY;

/// The SQL type a function's result is reported as.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Returns {
    Jsonb,
    Json,
    Uuid,
    Text,
    Bool,
    Int,
    /// Any other type, told by its Arrow type alone.
    Other(DataType),
}

impl Returns {
    pub(crate) fn data_type(&self) -> DataType {
        match self {
            Returns::Jsonb | Returns::Json | Returns::Uuid | Returns::Text => DataType::Utf8,
            Returns::Bool => DataType::Boolean,
            Returns::Int => DataType::Int32,
            Returns::Other(t) => t.clone(),
        }
    }

    pub(crate) fn field(&self, name: &str) -> Field {
        let field = Field::new(name, self.data_type(), true);
        match self {
            Returns::Jsonb => field.with_metadata(pg_type("jsonb")),
            Returns::Json => field.with_metadata(pg_type("json")),
            Returns::Uuid => field.with_metadata(pg_type("uuid")),
            _ => field,
        }
    }
}

fn pg_type(name: &str) -> HashMap<String, String> {
    HashMap::from([(PG_TYPE_KEY.to_string(), name.to_string())])
}

/// Whether a field holds documents (`json` or `jsonb`).
pub fn is_json_field(field: &Field) -> bool {
    matches!(
        field.metadata().get(PG_TYPE_KEY).map(String::as_str),
        Some("json" | "jsonb")
    )
}

/// One argument of a row: its value, whether it is a document, and the
/// field it comes from (its type, and the PostgreSQL type if Arrow's does
/// not tell it).
pub(crate) struct Arg {
    pub value: ScalarValue,
    pub json: bool,
    pub field: Option<FieldRef>,
}

type Body = Arc<dyn Fn(&[Arg]) -> crate::error::Result<ScalarValue> + Send + Sync>;

struct TypedFn {
    name: &'static str,
    signature: Signature,
    returns: Returns,
    f: Body,
}

impl std::fmt::Debug for TypedFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TypedFn({})", self.name)
    }
}

impl PartialEq for TypedFn {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for TypedFn {}

impl std::hash::Hash for TypedFn {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}

pub(crate) fn external(e: SqlError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

impl ScalarUDFImpl for TypedFn {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(self.returns.data_type())
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> DfResult<FieldRef> {
        Ok(Arc::new(self.returns.field(self.name)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let json: Vec<bool> = args.arg_fields.iter().map(|f| is_json_field(f)).collect();
        let fields = &args.arg_fields;
        let row = |values: Vec<ScalarValue>| -> DfResult<ScalarValue> {
            let args: Vec<Arg> = values
                .into_iter()
                .enumerate()
                .map(|(i, value)| Arg {
                    value,
                    json: json.get(i).copied().unwrap_or(false),
                    field: fields.get(i).cloned(),
                })
                .collect();
            let value = (self.f)(&args).map_err(external)?;
            let returns = self.returns.data_type();
            match value.data_type() == returns {
                true => Ok(value),
                false => value.cast_to(&returns),
            }
        };
        // Constant arguments give one constant result; a function of no
        // arguments (gen_random_uuid) is called once per row.
        if !args.args.is_empty()
            && args
                .args
                .iter()
                .all(|a| matches!(a, ColumnarValue::Scalar(_)))
        {
            let values = args
                .args
                .iter()
                .map(|a| match a {
                    ColumnarValue::Scalar(s) => s.clone(),
                    ColumnarValue::Array(_) => ScalarValue::Null,
                })
                .collect();
            return Ok(ColumnarValue::Scalar(row(values)?));
        }
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let mut out = Vec::with_capacity(args.number_rows);
        for r in 0..args.number_rows {
            let values = arrays
                .iter()
                .map(|a| ScalarValue::try_from_array(a, r))
                .collect::<DfResult<Vec<_>>>()?;
            out.push(row(values)?);
        }
        if out.is_empty() {
            return Ok(ColumnarValue::Array(
                datafusion::arrow::array::new_empty_array(&self.returns.data_type()),
            ));
        }
        Ok(ColumnarValue::Array(ScalarValue::iter_to_array(out)?))
    }
}

pub(crate) fn udf(
    name: &'static str,
    args: Option<usize>,
    returns: Returns,
    f: impl Fn(&[Arg]) -> crate::error::Result<ScalarValue> + Send + Sync + 'static,
) -> Arc<ScalarUDF> {
    udf_with(name, args, returns, Volatility::Immutable, f)
}

/// [`udf`] with a volatility other than immutable.
pub(crate) fn udf_with(
    name: &'static str,
    args: Option<usize>,
    returns: Returns,
    volatility: Volatility,
    f: impl Fn(&[Arg]) -> crate::error::Result<ScalarValue> + Send + Sync + 'static,
) -> Arc<ScalarUDF> {
    let signature = match args {
        Some(0) => Signature::new(TypeSignature::Nullary, volatility),
        Some(n) => Signature::new(TypeSignature::Any(n), volatility),
        None => Signature::new(TypeSignature::VariadicAny, volatility),
    };
    Arc::new(ScalarUDF::new_from_impl(TypedFn {
        name,
        signature,
        returns,
        f: Arc::new(f),
    }))
}

/// The text of a scalar (NULL is `None`).
pub(crate) fn text(v: &ScalarValue) -> Option<String> {
    if v.is_null() {
        return None;
    }
    match v {
        ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s) => s.clone(),
        other => match other.cast_to(&DataType::Utf8) {
            Ok(ScalarValue::Utf8(s)) => s,
            _ => None,
        },
    }
}
