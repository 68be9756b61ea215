//! The commit path: conflict check, timestamp, durable write, publish.
//!
//! All four steps run under one node-wide commit mutex:
//!
//! 1. **Conflict check (first committer wins).** For every buffered key, if
//!    its newest committed version is newer than the transaction's read
//!    timestamp, someone else committed a write to it after our snapshot:
//!    fail with [`KvError::WriteConflict`]. This is snapshot isolation's
//!    write rule, PostgreSQL's REPEATABLE READ behaviour. Write skew remains
//!    possible, as in PostgreSQL REPEATABLE READ.
//! 2. **Timestamp.** The hybrid clock's next value; above every earlier
//!    commit on this node, including before a restart.
//! 3. **Write.** Every buffered write becomes a version at the commit
//!    timestamp; the batch also carries the timestamp high-water mark, so
//!    the mark is durable exactly when the commit is. The batch goes through
//!    the range's replica ([`LocalReplica::apply`]), the future Raft
//!    proposal point, which returns once it is durable.
//! 4. **Publish.** Store the commit timestamp as `latest`. New snapshots
//!    start there; they see the whole commit, and none saw a part of it.
//!
//! Holding the mutex through the write makes commits strictly ordered by
//! timestamp, which step 4 relies on (publishing `t` implies everything up
//! to `t` is durable). It also serializes fsyncs; group commit is the known
//! remedy when this becomes the bottleneck.
//!
//! Cross-range atomicity: writes are grouped per range and applied range by
//! range. With one range (today) that is a single atomic batch. Once the
//! directory can hold several ranges, a commit spanning them needs a
//! transaction record and two-phase intents; that arrives with splits.
//!
//! [`LocalReplica::apply`]: shoal_replication::LocalReplica::apply

use std::collections::BTreeMap;

use shoal_storage::WriteBatch;

use crate::clock::Timestamp;
use crate::error::{KvError, Result, printable_key};
use crate::mvcc;
use crate::store::Kv;

impl Kv {
    /// Commits `writes` (non-empty) read at `read_ts`; returns the commit
    /// timestamp.
    pub(crate) fn commit_writes(
        &self,
        read_ts: Timestamp,
        writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    ) -> Result<Timestamp> {
        let _serialized = self.commit_lock.lock();

        for key in writes.keys() {
            if let Some(ts) = mvcc::newest_version_ts(self.engine_for(key), key)?
                && ts > read_ts
            {
                tracing::debug!(
                    key = %printable_key(key),
                    read_ts,
                    conflicting_ts = ts,
                    "write conflict"
                );
                return Err(KvError::WriteConflict {
                    key: printable_key(key),
                });
            }
        }

        let commit_ts = self.clock.next();
        let mut batches: BTreeMap<usize, WriteBatch> = BTreeMap::new();
        let n_writes = writes.len();
        for (key, value) in writes {
            let batch = batches.entry(self.replica_index(&key)).or_default();
            batch.put(
                mvcc::version_key(&key, commit_ts),
                mvcc::encode_value(value.as_deref()),
            );
        }
        for (range_idx, mut batch) in batches {
            batch.put(mvcc::TS_MARK_KEY, commit_ts.to_be_bytes());
            self.replicas[range_idx].apply(batch)?;
        }

        self.latest
            .store(commit_ts, std::sync::atomic::Ordering::Release);
        tracing::debug!(read_ts, commit_ts, writes = n_writes, "committed");
        Ok(commit_ts)
    }
}
