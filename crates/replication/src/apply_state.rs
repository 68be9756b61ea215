//! [`ApplyState`]: how far a replica's state machine has got, and where its
//! log begins.
//!
//! The apply state is written in the *same* engine batch as the data of the
//! entry it records, so after a crash the data and "applied up to" agree
//! exactly: entries above `applied_index` are re-applied from the log, none
//! twice, none skipped. That is why applying can skip the fsync — the Raft
//! log already holds every committed entry durably.
//!
//! `truncated_index` / `truncated_term` name the last entry removed from the
//! log (by compaction or because a snapshot replaced it). Raft needs the
//! term of that entry to check the next append, so it outlives the entry.
//!
//! `conf_state` is the membership as of `applied_index`; a replica restarts
//! with it and re-applies later configuration changes from the log.
//!
//! Encoding: three big-endian `u64`s, then the protobuf `ConfState`.

use protobuf::Message as _;
use raft::prelude::ConfState;

use crate::error::{ReplicationError, Result};

/// A replica's apply progress and log start. See the module documentation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApplyState {
    /// The last log index whose effects are in the data column family.
    pub applied_index: u64,
    /// The last index removed from the log.
    pub truncated_index: u64,
    /// The term of `truncated_index`.
    pub truncated_term: u64,
    /// Voters and learners as of `applied_index`.
    pub conf_state: ConfState,
}

impl ApplyState {
    /// The on-disk form.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(32);
        out.extend_from_slice(&self.applied_index.to_be_bytes());
        out.extend_from_slice(&self.truncated_index.to_be_bytes());
        out.extend_from_slice(&self.truncated_term.to_be_bytes());
        let conf = self
            .conf_state
            .write_to_bytes()
            .map_err(|e| ReplicationError::Codec(e.to_string()))?;
        out.extend_from_slice(&conf);
        Ok(out)
    }

    /// Parses [`ApplyState::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<ApplyState> {
        let corrupt = || ReplicationError::Corrupt("apply state is truncated".to_string());
        let word = |i: usize| -> Result<u64> {
            let raw: [u8; 8] = bytes
                .get(i * 8..i * 8 + 8)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(corrupt)?;
            Ok(u64::from_be_bytes(raw))
        };
        let conf_state = ConfState::parse_from_bytes(bytes.get(24..).ok_or_else(corrupt)?)
            .map_err(|e| ReplicationError::Corrupt(format!("apply state: {e}")))?;
        Ok(ApplyState {
            applied_index: word(0)?,
            truncated_index: word(1)?,
            truncated_term: word(2)?,
            conf_state,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let state = ApplyState {
            applied_index: 42,
            truncated_index: 40,
            truncated_term: 3,
            conf_state: ConfState::from((vec![1, 2, 3], vec![4])),
        };
        assert_eq!(ApplyState::decode(&state.encode().unwrap()).unwrap(), state);
        assert!(ApplyState::decode(&[1, 2, 3]).is_err());
    }
}
