//! Resolving a committed transaction's intents after its client is
//! answered.
//!
//! A commit across ranges (`distributed.rs`) took three rounds of Raft one
//! after the other: prepare every range's writes, decide in the primary
//! range, resolve every range's intents. Only the first two are needed
//! before the client may hear "committed": the decision is the commit
//! point, and an intent whose record says committed is as good as a
//! version to everyone who meets it — a reader or writer waits for the
//! record, finds it decided and resolves the intent itself
//! (`Kv::resolve_intent`). So a small transaction's resolution is handed
//! to a background thread and the commit returns after the decision: an
//! `UPDATE` of an indexed column whose row and index entry live in two
//! ranges waits for two rounds, not three.
//!
//! Bounded: a transaction of more than [`MAX_KEYS`] keys, or one met with
//! [`QUEUE`] resolutions already waiting, is resolved before the commit
//! returns, as before. The thread holds only a weak handle to the store
//! between jobs; a resolution lost to a crash or a failure is left to the
//! readers, as one interrupted by a coordinator's death always was. A
//! record is queued to be marked finished (`Kv::finish_resolved`) only
//! once every intent pointing at it is resolved.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::clock::Timestamp;
use crate::store::Kv;

/// Keys a transaction may have for its resolution to be left to the
/// background thread.
pub const MAX_KEYS: usize = 64;

/// Resolutions that may wait for the background thread.
pub const QUEUE: usize = 1024;

/// One committed transaction's intents to resolve.
#[derive(Debug)]
pub(crate) struct Resolution {
    pub(crate) txn_id: u128,
    pub(crate) commit_ts: Timestamp,
    pub(crate) primary_key: Vec<u8>,
    pub(crate) keys: Vec<Vec<u8>>,
}

/// The queue to the background thread (started with the store).
#[derive(Debug, Default)]
pub(crate) struct Resolver {
    queue: Mutex<Option<SyncSender<Resolution>>>,
}

impl Resolver {
    /// Starts the thread serving `kv`'s queue.
    pub(crate) fn start(kv: &Arc<Kv>) {
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let weak = Arc::downgrade(kv);
        let spawned = std::thread::Builder::new()
            .name("resolver".to_string())
            .spawn(move || serve(&weak, &rx));
        match spawned {
            Ok(_) => *kv.resolver.queue.lock() = Some(tx),
            // Without the thread every commit resolves its own intents.
            Err(e) => tracing::warn!(error = %e, "no background intent resolver"),
        }
    }

    /// Hands `resolution` to the background thread; gives it back if it
    /// must be done now (too big, the queue full, no thread).
    pub(crate) fn submit(&self, resolution: Resolution) -> Option<Resolution> {
        if resolution.keys.len() > MAX_KEYS {
            return Some(resolution);
        }
        let queue = self.queue.lock();
        let Some(tx) = queue.as_ref() else {
            return Some(resolution);
        };
        match tx.try_send(resolution) {
            Ok(()) => None,
            Err(TrySendError::Full(r) | TrySendError::Disconnected(r)) => Some(r),
        }
    }
}

/// The background thread: resolves each queued transaction while the
/// store lives.
fn serve(kv: &Weak<Kv>, queue: &Receiver<Resolution>) {
    while let Ok(resolution) = queue.recv() {
        let Some(kv) = kv.upgrade() else {
            return;
        };
        kv.resolve_committed(resolution);
    }
}

impl Kv {
    /// Resolves a committed transaction's intents now; once all are, its
    /// record may be marked finished.
    pub(crate) fn resolve_committed(&self, resolution: Resolution) {
        let Resolution {
            txn_id,
            commit_ts,
            primary_key,
            keys,
        } = resolution;
        match self.resolve_keys(txn_id, Some(commit_ts), keys) {
            // Nothing points at the record any more: it may go.
            Ok(()) => self.queue_finished(&primary_key, txn_id),
            // Committed all the same: readers resolve what is left (and
            // the record stays, for them).
            Err(e) => tracing::debug!(error = %e, "intents left to readers"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use shoal_storage::{Engine, MemoryEngine};

    use super::*;
    use crate::intents::INTENT_PREFIX;

    fn intents(engine: &MemoryEngine) -> usize {
        engine
            .scan(&[INTENT_PREFIX], Some(&[INTENT_PREFIX + 1]))
            .count()
    }

    /// A small commit across ranges is visible the moment it returns,
    /// whoever reads it, and its intents are gone soon after.
    #[test]
    fn a_small_commit_across_ranges_is_resolved_after_it_returns() {
        let engine = Arc::new(MemoryEngine::new());
        let kv = Kv::open(engine.clone()).unwrap();
        kv.split_at(b"m").unwrap();
        for round in 0..20u32 {
            let value = round.to_be_bytes().to_vec();
            let txn = kv.begin().unwrap();
            txn.put(b"b".to_vec(), value.clone()).unwrap();
            txn.put(b"x".to_vec(), value.clone()).unwrap();
            txn.commit().unwrap();
            let reader = kv.begin().unwrap();
            assert_eq!(reader.get(b"x").unwrap(), Some(value.clone()));
            assert_eq!(reader.get(b"b").unwrap(), Some(value));
        }
        for _ in 0..500 {
            if intents(&engine) == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(intents(&engine), 0);
    }
}
