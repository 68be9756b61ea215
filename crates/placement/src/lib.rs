//! Placement: which range owns a key, and which node holds which range.
//!
//! The key space is cut into **ranges**: contiguous, non-overlapping
//! intervals `[start_key, end_key)` that together cover every key. A range is
//! the unit of replication (one Raft group each) and of movement
//! between nodes. The [`RangeDirectory`] maps a key to its range.
//!
//! A range's bounds and generation live in its replicas' apply state
//! (`shoal-replication`), changed only by applying a split, and each node
//! routes keys over its own replicas first (`shoal-kv`'s `store.rs`),
//! describing them with [`RangeDescriptor`]s.
//! Descriptors of every range live in replicated meta records, cached by
//! every node (`shoal-kv`'s `directory.rs`), so a node routes keys of
//! ranges it holds no replica of, refreshing a stale entry when a range
//! answers "not here". [`rebalance`] decides which replicas and leaderships
//! move so every node carries its share.
//!
//! # Invariants of a directory
//!
//! Ranges are sorted by `start_key`; the first starts at the empty key; each
//! range's `end_key` is the next range's `start_key`; only the last range has
//! `end_key = None` (unbounded). So every key has exactly one range and
//! `lookup` cannot fail.

pub mod rebalance;

/// Describes one range: its identity, key interval and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeDescriptor {
    /// Stable identity of the range.
    pub range_id: u64,
    /// First key of the range (inclusive).
    pub start_key: Vec<u8>,
    /// End of the range (exclusive); `None` = the end of the key space.
    pub end_key: Option<Vec<u8>>,
    /// Bumped on every split, merge or replica change.
    pub generation: u64,
}

impl RangeDescriptor {
    /// Whether `key` falls inside `[start_key, end_key)`.
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start_key.as_slice() && self.end_key.as_deref().is_none_or(|end| key < end)
    }
}

/// Why a set of descriptors is not a valid directory.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    /// The ranges leave a gap, overlap, or do not cover the key space.
    #[error("invalid range layout: {0}")]
    InvalidLayout(String),
}

/// The ordered list of ranges covering the key space.
#[derive(Debug, Clone)]
pub struct RangeDirectory {
    ranges: Vec<RangeDescriptor>,
}

impl RangeDirectory {
    /// A directory with one range (id 1, generation 1) covering every key.
    pub fn single() -> Self {
        Self {
            ranges: vec![RangeDescriptor {
                range_id: 1,
                start_key: Vec::new(),
                end_key: None,
                generation: 1,
            }],
        }
    }

    /// A directory from explicit descriptors, checked against the module's
    /// invariants (sorted, contiguous, covering).
    pub fn from_ranges(ranges: Vec<RangeDescriptor>) -> Result<Self, PlacementError> {
        let bad = |msg: String| Err(PlacementError::InvalidLayout(msg));
        let Some(first) = ranges.first() else {
            return bad("no ranges".into());
        };
        if !first.start_key.is_empty() {
            return bad("first range does not start at the empty key".into());
        }
        for pair in ranges.windows(2) {
            match &pair[0].end_key {
                Some(end) if *end == pair[1].start_key && pair[0].start_key < *end => {}
                _ => {
                    return bad(format!(
                        "range {} is not immediately followed by range {}",
                        pair[0].range_id, pair[1].range_id
                    ));
                }
            }
        }
        match ranges.last() {
            Some(last) if last.end_key.is_none() => Ok(Self { ranges }),
            _ => bad("last range is bounded".into()),
        }
    }

    /// The range owning `key`.
    pub fn lookup(&self, key: &[u8]) -> &RangeDescriptor {
        &self.ranges[self.lookup_index(key)]
    }

    /// The position in [`ranges`](Self::ranges) of the range owning `key`;
    /// for callers that keep per-range state in a parallel vector.
    pub fn lookup_index(&self, key: &[u8]) -> usize {
        // Ranges are sorted and contiguous from the empty key, so the owner is
        // the last range starting at or before `key`; index 0 always
        // qualifies, and a directory is never empty, so the index is in bounds.
        self.ranges
            .partition_point(|r| r.start_key.as_slice() <= key)
            .saturating_sub(1)
    }

    /// All ranges, in key order.
    pub fn ranges(&self) -> &[RangeDescriptor] {
        &self.ranges
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn range(id: u64, start: &[u8], end: Option<&[u8]>) -> RangeDescriptor {
        RangeDescriptor {
            range_id: id,
            start_key: start.to_vec(),
            end_key: end.map(<[u8]>::to_vec),
            generation: 1,
        }
    }

    #[test]
    fn single_range_owns_every_key() {
        let dir = RangeDirectory::single();
        assert_eq!(dir.ranges().len(), 1);
        for key in [&b""[..], b"a", b"\xff\xff"] {
            assert_eq!(dir.lookup(key).range_id, 1);
            assert!(dir.lookup(key).contains(key));
        }
    }

    #[test]
    fn lookup_picks_the_covering_range() {
        let dir = RangeDirectory::from_ranges(vec![
            range(1, b"", Some(b"m")),
            range(2, b"m", Some(b"t")),
            range(3, b"t", None),
        ])
        .unwrap();
        let cases: &[(&[u8], u64)] = &[
            (b"", 1),
            (b"l", 1),
            (b"m", 2),
            (b"s\xff", 2),
            (b"t", 3),
            (b"zz", 3),
        ];
        for (key, want) in cases {
            assert_eq!(dir.lookup(key).range_id, *want, "key {key:?}");
        }
    }

    #[test]
    fn rejects_bad_layouts() {
        let layouts = vec![
            vec![],
            vec![range(1, b"a", None)],
            vec![range(1, b"", Some(b"m"))],
            vec![range(1, b"", Some(b"m")), range(2, b"n", None)],
            vec![
                range(1, b"", Some(b"m")),
                range(2, b"m", Some(b"m")),
                range(3, b"m", None),
            ],
        ];
        for ranges in layouts {
            assert!(RangeDirectory::from_ranges(ranges).is_err());
        }
    }
}
