//! Rewrites that let PostgreSQL-isms through DataFusion's SQL planner.
//!
//! Tools write SQL for PostgreSQL's catalogs: `pg_catalog.`-qualified
//! function names, `OPERATOR(pg_catalog.~)`, `COLLATE pg_catalog.default`,
//! casts to `regclass`, `oid` or `pg_catalog.text`. DataFusion parses all of
//! these but plans few; each rule below maps one onto what DataFusion plans,
//! with the same meaning. The rewrite runs on every statement before
//! planning; a statement without such constructs is unchanged.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    self, BinaryOperator, DataType, Expr, ObjectName, ObjectNamePart, Statement,
    visit_expressions_mut,
};

/// Refuses what DataFusion would parse and then silently ignore:
/// `TABLESAMPLE` (every row would come back) is not supported (0A000).
pub fn refuse_ignored(stmt: &Statement) -> crate::error::Result<()> {
    struct Sampled;
    impl ast::Visitor for Sampled {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &ast::TableFactor) -> ControlFlow<()> {
            match factor {
                ast::TableFactor::Table {
                    sample: Some(_), ..
                } => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        }
    }
    if ast::Visit::visit(stmt, &mut Sampled).is_break() {
        return Err(crate::error::SqlError::NotSupported("TABLESAMPLE".into()));
    }
    Ok(())
}

/// Applies every rule to a statement.
pub fn rewrite(stmt: &mut Statement) {
    crate::information_schema::rewrite(stmt);
    if let Statement::Query(q) = stmt {
        regclass_outputs(q);
    }
    crate::array_subquery::rewrite(stmt);
    let _ = ast::VisitMut::visit(stmt, &mut FunctionColumnNamer);
    // Set-returning functions in FROM may be schema-qualified too.
    let _ = datafusion::sql::sqlparser::ast::visit_relations_mut(stmt, |name| {
        let is_function = name.0.len() == 2
            && name.0[1]
                .as_ident()
                .is_some_and(|i| TABLE_FUNCTIONS.contains(&i.value.to_lowercase().as_str()));
        if is_function {
            strip_pg_catalog(name);
        }
        ControlFlow::<()>::Continue(())
    });
    let _ = visit_expressions_mut(stmt, |expr| {
        rewrite_expr(expr);
        ControlFlow::<()>::Continue(())
    });
    match stmt {
        Statement::Query(q) => name_outputs(q),
        Statement::Insert(ins) => {
            if let Some(q) = ins.source.as_mut() {
                name_outputs(q)
            }
        }
        _ => {}
    }
}

/// `information_schema._pg_expandarray(a)` (drivers' key metadata
/// queries): one row per element, a composite of the element `x` and its
/// position `n` → `unnest(shoal_expand_array(a))`, a list of such structs
/// unnested.
fn expand_array(f: &ast::Function) -> Option<Expr> {
    let names: Vec<String> = f
        .name
        .0
        .iter()
        .filter_map(|p| p.as_ident().map(|i| i.value.to_lowercase()))
        .collect();
    if names != ["information_schema", "_pg_expandarray"] {
        return None;
    }
    let ast::FunctionArguments::List(list) = &f.args else {
        return None;
    };
    let [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(array))] = list.args.as_slice()
    else {
        return None;
    };
    Some(call(
        "unnest",
        vec![call(
            crate::array_functions::EXPAND_NAME,
            vec![array.clone()],
        )],
    ))
}

/// The name PostgreSQL gives an array cast (`'{1}'::int[]` is `int4`):
/// its element type's name, from `shoal_array_in`'s second argument.
fn array_cast_name(f: &ast::Function) -> Option<String> {
    let ast::FunctionArguments::List(list) = &f.args else {
        return None;
    };
    let Some(ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(Expr::Value(v)))) =
        list.args.get(1)
    else {
        return None;
    };
    let ast::Value::SingleQuotedString(element) = &v.value else {
        return None;
    };
    let element = datafusion::sql::sqlparser::parser::Parser::new(
        &datafusion::sql::sqlparser::dialect::PostgreSqlDialect {},
    )
    .try_with_sql(element)
    .and_then(|mut p| p.parse_data_type())
    .ok()?;
    crate::types::SqlType::from_ast(&element)
        .ok()
        .map(|t| t.typname())
}

/// Set-returning functions of `pg_catalog` that may appear in FROM.
const TABLE_FUNCTIONS: &[&str] = &["generate_series", "unnest", "range"];

/// Those of [`TABLE_FUNCTIONS`] that always return one column.
const ONE_COLUMN_FUNCTIONS: &[&str] = &["generate_series", "range"];

/// PostgreSQL names the one column of a set-returning function in FROM
/// after the function's alias when the alias lists no columns (`FROM
/// generate_series(1, 3) AS n` has a column `n`); DataFusion keeps the
/// function's own column name (`value`). So such an alias gets itself as
/// its column list.
struct FunctionColumnNamer;

impl ast::VisitorMut for FunctionColumnNamer {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut ast::TableFactor) -> ControlFlow<()> {
        if let ast::TableFactor::Table {
            name,
            args: Some(_),
            alias: Some(alias),
            ..
        } = factor
            && alias.columns.is_empty()
            && name
                .0
                .last()
                .and_then(|part| part.as_ident())
                .is_some_and(|f| ONE_COLUMN_FUNCTIONS.contains(&f.value.to_lowercase().as_str()))
        {
            alias.columns.push(ast::TableAliasColumnDef {
                name: alias.name.clone(),
                data_type: None,
            });
        }
        ControlFlow::Continue(())
    }
}

/// Marks the part of an output column name that only keeps it unique;
/// [`output_name`] removes it before a client sees the name.
pub const UNIQUE_SUFFIX: &str = "#shoal";

/// The name a client sees for an output column.
pub fn output_name(name: &str) -> &str {
    name.split_once(UNIQUE_SUFFIX).map_or(name, |(n, _)| n)
}

/// PostgreSQL names output columns after the column or function they show
/// (`?column?` otherwise) and allows duplicates; DataFusion names them by
/// their full expression text and requires unique names. So every unnamed
/// select item gets PostgreSQL's name as an alias, made unique with a suffix
/// that is stripped again on output.
fn name_outputs(q: &mut ast::Query) {
    let ast::SetExpr::Select(select) = q.body.as_mut() else {
        return;
    };
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for item in select.projection.iter_mut() {
        let (name, expr) = match item {
            ast::SelectItem::UnnamedExpr(e) => (pg_output_name(e), e.clone()),
            ast::SelectItem::ExprWithAlias { alias, .. } => {
                // PostgreSQL allows `SELECT 1 AS c, 2 AS c`; DataFusion needs
                // the second one renamed.
                let count = seen.entry(alias.value.clone()).or_default();
                *count += 1;
                if *count > 1 {
                    *alias = ast::Ident::with_quote(
                        '"',
                        format!("{}{UNIQUE_SUFFIX}{count}", alias.value),
                    );
                }
                continue;
            }
            _ => continue,
        };
        let count = seen.entry(name.clone()).or_default();
        *count += 1;
        let is_column = matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_));
        if is_column && *count == 1 {
            continue; // DataFusion names a column as PostgreSQL does
        }
        let alias = if *count == 1 {
            name
        } else {
            format!("{name}{UNIQUE_SUFFIX}{count}")
        };
        *item = ast::SelectItem::ExprWithAlias {
            expr,
            alias: ast::Ident::with_quote('"', alias),
        };
    }
}

/// A `regclass` a query returns is shown as the relation's name, while
/// one compared or joined on stays an OID (PostgreSQL's `regclass` is
/// both): an output column `x::regclass` becomes `shoal_regclass_name(x)`,
/// named as PostgreSQL names the cast; every other `::regclass` is an OID
/// (`rewrite_expr`).
fn regclass_outputs(q: &mut ast::Query) {
    rewrite_outputs(q, |expr, alias| {
        let Expr::Cast { data_type, .. } = expr else {
            return None;
        };
        if let DataType::Custom(name, _) = data_type {
            strip_pg_catalog(name);
        }
        if type_name(data_type).as_deref() != Some("regclass") {
            return None;
        }
        // Unnamed, it is named as PostgreSQL names the cast, marked so the
        // name cannot clash with a column the rest of the query names.
        let alias = alias.unwrap_or_else(|| {
            ast::Ident::with_quote('"', format!("{}{UNIQUE_SUFFIX}r", pg_output_name(expr)))
        });
        let Expr::Cast { expr: inner, .. } = expr else {
            return None;
        };
        let arg = std::mem::replace(inner.as_mut(), Expr::value(ast::Value::Null));
        Some((call("shoal_regclass_name", vec![arg]), alias))
    });
}

/// Offers each select item of a query's top `SELECT` (its expression and
/// alias) to `f`; an item `f` answers is replaced by the expression and
/// alias it returns.
fn rewrite_outputs(
    q: &mut ast::Query,
    mut f: impl FnMut(&mut Expr, Option<ast::Ident>) -> Option<(Expr, ast::Ident)>,
) {
    let ast::SetExpr::Select(select) = q.body.as_mut() else {
        return;
    };
    for item in select.projection.iter_mut() {
        let (expr, alias) = match item {
            ast::SelectItem::UnnamedExpr(e) => (e, None),
            ast::SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.clone())),
            _ => continue,
        };
        if let Some((expr, alias)) = f(expr, alias) {
            *item = ast::SelectItem::ExprWithAlias { expr, alias };
        }
    }
}

/// The output column name PostgreSQL gives an unnamed select item.
fn pg_output_name(e: &Expr) -> String {
    match e {
        Expr::Identifier(i) => crate::names::fold(i),
        Expr::CompoundIdentifier(parts) => parts.last().map(crate::names::fold).unwrap_or_default(),
        Expr::Function(f) => {
            let name = f
                .name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(crate::names::fold)
                .unwrap_or_default();
            // A cast rewritten into its input function keeps the cast's name.
            match name.as_str() {
                "shoal_jsonb_in" => "jsonb".into(),
                "shoal_json_in" => "json".into(),
                "shoal_uuid_in" => "uuid".into(),
                crate::bytea_functions::INPUT => "bytea".into(),
                crate::at_time_zone::NAME => "timezone".into(),
                crate::datetime_functions::NAME => "timestamptz".into(),
                crate::datetime_functions::TIMESTAMP_NAME => "timestamp".into(),
                crate::interval_input::NAME => "interval".into(),
                // An array cast is named after its element type.
                crate::array_functions::NAME => array_cast_name(f).unwrap_or_else(|| name.clone()),
                _ => name,
            }
        }
        Expr::TypedString(ts) => ts.data_type.to_string().to_lowercase(),
        Expr::Cast {
            expr, data_type, ..
        } => match pg_output_name(expr).as_str() {
            "?column?" => crate::types::SqlType::from_ast(data_type)
                .map(|t| t.typname())
                .unwrap_or_else(|_| data_type.to_string().to_lowercase()),
            other => other.to_string(),
        },
        Expr::Nested(inner) => pg_output_name(inner),
        Expr::Case { .. } => "case".into(),
        _ => "?column?".into(),
    }
}

fn is_pg_catalog(part: &ObjectNamePart) -> bool {
    part.as_ident()
        .is_some_and(|i| i.value.eq_ignore_ascii_case("pg_catalog"))
}

/// `pg_catalog.name` → `name`.
fn strip_pg_catalog(name: &mut ObjectName) {
    if name.0.len() == 2 && is_pg_catalog(&name.0[0]) {
        name.0.remove(0);
    }
}

fn type_name(dt: &DataType) -> Option<String> {
    match dt {
        DataType::Custom(name, _) => name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(|i| i.value.to_lowercase()),
        DataType::Regclass => Some("regclass".into()),
        _ => None,
    }
}

/// Aggregate function names: a subquery selecting one of these already
/// yields one row.
pub const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "bool_and",
    "bool_or",
    "every",
    "string_agg",
    "array_agg",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
    "json_agg",
    "jsonb_agg",
    "median",
    "first_value",
    "last_value",
    "shoal_single",
];

/// The names a query's `FROM` gives its relations (aliases, else the
/// last part of the table name), lowercased.
/// `None` if the `FROM` holds anything but plain tables (derived tables,
/// functions, nested joins), whose names this does not follow.
fn from_names(select: &ast::Select) -> Option<Vec<String>> {
    let mut names = Vec::new();
    let mut add = |factor: &ast::TableFactor| -> Option<()> {
        let ast::TableFactor::Table { name, alias, .. } = factor else {
            return None;
        };
        let n = match alias {
            Some(a) => a.name.value.to_lowercase(),
            None => name.0.last()?.as_ident()?.value.to_lowercase(),
        };
        names.push(n);
        Some(())
    };
    for t in &select.from {
        add(&t.relation)?;
        for j in &t.joins {
            add(&j.relation)?;
        }
    }
    Some(names)
}

/// Whether `expr` holds an aggregate or window function anywhere (it
/// decides how many rows a subquery has, so it cannot move).
fn has_aggregate(expr: &Expr) -> bool {
    let mut found = false;
    let _ = ast::visit_expressions(expr, |e| {
        if let Expr::Function(f) = e {
            let name = f
                .name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(|i| i.value.to_lowercase())
                .unwrap_or_default();
            if AGGREGATES.contains(&name.as_str())
                || f.over.is_some()
                || f.filter.is_some()
                || !f.within_group.is_empty()
            {
                found = true;
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    });
    found
}

/// Whether `expr` names a column of a relation outside `inner` (a
/// qualified name whose qualifier the subquery's `FROM` does not have),
/// and whether it names any column of `inner`'s (or an unqualified one).
fn column_sides(expr: &Expr, inner: &[String]) -> (bool, bool) {
    let (mut outer, mut local) = (false, false);
    let _ = ast::visit_expressions(expr, |e| {
        match e {
            Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                let qualifier = parts[parts.len() - 2].value.to_lowercase();
                if inner.contains(&qualifier) {
                    local = true;
                } else {
                    outer = true;
                }
            }
            Expr::Identifier(_) => local = true,
            Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => local = true,
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    (outer, local)
}

/// DataFusion cannot decorrelate a scalar subquery whose select list reads
/// the outer query. When that select list is one function call whose
/// arguments each read only the outer query or only the subquery's own
/// relations — `(SELECT f(o.a, t.b) FROM t WHERE w)`, as SQLAlchemy's
/// column reflection writes — it is rewritten, with the same meaning, to
/// `CASE WHEN (SELECT count(1) FROM t WHERE w) > 0 THEN f(o.a, (SELECT t.b
/// FROM t WHERE w)) END`: each inner argument its own single-row subquery, and
/// NULL when the subquery has no row.
fn split_outer_arguments(q: &ast::Query) -> Option<Expr> {
    if q.limit_clause.is_some() || q.fetch.is_some() || q.with.is_some() || q.order_by.is_some() {
        return None;
    }
    let ast::SetExpr::Select(select) = q.body.as_ref() else {
        return None;
    };
    if select.projection.len() != 1 || select.having.is_some() || select.distinct.is_some() {
        return None;
    }
    if !matches!(&select.group_by, ast::GroupByExpr::Expressions(e, _) if e.is_empty()) {
        return None;
    }
    let item = match &select.projection[0] {
        ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } => e,
        _ => return None,
    };
    let Expr::Function(f) = item else {
        return None;
    };
    let ast::FunctionArguments::List(list) = &f.args else {
        return None;
    };
    if !list.clauses.is_empty() || has_aggregate(item) {
        return None;
    }
    let inner = from_names(select)?;
    let (mut any_outer, mut any_inner) = (false, false);
    let mut args = Vec::with_capacity(list.args.len());
    for arg in &list.args {
        let ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) = arg else {
            return None;
        };
        match column_sides(e, &inner) {
            (true, true) => return None,
            (true, false) => {
                any_outer = true;
                args.push(e.clone());
            }
            (false, true) => {
                any_inner = true;
                let mut sub = q.clone();
                if let ast::SetExpr::Select(sel) = sub.body.as_mut() {
                    sel.projection = vec![ast::SelectItem::UnnamedExpr(e.clone())];
                }
                single_row_subquery(&mut sub);
                args.push(Expr::Subquery(Box::new(sub)));
            }
            (false, false) => args.push(e.clone()),
        }
    }
    // Without an inner argument the subquery's row count would no longer
    // be checked (more than one row is an error).
    if !any_outer || !any_inner {
        return None;
    }
    // Whether the subquery has a row, as a count: DataFusion decorrelates
    // an aggregate subquery anywhere, `EXISTS` only in a filter.
    let mut rows = q.clone();
    if let ast::SetExpr::Select(sel) = rows.body.as_mut() {
        sel.projection = vec![ast::SelectItem::UnnamedExpr(call(
            "count",
            vec![Expr::value(ast::Value::Number("1".into(), false))],
        ))];
    }
    let mut function = f.clone();
    function.args = ast::FunctionArguments::List(ast::FunctionArgumentList {
        duplicate_treatment: list.duplicate_treatment,
        args: args
            .into_iter()
            .map(|a| ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(a)))
            .collect(),
        clauses: Vec::new(),
    });
    Some(Expr::Case {
        case_token: ast::helpers::attached_token::AttachedToken::empty(),
        end_token: ast::helpers::attached_token::AttachedToken::empty(),
        operand: None,
        conditions: vec![ast::CaseWhen {
            condition: Expr::BinaryOp {
                left: Box::new(Expr::Subquery(Box::new(rows))),
                op: BinaryOperator::Gt,
                right: Box::new(Expr::value(ast::Value::Number("0".into(), false))),
            },
            result: Expr::Function(function),
        }],
        else_result: None,
    })
}

/// `(SELECT x FROM …)` → `(SELECT shoal_single(x) FROM …)` for a scalar
/// subquery whose single select item is not an aggregate (see `single.rs`).
fn single_row_subquery(q: &mut ast::Query) {
    if q.limit_clause.is_some() || q.fetch.is_some() {
        return;
    }
    let ast::SetExpr::Select(select) = q.body.as_mut() else {
        return;
    };
    if select.projection.len() != 1 || select.having.is_some() || select.distinct.is_some() {
        return;
    }
    if !matches!(&select.group_by, ast::GroupByExpr::Expressions(e, _) if e.is_empty()) {
        return;
    }
    let (expr, alias) = match &mut select.projection[0] {
        ast::SelectItem::UnnamedExpr(e) => (e, None),
        ast::SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.clone())),
        _ => return,
    };
    if has_aggregate(expr) {
        return;
    }
    let inner = std::mem::replace(expr, Expr::value(ast::Value::Null));
    let wrapped = call(crate::single::NAME, vec![inner]);
    select.projection[0] = match alias {
        Some(alias) => ast::SelectItem::ExprWithAlias {
            expr: wrapped,
            alias,
        },
        None => ast::SelectItem::UnnamedExpr(wrapped),
    };
}

fn rewrite_expr(expr: &mut Expr) {
    match expr {
        Expr::Subquery(q) => match split_outer_arguments(q) {
            Some(split) => *expr = split,
            None => single_row_subquery(q),
        },
        Expr::Function(f) => {
            strip_pg_catalog(&mut f.name);
            restore_frame_intervals(f);
            if let Some(subscripts) = generate_subscripts(f) {
                *expr = subscripts;
            } else if let Some(rows) = expand_array(f) {
                *expr = rows;
            }
        }
        Expr::BinaryOp { op, .. } => {
            if let BinaryOperator::PGCustomBinaryOperator(parts) = op {
                let symbol = parts.last().map(String::as_str).unwrap_or("");
                let plain = match symbol {
                    "~" => Some(BinaryOperator::PGRegexMatch),
                    "~*" => Some(BinaryOperator::PGRegexIMatch),
                    "!~" => Some(BinaryOperator::PGRegexNotMatch),
                    "!~*" => Some(BinaryOperator::PGRegexNotIMatch),
                    "=" => Some(BinaryOperator::Eq),
                    "<>" => Some(BinaryOperator::NotEq),
                    "<" => Some(BinaryOperator::Lt),
                    ">" => Some(BinaryOperator::Gt),
                    "<=" => Some(BinaryOperator::LtEq),
                    ">=" => Some(BinaryOperator::GtEq),
                    "||" => Some(BinaryOperator::StringConcat),
                    "~~" => None,
                    _ => None,
                };
                if let Some(p) = plain {
                    *op = p;
                }
            }
        }
        // `(expr).field`: a field of a composite value.
        Expr::CompoundFieldAccess { root, access_chain }
            if access_chain
                .iter()
                .all(|a| matches!(a, ast::AccessExpr::Dot(Expr::Identifier(_)))) =>
        {
            let mut out = std::mem::replace(root.as_mut(), Expr::value(ast::Value::Null));
            for access in access_chain.iter() {
                if let ast::AccessExpr::Dot(Expr::Identifier(field)) = access {
                    let name =
                        Expr::value(ast::Value::SingleQuotedString(crate::names::fold(field)));
                    out = call("get_field", vec![out, name]);
                }
            }
            *expr = out;
        }
        Expr::TypedString(ts) => {
            if let Some(input) = input_function(&ts.data_type) {
                let value = Expr::Value(ts.value.clone());
                *expr = call(input, vec![value]);
            }
        }
        // PostgreSQL's meaning, not DataFusion's (`at_time_zone.rs`).
        Expr::AtTimeZone {
            timestamp,
            time_zone,
        } => {
            let t = std::mem::replace(timestamp.as_mut(), Expr::value(ast::Value::Null));
            let z = std::mem::replace(time_zone.as_mut(), Expr::value(ast::Value::Null));
            *expr = call(crate::at_time_zone::NAME, vec![t, z]);
        }
        // `interval '1 day 02:00:00'`: PostgreSQL's input syntax
        // (`interval_input.rs`); with fields (`interval '1' day`),
        // DataFusion's.
        Expr::Interval(ast::Interval {
            value,
            leading_field: None,
            leading_precision: None,
            last_field: None,
            fractional_seconds_precision: None,
        }) => {
            let value = std::mem::replace(value.as_mut(), Expr::value(ast::Value::Null));
            *expr = call(crate::interval_input::NAME, vec![value]);
        }
        Expr::Collate { expr: inner, .. } => {
            let inner = std::mem::replace(inner.as_mut(), Expr::value(ast::Value::Null));
            *expr = inner;
        }
        Expr::Cast {
            expr: inner,
            data_type,
            ..
        } => {
            if let DataType::Custom(name, _) = data_type {
                strip_pg_catalog(name);
            }
            if let Some(input) = input_function(data_type) {
                let arg = std::mem::replace(inner.as_mut(), Expr::value(ast::Value::Null));
                *expr = call(input, vec![arg]);
                return;
            }
            // Text to an array type is read as array text; an ARRAY[…]
            // is cast element by element by DataFusion.
            if let DataType::Array(ast::ArrayElemTypeDef::SquareBracket(element, _)) = data_type
                && !matches!(inner.as_ref(), Expr::Array(_))
            {
                let element = Expr::value(ast::Value::SingleQuotedString(element.to_string()));
                let arg = std::mem::replace(inner.as_mut(), Expr::value(ast::Value::Null));
                *expr = call(crate::array_functions::NAME, vec![arg, element]);
                return;
            }
            match type_name(data_type).as_deref() {
                Some("text") | Some("name") => *data_type = DataType::Text,
                Some("oid") | Some("regtype") | Some("regnamespace") | Some("regproc")
                | Some("regprocedure") | Some("regrole") => *data_type = DataType::BigInt(None),
                Some("regclass") => {
                    // A regclass cast of a name looks the relation up; of a
                    // number, it is the number.
                    let arg = std::mem::replace(inner.as_mut(), Expr::value(ast::Value::Null));
                    *expr = call("shoal_regclass", vec![arg]);
                }
                _ => {}
            }
        }
        _ => {}
    }
}

/// Whether `name` is one of the functions casts to Shoal's own types
/// become (`input_function`, `shoal_array_in`): its first argument is the
/// text being read.
pub fn is_input_function(name: &str) -> bool {
    matches!(
        name,
        "shoal_jsonb_in"
            | "shoal_json_in"
            | "shoal_uuid_in"
            | crate::bytea_functions::INPUT
            | crate::datetime_functions::NAME
            | crate::datetime_functions::TIMESTAMP_NAME
            | crate::interval_input::NAME
            | crate::array_functions::NAME
    )
}

/// A window frame's bounds take an interval literal as DataFusion reads
/// it, not a call: the rewrite of `interval '…'` (made before the function
/// is visited) is undone there.
fn restore_frame_intervals(f: &mut ast::Function) {
    let Some(ast::WindowType::WindowSpec(spec)) = &mut f.over else {
        return;
    };
    let Some(frame) = &mut spec.window_frame else {
        return;
    };
    for bound in std::iter::once(&mut frame.start_bound).chain(frame.end_bound.as_mut()) {
        let (ast::WindowFrameBound::Preceding(Some(e)) | ast::WindowFrameBound::Following(Some(e))) =
            bound
        else {
            continue;
        };
        let Expr::Function(call) = e.as_mut() else {
            continue;
        };
        let ast::FunctionArguments::List(list) = &call.args else {
            continue;
        };
        let is_input = call.name.to_string() == crate::interval_input::NAME;
        if let ([ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(value))], true) =
            (list.args.as_slice(), is_input)
        {
            **e = Expr::Interval(ast::Interval {
                value: Box::new(value.clone()),
                leading_field: None,
                leading_precision: None,
                last_field: None,
                fractional_seconds_precision: None,
            });
        }
    }
}

/// The function that reads text as a value of a type DataFusion lacks,
/// for casts (`x::jsonb`) and typed literals (`jsonb '{}'`).
fn input_function(dt: &DataType) -> Option<&'static str> {
    match dt {
        DataType::JSONB => Some("shoal_jsonb_in"),
        DataType::JSON => Some("shoal_json_in"),
        DataType::Uuid => Some("shoal_uuid_in"),
        DataType::Bytea => Some(crate::bytea_functions::INPUT),
        DataType::Timestamp(_, ast::TimezoneInfo::WithTimeZone | ast::TimezoneInfo::Tz) => {
            Some(crate::datetime_functions::NAME)
        }
        DataType::Timestamp(_, _) => Some(crate::datetime_functions::TIMESTAMP_NAME),
        DataType::Interval {
            fields: None,
            precision: None,
        } => Some(crate::interval_input::NAME),
        _ => match type_name(dt).as_deref() {
            Some("jsonb") => Some("shoal_jsonb_in"),
            Some("json") => Some("shoal_json_in"),
            Some("uuid") => Some("shoal_uuid_in"),
            Some("bytea") => Some(crate::bytea_functions::INPUT),
            Some("timestamptz") => Some(crate::datetime_functions::NAME),
            _ => None,
        },
    }
}

/// `generate_subscripts(a, d)` → `unnest(CASE WHEN d = 1 THEN range(1,
/// cardinality(a) + 1) ELSE range(1, 1) END)`: the subscripts of a
/// one-dimensional array, as rows (beside an `unnest(a)` of the same
/// array, row for row).
fn generate_subscripts(f: &ast::Function) -> Option<Expr> {
    let name = f.name.0.last()?.as_ident()?.value.to_lowercase();
    if name != "generate_subscripts" {
        return None;
    }
    let ast::FunctionArguments::List(list) = &f.args else {
        return None;
    };
    let [
        ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(array)),
        ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(dimension)),
    ] = list.args.as_slice()
    else {
        return None;
    };

    let one = || Expr::value(ast::Value::Number("1".into(), false));
    let count = Expr::Cast {
        kind: ast::CastKind::Cast,
        expr: Box::new(call("cardinality", vec![array.clone()])),
        data_type: DataType::BigInt(None),
        array: false,
        format: None,
    };
    let past = Expr::BinaryOp {
        left: Box::new(count),
        op: BinaryOperator::Plus,
        right: Box::new(one()),
    };
    // Shoal's arrays have one dimension: any other has no subscripts.
    let subscripts = Expr::Case {
        case_token: ast::helpers::attached_token::AttachedToken::empty(),
        end_token: ast::helpers::attached_token::AttachedToken::empty(),
        operand: None,
        conditions: vec![ast::CaseWhen {
            condition: Expr::BinaryOp {
                left: Box::new(dimension.clone()),
                op: BinaryOperator::Eq,
                right: Box::new(one()),
            },
            result: call("range", vec![one(), past]),
        }],
        else_result: Some(Box::new(call("range", vec![one(), one()]))),
    };
    Some(call("unnest", vec![subscripts]))
}

/// A call of function `name`.
pub(crate) fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(ast::Function {
        name: ObjectName::from(vec![ast::Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: ast::FunctionArguments::None,
        args: ast::FunctionArguments::List(ast::FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|a| ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(a)))
                .collect(),
            clauses: Vec::new(),
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Session;

    fn rw(sql: &str) -> String {
        let mut stmts = Session::parse(sql).unwrap_or_default();
        let mut s = stmts.remove(0);
        rewrite(&mut s);
        s.to_string()
    }

    #[test]
    fn psql_constructs_become_plain_sql() {
        assert_eq!(
            rw(
                "SELECT c.relname FROM pg_catalog.pg_class c WHERE c.relname OPERATOR(pg_catalog.~) '^(t)$' COLLATE pg_catalog.default AND pg_catalog.pg_table_is_visible(c.oid)"
            ),
            "SELECT c.relname FROM pg_catalog.pg_class c WHERE c.relname ~ '^(t)$' AND pg_table_is_visible(c.oid)"
        );
        // A regclass the query returns shows the name; one compared stays
        // an OID.
        assert_eq!(
            rw("SELECT x::pg_catalog.text AS x, 'a'::regclass AS r"),
            "SELECT x::TEXT AS x, shoal_regclass_name('a') AS r"
        );
        assert_eq!(
            rw("SELECT c.oid FROM pg_class c WHERE c.oid = 'a'::regclass"),
            "SELECT c.oid FROM pg_class c WHERE c.oid = shoal_regclass('a')"
        );
    }

    #[test]
    fn duplicate_outputs_get_unique_names() {
        assert_eq!(
            rw("SELECT a, a, 1, 1, count(*) FROM t"),
            "SELECT a, a AS \"a#shoal2\", 1 AS \"?column?\", 1 AS \"?column?#shoal2\", count(*) AS \"count\" FROM t"
        );
        assert_eq!(output_name("a#shoal2"), "a");
        assert_eq!(
            rw("SELECT 1 AS c, 2 AS c"),
            "SELECT 1 AS c, 2 AS \"c#shoal2\""
        );
        assert_eq!(output_name("plain"), "plain");
    }
}
