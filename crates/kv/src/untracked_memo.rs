//! Untracked reads remembered for the rest of a snapshot.
//!
//! The SQL layer reads its schema — table descriptors, names, whether a
//! schema of the search path exists — with [`Txn::get_untracked`]
//! (crate::Txn::get_untracked), again for every statement of a
//! transaction: sysbench's read-only transaction read the same few keys
//! some forty times. A transaction reads at one timestamp, and a range it
//! has read is joined to its snapshot (the read barrier registers the
//! timestamp, so nothing later commits at or below it), and intents that
//! could commit below it are settled before the first read. So a key read
//! once at that timestamp reads the same every time after: the answer can
//! be kept. What the transaction itself writes is looked up before the
//! memo (its buffered writes win), so its own DDL is seen at once; a
//! savepoint rolled back uncovers the snapshot's value, which is what the
//! memo holds. [`Txn::renew`](crate::Txn::renew) starts a new snapshot
//! and a new transaction value with an empty memo.
//!
//! Only [`Txn::get_untracked`](crate::Txn::get_untracked) remembers:
//! tracked reads of rows (a scan through an index gets every row) would
//! only churn it. It holds at most [`MAX_ENTRIES`] keys, values of at most
//! [`MAX_VALUE`] bytes, and starts over when full.

use std::collections::HashMap;

use parking_lot::Mutex;

/// Most keys a memo holds before it starts over.
pub const MAX_ENTRIES: usize = 256;

/// Largest value a memo keeps.
pub const MAX_VALUE: usize = 64 * 1024;

/// One snapshot's remembered untracked reads (module docs).
#[derive(Default)]
pub(crate) struct UntrackedMemo {
    entries: Mutex<HashMap<Vec<u8>, Option<Vec<u8>>>>,
}

impl UntrackedMemo {
    /// The value read before for `key` (`Some(None)`: it was absent).
    pub(crate) fn get(&self, key: &[u8]) -> Option<Option<Vec<u8>>> {
        self.entries.lock().get(key).cloned()
    }

    /// Keeps what reading `key` gave.
    pub(crate) fn remember(&self, key: &[u8], value: &Option<Vec<u8>>) {
        if value.as_ref().is_some_and(|v| v.len() > MAX_VALUE) {
            return;
        }
        let mut entries = self.entries.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key.to_vec(), value.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_values_and_absence_within_bounds() {
        let memo = UntrackedMemo::default();
        assert_eq!(memo.get(b"a"), None);
        memo.remember(b"a", &Some(b"1".to_vec()));
        memo.remember(b"b", &None);
        assert_eq!(memo.get(b"a"), Some(Some(b"1".to_vec())));
        assert_eq!(memo.get(b"b"), Some(None));
        memo.remember(b"big", &Some(vec![0; MAX_VALUE + 1]));
        assert_eq!(memo.get(b"big"), None);
        for i in 0..MAX_ENTRIES {
            memo.remember(format!("k{i}").as_bytes(), &None);
        }
        assert!(memo.entries.lock().len() <= MAX_ENTRIES);
    }
}
