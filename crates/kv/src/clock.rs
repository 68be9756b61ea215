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
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

/// A commit or read timestamp: microseconds since the Unix epoch.
pub type Timestamp = u64;

/// A source of physical time.
pub trait WallClock: Send + Sync + 'static {
    /// Microseconds since the Unix epoch.
    fn now_micros(&self) -> u64;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now_micros(&self) -> u64 {
        // A clock set before 1970 reads as 0; the hybrid clock's `+ 1` keeps
        // timestamps moving regardless.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }
}

/// A wall clock that moves only when told to; for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    micros: AtomicU64,
}

impl ManualClock {
    /// A clock reading `micros`.
    pub fn new(micros: u64) -> Self {
        Self {
            micros: AtomicU64::new(micros),
        }
    }

    /// Sets the reading (may move backwards, to test that timestamps do not).
    pub fn set(&self, micros: u64) {
        self.micros.store(micros, Ordering::SeqCst);
    }

    /// Moves the reading forward.
    pub fn advance(&self, micros: u64) {
        self.micros.fetch_add(micros, Ordering::SeqCst);
    }
}

impl WallClock for ManualClock {
    fn now_micros(&self) -> u64 {
        self.micros.load(Ordering::SeqCst)
    }
}

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
