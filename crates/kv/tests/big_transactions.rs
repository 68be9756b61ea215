//! Transactions whose writes are more than one Raft command may carry
//! (`parts.rs`): they commit whole, in one range or several, all or
//! nothing for readers, while ranges split under them, and leave no
//! intent behind — committed or aborted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use shoal_kv::intents::INTENT_PREFIX;
use shoal_kv::{Kv, KvError};
use shoal_storage::{Engine, MemoryEngine};

/// More keys and bytes than one command carries (4,096 keys, 1 MiB).
const ROWS: u32 = 20_000;

fn key(i: u32) -> Vec<u8> {
    format!("row{i:08}").into_bytes()
}

fn value(i: u32, round: u8) -> Vec<u8> {
    let mut v = vec![round; 200];
    v[..4].copy_from_slice(&i.to_be_bytes());
    v
}

fn open() -> (Arc<Kv>, Arc<MemoryEngine>) {
    let engine = Arc::new(MemoryEngine::new());
    (Kv::open(engine.clone()).unwrap(), engine)
}

/// Puts every row at `round` in one transaction.
fn write_all(kv: &Arc<Kv>, round: u8) -> shoal_kv::Result<u64> {
    let txn = kv.begin().unwrap();
    for i in 0..ROWS {
        txn.put(key(i), value(i, round)).unwrap();
    }
    txn.commit()
}

/// Every visible row, read at one fresh snapshot.
fn rows(kv: &Arc<Kv>) -> Vec<(Vec<u8>, Vec<u8>)> {
    common::scan_span(kv, b"row", b"rox", 5_000)
}

fn intents_left(engine: &MemoryEngine) -> usize {
    engine
        .scan(&[INTENT_PREFIX], Some(&[INTENT_PREFIX + 1]))
        .count()
}

fn assert_round(kv: &Arc<Kv>, round: u8) {
    let rows = rows(kv);
    assert_eq!(rows.len(), ROWS as usize);
    for (i, (k, v)) in (0..ROWS).zip(rows) {
        assert_eq!((k, v), (key(i), value(i, round)));
    }
}

#[test]
fn a_write_set_larger_than_a_command_commits_whole_in_one_range() {
    let (kv, engine) = open();
    write_all(&kv, 1).unwrap();
    assert_round(&kv, 1);
    // Overwriting them all is as big again.
    write_all(&kv, 2).unwrap();
    assert_round(&kv, 2);
    assert_eq!(intents_left(&engine), 0);
}

#[test]
fn a_big_write_set_commits_across_ranges() {
    let (kv, engine) = open();
    kv.split_at(&key(5_000)).unwrap();
    kv.split_at(&key(15_000)).unwrap();
    write_all(&kv, 1).unwrap();
    assert_round(&kv, 1);
    assert_eq!(intents_left(&engine), 0);
}

#[test]
fn readers_see_a_big_commit_all_or_nothing() {
    let (kv, _engine) = open();
    write_all(&kv, 1).unwrap();
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let outcome = write_all(&kv, 2);
            done.store(true, Ordering::SeqCst);
            outcome
        });
        let mut looks = 0;
        let started = Instant::now();
        while !done.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(60) {
            let rows = rows(&kv);
            assert_eq!(rows.len(), ROWS as usize);
            let rounds: std::collections::BTreeSet<u8> = rows.iter().map(|(_, v)| v[4]).collect();
            assert_eq!(rounds.len(), 1, "a snapshot saw part of a commit");
            looks += 1;
        }
        writer.join().unwrap().unwrap();
        assert!(looks > 0);
    });
    assert_round(&kv, 2);
}

#[test]
fn a_conflict_in_a_late_part_aborts_every_part() {
    let (kv, engine) = open();
    let big = kv.begin().unwrap();
    for i in 0..ROWS {
        big.put(key(i), value(i, 1)).unwrap();
    }
    // Another transaction commits the last row after `big` read.
    let other = kv.begin().unwrap();
    other.put(key(ROWS - 1), b"theirs".to_vec()).unwrap();
    other.commit().unwrap();
    assert!(matches!(big.commit(), Err(KvError::WriteConflict { .. })));
    assert_eq!(rows(&kv), [(key(ROWS - 1), b"theirs".to_vec())]);
    assert_eq!(intents_left(&engine), 0);
    // The keys are free: the next big commit goes through.
    write_all(&kv, 3).unwrap();
    assert_round(&kv, 3);
}

#[test]
fn a_big_commit_goes_on_while_its_range_splits_under_it() {
    let (kv, engine) = open();
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let outcome = write_all(&kv, 1);
            done.store(true, Ordering::SeqCst);
            outcome
        });
        // Split at a new point every few milliseconds while it commits.
        let mut at = 1_000;
        while !done.load(Ordering::SeqCst) && at < ROWS {
            kv.split_at(&key(at)).unwrap();
            at += 1_000;
            std::thread::sleep(Duration::from_millis(2));
        }
        writer.join().unwrap().unwrap();
    });
    assert_round(&kv, 1);
    assert_eq!(intents_left(&engine), 0);
}
