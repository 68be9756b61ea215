//! Untracked reads answered from memory while their range is unchanged.
//!
//! Every SQL statement reads its table's descriptor (and often a name or
//! two) with [`Txn::get_untracked`](crate::Txn::get_untracked) in a fresh
//! transaction: for a prepared point select that read cost as much as the
//! row's. Schema changes are rare, so this node keeps what those reads
//! found, and answers the next one from memory when it can prove the
//! engine would answer the same.
//!
//! The proof is the range's *generation* (`apply.rs`, *Generations*): a
//! number that changes, after the change is in the engine, whenever
//! anything changes the range's data here. An entry remembers, for one
//! key, the range and generation it was read under and the key's newest
//! version (timestamp and value; no version at all is an entry too). It
//! is kept only if the key had no intent left once its intents were
//! settled, and if the newest version was at or below the read timestamp
//! (so it was the version read). A later read of the key uses it when,
//! after the read barrier that joins the range to its snapshot, the key
//! routes to the same range, the range's generation is the remembered
//! one, and the newest version is at or below the read timestamp: the
//! data is then what it was, with no intent on the key and no version
//! above the entry's — so the entry's value is what the engine holds
//! visible at the read timestamp, with nothing in its uncertainty window.
//! The generation is taken *before* the engine is read, so a write that
//! lands during the read leaves an entry that never matches.
//!
//! Bounded: at most [`MAX_ENTRIES`] keys, values of at most
//! [`MAX_VALUE`] bytes; a full cache starts over.

use std::collections::HashMap;

use parking_lot::RwLock;
use shoal_replication::RangeId;

use crate::clock::Timestamp;

/// Most keys the cache holds before it starts over.
pub const MAX_ENTRIES: usize = 4096;

/// Largest value the cache keeps.
pub const MAX_VALUE: usize = 64 * 1024;

/// One key's newest version, and the range state it was read in.
#[derive(Debug, Clone)]
struct Entry {
    range: RangeId,
    generation: u64,
    /// The newest version's timestamp (0: the key has none).
    newest: Timestamp,
    value: Option<Vec<u8>>,
}

/// This node's remembered untracked reads (module docs).
#[derive(Debug, Default)]
pub(crate) struct ReadCache {
    entries: RwLock<HashMap<Vec<u8>, Entry>>,
}

impl ReadCache {
    /// The value of `key` visible at `read_ts`, if an entry proves it:
    /// read in `range` at `generation` (the current one), with its newest
    /// version at or below `read_ts`.
    pub(crate) fn get(
        &self,
        key: &[u8],
        range: RangeId,
        generation: u64,
        read_ts: Timestamp,
    ) -> Option<Option<Vec<u8>>> {
        let entries = self.entries.read();
        let entry = entries.get(key)?;
        (entry.range == range && entry.generation == generation && entry.newest <= read_ts)
            .then(|| entry.value.clone())
    }

    /// Remembers that `key`, in `range` at `generation`, had no intent and
    /// `value` as its newest version, at `newest` (0: none).
    pub(crate) fn remember(
        &self,
        key: &[u8],
        (range, generation): (RangeId, u64),
        newest: Timestamp,
        value: &Option<Vec<u8>>,
    ) {
        if value.as_ref().is_some_and(|v| v.len() > MAX_VALUE) {
            return;
        }
        let entry = Entry {
            range,
            generation,
            newest,
            value: value.clone(),
        };
        let mut entries = self.entries.write();
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(key) {
            entries.clear();
        }
        entries.insert(key.to_vec(), entry);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use shoal_storage::MemoryEngine;

    use super::*;
    use crate::Kv;

    /// Untracked reads answered from the cache see every commit, delete
    /// and split, and an older snapshot still reads its own past.
    #[test]
    fn cached_untracked_reads_follow_every_change_of_their_range() {
        let kv = Kv::open(Arc::new(MemoryEngine::new())).unwrap();
        let write = |value: Option<&[u8]>| {
            let txn = kv.begin().unwrap();
            match value {
                Some(v) => txn.put(b"k".to_vec(), v.to_vec()).unwrap(),
                None => txn.delete(b"k".to_vec()).unwrap(),
            }
            txn.commit().unwrap();
        };
        let read = || kv.begin().unwrap().get_untracked(b"k").unwrap();
        let cached = || kv.read_cache.entries.read().contains_key(b"k".as_slice());
        assert_eq!(read(), None);
        assert!(cached());
        assert_eq!(read(), None);
        let before = kv.begin().unwrap();
        write(Some(b"one"));
        assert_eq!(read(), Some(b"one".to_vec()));
        assert_eq!(read(), Some(b"one".to_vec()));
        assert_eq!(before.get_untracked(b"k").unwrap(), None);
        write(Some(b"two"));
        assert_eq!(read(), Some(b"two".to_vec()));
        kv.split_at(b"j").unwrap();
        assert_eq!(read(), Some(b"two".to_vec()));
        write(Some(b"three"));
        assert_eq!(read(), Some(b"three".to_vec()));
        assert_eq!(read(), Some(b"three".to_vec()));
        write(None);
        assert_eq!(read(), None);
        assert_eq!(read(), None);
        // A write to another key of the range is a change too.
        let other = kv.begin().unwrap();
        other.put(b"m".to_vec(), b"x".to_vec()).unwrap();
        other.commit().unwrap();
        write(Some(b"four"));
        assert_eq!(read(), Some(b"four".to_vec()));
    }

    #[test]
    fn an_entry_answers_only_its_range_generation_and_later_snapshots() {
        let cache = ReadCache::default();
        assert_eq!(cache.get(b"k", 1, 7, 100), None);
        cache.remember(b"k", (1, 7), 50, &Some(b"v".to_vec()));
        assert_eq!(cache.get(b"k", 1, 7, 50), Some(Some(b"v".to_vec())));
        assert_eq!(cache.get(b"k", 1, 7, 900), Some(Some(b"v".to_vec())));
        // Below the newest version, another range, another generation.
        assert_eq!(cache.get(b"k", 1, 7, 49), None);
        assert_eq!(cache.get(b"k", 2, 7, 100), None);
        assert_eq!(cache.get(b"k", 1, 8, 100), None);
        // A key with no version is remembered as absent.
        cache.remember(b"gone", (1, 7), 0, &None);
        assert_eq!(cache.get(b"gone", 1, 7, 1), Some(None));
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = ReadCache::default();
        cache.remember(b"big", (1, 1), 1, &Some(vec![0; MAX_VALUE + 1]));
        assert_eq!(cache.get(b"big", 1, 1, 1), None);
        for i in 0..=MAX_ENTRIES {
            cache.remember(&i.to_be_bytes(), (1, 1), 1, &None);
        }
        assert!(cache.entries.read().len() <= MAX_ENTRIES);
    }
}
