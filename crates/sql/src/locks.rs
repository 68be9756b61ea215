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
//! ## Deadlocks
//!
//! A session that has waited [`DEADLOCK_TIMEOUT`] for a lock (PostgreSQL's
//! `deadlock_timeout`) announces it in a *wait record* and then, every
//! `DEADLOCK_TIMEOUT`, renews the record and looks for a cycle:
//!
//! ```text
//! 0x01 'W' <node u64 BE> <session u64 BE> → space u8 | key u64 | mode u8 | expires u64
//! ```
//!
//! One snapshot of every wait record and of the records of the locks they
//! wait for gives the waits-for graph across the cluster: a waiter points
//! at every other live holder whose mode conflicts with the one it wants.
//! A cycle in one snapshot is a real deadlock (its members wait for each
//! other until one gives up). Exactly one member, the youngest session
//! (the largest session id), breaks it: its wait fails with 40P01; the
//! others keep waiting and get their locks once the victim releases its
//! own (at the end of its transaction, for transaction-scoped locks). A
//! wait record expires [`WAIT_TTL`] after its last renewal, so a waiter
//! whose node died never closes a cycle; one that stops waiting removes
//! its record at once.
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
use shoal_kv::{Kv, KvError};

use crate::error::{Result, SqlError};
use crate::row::CATALOG_PREFIX;

/// How long a holder's entry lasts without renewal.
pub const LOCK_TTL: Duration = Duration::from_secs(9);

/// How long a lock wait lasts before its session looks for a deadlock,
/// and then how often it looks again (PostgreSQL's `deadlock_timeout`).
pub const DEADLOCK_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a wait record lasts without renewal.
pub const WAIT_TTL: Duration = Duration::from_secs(3);

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

    fn record_key(&self) -> Vec<u8> {
        let mut key = vec![CATALOG_PREFIX, b'L', self.space];
        key.extend_from_slice(&self.key.to_be_bytes());
        key
    }
}

/// The record announcing that `owner` waits (module docs, *Deadlocks*).
fn wait_key(owner: Owner) -> Vec<u8> {
    let mut key = vec![CATALOG_PREFIX, b'W'];
    key.extend_from_slice(&owner.node.to_be_bytes());
    key.extend_from_slice(&owner.session.to_be_bytes());
    key
}

/// What a wait record says: the lock waited for, in which mode, until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Wait {
    id: LockId,
    mode: LockMode,
    expires: u64,
}

impl Wait {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(18);
        out.push(self.id.space);
        out.extend_from_slice(&self.id.key.to_be_bytes());
        out.push(mode_byte(self.mode));
        out.extend_from_slice(&self.expires.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Wait> {
        let (&space, rest) = bytes.split_first()?;
        let (key, rest) = rest.split_first_chunk::<8>()?;
        let (&mode, rest) = rest.split_first()?;
        let expires: [u8; 8] = rest.try_into().ok()?;
        Some(Wait {
            id: LockId {
                space,
                key: u64::from_be_bytes(*key),
            },
            mode: mode_of(mode)?,
            expires: u64::from_be_bytes(expires),
        })
    }
}

/// The owner a wait record's key names.
fn waiter_of(key: &[u8]) -> Option<Owner> {
    let rest = key.strip_prefix(&[CATALOG_PREFIX, b'W'][..])?;
    let (node, rest) = rest.split_first_chunk::<8>()?;
    let session: [u8; 8] = rest.try_into().ok()?;
    Some(Owner {
        node: u64::from_be_bytes(*node),
        session: u64::from_be_bytes(session),
    })
}

fn mode_byte(mode: LockMode) -> u8 {
    match mode {
        LockMode::Exclusive => 0,
        LockMode::Shared => 1,
    }
}

fn mode_of(byte: u8) -> Option<LockMode> {
    match byte {
        0 => Some(LockMode::Exclusive),
        1 => Some(LockMode::Shared),
        _ => None,
    }
}

/// A cycle of the waits-for graph `edges` through `start`, if any, as the
/// owners along it from `start`.
pub fn cycle_through(start: Owner, edges: &HashMap<Owner, Vec<Owner>>) -> Option<Vec<Owner>> {
    // Depth-first, remembering how each owner was reached.
    let mut parent: HashMap<Owner, Owner> = HashMap::new();
    let mut stack = vec![start];
    let mut seen = BTreeSet::from([start]);
    while let Some(at) = stack.pop() {
        for &next in edges.get(&at).map(Vec::as_slice).unwrap_or_default() {
            if next == start {
                let mut cycle = vec![at];
                let mut cur = at;
                while let Some(&p) = parent.get(&cur) {
                    cycle.push(p);
                    cur = p;
                }
                cycle.reverse();
                return Some(cycle);
            }
            if seen.insert(next) {
                parent.insert(next, at);
                stack.push(next);
            }
        }
    }
    None
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
            out.push(mode_byte(e.mode));
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
            let mode = take(1)?
                .first()
                .copied()
                .and_then(mode_of)
                .ok_or_else(corrupt)?;
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
        self.blockers(owner, mode).next().is_none()
    }

    /// The other owners whose entries keep `owner` from taking the lock in
    /// `mode`.
    fn blockers(&self, owner: Owner, mode: LockMode) -> impl Iterator<Item = Owner> + '_ {
        self.entries
            .iter()
            .filter(move |e| {
                e.owner != owner && !(mode == LockMode::Shared && e.mode == LockMode::Shared)
            })
            .map(|e| e.owner)
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
            if id.space == ROW_LOCKS && record.entries.is_empty() {
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

    /// Announces (or renews) that `owner` waits for `id` in `mode`.
    pub fn announce_wait(&self, owner: Owner, id: LockId, mode: LockMode) -> Result<()> {
        let wait = Wait {
            id,
            mode,
            expires: now_micros()
                .saturating_add(u64::try_from(WAIT_TTL.as_micros()).unwrap_or(u64::MAX)),
        };
        let txn = self.kv.begin()?;
        txn.put(wait_key(owner), wait.encode())?;
        txn.commit()?;
        Ok(())
    }

    /// Withdraws `owner`'s wait record.
    pub fn clear_wait(&self, owner: Owner) -> Result<()> {
        let txn = self.kv.begin()?;
        txn.delete(wait_key(owner))?;
        txn.commit()?;
        Ok(())
    }

    /// A deadlock `owner` is part of, if any (module docs, *Deadlocks*):
    /// the owners along the cycle, from `owner`.
    pub fn deadlock(&self, owner: Owner) -> Result<Option<Vec<Owner>>> {
        const CHUNK: usize = 256;
        let txn = self.kv.begin()?;
        let now = now_micros();
        let end = vec![CATALOG_PREFIX, b'W' + 1];
        let mut from = vec![CATALOG_PREFIX, b'W'];
        let mut waits = Vec::new();
        loop {
            let chunk = txn.scan(&from, &end, CHUNK)?;
            for (key, value) in &chunk {
                if let (Some(waiter), Some(wait)) = (waiter_of(key), Wait::decode(value))
                    && wait.expires > now
                {
                    waits.push((waiter, wait));
                }
                from = key.clone();
                from.push(0);
            }
            if chunk.len() < CHUNK {
                break;
            }
        }
        let mut records: HashMap<LockId, Record> = HashMap::new();
        let mut edges: HashMap<Owner, Vec<Owner>> = HashMap::new();
        for (waiter, wait) in waits {
            let record = match records.entry(wait.id) {
                std::collections::hash_map::Entry::Occupied(held) => held.into_mut(),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    let mut record = match txn.get(&wait.id.record_key())? {
                        Some(bytes) => Record::decode(&bytes)?,
                        None => Record::default(),
                    };
                    record.entries.retain(|e| e.expires > now);
                    slot.insert(record)
                }
            };
            edges
                .entry(waiter)
                .or_default()
                .extend(record.blockers(waiter, wait.mode));
        }
        txn.rollback();
        Ok(cycle_through(owner, &edges))
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
    fn wait_records_round_trip() {
        let wait = Wait {
            id: LockId::pair(-1, 7),
            mode: LockMode::Shared,
            expires: 99,
        };
        assert_eq!(Wait::decode(&wait.encode()), Some(wait));
        assert_eq!(Wait::decode(&[1, 2]), None);
        let owner = Owner {
            node: 3,
            session: u64::MAX - 1,
        };
        assert_eq!(waiter_of(&wait_key(owner)), Some(owner));
    }

    #[test]
    fn cycles_are_found_through_the_start_only() {
        let o = |session| Owner { node: 1, session };
        let edges: HashMap<Owner, Vec<Owner>> = [
            (o(1), vec![o(2)]),
            (o(2), vec![o(5), o(3)]),
            (o(3), vec![o(1)]),
            (o(4), vec![o(1)]),
        ]
        .into_iter()
        .collect();
        assert_eq!(cycle_through(o(1), &edges), Some(vec![o(1), o(2), o(3)]));
        assert_eq!(cycle_through(o(3), &edges), Some(vec![o(3), o(1), o(2)]));
        // o(4) waits for o(1), which is in a cycle o(4) is not part of.
        assert_eq!(cycle_through(o(4), &edges), None);
        assert_eq!(cycle_through(o(5), &edges), None);
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
