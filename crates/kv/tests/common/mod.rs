//! Helpers shared by the KV crate's integration tests.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use shoal_kv::Kv;

/// Every visible pair in [start, end) (empty end: to the end of the key
/// space), read at one fresh snapshot `chunk` pairs at a time, so the scan
/// resumes inside and across ranges.
pub fn scan_span(kv: &Arc<Kv>, start: &[u8], end: &[u8], chunk: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let txn = kv.begin().unwrap();
    let mut out = Vec::new();
    let mut from = start.to_vec();
    loop {
        let pairs = txn.scan(&from, end, chunk).unwrap();
        let Some((last, _)) = pairs.last() else { break };
        from = last.clone();
        from.push(0);
        out.extend(pairs);
    }
    txn.commit().unwrap();
    out
}
