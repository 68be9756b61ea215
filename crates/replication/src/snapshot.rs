//! Range snapshots: a replica's data, shipped whole to a replica that cannot
//! catch up from the log.
//!
//! A snapshot is taken from the leader's engine at its applied index: the
//! raw pairs of the range's span of the data column family. It is cut by
//! the apply side (`apply.rs`), the only writer of the range's data, between
//! two tasks, so the engine holds exactly the state at `applied_index` when
//! the pairs are read.
//!
//! Encoding: the range's bounds, generation and freeze ([`SnapshotHeader`]), then a
//! sequence of `u32 key length, key, u32 value length, value` (big-endian
//! lengths). The receiver replaces the data spans of the snapshot's bounds
//! (what [`StateMachine::data_spans`](crate::StateMachine::data_spans) maps
//! them to) with the pairs, in the same batch that installs the snapshot's
//! apply state. A snapshot's size is bounded by the range's size, which
//! splits keep small; the TCP transport sends it in chunks.

use shoal_storage::{ColumnFamily, Engine, WriteBatch};

use crate::apply_state::{Freeze, RangeBounds};
use crate::error::{ReplicationError, Result};

/// A key interval of the data column family: `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSpan {
    /// First key (inclusive).
    pub start: Vec<u8>,
    /// Key after the last (exclusive).
    pub end: Vec<u8>,
}

impl DataSpan {
    /// Every key the KV layer writes. Its keys never start with `0xff`,
    /// so `[ "", [0xff] )` is the whole data key space.
    pub fn everything() -> DataSpan {
        DataSpan {
            start: Vec::new(),
            end: vec![0xff],
        }
    }
}

/// What a snapshot says about the range besides its data and membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// The keys the range owns at the snapshot's index.
    pub bounds: RangeBounds,
    /// Its generation there.
    pub generation: u64,
    /// Whether it was frozen for a merge there.
    pub frozen: Option<Freeze>,
}

impl SnapshotHeader {
    /// Splits snapshot data into its header and its pairs.
    pub fn parse(data: &[u8]) -> Result<(SnapshotHeader, &[u8])> {
        let mut rest = data;
        let bounds = RangeBounds::decode(&mut rest)?;
        let mut words = [0u64; 3];
        for word in &mut words {
            let (raw, tail) = rest
                .split_first_chunk::<8>()
                .ok_or_else(|| ReplicationError::Corrupt("snapshot header is truncated".into()))?;
            *word = u64::from_be_bytes(*raw);
            rest = tail;
        }
        Ok((
            SnapshotHeader {
                bounds,
                generation: words[0],
                frozen: Freeze::from_words(words[1], words[2]),
            },
            rest,
        ))
    }
}

/// Snapshot data: `header`, then the pairs of `spans` in `engine`.
pub fn capture(
    engine: &dyn Engine,
    header: &SnapshotHeader,
    spans: &[DataSpan],
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    header.bounds.encode(&mut out)?;
    out.extend_from_slice(&header.generation.to_be_bytes());
    for word in Freeze::words(header.frozen) {
        out.extend_from_slice(&word.to_be_bytes());
    }
    for span in spans {
        for pair in engine.scan_cf(ColumnFamily::Data, &span.start, Some(&span.end)) {
            let (key, value) = pair?;
            push_field(&mut out, &key)?;
            push_field(&mut out, &value)?;
        }
    }
    Ok(out)
}

/// Adds to `batch` the replacement of `spans` by the snapshot's `pairs`
/// (the data after its header).
pub fn install(pairs: &[u8], spans: &[DataSpan], batch: &mut WriteBatch) -> Result<()> {
    for span in spans {
        batch.delete_range_cf(ColumnFamily::Data, span.start.clone(), span.end.clone());
    }
    let mut rest = pairs;
    while !rest.is_empty() {
        let key = take_field(&mut rest)?;
        let value = take_field(&mut rest)?;
        batch.put_cf(ColumnFamily::Data, key, value);
    }
    Ok(())
}

/// The value of `key` in snapshot data, if present.
pub fn find(data: &[u8], key: &[u8]) -> Result<Option<Vec<u8>>> {
    let (_, mut rest) = SnapshotHeader::parse(data)?;
    while !rest.is_empty() {
        let k = take_field(&mut rest)?;
        let v = take_field(&mut rest)?;
        if k == key {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

fn push_field(out: &mut Vec<u8>, field: &[u8]) -> Result<()> {
    let len = u32::try_from(field.len())
        .map_err(|_| ReplicationError::Codec("snapshot field over 4 GiB".to_string()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(field);
    Ok(())
}

fn take_field(rest: &mut &[u8]) -> Result<Vec<u8>> {
    let corrupt = || ReplicationError::Corrupt("snapshot data is truncated".to_string());
    let (len, tail) = rest.split_first_chunk::<4>().ok_or_else(corrupt)?;
    let len = u32::from_be_bytes(*len) as usize;
    let field = tail.get(..len).ok_or_else(corrupt)?;
    *rest = &tail[len..];
    Ok(field.to_vec())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use shoal_storage::MemoryEngine;

    #[test]
    fn capture_then_install_replaces_the_spans() {
        let source = MemoryEngine::new();
        let mut batch = WriteBatch::new();
        for k in [b"a", b"b", b"c", b"x"] {
            batch.put(k.to_vec(), k.repeat(3));
        }
        source.write(batch, false).unwrap();
        let spans = [
            DataSpan {
                start: b"b".to_vec(),
                end: b"d".to_vec(),
            },
            DataSpan {
                start: b"x".to_vec(),
                end: vec![0xff],
            },
        ];
        let header = SnapshotHeader {
            bounds: RangeBounds {
                start: b"b".to_vec(),
                end: None,
            },
            generation: 3,
            frozen: Some(Freeze { index: 8, floor: 5 }),
        };
        let data = capture(&source, &header, &spans).unwrap();
        let (parsed, pairs) = SnapshotHeader::parse(&data).unwrap();
        assert_eq!(parsed, header);

        let target = MemoryEngine::new();
        let mut batch = WriteBatch::new();
        batch.put(b"a".to_vec(), b"keep".to_vec());
        batch.put(b"e".to_vec(), b"keep".to_vec());
        batch.put(b"bz".to_vec(), b"gone".to_vec());
        target.write(batch, false).unwrap();
        let mut batch = WriteBatch::new();
        install(pairs, &spans, &mut batch).unwrap();
        target.write(batch, false).unwrap();
        let pairs: Vec<_> = target.scan(b"", None).map(Result::unwrap).collect();
        assert_eq!(
            pairs,
            [
                (b"a".to_vec(), b"keep".to_vec()),
                (b"b".to_vec(), b"bbb".to_vec()),
                (b"c".to_vec(), b"ccc".to_vec()),
                (b"e".to_vec(), b"keep".to_vec()),
                (b"x".to_vec(), b"xxx".to_vec()),
            ]
        );
        assert!(install(&data[..5], &spans, &mut WriteBatch::new()).is_err());
        assert_eq!(find(&data, b"c").unwrap(), Some(b"ccc".to_vec()));
        assert_eq!(find(&data, b"a").unwrap(), None);
    }
}
