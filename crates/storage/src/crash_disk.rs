//! A simulated disk that loses what was not synced when its machine
//! crashes: the engine of the deterministic simulations.
//!
//! A real store (RocksDB) makes a write durable when it, or any write after
//! it, is written with `sync`: the write-ahead log is one sequential file,
//! so syncing it syncs everything before. A crash loses some suffix of the
//! writes since the last sync — nothing, all of them, or anything in
//! between — but never a write while keeping a later one.
//!
//! [`CrashDisk`] models exactly that. It answers reads from the state
//! every write has reached (`live`), and keeps beside it the state the
//! synced writes have reached (`durable`) plus the writes since the last
//! sync, in order. [`CrashDisk::crash`] keeps a prefix of those — as many
//! as the caller says, which a simulation draws from its seed — drops the
//! rest, and makes the live state the durable one. A layer that forgets
//! to sync something it relies on after a restart (a Raft vote, a log
//! entry it acknowledged) loses it here, and the simulation's checks see
//! the consequences.
//!
//! Each synced write replays the pending writes into the durable copy, so
//! the disk costs twice the memory and writes of a [`MemoryEngine`]; it is
//! for tests.

use parking_lot::Mutex;

use crate::engine::{ColumnFamily, Engine, ScanIter, WriteBatch};
use crate::error::Result;
use crate::memory::MemoryEngine;

/// An engine that loses unsynced writes on [`CrashDisk::crash`] (module
/// docs).
#[derive(Debug, Default)]
pub struct CrashDisk {
    live: MemoryEngine,
    /// The durable state and the writes since the last sync; one lock, so
    /// that the live state and the pending list see writes in one order.
    disk: Mutex<Durable>,
}

#[derive(Debug, Default)]
struct Durable {
    synced: MemoryEngine,
    unsynced: Vec<WriteBatch>,
}

impl CrashDisk {
    /// An empty disk.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes since the last sync: what a crash may lose.
    pub fn unsynced(&self) -> usize {
        self.disk.lock().unsynced.len()
    }

    /// The machine crashes: the first `keep` writes since the last sync
    /// survive (all of them if there are fewer), the rest are lost, and
    /// reads see only what survived.
    pub fn crash(&self, keep: usize) -> Result<()> {
        let mut disk = self.disk.lock();
        let pending = std::mem::take(&mut disk.unsynced);
        for batch in pending.into_iter().take(keep) {
            disk.synced.write(batch, true)?;
        }
        self.live.copy_from(&disk.synced);
        Ok(())
    }
}

impl Engine for CrashDisk {
    fn get_cf(&self, cf: ColumnFamily, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.live.get_cf(cf, key)
    }

    fn scan_cf<'a>(&'a self, cf: ColumnFamily, start: &[u8], end: Option<&[u8]>) -> ScanIter<'a> {
        self.live.scan_cf(cf, start, end)
    }

    fn cursor_cf<'a>(
        &'a self,
        cf: ColumnFamily,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> Box<dyn crate::cursor::Cursor + 'a> {
        self.live.cursor_cf(cf, start, end)
    }

    fn write(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        let mut disk = self.disk.lock();
        self.live.write(batch.clone(), false)?;
        if sync {
            for pending in std::mem::take(&mut disk.unsynced) {
                disk.synced.write(pending, true)?;
            }
            disk.synced.write(batch, true)
        } else {
            disk.unsynced.push(batch);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str) -> WriteBatch {
        let mut batch = WriteBatch::default();
        batch.put(key.as_bytes(), b"v");
        batch
    }

    fn keys(disk: &CrashDisk) -> Vec<String> {
        disk.scan(b"", None)
            .map(|pair| String::from_utf8(pair.unwrap().0).unwrap())
            .collect()
    }

    #[test]
    fn a_crash_keeps_synced_writes_and_a_prefix_of_the_rest() {
        let disk = CrashDisk::new();
        disk.write(put("a"), false).unwrap();
        disk.write(put("b"), true).unwrap(); // syncs a too
        disk.write(put("c"), false).unwrap();
        disk.write(put("d"), false).unwrap();
        disk.write(put("e"), false).unwrap();
        assert_eq!(keys(&disk), ["a", "b", "c", "d", "e"]);
        assert_eq!(disk.unsynced(), 3);
        disk.crash(1).unwrap();
        assert_eq!(keys(&disk), ["a", "b", "c"]);
        assert_eq!(disk.unsynced(), 0);
        disk.write(put("f"), false).unwrap();
        disk.crash(0).unwrap();
        assert_eq!(keys(&disk), ["a", "b", "c"]);
    }
}
