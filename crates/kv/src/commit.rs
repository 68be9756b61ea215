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
//! Ranges: a commit goes to the range owning its keys. If that range split
//! after the keys were routed, the state machine answers
//! [`Reply::WrongRange`] without writing anything and the commit is routed
//! again. A transaction writing to more than one range needs an atomic
//! commit across them (a transaction record and two-phase intents, coming
//! with distributed transactions); until then it fails with
//! [`KvError::CrossRangeWrite`] (0A000) and writes nothing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::clock::Timestamp;
use crate::command::{Command, Reply};
use crate::error::{KvError, Result, printable_key};
use crate::store::Kv;
use shoal_replication::RangeId;

impl Kv {
    /// Commits `writes` (non-empty) read at `read_ts`; returns the commit
    /// timestamp.
    pub(crate) fn commit_writes(
        &self,
        read_ts: Timestamp,
        writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    ) -> Result<Timestamp> {
        let n_writes = writes.len();
        if writes.is_empty() {
            return Ok(read_ts);
        }
        let id = rand::random();
        let writes: Vec<(Vec<u8>, Option<Vec<u8>>)> = writes.into_iter().collect();
        let deadline = Instant::now() + self.timeout;
        let reply = loop {
            let range = self.single_range(&writes)?;
            let command = Command::Commit {
                id,
                read_ts,
                ts_hint: self.clock.next(),
                writes: writes.clone(),
            };
            // Safe to re-propose: the commit record makes it idempotent.
            match self.propose_until(range, &command, deadline)? {
                // The range split since the keys were routed; the split is
                // applied here by now (the reply came from this node's
                // replica), so routing again finds the new range.
                Reply::WrongRange if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
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
            Reply::Conflict(key) => {
                tracing::debug!(key = %printable_key(&key), read_ts, "write conflict");
                Err(KvError::WriteConflict {
                    key: printable_key(&key),
                })
            }
            Reply::TooOld(threshold) => Err(KvError::SnapshotTooOld { read_ts, threshold }),
            Reply::WrongRange => Err(KvError::Unavailable(
                "the range kept splitting while the transaction committed; nothing was written"
                    .to_string(),
            )),
            other => Err(other.unexpected("a commit")),
        }
    }

    /// The one range holding every written key, or
    /// [`KvError::CrossRangeWrite`].
    fn single_range(&self, writes: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<RangeId> {
        let Some((first, _)) = writes.first() else {
            return Err(KvError::TxnFinished);
        };
        let (range, bounds) = self.route(first)?;
        if let Some((key, _)) = writes.iter().find(|(key, _)| !bounds.contains(key)) {
            let (other, _) = self.route(key)?;
            return Err(KvError::CrossRangeWrite(range, other));
        }
        Ok(range)
    }
}
