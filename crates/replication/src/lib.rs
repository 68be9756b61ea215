//! Replication: the boundary between "a range wants to write" and "the write
//! is on disk".
//!
//! # Today
//!
//! Every range has exactly one replica, on the local node, and "replicating"
//! a write means applying it durably to the local engine. [`LocalReplica`]
//! is that single replica.
//!
//! # Why the seam exists now
//!
//! The KV layer never writes to the engine directly: it hands each batch to
//! the replica of the range that owns the keys ([`LocalReplica::apply`]).
//! That call is exactly where a Raft proposal will go when ranges get several
//! replicas (raft-rs, in a later issue): the batch becomes a log entry, and
//! `apply` returns once a quorum has persisted it and the local state machine
//! has applied it. Keeping the seam from the start means the MVCC and
//! transaction code will not change when replication arrives — only what
//! "durable" means will (one fsync today, a quorum of fsyncs then).
//!
//! Reads go to [`LocalReplica::engine`]. With Raft they will be served by the
//! leaseholder; today every read is local.
//!
//! # Invariants
//!
//! * A batch is applied atomically and durably (`sync = true`) before `apply`
//!   returns `Ok`; a commit acknowledged to a client survives a crash.
//! * Batches are applied in the order `apply` is called. Callers that need an
//!   order across batches (the commit path) serialize their calls.

use std::sync::Arc;

use shoal_storage::{Engine, StorageError, WriteBatch};

/// Why a replicated write failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    /// The local engine failed to apply the batch.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The single, local replica of a range.
#[derive(Clone)]
pub struct LocalReplica {
    engine: Arc<dyn Engine>,
}

impl std::fmt::Debug for LocalReplica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalReplica").finish_non_exhaustive()
    }
}

impl LocalReplica {
    /// A replica storing its data in `engine`.
    pub fn new(engine: Arc<dyn Engine>) -> Self {
        Self { engine }
    }

    /// The engine holding this replica's data, for reads.
    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.engine
    }

    /// Durably applies the batch (sync) — the future Raft proposal point.
    pub fn apply(&self, batch: WriteBatch) -> Result<(), ReplicationError> {
        if batch.is_empty() {
            return Ok(());
        }
        let ops = batch.len();
        self.engine.write(batch, true)?;
        tracing::trace!(ops, "applied batch on local replica");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use shoal_storage::MemoryEngine;

    #[test]
    fn apply_writes_through_to_the_engine() {
        let replica = LocalReplica::new(Arc::new(MemoryEngine::new()));
        let mut batch = WriteBatch::new();
        batch.put(b"k".to_vec(), b"v".to_vec());
        replica.apply(batch).unwrap();
        replica.apply(WriteBatch::new()).unwrap();
        assert_eq!(replica.engine().get(b"k").unwrap(), Some(b"v".to_vec()));
    }
}
