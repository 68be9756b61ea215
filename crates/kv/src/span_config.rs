//! Span configurations: per-span settings of how ranges are shaped, set
//! from SQL with `ALTER TABLE t CONFIGURE ZONE USING range_max_bytes = …,
//! range_min_bytes = …` and replicated in the first range (CockroachDB's
//! zone configs, reduced to what Shoal acts on).
//!
//! A record `s z <start key>` holds the span's end (`None`: unbounded) and
//! its `range_max_bytes`: a range whose versions take more bytes than that
//! is split in two (`split.rs`). A record `s y <start key>`, laid out the
//! same way, holds its `range_min_bytes`: a range with fewer bytes merges
//! with its right-hand neighbour when both fit under the maximum
//! (`merge.rs`). Where no record covers a key, the defaults apply:
//! [`DEFAULT_RANGE_MAX_BYTES`] (512 MiB) and [`DEFAULT_RANGE_MIN_BYTES`]
//! (128 MiB), CockroachDB's — except that an unset minimum never exceeds
//! a quarter of the maximum, so a span given a small maximum alone still
//! merges only ranges much smaller than it splits. A minimum set
//! explicitly must stay below the maximum. A node reads the records from
//! its own replica of the first range.

use shoal_storage::{Engine, StorageError, WriteBatch};

use crate::command::{Command, Reply};
use crate::error::{KvError, Result};
use crate::mvcc;
use crate::store::Kv;

/// Above this many bytes a range is split, unless configured otherwise.
pub const DEFAULT_RANGE_MAX_BYTES: u64 = 512 << 20;

/// Below this many bytes a range merges with its neighbour, unless
/// configured otherwise (and at most a quarter of the maximum).
pub const DEFAULT_RANGE_MIN_BYTES: u64 = 128 << 20;

/// The smallest `range_max_bytes` accepted: smaller ranges would cost more
/// in Raft groups than they save in data moved.
pub const MIN_RANGE_MAX_BYTES: u64 = 64 << 10;

const PREFIX: &[u8] = b"sz";
const MIN_PREFIX: &[u8] = b"sy";

fn record_key(prefix: &[u8], start: &[u8]) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(start);
    key
}

fn corrupt(what: &str) -> KvError {
    StorageError::Corrupt(format!("span config: {what}")).into()
}

/// Adds the records of span `[start, end)` to `batch`, for the sizes
/// given (applied by the first range's state machine).
pub(crate) fn put(
    start: &[u8],
    end: Option<&[u8]>,
    max_bytes: Option<u64>,
    min_bytes: Option<u64>,
    batch: &mut WriteBatch,
) {
    for (prefix, bytes) in [(PREFIX, max_bytes), (MIN_PREFIX, min_bytes)] {
        let Some(bytes) = bytes else { continue };
        let mut value = bytes.to_be_bytes().to_vec();
        if let Some(end) = end {
            value.extend_from_slice(end);
            value.push(1);
        }
        batch.put(record_key(prefix, start), value);
    }
}

/// The `range_max_bytes` that applies at `key`, from the local replica.
pub(crate) fn range_max_bytes(engine: &dyn Engine, key: &[u8]) -> Result<u64> {
    Ok(covering(engine, PREFIX, key)?.unwrap_or(DEFAULT_RANGE_MAX_BYTES))
}

/// The `range_min_bytes` that applies at `key`, from the local replica.
pub(crate) fn range_min_bytes(engine: &dyn Engine, key: &[u8]) -> Result<u64> {
    match covering(engine, MIN_PREFIX, key)? {
        Some(min) => Ok(min),
        None => Ok(DEFAULT_RANGE_MIN_BYTES.min(range_max_bytes(engine, key)? / 4)),
    }
}

/// The value of the record under `prefix` whose span covers `key`, if any.
fn covering(engine: &dyn Engine, prefix: &[u8], key: &[u8]) -> Result<Option<u64>> {
    let end = mvcc::prefix_end(prefix).unwrap_or_default();
    let mut found = None;
    // Few records (one per configured table): a scan is cheap. The last
    // record starting at or before `key` whose span covers it wins.
    for pair in engine.scan(prefix, Some(&end)) {
        let (k, value) = pair?;
        let start = &k[prefix.len()..];
        if start > key {
            break;
        }
        let (max, rest) = value
            .split_first_chunk::<8>()
            .ok_or_else(|| corrupt("short record"))?;
        let covers = match rest.split_last() {
            None => true,
            Some((1, span_end)) => key < span_end,
            Some(_) => return Err(corrupt("bad end marker")),
        };
        if covers {
            found = Some(u64::from_be_bytes(*max));
        }
    }
    Ok(found)
}

impl Kv {
    /// Sets `range_max_bytes` and `range_min_bytes` (those given) for the
    /// keys in `[start, end)`. An explicit minimum must stay below the
    /// maximum.
    pub fn set_range_bytes(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        max_bytes: Option<u64>,
        min_bytes: Option<u64>,
    ) -> Result<()> {
        if let Some(max) = max_bytes
            && max < MIN_RANGE_MAX_BYTES
        {
            return Err(KvError::InvalidSetting(format!(
                "range_max_bytes: {max} is below the minimum of {MIN_RANGE_MAX_BYTES}"
            )));
        }
        let max = match max_bytes {
            Some(max) => max,
            None => self.range_max_bytes(start)?,
        };
        let explicit_min = match min_bytes {
            Some(min) => Some(min),
            None => covering(self.engine.as_ref(), MIN_PREFIX, start)?,
        };
        if let Some(min) = explicit_min
            && min >= max
        {
            return Err(KvError::InvalidSetting(format!(
                "range_min_bytes ({min}) must be less than range_max_bytes ({max})"
            )));
        }
        let command = Command::SetSpanConfig {
            start: start.to_vec(),
            end: end.map(<[u8]>::to_vec),
            max_bytes,
            min_bytes,
        };
        match self.propose_cluster(&command, self.timeout)? {
            Reply::SettingStored => Ok(()),
            other => Err(other.unexpected("a span configuration")),
        }
    }

    /// The `range_max_bytes` that applies at `key` (this node's view).
    pub fn range_max_bytes(&self, key: &[u8]) -> Result<u64> {
        range_max_bytes(self.engine.as_ref(), key)
    }

    /// The `range_min_bytes` that applies at `key` (this node's view).
    pub fn range_min_bytes(&self, key: &[u8]) -> Result<u64> {
        range_min_bytes(self.engine.as_ref(), key)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use shoal_storage::MemoryEngine;

    use super::*;

    #[test]
    fn the_covering_record_applies_else_the_default() {
        let engine = MemoryEngine::new();
        let mut batch = WriteBatch::new();
        put(b"b", Some(b"d"), Some(1 << 20), None, &mut batch);
        put(
            b"c",
            Some(b"c\x80"),
            Some(2 << 20),
            Some(1 << 19),
            &mut batch,
        );
        put(b"x", None, Some(3 << 20), None, &mut batch);
        engine.write(batch, false).unwrap();
        let max = |k: &[u8]| range_max_bytes(&engine, k).unwrap();
        assert_eq!(max(b"a"), DEFAULT_RANGE_MAX_BYTES);
        assert_eq!(max(b"b"), 1 << 20);
        assert_eq!(max(b"c\x10"), 2 << 20);
        assert_eq!(max(b"c\x90"), 1 << 20);
        assert_eq!(max(b"e"), DEFAULT_RANGE_MAX_BYTES);
        assert_eq!(max(b"zz"), 3 << 20);
        let min = |k: &[u8]| range_min_bytes(&engine, k).unwrap();
        assert_eq!(min(b"a"), DEFAULT_RANGE_MIN_BYTES);
        // Unset: a quarter of the maximum.
        assert_eq!(min(b"b"), 1 << 18);
        assert_eq!(min(b"c\x10"), 1 << 19);
    }
}
