//! Sequences: `CREATE SEQUENCE`, `nextval`, `currval`, `setval`, and the
//! ones behind `SERIAL` and identity columns.
//!
//! A sequence is a catalog object ([`SequenceDescriptor`], under
//! `0x01 's' <database> <schema> <name>`, sharing the relation namespace)
//! plus one counter key (`0x01 'q' <id>`) holding the first value not yet
//! handed out.
//!
//! **Cached per node.** One counter for every insert in the cluster would
//! be one hot row. So a node takes a *block* of values at a time — the
//! counter moved forward by `cache` increments, in a transaction of its own
//! that commits at once — and hands them out from memory
//! ([`SequenceCache`]). Values are unique and, on each node, increasing;
//! across nodes they interleave, and a node's unused block is skipped when
//! it restarts. CockroachDB's and YugabyteDB's cached sequences behave the
//! same; PostgreSQL's `CACHE n` does too, per session.
//!
//! **Not transactional**, as in PostgreSQL: a value handed out is never
//! handed out again, whether or not the transaction that took it commits.
//! `setval` moves the counter (again in its own transaction) and empties
//! this node's block; another node finishes its current block first.
//! `currval` is the session's last `nextval` of that sequence (55000
//! before any).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::sql::sqlparser::ast;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use shoal_kv::{Kv, KvError, Txn};

use crate::catalog;
use crate::error::{Result, SqlError};
use crate::names;
use crate::session::Output;

/// Values a node takes at a time unless the sequence says otherwise.
pub const DEFAULT_CACHE: i64 = 32;

/// A stored sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequenceDescriptor {
    /// From the table id counter: the OID is `FIRST_USER_OID + id`.
    pub id: u32,
    pub database: String,
    pub schema: String,
    pub name: String,
    pub start: i64,
    pub increment: i64,
    pub min: i64,
    pub max: i64,
    /// Values a node takes per block.
    pub cache: i64,
    /// The column whose default it feeds (`SERIAL`): (table, column);
    /// dropped with the table.
    pub owned_by: Option<(String, String)>,
}

impl SequenceDescriptor {
    pub fn oid(&self) -> u32 {
        crate::descriptor::FIRST_USER_OID + self.id
    }
}

/// Catalog key kind of SequenceDescriptors (`catalog::named_key`).
const KIND: u8 = b's';

fn sequence_key(database: &str, schema: &str, name: &str) -> Vec<u8> {
    catalog::named_key(KIND, database, schema, name)
}

fn counter_key(id: u32) -> Vec<u8> {
    let mut k = vec![crate::row::CATALOG_PREFIX, b'q'];
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn decode(bytes: &[u8]) -> Result<SequenceDescriptor> {
    catalog::decode_named(bytes)
}

/// A sequence by name.
pub fn sequence_by_name(
    txn: &Txn,
    database: &str,
    schema: &str,
    name: &str,
) -> Result<Option<SequenceDescriptor>> {
    txn.get_untracked(&sequence_key(database, schema, name))?
        .map(|b| decode(&b))
        .transpose()
}

/// Whether a sequence has this name (for the shared relation namespace).
pub fn sequence_exists(txn: &Txn, database: &str, schema: &str, name: &str) -> Result<bool> {
    Ok(txn
        .get_untracked(&sequence_key(database, schema, name))?
        .is_some())
}

/// The sequences of one schema, in name order.
pub fn list_sequences(txn: &Txn, database: &str, schema: &str) -> Result<Vec<SequenceDescriptor>> {
    catalog::list_named(txn, KIND, database, schema)
}

/// The sequences of every schema of a database.
pub fn all_sequences(txn: &Txn, database: &str) -> Result<Vec<SequenceDescriptor>> {
    catalog::list_named_in_database(txn, KIND, database)
}

/// Creates a sequence (the caller checked the name is free).
pub fn create(txn: &Txn, mut seq: SequenceDescriptor) -> Result<SequenceDescriptor> {
    if seq.increment == 0 {
        return Err(SqlError::InvalidParameter(
            "INCREMENT must not be zero".into(),
        ));
    }
    if seq.min > seq.max || seq.start < seq.min || seq.start > seq.max {
        return Err(SqlError::InvalidParameter(format!(
            "START value ({}) cannot be outside MINVALUE ({}) and MAXVALUE ({})",
            seq.start, seq.min, seq.max
        )));
    }
    seq.id = catalog::allocate_table_id(txn)?;
    let json = serde_json::to_vec(&seq)
        .map_err(|e| SqlError::Internal(format!("cannot encode sequence: {e}")))?;
    txn.put(sequence_key(&seq.database, &seq.schema, &seq.name), json)?;
    txn.put(counter_key(seq.id), seq.start.to_be_bytes().to_vec())?;
    Ok(seq)
}

/// Stores a changed descriptor of an existing sequence (its counter
/// untouched).
pub fn update(txn: &Txn, seq: &SequenceDescriptor) -> Result<()> {
    let json = serde_json::to_vec(seq)
        .map_err(|e| SqlError::Internal(format!("cannot encode sequence: {e}")))?;
    txn.put(sequence_key(&seq.database, &seq.schema, &seq.name), json)?;
    Ok(())
}

/// Removes a sequence and its counter.
pub fn delete(txn: &Txn, seq: &SequenceDescriptor) -> Result<()> {
    txn.delete(sequence_key(&seq.database, &seq.schema, &seq.name))?;
    txn.delete(counter_key(seq.id))?;
    Ok(())
}

/// A sequence with PostgreSQL's defaults for a column of `max` range.
pub fn for_column(
    database: &str,
    schema: &str,
    name: String,
    max: i64,
    owner: (String, String),
) -> SequenceDescriptor {
    SequenceDescriptor {
        id: 0,
        database: database.to_string(),
        schema: schema.to_string(),
        name,
        start: 1,
        increment: 1,
        min: 1,
        max,
        cache: DEFAULT_CACHE,
        owned_by: Some(owner),
    }
}

/// `CREATE SEQUENCE [IF NOT EXISTS] name [INCREMENT n] [MINVALUE n]
/// [MAXVALUE n] [START n] [CACHE n]`.
pub fn create_statement(
    txn: &Txn,
    scope: &names::Scope,
    name: &ast::ObjectName,
    if_not_exists: bool,
    options: &[ast::SequenceOptions],
) -> Result<Output> {
    let database = scope.database.as_str();
    let (schema, name) = scope.target(txn, name)?;
    if catalog::relation_exists(txn, database, &schema, &name)? {
        if if_not_exists {
            return Ok(Output::command("CREATE SEQUENCE"));
        }
        return Err(SqlError::DuplicateTable(name));
    }
    crate::schemas::touch(txn, database, &schema)?;
    let mut seq = for_column(
        database,
        &schema,
        name,
        i64::MAX,
        (String::new(), String::new()),
    );
    seq.owned_by = None;
    let mut start = None;
    let number = |e: &ast::Expr| -> Result<i64> {
        let text = e.to_string().replace(' ', "");
        text.parse::<i64>()
            .map_err(|_| SqlError::InvalidParameter(format!("invalid sequence option value {e}")))
    };
    for option in options {
        match option {
            ast::SequenceOptions::IncrementBy(e, _) => seq.increment = number(e)?,
            ast::SequenceOptions::MinValue(Some(e)) => seq.min = number(e)?,
            ast::SequenceOptions::MaxValue(Some(e)) => seq.max = number(e)?,
            ast::SequenceOptions::MinValue(None) | ast::SequenceOptions::MaxValue(None) => {}
            ast::SequenceOptions::StartWith(e, _) => start = Some(number(e)?),
            ast::SequenceOptions::Cache(e) => seq.cache = number(e)?.max(1),
            ast::SequenceOptions::Cycle(false) => {}
            other => {
                return Err(SqlError::NotSupported(format!("sequence option {other}")));
            }
        }
    }
    if seq.increment < 0 {
        // PostgreSQL's defaults for descending sequences.
        if !options
            .iter()
            .any(|o| matches!(o, ast::SequenceOptions::MaxValue(Some(_))))
        {
            seq.max = -1;
        }
        if !options
            .iter()
            .any(|o| matches!(o, ast::SequenceOptions::MinValue(Some(_))))
        {
            seq.min = i64::MIN;
        }
    }
    seq.start = start.unwrap_or(if seq.increment > 0 { seq.min } else { seq.max });
    create(txn, seq)?;
    Ok(Output::command("CREATE SEQUENCE"))
}

/// `DROP SEQUENCE [IF EXISTS] name [, …]`.
pub fn drop_statement(
    txn: &Txn,
    scope: &names::Scope,
    if_exists: bool,
    names_list: &[ast::ObjectName],
) -> Result<Output> {
    for name in names_list {
        let (schema, name) = scope.resolve(txn, name)?;
        match sequence_by_name(txn, &scope.database, &schema, &name)? {
            Some(seq) => {
                if let Some((table, column)) = &seq.owned_by {
                    return Err(SqlError::DependentObjects(format!(
                        "cannot drop sequence {name} because column {column} of table {table} requires it"
                    )));
                }
                delete(txn, &seq)?
            }
            None if if_exists => {}
            None => return Err(SqlError::UndefinedTable(name)),
        }
    }
    Ok(Output::command("DROP SEQUENCE"))
}

/// Drops the sequences a table's columns own (with the table; they live
/// in its schema).
pub fn drop_owned_by(txn: &Txn, database: &str, schema: &str, table: &str) -> Result<()> {
    for seq in list_sequences(txn, database, schema)? {
        if seq.owned_by.as_ref().is_some_and(|(t, _)| t == table) {
            delete(txn, &seq)?;
        }
    }
    Ok(())
}

/// The sequence named `name` in the first of `schemas` holding one.
fn find(txn: &Txn, database: &str, schemas: &[String], name: &str) -> Result<SequenceDescriptor> {
    for schema in schemas {
        if let Some(seq) = sequence_by_name(txn, database, schema, name)? {
            return Ok(seq);
        }
    }
    Err(SqlError::UndefinedTable(name.to_string()))
}

/// This node's blocks of sequence values (module docs).
#[derive(Default)]
pub struct SequenceCache {
    /// Sequence id → (next value, values left in the block).
    blocks: Mutex<HashMap<u32, (i64, i64)>>,
}

/// How many times a block allocation is retried after a write conflict
/// with another node taking a block.
const ALLOCATION_RETRIES: usize = 32;

impl SequenceCache {
    /// The next value of the sequence named `name` in the first of
    /// `schemas` that has one, and that schema.
    pub fn next(
        &self,
        kv: &Arc<Kv>,
        database: &str,
        schemas: &[String],
        name: &str,
    ) -> Result<(i64, String)> {
        let seq = {
            let txn = kv.begin()?;
            let seq = find(&txn, database, schemas, name);
            txn.rollback();
            seq?
        };
        let mut blocks = self.blocks.lock();
        if let Some((next, left)) = blocks.get_mut(&seq.id)
            && *left > 0
        {
            let value = *next;
            *next = next.saturating_add(seq.increment);
            *left -= 1;
            return Ok((value, seq.schema));
        }
        let (first, count) = Self::take_block(kv, &seq)?;
        blocks.insert(seq.id, (first.saturating_add(seq.increment), count - 1));
        Ok((first, seq.schema))
    }

    /// Moves the counter forward by a block, in a transaction of its own:
    /// the block's first value and how many values it holds.
    fn take_block(kv: &Arc<Kv>, seq: &SequenceDescriptor) -> Result<(i64, i64)> {
        for _ in 0..ALLOCATION_RETRIES {
            let txn = kv.begin()?;
            let current = match txn.get(&counter_key(seq.id))? {
                Some(b) => i64::from_be_bytes(
                    b.as_slice()
                        .try_into()
                        .map_err(|_| SqlError::Internal("corrupt sequence counter".into()))?,
                ),
                None => return Err(SqlError::UndefinedTable(seq.name.clone())),
            };
            let past = |v: i64| v > seq.max || v < seq.min;
            if past(current) {
                txn.rollback();
                let bound = if seq.increment > 0 {
                    "maximum"
                } else {
                    "minimum"
                };
                return Err(SqlError::SequenceLimit(format!(
                    "nextval: reached {bound} value of sequence \"{}\" ({})",
                    seq.name,
                    if seq.increment > 0 { seq.max } else { seq.min }
                )));
            }
            // As many values as fit before the bound, up to the cache size.
            // In i128: bounds and increments may span all of i64.
            let room = if seq.increment > 0 {
                (i128::from(seq.max) - i128::from(current)) / i128::from(seq.increment) + 1
            } else {
                (i128::from(current) - i128::from(seq.min)) / -i128::from(seq.increment) + 1
            };
            let count = i64::try_from(room.clamp(1, i128::from(seq.cache.max(1)))).unwrap_or(1);
            let next = current.saturating_add(seq.increment.saturating_mul(count));
            let next = if next == current {
                seq.max.saturating_add(1)
            } else {
                next
            };
            txn.put(counter_key(seq.id), next.to_be_bytes().to_vec())?;
            match txn.commit() {
                Ok(_) => return Ok((current, count)),
                Err(KvError::WriteConflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(SqlError::SerializationFailure(format!(
            "could not take values of sequence \"{}\": too many concurrent takers",
            seq.name
        )))
    }

    /// `setval(name, value)`: the next `nextval` anywhere returns the value
    /// after `value` (this node's block is dropped; others finish theirs).
    pub fn set(
        &self,
        kv: &Arc<Kv>,
        database: &str,
        schemas: &[String],
        name: &str,
        value: i64,
    ) -> Result<(i64, String)> {
        let txn = kv.begin()?;
        let seq = match find(&txn, database, schemas, name) {
            Ok(seq) => seq,
            Err(e) => {
                txn.rollback();
                return Err(e);
            }
        };
        if value < seq.min || value > seq.max {
            txn.rollback();
            return Err(SqlError::NumericOutOfRange(format!(
                "setval: value {value} is out of bounds for sequence \"{name}\" ({}..{})",
                seq.min, seq.max
            )));
        }
        txn.put(
            counter_key(seq.id),
            value.saturating_add(seq.increment).to_be_bytes().to_vec(),
        )?;
        txn.commit()?;
        self.blocks.lock().remove(&seq.id);
        Ok((value, seq.schema))
    }
}
