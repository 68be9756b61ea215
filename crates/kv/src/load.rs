//! Splitting ranges by load: a range serving more requests per second than
//! `kv.range_split.load_qps_threshold` (2500 by default, CockroachDB's
//! default) is split at a key that divides its load.
//!
//! # Counting
//!
//! Every request a node serves from a local replica — a point read, each
//! key a commit writes, the first key of each range a scan reads — counts
//! towards that range, and its key may enter a small **reservoir sample**
//! of the keys requested (every key has the same chance to be in it,
//! however many came). Each sampled key then counts the requests that come
//! *after* it on each side: how the load would divide if the range were
//! split there from now on. Counting is per node: a node splits a range
//! when the load *it* serves exceeds the threshold, whether it leads the
//! range or not (any node can ask for a split; one already made is a
//! no-op).
//!
//! # Deciding
//!
//! The maintenance loop calls [`Kv::split_by_load`] every half second. A
//! range whose window (at least a second old) saw more than the threshold
//! is split at the sampled key whose later requests divide most evenly,
//! among keys strictly inside the range with at least a quarter of them
//! on each side. Every window then starts over. Counting what came after
//! a key, not what was sampled around it, is what keeps two loads from
//! being split for nothing (CockroachDB's load splitter decides the same
//! way): a range hot on one key — nothing divides it — and a range
//! written at ever larger keys (a sequence, a timestamp, a hidden rowid),
//! where every request lands beyond every key sampled before it, so the
//! right-hand side of any split would take all the load again.
//! Sampled keys are whole row keys (reads and writes of rows), so a split
//! never cuts a row.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::Rng;
use shoal_replication::RangeId;

use crate::error::Result;
use crate::settings;
use crate::store::Kv;

/// Keys kept per range.
const SAMPLES: usize = 32;
/// Requests a sampled key must have counted, on both sides together,
/// before its division is trusted.
const MIN_COUNTED: u64 = 32;
/// The shortest window a rate is measured over.
const MIN_WINDOW: Duration = Duration::from_secs(1);

/// A sampled key and the requests that came after it, by side.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sample {
    key: Vec<u8>,
    /// Later requests for smaller keys.
    left: u64,
    /// Later requests for larger keys.
    right: u64,
}

/// One range's requests in the current window.
#[derive(Debug)]
struct RangeLoad {
    since: Instant,
    requests: u64,
    samples: Vec<Sample>,
}

impl RangeLoad {
    fn new() -> Self {
        RangeLoad {
            since: Instant::now(),
            requests: 0,
            samples: Vec::new(),
        }
    }
}

/// The requests this node served, per range. See the module docs.
#[derive(Debug, Default)]
pub struct LoadTracker {
    ranges: Mutex<HashMap<RangeId, RangeLoad>>,
}

impl LoadTracker {
    /// Counts a request for `key` in `range`.
    pub(crate) fn record(&self, range: RangeId, key: &[u8]) {
        let mut ranges = self.ranges.lock();
        let load = ranges.entry(range).or_insert_with(RangeLoad::new);
        load.requests += 1;
        for sample in &mut load.samples {
            match key.cmp(&sample.key) {
                std::cmp::Ordering::Less => sample.left += 1,
                std::cmp::Ordering::Greater => sample.right += 1,
                std::cmp::Ordering::Equal => {}
            }
        }
        let fresh = || Sample {
            key: key.to_vec(),
            left: 0,
            right: 0,
        };
        if load.samples.len() < SAMPLES {
            load.samples.push(fresh());
        } else {
            // Reservoir sampling: the n-th key replaces a sample with
            // probability SAMPLES / n.
            let slot = rand::thread_rng().gen_range(0..load.requests);
            if let Some(sample) = usize::try_from(slot)
                .ok()
                .and_then(|slot| load.samples.get_mut(slot))
            {
                *sample = fresh();
            }
        }
    }

    /// The ranges whose window is over with more than `threshold` requests
    /// per second, each with its samples; starts every finished window
    /// over.
    fn hot(&self, threshold: u64) -> Vec<(RangeId, f64, Vec<Sample>)> {
        let mut ranges = self.ranges.lock();
        let mut hot = Vec::new();
        ranges.retain(|&range, load| {
            let elapsed = load.since.elapsed();
            if elapsed < MIN_WINDOW {
                return true;
            }
            let qps = load.requests as f64 / elapsed.as_secs_f64();
            if qps > threshold as f64 {
                hot.push((range, qps, std::mem::take(&mut load.samples)));
            }
            // A quiet range is forgotten; a busy one starts a new window
            // at its next request.
            false
        });
        hot
    }
}

/// The sampled key whose later requests divide most evenly, among those
/// that counted at least [`MIN_COUNTED`] with at least a quarter on each
/// side, accepted by `inside`.
fn split_point(samples: &[Sample], inside: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
    samples
        .iter()
        .filter(|s| {
            let counted = s.left + s.right;
            counted >= MIN_COUNTED
                && 4 * s.left >= counted
                && 4 * s.right >= counted
                && inside(&s.key)
        })
        .min_by_key(|s| s.left.abs_diff(s.right) * 1_000 / (s.left + s.right))
        .map(|s| s.key.clone())
}

impl Kv {
    /// Splits the ranges this node served above the load threshold (module
    /// docs); returns the new ranges.
    pub fn split_by_load(&self) -> Result<Vec<RangeId>> {
        let threshold = settings::get_u64(self.engine.as_ref(), settings::LOAD_QPS_THRESHOLD)?;
        let mut created = Vec::new();
        for (range, qps, samples) in self.load.hot(threshold) {
            let Some(bounds) = self.bounds.read().get(&range).map(|(b, _)| b.clone()) else {
                continue;
            };
            let Some(key) = split_point(&samples, |k| bounds.splits_at(k)) else {
                tracing::debug!(range, qps, "a hot range with no key dividing its load");
                continue;
            };
            tracing::info!(
                range,
                qps = qps as u64,
                key = %crate::error::printable_key(&key),
                "splitting a range by load"
            );
            let sticky_until = self
                .clock
                .wall_now()
                .saturating_add(crate::merge::LOAD_SPLIT_STICKY.as_micros() as u64);
            created.push(self.split_sticky(&key, sticky_until)?);
        }
        Ok(created)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The split point after `keys` were requested, in order, of a range
    /// holding everything but `outside`.
    fn split_after(keys: impl IntoIterator<Item = Vec<u8>>, outside: &[u8]) -> Option<Vec<u8>> {
        let tracker = LoadTracker::default();
        for key in keys {
            tracker.record(1, &key);
        }
        let samples = tracker
            .ranges
            .lock()
            .remove(&1)
            .unwrap_or_else(RangeLoad::new)
            .samples;
        split_point(&samples, |k| k != outside)
    }

    fn key(n: u32) -> Vec<u8> {
        n.to_be_bytes().to_vec()
    }

    #[test]
    fn the_split_point_divides_the_requests_that_came_after_it() {
        // Keys spread evenly, over and over: split near the middle.
        let spread = (0..20_000).map(|i| key((i * 7_919) % 1_000));
        let point = split_after(spread, b"").unwrap();
        assert!(point > key(250) && point < key(750), "{point:?}");
        // One hot key: nothing divides it.
        assert_eq!(split_after((0..20_000).map(|_| key(5)), b""), None);
        // Ever larger keys: every split would leave all the load on its
        // right.
        assert_eq!(split_after((0..20_000).map(key), b""), None);
        // Mostly one key, some on either side: nothing divides it well
        // enough, or close to it.
        let lumpy = (0..20_000).map(|i| key(if i % 8 == 0 { i % 1_000 } else { 500 }));
        if let Some(point) = split_after(lumpy, b"") {
            assert!(point > key(250) && point < key(750), "{point:?}");
        }
        // Only keys inside the range qualify.
        let few = (0..20_000).map(|i| key(i % 3));
        assert_eq!(split_after(few.clone(), b""), Some(key(1)));
        assert_eq!(split_after(few, &key(1)), None);
    }
}
