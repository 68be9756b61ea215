//! Commits that span ranges: two phases, a transaction record, intents.
//!
//! A transaction whose writes fall in more than one range, or are more
//! than one command may carry (`parts.rs`), commits like this (the
//! coordinator is the node running it):
//!
//! 1. **Prepare** every range's writes, in parallel and in parts
//!    (`prepare.rs`): each range checks them as a one-range commit would
//!    and holds them as *intents* at a *prepare timestamp* it picks like
//!    a commit timestamp. The range of
//!    the first written key — the *primary* — also writes the transaction
//!    record, `pending` until an expiry.
//! 2. **Decide**: the commit timestamp is the largest prepare timestamp;
//!    a serializable transaction first proves its reads there, in every
//!    range it read (`reads.rs`: a failed proof aborts, 40001);
//!    [`Command::EndTxn`] in the primary range turns the record into
//!    `committed` at it. This one log entry is the commit point: before it
//!    nothing is visible, after it everything is.
//! 3. **Resolve** every range's intents into versions at the commit
//!    timestamp (in parts too). A transaction of a few keys is answered
//!    first and resolved by a background thread (`resolver.rs`): whoever
//!    meets one of its intents before then finds the record committed
//!    and resolves it; a bigger one is resolved before the answer.
//!
//! If any prepare is refused (a newer version: 40001; a snapshot too old)
//! the coordinator aborts the record and removes the intents it placed.
//!
//! # Why the snapshot stays consistent
//!
//! A reader at `r` that meets an intent whose prepare timestamp is above
//! its uncertainty limit ignores it: the commit timestamp will be at least
//! the prepare timestamp. An intent at or below it may commit at or below
//! `r`, so the reader waits until the record is decided, then resolves
//! the intent itself ([`Kv::resolve_intent`]) and reads on. A reader that
//! read a key before its intent was prepared read at a timestamp the
//! range's leader had registered, so the prepare timestamp — and the
//! commit timestamp — is above it. A range's later commits are above the
//! prepare timestamp (it becomes the range's last), and resolving raises
//! the range's last commit timestamp to the commit timestamp.
//!
//! # Conflicts and dead coordinators
//!
//! A writer that meets an intent waits for its transaction too (polling
//! the record with backoff — lock waiting without a queue), then resolves
//! it and proposes again. A record still pending after its expiry belongs
//! to a coordinator presumed dead: the waiter aborts it through the
//! primary range's log (`EndTxn`: the first decision stands, so a slow
//! coordinator that tries to commit afterwards learns it was aborted and
//! reports 40001). An intent whose primary never prepared (no record) is
//! aborted the same way once its prepare timestamp is older than the
//! expiry span. A wait that outlasts the request timeout fails with 40001;
//! a committing writer may bound its waits tighter (`lock_timeout`:
//! [`KvError::LockTimeout`]). A writer that holds intents itself (while
//! preparing, or proving its reads before deciding) waits at most
//! [`HOLDER_PATIENCE`] and then aborts with 40001: two commits each
//! holding an intent the other needs are a deadlock, broken this way
//! within a quarter second rather than when a record expires.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use shoal_replication::RangeId;

use crate::clock::Timestamp;
use crate::command::{Command, Reply};
use crate::commit::Groups;
use crate::error::{KvError, Result, printable_key};
use crate::intents::{Intent, TxnStatus, record_key};
use crate::parts;
use crate::reads::Span;
use crate::resolver::Resolution;
use crate::store::Kv;

/// How long a writer holding intents waits for another transaction's
/// intent before giving up (`Kv::resolve_intent_within`): two commits
/// across ranges that each hold an intent the other needs would otherwise
/// wait for each other until a record expires.
pub const HOLDER_PATIENCE: Duration = Duration::from_millis(250);

/// How long a transaction record stays pending before anyone may abort it.
pub const DEFAULT_TXN_TTL: Duration = Duration::from_secs(10);

/// Resolved transactions queued for their records to be marked finished,
/// at most (`Kv::queue_finished`).
pub(crate) const MAX_FINISHING: usize = 1 << 20;
/// Records marked finished per command.
const FINISH_BATCH: usize = 1024;

impl Kv {
    /// Sets how long a coordinator has to finish a commit spanning ranges
    /// before waiters may abort it (default [`DEFAULT_TXN_TTL`]).
    pub fn set_txn_ttl(&self, ttl: Duration) {
        let micros = u64::try_from(ttl.as_micros()).unwrap_or(u64::MAX);
        self.txn_ttl_micros.store(micros, Ordering::Relaxed);
    }

    /// Commits `writes`, grouped in `groups` (more than one range), read at
    /// `read_ts` (module docs); returns the commit timestamp.
    pub(crate) fn commit_across(
        &self,
        (read_ts, lock_id): (Timestamp, u128),
        writes: &[(Vec<u8>, Option<Vec<u8>>)],
        groups: Groups,
        reads: &[Span],
        deadline: Instant,
        lock: Option<Instant>,
    ) -> Result<Timestamp> {
        let Some((primary_key, _)) = writes.first() else {
            return Ok(read_ts);
        };
        let txn_id: u128 = rand::random();
        let ttl = self.txn_ttl_micros.load(Ordering::Relaxed);
        let prepared =
            self.prepare_parts((txn_id, primary_key, ttl), (read_ts, lock_id), groups, lock);
        let prepared_keys = prepared.keys;
        let (commit_ts, mut failure) = match prepared.outcome {
            Ok(ts) => (ts, None),
            Err(e) => (read_ts, Some(e)),
        };
        // Each step below gets the request timeout afresh: preparing a big
        // write set may have taken longer than that.
        let deadline = deadline.max(Instant::now() + self.timeout);
        // A serializable transaction proves its reads at the commit
        // timestamp before deciding (`reads.rs`).
        if failure.is_none()
            && !reads.is_empty()
            && let Err(e) = self.group_reads(reads).and_then(|groups| {
                self.refresh(Some(txn_id), read_ts, commit_ts, groups, (deadline, lock))
            })
        {
            failure = Some(e);
        }
        if let Some(error) = failure {
            self.abort(txn_id, primary_key, prepared_keys);
            return Err(error);
        }
        // Only a prepare refused for a changed range may ask the caller
        // to start over (`KvError::Misrouted`): past this point the
        // decision may have been taken.
        let decided = self
            .end_txn(primary_key, txn_id, Some(commit_ts), deadline)
            .map_err(|e| match e {
                KvError::Misrouted(why) => KvError::Unavailable(why),
                e => e,
            })?;
        match decided.committed_at() {
            Some(ts) => {
                self.clock.observe(ts);
                // Committed: the intents are resolved after the client is
                // answered if the transaction is small (`resolver.rs`).
                let resolution = Resolution {
                    txn_id,
                    commit_ts: ts,
                    primary_key: primary_key.clone(),
                    keys: prepared_keys,
                };
                if let Some(now) = self.resolver.submit(resolution) {
                    self.resolve_committed(now);
                }
                tracing::debug!(read_ts, commit_ts = ts, "committed across ranges");
                Ok(ts)
            }
            None => {
                self.abort(txn_id, primary_key, prepared_keys);
                Err(aborted_by_other(primary_key))
            }
        }
    }

    /// Proposes a prepare, waiting out other transactions' intents (until
    /// `lock`, if given).
    pub(crate) fn prepare_waiting(
        &self,
        range: RangeId,
        command: &Command,
        deadline: Instant,
        lock: Option<Instant>,
    ) -> Result<Reply> {
        loop {
            match self.propose_until(range, command, deadline)? {
                Reply::IntentConflict { key, intent } => {
                    let intent = Intent::decode(&intent)?;
                    self.resolve_intent_within(&key, &intent, deadline, (lock, true))?;
                }
                other => return Ok(other),
            }
        }
    }

    /// Aborts the transaction and removes its intents; failures are left
    /// to waiters (the record expires).
    fn abort(&self, txn_id: u128, primary_key: &[u8], keys: Vec<Vec<u8>>) {
        let deadline = Instant::now() + self.timeout;
        match self.end_txn(primary_key, txn_id, None, deadline) {
            Ok(TxnStatus::Aborted(_)) => {
                if let Err(e) = self.resolve_keys(txn_id, None, keys) {
                    tracing::debug!(error = %e, "aborted intents left to waiters");
                }
            }
            Ok(other) => tracing::error!(?other, "an aborting transaction was decided otherwise"),
            Err(e) => tracing::debug!(error = %e, "abort left to the record's expiry"),
        }
    }

    /// Decides transaction `txn_id` in the range holding `primary_key`;
    /// returns the record as decided (the first decision stands).
    pub(crate) fn end_txn(
        &self,
        primary_key: &[u8],
        txn_id: u128,
        commit_ts: Option<Timestamp>,
        deadline: Instant,
    ) -> Result<TxnStatus> {
        let command = Command::EndTxn {
            txn_id,
            commit_ts,
            at: self.clock.wall_now(),
        };
        loop {
            let (range, _) = self.route(primary_key)?;
            match self.propose_until(range, &command, deadline)? {
                Reply::TxnEnded(raw) => return TxnStatus::decode(&raw),
                // The primary range is frozen for a merge, or was merged
                // since it was routed: route again once it settles.
                Reply::WrongRange if Instant::now() < deadline => {
                    shoal_replication::blocking::sleep(std::time::Duration::from_millis(5));
                    self.reload_directory();
                }
                other => return Err(other.unexpected("a transaction decision")),
            }
        }
    }

    /// Notes that committed transaction `txn_id` resolved every intent:
    /// the next GC pass marks its record finished, off the commit's path,
    /// batched per range (`Kv::finish_resolved`). Past [`MAX_FINISHING`]
    /// queued, records are left committed (they only stay).
    pub(crate) fn queue_finished(&self, primary_key: &[u8], txn_id: u128) {
        let mut queue = self.finishing.lock();
        if queue.len() < MAX_FINISHING {
            queue.push((primary_key.to_vec(), txn_id));
        }
    }

    /// Marks the records of the queued transactions finished, one command
    /// per primary range (`gc.rs` then drops them below its threshold).
    /// A failure leaves the records committed.
    pub(crate) fn finish_resolved(&self) {
        let queued = std::mem::take(&mut *self.finishing.lock());
        let mut by_range: std::collections::BTreeMap<RangeId, Vec<u128>> = Default::default();
        for (primary_key, txn_id) in queued {
            match self.rerouting(|| self.route(&primary_key)) {
                Ok((range, _)) => by_range.entry(range).or_default().push(txn_id),
                Err(e) => tracing::debug!(error = %e, "transaction record left committed"),
            }
        }
        let deadline = Instant::now() + self.timeout;
        for (range, txn_ids) in by_range {
            for chunk in txn_ids.chunks(FINISH_BATCH) {
                let command = Command::FinishTxns {
                    txn_ids: chunk.to_vec(),
                };
                if let Err(e) = self.propose_until(range, &command, deadline) {
                    tracing::debug!(range, error = %e, "transaction records left committed");
                }
            }
        }
    }

    /// Resolves the intents of `txn_id` on `keys`: grouped by range, in
    /// parts (`parts.rs`), each part within the request timeout.
    pub(crate) fn resolve_keys(
        &self,
        txn_id: u128,
        commit_ts: Option<Timestamp>,
        keys: Vec<Vec<u8>>,
    ) -> Result<()> {
        let mut todo = Vec::new();
        let groups = self.group_by_range(keys.into_iter().map(|k| (k, None)).collect())?;
        for (range, keys) in groups {
            let keys = keys.into_iter().map(|(k, _)| k).collect();
            todo.extend(parts::split_keys(keys).into_iter().map(|p| (range, p)));
        }
        parts::run(todo, |(range, keys)| {
            let deadline = Instant::now() + self.timeout;
            self.resolve_part(txn_id, commit_ts, (range, keys), deadline)
        })
        .into_iter()
        .collect()
    }

    /// Resolves one part of [`Kv::resolve_keys`], grouping it again while
    /// ranges change under it (until `deadline`): a loop over a stack of
    /// parts, not recursion, since a range frozen for a merge answers
    /// `WrongRange` every few milliseconds until then.
    fn resolve_part(
        &self,
        txn_id: u128,
        commit_ts: Option<Timestamp>,
        part: (RangeId, Vec<Vec<u8>>),
        deadline: Instant,
    ) -> Result<()> {
        let mut todo = vec![part];
        while let Some((range, keys)) = todo.pop() {
            let command = Command::Resolve {
                txn_id,
                commit_ts,
                keys,
            };
            match self.propose_until(range, &command, deadline)? {
                Reply::Resolved(_) => {}
                // Split or merged since grouped, or frozen for a merge:
                // group again once it settles.
                Reply::WrongRange if Instant::now() < deadline => {
                    let Command::Resolve { keys, .. } = command else {
                        return Err(KvError::Unavailable("a resolution lost its keys".into()));
                    };
                    shoal_replication::blocking::sleep(Duration::from_millis(5));
                    self.reload_directory();
                    let groups =
                        self.group_by_range(keys.into_iter().map(|k| (k, None)).collect())?;
                    todo.extend(
                        groups.into_iter().rev().map(|(range, keys)| {
                            (range, keys.into_iter().map(|(k, _)| k).collect())
                        }),
                    );
                }
                other => return Err(other.unexpected("a resolution")),
            }
        }
        Ok(())
    }

    /// The record of `intent`'s transaction, read linearizably from its
    /// primary range (`None`: the primary has not prepared).
    pub(crate) fn txn_status(&self, intent: &Intent) -> Result<Option<TxnStatus>> {
        let raw = self.rerouting(|| {
            let (range, _) = self.route(&intent.primary_key)?;
            let key = record_key(range, intent.txn_id);
            if !self.is_local(range) {
                let request = crate::remote::Request::ReadRaw { range, key };
                return match self.ask(&self.record_of(range)?, &request)? {
                    crate::remote::Answer::Value(raw) => Ok(raw),
                    other => Err(crate::store::unexpected_answer(&other)),
                };
            }
            self.raft.read_barrier(range, self.timeout)?;
            Ok(self.engine.get(&key)?)
        })?;
        raw.map(|raw| TxnStatus::decode(&raw)).transpose()
    }

    /// Waits until `intent`'s transaction is decided — aborting it if its
    /// coordinator is presumed dead — and resolves the intent on `key`.
    /// Fails with [`KvError::WriteConflict`] if it is still undecided at
    /// `deadline`.
    pub(crate) fn resolve_intent(
        &self,
        key: &[u8],
        intent: &Intent,
        deadline: Instant,
    ) -> Result<()> {
        self.resolve_intent_within(key, intent, deadline, (None, false))
    }

    /// [`Kv::resolve_intent`] for a writer whose waits for locks are
    /// bounded (`lock_timeout`): past `lock`, a still undecided
    /// transaction is [`KvError::LockTimeout`]. A writer that holds intents
    /// of its own (`holding`: it is preparing or proving reads across
    /// ranges) waits at most [`HOLDER_PATIENCE`], then gives up with 40001:
    /// two such writers may be waiting for each other.
    pub(crate) fn resolve_intent_within(
        &self,
        key: &[u8],
        intent: &Intent,
        deadline: Instant,
        (lock, holding): (Option<Instant>, bool),
    ) -> Result<()> {
        // A row lock may be held for as long as its transaction stays
        // open: the caller waits for it, not this thread (`write_locks.rs`).
        if intent.is_lock() {
            let blocked = crate::write_locks::Blocked {
                key: key.to_vec(),
                intent: intent.clone(),
            };
            if self.lock_released(&blocked)? {
                return Ok(());
            }
            return Err(KvError::Locked(Box::new(blocked)));
        }
        let patience = holding.then(|| Instant::now() + HOLDER_PATIENCE);
        let ttl = self.txn_ttl_micros.load(Ordering::Relaxed);
        let mut pause = Duration::from_millis(1);
        let status = loop {
            // Read before the record: a decision applied after the look is
            // never slept through (`decisions.rs`).
            let seen = self.published.decisions.seen(intent.txn_id);
            let now = self.clock.wall_now();
            let abandoned = match self.txn_status(intent)? {
                Some(status) if status.is_final() => break status,
                Some(TxnStatus::Pending { expiry }) => now > expiry,
                _ => now > intent.prepare_ts.saturating_add(ttl),
            };
            if abandoned {
                tracing::info!(key = %printable_key(key), "aborting an abandoned transaction");
                break self.end_txn(&intent.primary_key, intent.txn_id, None, deadline)?;
            }
            if lock.is_some_and(|l| Instant::now() >= l) {
                return Err(KvError::LockTimeout { key: key.to_vec() });
            }
            if patience.is_some_and(|p| Instant::now() >= p) {
                return Err(KvError::WriteConflict {
                    key: key.to_vec(),
                    note: ", held by a concurrent transaction that is committing too".into(),
                });
            }
            if Instant::now() >= deadline {
                return Err(KvError::WriteConflict {
                    key: key.to_vec(),
                    note: ", held by a concurrent transaction that did not finish in time".into(),
                });
            }
            let until = [lock, patience]
                .into_iter()
                .flatten()
                .fold(deadline, Instant::min);
            // Woken early by any decision applied on this node.
            self.published.decisions.wait_after(
                intent.txn_id,
                seen,
                pause.min(until.saturating_duration_since(Instant::now())),
            );
            pause = (pause * 2).min(Duration::from_millis(50));
        };
        let commit_ts = status.committed_at();
        self.resolve_keys(intent.txn_id, commit_ts, vec![key.to_vec()])
    }
}

pub(crate) fn aborted_by_other(primary_key: &[u8]) -> KvError {
    KvError::WriteConflict {
        key: primary_key.to_vec(),
        note: ", the transaction was aborted by a concurrent one".into(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use shoal_storage::MemoryEngine;

    use super::*;
    use crate::command::Prepare;

    /// A store split at "m", with `b` and `x` written.
    fn two_ranges() -> Arc<Kv> {
        let kv = Kv::open(Arc::new(MemoryEngine::new())).unwrap();
        let txn = kv.begin().unwrap();
        txn.put(b"b".to_vec(), b"old b".to_vec()).unwrap();
        txn.put(b"x".to_vec(), b"old x".to_vec()).unwrap();
        txn.commit().unwrap();
        kv.split_at(b"m").unwrap();
        kv
    }

    /// Prepares `b` and `x` as one transaction (primary `b`) without
    /// deciding it: a coordinator that died after phase one.
    fn prepare_and_abandon(kv: &Kv, read_ts: Timestamp, ttl: Duration) -> u128 {
        let txn_id = rand::random();
        let deadline = Instant::now() + Duration::from_secs(5);
        for key in [b"b", b"x"] {
            let (range, _) = kv.route(key).unwrap();
            let command = Command::Prepare(Prepare {
                txn_id,
                primary_key: b"b".to_vec(),
                read_ts,
                ts_hint: kv.clock.next(),
                expiry: kv.clock.wall_now() + ttl.as_micros() as u64,
                writes: vec![(key.to_vec(), Some(b"new".to_vec()))],
                lock_id: 0,
                part: 0,
            });
            let reply = kv.propose_until(range, &command, deadline).unwrap();
            assert!(matches!(reply, Reply::Prepared(_)), "{reply:?}");
        }
        txn_id
    }

    /// The statuses of the transaction records in `key`'s range.
    fn records(kv: &Kv, key: &[u8]) -> Vec<TxnStatus> {
        let (range, _) = kv.route(key).unwrap();
        let prefix = crate::intents::record_prefix(range);
        let end = crate::mvcc::prefix_end(&prefix).unwrap();
        kv.engine
            .scan(&prefix, Some(&end))
            .map(|pair| TxnStatus::decode(&pair.unwrap().1).unwrap())
            .collect()
    }

    #[test]
    fn each_part_leaves_its_own_marker_and_pushes_the_record_expiry() {
        let kv = two_ranges();
        let read_ts = kv.begin().unwrap().read_ts();
        let txn_id: u128 = rand::random();
        let (range, _) = kv.route(b"b").unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let prepare = |part: u32, key: &[u8], expiry: u64| {
            let command = Command::Prepare(Prepare {
                txn_id,
                primary_key: b"b".to_vec(),
                read_ts,
                ts_hint: kv.clock.next(),
                expiry,
                writes: vec![(key.to_vec(), Some(b"new".to_vec()))],
                lock_id: 0,
                part,
            });
            match kv.propose_until(range, &command, deadline).unwrap() {
                Reply::Prepared(ts) => Ok(ts),
                other => Err(other),
            }
        };
        let first = prepare(0, b"b", 100).unwrap();
        assert_eq!(records(&kv, b"b"), [TxnStatus::Pending { expiry: 100 }]);
        // A second part in the primary range prepares too (it is not
        // taken for the first one proposed again) and renews the record.
        let second = prepare(1, b"c", 200).unwrap();
        assert!(second > first);
        assert_eq!(records(&kv, b"b"), [TxnStatus::Pending { expiry: 200 }]);
        // The first part proposed again answers as it did.
        assert_eq!(prepare(0, b"b", 300), Ok(first));
        assert_eq!(records(&kv, b"b"), [TxnStatus::Pending { expiry: 200 }]);
        // Aborted by a pusher: the next part learns it, writing nothing.
        kv.end_txn(b"b", txn_id, None, deadline).unwrap();
        assert!(matches!(prepare(2, b"d", 400), Err(Reply::TxnEnded(_))));
        let reader = kv.begin().unwrap();
        assert_eq!(reader.get(b"d").unwrap(), None);
    }

    #[test]
    fn finished_records_are_collected_and_unresolved_commits_kept() {
        let kv = two_ranges();
        // Committed across both ranges and resolved by its coordinator:
        // the record is marked finished.
        let txn = kv.begin().unwrap();
        txn.put(b"b".to_vec(), b"1".to_vec()).unwrap();
        txn.put(b"x".to_vec(), b"1".to_vec()).unwrap();
        let first = txn.commit().unwrap();
        assert_eq!(records(&kv, b"b"), [TxnStatus::Committed(first)]);
        // Resolved in the background (`resolver.rs`): wait for it, bounded.
        for _ in 0..500 {
            kv.finish_resolved();
            if records(&kv, b"b") == [TxnStatus::Finished(first)] {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(records(&kv, b"b"), [TxnStatus::Finished(first)]);
        // Decided, but its coordinator died before resolving: the record
        // must stay for the intents that still point at it.
        let read_ts = kv.begin().unwrap().read_ts();
        let abandoned = prepare_and_abandon(&kv, read_ts, Duration::from_secs(60));
        let deadline = Instant::now() + Duration::from_secs(5);
        let decided = kv
            .end_txn(b"b", abandoned, Some(kv.clock.next()), deadline)
            .unwrap();
        kv.clock.observe(decided.committed_at().unwrap());
        std::thread::sleep(Duration::from_millis(5));
        kv.gc(Duration::ZERO).unwrap();
        assert_eq!(records(&kv, b"b"), [decided]);
        // Readers still resolve the unresolved commit through its record.
        let reader = kv.begin().unwrap();
        assert_eq!(reader.get(b"x").unwrap(), Some(b"new".to_vec()));
    }

    /// Two ranges whose keys `b` and `x` hold intents of a transaction
    /// abandoned for longer than any of these tests waits.
    fn two_ranges_held() -> Arc<Kv> {
        let kv = two_ranges();
        let ttl = Duration::from_secs(30);
        kv.set_txn_ttl(ttl);
        let read_ts = kv.begin().unwrap().read_ts();
        prepare_and_abandon(&kv, read_ts, ttl);
        kv
    }

    /// `commit`'s outcome and how long it took, which must be at least
    /// `floor` and well below the other transaction's expiry.
    fn timed_commit(txn: &crate::Txn, floor: Duration) -> Result<Timestamp> {
        let started = Instant::now();
        let outcome = txn.commit();
        let waited = started.elapsed();
        assert!(
            waited >= floor && waited < Duration::from_secs(5),
            "{waited:?}"
        );
        outcome
    }

    #[test]
    fn a_writer_waits_for_an_intent_no_longer_than_its_lock_timeout() {
        let kv = two_ranges_held();
        let writer = kv.begin().unwrap();
        writer.put(b"x".to_vec(), b"mine".to_vec()).unwrap();
        let limit = Duration::from_millis(200);
        writer.set_lock_timeout(Some(limit));
        assert!(matches!(
            timed_commit(&writer, limit),
            Err(KvError::LockTimeout { key }) if key == b"x"
        ));
    }

    #[test]
    fn a_commit_across_ranges_waits_briefly_for_others_intents() {
        let kv = two_ranges_held();
        // Writing both ranges, the writer holds an intent of its own while
        // it waits: it gives up after HOLDER_PATIENCE, not after the
        // other record's expiry.
        let writer = kv.begin().unwrap();
        writer.put(b"b".to_vec(), b"mine".to_vec()).unwrap();
        writer.put(b"x".to_vec(), b"mine".to_vec()).unwrap();
        assert!(matches!(
            timed_commit(&writer, HOLDER_PATIENCE),
            Err(KvError::WriteConflict { note, .. }) if note.contains("committing too")
        ));
    }

    #[test]
    fn an_abandoned_transaction_is_aborted_once_its_record_expires() {
        let kv = two_ranges();
        let ttl = Duration::from_millis(300);
        kv.set_txn_ttl(ttl);
        let read_ts = kv.begin().unwrap().read_ts();
        prepare_and_abandon(&kv, read_ts, ttl);
        let started = Instant::now();
        let reader = kv.begin().unwrap();
        // The intents may have committed below the reader's snapshot: it
        // waits for the record, which expires, and aborts it.
        assert_eq!(reader.get(b"x").unwrap(), Some(b"old x".to_vec()));
        assert!(started.elapsed() >= ttl / 2, "{:?}", started.elapsed());
        assert_eq!(reader.get(b"b").unwrap(), Some(b"old b".to_vec()));
        // The keys are free again.
        let writer = kv.begin().unwrap();
        writer.put(b"b".to_vec(), b"mine".to_vec()).unwrap();
        writer.put(b"x".to_vec(), b"mine".to_vec()).unwrap();
        writer.commit().unwrap();
        let check = kv.begin().unwrap();
        assert_eq!(check.get(b"x").unwrap(), Some(b"mine".to_vec()));
    }

    #[test]
    fn a_decided_but_unresolved_commit_is_visible_to_later_readers() {
        let kv = two_ranges();
        let read_ts = kv.begin().unwrap().read_ts();
        let txn_id = prepare_and_abandon(&kv, read_ts, Duration::from_secs(60));
        let deadline = Instant::now() + Duration::from_secs(5);
        let commit_ts = kv.clock.next();
        let status = kv.end_txn(b"b", txn_id, Some(commit_ts), deadline).unwrap();
        let TxnStatus::Committed(ts) = status else {
            panic!("{status:?}");
        };
        kv.clock.observe(ts);
        let reader = kv.begin().unwrap();
        assert!(reader.read_ts() >= ts);
        assert_eq!(reader.get(b"x").unwrap(), Some(b"new".to_vec()));
        let all = reader.scan(b"", b"", 10).unwrap();
        assert_eq!(
            all,
            [
                (b"b".to_vec(), b"new".to_vec()),
                (b"x".to_vec(), b"new".to_vec())
            ]
        );
        // A late abort changes nothing: the first decision stands.
        assert_eq!(
            kv.end_txn(b"b", txn_id, None, deadline).unwrap(),
            TxnStatus::Committed(ts)
        );
    }

    #[test]
    fn readers_below_the_prepare_timestamp_do_not_wait() {
        let kv = two_ranges();
        kv.set_txn_ttl(Duration::from_secs(60));
        let reader = kv.begin().unwrap();
        reader.get(b"x").unwrap();
        prepare_and_abandon(&kv, reader.read_ts(), Duration::from_secs(60));
        let started = Instant::now();
        assert_eq!(reader.get(b"x").unwrap(), Some(b"old x".to_vec()));
        assert_eq!(reader.get(b"b").unwrap(), Some(b"old b".to_vec()));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    /// Resolving intents in a range frozen for a merge that never finishes
    /// gives up at the deadline, its regroupings taking no more stack than
    /// one: this thread's stack is far too small for them to nest.
    #[test]
    fn resolving_in_a_frozen_range_gives_up_at_its_deadline_on_a_small_stack() {
        let kv = two_ranges();
        let read_ts = kv.begin().unwrap().read_ts();
        let txn_id = prepare_and_abandon(&kv, read_ts, Duration::from_secs(60));
        let (right, _) = kv.route(b"x").unwrap();
        let deadline = Instant::now() + kv.timeout;
        let frozen = kv.propose_until(right, &Command::Freeze, deadline).unwrap();
        assert!(matches!(frozen, Reply::Frozen(_)), "{frozen:?}");
        let resolver = kv.clone();
        let outcome = std::thread::Builder::new()
            .stack_size(128 << 10)
            .spawn(move || resolver.resolve_keys(txn_id, None, vec![b"x".to_vec()]))
            .unwrap()
            .join()
            .unwrap();
        assert!(outcome.is_err(), "{outcome:?}");
    }
}
