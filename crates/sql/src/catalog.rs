//! The catalog: table descriptors stored in the KV store itself.
//!
//! Every read and write of the catalog goes through the caller's transaction,
//! so a `CREATE TABLE` inside `BEGIN … ROLLBACK` leaves no trace and a
//! concurrent DDL on the same name conflicts like any other write (40001).
//! Table ids come from a counter key; ids are never reused, so the OIDs derived
//! from them are stable across restarts and identical on every node.
//!
//! Catalog reads are *untracked* (`Txn::get_untracked`): a serializable
//! transaction does not prove them at commit, so a statement does not pay
//! for revisiting the catalog's range. DDL racing DML is therefore ordered
//! as under snapshot isolation: by conflicts on the keys both write.
//!
//! Index names share the namespace of table names, as relations do in
//! PostgreSQL: an index name key (`0x01 'x' <database> <schema> <name>`)
//! maps each to its table, so `DROP INDEX` finds it with one read and two
//! transactions creating one name conflict on one key.
//!
//! Every statement reads its table's descriptor; decoding it each time
//! cost more than the read. A small process-wide memo maps a descriptor's
//! stored bytes to the decoded descriptor, so only bytes never seen before
//! are decoded. It holds no state of its own: equal bytes are the same
//! descriptor, whatever node or transaction read them.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use parking_lot::RwLock;

use shoal_kv::Txn;
use shoal_storage::keycode;

use crate::descriptor::TableDescriptor;
use crate::error::{Result, SqlError};
use crate::row::{CATALOG_PREFIX, prefix_end};

/// First table id handed out.
const FIRST_TABLE_ID: u32 = 100;

fn id_counter_key() -> Vec<u8> {
    vec![CATALOG_PREFIX, b'i']
}

fn descriptor_key(id: u32) -> Vec<u8> {
    let mut k = vec![CATALOG_PREFIX, b'd'];
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn names_prefix(database: &str, schema: &str) -> Vec<u8> {
    let mut k = vec![CATALOG_PREFIX, b'n'];
    keycode::encode_bytes_escaped(database.as_bytes(), &mut k);
    keycode::encode_bytes_escaped(schema.as_bytes(), &mut k);
    k
}

fn name_key(database: &str, schema: &str, name: &str) -> Vec<u8> {
    let mut k = names_prefix(database, schema);
    keycode::encode_bytes_escaped(name.as_bytes(), &mut k);
    k
}

/// The key prefix of one kind of named catalog object (`b'w'` views,
/// `b's'` sequences) in a schema; each object is stored under
/// [`named_key`] as JSON.
pub fn named_prefix(kind: u8, database: &str, schema: &str) -> Vec<u8> {
    let mut k = vec![CATALOG_PREFIX, kind];
    keycode::encode_bytes_escaped(database.as_bytes(), &mut k);
    keycode::encode_bytes_escaped(schema.as_bytes(), &mut k);
    k
}

/// The key of a named catalog object (see [`named_prefix`]).
pub fn named_key(kind: u8, database: &str, schema: &str, name: &str) -> Vec<u8> {
    let mut k = named_prefix(kind, database, schema);
    keycode::encode_bytes_escaped(name.as_bytes(), &mut k);
    k
}

/// The stored objects of one kind in a schema, decoded, in name order.
pub fn list_named<T: serde::de::DeserializeOwned>(
    txn: &Txn,
    kind: u8,
    database: &str,
    schema: &str,
) -> Result<Vec<T>> {
    list_prefix(txn, named_prefix(kind, database, schema))
}

/// The stored objects of one kind in every schema of a database.
pub fn list_named_in_database<T: serde::de::DeserializeOwned>(
    txn: &Txn,
    kind: u8,
    database: &str,
) -> Result<Vec<T>> {
    let mut prefix = vec![CATALOG_PREFIX, kind];
    keycode::encode_bytes_escaped(database.as_bytes(), &mut prefix);
    list_prefix(txn, prefix)
}

fn list_prefix<T: serde::de::DeserializeOwned>(txn: &Txn, prefix: Vec<u8>) -> Result<Vec<T>> {
    let end = prefix_end(&prefix);
    let mut out = Vec::new();
    let mut start = prefix;
    loop {
        let chunk = txn.scan_untracked(&start, &end, 256)?;
        let done = chunk.len() < 256;
        for (k, v) in &chunk {
            out.push(decode_named(v)?);
            start = k.clone();
            start.push(0);
        }
        if done {
            return Ok(out);
        }
    }
}

/// A stored named object, decoded.
pub fn decode_named<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| SqlError::Internal(format!("corrupt catalog object: {e}")))
}

fn index_name_key(database: &str, schema: &str, name: &str) -> Vec<u8> {
    let mut k = vec![CATALOG_PREFIX, b'x'];
    keycode::encode_bytes_escaped(database.as_bytes(), &mut k);
    keycode::encode_bytes_escaped(schema.as_bytes(), &mut k);
    keycode::encode_bytes_escaped(name.as_bytes(), &mut k);
    k
}

/// The table owning the index of that name.
pub fn index_owner(
    txn: &Txn,
    database: &str,
    schema: &str,
    name: &str,
) -> Result<Option<Arc<TableDescriptor>>> {
    match txn.get_untracked(&index_name_key(database, schema, name))? {
        None => Ok(None),
        Some(id) => table_by_id(txn, decode_id(&id)?),
    }
}

/// Whether a table, an index or a view already has this name.
pub fn relation_exists(txn: &Txn, database: &str, schema: &str, name: &str) -> Result<bool> {
    Ok(txn
        .get_untracked(&name_key(database, schema, name))?
        .is_some()
        || txn
            .get_untracked(&index_name_key(database, schema, name))?
            .is_some()
        || crate::views::view_exists(txn, database, schema, name)?
        || crate::sequences::sequence_exists(txn, database, schema, name)?
        || pkey_owner(txn, database, schema, name)?.is_some())
}

/// The table whose primary key index has this name (`<table>_pkey`).
pub fn pkey_owner(
    txn: &Txn,
    database: &str,
    schema: &str,
    name: &str,
) -> Result<Option<Arc<TableDescriptor>>> {
    let Some(table) = name.strip_suffix("_pkey") else {
        return Ok(None);
    };
    Ok(table_by_name(txn, database, schema, table)?.filter(|d| !d.has_hidden_rowid()))
}

/// Records that the table `desc` owns an index named `name`.
pub fn put_index_name(txn: &Txn, desc: &TableDescriptor, name: &str) -> Result<()> {
    txn.put(
        index_name_key(&desc.database, &desc.schema, name),
        desc.id.to_be_bytes().to_vec(),
    )?;
    Ok(())
}

/// Forgets an index name.
pub fn delete_index_name(txn: &Txn, desc: &TableDescriptor, name: &str) -> Result<()> {
    txn.delete(index_name_key(&desc.database, &desc.schema, name))?;
    Ok(())
}

fn decode_id(bytes: &[u8]) -> Result<u32> {
    let arr: [u8; 4] = bytes
        .try_into()
        .map_err(|_| SqlError::Internal("corrupt table id in catalog".into()))?;
    Ok(u32::from_be_bytes(arr))
}

/// Reads a descriptor by id.
pub fn table_by_id(txn: &Txn, id: u32) -> Result<Option<Arc<TableDescriptor>>> {
    match txn.get_untracked(&descriptor_key(id))? {
        None => Ok(None),
        Some(bytes) => decode_descriptor(id, bytes).map(Some),
    }
}

/// The most descriptors the memo keeps (module docs); past it, it starts
/// over.
const MEMO_ENTRIES: usize = 4096;

/// Stored descriptor bytes → the descriptor, per table id (module docs).
type DescriptorMemo = RwLock<HashMap<u32, (Vec<u8>, Arc<TableDescriptor>)>>;
static DECODED: LazyLock<DescriptorMemo> = LazyLock::new(DescriptorMemo::default);

/// The descriptor stored as `bytes` under `id`, decoded at most once.
fn decode_descriptor(id: u32, bytes: Vec<u8>) -> Result<Arc<TableDescriptor>> {
    if let Some((seen, desc)) = DECODED.read().get(&id)
        && *seen == bytes
    {
        return Ok(desc.clone());
    }
    let desc: Arc<TableDescriptor> = serde_json::from_slice(&bytes)
        .map(Arc::new)
        .map_err(|e| SqlError::Internal(format!("corrupt table descriptor {id}: {e}")))?;
    let mut memo = DECODED.write();
    if memo.len() >= MEMO_ENTRIES {
        memo.clear();
    }
    memo.insert(id, (bytes, desc.clone()));
    Ok(desc)
}

/// Looks a table up by name.
pub fn table_by_name(
    txn: &Txn,
    database: &str,
    schema: &str,
    name: &str,
) -> Result<Option<Arc<TableDescriptor>>> {
    match txn.get_untracked(&name_key(database, schema, name))? {
        None => Ok(None),
        Some(id) => table_by_id(txn, decode_id(&id)?),
    }
}

/// Every table of a database, in name order.
pub fn list_tables(txn: &Txn, database: &str) -> Result<Vec<Arc<TableDescriptor>>> {
    let mut prefix = vec![CATALOG_PREFIX, b'n'];
    keycode::encode_bytes_escaped(database.as_bytes(), &mut prefix);
    let end = prefix_end(&prefix);
    let mut out = Vec::new();
    let mut start = prefix.clone();
    loop {
        let chunk = txn.scan_untracked(&start, &end, 256)?;
        let done = chunk.len() < 256;
        for (k, v) in &chunk {
            if let Some(desc) = table_by_id(txn, decode_id(v)?)? {
                out.push(desc);
            }
            start = k.clone();
            start.push(0);
        }
        if done {
            return Ok(out);
        }
    }
}

/// Allocates a new table id.
pub fn allocate_table_id(txn: &Txn) -> Result<u32> {
    let next = match txn.get(&id_counter_key())? {
        None => FIRST_TABLE_ID,
        Some(bytes) => decode_id(&bytes)?,
    };
    // Index OIDs are derived from table OIDs with a stride of 2^22
    // (`descriptor::INDEX_OID_STRIDE`): table ids stay below it.
    if next + crate::descriptor::FIRST_USER_OID >= crate::descriptor::INDEX_OID_STRIDE {
        return Err(SqlError::ProgramLimitExceeded(
            "the database has used every table id".into(),
        ));
    }
    txn.put(id_counter_key(), (next + 1).to_be_bytes().to_vec())?;
    Ok(next)
}

/// Stores a new or changed descriptor and its name entry.
pub fn put_table(txn: &Txn, desc: &TableDescriptor) -> Result<()> {
    let json = serde_json::to_vec(desc)
        .map_err(|e| SqlError::Internal(format!("cannot encode descriptor: {e}")))?;
    txn.put(descriptor_key(desc.id), json)?;
    txn.put(
        name_key(&desc.database, &desc.schema, &desc.name),
        desc.id.to_be_bytes().to_vec(),
    )?;
    Ok(())
}

/// Removes a table's name entry (before it is stored under a new name).
pub fn delete_table_name(txn: &Txn, desc: &TableDescriptor) -> Result<()> {
    txn.delete(name_key(&desc.database, &desc.schema, &desc.name))?;
    Ok(())
}

/// Removes a descriptor, its name entry and its indexes' names (the rows
/// are removed by the caller).
pub fn delete_table(txn: &Txn, desc: &TableDescriptor) -> Result<()> {
    txn.delete(descriptor_key(desc.id))?;
    txn.delete(name_key(&desc.database, &desc.schema, &desc.name))?;
    for index in &desc.indexes {
        delete_index_name(txn, desc, &index.name)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn stored(id: u32, version: u32) -> Vec<u8> {
        serde_json::to_vec(&TableDescriptor {
            id,
            database: "shoal".into(),
            schema: "public".into(),
            name: format!("t{id}"),
            columns: Vec::new(),
            primary_key: Vec::new(),
            version,
            indexes: Vec::new(),
            next_index_id: 2,
            checks: Vec::new(),
            foreign_keys: Vec::new(),
            referenced_by: Vec::new(),
        })
        .unwrap()
    }

    #[test]
    fn descriptors_are_decoded_once_per_stored_form() {
        // An id no other test uses: the memo is process-wide.
        let id = 987_654;
        let first = decode_descriptor(id, stored(id, 1)).unwrap();
        let again = decode_descriptor(id, stored(id, 1)).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "same bytes, same descriptor");
        let changed = decode_descriptor(id, stored(id, 2)).unwrap();
        assert_eq!(changed.version, 2, "new bytes are decoded");
        assert!(decode_descriptor(id, b"{not json".to_vec()).is_err());
        assert_eq!(decode_descriptor(id, stored(id, 2)).unwrap().version, 2);
    }
}
