//! Waits that park a thread, made polite to the async runtime.
//!
//! The SQL layer runs each statement on a worker of a multi-thread tokio
//! runtime and calls the layers below synchronously. Most of that work is
//! CPU (a point read costs microseconds), but some of it is a wait: for a
//! Raft round and its fsync, for another node's answer, for a transaction
//! to be decided. A worker that waited that way held its queued tasks —
//! other sessions' statements — until the wait ended, so the runtime
//! needed several workers per core, and those extra threads competed for
//! the cores and lengthened every statement's tail.
//!
//! [`wait`] runs such a wait with tokio's `block_in_place`: the worker's
//! queue moves to another thread first, so the runtime needs about as
//! many workers as cores. Anywhere else — a plain thread, a blocking-pool
//! thread, a current-thread runtime as unit tests use — it just waits.

use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `wait`, a call that may park the thread for a while (module docs).
pub fn wait<T>(wait: impl FnOnce() -> T) -> T {
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait)
        }
        _ => wait(),
    }
}

/// Sleeps for `pause` as a [`wait`]: a retry's pause on a statement's path.
pub fn sleep(pause: std::time::Duration) {
    wait(|| std::thread::sleep(pause));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;

    #[test]
    fn a_wait_runs_anywhere() {
        assert_eq!(wait(|| 1), 1);
        let current = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(current.block_on(async { wait(|| 2) }), 2);
        let multi = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        // On the only worker, a waiting task leaves the runtime free to
        // run another.
        let answer = multi.block_on(async {
            let (tx, rx) = std::sync::mpsc::channel();
            let waiter =
                tokio::spawn(
                    async move { wait(|| rx.recv_timeout(Duration::from_secs(10)).unwrap()) },
                );
            tokio::task::yield_now().await;
            let sender = tokio::spawn(async move { tx.send(3).unwrap() });
            sender.await.unwrap();
            waiter.await.unwrap()
        });
        assert_eq!(answer, 3);
        assert_eq!(
            multi.block_on(multi.spawn_blocking(|| wait(|| 4))).unwrap(),
            4
        );
    }
}
