//! Bounded commands: a big list of writes or keys cut into parts, and the
//! few threads that propose the parts.
//!
//! Every [`Command`](crate::command::Command) is one Raft log entry: sent
//! to every replica, persisted and applied whole, and proposed again whole
//! when its answer is late. A transaction's write set has no bound of its
//! own — a `COPY` of a million rows is one transaction — so no command
//! carries it whole. Commands that take a list of writes or keys from a
//! transaction (prepares, resolutions, row locks) carry at most
//! [`PART_KEYS`] entries and [`PART_BYTES`] bytes of them, a *part*; a
//! commit whose writes do not fit one part prepares them part by part
//! (`prepare.rs`) even when they all lie in one range.
//!
//! The parts of one call are proposed by up to [`WORKERS`] threads at
//! once ([`run`]): the entries that reach one range together are appended
//! and synced together, so one range's parts pipeline, and different
//! ranges work in parallel. A single part runs on the calling thread.

use crate::command::Writes;

/// Most writes or keys one command carries.
pub(crate) const PART_KEYS: usize = 4096;

/// Most bytes of keys and values one command carries (one part can exceed
/// it only by its last entry: an entry is never cut).
pub(crate) const PART_BYTES: usize = 1 << 20;

/// Most parts in flight at once for one call. A range applies its parts
/// one after another, so more in flight would only queue: a few hide the
/// round trip to a quorum, and every part must be answered within the
/// request timeout counted from when it was proposed.
pub(crate) const WORKERS: usize = 4;

/// The bytes one write takes in a command.
fn write_bytes((key, value): &(Vec<u8>, Option<Vec<u8>>)) -> usize {
    key.len() + value.as_ref().map_or(0, Vec::len)
}

/// Whether `writes` need more than one part.
pub(crate) fn exceed_one_part(writes: &[(Vec<u8>, Option<Vec<u8>>)]) -> bool {
    writes.len() > PART_KEYS || writes.iter().map(write_bytes).sum::<usize>() > PART_BYTES
}

/// `writes` in parts, in order.
pub(crate) fn split_writes(writes: Writes) -> Vec<Writes> {
    split(writes, write_bytes)
}

/// `keys` in parts, in order.
pub(crate) fn split_keys(keys: Vec<Vec<u8>>) -> Vec<Vec<Vec<u8>>> {
    split(keys, Vec::len)
}

/// The first part of the keys `keys` yields.
pub(crate) fn first_part<'a>(keys: impl Iterator<Item = &'a Vec<u8>>) -> Vec<Vec<u8>> {
    let mut bytes = 0;
    let mut part = Vec::new();
    for key in keys {
        if !part.is_empty() && (part.len() == PART_KEYS || bytes + key.len() > PART_BYTES) {
            break;
        }
        bytes += key.len();
        part.push(key.clone());
    }
    part
}

fn split<T>(items: Vec<T>, size: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
    let mut parts = Vec::new();
    let mut part = Vec::new();
    let mut bytes = 0;
    for item in items {
        let n = size(&item);
        if !part.is_empty() && (part.len() == PART_KEYS || bytes + n > PART_BYTES) {
            parts.push(std::mem::take(&mut part));
            bytes = 0;
        }
        bytes += n;
        part.push(item);
    }
    if !part.is_empty() {
        parts.push(part);
    }
    parts
}

/// `work` done on each of `jobs` by up to [`WORKERS`] threads; the results
/// in the jobs' order. One job is done on the calling thread.
pub(crate) fn run<J: Send, R: Send>(jobs: Vec<J>, work: impl Fn(J) -> R + Sync) -> Vec<R> {
    if jobs.len() <= 1 {
        return jobs.into_iter().map(work).collect();
    }
    let workers = jobs.len().min(WORKERS);
    let queue = parking_lot::Mutex::new(jobs.into_iter().enumerate());
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        // The lock is released before the work starts.
                        let next = queue.lock().next();
                        let Some((i, job)) = next else {
                            return done;
                        };
                        done.push((i, work(job)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| {
                // A worker panics only if `work` does: pass it on.
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, result)| result).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_bounded_by_count_and_bytes_and_keep_order() {
        let keys: Vec<Vec<u8>> = (0..10_000u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let parts = split_keys(keys.clone());
        assert_eq!(
            parts.iter().map(Vec::len).collect::<Vec<_>>(),
            [PART_KEYS, PART_KEYS, 10_000 - 2 * PART_KEYS]
        );
        assert_eq!(parts.concat(), keys);
        assert_eq!(first_part(keys.iter()), parts[0]);

        let big = vec![0u8; PART_BYTES / 3 + 1];
        let writes: Writes = (0..7u8).map(|i| (vec![i], Some(big.clone()))).collect();
        assert!(exceed_one_part(&writes));
        let parts = split_writes(writes.clone());
        assert_eq!(parts.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 2, 1]);
        assert_eq!(parts.concat(), writes);
        // An entry larger than a part is a part of its own.
        let huge: Writes = vec![(b"a".to_vec(), Some(vec![0; PART_BYTES * 2]))];
        assert_eq!(split_writes(huge.clone()), [huge]);
        assert!(!exceed_one_part(&writes[..2]));
    }

    #[test]
    fn run_keeps_the_jobs_order() {
        let jobs: Vec<u64> = (0..100).collect();
        let results = run(jobs, |n| {
            std::thread::sleep(std::time::Duration::from_micros(100 - n));
            n * 2
        });
        assert_eq!(results, (0..100).map(|n| n * 2).collect::<Vec<_>>());
        assert_eq!(run(vec![7], |n: i32| n + 1), [8]);
        assert!(run(Vec::<i32>::new(), |n| n).is_empty());
    }
}
