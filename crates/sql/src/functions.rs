//! Built-in functions PostgreSQL clients call that DataFusion lacks or
//! answers differently: `version()`, `current_database()`,
//! `current_schema()`, `current_user` and friends, and
//! `current_setting(name [, missing_ok])`, which reads the session's
//! variables as they are when it runs; and `round` in DataFusion's place
//! (`float_round.rs`: floats round halfway cases to even).
//!
//! They are registered per session because their answers depend on the
//! session (database and user).

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};

use crate::vars::SERVER_VERSION;

/// What `version()` returns. Tools parse the leading "PostgreSQL X.Y".
pub fn version_string() -> String {
    format!(
        "PostgreSQL {SERVER_VERSION} (Shoal {}) on {}-{}, compiled by rustc",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        std::env::consts::OS
    )
}

fn constant(ctx: &SessionContext, name: &str, value: String) {
    let udf = create_udf(
        name,
        vec![],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(move |_args: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
                value.clone(),
            ))))
        }),
    );
    ctx.register_udf(udf);
}

/// Registers the session's functions.
pub fn register(ctx: &SessionContext, database: &str, user: &str, vars: crate::vars::VarsReader) {
    constant(ctx, "version", version_string());
    ctx.register_udf(crate::float_round::udf());
    constant(ctx, "current_database", database.to_string());
    constant(ctx, "current_catalog", database.to_string());
    for name in ["current_user", "session_user", "user", "current_role"] {
        constant(ctx, name, user.to_string());
    }
    let unknown = |name: &str| {
        datafusion::error::DataFusionError::External(Box::new(
            crate::error::SqlError::UndefinedObject(format!(
                "unrecognized configuration parameter \"{name}\""
            )),
        ))
    };
    row_fn(ctx, "current_setting", None, DataType::Utf8, move |a| {
        let (Some(name), missing_ok) = (
            a.first().and_then(as_string),
            a.get(1).and_then(|v| match v.cast_to(&DataType::Boolean) {
                Ok(ScalarValue::Boolean(b)) => b,
                _ => None,
            }),
        ) else {
            return Ok(ScalarValue::Utf8(None));
        };
        match vars.get(&name) {
            Some(value) => Ok(ScalarValue::Utf8(Some(value))),
            None if missing_ok == Some(true) => Ok(ScalarValue::Utf8(None)),
            None => Err(unknown(&name)),
        }
    });
}

/// Registers a row-at-a-time function over scalar values, for the catalog
/// functions tools call: they run over a handful of catalog rows, so
/// clarity wins over vectorization (`typed_udf.rs`).
fn row_fn(
    ctx: &SessionContext,
    name: &'static str,
    args: Option<usize>,
    returns: DataType,
    f: impl Fn(&[ScalarValue]) -> datafusion::error::Result<ScalarValue> + Send + Sync + 'static,
) {
    let udf = crate::typed_udf::udf_with(
        name,
        args,
        crate::typed_udf::Returns::Other(returns),
        Volatility::Stable,
        move |a| {
            let values: Vec<ScalarValue> = a.iter().map(|a| a.value.clone()).collect();
            f(&values).map_err(crate::error::SqlError::from)
        },
    );
    ctx.register_udf(udf.as_ref().clone());
}

fn as_i64(v: &ScalarValue) -> Option<i64> {
    match v.cast_to(&DataType::Int64) {
        Ok(ScalarValue::Int64(x)) => x,
        _ => None,
    }
}

fn as_string(v: &ScalarValue) -> Option<String> {
    match v.cast_to(&DataType::Utf8) {
        Ok(ScalarValue::Utf8(x)) => x,
        _ => None,
    }
}

/// The PostgreSQL type OID of values of an Arrow field: its `pg_type`
/// entry if it has one, else by its Arrow type.
pub fn field_type_oid(field: &datafusion::arrow::datatypes::Field) -> i64 {
    use datafusion::arrow::datatypes::DataType as D;
    if let Some(oid) = field
        .metadata()
        .get(crate::types::PG_TYPE_KEY)
        .and_then(|name| crate::pg_catalog::type_oid(name))
    {
        return oid;
    }
    match field.data_type() {
        D::Boolean => 16,
        D::Int8 | D::Int16 => 21,
        D::Int32 => 23,
        D::Int64 => 20,
        D::Float32 => 700,
        D::Float64 => 701,
        D::Decimal128(..) | D::Decimal256(..) => 1700,
        D::Binary | D::LargeBinary | D::BinaryView => 17,
        D::Date32 | D::Date64 => 1082,
        D::Timestamp(_, None) => 1114,
        D::Timestamp(_, Some(_)) => 1184,
        D::Interval(_) => 1186,
        D::List(element) | D::LargeList(element) => {
            crate::types::array_oid(field_type_oid(element) as u32) as i64
        }
        D::Null => 705,
        _ => 25,
    }
}

/// `format_type(type_oid, typmod)`.
pub fn format_type(oid: i64, typmod: i64) -> String {
    let with_len = |base: &str| {
        if typmod >= 4 {
            format!("{base}({})", typmod - 4)
        } else {
            base.to_string()
        }
    };
    match oid {
        16 => "boolean".into(),
        17 => "bytea".into(),
        18 => "\"char\"".into(),
        19 => "name".into(),
        20 => "bigint".into(),
        21 => "smallint".into(),
        23 => "integer".into(),
        25 => "text".into(),
        26 => "oid".into(),
        700 => "real".into(),
        701 => "double precision".into(),
        1042 => with_len("character"),
        1043 => with_len("character varying"),
        1082 => "date".into(),
        1083 => "time without time zone".into(),
        1114 => "timestamp without time zone".into(),
        1184 => "timestamp with time zone".into(),
        1186 => "interval".into(),
        1700 if typmod >= 4 => {
            let m = typmod - 4;
            format!("numeric({},{})", m >> 16, m & 0xFFFF)
        }
        1700 => "numeric".into(),
        2950 => "uuid".into(),
        114 => "json".into(),
        3802 => "jsonb".into(),
        705 => "unknown".into(),
        // An array type: its element's name, then `[]`.
        _ => match u32::try_from(oid)
            .ok()
            .and_then(crate::types::array_element)
        {
            Some(element) => format!("{}[]", format_type(element as i64, typmod)),
            None => "???".into(),
        },
    }
}

/// Registers the functions of `pg_catalog` that tools call. Those that need
/// the catalog read it through the session's transaction slot.
pub fn register_catalog_functions(
    ctx: &SessionContext,
    database: &str,
    slot: crate::providers::TxnSlot,
    vars: crate::providers::SessionVars,
) {
    // The schemas an unqualified name is looked for in.
    let path = {
        let vars = vars.clone();
        move || {
            crate::names::parse_search_path(&vars.0.get("search_path").unwrap_or_default(), &vars.1)
        }
    };
    // `current_schema()`: the first schema of the search path that exists.
    {
        let slot = slot.clone();
        let database = database.to_string();
        let path = path.clone();
        row_fn(ctx, "current_schema", Some(0), DataType::Utf8, move |_| {
            let Some(txn) = slot.lock().clone() else {
                return Ok(ScalarValue::Utf8(None));
            };
            let scope = crate::names::Scope {
                database: database.clone(),
                path: path(),
            };
            let existing = scope
                .existing(&txn)
                .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
            Ok(ScalarValue::Utf8(existing.into_iter().next()))
        });
    }
    let b = DataType::Boolean;
    let t = DataType::Utf8;
    for name in [
        "pg_table_is_visible",
        "pg_type_is_visible",
        "has_table_privilege",
        "has_schema_privilege",
        "has_database_privilege",
        "has_column_privilege",
        "pg_has_role",
    ] {
        row_fn(ctx, name, None, b.clone(), |_| {
            Ok(ScalarValue::Boolean(Some(true)))
        });
    }
    row_fn(
        ctx,
        "pg_relation_is_publishable",
        Some(1),
        b.clone(),
        |_| Ok(ScalarValue::Boolean(Some(false))),
    );
    row_fn(ctx, "pg_get_userbyid", Some(1), t.clone(), |_| {
        Ok(ScalarValue::Utf8(Some("shoal".into())))
    });
    row_fn(ctx, "pg_encoding_to_char", Some(1), t.clone(), |_| {
        Ok(ScalarValue::Utf8(Some("UTF8".into())))
    });
    for name in [
        "obj_description",
        "col_description",
        "shobj_description",
        "pg_get_statisticsobjdef_columns",
    ] {
        row_fn(ctx, name, None, t.clone(), |_| Ok(ScalarValue::Utf8(None)));
    }
    row_fn(ctx, "pg_get_expr", None, t.clone(), |a| {
        Ok(ScalarValue::Utf8(a.first().and_then(as_string)))
    });
    row_fn(ctx, "format_type", Some(2), t.clone(), |a| {
        Ok(ScalarValue::Utf8(
            as_i64(&a[0]).map(|oid| format_type(oid, as_i64(&a[1]).unwrap_or(-1))),
        ))
    });
    // `to_regtype(name)`: the type's OID, or NULL (drivers probe for
    // extension types such as hstore this way).
    row_fn(ctx, "to_regtype", Some(1), DataType::Int64, |a| {
        Ok(ScalarValue::Int64(
            as_string(&a[0]).and_then(|n| crate::pg_catalog::type_oid(&n)),
        ))
    });
    // `pg_typeof(x)`: the name of the argument's type.
    ctx.register_udf(
        crate::typed_udf::udf("pg_typeof", Some(1), crate::typed_udf::Returns::Text, |a| {
            let name = a[0]
                .field
                .as_deref()
                .map(|f| format_type(field_type_oid(f), -1));
            Ok(ScalarValue::Utf8(name))
        })
        .as_ref()
        .clone(),
    );
    // uuid: `gen_random_uuid()` (version 4) and the input function of
    // `x::uuid` casts, which checks and normalizes the text.
    ctx.register_udf(
        crate::typed_udf::udf_with(
            "gen_random_uuid",
            Some(0),
            crate::typed_udf::Returns::Uuid,
            Volatility::Volatile,
            |_| {
                Ok(ScalarValue::Utf8(Some(
                    uuid::Uuid::new_v4().hyphenated().to_string(),
                )))
            },
        )
        .as_ref()
        .clone(),
    );
    ctx.register_udf(
        crate::typed_udf::udf(
            "shoal_uuid_in",
            Some(1),
            crate::typed_udf::Returns::Uuid,
            |a| {
                Ok(ScalarValue::Utf8(
                    crate::typed_udf::text(&a[0].value)
                        .map(|t| {
                            crate::types::parse_uuid(&t).map(|u| crate::types::format_uuid(&u))
                        })
                        .transpose()?,
                ))
            },
        )
        .as_ref()
        .clone(),
    );
    row_fn(ctx, "pg_backend_pid", Some(0), DataType::Int32, |_| {
        Ok(ScalarValue::Int32(Some(std::process::id() as i32)))
    });

    let table_of = {
        let slot = slot.clone();
        let database = database.to_string();
        move |oid: i64| -> Option<Arc<crate::descriptor::TableDescriptor>> {
            let txn = slot.lock().clone()?;
            let tables = crate::catalog::list_tables(&txn, &database).ok()?;
            tables.into_iter().find(|d| d.oid() as i64 == oid)
        }
    };
    // The catalog view of index `id` of the table with OID `table_oid`.
    let index_of = move |table_oid: i64, id: u8| {
        let d = table_of(table_oid)?;
        let view = crate::catalog_indexes::indexes(&d)
            .into_iter()
            .find(|i| i.id == id)?;
        Some((d, view))
    };
    {
        let index_of = index_of.clone();
        // `pg_get_indexdef(oid [, column, pretty])`: the whole definition,
        // or with a column number above 0 that key column's name.
        row_fn(ctx, "pg_get_indexdef", None, t.clone(), move |a| {
            let column = a.get(1).and_then(as_i64).unwrap_or(0);
            let def = a
                .first()
                .and_then(as_i64)
                .and_then(crate::catalog_indexes::split_index_oid)
                .and_then(|(table, id)| index_of(table, id))
                .and_then(|(d, i)| match column {
                    0 => Some(crate::catalog_indexes::definition(&d, &i)),
                    n => {
                        let columns: Vec<usize> = i
                            .key
                            .iter()
                            .map(|(p, _)| *p)
                            .chain(i.include.iter().copied())
                            .collect();
                        usize::try_from(n - 1)
                            .ok()
                            .and_then(|k| columns.get(k))
                            .map(|p| crate::names::quote_if_needed(&d.columns[*p].name))
                    }
                });
            Ok(ScalarValue::Utf8(def))
        });
    }
    {
        let slot = slot.clone();
        let database = database.to_string();
        row_fn(ctx, "pg_get_constraintdef", None, t.clone(), move |a| {
            let def = a
                .first()
                .and_then(as_i64)
                .and_then(crate::catalog_indexes::split_constraint_oid)
                .and_then(|(table_oid, id)| {
                    let txn = slot.lock().clone()?;
                    let tables = crate::catalog::list_tables(&txn, &database).ok()?;
                    let d = tables.iter().find(|d| d.oid() as i64 == table_oid)?;
                    crate::catalog_constraints::constraints(d, &tables)
                        .into_iter()
                        .find(|c| c.id == id)
                        .map(|c| c.definition)
                });
            Ok(ScalarValue::Utf8(def))
        });
    }
    // `pg_get_serial_sequence(table, column)`: the sequence a SERIAL or
    // identity column draws from, schema-qualified.
    {
        let slot = slot.clone();
        let database = database.to_string();
        row_fn(
            ctx,
            "pg_get_serial_sequence",
            Some(2),
            t.clone(),
            move |a| {
                let (Some((schema, table)), Some((_, column))) = (
                    as_string(&a[0]).map(|n| crate::names::parse_text_name(&n)),
                    as_string(&a[1]).map(|n| crate::names::parse_text_name(&n)),
                ) else {
                    return Ok(ScalarValue::Utf8(None));
                };
                let Some(txn) = slot.lock().clone() else {
                    return Ok(ScalarValue::Utf8(None));
                };
                let owner = Some((table, column));
                let found = crate::sequences::all_sequences(&txn, &database)
                    .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?
                    .into_iter()
                    .find(|s| s.owned_by == owner && schema.as_ref().is_none_or(|q| *q == s.schema))
                    .map(|s| {
                        format!(
                            "{}.{}",
                            crate::names::quote_if_needed(&s.schema),
                            crate::names::quote_if_needed(&s.name)
                        )
                    });
                Ok(ScalarValue::Utf8(found))
            },
        );
    }
    // The table a relation name (possibly quoted or schema-qualified)
    // names, read in the statement's transaction.
    let relation = {
        let slot = slot.clone();
        let database = database.to_string();
        let path = path.clone();
        move |name: &str| -> (String, Option<i64>) {
            let (schema, bare) = crate::names::parse_text_name(name);
            let Some(txn) = slot.lock().clone() else {
                return (bare, None);
            };
            let schemas = match schema {
                Some(s) => vec![s],
                None => path(),
            };
            let found = schemas
                .iter()
                .find_map(|s| relation_oid(&txn, &database, s, &bare).ok().flatten());
            (bare, found)
        }
    };
    {
        let relation = relation.clone();
        row_fn(ctx, "shoal_regclass", Some(1), DataType::Int64, move |a| {
            if let Some(n) = as_i64(&a[0]) {
                return Ok(ScalarValue::Int64(Some(n)));
            }
            let Some(name) = as_string(&a[0]) else {
                return Ok(ScalarValue::Int64(None));
            };
            // An OID written as text (`'16384'::regclass`) is that OID.
            if let Ok(oid) = name.trim().parse::<u32>() {
                return Ok(ScalarValue::Int64(Some(i64::from(oid))));
            }
            if let Some(oid) = crate::pg_catalog::catalog_table_oid(&name) {
                return Ok(ScalarValue::Int64(Some(oid)));
            }
            match relation(&name) {
                (_, Some(oid)) => Ok(ScalarValue::Int64(Some(oid))),
                (bare, None) => Err(datafusion::error::DataFusionError::External(Box::new(
                    crate::error::SqlError::UndefinedTable(bare),
                ))),
            }
        });
    }
    // `x::regclass` as a query's output: the relation's name (or the OID
    // as text when nothing has it), as PostgreSQL prints a regclass.
    {
        let relation = relation.clone();
        let slot = slot.clone();
        let database = database.to_string();
        row_fn(
            ctx,
            "shoal_regclass_name",
            Some(1),
            DataType::Utf8,
            move |a| {
                let oid = match (as_i64(&a[0]), as_string(&a[0])) {
                    (Some(n), _) => n,
                    (None, None) => return Ok(ScalarValue::Utf8(None)),
                    (None, Some(text)) => match text.trim().parse::<u32>() {
                        Ok(n) => i64::from(n),
                        Err(_) => match relation(&text) {
                            (_, Some(oid)) => oid,
                            (bare, None) => {
                                return Err(datafusion::error::DataFusionError::External(
                                    Box::new(crate::error::SqlError::UndefinedTable(bare)),
                                ));
                            }
                        },
                    },
                };
                let name = slot
                    .lock()
                    .clone()
                    .and_then(|txn| relation_name(&txn, &database, oid));
                Ok(ScalarValue::Utf8(Some(
                    name.unwrap_or_else(|| oid.to_string()),
                )))
            },
        );
    }
    // `pg_partition_ancestors(rel)`: a relation and the partitioned tables
    // above it; no Shoal table is a partition, so the relation alone (psql
    // asks for it to list the foreign keys referencing a table).
    row_fn(
        ctx,
        "pg_partition_ancestors",
        Some(1),
        DataType::Int64,
        |a| Ok(ScalarValue::Int64(as_i64(&a[0]))),
    );
    // `to_regclass(name)`: the relation's OID, or NULL where `::regclass`
    // would fail.
    row_fn(ctx, "to_regclass", Some(1), DataType::Int64, move |a| {
        let oid = as_string(&a[0]).and_then(|name| relation(&name).1);
        Ok(ScalarValue::Int64(oid))
    });
}

/// The OID of the relation (table, index, view or sequence) `name` in
/// `schema`.
fn relation_oid(
    txn: &shoal_kv::Txn,
    database: &str,
    schema: &str,
    name: &str,
) -> crate::error::Result<Option<i64>> {
    if let Some(d) = crate::catalog::table_by_name(txn, database, schema, name)? {
        return Ok(Some(d.oid() as i64));
    }
    let owner = match crate::catalog::index_owner(txn, database, schema, name)? {
        Some(d) => Some(d),
        None => crate::catalog::pkey_owner(txn, database, schema, name)?,
    };
    if let Some(d) = owner {
        return Ok(crate::catalog_indexes::indexes(&d)
            .into_iter()
            .find(|i| i.name == name)
            .map(|i| i.oid));
    }
    if let Some(v) = crate::views::view_by_name(txn, database, schema, name)? {
        return Ok(Some(v.oid() as i64));
    }
    Ok(crate::sequences::sequence_by_name(txn, database, schema, name)?.map(|q| q.oid() as i64))
}

/// The name of the relation (table, index, view or sequence) with `oid`,
/// quoted where SQL needs it, and qualified outside `public`.
fn relation_name(txn: &shoal_kv::Txn, database: &str, oid: i64) -> Option<String> {
    let named = |schema: &str, n: &str| Some(crate::names::display(schema, n));
    for d in crate::catalog::list_tables(txn, database).ok()? {
        if d.oid() as i64 == oid {
            return named(&d.schema, &d.name);
        }
        if let Some(i) = crate::catalog_indexes::indexes(&d)
            .into_iter()
            .find(|i| i.oid == oid)
        {
            return named(&d.schema, &i.name);
        }
    }
    if let Some(v) = crate::views::all_views(txn, database)
        .ok()?
        .into_iter()
        .find(|v| v.oid() as i64 == oid)
    {
        return named(&v.schema, &v.name);
    }
    crate::sequences::all_sequences(txn, database)
        .ok()?
        .into_iter()
        .find(|q| q.oid() as i64 == oid)
        .and_then(|q| named(&q.schema, &q.name))
}
