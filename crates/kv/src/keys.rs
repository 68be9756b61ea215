//! Where the KV layer's data lives in the data column family, and which of
//! it each range owns.
//!
//! ```text
//! 'l' <range u64 BE> 'h'              the range's last commit timestamp
//! 'l' <range u64 BE> 'g'              the range's GC threshold
//! 'l' <range u64 BE> 's'              the range's size in bytes
//! 'l' <range u64 BE> 't' <id u128 BE> commit record (makes a retry idempotent)
//! 'l' <range u64 BE> 'x' / 'p' …      transaction records, prepare markers
//!                                     (`intents.rs`)
//! 's' …                               cluster state: registry, liveness,
//!                                     settings, the next range id
//!                                     (first range only; see below)
//! 'i' <escaped user key>              a write intent (`intents.rs`)
//! 'v' <escaped user key> <!ts>        one version of a user key (`mvcc.rs`)
//! ```
//!
//! A range owns its **range-local** keys (`'l'` and its id), the versions
//! and intents of the user keys in its bounds, and — if it is the first range (its
//! bounds start at the empty key) — the cluster state. Those spans
//! ([`data_spans`]) are what a snapshot of the range carries; different
//! ranges' spans never overlap, and a split hands the right-hand range its
//! own copy of the range-local state (`apply.rs`).

use shoal_replication::{DataSpan, RangeBounds, RangeId};

use crate::mvcc;

const RANGE_LOCAL: u8 = b'l';
const LAST_COMMIT: u8 = b'h';
const GC_THRESHOLD: u8 = b'g';
const SIZE: u8 = b's';
const COMMIT_RECORD: u8 = b't';
const STICKY: u8 = b'k';

/// Prefix of the cluster state kept by the first range.
pub const SYSTEM_PREFIX: u8 = b's';

/// The user keys of the meta span: the directory records of every range
/// but the first and the meta ranges themselves (`directory.rs`). They
/// sort before every SQL key, so the meta span starts in the first range
/// and splits off like any other span.
const META: [u8; 2] = [0x00, b'm'];

/// The user key of `range`'s directory record in the meta span.
pub fn meta_key(range: RangeId) -> Vec<u8> {
    let mut key = META.to_vec();
    key.extend_from_slice(&range.to_be_bytes());
    key
}

/// The meta span: every [`meta_key`].
pub fn meta_span() -> RangeBounds {
    RangeBounds {
        start: META.to_vec(),
        end: Some(vec![META[0], META[1] + 1]),
    }
}

/// The range-local key of `kind` for `range` (other modules add their own
/// kinds: `intents.rs`).
pub fn range_local_key(range: RangeId, kind: u8) -> Vec<u8> {
    range_local(range, kind)
}

/// The prefix of every range-local key of `range`.
pub fn range_local_prefix(range: RangeId) -> Vec<u8> {
    let mut key = vec![RANGE_LOCAL];
    key.extend_from_slice(&range.to_be_bytes());
    key
}

fn range_local(range: RangeId, kind: u8) -> Vec<u8> {
    let mut key = Vec::with_capacity(26);
    key.push(RANGE_LOCAL);
    key.extend_from_slice(&range.to_be_bytes());
    key.push(kind);
    key
}

/// The key of `range`'s last commit timestamp (big-endian `u64`), written
/// with every commit.
pub fn last_commit(range: RangeId) -> Vec<u8> {
    range_local(range, LAST_COMMIT)
}

/// The key of `range`'s GC threshold: snapshots below it may miss versions.
pub fn gc_threshold(range: RangeId) -> Vec<u8> {
    range_local(range, GC_THRESHOLD)
}

/// The key of `range`'s size: bytes of its versions (keys and values),
/// kept by every commit, resolution, GC and split (`apply.rs`).
pub fn size(range: RangeId) -> Vec<u8> {
    range_local(range, SIZE)
}

/// The key of how long `range`'s first key stays a boundary (big-endian
/// hybrid timestamp; `u64::MAX`: for ever): written by a split that
/// should not be merged away soon (`merge.rs`). Not copied by splits or
/// merges: it belongs to the boundary, not the range.
pub fn sticky(range: RangeId) -> Vec<u8> {
    range_local(range, STICKY)
}

/// Whether `suffix` (a range-local key after its range prefix) names
/// state a split or merge does not copy as it is: the timestamps, size and
/// stickiness, which both compute afresh.
pub fn is_range_summary(suffix: &[u8]) -> bool {
    matches!(suffix, [LAST_COMMIT] | [GC_THRESHOLD] | [SIZE] | [STICKY])
}

/// The prefix of `range`'s commit records.
pub fn commit_record_prefix(range: RangeId) -> Vec<u8> {
    range_local(range, COMMIT_RECORD)
}

/// The key of commit `id`'s record in `range` → its commit timestamp.
pub fn commit_record(range: RangeId, id: u128) -> Vec<u8> {
    let mut key = commit_record_prefix(range);
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// The data column family spans `range` owns with `bounds` (module docs).
pub fn data_spans(range: RangeId, bounds: &RangeBounds) -> Vec<DataSpan> {
    let local = range_local(range, 0);
    let local = DataSpan {
        start: local[..9].to_vec(),
        end: mvcc::prefix_end(&local[..9]).unwrap_or_else(|| vec![RANGE_LOCAL + 1]),
    };
    let (start, end) = mvcc::version_span(&bounds.start, bounds.end.as_deref());
    let (intents_start, intents_end) =
        crate::intents::intent_span(&bounds.start, bounds.end.as_deref());
    let mut spans = vec![local];
    if bounds.start.is_empty() {
        spans.push(DataSpan {
            start: vec![SYSTEM_PREFIX],
            end: vec![SYSTEM_PREFIX + 1],
        });
    }
    spans.push(DataSpan {
        start: intents_start,
        end: intents_end,
    });
    spans.push(DataSpan { start, end });
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(start: &[u8], end: Option<&[u8]>) -> RangeBounds {
        RangeBounds {
            start: start.to_vec(),
            end: end.map(<[u8]>::to_vec),
        }
    }

    fn owns(spans: &[DataSpan], key: &[u8]) -> bool {
        spans
            .iter()
            .any(|s| key >= s.start.as_slice() && key < s.end.as_slice())
    }

    #[test]
    fn ranges_own_disjoint_spans() {
        let left = data_spans(1, &bounds(b"", Some(b"m")));
        let right = data_spans(2, &bounds(b"m", None));
        let keys: Vec<(Vec<u8>, bool)> = vec![
            (last_commit(1), true),
            (commit_record(1, 7), true),
            (last_commit(2), false),
            (gc_threshold(2), false),
            (vec![SYSTEM_PREFIX, b'n'], true),
            (mvcc::version_key(b"a", 5), true),
            (mvcc::version_key(b"", 5), true),
            (mvcc::version_key(b"l\xff", 5), true),
            (mvcc::version_key(b"m", 5), false),
            (mvcc::version_key(b"zz", 5), false),
            (crate::intents::intent_key(b"b"), true),
            (crate::intents::intent_key(b"m"), false),
        ];
        for (key, in_left) in keys {
            assert_eq!(owns(&left, &key), in_left, "{key:x?}");
            assert_eq!(owns(&right, &key), !in_left, "{key:x?}");
        }
        assert!(owns(
            &data_spans(u64::MAX, &bounds(b"q", None)),
            &last_commit(u64::MAX)
        ));
    }
}
