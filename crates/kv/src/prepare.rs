//! Phase one of a commit in two phases, part by part (`distributed.rs`
//! has the protocol, `parts.rs` the bounds).
//!
//! A transaction's writes, grouped by range, are cut into parts; each part
//! is one [`Command::Prepare`] with its own number, so that it leaves its
//! own marker in its range (a part proposed again answers its first
//! timestamp, and two parts of one transaction in one range are not taken
//! for each other). The commit timestamp is the largest timestamp any part
//! was prepared at.
//!
//! # Order and liveness
//!
//! A commit that fits in one round of workers prepares every part at once.
//! A longer one first prepares, alone, the part holding the primary key:
//! the transaction record then exists, pending until an expiry, before any
//! other intent does, so a transaction that meets one of its intents waits
//! for the record instead of taking a missing record for an abandoned
//! commit. The record's expiry must not pass while parts are still being
//! prepared, so every part prepared in the primary range moves it forward,
//! and so does a **heartbeat**: a part with no writes, sent to the primary
//! range whenever a third of the record's lifetime has passed since the
//! last one. A coordinator that dies stops renewing, and its record
//! expires as before.
//!
//! # Moving ranges
//!
//! A part refused because its range split or merged since it was grouped
//! (`Reply::WrongRange`: nothing was written) is grouped again and its
//! pieces prepared under new numbers, until the part's request timeout:
//! a long commit does not start over because ranges move under it. Any
//! other refusal — a conflict, a snapshot too old, a record aborted by
//! another transaction — stops the workers from starting more parts, and
//! the caller aborts what was placed. A part whose answer did not come in
//! time is such a refusal too — not an unknown outcome, as a one-range
//! commit's would be: the transaction is not decided yet, and will not
//! commit.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use shoal_replication::RangeId;

use crate::clock::Timestamp;
use crate::command::{Command, Prepare, Reply, Writes};
use crate::commit::Groups;
use crate::error::{KvError, Result};
use crate::parts;
use crate::store::Kv;

/// What preparing a transaction's parts came to.
pub(crate) struct Prepared {
    /// The keys of every part attempted: they may hold intents.
    pub(crate) keys: Vec<Vec<u8>>,
    /// The largest prepare timestamp, or the first refusal.
    pub(crate) outcome: Result<Timestamp>,
}

/// One transaction's phase one, shared by the workers.
struct PhaseOne<'a> {
    kv: &'a Kv,
    txn_id: u128,
    primary_key: &'a [u8],
    read_ts: Timestamp,
    lock_id: u128,
    /// When waits for other transactions' intents give up.
    lock: Option<Instant>,
    /// The record's lifetime from each renewal, µs.
    ttl: u64,
    /// The next unused part number.
    numbers: AtomicU32,
    /// When the record's expiry was last pushed.
    renewed: Mutex<Instant>,
    /// Set by the first refusal: no more parts are started.
    failed: AtomicBool,
}

impl Kv {
    /// Prepares `groups` (phase one) for transaction `txn_id`, whose
    /// record lives in the range of `primary_key`.
    pub(crate) fn prepare_parts(
        &self,
        (txn_id, primary_key, ttl): (u128, &[u8], u64),
        (read_ts, lock_id): (Timestamp, u128),
        groups: Groups,
        lock: Option<Instant>,
    ) -> Prepared {
        let mut todo: Vec<(RangeId, Writes)> = Vec::new();
        for (range, writes) in groups {
            todo.extend(parts::split_writes(writes).into_iter().map(|p| (range, p)));
        }
        let phase = PhaseOne {
            kv: self,
            txn_id,
            primary_key,
            read_ts,
            lock_id,
            lock,
            ttl,
            numbers: AtomicU32::new(0),
            renewed: Mutex::new(Instant::now()),
            failed: AtomicBool::new(false),
        };
        let mut prepared = Prepared {
            keys: Vec::new(),
            outcome: Ok(read_ts),
        };
        if todo.len() > parts::WORKERS {
            let primary = todo
                .iter()
                .position(|(_, w)| w.first().is_some_and(|(key, _)| key == primary_key))
                .unwrap_or(0);
            let first = todo.remove(primary);
            prepared.absorb(phase.part(first));
            if prepared.outcome.is_err() {
                return prepared;
            }
        }
        for outcome in parts::run(todo, |part| phase.part(part)) {
            prepared.absorb(outcome);
        }
        prepared
    }
}

impl Prepared {
    fn absorb(&mut self, part: Option<(Vec<Vec<u8>>, Result<Timestamp>)>) {
        let Some((keys, outcome)) = part else {
            return;
        };
        self.keys.extend(keys);
        match (&mut self.outcome, outcome) {
            (Ok(ts), Ok(part_ts)) => *ts = (*ts).max(part_ts),
            (Ok(_), Err(e)) => self.outcome = Err(e),
            (Err(_), _) => {}
        }
    }
}

impl PhaseOne<'_> {
    /// Prepares one part; `None` if it was not started (an earlier part
    /// was refused).
    fn part(
        &self,
        (range, writes): (RangeId, Writes),
    ) -> Option<(Vec<Vec<u8>>, Result<Timestamp>)> {
        if self.failed.load(Ordering::Relaxed) {
            return None;
        }
        let keys = writes.iter().map(|(key, _)| key.clone()).collect();
        let deadline = Instant::now() + self.kv.timeout;
        let outcome = self
            .prepare(range, writes, deadline)
            .and_then(|ts| self.renew_if_due().map(|()| ts))
            .map_err(|e| match e {
                // Unknown only for this part: the transaction, not decided
                // yet, will not commit (the caller aborts it).
                KvError::Ambiguous(_) => KvError::Unavailable(format!(
                    "range {range} did not answer in time while the commit prepared its \
                     writes; nothing was committed"
                )),
                e => e,
            });
        if outcome.is_err() {
            self.failed.store(true, Ordering::Relaxed);
        }
        Some((keys, outcome))
    }

    /// Proposes `writes` (in `range`, as far as this node knows) as a new
    /// part, grouping them again if ranges changed; returns the largest
    /// prepare timestamp.
    ///
    /// A loop over a stack of parts, not recursion: a range frozen for a
    /// merge answers `WrongRange` every few milliseconds until `deadline`,
    /// and each answer regroups the part.
    fn prepare(&self, range: RangeId, writes: Writes, deadline: Instant) -> Result<Timestamp> {
        let mut todo = vec![(range, writes)];
        let mut largest: Option<Timestamp> = None;
        while let Some((range, writes)) = todo.pop() {
            let command = Command::Prepare(Prepare {
                txn_id: self.txn_id,
                primary_key: self.primary_key.to_vec(),
                read_ts: self.read_ts,
                ts_hint: self.kv.clock.next(),
                expiry: self.kv.clock.wall_now().saturating_add(self.ttl),
                writes,
                lock_id: self.lock_id,
                part: self.numbers.fetch_add(1, Ordering::Relaxed),
            });
            let ts = match self
                .kv
                .prepare_waiting(range, &command, deadline, self.lock)?
            {
                Reply::Prepared(ts) => ts,
                Reply::WrongRange if Instant::now() < deadline => {
                    let Command::Prepare(Prepare { writes, .. }) = command else {
                        return Err(KvError::Unavailable("a prepare lost its writes".into()));
                    };
                    shoal_replication::blocking::sleep(Duration::from_millis(5));
                    self.kv.reload_directory();
                    let groups = self.kv.group_by_range(writes)?;
                    // In key order, each group before the next.
                    todo.extend(groups.into_iter().rev());
                    self.read_ts
                }
                // Ranges kept changing: the caller aborts and starts over.
                Reply::WrongRange => {
                    return Err(KvError::Misrouted(
                        "a range changed while the transaction committed".to_string(),
                    ));
                }
                Reply::TxnEnded(_) => {
                    return Err(crate::distributed::aborted_by_other(self.primary_key));
                }
                other => return Err(self.kv.refusal(self.read_ts, other, "a prepare")),
            };
            largest = Some(largest.map_or(ts, |l| l.max(ts)));
        }
        Ok(largest.unwrap_or(self.read_ts))
    }

    /// Pushes the record's expiry forward if a third of its lifetime has
    /// passed since it was last pushed, by preparing an empty part in the
    /// primary range. One worker at a time does it; the others go on.
    fn renew_if_due(&self) -> Result<()> {
        let Some(mut renewed) = self.renewed.try_lock() else {
            return Ok(());
        };
        if renewed.elapsed() < Duration::from_micros(self.ttl / 3) {
            return Ok(());
        }
        let (range, _) = self.kv.rerouting(|| self.kv.route(self.primary_key))?;
        self.prepare(range, Vec::new(), Instant::now() + self.kv.timeout)?;
        *renewed = Instant::now();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use shoal_storage::MemoryEngine;

    use super::*;

    /// A range frozen for a merge that never finishes refuses every
    /// prepare until the request deadline: the commit gives up then, and
    /// its hundreds of regroupings take no more stack than one. (Nested,
    /// they overflowed the default stack of the part's worker thread.)
    #[test]
    fn a_commit_into_a_frozen_range_gives_up_at_its_deadline() {
        let kv = Kv::open(Arc::new(MemoryEngine::new())).unwrap();
        let right = kv.split_at(b"m").unwrap();
        let deadline = Instant::now() + kv.timeout;
        assert!(matches!(
            kv.propose_until(right, &Command::Freeze, deadline).unwrap(),
            Reply::Frozen(_)
        ));
        let outcome = (|| {
            let txn = kv.begin()?;
            txn.put(b"a".to_vec(), b"left".to_vec())?;
            txn.put(b"x".to_vec(), b"right".to_vec())?;
            txn.commit()
        })();
        assert!(outcome.is_err(), "{outcome:?}");
        // Nothing of it is visible; the left range still takes writes.
        let txn = kv.begin().unwrap();
        assert_eq!(txn.get(b"a").unwrap(), None);
        txn.put(b"b".to_vec(), b"after".to_vec()).unwrap();
        txn.commit().unwrap();
    }
}
