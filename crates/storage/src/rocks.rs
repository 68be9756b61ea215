//! The RocksDB engine: the durable engine used by a real node.
//!
//! One RocksDB instance, default column family. Options favour the MVCC
//! workload above: keys share long prefixes (table, index, user key) and
//! versions are appended rather than overwritten, so LZ4 block compression
//! and dynamic level sizing pay off; point lookups of a version prefix are
//! served by scans, so no prefix extractor is configured yet.
//!
//! Scans use an iterator with `iterate_upper_bound` set, so RocksDB stops at
//! the range end itself instead of us reading (and decompressing) the next
//! block only to throw it away. A RocksDB iterator pins an implicit snapshot,
//! which is stronger than the engine contract requires.
//!
//! Durability: `sync = true` maps to `WriteOptions::set_sync(true)`, an fsync
//! of the write-ahead log before the write returns.

use std::path::Path;

use rocksdb::{DBCompressionType, Direction, IteratorMode, Options, ReadOptions, WriteOptions};

use crate::engine::{Engine, KvPair, WriteBatch, WriteOp};
use crate::error::{Result, StorageError};

/// An engine stored in a RocksDB database directory.
pub struct RocksEngine {
    db: rocksdb::DB,
}

impl std::fmt::Debug for RocksEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksEngine")
            .field("path", &self.db.path())
            .finish()
    }
}

fn io_err(e: rocksdb::Error) -> StorageError {
    StorageError::Io(e.into_string())
}

impl RocksEngine {
    /// Opens (creating if missing) the database at `path`.
    pub fn open(path: &Path) -> Result<RocksEngine> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        opts.increase_parallelism(i32::try_from(cores).unwrap_or(2));
        opts.set_compression_type(DBCompressionType::Lz4);
        opts.set_bottommost_compression_type(DBCompressionType::Lz4);
        opts.set_level_compaction_dynamic_level_bytes(true);
        // Smooth out fsync cost instead of flushing whole SST files at once.
        opts.set_bytes_per_sync(1 << 20);
        opts.set_keep_log_file_num(10);
        let db = rocksdb::DB::open(&opts, path).map_err(io_err)?;
        tracing::debug!(path = %path.display(), "opened rocksdb engine");
        Ok(RocksEngine { db })
    }
}

impl Engine for RocksEngine {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get(key).map_err(io_err)
    }

    fn scan<'a>(
        &'a self,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> Box<dyn Iterator<Item = Result<KvPair>> + 'a> {
        if let Some(end) = end
            && start >= end
        {
            return Box::new(std::iter::empty());
        }
        let mut read_opts = ReadOptions::default();
        if let Some(end) = end {
            read_opts.set_iterate_upper_bound(end.to_vec());
        }
        let iter = self
            .db
            .iterator_opt(IteratorMode::From(start, Direction::Forward), read_opts);
        Box::new(iter.map(|item| {
            item.map(|(k, v)| (k.into_vec(), v.into_vec()))
                .map_err(io_err)
        }))
    }

    fn write(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        let mut rb = rocksdb::WriteBatch::default();
        for op in batch.ops {
            match op {
                WriteOp::Put(k, v) => rb.put(k, v),
                WriteOp::Delete(k) => rb.delete(k),
            }
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        self.db.write_opt(rb, &wo).map_err(io_err)
    }
}
