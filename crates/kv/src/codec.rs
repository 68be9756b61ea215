//! The byte-level pieces every KV wire format is built from: replicated
//! commands (`command.rs`), range descriptors (`directory.rs`) and requests
//! between nodes (`remote.rs`).
//!
//! All integers are big-endian. A *field* is `len u32 | bytes`; an optional
//! value is `0` (none) or `1` followed by it. Decoding never panics: a
//! short or malformed input is a [`KvError`] saying the bytes are corrupt.

use shoal_replication::ReplicationError;

use crate::clock::Timestamp;
use crate::command::Writes;
use crate::error::{KvError, Result};
use crate::reads::Span;

/// Appends a write set: count, then each key and optional value.
pub(crate) fn put_writes(out: &mut Vec<u8>, writes: &Writes) {
    out.extend_from_slice(&(writes.len() as u32).to_be_bytes());
    for (key, value) in writes {
        put_field(out, key);
        match value {
            Some(v) => {
                out.push(1);
                put_field(out, v);
            }
            None => out.push(0),
        }
    }
}

/// Appends a list of key spans: a `u32` count, then each start and end.
pub(crate) fn put_spans(out: &mut Vec<u8>, spans: &[Span]) {
    out.extend_from_slice(&(spans.len() as u32).to_be_bytes());
    for span in spans {
        put_field(out, &span.start);
        put_field(out, &span.end);
    }
}

/// Appends an optional field.
pub(crate) fn put_optional_field(out: &mut Vec<u8>, field: Option<&[u8]>) {
    match field {
        None => out.push(0),
        Some(field) => {
            out.push(1);
            put_field(out, field);
        }
    }
}

/// Appends a list of node ids: a `u32` count, then each id.
pub(crate) fn put_nodes(out: &mut Vec<u8>, nodes: &[u64]) {
    out.extend_from_slice(&(nodes.len() as u32).to_be_bytes());
    for node in nodes {
        out.extend_from_slice(&node.to_be_bytes());
    }
}

/// Appends an optional timestamp.
pub(crate) fn put_optional_ts(out: &mut Vec<u8>, ts: Option<Timestamp>) {
    match ts {
        None => out.push(0),
        Some(ts) => {
            out.push(1);
            out.extend_from_slice(&ts.to_be_bytes());
        }
    }
}

/// Appends a field.
/// A list of keys: `n u32 | n × field`.
pub(crate) fn put_keys(out: &mut Vec<u8>, keys: &[Vec<u8>]) {
    out.extend_from_slice(&(keys.len() as u32).to_be_bytes());
    for key in keys {
        put_field(out, key);
    }
}

pub(crate) fn put_field(out: &mut Vec<u8>, field: &[u8]) {
    // Keys and values are bounded far below 4 GiB by the SQL layer.
    out.extend_from_slice(&(field.len() as u32).to_be_bytes());
    out.extend_from_slice(field);
}

/// The error of undecodable bytes.
pub(crate) fn corrupt(what: &str) -> KvError {
    KvError::Replication(ReplicationError::Corrupt(format!("kv wire format: {what}")))
}

/// Reads a wire format front to back.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn u8(&mut self) -> Result<u8> {
        let (&b, rest) = self.0.split_first().ok_or_else(|| corrupt("truncated"))?;
        self.0 = rest;
        Ok(b)
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        let (n, rest) = self
            .0
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt("truncated"))?;
        self.0 = rest;
        Ok(u32::from_be_bytes(*n))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        let (n, rest) = self
            .0
            .split_first_chunk::<8>()
            .ok_or_else(|| corrupt("truncated"))?;
        self.0 = rest;
        Ok(u64::from_be_bytes(*n))
    }

    pub(crate) fn field(&mut self) -> Result<Vec<u8>> {
        let len = self.u32()? as usize;
        let field = self.0.get(..len).ok_or_else(|| corrupt("truncated"))?;
        self.0 = &self.0[len..];
        Ok(field.to_vec())
    }

    pub(crate) fn optional_field(&mut self) -> Result<Option<Vec<u8>>> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.field()?)),
            _ => Err(corrupt("bad optional tag")),
        }
    }

    /// Reads a list [`put_nodes`] wrote.
    pub(crate) fn nodes(&mut self) -> Result<Vec<u64>> {
        let n = self.u32()? as usize;
        (0..n).map(|_| self.u64()).collect()
    }

    pub(crate) fn u128(&mut self) -> Result<u128> {
        Ok((u128::from(self.u64()?) << 64) | u128::from(self.u64()?))
    }

    /// [`put_keys`]'s output.
    pub(crate) fn keys(&mut self) -> Result<Vec<Vec<u8>>> {
        let n = self.u32()? as usize;
        let mut keys = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            keys.push(self.field()?);
        }
        Ok(keys)
    }

    pub(crate) fn writes(&mut self) -> Result<Writes> {
        let n = self.u32()? as usize;
        let mut writes = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            let key = self.field()?;
            let value = match self.u8()? {
                0 => None,
                1 => Some(self.field()?),
                _ => return Err(corrupt("bad value tag")),
            };
            writes.push((key, value));
        }
        Ok(writes)
    }

    /// Reads a list [`put_spans`] wrote.
    pub(crate) fn spans(&mut self) -> Result<Vec<Span>> {
        let n = self.u32()? as usize;
        let mut spans = Vec::with_capacity(n.min(1 << 12));
        for _ in 0..n {
            spans.push(Span {
                start: self.field()?,
                end: self.field()?,
            });
        }
        Ok(spans)
    }

    pub(crate) fn optional_ts(&mut self) -> Result<Option<Timestamp>> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.u64()?)),
            _ => Err(corrupt("bad timestamp tag")),
        }
    }

    pub(crate) fn finish(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(corrupt("trailing bytes"))
        }
    }
}
