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

use std::sync::Arc;

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
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(|d| Some(Arc::new(d)))
            .map_err(|e| SqlError::Internal(format!("corrupt table descriptor {id}: {e}"))),
    }
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

/// Removes a descriptor and its name entry (the rows are removed by the caller).
pub fn delete_table(txn: &Txn, desc: &TableDescriptor) -> Result<()> {
    txn.delete(descriptor_key(desc.id))?;
    txn.delete(name_key(&desc.database, &desc.schema, &desc.name))?;
    Ok(())
}
