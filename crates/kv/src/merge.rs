//! Merging small neighbours: the driver of the merge protocol
//! (`shoal-replication`'s `apply/merge.rs` tells the protocol; the state
//! machine's part is `apply_merge.rs`).
//!
//! # When two ranges merge
//!
//! The placement loop (one node, the first range's leader) calls
//! [`Kv::merge_round`] every round. It looks at each pair of neighbours L,
//! R in the directory (never the first range, which holds the cluster
//! state) and merges R into L when
//!
//! * L holds fewer bytes than its span's `range_min_bytes`
//!   (`span_config.rs`), and both together fewer than its
//!   `range_max_bytes` — so the merged range does not split again at once;
//! * R's first key is not **sticky**: boundaries made by `SPLIT AT` and by
//!   creating a table or index stay for ever (as CockroachDB's manual
//!   splits do), and those made by load for [`LOAD_SPLIT_STICKY`], so a
//!   range split because it was hot is not merged back while it may still
//!   be. Boundaries made by size are not sticky.
//!
//! A few disjoint pairs per round (`MERGES_PER_ROUND`), one step each;
//! the rebalancer leaves a pair alone while it is being worked on:
//!
//! 1. **Colocate.** While R's replicas are not on L's nodes, one of them
//!    moves there (the rebalancer's own step, `rebalance.rs`).
//! 2. **Freeze R.** R is frozen for good from here: it is never unfrozen,
//!    since only L's log knows whether a merge whose answer was lost
//!    applied (`shoal-replication`'s `apply/merge.rs`).
//! 3. **Merge into L** once every replica of L sits next to a replica of R
//!    that applied the freeze (waiting a bounded time for them), naming
//!    L's generation and membership as seen. If L changed meanwhile it
//!    refuses, and the next round proposes again; if L's replicas moved
//!    off R's nodes, they move back first (R's can no longer move). A
//!    frozen R is found whatever its size, so a merge interrupted by a
//!    leader change is finished by the next placement leader.
//! 4. **Drop R's directory record.** L's leader publishes L's new bounds.
//!    A record left behind (the answer was lost) is dropped once L is seen
//!    covering R's first key.
//!
//! While R is frozen its readers and writers wait (they are refused with
//! "wrong range" and route again); the freeze lasts a few Raft rounds.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use shoal_replication::{ApplyState, MergeRequest, RangeBounds, RangeId};
use shoal_storage::ColumnFamily;

use crate::clock::Timestamp;
use crate::codec::{Reader, put_nodes};
use crate::command::{Command, Reply};
use crate::directory::RangeRecord;
use crate::error::{KvError, Result};
use crate::keys;
use crate::remote::{Answer, Request};
use crate::store::{FIRST_RANGE, Kv};

/// How long a boundary made by a split by load is kept from merging
/// (CockroachDB's `kv.range_split.by_load_merge_delay` default).
pub const LOAD_SPLIT_STICKY: Duration = Duration::from_secs(300);

/// The most pairs one round works on (each pair's steps are a few Raft
/// rounds; a colocation step only asks for a replica move).
const MERGES_PER_ROUND: usize = 4;

/// How long the driver waits for every replica of a frozen range to apply
/// the freeze before leaving the rest to the next round.
const CATCH_UP_WAIT: Duration = Duration::from_secs(5);

/// What the merge driver needs to know of a range, from one replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MergeInfo {
    pub(crate) bounds: RangeBounds,
    pub(crate) generation: u64,
    pub(crate) voters: Vec<u64>,
    pub(crate) learners: Vec<u64>,
    /// In a joint configuration.
    pub(crate) joint: bool,
    pub(crate) bytes: u64,
    /// Until when its first key stays a boundary (hybrid time).
    pub(crate) sticky_until: Timestamp,
    /// The freeze's log index, if frozen.
    pub(crate) frozen: Option<u64>,
}

impl MergeInfo {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // The bounds' own encoding cannot fail for bounds a replica holds.
        let _ = self.bounds.encode(&mut out);
        for word in [
            self.generation,
            self.bytes,
            self.sticky_until,
            self.frozen.unwrap_or(0),
            u64::from(self.joint),
        ] {
            out.extend_from_slice(&word.to_be_bytes());
        }
        put_nodes(&mut out, &self.voters);
        put_nodes(&mut out, &self.learners);
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<MergeInfo> {
        let mut rest = bytes;
        let bounds = RangeBounds::decode(&mut rest)?;
        let mut r = Reader(rest);
        let (generation, bytes, sticky_until, frozen, joint) =
            (r.u64()?, r.u64()?, r.u64()?, r.u64()?, r.u64()?);
        let voters = r.nodes()?;
        let learners = r.nodes()?;
        r.finish()?;
        Ok(MergeInfo {
            bounds,
            generation,
            voters,
            learners,
            joint: joint != 0,
            bytes,
            sticky_until,
            frozen: (frozen != 0).then_some(frozen),
        })
    }

    /// Whether both have the same voters and learners, outside any joint
    /// configuration.
    fn colocated_with(&self, other: &MergeInfo) -> bool {
        let sorted = |ids: &[u64]| {
            let mut ids = ids.to_vec();
            ids.sort_unstable();
            ids
        };
        !self.joint
            && !other.joint
            && sorted(&self.voters) == sorted(&other.voters)
            && sorted(&self.learners) == sorted(&other.learners)
    }
}

/// Where one step left a pair.
enum Step {
    Merged,
    /// Under way: the rebalancer must leave both ranges alone.
    Working,
}

/// Whether `l` describes its range after it took over the range `r`
/// describes: it covers `r`'s first key at a newer generation. (A replica
/// of a range not yet split may cover its future right-hand side too, but
/// at an older generation than the split gave that side.)
fn merged_into(l: &MergeInfo, r: &MergeInfo) -> bool {
    l.bounds.contains(&r.bounds.start) && l.generation > r.generation
}

/// What a round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MergeRound {
    /// Ranges merged away.
    pub merged: Vec<RangeId>,
    /// Ranges the rebalancer should leave alone this round (a merge is
    /// moving their replicas together).
    pub busy: Vec<RangeId>,
}

impl Kv {
    /// One round of the merge driver (module docs); call it only on the
    /// leader of the first range.
    pub fn merge_round(&self) -> Result<MergeRound> {
        self.reload_directory();
        let mut records: Vec<RangeRecord> = self
            .directory
            .read()
            .records()
            .iter()
            .filter(|r| r.range != FIRST_RANGE)
            .cloned()
            .collect();
        records.sort_by(|a, b| a.bounds.start.cmp(&b.bounds.start));
        let mut infos: HashMap<RangeId, Option<MergeInfo>> = HashMap::new();
        let mut info = |kv: &Kv, range: RangeId| -> Option<MergeInfo> {
            infos
                .entry(range)
                .or_insert_with(|| match kv.merge_info(range) {
                    Ok(info) => Some(info),
                    Err(e) => {
                        tracing::debug!(range, error = %e, "no merge information");
                        None
                    }
                })
                .clone()
        };
        let now = self.clock.wall_now();
        let mut round = MergeRound::default();
        let mut touched = HashSet::new();
        for pair in records.windows(2) {
            let (left, right) = (&pair[0], &pair[1]);
            if left.bounds.end.as_deref() != Some(right.bounds.start.as_slice())
                || touched.contains(&left.range)
                || touched.contains(&right.range)
            {
                continue;
            }
            let Some(l) = info(self, left.range) else {
                continue;
            };
            let Some(r) = info(self, right.range) else {
                // A record the merge that removed its range did not get to
                // drop (its answer was lost): the left-hand range covers
                // its keys now.
                if l.bounds.contains(&right.bounds.start) && l.generation > right.generation {
                    match self.forget_range(right.range, right.generation) {
                        Ok(()) => round.merged.push(right.range),
                        Err(e) => {
                            tracing::debug!(range = right.range, error = %e, "cannot drop a record")
                        }
                    }
                }
                continue;
            };
            if l.bounds.end != Some(r.bounds.start.clone()) {
                continue;
            }
            let wanted = r.frozen.is_some() || {
                // Unreadable settings (an engine failure) merge nothing.
                let min = self.range_min_bytes(&l.bounds.start).unwrap_or(0);
                let max = self.range_max_bytes(&l.bounds.start).unwrap_or(0);
                r.sticky_until <= now
                    && l.frozen.is_none()
                    && l.bytes < min
                    && l.bytes.saturating_add(r.bytes) < max
            };
            if !wanted {
                continue;
            }
            touched.extend([left.range, right.range]);
            match self.merge_pair(left.range, right.range, &l, &r) {
                Ok(Step::Merged) => round.merged.push(right.range),
                Ok(Step::Working) => round.busy.extend([left.range, right.range]),
                Err(e) => {
                    tracing::debug!(left = left.range, right = right.range, error = %e, "merge step failed");
                    round.busy.extend([left.range, right.range]);
                }
            }
            if touched.len() >= 2 * MERGES_PER_ROUND {
                break;
            }
        }
        Ok(round)
    }

    /// One step of merging `right` into `left` (module docs).
    fn merge_pair(
        &self,
        left: RangeId,
        right: RangeId,
        l: &MergeInfo,
        r: &MergeInfo,
    ) -> Result<Step> {
        if merged_into(l, r) {
            // Merged already; the answer was lost (`r` came from a replica
            // that has not applied the merge yet).
            self.forget_range(right, r.generation)?;
            return Ok(Step::Merged);
        }
        let freeze_index = match r.frozen {
            Some(index) => index,
            None => {
                if !l.colocated_with(r) {
                    return self.colocate((right, r), (left, l));
                }
                let deadline = Instant::now() + self.timeout;
                match self.propose_until(right, &Command::Freeze, deadline)? {
                    Reply::Frozen(index) => index,
                    Reply::MergeRefused(why) => {
                        tracing::debug!(right, why, "freeze refused");
                        return Ok(Step::Working);
                    }
                    other => return Err(other.unexpected("a freeze")),
                }
            }
        };
        // Frozen for good: R's replicas no longer move — as a replica
        // that applied the freeze lists them. L's must be among them.
        let r = self.frozen_info(right, freeze_index)?;
        let l = self.merge_info_from_leader(left)?;
        if merged_into(&l, &r) {
            self.forget_range(right, r.generation)?;
            return Ok(Step::Merged);
        }
        if l.frozen.is_some() || l.bounds.end.as_ref() != Some(&r.bounds.start) {
            // L is being merged itself, or split: the next rounds sort
            // that out first.
            return Ok(Step::Working);
        }
        let members =
            |i: &MergeInfo| -> Vec<u64> { i.voters.iter().chain(&i.learners).copied().collect() };
        let (theirs, ours) = (members(&r), members(&l));
        if l.joint || !l.learners.iter().all(|n| theirs.contains(n)) {
            return self.colocate((left, &l), (right, &r));
        }
        if let Some(&missing) = l.voters.iter().find(|n| !theirs.contains(n)) {
            // A replica of L moved or repaired onto a node without one of
            // R: R gets a learner there (a frozen range may gain replicas).
            tracing::debug!(
                right,
                to = missing,
                "merge: a learner of the frozen range next to the neighbour's"
            );
            self.on_leader(
                right,
                Request::Relocate {
                    range: right,
                    from: 0,
                    to: missing,
                },
            )?;
            return Ok(Step::Working);
        }
        if !self.wait_applied(right, &ours, freeze_index)? {
            return Ok(Step::Working);
        }
        let command = Command::Merge(MergeRequest {
            right,
            right_start: r.bounds.start.clone(),
            freeze_index,
            left_generation: l.generation,
            voters: l.voters.clone(),
            learners: l.learners.clone(),
        });
        match self.propose_until(left, &command, Instant::now() + self.timeout)? {
            Reply::Merged => {
                tracing::info!(left, right, "merged ranges");
                self.forget_range(right, r.generation)?;
                Ok(Step::Merged)
            }
            // L changed since it was looked at (or merged R already):
            // the next round looks again. R stays frozen (module docs).
            Reply::MergeRefused(why) => {
                tracing::debug!(left, right, why, "merge refused; trying again");
                Ok(Step::Working)
            }
            other => Err(other.unexpected("a merge")),
        }
    }

    /// Takes one step of bringing the replicas of `moving` (described by
    /// `m`) onto the nodes of `other` (described by `o`), the same step
    /// each round until it is done: a learner of `moving` that `other`
    /// does not have is removed (a move given up); so are `other`'s own
    /// learners, unless `other` is frozen and cannot change; then a voter
    /// of `moving` off `other`'s nodes is replaced by a learner added on
    /// one of them, then swapped in.
    fn colocate(
        &self,
        (moving, m): (RangeId, &MergeInfo),
        (other, o): (RangeId, &MergeInfo),
    ) -> Result<Step> {
        if m.joint || o.joint {
            return Ok(Step::Working);
        }
        let theirs = |n: &u64| o.voters.contains(n) || o.learners.contains(n);
        let stray = m
            .learners
            .iter()
            .find(|n| !theirs(n))
            .map(|&n| (moving, n))
            .or_else(|| {
                o.learners
                    .first()
                    .filter(|_| o.frozen.is_none())
                    .map(|&n| (other, n))
            });
        if let Some((range, learner)) = stray {
            tracing::debug!(range, learner, "merge: removing a learner");
            self.on_leader(
                range,
                Request::Relocate {
                    range,
                    from: learner,
                    to: learner,
                },
            )?;
            return Ok(Step::Working);
        }
        let from = m.voters.iter().find(|n| !theirs(n));
        let to = m
            .learners
            .first()
            .or_else(|| o.voters.iter().find(|n| !m.voters.contains(n)));
        if let (Some(&from), Some(&to)) = (from, to) {
            tracing::debug!(
                range = moving,
                from,
                to,
                "merge: moving a replica next to the neighbour's"
            );
            self.on_leader(
                moving,
                Request::Relocate {
                    range: moving,
                    from,
                    to,
                },
            )?;
        }
        Ok(Step::Working)
    }

    /// [`MergeInfo`] of `right` from a replica that has applied its freeze
    /// at `freeze_index` (its membership is final from there).
    fn frozen_info(&self, right: RangeId, freeze_index: u64) -> Result<MergeInfo> {
        let deadline = Instant::now() + CATCH_UP_WAIT;
        loop {
            let info = self.merge_info(right)?;
            if info.frozen == Some(freeze_index) {
                return Ok(info);
            }
            if info.frozen.is_some() || Instant::now() >= deadline {
                return Err(KvError::Unavailable(format!(
                    "range {right} is not seen frozen at {freeze_index}"
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until the replica of `right` on each of `nodes` has applied
    /// `index`; false if one has not within [`CATCH_UP_WAIT`].
    fn wait_applied(&self, right: RangeId, nodes: &[u64], index: u64) -> Result<bool> {
        let deadline = Instant::now() + CATCH_UP_WAIT;
        let me = self.raft.node_id();
        for &node in nodes {
            loop {
                let applied = if node == me {
                    self.applied_index_here(right)?
                } else {
                    match self.ask_node(node, &Request::AppliedIndex { range: right }) {
                        Ok(Answer::Index(applied)) => applied,
                        Ok(other) => return Err(crate::store::unexpected_answer(&other)),
                        Err(e) => {
                            tracing::debug!(node, right, error = %e, "no applied index");
                            0
                        }
                    }
                };
                if applied >= index {
                    break;
                }
                if Instant::now() >= deadline {
                    return Ok(false);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Ok(true)
    }

    /// Deletes the record of `range`, merged away at `generation`.
    pub(crate) fn forget_range(&self, range: RangeId, generation: u64) -> Result<()> {
        let command = Command::DropDescriptor { range, generation };
        // From meta1 and from meta2, whichever held it.
        for meta1 in [true, false] {
            match self.write_directory(range, meta1, &command)? {
                Reply::SettingStored => {}
                other => return Err(other.unexpected("a dropped descriptor")),
            }
        }
        self.directory.write().remove(range);
        Ok(())
    }

    /// [`MergeInfo`] of `range`, from a replica (this node's if it has
    /// one: a replica behind its leader gives an older view, which the
    /// merge checks catch).
    fn merge_info(&self, range: RangeId) -> Result<MergeInfo> {
        if self.is_local(range) {
            return self.merge_info_here(range);
        }
        self.merge_info_asked(range)
    }

    /// [`MergeInfo`] of `range` from its leader if this node knows it (the
    /// newest view), else from any replica.
    pub(crate) fn merge_info_from_leader(&self, range: RangeId) -> Result<MergeInfo> {
        if self.raft.leader(range) == Some(self.raft.node_id()) {
            return self.merge_info_here(range);
        }
        self.merge_info_asked(range)
    }

    /// [`MergeInfo`] of `range` asked of its replicas, the leader first.
    fn merge_info_asked(&self, range: RangeId) -> Result<MergeInfo> {
        match self.ask(&self.record_of(range)?, &Request::MergeInfo { range })? {
            Answer::Reply(bytes) => MergeInfo::decode(&bytes),
            other => Err(crate::store::unexpected_answer(&other)),
        }
    }

    /// [`MergeInfo`] of `range` from this node's replica: its stored apply
    /// state, size and stickiness.
    pub(crate) fn merge_info_here(&self, range: RangeId) -> Result<MergeInfo> {
        let state = self.stored_apply_state(range)?;
        let cs = &state.conf_state;
        let sticky_until = match self.engine.get(&keys::sticky(range))? {
            Some(raw) => u64::from_be_bytes(
                raw.as_slice()
                    .try_into()
                    .map_err(|_| crate::codec::corrupt("sticky boundary"))?,
            ),
            None => 0,
        };
        Ok(MergeInfo {
            bounds: state.bounds.clone(),
            generation: state.generation,
            voters: cs.voters.clone(),
            learners: cs.learners.clone(),
            joint: !cs.voters_outgoing.is_empty() || !cs.learners_next.is_empty(),
            bytes: self.published.bytes(range, self.engine.as_ref())?,
            sticky_until,
            frozen: state.frozen.map(|f| f.index),
        })
    }

    /// The applied index of this node's replica of `range`.
    pub(crate) fn applied_index_here(&self, range: RangeId) -> Result<u64> {
        Ok(self.stored_apply_state(range)?.applied_index)
    }

    /// The apply state this node's replica of `range` last wrote.
    fn stored_apply_state(&self, range: RangeId) -> Result<ApplyState> {
        let key = shoal_replication::keys::apply_state(range);
        match self.engine.get_cf(ColumnFamily::Raft, &key)? {
            Some(raw) => Ok(ApplyState::decode(&raw)?),
            None => Err(KvError::Misrouted(format!(
                "range {range} has no replica on node {}",
                self.raft.node_id()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use shoal_storage::MemoryEngine;

    use super::*;

    fn put(kv: &Arc<Kv>, keys: &[&str]) {
        let txn = kv.begin().unwrap();
        for key in keys {
            txn.put(key.as_bytes().to_vec(), format!("v{key}").into_bytes())
                .unwrap();
        }
        txn.commit().unwrap();
    }

    fn boundaries(kv: &Kv) -> Vec<Vec<u8>> {
        kv.local_ranges().into_iter().map(|r| r.start_key).collect()
    }

    #[test]
    fn small_neighbours_merge_but_sticky_boundaries_stay() {
        let kv = Kv::open(Arc::new(MemoryEngine::new())).unwrap();
        put(&kv, &["a", "f", "m", "p", "t", "x"]);
        // Boundaries at "d" and "m" as by size, at "t" by hand.
        kv.split_sticky(b"d", 0).unwrap();
        let right = kv.split_sticky(b"m", 0).unwrap();
        kv.split_at(b"t").unwrap();
        // A commit record in the range about to be merged away.
        put(&kv, &["n", "o"]);
        let before = kv.last_commit(right).unwrap();
        kv.set_range_bytes(b"d", Some(b"t"), Some(4 << 20), Some(1 << 20))
            .unwrap();
        kv.publish_all();
        let round = kv.merge_round().unwrap();
        assert_eq!(round.merged, vec![right]);
        assert_eq!(
            boundaries(&kv),
            vec![b"".to_vec(), b"d".to_vec(), b"t".to_vec()]
        );
        let (merged, bounds) = kv.route(b"p").unwrap();
        assert_eq!(bounds.start, b"d");
        assert!(kv.last_commit(merged).unwrap() >= before);
        // Every row is there, and the merged range takes writes.
        let txn = kv.begin().unwrap();
        let rows = txn.scan(b"a", b"", 100).unwrap();
        assert_eq!(rows.len(), 8);
        txn.rollback();
        put(&kv, &["q"]);
        assert!(kv.directory.read().get(right).is_none());
        // "d" (the first range ends there, holding the cluster state) and
        // "t" (by hand) stay; nothing else is left to merge.
        kv.publish_all();
        assert!(kv.merge_round().unwrap().merged.is_empty());
        assert_eq!(boundaries(&kv).len(), 3);
    }

    #[test]
    fn a_frozen_range_refuses_writes_until_merged() {
        let kv = Kv::open(Arc::new(MemoryEngine::new())).unwrap();
        kv.split_sticky(b"d", 0).unwrap();
        let right = kv.split_sticky(b"m", 0).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let Reply::Frozen(index) = kv.propose_until(right, &Command::Freeze, deadline).unwrap()
        else {
            panic!("not frozen");
        };
        // Freezing again names the same freeze.
        assert_eq!(
            kv.propose_until(right, &Command::Freeze, deadline).unwrap(),
            Reply::Frozen(index)
        );
        let commit = Command::Commit {
            id: 7,
            read_ts: kv.latest_ts(),
            ts_hint: 0,
            writes: vec![(b"p".to_vec(), Some(b"1".to_vec()))],
            reads: Vec::new(),
            max_ts: None,
            lock_id: 0,
        };
        assert_eq!(
            kv.propose_until(right, &commit, deadline).unwrap(),
            Reply::WrongRange
        );
        // Reads are routed again until the merge.
        assert!(matches!(
            kv.check_snapshot(right, kv.latest_ts()),
            Err(KvError::Misrouted(_))
        ));
        // A frozen range is merged whatever its size, even when its
        // neighbour is too big to take a small one.
        kv.publish_all();
        assert_eq!(kv.merge_round().unwrap().merged, vec![right]);
        put(&kv, &["p"]);
        let txn = kv.begin().unwrap();
        assert_eq!(txn.get(b"p").unwrap(), Some(b"vp".to_vec()));
    }

    #[test]
    fn a_merge_applies_once() {
        let kv = Kv::open(Arc::new(MemoryEngine::new())).unwrap();
        let left = kv.split_sticky(b"d", 0).unwrap();
        let right = kv.split_sticky(b"m", 0).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let Reply::Frozen(freeze_index) =
            kv.propose_until(right, &Command::Freeze, deadline).unwrap()
        else {
            panic!("not frozen");
        };
        // A frozen range may gain a learner, which leaves its generation
        // as the freeze made it (every replica of the left-hand range
        // computes the merged generation from it).
        let frozen_generation = kv.merge_info_here(right).unwrap().generation;
        let add = shoal_replication::replicate_queue::single(
            shoal_replication::ConfChangeType::AddLearnerNode,
            9,
        );
        kv.raft
            .change_membership(right, add, Duration::from_secs(5))
            .unwrap();
        let r = kv.merge_info_here(right).unwrap();
        assert_eq!((r.learners, r.generation), (vec![9], frozen_generation));
        let l = kv.merge_info_here(left).unwrap();
        let merge = |generation| {
            Command::Merge(MergeRequest {
                right,
                right_start: b"m".to_vec(),
                freeze_index,
                left_generation: generation,
                voters: l.voters.clone(),
                learners: l.learners.clone(),
            })
        };
        assert!(matches!(
            kv.propose_until(left, &merge(l.generation - 1), deadline)
                .unwrap(),
            Reply::MergeRefused(_)
        ));
        assert_eq!(
            kv.propose_until(left, &merge(l.generation), deadline)
                .unwrap(),
            Reply::Merged
        );
        // A copy — even one naming the generation after the merge — is
        // refused: the range no longer ends where the merged one began.
        let after = kv.merge_info_here(left).unwrap();
        assert_eq!(after.bounds.end, None);
        assert!(matches!(
            kv.propose_until(left, &merge(after.generation), deadline)
                .unwrap(),
            Reply::MergeRefused(_)
        ));
        assert!(!kv.is_local(right));
    }

    #[test]
    fn merge_info_round_trips() {
        let info = MergeInfo {
            bounds: RangeBounds {
                start: b"a".to_vec(),
                end: Some(b"m".to_vec()),
            },
            generation: 7,
            voters: vec![1, 2, 3],
            learners: vec![4],
            joint: false,
            bytes: 1 << 20,
            sticky_until: u64::MAX,
            frozen: Some(40),
        };
        assert_eq!(MergeInfo::decode(&info.encode()).unwrap(), info);
        assert!(MergeInfo::decode(&info.encode()[..10]).is_err());
        let mut other = info.clone();
        other.voters = vec![3, 2, 1];
        assert!(info.colocated_with(&other));
        other.voters = vec![3, 2, 5];
        assert!(!info.colocated_with(&other));
    }
}
