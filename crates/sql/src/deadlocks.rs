//! Deadlocks among sessions waiting for locks of the lock table
//! (`locks.rs`): advisory locks and the row locks of locking reads.
//!
//! A session that has waited [`DEADLOCK_TIMEOUT`] for a lock (PostgreSQL's
//! `deadlock_timeout`) announces it in a *wait record* and then, every
//! `DEADLOCK_TIMEOUT`, renews the record and looks for a cycle:
//!
//! ```text
//! 0x01 'W' <node u64 BE> <session u64 BE> → space u8 | key u64 | mode u8 | expires u64
//!                                          | 0xFF | node u64 | session u64 | expires u64
//! ```
//!
//! The second form is a wait for another session's row locks — the lock
//! intents a READ COMMITTED transaction holds (`row_waits.rs`) — which
//! name their holding session: an edge straight to it.
//!
//! One snapshot of every wait record and of the records of the locks they
//! wait for gives the waits-for graph across the cluster: a waiter points
//! at every other live holder whose mode conflicts with the one it wants,
//! and at every waiter queued ahead of it that wants a conflicting mode
//! (`locks.rs`, *Queue*: those are served first).
//! A cycle in one snapshot is a real deadlock (its members wait for each
//! other until one gives up). Exactly one member, the youngest session
//! (the largest session id), breaks it: its wait fails with 40P01; the
//! others keep waiting and get their locks once the victim releases its
//! own (at the end of its transaction, for transaction-scoped locks). A
//! wait record expires [`WAIT_TTL`] after its last renewal, so a waiter
//! whose node died never closes a cycle; one that stops waiting removes
//! its record at once.
//!
//! A queued waiter's place is an edge too: a shared locker queued behind
//! an exclusive waiter waits for it even where the holders would admit
//! it, so a cycle may close through queue order alone.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use crate::error::Result;
use crate::locks::{
    LockId, LockMode, LockTable, Owner, Record, WAIT_TTL, mode_byte, mode_of, now_micros,
};
use crate::row::CATALOG_PREFIX;

/// How long a lock wait lasts before its session looks for a deadlock,
/// and then how often it looks again (PostgreSQL's `deadlock_timeout`).
pub const DEADLOCK_TIMEOUT: Duration = Duration::from_secs(1);

/// The record announcing that `owner` waits (module docs).
fn wait_key(owner: Owner) -> Vec<u8> {
    let mut key = vec![CATALOG_PREFIX, b'W'];
    key.extend_from_slice(&owner.node.to_be_bytes());
    key.extend_from_slice(&owner.session.to_be_bytes());
    key
}

/// The first byte of a wait for a session's row locks (module docs).
const HOLDER_WAIT: u8 = 0xFF;

/// What a session waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// A lock of the lock table, in a mode.
    Lock(LockId, LockMode),
    /// The row locks another session holds.
    Holder(Owner),
}

/// What a wait record says: what is waited for, until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Wait {
    target: Target,
    expires: u64,
}

impl Wait {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(25);
        match self.target {
            Target::Lock(id, mode) => {
                out.push(id.space);
                out.extend_from_slice(&id.key.to_be_bytes());
                out.push(mode_byte(mode));
            }
            Target::Holder(owner) => {
                out.push(HOLDER_WAIT);
                out.extend_from_slice(&owner.node.to_be_bytes());
                out.extend_from_slice(&owner.session.to_be_bytes());
            }
        }
        out.extend_from_slice(&self.expires.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Wait> {
        let (&space, rest) = bytes.split_first()?;
        let (word, rest) = rest.split_first_chunk::<8>()?;
        let (target, rest) = if space == HOLDER_WAIT {
            let (session, rest) = rest.split_first_chunk::<8>()?;
            let owner = Owner {
                node: u64::from_be_bytes(*word),
                session: u64::from_be_bytes(*session),
            };
            (Target::Holder(owner), rest)
        } else {
            let (&mode, rest) = rest.split_first()?;
            let id = LockId {
                space,
                key: u64::from_be_bytes(*word),
            };
            (Target::Lock(id, mode_of(mode)?), rest)
        };
        let expires: [u8; 8] = rest.try_into().ok()?;
        Some(Wait {
            target,
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

/// What a deadlock error tells its victim: that waiting for `lock` closes
/// `cycle`, the sessions waiting for each other from the victim.
pub fn describe_cycle(cycle: &[Owner], lock: &str) -> String {
    let sessions: Vec<String> = cycle
        .iter()
        .map(|o| format!("session {} on node {}", o.session, o.node))
        .collect();
    format!(
        "waiting for {lock} closes a cycle: {} and back",
        sessions.join(" waits for ")
    )
}

impl LockTable {
    /// The deadlock `owner` must break, if it is part of one and its
    /// victim — the youngest session of the cycle (module docs).
    pub fn deadlock_victim(&self, owner: Owner) -> Result<Option<Vec<Owner>>> {
        Ok(self
            .deadlock(owner)?
            .filter(|cycle| cycle.iter().max_by_key(|o| (o.session, o.node)) == Some(&owner)))
    }

    /// Announces (or renews) that `owner` waits for `id` in `mode`.
    pub fn announce_wait(&self, owner: Owner, id: LockId, mode: LockMode) -> Result<()> {
        self.announce(owner, Target::Lock(id, mode))
    }

    /// Announces (or renews) that `owner` waits for row locks `holder`
    /// holds.
    pub fn announce_holder_wait(&self, owner: Owner, holder: Owner) -> Result<()> {
        self.announce(owner, Target::Holder(holder))
    }

    fn announce(&self, owner: Owner, target: Target) -> Result<()> {
        let wait = Wait {
            target,
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

    /// A deadlock `owner` is part of, if any (module docs):
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
            let (id, mode) = match wait.target {
                Target::Lock(id, mode) => (id, mode),
                Target::Holder(holder) => {
                    edges.entry(waiter).or_default().push(holder);
                    continue;
                }
            };
            let record = match records.entry(id) {
                std::collections::hash_map::Entry::Occupied(held) => held.into_mut(),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    let mut record = match txn.get(&id.record_key())? {
                        Some(bytes) => Record::decode(&bytes)?,
                        None => Record::default(),
                    };
                    record.drop_expired(now);
                    slot.insert(record)
                }
            };
            edges
                .entry(waiter)
                .or_default()
                .extend(record.blockers(waiter, mode));
        }
        txn.rollback();
        Ok(cycle_through(owner, &edges))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_records_round_trip() {
        let owner = Owner {
            node: 3,
            session: u64::MAX - 1,
        };
        for target in [
            Target::Lock(LockId::pair(-1, 7), LockMode::Shared),
            Target::Holder(owner),
        ] {
            let wait = Wait {
                target,
                expires: 99,
            };
            assert_eq!(Wait::decode(&wait.encode()), Some(wait));
        }
        assert_eq!(Wait::decode(&[1, 2]), None);
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
}
