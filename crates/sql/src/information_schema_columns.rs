//! `information_schema.columns` with PostgreSQL's columns and values.
//!
//! DataFusion's own view prints Arrow's types (`Int32`, `Utf8`), counts
//! positions from 0 and has no defaults; tools that read the schema from
//! it (schema diffing, ORMs' introspection) need PostgreSQL's answer:
//! `integer`, `character varying` with its length, `ARRAY` with the
//! element in `udt_name` (`_int4`), positions from 1 as `attnum`, the
//! default as `pg_get_expr` prints it (`catalog_defaults.rs`).
//!
//! A table's columns come from its descriptor; a view's from the types
//! its query had when the view was created (`ViewDescriptor::
//! column_types`). Hidden and dropped columns are not listed; positions
//! are `pg_attribute.attnum`, so both catalogs agree.

use crate::catalog_table::{Kind, V, s};
use crate::descriptor::TableDescriptor;
use crate::types::SqlType;
use crate::views::ViewDescriptor;

use Kind::{I32, Text};

/// PostgreSQL 15's columns of the view, in order.
pub const COLUMNS: &[(&str, Kind)] = &[
    ("table_catalog", Text),
    ("table_schema", Text),
    ("table_name", Text),
    ("column_name", Text),
    ("ordinal_position", I32),
    ("column_default", Text),
    ("is_nullable", Text),
    ("data_type", Text),
    ("character_maximum_length", I32),
    ("character_octet_length", I32),
    ("numeric_precision", I32),
    ("numeric_precision_radix", I32),
    ("numeric_scale", I32),
    ("datetime_precision", I32),
    ("interval_type", Text),
    ("interval_precision", I32),
    ("character_set_catalog", Text),
    ("character_set_schema", Text),
    ("character_set_name", Text),
    ("collation_catalog", Text),
    ("collation_schema", Text),
    ("collation_name", Text),
    ("domain_catalog", Text),
    ("domain_schema", Text),
    ("domain_name", Text),
    ("udt_catalog", Text),
    ("udt_schema", Text),
    ("udt_name", Text),
    ("scope_catalog", Text),
    ("scope_schema", Text),
    ("scope_name", Text),
    ("maximum_cardinality", I32),
    ("dtd_identifier", Text),
    ("is_self_referencing", Text),
    ("is_identity", Text),
    ("identity_generation", Text),
    ("identity_start", Text),
    ("identity_increment", Text),
    ("identity_maximum", Text),
    ("identity_minimum", Text),
    ("identity_cycle", Text),
    ("is_generated", Text),
    ("generation_expression", Text),
    ("is_updatable", Text),
];

/// One column's type, as the view describes it.
struct ColumnType {
    oid: i64,
    /// The declared length of `character varying(n)` / `character(n)`.
    length: Option<i64>,
    /// The declared precision and scale of `numeric(p, s)`.
    numeric: Option<(i64, i64)>,
}

impl ColumnType {
    fn of(ty: &SqlType) -> ColumnType {
        ColumnType {
            oid: ty.pg_oid() as i64,
            length: match ty {
                SqlType::Varchar(n) => n.map(i64::from),
                SqlType::Char(n) => Some(i64::from(*n)),
                _ => None,
            },
            numeric: match ty {
                SqlType::Numeric { precision, scale } => {
                    Some((i64::from(*precision), i64::from(*scale)))
                }
                _ => None,
            },
        }
    }

    /// The type columns, `data_type` through `interval_precision`.
    fn describe(&self) -> [V; 9] {
        let data_type = match crate::types::array_element(self.oid as u32) {
            Some(_) => "ARRAY".to_string(),
            None => crate::functions::format_type(self.oid, -1),
        };
        // Characters take at most 4 bytes in UTF-8; an unlimited text
        // is limited by the 1 GB a value can take.
        let (max_length, octets) = match (self.oid, self.length) {
            (1042 | 1043, Some(n)) => (V::I(n), V::I(n * 4)),
            (25 | 1042 | 1043, None) => (V::N, V::I(1_073_741_824)),
            _ => (V::N, V::N),
        };
        let (precision, radix, scale) = match self.oid {
            21 => (V::I(16), V::I(2), V::I(0)),
            23 => (V::I(32), V::I(2), V::I(0)),
            20 => (V::I(64), V::I(2), V::I(0)),
            700 => (V::I(24), V::I(2), V::N),
            701 => (V::I(53), V::I(2), V::N),
            1700 => match self.numeric {
                Some((p, s)) => (V::I(p), V::I(10), V::I(s)),
                None => (V::N, V::I(10), V::N),
            },
            _ => (V::N, V::N, V::N),
        };
        let datetime = match self.oid {
            1082 => V::I(0),
            1083 | 1114 | 1184 | 1186 => V::I(6),
            _ => V::N,
        };
        [
            s(data_type),
            max_length,
            octets,
            precision,
            radix,
            scale,
            datetime,
            V::N,
            V::N,
        ]
    }

    /// `udt_name`: the type's `pg_type` name, `_` before an array's.
    fn udt_name(&self) -> V {
        let name = |oid: i64| crate::pg_catalog::type_name(oid).unwrap_or("unknown");
        match crate::types::array_element(self.oid as u32) {
            Some(element) => s(format!("_{}", name(i64::from(element)))),
            None => s(name(self.oid)),
        }
    }
}

/// The view's rows for `tables` and `views` of `database`.
pub(crate) fn rows(
    database: &str,
    tables: &[std::sync::Arc<TableDescriptor>],
    views: &[ViewDescriptor],
) -> Vec<Vec<V>> {
    let mut rows = Vec::new();
    for table in tables {
        for p in table.visible_columns() {
            let column = &table.columns[p];
            let attnum = crate::catalog_constraints::attnums(table, &[p])
                .first()
                .copied()
                .unwrap_or_default();
            let default = column
                .default
                .as_deref()
                .and_then(|d| crate::catalog_defaults::display(d, &column.ty));
            rows.push(row(
                [database, &table.schema, &table.name, &column.name],
                attnum,
                default,
                column.nullable,
                &ColumnType::of(&column.ty),
                true,
            ));
        }
    }
    for view in views {
        for (i, name) in view.columns.iter().enumerate() {
            let oid = view.column_types.get(i).copied().unwrap_or(705);
            let ty = ColumnType {
                oid,
                length: None,
                numeric: None,
            };
            rows.push(row(
                [database, &view.schema, &view.name, name],
                i as i64 + 1,
                None,
                true,
                &ty,
                false,
            ));
        }
    }
    rows
}

/// One column's row: `names` are catalog, schema, table and column.
fn row(
    names: [&str; 4],
    attnum: i64,
    default: Option<String>,
    nullable: bool,
    ty: &ColumnType,
    updatable: bool,
) -> Vec<V> {
    let yes_no = |b: bool| s(if b { "YES" } else { "NO" });
    let mut row: Vec<V> = names.iter().map(|n| s(*n)).collect();
    row.push(V::I(attnum));
    row.push(default.map(s).unwrap_or(V::N));
    row.push(yes_no(nullable));
    row.extend(ty.describe());
    // Character set, collation, domain: none.
    row.extend(std::iter::repeat_with(|| V::N).take(9));
    row.extend([s(names[0]), s("pg_catalog"), ty.udt_name()]);
    // Scope, maximum cardinality.
    row.extend(std::iter::repeat_with(|| V::N).take(4));
    row.push(s(attnum.to_string()));
    row.push(yes_no(false));
    row.push(yes_no(false));
    // Identity generation, start, increment, maximum, minimum, cycle.
    row.extend(std::iter::repeat_with(|| V::N).take(6));
    row.push(s("NEVER"));
    row.push(V::N);
    row.push(yes_no(updatable));
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_have_every_column() {
        let column =
            |name: &str, ty: SqlType, nullable: bool| crate::descriptor::ColumnDescriptor {
                nullable,
                ..crate::descriptor::ColumnDescriptor::plain(name, ty)
            };
        let table = TableDescriptor {
            id: 9,
            database: "shoal".into(),
            schema: "public".into(),
            name: "t".into(),
            columns: vec![
                column("id", SqlType::Integer, false),
                column("name", SqlType::Varchar(Some(20)), true),
                column("tags", SqlType::Array(Box::new(SqlType::Text)), true),
            ],
            primary_key: vec![0],
            version: 1,
            indexes: Vec::new(),
            next_index_id: 2,
            checks: Vec::new(),
            foreign_keys: Vec::new(),
            referenced_by: Vec::new(),
        };
        let rows = rows("shoal", &[std::sync::Arc::new(table)], &[]);
        assert_eq!(rows.len(), 3);
        for row in &rows {
            assert_eq!(row.len(), COLUMNS.len());
        }
        let text = |v: &V| match v {
            V::S(s) => s.clone(),
            V::I(i) => i.to_string(),
            _ => "NULL".into(),
        };
        let at = |name: &str| COLUMNS.iter().position(|(c, _)| *c == name).unwrap_or(0);
        let picked: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                [
                    "column_name",
                    "ordinal_position",
                    "is_nullable",
                    "data_type",
                    "character_maximum_length",
                    "udt_name",
                ]
                .iter()
                .map(|c| text(&r[at(c)]))
                .collect()
            })
            .collect();
        assert_eq!(
            picked,
            vec![
                vec!["id", "1", "NO", "integer", "NULL", "int4"],
                vec!["name", "2", "YES", "character varying", "20", "varchar"],
                vec!["tags", "3", "YES", "ARRAY", "NULL", "_text"],
            ]
        );
    }
}
