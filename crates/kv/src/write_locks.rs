//! Row locks: how a READ COMMITTED transaction makes other writers wait.
//!
//! Shoal buffers a transaction's writes and checks them at commit, where
//! the first committer wins. That is what PostgreSQL's REPEATABLE READ and
//! SERIALIZABLE promise (one of two writers of a row fails with 40001),
//! but not its READ COMMITTED: there a writer that meets a row changed by
//! a transaction still running waits for it, then applies its own change
//! on top, and neither fails. So a READ COMMITTED transaction *locks* the
//! keys each statement wrote, as the statement ends:
//!
//! * **Locking** ([`Txn::lock_writes`](crate::Txn::lock_writes)): one
//!   [`Command::Lock`] per range puts a *lock intent* (`intents.rs`) on
//!   each key. The range of the first key the transaction ever locked —
//!   its primary — keeps a transaction record, pending until an expiry; it
//!   is asked first on every call, which creates the record before any
//!   lock intent exists and renews it. The reply names the keys changed
//!   since the statement's snapshot: those changes were committed between
//!   the statement's read and its lock, so the caller (the SQL session)
//!   runs the statement again on a new snapshot — PostgreSQL's re-check of
//!   an updated row, done per statement.
//! * **Meeting a lock.** Readers never wait for a lock intent: its
//!   timestamp is above every snapshot. A commit or a lock request that
//!   meets another transaction's lock intent fails at once with
//!   [`KvError::Locked`], nothing written, instead of blocking its thread
//!   for as long as the holder's transaction stays open. The caller waits
//!   — on its own terms: `lock_timeout`, `statement_timeout`, deadlock
//!   detection across nodes — looking now and then with
//!   [`Kv::lock_released`], and tries again. The holder's own commit and
//!   prepares pass its locks (their `lock_id`).
//! * **Releasing**: when the transaction commits or rolls back, its record
//!   is aborted and its lock intents removed; a waiter finds the record
//!   final at its next look. A commit across ranges has already replaced
//!   them with its own intents.
//! * **A dead holder** renews nothing: past its record's expiry, a waiter
//!   aborts the record and removes the lock. A lock intent whose record is
//!   missing was released (records come first), and goes too. A holder
//!   that comes back to find its record aborted has lost its locks: its
//!   next lock request fails with 40001, unless GC dropped the aborted
//!   record meanwhile. Either way its commit still catches any conflicting
//!   write: locks only decide who waits, never what commits.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::clock::Timestamp;
use crate::command::{Command, LockRequest, Reply};
use crate::error::{KvError, Result};
use crate::intents::{Intent, Payload, TxnStatus};
use crate::parts;
use crate::store::Kv;

/// A lock another transaction holds, met by a writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// The locked key.
    pub key: Vec<u8>,
    pub(crate) intent: Intent,
}

impl Blocked {
    /// Whom the lock's holder said it was (the tag given to
    /// [`Txn::lock_writes`](crate::Txn::lock_writes)).
    pub fn holder(&self) -> &[u8] {
        match &self.intent.payload {
            Payload::Lock(holder) => holder,
            Payload::Write(_) => &[],
        }
    }
}

/// A transaction's row locks.
#[derive(Debug)]
pub(crate) struct Locks {
    /// The id of the locks' record (not the commit's).
    pub(crate) id: u128,
    /// The holder's tag, written into every lock intent.
    pub(crate) holder: Vec<u8>,
    /// The first key locked: its range keeps the record.
    pub(crate) primary: Option<Vec<u8>>,
    /// Every key locked.
    pub(crate) locked: BTreeSet<Vec<u8>>,
    /// Keys locked that had changed since the snapshot, not reported yet
    /// (a later range of the same request met another lock).
    changed: Vec<Vec<u8>>,
}

impl Locks {
    pub(crate) fn new(holder: Vec<u8>) -> Locks {
        Locks {
            // 0 means "no locks" in commands.
            id: rand::random::<u128>().max(1),
            holder,
            primary: None,
            locked: BTreeSet::new(),
            changed: Vec::new(),
        }
    }
}

impl Kv {
    /// Locks `keys` (module docs) for a transaction that read them at
    /// `since`; returns those changed since (with any a failed call locked
    /// but could not report). Keys locked before a failure stay locked.
    pub(crate) fn lock_keys(
        &self,
        locks: &mut Locks,
        keys: Vec<Vec<u8>>,
        since: Timestamp,
    ) -> Result<Vec<Vec<u8>>> {
        let todo: BTreeSet<Vec<u8>> = keys
            .into_iter()
            .filter(|key| !locks.locked.contains(key))
            .collect();
        if !todo.is_empty() {
            self.lock_in_ranges(locks, todo, since, None)?;
        }
        Ok(std::mem::take(&mut locks.changed))
    }

    /// Pushes the expiry of `locks`' record (if they have one yet), so
    /// waiters do not presume an idle holder dead; gives up after
    /// `patience`, so one slow range does not hold up the renewal of
    /// others.
    pub(crate) fn renew_lock_record(&self, locks: &mut Locks, patience: Duration) -> Result<()> {
        if locks.primary.is_none() {
            return Ok(());
        }
        self.lock_in_ranges(locks, BTreeSet::new(), 0, Some(Instant::now() + patience))
    }

    /// [`Kv::lock_keys`] for keys not locked yet: the primary's range first
    /// (creating or renewing the record), then the others, range by range,
    /// a part (`parts.rs`) per command. Changed keys collect in
    /// `locks.changed`. Each command has the request timeout, or all of
    /// them `until`. While the keys of a big statement are being locked,
    /// the record is renewed every third of its lifetime (the node's
    /// keeper, which otherwise renews it, waits for this call).
    fn lock_in_ranges(
        &self,
        locks: &mut Locks,
        mut todo: BTreeSet<Vec<u8>>,
        since: Timestamp,
        until: Option<Instant>,
    ) -> Result<()> {
        let primary = match (&locks.primary, todo.first()) {
            (Some(primary), _) => primary.clone(),
            (None, Some(first)) => first.clone(),
            (None, None) => return Ok(()),
        };
        locks.primary = Some(primary.clone());
        let ttl = self.txn_ttl_micros.load(Ordering::Relaxed);
        let mut expiry = self.clock.wall_now().saturating_add(ttl);
        let mut renewed = Instant::now();
        let mut record_done = false;
        let mut moving_since: Option<Instant> = None;
        loop {
            if record_done && renewed.elapsed() > Duration::from_micros(ttl / 3) {
                record_done = false;
                expiry = self.clock.wall_now().saturating_add(ttl);
                renewed = Instant::now();
            }
            let deadline = until.unwrap_or_else(|| Instant::now() + self.timeout);
            let target = match (record_done, todo.first()) {
                (false, _) => &primary,
                (true, Some(key)) => key,
                (true, None) => return Ok(()),
            };
            let (range, bounds) = self.route(target)?;
            // At most one part per command (`parts.rs`); the range's keys
            // are the ones from its start on, up to its end.
            let here = parts::first_part(
                todo.range(bounds.start.clone()..)
                    .take_while(|key| bounds.contains(key)),
            );
            let command = Command::Lock(LockRequest {
                txn_id: locks.id,
                primary_key: primary.clone(),
                record: !record_done,
                holder: locks.holder.clone(),
                expiry,
                since,
                keys: here.clone(),
            });
            match self.propose_until(range, &command, deadline)? {
                Reply::Locked(keys) => {
                    moving_since = None;
                    locks.changed.extend(keys);
                    for key in here {
                        todo.remove(&key);
                        locks.locked.insert(key);
                    }
                    record_done = true;
                }
                Reply::IntentConflict { key, intent } => {
                    let intent = Intent::decode(&intent)?;
                    if intent.is_lock() {
                        let blocked = Blocked { key, intent };
                        if !self.lock_released(&blocked)? {
                            return Err(KvError::Locked(Box::new(blocked)));
                        }
                    } else {
                        // A commit across ranges holds the key for a
                        // moment; this transaction holds locks, so it
                        // waits as a holder does.
                        self.resolve_intent_within(&key, &intent, deadline, (None, true))?;
                    }
                }
                Reply::TxnEnded(_) => {
                    return Err(KvError::WriteConflict {
                        key: primary,
                        note: ", the transaction's row locks expired while it was idle".into(),
                    });
                }
                // The range changed since it was routed: route again, for
                // as long as one command may take.
                Reply::WrongRange
                    if Instant::now() < deadline
                        && moving_since.get_or_insert_with(Instant::now).elapsed()
                            < self.timeout =>
                {
                    shoal_replication::blocking::sleep(Duration::from_millis(5));
                    self.reload_directory();
                }
                other => return Err(other.unexpected("a lock")),
            }
        }
    }

    /// Whether the lock `blocked` is gone, after one look at its holder's
    /// record (never waiting): released, or its holder presumed dead and
    /// aborted now. A lock found gone is removed from its key.
    pub fn lock_released(&self, blocked: &Blocked) -> Result<bool> {
        let intent = &blocked.intent;
        let deadline = Instant::now() + self.timeout;
        match self.txn_status(intent)? {
            Some(TxnStatus::Pending { expiry }) if self.clock.wall_now() <= expiry => {
                return Ok(false);
            }
            Some(TxnStatus::Pending { .. }) => {
                tracing::info!("aborting the row locks of an abandoned transaction");
                self.end_txn(&intent.primary_key, intent.txn_id, None, deadline)?;
            }
            // Decided, or (no record) released: only the intent is left.
            _ => {}
        }
        self.resolve_keys(intent.txn_id, None, vec![blocked.key.clone()])?;
        Ok(true)
    }

    /// Waits, on this thread, until the lock `blocked` is released or the
    /// request timeout passes ([`KvError::Locked`]): for the KV layer's own
    /// background writers, which have no session to wait in.
    pub(crate) fn wait_for_lock(&self, blocked: &Blocked) -> Result<()> {
        let deadline = Instant::now() + self.timeout;
        let mut pause = Duration::from_millis(1);
        while !self.lock_released(blocked)? {
            if Instant::now() >= deadline {
                return Err(KvError::Locked(Box::new(blocked.clone())));
            }
            shoal_replication::blocking::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Releases `locks` (module docs). Failures are left to waiters, who
    /// find the record decided or, failing that, expired.
    pub(crate) fn release_locks(&self, locks: Locks) {
        let Some(primary) = locks.primary else {
            return;
        };
        let deadline = Instant::now() + self.timeout;
        if let Err(e) = self.end_txn(&primary, locks.id, None, deadline) {
            tracing::debug!(error = %e, "row locks left to their record's expiry");
            return;
        }
        let keys = locks.locked.into_iter().collect();
        if let Err(e) = self.resolve_keys(locks.id, None, keys) {
            tracing::debug!(error = %e, "released row locks left to waiters");
        }
    }
}
