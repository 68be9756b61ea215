//! Splitting ranges by load: a range serving more requests per second than
//! `kv.range_split.load_qps_threshold` (2500 by default, CockroachDB's
//! default) is split at a key that divides its load.
//!
//! # Counting
//!
//! Every request a node serves from a local replica — a point read, each
//! key a commit writes, the first key of each range a scan reads — counts
//! towards that range, and its key enters a small **reservoir sample** of
//! the keys requested (every key has the same chance to be in it, however
//! many came). Counting is per node: a node splits a range when the load
//! *it* serves exceeds the threshold, whether it leads the range or not
//! (any node can ask for a split; one already made is a no-op).
//!
//! # Deciding
//!
//! The maintenance loop calls [`Kv::split_by_load`] every half second. A
//! range whose window (at least a second old) saw more than the threshold
//! is split at the sampled key closest to halving the sampled requests,
//! among keys strictly inside the range that leave at least a quarter on
//! each side — so a range hot on one key is not split by load (it would
//! not divide anything). Every window then starts over.
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
const SAMPLES: usize = 64;
/// Samples needed before a split point is trusted.
const MIN_SAMPLES: usize = 16;
/// The shortest window a rate is measured over.
const MIN_WINDOW: Duration = Duration::from_secs(1);

/// One range's requests in the current window.
#[derive(Debug)]
struct RangeLoad {
    since: Instant,
    requests: u64,
    samples: Vec<Vec<u8>>,
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
        if load.samples.len() < SAMPLES {
            load.samples.push(key.to_vec());
        } else {
            // Reservoir sampling: the n-th key replaces a sample with
            // probability SAMPLES / n.
            let slot = rand::thread_rng().gen_range(0..load.requests);
            if let Some(sample) = usize::try_from(slot)
                .ok()
                .and_then(|slot| load.samples.get_mut(slot))
            {
                sample.clear();
                sample.extend_from_slice(key);
            }
        }
    }

    /// The ranges whose window is over with more than `threshold` requests
    /// per second, each with its sampled keys sorted; starts every finished
    /// window over.
    fn hot(&self, threshold: u64) -> Vec<(RangeId, f64, Vec<Vec<u8>>)> {
        let mut ranges = self.ranges.lock();
        let mut hot = Vec::new();
        ranges.retain(|&range, load| {
            let elapsed = load.since.elapsed();
            if elapsed < MIN_WINDOW {
                return true;
            }
            let qps = load.requests as f64 / elapsed.as_secs_f64();
            if qps > threshold as f64 && load.samples.len() >= MIN_SAMPLES {
                let mut samples = std::mem::take(&mut load.samples);
                samples.sort();
                hot.push((range, qps, samples));
            }
            // A quiet range is forgotten; a busy one starts a new window
            // at its next request.
            false
        });
        hot
    }
}

/// The sampled key (`samples` sorted) that best halves the samples — the
/// one with the share of samples below it closest to half — among those
/// leaving at least a quarter on each side and accepted by `inside`.
fn split_point(samples: &[Vec<u8>], inside: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
    let n = samples.len();
    let mut best: Option<(usize, &Vec<u8>)> = None;
    for (i, key) in samples.iter().enumerate() {
        // `i` samples lie below the first occurrence of `key`.
        if i > 0 && samples[i - 1] == *key {
            continue;
        }
        if 4 * i < n || 4 * (n - i) < n || !inside(key) {
            continue;
        }
        let distance = i.abs_diff(n / 2);
        if best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, key));
        }
    }
    best.map(|(_, key)| key.clone())
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

    fn keys(text: &str) -> Vec<Vec<u8>> {
        let mut keys: Vec<Vec<u8>> = text.split(' ').map(|k| k.as_bytes().to_vec()).collect();
        keys.sort();
        keys
    }

    #[test]
    fn the_split_point_halves_the_samples() {
        let anywhere = |_: &[u8]| true;
        assert_eq!(
            split_point(&keys("a b c d e f g h"), anywhere),
            Some(b"e".to_vec())
        );
        // One hot key: nothing divides it.
        assert_eq!(split_point(&keys("c c c c c c c c"), anywhere), None);
        // Mostly one key, some on either side: at it, or just after it.
        let point = split_point(&keys("a b c c c c d e"), anywhere);
        assert!(
            matches!(point.as_deref(), Some(b"c") | Some(b"d")),
            "{point:?}"
        );
        // Only keys inside the range qualify.
        assert_eq!(
            split_point(&keys("a b c d e f g h"), |k: &[u8]| k != b"e"),
            Some(b"d".to_vec())
        );
    }
}
