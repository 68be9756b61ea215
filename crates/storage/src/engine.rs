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
//! * **Cursors** ([`Cursor`], `cursor.rs`) cover the same intervals as
//!   scans but lend the entry they stand on and can seek forward, for
//!   readers that skip most of what they pass (MVCC scans over long
//!   histories). An engine without a cursor of its own builds one from its
//!   scans.
//! * **Writes** are whole batches applied atomically: after a crash either all
//!   operations of a batch are visible or none are. `sync = true` means the
//!   batch is durable (its log record fsynced) before `write` returns; this is
//!   what a transaction commit waits for.
//!
//! * **Column families** ([`ColumnFamily`]) are independent key spaces in one
//!   engine; a batch spans them atomically with a single sync.
//!
//! Engines are `Send + Sync + 'static` and are shared as `Arc<dyn Engine>`.

use crate::cursor::Cursor;
use crate::error::Result;

/// An independent key space of an engine. One [`WriteBatch`] may touch
/// several, atomically and with one log sync.
///
/// The split follows what the bytes are for, not who writes them:
///
/// * [`ColumnFamily::Data`] is the replicated state machine — MVCC versions,
///   the catalog, everything a range's replicas agree on.
/// * [`ColumnFamily::Raft`] is node-local consensus state — Raft logs, hard
///   states, apply states. It is never replicated as data and never read by
///   SQL; keeping it apart means table scans never step over log entries and
///   log truncation never leaves tombstones among table rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ColumnFamily {
    /// Replicated range data.
    Data,
    /// Node-local Raft state.
    Raft,
}

impl ColumnFamily {
    /// Every column family, in a fixed order.
    pub const ALL: [ColumnFamily; 2] = [ColumnFamily::Data, ColumnFamily::Raft];

    /// The column family's name on disk.
    pub fn name(self) -> &'static str {
        match self {
            ColumnFamily::Data => "default",
            ColumnFamily::Raft => "raft",
        }
    }
}

/// One operation in a [`WriteBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Set `key` to `value`.
    Put(ColumnFamily, Vec<u8>, Vec<u8>),
    /// Remove `key` (a no-op when it is absent).
    Delete(ColumnFamily, Vec<u8>),
    /// Remove every key in `[start, end)`.
    DeleteRange(ColumnFamily, Vec<u8>, Vec<u8>),
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

    /// Appends a put to the data column family.
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.put_cf(ColumnFamily::Data, key, value);
    }

    /// Appends a delete from the data column family.
    pub fn delete(&mut self, key: impl Into<Vec<u8>>) {
        self.delete_cf(ColumnFamily::Data, key);
    }

    /// Appends a put to `cf`.
    pub fn put_cf(&mut self, cf: ColumnFamily, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(WriteOp::Put(cf, key.into(), value.into()));
    }

    /// Appends a delete from `cf`.
    pub fn delete_cf(&mut self, cf: ColumnFamily, key: impl Into<Vec<u8>>) {
        self.ops.push(WriteOp::Delete(cf, key.into()));
    }

    /// Appends the removal of every key of `cf` in `[start, end)`.
    pub fn delete_range_cf(
        &mut self,
        cf: ColumnFamily,
        start: impl Into<Vec<u8>>,
        end: impl Into<Vec<u8>>,
    ) {
        self.ops
            .push(WriteOp::DeleteRange(cf, start.into(), end.into()));
    }

    /// Appends every operation of `other`, after this batch's own.
    pub fn extend(&mut self, other: WriteBatch) {
        self.ops.extend(other.ops);
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

/// A lazy ascending scan.
pub type ScanIter<'a> = Box<dyn Iterator<Item = Result<KvPair>> + 'a>;

/// An ordered, durable key-value store. See the module documentation for the
/// contract.
pub trait Engine: Send + Sync + 'static {
    /// The value of `key` in `cf`, if any.
    fn get_cf(&self, cf: ColumnFamily, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Ascending scan of `cf` over [start, end); end None = to the end of
    /// the key space.
    fn scan_cf<'a>(&'a self, cf: ColumnFamily, start: &[u8], end: Option<&[u8]>) -> ScanIter<'a>;

    /// Atomic batch, across column families. sync=true means durable (WAL
    /// fsynced) before returning.
    fn write(&self, batch: WriteBatch, sync: bool) -> Result<()>;

    /// The value of `key` in the data column family, if any.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_cf(ColumnFamily::Data, key)
    }

    /// Ascending scan of the data column family over [start, end).
    fn scan<'a>(&'a self, start: &[u8], end: Option<&[u8]>) -> ScanIter<'a> {
        self.scan_cf(ColumnFamily::Data, start, end)
    }

    /// Like [`Engine::scan`], over versions of one prefix: `start` is a
    /// whole versioned key ([`versioned_prefix`]) and the caller reads no
    /// key past that key's prefix (`end` at most the prefix's end). An
    /// engine may skip whatever holds no key of that prefix (RocksDB: a
    /// prefix bloom filter); by default it is a plain scan.
    fn scan_versions<'a>(&'a self, start: &[u8], end: Option<&[u8]>) -> ScanIter<'a> {
        self.scan(start, end)
    }

    /// A [`Cursor`] over `[start, end)` of `cf`, standing on its first
    /// key. An engine without a cursor of its own makes one of its scans
    /// ([`crate::cursor::ScanCursor`]).
    fn cursor_cf<'a>(
        &'a self,
        cf: ColumnFamily,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> Box<dyn Cursor + 'a>;
}

/// The first byte of *versioned* keys: data keys that end in an 8-byte
/// suffix — the MVCC layer's versions, `'v' <escaped user key> <inverted
/// timestamp>`. Every version of a user key shares the prefix before the
/// suffix, which an engine may index ([`Engine::scan_versions`]).
pub const VERSIONED_KEY_TAG: u8 = b'v';

/// The length of a versioned key's suffix.
pub const VERSION_SUFFIX_LEN: usize = 8;

/// The prefix of versioned key `key` (without its suffix), if it is one.
pub fn versioned_prefix(key: &[u8]) -> Option<&[u8]> {
    (key.first() == Some(&VERSIONED_KEY_TAG) && key.len() > VERSION_SUFFIX_LEN)
        .then(|| &key[..key.len() - VERSION_SUFFIX_LEN])
}
