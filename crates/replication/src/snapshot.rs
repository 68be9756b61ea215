//! Range snapshots: a replica's data, shipped whole to a replica that cannot
//! catch up from the log.
//!
//! A snapshot is taken from the leader's engine at its applied index: the
//! raw pairs of the range's span of the data column family. It is cut by
//! the apply side (`apply.rs`), the only writer of the range's data, between
//! two tasks, so the engine holds exactly the state at `applied_index` when
//! the pairs are read.
//!
//! Encoding: a sequence of `u32 key length, key, u32 value length, value`
//! (big-endian lengths). The receiver replaces its span with the pairs in
//! the same batch that installs the snapshot's apply state. A snapshot's
//! size is bounded by the range's size, which splits keep small; the TCP
//! transport sends it in chunks.

use shoal_storage::{ColumnFamily, Engine, WriteBatch};

use crate::error::{ReplicationError, Result};

/// The data column family keys a range owns: `[start, end)`.
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

/// Reads the span's pairs from `engine` into snapshot data.
pub fn capture(engine: &dyn Engine, span: &DataSpan) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for pair in engine.scan_cf(ColumnFamily::Data, &span.start, Some(&span.end)) {
        let (key, value) = pair?;
        push_field(&mut out, &key)?;
        push_field(&mut out, &value)?;
    }
    Ok(out)
}

/// Adds to `batch` the replacement of the span's data by the snapshot's.
pub fn install(data: &[u8], span: &DataSpan, batch: &mut WriteBatch) -> Result<()> {
    batch.delete_range_cf(ColumnFamily::Data, span.start.clone(), span.end.clone());
    let mut rest = data;
    while !rest.is_empty() {
        let key = take_field(&mut rest)?;
        let value = take_field(&mut rest)?;
        batch.put_cf(ColumnFamily::Data, key, value);
    }
    Ok(())
}

/// The value of `key` in snapshot data, if present.
pub fn find(data: &[u8], key: &[u8]) -> Result<Option<Vec<u8>>> {
    let mut rest = data;
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
    fn capture_then_install_replaces_the_span() {
        let source = MemoryEngine::new();
        let mut batch = WriteBatch::new();
        for k in [b"a", b"b", b"c"] {
            batch.put(k.to_vec(), k.repeat(3));
        }
        source.write(batch, false).unwrap();
        let span = DataSpan {
            start: b"b".to_vec(),
            end: vec![0xff],
        };
        let data = capture(&source, &span).unwrap();

        let target = MemoryEngine::new();
        let mut batch = WriteBatch::new();
        batch.put(b"a".to_vec(), b"keep".to_vec());
        batch.put(b"stale".to_vec(), b"gone".to_vec());
        target.write(batch, false).unwrap();
        let mut batch = WriteBatch::new();
        install(&data, &span, &mut batch).unwrap();
        target.write(batch, false).unwrap();
        let pairs: Vec<_> = target.scan(b"", None).map(Result::unwrap).collect();
        assert_eq!(
            pairs,
            [
                (b"a".to_vec(), b"keep".to_vec()),
                (b"b".to_vec(), b"bbb".to_vec()),
                (b"c".to_vec(), b"ccc".to_vec()),
            ]
        );
        assert!(install(&data[..5], &span, &mut WriteBatch::new()).is_err());
        assert_eq!(find(&data, b"c").unwrap(), Some(b"ccc".to_vec()));
        assert_eq!(find(&data, b"a").unwrap(), None);
    }
}
