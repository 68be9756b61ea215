//! Serializable transactions: what a transaction read, and the proof at
//! commit that it still holds.
//!
//! # The rule
//!
//! Snapshot isolation alone (`txn.rs`, `apply.rs`) lets two transactions
//! each read what the other writes and both commit — *write skew*. A
//! serializable transaction closes that gap the way CockroachDB does: it
//! is serialized at its **commit timestamp**, so everything it read at its
//! read timestamp must still be true there. At commit it proves that no
//! version of anything it read was committed in `(read_ts, commit_ts]`,
//! and that no later commit can land there. Then the history is
//! equivalent to running every transaction alone in commit-timestamp
//! order (read-only transactions at their read timestamp: every range
//! they read orders later commits above it, `store.rs`).
//!
//! # What is recorded
//!
//! [`ReadSet`] keeps the spans a transaction read: a point read is the
//! span of its one key, a scan the part of its span it actually covered.
//! Reads answered from the transaction's own buffered writes are not
//! recorded, and neither is a point read of a key the transaction also
//! writes: the write rule (no version newer than the read timestamp, no
//! foreign intent) already proves it. Memory is bounded: past
//! [`MAX_READ_SPANS`] spans, neighbours are merged into covering spans.
//! A coarser span can only make a commit fail that might have passed
//! (a spurious 40001), never let a wrong one through.
//!
//! # How it is proven ([`check_reads`])
//!
//! A range proves spans it holds by looking at its versions and intents:
//! a version in `(read_ts, limit]` is a conflict (the transaction would
//! have had to see it), and another transaction's intent prepared at or
//! below `limit` is waited out like any intent, because it may commit
//! there. The check runs in the range's Raft log, so it is ordered
//! against every commit of the range:
//!
//! * **In the commit itself.** A commit to one range carries the spans
//!   read in that range; the state machine picks the commit timestamp and
//!   checks up to it, atomically with writing.
//! * **As a [`Command::Refresh`]** in every other range read. The refresh
//!   checks up to a timestamp and raises the range's last commit timestamp
//!   to it, so every later commit there lands above it. A one-range
//!   commit that also read elsewhere therefore refreshes those ranges at a
//!   timestamp `C` first and then commits with `max_ts = C`; a range that
//!   cannot commit at or below `C` answers [`Reply::TooLate`] and the
//!   coordinator tries again higher. A commit across ranges refreshes
//!   after every prepare, at the commit timestamp, before deciding
//!   (`distributed.rs`); its own intents are skipped.
//!
//! A conflict is [`KvError::ReadConflict`] (SQLSTATE 40001).

use std::collections::BTreeMap;
use std::time::Instant;

use shoal_replication::{RangeBounds, RangeId};
use shoal_storage::Engine;

use crate::clock::Timestamp;
use crate::command::{Command, Reply};
use crate::error::{KvError, Result};
use crate::intents::Intent;
use crate::mvcc;
use crate::store::Kv;

/// Read spans a transaction keeps before merging neighbours.
pub const MAX_READ_SPANS: usize = 4096;

/// Refresh-then-commit attempts of a one-range commit that read other
/// ranges before it gives up with a serialization failure.
const MAX_COMMIT_ATTEMPTS: usize = 8;

/// A span of user keys `[start, end)`; an empty `end` is unbounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// The first key.
    pub start: Vec<u8>,
    /// The first key after the span, or empty for the end of the key space.
    pub end: Vec<u8>,
}

impl Span {
    /// The span of exactly `key`.
    pub fn point(key: &[u8]) -> Span {
        let mut end = key.to_vec();
        end.push(0);
        Span {
            start: key.to_vec(),
            end,
        }
    }

    fn end(&self) -> Option<&[u8]> {
        (!self.end.is_empty()).then_some(self.end.as_slice())
    }

    /// Whether the span lies within `bounds`.
    pub(crate) fn within(&self, bounds: &RangeBounds) -> bool {
        self.start.as_slice() >= bounds.start.as_slice()
            && match (&bounds.end, self.end()) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(b), Some(e)) => e <= b.as_slice(),
            }
    }

    /// The key of a point span.
    fn point_key(&self) -> Option<&[u8]> {
        (self.end.len() == self.start.len() + 1
            && self.end.starts_with(&self.start)
            && self.end.last() == Some(&0))
        .then_some(self.start.as_slice())
    }
}

/// The spans a transaction read (module docs).
#[derive(Debug, Default)]
pub(crate) struct ReadSet {
    spans: Vec<Span>,
}

impl ReadSet {
    /// Records a read of `span`.
    pub(crate) fn record(&mut self, span: Span) {
        self.spans.push(span);
        if self.spans.len() > MAX_READ_SPANS {
            self.condense();
        }
    }

    /// Sorts and merges overlapping spans; if that is not enough, merges
    /// neighbours pairwise until at most half the budget is left.
    fn condense(&mut self) {
        self.normalize();
        while self.spans.len() > MAX_READ_SPANS / 2 {
            let spans = std::mem::take(&mut self.spans);
            let mut pairs = spans.into_iter();
            while let Some(mut first) = pairs.next() {
                if let Some(second) = pairs.next() {
                    first.end = second.end;
                }
                self.spans.push(first);
            }
        }
    }

    /// Sorts the spans and merges the ones that overlap or touch.
    fn normalize(&mut self) {
        self.spans.sort_by(|a, b| a.start.cmp(&b.start));
        let mut merged: Vec<Span> = Vec::with_capacity(self.spans.len());
        for span in std::mem::take(&mut self.spans) {
            match merged.last_mut() {
                Some(last) if last.end().is_none_or(|e| span.start.as_slice() <= e) => {
                    if last.end().is_some() && span.end().is_none_or(|e| e > last.end.as_slice()) {
                        last.end = span.end;
                    }
                }
                _ => merged.push(span),
            }
        }
        self.spans = merged;
    }

    /// The spans to prove at commit, sorted and merged: point reads of
    /// keys in `written` are left out (module docs).
    pub(crate) fn take(&mut self, written: impl Fn(&[u8]) -> bool) -> Vec<Span> {
        self.normalize();
        let mut spans = std::mem::take(&mut self.spans);
        spans.retain(|s| !s.point_key().is_some_and(&written));
        spans
    }
}

/// Spans grouped by the range holding them.
pub(crate) type ReadGroups = BTreeMap<RangeId, Vec<Span>>;

/// The state machine's check of `spans` (module docs): `None` if nothing
/// was committed in `(read_ts, limit]` and no foreign intent may commit
/// there, else the refusal.
pub(crate) fn check_reads(
    engine: &dyn Engine,
    spans: &[Span],
    read_ts: Timestamp,
    limit: Timestamp,
    own: Option<u128>,
) -> Result<Option<Reply>> {
    for span in spans {
        // Only a conflict's key is decoded, and a key's older versions
        // are skipped: a span may hold millions.
        if let Some(user_key) =
            mvcc::first_changed(engine, &span.start, span.end(), read_ts, limit)?
        {
            return Ok(Some(Reply::ReadConflict(user_key)));
        }
        let (from, to) = crate::intents::intent_span(&span.start, span.end());
        for item in engine.scan(&from, Some(&to)) {
            let (key, raw) = item?;
            let (txn_id, prepare_ts) = Intent::peek(&raw)?;
            if Some(txn_id) != own && prepare_ts <= limit {
                return Ok(Some(Reply::IntentConflict {
                    key: crate::intents::intent_user_key(&key)?,
                    intent: raw,
                }));
            }
        }
    }
    Ok(None)
}

impl Kv {
    /// `spans` cut at range boundaries and grouped by range.
    pub(crate) fn group_reads(&self, spans: &[Span]) -> Result<ReadGroups> {
        let mut groups = ReadGroups::new();
        for span in spans {
            let mut start = span.start.clone();
            loop {
                let (range, bounds) = self.route(&start)?;
                let piece_end = match (&bounds.end, span.end()) {
                    (Some(b), Some(e)) if b.as_slice() < e => Some(b.clone()),
                    (Some(b), None) => Some(b.clone()),
                    _ => None,
                };
                let Some(next) = piece_end else {
                    groups.entry(range).or_default().push(Span {
                        start,
                        end: span.end.clone(),
                    });
                    break;
                };
                groups.entry(range).or_default().push(Span {
                    start,
                    end: next.clone(),
                });
                start = next;
            }
        }
        Ok(groups)
    }

    /// Proves the read `groups` in their ranges up to `refresh_ts`, waiting
    /// out other transactions' intents (`own`: this transaction's, to skip).
    /// Ranges are refreshed in parallel. A range that changed since the
    /// spans were grouped is [`KvError::Misrouted`]: group again.
    pub(crate) fn refresh(
        &self,
        own: Option<u128>,
        read_ts: Timestamp,
        refresh_ts: Timestamp,
        groups: ReadGroups,
        (deadline, lock): (Instant, Option<Instant>),
    ) -> Result<()> {
        let refresh_one = |range: RangeId, spans: Vec<Span>| -> Result<()> {
            let command = Command::Refresh {
                txn_id: own.unwrap_or(0),
                read_ts,
                refresh_ts,
                spans,
            };
            loop {
                match self.propose_until(range, &command, deadline)? {
                    Reply::Refreshed => return Ok(()),
                    Reply::IntentConflict { key, intent } => {
                        let intent = Intent::decode(&intent)?;
                        // Across ranges (`own`), the transaction holds
                        // intents while it waits.
                        self.resolve_intent_within(&key, &intent, deadline, (lock, own.is_some()))?;
                    }
                    Reply::WrongRange => {
                        self.reload_directory();
                        return Err(KvError::Misrouted(
                            "a range changed while the transaction proved its reads".into(),
                        ));
                    }
                    other => return Err(self.refusal(read_ts, other, "a refresh")),
                }
            }
        };
        if groups.len() == 1 {
            let Some((range, spans)) = groups.into_iter().next() else {
                return Ok(());
            };
            return refresh_one(range, spans);
        }
        let outcomes: Vec<Result<()>> = std::thread::scope(|scope| {
            let handles: Vec<_> = groups
                .into_iter()
                .map(|(range, spans)| scope.spawn(move || refresh_one(range, spans)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(KvError::Unavailable("refresh thread panicked".into()))
                    })
                })
                .collect()
        });
        outcomes.into_iter().collect()
    }

    /// Commits `writes`, all in `range`, of a serializable transaction that
    /// read `reads` at `read_ts` (module docs): the spans in `range` are
    /// proven by the commit itself; the others are refreshed first at a
    /// timestamp the commit may not exceed. Returns the commit's reply.
    pub(crate) fn commit_one_range(
        &self,
        range: RangeId,
        (id, read_ts, lock_id): (u128, Timestamp, u128),
        writes: crate::command::Writes,
        reads: &[Span],
        (deadline, lock): (Instant, Option<Instant>),
    ) -> Result<Reply> {
        let mut attempts = 0;
        loop {
            let mut groups = self.group_reads(reads)?;
            let here = groups.remove(&range).unwrap_or_default();
            let ts_hint = self.clock.next();
            let max_ts = if groups.is_empty() {
                None
            } else {
                self.refresh(None, read_ts, ts_hint, groups, (deadline, lock))?;
                Some(ts_hint)
            };
            let command = Command::Commit {
                id,
                read_ts,
                ts_hint,
                writes: writes.clone(),
                reads: here,
                max_ts,
                lock_id,
            };
            match self.propose_until(range, &command, deadline)? {
                Reply::TooLate(ts) => {
                    attempts += 1;
                    self.clock.observe(ts);
                    if attempts >= MAX_COMMIT_ATTEMPTS {
                        return Err(KvError::ReadConflict {
                            key: reads.first().map(|s| s.start.clone()).unwrap_or_default(),
                            note: ", other transactions kept committing above it".into(),
                        });
                    }
                }
                other => return Ok(other),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn span(start: &str, end: &str) -> Span {
        Span {
            start: start.as_bytes().to_vec(),
            end: end.as_bytes().to_vec(),
        }
    }

    #[test]
    fn spans_merge_and_written_points_drop_out() {
        let mut reads = ReadSet::default();
        reads.record(span("c", "e"));
        reads.record(span("a", "b"));
        reads.record(span("d", "f"));
        reads.record(Span::point(b"x"));
        reads.record(Span::point(b"y"));
        reads.record(span("b", "c"));
        let taken = reads.take(|k| k == b"x");
        assert_eq!(taken, vec![span("a", "f"), Span::point(b"y")]);
    }

    #[test]
    fn an_unbounded_span_swallows_what_follows() {
        let mut reads = ReadSet::default();
        reads.record(span("m", ""));
        reads.record(span("p", "q"));
        reads.record(span("a", "b"));
        assert_eq!(reads.take(|_| false), vec![span("a", "b"), span("m", "")]);
    }

    #[test]
    fn the_read_set_stays_bounded_and_covers_every_read() {
        let mut reads = ReadSet::default();
        let keys: Vec<Vec<u8>> = (0..3 * MAX_READ_SPANS as u32)
            .map(|i| (i * 2).to_be_bytes().to_vec())
            .collect();
        for key in &keys {
            reads.record(Span::point(key));
            assert!(reads.spans.len() <= MAX_READ_SPANS);
        }
        let taken = reads.take(|_| false);
        assert!(taken.len() <= MAX_READ_SPANS);
        for key in &keys {
            assert!(
                taken
                    .iter()
                    .any(|s| s.start.as_slice() <= key.as_slice() && s.end > *key),
                "{key:?} lost"
            );
        }
    }

    #[test]
    fn spans_know_their_bounds() {
        let bounds = RangeBounds {
            start: b"b".to_vec(),
            end: Some(b"m".to_vec()),
        };
        assert!(span("b", "m").within(&bounds));
        assert!(!span("a", "c").within(&bounds));
        assert!(!span("c", "").within(&bounds));
        assert!(span("c", "").within(&RangeBounds {
            start: Vec::new(),
            end: None
        }));
    }
}
