//! Physical time, behind a trait so tests drive it by hand.
//!
//! Replication needs wall-clock time in one place only: a replica that
//! becomes leader must assume that its predecessor served reads at
//! timestamps up to "now plus the maximum clock offset" (see `peer.rs`,
//! *Timestamp floors*). The KV layer's hybrid clock reads the same source.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

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
        // A clock set before 1970 reads as 0; hybrid clocks' `+ 1` keeps
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

/// The operating system's clock moved by an adjustable offset: how a
/// fault-injection run (`faults.rs`) gives one node a clock that is ahead,
/// behind, or jumps. Without an offset set it reads as [`SystemClock`].
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset_micros: AtomicI64,
}

impl OffsetClock {
    /// The system clock, not moved.
    pub fn new() -> Self {
        Self::default()
    }

    /// From now on, reads are `micros` ahead of the system clock (behind
    /// when negative).
    pub fn set_offset(&self, micros: i64) {
        self.offset_micros.store(micros, Ordering::Relaxed);
    }

    /// The offset set last.
    pub fn offset(&self) -> i64 {
        self.offset_micros.load(Ordering::Relaxed)
    }
}

impl WallClock for OffsetClock {
    fn now_micros(&self) -> u64 {
        SystemClock
            .now_micros()
            .saturating_add_signed(self.offset_micros.load(Ordering::Relaxed))
    }
}
