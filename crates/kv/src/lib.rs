//! Shoal's transactional key-value layer: MVCC and snapshot-isolation
//! transactions on one node.
//!
//! # Where it sits
//!
//! Below: `shoal-storage` (an ordered byte map), reached only through
//! `shoal-replication` for writes (each range's replica applies batches —
//! the future Raft boundary) and `shoal-placement` for routing (which range
//! owns a key). Above: the SQL layer, which sees nothing but [`Kv`] and
//! [`Txn`]: byte keys and values, snapshots, commit and rollback. It never
//! learns whether the store is one node or many.
//!
//! # The model
//!
//! * **Multi-version storage** (`mvcc`): every commit adds versions stamped
//!   with its commit timestamp; nothing is updated in place. A reader at
//!   timestamp `r` sees, per key, the newest version at or below `r`.
//! * **Snapshot isolation** (`txn`, `commit`): a transaction reads the
//!   snapshot at the latest committed timestamp when it began, plus its own
//!   buffered writes. At commit, if any key it wrote has a version newer than
//!   its snapshot, it fails with [`KvError::WriteConflict`] (first committer
//!   wins — PostgreSQL's REPEATABLE READ). Otherwise all its writes land in
//!   one durable batch at a fresh commit timestamp.
//! * **Timestamps** (`clock`): hybrid wall-clock microseconds, strictly
//!   increasing, persisted as a high-water mark with every commit so they
//!   never go backwards across restarts.
//! * **Garbage collection** (`gc`): removes versions older than a retention
//!   window that no live snapshot can see.
//!
//! # Life of a write
//!
//! `txn.put(k, v)` buffers in the transaction → `txn.commit()` takes the
//! commit mutex, checks conflicts, draws a timestamp, builds
//! `v ++ escaped(k) ++ !ts → [1] ++ v` plus the high-water mark, hands the
//! batch to the range's `LocalReplica::apply` (fsynced), then publishes the
//! timestamp so new snapshots include it.
//!
//! Module reading order: `clock`, `mvcc`, `store`, `txn`, `commit`, `gc`.

pub mod clock;
mod commit;
pub mod error;
mod gc;
pub mod mvcc;
mod store;
mod txn;

pub use clock::{ManualClock, SystemClock, Timestamp, WallClock};
pub use error::{KvError, Result};
pub use gc::GcStats;
pub use store::Kv;
pub use txn::Txn;
