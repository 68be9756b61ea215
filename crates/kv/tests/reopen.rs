//! Durability across restarts with the real clock and RocksDB.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use shoal_kv::{Kv, KvError};
use shoal_storage::RocksEngine;

#[test]
fn timestamps_are_monotonic_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let first_ts = {
        let kv = Kv::open(Arc::new(RocksEngine::open(dir.path()).unwrap())).unwrap();
        let txn = kv.begin().unwrap();
        txn.put(b"k".to_vec(), b"v".to_vec()).unwrap();
        let ts = txn.commit().unwrap();
        assert_eq!(kv.latest_ts(), ts);
        ts
    };
    let kv = Kv::open(Arc::new(RocksEngine::open(dir.path()).unwrap())).unwrap();
    assert_eq!(kv.latest_ts(), first_ts);
    let txn = kv.begin().unwrap();
    assert_eq!(txn.get(b"k").unwrap(), Some(b"v".to_vec()));
    txn.put(b"k2".to_vec(), b"v2".to_vec()).unwrap();
    assert!(txn.commit().unwrap() > first_ts);
    assert!(matches!(txn.get(b"k"), Err(KvError::TxnFinished)));
}

#[test]
fn concurrent_increments_never_lose_updates() {
    // Every transaction read-modify-writes one counter; losers retry. With
    // first-committer-wins, the final count equals the number of successes.
    let kv = Kv::open(Arc::new(shoal_storage::MemoryEngine::new())).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let kv = kv.clone();
            std::thread::spawn(move || {
                let mut done = 0;
                while done < 25 {
                    let txn = kv.begin().unwrap();
                    let n = txn
                        .get(b"counter")
                        .unwrap()
                        .map_or(0, |v| u64::from_be_bytes(v.try_into().unwrap()));
                    txn.put(b"counter".to_vec(), (n + 1).to_be_bytes().to_vec())
                        .unwrap();
                    match txn.commit() {
                        Ok(_) => done += 1,
                        Err(KvError::WriteConflict { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let txn = kv.begin().unwrap();
    let n = u64::from_be_bytes(txn.get(b"counter").unwrap().unwrap().try_into().unwrap());
    assert_eq!(n, 100);
    assert_eq!(kv.gc(std::time::Duration::ZERO).unwrap().keys_scanned, 1);
}
