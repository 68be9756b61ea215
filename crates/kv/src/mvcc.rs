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
//! [`VisibleScan`] streams over the engine's lazy scan, holding one user key
//! of state. Callers take as many pairs as they need and drop it.

use shoal_storage::{Engine, KvPair, StorageError, decode_bytes_escaped, encode_bytes_escaped};

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

/// Streams the (user key, value) pairs visible at a read timestamp, in key
/// order, skipping invisible versions and deleted keys.
pub struct VisibleScan<'a> {
    versions: Box<dyn Iterator<Item = shoal_storage::Result<KvPair>> + 'a>,
    read_ts: Timestamp,
    /// Versions in `(read_ts, uncertainty_limit]` are errors (module docs).
    uncertainty_limit: Timestamp,
    /// The user key whose visible version has been decided; its older
    /// versions are skipped.
    decided: Option<Vec<u8>>,
}

impl<'a> VisibleScan<'a> {
    /// Scans user keys in `[start, end)` (`end = None`: unbounded).
    pub fn new(
        engine: &'a dyn Engine,
        start: &[u8],
        end: Option<&[u8]>,
        read_ts: Timestamp,
    ) -> Self {
        let (lower, upper) = version_span(start, end);
        Self {
            versions: engine.scan(&lower, Some(&upper)),
            read_ts,
            uncertainty_limit: read_ts,
            decided: None,
        }
    }

    /// Makes versions in `(read_ts, limit]` errors.
    pub fn with_uncertainty(mut self, limit: Timestamp) -> Self {
        self.uncertainty_limit = limit;
        self
    }
}

impl Iterator for VisibleScan<'_> {
    type Item = Result<KvPair>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (key, stored) = match self.versions.next()? {
                Ok(pair) => pair,
                Err(e) => return Some(Err(e.into())),
            };
            let (user_key, ts) = match decode_version_key(&key) {
                Ok(decoded) => decoded,
                Err(e) => return Some(Err(e)),
            };
            if self.decided.as_deref() == Some(user_key.as_slice()) {
                continue;
            }
            if ts > self.read_ts {
                if ts <= self.uncertainty_limit {
                    return Some(Err(KvError::ReadWithinUncertainty {
                        key: printable_key(&user_key),
                        ts,
                    }));
                }
                continue;
            }
            self.decided = Some(user_key.clone());
            match decode_value(&stored) {
                Ok(Some(value)) => return Some(Ok((user_key, value))),
                Ok(None) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use shoal_storage::{MemoryEngine, WriteBatch};

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

    #[test]
    fn prefix_end_handles_ff() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
    }
}
