//! Multi-version storage layout and snapshot reads.
//!
//! # Versions
//!
//! A write never overwrites: committing a value for user key `k` at commit
//! timestamp `ts` adds a new **version** under its own engine key
//!
//! ```text
//! b'v' ++ escaped(k) ++ be_u64(u64::MAX - ts)   →   [1] ++ value   (a value)
//!                                               →   [0]            (a tombstone)
//! ```
//!
//! * `escaped(k)` is [`encode_bytes_escaped`]: order-preserving and
//!   prefix-free, so all versions of one key are contiguous, keys keep their
//!   order, and no key's versions interleave with another's.
//! * The timestamp is stored inverted, so a key's **newest version comes
//!   first** in an ascending scan; a reader seeks to the first version at or
//!   below its read timestamp and is done.
//! * A delete writes a tombstone version rather than removing anything,
//!   because older snapshots must still see the deleted value.
//!
//! Range-local state and cluster state live under other prefixes
//! (`keys.rs`), outside the version space, so scans of user data never
//! meet them.
//!
//! # Visibility
//!
//! A transaction with read timestamp `r` sees, for each key, the newest
//! version with `ts <= r`; if that is a tombstone (or there is none) the key
//! does not exist for it. Versions above `r` are invisible. Because a
//! commit's versions are written in one batch, and a snapshot is read only
//! after the barrier that makes every commit at or below `r` applied
//! (`store.rs`), a snapshot never sees half a commit.
//!
//! A reader may also carry an **uncertainty limit** `u >= r`: a version in
//! `(r, u]` may have committed before the reader began (`store.rs`
//! explains why), so meeting one is an error — the reader must restart
//! above it — rather than a silent skip.
//!
//! # Bounded memory
//!
//! [`VisibleScan`] streams over an engine cursor, holding one user key of
//! state. Callers take as many pairs as they need and drop it.
//!
//! # Scans over long histories
//!
//! A row updated often keeps every version until GC's window passes
//! (hours): a hot row may have thousands. A scan wants one of them, so it
//! must not pay for the rest. [`VisibleScan`] reads through a
//! [`Cursor`], which lends each version in place (nothing is copied or
//! decoded to be skipped: versions of one key are told apart by their
//! raw prefix) and can seek. Past the version it returns, it steps over
//! a few more of the same key and then seeks beyond the key's oldest
//! possible version; past versions newer than its snapshot, it seeks to
//! the first at or below its uncertainty limit (what lies between that
//! limit and the read timestamp must still be looked at: it is an
//! error). So a scan's cost follows the rows it reads, not their
//! history; `benches/mvcc_read.rs` measures a scan over keys with 1,000
//! versions each.

use shoal_storage::{
    ColumnFamily, Cursor, Engine, KvPair, StorageError, decode_bytes_escaped, encode_bytes_escaped,
    versioned_prefix,
};

use crate::clock::Timestamp;
use crate::error::{KvError, Result, printable_key};

/// Prefix of MVCC version keys (the storage engine knows their shape:
/// `shoal_storage::versioned_prefix`).
pub const VERSION_PREFIX: u8 = shoal_storage::VERSIONED_KEY_TAG;

const VALUE_TAG: u8 = 1;
const TOMBSTONE_TAG: u8 = 0;

/// The engine-key prefix shared by every version of `user_key`.
pub fn version_prefix(user_key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(user_key.len() + 11);
    out.push(VERSION_PREFIX);
    encode_bytes_escaped(user_key, &mut out);
    out
}

/// The engine key of `user_key`'s version committed at `ts`.
pub fn version_key(user_key: &[u8], ts: Timestamp) -> Vec<u8> {
    let mut out = version_prefix(user_key);
    out.extend_from_slice(&(u64::MAX - ts).to_be_bytes());
    out
}

/// Splits an engine version key into user key and commit timestamp.
pub fn decode_version_key(key: &[u8]) -> Result<(Vec<u8>, Timestamp)> {
    let corrupt = |what: &str| StorageError::Corrupt(format!("version key {key:x?}: {what}"));
    let Some((&VERSION_PREFIX, mut rest)) = key.split_first() else {
        return Err(corrupt("missing version prefix").into());
    };
    let user_key = decode_bytes_escaped(&mut rest)?;
    let inverted: [u8; 8] = rest
        .try_into()
        .map_err(|_| corrupt("timestamp suffix is not 8 bytes"))?;
    Ok((user_key, u64::MAX - u64::from_be_bytes(inverted)))
}

/// The timestamp of a version key, without decoding its user key: for
/// scans that look at many versions' timestamps and few keys.
pub fn version_ts(key: &[u8]) -> Result<Timestamp> {
    let suffix = key
        .len()
        .checked_sub(8)
        .filter(|_| key.first() == Some(&VERSION_PREFIX))
        .and_then(|at| key.get(at..))
        .and_then(|suffix| <[u8; 8]>::try_from(suffix).ok());
    match suffix {
        Some(inverted) => Ok(u64::MAX - u64::from_be_bytes(inverted)),
        None => Err(StorageError::Corrupt(format!("version key {key:x?}")).into()),
    }
}

/// The stored form of a version's value (`None` = tombstone).
pub fn encode_value(value: Option<&[u8]>) -> Vec<u8> {
    match value {
        Some(v) => {
            let mut out = Vec::with_capacity(v.len() + 1);
            out.push(VALUE_TAG);
            out.extend_from_slice(v);
            out
        }
        None => vec![TOMBSTONE_TAG],
    }
}

/// Parses a stored version value (`None` = tombstone).
pub fn decode_value(stored: &[u8]) -> Result<Option<Vec<u8>>> {
    match stored.split_first() {
        Some((&VALUE_TAG, v)) => Ok(Some(v.to_vec())),
        Some((&TOMBSTONE_TAG, [])) => Ok(None),
        _ => Err(StorageError::Corrupt(format!("bad version value {stored:x?}")).into()),
    }
}

/// The smallest key greater than every key starting with `prefix`, or `None`
/// when no such key exists (the prefix is all `0xff`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last != 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Engine-key bounds covering all versions of user keys in `[start, end)`
/// (`end = None`: unbounded).
pub fn version_span(start: &[u8], end: Option<&[u8]>) -> (Vec<u8>, Vec<u8>) {
    let lower = version_prefix(start);
    let upper = match end {
        Some(end) => version_prefix(end),
        None => vec![VERSION_PREFIX + 1],
    };
    (lower, upper)
}

/// The value of `user_key` visible at `read_ts`.
pub fn read_visible(
    engine: &dyn Engine,
    user_key: &[u8],
    read_ts: Timestamp,
) -> Result<Option<Vec<u8>>> {
    read_visible_within(engine, user_key, read_ts, read_ts)
}

/// The value of `user_key` visible at `read_ts`, or
/// [`KvError::ReadWithinUncertainty`] if it has a version in
/// `(read_ts, limit]`.
pub fn read_visible_within(
    engine: &dyn Engine,
    user_key: &[u8],
    read_ts: Timestamp,
    limit: Timestamp,
) -> Result<Option<Vec<u8>>> {
    // The first version at or below a timestamp is the one with the
    // smallest inverted suffix >= u64::MAX - ts: seek straight to it.
    let prefix = version_prefix(user_key);
    let from = version_key(user_key, limit.max(read_ts));
    let to = prefix_end(&prefix);
    match engine.scan_versions(&from, to.as_deref()).next() {
        Some(item) => {
            let (key, stored) = item?;
            let (_, ts) = decode_version_key(&key)?;
            if ts > read_ts {
                return Err(KvError::ReadWithinUncertainty {
                    key: printable_key(user_key),
                    ts,
                });
            }
            decode_value(&stored)
        }
        None => Ok(None),
    }
}

/// The commit timestamp of `user_key`'s newest version, tombstones included.
pub fn newest_version_ts(engine: &dyn Engine, user_key: &[u8]) -> Result<Option<Timestamp>> {
    let prefix = version_prefix(user_key);
    let to = prefix_end(&prefix);
    // The newest version's key is the smallest: seek to the smallest
    // whole version key of the prefix.
    let from = version_key(user_key, Timestamp::MAX);
    match engine.scan_versions(&from, to.as_deref()).next() {
        Some(item) => {
            let (key, _) = item?;
            Ok(Some(decode_version_key(&key)?.1))
        }
        None => Ok(None),
    }
}

/// Versions a scan steps over one by one before it seeks past the rest
/// (module docs, *Scans over long histories*). A step is a fraction of a
/// seek's cost, so a key with a short history is cheaper to walk; a hot
/// key with thousands of versions costs one seek.
const STEPS_BEFORE_SEEK: usize = 4;

/// A walk over the versions of `[start, end)` that can skip the rest of a
/// key's history (module docs, *Scans over long histories*).
struct VersionWalk<'a> {
    cursor: Box<dyn Cursor + 'a>,
    /// The version prefix of the key the cursor stands on, and a seek
    /// target built beside it (kept to spare an allocation per key).
    prefix: Vec<u8>,
    target: Vec<u8>,
}

impl<'a> VersionWalk<'a> {
    fn new(engine: &'a dyn Engine, start: &[u8], end: Option<&[u8]>) -> Self {
        let (lower, upper) = version_span(start, end);
        Self {
            cursor: engine.cursor_cf(ColumnFamily::Data, &lower, Some(&upper)),
            prefix: Vec::new(),
            target: Vec::new(),
        }
    }

    /// The timestamp of the version the cursor stands on, noting its key's
    /// prefix; `None` past the end.
    fn enter(&mut self) -> Result<Option<Timestamp>> {
        let Some((key, _)) = self.cursor.entry() else {
            self.cursor.status()?;
            return Ok(None);
        };
        let Some((prefix, ts)) = versioned_prefix(key).zip(version_ts(key).ok()) else {
            return Err(StorageError::Corrupt(format!("version key {key:x?}")).into());
        };
        self.prefix.clear();
        self.prefix.extend_from_slice(prefix);
        Ok(Some(ts))
    }

    /// The user key of the version the cursor stands on.
    fn user_key(&self) -> Result<Vec<u8>> {
        match self.cursor.entry() {
            Some((key, _)) => Ok(decode_version_key(key)?.0),
            None => Err(StorageError::Corrupt("a version walk ran past its end".into()).into()),
        }
    }

    /// The user key and value of the version the cursor stands on.
    fn pair(&self) -> Result<(Vec<u8>, Option<Vec<u8>>)> {
        match self.cursor.entry() {
            Some((key, stored)) => Ok((decode_version_key(key)?.0, decode_value(stored)?)),
            None => Err(StorageError::Corrupt("a version walk ran past its end".into()).into()),
        }
    }

    /// Whether the cursor stands on a version of `self.prefix`.
    fn on_prefix(&self) -> bool {
        self.cursor
            .entry()
            .is_some_and(|(key, _)| versioned_prefix(key) == Some(self.prefix.as_slice()))
    }

    /// Moves past the versions of the entered key from the cursor on,
    /// stopping at the first one at or below `ts` (`None`: past them all).
    /// A few steps first; if the key's history goes on, one seek.
    fn skip_versions(&mut self, ts: Option<Timestamp>) {
        for _ in 0..STEPS_BEFORE_SEEK {
            self.cursor.next();
            let still_newer = match (self.cursor.entry(), ts) {
                (Some((key, _)), Some(ts)) => {
                    self.on_prefix() && version_ts(key).is_ok_and(|at| at > ts)
                }
                _ => self.on_prefix(),
            };
            if !still_newer {
                return;
            }
        }
        self.target.clear();
        self.target.extend_from_slice(&self.prefix);
        match ts {
            // The version key at `ts` itself, or the next one down.
            Some(ts) => self
                .target
                .extend_from_slice(&(u64::MAX - ts).to_be_bytes()),
            // Above every version key of the prefix (suffixes are 8 bytes).
            None => self.target.extend_from_slice(&[0xff; 9]),
        }
        self.cursor.seek(&self.target);
    }
}

/// The first user key in `[start, end)` (`end = None`: unbounded) with a
/// version committed in `(after, upto]`, if any: what a serializable
/// commit's read check looks for (`reads.rs`). Keys whose newest version
/// is at or below `after` cost one step; longer histories one seek more.
pub fn first_changed(
    engine: &dyn Engine,
    start: &[u8],
    end: Option<&[u8]>,
    after: Timestamp,
    upto: Timestamp,
) -> Result<Option<Vec<u8>>> {
    let mut walk = VersionWalk::new(engine, start, end);
    while let Some(ts) = walk.enter()? {
        if ts > upto {
            walk.skip_versions(Some(upto));
        } else if ts > after {
            return walk.user_key().map(Some);
        } else {
            walk.skip_versions(None);
        }
    }
    Ok(None)
}

/// Streams the (user key, value) pairs visible at a read timestamp, in key
/// order, skipping invisible versions and deleted keys.
pub struct VisibleScan<'a> {
    walk: VersionWalk<'a>,
    read_ts: Timestamp,
    /// Versions in `(read_ts, uncertainty_limit]` are errors (module docs).
    uncertainty_limit: Timestamp,
    /// An error was returned: the scan is over.
    failed: bool,
}

impl<'a> VisibleScan<'a> {
    /// Scans user keys in `[start, end)` (`end = None`: unbounded).
    pub fn new(
        engine: &'a dyn Engine,
        start: &[u8],
        end: Option<&[u8]>,
        read_ts: Timestamp,
    ) -> Self {
        Self {
            walk: VersionWalk::new(engine, start, end),
            read_ts,
            uncertainty_limit: read_ts,
            failed: false,
        }
    }

    /// Makes versions in `(read_ts, limit]` errors.
    pub fn with_uncertainty(mut self, limit: Timestamp) -> Self {
        self.uncertainty_limit = limit;
        self
    }

    /// Ends the scan with `error`.
    fn fail(&mut self, error: KvError) -> Result<KvPair> {
        self.failed = true;
        Err(error)
    }
}

impl Iterator for VisibleScan<'_> {
    type Item = Result<KvPair>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.failed {
                return None;
            }
            let ts = match self.walk.enter() {
                Ok(Some(ts)) => ts,
                Ok(None) => return None,
                Err(e) => return Some(self.fail(e)),
            };
            if ts > self.read_ts {
                if ts <= self.uncertainty_limit {
                    let error = match self.walk.user_key() {
                        Ok(user_key) => KvError::ReadWithinUncertainty {
                            key: printable_key(&user_key),
                            ts,
                        },
                        Err(e) => e,
                    };
                    return Some(self.fail(error));
                }
                // Newer than the snapshot and not uncertain: on to the
                // newest version at or below the uncertainty limit.
                self.walk.skip_versions(Some(self.uncertainty_limit));
                continue;
            }
            // The visible version of this key.
            let decoded = self.walk.pair();
            self.walk.skip_versions(None);
            match decoded {
                Ok((user_key, Some(value))) => return Some(Ok((user_key, value))),
                Ok((_, None)) => continue,
                Err(e) => return Some(self.fail(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use shoal_storage::{MemoryEngine, WriteBatch};
    use std::collections::BTreeMap;

    #[test]
    fn a_version_keys_timestamp_reads_without_its_user_key() {
        for (key, ts) in [(&b""[..], 1), (b"a\x00b", 77), (b"\xff\xff", u64::MAX - 1)] {
            assert_eq!(version_ts(&version_key(key, ts)).unwrap(), ts);
        }
        assert!(version_ts(b"v123").is_err());
        assert!(version_ts(&[b'x'; 20]).is_err());
    }

    /// (user key, commit timestamp, value or tombstone).
    type Version<'a> = (&'a [u8], Timestamp, Option<&'a [u8]>);

    fn engine_with(versions: &[Version<'_>]) -> MemoryEngine {
        let engine = MemoryEngine::new();
        let mut batch = WriteBatch::new();
        for (k, ts, v) in versions {
            batch.put(version_key(k, *ts), encode_value(*v));
        }
        engine.write(batch, false).unwrap();
        engine
    }

    #[test]
    fn version_keys_round_trip_and_sort_newest_first() {
        let a10 = version_key(b"a\x00b", 10);
        assert_eq!(decode_version_key(&a10).unwrap(), (b"a\x00b".to_vec(), 10));
        assert!(version_key(b"a", 20) < version_key(b"a", 10));
        assert!(version_key(b"a", 1) < version_key(b"a\x00", 99));
        assert!(decode_version_key(b"x").is_err());
        assert!(decode_version_key(&version_prefix(b"a")).is_err());
    }

    #[test]
    fn reads_pick_the_newest_visible_version() {
        let engine = engine_with(&[
            (b"a", 10, Some(&b"a10"[..])),
            (b"a", 20, None),
            (b"a", 30, Some(&b"a30"[..])),
            (b"b", 15, Some(&b"b15"[..])),
        ]);
        let cases: &[(Timestamp, Option<&[u8]>)] = &[
            (5, None),
            (10, Some(&b"a10"[..])),
            (25, None),
            (30, Some(&b"a30"[..])),
        ];
        for (ts, want) in cases {
            assert_eq!(
                read_visible(&engine, b"a", *ts).unwrap().as_deref(),
                *want,
                "ts {ts}"
            );
        }
        assert_eq!(newest_version_ts(&engine, b"a").unwrap(), Some(30));
        assert_eq!(newest_version_ts(&engine, b"c").unwrap(), None);

        let at = |ts| {
            VisibleScan::new(&engine, b"", None, ts)
                .map(|r| r.unwrap().0)
                .collect::<Vec<_>>()
        };
        assert_eq!(at(12), [b"a".to_vec()]);
        assert_eq!(at(22), [b"b".to_vec()]);
        assert_eq!(at(40), [b"a".to_vec(), b"b".to_vec()]);
    }

    #[test]
    fn versions_within_the_uncertainty_limit_are_errors() {
        let engine = engine_with(&[(b"a", 10, Some(&b"a10"[..])), (b"a", 20, Some(&b"a20"[..]))]);
        let uncertain = |r: Result<Option<Vec<u8>>>| {
            matches!(r, Err(KvError::ReadWithinUncertainty { ts: 20, .. }))
        };
        assert_eq!(
            read_visible_within(&engine, b"a", 15, 19)
                .unwrap()
                .as_deref(),
            Some(&b"a10"[..])
        );
        assert!(uncertain(read_visible_within(&engine, b"a", 15, 20)));
        assert!(uncertain(read_visible_within(&engine, b"a", 15, 99)));
        let scan = |limit| {
            VisibleScan::new(&engine, b"", None, 15)
                .with_uncertainty(limit)
                .collect::<Result<Vec<_>>>()
        };
        assert_eq!(scan(19).unwrap().len(), 1);
        assert!(matches!(
            scan(25),
            Err(KvError::ReadWithinUncertainty { ts: 20, .. })
        ));
    }

    /// What a scan at `read_ts` with uncertainty limit `limit` must give,
    /// from the versions themselves: the first key (in order) with a
    /// version in `(read_ts, limit]` fails with the newest such version;
    /// before it, each key shows its newest version at or below `read_ts`
    /// unless that is a tombstone.
    fn expected_scan(
        versions: &BTreeMap<(Vec<u8>, Timestamp), Option<Vec<u8>>>,
        read_ts: Timestamp,
        limit: Timestamp,
    ) -> (Vec<KvPair>, Option<(Vec<u8>, Timestamp)>) {
        let mut out = Vec::new();
        let keys: std::collections::BTreeSet<&Vec<u8>> = versions.keys().map(|(k, _)| k).collect();
        for key in keys {
            let of_key = versions.iter().filter(|((k, _), _)| k == key);
            let uncertain = of_key
                .clone()
                .filter(|((_, ts), _)| *ts > read_ts && *ts <= limit)
                .map(|((_, ts), _)| *ts)
                .max();
            if let Some(ts) = uncertain {
                return (out, Some((key.clone(), ts)));
            }
            let visible = of_key
                .filter(|((_, ts), _)| *ts <= read_ts)
                .max_by_key(|((_, ts), _)| *ts);
            if let Some((_, Some(value))) = visible {
                out.push((key.clone(), value.clone()));
            }
        }
        (out, None)
    }

    proptest::proptest! {
        /// Scans over keys with long histories (where the scan seeks past
        /// versions instead of stepping) agree with the versions, on both
        /// engines, whatever the read timestamp and uncertainty limit.
        #[test]
        fn scans_over_long_histories_agree_with_the_versions(
            writes in proptest::collection::vec((0usize..6, 1u64..80, proptest::option::of(0u8..4)), 0..200),
            read_ts in 0u64..90,
            window in 0u64..30,
        ) {
            // Keys that are prefixes of one another, and the largest.
            let keys: [&[u8]; 6] = [b"a", b"a\x00", b"a\x00b", b"ab", b"b", b"\xff\xff"];
            let mut versions = BTreeMap::new();
            for (key, ts, value) in writes {
                versions.insert((keys[key].to_vec(), ts), value.map(|v| vec![v; 3]));
            }
            let mut batch = WriteBatch::new();
            for ((key, ts), value) in &versions {
                batch.put(version_key(key, *ts), encode_value(value.as_deref()));
            }
            let memory = MemoryEngine::new();
            memory.write(batch.clone(), false).unwrap();
            let dir = tempfile::tempdir().unwrap();
            let rocks = shoal_storage::RocksEngine::open(dir.path()).unwrap();
            rocks.write(batch, false).unwrap();
            let limit = read_ts + window;
            let (want, uncertain) = expected_scan(&versions, read_ts, limit);
            for engine in [&memory as &dyn Engine, &rocks] {
                let mut got = Vec::new();
                let mut failed = None;
                for item in VisibleScan::new(engine, b"", None, read_ts).with_uncertainty(limit) {
                    match item {
                        Ok(pair) => got.push(pair),
                        Err(KvError::ReadWithinUncertainty { ts, .. }) => failed = Some(ts),
                        Err(e) => panic!("{e}"),
                    }
                }
                proptest::prop_assert_eq!(&got, &want);
                proptest::prop_assert_eq!(failed, uncertain.as_ref().map(|(_, ts)| *ts));
                // The read check finds the same first key.
                let changed = first_changed(engine, b"", None, read_ts, limit).unwrap();
                proptest::prop_assert_eq!(changed, uncertain.as_ref().map(|(key, _)| key.clone()));
            }
        }
    }

    #[test]
    fn prefix_end_handles_ff() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
    }
}
