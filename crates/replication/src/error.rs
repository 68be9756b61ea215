//! Why replication failed, by meaning.
//!
//! Callers above (the KV layer) need to tell apart "retry elsewhere"
//! ([`ReplicationError::NotLeader`]), "retry, nothing happened"
//! ([`ReplicationError::Dropped`]), "we cannot know"
//! ([`ReplicationError::Ambiguous`]) and "the node is broken" (storage,
//! corruption).

use shoal_storage::StorageError;

use crate::{NodeId, RangeId};

/// A replication failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReplicationError {
    /// The local engine failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Stored Raft state could not be decoded.
    #[error("corrupt raft state: {0}")]
    Corrupt(String),
    /// A protobuf message could not be encoded or decoded.
    #[error("raft message codec: {0}")]
    Codec(String),
    /// This node does not hold a replica of the range.
    #[error("range {0} has no replica on this node")]
    RangeNotFound(RangeId),
    /// This replica cannot order the request; `leader` is the hint, if
    /// known.
    #[error("range {range} is led by {}", leader.map_or("an unknown node".to_string(), |l| format!("node {l}")))]
    NotLeader {
        /// The range.
        range: RangeId,
        /// The leader this replica last heard of.
        leader: Option<NodeId>,
    },
    /// The proposal was certainly not applied (its log slot went to another
    /// entry); retrying is safe.
    #[error("proposal to range {0} was dropped by a leadership change")]
    Dropped(RangeId),
    /// The outcome is unknown: it may or may not have been applied.
    #[error("the outcome of the proposal to range {0} is unknown")]
    Ambiguous(RangeId),
    /// No leader with a quorum answered in time: the range cannot serve
    /// requests now (a majority of its replicas is down or cut off).
    #[error("range {range} is unavailable: no quorum answered within {waited_ms} ms")]
    Unavailable {
        /// The range.
        range: RangeId,
        /// How long the request waited.
        waited_ms: u64,
    },
    /// The node's replication thread has stopped (fatal storage error or
    /// shutdown).
    #[error("replication on this node has stopped")]
    Stopped,
    /// Another node could not be reached: nothing was sent to it.
    #[error("{0}")]
    Unreachable(String),
    /// Raft itself refused the operation.
    #[error("raft: {0}")]
    Raft(String),
}

impl From<raft::Error> for ReplicationError {
    fn from(e: raft::Error) -> Self {
        ReplicationError::Raft(e.to_string())
    }
}

/// Result alias for replication.
pub type Result<T, E = ReplicationError> = std::result::Result<T, E>;
