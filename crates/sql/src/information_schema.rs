//! The `information_schema` views DataFusion does not provide:
//! `table_constraints`, `key_column_usage`, `referential_constraints`,
//! `constraint_column_usage`, `check_constraints` and `sequences`; and
//! `columns`, `tables` and `views` in place of DataFusion's, which lack
//! PostgreSQL's columns (`information_schema_columns.rs`,
//! `information_schema_relations.rs`).
//!
//! DataFusion answers `information_schema.schemata` itself, from the
//! catalog it plans against, and owns the `information_schema` name. So
//! these views live in a schema of their own,
//! [`SCHEMA`], that is not listed anywhere, and [`rewrite`] points a
//! query's `information_schema.table_constraints` (and the others) there,
//! keeping the name it was referred by as its alias. Rows are built from
//! the KV catalog in the statement's snapshot, like `pg_catalog`'s, from
//! the same constraint views (`catalog_constraints.rs`), so both always
//! agree.

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::sql::sqlparser::ast::{self, Statement, TableFactor, VisitMut, VisitorMut};

use crate::catalog_constraints::ConstraintView;
use crate::catalog_table::{CatalogTable, Kind, V, s};
use crate::descriptor::TableDescriptor;
use crate::error::SqlError;
use crate::providers::TxnSlot;

/// The schema the extra views are found in.
pub const SCHEMA: &str = "shoal_information_schema";

/// The views, by their `information_schema` names.
pub const TABLES: &[&str] = &[
    "table_constraints",
    "key_column_usage",
    "referential_constraints",
    "constraint_column_usage",
    "check_constraints",
    "sequences",
    "columns",
    "tables",
    "views",
];

use Kind::{I32, Text};

const TABLE_CONSTRAINTS: &[(&str, Kind)] = &[
    ("constraint_catalog", Text),
    ("constraint_schema", Text),
    ("constraint_name", Text),
    ("table_catalog", Text),
    ("table_schema", Text),
    ("table_name", Text),
    ("constraint_type", Text),
    ("is_deferrable", Text),
    ("initially_deferred", Text),
    ("enforced", Text),
    ("nulls_distinct", Text),
];
const KEY_COLUMN_USAGE: &[(&str, Kind)] = &[
    ("constraint_catalog", Text),
    ("constraint_schema", Text),
    ("constraint_name", Text),
    ("table_catalog", Text),
    ("table_schema", Text),
    ("table_name", Text),
    ("column_name", Text),
    ("ordinal_position", I32),
    ("position_in_unique_constraint", I32),
];
const REFERENTIAL_CONSTRAINTS: &[(&str, Kind)] = &[
    ("constraint_catalog", Text),
    ("constraint_schema", Text),
    ("constraint_name", Text),
    ("unique_constraint_catalog", Text),
    ("unique_constraint_schema", Text),
    ("unique_constraint_name", Text),
    ("match_option", Text),
    ("update_rule", Text),
    ("delete_rule", Text),
];
const CONSTRAINT_COLUMN_USAGE: &[(&str, Kind)] = &[
    ("table_catalog", Text),
    ("table_schema", Text),
    ("table_name", Text),
    ("column_name", Text),
    ("constraint_catalog", Text),
    ("constraint_schema", Text),
    ("constraint_name", Text),
];
const CHECK_CONSTRAINTS: &[(&str, Kind)] = &[
    ("constraint_catalog", Text),
    ("constraint_schema", Text),
    ("constraint_name", Text),
    ("check_clause", Text),
];
const SEQUENCES: &[(&str, Kind)] = &[
    ("sequence_catalog", Text),
    ("sequence_schema", Text),
    ("sequence_name", Text),
    ("data_type", Text),
    ("numeric_precision", I32),
    ("numeric_precision_radix", I32),
    ("numeric_scale", I32),
    ("start_value", Text),
    ("minimum_value", Text),
    ("maximum_value", Text),
    ("increment", Text),
    ("cycle_option", Text),
];

/// Points `information_schema.<view>` at [`SCHEMA`] for the views listed
/// in [`TABLES`], aliased by the view's name unless the query aliases it.
pub fn rewrite(stmt: &mut Statement) {
    struct Relations;
    impl VisitorMut for Relations {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
            let TableFactor::Table {
                name, alias, args, ..
            } = factor
            else {
                return ControlFlow::Continue(());
            };
            if args.is_some() || name.0.len() != 2 {
                return ControlFlow::Continue(());
            }
            let part = |i: usize| {
                name.0[i]
                    .as_ident()
                    .map(|id| id.value.to_lowercase())
                    .unwrap_or_default()
            };
            let view = part(1);
            if part(0) != "information_schema" || !TABLES.contains(&view.as_str()) {
                return ControlFlow::Continue(());
            }
            name.0[0] = ast::ObjectNamePart::Identifier(ast::Ident::new(SCHEMA));
            if alias.is_none() {
                *alias = Some(ast::TableAlias {
                    explicit: true,
                    name: ast::Ident::new(view),
                    columns: Vec::new(),
                    at: None,
                });
            }
            ControlFlow::Continue(())
        }
    }
    let _ = stmt.visit(&mut Relations);
    // A column named with the view's full name (`information_schema.
    // table_constraints.constraint_name`) names it by the alias above.
    let _ = ast::visit_expressions_mut(stmt, |expr| {
        if let ast::Expr::CompoundIdentifier(parts) = expr
            && parts.len() == 3
            && parts[0].value.eq_ignore_ascii_case("information_schema")
            && TABLES.contains(&parts[1].value.to_lowercase().as_str())
        {
            parts.remove(0);
            parts[0] = ast::Ident::new(parts[0].value.to_lowercase());
        }
        ControlFlow::<()>::Continue(())
    });
}

/// The views, built per statement from its transaction's catalog.
pub struct InformationSchemaExtras {
    database: String,
    slot: TxnSlot,
}

impl std::fmt::Debug for InformationSchemaExtras {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InformationSchemaExtras({})", self.database)
    }
}

fn yes_no(b: bool) -> V {
    s(if b { "YES" } else { "NO" })
}

fn constraint_type(kind: &str) -> &'static str {
    match kind {
        "p" => "PRIMARY KEY",
        "u" => "UNIQUE",
        "f" => "FOREIGN KEY",
        _ => "CHECK",
    }
}

/// A referential action's name (`pg_constraint`'s one-letter code in).
fn rule(code: &str) -> &'static str {
    match code {
        "c" => "CASCADE",
        "n" => "SET NULL",
        "d" => "SET DEFAULT",
        "r" => "RESTRICT",
        _ => "NO ACTION",
    }
}

impl InformationSchemaExtras {
    pub fn new(database: String, slot: TxnSlot) -> Self {
        InformationSchemaExtras { database, slot }
    }

    /// The statement's transaction, which catalog reads go through.
    fn txn(&self) -> DfResult<Arc<shoal_kv::Txn>> {
        self.slot.lock().clone().ok_or_else(|| {
            DataFusionError::External(Box::new(SqlError::Internal(
                "no transaction for catalog read".into(),
            )))
        })
    }

    fn tables(&self) -> DfResult<Vec<Arc<TableDescriptor>>> {
        Ok(crate::catalog::list_tables(&*self.txn()?, &self.database)?)
    }

    /// Every table with its constraints.
    fn constraints(&self) -> DfResult<Vec<(Arc<TableDescriptor>, Vec<ConstraintView>)>> {
        let tables = self.tables()?;
        Ok(tables
            .iter()
            .map(|t| {
                (
                    t.clone(),
                    crate::catalog_constraints::constraints(t, &tables),
                )
            })
            .collect())
    }

    /// The catalog, schema and name columns of an object.
    fn names(&self, schema: &str, name: &str) -> [V; 3] {
        [
            s(self.database.clone()),
            s(schema.to_string()),
            s(name.to_string()),
        ]
    }

    fn build(&self, view: &str) -> DfResult<Option<CatalogTable>> {
        let mut t = match view {
            "table_constraints" => CatalogTable::new(TABLE_CONSTRAINTS),
            "key_column_usage" => CatalogTable::new(KEY_COLUMN_USAGE),
            "referential_constraints" => CatalogTable::new(REFERENTIAL_CONSTRAINTS),
            "constraint_column_usage" => CatalogTable::new(CONSTRAINT_COLUMN_USAGE),
            "check_constraints" => CatalogTable::new(CHECK_CONSTRAINTS),
            "sequences" => CatalogTable::new(SEQUENCES),
            "columns" => CatalogTable::new(crate::information_schema_columns::COLUMNS),
            "tables" => CatalogTable::new(crate::information_schema_relations::TABLES),
            "views" => CatalogTable::new(crate::information_schema_relations::VIEWS),
            _ => return Ok(None),
        };
        if view == "tables" || view == "views" {
            let views = crate::views::all_views(&*self.txn()?, &self.database)?;
            t.rows = match view {
                "tables" => crate::information_schema_relations::tables(
                    &self.database,
                    &self.tables()?,
                    &views,
                ),
                _ => crate::information_schema_relations::views(&self.database, &views),
            };
            return Ok(Some(t));
        }
        if view == "columns" {
            let txn = self.txn()?;
            let views = crate::views::all_views(&txn, &self.database)?;
            t.rows =
                crate::information_schema_columns::rows(&self.database, &self.tables()?, &views);
            return Ok(Some(t));
        }
        if view == "sequences" {
            let txn = self.slot.lock().clone();
            let Some(txn) = txn else {
                return Ok(Some(t));
            };
            for q in crate::sequences::all_sequences(&txn, &self.database)? {
                let mut row: Vec<V> = self.names(&q.schema, &q.name).into();
                row.extend([
                    s("bigint"),
                    V::I(64),
                    V::I(2),
                    V::I(0),
                    s(q.start.to_string()),
                    s(q.min.to_string()),
                    s(q.max.to_string()),
                    s(q.increment.to_string()),
                    s("NO"),
                ]);
                t.rows.push(row);
            }
            return Ok(Some(t));
        }
        let all = self.constraints()?;
        for (table, constraints) in &all {
            let column = |p: usize| s(table.columns[p].name.clone());
            for c in constraints {
                let constraint = self.names(&table.schema, &c.name);
                let on_table = self.names(&table.schema, &table.name);
                match view {
                    "table_constraints" => {
                        let mut row: Vec<V> = constraint.into();
                        row.extend(on_table);
                        row.extend([
                            s(constraint_type(c.kind)),
                            yes_no(c.deferrable),
                            yes_no(c.deferred),
                            s("YES"),
                            match c.kind {
                                "u" | "p" => s("YES"),
                                _ => V::N,
                            },
                        ]);
                        t.rows.push(row);
                    }
                    "key_column_usage" if c.kind != "c" => {
                        for (i, p) in c.key.iter().enumerate() {
                            let mut row: Vec<V> = self.names(&table.schema, &c.name).into();
                            row.extend(self.names(&table.schema, &table.name));
                            row.extend([
                                column(*p),
                                V::I(i as i64 + 1),
                                match &c.parent {
                                    Some(_) => V::I(i as i64 + 1),
                                    None => V::N,
                                },
                            ]);
                            t.rows.push(row);
                        }
                    }
                    "referential_constraints" if c.kind == "f" => {
                        let unique = c.parent.as_ref().and_then(|(parent, _)| {
                            all.iter()
                                .find(|(t, _)| t.id == parent.id)
                                .and_then(|(_, pcs)| {
                                    pcs.iter()
                                        .find(|pc| pc.index_oid == c.index_oid && pc.kind != "f")
                                })
                                .map(|pc| (parent.schema.clone(), pc.name.clone()))
                        });
                        let mut row: Vec<V> = constraint.into();
                        match unique {
                            Some((schema, name)) => row.extend(self.names(&schema, &name)),
                            None => row.extend([V::N, V::N, V::N]),
                        }
                        row.extend([s("NONE"), s(rule(c.on_update)), s(rule(c.on_delete))]);
                        t.rows.push(row);
                    }
                    // The columns a constraint uses: a foreign key's are
                    // the referenced ones, as in PostgreSQL.
                    "constraint_column_usage" => {
                        let (owner, columns) = match &c.parent {
                            Some((parent, cols)) => (parent.as_ref(), cols.clone()),
                            None => (table.as_ref(), c.key.clone()),
                        };
                        for p in columns {
                            let mut row: Vec<V> = self.names(&owner.schema, &owner.name).into();
                            row.push(s(owner.columns[p].name.clone()));
                            row.extend(self.names(&table.schema, &c.name));
                            t.rows.push(row);
                        }
                    }
                    "check_constraints" if c.kind == "c" => {
                        let mut row: Vec<V> = constraint.into();
                        // What follows `CHECK ` in pg_get_constraintdef.
                        let clause = c.definition.strip_prefix("CHECK ").unwrap_or(&c.definition);
                        row.push(s(clause.to_string()));
                        t.rows.push(row);
                    }
                    _ => {}
                }
            }
        }
        if matches!(view, "table_constraints" | "check_constraints") {
            self.not_null_constraints(view, &all, &mut t)?;
        }
        Ok(Some(t))
    }

    /// PostgreSQL lists each NOT NULL column as a CHECK constraint named
    /// `<schema oid>_<table oid>_<attnum>_not_null`, with the clause
    /// `<column> IS NOT NULL`.
    fn not_null_constraints(
        &self,
        view: &str,
        all: &[(Arc<TableDescriptor>, Vec<ConstraintView>)],
        t: &mut CatalogTable,
    ) -> DfResult<()> {
        let namespace = crate::schemas::namespace_oids(&*self.txn()?, &self.database)?;
        for (table, _) in all {
            for p in table.visible_columns() {
                let column = &table.columns[p];
                if column.nullable {
                    continue;
                }
                let attnum = crate::catalog_constraints::attnums(table, &[p]);
                let name = format!(
                    "{}_{}_{}_not_null",
                    namespace(&table.schema),
                    table.oid(),
                    attnum.first().copied().unwrap_or_default()
                );
                let mut row: Vec<V> = self.names(&table.schema, &name).into();
                match view {
                    "table_constraints" => {
                        row.extend(self.names(&table.schema, &table.name));
                        row.extend([s("CHECK"), s("NO"), s("NO"), s("YES"), V::N]);
                    }
                    _ => row.push(s(format!("{} IS NOT NULL", column.name))),
                }
                t.rows.push(row);
            }
        }
        Ok(())
    }
}

crate::catalog_table::catalog_schema_provider!(InformationSchemaExtras, TABLES);
