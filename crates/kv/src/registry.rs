//! The node registry: which nodes belong to the cluster and where they
//! listen, replicated in the first range like any other state.
//!
//! Records are raw (unversioned) keys of the data column family, outside
//! the MVCC space: `s n <node id, 8 bytes big-endian>` → address (UTF-8);
//! `s d <node id>` → empty, for a node being decommissioned (its replicas
//! and leases are moved away; it stays registered and may be stopped once
//! it holds none).
//! They change only through [`Command::RegisterNode`](crate::command::Command)
//! and are read from the local replica: a node's view is as fresh as its
//! replica.

use shoal_storage::{Engine, StorageError, WriteBatch};

use crate::error::Result;

const PREFIX: &[u8] = b"sn";
const DECOMMISSIONING: &[u8] = b"sd";

fn record_key(node: u64) -> Vec<u8> {
    let mut key = PREFIX.to_vec();
    key.extend_from_slice(&node.to_be_bytes());
    key
}

/// Every record under `prefix` keyed by a node id, as (id, value).
fn node_records(engine: &dyn Engine, prefix: &[u8]) -> Result<Vec<(u64, Vec<u8>)>> {
    let end = crate::mvcc::prefix_end(prefix).unwrap_or_default();
    let mut out = Vec::new();
    for pair in engine.scan(prefix, Some(&end)) {
        let (key, value) = pair?;
        let id = key
            .get(prefix.len()..)
            .and_then(|raw| <[u8; 8]>::try_from(raw).ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| StorageError::Corrupt(format!("node record key {key:x?}")))?;
        out.push((id, value));
    }
    Ok(out)
}

/// Every registered node and its address, by id.
pub fn nodes(engine: &dyn Engine) -> Result<Vec<(u64, String)>> {
    node_records(engine, PREFIX)?
        .into_iter()
        .map(|(id, value)| {
            let addr = String::from_utf8(value)
                .map_err(|_| StorageError::Corrupt(format!("address of node {id}")))?;
            Ok((id, addr))
        })
        .collect()
}

/// Applies a registration: returns the node's id and adds its record to
/// `batch`. An address already registered keeps its id.
pub fn register(
    engine: &dyn Engine,
    node_id: u64,
    addr: &str,
    batch: &mut WriteBatch,
) -> Result<u64> {
    let known = nodes(engine)?;
    if node_id == 0
        && let Some((id, _)) = known.iter().find(|(_, a)| a == addr)
    {
        return Ok(*id);
    }
    let id = if node_id == 0 {
        known.iter().map(|(id, _)| *id).max().unwrap_or(0) + 1
    } else {
        node_id
    };
    add_record(batch, id, addr);
    Ok(id)
}

/// The nodes being decommissioned.
pub fn decommissioning(engine: &dyn Engine) -> Result<std::collections::BTreeSet<u64>> {
    Ok(node_records(engine, DECOMMISSIONING)?
        .into_iter()
        .map(|(id, _)| id)
        .collect())
}

/// Marks node `id` as being decommissioned.
pub fn mark_decommissioning(batch: &mut WriteBatch, id: u64) {
    let mut key = DECOMMISSIONING.to_vec();
    key.extend_from_slice(&id.to_be_bytes());
    batch.put(key, Vec::new());
}

/// Adds node `id`'s record to `batch` as is (the first node writes its own
/// when it bootstraps the cluster, before any Raft command can run).
pub fn add_record(batch: &mut WriteBatch, id: u64, addr: &str) {
    batch.put(record_key(id), addr.as_bytes().to_vec());
}
