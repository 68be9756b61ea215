//! Micro-benchmarks of MVCC reads: the storage half of every point select
//! and of every scan.
//!
//! 10,000 user keys, each with three committed versions (ten timestamps
//! apart), and 200 more with a long history (1,000 versions each, like
//! hot rows updated for a while), 120-byte values, in the in-memory engine and in RocksDB (a
//! temporary directory, flushed so reads go through SST files and the
//! block cache as on a node that has been running a while). A point read
//! at the newest timestamp is one seek, at an older timestamp it skips
//! the newer versions; a scan reads 100 consecutive keys, of the first
//! kind or of the long histories (where it must seek past versions rather
//! than step over them). Run with
//! `cargo bench -p shoal-kv --bench mvcc_read`; `cargo test --benches`
//! runs each case once.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use shoal_kv::mvcc::{VisibleScan, encode_value, read_visible, version_key};
use shoal_storage::{Engine, MemoryEngine, RocksEngine, WriteBatch};

const KEYS: u64 = 10_000;
const VERSIONS: u64 = 3;
/// Keys with a long history (numbered from `HOT_FIRST`, past the keys
/// `point_absent` looks for), and their versions.
const HOT_FIRST: u64 = 3 * KEYS;
const HOT_KEYS: u64 = 200;
const HOT_VERSIONS: u64 = 1_000;

fn user_key(i: u64) -> Vec<u8> {
    // Shaped like a table row key: table tag, table id, index id, the key.
    let mut key = vec![2, 0, 0, 0, 42, 1];
    key.extend_from_slice(&i.to_be_bytes());
    key
}

fn load(engine: &dyn Engine) -> shoal_storage::Result<()> {
    let value = vec![b'x'; 120];
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(1000) {
        let mut batch = WriteBatch::new();
        for &i in chunk {
            for v in 1..=VERSIONS {
                batch.put(
                    version_key(&user_key(i), v * 10),
                    encode_value(Some(&value)),
                );
            }
        }
        engine.write(batch, false)?;
    }
    for i in HOT_FIRST..HOT_FIRST + HOT_KEYS {
        let mut batch = WriteBatch::new();
        for v in 1..=HOT_VERSIONS {
            batch.put(
                version_key(&user_key(i), v * 10),
                encode_value(Some(&value)),
            );
        }
        engine.write(batch, false)?;
    }
    Ok(())
}

fn engines() -> Vec<(&'static str, Arc<dyn Engine>, Option<tempfile::TempDir>)> {
    let mut out: Vec<(&'static str, Arc<dyn Engine>, Option<tempfile::TempDir>)> = Vec::new();
    let memory = Arc::new(MemoryEngine::new());
    if load(memory.as_ref()).is_ok() {
        out.push(("memory", memory, None));
    }
    // A benchmark without its RocksDB case would mislead; a setup failure
    // is reported and that case skipped by name.
    match tempfile::tempdir()
        .map_err(|e| e.to_string())
        .and_then(|dir| {
            let engine = RocksEngine::open(dir.path()).map_err(|e| e.to_string())?;
            load(&engine).map_err(|e| e.to_string())?;
            engine.flush().map_err(|e| e.to_string())?;
            Ok((Arc::new(engine), dir))
        }) {
        Ok((engine, dir)) => out.push(("rocksdb", engine, Some(dir))),
        Err(e) => eprintln!("mvcc_read: no RocksDB case: {e}"),
    }
    out
}

fn reads(c: &mut Criterion) {
    for (name, engine, _dir) in engines() {
        let mut i = 0u64;
        c.bench_function(&format!("mvcc/{name}/point_newest"), |b| {
            b.iter(|| {
                i = (i + 7919) % KEYS;
                read_visible(engine.as_ref(), black_box(&user_key(i)), 1_000)
            })
        });
        c.bench_function(&format!("mvcc/{name}/point_oldest"), |b| {
            b.iter(|| {
                i = (i + 7919) % KEYS;
                read_visible(engine.as_ref(), black_box(&user_key(i)), 15)
            })
        });
        c.bench_function(&format!("mvcc/{name}/point_absent"), |b| {
            b.iter(|| {
                i = (i + 7919) % KEYS;
                read_visible(engine.as_ref(), black_box(&user_key(KEYS + i)), 1_000)
            })
        });
        c.bench_function(&format!("mvcc/{name}/scan_100"), |b| {
            b.iter(|| {
                i = (i + 7919) % (KEYS - 100);
                VisibleScan::new(
                    engine.as_ref(),
                    &user_key(i),
                    Some(&user_key(i + 100)),
                    1_000,
                )
                .count()
            })
        });
        c.bench_function(&format!("mvcc/{name}/scan_100_long_history"), |b| {
            b.iter(|| {
                i = (i + 7919) % (HOT_KEYS - 100);
                VisibleScan::new(
                    engine.as_ref(),
                    &user_key(HOT_FIRST + i),
                    Some(&user_key(HOT_FIRST + i + 100)),
                    HOT_VERSIONS * 10 + 1,
                )
                .count()
            })
        });
    }
}

criterion_group!(benches, reads);
criterion_main!(benches);
