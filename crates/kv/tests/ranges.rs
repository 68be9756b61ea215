//! A store whose key space is split into several ranges: reads and scans
//! cross them, a transaction writing one range commits, one writing two is
//! refused without writing anything, GC and purges work range by range,
//! and everything survives a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use shoal_kv::{Kv, KvError};
use shoal_storage::RocksEngine;

fn letters() -> Vec<Vec<u8>> {
    (b'a'..=b'z').map(|c| vec![c]).collect()
}

fn scan_all(kv: &Arc<Kv>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let txn = kv.begin().unwrap();
    let mut out = Vec::new();
    let mut from = Vec::new();
    loop {
        // A small limit, so scans resume inside and across ranges.
        let chunk = txn.scan(&from, b"", 5).unwrap();
        let Some((last, _)) = chunk.last() else { break };
        from = last.clone();
        from.push(0);
        out.extend(chunk);
    }
    txn.commit().unwrap();
    out
}

#[test]
fn split_ranges_serve_reads_and_one_range_writes_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let last_ts = {
        let kv = Kv::open(Arc::new(RocksEngine::open(dir.path()).unwrap())).unwrap();
        let txn = kv.begin().unwrap();
        for k in letters() {
            txn.put(k.clone(), k.repeat(2)).unwrap();
        }
        txn.commit().unwrap();

        let m = kv.split_at(b"m").unwrap();
        assert_ne!(m, 1);
        assert_eq!(kv.split_at(b"m").unwrap(), m, "splitting twice is a no-op");
        assert_eq!(kv.split_at(b"").unwrap(), 1, "the first range starts there");
        let t = kv.split_at(b"t").unwrap();
        let layout: Vec<(u64, Vec<u8>)> = kv
            .local_ranges()
            .into_iter()
            .map(|d| (d.range_id, d.start_key))
            .collect();
        assert_eq!(
            layout,
            [(1, b"".to_vec()), (m, b"m".to_vec()), (t, b"t".to_vec())]
        );

        let all = scan_all(&kv);
        assert_eq!(all.len(), 26);
        assert!(all.iter().all(|(k, v)| *v == k.repeat(2)));

        // Two ranges in one transaction: refused, nothing written.
        let txn = kv.begin().unwrap();
        txn.put(b"b".to_vec(), b"new".to_vec()).unwrap();
        txn.put(b"x".to_vec(), b"new".to_vec()).unwrap();
        assert!(matches!(txn.commit(), Err(KvError::CrossRangeWrite(..))));
        let txn = kv.begin().unwrap();
        assert_eq!(txn.get(b"b").unwrap(), Some(b"bb".to_vec()));
        assert_eq!(txn.get(b"x").unwrap(), Some(b"xx".to_vec()));
        txn.rollback();

        // One range: commits.
        let txn = kv.begin().unwrap();
        txn.put(b"u".to_vec(), b"new".to_vec()).unwrap();
        txn.delete(b"v".to_vec()).unwrap();
        let ts = txn.commit().unwrap();
        let txn = kv.begin().unwrap();
        assert!(txn.read_ts() >= ts);
        assert_eq!(txn.get(b"u").unwrap(), Some(b"new".to_vec()));
        assert_eq!(txn.get(b"v").unwrap(), None);
        txn.rollback();

        // GC runs range by range: overwritten versions go everywhere.
        for k in [b"c", b"p", b"w"] {
            let txn = kv.begin().unwrap();
            txn.put(k.to_vec(), b"again".to_vec()).unwrap();
            txn.commit().unwrap();
        }
        std::thread::sleep(Duration::from_millis(2));
        let stats = kv.gc(Duration::ZERO).unwrap();
        assert!(stats.versions_removed >= 4, "{stats:?}");
        assert_eq!(scan_all(&kv).len(), 25);
        kv.latest_ts()
    };

    // Restart: the ranges, their data and their timestamps come back.
    let kv = Kv::open(Arc::new(RocksEngine::open(dir.path()).unwrap())).unwrap();
    assert_eq!(kv.local_ranges().len(), 3);
    assert_eq!(kv.latest_ts(), last_ts);
    let all = scan_all(&kv);
    assert_eq!(all.len(), 25);
    let txn = kv.begin().unwrap();
    txn.put(b"z".to_vec(), b"after restart".to_vec()).unwrap();
    assert!(txn.commit().unwrap() > last_ts);

    // Purging a span deletes across ranges, one range per transaction.
    assert_eq!(kv.purge_span(b"k", b"\xff", 3).unwrap(), 15);
    let left: Vec<Vec<u8>> = scan_all(&kv).into_iter().map(|(k, _)| k).collect();
    assert_eq!(left, (b'a'..=b'j').map(|c| vec![c]).collect::<Vec<_>>());
}
