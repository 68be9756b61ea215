//! Splitting a range at a key — on request, or because the range grew past
//! its span's `range_max_bytes` — and deleting a span that may cross
//! ranges.
//!
//! [`Kv::split_at`] allocates a range id in the first range
//! ([`Command::AllocateRangeId`]), then proposes [`Command::Split`] to the
//! range owning the key. The replication layer applies it on every replica
//! at the same log index: the range's bounds end at the key, and a new
//! range with the same replicas owns the rest (`shoal-replication`'s
//! `apply.rs`). No data is copied or moved; the right-hand range's leader
//! is elected within a round trip (the split range's leader campaigns).
//!
//! Splitting where a range already begins changes nothing and succeeds, so
//! the call is idempotent; so is re-proposing the same split (the second
//! copy is refused — the key is no longer inside the range — and then
//! found to be a boundary).
//!
//! Boundaries made by hand or for a table's own range are **sticky**: the
//! merge driver never removes them (`merge.rs`); those made by load stay
//! for a while; those made by size may go whenever the ranges shrink.
//!
//! **Unsplitting.** [`Kv::unsplit_at`] (`ALTER TABLE … UNSPLIT AT`) drops
//! the stickiness of a boundary — a command to the range starting there,
//! [`Command::Unstick`] — so the merge driver may merge the range into its
//! left-hand neighbour once both are small enough. The boundary itself
//! stays until then, as in CockroachDB.
//!
//! **By size.** Every range keeps the bytes of its versions (`apply.rs`).
//! [`Kv::split_oversized`], run by each node's maintenance loop, splits
//! every range the node leads that holds more than its span's
//! `range_max_bytes` (`span_config.rs`) at the first row boundary past
//! half its bytes, so both halves start below the limit. The command
//! carries the proposer's count of the left half's bytes, from which every
//! replica sets both sizes.

use std::sync::Arc;
use std::time::Instant;

use shoal_replication::RangeId;

use crate::clock::Timestamp;
use crate::command::{Command, Reply};
use crate::error::{KvError, Result, printable_key};
use crate::mvcc;
use crate::store::Kv;

impl Kv {
    /// Makes `key` the first key of a range, a boundary never merged away
    /// (`SPLIT AT`, a table's own range); returns that range's id.
    pub fn split_at(&self, key: &[u8]) -> Result<RangeId> {
        self.split_sticky(key, Timestamp::MAX)
    }

    /// Makes `key` the first key of a range, a boundary kept from merging
    /// until `sticky_until` (hybrid time; `merge.rs`); returns that range's
    /// id.
    pub(crate) fn split_sticky(&self, key: &[u8], sticky_until: Timestamp) -> Result<RangeId> {
        let (range, bounds) = self.route(key)?;
        if bounds.start == key {
            return Ok(range);
        }
        if !self.is_local(range) {
            // Split by a node holding the range: it measures the sides.
            return self.rerouting(|| {
                let (range, _) = self.route(key)?;
                let request = crate::remote::Request::SplitAt { key: key.to_vec() };
                match self.ask(&self.record_of(range)?, &request)? {
                    crate::remote::Answer::Range(range) => Ok(range),
                    other => Err(crate::store::unexpected_answer(&other)),
                }
            });
        }
        let left_bytes = self.span_bytes(&bounds.start, key)?;
        self.split_with(key, left_bytes, sticky_until)
    }

    /// Lets the boundary at `key` be merged away (module docs); returns the
    /// range that starts there. `key` must be the first key of a range.
    pub fn unsplit_at(&self, key: &[u8]) -> Result<RangeId> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let (range, bounds) = self.route(key)?;
            if bounds.start != key {
                return Err(KvError::InvalidRangeRequest(format!(
                    "cannot unsplit at key {}: it is not the first key of a range",
                    printable_key(key)
                )));
            }
            let command = Command::Unstick { at: key.to_vec() };
            match self.propose_until(range, &command, deadline)? {
                Reply::Unstuck => return Ok(range),
                // Split or merged since this node routed: route again.
                Reply::WrongRange if Instant::now() < deadline => {}
                other => return Err(other.unexpected("an unsplit")),
            }
        }
    }

    /// Unsplits every boundary strictly inside `[start, end)`
    /// (`ALTER TABLE … UNSPLIT ALL`); returns each range and first key.
    pub fn unsplit_span(&self, start: &[u8], end: &[u8]) -> Result<Vec<(RangeId, Vec<u8>)>> {
        let mut done = Vec::new();
        let mut key = start.to_vec();
        // Walked range by range, as routed: a local replica's bounds are
        // the truth, fresher than the directory.
        loop {
            let (_, bounds) = self.route(&key)?;
            let Some(next) = bounds.end.filter(|next| next.as_slice() < end) else {
                return Ok(done);
            };
            match self.unsplit_at(&next) {
                Ok(range) => done.push((range, next.clone())),
                // Merged away meanwhile: nothing to do.
                Err(KvError::InvalidRangeRequest(_)) => {}
                Err(e) => return Err(e),
            }
            key = next;
        }
    }

    /// Splits every range this node leads that holds more bytes than its
    /// span's `range_max_bytes` (module docs); returns the new ranges.
    pub fn split_oversized(&self) -> Result<Vec<RangeId>> {
        let me = self.raft.node_id();
        let mut created = Vec::new();
        for range in self.local_ranges() {
            if self.raft.leader(range.range_id) != Some(me) {
                continue;
            }
            let bytes = self.published.bytes(range.range_id, self.engine.as_ref())?;
            if bytes <= self.range_max_bytes(&range.start_key)? {
                continue;
            }
            let end = range.end_key.as_deref();
            if let Some((key, left_bytes)) = self.halfway(&range.start_key, end, bytes / 2)? {
                tracing::info!(
                    range = range.range_id,
                    bytes,
                    "splitting a range grown too big"
                );
                created.push(self.split_with(&key, left_bytes, 0)?);
            }
        }
        Ok(created)
    }

    /// The bytes of the versions of user keys in `[start, end)`, here.
    fn span_bytes(&self, start: &[u8], end: &[u8]) -> Result<u64> {
        let (lower, upper) = mvcc::version_span(start, Some(end));
        let mut bytes = 0u64;
        for pair in self.engine.scan(&lower, Some(&upper)) {
            let (key, value) = pair?;
            bytes += (key.len() + value.len()) as u64;
        }
        Ok(bytes)
    }

    /// The first user key after `start` at which the versions before it
    /// take at least `half` bytes, with that count; `None` if no key
    /// qualifies (one huge row).
    fn halfway(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        half: u64,
    ) -> Result<Option<(Vec<u8>, u64)>> {
        let (lower, upper) = mvcc::version_span(start, end);
        let mut bytes = 0u64;
        let mut current: Option<Vec<u8>> = None;
        for pair in self.engine.scan(&lower, Some(&upper)) {
            let (key, value) = pair?;
            let (user_key, _) = mvcc::decode_version_key(&key)?;
            if current.as_deref() != Some(user_key.as_slice()) {
                if bytes >= half && user_key.as_slice() > start {
                    return Ok(Some((user_key, bytes)));
                }
                current = Some(user_key);
            }
            bytes += (key.len() + value.len()) as u64;
        }
        Ok(None)
    }

    /// Splits the range holding `key` at it; the left side keeps
    /// `left_bytes` of the range's size, and the boundary is sticky until
    /// `sticky_until`.
    fn split_with(&self, key: &[u8], left_bytes: u64, sticky_until: Timestamp) -> Result<RangeId> {
        let deadline = Instant::now() + self.timeout;
        let (mut range, bounds) = self.route(key)?;
        if bounds.start == key {
            return Ok(range);
        }
        let new_range = match self.propose_cluster(&Command::AllocateRangeId, self.timeout)? {
            Reply::RangeIdAllocated(id) => id,
            other => return Err(other.unexpected("a range id allocation")),
        };
        let command = Command::Split {
            at: key.to_vec(),
            new_range,
            left_bytes,
            sticky_until,
        };
        loop {
            // Safe to repeat: a second copy is refused and changes nothing.
            let reason = match self.propose_until(range, &command, deadline)? {
                Reply::Split => {
                    tracing::info!(range, new_range, key = %printable_key(key), "split range");
                    return Ok(new_range);
                }
                Reply::SplitRefused(reason) => reason,
                other => return Err(other.unexpected("a split")),
            };
            match self.route(key)? {
                // Split there meanwhile (a concurrent request, or our own
                // first copy).
                (now, bounds) if bounds.start == key => return Ok(now),
                // Another split moved the key to another range: split that
                // one (the refused command changed nothing, so its range id
                // is still unused).
                (now, _) if now != range && Instant::now() < deadline => range = now,
                _ => {
                    return Err(KvError::InvalidSplit {
                        key: printable_key(key),
                        reason,
                    });
                }
            }
        }
    }
}

impl Kv {
    /// Deletes every key in `[start, end)`, in transactions of at most
    /// `chunk` keys that each write to one range — not atomically: for data
    /// nothing else can reach any more (a dropped table's rows, whose table
    /// id is never reused). Returns the number of keys deleted.
    pub fn purge_span(self: &Arc<Self>, start: &[u8], end: &[u8], chunk: usize) -> Result<u64> {
        let mut from = start.to_vec();
        let mut deleted = 0u64;
        while from.as_slice() < end {
            let (_, bounds) = self.route(&from)?;
            let piece_end = match bounds.end.as_deref() {
                Some(b) if b < end => b.to_vec(),
                _ => end.to_vec(),
            };
            let txn = self.begin()?;
            let keys = txn.scan(&from, &piece_end, chunk.max(1))?;
            let full = keys.len() >= chunk.max(1);
            for (key, _) in &keys {
                txn.delete(key.clone())?;
            }
            deleted += keys.len() as u64;
            match txn.commit() {
                // A READ COMMITTED block still holds a row lock here: wait
                // for it (within the request timeout) and do the chunk again.
                Err(KvError::Locked(blocked)) => {
                    deleted -= keys.len() as u64;
                    self.wait_for_lock(&blocked)?;
                    continue;
                }
                other => {
                    other?;
                }
            }
            from = match keys.last() {
                Some((last, _)) if full => {
                    let mut next = last.clone();
                    next.push(0);
                    next
                }
                _ => piece_end,
            };
        }
        Ok(deleted)
    }
}
