//! [`Kv`]: the node-wide transactional store, and how it hands out
//! snapshots.
//!
//! # State
//!
//! * **Routing** — a [`RangeDirectory`] and one [`LocalReplica`] per range
//!   (parallel vectors). Today the directory has a single range, but every
//!   read and write is routed through it so that splitting ranges later does
//!   not touch this layer's callers.
//! * **The clock** — hands out commit timestamps (`clock.rs`). Its floor is
//!   the persisted high-water mark, read once in [`Kv::open`].
//! * **`latest`** — the newest *published* commit timestamp. A commit
//!   publishes its timestamp only after its batch is durable, and commits are
//!   serialized (`commit.rs`), so every version at or below `latest` is
//!   complete: that is what makes `latest` a consistent snapshot.
//! * **The active set** — the read timestamps of live transactions (a
//!   multiset). GC never removes a version one of them may still read
//!   (`gc.rs`).
//!
//! # Taking a snapshot
//!
//! [`Kv::begin`] reads `latest` and registers it in the active set *under
//! the active-set lock*. GC computes its threshold under the same lock, so a
//! transaction either is registered before the threshold is computed (and
//! bounds it) or starts afterwards at a `latest` no lower than the threshold.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use shoal_placement::RangeDirectory;
use shoal_replication::LocalReplica;
use shoal_storage::{Engine, StorageError};

use crate::clock::{HybridClock, SystemClock, Timestamp, WallClock};
use crate::error::Result;
use crate::mvcc::{TS_MARK_KEY, VisibleScan};
use crate::txn::Txn;

/// The transactional key-value store of one node. Shared as `Arc<Kv>`.
pub struct Kv {
    pub(crate) directory: RangeDirectory,
    /// `replicas[i]` serves `directory.ranges()[i]`; built together in
    /// [`Kv::open_with_clock`] and never changed, so indexes always line up.
    pub(crate) replicas: Vec<LocalReplica>,
    pub(crate) clock: HybridClock,
    pub(crate) latest: AtomicU64,
    /// Serializes commits: conflict check, timestamp, write, publish.
    pub(crate) commit_lock: Mutex<()>,
    /// Read timestamp → number of live transactions reading at it.
    pub(crate) active: Mutex<BTreeMap<Timestamp, usize>>,
}

impl std::fmt::Debug for Kv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kv")
            .field("ranges", &self.directory.ranges().len())
            .field("latest", &self.latest_ts())
            .finish_non_exhaustive()
    }
}

impl Kv {
    /// Opens the store over `engine`, timed by the system clock.
    ///
    /// Reads the persisted timestamp high-water mark so timestamps never go
    /// backwards across restarts.
    pub fn open(engine: Arc<dyn Engine>) -> Result<Arc<Kv>> {
        Self::open_with_clock(engine, Arc::new(SystemClock))
    }

    /// Like [`Kv::open`], with an explicit wall clock (tests use
    /// [`ManualClock`](crate::clock::ManualClock)).
    pub fn open_with_clock(engine: Arc<dyn Engine>, wall: Arc<dyn WallClock>) -> Result<Arc<Kv>> {
        let mark = match engine.get(TS_MARK_KEY)? {
            None => 0,
            Some(bytes) => {
                let raw: [u8; 8] = bytes.as_slice().try_into().map_err(|_| {
                    StorageError::Corrupt(format!("timestamp mark is {} bytes", bytes.len()))
                })?;
                u64::from_be_bytes(raw)
            }
        };
        let directory = RangeDirectory::single();
        let replicas = directory
            .ranges()
            .iter()
            .map(|_| LocalReplica::new(engine.clone()))
            .collect();
        tracing::info!(high_water = mark, "opened kv store");
        Ok(Arc::new(Kv {
            directory,
            replicas,
            clock: HybridClock::new(wall, mark),
            latest: AtomicU64::new(mark),
            commit_lock: Mutex::new(()),
            active: Mutex::new(BTreeMap::new()),
        }))
    }

    /// Starts a transaction reading the latest committed snapshot.
    pub fn begin(self: &Arc<Self>) -> Arc<Txn> {
        let mut active = self.active.lock();
        let read_ts = self.latest_ts();
        *active.entry(read_ts).or_insert(0) += 1;
        drop(active);
        Arc::new(Txn::new(self.clone(), read_ts))
    }

    /// The newest published commit timestamp (0 before any commit).
    pub fn latest_ts(&self) -> Timestamp {
        self.latest.load(Ordering::Acquire)
    }

    /// Removes `read_ts` from the active set (once per `begin`).
    pub(crate) fn unregister(&self, read_ts: Timestamp) {
        let mut active = self.active.lock();
        if let Some(n) = active.get_mut(&read_ts) {
            *n -= 1;
            if *n == 0 {
                active.remove(&read_ts);
            }
        }
    }

    /// The replica owning `user_key`.
    pub(crate) fn replica_index(&self, user_key: &[u8]) -> usize {
        self.directory.lookup_index(user_key)
    }

    pub(crate) fn engine_for(&self, user_key: &[u8]) -> &dyn Engine {
        self.replicas[self.replica_index(user_key)]
            .engine()
            .as_ref()
    }

    /// Visible pairs in `[start, end)` (`end = None`: unbounded) at
    /// `read_ts`, range by range in key order, each range clipped to the
    /// requested span. Lazy: nothing is read until the iterator is pulled.
    pub(crate) fn visible_scan<'a>(
        &'a self,
        start: &[u8],
        end: Option<&[u8]>,
        read_ts: Timestamp,
    ) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + use<'a> {
        let first = self.replica_index(start);
        let start = start.to_vec();
        let end = end.map(<[u8]>::to_vec);
        let spans: Vec<(usize, Vec<u8>, Option<Vec<u8>>)> = self.directory.ranges()[first..]
            .iter()
            .enumerate()
            .take_while(|(_, r)| end.as_deref().is_none_or(|e| r.start_key.as_slice() < e))
            .map(|(i, r)| {
                let lo = start.clone().max(r.start_key.clone());
                let hi = match (&end, &r.end_key) {
                    (Some(a), Some(b)) => Some(a.min(b).clone()),
                    (Some(a), None) => Some(a.clone()),
                    (None, b) => b.clone(),
                };
                (first + i, lo, hi)
            })
            .collect();
        spans.into_iter().flat_map(move |(i, lo, hi)| {
            VisibleScan::new(
                self.replicas[i].engine().as_ref(),
                &lo,
                hi.as_deref(),
                read_ts,
            )
        })
    }
}
