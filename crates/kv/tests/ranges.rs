//! A store whose key space is split into several ranges: reads and scans
//! cross them, a transaction writing several commits all or nothing, GC
//! and purges work range by range, and everything survives a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use shoal_kv::{Kv, KvError};
use shoal_storage::RocksEngine;

fn letters() -> Vec<Vec<u8>> {
    (b'a'..=b'z').map(|c| vec![c]).collect()
}

fn scan_all(kv: &Arc<Kv>) -> Vec<(Vec<u8>, Vec<u8>)> {
    // A small chunk, so scans resume inside and across ranges.
    common::scan_span(kv, b"", b"", 5)
}

#[test]
fn split_ranges_serve_reads_and_atomic_writes_and_survive_restart() {
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

        // Three ranges in one transaction: all or nothing.
        let before = kv.begin().unwrap();
        let txn = kv.begin().unwrap();
        txn.put(b"b".to_vec(), b"new".to_vec()).unwrap();
        txn.put(b"n".to_vec(), b"new".to_vec()).unwrap();
        txn.put(b"x".to_vec(), b"new".to_vec()).unwrap();
        let loser = kv.begin().unwrap();
        loser.put(b"x".to_vec(), b"lost".to_vec()).unwrap();
        loser.put(b"c".to_vec(), b"lost".to_vec()).unwrap();
        let ts = txn.commit().unwrap();
        // First committer wins across ranges too; the loser wrote nothing.
        assert!(matches!(loser.commit(), Err(KvError::WriteConflict { .. })));
        let after = kv.begin().unwrap();
        assert!(after.read_ts() >= ts);
        for k in [b"b", b"n", b"x"] {
            assert_eq!(after.get(k).unwrap(), Some(b"new".to_vec()));
            assert_eq!(before.get(k).unwrap(), Some(k.repeat(2)), "old snapshot");
        }
        assert_eq!(after.get(b"c").unwrap(), Some(b"cc".to_vec()));
        before.rollback();
        after.rollback();

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

#[test]
fn a_range_is_usable_the_moment_its_split_returns() {
    // The apply thread publishes a new range's bounds as it applies the
    // split; the Raft thread opens the replica a moment later. Requests in
    // between wait for it instead of failing. Several threads at once make
    // the moment likely to be met.
    let kv = Kv::open(Arc::new(shoal_storage::MemoryEngine::new())).unwrap();
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let kv = kv.clone();
            std::thread::spawn(move || {
                for i in 0..25u32 {
                    let key = format!("key{t}-{i:03}").into_bytes();
                    kv.split_at(&key).unwrap();
                    let txn = kv.begin().unwrap();
                    assert_eq!(txn.get(&key).unwrap(), None);
                    txn.put(key.clone(), b"v".to_vec()).unwrap();
                    txn.commit().unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(scan_all(&kv).len(), 100);
    assert_eq!(kv.local_ranges().len(), 101);
}

/// A range read more than `kv.range_split.load_qps_threshold` times a
/// second is split at a key dividing the reads; a range hot on one key is
/// not.
#[test]
fn a_range_under_load_splits_where_its_load_divides() {
    let dir = tempfile::tempdir().unwrap();
    let kv = Kv::open(Arc::new(RocksEngine::open(dir.path()).unwrap())).unwrap();
    // A commit of 26 keys is one request to the range, below a threshold
    // of 10: its window ends without a split.
    kv.set_cluster_setting("kv.range_split.load_qps_threshold", "10")
        .unwrap();
    let txn = kv.begin().unwrap();
    for k in letters() {
        txn.put(k.clone(), k.clone()).unwrap();
    }
    txn.commit().unwrap();
    kv.set_cluster_setting("kv.range_split.load_qps_threshold", "50")
        .unwrap();
    // The load so far ends its window without a split.
    std::thread::sleep(Duration::from_millis(1_100));
    assert!(kv.split_by_load().unwrap().is_empty());
    // One hot key: nowhere to split.
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_millis(1_100) {
        let txn = kv.begin().unwrap();
        txn.get(b"c").unwrap();
        txn.commit().unwrap();
    }
    assert!(kv.split_by_load().unwrap().is_empty());
    // Reads spread over "f".."u": split near the middle of them.
    let started = std::time::Instant::now();
    let mut i = 0;
    while started.elapsed() < Duration::from_millis(1_100) {
        let txn = kv.begin().unwrap();
        txn.get(&[b'f' + (i % 16) as u8]).unwrap();
        txn.commit().unwrap();
        i += 1;
    }
    let created = kv.split_by_load().unwrap();
    assert_eq!(created.len(), 1, "{i} reads");
    let ranges = kv.local_ranges();
    let split = ranges
        .iter()
        .find(|r| r.range_id == created[0])
        .unwrap()
        .start_key
        .clone();
    assert!(
        split.as_slice() > b"g".as_slice() && split.as_slice() < b"t".as_slice(),
        "split at {split:?}"
    );
    // Quiet now: nothing more to split, and every row is still there.
    assert!(kv.split_by_load().unwrap().is_empty());
    assert_eq!(scan_all(&kv).len(), 26);
}
