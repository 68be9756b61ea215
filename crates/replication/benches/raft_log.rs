//! Micro-benchmarks of the Raft log append: what a leader (and each
//! follower) does for every proposal before it may acknowledge it.
//!
//! One range's [`PeerStorage`] on RocksDB appends one entry per iteration —
//! a 256-byte command, as a key-value put is — together with its hard
//! state, in one write batch, as the Raft driver does with a `Ready`:
//!
//! * `append` — building the batch (entry encoding, keys, the in-memory
//!   log) and writing it without a sync: the CPU cost per entry;
//! * `append_synced` — the same, waited on until the write-ahead log is
//!   fsynced: the durable-commit floor of one replica, dominated by the
//!   disk's flush latency on a real disk.
//!
//! The log is compacted every 1,024 entries, as applied entries are on a
//! node, so memory stays bounded however many iterations Criterion picks.
//! Run with `cargo bench -p shoal-replication --bench raft_log`; `cargo
//! test --benches` runs each case once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use raft::prelude::{Entry, HardState};
use shoal_replication::PeerStorage;
use shoal_replication::peer_storage::INITIAL_INDEX;
use shoal_storage::{Engine, RocksEngine, WriteBatch};

/// Appends `count` entries to a fresh range's log, timing only the appends.
fn run(
    engine: &Arc<dyn Engine>,
    range: u64,
    count: u64,
    sync: bool,
) -> shoal_replication::Result<Duration> {
    let mut batch = WriteBatch::new();
    PeerStorage::bootstrap(range, &[1], &mut batch)?;
    engine.write(batch, true)?;
    let mut storage = PeerStorage::open(range, Arc::clone(engine), |_, _| Vec::new())?;
    let payload = vec![0x5a_u8; 256];
    let mut hard_state = HardState {
        term: 6,
        vote: 1,
        ..Default::default()
    };
    let start = Instant::now();
    for n in 1..=count {
        let index = INITIAL_INDEX + n;
        let entry = Entry {
            index,
            term: 6,
            data: payload.clone().into(),
            ..Default::default()
        };
        let mut batch = WriteBatch::new();
        storage.append(&[entry], &mut batch)?;
        hard_state.commit = index;
        storage.set_hard_state(&hard_state, &mut batch)?;
        if n % 1024 == 0 {
            storage.note_applied(index, None);
            storage.compact(index, &mut batch)?;
        }
        engine.write(batch, sync)?;
    }
    Ok(start.elapsed())
}

fn appends(c: &mut Criterion) {
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => return eprintln!("raft_log: no temporary directory: {e}"),
    };
    let engine: Arc<dyn Engine> = match RocksEngine::open(dir.path()) {
        Ok(engine) => Arc::new(engine),
        Err(e) => return eprintln!("raft_log: cannot open RocksDB: {e}"),
    };
    let mut range = 0;
    for (name, sync) in [("raft_log/append", false), ("raft_log/append_synced", true)] {
        let mut group = c.benchmark_group(name);
        if sync {
            group.sample_size(10);
        }
        group.bench_function("256B", |b| {
            b.iter_custom(|iters| {
                range += 1;
                match run(&engine, range, iters, sync) {
                    Ok(elapsed) => elapsed,
                    // A failed append is a broken benchmark, not a number.
                    Err(e) => panic!("raft_log: append failed: {e}"),
                }
            })
        });
        group.finish();
    }
}

criterion_group!(benches, appends);
criterion_main!(benches);
