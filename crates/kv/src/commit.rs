//! The commit path: propose, let every replica decide, report.
//!
//! A transaction's buffered writes are grouped by the range holding them.
//! Writes to **one range** become one
//! [`Command::Commit`](crate::command::Command::Commit) carrying the
//! transaction's read timestamp and a timestamp hint from this node's
//! clock (and, for a serializable transaction, the spans it read there,
//! after refreshing the ranges it read elsewhere: `reads.rs`). The command goes to the range's Raft group (from any node: a
//! follower's proposal is forwarded to the leader) and is applied by every
//! replica (`apply.rs`), which decides — identically everywhere — between:
//!
//! * **conflict** (first committer wins): some written key has a version
//!   newer than the read timestamp → [`KvError::WriteConflict`], nothing
//!   written. This is snapshot isolation's write rule, PostgreSQL's
//!   REPEATABLE READ behaviour; write skew remains possible, as there,
//!   unless the transaction is serializable (its reads are proven too:
//!   [`KvError::ReadConflict`]).
//! * **intent**: a written key holds another transaction's intent (it is
//!   committing across ranges); this node waits until that transaction is
//!   decided — or pushes it, if its coordinator is presumed dead —
//!   resolves the intent and proposes again (`distributed.rs`).
//! * **commit** at `max(hint, floor, last commit + 1)`: every write becomes
//!   a version at that timestamp, atomically with the range's new
//!   `last_commit`.
//!
//! Writes to **several ranges** commit in two phases (`distributed.rs`),
//! and so do writes too many for one command (`parts.rs`): a commit is
//! one command only while it is small.
//!
//! The call returns once a quorum has the entry in its log (synced) and
//! the proposing node has applied it — this node, or, for a range it holds
//! no replica of, the node it asked (`remote.rs`). A snapshot taken
//! afterwards includes the commit either way: its reads pass the range's
//! read barrier. Commits from many sessions that arrive during one
//! Raft round share its fsync.
//!
//! The command carries a random id and applying it leaves a commit record,
//! so the Raft handle may propose it again whenever an answer is late (a
//! proposal forwarded to a leader that died is simply lost): a second copy
//! is answered from the record. Only when no attempt got an answer by the
//! request timeout is the outcome reported ambiguous (or the range
//! unavailable, if no leader was ever found). If the range split after the
//! keys were routed, the state machine answers [`Reply::WrongRange`]
//! without writing anything, and the writes are routed again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use shoal_replication::RangeId;

use crate::clock::Timestamp;
use crate::command::{Reply, Writes};
use crate::error::{KvError, Result, printable_key};
use crate::intents::Intent;
use crate::reads::Span;
use crate::store::Kv;

/// Writes grouped by range, in key order within each group.
pub(crate) type Groups = BTreeMap<RangeId, Writes>;

impl Kv {
    /// Commits `writes` (non-empty) read at `read_ts`; returns the commit
    /// timestamp. `reads` are the spans a serializable transaction read, to
    /// prove at the commit timestamp (`reads.rs`; empty under snapshot
    /// isolation). `lock_wait` bounds each wait for another transaction's
    /// intent ([`KvError::LockTimeout`]; `None`: the request timeout).
    /// `lock_id` names the transaction's row locks (`write_locks.rs`; 0:
    /// none): its lock intents do not stop these writes, while another
    /// transaction's fail the commit at once with [`KvError::Locked`].
    pub(crate) fn commit_writes(
        &self,
        read_ts: Timestamp,
        writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
        reads: &[Span],
        (lock_wait, lock_id): (Option<Duration>, u128),
    ) -> Result<Timestamp> {
        let n_writes = writes.len();
        if writes.is_empty() {
            return Ok(read_ts);
        }
        let id = rand::random();
        let writes: Writes = writes.into_iter().collect();
        // More than one command may carry (`parts.rs`): two phases, in
        // parts, even in one range.
        let in_parts = crate::parts::exceed_one_part(&writes);
        let deadline = Instant::now() + self.timeout;
        let lock = lock_wait.map(|wait| Instant::now() + wait);
        let reply = loop {
            let mut groups = self.group_by_range(writes.clone())?;
            if groups.len() > 1 || in_parts {
                match self.commit_across((read_ts, lock_id), &writes, groups, reads, deadline, lock)
                {
                    // Aborted cleanly because a range changed: group again.
                    Err(KvError::Misrouted(_)) if Instant::now() < deadline => {
                        shoal_replication::blocking::sleep(Duration::from_millis(5));
                        self.reload_directory();
                        continue;
                    }
                    other => return other,
                }
            }
            let Some((range, writes)) = groups.pop_first() else {
                return Ok(read_ts);
            };
            // Safe to re-propose: the commit record makes it idempotent.
            let reply = match self.commit_one_range(
                range,
                (id, read_ts, lock_id),
                writes,
                reads,
                (deadline, lock),
            ) {
                // A range read changed since the spans were grouped.
                Err(KvError::Misrouted(_)) if Instant::now() < deadline => Reply::WrongRange,
                other => other?,
            };
            match reply {
                // The range split since the keys were routed; the split is
                // applied here by now (the reply came from this node's
                // replica), so routing again finds the new range.
                Reply::WrongRange if Instant::now() < deadline => {
                    shoal_replication::blocking::sleep(Duration::from_millis(5));
                }
                Reply::IntentConflict { key, intent } => {
                    let intent = Intent::decode(&intent)?;
                    // Holding no intents, this commit cannot close a cycle
                    // of waits: it waits as long as it may.
                    self.resolve_intent_within(&key, &intent, deadline, (lock, false))?;
                }
                other => break other,
            }
        };
        match reply {
            Reply::Committed(commit_ts) => {
                self.clock.observe(commit_ts);
                tracing::debug!(read_ts, commit_ts, writes = n_writes, "committed");
                Ok(commit_ts)
            }
            other => Err(self.refusal(read_ts, other, "a commit")),
        }
    }

    /// The error a refused commit or prepare reports.
    pub(crate) fn refusal(&self, read_ts: Timestamp, reply: Reply, what: &str) -> KvError {
        match reply {
            Reply::ReadConflict(key) => {
                tracing::debug!(key = %printable_key(&key), read_ts, "read conflict");
                KvError::ReadConflict {
                    key,
                    note: String::new(),
                }
            }
            Reply::Conflict(key) => {
                tracing::debug!(key = %printable_key(&key), read_ts, "write conflict");
                KvError::WriteConflict {
                    key,
                    note: String::new(),
                }
            }
            Reply::TooOld(threshold) => KvError::SnapshotTooOld { read_ts, threshold },
            Reply::WrongRange => KvError::Unavailable(
                "the range kept splitting while the transaction committed; nothing was written"
                    .to_string(),
            ),
            other => other.unexpected(what),
        }
    }

    /// `writes` grouped by the range holding them.
    pub(crate) fn group_by_range(&self, writes: Writes) -> Result<Groups> {
        let mut groups = Groups::new();
        let mut current: Option<(RangeId, shoal_replication::RangeBounds)> = None;
        for (key, value) in writes {
            let range = match &current {
                Some((range, bounds)) if bounds.contains(&key) => *range,
                _ => {
                    let (range, bounds) = self.rerouting(|| self.route(&key))?;
                    current = Some((range, bounds));
                    range
                }
            };
            let group = groups.entry(range).or_default();
            // Load counts requests, as CockroachDB's QPS counts batches: a
            // statement writing a thousand rows to a range is one request
            // (sampled at its first key), or bulk loads would split ranges
            // by "load".
            if group.is_empty() {
                self.load.record(range, &key);
            }
            group.push((key, value));
        }
        Ok(groups)
    }
}
