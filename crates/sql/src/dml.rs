//! `INSERT`, `UPDATE` and `DELETE`.
//!
//! Each statement works in two phases. First a DataFusion query computes
//! everything the statement needs: the rows to insert (the `VALUES` list or
//! the `SELECT`), or the rows an `UPDATE`/`DELETE` matches together with
//! their new values. That query reads the transaction's state from *before*
//! the statement, so a statement never sees its own writes (no Halloween
//! problem) and a `WHERE` clause — with subqueries, `IN`, `EXISTS` or a
//! condition that is always false — selects exactly the rows it selects in a
//! `SELECT`. Then the writes are checked (NOT NULL, primary key uniqueness,
//! declared lengths) and applied to the transaction in one step, so a failed
//! statement leaves nothing behind.
//!
//! The internal query for `UPDATE`/`DELETE` reads the table under its DML
//! name (see `providers.rs`), which also exposes the hidden rowid, and keeps
//! the user's alias so qualified column references still resolve. The
//! tables of `UPDATE … FROM` and `DELETE … USING` are joined in the same
//! query; a target row matched several times changes once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::array::{Array, ArrayRef, BinaryArray, StringArray};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::FormatOptions;
use datafusion::common::ScalarValue;
use datafusion::sql::sqlparser::ast::{self, Statement};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use shoal_kv::Txn;

use crate::catalog;
use crate::descriptor::TableDescriptor;
use crate::error::{Result, SqlError};
use crate::names::{self, quote};
use crate::prepared::param_types as plan_param_types;
use crate::providers::DML_PREFIX;
use crate::session::{Output, Session};
pub(crate) use crate::statement_writes::StatementWrites;
use crate::types::{Datum, SqlType, datum_from_array};

/// Parameter types of a DML statement, for the extended protocol: Arrow
/// types, and PostgreSQL type OIDs where a parameter is assigned to a column.
pub async fn param_types(
    session: &Session,
    txn: &Arc<Txn>,
    stmt: &Statement,
) -> Result<(Vec<Option<DataType>>, Vec<Option<u32>>)> {
    let (plan, hints) = match stmt {
        Statement::Insert(insert) => {
            let (desc, targets) = insert_target(session, txn, insert)?;
            let (query, mut hints, _) = insert_source(insert, &desc, &targets)?;
            let plan = session.plan(&Statement::Query(Box::new(query))).await?;
            let counted = conflict_update_params(insert, &desc, &mut hints);
            let mut types = plan_param_types(&plan)?;
            if types.len() < counted {
                types.resize(counted, None);
            }
            return Ok(hinted(types, hints));
        }
        Statement::Update(update) => {
            let q = update_query(session, txn, update)?;
            (session.plan_sql(&q.sql).await?, q.hints)
        }
        Statement::Delete(delete) => {
            let (sql, _, _) = delete_query(session, txn, delete)?;
            (session.plan_sql(&sql).await?, Hints::new())
        }
        _ => return Ok((Vec::new(), Vec::new())),
    };
    Ok(hinted(plan_param_types(&plan)?, hints))
}

/// Parameter types from a plan, completed by the column types of bare
/// `$n` assigned to columns; and the PostgreSQL OIDs of the latter.
fn hinted(
    mut types: Vec<Option<DataType>>,
    hints: Hints,
) -> (Vec<Option<DataType>>, Vec<Option<u32>>) {
    let mut oids = vec![None; types.len()];
    for (n, ty) in hints {
        if types.len() < n {
            types.resize(n, None);
            oids.resize(n, None);
        }
        if types[n - 1].is_none() {
            types[n - 1] = Some(ty.arrow_type());
        }
        oids[n - 1] = Some(ty.pg_oid());
    }
    (types, oids)
}

/// The parameters of an insert's `ON CONFLICT … DO UPDATE` (its `SET` and
/// `WHERE`), which the planned source query does not see: a bare `$n`
/// assigned to a column gets the column's type in `hints`; the result is
/// the highest parameter number used there (0 without any).
fn conflict_update_params(
    insert: &ast::Insert,
    desc: &TableDescriptor,
    hints: &mut Hints,
) -> usize {
    let Some(ast::OnInsert::OnConflict(clause)) = &insert.on else {
        return 0;
    };
    let ast::OnConflictAction::DoUpdate(update) = &clause.action else {
        return 0;
    };
    let mut highest = 0;
    let mut count = |e: &ast::Expr| {
        let _ = ast::visit_expressions(e, |e| {
            if let Some(p) = crate::fastpath::param_index(e) {
                highest = highest.max(p + 1);
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
    };
    for a in &update.assignments {
        count(&a.value);
        if let (ast::AssignmentTarget::ColumnName(col), Some(p)) =
            (&a.target, crate::fastpath::param_index(&a.value))
            && let Ok((pos, _)) = target_column(desc, col)
        {
            hints
                .entry(p + 1)
                .or_insert_with(|| desc.columns[pos].ty.clone());
        }
    }
    if let Some(selection) = &update.selection {
        count(selection);
    }
    highest
}

/// The columns a DML statement's `RETURNING` list produces, if it has one
/// (for Describe).
pub async fn returning_schema(
    session: &Session,
    txn: &Arc<Txn>,
    stmt: &Statement,
) -> Result<Option<datafusion::arrow::datatypes::SchemaRef>> {
    let (desc, alias, items) = match stmt {
        Statement::Insert(insert) => {
            let Some(items) = &insert.returning else {
                return Ok(None);
            };
            let (desc, _) = insert_target(session, txn, insert)?;
            let alias = insert
                .table_alias
                .as_ref()
                .map_or_else(|| desc.name.clone(), |a| names::fold(&a.alias));
            (desc, alias, items)
        }
        Statement::Update(update) => {
            let Some(items) = &update.returning else {
                return Ok(None);
            };
            let q = update_query(session, txn, update)?;
            (q.desc, q.alias, items)
        }
        Statement::Delete(delete) => {
            let Some(items) = &delete.returning else {
                return Ok(None);
            };
            let (_, desc, alias) = delete_query(session, txn, delete)?;
            (desc, alias, items)
        }
        _ => return Ok(None),
    };
    crate::returning::schema(session, &desc, &alias, items)
        .await
        .map(Some)
}

pub(crate) fn lookup(
    session: &Session,
    txn: &Txn,
    name: &ast::ObjectName,
) -> Result<Arc<TableDescriptor>> {
    let (schema, table) = session.scope().resolve(txn, name)?;
    catalog::table_by_name(txn, session.database(), &schema, &table)?
        .ok_or(SqlError::UndefinedTable(table))
}

/// The DML view of a table (`providers.rs`), as SQL text naming its
/// schema.
fn dml_relation(desc: &TableDescriptor) -> String {
    format!(
        "{}.{}",
        quote(&desc.schema),
        quote(&format!("{DML_PREFIX}{}", desc.name))
    )
}

fn insert_target(
    session: &Session,
    txn: &Txn,
    insert: &ast::Insert,
) -> Result<(Arc<TableDescriptor>, Vec<usize>)> {
    let ast::TableObject::TableName(name) = &insert.table else {
        return Err(SqlError::NotSupported(
            "INSERT INTO a table function".into(),
        ));
    };
    let desc = lookup(session, txn, name)?;
    let targets = if insert.columns.is_empty() {
        desc.visible_columns()
    } else {
        let mut targets = Vec::with_capacity(insert.columns.len());
        for c in &insert.columns {
            let (pos, col) = target_column(&desc, c)?;
            if targets.contains(&pos) {
                return Err(SqlError::DuplicateColumn(format!(
                    "column \"{col}\" specified more than once"
                )));
            }
            targets.push(pos);
        }
        targets
    };
    Ok((desc, targets))
}

/// The visible column a DML statement names as a target (`INSERT` column
/// list, `SET` target): its position and folded name.
pub(crate) fn target_column(
    desc: &TableDescriptor,
    name: &ast::ObjectName,
) -> Result<(usize, String)> {
    let column = name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map(names::fold)
        .ok_or_else(|| SqlError::Syntax(format!("invalid column name {name}")))?;
    let pos = desc
        .column_index(&column)
        .filter(|p| !desc.columns[*p].hidden)
        .ok_or_else(|| {
            SqlError::UndefinedColumn(format!(
                "column \"{column}\" of relation \"{}\" does not exist",
                desc.name
            ))
        })?;
    Ok((pos, column))
}

/// The query producing the rows to insert, and the columns its output
/// fills: the named ones, then every other visible column with a `DEFAULT`
/// (its expression appended to each row). `DEFAULT` in a `VALUES` list is
/// the column's default (NULL without one), and `DEFAULT VALUES` is every
/// column's. Bare `$n` in a `VALUES` list are given the type of their
/// target column.
/// A column's default as SQL (NULL without one). A sequence it names
/// without a schema (`nextval('t_id_seq')`, as SERIAL writes it) is the
/// one in the table's schema, whatever the session's search path, as
/// PostgreSQL binds it when the default is created.
pub(crate) fn default_sql(desc: &TableDescriptor, pos: usize) -> Result<String> {
    let Some(text) = desc.columns[pos].default.as_deref() else {
        return Ok("NULL".into());
    };
    if !text.contains("nextval") {
        return Ok(text.to_string());
    }
    let mut expr = parse_expr(text)?;
    let _ = ast::visit_expressions_mut(&mut expr, |e| {
        if let ast::Expr::Function(f) = e
            && f.name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .is_some_and(|i| i.value.eq_ignore_ascii_case("nextval"))
            && let ast::FunctionArguments::List(list) = &mut f.args
            && let [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(ast::Expr::Value(v)))] =
                list.args.as_mut_slice()
            && let ast::Value::SingleQuotedString(name) = &mut v.value
            && let (None, bare) = names::parse_text_name(name)
        {
            *name = format!("{}.{}", quote(&desc.schema), quote(&bare));
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    Ok(expr.to_string())
}

fn insert_source(
    insert: &ast::Insert,
    desc: &TableDescriptor,
    targets: &[usize],
) -> Result<(ast::Query, Hints, Vec<usize>)> {
    let mut hints = Hints::new();
    let default_of = |pos: usize| default_sql(desc, pos);
    let Some(source) = &insert.source else {
        let visible = desc.visible_columns();
        let row: Vec<String> = visible
            .iter()
            .map(|p| default_of(*p))
            .collect::<Result<_>>()?;
        let query = parse_query(&format!("VALUES ({})", row.join(", ")))?;
        return Ok((query, hints, visible));
    };
    // Without a column list, a shorter `VALUES` row fills the first
    // columns; the rest take their defaults, as in PostgreSQL.
    let targets = match source.body.as_ref() {
        ast::SetExpr::Values(values) if insert.columns.is_empty() => {
            let width = values.rows.first().map_or(0, |r| r.content.len());
            if width < targets.len() && values.rows.iter().all(|r| r.content.len() == width) {
                &targets[..width]
            } else {
                targets
            }
        }
        _ => targets,
    };
    let defaulted: Vec<usize> = desc
        .visible_columns()
        .into_iter()
        .filter(|p| !targets.contains(p) && desc.columns[*p].default.is_some())
        .collect();
    // Parsed once, copied into each row.
    let defaults: Vec<ast::Expr> = defaulted
        .iter()
        .map(|p| parse_expr(&default_of(*p)?))
        .collect::<Result<_>>()?;
    let mut query = (**source).clone();
    if let ast::SetExpr::Values(values) = query.body.as_mut() {
        for row in values.rows.iter_mut() {
            if row.content.len() > targets.len() {
                return Err(SqlError::Syntax(
                    "INSERT has more expressions than target columns".into(),
                ));
            }
            if row.content.len() < targets.len() {
                return Err(SqlError::Syntax(
                    "INSERT has more target columns than expressions".into(),
                ));
            }
            for (expr, pos) in row.content.iter_mut().zip(targets) {
                if let ast::Expr::Identifier(ident) = expr
                    && ident.quote_style.is_none()
                    && ident.value.eq_ignore_ascii_case("default")
                {
                    *expr = parse_expr(&default_of(*pos)?)?;
                    continue;
                }
                typed_placeholder(expr, &desc.columns[*pos].ty, &mut hints)?;
                typed_literal(expr, &desc.columns[*pos].ty);
            }
            row.content.extend(defaults.iter().cloned());
        }
    } else if !defaulted.is_empty() {
        let list: Vec<String> = defaults.iter().map(ToString::to_string).collect();
        query = parse_query(&format!(
            "SELECT shoal_insert_source.*, {} FROM ({query}) AS shoal_insert_source",
            list.join(", ")
        ))?;
    }
    let mut all = targets.to_vec();
    all.extend(defaulted);
    Ok((values_with_subqueries_as_selects(query)?, hints, all))
}

/// `VALUES` rows holding a subquery, as `SELECT … UNION ALL SELECT …`.
/// DataFusion evaluates a `VALUES` list's expressions on their own, with
/// no plan to run a subquery in (`INSERT … VALUES ((SELECT max(id) + 1
/// FROM t), …)` failed with an internal error); a projection plans its
/// scalar subqueries (EXISTS and IN there are refused as not supported,
/// 0A000, rather than failing inside). Rows without subqueries stay a
/// `VALUES` list.
fn values_with_subqueries_as_selects(query: ast::Query) -> Result<ast::Query> {
    let ast::SetExpr::Values(values) = query.body.as_ref() else {
        return Ok(query);
    };
    let has_subquery = ast::visit_expressions(values, |e| match e {
        ast::Expr::Subquery(_) | ast::Expr::Exists { .. } | ast::Expr::InSubquery { .. } => {
            std::ops::ControlFlow::Break(())
        }
        _ => std::ops::ControlFlow::Continue(()),
    })
    .is_break();
    if !has_subquery || query.order_by.is_some() || query.limit_clause.is_some() {
        return Ok(query);
    }
    let selects: Vec<String> = values
        .rows
        .iter()
        .map(|row| {
            // Named as a VALUES list names its columns (a projection's
            // names must differ).
            let exprs: Vec<String> = row
                .content
                .iter()
                .enumerate()
                .map(|(i, e)| format!("{e} AS column{}", i + 1))
                .collect();
            format!("SELECT {}", exprs.join(", "))
        })
        .collect();
    parse_query(&selects.join(" UNION ALL "))
}

pub(crate) fn parse_expr(sql: &str) -> Result<ast::Expr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| SqlError::Internal(format!("cannot parse stored expression {sql}: {e}")))
}

fn parse_query(sql: &str) -> Result<ast::Query> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_query())
        .map(|q| *q)
        .map_err(|e| SqlError::Internal(format!("cannot parse internal query {sql}: {e}")))
}

/// Types of `$n` parameters known from the column they are assigned to.
type Hints = HashMap<usize, SqlType>;

/// Wraps a bare placeholder in a cast to the column's type, so DataFusion
/// (and the client) know what type it is.
fn typed_placeholder(expr: &mut ast::Expr, ty: &SqlType, hints: &mut Hints) -> Result<()> {
    let ast::Expr::Value(v) = expr else {
        return Ok(());
    };
    let ast::Value::Placeholder(name) = &v.value else {
        return Ok(());
    };
    if let Ok(n) = name.trim_start_matches('$').parse::<usize>()
        && n > 0
    {
        hints.insert(n, ty.clone());
    }
    let text = format!("CAST({expr} AS {})", cast_type_name(ty));
    *expr = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&text)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| SqlError::Internal(format!("cannot type parameter: {e}")))?;
    Ok(())
}

/// A string literal for an array, interval or timestamptz column is read
/// as that type here, so that a `VALUES` list mixing `'{1,2}'` and
/// `ARRAY[3]` (or `'1 day'` and `interval '2 hours'`) has one type per
/// column, as in PostgreSQL, and a time without an offset is read in the
/// session's zone.
fn typed_literal(expr: &mut ast::Expr, ty: &SqlType) {
    let ast::Expr::Value(v) = expr else {
        return;
    };
    if !matches!(v.value, ast::Value::SingleQuotedString(_)) {
        return;
    }
    let text = std::mem::replace(expr, ast::Expr::value(ast::Value::Null));
    *expr = match ty {
        SqlType::Array(element) => {
            let element = ast::Expr::value(ast::Value::SingleQuotedString(element.pg_name()));
            crate::compat::call(crate::array_functions::NAME, vec![text, element])
        }
        SqlType::TimestampTz => crate::compat::call(crate::datetime_functions::NAME, vec![text]),
        SqlType::Interval => crate::compat::call(crate::interval_input::NAME, vec![text]),
        _ => text,
    };
}

/// A type name DataFusion's SQL planner understands for a cast.
pub(crate) fn cast_type_name(ty: &SqlType) -> String {
    match ty {
        SqlType::SmallInt => "smallint".into(),
        SqlType::Integer => "integer".into(),
        SqlType::BigInt => "bigint".into(),
        SqlType::Real => "real".into(),
        SqlType::Double => "double precision".into(),
        SqlType::Numeric { precision, scale } => format!("numeric({precision},{scale})"),
        SqlType::Boolean => "boolean".into(),
        SqlType::Text
        | SqlType::Varchar(_)
        | SqlType::Char(_)
        | SqlType::Uuid
        | SqlType::Json
        | SqlType::Jsonb => "text".into(),
        SqlType::Interval => "interval".into(),
        // Array parameters arrive as array text and are read by
        // `cast_column`, which DataFusion's casts cannot do.
        SqlType::Array(_) => "text".into(),
        SqlType::Bytea => "bytea".into(),
        SqlType::Date => "date".into(),
        SqlType::Timestamp | SqlType::TimestampTz => "timestamp".into(),
    }
}

/// Generates values for hidden rowid columns: unique per node, increasing.
/// Microseconds shifted left leave room for 1024 ids per microsecond before
/// the generator runs ahead of the clock.
pub(crate) fn next_rowid() -> i64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
        << 10;
    let mut prev = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(prev + 1);
        match LAST.compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return (next & (i64::MAX as u64)) as i64,
            Err(p) => prev = p,
        }
    }
}

/// Casts a computed column to the column's declared type. Casts are strict:
/// text that does not parse, or a number out of range, is an error rather
/// than a NULL.
pub(crate) fn cast_column(array: &ArrayRef, ty: &SqlType) -> Result<ArrayRef> {
    let target = ty.arrow_type();
    if array.data_type() == &target {
        return Ok(array.clone());
    }
    let is_text = matches!(
        array.data_type(),
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
    );
    if is_text
        && matches!(
            ty,
            SqlType::Bytea | SqlType::Date | SqlType::Timestamp | SqlType::TimestampTz
        )
    {
        return read_text(array, ty);
    }
    if let SqlType::Array(element) = ty
        && is_text
    {
        return read_array_text(array, element);
    }
    if matches!(array.data_type(), DataType::Boolean)
        && !matches!(target, DataType::Boolean | DataType::Utf8)
    {
        return Err(SqlError::DatatypeMismatch(format!(
            "column is of type {} but expression is of type boolean",
            ty.pg_name()
        )));
    }
    let rounded = crate::rounding_casts::round_for_integer(array, &target)?;
    let array = rounded.as_ref().unwrap_or(array);
    cast_with_options(array, &target, &strict()).map_err(|e| match e {
        datafusion::arrow::error::ArrowError::CastError(m)
            if m.contains("overflow") || m.contains("Overflow") || m.contains("too large") =>
        {
            SqlError::NumericOutOfRange(format!("{} out of range", ty.pg_name()))
        }
        datafusion::arrow::error::ArrowError::CastError(m)
        | datafusion::arrow::error::ArrowError::ParseError(m) => {
            if m.contains("Can't cast value")
                || m.contains("too large to store")
                || m.contains("out of range")
            {
                SqlError::NumericOutOfRange(format!("{} out of range", ty.pg_name()))
            } else if m.contains("not supported") || m.contains("Unsupported") {
                SqlError::DatatypeMismatch(format!(
                    "column is of type {} but expression is of type {}",
                    ty.pg_name(),
                    array.data_type()
                ))
            } else {
                SqlError::InvalidText(format!(
                    "invalid input syntax for type {}: {m}",
                    ty.pg_name()
                ))
            }
        }
        other => SqlError::from(datafusion::error::DataFusionError::from(other)),
    })
}

/// Text to a bytea, date or timestamp column, read as PostgreSQL reads it
/// (`\x` hex or escapes for bytea; `datetime.rs` for times: optional
/// seconds, a zone after the time), where Arrow's casts read less.
fn read_text(array: &ArrayRef, ty: &SqlType) -> Result<ArrayRef> {
    use datafusion::arrow::array::{Date32Array, TimestampMicrosecondArray};
    let text = utf8(array)?;
    Ok(match ty {
        SqlType::Bytea => Arc::new(BinaryArray::from_iter(
            text.iter()
                .map(|v| v.map(parse_bytea).transpose())
                .collect::<Result<Vec<_>>>()?,
        )),
        SqlType::Date => Arc::new(
            text.iter()
                .map(|v| v.map(crate::datetime::date_days).transpose())
                .collect::<Result<Date32Array>>()?,
        ),
        SqlType::TimestampTz => Arc::new(
            text.iter()
                .map(|v| v.map(crate::datetime::timestamptz_micros).transpose())
                .collect::<Result<TimestampMicrosecondArray>>()?
                .with_timezone(crate::types::UTC),
        ),
        _ => Arc::new(
            text.iter()
                .map(|v| v.map(crate::datetime::timestamp_micros).transpose())
                .collect::<Result<TimestampMicrosecondArray>>()?,
        ),
    })
}

/// Array text (`'{1,2,NULL}'`) to an array column: every row's elements
/// gathered into one text column, cast to the element type as any value
/// would be, then cut back into rows.
fn read_array_text(array: &ArrayRef, element: &SqlType) -> Result<ArrayRef> {
    use datafusion::arrow::array::{ListArray, StringBuilder};
    use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
    let text = utf8(array)?;
    let mut items = StringBuilder::new();
    let mut offsets = vec![0i32];
    let mut valid = Vec::with_capacity(text.len());
    for value in text.iter() {
        let mut end = offsets.last().copied().unwrap_or(0);
        if let Some(value) = value {
            for item in crate::array_text::parse(value)? {
                items.append_option(item);
                end += 1;
            }
        }
        valid.push(value.is_some());
        offsets.push(end);
    }
    let items: ArrayRef = Arc::new(items.finish());
    let values = cast_column(&items, element)?;
    Ok(Arc::new(ListArray::new(
        Arc::new(datafusion::arrow::datatypes::Field::new(
            "item",
            element.arrow_type(),
            true,
        )),
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        values,
        Some(NullBuffer::from(valid)),
    )))
}

/// A text column as Arrow's plain `Utf8` array.
fn utf8(array: &ArrayRef) -> Result<StringArray> {
    let text = cast_with_options(array, &DataType::Utf8, &strict())
        .map_err(|e| SqlError::Internal(e.to_string()))?;
    text.as_any()
        .downcast_ref::<StringArray>()
        .cloned()
        .ok_or_else(|| SqlError::Internal("utf8 cast".into()))
}

fn strict() -> CastOptions<'static> {
    CastOptions {
        safe: false,
        format_options: FormatOptions::default(),
    }
}

/// Decodes PostgreSQL's text form of bytea: `\x` followed by hex digits, or
/// the escape format (backslash-octal escapes).
pub fn parse_bytea(s: &str) -> Result<Vec<u8>> {
    let bad = || SqlError::InvalidText(format!("invalid input syntax for type bytea: \"{s}\""));
    if let Some(hex) = s.strip_prefix("\\x").or_else(|| s.strip_prefix("\\X")) {
        let digits: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        if !digits.len().is_multiple_of(2) {
            return Err(bad());
        }
        return digits
            .chunks(2)
            .map(|p| {
                let h = (p[0] as char).to_digit(16).ok_or_else(bad)?;
                let l = (p[1] as char).to_digit(16).ok_or_else(bad)?;
                Ok((h * 16 + l) as u8)
            })
            .collect();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
        } else if bytes.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else if i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') as u32 * 64
                + (bytes[i + 2] - b'0') as u32 * 8
                + (bytes[i + 3] - b'0') as u32;
            if v > 255 {
                return Err(bad());
            }
            out.push(v as u8);
            i += 4;
        } else {
            return Err(bad());
        }
    }
    Ok(out)
}

/// Checks a full row before it is written.
pub(crate) fn check_row(desc: &TableDescriptor, row: &[Datum]) -> Result<()> {
    for (c, d) in desc.columns.iter().zip(row) {
        if d.is_null() && !c.nullable {
            return Err(SqlError::NotNullViolation {
                table: desc.name.clone(),
                column: c.name.clone(),
            });
        }
    }
    Ok(())
}

/// A row's primary key as PostgreSQL shows keys in messages:
/// `(a, b)=(1, x)`.
pub(crate) fn key_text(desc: &TableDescriptor, row: &[Datum]) -> String {
    columns_text(desc, &desc.primary_key, row)
}

/// Some columns of a row as PostgreSQL shows keys in messages.
pub(crate) fn columns_text(desc: &TableDescriptor, columns: &[usize], row: &[Datum]) -> String {
    let cols: Vec<&str> = columns
        .iter()
        .map(|p| desc.columns[*p].name.as_str())
        .collect();
    let vals: Vec<String> = columns.iter().map(|p| display_datum(&row[*p])).collect();
    format!("({})=({})", cols.join(", "), vals.join(", "))
}

pub(crate) fn display_datum(d: &Datum) -> String {
    match d {
        Datum::Null => "null".into(),
        Datum::Bool(b) => {
            if *b {
                "t".into()
            } else {
                "f".into()
            }
        }
        Datum::Int(i) => i.to_string(),
        Datum::Float(f) => f.to_string(),
        Datum::Decimal(v) => v.to_string(),
        Datum::Text(s) => s.clone(),
        Datum::Bytes(b) => format!(
            "\\x{}",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        ),
        Datum::Date(d) => d.to_string(),
        Datum::Timestamp(t) => t.to_string(),
        Datum::Uuid(u) => crate::types::format_uuid(u),
        Datum::Interval {
            months,
            days,
            micros,
        } => crate::interval::format(*months, *days, *micros),
        Datum::Array(items) => format!(
            "{{{}}}",
            items
                .iter()
                .map(|i| match i {
                    Datum::Null => "NULL".to_string(),
                    other => crate::array_text::quote_element(&display_datum(other)),
                })
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

/// Datums of row `r` of a batch, starting at column `offset`, cast to the
/// types of the given table columns.
pub(crate) fn batch_datums(
    batch: &RecordBatch,
    offset: usize,
    desc: &TableDescriptor,
    columns: &[usize],
    casted: &mut HashMap<usize, ArrayRef>,
    r: usize,
) -> Result<Vec<Datum>> {
    let mut out = Vec::with_capacity(columns.len());
    for (i, pos) in columns.iter().enumerate() {
        let idx = offset + i;
        let arr = match casted.entry(idx) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(cast_column(batch.column(idx), &desc.columns[*pos].ty)?)
            }
        };
        out.push(datum_from_array(arr, r, &desc.columns[*pos].ty)?);
    }
    Ok(out)
}

pub async fn insert(
    session: &Session,
    txn: &Arc<Txn>,
    insert: &ast::Insert,
    params: Vec<ScalarValue>,
) -> Result<Output> {
    let (desc, targets) = insert_target(session, txn, insert)?;
    let (query, _, targets) = insert_source(insert, &desc, &targets)?;
    let plan = session.plan(&Statement::Query(Box::new(query))).await?;
    let width = plan.schema().fields().len();
    if width > targets.len() {
        return Err(SqlError::Syntax(
            "INSERT has more expressions than target columns".into(),
        ));
    }
    if width < targets.len() {
        return Err(SqlError::Syntax(
            "INSERT has more target columns than expressions".into(),
        ));
    }
    let batches = session.collect(plan, params.clone()).await?;
    let mut writes = StatementWrites::for_session(session);
    let mut count = 0u64;
    let mut returned = Vec::new();
    let mut upsert = crate::upsert::Upsert::new(&desc, insert.on.as_ref())?;
    let alias = insert
        .table_alias
        .as_ref()
        .map_or_else(|| desc.name.clone(), |a| names::fold(&a.alias));
    for batch in &batches {
        let mut casted = HashMap::new();
        for r in 0..batch.num_rows() {
            let values = batch_datums(batch, 0, &desc, &targets, &mut casted, r)?;
            let mut row = vec![Datum::Null; desc.columns.len()];
            for (pos, v) in targets.iter().zip(values) {
                row[*pos] = v;
            }
            if desc.has_hidden_rowid() {
                row[desc.primary_key[0]] = Datum::Int(next_rowid());
            }
            check_row(&desc, &row)?;
            if let Some(u) = upsert.as_mut() {
                match u.decide(txn, &desc, &writes, &row)? {
                    crate::upsert::Decision::Insert => {}
                    crate::upsert::Decision::Skip | crate::upsert::Decision::Update => continue,
                }
            }
            writes.insert_new(txn, &desc, &row)?;
            if insert.returning.is_some() {
                returned.push(row);
            }
            count += 1;
        }
    }
    if let Some(u) = upsert {
        let updated = u
            .finish(session, &desc, &alias, &mut writes, params.clone())
            .await?;
        count += updated.len() as u64;
        if insert.returning.is_some() {
            returned.extend(updated);
        }
    }
    writes.apply(txn)?;
    match &insert.returning {
        Some(items) => {
            crate::returning::output(session, &desc, &alias, &returned, items, params, "INSERT")
                .await
        }
        None => Ok(Output::count("INSERT", count)),
    }
}

/// The name a DML statement's rows are addressed by: its alias, or the
/// table's own name.
pub(crate) fn alias_of(alias: Option<&ast::TableAlias>, desc: &TableDescriptor) -> String {
    alias
        .map(|a| names::fold(&a.name))
        .unwrap_or_else(|| desc.name.clone())
}

fn all_columns(desc: &TableDescriptor, alias: &str) -> Vec<String> {
    desc.columns
        .iter()
        .map(|c| format!("{}.{}", quote(alias), quote(&c.name)))
        .collect()
}

/// The tables of `UPDATE … FROM` or `DELETE … USING`, joined to the
/// target in its internal query (`, t1, t2 JOIN t3 ON …`). A target row
/// the join matches several times is changed once (module docs).
fn joined_tables(tables: &[ast::TableWithJoins]) -> String {
    tables.iter().map(|t| format!(", {t}")).collect()
}

/// Keeps a joined `UPDATE` / `DELETE` to one change per target row: the
/// join may match a row several times, and PostgreSQL then uses one of
/// the matches (which one is unspecified; here, the first).
struct OncePerRow {
    seen: Option<std::collections::HashSet<Vec<u8>>>,
}

impl OncePerRow {
    fn new(joined: bool) -> Self {
        OncePerRow {
            seen: joined.then(Default::default),
        }
    }

    /// Whether this is the first match of the row with key `key`.
    fn first_key(&mut self, key: &[u8]) -> bool {
        self.seen
            .as_mut()
            .is_none_or(|seen| seen.insert(key.to_vec()))
    }

    /// Whether this is the first match of `row`.
    fn first(&mut self, desc: &TableDescriptor, row: &[Datum]) -> Result<bool> {
        if self.seen.is_none() {
            return Ok(true);
        }
        Ok(self.first_key(&crate::row::encode_key(desc, row)?))
    }
}

/// The internal query of an UPDATE and what running it needs.
struct UpdateQuery {
    /// Every column of each matching row, followed by the new value of
    /// each assigned column.
    sql: String,
    desc: Arc<TableDescriptor>,
    /// Positions of the assigned columns, in assignment order.
    assigned: Vec<usize>,
    hints: Hints,
    /// The name the statement's rows are addressed by.
    alias: String,
}

/// The internal query of an UPDATE (see [`UpdateQuery`]).
fn update_query(session: &Session, txn: &Txn, update: &ast::Update) -> Result<UpdateQuery> {
    let mut hints = Hints::new();
    let joined = match &update.from {
        None => String::new(),
        Some(ast::UpdateTableFromKind::AfterSet(tables)) => joined_tables(tables),
        Some(ast::UpdateTableFromKind::BeforeSet(_)) => {
            return Err(SqlError::Syntax("FROM before SET".into()));
        }
    };
    if update.limit.is_some() || !update.order_by.is_empty() {
        return Err(SqlError::NotSupported("UPDATE … ORDER BY / LIMIT".into()));
    }
    if !update.table.joins.is_empty() {
        return Err(SqlError::NotSupported("UPDATE of a join".into()));
    }
    let ast::TableFactor::Table { name, alias, .. } = &update.table.relation else {
        return Err(SqlError::NotSupported(
            "UPDATE of something that is not a table".into(),
        ));
    };
    let desc = lookup(session, txn, name)?;
    let alias = alias_of(alias.as_ref(), &desc);
    let mut assigned = Vec::new();
    let mut exprs = Vec::new();
    for a in &update.assignments {
        let ast::AssignmentTarget::ColumnName(col) = &a.target else {
            return Err(SqlError::NotSupported("UPDATE SET (a, b) = …".into()));
        };
        let (pos, col_name) = target_column(&desc, col)?;
        if assigned.contains(&pos) {
            return Err(SqlError::DuplicateColumn(format!(
                "multiple assignments to same column \"{col_name}\""
            )));
        }
        let mut value = a.value.clone();
        if let ast::Expr::Identifier(i) = &value
            && i.quote_style.is_none()
            && i.value.eq_ignore_ascii_case("default")
        {
            value = parse_expr(&default_sql(&desc, pos)?)?;
        }
        typed_placeholder(&mut value, &desc.columns[pos].ty, &mut hints)?;
        // Named, so that equal expressions (`SET a = 0, b = 0`, `SET a =
        // a`) stay distinct output columns; they are read by position.
        exprs.push(format!(
            "{value} AS {}",
            quote(&format!("{DML_PREFIX}set_{}", assigned.len()))
        ));
        assigned.push(pos);
    }
    let mut projection = all_columns(&desc, &alias);
    projection.extend(exprs);
    let mut sql = format!(
        "SELECT {} FROM {} AS {}{joined}",
        projection.join(", "),
        dml_relation(&desc),
        quote(&alias)
    );
    if let Some(selection) = &update.selection {
        sql.push_str(&format!(" WHERE {selection}"));
    }
    Ok(UpdateQuery {
        sql,
        desc,
        assigned,
        hints,
        alias,
    })
}

pub async fn update(
    session: &Session,
    txn: &Arc<Txn>,
    update: &ast::Update,
    params: Vec<ScalarValue>,
) -> Result<Output> {
    let UpdateQuery {
        sql,
        desc,
        assigned,
        alias,
        ..
    } = update_query(session, txn, update)?;
    let plan = session.plan_sql(&sql).await?;
    let batches = session.collect(plan, params.clone()).await?;
    let mut returned = Vec::new();
    let all: Vec<usize> = (0..desc.columns.len()).collect();
    let ncols = desc.columns.len();
    // Old rows leave before new keys are checked (`StatementWrites`), so
    // key changes within one statement (`SET id = id + 1`) do not collide
    // with rows the same statement moves away.
    let mut writes = StatementWrites::for_session(session);
    let mut count = 0u64;
    let mut once = OncePerRow::new(update.from.is_some());
    for batch in &batches {
        let mut casted = HashMap::new();
        for r in 0..batch.num_rows() {
            let old = batch_datums(batch, 0, &desc, &all, &mut casted, r)?;
            if !once.first(&desc, &old)? {
                continue;
            }
            let new_values = batch_datums(batch, ncols, &desc, &assigned, &mut casted, r)?;
            let mut new = old.clone();
            for (pos, v) in assigned.iter().zip(new_values) {
                new[*pos] = v;
            }
            check_row(&desc, &new)?;
            if update.returning.is_some() {
                returned.push(new.clone());
            }
            writes.update_row(&desc, &old, new)?;
            count += 1;
        }
    }
    writes.apply(txn)?;
    if let Some(items) = &update.returning {
        return crate::returning::output(
            session, &desc, &alias, &returned, items, params, "UPDATE",
        )
        .await;
    }
    Ok(Output::count("UPDATE", count))
}

fn delete_query(
    session: &Session,
    txn: &Txn,
    delete: &ast::Delete,
) -> Result<(String, Arc<TableDescriptor>, String)> {
    let joined = delete
        .using
        .as_deref()
        .map(joined_tables)
        .unwrap_or_default();
    if delete.limit.is_some() || !delete.order_by.is_empty() {
        return Err(SqlError::NotSupported("DELETE … ORDER BY / LIMIT".into()));
    }
    let from = match &delete.from {
        ast::FromTable::WithFromKeyword(f) | ast::FromTable::WithoutKeyword(f) => f,
    };
    let [table] = from.as_slice() else {
        return Err(SqlError::NotSupported("DELETE from several tables".into()));
    };
    if !table.joins.is_empty() {
        return Err(SqlError::NotSupported("DELETE from a join".into()));
    }
    let ast::TableFactor::Table { name, alias, .. } = &table.relation else {
        return Err(SqlError::NotSupported(
            "DELETE from something that is not a table".into(),
        ));
    };
    let desc = lookup(session, txn, name)?;
    let alias = alias_of(alias.as_ref(), &desc);
    // The primary key finds the row; index entries need every indexed
    // column too, so a table with indexes reads whole rows.
    let keys: Vec<String> = if !whole_rows(&desc, delete) {
        desc.primary_key
            .iter()
            .map(|p| format!("{}.{}", quote(&alias), quote(&desc.columns[*p].name)))
            .collect()
    } else {
        all_columns(&desc, &alias)
    };
    let mut sql = format!(
        "SELECT {} FROM {} AS {}{joined}",
        keys.join(", "),
        dml_relation(&desc),
        quote(&alias)
    );
    if let Some(selection) = &delete.selection {
        sql.push_str(&format!(" WHERE {selection}"));
    }
    Ok((sql, desc, alias))
}

/// Whether a DELETE needs whole rows, not just keys: for index entries,
/// `RETURNING`, or the references to its rows.
fn whole_rows(desc: &TableDescriptor, delete: &ast::Delete) -> bool {
    !desc.indexes.is_empty() || delete.returning.is_some() || desc.has_row_constraints()
}

pub async fn delete(
    session: &Session,
    txn: &Arc<Txn>,
    delete: &ast::Delete,
    params: Vec<ScalarValue>,
) -> Result<Output> {
    let (sql, desc, alias) = delete_query(session, txn, delete)?;
    let plan = session.plan_sql(&sql).await?;
    let batches = session.collect(plan, params.clone()).await?;
    let whole_rows = whole_rows(&desc, delete);
    let mut returned = Vec::new();
    let mut writes = StatementWrites::for_session(session);
    let mut count = 0u64;
    let mut once = OncePerRow::new(delete.using.is_some());
    for batch in &batches {
        let mut casted = HashMap::new();
        for r in 0..batch.num_rows() {
            if !whole_rows {
                let key_values = batch_datums(batch, 0, &desc, &desc.primary_key, &mut casted, r)?;
                let key = crate::row::encode_key_values(&desc, &key_values)?;
                if !once.first_key(&key) {
                    continue;
                }
                writes.delete(key);
            } else {
                let all: Vec<usize> = (0..desc.columns.len()).collect();
                let row = batch_datums(batch, 0, &desc, &all, &mut casted, r)?;
                if !once.first(&desc, &row)? {
                    continue;
                }
                writes.delete_row(&desc, &row)?;
                if delete.returning.is_some() {
                    returned.push(row);
                }
            }
            count += 1;
        }
    }
    writes.apply(txn)?;
    if let Some(items) = &delete.returning {
        return crate::returning::output(
            session, &desc, &alias, &returned, items, params, "DELETE",
        )
        .await;
    }
    Ok(Output::count("DELETE", count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytea_text_forms() -> Result<()> {
        assert_eq!(parse_bytea("\\x0aff")?, vec![0x0a, 0xff]);
        assert_eq!(parse_bytea("abc")?, b"abc".to_vec());
        assert_eq!(parse_bytea("a\\\\b\\001")?, vec![b'a', b'\\', b'b', 1]);
        assert!(parse_bytea("\\xabc").is_err());
        assert!(parse_bytea("\\q").is_err());
        Ok(())
    }

    #[test]
    fn rowids_increase() {
        let a = next_rowid();
        let b = next_rowid();
        assert!(b > a);
    }
}
