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
//! `integer`s. The record stays when the lock is free: its **fence** counts
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
//! ## Compatibility
//!
//! As in PostgreSQL: an exclusive lock is granted when no other session
//! holds the key in any mode; a shared one when no other session holds it
//! exclusively. A session's repeated acquisitions of one key and mode are
//! counted by the session (`advisory.rs`) and take one entry here.

use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use shoal_kv::{Kv, KvError};

use crate::error::{Result, SqlError};
use crate::row::CATALOG_PREFIX;

/// How long a holder's entry lasts without renewal.
pub const LOCK_TTL: Duration = Duration::from_secs(9);

/// How many times one lock operation is retried after losing a race.
const RACE_RETRIES: usize = 16;

/// A lock key in one of PostgreSQL's two key spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LockId {
    /// 1: one `bigint` key; 2: two `integer` keys.
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

    fn record_key(&self) -> Vec<u8> {
        let mut key = vec![CATALOG_PREFIX, b'L', self.space];
        key.extend_from_slice(&self.key.to_be_bytes());
        key
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
struct Record {
    fence: u64,
    entries: Vec<Entry>,
}

impl Record {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.entries.len() * 25);
        out.extend_from_slice(&self.fence.to_be_bytes());
        out.extend_from_slice(&(self.entries.len() as u32).to_be_bytes());
        for e in &self.entries {
            out.extend_from_slice(&e.owner.node.to_be_bytes());
            out.extend_from_slice(&e.owner.session.to_be_bytes());
            out.push(match e.mode {
                LockMode::Exclusive => 0,
                LockMode::Shared => 1,
            });
            out.extend_from_slice(&e.expires.to_be_bytes());
        }
        out
    }

    fn decode(bytes: &[u8]) -> Result<Record> {
        let corrupt = || SqlError::Internal("corrupt advisory lock record".into());
        let mut at = 0;
        let mut take = |n: usize| -> Result<&[u8]> {
            let piece = bytes.get(at..at + n).ok_or_else(corrupt)?;
            at += n;
            Ok(piece)
        };
        let u64_of = |b: &[u8]| -> Result<u64> {
            Ok(u64::from_be_bytes(b.try_into().map_err(|_| corrupt())?))
        };
        let fence = u64_of(take(8)?)?;
        let n = u32::from_be_bytes(take(4)?.try_into().map_err(|_| corrupt())?);
        let mut entries = Vec::with_capacity(n.min(1024) as usize);
        for _ in 0..n {
            let node = u64_of(take(8)?)?;
            let session = u64_of(take(8)?)?;
            let mode = match take(1)?.first() {
                Some(0) => LockMode::Exclusive,
                Some(1) => LockMode::Shared,
                _ => return Err(corrupt()),
            };
            let expires = u64_of(take(8)?)?;
            entries.push(Entry {
                owner: Owner { node, session },
                mode,
                expires,
            });
        }
        Ok(Record { fence, entries })
    }

    /// Whether `owner` may take the lock in `mode`, counting live entries
    /// only.
    fn grants(&self, owner: Owner, mode: LockMode) -> bool {
        self.entries
            .iter()
            .all(|e| e.owner == owner || (mode == LockMode::Shared && e.mode == LockMode::Shared))
    }
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn expiry_from(now: u64) -> u64 {
    now.saturating_add(u64::try_from(LOCK_TTL.as_micros()).unwrap_or(u64::MAX))
}

/// A node's advisory locks: the operations on records, and the set of
/// entries its sessions hold, which the keeper thread renews.
pub struct LockTable {
    kv: Arc<Kv>,
    held: Mutex<BTreeSet<(LockId, Owner, LockMode)>>,
    keeper_running: Mutex<bool>,
}

impl LockTable {
    pub fn new(kv: Arc<Kv>) -> Arc<LockTable> {
        Arc::new(LockTable {
            kv,
            held: Mutex::new(BTreeSet::new()),
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
            record.entries.retain(|e| e.expires > now);
            let (out, write) = op(&mut record, now);
            if write || record != before {
                txn.put(key.clone(), record.encode())?;
            }
            match txn.commit() {
                Ok(_) => return Ok(out),
                Err(KvError::WriteConflict { .. } | KvError::ReadWithinUncertainty { .. })
                    if attempt < RACE_RETRIES =>
                {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(1 << attempt.min(5)));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Takes `id` in `mode` for `owner` if no other session's live entry
    /// conflicts; returns the fencing token of this acquisition.
    pub fn try_acquire(
        self: &Arc<Self>,
        id: LockId,
        mode: LockMode,
        owner: Owner,
    ) -> Result<Option<u64>> {
        let fence = self.update(id, |record, now| {
            if !record.grants(owner, mode) {
                return (None, false);
            }
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
        self.update(id, |record, _| {
            let before = record.entries.len();
            record
                .entries
                .retain(|e| !(e.owner == owner && e.mode == mode));
            (record.entries.len() != before, false)
        })
    }

    /// Pushes the expiry of every entry this node's sessions hold; entries
    /// found gone (expired and taken) are forgotten.
    fn renew(&self) -> Result<()> {
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
                    if table.held.lock().is_empty() {
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
        };
        assert_eq!(Record::decode(&record.encode()).ok(), Some(record));
        assert!(Record::decode(&[1, 2, 3]).is_err());
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
        };
        assert!(Record::default().grants(me, LockMode::Exclusive));
        assert!(held(other, LockMode::Shared).grants(me, LockMode::Shared));
        assert!(!held(other, LockMode::Shared).grants(me, LockMode::Exclusive));
        assert!(!held(other, LockMode::Exclusive).grants(me, LockMode::Shared));
        assert!(held(me, LockMode::Shared).grants(me, LockMode::Exclusive));
    }
}
