//! [`Cursor`]: a positioned read over one column family that can jump.
//!
//! A scan ([`Engine::scan_cf`]) hands out owned pairs one after another.
//! That suits readers that want every pair, but not MVCC readers: a hot
//! row may carry thousands of versions, of which a snapshot wants one.
//! Walking them all, copying each key and value out of the engine, made
//! a range scan's cost grow with the history of its rows instead of with
//! the rows themselves.
//!
//! A cursor instead *lends* the pair it stands on (no copy until the
//! caller keeps it) and can [`seek`](Cursor::seek) forward, so a reader
//! steps over what it does not want in one jump: the rest of a key's
//! versions, or the versions newer than its snapshot.
//!
//! # Contract
//!
//! A cursor covers `[start, end)` of one column family, fixed when it is
//! made. [`Cursor::entry`] is the pair at the position, or `None` once the
//! cursor has run past `end` (or failed: [`Cursor::status`] then says
//! why). [`Cursor::seek`] moves to the first key at or after its argument,
//! clamped to `start`; [`Cursor::next`] moves one key on. Like a scan, a
//! cursor is not required to be a point-in-time snapshot; MVCC never
//! overwrites a version key, so it needs none.
//!
//! [`ScanCursor`] makes a cursor of any engine's scans (a seek starts a
//! new scan); RocksDB implements it on its own iterator. Both are held to
//! the contract by the engine conformance tests (`tests/engine.rs`).

use crate::engine::{ColumnFamily, Engine, KvPair, ScanIter};
use crate::error::{Result, StorageError};

/// A positioned, forward-seekable read. See the module documentation.
pub trait Cursor {
    /// Moves to the first key at or after `key` (and at or after the
    /// cursor's start).
    fn seek(&mut self, key: &[u8]);

    /// Moves to the next key. Past the end it stays there.
    fn next(&mut self);

    /// The pair at the position, or `None` past the end or after an error.
    fn entry(&self) -> Option<(&[u8], &[u8])>;

    /// The error that stopped the cursor, if one did.
    fn status(&self) -> Result<()>;
}

/// A [`Cursor`] over any engine's scans: every seek starts a new scan.
pub struct ScanCursor<'a> {
    engine: &'a dyn Engine,
    cf: ColumnFamily,
    start: Vec<u8>,
    end: Option<Vec<u8>>,
    scan: ScanIter<'a>,
    current: Option<KvPair>,
    error: Option<StorageError>,
}

impl<'a> ScanCursor<'a> {
    /// A cursor over `[start, end)` of `cf`, standing on its first key.
    pub fn new(engine: &'a dyn Engine, cf: ColumnFamily, start: &[u8], end: Option<&[u8]>) -> Self {
        let mut cursor = Self {
            engine,
            cf,
            start: start.to_vec(),
            end: end.map(<[u8]>::to_vec),
            scan: Box::new(std::iter::empty()),
            current: None,
            error: None,
        };
        cursor.seek(start);
        cursor
    }
}

impl Cursor for ScanCursor<'_> {
    fn seek(&mut self, key: &[u8]) {
        if self.error.is_some() {
            return;
        }
        let from = key.max(self.start.as_slice());
        self.scan = self.engine.scan_cf(self.cf, from, self.end.as_deref());
        self.next();
    }

    fn next(&mut self) {
        if self.error.is_some() {
            return;
        }
        self.current = match self.scan.next() {
            Some(Ok(pair)) => Some(pair),
            Some(Err(e)) => {
                self.error = Some(e);
                None
            }
            None => None,
        };
    }

    fn entry(&self) -> Option<(&[u8], &[u8])> {
        self.current
            .as_ref()
            .map(|(key, value)| (key.as_slice(), value.as_slice()))
    }

    fn status(&self) -> Result<()> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}
