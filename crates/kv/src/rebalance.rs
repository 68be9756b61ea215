//! Carrying out the rebalancer's moves.
//!
//! The placement loop runs on one node — the leader of the first range, so
//! exactly one at a time — every round: it reads the directory, plans with
//! [`shoal_placement::rebalance::plan`] over the live nodes, and asks each
//! moved range's leader (itself, or another node through `remote.rs`) to
//! take **one step** of its move. Steps are decided from the range's
//! actual membership, not the plan's (possibly stale) view, so asking
//! twice is harmless and a move interrupted by a leader change is resumed
//! by the next round:
//!
//! 1. `to` holds no replica: it is added as a **learner** (it receives a
//!    snapshot without counting towards the quorum).
//! 2. `to` is a learner that has caught up: if `from` is the leader, it
//!    first hands its leadership to another voter (the new leader takes
//!    the next step); otherwise one joint change promotes `to` and removes
//!    `from`, so the range never has fewer voters than before.
//! 3. Otherwise (the learner is catching up, a joint configuration is
//!    being left) nothing: the next round looks again.
//!
//! A step from a learner to itself gives a move up: the learner is
//! removed (the merge driver clears a range's stray learners this way); a
//! step from node 0 only adds a learner (the merge driver's way of placing
//! a frozen range next to its neighbour).
//!
//! A leadership move is a Raft leadership transfer to another voter.

use shoal_placement::rebalance::{Move, RangeReplicas, plan};
use shoal_replication::replicate_queue::single;
use shoal_replication::{ConfChangeType, RangeId};

use crate::error::{KvError, Result};
use crate::remote::{Answer, Request};
use crate::store::Kv;

impl Kv {
    /// One round of the placement loop (module docs); call it only on the
    /// leader of the first range. `target` gives each range's voter count.
    /// Returns the moves asked for.
    pub fn rebalance_round(
        &self,
        max_moves: usize,
        target: impl Fn(RangeId) -> usize,
    ) -> Result<Vec<Move>> {
        self.reload_directory();
        let (live, _) = self.node_verdicts()?;
        let ranges: Vec<RangeReplicas> = self
            .directory
            .read()
            .records()
            .iter()
            .map(|r| RangeReplicas {
                range: r.range,
                voters: r.voters.clone(),
                learners: r.learners.clone(),
                leader: (r.leader != 0).then_some(r.leader),
                target: target(r.range),
            })
            .collect();
        let moves = plan(&ranges, &live, max_moves);
        for m in &moves {
            let outcome = match *m {
                Move::Replica { range, from, to } => {
                    self.on_leader(range, Request::Relocate { range, from, to })
                }
                Move::Lease { range, to, .. } => {
                    self.on_leader(range, Request::TransferLease { range, to })
                }
            };
            if let Err(e) = outcome {
                tracing::debug!(?m, error = %e, "rebalancing step failed");
            }
        }
        Ok(moves)
    }

    /// Runs `request` on the leader of `range`: here if this node leads
    /// it, else on the node the directory names.
    pub(crate) fn on_leader(&self, range: RangeId, request: Request) -> Result<()> {
        if self.raft.leader(range) == Some(self.raft.node_id()) {
            return self.admin(request);
        }
        match self.ask(&self.record_of(range)?, &request)? {
            Answer::Done => Ok(()),
            other => Err(crate::store::unexpected_answer(&other)),
        }
    }

    /// Carries out a rebalancing request on the range's leader (this
    /// node): one step of a replica move, or a leadership transfer.
    pub(crate) fn admin(&self, request: Request) -> Result<()> {
        match request {
            Request::Relocate { range, from, to } => self.relocate_step(range, from, to),
            Request::TransferLease { range, to } => {
                match self.raft.inspect(move |d| d.transfer_leader(range, to))? {
                    Ok(()) => Ok(()),
                    // Led elsewhere now: the asking node tries another.
                    Err(shoal_replication::ReplicationError::NotLeader { .. }) => {
                        Err(KvError::Misrouted(format!(
                            "node {} no longer leads range {range}",
                            self.raft.node_id()
                        )))
                    }
                    Err(e) => Err(e.into()),
                }
            }
            _ => Err(KvError::Remote {
                node: self.raft.node_id(),
                message: "not a rebalancing request".to_string(),
            }),
        }
    }

    /// One step of moving `range`'s replica from `from` to `to` (module
    /// docs).
    fn relocate_step(&self, range: RangeId, from: u64, to: u64) -> Result<()> {
        let me = self.raft.node_id();
        let view = self
            .raft
            .inspect(move |d| d.is_leader(range).then(|| d.range_view(range)).flatten())?;
        let Some(view) = view else {
            return Err(KvError::Misrouted(format!(
                "node {me} does not lead range {range}"
            )));
        };
        let cs = &view.conf_state;
        if !cs.voters_outgoing.is_empty() || !cs.learners_next.is_empty() {
            tracing::debug!(range, "rebalancing: leaving a joint configuration first");
            return Ok(());
        }
        let timeout = self.timeout;
        if from == 0 {
            // Only a learner wanted (a frozen range keeps its replicas;
            // `merge.rs`).
            if cs.voters.contains(&to) || cs.learners.contains(&to) {
                return Ok(());
            }
            tracing::info!(range, to, "rebalancing: adding a learner");
            let change = single(ConfChangeType::AddLearnerNode, to);
            return Ok(self.raft.change_membership(range, change, timeout)?);
        }
        if from == to && cs.learners.contains(&from) {
            // A move given up (`merge.rs`): the learner goes.
            tracing::info!(range, learner = from, "rebalancing: removing a learner");
            let change = single(ConfChangeType::RemoveNode, from);
            return Ok(self.raft.change_membership(range, change, timeout)?);
        }
        if !cs.voters.contains(&from) {
            return Ok(());
        }
        if !cs.voters.contains(&to) && !cs.learners.contains(&to) {
            if !cs.learners.is_empty() {
                // Another move (or the replicate queue) is in flight.
                return Ok(());
            }
            tracing::info!(range, to, "rebalancing: adding a learner");
            let change = single(ConfChangeType::AddLearnerNode, to);
            return Ok(self.raft.change_membership(range, change, timeout)?);
        }
        if !cs.learners.contains(&to) {
            return Ok(());
        }
        let caught_up = view
            .matched
            .iter()
            .any(|&(node, matched)| node == to && matched >= view.commit);
        if !caught_up {
            tracing::debug!(range, to, matched = ?view.matched, commit = view.commit, "rebalancing: the learner is catching up");
            return Ok(());
        }
        let caught_up_voter = |v: u64| {
            view.matched
                .iter()
                .any(|&(node, matched)| node == v && matched >= view.commit)
        };
        if from == me {
            if let Some(&heir) = cs.voters.iter().find(|&&v| v != me && caught_up_voter(v)) {
                tracing::info!(
                    range,
                    to = heir,
                    "rebalancing: handing leadership over first"
                );
                self.raft
                    .inspect(move |d| d.transfer_leader(range, heir))??;
            }
            return Ok(());
        }
        tracing::info!(range, from, to, "rebalancing: replacing a voter");
        let mut change = single(ConfChangeType::AddNode, to);
        change
            .mut_changes()
            .extend(single(ConfChangeType::RemoveNode, from).take_changes());
        Ok(self.raft.change_membership(range, change, timeout)?)
    }
}
