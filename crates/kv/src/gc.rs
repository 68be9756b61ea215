//! Garbage collection of old versions.
//!
//! Every update adds a version, so without GC history grows forever. GC
//! picks a **threshold** timestamp
//!
//! ```text
//! threshold = min(wall now − window, oldest local active read_ts, range's last commit)
//! ```
//!
//! and relies on one fact: every reader that may still read reads at a
//! timestamp `r >= threshold`. Local readers are bounded by the `min`;
//! future ones read at their clock or above `last_commit`, both of which
//! only grow; readers on *other*
//! nodes are not known here, so the threshold is replicated with the
//! deletions and a reader below it fails with "snapshot too old" instead of
//! reading a collected history (`store.rs`, `check_snapshot`). With the
//! default window of hours, only transactions open that long are affected.
//!
//! A reader at `r >= threshold` sees, per key, either a version newer than
//! the threshold, or the newest version at or below it. So, for each user
//! key, GC
//!
//! * keeps every version newer than the threshold;
//! * keeps the newest version at or below the threshold — unless it is a
//!   tombstone, in which case it is removed too (reading "nothing" and
//!   reading a tombstone are the same to a reader);
//! * removes every older version.
//!
//! Removal does not affect conflict checks: a removed version is at or below
//! every live read timestamp, so it could never have caused a conflict.
//!
//! The proposing node finds the garbage by streaming over its own replica
//! (one user key of state) and proposes the version keys to delete in
//! bounded [`Command::Gc`] batches. Every replica deletes exactly those
//! keys, so replicas stay identical; versions at or below the threshold are
//! immutable, so the list is valid whenever it applies.

use std::time::{Duration, Instant};

use crate::clock::Timestamp;
use crate::command::{Command, Reply};
use crate::error::Result;
use crate::keys;
use crate::mvcc;
use crate::store::Kv;

/// Versions removed per proposed GC command.
const GC_BATCH: usize = 1024;

/// What one GC pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcStats {
    /// Versions deleted.
    pub versions_removed: u64,
    /// Distinct user keys examined.
    pub keys_scanned: u64,
}

impl Kv {
    /// Runs one GC pass over every range this node leads (other replicas
    /// would propose the same deletions again), keeping history for
    /// `gc_window`.
    pub fn gc(&self, gc_window: std::time::Duration) -> Result<GcStats> {
        let mut stats = GcStats::default();
        // Records of transactions this node committed and resolved since
        // the last pass become finished, to be dropped below a later
        // threshold.
        self.finish_resolved();
        let me = self.raft.node_id();
        for descriptor in self.local_ranges() {
            let range = descriptor.range_id;
            if self.raft.leader(range) != Some(me) {
                continue;
            }
            let threshold = self.gc_threshold(range, gc_window)?;
            let (lower, upper) =
                mvcc::version_span(&descriptor.start_key, descriptor.end_key.as_deref());
            let mut doomed: Vec<Vec<u8>> = Vec::new();
            let mut current: Option<Vec<u8>> = None;
            let mut kept_base = false;
            for item in self.engine.scan(&lower, Some(&upper)) {
                let (key, stored) = item?;
                let (user_key, ts) = mvcc::decode_version_key(&key)?;
                if current.as_deref() != Some(user_key.as_slice()) {
                    current = Some(user_key);
                    kept_base = false;
                    stats.keys_scanned += 1;
                }
                if ts > threshold {
                    continue;
                }
                let remove = if kept_base {
                    true
                } else {
                    kept_base = true;
                    mvcc::decode_value(&stored)?.is_none()
                };
                if remove {
                    doomed.push(key);
                    if doomed.len() >= GC_BATCH {
                        stats.versions_removed +=
                            self.propose_gc(range, threshold, std::mem::take(&mut doomed))?;
                    }
                }
            }
            // Commit records, prepare markers, and aborted and finished
            // transaction records older than the threshold: no retry of
            // their commands can still be in flight. (A missing record
            // reads as aborted, so dropping an aborted one changes
            // nothing; a finished one has no intent left to ask for it. A
            // committed record stays: an intent of it may still be
            // unresolved in some range, and without the record it would
            // read as aborted.)
            let prefix = keys::range_local_prefix(range);
            let end = mvcc::prefix_end(&prefix).unwrap_or_default();
            let mut records = Vec::new();
            for item in self.engine.scan(&prefix, Some(&end)) {
                let (key, value) = item?;
                let old = match key.get(prefix.len()) {
                    Some(b't' | b'p') => <[u8; 8]>::try_from(value.as_slice())
                        .is_ok_and(|ts| u64::from_be_bytes(ts) <= threshold),
                    Some(b'x') => matches!(
                        crate::intents::TxnStatus::decode(&value)?,
                        crate::intents::TxnStatus::Aborted(at)
                            | crate::intents::TxnStatus::Finished(at) if at <= threshold
                    ),
                    _ => false,
                };
                if old {
                    records.push(key);
                }
            }
            if !doomed.is_empty() {
                stats.versions_removed += self.propose_gc(range, threshold, doomed)?;
            }
            for chunk in records.chunks(GC_BATCH) {
                self.propose_gc(range, threshold, chunk.to_vec())?;
            }
            tracing::info!(
                range,
                threshold,
                versions_removed = stats.versions_removed,
                keys_scanned = stats.keys_scanned,
                "gc pass finished"
            );
        }
        Ok(stats)
    }

    fn propose_gc(&self, range: u64, threshold: Timestamp, keys: Vec<Vec<u8>>) -> Result<u64> {
        let command = Command::Gc { threshold, keys };
        // Idempotent: deleting the same versions again changes nothing.
        match self.propose_until(range, &command, Instant::now() + self.timeout)? {
            Reply::Collected(n) => Ok(n),
            other => Err(other.unexpected("a collection")),
        }
    }

    fn gc_threshold(&self, range: u64, window: Duration) -> Result<Timestamp> {
        let window_us = u64::try_from(window.as_micros()).unwrap_or(u64::MAX);
        let active = self.active.lock();
        let oldest_active = active.keys().next().copied().unwrap_or(Timestamp::MAX);
        drop(active);
        Ok(self
            .clock
            .wall_now()
            .saturating_sub(window_us)
            .min(oldest_active)
            .min(self.last_commit(range)?))
    }
}
