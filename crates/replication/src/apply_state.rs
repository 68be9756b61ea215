//! [`ApplyState`]: how far a replica's state machine has got; and
//! [`TruncatedState`]: where its log begins.
//!
//! The two records have different writers, so they live under different
//! keys and neither thread ever overwrites the other's:
//!
//! * The **apply state** is written by the apply side (`apply.rs`) in the
//!   *same* engine batch as the data of the entry it records, so after a
//!   crash the data and "applied up to" agree exactly: entries above
//!   `applied_index` are re-applied from the log, none twice, none skipped.
//!   That is why applying can skip the fsync — the Raft log already holds
//!   every committed entry durably. `applied_term` is the term of that
//!   entry (a snapshot cut at `applied_index` needs it); `conf_state` the
//!   membership as of `applied_index` — a replica restarts with it and
//!   re-applies later configuration changes from the log.
//! * The **truncated state** is written by the Raft thread when it compacts
//!   the log: the last entry removed and its term. Raft needs that term to
//!   check the next append, so it outlives the entry.
//!
//! Installing a snapshot writes both (while the apply side is idle for the
//! range), and so does bootstrapping a range.
//!
//! Encodings: the apply state is a format byte ([`APPLY_STATE_FORMAT`]),
//! two big-endian `u64`s, then the protobuf `ConfState`; the truncated state
//! is two big-endian `u64`s. A store written in another format is refused
//! at open, never misread.

use protobuf::Message as _;
use raft::prelude::ConfState;
use shoal_storage::{ColumnFamily, WriteBatch};

use crate::RangeId;
use crate::error::{ReplicationError, Result};
use crate::keys;

/// A replica's apply progress. See the module documentation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApplyState {
    /// The last log index whose effects are in the data column family.
    pub applied_index: u64,
    /// The term of the entry at `applied_index`.
    pub applied_term: u64,
    /// Voters and learners as of `applied_index`.
    pub conf_state: ConfState,
}

/// Where a replica's log begins. See the module documentation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TruncatedState {
    /// The last index removed from the log.
    pub index: u64,
    /// Its term.
    pub term: u64,
}

/// The apply state's format (1 was written before the truncated state had
/// its own record).
pub const APPLY_STATE_FORMAT: u8 = 2;

fn corrupt(what: &str) -> ReplicationError {
    ReplicationError::Corrupt(format!("{what} is truncated"))
}

/// The big-endian `u64` at word `i` of `bytes`.
fn word(bytes: &[u8], i: usize, what: &str) -> Result<u64> {
    let raw: [u8; 8] = bytes
        .get(i * 8..i * 8 + 8)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| corrupt(what))?;
    Ok(u64::from_be_bytes(raw))
}

impl ApplyState {
    /// The on-disk form.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(32);
        out.push(APPLY_STATE_FORMAT);
        out.extend_from_slice(&self.applied_index.to_be_bytes());
        out.extend_from_slice(&self.applied_term.to_be_bytes());
        let conf = self
            .conf_state
            .write_to_bytes()
            .map_err(|e| ReplicationError::Codec(e.to_string()))?;
        out.extend_from_slice(&conf);
        Ok(out)
    }

    /// Parses [`ApplyState::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<ApplyState> {
        let what = "apply state";
        let (&format, bytes) = bytes.split_first().ok_or_else(|| corrupt(what))?;
        if format != APPLY_STATE_FORMAT {
            return Err(ReplicationError::Corrupt(format!(
                "apply state format {format} is not {APPLY_STATE_FORMAT}: the store was written by another version of Shoal"
            )));
        }
        let conf_state = ConfState::parse_from_bytes(bytes.get(16..).ok_or_else(|| corrupt(what))?)
            .map_err(|e| ReplicationError::Corrupt(format!("apply state: {e}")))?;
        Ok(ApplyState {
            applied_index: word(bytes, 0, what)?,
            applied_term: word(bytes, 1, what)?,
            conf_state,
        })
    }

    /// Adds the write of this state for `range` to `batch`.
    pub fn put(&self, range: RangeId, batch: &mut WriteBatch) -> Result<()> {
        batch.put_cf(ColumnFamily::Raft, keys::apply_state(range), self.encode()?);
        Ok(())
    }
}

impl TruncatedState {
    /// The on-disk form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        out.extend_from_slice(&self.index.to_be_bytes());
        out.extend_from_slice(&self.term.to_be_bytes());
        out
    }

    /// Parses [`TruncatedState::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<TruncatedState> {
        let what = "truncated state";
        if bytes.len() != 16 {
            return Err(corrupt(what));
        }
        Ok(TruncatedState {
            index: word(bytes, 0, what)?,
            term: word(bytes, 1, what)?,
        })
    }

    /// Adds the write of this state for `range` to `batch`.
    pub fn put(&self, range: RangeId, batch: &mut WriteBatch) {
        batch.put_cf(
            ColumnFamily::Raft,
            keys::truncated_state(range),
            self.encode(),
        );
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
            applied_term: 3,
            conf_state: ConfState::from((vec![1, 2, 3], vec![4])),
        };
        assert_eq!(ApplyState::decode(&state.encode().unwrap()).unwrap(), state);
        assert!(ApplyState::decode(&[1, 2, 3]).is_err());
        let mut other_format = state.encode().unwrap();
        other_format[0] = 1;
        assert!(ApplyState::decode(&other_format).is_err());
        let truncated = TruncatedState { index: 40, term: 2 };
        assert_eq!(
            TruncatedState::decode(&truncated.encode()).unwrap(),
            truncated
        );
        assert!(TruncatedState::decode(&[0; 15]).is_err());
    }
}
