//! [`ReplicaBounds`]: the bounds and generation of every initialized
//! replica on a node, as of its applied index — what the node's requests
//! are routed by.
//!
//! Written by the apply thread when a replica opens, splits, merges or
//! installs a snapshot; read by every request, which asks which local
//! replica holds a key. A node may hold thousands of replicas, so that
//! question is answered through an index by start key in O(log n), not by
//! looking at each replica.
//!
//! Local replicas' spans do not overlap, except for a moment when one is
//! stale — a replica that has not yet applied a split next to a split-off
//! replica that arrived by snapshot, or one merged away whose deletion is
//! pending. A key is then answered by the replica starting nearest below
//! it (the narrower, newer one); callers check the answer again after
//! their read barrier, which lets the stale replica catch up.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use crate::{RangeBounds, RangeId};

/// See the module documentation.
#[derive(Debug, Default)]
pub struct ReplicaBounds {
    by_range: HashMap<RangeId, (RangeBounds, u64)>,
    /// The ranges of `by_range` by start key (more than one only for a
    /// moment: module docs).
    by_start: BTreeMap<Vec<u8>, BTreeSet<RangeId>>,
}

impl ReplicaBounds {
    /// Publishes `range`'s bounds and generation; returns what it replaced.
    pub fn insert(
        &mut self,
        range: RangeId,
        layout: (RangeBounds, u64),
    ) -> Option<(RangeBounds, u64)> {
        self.by_start
            .entry(layout.0.start.clone())
            .or_default()
            .insert(range);
        let replaced = self.by_range.insert(range, layout);
        if let Some((old, _)) = &replaced
            && self
                .by_range
                .get(&range)
                .is_some_and(|(b, _)| b.start != old.start)
        {
            self.unindex(&old.start, range);
        }
        replaced
    }

    /// Drops `range` from the index under `start`.
    fn unindex(&mut self, start: &[u8], range: RangeId) {
        if let Some(ranges) = self.by_start.get_mut(start) {
            ranges.remove(&range);
            if ranges.is_empty() {
                self.by_start.remove(start);
            }
        }
    }

    /// Unpublishes `range`.
    pub fn remove(&mut self, range: &RangeId) -> Option<(RangeBounds, u64)> {
        let removed = self.by_range.remove(range);
        if let Some((bounds, _)) = &removed {
            self.unindex(&bounds.start, *range);
        }
        removed
    }

    pub fn get(&self, range: &RangeId) -> Option<&(RangeBounds, u64)> {
        self.by_range.get(range)
    }

    pub fn contains_key(&self, range: &RangeId) -> bool {
        self.by_range.contains_key(range)
    }

    pub fn len(&self) -> usize {
        self.by_range.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_range.is_empty()
    }

    pub fn keys(&self) -> impl Iterator<Item = &RangeId> {
        self.by_range.keys()
    }

    pub fn values(&self) -> impl Iterator<Item = &(RangeBounds, u64)> {
        self.by_range.values()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&RangeId, &(RangeBounds, u64))> {
        self.by_range.iter()
    }

    /// The local replica holding `key`, with its bounds (module docs).
    pub fn holding(&self, key: &[u8]) -> Option<(RangeId, &RangeBounds)> {
        let (_, ranges) = self
            .by_start
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(key)))
            .next_back()?;
        ranges
            .iter()
            .filter_map(|range| Some((*range, &self.by_range.get(range)?.0)))
            .find(|(_, bounds)| bounds.contains(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(start: &str, end: Option<&str>) -> (RangeBounds, u64) {
        (
            RangeBounds {
                start: start.as_bytes().to_vec(),
                end: end.map(|e| e.as_bytes().to_vec()),
            },
            1,
        )
    }

    #[test]
    fn keys_find_the_replica_holding_them() {
        let mut replicas = ReplicaBounds::default();
        replicas.insert(1, bounds("", Some("f")));
        replicas.insert(7, bounds("f", Some("m")));
        replicas.insert(3, bounds("t", None));
        let holder = |key: &str| replicas.holding(key.as_bytes()).map(|(r, _)| r);
        assert_eq!(holder(""), Some(1));
        assert_eq!(holder("e"), Some(1));
        assert_eq!(holder("f"), Some(7));
        assert_eq!(holder("lzz"), Some(7));
        // "m".."t" is held elsewhere.
        assert_eq!(holder("m"), None);
        assert_eq!(holder("s"), None);
        assert_eq!(holder("zzz"), Some(3));
    }

    #[test]
    fn splits_merges_and_removals_keep_the_index_true() {
        let mut replicas = ReplicaBounds::default();
        replicas.insert(1, bounds("", None));
        // Split at "k": range 1 shrinks, range 2 appears.
        replicas.insert(1, bounds("", Some("k")));
        replicas.insert(2, bounds("k", None));
        assert_eq!(replicas.holding(b"z").map(|(r, _)| r), Some(2));
        // A snapshot moves range 2's start (it merged its left neighbour).
        replicas.insert(2, bounds("a", None));
        replicas.remove(&1);
        assert_eq!(replicas.holding(b"b").map(|(r, _)| r), Some(2));
        assert_eq!(replicas.holding(b"").map(|(r, _)| r), None);
        assert_eq!(replicas.len(), 1);
        replicas.remove(&2);
        assert!(replicas.is_empty());
        assert_eq!(replicas.holding(b"b"), None);
    }

    #[test]
    fn a_stale_wider_replica_yields_to_the_narrower_one() {
        let mut replicas = ReplicaBounds::default();
        // Range 1 has not applied its split at "m"; range 2 came by snapshot.
        replicas.insert(1, bounds("", None));
        replicas.insert(2, bounds("m", None));
        assert_eq!(replicas.holding(b"c").map(|(r, _)| r), Some(1));
        assert_eq!(replicas.holding(b"x").map(|(r, _)| r), Some(2));
    }
}
