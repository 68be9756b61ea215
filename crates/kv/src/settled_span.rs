//! [`SettledSpan`]: the span a transaction last cleared of intents.
//!
//! Before a transaction reads versions, it settles the intents that might
//! commit at or below its range's uncertainty limit (`Txn::settle_intents`
//! in `txn.rs`). A scan reads a range in chunks, each from where the last
//! ended to the range's end, and each chunk used to look at the intent
//! span again to the range's end: over every tombstone that resolved
//! intents leave behind, chunk after chunk. The transaction now remembers
//! the last span it settled — with the range and the limit — and does not
//! look inside it again.
//!
//! That is sound because an intent that appears inside the span after the
//! look was prepared after the transaction joined the range: above its
//! read timestamp, so it commits above it as well, and the transaction
//! must not see it (if it is resolved before the read, its version is
//! above the read timestamp: at most an uncertainty restart, as for any
//! read). Two things keep the premise true:
//!
//! * A span is remembered only after the read it was settled for passed
//!   the range's snapshot check (`Kv::check_snapshot`). A range frozen for
//!   a merge fails that check: the range absorbing it never registered
//!   the transaction's timestamp, and may take intents below it, so the
//!   read is routed again and the span settled again there.
//! * The memory names its range: a span read again through another range
//!   (after a merge) is looked at again. The limit is part of it too: a
//!   span settled at a lower limit does not cover one at a higher limit.

use shoal_replication::RangeId;

use crate::clock::Timestamp;

/// A span of user keys `[start, end)` (`end = None`: unbounded) of one
/// range, in which every intent prepared at or below `limit` was settled.
/// The default covers nothing.
#[derive(Debug, Default)]
pub(crate) struct SettledSpan {
    /// The range, and the limit it was settled up to (`None`: no span).
    settled: Option<(RangeId, Timestamp)>,
    start: Vec<u8>,
    end: Option<Vec<u8>>,
}

impl SettledSpan {
    /// `[start, end)` of `range`, settled up to `limit`.
    pub(crate) fn new(range: RangeId, start: &[u8], end: Option<&[u8]>, limit: Timestamp) -> Self {
        Self {
            settled: Some((range, limit)),
            start: start.to_vec(),
            end: end.map(<[u8]>::to_vec),
        }
    }

    /// Whether `[start, end)` of `range` at `limit` lies inside this span.
    pub(crate) fn covers(
        &self,
        range: RangeId,
        start: &[u8],
        end: Option<&[u8]>,
        limit: Timestamp,
    ) -> bool {
        let inside_end = match (&self.end, end) {
            (None, _) => true,
            (Some(own), Some(end)) => end <= own.as_slice(),
            (Some(_), None) => false,
        };
        self.settled
            .is_some_and(|(own_range, own_limit)| own_range == range && limit <= own_limit)
            && self.start.as_slice() <= start
            && inside_end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_covers_what_lies_inside_it_in_its_range_at_no_higher_limit() {
        let (r, other): (RangeId, RangeId) = (3, 4);
        assert!(!SettledSpan::default().covers(r, b"", None, 0));
        let span = SettledSpan::new(r, b"b", Some(b"m"), 10);
        assert!(span.covers(r, b"b", Some(b"m"), 10));
        assert!(span.covers(r, b"c", Some(b"d"), 5));
        assert!(!span.covers(other, b"c", Some(b"d"), 10), "another range");
        assert!(!span.covers(r, b"a", Some(b"d"), 10), "starts before");
        assert!(!span.covers(r, b"c", Some(b"n"), 10), "ends after");
        assert!(!span.covers(r, b"c", None, 10), "unbounded");
        assert!(!span.covers(r, b"c", Some(b"d"), 11), "higher limit");
        let open = SettledSpan::new(r, b"b", None, 10);
        assert!(open.covers(r, b"x", None, 10));
        assert!(open.covers(r, b"x", Some(b"y"), 10));
    }
}
