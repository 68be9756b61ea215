//! Engine conformance: the same checks against every `Engine`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use shoal_storage::{ColumnFamily, Engine, KvPair, MemoryEngine, RocksEngine, WriteBatch};

fn scan_all(engine: &dyn Engine, start: &[u8], end: Option<&[u8]>) -> Vec<KvPair> {
    engine.scan(start, end).collect::<Result<_, _>>().unwrap()
}

fn keys(pairs: &[KvPair]) -> Vec<&[u8]> {
    pairs.iter().map(|(k, _)| k.as_slice()).collect()
}

fn conformance(engine: &dyn Engine) {
    // Point reads and batches.
    assert_eq!(engine.get(b"a").unwrap(), None);
    let mut batch = WriteBatch::new();
    batch.put(b"a".to_vec(), b"1".to_vec());
    batch.put(b"b".to_vec(), b"2".to_vec());
    batch.put(b"c".to_vec(), b"3".to_vec());
    batch.put(b"gone".to_vec(), b"x".to_vec());
    batch.delete(b"gone".to_vec()); // later ops in a batch win
    assert_eq!(batch.len(), 5);
    engine.write(batch, true).unwrap();
    assert_eq!(engine.get(b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(engine.get(b"gone").unwrap(), None);

    // Scan bounds: start inclusive, end exclusive, None = unbounded.
    assert_eq!(keys(&scan_all(engine, b"", None)), [b"a", b"b", b"c"]);
    assert_eq!(keys(&scan_all(engine, b"a", Some(b"c"))), [b"a", b"b"]);
    assert_eq!(keys(&scan_all(engine, b"a\x00", Some(b"z"))), [b"b", b"c"]);
    assert!(scan_all(engine, b"c", Some(b"c")).is_empty());
    assert!(scan_all(engine, b"z", Some(b"a")).is_empty());

    // Overwrite and delete.
    let mut batch = WriteBatch::new();
    batch.put(b"a".to_vec(), b"one".to_vec());
    batch.delete(b"b".to_vec());
    engine.write(batch, false).unwrap();
    assert_eq!(
        scan_all(engine, b"", None),
        [
            (b"a".to_vec(), b"one".to_vec()),
            (b"c".to_vec(), b"3".to_vec())
        ]
    );

    // Many keys: crosses the memory engine's chunk boundary, and writes
    // between reads of a scan neither break it nor duplicate keys.
    let mut batch = WriteBatch::new();
    for i in 0..1000u32 {
        batch.put(format!("k{i:05}").into_bytes(), i.to_be_bytes().to_vec());
    }
    engine.write(batch, false).unwrap();
    let mut seen = Vec::new();
    for (n, item) in engine.scan(b"k", Some(b"l")).enumerate() {
        let (k, _) = item.unwrap();
        seen.push(k);
        if n == 300 {
            let mut batch = WriteBatch::new();
            batch.put(b"a-late".to_vec(), b"x".to_vec());
            engine.write(batch, false).unwrap();
        }
    }
    assert_eq!(seen.len(), 1000);
    assert!(seen.windows(2).all(|w| w[0] < w[1]));

    column_families(engine);
}

/// Column families are separate key spaces, written atomically together;
/// a range delete removes exactly `[start, end)` of one family.
fn column_families(engine: &dyn Engine) {
    let raft = ColumnFamily::Raft;
    let mut batch = WriteBatch::new();
    batch.put(b"shared".to_vec(), b"data".to_vec());
    batch.put_cf(raft, b"shared".to_vec(), b"raft".to_vec());
    for i in 0..10u8 {
        batch.put_cf(raft, vec![b'l', i], vec![i]);
    }
    engine.write(batch, true).unwrap();
    assert_eq!(engine.get(b"shared").unwrap(), Some(b"data".to_vec()));
    assert_eq!(
        engine.get_cf(raft, b"shared").unwrap(),
        Some(b"raft".to_vec())
    );
    assert!(scan_all(engine, b"l", Some(b"m")).is_empty());

    let mut batch = WriteBatch::new();
    batch.delete_range_cf(raft, vec![b'l', 2], vec![b'l', 5]);
    batch.delete_range_cf(raft, vec![b'l', 9], vec![b'l', 9]); // empty: no-op
    engine.write(batch, true).unwrap();
    let left: Vec<KvPair> = engine
        .scan_cf(raft, b"l", Some(b"m"))
        .collect::<Result<_, _>>()
        .unwrap();
    let left: Vec<u8> = left.iter().map(|(k, _)| k[1]).collect();
    assert_eq!(left, [0, 1, 5, 6, 7, 8, 9]);
    assert_eq!(engine.get(b"shared").unwrap(), Some(b"data".to_vec()));
}

#[test]
fn memory_engine_conforms() {
    conformance(&MemoryEngine::new());
}

#[test]
fn rocks_engine_conforms() {
    let dir = tempfile::tempdir().unwrap();
    conformance(&RocksEngine::open(dir.path()).unwrap());
}

#[test]
fn rocks_engine_persists_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = RocksEngine::open(dir.path()).unwrap();
        let mut batch = WriteBatch::new();
        batch.put(b"k".to_vec(), b"v".to_vec());
        batch.put_cf(ColumnFamily::Raft, b"k".to_vec(), b"r".to_vec());
        engine.write(batch, true).unwrap();
    }
    let engine = RocksEngine::open(dir.path()).unwrap();
    assert_eq!(engine.get(b"k").unwrap(), Some(b"v".to_vec()));
    assert_eq!(
        engine.get_cf(ColumnFamily::Raft, b"k").unwrap(),
        Some(b"r".to_vec())
    );
}
