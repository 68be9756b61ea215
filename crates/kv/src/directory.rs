//! The range directory: where every range lives, for nodes that hold no
//! replica of it.
//!
//! # Meta records
//!
//! Each range is described by a [`RangeRecord`] — its bounds, generation,
//! replicas and the leader that wrote it — kept in one of two levels
//! (`meta.rs`): the first range's cluster state (`s m <range id u64 BE>`,
//! raw keys outside MVCC, like the node registry) for the first range and
//! the meta ranges, and the meta span (`0x00 'm' <range id>`, ordinary
//! versions, in ranges that split like any other) for every other range.
//! A range's leader writes its record
//! ([`Command::SetDescriptor`](crate::command::Command)) whenever what it
//! sees differs from what it last wrote: after a split, a membership
//! change, a change of leader (the node's maintenance loop,
//! [`Kv::publish_descriptors`]). A record replaces the stored one only if
//! it is newer: a higher generation, or the same generation described at a
//! later applied index, so a late write of an old view changes nothing.
//! A range merged into its left-hand neighbour loses its record for good
//! ([`Command::DropDescriptor`](crate::command::Command), `merge.rs`).
//!
//! # The cache
//!
//! Every node keeps the records in memory ([`Directory`]), loaded from its
//! own replica of the first range — or, if it holds none, from a node that
//! does (`remote.rs`) — and from the meta ranges that names
//! (`meta.rs`). Records are hints, not truth: the truth about a
//! range is in its replicas' apply state, and a replica asked for a key
//! outside its bounds, or a node asked for a range it no longer holds,
//! says so. The asking node then reloads the directory (at most every
//! [`RELOAD_INTERVAL`]) and routes again, so a stale cache costs a retry,
//! never an error.

use std::time::{Duration, Instant};

use shoal_replication::{RangeBounds, RangeId};
use shoal_storage::{Engine, WriteBatch};

use crate::codec::{Reader, put_field, put_nodes, put_optional_field};
use crate::command::{Command, Reply};
use crate::error::Result;
use crate::store::Kv;

const PREFIX: &[u8] = b"sm";
const DROPPED_PREFIX: &[u8] = b"sx";

/// The least time between two reloads of a node's directory cache.
pub const RELOAD_INTERVAL: Duration = Duration::from_millis(50);

/// What the directory knows of one range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeRecord {
    /// The range.
    pub range: RangeId,
    /// Its bounds when described.
    pub bounds: RangeBounds,
    /// Its generation (bumped by each change of bounds or membership).
    pub generation: u64,
    /// Its applied index when described: orders records of one generation.
    pub index: u64,
    /// Voting replicas' nodes.
    pub voters: Vec<u64>,
    /// Learners' nodes.
    pub learners: Vec<u64>,
    /// The node that led it when described (0: unknown).
    pub leader: u64,
}

impl RangeRecord {
    /// Whether `other` describes the same layout (everything but the index).
    pub fn same_layout(&self, other: &RangeRecord) -> bool {
        self.range == other.range
            && self.bounds == other.bounds
            && self.generation == other.generation
            && self.voters == other.voters
            && self.learners == other.learners
            && self.leader == other.leader
    }

    /// The nodes to ask for this range, the leader first, then the other
    /// voters.
    pub fn candidates(&self) -> Vec<u64> {
        let mut nodes = Vec::with_capacity(self.voters.len());
        if self.leader != 0 && self.voters.contains(&self.leader) {
            nodes.push(self.leader);
        }
        nodes.extend(self.voters.iter().copied().filter(|&v| v != self.leader));
        nodes
    }

    /// The record's wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&self.range.to_be_bytes());
        put_field(&mut out, &self.bounds.start);
        put_optional_field(&mut out, self.bounds.end.as_deref());
        out.extend_from_slice(&self.generation.to_be_bytes());
        out.extend_from_slice(&self.index.to_be_bytes());
        put_nodes(&mut out, &self.voters);
        put_nodes(&mut out, &self.learners);
        out.extend_from_slice(&self.leader.to_be_bytes());
        out
    }

    /// Reads a record written by [`RangeRecord::encode`] from `r`.
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<RangeRecord> {
        Ok(RangeRecord {
            range: r.u64()?,
            bounds: RangeBounds {
                start: r.field()?,
                end: r.optional_field()?,
            },
            generation: r.u64()?,
            index: r.u64()?,
            voters: r.nodes()?,
            learners: r.nodes()?,
            leader: r.u64()?,
        })
    }

    /// Parses [`RangeRecord::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<RangeRecord> {
        let mut r = Reader(bytes);
        let record = Self::read(&mut r)?;
        r.finish()?;
        Ok(record)
    }
}

fn record_key(range: RangeId) -> Vec<u8> {
    let mut key = PREFIX.to_vec();
    key.extend_from_slice(&range.to_be_bytes());
    key
}

/// Applies a [`Command::SetDescriptor`](crate::command::Command): stores
/// `record` unless the stored one is as new. Returns whether it did.
pub fn put(engine: &dyn Engine, record: &RangeRecord, batch: &mut WriteBatch) -> Result<bool> {
    if engine.get(&dropped_key(record.range))?.is_some() {
        // Merged away: a late write of its old view must not bring the
        // record back (range ids are never reused).
        return Ok(false);
    }
    let key = record_key(record.range);
    if let Some(raw) = engine.get(&key)? {
        let stored = RangeRecord::decode(&raw)?;
        if (stored.generation, stored.index) >= (record.generation, record.index) {
            return Ok(false);
        }
    }
    batch.put(key, record.encode());
    Ok(true)
}

/// Applies a [`Command::DropDescriptor`](crate::command::Command): deletes
/// the record of `range`, merged away at `generation`, and remembers it
/// (`s x <range id>`) so that no later write brings it back. Returns
/// whether a record was there.
pub fn drop(
    engine: &dyn Engine,
    range: RangeId,
    generation: u64,
    batch: &mut WriteBatch,
) -> Result<bool> {
    let key = record_key(range);
    let existed = engine.get(&key)?.is_some();
    batch.delete(key);
    batch.put(dropped_key(range), generation.to_be_bytes());
    Ok(existed)
}

fn dropped_key(range: RangeId) -> Vec<u8> {
    let mut key = DROPPED_PREFIX.to_vec();
    key.extend_from_slice(&range.to_be_bytes());
    key
}

/// Every record in `engine` (a replica of the first range), by range id.
pub fn records(engine: &dyn Engine) -> Result<Vec<RangeRecord>> {
    let end = crate::mvcc::prefix_end(PREFIX).unwrap_or_default();
    let mut out = Vec::new();
    for pair in engine.scan(PREFIX, Some(&end)) {
        let (_, value) = pair?;
        out.push(RangeRecord::decode(&value)?);
    }
    Ok(out)
}

/// A node's cache of the directory. See the module documentation.
#[derive(Debug, Default)]
pub struct Directory {
    /// Records sorted by start key.
    records: Vec<RangeRecord>,
    loaded: Option<Instant>,
}

impl Directory {
    /// Replaces the cache with `records`.
    pub fn load(&mut self, mut records: Vec<RangeRecord>) {
        records.sort_by(|a, b| a.bounds.start.cmp(&b.bounds.start));
        self.records = records;
        self.loaded = Some(Instant::now());
    }

    /// A failed reload counts as one: the next waits its interval too.
    pub fn note_attempt(&mut self) {
        self.loaded = Some(Instant::now());
    }

    /// Whether the cache may be reloaded now.
    pub fn reload_due(&self) -> bool {
        self.loaded.is_none_or(|at| at.elapsed() >= RELOAD_INTERVAL)
    }

    /// The record of the range holding `key`: of the records containing it
    /// (a stale one may overlap a newer one until both are rewritten), the
    /// newest generation.
    pub fn lookup(&self, key: &[u8]) -> Option<&RangeRecord> {
        let after = self
            .records
            .partition_point(|r| r.bounds.start.as_slice() <= key);
        self.records[..after]
            .iter()
            .filter(|r| r.bounds.contains(key))
            .max_by_key(|r| (r.generation, r.index))
    }

    /// Every cached record, by start key.
    pub fn records(&self) -> &[RangeRecord] {
        &self.records
    }

    /// Puts `record` in the cache in place of its range's, if newer.
    pub fn upsert(&mut self, record: RangeRecord) {
        match self.records.iter_mut().find(|r| r.range == record.range) {
            Some(known) if (known.generation, known.index) < (record.generation, record.index) => {
                *known = record;
            }
            Some(_) => return,
            None => self.records.push(record),
        }
        self.records
            .sort_by(|a, b| a.bounds.start.cmp(&b.bounds.start));
    }

    /// Forgets the record of `range` (merged away).
    pub fn remove(&mut self, range: RangeId) {
        self.records.retain(|r| r.range != range);
    }

    /// The record of `range`, if cached.
    pub fn get(&self, range: RangeId) -> Option<&RangeRecord> {
        self.records.iter().find(|r| r.range == range)
    }
}

impl Kv {
    /// Writes the record of every range this node leads whose layout
    /// differs from the stored one (the maintenance loop calls it; module
    /// docs). Returns how many it wrote.
    pub fn publish_descriptors(&self) -> Result<usize> {
        let me = self.raft.node_id();
        let bounds: Vec<(RangeId, (RangeBounds, u64))> = self
            .bounds
            .read()
            .iter()
            .map(|(&range, b)| (range, b.clone()))
            .collect();
        let ids: Vec<RangeId> = bounds.iter().map(|(range, _)| *range).collect();
        let views = self.raft.inspect(move |driver| {
            ids.iter()
                .map(|&range| {
                    (
                        driver.is_leader(range),
                        driver.conf_state(range),
                        driver.applied_index(range),
                    )
                })
                .collect::<Vec<_>>()
        })?;
        if self.directory.read().reload_due() {
            self.reload_directory();
        }
        let mut written = 0;
        for ((range, (bounds, generation)), (leads, conf_state, applied)) in
            bounds.into_iter().zip(views)
        {
            let (true, Some(cs), Some(index)) = (leads, conf_state, applied) else {
                continue;
            };
            // Members of both sides of a joint configuration: a voter on
            // its way out is still one (and must not be collected).
            let union = |a: Vec<u64>, b: Vec<u64>| {
                let mut all = a;
                for n in b {
                    if !all.contains(&n) {
                        all.push(n);
                    }
                }
                all
            };
            let record = RangeRecord {
                range,
                bounds,
                generation,
                index,
                voters: union(cs.voters, cs.voters_outgoing),
                learners: union(cs.learners, cs.learners_next),
                leader: me,
            };
            let known = self.directory.read().get(range).cloned();
            if known.is_some_and(|k| k.same_layout(&record)) {
                continue;
            }
            let meta1 = crate::meta::in_meta1(&record);
            let command = Command::SetDescriptor(record.clone());
            match self.write_directory(range, meta1, &command) {
                Ok(Reply::SettingStored) => written += 1,
                Ok(other) => {
                    // Its home is being split or merged: the next round.
                    tracing::debug!(range, ?other, "cannot write a range descriptor yet");
                    continue;
                }
                Err(e) => {
                    tracing::debug!(range, error = %e, "cannot write a range descriptor");
                    continue;
                }
            }
            self.directory.write().upsert(record);
        }
        Ok(written)
    }

    /// Removes the local replicas their range dropped while this node was
    /// not listening: the directory describes the range at a later applied
    /// index than the replica reached, without this node (see
    /// `shoal_replication::replica_gc`). Returns how many it removed.
    ///
    /// A replica of a range merged away while this node was not among its
    /// replicas has no record any more: it goes when a record of another
    /// range, newer than it and held by no replica here, covers its keys.
    pub fn collect_stale_replicas(&self) -> Result<usize> {
        let me = self.raft.node_id();
        let stale: Vec<(RangeId, u64)> = {
            let directory = self.directory.read();
            let local = self.bounds.read();
            let mut stale: Vec<(RangeId, u64)> = local
                .keys()
                .filter_map(|&range| directory.get(range))
                .filter(|r| !r.voters.contains(&me) && !r.learners.contains(&me))
                .map(|r| (r.range, r.index))
                .collect();
            for (&range, (bounds, generation)) in local.iter() {
                let merged_away = directory.get(range).is_none()
                    && directory.records().iter().any(|r| {
                        r.range != range
                            && !local.contains_key(&r.range)
                            && r.generation > *generation
                            && r.bounds.covers(bounds)
                    });
                if merged_away {
                    // Any applied index is behind "gone".
                    stale.push((range, u64::MAX));
                }
            }
            stale
        };
        if stale.is_empty() {
            return Ok(0);
        }
        let removed = self.raft.inspect(move |driver| {
            let mut removed = 0;
            for (range, described_at) in stale {
                let behind = driver
                    .applied_index(range)
                    .is_some_and(|applied| applied < described_at);
                if behind {
                    match driver.remove_replica(range) {
                        Ok(true) => removed += 1,
                        Ok(false) => {}
                        Err(e) => tracing::warn!(range, error = %e, "cannot remove replica"),
                    }
                }
            }
            removed
        })?;
        Ok(removed)
    }
}

#[cfg(test)]
impl Kv {
    /// Publishes the record of every local range, waiting (bounded) until
    /// each has its leader here: a single-node test's view of the
    /// maintenance loop.
    pub(crate) fn publish_all(&self) {
        for _ in 0..200 {
            let led = self
                .local_ranges()
                .iter()
                .all(|r| self.raft.leader(r.range_id) == Some(self.raft.node_id()));
            let published = self.publish_descriptors();
            if led && published.is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("ranges without a leader");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(range: u64, start: &[u8], end: Option<&[u8]>, generation: u64) -> RangeRecord {
        RangeRecord {
            range,
            bounds: RangeBounds {
                start: start.to_vec(),
                end: end.map(<[u8]>::to_vec),
            },
            generation,
            index: 10,
            voters: vec![1, 2, 3],
            learners: vec![4],
            leader: 2,
        }
    }

    #[test]
    fn records_round_trip() {
        let r = record(7, b"a", Some(b"m"), 3);
        assert_eq!(RangeRecord::decode(&r.encode()).ok(), Some(r.clone()));
        let unbounded = record(8, b"m", None, 1);
        assert_eq!(
            RangeRecord::decode(&unbounded.encode()).ok(),
            Some(unbounded)
        );
        assert!(RangeRecord::decode(&r.encode()[..5]).is_err());
        assert_eq!(r.candidates(), vec![2, 1, 3]);
    }

    #[test]
    fn lookup_prefers_the_newest_overlapping_record() {
        let mut directory = Directory::default();
        // Range 1 split at "m" into 1 and 2; range 1's old record (whole
        // key space, generation 1) is still cached next to range 2's.
        directory.load(vec![record(2, b"m", None, 2), record(1, b"", None, 1)]);
        assert_eq!(directory.lookup(b"a").map(|r| r.range), Some(1));
        assert_eq!(directory.lookup(b"x").map(|r| r.range), Some(2));
        directory.load(vec![
            record(1, b"", Some(b"m"), 2),
            record(2, b"m", None, 2),
        ]);
        assert_eq!(directory.lookup(b"m").map(|r| r.range), Some(2));
        assert_eq!(directory.lookup(b"").map(|r| r.range), Some(1));
        assert!(Directory::default().lookup(b"a").is_none());
    }
}
