//! The engine contract: an ordered, durable map from bytes to bytes.
//!
//! Everything above storage (replication, MVCC, SQL) sees the disk through the
//! [`Engine`] trait and nothing else, so the same code runs over the in-memory
//! engine in tests and over RocksDB in production.
//!
//! The contract is deliberately small:
//!
//! * **Point reads** return the latest written value of a key.
//! * **Scans** are ascending over a half-open interval `[start, end)` and are
//!   lazy: an engine must not materialize the whole range, because MVCC and
//!   SQL scans walk whole tables with bounded memory. A scan is not required
//!   to be a point-in-time snapshot across concurrent writes; the MVCC layer
//!   above never overwrites a version key, so it does not need one.
//! * **Writes** are whole batches applied atomically: after a crash either all
//!   operations of a batch are visible or none are. `sync = true` means the
//!   batch is durable (its log record fsynced) before `write` returns; this is
//!   what a transaction commit waits for.
//!
//! Engines are `Send + Sync + 'static` and are shared as `Arc<dyn Engine>`.

use crate::error::Result;

/// One operation in a [`WriteBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Set `key` to `value`.
    Put(Vec<u8>, Vec<u8>),
    /// Remove `key` (a no-op when it is absent).
    Delete(Vec<u8>),
}

/// An ordered list of writes applied atomically by [`Engine::write`].
///
/// Later operations on the same key win, exactly as if they were applied one
/// after the other.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    /// The operations, in application order.
    pub ops: Vec<WriteOp>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a put.
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(WriteOp::Put(key.into(), value.into()));
    }

    /// Appends a delete.
    pub fn delete(&mut self, key: impl Into<Vec<u8>>) {
        self.ops.push(WriteOp::Delete(key.into()));
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// A key and its value.
pub type KvPair = (Vec<u8>, Vec<u8>);

/// An ordered, durable key-value store. See the module documentation for the
/// contract.
pub trait Engine: Send + Sync + 'static {
    /// The value of `key`, if any.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Ascending scan over [start, end); end None = to the end of the key space.
    fn scan<'a>(
        &'a self,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> Box<dyn Iterator<Item = Result<KvPair>> + 'a>;

    /// Atomic batch. sync=true means durable (WAL fsynced) before returning.
    fn write(&self, batch: WriteBatch, sync: bool) -> Result<()>;
}
