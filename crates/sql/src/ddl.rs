//! `CREATE TABLE`, `DROP TABLE` and `TRUNCATE`.
//!
//! A new table gets a fresh id and a descriptor in the catalog, written in
//! the statement's transaction. A `UNIQUE` constraint becomes a unique
//! index (`index_ddl.rs`); `CHECK` constraints (`checks.rs`) and foreign
//! keys (`foreign_keys.rs`) are validated and stored in the descriptor (a
//! foreign key in its parent's too). Constraint forms Shoal does not
//! enforce (deferrable ones, exclusion constraints) are refused with "not
//! supported" rather than accepted and ignored: a constraint that silently
//! does nothing would let bad data in.
//!
//! A new table gets its own range once its transaction commits: its key
//! span is split off ([`AfterCommit::SplitOff`]; splits are not
//! transactional, so they wait for the commit).
//!
//! Dropping a table deletes its descriptor in the statement's transaction;
//! from then on nothing can reach its rows (table ids are never reused).
//! Once that transaction commits, the rows are deleted range by range in
//! transactions of their own ([`AfterCommit::Purge`]), so dropping a big
//! table never builds one big transaction. If the node stops before that
//! ends, the rest stays, unreachable.

use std::collections::HashSet;

use datafusion::sql::sqlparser::ast::{
    self, ColumnOption, ObjectName, ObjectType, TableConstraint,
};
use std::sync::Arc;

use datafusion::execution::context::SessionContext;
use shoal_kv::{Kv, Txn};

use crate::catalog;
use crate::descriptor::{ColumnDescriptor, IndexColumn, ROWID_COLUMN, TableDescriptor};
use crate::error::{Result, SqlError};
use crate::names;
use crate::row::{prefix_end, table_prefix};
use crate::session::Output;
use crate::types::SqlType;

pub fn create_table(
    context: &SessionContext,
    txn: &Txn,
    scope: &names::Scope,
    create: &ast::CreateTable,
    after_commit: &mut Vec<AfterCommit>,
) -> Result<Output> {
    if create.query.is_some() {
        return Err(SqlError::NotSupported("CREATE TABLE … AS".into()));
    }
    if create.temporary {
        return Err(SqlError::NotSupported("temporary tables".into()));
    }
    if create.like.is_some() || create.clone.is_some() || create.partition_of.is_some() {
        return Err(SqlError::NotSupported(
            "CREATE TABLE … LIKE / PARTITION OF".into(),
        ));
    }
    let database = scope.database.as_str();
    let (schema, name) = scope.target(txn, &create.name)?;
    if catalog::relation_exists(txn, database, &schema, &name)? {
        if create.if_not_exists {
            return Ok(Output::command("CREATE TABLE"));
        }
        return Err(SqlError::DuplicateTable(name));
    }
    crate::schemas::touch(txn, database, &schema)?;
    if create.columns.is_empty() {
        return Err(SqlError::NotSupported("tables without columns".into()));
    }
    let mut columns = Vec::with_capacity(create.columns.len() + 1);
    let mut primary_key: Option<Vec<usize>> = None;
    let mut seen = HashSet::new();
    // UNIQUE constraints: (name if given, columns), made indexes below.
    let mut uniques: Vec<(Option<String>, Vec<usize>)> = Vec::new();
    // SERIAL and identity columns, fed by a sequence each.
    let mut sequenced: Vec<usize> = Vec::new();
    // CHECK and FOREIGN KEY constraints, declared once the columns are.
    let mut checks: Vec<(Option<ast::Ident>, &ast::CheckConstraint)> = Vec::new();
    let mut references: Vec<(
        Option<ast::Ident>,
        &ast::ForeignKeyConstraint,
        Vec<ast::Ident>,
    )> = Vec::new();
    for (pos, def) in create.columns.iter().enumerate() {
        let declared = declare_column(def, &name)?;
        if !seen.insert(declared.column.name.clone()) {
            return Err(SqlError::DuplicateColumn(format!(
                "column \"{}\" specified more than once",
                declared.column.name
            )));
        }
        if declared.sequenced {
            sequenced.push(pos);
        }
        if declared.primary {
            if primary_key.is_some() {
                return Err(multiple_pk(&name));
            }
            primary_key = Some(vec![pos]);
        }
        uniques.extend(declared.uniques.into_iter().map(|n| (n, vec![pos])));
        checks.extend(declared.checks);
        references.extend(
            declared
                .references
                .into_iter()
                .map(|(n, fk)| (n, fk, vec![def.name.clone()])),
        );
        columns.push(declared.column);
    }
    for constraint in &create.constraints {
        match constraint {
            TableConstraint::PrimaryKey(pk) => {
                if primary_key.is_some() {
                    return Err(multiple_pk(&name));
                }
                let mut positions = Vec::with_capacity(pk.columns.len());
                for ic in &pk.columns {
                    let col = match &ic.column.expr {
                        ast::Expr::Identifier(ident) => names::fold(ident),
                        other => {
                            return Err(SqlError::NotSupported(format!(
                                "expression {other} in a primary key"
                            )));
                        }
                    };
                    if ic.column.options.asc == Some(false) {
                        return Err(SqlError::NotSupported("DESC primary key columns".into()));
                    }
                    let p = columns.iter().position(|c| c.name == col).ok_or_else(|| {
                        SqlError::UndefinedColumn(format!(
                            "column \"{col}\" named in key does not exist"
                        ))
                    })?;
                    if positions.contains(&p) {
                        return Err(SqlError::DuplicateColumn(format!(
                            "column \"{col}\" appears twice in primary key constraint"
                        )));
                    }
                    positions.push(p);
                }
                primary_key = Some(positions);
            }
            TableConstraint::Unique(unique) => {
                let positions = unique_columns(unique, &columns)?;
                uniques.push((unique.name.as_ref().map(names::fold), positions));
            }
            TableConstraint::Check(check) => checks.push((check.name.clone(), check)),
            TableConstraint::ForeignKey(fk) => {
                references.push((fk.name.clone(), fk, fk.columns.clone()));
            }
            other => {
                return Err(SqlError::NotSupported(format!("table constraint {other}")));
            }
        }
    }
    let primary_key = match primary_key {
        Some(pk) => {
            for p in &pk {
                if !columns[*p].ty.is_key_type() {
                    return Err(SqlError::NotSupported(format!(
                        "{} as a primary key column type",
                        columns[*p].ty.pg_name()
                    )));
                }
                // PostgreSQL makes primary key columns NOT NULL.
                columns[*p].nullable = false;
            }
            pk
        }
        None => {
            if columns.iter().any(|c| c.name == ROWID_COLUMN) {
                return Err(SqlError::NotSupported(format!(
                    "a column named \"{ROWID_COLUMN}\" in a table without a primary key"
                )));
            }
            columns.push(ColumnDescriptor {
                nullable: false,
                hidden: true,
                ..ColumnDescriptor::plain(ROWID_COLUMN, SqlType::BigInt)
            });
            vec![columns.len() - 1]
        }
    };
    let mut desc = TableDescriptor {
        id: catalog::allocate_table_id(txn)?,
        database: database.to_string(),
        schema,
        name,
        columns,
        primary_key,
        version: 1,
        indexes: Vec::new(),
        next_index_id: 2,
        checks: Vec::new(),
        foreign_keys: Vec::new(),
        referenced_by: Vec::new(),
    };
    add_unique_constraints(txn, &mut desc, uniques, true)?;
    for pos in sequenced {
        add_column_sequence(txn, &mut desc, pos)?;
    }
    for (name, check) in checks {
        let check = crate::checks::declare(
            context,
            &mut desc,
            name.as_ref(),
            &check.expr,
            check.enforced,
        )?;
        desc.checks.push(check);
    }
    for (name, fk, columns) in references {
        let fk = ast::ForeignKeyConstraint { name, ..fk.clone() };
        crate::foreign_keys::add(txn, &mut desc, &fk, &columns)?;
    }
    catalog::put_table(txn, &desc)?;
    for index in &desc.indexes {
        catalog::put_index_name(txn, &desc, &index.name)?;
    }
    after_commit.push(AfterCommit::SplitOff(desc.id));
    Ok(Output::command("CREATE TABLE"))
}

/// A column definition of `CREATE TABLE` or `ALTER TABLE … ADD COLUMN`,
/// with what its options declare beyond the column itself.
pub(crate) struct DeclaredColumn<'a> {
    pub column: ColumnDescriptor,
    /// `SERIAL` or identity: fed by a sequence.
    pub sequenced: bool,
    /// `PRIMARY KEY`.
    pub primary: bool,
    /// `UNIQUE`, by constraint name if given.
    pub uniques: Vec<Option<String>>,
    pub checks: Vec<(Option<ast::Ident>, &'a ast::CheckConstraint)>,
    pub references: Vec<(Option<ast::Ident>, &'a ast::ForeignKeyConstraint)>,
}

/// Reads a column definition of table `table` (module docs).
pub(crate) fn declare_column<'a>(
    def: &'a ast::ColumnDef,
    table: &str,
) -> Result<DeclaredColumn<'a>> {
    let col_name = names::fold(&def.name);
    let serial = serial_type(&def.data_type);
    let ty = match &serial {
        Some(ty) => ty.clone(),
        None => SqlType::from_ast(&def.data_type)?,
    };
    let mut declared = DeclaredColumn {
        column: ColumnDescriptor::plain(&col_name, ty.clone()),
        sequenced: serial.is_some(),
        primary: false,
        uniques: Vec::new(),
        checks: Vec::new(),
        references: Vec::new(),
    };
    declared.column.nullable = serial.is_none();
    for opt in &def.options {
        match &opt.option {
            ColumnOption::Null => declared.column.nullable = true,
            ColumnOption::NotNull => declared.column.nullable = false,
            ColumnOption::Default(expr) => declared.column.default = Some(expr.to_string()),
            ColumnOption::Generated {
                generated_as: ast::GeneratedAs::ByDefault,
                generation_expr: None,
                sequence_options,
                ..
            } if sequence_options.as_ref().is_none_or(Vec::is_empty) => {
                if !matches!(ty, SqlType::SmallInt | SqlType::Integer | SqlType::BigInt) {
                    return Err(SqlError::InvalidTableDefinition(format!(
                        "identity column type must be smallint, integer, or bigint, not {}",
                        ty.pg_name()
                    )));
                }
                declared.column.nullable = false;
                declared.sequenced = true;
            }
            ColumnOption::Generated { .. } => {
                return Err(SqlError::NotSupported(
                    "GENERATED ALWAYS, generated columns and identity options".into(),
                ));
            }
            ColumnOption::PrimaryKey(_) => {
                if declared.primary {
                    return Err(multiple_pk(table));
                }
                declared.primary = true;
            }
            ColumnOption::Unique(unique) => {
                refuse_deferred(unique)?;
                declared.uniques.push(opt.name.as_ref().map(names::fold));
            }
            ColumnOption::Check(check) => {
                declared
                    .checks
                    .push((opt.name.clone().or_else(|| check.name.clone()), check));
            }
            ColumnOption::ForeignKey(fk) => {
                let name = opt.name.clone().or_else(|| fk.name.clone());
                declared.references.push((name, fk));
            }
            other => {
                return Err(SqlError::NotSupported(format!("column constraint {other}")));
            }
        }
    }
    if declared.column.default.is_some() && declared.sequenced {
        return Err(SqlError::Syntax(format!(
            "multiple default values specified for column \"{col_name}\" of table \"{table}\""
        )));
    }
    Ok(declared)
}

/// The column type behind `SERIAL`, `BIGSERIAL` and `SMALLSERIAL`.
fn serial_type(ty: &ast::DataType) -> Option<SqlType> {
    let ast::DataType::Custom(name, modifiers) = ty else {
        return None;
    };
    if !modifiers.is_empty() {
        return None;
    }
    match name.to_string().to_ascii_lowercase().as_str() {
        "serial" | "serial4" => Some(SqlType::Integer),
        "bigserial" | "serial8" => Some(SqlType::BigInt),
        "smallserial" | "serial2" => Some(SqlType::SmallInt),
        _ => None,
    }
}

/// The sequence behind a `SERIAL` or identity column, named as PostgreSQL
/// names it (`<table>_<column>_seq`), owned by the column, and the
/// column's default drawing from it.
pub(crate) fn add_column_sequence(txn: &Txn, desc: &mut TableDescriptor, pos: usize) -> Result<()> {
    let column = desc.columns[pos].name.clone();
    let base = format!("{}_{column}_seq", desc.name);
    let mut name = base.clone();
    let mut n = 0;
    while catalog::relation_exists(txn, &desc.database, &desc.schema, &name)? {
        n += 1;
        name = format!("{base}{n}");
    }
    let max = match desc.columns[pos].ty {
        SqlType::SmallInt => i64::from(i16::MAX),
        SqlType::Integer => i64::from(i32::MAX),
        _ => i64::MAX,
    };
    let seq = crate::sequences::for_column(
        &desc.database,
        &desc.schema,
        name,
        max,
        (desc.name.clone(), column),
    );
    let seq = crate::sequences::create(txn, seq)?;
    let literal = names::display(&seq.schema, &seq.name).replace('\'', "''");
    desc.columns[pos].default = Some(format!("nextval('{literal}')"));
    Ok(())
}

/// The columns (positions in `columns`) of a table's `UNIQUE (…)`
/// constraint.
pub(crate) fn unique_columns(
    unique: &ast::UniqueConstraint,
    columns: &[ColumnDescriptor],
) -> Result<Vec<usize>> {
    refuse_deferred(unique)?;
    if unique.nulls_distinct == ast::NullsDistinctOption::NotDistinct {
        return Err(SqlError::NotSupported("NULLS NOT DISTINCT".into()));
    }
    let mut positions = Vec::with_capacity(unique.columns.len());
    for ic in &unique.columns {
        let ast::Expr::Identifier(ident) = &ic.column.expr else {
            return Err(SqlError::NotSupported(format!(
                "expression {} in a UNIQUE constraint",
                ic.column.expr
            )));
        };
        let col = names::fold(ident);
        let p = columns
            .iter()
            .position(|c| c.name == col && !c.dropped)
            .ok_or_else(|| {
                SqlError::UndefinedColumn(format!("column \"{col}\" named in key does not exist"))
            })?;
        positions.push(p);
    }
    Ok(positions)
}

/// A UNIQUE constraint checked later than each statement, or not at all,
/// is not what Shoal enforces: refused rather than accepted and ignored.
fn refuse_deferred(unique: &ast::UniqueConstraint) -> Result<()> {
    if unique
        .characteristics
        .as_ref()
        .is_some_and(|c| c.deferrable == Some(true) || c.enforced == Some(false))
    {
        return Err(SqlError::NotSupported(
            "DEFERRABLE or NOT ENFORCED UNIQUE constraints".into(),
        ));
    }
    Ok(())
}

/// The indexes behind UNIQUE constraints, named as PostgreSQL names them
/// (`<table>_<columns>_key`) unless named. In a new table (`dedupe`), a
/// constraint on exactly the primary key, or repeating another, adds
/// nothing, as in PostgreSQL's `CREATE TABLE`; `ALTER TABLE` always adds
/// one.
pub(crate) fn add_unique_constraints(
    txn: &Txn,
    desc: &mut TableDescriptor,
    uniques: Vec<(Option<String>, Vec<usize>)>,
    dedupe: bool,
) -> Result<()> {
    for (name, positions) in uniques {
        if dedupe
            && (positions == desc.primary_key
                || desc.indexes.iter().any(|i| {
                    i.columns
                        .iter()
                        .map(|c| c.column)
                        .eq(positions.iter().copied())
                }))
        {
            continue;
        }
        let columns: Vec<IndexColumn> = positions
            .iter()
            .map(|&column| IndexColumn {
                column,
                descending: false,
            })
            .collect();
        for c in &columns {
            let ty = &desc.columns[c.column].ty;
            if !ty.is_key_type() {
                return Err(SqlError::NotSupported(format!(
                    "{} in a UNIQUE constraint",
                    ty.pg_name()
                )));
            }
        }
        let name = match name {
            Some(n) => {
                if desc.index_named(&n).is_some()
                    || n == desc.name
                    || n == desc.pkey_name()
                    || catalog::relation_exists(txn, &desc.database, &desc.schema, &n)?
                {
                    return Err(SqlError::DuplicateTable(n));
                }
                n
            }
            None => crate::index_ddl::free_name(txn, desc, &columns, "key")?,
        };
        crate::index_ddl::add_index(desc, name, columns, Vec::new(), true, true)?;
    }
    Ok(())
}

fn multiple_pk(table: &str) -> SqlError {
    SqlError::InvalidTableDefinition(format!(
        "multiple primary keys for table \"{table}\" are not allowed"
    ))
}

pub fn drop(
    txn: &Txn,
    scope: &names::Scope,
    object_type: ObjectType,
    if_exists: bool,
    names_list: &[ObjectName],
    cascade: bool,
    after_commit: &mut Vec<AfterCommit>,
) -> Result<Output> {
    if object_type == ObjectType::Sequence {
        return crate::sequences::drop_statement(txn, scope, if_exists, names_list);
    }
    if object_type == ObjectType::View {
        return crate::views::drop_views(txn, scope, if_exists, names_list, cascade);
    }
    if object_type == ObjectType::Index {
        return crate::index_ddl::drop_indexes(txn, scope, if_exists, names_list, after_commit);
    }
    if object_type == ObjectType::Schema {
        return crate::schemas::drop(txn, scope, if_exists, names_list, cascade, after_commit);
    }
    if object_type != ObjectType::Table {
        return Err(SqlError::NotSupported(format!("DROP {object_type}")));
    }
    let database = scope.database.as_str();
    let mut found = Vec::new();
    for name in names_list {
        let (schema, table) = scope.resolve(txn, name)?;
        match catalog::table_by_name(txn, database, &schema, &table)? {
            Some(desc) => found.push(desc),
            None if crate::views::view_exists(txn, database, &schema, &table)? => {
                return Err(SqlError::WrongObjectType(format!(
                    "\"{table}\" is not a table"
                )));
            }
            None if if_exists => {}
            None => return Err(SqlError::UndefinedTable(table)),
        }
    }
    drop_tables(txn, found, cascade, after_commit)?;
    Ok(Output::command("DROP TABLE"))
}

/// Drops tables: the foreign keys and views depending on them (or 2BP01
/// without `cascade`), the sequences they own, their descriptors; their
/// rows are purged after commit.
pub(crate) fn drop_tables(
    txn: &Txn,
    found: Vec<Arc<TableDescriptor>>,
    cascade: bool,
    after_commit: &mut Vec<AfterCommit>,
) -> Result<()> {
    crate::foreign_keys::detach_for_drop(txn, &found, cascade)?;
    for desc in found {
        crate::views::drop_dependents(txn, &desc.database, &desc.schema, &desc.name, cascade)?;
        crate::sequences::drop_owned_by(txn, &desc.database, &desc.schema, &desc.name)?;
        catalog::delete_table(txn, &desc)?;
        after_commit.push(AfterCommit::Purge(desc.id));
    }
    Ok(())
}

/// `TRUNCATE [TABLE] t [, …]`: every row and index entry of each table
/// deleted in the statement's transaction, so it commits or rolls back like
/// any write (PostgreSQL's `TRUNCATE` is transactional too). The deletes
/// are buffered like any statement's writes: memory grows with the number
/// of keys. A table referenced by a foreign key is emptied only together
/// with the tables referencing it (named too, or added by `CASCADE`).
/// `RESTART IDENTITY` of a table owning sequences is not supported yet
/// (0A000).
pub fn truncate(txn: &Txn, scope: &names::Scope, truncate: &ast::Truncate) -> Result<Output> {
    let database = scope.database.as_str();
    if truncate.partitions.is_some() || truncate.on_cluster.is_some() {
        return Err(SqlError::NotSupported(
            "TRUNCATE … PARTITION / ON CLUSTER".into(),
        ));
    }
    let mut tables = Vec::with_capacity(truncate.table_names.len());
    for target in &truncate.table_names {
        let (schema, name) = scope.resolve(txn, &target.name)?;
        match catalog::table_by_name(txn, database, &schema, &name)? {
            Some(desc) => tables.push(desc),
            None if crate::views::view_exists(txn, database, &schema, &name)? => {
                return Err(SqlError::WrongObjectType(format!(
                    "\"{name}\" is not a table"
                )));
            }
            None if truncate.if_exists => {}
            None => return Err(SqlError::UndefinedTable(name)),
        }
    }
    let cascade = truncate.cascade == Some(ast::CascadeOption::Cascade);
    let tables = crate::foreign_keys::truncation_set(txn, tables, cascade)?;
    if truncate.identity == Some(ast::TruncateIdentityOption::Restart) {
        // Other nodes keep handing out their cached blocks of a sequence
        // (`sequences.rs`); restarting one everywhere, transactionally, is
        // not built yet. A table owning none has nothing to restart.
        let owned = crate::sequences::all_sequences(txn, database)?;
        if owned.iter().any(|q| {
            q.owned_by
                .as_ref()
                .is_some_and(|(t, _)| tables.iter().any(|d| d.name == *t && d.schema == q.schema))
        }) {
            return Err(SqlError::NotSupported(
                "TRUNCATE … RESTART IDENTITY of a table with sequences".into(),
            ));
        }
    }
    const CHUNK: usize = 1024;
    for desc in tables {
        let end = prefix_end(&table_prefix(desc.id));
        let mut from = table_prefix(desc.id);
        loop {
            let chunk = txn.scan(&from, &end, CHUNK)?;
            let done = chunk.len() < CHUNK;
            if let Some((last, _)) = chunk.last() {
                from = last.clone();
                from.push(0);
            }
            txn.write_all(chunk.into_iter().map(|(k, _)| (k, None)).collect())?;
            if done {
                break;
            }
        }
    }
    Ok(Output::command("TRUNCATE TABLE"))
}

/// What DDL leaves to do once its transaction has committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterCommit {
    /// Give the new table its own range.
    SplitOff(u32),
    /// Delete the rows (and index entries) of the dropped table.
    Purge(u32),
    /// Delete the entries of a dropped index: (table id, index id).
    PurgeIndex(u32, u8),
}

/// Carries out what committed DDL left to do (module docs). A failure is
/// logged, not returned: the DDL itself has committed, and a table without
/// its own range, or an unreachable row left behind, changes no answer.
pub fn after_commit(kv: &Arc<Kv>, actions: &[AfterCommit]) {
    for &action in actions {
        let result = match action {
            AfterCommit::SplitOff(table_id) => {
                let start = table_prefix(table_id);
                let end = prefix_end(&start);
                kv.split_at(&start)
                    .and_then(|_| kv.split_at(&end))
                    .map(|_| 0)
            }
            AfterCommit::Purge(table_id) => {
                let start = table_prefix(table_id);
                kv.purge_span(&start, &prefix_end(&start), 1024)
            }
            AfterCommit::PurgeIndex(table_id, index_id) => {
                let start = crate::index_key::entries_prefix(table_id, index_id);
                kv.purge_span(&start, &prefix_end(&start), 1024)
            }
        };
        match result {
            Ok(rows) => tracing::debug!(?action, rows, "finished after commit"),
            Err(e) => tracing::warn!(?action, error = %e, "could not finish after commit"),
        }
    }
}
