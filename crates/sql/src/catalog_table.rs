//! Catalog tables built in memory: `pg_catalog` (`pg_catalog.rs`) and
//! the `information_schema` views DataFusion lacks
//! (`information_schema.rs`).
//!
//! A [`CatalogTable`] is a list of typed columns ([`Kind`]: PostgreSQL's
//! catalog types, each with the Arrow type it travels as and, where Arrow
//! cannot tell it, a `pg_type` field entry) and rows of [`V`] values. It is
//! built from the KV catalog in the statement's snapshot every time a query
//! names it, then handed to DataFusion as a memory table.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float32Builder, Int16Builder, Int32Builder, Int64Builder,
    StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::MemTable;
use datafusion::datasource::TableProvider;
use datafusion::error::Result as DfResult;

use crate::types::PG_TYPE_KEY;

/// Column kinds of catalog tables.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Oid,
    I16,
    I32,
    I64,
    F32,
    Bool,
    Text,
    /// PostgreSQL's one-byte `"char"`.
    Char,
    Name,
    /// `text[]`, always NULL for now (ACLs, options).
    TextArray,
    /// `int2[]`: column numbers (`conkey`).
    I16Array,
    /// `int2vector` (`indkey`, `indoption`): a list, shown space separated.
    I16Vector,
    /// `oidvector` (`indclass`).
    OidVector,
    /// `oid[]` (`polroles`).
    OidArray,
}

/// One catalog value.
pub(crate) enum V {
    N,
    I(i64),
    F(f32),
    B(bool),
    S(String),
    /// An `int2[]` or `oid[]`.
    A(Vec<i64>),
}

pub(crate) fn s(x: impl Into<String>) -> V {
    V::S(x.into())
}

pub(crate) struct CatalogTable {
    pub(crate) columns: &'static [(&'static str, Kind)],
    pub(crate) rows: Vec<Vec<V>>,
}

impl CatalogTable {
    pub(crate) fn new(columns: &'static [(&'static str, Kind)]) -> Self {
        CatalogTable {
            columns,
            rows: Vec::new(),
        }
    }

    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|(name, kind)| {
                    let (dt, pg) = match kind {
                        Kind::Oid => (DataType::Int64, Some("oid")),
                        Kind::I16 => (DataType::Int16, None),
                        Kind::I32 => (DataType::Int32, None),
                        Kind::I64 => (DataType::Int64, None),
                        Kind::F32 => (DataType::Float32, None),
                        Kind::Bool => (DataType::Boolean, None),
                        Kind::Text => (DataType::Utf8, None),
                        Kind::Char => (DataType::Utf8, Some("char")),
                        Kind::Name => (DataType::Utf8, Some("name")),
                        Kind::TextArray => (
                            DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
                            None,
                        ),
                        Kind::I16Array => (
                            DataType::List(Arc::new(Field::new_list_field(DataType::Int16, true))),
                            None,
                        ),
                        Kind::I16Vector => (
                            DataType::List(Arc::new(Field::new_list_field(DataType::Int16, true))),
                            Some("int2vector"),
                        ),
                        Kind::OidVector => (
                            DataType::List(Arc::new(Field::new_list_field(DataType::Int64, true))),
                            Some("oidvector"),
                        ),
                        Kind::OidArray => (
                            DataType::List(Arc::new(Field::new_list_field(DataType::Int64, true))),
                            None,
                        ),
                    };
                    let f = Field::new(*name, dt, true);
                    match pg {
                        Some(p) => f.with_metadata(HashMap::from([(
                            PG_TYPE_KEY.to_string(),
                            p.to_string(),
                        )])),
                        None => f,
                    }
                })
                .collect::<Vec<_>>(),
        ))
    }

    pub(crate) fn into_provider(self) -> DfResult<Arc<dyn TableProvider>> {
        let schema = self.schema();
        let n = self.rows.len();
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for (c, (_, kind)) in self.columns.iter().enumerate() {
            let cell = |r: usize| &self.rows[r][c];
            let array: ArrayRef = match kind {
                Kind::Oid | Kind::I64 => {
                    let mut b = Int64Builder::with_capacity(n);
                    (0..n).for_each(|r| b.append_option(int(cell(r))));
                    Arc::new(b.finish())
                }
                Kind::I32 => {
                    let mut b = Int32Builder::with_capacity(n);
                    (0..n).for_each(|r| b.append_option(int(cell(r)).map(|v| v as i32)));
                    Arc::new(b.finish())
                }
                Kind::I16 => {
                    let mut b = Int16Builder::with_capacity(n);
                    (0..n).for_each(|r| b.append_option(int(cell(r)).map(|v| v as i16)));
                    Arc::new(b.finish())
                }
                Kind::F32 => {
                    let mut b = Float32Builder::with_capacity(n);
                    (0..n).for_each(|r| {
                        b.append_option(match cell(r) {
                            V::F(f) => Some(*f),
                            _ => None,
                        })
                    });
                    Arc::new(b.finish())
                }
                Kind::Bool => {
                    let mut b = BooleanBuilder::with_capacity(n);
                    (0..n).for_each(|r| {
                        b.append_option(match cell(r) {
                            V::B(v) => Some(*v),
                            _ => None,
                        })
                    });
                    Arc::new(b.finish())
                }
                Kind::I16Array | Kind::I16Vector => {
                    let mut b = datafusion::arrow::array::ListBuilder::new(Int16Builder::new());
                    (0..n).for_each(|r| match cell(r) {
                        V::A(values) => {
                            values
                                .iter()
                                .for_each(|v| b.values().append_value(*v as i16));
                            b.append(true);
                        }
                        _ => b.append(false),
                    });
                    Arc::new(b.finish())
                }
                Kind::OidVector | Kind::OidArray => {
                    let mut b = datafusion::arrow::array::ListBuilder::new(Int64Builder::new());
                    (0..n).for_each(|r| match cell(r) {
                        V::A(values) => {
                            b.values().append_slice(values);
                            b.append(true);
                        }
                        _ => b.append(false),
                    });
                    Arc::new(b.finish())
                }
                Kind::TextArray => datafusion::arrow::array::new_null_array(
                    &DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
                    n,
                ),
                Kind::Text | Kind::Char | Kind::Name => {
                    let mut b = StringBuilder::with_capacity(n, n * 8);
                    (0..n).for_each(|r| {
                        b.append_option(match cell(r) {
                            V::S(v) => Some(v.as_str()),
                            _ => None,
                        })
                    });
                    Arc::new(b.finish())
                }
            };
            arrays.push(array);
        }
        let batch = RecordBatch::try_new(schema.clone(), arrays)?;
        Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
    }
}

fn int(v: &V) -> Option<i64> {
    match v {
        V::I(i) => Some(*i),
        _ => None,
    }
}

/// Subscripts of `int2vector` and `oidvector` values count from 0, as in
/// PostgreSQL (`i.indoption[k - 1]` in drivers' index queries), while
/// DataFusion's lists count from 1: this expression planner, run before
/// DataFusion's, moves the subscript of such a column by one.
#[derive(Debug, Default)]
pub struct VectorSubscripts;

impl datafusion::logical_expr::planner::ExprPlanner for VectorSubscripts {
    fn plan_field_access(
        &self,
        expr: datafusion::logical_expr::planner::RawFieldAccessExpr,
        schema: &datafusion::common::DFSchema,
    ) -> DfResult<
        datafusion::logical_expr::planner::PlannerResult<
            datafusion::logical_expr::planner::RawFieldAccessExpr,
        >,
    > {
        use datafusion::logical_expr::planner::{PlannerResult, RawFieldAccessExpr};
        use datafusion::logical_expr::{ExprSchemable, GetFieldAccess, lit};
        let is_vector = expr.expr.to_field(schema).is_ok_and(|(_, f)| {
            matches!(
                f.metadata().get(PG_TYPE_KEY).map(String::as_str),
                Some("int2vector" | "oidvector")
            )
        });
        let RawFieldAccessExpr { field_access, expr } = expr;
        let field_access = match field_access {
            GetFieldAccess::ListIndex { key } if is_vector => GetFieldAccess::ListIndex {
                key: Box::new(*key + lit(1i64)),
            },
            other => other,
        };
        Ok(PlannerResult::Original(RawFieldAccessExpr {
            field_access,
            expr,
        }))
    }
}

/// The `SchemaProvider` of a schema of catalog tables: `$schema` has a
/// `build(&self, name) -> DfResult<Option<CatalogTable>>` method, and
/// `$tables` lists the table names it answers.
macro_rules! catalog_schema_provider {
    ($schema:ty, $tables:expr) => {
        #[async_trait::async_trait]
        impl datafusion::catalog::SchemaProvider for $schema {
            fn table_names(&self) -> Vec<String> {
                $tables.iter().map(|t| t.to_string()).collect()
            }

            async fn table(
                &self,
                name: &str,
            ) -> datafusion::error::Result<
                Option<std::sync::Arc<dyn datafusion::datasource::TableProvider>>,
            > {
                match self.build(name)? {
                    Some(t) => Ok(Some(t.into_provider()?)),
                    None => Ok(None),
                }
            }

            fn table_exist(&self, name: &str) -> bool {
                $tables.contains(&name)
            }
        }
    };
}
pub(crate) use catalog_schema_provider;
