//! Where directory records live: two levels, so the directory splits.
//!
//! A range's record ([`RangeRecord`], `directory.rs`) lives in one of two
//! places:
//!
//! * **meta1** — raw keys of the first range's cluster state (`s m <id>`),
//!   for the first range itself and for every range whose bounds touch the
//!   meta span: the ranges holding the other records. The first range is
//!   on every node (voters and learners), so every node can read meta1 from
//!   its own replica, and never needs a record to find it.
//! * **meta2** — the meta span, ordinary MVCC user keys `0x00 'm' <id>`
//!   (`keys::meta_key`), for every other range. The meta span sorts before
//!   every SQL key, so it starts inside the first range; it splits off like
//!   any span — by hand, or by size — and its ranges are found through
//!   meta1. That is what lets the directory outgrow one range
//!   (CockroachDB's meta1 / meta2, with meta1 kept in the first range).
//!
//! **Writing.** [`Command::SetDescriptor`] and [`Command::DropDescriptor`]
//! are proposed to the range holding the record's home — the first range
//! for meta1, the range holding the meta key for meta2 — and the state
//! machine checks the home against the applying range's bounds
//! ([`KvStateMachine::set_descriptor`]), answering "wrong range" to a
//! proposer that routed before a split or merge of the meta span. In meta2
//! a record is a version written at a timestamp chosen like a commit's;
//! it replaces the newest version only if it is newer (generation, then
//! applied index), and a dropped range's key holds an empty value that no
//! later write replaces.
//!
//! **Reading.** A node loads meta1 (its own replica of the first range,
//! or a node's that has one), which names the meta ranges; then each meta
//! range's records — from its own replica, or asked of one
//! (`Request::MetaRecords`). Records are hints (`directory.rs`): each is
//! read from one replica's engine, newest version first, without a read
//! timestamp, and a record stale by then costs a retry, never an error.

use std::time::{Duration, Instant};

use shoal_replication::{EntryContext, RangeBounds, RangeId};
use shoal_storage::{Engine, WriteBatch};

use crate::apply::{KvStateMachine, version_bytes};
use crate::command::{Command, Reply};
use crate::directory::RangeRecord;
use crate::error::Result;
use crate::keys;
use crate::mvcc;
use crate::remote::{Answer, Request};
use crate::store::{FIRST_RANGE, Kv};

/// How long loading the directory waits for one meta range's records.
const META_READ_BUDGET: Duration = Duration::from_secs(2);

/// How long a directory write retries a home that keeps answering "wrong
/// range" (it is being split, merged or frozen) before giving up until
/// the next round.
const WRITE_DEADLINE: Duration = Duration::from_secs(2);

/// Whether `record` belongs in meta1 (module docs).
pub(crate) fn in_meta1(record: &RangeRecord) -> bool {
    record.range == FIRST_RANGE || record.bounds.overlaps(&keys::meta_span())
}

/// The records stored in the meta span within `bounds`, in this engine:
/// the newest version of each meta key, dropped ones left out.
pub(crate) fn meta_records(engine: &dyn Engine, bounds: &RangeBounds) -> Result<Vec<RangeRecord>> {
    let meta = keys::meta_span();
    if !meta.overlaps(bounds) {
        return Ok(Vec::new());
    }
    let start = meta.start.clone().max(bounds.start.clone());
    let end = match (&meta.end, &bounds.end) {
        (Some(a), Some(b)) => Some(a.clone().min(b.clone())),
        (a, b) => a.clone().or_else(|| b.clone()),
    };
    let (lower, upper) = mvcc::version_span(&start, end.as_deref());
    let mut out = Vec::new();
    let mut previous: Option<Vec<u8>> = None;
    for pair in engine.scan(&lower, Some(&upper)) {
        let (key, value) = pair?;
        let (user_key, _) = mvcc::decode_version_key(&key)?;
        if previous.as_ref() == Some(&user_key) {
            continue;
        }
        previous = Some(user_key);
        if let Some(bytes) = mvcc::decode_value(&value)?
            && !bytes.is_empty()
        {
            out.push(RangeRecord::decode(&bytes)?);
        }
    }
    Ok(out)
}

/// The newest stored value of meta key `key` (`Some(empty)`: dropped).
fn newest(engine: &dyn Engine, key: &[u8]) -> Result<Option<Vec<u8>>> {
    let prefix = mvcc::version_prefix(key);
    let end = mvcc::prefix_end(&prefix);
    match engine.scan(&prefix, end.as_deref()).next() {
        Some(pair) => Ok(mvcc::decode_value(&pair?.1)?),
        None => Ok(None),
    }
}

impl KvStateMachine {
    /// Applies [`Command::SetDescriptor`] (module docs).
    pub(crate) fn set_descriptor(
        &mut self,
        ctx: &EntryContext<'_>,
        record: &RangeRecord,
        engine: &dyn Engine,
        batch: &mut WriteBatch,
    ) -> Result<Reply> {
        if in_meta1(record) {
            if ctx.range != FIRST_RANGE {
                return Ok(Reply::WrongRange);
            }
            crate::directory::put(engine, record, batch)?;
            return Ok(Reply::SettingStored);
        }
        let key = keys::meta_key(record.range);
        if !ctx.bounds.contains(&key) {
            return Ok(Reply::WrongRange);
        }
        let newer = match newest(engine, &key)? {
            Some(stored) if stored.is_empty() => false,
            Some(stored) => {
                let stored = RangeRecord::decode(&stored)?;
                (stored.generation, stored.index) < (record.generation, record.index)
            }
            None => true,
        };
        if newer {
            self.put_meta(ctx, key, &record.encode(), engine, batch)?;
        }
        Ok(Reply::SettingStored)
    }

    /// Applies [`Command::DropDescriptor`]: the record goes from meta1 in
    /// the first range and from meta2 in the range holding its key —
    /// whichever of them this range is.
    pub(crate) fn drop_descriptor(
        &mut self,
        ctx: &EntryContext<'_>,
        (range, generation): (RangeId, u64),
        engine: &dyn Engine,
        batch: &mut WriteBatch,
    ) -> Result<Reply> {
        let key = keys::meta_key(range);
        let home = ctx.bounds.contains(&key);
        if home && newest(engine, &key)?.is_none_or(|v| !v.is_empty()) {
            self.put_meta(ctx, key, &[], engine, batch)?;
        }
        if ctx.range == FIRST_RANGE {
            crate::directory::drop(engine, range, generation, batch)?;
        } else if !home {
            return Ok(Reply::WrongRange);
        }
        Ok(Reply::SettingStored)
    }

    /// Writes `value` as the newest version of meta key `key`, at a
    /// timestamp chosen like a commit's.
    fn put_meta(
        &mut self,
        ctx: &EntryContext<'_>,
        key: Vec<u8>,
        value: &[u8],
        engine: &dyn Engine,
        batch: &mut WriteBatch,
    ) -> Result<()> {
        let mut state = self.range(ctx.range, engine)?;
        let ts = ctx.floor.max(state.last_commit + 1);
        state.grow(ctx.range, version_bytes(&key, Some(value)), batch);
        batch.put(mvcc::version_key(&key, ts), mvcc::encode_value(Some(value)));
        batch.put(keys::last_commit(ctx.range), ts.to_be_bytes());
        state.last_commit = ts;
        self.ranges.insert(ctx.range, state);
        Ok(())
    }
}

impl Kv {
    /// Proposes `command` (a directory write about `range`) to the range
    /// holding its home (module docs), routing again while the meta span
    /// splits or merges under it.
    pub(crate) fn write_directory(
        &self,
        range: RangeId,
        meta1: bool,
        command: &Command,
    ) -> Result<Reply> {
        if meta1 {
            return self.propose_cluster(command, self.timeout);
        }
        let key = keys::meta_key(range);
        let deadline = Instant::now() + WRITE_DEADLINE;
        loop {
            let (home, _) = self.rerouting(|| self.route(&key))?;
            match self.propose_until(home, command, deadline)? {
                Reply::WrongRange if Instant::now() < deadline => {
                    shoal_replication::blocking::sleep(Duration::from_millis(5));
                    self.reload_directory();
                }
                other => return Ok(other),
            }
        }
    }

    /// Every record: meta1 from this node's replica of the first range or
    /// a node's, then the records of each meta range (module docs). A
    /// range described in both, or by two meta ranges, keeps its newest
    /// record.
    pub(crate) fn load_directory(&self) -> Result<Vec<RangeRecord>> {
        let mut records = if self.is_local(FIRST_RANGE) {
            self.first_range_records()?
        } else {
            self.ask_directory()?
        };
        let meta_ranges: Vec<RangeRecord> = records
            .iter()
            .filter(|r| r.range != FIRST_RANGE && r.bounds.overlaps(&keys::meta_span()))
            .cloned()
            .collect();
        let mut complete = true;
        // The local replicas of meta ranges all at once — and with them
        // those a split just made, not yet described in meta1.
        records.extend(self.local_meta_records()?);
        for meta in meta_ranges {
            if self.is_local(meta.range) {
                continue;
            }
            let request = Request::MetaRecords { range: meta.range };
            let found = match self.ask_within(&meta, &request, META_READ_BUDGET) {
                Ok(Answer::Records(found)) => Ok(found),
                Ok(other) => Err(crate::store::unexpected_answer(&other)),
                Err(e) => Err(e),
            };
            match found {
                Ok(found) => records.extend(found),
                Err(e) => {
                    tracing::debug!(range = meta.range, error = %e, "cannot read a meta range");
                    complete = false;
                }
            }
        }
        if !complete {
            // Keep what was known of the ranges that meta range describes.
            records.extend(self.directory.read().records().iter().cloned());
        }
        records.sort_by_key(|r| (r.range, std::cmp::Reverse((r.generation, r.index))));
        records.dedup_by_key(|r| r.range);
        Ok(records)
    }

    /// The records this node's replica of the first range holds: meta1,
    /// and the part of the meta span still inside the first range.
    pub(crate) fn first_range_records(&self) -> Result<Vec<RangeRecord>> {
        let mut records = crate::directory::records(self.engine.as_ref())?;
        let bounds = self.bounds.read().get(&FIRST_RANGE).map(|(b, _)| b.clone());
        if let Some(bounds) = bounds {
            records.extend(meta_records(self.engine.as_ref(), &bounds)?);
        }
        Ok(records)
    }

    /// The records of meta range `range` in this node's replica — and of
    /// every other meta range held here (a range split off it moments ago
    /// may not be described in meta1 yet).
    pub(crate) fn meta_records_here(&self, range: RangeId) -> Result<Vec<RangeRecord>> {
        if !self.is_local(range) {
            return Err(crate::error::KvError::Misrouted(format!(
                "range {range} has no replica on node {}",
                self.raft.node_id()
            )));
        }
        self.local_meta_records()
    }

    /// The records in the meta span of this node's engine: exactly those
    /// its replicas hold (a removed replica's data is deleted with it).
    fn local_meta_records(&self) -> Result<Vec<RangeRecord>> {
        meta_records(self.engine.as_ref(), &keys::meta_span())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use shoal_storage::MemoryEngine;

    use super::*;

    fn ids(records: &[RangeRecord]) -> Vec<RangeId> {
        let mut ids: Vec<RangeId> = records.iter().map(|r| r.range).collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn records_live_in_the_meta_span_which_splits() {
        let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
        let kv = Kv::open(engine.clone()).unwrap();
        let b = kv.split_at(b"b").unwrap();
        let c = kv.split_at(b"c").unwrap();
        kv.publish_all();
        // The first range's record in meta1; the others in the meta span,
        // still inside the first range.
        assert_eq!(
            ids(&crate::directory::records(engine.as_ref()).unwrap()),
            vec![FIRST_RANGE]
        );
        let first = kv.bounds.read().get(&FIRST_RANGE).unwrap().0.clone();
        assert_eq!(
            ids(&meta_records(engine.as_ref(), &first).unwrap()),
            vec![b, c]
        );

        // The meta span gets ranges of its own, split between the records
        // of `b` and `c`.
        let meta = kv.split_at(&keys::meta_span().start).unwrap();
        let upper = kv.split_at(&keys::meta_key(c)).unwrap();
        kv.split_at(keys::meta_span().end.as_deref().unwrap())
            .unwrap();
        let d = kv.split_at(b"d").unwrap();
        kv.publish_all();
        let meta1 = ids(&crate::directory::records(engine.as_ref()).unwrap());
        assert!(meta1.contains(&meta) && meta1.contains(&upper), "{meta1:?}");
        assert!(!meta1.contains(&b) && !meta1.contains(&d), "{meta1:?}");
        let held = |range| {
            let bounds = kv.bounds.read().get(&range).unwrap().0.clone();
            ids(&meta_records(engine.as_ref(), &bounds).unwrap())
        };
        let (lower_records, upper_records) = (held(meta), held(upper));
        // Asked of this node, a meta range answers for every meta range
        // held here.
        assert_eq!(
            ids(&kv.meta_records_here(meta).unwrap()),
            ids(&kv.meta_records_here(upper).unwrap())
        );
        assert!(lower_records.contains(&b) && !lower_records.contains(&d));
        assert!(upper_records.contains(&c) && upper_records.contains(&d));

        // A node's directory has every range, and routes by it.
        let loaded = kv.load_directory().unwrap();
        for range in [FIRST_RANGE, meta, upper, b, c, d] {
            assert!(loaded.iter().any(|r| r.range == range), "{range} missing");
        }
        kv.directory.write().load(loaded);
        assert_eq!(kv.lookup(b"d1").map(|(r, _)| r), Some(d));
        assert_eq!(kv.lookup(b"b1").map(|(r, _)| r), Some(b));

        // A dropped record is gone for good: a late write of it is refused.
        let old = kv.directory.read().get(b).cloned().unwrap();
        kv.forget_range(b, old.generation).unwrap();
        let command = Command::SetDescriptor(RangeRecord {
            index: old.index + 100,
            ..old
        });
        kv.write_directory(b, false, &command).unwrap();
        assert!(!ids(&kv.load_directory().unwrap()).contains(&b));
    }
}
