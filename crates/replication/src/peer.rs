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
//! (`read_index`, answered by heartbeats); the apply side releases the read
//! when it gets there (at once if it already has). Reads are batched: every read
//! that arrives before the next round shares one request. A leader that has
//! not committed an entry of its own term cannot know the commit index yet,
//! so reads wait until it has (raft-rs would silently drop them).
//! A confirmed request a leader issued also extends its lease, under which
//! readers pass barriers on their own threads without any of this
//! (`lease.rs`).
//!
//! # Timestamp floors
//!
//! Commit timestamps are chosen when a command is applied (the KV layer's
//! state machine), and a reader picks its snapshot timestamp before it
//! reads. For a snapshot to stay fixed, every command applied after the
//! read must get a larger timestamp than the reader's. The leader sees
//! every read (reads carry their timestamp in the ReadIndex request) and
//! appends every command, so it enforces this:
//!
//! * it keeps the largest read timestamp it has registered, and stamps
//!   every command it appends with a **floor** one above it (in the entry
//!   header; a follower's forwarded proposal is stamped when the leader
//!   steps it) — the state machine never picks a timestamp below the floor;
//! * the read index it answers is its *last* log index at registration
//!   rather than its commit index, so entries appended before the read
//!   (stamped with an older floor) are applied before the read is served.
//!
//! A new leader cannot know what its predecessor registered. Readers take
//! timestamps from hybrid clocks that stay within the maximum clock offset
//! of real time, so the new leader starts its floor at its own clock plus
//! that offset — commits right after an election may carry timestamps a
//! little in the future, never ones a finished read could have missed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use raft::prelude::ConfChangeV2;
use raft::{RawNode, StateRole};

use crate::apply::AppliedEntry;
use crate::error::{ReplicationError, Result};
use crate::lease::{LeaseState, ReadLease};
use crate::peer_storage::PeerStorage;
use crate::{Event, NodeId, RangeId, Token};

/// The reply to a membership change every replica rejected.
pub(crate) const CONF_CHANGE_REJECTED: &[u8] = b"rejected";

/// The bytes every entry's data starts with: who proposed it, their
/// token, and the timestamp floor the leader stamped (module docs). 24
/// bytes: node id, token, floor, each big-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProposalHeader {
    pub(crate) node: NodeId,
    pub(crate) token: Token,
    pub(crate) floor: u64,
}

impl ProposalHeader {
    const LEN: usize = 24;
    const FLOOR_AT: usize = 16;

    pub(crate) fn wrap(self, command: Vec<u8>) -> Vec<u8> {
        let mut data = Vec::with_capacity(Self::LEN + command.len());
        data.extend_from_slice(&self.node.to_be_bytes());
        data.extend_from_slice(&self.token.to_be_bytes());
        data.extend_from_slice(&self.floor.to_be_bytes());
        data.extend_from_slice(&command);
        data
    }

    pub(crate) fn unwrap(data: &[u8]) -> Result<(ProposalHeader, &[u8])> {
        let corrupt = || ReplicationError::Corrupt("entry shorter than its header".to_string());
        let (node, rest) = data.split_first_chunk::<8>().ok_or_else(corrupt)?;
        let (token, rest) = rest.split_first_chunk::<8>().ok_or_else(corrupt)?;
        let (floor, command) = rest.split_first_chunk::<8>().ok_or_else(corrupt)?;
        Ok((
            ProposalHeader {
                node: u64::from_be_bytes(*node),
                token: u64::from_be_bytes(*token),
                floor: u64::from_be_bytes(*floor),
            },
            command,
        ))
    }

    /// Raises the floor stamped in entry data to at least `floor`. Data too
    /// short to hold a header is left alone (it fails at apply, as a no-op).
    pub(crate) fn raise_floor(data: &mut [u8], floor: u64) {
        let Some(field) = data.get_mut(Self::FLOOR_AT..Self::LEN) else {
            return;
        };
        let current = <[u8; 8]>::try_from(&*field).map_or(0, u64::from_be_bytes);
        if floor > current {
            field.copy_from_slice(&floor.to_be_bytes());
        }
    }
}

/// A read request's context: the requesting node, a counter, the largest
/// read timestamp of the batch, and — added by the leader when it
/// registers the request — its last log index.
const READ_CTX_LEN: usize = 24;
/// The most lease-extending read requests a leader tracks at once.
const MAX_LEASE_REQUESTS: usize = 1024;
const READ_CTX_WITH_INDEX_LEN: usize = 32;

/// One replica of a range on this node. See the module documentation.
pub(crate) struct Peer {
    pub(crate) raw: RawNode<PeerStorage>,
    /// Tokens of this node's proposals not yet applied.
    proposals: BTreeSet<Token>,
    /// Slots of the proposals made while leader: log index → token.
    slots: BTreeMap<u64, Token>,
    /// Reads not yet handed to raft-rs, with their read timestamps.
    waiting_reads: Vec<(Token, u64)>,
    /// As leader: the largest read timestamp registered and the last
    /// index stamped (module docs), shared with lease readers
    /// (`lease.rs`), and the lease itself.
    pub(crate) lease: Arc<ReadLease>,
    /// How long a confirmed read request lets this replica, as leader,
    /// serve reads alone; `None`: leases are off (`lease.rs`).
    lease_length: Option<Duration>,
    /// Read requests this replica issued as leader while leases are on:
    /// context id → when it was issued, and in which term.
    lease_requests: BTreeMap<u64, (Instant, u64)>,
    /// A reader asked for the lease to be renewed: the next round issues
    /// a read request even if no read waits.
    renewing: bool,
    /// The term whose leadership the floor was initialized for.
    floor_term: u64,
    /// A range created by a split on the node leading the split range:
    /// that leader's floor, valid if this replica wins the range's first
    /// election.
    inherited_floor: Option<u64>,
    /// Read requests in flight, by context id. Once their read index is
    /// known they go to the apply side, which releases them.
    inflight_reads: BTreeMap<u64, Vec<Token>>,
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
    /// Whether the apply side is cutting a snapshot of this range.
    pub(crate) generating: bool,
    /// The tick the generated snapshot arrived, while one is kept.
    pub(crate) generated_at: Option<u64>,
}

impl Peer {
    pub(crate) fn new(raw: RawNode<PeerStorage>, lease_length: Option<Duration>) -> Peer {
        Peer {
            raw,
            proposals: BTreeSet::new(),
            slots: BTreeMap::new(),
            waiting_reads: Vec::new(),
            lease: Arc::default(),
            lease_length,
            lease_requests: BTreeMap::new(),
            renewing: false,
            floor_term: 0,
            inherited_floor: None,
            inflight_reads: BTreeMap::new(),
            next_read_ctx: rand::random::<u64>() >> 1,
            reported_leader: None,
            reported_term: 0,
            snapshots_sent: BTreeMap::new(),
            snapshot_count: 0,
            generating: false,
            generated_at: None,
        }
    }

    /// Turns leases on for this replica (`lease.rs`).
    pub(crate) fn set_lease_length(&mut self, length: Duration) {
        self.lease_length = Some(length);
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

    /// As leader: the floor for a command appended now — above every read
    /// timestamp registered in this term, and above `now + max_offset` as
    /// of the term's start (module docs). 0 on a follower.
    pub(crate) fn leader_floor(&mut self, now_plus_offset: u64) -> u64 {
        let lease = self.lease.clone();
        let mut state = lease.lock();
        self.leader_floor_in(&mut state, now_plus_offset)
    }

    /// [`Peer::leader_floor`], with the shared state already locked.
    fn leader_floor_in(&mut self, state: &mut LeaseState, now_plus_offset: u64) -> u64 {
        if !self.is_leader() {
            return 0;
        }
        let term = self.raw.raft.term;
        if self.floor_term != term {
            self.floor_term = term;
            // In a split-off range's first term no other node can have
            // led it, so every read of its keys was registered with the
            // split range's leader — this node, whose floor it inherited.
            let first_term = term == crate::peer_storage::INITIAL_TERM + 1;
            let start = match self.inherited_floor.take() {
                Some(floor) if first_term => floor,
                _ => now_plus_offset,
            };
            state.max_read_ts = state.max_read_ts.max(start);
        }
        state.max_read_ts.saturating_add(1)
    }

    /// Starts a split-off range's floor from the split range leader's (see
    /// `leader_floor`).
    pub(crate) fn inherit_floor(&mut self, floor: u64) {
        self.inherited_floor = Some(floor);
    }

    /// As leader: registers a read at `read_ts`; returns the index the
    /// read must wait for (the last log index).
    fn register_read(&mut self, read_ts: u64, now_plus_offset: u64) -> u64 {
        let lease = self.lease.clone();
        let mut state = lease.lock();
        self.register_read_in(&mut state, read_ts, now_plus_offset)
    }

    /// [`Peer::register_read`], with the shared state already locked.
    fn register_read_in(
        &mut self,
        state: &mut LeaseState,
        read_ts: u64,
        now_plus_offset: u64,
    ) -> u64 {
        self.leader_floor_in(state, now_plus_offset);
        state.max_read_ts = state.max_read_ts.max(read_ts);
        self.raw.raft.raft_log.last_index()
    }

    /// Steps a message from another node. As leader, forwarded proposals
    /// are stamped with the floor and forwarded reads registered (their
    /// context gets the index to wait for) — under the lease lock, together
    /// with the append, so lease readers are ordered with them (`lease.rs`).
    pub(crate) fn step(
        &mut self,
        mut message: raft::prelude::Message,
        now_plus_offset: u64,
    ) -> raft::Result<()> {
        if !self.is_leader() {
            return self.raw.step(message);
        }
        let lease = self.lease.clone();
        let mut state = lease.lock();
        match message.get_msg_type() {
            raft::prelude::MessageType::MsgPropose => {
                let floor = self.leader_floor_in(&mut state, now_plus_offset);
                for entry in message.entries.iter_mut() {
                    let mut data = std::mem::take(&mut entry.data).to_vec();
                    ProposalHeader::raise_floor(&mut data, floor);
                    entry.data = data.into();
                }
            }
            raft::prelude::MessageType::MsgReadIndex => {
                if let Some(entry) = message.entries.first_mut()
                    && entry.data.len() == READ_CTX_LEN
                {
                    let read_ts = entry.data[16..24].try_into().map_or(0, u64::from_be_bytes);
                    let wait = self.register_read_in(&mut state, read_ts, now_plus_offset);
                    let mut ctx = std::mem::take(&mut entry.data).to_vec();
                    ctx.extend_from_slice(&wait.to_be_bytes());
                    entry.data = ctx.into();
                }
            }
            _ => {}
        }
        let result = self.raw.step(message);
        self.note_appended(&mut state);
        result
    }

    /// After entries may have been appended (with the shared state
    /// locked): lease readers wait for them; a replica that stopped
    /// leading, or started a transfer, ends its lease.
    fn note_appended(&mut self, state: &mut LeaseState) {
        state.last_index = self.raw.raft.raft_log.last_index();
        if !self.may_hold_lease(state) {
            state.end();
        }
    }

    /// Whether this replica may go on holding the lease in `state`: it
    /// leads in the lease's term and is not handing leadership away.
    fn may_hold_lease(&self, state: &LeaseState) -> bool {
        self.is_leader()
            && self.raw.raft.lead_transferee.is_none()
            && state.term() == Some(self.raw.raft.term)
    }

    /// Ends the lease if this replica may no longer hold it (run on every
    /// replica with input, at the start of each round, before any message
    /// of the round leaves: a transfer's `TimeoutNow` never overtakes it).
    /// Also turns a reader's renewal request into a read request.
    pub(crate) fn check_lease(&mut self) {
        let mut state = self.lease.lock();
        if state.term().is_some() && !self.may_hold_lease(&state) {
            state.end();
        }
        drop(state);
        if self.lease.take_renewal() && self.is_leader() {
            self.renewing = true;
        }
    }

    /// Proposes `command` (from any replica; a follower forwards it to the
    /// leader, which stamps its floor); the outcome arrives as an event for
    /// `token`.
    pub(crate) fn propose(
        &mut self,
        token: Token,
        command: Vec<u8>,
        now_plus_offset: u64,
    ) -> Result<()> {
        // Stamped and appended under the lease lock (`lease.rs`).
        let lease = self.lease.clone();
        let mut state = lease.lock();
        let header = ProposalHeader {
            node: self.raw.raft.id,
            token,
            floor: self.leader_floor_in(&mut state, now_plus_offset),
        };
        let result = self.propose_with(token, |raw| raw.propose(Vec::new(), header.wrap(command)));
        self.note_appended(&mut state);
        result
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
            floor: 0,
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
        self.waiting_reads.retain(|&(t, _)| t != token);
        for tokens in self.inflight_reads.values_mut() {
            tokens.retain(|&t| t != token);
        }
        self.inflight_reads.retain(|_, tokens| !tokens.is_empty());
        self.proposals.remove(&token)
    }

    /// Queues a linearizable read at `read_ts` (0: no timestamp to
    /// register); [`Event::ReadReady`] says when local state may serve it.
    pub(crate) fn read(&mut self, token: Token, read_ts: u64) -> Result<()> {
        if self.leader().is_none() {
            return Err(self.not_leader());
        }
        self.waiting_reads.push((token, read_ts));
        Ok(())
    }

    /// Whether reads (or a lease renewal) wait to be handed to raft-rs.
    pub(crate) fn has_waiting_reads(&self) -> bool {
        !self.waiting_reads.is_empty() || self.renewing
    }

    /// Hands the waiting reads to raft-rs as one request, once the leader
    /// can answer it. A follower's request is forwarded to the leader, which
    /// answers with its read index; the follower then serves the read from
    /// its own state once it has applied that far.
    /// A leader registers the request itself (its read timestamp, and the
    /// index to wait for, see *Timestamp floors*).
    pub(crate) fn issue_reads(&mut self, now_plus_offset: u64) {
        self.renewing &= self.is_leader();
        if (self.waiting_reads.is_empty() && !self.renewing)
            || (self.is_leader() && !self.raw.raft.commit_to_current_term())
        {
            return;
        }
        self.renewing = false;
        let ctx = self.next_read_ctx;
        self.next_read_ctx = self.next_read_ctx.wrapping_add(1);
        let reads = std::mem::take(&mut self.waiting_reads);
        let read_ts = reads.iter().map(|&(_, ts)| ts).max().unwrap_or(0);
        self.inflight_reads
            .insert(ctx, reads.into_iter().map(|(token, _)| token).collect());
        let mut bytes = Vec::with_capacity(READ_CTX_WITH_INDEX_LEN);
        bytes.extend_from_slice(&self.raw.raft.id.to_be_bytes());
        bytes.extend_from_slice(&ctx.to_be_bytes());
        bytes.extend_from_slice(&read_ts.to_be_bytes());
        if self.is_leader() {
            let wait = self.register_read(read_ts, now_plus_offset);
            bytes.extend_from_slice(&wait.to_be_bytes());
            if self.lease_length.is_some() {
                // Requests raft-rs never confirms (no quorum) pile up only
                // until the term ends; keep the newest.
                if self.lease_requests.len() >= MAX_LEASE_REQUESTS {
                    self.lease_requests.pop_first();
                }
                // Taken before the request leaves: the quorum that
                // confirms it heard from this leader after this instant.
                self.lease_requests
                    .insert(ctx, (Instant::now(), self.raw.raft.term));
            }
        }
        self.raw.read_index(bytes);
    }

    /// The reads of a request raft-rs confirmed, with the index they wait
    /// for: the larger of the read index and the leader's last index at
    /// registration. A context the leader did not register (a leader that
    /// runs older code) yields no reads: they time out and retry.
    /// A request this replica issued as leader extends its lease.
    pub(crate) fn on_read_state(&mut self, ctx: &[u8], index: u64) -> Option<(u64, Vec<Token>)> {
        if ctx.len() != READ_CTX_WITH_INDEX_LEN {
            return None;
        }
        let field = |at: usize| -> Option<u64> {
            ctx.get(at..at + 8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
        };
        if field(0)? != self.raw.raft.id {
            return None;
        }
        let counter = field(8)?;
        let wait = field(24)?;
        if let Some((issued, term)) = self.lease_requests.remove(&counter) {
            self.extend_lease(issued, term);
        }
        let tokens = self.inflight_reads.remove(&counter)?;
        Some((index.max(wait), tokens))
    }

    /// A quorum confirmed a request issued at `issued` in `term`: the lease
    /// runs from then (`lease.rs`), if this replica still leads in that
    /// term and is not handing leadership away.
    fn extend_lease(&mut self, issued: Instant, term: u64) {
        let Some(length) = self.lease_length else {
            return;
        };
        if !self.is_leader()
            || self.raw.raft.term != term
            || self.raw.raft.lead_transferee.is_some()
        {
            return;
        }
        let lease = self.lease.clone();
        let mut state = lease.lock();
        state.extend(term, issued + length, length);
        state.last_index = self.raw.raft.raft_log.last_index();
    }

    /// Fails every read whose read index is not known yet: the leader this
    /// replica relied on changed, so their answers may never come. (A read
    /// whose index is known stays valid: its leader held a quorum when it
    /// answered.)
    pub(crate) fn fail_reads(&mut self, events: &mut Vec<Event>) {
        let error = self.not_leader();
        self.lease_requests.clear();
        let tokens = self.waiting_reads.drain(..).map(|(token, _)| token).chain(
            std::mem::take(&mut self.inflight_reads)
                .into_values()
                .flatten(),
        );
        events.extend(tokens.map(|token| Event::Failed {
            token,
            error: error.clone(),
        }));
    }

    /// Takes in entries the apply side applied (in log order): membership
    /// changes reach raft-rs, proposals are answered, and the applied index
    /// moves to `applied_index`. Reports about entries a snapshot has since
    /// covered are stale and ignored — including while raft-rs holds a
    /// snapshot not yet installed: it has already reset its membership to
    /// the snapshot's, and an older change applied on top would make this
    /// replica's membership differ from everyone else's.
    pub(crate) fn on_applied(
        &mut self,
        applied_index: u64,
        entries: Vec<AppliedEntry>,
        events: &mut Vec<Event>,
    ) {
        if self.raw.snap().is_some_and(|s| !s.is_empty()) {
            return;
        }
        let range = self.range();
        for entry in entries {
            if entry.index <= self.raw.store().apply_state().applied_index {
                continue;
            }
            let mut conf_state = None;
            if let Some(change) = &entry.conf_change {
                match self.raw.apply_conf_change(change) {
                    Ok(cs) => conf_state = Some(cs),
                    // Both sides apply the same change to the same
                    // configuration; a difference is a bug, logged loudly
                    // rather than crashing the node.
                    Err(e) => {
                        tracing::error!(range, index = entry.index, error = %e, "raft refused a membership change the apply side accepted");
                    }
                }
            }
            if entry.merged.is_some() {
                self.raw.mut_store().note_merge(entry.index);
            }
            if let Some((bounds, generation)) = &entry.layout {
                self.raw
                    .mut_store()
                    .note_layout(bounds.clone(), *generation);
            }
            self.raw.mut_store().note_applied(entry.index, conf_state);
            let own = entry.header.filter(|h| h.node == self.raw.raft.id);
            self.resolve_proposals(entry.index, own.map(|h| (h.token, entry.reply)), events);
        }
        let store = self.raw.mut_store();
        store.note_applied(applied_index, None);
        let applied = store.apply_state().applied_index;
        let log = &self.raw.raft.raft_log;
        if applied > log.applied && applied <= log.committed.min(log.persisted) {
            self.raw.advance_apply_to(applied);
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
