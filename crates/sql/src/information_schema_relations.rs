//! `information_schema.tables` and `information_schema.views` with
//! PostgreSQL's columns.
//!
//! DataFusion's `tables` has four of PostgreSQL's twelve columns, so a
//! tool asking for `is_insertable_into` fails; its `views` lists every
//! table as a view, with a `definition` column PostgreSQL calls
//! `view_definition`. These list what PostgreSQL lists:
//! - `tables`: the database's tables (`BASE TABLE`) and views (`VIEW`) in
//!   every schema, then `pg_catalog`'s relations (its catalogs proper are
//!   base tables, the rest views, as in PostgreSQL) and the
//!   `information_schema` views;
//! - `views`: the database's views, with the query each was created with.
//!
//! Shoal's views cannot be written through, so none is updatable or
//! insertable into.

use std::sync::Arc;

use crate::catalog_table::{Kind, V, s};
use crate::descriptor::TableDescriptor;
use crate::views::ViewDescriptor;

use Kind::Text;

/// PostgreSQL 15's columns of `information_schema.tables`.
pub const TABLES: &[(&str, Kind)] = &[
    ("table_catalog", Text),
    ("table_schema", Text),
    ("table_name", Text),
    ("table_type", Text),
    ("self_referencing_column_name", Text),
    ("reference_generation", Text),
    ("user_defined_type_catalog", Text),
    ("user_defined_type_schema", Text),
    ("user_defined_type_name", Text),
    ("is_insertable_into", Text),
    ("is_typed", Text),
    ("commit_action", Text),
];

/// PostgreSQL 15's columns of `information_schema.views`.
pub const VIEWS: &[(&str, Kind)] = &[
    ("table_catalog", Text),
    ("table_schema", Text),
    ("table_name", Text),
    ("view_definition", Text),
    ("check_option", Text),
    ("is_updatable", Text),
    ("is_insertable_into", Text),
    ("is_trigger_updatable", Text),
    ("is_trigger_deletable", Text),
    ("is_trigger_insertable_into", Text),
];

/// The rows of `information_schema.tables`.
pub(crate) fn tables(
    database: &str,
    tables: &[Arc<TableDescriptor>],
    views: &[ViewDescriptor],
) -> Vec<Vec<V>> {
    let row = |schema: &str, name: &str, kind: &str, insertable: bool| -> Vec<V> {
        vec![
            s(database),
            s(schema),
            s(name),
            s(kind),
            V::N,
            V::N,
            V::N,
            V::N,
            V::N,
            s(if insertable { "YES" } else { "NO" }),
            s("NO"),
            V::N,
        ]
    };
    let mut rows = Vec::new();
    for t in tables {
        rows.push(row(&t.schema, &t.name, "BASE TABLE", true));
    }
    for v in views {
        rows.push(row(&v.schema, &v.name, "VIEW", false));
    }
    for name in crate::pg_catalog::TABLES {
        let kind = match crate::pg_catalog::catalog_table_oid(name) {
            Some(_) => "BASE TABLE",
            None => "VIEW",
        };
        rows.push(row(
            crate::pg_catalog::PG_CATALOG,
            name,
            kind,
            kind == "BASE TABLE",
        ));
    }
    for name in crate::information_schema::TABLES
        .iter()
        .chain(&["schemata"])
    {
        rows.push(row("information_schema", name, "VIEW", false));
    }
    rows
}

/// The rows of `information_schema.views`.
pub(crate) fn views(database: &str, views: &[ViewDescriptor]) -> Vec<Vec<V>> {
    views
        .iter()
        .map(|v| {
            let mut row = vec![s(database), s(v.schema.clone()), s(v.name.clone())];
            row.push(s(v.sql.clone()));
            row.push(s("NONE"));
            row.extend(std::iter::repeat_with(|| s("NO")).take(5));
            row
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_have_every_column() {
        let view = ViewDescriptor {
            id: 3,
            database: "shoal".into(),
            schema: "public".into(),
            name: "v".into(),
            sql: "SELECT 1".into(),
            columns: vec!["x".into()],
            column_types: vec![23],
            depends_on: Vec::new(),
        };
        let views_rows = views("shoal", std::slice::from_ref(&view));
        assert_eq!(views_rows.len(), 1);
        assert!(views_rows.iter().all(|r| r.len() == VIEWS.len()));
        let table_rows = tables("shoal", &[], &[view]);
        assert!(table_rows.iter().all(|r| r.len() == TABLES.len()));
        assert!(matches!(&table_rows[0][3], V::S(kind) if kind == "VIEW"));
    }
}
