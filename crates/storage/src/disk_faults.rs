//! Disk faults a chaos test injects into a running node's engine.
//!
//! A node started with fault injection on (`shoal start --fault-injection`,
//! a hidden flag) hands its [`RocksEngine`](crate::RocksEngine) one
//! `DiskFaults`; its HTTP endpoint sets them. Two faults, both on every
//! write batch before it reaches RocksDB:
//!
//! * **Slow**: each write waits `delay_ms` first — a disk whose fsyncs
//!   take that long. The Raft thread's log appends and the apply thread's
//!   state-machine writes both stall, as they would on a dying device.
//! * **Failing**: each write fails with an I/O error, from the moment it is
//!   set until the process ends — the disk is gone. A storage error stops
//!   the node's Raft thread (`shoal_replication::runner`): it acknowledges
//!   nothing more, its health check says so, and an operator (or the chaos
//!   nemesis) restarts it; what it had synced is still there.
//!
//! Reads are left alone: what was written stays readable, as on a disk that
//! refuses writes. Without the flag the engine holds no `DiskFaults` and a
//! write checks nothing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::error::{Result, StorageError};

/// The longest injected write delay: a guard against a slip of the
/// finger, far beyond any election timeout.
pub const MAX_DELAY_MS: u64 = 10_000;

/// The disk faults in force (module docs).
#[derive(Debug, Default)]
pub struct DiskFaults {
    delay_ms: AtomicU64,
    failing: AtomicBool,
}

impl DiskFaults {
    /// Every write waits `ms` (at most [`MAX_DELAY_MS`]) from now on; 0
    /// heals.
    pub fn set_delay_ms(&self, ms: u64) {
        self.delay_ms.store(ms.min(MAX_DELAY_MS), Ordering::Relaxed);
    }

    /// The delay each write waits, in milliseconds.
    pub fn delay_ms(&self) -> u64 {
        self.delay_ms.load(Ordering::Relaxed)
    }

    /// Every write fails from now on; there is no healing but a restart.
    pub fn fail_writes(&self) {
        self.failing.store(true, Ordering::Relaxed);
    }

    /// Whether writes fail.
    pub fn failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// What a write meets before it reaches the engine.
    pub(crate) fn before_write(&self) -> Result<()> {
        if self.failing() {
            return Err(StorageError::Io(
                "write failed: injected disk failure".to_string(),
            ));
        }
        let delay = self.delay_ms();
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_wait_or_fail_as_set() {
        let faults = DiskFaults::default();
        assert!(faults.before_write().is_ok());
        faults.set_delay_ms(30);
        let start = std::time::Instant::now();
        assert!(faults.before_write().is_ok());
        assert!(start.elapsed() >= Duration::from_millis(30));
        faults.set_delay_ms(u64::MAX);
        assert_eq!(faults.delay_ms(), MAX_DELAY_MS);
        faults.set_delay_ms(0);
        faults.fail_writes();
        assert!(matches!(faults.before_write(), Err(StorageError::Io(_))));
    }
}
