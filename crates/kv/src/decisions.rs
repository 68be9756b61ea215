//! [`Decisions`]: wakes the transactions on a node that wait for another
//! transaction's outcome as soon as a decision is applied here.
//!
//! A writer or reader that meets another transaction's intent waits until
//! the transaction record on the intent's primary range is decided
//! (`distributed.rs`, `resolve_intent_within`). It used to poll the record
//! with backoff up to 50 ms, so a short transaction could keep a waiter
//! idle for tens of milliseconds after it had committed. Now the state
//! machine counts the decisions it applies on this node (`EndTxn` turning
//! a record final), and a waiter sleeps on that count: it looks at the
//! record again at once when any decision lands here, and otherwise after
//! its backoff, as before. A record kept on other nodes only is still
//! polled.
//!
//! Waiters for one transaction wait on one of [`SLOTS`] counters, picked
//! by its id, so a decision wakes only the waiters whose transaction
//! shares its slot, not every waiter on the node.
//!
//! A slot's count is read before the record is looked at, and a wait
//! returns at once if it has moved since, so a decision applied between
//! the look and the wait is never slept through.

use std::time::Duration;

use parking_lot::{Condvar, Mutex};

/// How many counters waiters are spread over.
const SLOTS: usize = 64;

/// One counter of decisions, and its waiters.
#[derive(Debug, Default)]
struct Slot {
    applied: Mutex<u64>,
    changed: Condvar,
}

/// The decisions applied on this node, and the waiters to wake.
#[derive(Debug)]
pub(crate) struct Decisions {
    slots: Vec<Slot>,
}

impl Default for Decisions {
    fn default() -> Self {
        Decisions {
            slots: (0..SLOTS).map(|_| Slot::default()).collect(),
        }
    }
}

impl Decisions {
    fn slot(&self, txn_id: u128) -> &Slot {
        // Ids are random: their low bits spread evenly.
        &self.slots[(txn_id % SLOTS as u128) as usize]
    }

    /// The count of decisions applied here in `txn_id`'s slot so far.
    pub(crate) fn seen(&self, txn_id: u128) -> u64 {
        *self.slot(txn_id).applied.lock()
    }

    /// Notes that `txn_id` was decided here; wakes the waiters of its slot.
    pub(crate) fn note(&self, txn_id: u128) {
        let slot = self.slot(txn_id);
        *slot.applied.lock() += 1;
        slot.changed.notify_all();
    }

    /// Waits up to `timeout` for a decision in `txn_id`'s slot after the
    /// count `seen`; returns at once if one was applied since.
    pub(crate) fn wait_after(&self, txn_id: u128, seen: u64, timeout: Duration) {
        let slot = self.slot(txn_id);
        let mut applied = slot.applied.lock();
        if *applied == seen {
            shoal_replication::blocking::wait(|| slot.changed.wait_for(&mut applied, timeout));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use super::*;

    #[test]
    fn a_decision_wakes_its_waiters_and_none_is_missed() {
        let decisions = Arc::new(Decisions::default());
        let txn = 7_u128;
        let seen = decisions.seen(txn);
        // Applied before the wait began: the wait returns at once.
        decisions.note(txn);
        let start = Instant::now();
        decisions.wait_after(txn, seen, Duration::from_secs(60));
        assert!(start.elapsed() < Duration::from_secs(30));
        // Another slot's decision does not count for this one.
        let seen = decisions.seen(txn);
        decisions.note(txn + 1);
        assert_eq!(decisions.seen(txn), seen);

        // Applied while waiting: the waiter wakes.
        let waiter = {
            let decisions = decisions.clone();
            std::thread::spawn(move || {
                let start = Instant::now();
                decisions.wait_after(txn, seen, Duration::from_secs(60));
                start.elapsed()
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        decisions.note(txn);
        assert!(
            waiter
                .join()
                .is_ok_and(|waited| waited < Duration::from_secs(30))
        );
    }
}
