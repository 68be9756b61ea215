//! Shoal's storage layer: the bottom of the stack.
//!
//! Reading the crates bottom-up, this is where a write finally lands. The
//! layer offers two things and knows nothing about transactions, ranges or
//! SQL:
//!
//! 1. **An ordered byte map behind a trait** ([`Engine`]): point reads, lazy
//!    ascending range scans, cursors that seek ([`Cursor`]), and atomic,
//!    optionally durable write batches.
//!    Two implementations: [`MemoryEngine`] (a locked `BTreeMap`, for tests
//!    and anything that should not touch a disk) and [`RocksEngine`] (RocksDB,
//!    for real nodes). Everything above — replication, MVCC, SQL — is written
//!    against `Arc<dyn Engine>`, so its tests run without RocksDB.
//! 2. **Key encoding** ([`keycode`]): an order-preserving byte encoding of
//!    typed values, so that a SQL key range becomes a byte range the engine
//!    can scan, and the engine's byte order is PostgreSQL's value order.
//!
//! The MVCC layer (`shoal-kv`) builds versioned keys on top of
//! [`keycode::encode_bytes_escaped`]; the SQL layer builds row and index keys
//! with [`keycode::encode_key`].
//!
//! Errors are [`StorageError`]: I/O, corruption, or an undecodable key.

pub mod crash_disk;
pub mod cursor;
pub mod disk_faults;
pub mod engine;
pub mod error;
pub mod keycode;
pub mod memory;
#[cfg(feature = "rocksdb")]
pub mod rocks;

pub use crash_disk::CrashDisk;
pub use cursor::{Cursor, ScanCursor};
pub use disk_faults::DiskFaults;
pub use engine::{
    ColumnFamily, Engine, KvPair, ScanIter, VERSION_SUFFIX_LEN, VERSIONED_KEY_TAG, WriteBatch,
    WriteOp, versioned_prefix,
};
pub use error::{Result, StorageError};
pub use keycode::{
    KeyDatum, decode_bytes_escaped, decode_datum, decode_key, encode_bytes_escaped, encode_datum,
    encode_key,
};
pub use memory::MemoryEngine;
#[cfg(feature = "rocksdb")]
pub use rocks::RocksEngine;
