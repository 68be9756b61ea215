//! Where a replica's Raft state lives in the engine's Raft column family.
//!
//! Every key of a replica starts with `'r'` and the range id (8 bytes,
//! big-endian), so one replica's state is one contiguous span and deleting a
//! replica is one range delete:
//!
//! | key                          | value                                   |
//! |------------------------------|-----------------------------------------|
//! | `r <range> h`                | Raft `HardState` (term, vote, commit)   |
//! | `r <range> a`                | [`ApplyState`](crate::ApplyState)       |
//! | `r <range> t`                | [`TruncatedState`](crate::apply_state::TruncatedState) |
//! | `r <range> l <index>`        | log entry `index` (8 bytes, big-endian) |
//!
//! Big-endian indexes make the log sort in index order, so "entries from
//! `lo` to `hi`" is one forward scan and truncation is one range delete.
//! Node-level keys (the node's identity) start with `'n'` and never collide.

use crate::RangeId;

const REPLICA: u8 = b'r';
const HARD_STATE: u8 = b'h';
const APPLY_STATE: u8 = b'a';
const LOG: u8 = b'l';
const TRUNCATED_STATE: u8 = b't';
const TOMBSTONE: u8 = b'x';

fn replica_key(range: RangeId, kind: u8, extra: usize) -> Vec<u8> {
    let mut key = Vec::with_capacity(10 + extra);
    key.push(REPLICA);
    key.extend_from_slice(&range.to_be_bytes());
    key.push(kind);
    key
}

/// The key of a replica's hard state.
pub fn hard_state(range: RangeId) -> Vec<u8> {
    replica_key(range, HARD_STATE, 0)
}

/// The key of a replica's apply state.
pub fn apply_state(range: RangeId) -> Vec<u8> {
    replica_key(range, APPLY_STATE, 0)
}

/// The key of a replica's truncated state (where its log begins).
pub fn truncated_state(range: RangeId) -> Vec<u8> {
    replica_key(range, TRUNCATED_STATE, 0)
}

/// The key of log entry `index` of a replica.
pub fn log_entry(range: RangeId, index: u64) -> Vec<u8> {
    let mut key = replica_key(range, LOG, 8);
    key.extend_from_slice(&index.to_be_bytes());
    key
}

/// The index encoded in a log entry key, if `key` is one of `range`'s.
pub fn log_index(range: RangeId, key: &[u8]) -> Option<u64> {
    let prefix = replica_key(range, LOG, 0);
    let rest = key.strip_prefix(prefix.as_slice())?;
    Some(u64::from_be_bytes(rest.try_into().ok()?))
}

/// Every key of a replica: `[start, end)`.
pub fn replica_span(range: RangeId) -> (Vec<u8>, Vec<u8>) {
    let mut start = vec![REPLICA];
    start.extend_from_slice(&range.to_be_bytes());
    let mut end = vec![REPLICA];
    match range.checked_add(1) {
        Some(next) => end.extend_from_slice(&next.to_be_bytes()),
        None => end = vec![REPLICA + 1],
    }
    (start, end)
}

/// The key of a node-level record named `name`.
/// The tombstone of a removed replica of `range` (outside its replica
/// span, so deleting the replica keeps it): the applied index it reached,
/// `u64` big-endian.
pub fn tombstone(range: RangeId) -> Vec<u8> {
    let mut key = vec![TOMBSTONE];
    key.extend_from_slice(&range.to_be_bytes());
    key
}

/// The span of every tombstone.
pub fn tombstone_span() -> (Vec<u8>, Vec<u8>) {
    (vec![TOMBSTONE], vec![TOMBSTONE + 1])
}

pub fn node(name: &str) -> Vec<u8> {
    let mut key = vec![b'n'];
    key.extend_from_slice(name.as_bytes());
    key
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn log_keys_sort_by_index_and_stay_inside_the_replica() {
        let keys: Vec<Vec<u8>> = [0, 1, 255, 256, u64::MAX]
            .iter()
            .map(|&i| log_entry(7, i))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        let (start, end) = replica_span(7);
        for key in keys
            .iter()
            .chain([&hard_state(7), &apply_state(7), &truncated_state(7)])
        {
            assert!(start <= *key && *key < end);
        }
        assert!(log_entry(8, 0) >= end);
        assert_eq!(log_index(7, &log_entry(7, 300)), Some(300));
        assert_eq!(log_index(8, &log_entry(7, 300)), None);
        assert!(node("id") >= replica_span(u64::MAX).1 || node("id") < replica_span(0).0);
    }
}
