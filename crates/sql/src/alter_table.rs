//! `ALTER TABLE`: columns, names, defaults and NOT NULL.
//!
//! Every action changes the table's descriptor, in the statement's
//! transaction, and bumps its version once; a statement of several actions
//! applies them in order to one copy of the descriptor. None rewrites the
//! table, so none costs more than PostgreSQL's:
//!
//! - **`ADD COLUMN`** appends a column. Rows written before read it
//!   through the column's `missing` value (`row.rs`): its `DEFAULT`,
//!   computed once when the column is added (PostgreSQL's
//!   `attmissingval`), or NULL. A default that must differ row by row
//!   (`nextval`, `random()`, a `SERIAL` column) cannot be filled in
//!   without a rewrite, so it is refused (0A000) on a table that has rows.
//!   Constraints declared with the column (`UNIQUE`, `CHECK`,
//!   `REFERENCES`) are checked against the existing rows.
//! - **`DROP COLUMN`** keeps the column in place, hidden, renamed and
//!   nullable (PostgreSQL's `attisdropped`), so stored values keep their
//!   positions; new rows store NULL in it. The indexes, checks and foreign
//!   keys that use the column go with it, as in PostgreSQL; foreign keys of
//!   other tables and views need `CASCADE` (2BP01 without). Key columns
//!   cannot be dropped (the key is the row's address).
//! - **`RENAME COLUMN`**, **`RENAME TO`** (each alone in its statement,
//!   as PostgreSQL's grammar has it): names only; a check's text follows a
//!   renamed column. The primary key's index is named after the table
//!   (`<table>_pkey`), so it follows a renamed table, where PostgreSQL's
//!   keeps its old name. Views are stored as SQL text and planned on each
//!   read, so a table a view reads cannot be renamed, nor gain a column
//!   (it would change `SELECT *` views), yet (0A000).
//! - **`ALTER COLUMN SET/DROP DEFAULT`**, **`SET/DROP NOT NULL`** (`SET
//!   NOT NULL` reads the table first: 23502 if a row holds NULL).
//! - **`ALTER COLUMN TYPE`** among types stored alike (text and
//!   `varchar(n)`; the integers), checking the rows fit when it narrows;
//!   other changes would rewrite the table and are refused (0A000).
//!
//! Constraints (`ADD/DROP/RENAME CONSTRAINT`) are in
//! `alter_constraints.rs`.
//!
//! As with `CREATE INDEX`, a transaction that read the old descriptor and
//! writes afterwards is not stopped (that needs schema leases): it writes
//! rows by the old schema, which the new one still reads.

use std::sync::Arc;

use datafusion::sql::sqlparser::ast::{self, AlterColumnOperation, AlterTableOperation, Expr};
use datafusion::sql::sqlparser::ast::{VisitMut, VisitorMut};
use shoal_kv::Txn;
use std::ops::ControlFlow;

use crate::catalog;
use crate::ddl::{AfterCommit, declare_column};
use crate::descriptor::TableDescriptor;
use crate::error::{Result, SqlError};
use crate::names;
use crate::row::{encode_stored_datum, index_prefix, prefix_end};
use crate::session::{Output, Session};
use crate::types::{Datum, SqlType};

/// Functions whose value differs call by call: a column added with such a
/// default cannot share one value among the rows already there.
const VOLATILE: &[&str] = &[
    "nextval",
    "random",
    "gen_random_uuid",
    "uuid_generate_v4",
    "clock_timestamp",
    "timeofday",
    "setval",
];

/// `ALTER TABLE`; returns what is left to do after commit.
pub async fn alter_table(
    session: &Session,
    txn: &Arc<Txn>,
    alter: &ast::AlterTable,
) -> Result<(Output, Vec<AfterCommit>)> {
    let scope = session.scope();
    let database = scope.database.as_str();
    let (schema, name) = scope.resolve(txn, &alter.name)?;
    let Some(found) = catalog::table_by_name(txn, database, &schema, &name)? else {
        if crate::views::view_exists(txn, database, &schema, &name)? {
            return Err(SqlError::WrongObjectType(format!(
                "\"{name}\" is not a table"
            )));
        }
        if alter.if_exists {
            return Ok((Output::command("ALTER TABLE"), Vec::new()));
        }
        return Err(SqlError::UndefinedTable(name));
    };
    let renames = alter.operations.iter().any(|op| {
        matches!(
            op,
            AlterTableOperation::RenameTable { .. } | AlterTableOperation::RenameColumn { .. }
        )
    });
    if renames && alter.operations.len() > 1 {
        return Err(SqlError::Syntax(
            "RENAME cannot be combined with other ALTER TABLE actions".into(),
        ));
    }
    let mut desc = (*found).clone();
    let mut after = Vec::new();
    for op in &alter.operations {
        apply(session, txn, &mut desc, op, &mut after).await?;
    }
    desc.version += 1;
    if desc.name != found.name {
        catalog::delete_table_name(txn, &found)?;
    }
    catalog::put_table(txn, &desc)?;
    Ok((Output::command("ALTER TABLE"), after))
}

async fn apply(
    session: &Session,
    txn: &Arc<Txn>,
    desc: &mut TableDescriptor,
    op: &AlterTableOperation,
    after: &mut Vec<AfterCommit>,
) -> Result<()> {
    match op {
        AlterTableOperation::AddColumn {
            if_not_exists,
            column_def,
            column_position,
            ..
        } => {
            if column_position.is_some() {
                return Err(SqlError::NotSupported("ADD COLUMN … FIRST / AFTER".into()));
            }
            add_column(session, txn, desc, column_def, *if_not_exists).await
        }
        AlterTableOperation::DropColumn {
            column_names,
            if_exists,
            drop_behavior,
            ..
        } => {
            let cascade = drop_behavior == &Some(ast::DropBehavior::Cascade);
            for column in column_names {
                drop_column(txn, desc, column, *if_exists, cascade, after)?;
            }
            Ok(())
        }
        AlterTableOperation::RenameColumn {
            old_column_name,
            new_column_name,
        } => rename_column(txn, desc, old_column_name, new_column_name),
        AlterTableOperation::RenameTable { table_name } => {
            let (ast::RenameTableNameKind::To(new) | ast::RenameTableNameKind::As(new)) =
                table_name;
            rename_table(txn, desc, new)
        }
        AlterTableOperation::AlterColumn { column_name, op } => {
            alter_column(session, txn, desc, column_name, op).await
        }
        AlterTableOperation::AddConstraint {
            constraint,
            not_valid,
        } => {
            if *not_valid {
                return Err(SqlError::NotSupported("ADD CONSTRAINT … NOT VALID".into()));
            }
            crate::alter_constraints::add(session, txn, desc, constraint)
        }
        AlterTableOperation::DropConstraint {
            if_exists,
            name,
            drop_behavior,
        } => {
            let cascade = drop_behavior == &Some(ast::DropBehavior::Cascade);
            crate::alter_constraints::drop(txn, desc, name, *if_exists, cascade, after)
        }
        AlterTableOperation::RenameConstraint { old_name, new_name } => {
            crate::alter_constraints::rename(txn, desc, old_name, new_name)
        }
        other => Err(SqlError::NotSupported(format!("ALTER TABLE … {other}"))),
    }
}

/// The position of a column a user can name, or 42703.
pub(crate) fn existing_column(desc: &TableDescriptor, ident: &ast::Ident) -> Result<usize> {
    let name = names::fold(ident);
    desc.column_index(&name)
        .filter(|p| !desc.columns[*p].hidden)
        .ok_or_else(|| {
            SqlError::UndefinedColumn(format!(
                "column \"{name}\" of relation \"{}\" does not exist",
                desc.name
            ))
        })
}

/// Whether the table holds any row.
pub(crate) fn has_rows(txn: &Txn, desc: &TableDescriptor) -> Result<bool> {
    let start = index_prefix(desc.id);
    Ok(!txn.scan(&start, &prefix_end(&start), 1)?.is_empty())
}

fn is_volatile(expr: &Expr) -> bool {
    let mut volatile = false;
    let _ = ast::visit_expressions(expr, |e| {
        if let Expr::Function(f) = e
            && let Some(name) = f.name.0.last().and_then(|p| p.as_ident())
            && VOLATILE.contains(&name.value.to_lowercase().as_str())
        {
            volatile = true;
            return ControlFlow::Break(());
        }
        ControlFlow::<()>::Continue(())
    });
    volatile
}

/// The value of a constant expression as a datum of `ty`.
async fn constant(session: &Session, expr: &str, ty: &SqlType) -> Result<Datum> {
    let plan = session.plan_sql(&format!("SELECT {expr}")).await?;
    let batches = session.collect(plan, Vec::new()).await?;
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(Datum::Null);
    };
    let array = crate::dml::cast_column(batch.column(0), ty)?;
    crate::types::datum_from_array(&array, 0, ty)
}

async fn add_column(
    session: &Session,
    txn: &Arc<Txn>,
    desc: &mut TableDescriptor,
    def: &ast::ColumnDef,
    if_not_exists: bool,
) -> Result<()> {
    let mut declared = declare_column(def, &desc.name)?;
    let name = declared.column.name.clone();
    if desc.column_index(&name).is_some() {
        if if_not_exists {
            return Ok(());
        }
        return Err(SqlError::DuplicateColumn(format!(
            "column \"{name}\" of relation \"{}\" already exists",
            desc.name
        )));
    }
    // A view re-plans its SQL text on every read: a new column would
    // change what `SELECT *` views return, and could make their names
    // ambiguous.
    if let Some(view) = crate::views::dependent(txn, &desc.database, &desc.schema, &desc.name)? {
        return Err(SqlError::NotSupported(format!(
            "adding a column to table \"{}\", which view \"{view}\" reads",
            desc.name
        )));
    }
    if declared.primary {
        return Err(SqlError::NotSupported(
            "adding a primary key column (the key is each row's address)".into(),
        ));
    }
    let filled = has_rows(txn, desc)?;
    if filled {
        if declared.sequenced {
            return Err(SqlError::NotSupported(
                "adding a SERIAL or identity column to a table with rows".into(),
            ));
        }
        if let Some(default) = &declared.column.default {
            let expr = crate::dml::parse_expr(default)?;
            if is_volatile(&expr) {
                return Err(SqlError::NotSupported(format!(
                    "adding a column whose default ({default}) differs row by row to a table with rows"
                )));
            }
            let value = constant(session, default, &declared.column.ty).await?;
            if !value.is_null() {
                declared.column.missing = Some(encode_stored_datum(&value));
            }
        }
        if !declared.column.nullable && declared.column.missing.is_none() {
            return Err(contains_nulls(desc, &name));
        }
    } else if let Some(default) = &declared.column.default {
        // Nothing to fill in; the default must still make sense.
        session
            .plan_sql(&format!(
                "SELECT CAST(({default}) AS {})",
                crate::dml::cast_type_name(&declared.column.ty)
            ))
            .await?;
    }
    desc.columns.push(declared.column);
    let pos = desc.columns.len() - 1;
    if declared.sequenced {
        crate::ddl::add_column_sequence(txn, desc, pos)?;
    }
    for unique in declared.uniques {
        crate::alter_constraints::add_unique(txn, desc, unique, vec![pos])?;
    }
    for (name, check) in declared.checks {
        crate::alter_constraints::add_check(session, txn, desc, name.as_ref(), check)?;
    }
    for (name, fk) in declared.references {
        let fk = ast::ForeignKeyConstraint { name, ..fk.clone() };
        crate::alter_constraints::add_foreign_key(txn, desc, &fk, std::slice::from_ref(&def.name))?;
    }
    Ok(())
}

/// 23502 for a column that would be NOT NULL over rows holding NULL.
pub(crate) fn contains_nulls(desc: &TableDescriptor, column: &str) -> SqlError {
    SqlError::ColumnContainsNulls(format!(
        "column \"{column}\" of relation \"{}\" contains null values",
        desc.name
    ))
}

fn drop_column(
    txn: &Txn,
    desc: &mut TableDescriptor,
    ident: &ast::Ident,
    if_exists: bool,
    cascade: bool,
    after: &mut Vec<AfterCommit>,
) -> Result<()> {
    let pos = match existing_column(desc, ident) {
        Ok(pos) => pos,
        Err(_) if if_exists => return Ok(()),
        Err(e) => return Err(e),
    };
    let column = desc.columns[pos].name.clone();
    if desc.is_key_column(pos) {
        return Err(SqlError::NotSupported(format!(
            "dropping primary key column \"{column}\" (the key is each row's address)"
        )));
    }
    if desc.visible_columns().len() == 1 {
        return Err(SqlError::NotSupported("tables without columns".into()));
    }
    let dependent = format!(
        "cannot drop column {column} of table {} because other objects depend on it",
        desc.name
    );
    match crate::views::dependent(txn, &desc.database, &desc.schema, &desc.name)? {
        Some(view) if !cascade => {
            return Err(SqlError::DependentObjects(format!(
                "{dependent}: view {view} depends on table {}",
                desc.name
            )));
        }
        Some(_) => {
            crate::views::drop_dependents(txn, &desc.database, &desc.schema, &desc.name, true)?
        }
        None => {}
    }
    crate::alter_constraints::drop_references_to_columns(txn, desc, &[pos], cascade, &dependent)?;
    // What uses the column goes with it.
    for index in desc.indexes.clone() {
        if index.columns.iter().any(|c| c.column == pos) || index.include.contains(&pos) {
            crate::alter_constraints::drop_inbound(
                txn,
                desc,
                |fk| fk.parent_index == index.id,
                cascade,
                &dependent,
            )?;
            crate::alter_constraints::remove_index(txn, desc, index.id, after)?;
        }
    }
    let reading: Vec<u8> = desc
        .checks
        .iter()
        .filter(|c| crate::checks::columns_read(desc, c).contains(&pos))
        .map(|c| c.id)
        .collect();
    desc.checks.retain(|c| !reading.contains(&c.id));
    let own: Vec<u8> = desc
        .foreign_keys
        .iter()
        .filter(|fk| fk.columns.contains(&pos))
        .map(|fk| fk.id)
        .collect();
    for id in own {
        crate::alter_constraints::remove_foreign_key(txn, desc, id)?;
    }
    for seq in crate::sequences::list_sequences(txn, &desc.database, &desc.schema)? {
        if seq.owned_by.as_ref() == Some(&(desc.name.clone(), column.clone())) {
            crate::sequences::delete(txn, &seq)?;
        }
    }
    let c = &mut desc.columns[pos];
    c.name = format!("________pg_dropped_{pos}________");
    c.hidden = true;
    c.dropped = true;
    c.nullable = true;
    c.default = None;
    c.missing = None;
    Ok(())
}

/// Views read tables by name, as SQL text: renaming what one reads
/// would break it.
fn refuse_if_viewed(txn: &Txn, desc: &TableDescriptor, what: &str) -> Result<()> {
    if let Some(view) = crate::views::dependent(txn, &desc.database, &desc.schema, &desc.name)? {
        return Err(SqlError::NotSupported(format!(
            "renaming {what} of table \"{}\", which view \"{view}\" reads",
            desc.name
        )));
    }
    Ok(())
}

/// Renames column identifiers in a stored expression.
struct RenameColumn<'a> {
    from: &'a str,
    to: &'a str,
}

impl VisitorMut for RenameColumn<'_> {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Identifier(ident) = expr
            && names::fold(ident) == self.from
        {
            *ident = ast::Ident::with_quote('"', self.to);
            if names::quote_if_needed(self.to) == self.to {
                ident.quote_style = None;
            }
        }
        ControlFlow::Continue(())
    }
}

fn rename_column(
    txn: &Txn,
    desc: &mut TableDescriptor,
    old: &ast::Ident,
    new: &ast::Ident,
) -> Result<()> {
    let pos = existing_column(desc, old)?;
    let from = desc.columns[pos].name.clone();
    let to = names::fold(new);
    if desc.column_index(&to).is_some() {
        return Err(SqlError::DuplicateColumn(format!(
            "column \"{to}\" of relation \"{}\" already exists",
            desc.name
        )));
    }
    refuse_if_viewed(txn, desc, "a column")?;
    for check in &mut desc.checks {
        let mut expr = crate::dml::parse_expr(&check.expr)?;
        let _ = expr.visit(&mut RenameColumn {
            from: &from,
            to: &to,
        });
        check.expr = expr.to_string();
    }
    for mut seq in crate::sequences::list_sequences(txn, &desc.database, &desc.schema)? {
        if seq.owned_by.as_ref() == Some(&(desc.name.clone(), from.clone())) {
            seq.owned_by = Some((desc.name.clone(), to.clone()));
            crate::sequences::update(txn, &seq)?;
        }
    }
    desc.columns[pos].name = to;
    Ok(())
}

fn rename_table(txn: &Txn, desc: &mut TableDescriptor, new: &ast::ObjectName) -> Result<()> {
    // A table is renamed within its schema.
    let (_, to) = names::split(new, &desc.database)?;
    if to == desc.name {
        return Ok(());
    }
    if catalog::relation_exists(txn, &desc.database, &desc.schema, &to)? {
        return Err(SqlError::DuplicateTable(to));
    }
    // The primary key's index is named after the table: its new name must
    // be free too.
    let pkey = format!("{to}_pkey");
    if !desc.has_hidden_rowid()
        && catalog::relation_exists(txn, &desc.database, &desc.schema, &pkey)?
    {
        return Err(SqlError::DuplicateTable(pkey));
    }
    refuse_if_viewed(txn, desc, "itself")?;
    for mut seq in crate::sequences::list_sequences(txn, &desc.database, &desc.schema)? {
        if let Some((table, column)) = &seq.owned_by
            && *table == desc.name
        {
            seq.owned_by = Some((to.clone(), column.clone()));
            crate::sequences::update(txn, &seq)?;
        }
    }
    desc.name = to;
    Ok(())
}

async fn alter_column(
    session: &Session,
    txn: &Arc<Txn>,
    desc: &mut TableDescriptor,
    ident: &ast::Ident,
    op: &AlterColumnOperation,
) -> Result<()> {
    let pos = existing_column(desc, ident)?;
    let column = desc.columns[pos].name.clone();
    match op {
        AlterColumnOperation::SetNotNull => {
            if desc.columns[pos].nullable {
                let mut nulls = false;
                crate::row::scan_table(txn, desc, |_, row| {
                    nulls = row[pos].is_null();
                    Ok(!nulls)
                })?;
                if nulls {
                    return Err(contains_nulls(desc, &column));
                }
                desc.columns[pos].nullable = false;
            }
        }
        AlterColumnOperation::DropNotNull => {
            if desc.is_key_column(pos) {
                return Err(SqlError::InvalidTableDefinition(format!(
                    "column \"{column}\" is in a primary key"
                )));
            }
            desc.columns[pos].nullable = true;
        }
        AlterColumnOperation::SetDefault { value } => {
            // Planned, not run: a default such as `nextval(…)` must not
            // act now.
            session
                .plan_sql(&format!(
                    "SELECT CAST(({value}) AS {})",
                    crate::dml::cast_type_name(&desc.columns[pos].ty)
                ))
                .await?;
            desc.columns[pos].default = Some(value.to_string());
        }
        AlterColumnOperation::DropDefault => desc.columns[pos].default = None,
        AlterColumnOperation::SetDataType {
            data_type, using, ..
        } => {
            if using.is_some() {
                return Err(SqlError::NotSupported("ALTER COLUMN … TYPE … USING".into()));
            }
            let to = SqlType::from_ast(data_type)?;
            retype(txn, desc, pos, to)?;
        }
        AlterColumnOperation::AddGenerated { .. } => {
            return Err(SqlError::NotSupported(
                "ALTER COLUMN … ADD GENERATED".into(),
            ));
        }
    }
    Ok(())
}

/// `ALTER COLUMN … TYPE` between types whose values are stored alike —
/// among `text` and `varchar(n)`, among the integers — so no row is
/// rewritten: the rows are read once to check each value fits the new type
/// (22001, 22003), as PostgreSQL's rewrite would. Anything else would
/// rewrite the table: 0A000.
fn retype(txn: &Txn, desc: &mut TableDescriptor, pos: usize, to: SqlType) -> Result<()> {
    let from = desc.columns[pos].ty.clone();
    if from == to {
        return Ok(());
    }
    let text = |t: &SqlType| matches!(t, SqlType::Text | SqlType::Varchar(_));
    let int = |t: &SqlType| matches!(t, SqlType::SmallInt | SqlType::Integer | SqlType::BigInt);
    let alike = (text(&from) && text(&to)) || (int(&from) && int(&to));
    if !alike {
        return Err(SqlError::NotSupported(format!(
            "ALTER COLUMN … TYPE from {} to {} (it would rewrite the table)",
            from.pg_name(),
            to.pg_name()
        )));
    }
    let fits = |d: &Datum| -> Result<()> {
        match (d, &to) {
            (Datum::Text(s), SqlType::Varchar(Some(n))) if s.chars().count() > *n as usize => Err(
                SqlError::StringTooLong(format!("value too long for type character varying({n})")),
            ),
            (Datum::Int(v), SqlType::SmallInt) if i16::try_from(*v).is_err() => {
                Err(SqlError::NumericOutOfRange("smallint out of range".into()))
            }
            (Datum::Int(v), SqlType::Integer) if i32::try_from(*v).is_err() => {
                Err(SqlError::NumericOutOfRange("integer out of range".into()))
            }
            _ => Ok(()),
        }
    };
    let narrower = matches!(
        (&from, &to),
        (_, SqlType::Varchar(Some(_)))
            | (SqlType::BigInt, SqlType::Integer | SqlType::SmallInt)
            | (SqlType::Integer, SqlType::SmallInt)
    );
    if narrower {
        crate::row::scan_table(txn, desc, |_, row| {
            fits(&row[pos])?;
            Ok(true)
        })?;
    }
    desc.columns[pos].ty = to;
    Ok(())
}
