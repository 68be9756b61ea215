//! `nextval`, `currval` and `setval` as SQL functions.
//!
//! They change state outside the query (the node's sequence blocks, the
//! session's last values), so they are *volatile*: DataFusion neither folds
//! them into constants nor evaluates them once for many rows. Each call
//! produces one value per row, in row order. The sequence is named by
//! text (`nextval('t_id_seq')`, optionally schema-qualified or quoted), as
//! PostgreSQL's `regclass` argument is usually written.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int64Builder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::prelude::SessionContext;
use parking_lot::Mutex;
use shoal_kv::Kv;

use crate::error::SqlError;
use crate::sequences::SequenceCache;

/// What a session's sequence functions share.
#[derive(Clone)]
pub struct SequenceAccess {
    pub kv: Arc<Kv>,
    pub cache: Arc<SequenceCache>,
    pub database: String,
    /// The session's variables (`search_path`) and user (`$user`).
    pub vars: crate::vars::VarsReader,
    pub user: String,
    /// The session's last value of each sequence (`currval`), by
    /// `schema.name`.
    pub last: Arc<Mutex<HashMap<String, i64>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Next,
    Current,
    Set,
}

#[derive(Clone)]
struct SequenceFn {
    kind: Kind,
    signature: Signature,
    access: SequenceAccess,
}

impl std::fmt::Debug for SequenceFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SequenceFn({:?})", self.kind)
    }
}

impl PartialEq for SequenceFn {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
    }
}

impl Eq for SequenceFn {}

impl std::hash::Hash for SequenceFn {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.kind.hash(state);
    }
}

/// Registers the three functions in a session.
pub fn register(ctx: &SessionContext, access: SequenceAccess) {
    for (kind, args) in [(Kind::Next, 1), (Kind::Current, 1), (Kind::Set, 2)] {
        ctx.register_udf(ScalarUDF::new_from_impl(SequenceFn {
            kind,
            signature: Signature::new(TypeSignature::Any(args), Volatility::Volatile),
            access: access.clone(),
        }));
    }
}

/// The schemas to look a sequence named by `text` up in, and its name:
/// its own schema, or the session's search path.
fn sequence_name(a: &SequenceAccess, text: &str) -> (Vec<String>, String) {
    match crate::names::parse_text_name(text) {
        (Some(schema), name) => (vec![schema], name),
        (None, name) => {
            let path = a.vars.get("search_path").unwrap_or_default();
            (crate::names::parse_search_path(&path, &a.user), name)
        }
    }
}

fn external(e: SqlError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

impl SequenceFn {
    fn call(&self, name: &str, value: Option<i64>) -> Result<i64, SqlError> {
        let a = &self.access;
        let (schemas, name) = sequence_name(a, name);
        // The session's last values are kept by schema and name.
        let key = |schema: &str| format!("{schema}.{name}");
        match self.kind {
            Kind::Next => {
                let (v, schema) = a.cache.next(&a.kv, &a.database, &schemas, &name)?;
                a.last.lock().insert(key(&schema), v);
                Ok(v)
            }
            Kind::Current => {
                let last = a.last.lock();
                schemas
                    .iter()
                    .find_map(|s| last.get(&key(s)).copied())
                    .ok_or_else(|| {
                        SqlError::NotInPrerequisiteState(format!(
                            "currval of sequence \"{name}\" is not yet defined in this session"
                        ))
                    })
            }
            Kind::Set => {
                let v = value
                    .ok_or_else(|| SqlError::InvalidParameter("setval needs a value".into()))?;
                let (v, schema) = a.cache.set(&a.kv, &a.database, &schemas, &name, v)?;
                a.last.lock().insert(key(&schema), v);
                Ok(v)
            }
        }
    }
}

impl ScalarUDFImpl for SequenceFn {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Next => "nextval",
            Kind::Current => "currval",
            Kind::Set => "setval",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        if args.number_rows == 0 {
            return Ok(ColumnarValue::Array(Arc::new(Int64Builder::new().finish())));
        }
        let rows = args.number_rows;
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<DfResult<_>>()?;
        let mut out = Int64Builder::with_capacity(rows);
        for row in 0..rows {
            let name =
                match ScalarValue::try_from_array(&arrays[0], row)?.cast_to(&DataType::Utf8)? {
                    ScalarValue::Utf8(Some(n)) => n,
                    _ => {
                        out.append_null();
                        continue;
                    }
                };
            let value = match arrays.get(1) {
                Some(a) if !a.is_null(row) => {
                    match ScalarValue::try_from_array(a, row)?.cast_to(&DataType::Int64)? {
                        ScalarValue::Int64(v) => v,
                        _ => None,
                    }
                }
                Some(_) => {
                    out.append_null();
                    continue;
                }
                None => None,
            };
            out.append_value(self.call(&name, value).map_err(external)?);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}
