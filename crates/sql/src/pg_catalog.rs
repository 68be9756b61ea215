//! `pg_catalog`: PostgreSQL's system catalogs, built from Shoal's catalog.
//!
//! Tools (psql's `\d`, drivers' type lookups, ORMs' schema introspection)
//! read these tables. Each one is materialized when a statement names it,
//! from the same transaction snapshot the statement uses, so what `\d`
//! shows is exactly what a query in that transaction sees.
//!
//! OIDs are derived, never allocated: a table's OID is
//! `FIRST_USER_OID + table id`, and its indexes' and constraints' OIDs are
//! derived from that (`catalog_indexes.rs`). Table ids are never reused, so OIDs are stable across
//! restarts and the same on every node. Catalog tables Shoal has nothing to
//! put in (policies, publications, statistics objects, …) exist with their
//! columns and no rows, so tools' queries against them plan and return
//! nothing rather than fail.

use std::fmt;
use std::sync::Arc;

use datafusion::error::{DataFusionError, Result as DfResult};

use crate::catalog;
use crate::descriptor::TableDescriptor;
use crate::error::SqlError;
use crate::providers::TxnSlot;
use crate::types::SqlType;

pub const PG_CATALOG: &str = "pg_catalog";
pub const PG_CATALOG_OID: i64 = 11;
pub const PUBLIC_OID: i64 = 2200;
pub const INFORMATION_SCHEMA_OID: i64 = 13_000;
/// OID of the bootstrap superuser, which owns everything.
pub const OWNER_OID: i64 = 10;

use crate::catalog_table::{CatalogTable, Kind, V, s};
use Kind::*;

const PG_NAMESPACE: &[(&str, Kind)] = &[
    ("oid", Oid),
    ("nspname", Name),
    ("nspowner", Oid),
    ("nspacl", TextArray),
];
const PG_CLASS: &[(&str, Kind)] = &[
    ("oid", Oid),
    ("relname", Name),
    ("relnamespace", Oid),
    ("reltype", Oid),
    ("reloftype", Oid),
    ("relowner", Oid),
    ("relam", Oid),
    ("relfilenode", Oid),
    ("reltablespace", Oid),
    ("relpages", I32),
    ("reltuples", F32),
    ("relallvisible", I32),
    ("reltoastrelid", Oid),
    ("relhasindex", Bool),
    ("relisshared", Bool),
    ("relpersistence", Char),
    ("relkind", Char),
    ("relnatts", I16),
    ("relchecks", I16),
    ("relhasrules", Bool),
    ("relhastriggers", Bool),
    ("relhassubclass", Bool),
    ("relrowsecurity", Bool),
    ("relforcerowsecurity", Bool),
    ("relispopulated", Bool),
    ("relreplident", Char),
    ("relispartition", Bool),
    ("relrewrite", Oid),
    ("relfrozenxid", I64),
    ("relminmxid", I64),
    ("relacl", TextArray),
    ("reloptions", TextArray),
    ("relpartbound", Text),
];
const PG_ATTRIBUTE: &[(&str, Kind)] = &[
    ("attrelid", Oid),
    ("attname", Name),
    ("atttypid", Oid),
    ("attstattarget", I32),
    ("attlen", I16),
    ("attnum", I16),
    ("attndims", I32),
    ("attcacheoff", I32),
    ("atttypmod", I32),
    ("attbyval", Bool),
    ("attalign", Char),
    ("attstorage", Char),
    ("attcompression", Char),
    ("attnotnull", Bool),
    ("atthasdef", Bool),
    ("atthasmissing", Bool),
    ("attidentity", Char),
    ("attgenerated", Char),
    ("attisdropped", Bool),
    ("attislocal", Bool),
    ("attinhcount", I32),
    ("attcollation", Oid),
    ("attacl", TextArray),
    ("attoptions", TextArray),
    ("attfdwoptions", TextArray),
    ("attmissingval", Text),
];
const PG_TYPE: &[(&str, Kind)] = &[
    ("oid", Oid),
    ("typname", Name),
    ("typnamespace", Oid),
    ("typowner", Oid),
    ("typlen", I16),
    ("typbyval", Bool),
    ("typtype", Char),
    ("typcategory", Char),
    ("typispreferred", Bool),
    ("typisdefined", Bool),
    ("typdelim", Char),
    ("typrelid", Oid),
    ("typsubscript", Oid),
    ("typelem", Oid),
    ("typarray", Oid),
    ("typinput", Text),
    ("typoutput", Text),
    ("typreceive", Text),
    ("typsend", Text),
    ("typalign", Char),
    ("typstorage", Char),
    ("typnotnull", Bool),
    ("typbasetype", Oid),
    ("typtypmod", I32),
    ("typndims", I32),
    ("typcollation", Oid),
    ("typdefault", Text),
];
const PG_DATABASE: &[(&str, Kind)] = &[
    ("oid", Oid),
    ("datname", Name),
    ("datdba", Oid),
    ("encoding", I32),
    ("datlocprovider", Char),
    ("datistemplate", Bool),
    ("datallowconn", Bool),
    ("datconnlimit", I32),
    ("datfrozenxid", I64),
    ("datminmxid", I64),
    ("dattablespace", Oid),
    ("datcollate", Text),
    ("datctype", Text),
    ("daticulocale", Text),
    ("datcollversion", Text),
    ("datacl", TextArray),
];
const PG_AM: &[(&str, Kind)] = &[
    ("oid", Oid),
    ("amname", Name),
    ("amhandler", Text),
    ("amtype", Char),
];
const PG_OPCLASS: &[(&str, Kind)] = &[
    ("oid", Oid),
    ("opcmethod", Oid),
    ("opcname", Name),
    ("opcnamespace", Oid),
    ("opcowner", Oid),
    ("opcintype", Oid),
    ("opcdefault", Bool),
    ("opckeytype", Oid),
];

/// The default btree operator classes of the types an index key may hold:
/// (oid, name, input type oid), as in PostgreSQL.
const OPCLASSES: &[(i64, &str, i64)] = &[
    (424, "bool_ops", 16),
    (428, "bytea_ops", 17),
    (426, "bpchar_ops", 1042),
    (1970, "float4_ops", 700),
    (1971, "float8_ops", 701),
    (1978, "int4_ops", 23),
    (1979, "int2_ops", 21),
    (3124, "int8_ops", 20),
    (3122, "date_ops", 1082),
    (3126, "text_ops", 25),
    (3127, "timestamptz_ops", 1184),
    (3128, "timestamp_ops", 1114),
    (2968, "uuid_ops", 2950),
];

/// Whether `name` is one of the default btree operator classes.
pub fn is_default_opclass(name: &str) -> bool {
    OPCLASSES.iter().any(|(_, n, _)| *n == name)
}

/// The default operator class of an indexed column's type.
fn opclass_of(ty: &crate::types::SqlType) -> (i64, &'static str) {
    let type_oid = match ty {
        crate::types::SqlType::Varchar(_) => 25,
        other => i64::from(other.pg_oid()),
    };
    OPCLASSES
        .iter()
        .find(|(_, _, t)| *t == type_oid)
        .map_or((3126, "text_ops"), |(oid, name, _)| (*oid, *name))
}

const PG_INDEX: &[(&str, Kind)] = &[
    ("indexrelid", Oid),
    ("indrelid", Oid),
    ("indnatts", I16),
    ("indnkeyatts", I16),
    ("indisunique", Bool),
    ("indnullsnotdistinct", Bool),
    ("indisprimary", Bool),
    ("indisexclusion", Bool),
    ("indimmediate", Bool),
    ("indisclustered", Bool),
    ("indisvalid", Bool),
    ("indcheckxmin", Bool),
    ("indisready", Bool),
    ("indislive", Bool),
    ("indisreplident", Bool),
    ("indkey", I16Vector),
    ("indcollation", Text),
    ("indclass", OidVector),
    ("indoption", I16Vector),
    ("indexprs", Text),
    ("indpred", Text),
];
const PG_CONSTRAINT: &[(&str, Kind)] = &[
    ("oid", Oid),
    ("conname", Name),
    ("connamespace", Oid),
    ("contype", Char),
    ("condeferrable", Bool),
    ("condeferred", Bool),
    ("convalidated", Bool),
    ("conrelid", Oid),
    ("contypid", Oid),
    ("conindid", Oid),
    ("conparentid", Oid),
    ("confrelid", Oid),
    ("confupdtype", Char),
    ("confdeltype", Char),
    ("confmatchtype", Char),
    ("conislocal", Bool),
    ("coninhcount", I32),
    ("connoinherit", Bool),
    ("conkey", I16Array),
    ("confkey", I16Array),
    ("conbin", Text),
];
const PG_ATTRDEF: &[(&str, Kind)] = &[
    ("oid", Oid),
    ("adrelid", Oid),
    ("adnum", I16),
    ("adbin", Text),
];
const PG_DESCRIPTION: &[(&str, Kind)] = &[
    ("objoid", Oid),
    ("classoid", Oid),
    ("objsubid", I32),
    ("description", Text),
];
const PG_INHERITS: &[(&str, Kind)] = &[
    ("inhrelid", Oid),
    ("inhparent", Oid),
    ("inhseqno", I32),
    ("inhdetachpending", Bool),
];
/// Role memberships: Shoal has one role, a member of nothing.
const PG_AUTH_MEMBERS: &[(&str, Kind)] = &[
    ("oid", Oid),
    ("roleid", Oid),
    ("member", Oid),
    ("grantor", Oid),
    ("admin_option", Bool),
];
const PG_ROLES: &[(&str, Kind)] = &[
    ("oid", Oid),
    ("rolname", Name),
    ("rolsuper", Bool),
    ("rolinherit", Bool),
    ("rolcreaterole", Bool),
    ("rolcreatedb", Bool),
    ("rolcanlogin", Bool),
    ("rolreplication", Bool),
    ("rolconnlimit", I32),
    ("rolpassword", Text),
    ("rolvaliduntil", Text),
    ("rolbypassrls", Bool),
    ("rolconfig", Text),
];
const PG_TABLESPACE: &[(&str, Kind)] = &[
    ("oid", Oid),
    ("spcname", Name),
    ("spcowner", Oid),
    ("spcacl", TextArray),
    ("spcoptions", Text),
];
const PG_COLLATION: &[(&str, Kind)] = &[
    ("oid", Oid),
    ("collname", Name),
    ("collnamespace", Oid),
    ("collowner", Oid),
    ("collprovider", Char),
    ("collisdeterministic", Bool),
    ("collencoding", I32),
    ("collcollate", Text),
    ("collctype", Text),
];
const PG_POLICY: &[(&str, Kind)] = &[
    ("oid", Oid),
    ("polname", Name),
    ("polrelid", Oid),
    ("polcmd", Char),
    ("polpermissive", Bool),
    ("polroles", OidArray),
    ("polqual", Text),
    ("polwithcheck", Text),
];
const PG_STATISTIC_EXT: &[(&str, Kind)] = &[
    ("oid", Oid),
    ("stxrelid", Oid),
    ("stxname", Name),
    ("stxnamespace", Oid),
    ("stxowner", Oid),
    ("stxstattarget", I32),
    ("stxkeys", Text),
    ("stxkind", Text),
    ("stxexprs", Text),
];
const PG_PUBLICATION: &[(&str, Kind)] = &[
    ("oid", Oid),
    ("pubname", Name),
    ("pubowner", Oid),
    ("puballtables", Bool),
    ("pubinsert", Bool),
    ("pubupdate", Bool),
    ("pubdelete", Bool),
    ("pubtruncate", Bool),
    ("pubviaroot", Bool),
];
const PG_PUBLICATION_REL: &[(&str, Kind)] = &[
    ("oid", Oid),
    ("prpubid", Oid),
    ("prrelid", Oid),
    ("prqual", Text),
    ("prattrs", Text),
];
const PG_PUBLICATION_NAMESPACE: &[(&str, Kind)] =
    &[("oid", Oid), ("pnpubid", Oid), ("pnnspid", Oid)];
const PG_TRIGGER: &[(&str, Kind)] = &[
    ("oid", Oid),
    ("tgrelid", Oid),
    ("tgparentid", Oid),
    ("tgname", Name),
    ("tgfoid", Oid),
    ("tgtype", I16),
    ("tgenabled", Char),
    ("tgisinternal", Bool),
    ("tgconstrrelid", Oid),
    ("tgconstrindid", Oid),
    ("tgconstraint", Oid),
];
const PG_REWRITE: &[(&str, Kind)] = &[
    ("oid", Oid),
    ("rulename", Name),
    ("ev_class", Oid),
    ("ev_type", Char),
    ("ev_enabled", Char),
    ("is_instead", Bool),
];
const PG_RANGE: &[(&str, Kind)] = &[
    ("rngtypid", Oid),
    ("rngsubtype", Oid),
    ("rngmultitypid", Oid),
    ("rngcollation", Oid),
    ("rngsubopc", Oid),
];
const PG_ENUM: &[(&str, Kind)] = &[
    ("oid", Oid),
    ("enumtypid", Oid),
    ("enumsortorder", F32),
    ("enumlabel", Name),
];
const PG_SEQUENCE: &[(&str, Kind)] = &[
    ("seqrelid", Oid),
    ("seqtypid", Oid),
    ("seqstart", I64),
    ("seqincrement", I64),
    ("seqmax", I64),
    ("seqmin", I64),
    ("seqcache", I64),
    ("seqcycle", Bool),
];
const PG_PROC: &[(&str, Kind)] = &[
    ("oid", Oid),
    ("proname", Name),
    ("pronamespace", Oid),
    ("proowner", Oid),
    ("prokind", Char),
    ("prorettype", Oid),
    ("proargtypes", Text),
];
const PG_TABLES: &[(&str, Kind)] = &[
    ("schemaname", Name),
    ("tablename", Name),
    ("tableowner", Name),
    ("tablespace", Name),
    ("hasindexes", Bool),
    ("hasrules", Bool),
    ("hastriggers", Bool),
    ("rowsecurity", Bool),
];
const PG_INDEXES: &[(&str, Kind)] = &[
    ("schemaname", Name),
    ("tablename", Name),
    ("indexname", Name),
    ("tablespace", Name),
    ("indexdef", Text),
];
const PG_SETTINGS: &[(&str, Kind)] = &[
    ("name", Text),
    ("setting", Text),
    ("unit", Text),
    ("category", Text),
    ("short_desc", Text),
    ("context", Text),
    ("vartype", Text),
    ("source", Text),
];

/// Names of the catalog tables Shoal provides.
pub const TABLES: &[&str] = &[
    "pg_am",
    "pg_attrdef",
    "pg_attribute",
    "pg_auth_members",
    "pg_class",
    "pg_collation",
    "pg_constraint",
    "pg_database",
    "pg_description",
    "pg_enum",
    "pg_index",
    "pg_indexes",
    "pg_inherits",
    "pg_namespace",
    "pg_opclass",
    "pg_policy",
    "pg_proc",
    "pg_publication",
    "pg_publication_namespace",
    "pg_publication_rel",
    "pg_range",
    "pg_rewrite",
    "pg_roles",
    "pg_sequence",
    "pg_settings",
    "pg_statistic_ext",
    "pg_tables",
    "pg_tablespace",
    "pg_trigger",
    "pg_type",
    "pg_user",
];

/// The OID of the built-in type a name (its `pg_type` name, or SQL's
/// spelling as `format_type` writes it) names: `to_regtype`.
pub fn type_oid(name: &str) -> Option<i64> {
    let name = name.trim().to_lowercase();
    let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
    let name = match name {
        "int" => "integer",
        "float" => "double precision",
        "decimal" => "numeric",
        "bool" => "boolean",
        other => other,
    };
    TYPES
        .iter()
        .find(|(oid, typname, _, _)| {
            *typname == name || crate::functions::format_type(*oid, -1) == name
        })
        .map(|(oid, _, _, _)| *oid)
}

/// The OIDs PostgreSQL gives its catalog tables, for `'pg_class'::regclass`
/// and `classoid` columns.
pub fn catalog_table_oid(name: &str) -> Option<i64> {
    let name = name.trim().trim_matches('"').to_lowercase();
    let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
    Some(match name {
        "pg_type" => 1247,
        "pg_attribute" => 1249,
        "pg_proc" => 1255,
        "pg_class" => 1259,
        "pg_authid" | "pg_roles" | "pg_user" => 1260,
        "pg_auth_members" => 1261,
        "pg_database" => 1262,
        "pg_tablespace" => 1213,
        "pg_sequence" => 2224,
        "pg_am" => 2601,
        "pg_attrdef" => 2604,
        "pg_constraint" => 2606,
        "pg_description" => 2609,
        "pg_index" => 2610,
        "pg_inherits" => 2611,
        "pg_namespace" => 2615,
        "pg_rewrite" => 2618,
        "pg_trigger" => 2620,
        "pg_policy" => 3256,
        "pg_statistic_ext" => 3381,
        "pg_collation" => 3456,
        "pg_enum" => 3501,
        "pg_range" => 3541,
        "pg_publication" => 6104,
        "pg_publication_rel" => 6106,
        "pg_publication_namespace" => 6237,
        _ => return None,
    })
}

/// A built-in type's `pg_type` name (`int4`) by OID.
pub fn type_name(oid: i64) -> Option<&'static str> {
    TYPES.iter().find(|t| t.0 == oid).map(|t| t.1)
}

/// Built-in types: (oid, name, length, category).
const TYPES: &[(i64, &str, i64, &str)] = &[
    (16, "bool", 1, "B"),
    (17, "bytea", -1, "U"),
    (18, "char", 1, "Z"),
    (19, "name", 64, "S"),
    (20, "int8", 8, "N"),
    (21, "int2", 2, "N"),
    (23, "int4", 4, "N"),
    (25, "text", -1, "S"),
    (26, "oid", 4, "N"),
    (114, "json", -1, "U"),
    (700, "float4", 4, "N"),
    (701, "float8", 8, "N"),
    (1042, "bpchar", -1, "S"),
    (1043, "varchar", -1, "S"),
    (1082, "date", 4, "D"),
    (1083, "time", 8, "D"),
    (1114, "timestamp", 8, "D"),
    (1184, "timestamptz", 8, "D"),
    (1186, "interval", 16, "T"),
    (1700, "numeric", -1, "N"),
    (2205, "regclass", 4, "N"),
    (2206, "regtype", 4, "N"),
    (2950, "uuid", 16, "U"),
    (3802, "jsonb", -1, "U"),
];

/// How PostgreSQL stores values of a type (`typstorage`, `attstorage`):
/// fixed-length types plain, `numeric` main, other varlena extended.
fn storage(type_oid: i64, len: i64) -> &'static str {
    match (type_oid, len) {
        (_, 1..) => "p",
        (1700, _) => "m",
        _ => "x",
    }
}

/// `pg_attribute.atttypmod` of a column type.
pub fn typmod(ty: &SqlType) -> i64 {
    match ty {
        SqlType::Varchar(Some(n)) | SqlType::Char(n) => *n as i64 + 4,
        SqlType::Numeric { precision, scale } => {
            (((*precision as i64) << 16) | (*scale as i64 & 0xFFFF)) + 4
        }
        _ => -1,
    }
}

fn type_len(oid: i64) -> i64 {
    TYPES.iter().find(|t| t.0 == oid).map(|t| t.2).unwrap_or(-1)
}

pub struct PgCatalogSchema {
    database: String,
    slot: TxnSlot,
}

impl PgCatalogSchema {
    pub fn new(database: String, slot: TxnSlot) -> Self {
        PgCatalogSchema { database, slot }
    }

    /// The transaction the statement reading the catalog runs in.
    fn catalog_txn(&self) -> DfResult<Arc<shoal_kv::Txn>> {
        self.slot.lock().clone().ok_or_else(|| {
            DataFusionError::External(Box::new(SqlError::Internal(
                "no transaction for catalog read".into(),
            )))
        })
    }

    fn user_tables(&self) -> DfResult<Vec<Arc<TableDescriptor>>> {
        Ok(catalog::list_tables(&*self.catalog_txn()?, &self.database)?)
    }

    /// The OID of each schema by name (an unknown name gets `public`'s).
    fn namespaces(&self) -> DfResult<impl Fn(&str) -> i64 + use<>> {
        Ok(crate::schemas::namespace_oids(
            &*self.catalog_txn()?,
            &self.database,
        )?)
    }

    fn user_views(&self) -> DfResult<Vec<crate::views::ViewDescriptor>> {
        Ok(crate::views::all_views(
            &*self.catalog_txn()?,
            &self.database,
        )?)
    }

    fn user_sequences(&self) -> DfResult<Vec<crate::sequences::SequenceDescriptor>> {
        Ok(crate::sequences::all_sequences(
            &*self.catalog_txn()?,
            &self.database,
        )?)
    }

    fn build(&self, name: &str) -> DfResult<Option<CatalogTable>> {
        let t = match name {
            "pg_namespace" => {
                let mut t = CatalogTable::new(PG_NAMESPACE);
                t.rows.push(vec![
                    V::I(PG_CATALOG_OID),
                    s("pg_catalog"),
                    V::I(OWNER_OID),
                    V::N,
                ]);
                t.rows
                    .push(vec![V::I(PUBLIC_OID), s("public"), V::I(OWNER_OID), V::N]);
                t.rows.push(vec![
                    V::I(INFORMATION_SCHEMA_OID),
                    s("information_schema"),
                    V::I(OWNER_OID),
                    V::N,
                ]);
                let txn = self.catalog_txn()?;
                for schema in crate::schemas::list_schemas(&txn, &self.database)? {
                    t.rows.push(vec![
                        V::I(schema.oid() as i64),
                        s(schema.name),
                        V::I(OWNER_OID),
                        V::N,
                    ]);
                }
                t
            }
            "pg_class" => {
                let mut t = CatalogTable::new(PG_CLASS);
                let ns = self.namespaces()?;
                // `relchecks` and `relhastriggers` (PostgreSQL keeps foreign
                // keys with triggers; psql asks for them only if it is set).
                let mut row = |oid: i64,
                               namespace: i64,
                               name: String,
                               am: i64,
                               kind: &str,
                               natts: i64,
                               has_index: bool,
                               (checks, triggers): (i64, bool)| {
                    t.rows.push(vec![
                        V::I(oid),
                        s(name),
                        V::I(namespace),
                        V::I(0),
                        V::I(0),
                        V::I(OWNER_OID),
                        V::I(am),
                        V::I(oid),
                        V::I(0),
                        V::I(0),
                        V::F(-1.0),
                        V::I(0),
                        V::I(0),
                        V::B(has_index),
                        V::B(false),
                        s("p"),
                        s(kind),
                        V::I(natts),
                        V::I(checks),
                        V::B(false),
                        V::B(triggers),
                        V::B(false),
                        V::B(false),
                        V::B(false),
                        V::B(true),
                        s("d"),
                        V::B(false),
                        V::I(0),
                        V::I(0),
                        V::I(0),
                        V::N,
                        V::N,
                        V::N,
                    ]);
                };
                for d in self.user_tables()? {
                    let natts = d.visible_columns().len() as i64;
                    let indexes = crate::catalog_indexes::indexes(&d);
                    let namespace = ns(&d.schema);
                    row(
                        d.oid() as i64,
                        namespace,
                        d.name.clone(),
                        2,
                        "r",
                        natts,
                        !indexes.is_empty(),
                        (
                            d.checks.len() as i64,
                            !d.foreign_keys.is_empty() || !d.referenced_by.is_empty(),
                        ),
                    );
                    for i in indexes {
                        let natts = (i.key.len() + i.include.len()) as i64;
                        row(i.oid, namespace, i.name, 403, "i", natts, false, (0, false));
                    }
                }
                for v in self.user_views()? {
                    row(
                        v.oid() as i64,
                        ns(&v.schema),
                        v.name,
                        0,
                        "v",
                        v.columns.len() as i64,
                        false,
                        (0, false),
                    );
                }
                for q in self.user_sequences()? {
                    row(
                        q.oid() as i64,
                        ns(&q.schema),
                        q.name,
                        0,
                        "S",
                        3,
                        false,
                        (0, false),
                    );
                }
                t
            }
            "pg_attribute" => {
                let mut t = CatalogTable::new(PG_ATTRIBUTE);
                for d in self.user_tables()? {
                    for (num, pos) in d.visible_columns().iter().enumerate() {
                        let c = &d.columns[*pos];
                        let ty = c.ty.pg_oid() as i64;
                        t.rows.push(vec![
                            V::I(d.oid() as i64),
                            s(c.name.clone()),
                            V::I(ty),
                            V::I(-1),
                            V::I(type_len(ty)),
                            V::I(num as i64 + 1),
                            V::I(0),
                            V::I(-1),
                            V::I(typmod(&c.ty)),
                            V::B(type_len(ty) > 0 && type_len(ty) <= 8),
                            s("i"),
                            s(storage(ty, type_len(ty))),
                            s(""),
                            V::B(!c.nullable),
                            V::B(
                                c.default
                                    .as_deref()
                                    .and_then(|d| crate::catalog_defaults::display(d, &c.ty))
                                    .is_some(),
                            ),
                            V::B(false),
                            s(""),
                            s(""),
                            V::B(false),
                            V::B(true),
                            V::I(0),
                            V::I(0),
                            V::N,
                            V::N,
                            V::N,
                            V::N,
                        ]);
                    }
                }
                t
            }
            "pg_type" => {
                let mut t = CatalogTable::new(PG_TYPE);
                // Each base type, then its array type (`_int4`, element
                // `int4`), as PostgreSQL lists them.
                for (oid, name, len, cat) in TYPES {
                    let array = crate::types::array_oid(*oid as u32) as i64;
                    let mut entries = vec![(*oid, name.to_string(), *len, *cat, 0, array)];
                    if array != 0 {
                        entries.push((array, format!("_{name}"), -1, "A", *oid, 0));
                    }
                    for (oid, name, len, cat, elem, array) in entries {
                        t.rows.push(vec![
                            V::I(oid),
                            s(name.clone()),
                            V::I(PG_CATALOG_OID),
                            V::I(OWNER_OID),
                            V::I(len),
                            V::B(len > 0 && len <= 8),
                            s("b"),
                            s(cat),
                            V::B(false),
                            V::B(true),
                            s(","),
                            V::I(0),
                            V::I(0),
                            V::I(elem),
                            V::I(array),
                            s(format!("{name}in")),
                            s(format!("{name}out")),
                            s(format!("{name}recv")),
                            s(format!("{name}send")),
                            s("i"),
                            s(storage(oid, len)),
                            V::B(false),
                            V::I(0),
                            V::I(-1),
                            V::I(0),
                            V::I(0),
                            V::N,
                        ]);
                    }
                }
                t
            }
            "pg_database" => {
                let mut t = CatalogTable::new(PG_DATABASE);
                for (db, oid) in crate::databases::list(&*self.catalog_txn()?)? {
                    t.rows.push(vec![
                        V::I(oid),
                        s(db),
                        V::I(OWNER_OID),
                        V::I(6),
                        s("c"),
                        V::B(false),
                        V::B(true),
                        V::I(-1),
                        V::I(0),
                        V::I(0),
                        V::I(1663),
                        s("C.UTF-8"),
                        s("C.UTF-8"),
                        V::N,
                        V::N,
                        V::N,
                    ]);
                }
                t
            }
            "pg_am" => {
                let mut t = CatalogTable::new(PG_AM);
                t.rows
                    .push(vec![V::I(2), s("heap"), s("heap_tableam_handler"), s("t")]);
                t.rows
                    .push(vec![V::I(403), s("btree"), s("bthandler"), s("i")]);
                t
            }
            "pg_opclass" => {
                let mut t = CatalogTable::new(PG_OPCLASS);
                for (oid, name, type_oid) in OPCLASSES {
                    t.rows.push(vec![
                        V::I(*oid),
                        V::I(403),
                        s(*name),
                        V::I(PG_CATALOG_OID),
                        V::I(OWNER_OID),
                        V::I(*type_oid),
                        V::B(true),
                        V::I(0),
                    ]);
                }
                t
            }
            "pg_index" => {
                let mut t = CatalogTable::new(PG_INDEX);
                for d in self.user_tables()? {
                    for i in crate::catalog_indexes::indexes(&d) {
                        t.rows.push(vec![
                            V::I(i.oid),
                            V::I(d.oid() as i64),
                            V::I((i.key.len() + i.include.len()) as i64),
                            V::I(i.key.len() as i64),
                            V::B(i.unique),
                            V::B(false),
                            V::B(i.primary),
                            V::B(false),
                            V::B(true),
                            V::B(false),
                            V::B(true),
                            V::B(false),
                            V::B(true),
                            V::B(true),
                            V::B(false),
                            V::A(crate::catalog_indexes::indkey(&d, &i)),
                            s(""),
                            V::A(
                                i.key
                                    .iter()
                                    .map(|(p, _)| opclass_of(&d.columns[*p].ty).0)
                                    .collect(),
                            ),
                            V::A(crate::catalog_indexes::indoption(&i)),
                            V::N,
                            V::N,
                        ]);
                    }
                }
                t
            }
            "pg_indexes" => {
                let mut t = CatalogTable::new(PG_INDEXES);
                for d in self.user_tables()? {
                    for i in crate::catalog_indexes::indexes(&d) {
                        t.rows.push(vec![
                            s(d.schema.clone()),
                            s(d.name.clone()),
                            s(i.name.clone()),
                            V::N,
                            s(crate::catalog_indexes::definition(&d, &i)),
                        ]);
                    }
                }
                t
            }
            "pg_constraint" => {
                let mut t = CatalogTable::new(PG_CONSTRAINT);
                let tables = self.user_tables()?;
                let ns = self.namespaces()?;
                for d in &tables {
                    for c in crate::catalog_constraints::constraints(d, &tables) {
                        let (confrelid, confkey) = match &c.parent {
                            Some((p, cols)) => (
                                p.oid() as i64,
                                V::A(crate::catalog_constraints::attnums(p, cols)),
                            ),
                            None => (0, V::N),
                        };
                        t.rows.push(vec![
                            V::I(c.oid),
                            s(c.name.clone()),
                            V::I(ns(&d.schema)),
                            s(c.kind),
                            V::B(c.deferrable),
                            V::B(c.deferred),
                            V::B(true),
                            V::I(d.oid() as i64),
                            V::I(0),
                            V::I(c.index_oid),
                            V::I(0),
                            V::I(confrelid),
                            s(c.on_update),
                            s(c.on_delete),
                            s(if c.kind == "f" { "s" } else { " " }),
                            V::B(true),
                            V::I(0),
                            V::B(c.kind != "c"),
                            V::A(crate::catalog_constraints::attnums(d, &c.key)),
                            confkey,
                            c.expression.clone().map_or(V::N, s),
                        ]);
                    }
                }
                t
            }
            "pg_roles" | "pg_user" => {
                let mut t = CatalogTable::new(PG_ROLES);
                t.rows.push(vec![
                    V::I(OWNER_OID),
                    s("shoal"),
                    V::B(true),
                    V::B(true),
                    V::B(true),
                    V::B(true),
                    V::B(true),
                    V::B(true),
                    V::I(-1),
                    s("********"),
                    V::N,
                    V::B(true),
                    V::N,
                ]);
                t
            }
            "pg_tablespace" => {
                let mut t = CatalogTable::new(PG_TABLESPACE);
                t.rows.push(vec![
                    V::I(1663),
                    s("pg_default"),
                    V::I(OWNER_OID),
                    V::N,
                    V::N,
                ]);
                t
            }
            "pg_tables" => {
                let mut t = CatalogTable::new(PG_TABLES);
                for d in self.user_tables()? {
                    t.rows.push(vec![
                        s(d.schema.clone()),
                        s(d.name.clone()),
                        s("shoal"),
                        V::N,
                        V::B(!crate::catalog_indexes::indexes(&d).is_empty()),
                        V::B(false),
                        V::B(false),
                        V::B(false),
                    ]);
                }
                t
            }
            "pg_attrdef" => {
                let mut t = CatalogTable::new(PG_ATTRDEF);
                for d in self.user_tables()? {
                    for (num, pos) in d.visible_columns().iter().enumerate() {
                        let column = &d.columns[*pos];
                        let Some(default) = column
                            .default
                            .as_deref()
                            .and_then(|t| crate::catalog_defaults::display(t, &column.ty))
                        else {
                            continue;
                        };
                        let attnum = num as i64 + 1;
                        // Derived like every Shoal OID: above the constraints'.
                        let oid = (3_i64 << 30) + (d.oid() as i64 + (attnum << 22)) % (1 << 30);
                        t.rows.push(vec![
                            V::I(oid),
                            V::I(d.oid() as i64),
                            V::I(attnum),
                            s(default),
                        ]);
                    }
                }
                t
            }
            "pg_description" => CatalogTable::new(PG_DESCRIPTION),
            "pg_auth_members" => CatalogTable::new(PG_AUTH_MEMBERS),
            "pg_inherits" => CatalogTable::new(PG_INHERITS),
            "pg_collation" => CatalogTable::new(PG_COLLATION),
            "pg_policy" => CatalogTable::new(PG_POLICY),
            "pg_statistic_ext" => CatalogTable::new(PG_STATISTIC_EXT),
            "pg_publication" => CatalogTable::new(PG_PUBLICATION),
            "pg_publication_rel" => CatalogTable::new(PG_PUBLICATION_REL),
            "pg_publication_namespace" => CatalogTable::new(PG_PUBLICATION_NAMESPACE),
            "pg_trigger" => CatalogTable::new(PG_TRIGGER),
            "pg_rewrite" => CatalogTable::new(PG_REWRITE),
            "pg_range" => CatalogTable::new(PG_RANGE),
            "pg_enum" => CatalogTable::new(PG_ENUM),
            "pg_sequence" => CatalogTable::new(PG_SEQUENCE),
            "pg_proc" => CatalogTable::new(PG_PROC),
            // The server's settings at their defaults (a session's own
            // values are read with SHOW or current_setting).
            "pg_settings" => {
                let mut t = CatalogTable::new(PG_SETTINGS);
                for (name, value) in crate::vars::defaults() {
                    let context = match crate::vars::is_read_only(name) {
                        true => "internal",
                        false => "user",
                    };
                    t.rows.push(vec![
                        s(name.to_string()),
                        s(value.to_string()),
                        V::N,
                        s("Shoal".to_string()),
                        s(String::new()),
                        s(context.to_string()),
                        s("string".to_string()),
                        s("default".to_string()),
                    ]);
                }
                t
            }
            _ => return Ok(None),
        };
        Ok(Some(t))
    }
}

impl fmt::Debug for PgCatalogSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgCatalogSchema({})", self.database)
    }
}

crate::catalog_table::catalog_schema_provider!(PgCatalogSchema, TABLES);

/// Catalog tables that never have rows in Shoal.
const ALWAYS_EMPTY: &[&str] = &[
    "pg_auth_members",
    "pg_collation",
    "pg_description",
    "pg_enum",
    "pg_inherits",
    "pg_policy",
    "pg_publication",
    "pg_publication_namespace",
    "pg_publication_rel",
    "pg_range",
    "pg_rewrite",
    "pg_sequence",
    "pg_statistic_ext",
    "pg_trigger",
];

/// If the query certainly returns no rows because it reads an always-empty
/// catalog table through inner joins only (and aggregates nothing), the
/// names of its output columns.
pub fn provably_empty(q: &datafusion::sql::sqlparser::ast::Query) -> Option<Vec<String>> {
    use datafusion::sql::sqlparser::ast::{JoinOperator, SetExpr, SetOperator, TableFactor};
    fn empty_select(body: &SetExpr) -> Option<Vec<String>> {
        match body {
            SetExpr::Select(sel) => {
                let grouped = !matches!(&sel.group_by, datafusion::sql::sqlparser::ast::GroupByExpr::Expressions(e, _) if e.is_empty());
                if grouped || sel.having.is_some() || sel.from.len() != 1 {
                    return None;
                }
                let from = &sel.from[0];
                let is_empty_table = |f: &TableFactor| match f {
                    TableFactor::Table { name, .. } => {
                        name.0.last().and_then(|p| p.as_ident()).is_some_and(|i| {
                            ALWAYS_EMPTY.contains(&i.value.to_lowercase().as_str())
                        })
                    }
                    _ => false,
                };
                let inner = |op: &JoinOperator| {
                    matches!(
                        op,
                        JoinOperator::Join(_) | JoinOperator::Inner(_) | JoinOperator::CrossJoin(_)
                    )
                };
                let empty = (is_empty_table(&from.relation)
                    && from.joins.iter().all(|j| inner(&j.join_operator)))
                    || from.joins.iter().any(|j| {
                        is_empty_table(&j.relation)
                            && from.joins.iter().all(|j| inner(&j.join_operator))
                    });
                if !empty {
                    return None;
                }
                let aggregates = sel.projection.iter().any(|p| match p {
                    datafusion::sql::sqlparser::ast::SelectItem::UnnamedExpr(e)
                    | datafusion::sql::sqlparser::ast::SelectItem::ExprWithAlias { expr: e, .. } => {
                        matches!(e, datafusion::sql::sqlparser::ast::Expr::Function(f)
                            if f.name.0.last().and_then(|p| p.as_ident()).is_some_and(|i| crate::compat::AGGREGATES.contains(&i.value.to_lowercase().as_str())))
                    }
                    _ => false,
                });
                if aggregates {
                    // Might be an aggregate over no rows, which yields a row.
                    return None;
                }
                Some(
                    sel.projection
                        .iter()
                        .map(|p| match p {
                            datafusion::sql::sqlparser::ast::SelectItem::ExprWithAlias {
                                alias,
                                ..
                            } => alias.value.clone(),
                            other => other
                                .to_string()
                                .rsplit('.')
                                .next()
                                .unwrap_or("?column?")
                                .to_string(),
                        })
                        .collect(),
                )
            }
            SetExpr::SetOperation {
                op: SetOperator::Union,
                left,
                right,
                ..
            } => {
                let names = empty_select(left)?;
                empty_select(right)?;
                Some(names)
            }
            SetExpr::Query(q) => empty_select(&q.body),
            _ => None,
        }
    }
    empty_select(&q.body)
}
