//! The RocksDB engine: the durable engine used by a real node.
//!
//! One RocksDB instance with a column family per [`ColumnFamily`]: data in
//! `default`, Raft state in `raft`; a batch spans both with one WAL record,
//! so a Raft log append and the hard state land atomically. Options favour the MVCC
//! workload above: keys share long prefixes (table, index, user key) and
//! versions are appended rather than overwritten, so LZ4 block compression
//! and dynamic level sizing pay off. The data family's prefix extractor
//! maps a version key to its user key's prefix ([`versioned_prefix`]), so
//! its bloom filters hold version prefixes as well as whole keys: the seek
//! of a point read ([`Engine::scan_versions`]) skips every file without a
//! version of the key, however many levels the data has grown. Ordinary
//! scans ask for total order, so they never depend on the extractor.
//!
//! Scans use an iterator with `iterate_upper_bound` set, so RocksDB stops at
//! the range end itself instead of us reading (and decompressing) the next
//! block only to throw it away. A RocksDB iterator pins an implicit snapshot,
//! which is stronger than the engine contract requires.
//!
//! Durability: `sync = true` means the write-ahead log is fsynced (through
//! `SyncWAL`, see [`Engine::write`](crate::Engine::write) below) before the
//! write returns.
//!
//! A node under test may hand the engine [`DiskFaults`] (slow or failing
//! writes, `disk_faults.rs`); every write batch meets them first.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{
    ColumnFamilyDescriptor, DBCompressionType, Direction, IteratorMode, Options, ReadOptions,
    WriteOptions,
};

use crate::cursor::Cursor;
use crate::disk_faults::DiskFaults;
use crate::engine::{ColumnFamily, Engine, ScanIter, WriteBatch, WriteOp, versioned_prefix};
use crate::error::{Result, StorageError};

/// An engine stored in a RocksDB database directory.
pub struct RocksEngine {
    db: rocksdb::DB,
    /// Injected disk faults (`disk_faults.rs`); `None` on a node without
    /// fault injection.
    faults: Option<Arc<DiskFaults>>,
}

impl std::fmt::Debug for RocksEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksEngine")
            .field("path", &self.db.path())
            .finish()
    }
}

/// The block cache shared by a store's column families, unless the opener
/// chooses ([`RocksEngine::open_with_cache`]).
pub const DEFAULT_BLOCK_CACHE_BYTES: usize = 256 << 20;

fn io_err(e: rocksdb::Error) -> StorageError {
    StorageError::Io(e.into_string())
}

impl RocksEngine {
    /// Opens (creating if missing) the database at `path`, with the
    /// default block cache.
    pub fn open(path: &Path) -> Result<RocksEngine> {
        Self::open_with_cache(path, DEFAULT_BLOCK_CACHE_BYTES)
    }

    /// Opens (creating if missing) the database at `path`; its block cache
    /// holds at most `cache_bytes`.
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<RocksEngine> {
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
        opts.create_missing_column_families(true);
        // One block cache for every family, bounded: reads of a table that
        // outgrows the default (small) cache would otherwise decompress the
        // same blocks again and again. Index and filter blocks live in it
        // too, so the bound covers them.
        let cache = rocksdb::Cache::new_lru_cache(cache_bytes);
        let families = ColumnFamily::ALL.iter().map(|cf| {
            let mut cf_opts = Options::default();
            cf_opts.set_compression_type(DBCompressionType::Lz4);
            cf_opts.set_bottommost_compression_type(DBCompressionType::Lz4);
            cf_opts.set_level_compaction_dynamic_level_bytes(true);
            let mut table = rocksdb::BlockBasedOptions::default();
            table.set_block_cache(&cache);
            // Whole-key bloom filters: a point lookup of an absent key (the
            // write intent every MVCC read checks for, usually absent)
            // skips the files that cannot hold it instead of searching
            // every level.
            table.set_bloom_filter(10.0, false);
            table.set_whole_key_filtering(true);
            table.set_cache_index_and_filter_blocks(true);
            table.set_pin_l0_filter_and_index_blocks_in_cache(true);
            cf_opts.set_block_based_table_factory(&table);
            if *cf == ColumnFamily::Data {
                // A bloom filter over the memtable too: the intent lookup
                // of every MVCC read, usually of an absent key, skips the
                // memtable's skip list (a whole-key filter), and so does a
                // version seek whose key has no version in the memtable (a
                // prefix filter; the seek keeps to one prefix). Without
                // it, every read searched the memtable, a tenth of a point
                // select's CPU. 5% of the memtable's size.
                cf_opts.set_memtable_prefix_bloom_ratio(0.05);
                cf_opts.set_memtable_whole_key_filtering(true);
                cf_opts.set_prefix_extractor(rocksdb::SliceTransform::create(
                    "shoal.versioned_prefix",
                    version_prefix_or_key,
                    Some(is_versioned),
                ));
            }
            ColumnFamilyDescriptor::new(cf.name(), cf_opts)
        });
        let db = rocksdb::DB::open_cf_descriptors(&opts, path, families).map_err(io_err)?;
        tracing::debug!(path = %path.display(), "opened rocksdb engine");
        Ok(RocksEngine { db, faults: None })
    }
}

/// The prefix extractor: a versioned key's prefix (others are outside its
/// domain and never transformed).
fn version_prefix_or_key(key: &[u8]) -> &[u8] {
    versioned_prefix(key).unwrap_or(key)
}

fn is_versioned(key: &[u8]) -> bool {
    versioned_prefix(key).is_some()
}

impl RocksEngine {
    /// Every write meets `faults` first (`disk_faults.rs`).
    pub fn with_disk_faults(mut self, faults: Arc<DiskFaults>) -> RocksEngine {
        self.faults = Some(faults);
        self
    }

    /// Writes every column family's memtable out to SST files (and waits),
    /// so later reads go through files and the block cache, as they do on
    /// a store that has been running a while (benchmarks use it).
    pub fn flush(&self) -> Result<()> {
        for cf in ColumnFamily::ALL {
            self.db.flush_cf(self.handle(cf)?).map_err(io_err)?;
        }
        Ok(())
    }

    /// An iterator over `cf` from `start`, stopping before `end`.
    fn iterate<'a>(
        &'a self,
        cf: ColumnFamily,
        start: &[u8],
        end: Option<&[u8]>,
        one_prefix: bool,
    ) -> ScanIter<'a> {
        if let Some(end) = end
            && start >= end
        {
            return Box::new(std::iter::empty());
        }
        let handle = match self.handle(cf) {
            Ok(handle) => handle,
            Err(e) => return Box::new(std::iter::once(Err(e))),
        };
        let mut read_opts = ReadOptions::default();
        if let Some(end) = end {
            read_opts.set_iterate_upper_bound(end.to_vec());
        }
        if one_prefix {
            read_opts.set_prefix_same_as_start(true);
        } else {
            read_opts.set_total_order_seek(true);
        }
        let iter = self.db.iterator_cf_opt(
            handle,
            read_opts,
            IteratorMode::From(start, Direction::Forward),
        );
        Box::new(iter.map(|item| {
            item.map(|(k, v)| (k.into_vec(), v.into_vec()))
                .map_err(io_err)
        }))
    }

    /// The handle of `cf`; every family is created at open, so a missing one
    /// means the database was tampered with.
    fn handle(&self, cf: ColumnFamily) -> Result<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(cf.name())
            .ok_or_else(|| StorageError::Corrupt(format!("column family {} is missing", cf.name())))
    }
}

/// A [`Cursor`] on RocksDB's own iterator: it lends the pair it stands
/// on, and a seek is one iterator seek.
struct RocksCursor<'a> {
    iter: rocksdb::DBRawIteratorWithThreadMode<'a, rocksdb::DB>,
}

impl Cursor for RocksCursor<'_> {
    fn seek(&mut self, key: &[u8]) {
        self.iter.seek(key);
    }

    fn next(&mut self) {
        self.iter.next();
    }

    fn entry(&self) -> Option<(&[u8], &[u8])> {
        self.iter.item()
    }

    fn status(&self) -> Result<()> {
        self.iter.status().map_err(io_err)
    }
}

/// The cursor of a read that could not start: no entries, its error.
struct FailedCursor(StorageError);

impl Cursor for FailedCursor {
    fn seek(&mut self, _key: &[u8]) {}

    fn next(&mut self) {}

    fn entry(&self) -> Option<(&[u8], &[u8])> {
        None
    }

    fn status(&self) -> Result<()> {
        Err(self.0.clone())
    }
}

impl Engine for RocksEngine {
    fn get_cf(&self, cf: ColumnFamily, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get_cf(self.handle(cf)?, key).map_err(io_err)
    }

    fn scan_cf<'a>(&'a self, cf: ColumnFamily, start: &[u8], end: Option<&[u8]>) -> ScanIter<'a> {
        self.iterate(cf, start, end, false)
    }

    fn scan_versions<'a>(&'a self, start: &[u8], end: Option<&[u8]>) -> ScanIter<'a> {
        // Only a versioned key names a prefix the filters know.
        let one_prefix = versioned_prefix(start).is_some();
        self.iterate(ColumnFamily::Data, start, end, one_prefix)
    }

    fn cursor_cf<'a>(
        &'a self,
        cf: ColumnFamily,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> Box<dyn Cursor + 'a> {
        let handle = match self.handle(cf) {
            Ok(handle) => handle,
            Err(e) => return Box::new(FailedCursor(e)),
        };
        let mut read_opts = ReadOptions::default();
        // Both bounds go to RocksDB, so a seek never lands before `start`
        // and the iterator stops at `end` without a comparison here.
        read_opts.set_iterate_lower_bound(start.to_vec());
        if let Some(end) = end {
            read_opts.set_iterate_upper_bound(end.to_vec());
        }
        read_opts.set_total_order_seek(true);
        let mut iter = self.db.raw_iterator_cf_opt(handle, read_opts);
        iter.seek(start);
        Box::new(RocksCursor { iter })
    }

    fn write(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        if let Some(faults) = &self.faults {
            faults.before_write()?;
        }
        let mut rb = rocksdb::WriteBatch::default();
        for op in batch.ops {
            match op {
                WriteOp::Put(cf, k, v) => rb.put_cf(self.handle(cf)?, k, v),
                WriteOp::Delete(cf, k) => rb.delete_cf(self.handle(cf)?, k),
                WriteOp::DeleteRange(cf, start, end) => {
                    if start < end {
                        rb.delete_range_cf(self.handle(cf)?, start, end);
                    }
                }
            }
        }
        // A synced write is an ordinary write followed by a sync of the
        // WAL, not `WriteOptions::sync`: RocksDB holds every other writer
        // in the WAL queue while a synced write group fsyncs, whereas
        // `SyncWAL` lets them append meanwhile. The apply thread's unsynced
        // writes then never wait for the Raft thread's fsync. The caller
        // returns only after the sync either way, so what it acknowledges
        // is durable; readers may see the write a moment before it is —
        // harmless, since nothing is acknowledged on the strength of it.
        self.db
            .write_opt(rb, &WriteOptions::default())
            .map_err(io_err)?;
        if sync {
            self.db.flush_wal(true).map_err(io_err)?;
        }
        Ok(())
    }
}
