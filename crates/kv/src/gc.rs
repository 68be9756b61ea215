//! Garbage collection of old versions.
//!
//! Every update adds a version, so without GC history grows forever. GC
//! picks a **threshold** timestamp
//!
//! ```text
//! threshold = min(wall now − window, oldest active read_ts, latest published)
//! ```
//!
//! and relies on one fact: every current and future reader reads at a
//! timestamp `r >= threshold` (active ones by the `min`; future ones start
//! at `latest`, which only grows, and are registered under the lock the
//! threshold is computed under; see `store.rs`). Such a reader sees, per key,
//! either a version newer than the threshold, or the newest version at or
//! below it. So, for each user key, GC
//!
//! * keeps every version newer than the threshold;
//! * keeps the newest version at or below the threshold — unless it is a
//!   tombstone, in which case it is removed too (reading "nothing" and
//!   reading a tombstone are the same to a reader);
//! * removes every older version.
//!
//! Capping by `latest` matters: a commit in flight may already have written
//! versions stamped below the wall clock but not yet published, and the
//! newest *published* version of each key must survive for snapshots taken
//! at `latest`.
//!
//! Removal does not affect conflict checks: a removed version is at or below
//! every live read timestamp, so it could never have caused a conflict.
//!
//! GC streams over the version space range by range, with one user key of
//! state, and deletes through the range's replica in bounded batches, so it
//! runs in constant memory alongside normal traffic.

use std::time::Duration;

use shoal_storage::WriteBatch;

use crate::clock::Timestamp;
use crate::error::Result;
use crate::mvcc;
use crate::store::Kv;

/// Deletes per replicated batch.
const GC_BATCH: usize = 1024;

/// What one GC pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcStats {
    /// Version entries deleted.
    pub versions_removed: u64,
    /// Distinct user keys examined.
    pub keys_scanned: u64,
}

impl Kv {
    /// Removes versions no reader can see any more, keeping at least
    /// `gc_window` of history. See the module documentation.
    pub fn gc(&self, gc_window: std::time::Duration) -> Result<GcStats> {
        let threshold = self.gc_threshold(gc_window);
        let mut stats = GcStats::default();
        for (idx, range) in self.directory.ranges().iter().enumerate() {
            let replica = &self.replicas[idx];
            let (lower, upper) = mvcc::version_span(&range.start_key, range.end_key.as_deref());
            let mut batch = WriteBatch::new();
            // The user key being examined, and whether its newest version at
            // or below the threshold has been seen.
            let mut current: Option<Vec<u8>> = None;
            let mut kept_base = false;
            for item in replica.engine().scan(&lower, Some(&upper)) {
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
                    batch.delete(key);
                    stats.versions_removed += 1;
                    if batch.len() >= GC_BATCH {
                        replica.apply(std::mem::take(&mut batch))?;
                    }
                }
            }
            replica.apply(batch)?;
        }
        tracing::info!(
            threshold,
            versions_removed = stats.versions_removed,
            keys_scanned = stats.keys_scanned,
            "gc pass finished"
        );
        Ok(stats)
    }

    fn gc_threshold(&self, window: Duration) -> Timestamp {
        let window_us = u64::try_from(window.as_micros()).unwrap_or(u64::MAX);
        // Under the active-set lock: no transaction can begin (and pick a
        // snapshot below the threshold) while it is being computed.
        let active = self.active.lock();
        let oldest_active = active.keys().next().copied().unwrap_or(Timestamp::MAX);
        self.clock
            .wall_now()
            .saturating_sub(window_us)
            .min(oldest_active)
            .min(self.latest_ts())
    }
}
