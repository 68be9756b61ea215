//! The commit path: propose, let every replica decide, report.
//!
//! A transaction's buffered writes become one [`Command::Commit`] carrying
//! its read timestamp and a timestamp hint from this node's clock. The
//! command goes to the range's Raft group (from any node: a follower's
//! proposal is forwarded to the leader) and is applied by every replica
//! (`apply.rs`), which decides — identically everywhere — between:
//!
//! * **conflict** (first committer wins): some written key has a version
//!   newer than the read timestamp → [`KvError::WriteConflict`], nothing
//!   written. This is snapshot isolation's write rule, PostgreSQL's
//!   REPEATABLE READ behaviour; write skew remains possible, as there.
//! * **commit** at `max(hint, last commit + 1)`: every write becomes a
//!   version at that timestamp, atomically with the range's new
//!   `last_commit`.
//!
//! The call returns once a quorum has the entry in its log (synced) and
//! this node has applied it, so a snapshot this node takes afterwards
//! includes the commit. Commits from many sessions that arrive during one
//! Raft round share its fsync.
//!
//! The command carries a random id and applying it leaves a commit record,
//! so the Raft handle may propose it again whenever an answer is late (a
//! proposal forwarded to a leader that died is simply lost): a second copy
//! is answered from the record. Only when no attempt got an answer by the
//! request timeout is the outcome reported ambiguous (or the range
//! unavailable, if no leader was ever found).
//!
//! Cross-range atomicity: with one range (today) a commit is one command.
//! Once ranges split, a commit spanning them needs a transaction record and
//! two-phase intents; that arrives with distributed transactions.

use std::collections::BTreeMap;

use crate::clock::Timestamp;
use crate::command::{Command, Reply};
use crate::error::{KvError, Result, printable_key};
use crate::store::Kv;

impl Kv {
    /// Commits `writes` (non-empty) read at `read_ts`; returns the commit
    /// timestamp.
    pub(crate) fn commit_writes(
        &self,
        read_ts: Timestamp,
        writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    ) -> Result<Timestamp> {
        let n_writes = writes.len();
        let range = match writes.keys().next() {
            Some(first) => self.range_of(first),
            None => return Ok(read_ts),
        };
        let command = Command::Commit {
            id: rand::random(),
            read_ts,
            ts_hint: self.clock.next(),
            writes: writes.into_iter().collect(),
        };
        // Safe to re-propose: the commit record makes it idempotent.
        let reply = self
            .raft
            .propose_idempotent(range, command.encode(), self.timeout)?;
        match Reply::decode(&reply)? {
            Reply::Committed(commit_ts) => {
                self.clock.observe(commit_ts);
                tracing::debug!(read_ts, commit_ts, writes = n_writes, "committed");
                Ok(commit_ts)
            }
            Reply::Conflict(key) => {
                tracing::debug!(key = %printable_key(&key), read_ts, "write conflict");
                Err(KvError::WriteConflict {
                    key: printable_key(&key),
                })
            }
            Reply::TooOld(threshold) => Err(KvError::SnapshotTooOld { read_ts, threshold }),
            other => Err(other.unexpected("a commit")),
        }
    }
}
