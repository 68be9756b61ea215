//! Timestamps: where commit timestamps come from.
//!
//! A [`Timestamp`] is a `u64` of microseconds since the Unix epoch. A node's
//! hybrid clock proposes one with every commit — the larger of the wall
//! clock and the previous value plus one, also moved past every commit
//! timestamp the node learns (`observe`) — and the range's state machine
//! makes the final choice,
//! `max(proposal, last commit + 1)`, so commit timestamps are strictly
//! increasing in log order whichever node proposed them (`apply.rs`). So
//! timestamps
//!
//! * are **strictly increasing** on a node, even if the wall clock stalls or
//!   steps backwards (NTP), because of the `previous + 1` term;
//! * stay **close to real time**, which gives GC's retention window
//!   ("keep history for N seconds") its meaning;
//! * **never go backwards across restarts or leader changes**: the last
//!   commit timestamp is replicated with every commit, and a node's clock
//!   starts from it (see `store.rs`).
//!
//! Timestamp 0 means "before any commit".
//!
//! The wall clock is behind the [`WallClock`] trait so tests drive time by
//! hand ([`ManualClock`]) and data-driven scripts print stable timestamps.

use std::sync::Arc;

use parking_lot::Mutex;
pub use shoal_replication::clock::{ManualClock, SystemClock, WallClock};

/// A commit or read timestamp: microseconds since the Unix epoch.
pub type Timestamp = u64;

/// Hands out strictly increasing timestamps near wall-clock time.
pub(crate) struct HybridClock {
    wall: Arc<dyn WallClock>,
    last: Mutex<Timestamp>,
}

impl HybridClock {
    /// A clock whose next timestamp is above `floor`.
    pub(crate) fn new(wall: Arc<dyn WallClock>, floor: Timestamp) -> Self {
        Self {
            wall,
            last: Mutex::new(floor),
        }
    }

    /// The next timestamp: `max(wall, previous + 1)`.
    pub(crate) fn next(&self) -> Timestamp {
        let mut last = self.last.lock();
        let ts = self.wall.now_micros().max(last.saturating_add(1));
        *last = ts;
        ts
    }

    /// The current wall-clock reading (for GC's retention window).
    /// Moves the clock past `ts` (a timestamp seen elsewhere), so this
    /// node's next hint is above it.
    pub(crate) fn observe(&self, ts: Timestamp) {
        let mut last = self.last.lock();
        *last = (*last).max(ts);
    }

    pub(crate) fn wall_now(&self) -> u64 {
        self.wall.now_micros()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hybrid_clock_is_strictly_increasing() {
        let wall = Arc::new(ManualClock::new(100));
        let clock = HybridClock::new(wall.clone(), 0);
        assert_eq!(clock.next(), 100);
        assert_eq!(clock.next(), 101); // wall stalled
        wall.set(50); // wall stepped back
        assert_eq!(clock.next(), 102);
        wall.set(500);
        assert_eq!(clock.next(), 500);
    }

    #[test]
    fn hybrid_clock_respects_floor() {
        let clock = HybridClock::new(Arc::new(ManualClock::new(10)), 1_000);
        assert_eq!(clock.next(), 1_001);
    }
}
