//! [`KvStateMachine`]: what a committed KV command does to a replica.
//!
//! Every replica of a range runs the same commands in the same order, so
//! everything here is a function of the command and the replica's data:
//!
//! * **Commit** — the write rule of snapshot isolation, decided at apply
//!   time: if any written key has a version newer than the transaction's
//!   read timestamp, the reply is [`Reply::Conflict`] and nothing is
//!   written. Otherwise the commit timestamp is `max(ts_hint, last + 1)`
//!   where `last` is the range's newest commit timestamp — strictly
//!   increasing in log order — and every write becomes a version at it.
//!   The new `last` is stored in the same batch (`mvcc::TS_MARK_KEY`), and
//!   so is a commit record under the command's id: the same commit
//!   proposed again (its proposer lost the answer and retried) finds the
//!   record and gets the same reply without writing twice.
//! * **Gc** — deletes the listed versions and raises the GC threshold
//!   (stored under `GC_THRESHOLD_KEY`).
//! * **RegisterNode** — adds a node to the registry (`registry.rs`).
//! * **Heartbeat** — renews a node's liveness (`liveness.rs`).
//! * **SetSetting** — stores a cluster setting (`settings.rs`).
//! * **Decommission** — marks a node to be drained (`registry.rs`).
//!
//! # What readers may rely on ([`Published`])
//!
//! After the batch of a commit is in the engine (`applied` hook), its
//! timestamp is published as `last_commit`. A reader that takes
//! `last_commit` as its snapshot therefore sees every version at or below
//! it, and no later commit can add a version at or below it (later commits
//! get larger timestamps). That is what makes a snapshot immutable — and
//! why a snapshot taken on a follower after a read barrier is as good as
//! one taken on the leader.
//!
//! The GC threshold is published *before* its deletions reach the engine
//! (in `apply`, and from the snapshot's data before a snapshot is
//! installed): a reader checks the threshold after reading, so a read that
//! may have missed a collected version always notices.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use shoal_replication::{RangeId, ReplicationError, StateMachine};
use shoal_storage::{Engine, StorageError, WriteBatch};

use crate::clock::Timestamp;
use crate::command::{Command, Reply};
use crate::error::{KvError, Result};
use crate::mvcc;

/// The newest GC threshold: snapshots below it may miss versions.
pub const GC_THRESHOLD_KEY: &[u8] = b"mgc_threshold";

/// Prefix of commit records: `st <id, 16 bytes>` → commit timestamp. They
/// make a re-proposed commit idempotent; GC removes them with the history
/// they describe.
pub const COMMIT_RECORD_PREFIX: &[u8] = b"st";

/// The key of commit `id`'s record.
pub fn commit_record_key(id: u128) -> Vec<u8> {
    let mut key = COMMIT_RECORD_PREFIX.to_vec();
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// State of the local replica that readers on this node use.
#[derive(Debug, Default)]
pub struct Published {
    last_commit: AtomicU64,
    gc_threshold: AtomicU64,
}

impl Published {
    /// The newest commit timestamp whose data is in the local engine.
    pub fn last_commit(&self) -> Timestamp {
        self.last_commit.load(Ordering::Acquire)
    }

    /// Snapshots below this may have lost versions to GC.
    pub fn gc_threshold(&self) -> Timestamp {
        self.gc_threshold.load(Ordering::Acquire)
    }
}

/// The KV layer's [`StateMachine`]. See the module documentation.
pub struct KvStateMachine {
    /// Newest commit timestamp applied (possibly not yet in the engine).
    last_commit: Timestamp,
    gc_threshold: Timestamp,
    published: Arc<Published>,
}

impl std::fmt::Debug for KvStateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvStateMachine")
            .field("last_commit", &self.last_commit)
            .field("gc_threshold", &self.gc_threshold)
            .finish()
    }
}

fn read_u64(engine: &dyn Engine, key: &[u8]) -> Result<Timestamp> {
    match engine.get(key)? {
        None => Ok(0),
        Some(bytes) => {
            let raw: [u8; 8] = bytes.as_slice().try_into().map_err(|_| {
                StorageError::Corrupt(format!(
                    "{} is {} bytes",
                    String::from_utf8_lossy(key),
                    bytes.len()
                ))
            })?;
            Ok(u64::from_be_bytes(raw))
        }
    }
}

impl KvStateMachine {
    /// The state machine over the data in `engine`, and what it publishes.
    pub fn open(engine: &dyn Engine) -> Result<(KvStateMachine, Arc<Published>)> {
        let published = Arc::new(Published::default());
        let mut machine = KvStateMachine {
            last_commit: 0,
            gc_threshold: 0,
            published: published.clone(),
        };
        machine.reload(engine)?;
        Ok((machine, published))
    }

    fn reload(&mut self, engine: &dyn Engine) -> Result<()> {
        self.last_commit = read_u64(engine, mvcc::TS_MARK_KEY)?;
        self.gc_threshold = read_u64(engine, GC_THRESHOLD_KEY)?;
        self.published
            .gc_threshold
            .store(self.gc_threshold, Ordering::Release);
        self.published
            .last_commit
            .store(self.last_commit, Ordering::Release);
        Ok(())
    }

    fn commit(
        &mut self,
        id: u128,
        read_ts: Timestamp,
        ts_hint: Timestamp,
        writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
        engine: &dyn Engine,
        batch: &mut WriteBatch,
    ) -> Result<Reply> {
        let record = commit_record_key(id);
        if let Some(ts) = engine.get(&record)? {
            let ts: [u8; 8] = ts
                .as_slice()
                .try_into()
                .map_err(|_| StorageError::Corrupt("commit record".to_string()))?;
            return Ok(Reply::Committed(u64::from_be_bytes(ts)));
        }
        if read_ts < self.gc_threshold {
            return Ok(Reply::TooOld(self.gc_threshold));
        }
        for (key, _) in &writes {
            if let Some(ts) = mvcc::newest_version_ts(engine, key)?
                && ts > read_ts
            {
                return Ok(Reply::Conflict(key.clone()));
            }
        }
        let commit_ts = ts_hint.max(self.last_commit + 1);
        for (key, value) in writes {
            batch.put(
                mvcc::version_key(&key, commit_ts),
                mvcc::encode_value(value.as_deref()),
            );
        }
        batch.put(mvcc::TS_MARK_KEY, commit_ts.to_be_bytes());
        batch.put(record, commit_ts.to_be_bytes());
        self.last_commit = commit_ts;
        Ok(Reply::Committed(commit_ts))
    }

    fn gc(&mut self, threshold: Timestamp, keys: Vec<Vec<u8>>, batch: &mut WriteBatch) -> Reply {
        if threshold > self.gc_threshold {
            self.gc_threshold = threshold;
            self.published
                .gc_threshold
                .store(threshold, Ordering::Release);
            batch.put(GC_THRESHOLD_KEY, threshold.to_be_bytes());
        }
        let removed = keys.len() as u64;
        for key in keys {
            batch.delete(key);
        }
        Reply::Collected(removed)
    }
}

impl StateMachine for KvStateMachine {
    fn apply(
        &mut self,
        range: RangeId,
        index: u64,
        command: &[u8],
        engine: &dyn Engine,
        batch: &mut WriteBatch,
    ) -> shoal_replication::Result<Vec<u8>> {
        let command = match Command::decode(command) {
            Ok(command) => command,
            Err(e) => {
                // Every replica fails to decode it the same way: skip it,
                // and the proposer gets an empty (undecodable) reply.
                tracing::error!(range, index, error = %e, "undecodable kv command");
                return Ok(Vec::new());
            }
        };
        let reply = match command {
            Command::Commit {
                id,
                read_ts,
                ts_hint,
                writes,
            } => self.commit(id, read_ts, ts_hint, writes, engine, batch),
            Command::Gc { threshold, keys } => Ok(self.gc(threshold, keys, batch)),
            Command::RegisterNode { node_id, addr } => {
                crate::registry::register(engine, node_id, &addr, batch).map(Reply::Registered)
            }
            Command::Heartbeat {
                node_id,
                expiration,
            } => crate::liveness::heartbeat(engine, node_id, expiration, batch).map(Reply::Alive),
            Command::SetSetting { name, value } => {
                crate::settings::put(&name, &value, batch);
                Ok(Reply::SettingStored)
            }
            Command::Decommission { node_id } => {
                crate::registry::mark_decommissioning(batch, node_id);
                Ok(Reply::NodeMarked)
            }
        };
        match reply {
            Ok(reply) => Ok(reply.encode()),
            Err(KvError::Storage(e)) => Err(ReplicationError::Storage(e)),
            Err(KvError::Replication(e)) => Err(e),
            Err(other) => Err(ReplicationError::Corrupt(other.to_string())),
        }
    }

    fn applied(&mut self, _range: RangeId, _index: u64) {
        self.published
            .last_commit
            .store(self.last_commit, Ordering::Release);
    }

    fn before_snapshot(&mut self, range: RangeId, data: &[u8]) {
        // The snapshot's data may lack versions collected below its GC
        // threshold; readers must learn that threshold before they can see
        // the data (they check it after reading).
        match shoal_replication::snapshot::find(data, GC_THRESHOLD_KEY) {
            Ok(Some(raw)) => {
                if let Ok(raw) = <[u8; 8]>::try_from(raw.as_slice()) {
                    self.published
                        .gc_threshold
                        .fetch_max(u64::from_be_bytes(raw), Ordering::AcqRel);
                }
            }
            Ok(None) => {}
            Err(e) => tracing::error!(range, error = %e, "unreadable snapshot data"),
        }
    }

    fn on_snapshot(&mut self, range: RangeId, engine: &dyn Engine) {
        if let Err(e) = self.reload(engine) {
            tracing::error!(range, error = %e, "cannot reload kv state after snapshot");
        }
    }
}
