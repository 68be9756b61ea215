//! Moving a range's leadership or one of its replicas on request:
//! `ALTER RANGE r RELOCATE LEASE TO n` and `ALTER RANGE r RELOCATE FROM a
//! TO b` from SQL (CockroachDB's statements), for operators and for the
//! chaos suite's leader-transfer and replica-move storms.
//!
//! Both are carried out by the rebalancer's own steps (`rebalance.rs`),
//! asked of the range's leader again and again — every [`STEP_PAUSE`] —
//! until the range looks as asked, or until [`RELOCATE_WAIT`] has passed
//! (then the request fails as unavailable; whatever steps were taken
//! stay, each of them a complete membership change):
//!
//! * a leadership move is a Raft leadership transfer to a voter, done
//!   when this node sees `to` lead (its own replica's view, else the
//!   directory's, which the leader's maintenance loop keeps current);
//! * a replica move adds `to` as a learner, hands leadership away if
//!   `from` leads, then promotes `to` and removes `from` in one joint
//!   change; done when `to` votes, `from` holds no replica and the range
//!   is out of its joint configuration.
//!
//! The request is checked against the range's membership as its leader
//! sees it: the range must exist (42704 at the SQL layer), `to` must already vote
//! (lease) or be a live node not voting yet (replica), `from` must vote.
//! The placement loop goes on meanwhile; if it changes the range so the
//! move can no longer finish as asked (it removed `from` itself, or made
//! `to` a voter while `from` stays), the request says so. A moved lease
//! or replica may later be moved back by the rebalancer, as in
//! CockroachDB.

use std::time::{Duration, Instant};

use shoal_replication::RangeId;

use crate::error::{KvError, Result};
use crate::merge::MergeInfo;
use crate::remote::Request;
use crate::store::Kv;

/// How long a relocation waits for the range to look as asked.
pub const RELOCATE_WAIT: Duration = Duration::from_secs(30);

/// The pause between two steps asked of the leader.
const STEP_PAUSE: Duration = Duration::from_millis(100);

/// How long a range that no node knows of is looked for: the directory
/// learns of a range made by a split within the leader's next
/// maintenance round.
const UNKNOWN_AFTER: Duration = Duration::from_secs(3);

impl Kv {
    /// Moves the leadership of `range` to its voter `to` (module docs).
    pub fn relocate_lease(&self, range: RangeId, to: u64) -> Result<()> {
        let deadline = Instant::now() + RELOCATE_WAIT;
        loop {
            let layout = self.layout(range, deadline)?;
            if !layout.voters.contains(&to) {
                return Err(KvError::InvalidRangeRequest(format!(
                    "node {to} holds no voting replica of range {range}"
                )));
            }
            if self.leader_seen(range) == Some(to) {
                return Ok(());
            }
            if let Err(e) = self.on_leader(range, Request::TransferLease { range, to }) {
                tracing::debug!(range, to, error = %e, "leadership transfer step failed");
            }
            if Instant::now() >= deadline {
                return Err(KvError::Unavailable(format!(
                    "the leadership of range {range} did not move to node {to} within {} s",
                    RELOCATE_WAIT.as_secs()
                )));
            }
            std::thread::sleep(STEP_PAUSE);
        }
    }

    /// Moves the replica of `range` on node `from` to node `to` (module
    /// docs).
    pub fn relocate_replica(&self, range: RangeId, from: u64, to: u64) -> Result<()> {
        if from == to {
            return Err(KvError::InvalidRangeRequest(format!(
                "a replica cannot move from node {from} to itself"
            )));
        }
        let (live, _) = self.node_verdicts()?;
        if !live.contains(&to) {
            return Err(KvError::InvalidRangeRequest(format!(
                "node {to} is not a live member of the cluster"
            )));
        }
        let deadline = Instant::now() + RELOCATE_WAIT;
        let mut first = true;
        loop {
            let layout = self.layout(range, deadline)?;
            if layout.frozen.is_some() {
                return Err(KvError::InvalidRangeRequest(format!(
                    "range {range} is being merged into its neighbour"
                )));
            }
            let (from_votes, to_votes) =
                (layout.voters.contains(&from), layout.voters.contains(&to));
            let from_holds = from_votes || layout.learners.contains(&from);
            if first && !from_votes {
                return Err(KvError::InvalidRangeRequest(format!(
                    "node {from} holds no voting replica of range {range}"
                )));
            }
            if first && to_votes {
                return Err(KvError::InvalidRangeRequest(format!(
                    "node {to} already holds a voting replica of range {range}"
                )));
            }
            if to_votes && !from_holds && !layout.joint {
                return Ok(());
            }
            if !layout.joint && (!from_votes && !to_votes || from_votes && to_votes) {
                return Err(KvError::InvalidRangeRequest(format!(
                    "range {range} changed while its replica moved from node {from} to node \
                     {to}: voters now {:?}",
                    layout.voters
                )));
            }
            first = false;
            if let Err(e) = self.on_leader(range, Request::Relocate { range, from, to }) {
                tracing::debug!(range, from, to, error = %e, "replica move step failed");
            }
            if Instant::now() >= deadline {
                return Err(KvError::Unavailable(format!(
                    "the replica of range {range} did not move from node {from} to node {to} \
                     within {} s",
                    RELOCATE_WAIT.as_secs()
                )));
            }
            std::thread::sleep(STEP_PAUSE);
        }
    }

    /// The membership of `range` as its leader (else a replica) has it.
    /// A range just made by a split may not be in the directory yet: one
    /// that is neither there nor here after [`UNKNOWN_AFTER`] does not
    /// exist; one no replica answers for is retried until `deadline`.
    fn layout(&self, range: RangeId, deadline: Instant) -> Result<MergeInfo> {
        let unknown_after = Instant::now() + UNKNOWN_AFTER;
        loop {
            self.reload_directory();
            let known = self.is_local(range) || self.directory.read().get(range).is_some();
            let retry = match known {
                false if Instant::now() >= unknown_after => {
                    return Err(KvError::UnknownRange(range));
                }
                false => None,
                true => match self.merge_info_from_leader(range) {
                    Ok(layout) => return Ok(layout),
                    Err(e @ (KvError::Misrouted(_) | KvError::Unavailable(_))) => Some(e),
                    Err(e) => return Err(e),
                },
            };
            if let Some(e) = retry
                && Instant::now() >= deadline
            {
                return Err(e);
            }
            std::thread::sleep(STEP_PAUSE);
        }
    }

    /// Who leads `range` as this node sees it: its own replica's view if
    /// it holds one, else the directory's.
    fn leader_seen(&self, range: RangeId) -> Option<u64> {
        if self.is_local(range) {
            return self.raft.leader(range);
        }
        self.reload_directory();
        self.directory
            .read()
            .get(range)
            .map(|r| r.leader)
            .filter(|&leader| leader != 0)
    }
}
