//! [`Peer`]: one replica — a raft-rs `RawNode` plus what the driver tracks
//! around it: proposals waiting for their entry to apply, reads waiting for
//! their read index, and when a snapshot was last sent to whom.
//!
//! # Proposals
//!
//! Any replica may propose: a follower's proposal is forwarded to the
//! leader by raft-rs. Every entry's data starts with a header naming the
//! proposing node and its token ([`ProposalHeader`]), so whichever replica
//! proposed recognizes its own command when it applies the entry, and
//! reports the reply its own state machine computed — identical everywhere,
//! because state machines are deterministic.
//!
//! A leader also knows the slot its proposal went to: the last log index
//! after the append. If the entry applied at that index is not its own
//! (another header, or none), a new leader overwrote the slot and the
//! command certainly never ran: the proposal is reported *dropped* (safe to
//! retry). A follower cannot know that; its owner times the proposal out
//! and must treat the outcome as unknown. Neither can a replica whose slot
//! a snapshot replaced: those slots are forgotten, not reported.
//!
//! # Reads (ReadIndex)
//!
//! A linearizable read needs the leader to confirm, with a quorum, that it
//! is still the leader *after* the read arrived; the commit index at that
//! moment is the read index, and the read may be served once the local
//! state machine has applied up to it. raft-rs does the quorum part
//! (`read_index`, answered by heartbeats). Reads are batched: every read
//! that arrives before the next round shares one request. A leader that has
//! not committed an entry of its own term cannot know the commit index yet,
//! so reads wait until it has (raft-rs would silently drop them).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use protobuf::Message as _;
use raft::prelude::{ConfChange, ConfChangeV2, ConfState, Entry, EntryType};
use raft::{RawNode, StateRole};
use shoal_storage::WriteBatch;

use crate::error::{ReplicationError, Result};
use crate::peer_storage::PeerStorage;
use crate::{Event, NodeId, RangeId, StateMachine, Token};

/// The reply to a membership change every replica rejected.
pub(crate) const CONF_CHANGE_REJECTED: &[u8] = b"rejected";

/// The bytes every entry's data starts with: who proposed it, and their
/// token. 16 bytes: node id then token, both big-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProposalHeader {
    pub(crate) node: NodeId,
    pub(crate) token: Token,
}

impl ProposalHeader {
    const LEN: usize = 16;

    pub(crate) fn wrap(self, command: Vec<u8>) -> Vec<u8> {
        let mut data = Vec::with_capacity(Self::LEN + command.len());
        data.extend_from_slice(&self.node.to_be_bytes());
        data.extend_from_slice(&self.token.to_be_bytes());
        data.extend_from_slice(&command);
        data
    }

    pub(crate) fn unwrap(data: &[u8]) -> Result<(ProposalHeader, &[u8])> {
        let corrupt = || ReplicationError::Corrupt("entry shorter than its header".to_string());
        let (node, rest) = data.split_first_chunk::<8>().ok_or_else(corrupt)?;
        let (token, command) = rest.split_first_chunk::<8>().ok_or_else(corrupt)?;
        Ok((
            ProposalHeader {
                node: u64::from_be_bytes(*node),
                token: u64::from_be_bytes(*token),
            },
            command,
        ))
    }
}

/// One replica of a range on this node. See the module documentation.
pub(crate) struct Peer {
    pub(crate) raw: RawNode<PeerStorage>,
    /// Tokens of this node's proposals not yet applied.
    proposals: BTreeSet<Token>,
    /// Slots of the proposals made while leader: log index → token.
    slots: BTreeMap<u64, Token>,
    /// Reads not yet handed to raft-rs.
    waiting_reads: Vec<Token>,
    /// Read requests in flight, by context id.
    inflight_reads: BTreeMap<u64, Vec<Token>>,
    /// Reads whose read index is known, waiting for apply to reach it.
    indexed_reads: VecDeque<(u64, Vec<Token>)>,
    /// Read contexts are this node's id and a counter that starts at random,
    /// so they are unique across replicas and restarts (raft-rs merges
    /// requests with equal contexts and counts acknowledgements by context).
    next_read_ctx: u64,
    /// Leader last reported to the owner.
    pub(crate) reported_leader: Option<NodeId>,
    /// Term last seen by the round loop.
    pub(crate) reported_term: u64,
    /// Follower → tick when a snapshot was sent to it.
    pub(crate) snapshots_sent: BTreeMap<NodeId, u64>,
    /// Snapshots sent since the driver last collected the count.
    pub(crate) snapshot_count: u64,
}

impl Peer {
    pub(crate) fn new(raw: RawNode<PeerStorage>) -> Peer {
        Peer {
            raw,
            proposals: BTreeSet::new(),
            slots: BTreeMap::new(),
            waiting_reads: Vec::new(),
            inflight_reads: BTreeMap::new(),
            indexed_reads: VecDeque::new(),
            next_read_ctx: rand::random::<u64>() >> 1,
            reported_leader: None,
            reported_term: 0,
            snapshots_sent: BTreeMap::new(),
            snapshot_count: 0,
        }
    }

    pub(crate) fn range(&self) -> RangeId {
        self.raw.store().range()
    }

    pub(crate) fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// The leader this replica knows of.
    pub(crate) fn leader(&self) -> Option<NodeId> {
        let id = self.raw.raft.leader_id;
        (id != raft::INVALID_ID).then_some(id)
    }

    fn not_leader(&self) -> ReplicationError {
        ReplicationError::NotLeader {
            range: self.range(),
            leader: self.leader().filter(|&l| l != self.raw.raft.id),
        }
    }

    /// Proposes `command` (from any replica; a follower forwards it to the
    /// leader); the outcome arrives as an event for `token`.
    pub(crate) fn propose(&mut self, token: Token, command: Vec<u8>) -> Result<()> {
        let header = ProposalHeader {
            node: self.raw.raft.id,
            token,
        };
        self.propose_with(token, |raw| raw.propose(Vec::new(), header.wrap(command)))
    }

    /// Proposes a membership change (the leader only: raft-rs does not
    /// forward them). The entry carries the header in its context.
    pub(crate) fn propose_conf_change(&mut self, token: Token, change: ConfChangeV2) -> Result<()> {
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        let header = ProposalHeader {
            node: self.raw.raft.id,
            token,
        };
        self.propose_with(token, |raw| {
            raw.propose_conf_change(header.wrap(Vec::new()), change)
        })
    }

    fn propose_with(
        &mut self,
        token: Token,
        propose: impl FnOnce(&mut RawNode<PeerStorage>) -> raft::Result<()>,
    ) -> Result<()> {
        if self.leader().is_none() {
            return Err(self.not_leader());
        }
        let leading = self.is_leader();
        let before = self.raw.raft.raft_log.last_index();
        propose(&mut self.raw).map_err(|_| self.not_leader())?;
        if leading {
            let index = self.raw.raft.raft_log.last_index();
            if index != before + 1 {
                return Err(self.not_leader());
            }
            self.slots.insert(index, token);
        }
        self.proposals.insert(token);
        Ok(())
    }

    /// Forgets proposal `token` (its owner gave up waiting); true if it was
    /// still pending.
    pub(crate) fn forget(&mut self, token: Token) -> bool {
        self.slots.retain(|_, t| *t != token);
        self.waiting_reads.retain(|&t| t != token);
        for tokens in self.inflight_reads.values_mut() {
            tokens.retain(|&t| t != token);
        }
        self.inflight_reads.retain(|_, tokens| !tokens.is_empty());
        for (_, tokens) in self.indexed_reads.iter_mut() {
            tokens.retain(|&t| t != token);
        }
        self.proposals.remove(&token)
    }

    /// Queues a linearizable read; [`Event::ReadReady`] says when local
    /// state may serve it.
    pub(crate) fn read(&mut self, token: Token) -> Result<()> {
        if self.leader().is_none() {
            return Err(self.not_leader());
        }
        self.waiting_reads.push(token);
        Ok(())
    }

    /// Hands the waiting reads to raft-rs as one request, once the leader
    /// can answer it. A follower's request is forwarded to the leader, which
    /// answers with its read index; the follower then serves the read from
    /// its own state once it has applied that far.
    pub(crate) fn issue_reads(&mut self) {
        if self.waiting_reads.is_empty()
            || (self.is_leader() && !self.raw.raft.commit_to_current_term())
        {
            return;
        }
        let ctx = self.next_read_ctx;
        self.next_read_ctx = self.next_read_ctx.wrapping_add(1);
        self.inflight_reads
            .insert(ctx, std::mem::take(&mut self.waiting_reads));
        let mut bytes = self.raw.raft.id.to_be_bytes().to_vec();
        bytes.extend_from_slice(&ctx.to_be_bytes());
        self.raw.read_index(bytes);
    }

    /// Records the read index raft-rs confirmed for a request.
    pub(crate) fn on_read_state(&mut self, ctx: &[u8], index: u64) {
        let Some((node, counter)) = ctx.split_first_chunk::<8>() else {
            return;
        };
        if u64::from_be_bytes(*node) != self.raw.raft.id {
            return;
        }
        let Some(ctx) = <[u8; 8]>::try_from(counter).ok().map(u64::from_be_bytes) else {
            return;
        };
        if let Some(tokens) = self.inflight_reads.remove(&ctx) {
            self.indexed_reads.push_back((index, tokens));
        }
    }

    /// Releases the reads whose index has been applied.
    pub(crate) fn release_reads(&mut self, events: &mut Vec<Event>) {
        let applied = self.raw.store().apply_state().applied_index;
        let range = self.range();
        while self
            .indexed_reads
            .front()
            .is_some_and(|(index, _)| *index <= applied)
        {
            if let Some((_, tokens)) = self.indexed_reads.pop_front() {
                events.extend(
                    tokens
                        .into_iter()
                        .map(|token| Event::ReadReady { token, range }),
                );
            }
        }
    }

    /// Fails every read not yet released: the leader this replica relied
    /// on changed, so the reads' answers may never come.
    pub(crate) fn fail_reads(&mut self, events: &mut Vec<Event>) {
        let error = self.not_leader();
        let tokens = self
            .waiting_reads
            .drain(..)
            .chain(
                std::mem::take(&mut self.inflight_reads)
                    .into_values()
                    .flatten(),
            )
            .chain(self.indexed_reads.drain(..).flat_map(|(_, t)| t));
        events.extend(tokens.map(|token| Event::Failed {
            token,
            error: error.clone(),
        }));
    }

    /// Applies committed entries in order: each entry's effects and the new
    /// applied index go to the engine in one (unsynced) batch.
    pub(crate) fn apply_committed(
        &mut self,
        entries: Vec<Entry>,
        state_machine: &mut dyn StateMachine,
        events: &mut Vec<Event>,
    ) -> Result<()> {
        let range = self.range();
        for entry in entries {
            let index = entry.index;
            if index <= self.raw.store().apply_state().applied_index {
                continue;
            }
            let mut batch = WriteBatch::new();
            let mut conf_state: Option<ConfState> = None;
            let mut reply = Vec::new();
            let mut header = None;
            match entry.get_entry_type() {
                EntryType::EntryNormal => {
                    // Empty entries are appended by new leaders (and replace
                    // conf changes raft-rs refused).
                    if !entry.get_data().is_empty() {
                        let Ok((h, command)) = ProposalHeader::unwrap(entry.get_data()) else {
                            // The same on every replica: skip it, never stop.
                            tracing::warn!(range, index, "skipping an entry without a header");
                            self.skip_entry(index, events)?;
                            continue;
                        };
                        header = Some(h);
                        let engine = self.raw.store().engine().clone();
                        reply = state_machine.apply(
                            range,
                            index,
                            command,
                            engine.as_ref(),
                            &mut batch,
                        )?;
                    }
                }
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                    header = ProposalHeader::unwrap(entry.get_context())
                        .ok()
                        .map(|(h, _)| h);
                    // A change raft-rs or the decoder rejects is rejected the
                    // same way on every replica: a no-op, never a stop.
                    match self.apply_conf_change(&entry) {
                        Ok(cs) => conf_state = Some(cs),
                        Err(e) => {
                            tracing::warn!(range, index, error = %e, "rejected a membership change");
                            reply = CONF_CHANGE_REJECTED.to_vec();
                        }
                    }
                }
            }
            if let Some(cs) = &conf_state {
                tracing::info!(range, index, voters = ?cs.voters, learners = ?cs.learners, "membership changed");
            }
            let store = self.raw.mut_store();
            store.set_applied(index, conf_state, &mut batch)?;
            store.engine().write(batch, false)?;
            state_machine.applied(range, index);
            let own = header.filter(|h| h.node == self.raw.raft.id);
            self.resolve_proposals(index, own.map(|h| (h.token, reply)), events);
        }
        Ok(())
    }

    /// Records a skipped entry as applied.
    fn skip_entry(&mut self, index: u64, events: &mut Vec<Event>) -> Result<()> {
        let mut batch = WriteBatch::new();
        let store = self.raw.mut_store();
        store.set_applied(index, None, &mut batch)?;
        store.engine().write(batch, false)?;
        self.resolve_proposals(index, None, events);
        Ok(())
    }

    fn apply_conf_change(&mut self, entry: &Entry) -> Result<ConfState> {
        let corrupt =
            |e: protobuf::ProtobufError| ReplicationError::Corrupt(format!("conf change: {e}"));
        if entry.get_entry_type() == EntryType::EntryConfChange {
            let change = ConfChange::parse_from_bytes(entry.get_data()).map_err(corrupt)?;
            Ok(self.raw.apply_conf_change(&change)?)
        } else {
            let change = ConfChangeV2::parse_from_bytes(entry.get_data()).map_err(corrupt)?;
            Ok(self.raw.apply_conf_change(&change)?)
        }
    }

    /// A snapshot replaced the log up to `index`: this replica can no
    /// longer see whether its own proposals at or below it ran, so their
    /// slots are forgotten and the proposals left to their owners' timeouts
    /// (an unknown outcome, never a wrong "dropped").
    pub(crate) fn on_snapshot_installed(&mut self, index: u64) {
        self.slots.retain(|&slot, _| slot > index);
    }

    /// Resolves proposals now that entry `(index, term)` is applied: this
    /// node's own command (if it is one) is applied; a slot this node filled
    /// as leader at or below `index` that did not end up holding its entry
    /// was overwritten, so that proposal is dropped.
    fn resolve_proposals(
        &mut self,
        index: u64,
        own: Option<(Token, Vec<u8>)>,
        events: &mut Vec<Event>,
    ) {
        let range = self.range();
        if let Some((token, reply)) = own
            && self.proposals.remove(&token)
        {
            events.push(Event::Applied { token, reply });
        }
        while let Some((&slot, &token)) = self.slots.first_key_value() {
            if slot > index {
                break;
            }
            self.slots.remove(&slot);
            // Our proposal was not (or no longer) the entry at its slot: a
            // new leader overwrote it, or raft-rs refused a conf change and
            // left an empty entry in its place. Either way it never ran.
            if self.proposals.remove(&token) {
                events.push(Event::Failed {
                    token,
                    error: ReplicationError::Dropped(range),
                });
            }
        }
    }
}
