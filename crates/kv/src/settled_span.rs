//! [`SettledSpan`]: the span a transaction last cleared of intents.
//!
//! Before a transaction reads versions, it settles the intents that might
//! commit at or below its range's uncertainty limit (`Txn::settle_intents`
//! in `txn.rs`). A scan reads a range in chunks, each from where the last
//! ended to the range's end, and each chunk used to look at the intent
//! span again to the range's end: over every tombstone that resolved
//! intents leave behind, chunk after chunk. The transaction now remembers
//! the last span it settled, with its limit, and does not look inside it
//! again.
//!
//! That is sound because an intent that appears inside the span after the
//! look was prepared after the transaction joined the range: above its
//! read timestamp, so it commits above it as well, and the transaction
//! must not see it (if it is resolved before the read, its version is
//! above the read timestamp: at most an uncertainty restart, as for any
//! read). The limit is part of the memory: a span settled at a lower
//! limit (a range joined again after a split) does not cover one at a
//! higher limit.

use crate::clock::Timestamp;

/// A span of user keys `[start, end)` (`end = None`: unbounded) in which
/// every intent prepared at or below `limit` was settled. The default
/// covers nothing.
#[derive(Debug, Default)]
pub(crate) struct SettledSpan {
    start: Vec<u8>,
    end: Option<Vec<u8>>,
    limit: Option<Timestamp>,
}

impl SettledSpan {
    /// `[start, end)`, settled up to `limit`.
    pub(crate) fn new(start: &[u8], end: Option<&[u8]>, limit: Timestamp) -> Self {
        Self {
            start: start.to_vec(),
            end: end.map(<[u8]>::to_vec),
            limit: Some(limit),
        }
    }

    /// Whether `[start, end)` at `limit` lies inside this span.
    pub(crate) fn covers(&self, start: &[u8], end: Option<&[u8]>, limit: Timestamp) -> bool {
        let inside_end = match (&self.end, end) {
            (None, _) => true,
            (Some(own), Some(end)) => end <= own.as_slice(),
            (Some(_), None) => false,
        };
        self.limit.is_some_and(|own| limit <= own) && self.start.as_slice() <= start && inside_end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_covers_what_lies_inside_it_at_no_higher_limit() {
        assert!(!SettledSpan::default().covers(b"", None, 0));
        let span = SettledSpan::new(b"b", Some(b"m"), 10);
        assert!(span.covers(b"b", Some(b"m"), 10));
        assert!(span.covers(b"c", Some(b"d"), 5));
        assert!(!span.covers(b"a", Some(b"d"), 10), "starts before");
        assert!(!span.covers(b"c", Some(b"n"), 10), "ends after");
        assert!(!span.covers(b"c", None, 10), "unbounded");
        assert!(!span.covers(b"c", Some(b"d"), 11), "higher limit");
        let open = SettledSpan::new(b"b", None, 10);
        assert!(open.covers(b"x", None, 10));
        assert!(open.covers(b"x", Some(b"y"), 10));
    }
}
