//! Advisory locks held cluster-wide, with leases and fencing tokens.
//!
//! PostgreSQL's advisory locks live in one server's memory. Shoal's must
//! exclude sessions on every node, survive nothing they should not (a dead
//! node's locks must come free) and tell a stale holder it lost its lock.
//!
//! ## Records
//!
//! Each lock key has one record, an ordinary MVCC row read and written in
//! transactions of their own (first committer wins, so two nodes racing for
//! a free lock cannot both get it):
//!
//! ```text
//! 0x01 'L' <space u8> <key u64 BE> → fence u64 | n u32 | n × holder
//! holder = node u64 | session u64 | mode u8 | expires u64 (wall µs)
//! ```
//!
//! `space` keeps PostgreSQL's two key spaces apart: one `bigint`, or two
//! `integer`s; space 3 holds the row locks of locking reads
//! (`locking.rs`). An advisory lock's record stays when the lock is free
//! (a row lock's goes): its **fence** counts
//! every acquisition ever made, so the token an acquisition returns is
//! larger than any earlier one for that key. A client passes it along with
//! its writes; a storage that remembers the largest token it saw rejects a
//! holder whose lease ran out while it was paused (what Redlock cannot do).
//!
//! ## Leases
//!
//! A holder's entry expires [`LOCK_TTL`] after it was written. While a
//! session holds locks, its node's keeper thread renews them every third
//! of that, in one transaction. A node that dies or is cut off stops
//! renewing; once its entries expire they are ignored, and the next
//! acquirer removes them. So a lock never outlives its holder's node by
//! more than the lease; a session that ends releases its locks at once.
//! Wall clocks are assumed within the cluster's maximum offset (500 ms),
//! far below the lease.
//!
//! Deadlocks among waiters are found and broken in `deadlocks.rs`.
//!
//! ## Queue
//!
//! A session that waits for a lock queues in its record (after the
//! holders: the same entry shape, with a short expiry it renews while it
//! waits, [`WAIT_TTL`]). A lock is granted only if no other holder's mode
//! conflicts *and* no waiter queued ahead — every waiter, for a session
//! not in the queue — wants a conflicting mode: waiters are served first
//! come first, a try-lock does not jump the queue, and a stream of shared
//! lockers cannot starve an exclusive waiter, as in PostgreSQL. Waiters
//! still poll (with backoff up to 250 ms); a release on their own node
//! wakes them at once. A waiter that gives up leaves the queue; one whose
//! node died drops out when its entry expires.
//!
//! ## Compatibility
//!
//! As in PostgreSQL: an exclusive lock is granted when no other session
//! holds the key in any mode; a shared one when no other session holds it
//! exclusively. A session's repeated acquisitions of one key and mode are
//! counted by the session (`advisory.rs`) and take one entry here.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use shoal_kv::{Kv, KvError, Txn};

use crate::error::{Result, SqlError};
use crate::row::CATALOG_PREFIX;

/// How long a holder's entry lasts without renewal.
pub const LOCK_TTL: Duration = Duration::from_secs(9);

/// How long a wait record lasts without renewal.
pub const WAIT_TTL: Duration = Duration::from_secs(3);

/// How long the keeper waits for one transaction's row lock record to be
/// renewed before it moves on to the next (well below the record's TTL).
const ROW_LOCK_RENEWAL_PATIENCE: Duration = Duration::from_secs(2);

/// The key space of row locks (`locking.rs`).
const ROW_LOCKS: u8 = 3;

/// How many times one lock operation is retried after losing a race.
const RACE_RETRIES: usize = 16;

/// A lock key in one of PostgreSQL's two key spaces, or a row lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LockId {
    /// 1: one `bigint` key; 2: two `integer` keys; 3: a row lock.
    pub space: u8,
    pub key: u64,
}

impl LockId {
    pub fn bigint(key: i64) -> LockId {
        LockId {
            space: 1,
            key: key as u64,
        }
    }

    pub fn pair(high: i32, low: i32) -> LockId {
        LockId {
            space: 2,
            key: (u64::from(high as u32) << 32) | u64::from(low as u32),
        }
    }

    /// The row lock of the row stored under `key` (`locking.rs`): key
    /// space 3, the key's 64-bit FNV-1a hash.
    pub fn row(key: &[u8]) -> LockId {
        let hash = key.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        LockId {
            space: ROW_LOCKS,
            key: hash,
        }
    }

    pub(crate) fn record_key(&self) -> Vec<u8> {
        let mut key = vec![CATALOG_PREFIX, b'L', self.space];
        key.extend_from_slice(&self.key.to_be_bytes());
        key
    }
}

pub(crate) fn mode_byte(mode: LockMode) -> u8 {
    match mode {
        LockMode::Exclusive => 0,
        LockMode::Shared => 1,
    }
}

pub(crate) fn mode_of(byte: u8) -> Option<LockMode> {
    match byte {
        0 => Some(LockMode::Exclusive),
        1 => Some(LockMode::Shared),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LockMode {
    Exclusive,
    Shared,
}

/// Who holds a lock: a session of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Owner {
    pub node: u64,
    pub session: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    owner: Owner,
    mode: LockMode,
    expires: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    fence: u64,
    entries: Vec<Entry>,
    /// Sessions waiting for the lock, first come first (module docs,
    /// *Queue*); `expires` is when a waiter that stopped renewing drops out.
    queue: Vec<Entry>,
}

impl Record {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + (self.entries.len() + self.queue.len()) * 25);
        out.extend_from_slice(&self.fence.to_be_bytes());
        for list in [&self.entries, &self.queue] {
            put_entries(&mut out, list);
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Record> {
        let corrupt = || SqlError::Internal("corrupt advisory lock record".into());
        let fence: [u8; 8] = bytes
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(corrupt)?;
        let mut rest = &bytes[8..];
        let entries = take_entries(&mut rest).ok_or_else(corrupt)?;
        // Records written before waiters queued have no queue.
        let queue = if rest.is_empty() {
            Vec::new()
        } else {
            take_entries(&mut rest).ok_or_else(corrupt)?
        };
        if !rest.is_empty() {
            return Err(corrupt());
        }
        Ok(Record {
            fence: u64::from_be_bytes(fence),
            entries,
            queue,
        })
    }

    /// Whether `owner` may take the lock in `mode`: no other holder's mode
    /// conflicts, and no waiter queued ahead of it (every waiter, if it is
    /// not queued) wants a conflicting mode.
    fn grants_queued(&self, owner: Owner, mode: LockMode) -> bool {
        let ahead = match self.queue.iter().position(|e| e.owner == owner) {
            Some(at) => &self.queue[..at],
            None => &self.queue[..],
        };
        self.grants(owner, mode)
            && ahead
                .iter()
                .all(|e| mode == LockMode::Shared && e.mode == LockMode::Shared)
    }
}

/// Appends a list of entries: a `u32` count, then each.
fn put_entries(out: &mut Vec<u8>, list: &[Entry]) {
    out.extend_from_slice(&(list.len() as u32).to_be_bytes());
    for e in list {
        out.extend_from_slice(&e.owner.node.to_be_bytes());
        out.extend_from_slice(&e.owner.session.to_be_bytes());
        out.push(mode_byte(e.mode));
        out.extend_from_slice(&e.expires.to_be_bytes());
    }
}

/// Reads a list [`put_entries`] wrote, advancing `bytes`; `None` if they
/// are short or malformed.
fn take_entries(bytes: &mut &[u8]) -> Option<Vec<Entry>> {
    let (n, mut rest) = bytes.split_first_chunk::<4>()?;
    let n = u32::from_be_bytes(*n) as usize;
    let mut out = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let (node, r) = rest.split_first_chunk::<8>()?;
        let (session, r) = r.split_first_chunk::<8>()?;
        let (&mode, r) = r.split_first()?;
        let (expires, r) = r.split_first_chunk::<8>()?;
        out.push(Entry {
            owner: Owner {
                node: u64::from_be_bytes(*node),
                session: u64::from_be_bytes(*session),
            },
            mode: mode_of(mode)?,
            expires: u64::from_be_bytes(*expires),
        });
        rest = r;
    }
    *bytes = rest;
    Some(out)
}

impl Record {
    /// Forgets holders and waiters whose time ran out before `now`.
    pub(crate) fn drop_expired(&mut self, now: u64) {
        self.entries.retain(|e| e.expires > now);
        self.queue.retain(|e| e.expires > now);
    }

    /// Whether `owner` may take the lock in `mode`, counting live entries
    /// only.
    fn grants(&self, owner: Owner, mode: LockMode) -> bool {
        self.blockers(owner, mode).next().is_none()
    }

    /// The other owners that keep `owner` from taking the lock in `mode`:
    /// holders whose mode conflicts, and waiters queued ahead of it that
    /// want a conflicting mode (they are served first: `grants_queued`).
    pub(crate) fn blockers(
        &self,
        owner: Owner,
        mode: LockMode,
    ) -> impl Iterator<Item = Owner> + '_ {
        let ahead = match self.queue.iter().position(|e| e.owner == owner) {
            Some(at) => &self.queue[..at],
            None => &self.queue[..],
        };
        self.entries
            .iter()
            .chain(ahead)
            .filter(move |e| {
                e.owner != owner && !(mode == LockMode::Shared && e.mode == LockMode::Shared)
            })
            .map(|e| e.owner)
    }
}

pub(crate) fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn expiry_from(now: u64) -> u64 {
    now.saturating_add(u64::try_from(LOCK_TTL.as_micros()).unwrap_or(u64::MAX))
}

/// A node's advisory locks: the operations on records, and the set of
/// entries its sessions hold, which the keeper thread renews — with the
/// records of its sessions' row locks (`row_waits.rs`).
pub struct LockTable {
    pub(crate) kv: Arc<Kv>,
    /// Wakes this node's waiters when one of its sessions releases a lock.
    released: tokio::sync::Notify,
    held: Mutex<BTreeSet<(LockId, Owner, LockMode)>>,
    /// Each session's transaction holding row locks, latest first seen.
    row_lockers: Mutex<HashMap<Owner, Weak<Txn>>>,
    keeper_running: Mutex<bool>,
}

impl LockTable {
    pub fn new(kv: Arc<Kv>) -> Arc<LockTable> {
        Arc::new(LockTable {
            kv,
            released: tokio::sync::Notify::new(),
            held: Mutex::new(BTreeSet::new()),
            row_lockers: Mutex::new(HashMap::new()),
            keeper_running: Mutex::new(false),
        })
    }

    pub fn node(&self) -> u64 {
        self.kv.raft().node_id()
    }

    /// Runs `op` on the record of `id` in a transaction of its own, again
    /// (with a fresh snapshot) whenever another writer won a race for it.
    fn update<T>(
        &self,
        id: LockId,
        mut op: impl FnMut(&mut Record, u64) -> (T, bool),
    ) -> Result<T> {
        let key = id.record_key();
        let mut attempt = 0;
        loop {
            let txn = self.kv.begin()?;
            let now = now_micros();
            let mut record = match txn.get(&key)? {
                Some(bytes) => Record::decode(&bytes)?,
                None => Record::default(),
            };
            let before = record.clone();
            record.drop_expired(now);
            let (out, write) = op(&mut record, now);
            if id.space == ROW_LOCKS && record.entries.is_empty() && record.queue.is_empty() {
                // A free row lock needs no record (no fence is kept for
                // rows): the table does not grow with every row ever locked.
                if !before.entries.is_empty() || write {
                    txn.delete(key.clone())?;
                }
            } else if write || record != before {
                txn.put(key.clone(), record.encode())?;
            }
            match txn.commit() {
                Ok(_) => return Ok(out),
                Err(KvError::WriteConflict { .. } | KvError::ReadWithinUncertainty { .. })
                    if attempt < RACE_RETRIES =>
                {
                    attempt += 1;
                    shoal_kv::blocking::sleep(Duration::from_millis(1 << attempt.min(5)));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Takes `id` in `mode` for `owner` if no other session's live entry
    /// conflicts and no waiter ahead in the queue wants a conflicting mode;
    /// returns the fencing token of this acquisition. Refused, a waiter
    /// (`queue`) takes or renews its place at the end of the queue.
    pub fn try_acquire(
        self: &Arc<Self>,
        id: LockId,
        mode: LockMode,
        owner: Owner,
        queue: bool,
    ) -> Result<Option<u64>> {
        let fence = self.update(id, |record, now| {
            if !record.grants_queued(owner, mode) {
                if queue {
                    let expires =
                        now.saturating_add(u64::try_from(WAIT_TTL.as_micros()).unwrap_or(u64::MAX));
                    let renew_after = now.saturating_add(
                        u64::try_from((WAIT_TTL / 2).as_micros()).unwrap_or(u64::MAX),
                    );
                    match record.queue.iter_mut().find(|e| e.owner == owner) {
                        // Renewed only when half its time is gone: a wait
                        // writes the record a few times per WAIT_TTL.
                        Some(e) if e.expires > renew_after && e.mode == mode => {}
                        Some(e) => {
                            e.mode = mode;
                            e.expires = expires;
                        }
                        None => record.queue.push(Entry {
                            owner,
                            mode,
                            expires,
                        }),
                    }
                }
                return (None, false);
            }
            record.queue.retain(|e| e.owner != owner);
            record.fence += 1;
            record
                .entries
                .retain(|e| !(e.owner == owner && e.mode == mode));
            record.entries.push(Entry {
                owner,
                mode,
                expires: expiry_from(now),
            });
            (Some(record.fence), true)
        })?;
        if fence.is_some() {
            self.held.lock().insert((id, owner, mode));
            self.start_keeper();
        }
        Ok(fence)
    }

    /// Drops `owner`'s entry for `id` in `mode`; false if it held none (its
    /// lease ran out and another session took the lock meanwhile).
    pub fn release(&self, id: LockId, mode: LockMode, owner: Owner) -> Result<bool> {
        self.held.lock().remove(&(id, owner, mode));
        let released = self.update(id, |record, _| {
            let before = record.entries.len();
            record
                .entries
                .retain(|e| !(e.owner == owner && e.mode == mode));
            (record.entries.len() != before, false)
        });
        // Waiters on this node try again at once.
        self.released.notify_waiters();
        released
    }

    /// Takes `owner` out of the queue of `id` (it stopped waiting).
    pub fn leave_queue(&self, id: LockId, owner: Owner) -> Result<()> {
        self.update(id, |record, _| {
            record.queue.retain(|e| e.owner != owner);
            ((), false)
        })
    }

    /// Resolves when a session of this node releases a lock (module docs,
    /// *Queue*).
    pub async fn released(&self) {
        self.released.notified().await;
    }

    /// Has the keeper renew the record of `txn`'s row locks, `owner`'s
    /// transaction now, until it finishes.
    pub fn keep_row_locks(self: &Arc<Self>, owner: Owner, txn: &Arc<Txn>) {
        self.row_lockers.lock().insert(owner, Arc::downgrade(txn));
        self.start_keeper();
    }

    /// Renews the records of the row locks of this node's transactions;
    /// finished ones are forgotten.
    fn renew_row_locks(&self) {
        let lockers: Vec<(Owner, Weak<Txn>)> = self
            .row_lockers
            .lock()
            .iter()
            .map(|(owner, txn)| (*owner, txn.clone()))
            .collect();
        for (owner, txn) in lockers {
            let outcome = match txn.upgrade() {
                Some(txn) => txn.renew_locks(ROW_LOCK_RENEWAL_PATIENCE),
                None => Err(KvError::TxnFinished),
            };
            match outcome {
                Ok(()) => {}
                // Finished, or its locks lost (its record was aborted):
                // nothing left to renew.
                Err(KvError::TxnFinished | KvError::WriteConflict { .. }) => {
                    let mut lockers = self.row_lockers.lock();
                    if lockers.get(&owner).is_some_and(|t| t.ptr_eq(&txn)) {
                        lockers.remove(&owner);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "renewing row locks failed"),
            }
        }
    }

    /// Pushes the expiry of every entry this node's sessions hold; entries
    /// found gone (expired and taken) are forgotten.
    fn renew(&self) -> Result<()> {
        self.renew_row_locks();
        let held: Vec<(LockId, Owner, LockMode)> = self.held.lock().iter().copied().collect();
        for (id, owner, mode) in held {
            let kept = self.update(id, |record, now| {
                let mut kept = false;
                for e in &mut record.entries {
                    if e.owner == owner && e.mode == mode {
                        e.expires = expiry_from(now);
                        kept = true;
                    }
                }
                (kept, kept)
            })?;
            if !kept {
                tracing::warn!(
                    space = id.space,
                    key = id.key,
                    session = owner.session,
                    "advisory lock lost: its lease ran out before it was renewed"
                );
                self.held.lock().remove(&(id, owner, mode));
            }
        }
        Ok(())
    }

    /// Starts the thread renewing this node's entries, unless it runs; it
    /// stops once no entry is held (or the table is gone).
    fn start_keeper(self: &Arc<Self>) {
        let mut running = self.keeper_running.lock();
        if *running {
            return;
        }
        *running = true;
        let table: Weak<LockTable> = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("lock-keeper".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(LOCK_TTL / 3);
                    let Some(table) = table.upgrade() else {
                        return;
                    };
                    let mut running = table.keeper_running.lock();
                    if table.held.lock().is_empty() && table.row_lockers.lock().is_empty() {
                        *running = false;
                        return;
                    }
                    drop(running);
                    if let Err(e) = table.renew() {
                        tracing::warn!(error = %e, "renewing advisory locks failed");
                    }
                }
            });
        if let Err(e) = spawned {
            *running = false;
            tracing::error!(error = %e, "could not start the advisory lock keeper");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let record = Record {
            fence: 7,
            entries: vec![
                Entry {
                    owner: Owner {
                        node: 1,
                        session: 9,
                    },
                    mode: LockMode::Shared,
                    expires: 123,
                },
                Entry {
                    owner: Owner {
                        node: 2,
                        session: 3,
                    },
                    mode: LockMode::Exclusive,
                    expires: 456,
                },
            ],
            queue: vec![Entry {
                owner: Owner {
                    node: 3,
                    session: 4,
                },
                mode: LockMode::Exclusive,
                expires: 789,
            }],
        };
        let bytes = record.encode();
        assert_eq!(Record::decode(&bytes).ok(), Some(record.clone()));
        assert!(Record::decode(&[1, 2, 3]).is_err());
        assert!(Record::decode(&bytes[..bytes.len() - 1]).is_err());
        // A record from before queues decodes with an empty one.
        let old = Record {
            queue: Vec::new(),
            ..record
        };
        let bytes = old.encode();
        assert_eq!(Record::decode(&bytes[..bytes.len() - 4]).ok(), Some(old));
    }

    #[test]
    fn waiters_are_served_in_order() {
        let o = |session| Owner { node: 1, session };
        let entry = |owner, mode| Entry {
            owner,
            mode,
            expires: u64::MAX,
        };
        let record = Record {
            fence: 1,
            entries: vec![entry(o(1), LockMode::Shared)],
            queue: vec![
                entry(o(2), LockMode::Exclusive),
                entry(o(3), LockMode::Shared),
            ],
        };
        // The holder's shared lock would admit sharers, but an exclusive
        // waiter is queued ahead of them.
        assert!(!record.grants_queued(o(3), LockMode::Shared));
        assert!(!record.grants_queued(o(4), LockMode::Shared));
        // The first waiter waits only for the holder.
        assert!(!record.grants_queued(o(2), LockMode::Exclusive));
        let released = Record {
            entries: Vec::new(),
            ..record.clone()
        };
        assert!(released.grants_queued(o(2), LockMode::Exclusive));
        assert!(!released.grants_queued(o(3), LockMode::Shared));
        assert!(!released.grants_queued(o(4), LockMode::Exclusive));
        // The waits-for graph says the same: the shared waiter waits for
        // the exclusive one ahead (not for the shared holder); the first
        // waiter for the holder alone.
        let blockers = |r: &Record, owner, mode| r.blockers(owner, mode).collect::<Vec<_>>();
        assert_eq!(blockers(&record, o(3), LockMode::Shared), vec![o(2)]);
        assert_eq!(blockers(&record, o(2), LockMode::Exclusive), vec![o(1)]);
        assert_eq!(
            blockers(&record, o(4), LockMode::Exclusive),
            vec![o(1), o(2), o(3)]
        );
        assert_eq!(blockers(&released, o(2), LockMode::Exclusive), vec![]);
    }

    #[test]
    fn modes_conflict_as_in_postgresql() {
        let me = Owner {
            node: 1,
            session: 1,
        };
        let other = Owner {
            node: 2,
            session: 1,
        };
        let held = |owner, mode| Record {
            fence: 1,
            entries: vec![Entry {
                owner,
                mode,
                expires: u64::MAX,
            }],
            queue: Vec::new(),
        };
        assert!(Record::default().grants(me, LockMode::Exclusive));
        assert!(held(other, LockMode::Shared).grants(me, LockMode::Shared));
        assert!(!held(other, LockMode::Shared).grants(me, LockMode::Exclusive));
        assert!(!held(other, LockMode::Exclusive).grants(me, LockMode::Shared));
        assert!(held(me, LockMode::Shared).grants(me, LockMode::Exclusive));
    }
}
