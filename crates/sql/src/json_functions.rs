//! SQL functions and operators over `json` / `jsonb` (values in `json.rs`).
//!
//! DataFusion knows nothing of JSON: a document is `Utf8` with a `pg_type`
//! field entry. This module teaches it three things:
//!
//! - **Functions** (`jsonb_build_object`, `jsonb_set`, `to_jsonb`,
//!   `jsonb_typeof`, …) and the aggregates `jsonb_agg` / `jsonb_object_agg`.
//!   Each sees its arguments' fields, so a jsonb argument is embedded as a
//!   document while a text argument becomes a JSON string, as in
//!   PostgreSQL; results that are documents carry the `jsonb` (or `json`)
//!   field entry, so clients are told their type.
//! - **Operators**: [`JsonOperators`] is an expression planner that runs
//!   before DataFusion's own and turns `->`, `->>`, `#>`, `#>>`, `?`, `?|`,
//!   `?&`, `@>`, `<@` (unless both sides are arrays), and `||` / `-` with a
//!   document on the left, into calls of the functions here.
//!   `jsonb = 'text'` compares documents: the text side is read as jsonb.
//! - **Casts**: `x::jsonb` and `jsonb '…'` are rewritten (in `compat.rs`)
//!   to `shoal_jsonb_in(x)`, which checks and canonicalizes the text.
//!
//! The functions run a row at a time over scalar values: documents are
//! parsed per row anyway, so vectorizing would buy little.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Expr, ExprSchemable, ScalarUDF, Signature,
    TypeSignature, Volatility,
};
use datafusion::sql::sqlparser::ast::BinaryOperator;
use serde_json::Value;

use crate::error::SqlError;
use crate::json;
use crate::typed_udf::{Arg, Returns, external, is_json_field, text, udf};
use crate::types::PG_TYPE_KEY;

/// An argument read as a document: document text is parsed, NULL is None.
fn document(a: &Arg) -> crate::error::Result<Option<Value>> {
    text(&a.value).map(|t| json::parse(&t)).transpose()
}

/// One SQL value as JSON (`to_jsonb`): numbers and booleans as
/// themselves, documents embedded, arrays element by element, times in
/// ISO 8601, anything else as its text in a string.
fn to_value(v: &ScalarValue, is_json: bool) -> crate::error::Result<Value> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let number = |t: String| -> Value {
        serde_json::from_str::<Value>(&t)
            .ok()
            .filter(Value::is_number)
            .unwrap_or(Value::String(t))
    };
    Ok(match v {
        ScalarValue::Boolean(Some(b)) => Value::Bool(*b),
        ScalarValue::Int8(_)
        | ScalarValue::Int16(_)
        | ScalarValue::Int32(_)
        | ScalarValue::Int64(_)
        | ScalarValue::UInt8(_)
        | ScalarValue::UInt16(_)
        | ScalarValue::UInt32(_)
        | ScalarValue::UInt64(_) => number(v.to_string()),
        ScalarValue::Float32(Some(f)) if f.is_finite() => number(v.to_string()),
        ScalarValue::Float64(Some(f)) if f.is_finite() => number(v.to_string()),
        ScalarValue::Decimal128(Some(x), _, s) => number(crate::types::format_decimal(*x, *s)),
        ScalarValue::List(list) => {
            let values = list.value(0);
            let mut items = Vec::with_capacity(values.len());
            for i in 0..values.len() {
                items.push(to_value(&ScalarValue::try_from_array(&values, i)?, false)?);
            }
            Value::Array(items)
        }
        ScalarValue::TimestampMicrosecond(..)
        | ScalarValue::TimestampNanosecond(..)
        | ScalarValue::TimestampMillisecond(..)
        | ScalarValue::TimestampSecond(..) => {
            Value::String(text(v).unwrap_or_default().replacen(' ', "T", 1))
        }
        other => {
            let t = text(other).unwrap_or_default();
            if is_json {
                json::parse(&t)?
            } else {
                Value::String(t)
            }
        }
    })
}

/// A document result (or NULL) in its output form.
fn out(v: Option<Value>) -> ScalarValue {
    ScalarValue::Utf8(v.map(|v| json::to_text(&v)))
}

/// A path argument: a text array (`ARRAY['a','b']`) or its text form
/// (`'{a,b}'`).
fn path(a: &Arg) -> crate::error::Result<Option<Vec<String>>> {
    match &a.value {
        v if v.is_null() => Ok(None),
        ScalarValue::List(list) => {
            let values = list.value(0);
            let mut steps = Vec::with_capacity(values.len());
            for i in 0..values.len() {
                let step = ScalarValue::try_from_array(&values, i).map_err(SqlError::from)?;
                steps.extend(text(&step));
            }
            Ok(Some(steps))
        }
        v => text(v).map(|t| json::parse_path(&t)).transpose(),
    }
}

/// A key or position argument of `->`.
fn step(a: &Arg) -> Option<json::Step> {
    match &a.value {
        v if v.is_null() => None,
        ScalarValue::Int8(_)
        | ScalarValue::Int16(_)
        | ScalarValue::Int32(_)
        | ScalarValue::Int64(_) => match a.value.cast_to(&DataType::Int64) {
            Ok(ScalarValue::Int64(Some(i))) => Some(json::Step::Index(i)),
            _ => None,
        },
        v => text(v).map(json::Step::Key),
    }
}

fn build_object(args: &[Arg]) -> crate::error::Result<Value> {
    if !args.len().is_multiple_of(2) {
        return Err(SqlError::InvalidParameter(
            "argument list must have even number of elements".into(),
        ));
    }
    let mut m = serde_json::Map::new();
    for pair in args.chunks(2) {
        let key = text(&pair[0].value).ok_or_else(|| {
            SqlError::InvalidParameter("null value not allowed for object key".into())
        })?;
        m.insert(key, to_value(&pair[1].value, pair[1].json)?);
    }
    Ok(Value::Object(m))
}

/// `json_build_object` keeps the keys in the order given, as PostgreSQL's
/// json does, with its own `" : "` spacing.
fn build_json_object(args: &[Arg]) -> crate::error::Result<String> {
    if !args.len().is_multiple_of(2) {
        return Err(SqlError::InvalidParameter(
            "argument list must have even number of elements".into(),
        ));
    }
    let mut s = String::from("{");
    for (n, pair) in args.chunks(2).enumerate() {
        let key = text(&pair[0].value).ok_or_else(|| {
            SqlError::InvalidParameter("null value not allowed for object key".into())
        })?;
        if n > 0 {
            s.push_str(", ");
        }
        s.push_str(&Value::String(key).to_string());
        s.push_str(" : ");
        s.push_str(&json::to_text(&to_value(&pair[1].value, pair[1].json)?));
    }
    s.push('}');
    Ok(s)
}

fn build_array(args: &[Arg]) -> crate::error::Result<Value> {
    args.iter()
        .map(|a| to_value(&a.value, a.json))
        .collect::<crate::error::Result<Vec<_>>>()
        .map(Value::Array)
}

/// Applies `f` to the first argument as a document; NULL in gives NULL out.
fn on_doc(
    args: &[Arg],
    f: impl Fn(&Value) -> crate::error::Result<Option<ScalarValue>>,
    null: ScalarValue,
) -> crate::error::Result<ScalarValue> {
    match args.first().map(document).transpose()?.flatten() {
        Some(doc) => Ok(f(&doc)?.unwrap_or(null)),
        None => Ok(null),
    }
}

/// `->` and `->>` (a key or position), `#>` and `#>>` (a path): the
/// element selected, as jsonb text or as bare text.
fn select(a: &[Arg], by_path: bool, as_text: bool) -> crate::error::Result<ScalarValue> {
    let Some(doc) = document(&a[0])? else {
        return Ok(ScalarValue::Utf8(None));
    };
    let found = match by_path {
        true => path(&a[1])?.and_then(|p| json::get_path(&doc, &p).cloned()),
        false => step(&a[1]).and_then(|s| json::get(&doc, &s).cloned()),
    };
    Ok(ScalarValue::Utf8(found.and_then(|v| match as_text {
        true => json::as_text(&v),
        false => Some(json::to_text(&v)),
    })))
}

/// A test of the document in the first argument against the second
/// (`@>`, `?`, `?|`, `?&`); NULL on either side gives NULL.
fn test(
    a: &[Arg],
    f: impl Fn(&Value, &Arg) -> crate::error::Result<Option<bool>>,
) -> crate::error::Result<ScalarValue> {
    Ok(ScalarValue::Boolean(match document(&a[0])? {
        Some(doc) => f(&doc, &a[1])?,
        None => None,
    }))
}

/// Every JSON scalar function, by name.
fn scalar_functions() -> Vec<Arc<ScalarUDF>> {
    use Returns::*;
    vec![
        udf("shoal_jsonb_in", Some(1), Jsonb, |a| {
            Ok(ScalarValue::Utf8(
                text(&a[0].value).map(|t| json::canonical(&t)).transpose()?,
            ))
        }),
        udf("shoal_json_in", Some(1), Json, |a| {
            let t = text(&a[0].value);
            if let Some(t) = &t {
                json::parse(t)?;
            }
            Ok(ScalarValue::Utf8(t))
        }),
        udf("shoal_json_get", Some(2), Jsonb, |a| {
            select(a, false, false)
        }),
        udf("shoal_json_get_text", Some(2), Text, |a| {
            select(a, false, true)
        }),
        udf("shoal_json_path", Some(2), Jsonb, |a| {
            select(a, true, false)
        }),
        udf("shoal_json_path_text", Some(2), Text, |a| {
            select(a, true, true)
        }),
        udf("shoal_json_contains", Some(2), Bool, |a| {
            test(a, |d, other| {
                Ok(document(other)?.map(|o| json::contains(d, &o)))
            })
        }),
        udf("shoal_json_exists", Some(2), Bool, |a| {
            test(a, |d, key| {
                Ok(text(&key.value).map(|k| json::has_key(d, &k)))
            })
        }),
        udf("shoal_json_exists_any", Some(2), Bool, |a| {
            test(a, |d, keys| {
                Ok(path(keys)?.map(|k| k.iter().any(|k| json::has_key(d, k))))
            })
        }),
        udf("shoal_json_exists_all", Some(2), Bool, |a| {
            test(a, |d, keys| {
                Ok(path(keys)?.map(|k| k.iter().all(|k| json::has_key(d, k))))
            })
        }),
        udf("shoal_json_concat", Some(2), Jsonb, |a| {
            let (Some(x), Some(y)) = (document(&a[0])?, document(&a[1])?) else {
                return Ok(ScalarValue::Utf8(None));
            };
            Ok(out(Some(json::concat(&x, &y))))
        }),
        udf("shoal_json_delete", Some(2), Jsonb, |a| {
            let Some(doc) = document(&a[0])? else {
                return Ok(ScalarValue::Utf8(None));
            };
            let removed = match step(&a[1]) {
                None => return Ok(ScalarValue::Utf8(None)),
                Some(json::Step::Key(k)) => json::remove_key(&doc, &k)?,
                Some(json::Step::Index(i)) => json::remove_index(&doc, i)?,
            };
            Ok(out(Some(removed)))
        }),
        udf("jsonb_set", None, Jsonb, |a| {
            if !(3..=4).contains(&a.len()) {
                return Err(SqlError::UndefinedFunction(
                    "function jsonb_set with these arguments does not exist".into(),
                ));
            }
            let create = match a.get(3).map(|c| c.value.cast_to(&DataType::Boolean)) {
                Some(Ok(ScalarValue::Boolean(Some(c)))) => c,
                _ => true,
            };
            let (Some(doc), Some(steps), Some(value)) =
                (document(&a[0])?, path(&a[1])?, document(&a[2])?)
            else {
                return Ok(ScalarValue::Utf8(None));
            };
            Ok(out(Some(json::set_path(&doc, &steps, &value, create)?)))
        }),
        udf("to_jsonb", Some(1), Jsonb, |a| {
            Ok(out((!a[0].value.is_null())
                .then(|| to_value(&a[0].value, a[0].json))
                .transpose()?))
        }),
        udf("to_json", Some(1), Json, |a| {
            Ok(out((!a[0].value.is_null())
                .then(|| to_value(&a[0].value, a[0].json))
                .transpose()?))
        }),
        udf("jsonb_build_object", None, Jsonb, |a| {
            Ok(out(Some(build_object(a)?)))
        }),
        udf("json_build_object", None, Json, |a| {
            Ok(ScalarValue::Utf8(Some(build_json_object(a)?)))
        }),
        udf("jsonb_build_array", None, Jsonb, |a| {
            Ok(out(Some(build_array(a)?)))
        }),
        udf("json_build_array", None, Json, |a| {
            Ok(out(Some(build_array(a)?)))
        }),
        udf("jsonb_typeof", Some(1), Text, |a| {
            on_doc(
                a,
                |d| Ok(Some(ScalarValue::Utf8(Some(json::type_name(d).into())))),
                ScalarValue::Utf8(None),
            )
        }),
        udf("json_typeof", Some(1), Text, |a| {
            on_doc(
                a,
                |d| Ok(Some(ScalarValue::Utf8(Some(json::type_name(d).into())))),
                ScalarValue::Utf8(None),
            )
        }),
        udf("jsonb_array_length", Some(1), Int, |a| {
            on_doc(a, array_length, ScalarValue::Int32(None))
        }),
        udf("json_array_length", Some(1), Int, |a| {
            on_doc(a, array_length, ScalarValue::Int32(None))
        }),
        udf("jsonb_strip_nulls", Some(1), Jsonb, |a| {
            on_doc(
                a,
                |d| Ok(Some(out(Some(json::strip_nulls(d))))),
                ScalarValue::Utf8(None),
            )
        }),
        udf("jsonb_pretty", Some(1), Text, |a| {
            on_doc(
                a,
                |d| Ok(Some(ScalarValue::Utf8(Some(json::pretty(d))))),
                ScalarValue::Utf8(None),
            )
        }),
        udf("jsonb_extract_path", None, Jsonb, |a| {
            extract_path(a, false)
        }),
        udf("jsonb_extract_path_text", None, Text, |a| {
            extract_path(a, true)
        }),
        udf("json_extract_path", None, Json, |a| extract_path(a, false)),
        udf("json_extract_path_text", None, Text, |a| {
            extract_path(a, true)
        }),
    ]
}

fn array_length(d: &Value) -> crate::error::Result<Option<ScalarValue>> {
    match d {
        Value::Array(items) => Ok(Some(ScalarValue::Int32(Some(items.len() as i32)))),
        Value::Object(_) => Err(SqlError::InvalidParameter(
            "cannot get array length of a non-array".into(),
        )),
        _ => Err(SqlError::InvalidParameter(
            "cannot get array length of a scalar".into(),
        )),
    }
}

/// `jsonb_extract_path(doc, VARIADIC steps)`.
fn extract_path(a: &[Arg], as_text: bool) -> crate::error::Result<ScalarValue> {
    let steps: Option<Vec<String>> = a.iter().skip(1).map(|s| text(&s.value)).collect();
    on_doc(
        a,
        |d| {
            let found = steps.as_ref().and_then(|p| json::get_path(d, p));
            Ok(Some(ScalarValue::Utf8(match (found, as_text) {
                (Some(v), true) => json::as_text(v),
                (Some(v), false) => Some(json::to_text(v)),
                (None, _) => None,
            })))
        },
        ScalarValue::Utf8(None),
    )
}

/// Registers the JSON functions and aggregates with a session.
pub fn register(ctx: &SessionContext) {
    for f in scalar_functions() {
        ctx.register_udf(f.as_ref().clone());
    }
    for (name, returns, pairs) in [
        ("jsonb_agg", Returns::Jsonb, false),
        ("json_agg", Returns::Json, false),
        ("jsonb_object_agg", Returns::Jsonb, true),
        ("json_object_agg", Returns::Json, true),
    ] {
        ctx.register_udaf(AggregateUDF::new_from_impl(JsonAgg {
            name,
            returns,
            pairs,
            signature: Signature::new(
                TypeSignature::Any(if pairs { 2 } else { 1 }),
                Volatility::Immutable,
            ),
        }));
    }
}

/// The expression planner for the JSON operators.
#[derive(Debug)]
pub struct JsonOperators {
    functions: HashMap<String, Arc<ScalarUDF>>,
}

impl Default for JsonOperators {
    fn default() -> Self {
        JsonOperators {
            functions: scalar_functions()
                .into_iter()
                .chain([Arc::new(ScalarUDF::new_from_impl(
                    crate::array_functions::ArrayIn::default(),
                ))])
                .map(|f| (f.name().to_string(), f))
                .collect(),
        }
    }
}

impl JsonOperators {
    fn call(&self, name: &str, args: Vec<Expr>) -> Option<Expr> {
        self.functions
            .get(name)
            .map(|f| Expr::ScalarFunction(ScalarFunction::new_udf(f.clone(), args)))
    }
}

/// An untyped parameter (`$1`) given the type jsonb; anything else as is.
fn jsonb_param(e: Expr) -> Expr {
    match e {
        Expr::Placeholder(mut p) if p.field.is_none() => {
            p.field = Some(Arc::new(Returns::Jsonb.field("")));
            Expr::Placeholder(p)
        }
        other => other,
    }
}

fn is_list(e: &Expr, schema: &DFSchema) -> bool {
    matches!(
        e.get_type(schema),
        Ok(DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..))
    )
}

/// The SQL name of an array element type, for `shoal_array_in`.
fn element_sql(t: &DataType) -> Option<&'static str> {
    Some(match t {
        DataType::Int16 => "smallint",
        DataType::Int32 => "integer",
        DataType::Int64 => "bigint",
        DataType::Float32 => "real",
        DataType::Float64 => "double precision",
        DataType::Boolean => "boolean",
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text",
        _ => return None,
    })
}

fn is_json(e: &Expr, schema: &DFSchema) -> bool {
    e.to_field(schema)
        .map(|(_, f)| is_json_field(&f))
        .unwrap_or(false)
}

fn is_jsonb(e: &Expr, schema: &DFSchema) -> bool {
    e.to_field(schema)
        .map(|(_, f)| f.metadata().get(PG_TYPE_KEY).map(String::as_str) == Some("jsonb"))
        .unwrap_or(false)
}

impl ExprPlanner for JsonOperators {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> DfResult<PlannerResult<RawBinaryExpr>> {
        let RawBinaryExpr { op, left, right } = expr;
        let lists = || is_list(&left, schema) || is_list(&right, schema);
        let name = match &op {
            BinaryOperator::Arrow => Some("shoal_json_get"),
            BinaryOperator::LongArrow => Some("shoal_json_get_text"),
            BinaryOperator::HashArrow => Some("shoal_json_path"),
            BinaryOperator::HashLongArrow => Some("shoal_json_path_text"),
            BinaryOperator::Question => Some("shoal_json_exists"),
            BinaryOperator::QuestionPipe => Some("shoal_json_exists_any"),
            BinaryOperator::QuestionAnd => Some("shoal_json_exists_all"),
            BinaryOperator::AtArrow | BinaryOperator::ArrowAt if !lists() => {
                Some("shoal_json_contains")
            }
            BinaryOperator::StringConcat if is_json(&left, schema) || is_json(&right, schema) => {
                Some("shoal_json_concat")
            }
            BinaryOperator::Minus if is_json(&left, schema) => Some("shoal_json_delete"),
            _ => None,
        };
        if let Some(name) = name {
            // A parameter standing for a document is typed jsonb, so
            // clients send it as one.
            let (left, right) = match &op {
                BinaryOperator::AtArrow
                | BinaryOperator::ArrowAt
                | BinaryOperator::StringConcat => (jsonb_param(left), jsonb_param(right)),
                _ => (left, right),
            };
            let args = if op == BinaryOperator::ArrowAt {
                vec![right, left]
            } else {
                vec![left, right]
            };
            return match self.call(name, args) {
                Some(e) => Ok(PlannerResult::Planned(e)),
                None => Err(DataFusionError::Internal(format!("{name} not registered"))),
            };
        }
        // An array compared with a text literal (`polroles = '{0}'`)
        // reads the literal as an array of its type, as PostgreSQL types
        // an unknown literal by the other side.
        if matches!(
            op,
            BinaryOperator::Eq
                | BinaryOperator::NotEq
                | BinaryOperator::Lt
                | BinaryOperator::LtEq
                | BinaryOperator::Gt
                | BinaryOperator::GtEq
        ) {
            let as_array = |list: &Expr, text: Expr| -> Expr {
                let element = match list.get_type(schema) {
                    Ok(DataType::List(f) | DataType::LargeList(f)) => element_sql(f.data_type()),
                    _ => None,
                };
                match (&text, element) {
                    (Expr::Literal(ScalarValue::Utf8(_), _), Some(element)) => self
                        .call(
                            crate::array_functions::NAME,
                            vec![
                                text.clone(),
                                Expr::Literal(ScalarValue::from(element), None),
                            ],
                        )
                        .unwrap_or(text),
                    _ => text,
                }
            };
            let (l, r) = (is_list(&left, schema), is_list(&right, schema));
            if l && !r {
                let right = as_array(&left, right);
                return Ok(PlannerResult::Original(RawBinaryExpr { op, left, right }));
            }
            if r && !l {
                let left = as_array(&right, left);
                return Ok(PlannerResult::Original(RawBinaryExpr { op, left, right }));
            }
        }
        // A document compared with text compares documents.
        if matches!(op, BinaryOperator::Eq | BinaryOperator::NotEq) {
            let (l, r) = (is_jsonb(&left, schema), is_jsonb(&right, schema));
            if l != r {
                let (left, right) = (jsonb_param(left), jsonb_param(right));
                let wrap = |e: Expr| {
                    self.call("shoal_jsonb_in", vec![e])
                        .unwrap_or(Expr::Literal(ScalarValue::Null, None))
                };
                let (left, right) = if l {
                    (left, wrap(right))
                } else {
                    (wrap(left), right)
                };
                return Ok(PlannerResult::Original(RawBinaryExpr { op, left, right }));
            }
        }
        Ok(PlannerResult::Original(RawBinaryExpr { op, left, right }))
    }
}

/// `jsonb_agg(x)` / `json_agg(x)`: the values as one array;
/// `jsonb_object_agg(k, v)`: the pairs as one object. NULL values are kept
/// (as JSON null), as in PostgreSQL; no rows give NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonAgg {
    name: &'static str,
    returns: Returns,
    pairs: bool,
    signature: Signature,
}

impl AggregateUDFImpl for JsonAgg {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field(&self, _arg_fields: &[FieldRef]) -> DfResult<FieldRef> {
        Ok(Arc::new(self.returns.field(self.name)))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(JsonAccumulator {
            json: args.expr_fields.iter().map(|f| is_json_field(f)).collect(),
            pairs: self.pairs,
            items: Vec::new(),
            object: serde_json::Map::new(),
            rows: 0,
            bytes: 0,
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}[partial]", args.name),
            DataType::Utf8,
            true,
        ))])
    }
}

#[derive(Debug)]
struct JsonAccumulator {
    json: Vec<bool>,
    pairs: bool,
    items: Vec<Value>,
    object: serde_json::Map<String, Value>,
    rows: u64,
    /// Bytes of text the values held, for memory accounting.
    bytes: usize,
}

impl JsonAccumulator {
    fn add(&mut self, values: &[ScalarValue]) -> crate::error::Result<()> {
        let is_json = |i: usize| self.json.get(i).copied().unwrap_or(false);
        self.rows += 1;
        if self.pairs {
            let key = text(&values[0])
                .ok_or_else(|| SqlError::InvalidParameter("field name must not be null".into()))?;
            let value = to_value(&values[1], is_json(1))?;
            self.bytes += key.len() + approximate_size(&value);
            self.object.insert(key, value);
        } else {
            let value = to_value(&values[0], is_json(0))?;
            self.bytes += approximate_size(&value);
            self.items.push(value);
        }
        Ok(())
    }

    fn partial(&self) -> Option<Value> {
        (self.rows > 0).then(|| {
            if self.pairs {
                Value::Object(self.object.clone())
            } else {
                Value::Array(self.items.clone())
            }
        })
    }
}

impl Accumulator for JsonAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let rows = values.first().map(|a| a.len()).unwrap_or(0);
        for r in 0..rows {
            let row = values
                .iter()
                .map(|a| ScalarValue::try_from_array(a, r))
                .collect::<DfResult<Vec<_>>>()?;
            self.add(&row).map_err(external)?;
        }
        Ok(())
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        Ok(ScalarValue::Utf8(self.partial().map(|v| json::to_text(&v))))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.bytes
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Utf8(
            self.partial()
                .map(|v| serde_json::to_string(&v).unwrap_or_default()),
        )])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let Some(partials) = states.first() else {
            return Ok(());
        };
        for r in 0..partials.len() {
            let Some(t) = text(&ScalarValue::try_from_array(partials, r)?) else {
                continue;
            };
            self.bytes += t.len();
            match json::parse(&t).map_err(external)? {
                Value::Array(items) => {
                    self.rows += items.len() as u64;
                    self.items.extend(items);
                }
                Value::Object(m) => {
                    self.rows += m.len() as u64;
                    self.object.extend(m);
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Roughly the memory a value takes: its text length plus a word per node.
fn approximate_size(v: &Value) -> usize {
    match v {
        Value::Array(items) => 16 + items.iter().map(approximate_size).sum::<usize>(),
        Value::Object(m) => {
            16 + m
                .iter()
                .map(|(k, v)| k.len() + approximate_size(v))
                .sum::<usize>()
        }
        Value::String(s) => 16 + s.len(),
        _ => 16,
    }
}
