//! `bytea` where DataFusion reads it as a string: casts and lengths.
//!
//! - `'\x00ff'::bytea` and `bytea '\x00ff'` read the text as PostgreSQL
//!   reads bytea input (`\x` hex, or escapes), through `shoal_bytea_in`
//!   (the compat rewrite turns such casts into calls of it); DataFusion's
//!   own cast would keep the text's characters as the bytes. A value that
//!   is already bytea passes through.
//! - `length`, `octet_length` and `bit_length` of a bytea count its bytes
//!   (and bits), as in PostgreSQL; DataFusion's versions accept only
//!   strings, and coerced bytea that is not UTF-8 failed. Each of the three
//!   keeps DataFusion's own function for strings and adds the bytea case.

use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::compute::kernels::length;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result as DfResult;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::prelude::SessionContext;

use crate::typed_udf::{Returns, udf};

/// The input function of `::bytea` casts.
pub const INPUT: &str = "shoal_bytea_in";

/// Registers `shoal_bytea_in` and the bytea-aware length functions.
pub fn register(ctx: &SessionContext) {
    ctx.register_udf(
        udf(INPUT, Some(1), Returns::Other(DataType::Binary), |a| {
            Ok(match &a[0].value {
                ScalarValue::Binary(b) | ScalarValue::LargeBinary(b) => {
                    ScalarValue::Binary(b.clone())
                }
                ScalarValue::BinaryView(b) => ScalarValue::Binary(b.clone()),
                other => match crate::typed_udf::text(other) {
                    Some(t) => ScalarValue::Binary(Some(crate::dml::parse_bytea(&t)?)),
                    None => ScalarValue::Binary(None),
                },
            })
        })
        .as_ref()
        .clone(),
    );
    for kind in [Kind::Length, Kind::OctetLength, Kind::BitLength] {
        let Some(strings) = ctx.udf(kind.name()).ok() else {
            continue;
        };
        ctx.register_udf(ScalarUDF::new_from_impl(ByteaLength::new(kind, strings)));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Length,
    OctetLength,
    BitLength,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Length => "length",
            Kind::OctetLength => "octet_length",
            Kind::BitLength => "bit_length",
        }
    }
}

/// A length function: bytea counted here, strings by DataFusion's own.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ByteaLength {
    kind: Kind,
    strings: Arc<ScalarUDF>,
    signature: Signature,
    aliases: Vec<String>,
}

impl ByteaLength {
    fn new(kind: Kind, strings: Arc<ScalarUDF>) -> ByteaLength {
        let signature = Signature::one_of(
            vec![
                TypeSignature::String(1),
                TypeSignature::Exact(vec![DataType::Binary]),
                TypeSignature::Exact(vec![DataType::LargeBinary]),
                TypeSignature::Exact(vec![DataType::BinaryView]),
            ],
            Volatility::Immutable,
        );
        let aliases = strings.aliases().to_vec();
        ByteaLength {
            kind,
            strings,
            signature,
            aliases,
        }
    }
}

fn is_binary(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView
    )
}

impl ScalarUDFImpl for ByteaLength {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        match arg_types.first() {
            Some(t) if is_binary(t) => Ok(DataType::Int32),
            _ => self.strings.return_type(arg_types),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let binary = args
            .arg_fields
            .first()
            .is_some_and(|f| is_binary(f.data_type()));
        if !binary {
            return self.strings.invoke_with_args(args);
        }
        let Some(arg) = args.args.first() else {
            return Ok(ColumnarValue::Scalar(ScalarValue::Int32(None)));
        };
        let scalar = matches!(arg, ColumnarValue::Scalar(_));
        let array: ArrayRef = arg.to_array(if scalar { 1 } else { args.number_rows })?;
        let counted = match self.kind {
            Kind::Length | Kind::OctetLength => length::length(&array)?,
            Kind::BitLength => length::bit_length(&array)?,
        };
        let counted = datafusion::arrow::compute::cast(&counted, &DataType::Int32)?;
        Ok(match scalar {
            true => ColumnarValue::Scalar(ScalarValue::try_from_array(&counted, 0)?),
            false => ColumnarValue::Array(counted),
        })
    }
}
