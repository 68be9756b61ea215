//! Errors of the transactional KV layer.
//!
//! [`KvError::WriteConflict`] is the one error a client is expected to retry:
//! the front end maps it to SQLSTATE 40001 (`serialization_failure`), which is
//! what PostgreSQL raises when a snapshot-isolation (REPEATABLE READ)
//! transaction loses a write-write race. [`KvError::TxnFinished`] is a caller
//! bug. [`KvError::Unavailable`] (no quorum in time; nothing happened) and
//! [`KvError::Ambiguous`] (a commit's fate is unknown) are what replication
//! failures mean to a client; other storage and replication failures pass
//! through unchanged.

use shoal_replication::ReplicationError;
use shoal_storage::StorageError;

/// A failure of a KV operation.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// Another transaction committed a write to `key` after this transaction's
    /// snapshot was taken (first committer wins). Retryable.
    #[error(
        "could not serialize access due to concurrent update (key {}{note})",
        printable_key(key)
    )]
    WriteConflict {
        /// The conflicting user key (the SQL layer names its table and
        /// primary key for the client).
        key: Vec<u8>,
        /// More about the conflict (empty, or starting with ", ").
        note: String,
    },
    /// A serializable transaction read `key` before another transaction
    /// committed a change to it that it should have seen at its commit
    /// timestamp (`reads.rs`). Retryable.
    #[error(
        "could not serialize access due to read/write dependencies among transactions (key {}{note})",
        printable_key(key)
    )]
    ReadConflict {
        /// A user key the transaction read that changed.
        key: Vec<u8>,
        /// More about the conflict (empty, or starting with ", ").
        note: String,
    },
    /// A commit waited longer than its lock wait limit (`lock_timeout`) for
    /// another transaction holding an intent on `key`; nothing was written.
    #[error("canceling statement due to lock timeout (key {})", printable_key(key))]
    LockTimeout {
        /// The key whose intent it waited for.
        key: Vec<u8>,
    },
    /// A write met another transaction's row lock (`write_locks.rs`) on
    /// the key; nothing was written. The caller waits for the lock
    /// ([`Kv::lock_released`](crate::Kv::lock_released)) and tries again.
    #[error(
        "could not serialize access due to concurrent update (key {} is locked by another transaction)",
        printable_key(&.0.key)
    )]
    Locked(Box<crate::write_locks::Blocked>),
    /// The snapshot is older than the GC threshold: versions it needs may
    /// have been collected. Retry with a new transaction.
    #[error("snapshot too old: read at {read_ts}, versions below {threshold} were collected")]
    SnapshotTooOld {
        /// The transaction's snapshot.
        read_ts: u64,
        /// The range's GC threshold.
        threshold: u64,
    },
    /// The transaction was already committed or rolled back.
    #[error("transaction is already finished")]
    TxnFinished,
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The range cannot serve now: no leader with a quorum answered in
    /// time. Nothing was written; retry later.
    #[error("{0}")]
    Unavailable(String),
    /// A commit's outcome is unknown (its answer did not arrive in time).
    #[error("{0}")]
    Ambiguous(String),
    #[error(transparent)]
    Replication(ReplicationError),
    /// No cluster setting has this name.
    #[error("unrecognized cluster setting \"{0}\"")]
    UnknownSetting(String),
    /// The value does not fit the cluster setting.
    #[error("invalid value for cluster setting {0}")]
    InvalidSetting(String),
    /// No node has this id.
    #[error("node {0} is not a member of the cluster")]
    UnknownNode(u64),
    /// A read found a version written after the transaction's timestamp but
    /// close enough to it that it may have committed before the transaction
    /// began (clocks of different nodes differ). Retryable: a new
    /// transaction reads above it.
    #[error(
        "restart transaction: key {key} was written at a timestamp within the clock uncertainty of this transaction's snapshot"
    )]
    ReadWithinUncertainty {
        /// The key, printable.
        key: String,
        /// The version's timestamp.
        ts: u64,
    },
    /// The node asked for a range holds no replica of it (any more): the
    /// asking node reloads its directory and routes again (`remote.rs`).
    /// Surfaces only if no node answered by the request deadline.
    #[error("{0}")]
    Misrouted(String),
    /// Another node failed to serve a forwarded request.
    #[error("node {node} failed: {message}")]
    Remote {
        /// The node asked.
        node: u64,
        /// Its error.
        message: String,
    },
    /// A range an administrative request names that does not exist.
    #[error("range {0} does not exist")]
    UnknownRange(u64),
    /// An administrative request on a range (unsplit, relocate) that
    /// cannot be carried out as asked; why.
    #[error("{0}")]
    InvalidRangeRequest(String),
    /// A split key that cannot split a range.
    #[error("cannot split at key {key}: {reason}")]
    InvalidSplit {
        /// The key, printable.
        key: String,
        /// Why.
        reason: String,
    },
}

impl From<ReplicationError> for KvError {
    fn from(e: ReplicationError) -> Self {
        match e {
            ReplicationError::Unavailable { .. }
            | ReplicationError::NotLeader { .. }
            | ReplicationError::Dropped(_)
            | ReplicationError::Unreachable(_)
            | ReplicationError::Stopped => KvError::Unavailable(e.to_string()),
            ReplicationError::Ambiguous(_) => KvError::Ambiguous(e.to_string()),
            ReplicationError::RangeNotFound(_) => KvError::Misrouted(e.to_string()),
            other => KvError::Replication(other),
        }
    }
}

/// Result alias for KV operations.
pub type Result<T> = std::result::Result<T, KvError>;

/// A key rendered for humans: printable ASCII as-is, everything else (and the
/// backslash) as `\xNN`.
pub fn printable_key(key: &[u8]) -> String {
    let mut s = String::with_capacity(key.len());
    for &b in key {
        if b.is_ascii_graphic() && b != b'\\' || b == b' ' {
            s.push(char::from(b));
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_key_escapes_non_printables() {
        assert_eq!(printable_key(b"abc"), "abc");
        assert_eq!(printable_key(b"a\x00\xff\\ b"), "a\\x00\\xff\\x5c b");
    }
}
