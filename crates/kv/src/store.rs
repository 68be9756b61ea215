//! [`Kv`]: the node-wide transactional store, and how it hands out
//! snapshots.
//!
//! # State
//!
//! * **Routing** — the bounds of every replica on this node, published by
//!   the apply thread ([`shoal_replication::apply::LocalBounds`]); a key
//!   is routed to the local replica whose bounds contain it, else to the
//!   range the directory cache names (`directory.rs`), whose replicas are
//!   asked through the node's [`NodeRequests`] (`remote.rs`).
//! * **Replication** — a [`RaftHandle`] to the node's Raft thread. Commits
//!   and GC are proposed through it; reads start with its read barrier.
//! * **The local replicas** — the engine, read directly: once a range's
//!   read barrier returns, every version of it at or below the read
//!   timestamp is in it and never changes.
//! * **The clock** — proposes commit timestamps (`clock.rs`) and read
//!   timestamps; the state machine makes commit timestamps strictly
//!   increasing in log order and above the leader's floor.
//! * **The active set** — the read timestamps of live local transactions
//!   (a multiset); GC proposed by this node never collects what they read.
//!
//! # Taking a snapshot
//!
//! [`Kv::begin`] takes a timestamp from the node's hybrid clock and passes
//! the first range's read barrier (ReadIndex) with it: once the barrier
//! returns, this node's replica has applied every commit acknowledged
//! anywhere before the call, and the leader stamps every command it appends
//! later with a floor above the timestamp. The larger of the timestamp and
//! the range's applied `last_commit` is therefore a snapshot of the range
//! that no later commit can change, and it includes every commit
//! acknowledged before `begin`. (A node not yet holding the first range —
//! one that has just joined — asks a node that does to pass the barrier
//! and report the range's `last_commit`: `remote.rs`.)
//!
//! Other ranges join the snapshot when the transaction first reads them
//! (`Txn::sync`): the same barrier, registering the now fixed read
//! timestamp. Their commits below it are then all applied here and later
//! ones land above it. One question remains: a commit acknowledged before
//! `begin` whose timestamp is *above* the read timestamp (its proposer's
//! clock ran ahead, or a new leader's floor put it in the future) must not
//! be missed. Such a commit was appended before the barrier, so its
//! timestamp is at most the range's `last_commit` after it, and at most
//! the read timestamp plus the maximum clock offset. A version between the
//! read timestamp and that limit is *uncertain*: the read fails with
//! [`KvError::ReadWithinUncertainty`] (retryable) rather than guess —
//! CockroachDB's uncertainty interval, narrowed by what the barrier
//! observed.
//! It registers the snapshot in the active set *under the active-set lock*;
//! GC computes its threshold under the same lock.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use shoal_placement::RangeDescriptor;
use shoal_replication::apply::LocalBounds;
use shoal_replication::{
    MultiRaft, NoTransport, NodeRequests, RaftConfig, RaftHandle, RaftRunner, RangeBounds, RangeId,
};
use shoal_storage::Engine;

use crate::apply::{KvStateMachine, Published};
use crate::clock::{HybridClock, SystemClock, Timestamp, WallClock};
use crate::command::{Command, Reply};
use crate::directory::{Directory, RangeRecord};
use crate::error::{KvError, Result};
use crate::mvcc::VisibleScan;
use crate::txn::Txn;

/// How long a request waits for its range before failing.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The Raft tick of a node.
pub const DEFAULT_TICK: Duration = Duration::from_millis(100);

/// The transactional key-value store of one node. Shared as `Arc<Kv>`.
pub struct Kv {
    /// The bounds of every replica on this node (routing).
    pub(crate) bounds: LocalBounds,
    pub(crate) engine: Arc<dyn Engine>,
    pub(crate) raft: RaftHandle<KvStateMachine>,
    pub(crate) published: Arc<Published>,
    pub(crate) clock: HybridClock,
    pub(crate) timeout: Duration,
    /// The most two nodes' clocks may differ (µs): how far above a read
    /// timestamp a version may be uncertain (module docs).
    pub(crate) max_offset: u64,
    /// How long a commit spanning ranges may stay pending (µs).
    pub(crate) txn_ttl_micros: AtomicU64,
    /// Read timestamp → number of live transactions reading at it.
    pub(crate) active: Mutex<BTreeMap<Timestamp, usize>>,
    /// Requests to other nodes (`None`: a node alone).
    pub(crate) requests: Option<Arc<dyn NodeRequests>>,
    /// The cached range directory.
    pub(crate) directory: parking_lot::RwLock<Directory>,
    /// Requests served per range, for splits by load (`load.rs`).
    pub(crate) load: crate::load::LoadTracker,
    /// Untracked reads answered from memory (`read_cache.rs`).
    pub(crate) read_cache: crate::read_cache::ReadCache,
    /// Committed transactions' intents resolved after the commit
    /// returns (`resolver.rs`).
    pub(crate) resolver: crate::resolver::Resolver,
    /// Resolved two-phase transactions whose records GC's next pass marks
    /// finished (`distributed.rs`).
    pub(crate) finishing: Mutex<Vec<(Vec<u8>, u128)>>,
}

impl std::fmt::Debug for Kv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kv")
            .field("ranges", &self.bounds.read().len())
            .finish_non_exhaustive()
    }
}

/// The node id of a store opened alone by [`Kv::open`].
pub const SINGLE_NODE_ID: u64 = 1;

/// The range bootstrapped first. It always starts at the empty key (a split
/// keeps the left-hand side), so it holds the cluster state and the
/// catalog's first keys.
pub const FIRST_RANGE: RangeId = 1;

impl Kv {
    /// Opens a store over `engine` as a one-node cluster (node 1, range 1
    /// bootstrapped on first open), timed by the system clock.
    pub fn open(engine: Arc<dyn Engine>) -> Result<Arc<Kv>> {
        Self::open_with_clock(engine, Arc::new(SystemClock))
    }

    /// Like [`Kv::open`], with an explicit wall clock (tests use
    /// [`ManualClock`](crate::clock::ManualClock)).
    pub fn open_with_clock(engine: Arc<dyn Engine>, wall: Arc<dyn WallClock>) -> Result<Arc<Kv>> {
        if !Self::is_bootstrapped(engine.as_ref())? {
            MultiRaft::<KvStateMachine>::bootstrap_range(
                engine.as_ref(),
                FIRST_RANGE,
                &[SINGLE_NODE_ID],
            )?;
        }
        let (machine, published) = KvStateMachine::open(engine.as_ref())?;
        // One node, one process: the only reads a new leader must stay
        // above were served by this process, which reads the same clock —
        // no offset to allow for (and earlier processes' readers are gone).
        let config = RaftConfig {
            max_clock_offset_micros: 0,
            ..RaftConfig::default()
        };
        let mut driver = MultiRaft::open(SINGLE_NODE_ID, engine.clone(), config, machine)?;
        driver.set_clock(wall.clone());
        let raft = RaftRunner::spawn(driver, Arc::new(NoTransport), DEFAULT_TICK)?;
        Ok(Self::build(engine, raft, published, wall, 0, None))
    }

    /// Whether `engine` holds a replica of the first range.
    pub fn is_bootstrapped(engine: &dyn Engine) -> Result<bool> {
        Ok(engine
            .get_cf(
                shoal_storage::ColumnFamily::Raft,
                &shoal_replication::keys::apply_state(FIRST_RANGE),
            )?
            .is_some())
    }

    /// A store over a running Raft thread whose state machine publishes
    /// into `published` (see `KvStateMachine::open`), asking other nodes
    /// through `requests` for ranges it holds no replica of.
    pub fn new(
        engine: Arc<dyn Engine>,
        raft: RaftHandle<KvStateMachine>,
        published: Arc<Published>,
        wall: Arc<dyn WallClock>,
        requests: Arc<dyn NodeRequests>,
    ) -> Arc<Kv> {
        let max_offset = RaftConfig::default().max_clock_offset_micros;
        Self::build(engine, raft, published, wall, max_offset, Some(requests))
    }

    fn build(
        engine: Arc<dyn Engine>,
        raft: RaftHandle<KvStateMachine>,
        published: Arc<Published>,
        wall: Arc<dyn WallClock>,
        max_offset: u64,
        requests: Option<Arc<dyn NodeRequests>>,
    ) -> Arc<Kv> {
        let bounds = raft.local_bounds();
        let mut floor = 0;
        let ranges: Vec<RangeId> = bounds.read().keys().copied().collect();
        for range in ranges {
            floor = floor.max(published.last_commit(range, engine.as_ref()).unwrap_or(0));
        }
        tracing::info!(high_water = floor, node = raft.node_id(), "opened kv store");
        let kv = Arc::new(Kv {
            bounds,
            engine,
            raft,
            published,
            clock: HybridClock::new(wall, floor),
            timeout: DEFAULT_REQUEST_TIMEOUT,
            max_offset,
            txn_ttl_micros: AtomicU64::new(
                u64::try_from(crate::distributed::DEFAULT_TXN_TTL.as_micros()).unwrap_or(u64::MAX),
            ),
            active: Mutex::new(BTreeMap::new()),
            requests,
            directory: parking_lot::RwLock::new(Directory::default()),
            load: crate::load::LoadTracker::default(),
            read_cache: crate::read_cache::ReadCache::default(),
            resolver: crate::resolver::Resolver::default(),
            finishing: Mutex::new(Vec::new()),
        });
        crate::resolver::Resolver::start(&kv);
        kv
    }

    /// The handle to this node's Raft thread.
    pub fn raft(&self) -> &RaftHandle<KvStateMachine> {
        &self.raft
    }

    /// Starts a transaction reading a linearizable snapshot: every commit
    /// acknowledged before the call is visible.
    pub fn begin(self: &Arc<Self>) -> Result<Arc<Txn>> {
        let wanted = self.clock.next();
        if !self.is_local(FIRST_RANGE) {
            // The same barrier, passed by a node holding the range.
            let observed = self.rerouting(|| {
                let record = self.record_of(FIRST_RANGE)?;
                let request = crate::remote::Request::Sync {
                    range: FIRST_RANGE,
                    read_ts: wanted,
                };
                match self.ask(&record, &request)? {
                    crate::remote::Answer::Synced(ts) => Ok(ts),
                    other => Err(unexpected_answer(&other)),
                }
            })?;
            let read_ts = wanted.max(observed);
            self.clock.observe(read_ts);
            self.register(read_ts);
            return Ok(Arc::new(Txn::new(self.clone(), read_ts, None)));
        }
        self.raft
            .read_barrier_at(FIRST_RANGE, wanted, self.timeout)?;
        let mut active = self.active.lock();
        // After the barrier, every commit of the first range acknowledged
        // before the call is applied here, and every later one gets a
        // timestamp above both `wanted` (the leader's floor) and what is
        // applied now.
        let read_ts = wanted.max(self.last_commit(FIRST_RANGE)?);
        self.clock.observe(read_ts);
        *active.entry(read_ts).or_insert(0) += 1;
        drop(active);
        Ok(Arc::new(Txn::new(self.clone(), read_ts, Some(FIRST_RANGE))))
    }

    /// Registers a reader at `read_ts` in the active set (GC keeps what it
    /// reads); [`Kv::unregister`] ends it.
    pub(crate) fn register(&self, read_ts: Timestamp) {
        *self.active.lock().entry(read_ts).or_insert(0) += 1;
    }

    /// A transaction reading at `read_ts` for another node (`remote.rs`):
    /// registered, synced with nothing, to be rolled back after use.
    pub(crate) fn reader(self: &Arc<Self>, read_ts: Timestamp) -> Txn {
        self.register(read_ts);
        Txn::new(self.clone(), read_ts, None).serving()
    }

    /// Joins `range` to the snapshot at `read_ts` (module docs): returns
    /// the uncertainty limit of its reads.
    pub(crate) fn sync_range(&self, range: RangeId, read_ts: Timestamp) -> Result<Timestamp> {
        self.raft.read_barrier_at(range, read_ts, self.timeout)?;
        let observed = self.last_commit(range)?;
        Ok(observed
            .min(read_ts.saturating_add(self.max_offset))
            .max(read_ts))
    }

    /// Proposes a command on cluster state (registry, liveness, settings)
    /// to the first range, where that state lives, and returns its reply.
    /// Every such command is idempotent — applying it twice changes
    /// nothing — so a late answer is met by proposing it again.
    pub(crate) fn propose_cluster(&self, command: &Command, timeout: Duration) -> Result<Reply> {
        self.propose_until(FIRST_RANGE, command, Instant::now() + timeout)
    }

    /// Proposes `command` — one the state machine applies at most once, so
    /// it is proposed again whenever an answer is late — to `range`,
    /// waiting until `deadline`; returns its reply.
    pub(crate) fn propose_until(
        &self,
        range: RangeId,
        command: &Command,
        deadline: Instant,
    ) -> Result<Reply> {
        if !self.is_local(range) {
            return self.rerouting(|| {
                let record = self.record_of(range)?;
                let request = crate::remote::Request::Propose {
                    range,
                    command: command.encode(),
                };
                match self.ask(&record, &request)? {
                    crate::remote::Answer::Reply(reply) => {
                        let reply = Reply::decode(&reply)?;
                        if reply == Reply::WrongRange {
                            // The range split since this node routed: the
                            // caller routes again, with a fresh directory.
                            self.reload_directory();
                        }
                        Ok(reply)
                    }
                    other => Err(unexpected_answer(&other)),
                }
            });
        }
        let reply = self.raft.propose_idempotent(
            range,
            command.encode(),
            deadline.saturating_duration_since(Instant::now()),
        )?;
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

    /// The newest commit timestamp applied on this node, over every range
    /// (0 before any).
    pub fn latest_ts(&self) -> Timestamp {
        let ranges: Vec<RangeId> = self.bounds.read().keys().copied().collect();
        ranges
            .into_iter()
            .filter_map(|range| self.last_commit(range).ok())
            .max()
            .unwrap_or(0)
    }

    /// The newest commit timestamp of `range` applied on this node.
    pub(crate) fn last_commit(&self, range: RangeId) -> Result<Timestamp> {
        self.published.last_commit(range, self.engine.as_ref())
    }

    /// Fails if a snapshot of `range` at `read_ts` may have lost versions
    /// to GC. Called after reading, so a collection racing with the read is
    /// noticed.
    pub(crate) fn check_snapshot(&self, range: RangeId, read_ts: Timestamp) -> Result<()> {
        // The replica may have been removed while it was read (its data
        // deleted after its bounds were unpublished): what was read may be
        // missing rows, so the read goes to a node holding the range.
        if !self.is_local(range) {
            return Err(KvError::Misrouted(format!(
                "the replica of range {range} was removed while being read"
            )));
        }
        // A frozen range is about to be merged: a read served now could be
        // above what the merged range promises to write above (`merge.rs`).
        if self.published.frozen(range, self.engine.as_ref())? {
            return Err(KvError::Misrouted(format!(
                "range {range} is frozen for a merge"
            )));
        }
        let threshold = self.published.gc_threshold(range, self.engine.as_ref())?;
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

    /// The range owning `user_key`, with its bounds: a local replica's if
    /// this node has one, else the directory's (module docs).
    pub(crate) fn route(&self, user_key: &[u8]) -> Result<(RangeId, RangeBounds)> {
        if let Ok(local) = self.local_route(user_key) {
            return Ok(local);
        }
        // A record naming a local replica that does not hold the key is
        // stale (the replica's own bounds are the truth).
        let remote = |found: Option<(RangeId, RangeBounds)>| {
            found.filter(|(range, _)| !self.is_local(*range))
        };
        if let Some(found) = remote(self.lookup(user_key)) {
            return Ok(found);
        }
        self.reload_directory();
        remote(self.lookup(user_key)).ok_or_else(|| {
            KvError::Misrouted(format!(
                "no range is known to hold key {}",
                crate::error::printable_key(user_key)
            ))
        })
    }

    pub(crate) fn lookup(&self, user_key: &[u8]) -> Option<(RangeId, RangeBounds)> {
        self.directory
            .read()
            .lookup(user_key)
            .map(|r| (r.range, r.bounds.clone()))
    }

    /// The local replica's range owning `user_key`, with its bounds.
    pub(crate) fn local_route(&self, user_key: &[u8]) -> Result<(RangeId, RangeBounds)> {
        self.bounds
            .read()
            .holding(user_key)
            .map(|(range, bounds)| (range, bounds.clone()))
            .ok_or_else(|| {
                KvError::Misrouted(format!(
                    "no replica on node {} holds key {}",
                    self.raft.node_id(),
                    crate::error::printable_key(user_key)
                ))
            })
    }

    /// Whether this node holds a replica of the first range, whose cluster
    /// state (registry, liveness, settings) it then reads locally.
    pub fn holds_cluster_state(&self) -> bool {
        self.is_local(FIRST_RANGE)
    }

    /// Whether this node holds a replica of `range`.
    pub(crate) fn is_local(&self, range: RangeId) -> bool {
        self.bounds.read().contains_key(&range)
    }

    /// The directory's record of `range` (reloading it once if missing).
    pub(crate) fn record_of(&self, range: RangeId) -> Result<RangeRecord> {
        if let Some(record) = self.directory.read().get(range) {
            return Ok(record.clone());
        }
        self.reload_directory();
        self.directory
            .read()
            .get(range)
            .cloned()
            .ok_or_else(|| KvError::Misrouted(format!("range {range} is not in the directory")))
    }

    /// Reloads the directory cache — from the local replica of the first
    /// range, or from a node holding one — unless it was reloaded within
    /// [`RELOAD_INTERVAL`](crate::directory::RELOAD_INTERVAL).
    pub(crate) fn reload_directory(&self) {
        if !self.directory.read().reload_due() {
            return;
        }
        // Counted as an attempt first: loading routes requests, which must
        // not start another load.
        self.directory.write().note_attempt();
        match self.load_directory() {
            Ok(records) => self.directory.write().load(records),
            Err(e) => {
                tracing::debug!(error = %e, "cannot load the range directory");
                self.directory.write().note_attempt();
            }
        }
    }

    /// The nodes this node can ask.
    pub(crate) fn peers(&self) -> Vec<u64> {
        self.requests.as_ref().map_or_else(Vec::new, |r| r.nodes())
    }

    /// Every range this node knows of — its replicas' and the directory's
    /// — in key order. Records of one range from different times may
    /// overlap (a split not yet described): a router takes the first
    /// containing a key and stops at its end.
    pub fn ranges(&self) -> Vec<RangeDescriptor> {
        if self.directory.read().reload_due() {
            self.reload_directory();
        }
        let mut ranges = self.local_ranges();
        let local: std::collections::HashSet<RangeId> = ranges.iter().map(|r| r.range_id).collect();
        ranges.extend(
            self.directory
                .read()
                .records()
                .iter()
                .filter(|r| !local.contains(&r.range))
                .map(|r| RangeDescriptor {
                    range_id: r.range,
                    start_key: r.bounds.start.clone(),
                    end_key: r.bounds.end.clone(),
                    generation: r.generation,
                }),
        );
        ranges.sort_by(|a, b| a.start_key.cmp(&b.start_key));
        ranges
    }

    /// The descriptors of every local replica's range, in key order.
    pub fn local_ranges(&self) -> Vec<RangeDescriptor> {
        let mut ranges: Vec<RangeDescriptor> = self
            .bounds
            .read()
            .iter()
            .map(|(&range, (b, generation))| RangeDescriptor {
                range_id: range,
                start_key: b.start.clone(),
                end_key: b.end.clone(),
                generation: *generation,
            })
            .collect();
        ranges.sort_by(|a, b| a.start_key.cmp(&b.start_key));
        ranges
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

/// The error of an answer of the wrong kind from another node.
pub(crate) fn unexpected_answer(answer: &crate::remote::Answer) -> KvError {
    KvError::Remote {
        node: 0,
        message: format!("unexpected answer {answer:?}"),
    }
}

impl Drop for Kv {
    fn drop(&mut self) {
        // Stop the Raft thread so the engine is released (a store reopened
        // in the same process must not find it locked).
        self.raft.shutdown();
    }
}
