//! # shoal-sql — the SQL layer
//!
//! Turns SQL text into reads and writes of the transactional KV layer.
//!
//! ```text
//!   SQL text ──parse──▶ sqlparser AST ──▶ Session::execute
//!                                          │
//!          ┌───────────────┬───────────────┼────────────────────┐
//!          ▼               ▼               ▼                    ▼
//!   query (DataFusion)   INSERT/UPDATE/   CREATE/DROP TABLE    BEGIN/COMMIT/SET/SHOW
//!   plans + executes     DELETE (dml.rs)  (ddl.rs → catalog)   (session.rs, vars.rs)
//!          │               │ computes rows with DataFusion,
//!          ▼               ▼ writes through the transaction
//!   TableScan (scan.rs): primary-key filters → KV point gets / key spans
//!          │
//!          ▼
//!   shoal-kv Txn: snapshot reads, buffered writes, atomic commit
//! ```
//!
//! Reading order: `types.rs` (column types and values) → `descriptor.rs` and
//! `row.rs` (how tables and rows are laid out in keys and values) →
//! `catalog.rs` → `scan.rs` and `providers.rs` (how DataFusion reads tables)
//! → `session.rs` → `dml.rs`, `ddl.rs`.
//!
//! Invariants:
//! - The SQL layer knows nothing of nodes, ranges or replication; it sees one
//!   ordered, transactional key space.
//! - Every statement runs inside a transaction: the session's open block or
//!   an implicit one; its reads come from that transaction's snapshot and its
//!   writes become visible to others only at commit.
//! - Errors are typed by meaning ([`SqlError`]); SQLSTATE codes are assigned
//!   by the front end.

pub mod access_path;
pub mod advisory;
pub mod alter_constraints;
pub mod alter_table;
pub mod array_functions;
pub mod array_subquery;
pub mod array_text;
pub mod at_time_zone;
pub mod bytea_functions;
pub mod cast_rewrite;
pub mod catalog;
pub mod catalog_constraints;
pub mod catalog_defaults;
pub mod catalog_indexes;
pub mod catalog_table;
pub mod checked_arithmetic;
pub mod checks;
pub mod cluster_settings;
pub mod cluster_views;
pub mod compat;
pub mod copy;
pub mod databases;
pub mod datetime;
pub mod datetime_functions;
pub mod ddl;
pub mod deadlocks;
pub mod decorrelate;
pub mod descriptor;
pub mod dml;
pub mod error;
pub mod exact_filters;
pub mod fast_upsert;
pub mod fastpath;
pub mod float_round;
pub mod float_text;
pub mod foreign_keys;
pub mod functions;
pub mod index_ddl;
pub mod index_key;
pub mod information_schema;
mod information_schema_columns;
mod information_schema_relations;
pub mod interval;
pub mod interval_arithmetic;
pub mod interval_input;
mod interval_text;
pub mod json;
pub mod json_functions;
pub mod locking;
pub mod locks;
pub mod maintenance;
pub mod multiset_ops;
pub mod names;
pub mod pg_catalog;
pub mod plan_cache;
pub mod pre_parse;
pub mod prepared;
pub mod providers;
pub mod query_memory;
pub mod read_only;
pub mod relocate;
pub mod returning;
pub mod rounding_casts;
pub mod row;
pub mod row_waits;
pub mod scan;
pub mod scan_exec;
pub mod schemas;
pub mod sequence_functions;
pub mod sequences;
pub mod session;
pub mod set_config;
pub mod set_constraints;
pub mod settings_undo;
pub mod single;
pub mod sleep;
pub mod split;
pub mod startup;
pub mod statement_constraints;
pub mod statement_writes;
pub mod time_zone;
pub mod typed_udf;
pub mod types;
pub mod upsert;
pub mod vars;
pub mod views;
pub mod zone;

pub use error::{Result, SqlError};
pub use session::{Database, Output, Prepared, Session, TxnStatus};
pub use types::{PG_CHAR_LENGTH_KEY, PG_TYPE_KEY, SqlType};
