//! An in-memory engine for tests and for layers that should not need a disk.
//!
//! A `BTreeMap` behind a read-write lock. Batches take the write lock once, so
//! they are atomic with respect to readers; `sync` is meaningless (nothing
//! survives the process) and ignored.
//!
//! Scans do not hold the lock for the life of the iterator: a long table scan
//! would otherwise block every writer until the consumer finished. Instead the
//! iterator copies a chunk of up to `SCAN_CHUNK` (256) pairs per lock acquisition
//! and resumes after the last key it returned. The consequence (allowed by the
//! engine contract) is that a scan can observe writes that land between
//! chunks; it never returns a key twice or out of order.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;

use parking_lot::RwLock;

use crate::engine::{ColumnFamily, Engine, KvPair, ScanIter, WriteBatch, WriteOp};
use crate::error::Result;

/// Pairs copied per lock acquisition during a scan.
const SCAN_CHUNK: usize = 256;

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

/// An engine holding everything in `BTreeMap`s, one per column family.
#[derive(Debug, Default)]
pub struct MemoryEngine {
    /// Indexed by [`cf_index`]; one lock for all, so a batch is atomic across
    /// column families.
    data: RwLock<[Map; 2]>,
}

fn cf_index(cf: ColumnFamily) -> usize {
    match cf {
        ColumnFamily::Data => 0,
        ColumnFamily::Raft => 1,
    }
}

impl MemoryEngine {
    /// An empty engine.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes this engine hold exactly what `other` holds.
    pub fn copy_from(&self, other: &MemoryEngine) {
        let copy = other.data.read().clone();
        *self.data.write() = copy;
    }
}

impl Engine for MemoryEngine {
    fn get_cf(&self, cf: ColumnFamily, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.data.read()[cf_index(cf)].get(key).cloned())
    }

    fn scan_cf<'a>(&'a self, cf: ColumnFamily, start: &[u8], end: Option<&[u8]>) -> ScanIter<'a> {
        Box::new(ChunkedScan {
            engine: self,
            cf: cf_index(cf),
            next_from: Bound::Included(start.to_vec()),
            end: end.map(<[u8]>::to_vec),
            buffer: VecDeque::new(),
            exhausted: false,
        })
    }

    fn cursor_cf<'a>(
        &'a self,
        cf: ColumnFamily,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> Box<dyn crate::cursor::Cursor + 'a> {
        Box::new(crate::cursor::ScanCursor::new(self, cf, start, end))
    }

    fn write(&self, batch: WriteBatch, _sync: bool) -> Result<()> {
        let mut data = self.data.write();
        for op in batch.ops {
            match op {
                WriteOp::Put(cf, key, value) => {
                    data[cf_index(cf)].insert(key, value);
                }
                WriteOp::Delete(cf, key) => {
                    data[cf_index(cf)].remove(&key);
                }
                WriteOp::DeleteRange(cf, start, end) => {
                    let map = &mut data[cf_index(cf)];
                    if start < end {
                        let doomed: Vec<Vec<u8>> = map
                            .range::<[u8], _>((
                                Bound::Included(start.as_slice()),
                                Bound::Excluded(end.as_slice()),
                            ))
                            .map(|(k, _)| k.clone())
                            .collect();
                        for key in doomed {
                            map.remove(&key);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// A scan that refills a small buffer under the read lock, one chunk at a time.
struct ChunkedScan<'a> {
    engine: &'a MemoryEngine,
    cf: usize,
    /// Where the next chunk starts: the scan start, then just past the last
    /// key handed out.
    next_from: Bound<Vec<u8>>,
    end: Option<Vec<u8>>,
    buffer: VecDeque<KvPair>,
    exhausted: bool,
}

impl ChunkedScan<'_> {
    fn refill(&mut self) {
        let upper = match &self.end {
            Some(end) => Bound::Excluded(end.as_slice()),
            None => Bound::Unbounded,
        };
        let lower = match &self.next_from {
            Bound::Included(k) => Bound::Included(k.as_slice()),
            Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
            Bound::Unbounded => Bound::Unbounded,
        };
        // An empty or inverted interval: BTreeMap::range would panic on
        // start > end, so answer it here.
        if let (Bound::Included(lo) | Bound::Excluded(lo), Bound::Excluded(hi)) = (lower, upper)
            && lo >= hi
        {
            self.exhausted = true;
            return;
        }
        let data = self.engine.data.read();
        self.buffer.extend(
            data[self.cf]
                .range::<[u8], _>((lower, upper))
                .take(SCAN_CHUNK)
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        drop(data);
        match self.buffer.back() {
            Some((last, _)) if self.buffer.len() == SCAN_CHUNK => {
                self.next_from = Bound::Excluded(last.clone());
            }
            // A short chunk means the range is drained.
            _ => self.exhausted = true,
        }
    }
}

impl Iterator for ChunkedScan<'_> {
    type Item = Result<KvPair>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buffer.is_empty() && !self.exhausted {
            self.refill();
        }
        self.buffer.pop_front().map(Ok)
    }
}
