//! Shoal's transactional key-value layer: MVCC and snapshot-isolation
//! transactions over Raft-replicated ranges.
//!
//! # Where it sits
//!
//! Below: `shoal-replication` (each range is a Raft group; this crate's
//! [`KvStateMachine`] is what its committed commands mean), `shoal-storage`
//! (the local replica's data, read directly) and `shoal-placement` (range
//! descriptors). Above: the SQL layer, which sees nothing but [`Kv`]
//! and [`Txn`]: byte keys and values, snapshots, commit and rollback. It
//! never learns whether the store is one node or many.
//!
//! # The model
//!
//! * **Multi-version storage** (`mvcc`): every commit adds versions stamped
//!   with its commit timestamp; nothing is updated in place. A reader at
//!   timestamp `r` sees, per key, the newest version at or below `r`.
//! * **Snapshot isolation** (`txn`, `commit`, `apply`): a transaction reads
//!   one snapshot across ranges (each joins it with a read barrier that
//!   registers the read timestamp; `store`), plus its own buffered writes. Its commit is a replicated command; every replica
//!   applies the first-committer-wins check identically, so a conflict
//!   fails with [`KvError::WriteConflict`] (PostgreSQL's REPEATABLE READ).
//! * **Timestamps** (`clock`, `apply`): a node proposes hybrid wall-clock
//!   microseconds; the state machine makes commit timestamps strictly
//!   increasing in log order and above the leader's floor
//!   (`max(hint, floor, last + 1)`), and the last one is stored with every
//!   commit, so they never go backwards, across restarts and leader
//!   changes alike.
//! * **Ranges** (`keys`, `store`, `split`): every key is routed to the
//!   local replica whose bounds hold it; a split is a command in the
//!   range's log; a commit writing to one range is one command, one
//!   writing to several — or more than one command may carry (`parts`) —
//!   commits in two phases (`distributed`, `prepare`).
//! * **Row locks** (`write_locks`): a READ COMMITTED transaction locks the
//!   keys it wrote with lock intents, so other writers wait for it instead
//!   of making it fail at commit.
//! * **Placement by hand** (`relocate`): `ALTER RANGE … RELOCATE` moves a
//!   range's leadership or a replica through the rebalancer's own steps
//!   (`rebalance`); `UNSPLIT AT` lets the merge driver (`merge`) remove a
//!   boundary (`split`).
//! * **Garbage collection** (`gc`): removes versions older than a retention
//!   window, through the log, so every replica removes the same ones.
//!
//! # Life of a write
//!
//! `txn.put(k, v)` buffers in the transaction → `txn.commit()` proposes a
//! [`command::Command::Commit`] to the key's range → Raft replicates it to
//! a quorum (synced) → every replica applies it (conflict check, versions
//! `v ++ escaped(k) ++ !ts → [1] ++ v`, new last commit) → the proposer's
//! node, having applied it, answers with the commit timestamp.
//!
//! Module reading order: `clock`, `keys`, `mvcc`, `command`, `apply`,
//! `store`, `txn`, `commit`, `intents`, `apply_txn`, `distributed`,
//! `parts`, `prepare`, `write_locks`, `split`, `span_config`, `merge`,
//! `rebalance`, `relocate`, `gc`.

mod apply;
mod apply_merge;
mod apply_txn;
pub mod clock;
mod codec;
pub mod command;
mod commit;
mod decisions;
pub mod directory;
mod distributed;
pub mod error;
mod gc;
pub mod intents;
pub mod keys;
pub mod liveness;
mod load;
pub mod merge;
mod meta;
pub mod mvcc;
mod parts;
mod prepare;
mod read_cache;
pub mod reads;
mod rebalance;
pub mod registry;
mod relocate;
mod remote;
mod resolver;
pub mod settings;
mod settled_span;
pub mod span_config;
mod split;
mod status;
mod store;
mod txn;
mod untracked_memo;
pub mod write_locks;

pub use apply::{KvStateMachine, Published};
pub use clock::{ManualClock, SystemClock, Timestamp, WallClock};
pub use distributed::DEFAULT_TXN_TTL;
pub use error::{KvError, Result};
pub use gc::GcStats;
pub use remote::not_serving;
pub use shoal_placement::RangeDescriptor;
/// Waits that hand a runtime worker's tasks to another thread (the SQL
/// layer's retry pauses use it too).
pub use shoal_replication::blocking;
pub use status::{NodeStatus, RangeStatus};
pub use store::{DEFAULT_REQUEST_TIMEOUT, DEFAULT_TICK, FIRST_RANGE, Kv, SINGLE_NODE_ID};
pub use txn::{Isolation, Savepoint, Txn};
