//! [`Kv`]: the node-wide transactional store, and how it hands out
//! snapshots.
//!
//! # State
//!
//! * **Routing** — a [`RangeDirectory`]; every key is routed through it to
//!   its range's Raft group. Today the directory has a single range.
//! * **Replication** — a [`RaftHandle`] to the node's Raft thread. Commits
//!   and GC are proposed through it; reads start with its read barrier.
//! * **The local replica** — the engine, read directly: every version at
//!   or below the published `last_commit` is in it and never changes.
//! * **The clock** — proposes commit timestamps (`clock.rs`); the state
//!   machine makes them strictly increasing in log order.
//! * **The active set** — the read timestamps of live local transactions
//!   (a multiset); GC proposed by this node never collects what they read.
//!
//! # Taking a snapshot
//!
//! [`Kv::begin`] first passes the range's read barrier (ReadIndex): once it
//! returns, this node's replica has applied every commit acknowledged
//! anywhere before the call, so `last_commit` is a linearizable snapshot.
//! It registers the snapshot in the active set *under the active-set lock*;
//! GC computes its threshold under the same lock.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use shoal_placement::RangeDirectory;
use shoal_replication::{MultiRaft, NoTransport, RaftConfig, RaftHandle, RaftRunner, RangeId};
use shoal_storage::Engine;

use crate::apply::{KvStateMachine, Published};
use crate::clock::{HybridClock, SystemClock, Timestamp, WallClock};
use crate::command::{Command, Reply};
use crate::error::{KvError, Result};
use crate::mvcc::VisibleScan;
use crate::txn::Txn;

/// How long a request waits for its range before failing.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The Raft tick of a node.
pub const DEFAULT_TICK: Duration = Duration::from_millis(100);

/// The transactional key-value store of one node. Shared as `Arc<Kv>`.
pub struct Kv {
    pub(crate) directory: RangeDirectory,
    pub(crate) engine: Arc<dyn Engine>,
    pub(crate) raft: RaftHandle<KvStateMachine>,
    pub(crate) published: Arc<Published>,
    pub(crate) clock: HybridClock,
    pub(crate) timeout: Duration,
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

/// The node id of a store opened alone by [`Kv::open`].
pub const SINGLE_NODE_ID: u64 = 1;

impl Kv {
    /// Opens a store over `engine` as a one-node cluster (node 1, range 1
    /// bootstrapped on first open), timed by the system clock.
    pub fn open(engine: Arc<dyn Engine>) -> Result<Arc<Kv>> {
        Self::open_with_clock(engine, Arc::new(SystemClock))
    }

    /// Like [`Kv::open`], with an explicit wall clock (tests use
    /// [`ManualClock`](crate::clock::ManualClock)).
    pub fn open_with_clock(engine: Arc<dyn Engine>, wall: Arc<dyn WallClock>) -> Result<Arc<Kv>> {
        let range = RangeDirectory::single().ranges()[0].range_id;
        if !Self::is_bootstrapped(engine.as_ref())? {
            MultiRaft::<KvStateMachine>::bootstrap_range(
                engine.as_ref(),
                range,
                &[SINGLE_NODE_ID],
            )?;
        }
        let (machine, published) = KvStateMachine::open(engine.as_ref())?;
        let driver = MultiRaft::open(
            SINGLE_NODE_ID,
            engine.clone(),
            RaftConfig::default(),
            machine,
        )?;
        let raft = RaftRunner::spawn(driver, Arc::new(NoTransport), DEFAULT_TICK)?;
        Ok(Self::new(engine, raft, published, wall))
    }

    /// Whether `engine` holds a replica of the first range.
    pub fn is_bootstrapped(engine: &dyn Engine) -> Result<bool> {
        let range = RangeDirectory::single().ranges()[0].range_id;
        Ok(engine
            .get_cf(
                shoal_storage::ColumnFamily::Raft,
                &shoal_replication::keys::apply_state(range),
            )?
            .is_some())
    }

    /// A store over a running Raft thread whose state machine publishes
    /// into `published` (see `KvStateMachine::open`).
    pub fn new(
        engine: Arc<dyn Engine>,
        raft: RaftHandle<KvStateMachine>,
        published: Arc<Published>,
        wall: Arc<dyn WallClock>,
    ) -> Arc<Kv> {
        let floor = published.last_commit();
        tracing::info!(high_water = floor, node = raft.node_id(), "opened kv store");
        Arc::new(Kv {
            directory: RangeDirectory::single(),
            engine,
            raft,
            published,
            clock: HybridClock::new(wall, floor),
            timeout: DEFAULT_REQUEST_TIMEOUT,
            active: Mutex::new(BTreeMap::new()),
        })
    }

    /// The handle to this node's Raft thread.
    pub fn raft(&self) -> &RaftHandle<KvStateMachine> {
        &self.raft
    }

    /// Starts a transaction reading a linearizable snapshot: every commit
    /// acknowledged before the call is visible.
    pub fn begin(self: &Arc<Self>) -> Result<Arc<Txn>> {
        for range in self.directory.ranges() {
            self.raft.read_barrier(range.range_id, self.timeout)?;
        }
        let mut active = self.active.lock();
        let read_ts = self.latest_ts();
        *active.entry(read_ts).or_insert(0) += 1;
        drop(active);
        Ok(Arc::new(Txn::new(self.clone(), read_ts)))
    }

    /// Proposes a command on cluster state (registry, liveness, settings)
    /// to the first range, where that state lives, and returns its reply.
    /// Every such command is idempotent — applying it twice changes
    /// nothing — so a late answer is met by proposing it again.
    pub(crate) fn propose_cluster(&self, command: &Command, timeout: Duration) -> Result<Reply> {
        let range = self.directory.ranges()[0].range_id;
        let reply = self
            .raft
            .propose_idempotent(range, command.encode(), timeout)?;
        Reply::decode(&reply)
    }

    /// Registers node `node_id` (0: allocate an id) at `addr` in the
    /// cluster's node registry; returns its id. An address keeps its id
    /// when registered again.
    pub fn register_node(&self, node_id: u64, addr: &str) -> Result<u64> {
        let command = Command::RegisterNode {
            node_id,
            addr: addr.to_string(),
        };
        match self.propose_cluster(&command, self.timeout)? {
            Reply::Registered(id) => Ok(id),
            other => Err(other.unexpected("a registration")),
        }
    }

    /// The node registry as this node's replica has it.
    pub fn nodes(&self) -> Result<Vec<(u64, String)>> {
        crate::registry::nodes(self.engine.as_ref())
    }

    /// The newest commit timestamp applied on this node (0 before any).
    pub fn latest_ts(&self) -> Timestamp {
        self.published.last_commit()
    }

    /// Fails if a snapshot at `read_ts` may have lost versions to GC. Called
    /// after reading, so a collection racing with the read is noticed.
    pub(crate) fn check_snapshot(&self, read_ts: Timestamp) -> Result<()> {
        let threshold = self.published.gc_threshold();
        if read_ts < threshold {
            return Err(KvError::SnapshotTooOld { read_ts, threshold });
        }
        Ok(())
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

    /// The range owning `user_key`.
    pub(crate) fn range_of(&self, user_key: &[u8]) -> RangeId {
        self.directory.ranges()[self.directory.lookup_index(user_key)].range_id
    }

    /// Visible pairs in `[start, end)` (`end = None`: unbounded) at
    /// `read_ts`. Lazy: nothing is read until the iterator is pulled.
    pub(crate) fn visible_scan<'a>(
        &'a self,
        start: &[u8],
        end: Option<&[u8]>,
        read_ts: Timestamp,
    ) -> VisibleScan<'a> {
        VisibleScan::new(self.engine.as_ref(), start, end, read_ts)
    }
}

impl Drop for Kv {
    fn drop(&mut self) {
        // Stop the Raft thread so the engine is released (a store reopened
        // in the same process must not find it locked).
        self.raft.shutdown();
    }
}
