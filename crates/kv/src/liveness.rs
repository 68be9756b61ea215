//! Node liveness: every node renews a lease on being alive, replicated in
//! the first range, so any node can tell which nodes are up.
//!
//! A node proposes [`Command::Heartbeat`](crate::command::Command) every
//! [`HEARTBEAT_INTERVAL`] with an expiration [`LIVENESS_TTL`] ahead of its
//! wall clock. A node is *live* while its expiration is ahead of the
//! reader's wall clock. A heartbeat is a Raft write, so a node cut off from
//! the quorum cannot renew, and its record expires everywhere — which is
//! what placement needs to decide that a node's replicas must be rebuilt
//! elsewhere. Clock offset between nodes shifts the verdict by at most the
//! offset; the TTL is many times the interval, so a live node is never seen
//! dead for it.
//!
//! Records are raw keys of the data column family, outside the MVCC space
//! (like the node registry): `s l <node id, 8 bytes big-endian>` →
//! expiration (microseconds since the Unix epoch, 8 bytes big-endian). An
//! expiration only moves forward: a delayed heartbeat applied after a newer
//! one changes nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use shoal_storage::{Engine, StorageError, WriteBatch};

use crate::error::Result;

/// How often a node renews its liveness.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3);
/// How far ahead of now a heartbeat sets the expiration.
pub const LIVENESS_TTL: Duration = Duration::from_secs(9);

const PREFIX: &[u8] = b"sl";

fn record_key(node: u64) -> Vec<u8> {
    let mut key = PREFIX.to_vec();
    key.extend_from_slice(&node.to_be_bytes());
    key
}

fn decode_u64(bytes: &[u8], what: &str) -> Result<u64> {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| StorageError::Corrupt(format!("liveness record: {what}")).into())
}

/// Every node's liveness expiration, by node id.
pub fn expirations(engine: &dyn Engine) -> Result<BTreeMap<u64, u64>> {
    let end = crate::mvcc::prefix_end(PREFIX).unwrap_or_default();
    let mut out = BTreeMap::new();
    for pair in engine.scan(PREFIX, Some(&end)) {
        let (key, value) = pair?;
        let node = decode_u64(key.get(PREFIX.len()..).unwrap_or_default(), "key")?;
        out.insert(node, decode_u64(&value, "expiration")?);
    }
    Ok(out)
}

/// Applies a heartbeat: the node's expiration becomes the later of the
/// stored one and `expiration`, which is returned.
pub fn heartbeat(
    engine: &dyn Engine,
    node: u64,
    expiration: u64,
    batch: &mut WriteBatch,
) -> Result<u64> {
    let stored = match engine.get(&record_key(node))? {
        Some(bytes) => decode_u64(&bytes, "expiration")?,
        None => 0,
    };
    let expiration = expiration.max(stored);
    batch.put(record_key(node), expiration.to_be_bytes().to_vec());
    Ok(expiration)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use shoal_storage::MemoryEngine;

    use super::*;

    #[test]
    fn expirations_only_move_forward() {
        let engine = MemoryEngine::new();
        for (node, expiration, expected) in [(2, 100, 100), (2, 50, 100), (2, 300, 300), (1, 7, 7)]
        {
            let mut batch = WriteBatch::new();
            assert_eq!(
                heartbeat(&engine, node, expiration, &mut batch).unwrap(),
                expected
            );
            engine.write(batch, false).unwrap();
        }
        let all = expirations(&engine).unwrap();
        assert_eq!(all.into_iter().collect::<Vec<_>>(), vec![(1, 7), (2, 300)]);
    }
}
