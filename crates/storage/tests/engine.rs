//! Engine conformance: the same checks against every `Engine`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use shoal_storage::{ColumnFamily, Cursor, Engine, KvPair, MemoryEngine, RocksEngine, WriteBatch};

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
    cursors(engine);
}

/// The key a cursor stands on, as text.
fn cursor_key(cursor: &dyn Cursor) -> Option<String> {
    cursor
        .entry()
        .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
}

/// Cursors step and seek within their bounds, in either family, and lend
/// the value they stand on.
fn cursors(engine: &dyn Engine) {
    let mut cursor = engine.cursor_cf(ColumnFamily::Data, b"k00010", Some(b"k00013"));
    assert_eq!(cursor_key(cursor.as_ref()).as_deref(), Some("k00010"));
    assert_eq!(cursor.entry().unwrap().1, 10u32.to_be_bytes());
    cursor.next();
    assert_eq!(cursor_key(cursor.as_ref()).as_deref(), Some("k00011"));
    // A seek before the start lands on the start; between keys, on the
    // next one; past the end, nowhere, and it stays there.
    cursor.seek(b"a");
    assert_eq!(cursor_key(cursor.as_ref()).as_deref(), Some("k00010"));
    cursor.seek(b"k00011\x00");
    assert_eq!(cursor_key(cursor.as_ref()).as_deref(), Some("k00012"));
    cursor.next();
    assert_eq!(cursor_key(cursor.as_ref()), None);
    cursor.next();
    assert_eq!(cursor_key(cursor.as_ref()), None);
    cursor.seek(b"k00011");
    assert_eq!(cursor_key(cursor.as_ref()).as_deref(), Some("k00011"));
    cursor.seek(b"z");
    assert_eq!(cursor_key(cursor.as_ref()), None);
    cursor.status().unwrap();

    // Unbounded above, in the Raft family.
    let mut cursor = engine.cursor_cf(ColumnFamily::Raft, &[b'l', 6], None);
    let mut seen = Vec::new();
    while let Some((k, _)) = cursor.entry() {
        seen.push(k.to_vec());
        cursor.next();
    }
    assert_eq!(
        seen,
        [
            vec![b'l', 6],
            vec![b'l', 7],
            vec![b'l', 8],
            vec![b'l', 9],
            b"shared".to_vec()
        ]
    );
    // An empty span has nothing.
    let cursor = engine.cursor_cf(ColumnFamily::Data, b"c", Some(b"c"));
    assert_eq!(cursor_key(cursor.as_ref()), None);
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

/// A versioned key as the MVCC layer writes it: tag, key, a terminator,
/// then the inverted timestamp.
fn version(key: &[u8], ts: u64) -> Vec<u8> {
    let mut out = vec![shoal_storage::VERSIONED_KEY_TAG];
    out.extend_from_slice(key);
    out.push(0);
    out.extend_from_slice(&(u64::MAX - ts).to_be_bytes());
    out
}

/// The end of every version of `key`.
fn versions_end(key: &[u8]) -> Vec<u8> {
    let mut out = vec![shoal_storage::VERSIONED_KEY_TAG];
    out.extend_from_slice(key);
    out.push(1);
    out
}

fn write_versions(engine: &dyn Engine) {
    let mut batch = WriteBatch::new();
    for ts in 1..=5 {
        batch.put(version(b"a", ts), format!("a{ts}").into_bytes());
    }
    batch.put(version(b"ab", 3), b"ab3".to_vec());
    batch.put(version(b"b", 2), b"b2".to_vec());
    batch.put(b"s1".to_vec(), b"state".to_vec());
    engine.write(batch, true).unwrap();
}

/// Version scans see exactly one key's versions from the seek on, and
/// ordinary scans still cross prefixes in order.
fn versions(engine: &dyn Engine) {
    let values =
        |pairs: Vec<KvPair>| -> Vec<Vec<u8>> { pairs.into_iter().map(|(_, v)| v).collect() };
    let scan = |start: &[u8], end: &[u8]| {
        values(
            engine
                .scan_versions(start, Some(end))
                .map(Result::unwrap)
                .collect(),
        )
    };
    assert_eq!(
        scan(&version(b"a", 3), &versions_end(b"a")),
        vec![b"a3".to_vec(), b"a2".to_vec(), b"a1".to_vec()]
    );
    assert_eq!(
        scan(&version(b"ab", 9), &versions_end(b"ab")),
        vec![b"ab3".to_vec()]
    );
    assert!(scan(&version(b"c", 9), &versions_end(b"c")).is_empty());
    assert_eq!(
        shoal_storage::versioned_prefix(&version(b"a", 7)),
        Some(&version(b"a", 1)[..3])
    );
    assert_eq!(shoal_storage::versioned_prefix(b"s1"), None);
    let all = scan_all(engine, b"", None);
    assert_eq!(all.len(), 8);
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
}

#[test]
fn version_scans_on_every_engine() {
    let memory = MemoryEngine::new();
    write_versions(&memory);
    versions(&memory);
    // RocksDB: from the memtable, and from files after a reopen (whose
    // filters index the version prefixes).
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = RocksEngine::open(dir.path()).unwrap();
        write_versions(&engine);
        versions(&engine);
    }
    versions(&RocksEngine::open(dir.path()).unwrap());
}
