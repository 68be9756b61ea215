//! Leaseholder reads: a leader that recently proved its leadership serves
//! a linearizable read barrier on the caller's own thread.
//!
//! # Why
//!
//! A ReadIndex barrier (`peer.rs`, *Reads*) costs a trip to the Raft
//! thread, a heartbeat round to a quorum, and a trip back through the
//! apply thread. On a loaded node the two thread hand-offs dominate a
//! point read, and every transaction passes two barriers (its snapshot and
//! the range it reads). A leader holding a **lease** skips all of it: it
//! registers the read's timestamp and waits for nothing it has not applied.
//!
//! # When a lease holds
//!
//! raft-rs runs with `check_quorum`, so a follower that heard from its
//! leader less than an election timeout (`election_tick` ticks) ago ignores
//! vote requests (unless a leader transfer forces them). Ticks never come
//! early (`runner.rs` ticks at most once per due time), so such a follower
//! votes for nobody for at least `(election_tick - 2)` tick intervals after
//! the message arrived. When a quorum confirms a ReadIndex request the
//! leader issued at instant `T`, each of them heard from it after `T`: no
//! other leader can be elected before `T + (election_tick - 2) × tick`.
//! The lease runs until then, less a tenth for clocks that run at slightly
//! different rates. Every confirmed request the leader issued extends it,
//! so steady reads renew it (the Raft thread also asks a quorum on its own
//! once a lease in use is half spent).
//!
//! Three things would break the argument, and each is closed:
//!
//! * **Leader transfer** makes the target campaign at once, forcing the
//!   votes. The lease ends as soon as the leader starts a transfer, before
//!   its `TimeoutNow` message can leave (`Peer::check_lease`, run on every
//!   replica at the start of each round).
//! * **A restarted follower** has forgotten its leader and would vote at
//!   once. A node therefore grants no vote during its first `election_tick`
//!   ticks (`MultiRaft::step`), longer than any lease it could have
//!   acknowledged before it stopped.
//! * **A new term or a lost leadership** ends the lease (`check_lease`).
//!
//! # Reads under a lease
//!
//! The lease carries the leader's timestamp state (`peer.rs`, *Timestamp
//! floors*): the largest read timestamp registered, and the last log index
//! that was stamped with a floor. The Raft thread stamps and appends under
//! the same lock, so a reader that registers `read_ts` and takes the last
//! index in one critical section is ordered with every proposal: entries
//! appended before carry an older floor and are at or below the index the
//! reader waits for; entries appended after are stamped above `read_ts`.
//! The reader then needs the replica's applied index (published by the
//! apply side after its engine write) to have reached that index; if it
//! has not, the barrier takes the ordinary way through the Raft thread.
//! Followers never hold leases: their reads always use ReadIndex.
//!
//! Leases are a runner feature (`RaftRunner::spawn` turns them on with its
//! tick): they need real time. The simulator's drivers run without them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard, RwLock};

use crate::RangeId;

/// The leases of every replica on a node, for readers to find.
pub type Leases = Arc<RwLock<HashMap<RangeId, Arc<ReadLease>>>>;

/// What one replica's Raft thread and its lease readers share.
#[derive(Debug, Default)]
pub struct ReadLease {
    state: Mutex<LeaseState>,
    /// Set by a reader that found the lease half spent: the Raft thread
    /// renews it at its next tick.
    renew: AtomicBool,
}

/// The shared timestamp state of a leader, and its lease.
#[derive(Debug, Default)]
pub(crate) struct LeaseState {
    /// As leader: the largest read timestamp registered (`peer.rs`,
    /// *Timestamp floors*).
    pub(crate) max_read_ts: u64,
    /// As leader: the last log index stamped with a floor (or appended).
    pub(crate) last_index: u64,
    /// Until when the lease holds, and the term it was granted in; `None`
    /// when this replica holds no lease.
    lease: Option<(Instant, u64)>,
    /// How long the lease was granted for, to tell when it is half spent.
    length: Duration,
}

impl LeaseState {
    /// Extends the lease of a leader in `term` to `until` (never
    /// shortens it within the term).
    pub(crate) fn extend(&mut self, term: u64, until: Instant, length: Duration) {
        self.lease = match self.lease {
            Some((current, t)) if t == term && current >= until => Some((current, t)),
            _ => Some((until, term)),
        };
        self.length = length;
    }

    /// Ends the lease.
    pub(crate) fn end(&mut self) {
        self.lease = None;
    }

    /// The term of the lease held, if any.
    pub(crate) fn term(&self) -> Option<u64> {
        self.lease.map(|(_, term)| term)
    }
}

/// A read registered under a lease: the index the replica must have
/// applied before serving it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseRead {
    /// The last index stamped with a floor when the read registered.
    pub wait_index: u64,
}

impl ReadLease {
    pub(crate) fn lock(&self) -> MutexGuard<'_, LeaseState> {
        self.state.lock()
    }

    /// Registers a read at `read_ts` (0: none) if the lease holds at
    /// `now`; `None` if it does not (the read must use ReadIndex).
    pub fn try_read(&self, read_ts: u64, now: Instant) -> Option<LeaseRead> {
        let mut state = self.state.lock();
        let (until, _) = state.lease?;
        if now >= until {
            return None;
        }
        if until.saturating_duration_since(now) < state.length / 2 {
            self.renew.store(true, Ordering::Relaxed);
        }
        state.max_read_ts = state.max_read_ts.max(read_ts);
        Some(LeaseRead {
            wait_index: state.last_index,
        })
    }

    /// Whether a reader asked for a renewal since the last call.
    pub(crate) fn take_renewal(&self) -> bool {
        self.renew.swap(false, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_lease_serves_reads_until_it_expires_and_registers_them() {
        let lease = ReadLease::default();
        let start = Instant::now();
        assert_eq!(lease.try_read(5, start), None);
        {
            let mut state = lease.lock();
            state.last_index = 7;
            state.extend(
                3,
                start + Duration::from_millis(800),
                Duration::from_millis(800),
            );
        }
        assert_eq!(lease.try_read(5, start), Some(LeaseRead { wait_index: 7 }));
        assert_eq!(lease.lock().max_read_ts, 5);
        assert!(!lease.take_renewal());
        // Half spent: still served, and a renewal is asked for once.
        let later = start + Duration::from_millis(500);
        assert!(lease.try_read(9, later).is_some());
        assert!(lease.take_renewal());
        assert!(!lease.take_renewal());
        assert_eq!(lease.lock().max_read_ts, 9);
        // Expired: not served, nothing registered.
        assert_eq!(lease.try_read(11, start + Duration::from_millis(800)), None);
        assert_eq!(lease.lock().max_read_ts, 9);
    }

    #[test]
    fn extending_never_shortens_within_a_term_and_a_new_term_replaces() {
        let lease = ReadLease::default();
        let start = Instant::now();
        let length = Duration::from_millis(800);
        let mut state = lease.lock();
        state.extend(3, start + length, length);
        state.extend(3, start + Duration::from_millis(100), length);
        assert_eq!(state.lease, Some((start + length, 3)));
        state.extend(4, start + Duration::from_millis(100), length);
        assert_eq!(state.lease, Some((start + Duration::from_millis(100), 4)));
        state.end();
        assert_eq!(state.term(), None);
    }
}
