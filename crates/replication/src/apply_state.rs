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
//!   re-applies later configuration changes from the log; `bounds` the
//!   keys the range owns as of `applied_index`, and `generation` how many
//!   splits changed them (a split entry changes both, in the batch that
//!   applies it, so a replica's span always matches its applied index);
//!   `frozen` whether a merge froze the range (`apply/merge.rs`), with the
//!   freeze entry's index and timestamp floor.
//! * The **truncated state** is written by the Raft thread when it compacts
//!   the log: the last entry removed and its term. Raft needs that term to
//!   check the next append, so it outlives the entry.
//!
//! Installing a snapshot writes both (while the apply side is idle for the
//! range), and so does bootstrapping a range.
//!
//! Encodings: the apply state is a format byte ([`APPLY_STATE_FORMAT`]),
//! five big-endian `u64`s (index, term, generation, freeze index and
//! freeze floor, both zero when not frozen), the bounds
//! ([`RangeBounds::encode`]), then the protobuf `ConfState`; the truncated
//! state is two big-endian `u64`s. A store written in another format is
//! refused at open, never misread.

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
    /// The keys the range owns as of `applied_index`.
    pub bounds: RangeBounds,
    /// Bumped by every change of the range's bounds (split, merge), of its
    /// membership (but a learner added to a frozen range), and by freezing
    /// it.
    pub generation: u64,
    /// Set while the range is frozen for a merge.
    pub frozen: Option<Freeze>,
}

/// A range frozen for a merge (`apply/merge.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freeze {
    /// The log index of the freeze entry (never 0).
    pub index: u64,
    /// The timestamp floor the leader stamped on it.
    pub floor: u64,
}

impl Freeze {
    /// The two words stored for `frozen` (zeros: not frozen).
    pub fn words(frozen: Option<Freeze>) -> [u64; 2] {
        frozen.map_or([0, 0], |f| [f.index, f.floor])
    }

    /// The freeze two stored words describe.
    pub fn from_words(index: u64, floor: u64) -> Option<Freeze> {
        (index != 0).then_some(Freeze { index, floor })
    }
}

/// The keys a range owns: `[start, end)`, `end = None` meaning "to the end
/// of the key space". Keys here are the state machine's own (user keys);
/// it maps them to the engine spans holding their data
/// ([`StateMachine::data_spans`](crate::StateMachine::data_spans)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeBounds {
    /// First key (inclusive).
    pub start: Vec<u8>,
    /// Key after the last (exclusive); `None`: unbounded.
    pub end: Option<Vec<u8>>,
}

impl RangeBounds {
    /// Every key.
    pub fn everything() -> RangeBounds {
        RangeBounds::default()
    }

    /// Whether `key` is in `[start, end)`.
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start.as_slice() && self.end.as_deref().is_none_or(|end| key < end)
    }

    /// Whether `key` lies strictly inside: a place this range may split.
    pub fn splits_at(&self, key: &[u8]) -> bool {
        key > self.start.as_slice() && self.end.as_deref().is_none_or(|end| key < end)
    }

    /// Whether every key of `other` is in this span.
    pub fn covers(&self, other: &RangeBounds) -> bool {
        self.start <= other.start
            && match (&self.end, &other.end) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(mine), Some(theirs)) => theirs <= mine,
            }
    }

    /// Whether the two spans share a key.
    pub fn overlaps(&self, other: &RangeBounds) -> bool {
        let before = |a: &RangeBounds, b: &RangeBounds| {
            a.end
                .as_deref()
                .is_some_and(|end| end <= b.start.as_slice())
        };
        !before(self, other) && !before(other, self)
    }

    /// Appends the encoding: `u32` length and start, then `0` (unbounded)
    /// or `1`, `u32` length and end.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        let push = |out: &mut Vec<u8>, bytes: &[u8]| -> Result<()> {
            let len = u32::try_from(bytes.len())
                .map_err(|_| ReplicationError::Codec("range bound over 4 GiB".to_string()))?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(bytes);
            Ok(())
        };
        push(out, &self.start)?;
        match &self.end {
            None => out.push(0),
            Some(end) => {
                out.push(1);
                push(out, end)?;
            }
        }
        Ok(())
    }

    /// Parses [`RangeBounds::encode`]'s output from the front of `bytes`,
    /// leaving the rest.
    pub fn decode(bytes: &mut &[u8]) -> Result<RangeBounds> {
        fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
            if bytes.len() < n {
                return Err(corrupt("range bounds"));
            }
            let (head, rest) = bytes.split_at(n);
            *bytes = rest;
            Ok(head)
        }
        fn field(bytes: &mut &[u8]) -> Result<Vec<u8>> {
            let len = u32::from_be_bytes(
                take(bytes, 4)?
                    .try_into()
                    .map_err(|_| corrupt("range bounds"))?,
            );
            Ok(take(bytes, len as usize)?.to_vec())
        }
        let start = field(bytes)?;
        let end = match take(bytes, 1)? {
            [0] => None,
            [1] => Some(field(bytes)?),
            _ => return Err(corrupt("range bounds")),
        };
        Ok(RangeBounds { start, end })
    }
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
/// its own record; 2 before entry headers carried a timestamp floor — a
/// log written then would be misread, so such a store is refused; 3
/// before ranges could freeze, and is read as "not frozen").
pub const APPLY_STATE_FORMAT: u8 = 4;

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
        let mut out = Vec::with_capacity(48);
        out.push(APPLY_STATE_FORMAT);
        out.extend_from_slice(&self.applied_index.to_be_bytes());
        out.extend_from_slice(&self.applied_term.to_be_bytes());
        out.extend_from_slice(&self.generation.to_be_bytes());
        for word in Freeze::words(self.frozen) {
            out.extend_from_slice(&word.to_be_bytes());
        }
        self.bounds.encode(&mut out)?;
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
        let words = match format {
            APPLY_STATE_FORMAT => 5,
            3 => 3,
            _ => {
                return Err(ReplicationError::Corrupt(format!(
                    "apply state format {format} is not {APPLY_STATE_FORMAT}: the store was written by another version of Shoal"
                )));
            }
        };
        let frozen = if words == 5 {
            Freeze::from_words(word(bytes, 3, what)?, word(bytes, 4, what)?)
        } else {
            None
        };
        let mut rest = bytes.get(words * 8..).ok_or_else(|| corrupt(what))?;
        let bounds = RangeBounds::decode(&mut rest)?;
        let conf_state = ConfState::parse_from_bytes(rest)
            .map_err(|e| ReplicationError::Corrupt(format!("apply state: {e}")))?;
        Ok(ApplyState {
            applied_index: word(bytes, 0, what)?,
            applied_term: word(bytes, 1, what)?,
            conf_state,
            bounds,
            generation: word(bytes, 2, what)?,
            frozen,
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
        let mut state = ApplyState {
            applied_index: 42,
            applied_term: 3,
            conf_state: ConfState::from((vec![1, 2, 3], vec![4])),
            bounds: RangeBounds::everything(),
            generation: 1,
            frozen: None,
        };
        assert_eq!(ApplyState::decode(&state.encode().unwrap()).unwrap(), state);
        state.frozen = Some(Freeze {
            index: 40,
            floor: 99,
        });
        assert_eq!(ApplyState::decode(&state.encode().unwrap()).unwrap(), state);
        state.bounds = RangeBounds {
            start: b"m".to_vec(),
            end: Some(b"t\x00".to_vec()),
        };
        state.generation = 7;
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

#[cfg(test)]
mod bounds_tests {
    #![allow(clippy::unwrap_used)]

    use super::RangeBounds;

    fn b(start: &str, end: Option<&str>) -> RangeBounds {
        RangeBounds {
            start: start.as_bytes().to_vec(),
            end: end.map(|e| e.as_bytes().to_vec()),
        }
    }

    #[test]
    fn containment_split_points_and_overlap() {
        let left = b("", Some("m"));
        let right = b("m", None);
        assert!(left.contains(b"") && left.contains(b"l") && !left.contains(b"m"));
        assert!(right.contains(b"m") && right.contains(b"zzz"));
        assert!(left.splits_at(b"a") && !left.splits_at(b"") && !left.splits_at(b"m"));
        assert!(!left.overlaps(&right) && !right.overlaps(&left));
        assert!(b("a", Some("n")).overlaps(&right));
        assert!(RangeBounds::everything().overlaps(&left));
        assert!(RangeBounds::everything().covers(&right) && left.covers(&b("a", Some("m"))));
        assert!(!left.covers(&right) && !right.covers(&RangeBounds::everything()));
        let mut encoded = Vec::new();
        left.encode(&mut encoded).unwrap();
        encoded.push(9);
        let mut rest = encoded.as_slice();
        assert_eq!(RangeBounds::decode(&mut rest).unwrap(), left);
        assert_eq!(rest, [9]);
        assert!(RangeBounds::decode(&mut &[0u8, 0, 0, 5, 1][..]).is_err());
    }
}
