//! Span configurations: per-span settings of how ranges are shaped, set
//! from SQL with `ALTER TABLE t CONFIGURE ZONE USING range_max_bytes = …`
//! and replicated in the first range (CockroachDB's zone configs, reduced
//! to what Shoal acts on).
//!
//! A record `s z <start key>` holds the span's end (`None`: unbounded) and
//! its `range_max_bytes`: a range whose versions take more bytes than that
//! is split in two (`split.rs`). Where no record covers a key, the default
//! [`DEFAULT_RANGE_MAX_BYTES`] (512 MiB, CockroachDB's) applies. A node
//! reads the records from its own replica of the first range.

use shoal_storage::{Engine, StorageError, WriteBatch};

use crate::command::{Command, Reply};
use crate::error::{KvError, Result};
use crate::mvcc;
use crate::store::Kv;

/// Above this many bytes a range is split, unless configured otherwise.
pub const DEFAULT_RANGE_MAX_BYTES: u64 = 512 << 20;

/// The smallest `range_max_bytes` accepted: smaller ranges would cost more
/// in Raft groups than they save in data moved.
pub const MIN_RANGE_MAX_BYTES: u64 = 64 << 10;

const PREFIX: &[u8] = b"sz";

fn record_key(start: &[u8]) -> Vec<u8> {
    let mut key = PREFIX.to_vec();
    key.extend_from_slice(start);
    key
}

fn corrupt(what: &str) -> KvError {
    StorageError::Corrupt(format!("span config: {what}")).into()
}

/// Adds the record of span `[start, end)` to `batch` (applied by the first
/// range's state machine).
pub(crate) fn put(start: &[u8], end: Option<&[u8]>, max_bytes: u64, batch: &mut WriteBatch) {
    let mut value = max_bytes.to_be_bytes().to_vec();
    if let Some(end) = end {
        value.extend_from_slice(end);
        value.push(1);
    }
    batch.put(record_key(start), value);
}

/// The `range_max_bytes` that applies at `key`, from the local replica.
pub(crate) fn range_max_bytes(engine: &dyn Engine, key: &[u8]) -> Result<u64> {
    let end = mvcc::prefix_end(PREFIX).unwrap_or_default();
    let mut found = DEFAULT_RANGE_MAX_BYTES;
    // Few records (one per configured table): a scan is cheap. The last
    // record starting at or before `key` whose span covers it wins.
    for pair in engine.scan(PREFIX, Some(&end)) {
        let (k, value) = pair?;
        let start = &k[PREFIX.len()..];
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
            found = u64::from_be_bytes(*max);
        }
    }
    Ok(found)
}

impl Kv {
    /// Sets `range_max_bytes` for the keys in `[start, end)`.
    pub fn set_range_max_bytes(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        max_bytes: u64,
    ) -> Result<()> {
        if max_bytes < MIN_RANGE_MAX_BYTES {
            return Err(KvError::InvalidSetting(format!(
                "range_max_bytes: {max_bytes} is below the minimum of {MIN_RANGE_MAX_BYTES}"
            )));
        }
        let command = Command::SetSpanConfig {
            start: start.to_vec(),
            end: end.map(<[u8]>::to_vec),
            max_bytes,
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
        put(b"b", Some(b"d"), 1 << 20, &mut batch);
        put(b"c", Some(b"c\x80"), 2 << 20, &mut batch);
        put(b"x", None, 3 << 20, &mut batch);
        engine.write(batch, false).unwrap();
        let max = |k: &[u8]| range_max_bytes(&engine, k).unwrap();
        assert_eq!(max(b"a"), DEFAULT_RANGE_MAX_BYTES);
        assert_eq!(max(b"b"), 1 << 20);
        assert_eq!(max(b"c\x10"), 2 << 20);
        assert_eq!(max(b"c\x90"), 1 << 20);
        assert_eq!(max(b"e"), DEFAULT_RANGE_MAX_BYTES);
        assert_eq!(max(b"zz"), 3 << 20);
    }
}
