//! [`RaftRunner`]: the thread that owns a node's [`MultiRaft`], and
//! [`RaftHandle`], how everything else talks to it.
//!
//! # The loop
//!
//! One OS thread per node runs: wait for input or the next tick → take
//! every queued input (proposals, reads, messages from other nodes) → tick
//! if due → one `handle_ready` round (one fsync for everything the inputs
//! produced) → hand outgoing messages to the [`Transport`] → answer the
//! waiters of finished requests. Inputs that arrive while a round's fsync
//! is in progress wait in the queue and form the next round together: group
//! commit falls out of the loop's shape.
//!
//! Committed entries are applied on a second thread, the apply thread
//! (`apply.rs`): the Raft thread hands them over at the end of a round and
//! goes on to the next, and the apply thread's reports come back as inputs
//! like any other. Neither thread is on the async runtime, so a slow disk
//! never stalls SQL connections' tasks, and the transport's tasks never
//! wait for it.
//!
//! # Requests and retries ([`RaftHandle`])
//!
//! Callers block with a deadline (they run on blocking-tolerant threads).
//! Every request goes through one loop; what it may retry is its policy:
//!
//! * `propose` (`Retry::Once`): retried only while nothing can have
//!   happened — no leader known (`NotLeader`), or the proposal was
//!   certainly overwritten (`Dropped`). A late answer yields `Ambiguous`.
//! * `propose_idempotent`: for commands the state machine applies at most
//!   once (they carry an id); a late answer — the proposal may have gone to
//!   a leader that died — is met by proposing again every second, so a
//!   failover costs one attempt, not the whole deadline.
//! * `read_barrier`: a linearizable barrier (ReadIndex), retried on any
//!   failure — reads change nothing.
//!
//! No leader for the whole deadline yields `Unavailable`.
//!
//! A storage failure inside the loop stops the thread: continuing could
//! acknowledge a write that is not durable. Every waiter then gets
//! `Stopped`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::time::{Duration, Instant};

use parking_lot::RwLock;

use crate::apply::{AppliedIndexes, ApplyOutput, LocalBounds, Notice};
use crate::error::{ReplicationError, Result};
use crate::lease::Leases;
use crate::multiraft::MultiRaft;
use crate::{ConfChangeV2, Event, NodeId, RaftEnvelope, RangeId, StateMachine, Token, Transport};

/// How a request's outcome is reported back to its caller.
type Reply = SyncSender<Result<Vec<u8>>>;

/// A closure run on the Raft thread with the driver.
type Inspect<S> = Box<dyn FnOnce(&mut MultiRaft<S>) + Send>;

enum Input<S: StateMachine> {
    Propose {
        range: RangeId,
        token: Token,
        command: Vec<u8>,
        reply: Reply,
    },
    Read {
        range: RangeId,
        token: Token,
        read_ts: u64,
        reply: Reply,
    },
    ChangeMembership {
        range: RangeId,
        token: Token,
        change: ConfChangeV2,
        reply: Reply,
    },
    Forget {
        range: RangeId,
        token: Token,
    },
    Messages(Vec<RaftEnvelope>),
    /// The apply side reported something the Raft thread should take in
    /// now rather than at its next round (see `Shared::apply_outputs`).
    ApplyWake,
    Inspect(Inspect<S>),
    Shutdown,
}

/// Callers waiting for their request's outcome, by token. Shared by the
/// Raft thread (which answers most requests) and the apply thread (which
/// answers this node's applied proposals itself, saving a hop).
type Waiters = parking_lot::Mutex<HashMap<Token, Reply>>;

struct Shared {
    thread: parking_lot::Mutex<Option<std::thread::JoinHandle<()>>>,
    waiters: Waiters,
    /// What the apply thread reported, in order, taken in at the start of
    /// every round. Most reports need no haste — the apply thread answers
    /// waiters itself — so they do not wake the Raft thread; a failure, a
    /// membership change or a generated snapshot does (`Input::ApplyWake`).
    apply_outputs: parking_lot::Mutex<Vec<Result<ApplyOutput>>>,
    next_token: AtomicU64,
    leaders: RwLock<HashMap<RangeId, Option<NodeId>>>,
    stopped: AtomicBool,
    bounds: LocalBounds,
    /// The replicas' read leases and applied indexes: a read barrier a
    /// lease covers is passed on the caller's thread (`lease.rs`).
    leases: Leases,
    applied: AppliedIndexes,
    /// Read barriers passed under a lease since the node started.
    lease_reads: AtomicU64,
}

/// Sends requests to a node's Raft thread. Cheap to clone.
pub struct RaftHandle<S: StateMachine> {
    inputs: Sender<Input<S>>,
    shared: Arc<Shared>,
    node: NodeId,
}

impl<S: StateMachine> Clone for RaftHandle<S> {
    fn clone(&self) -> Self {
        RaftHandle {
            inputs: self.inputs.clone(),
            shared: self.shared.clone(),
            node: self.node,
        }
    }
}

impl<S: StateMachine> std::fmt::Debug for RaftHandle<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftHandle")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// Starts Raft threads. See the module documentation.
pub struct RaftRunner;

impl RaftRunner {
    /// Moves `driver` onto a new thread ticking every `tick`, sending
    /// through `transport`. Ranges whose only voter is this node elect
    /// themselves at once.
    pub fn spawn<S: StateMachine + 'static>(
        mut driver: MultiRaft<S>,
        transport: Arc<dyn Transport>,
        tick: Duration,
    ) -> Result<RaftHandle<S>> {
        let node = driver.node_id();
        driver.enable_lease_reads(tick);
        for range in driver.ranges() {
            let alone = driver
                .conf_state(range)
                .is_some_and(|cs| cs.voters == [node] && cs.learners.is_empty());
            if alone {
                driver.campaign(range)?;
            }
        }
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            thread: parking_lot::Mutex::new(None),
            waiters: parking_lot::Mutex::new(HashMap::new()),
            apply_outputs: parking_lot::Mutex::new(Vec::new()),
            // Entries carry (node, token) and may be applied after a
            // restart; a random start keeps this incarnation's tokens from
            // matching an earlier one's.
            next_token: AtomicU64::new(rand::random::<u64>() >> 1),
            leaders: RwLock::new(HashMap::new()),
            stopped: AtomicBool::new(false),
            bounds: driver.local_bounds(),
            leases: driver.leases(),
            applied: driver.applied_indexes(),
            lease_reads: AtomicU64::new(0),
        });
        // The apply thread holds only weak references to `shared`, so the
        // Raft loop can tell when every handle is gone (it then holds the
        // last strong one).
        let reports = tx.clone();
        let report_shared = Arc::downgrade(&shared);
        let answer_shared = Arc::downgrade(&shared);
        let apply_thread = driver.start_apply_thread(
            Box::new(move |output| {
                let urgent = match &output {
                    Err(_) | Ok(ApplyOutput::Generated { .. }) => true,
                    Ok(ApplyOutput::Applied { entries, .. }) => entries
                        .iter()
                        .any(|e| e.conf_change.is_some() || e.split.is_some()),
                };
                let Some(shared) = report_shared.upgrade() else {
                    return;
                };
                shared.apply_outputs.lock().push(output);
                if urgent {
                    let _ = reports.send(Input::ApplyWake);
                }
            }),
            // This node's own proposals and reads are answered as soon as
            // they are applied or released; the Raft thread finds their
            // waiters gone when the report arrives.
            Box::new(move |notice: Notice<'_>| {
                let (token, reply) = match notice {
                    Notice::Applied(entry) => match entry.header {
                        Some(header) if header.node == node => (header.token, entry.reply.clone()),
                        _ => return,
                    },
                    Notice::ReadReady(token) => (token, Vec::new()),
                };
                let Some(shared) = answer_shared.upgrade() else {
                    return;
                };
                let waiter = shared.waiters.lock().remove(&token);
                if let Some(waiter) = waiter {
                    let _ = waiter.try_send(Ok(reply));
                }
            }),
        )?;
        let loop_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("raft-{node}"))
            .spawn(move || {
                run(driver, rx, transport, tick, &loop_shared);
                // The driver is gone, and with it the apply queue: the apply
                // thread finishes what it holds and ends.
                let _ = apply_thread.join();
            })
            .map_err(|e| ReplicationError::Raft(format!("cannot start raft thread: {e}")))?;
        *shared.thread.lock() = Some(thread);
        Ok(RaftHandle {
            inputs: tx,
            shared,
            node,
        })
    }
}

/// Marks the Raft thread stopped however it ends — panics included — so
/// health checks and callers see it.
struct StoppedOnExit<'a>(&'a Shared);

impl Drop for StoppedOnExit<'_> {
    fn drop(&mut self) {
        self.0.stopped.store(true, Ordering::SeqCst);
    }
}

fn run<S: StateMachine>(
    mut driver: MultiRaft<S>,
    inputs: Receiver<Input<S>>,
    transport: Arc<dyn Transport>,
    tick: Duration,
    shared: &Arc<Shared>,
) {
    let _stopped = StoppedOnExit(shared);
    let waiters = &shared.waiters;
    let mut next_tick = Instant::now() + tick;
    let outcome = loop {
        // One round first: it persists and announces whatever opening (a
        // campaign) or the previous inputs produced.
        if let Err(e) = round(&mut driver, transport.as_ref(), waiters, shared) {
            break Err(e);
        }
        let wait = next_tick.saturating_duration_since(Instant::now());
        match inputs.recv_timeout(wait) {
            Ok(input) => {
                let mut go_on = accept(&mut driver, input, waiters);
                while matches!(go_on, Ok(true))
                    && let Ok(input) = inputs.try_recv()
                {
                    go_on = accept(&mut driver, input, waiters);
                }
                match go_on {
                    Ok(true) => {}
                    Ok(false) => break Ok(()),
                    Err(e) => break Err(e),
                }
            }
            // The apply thread holds a sender too, so "every handle is
            // gone" shows as this loop holding the last reference to
            // `shared`.
            Err(RecvTimeoutError::Timeout) if Arc::strong_count(shared) == 1 => break Ok(()),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break Ok(()),
        }
        let now = Instant::now();
        if now >= next_tick {
            driver.tick();
            next_tick += tick;
            if next_tick < now {
                next_tick = now + tick;
            }
        }
    };
    shared.stopped.store(true, Ordering::SeqCst);
    if let Err(e) = outcome {
        tracing::error!(node = driver.node_id(), error = %e, "raft thread stopped on a storage failure");
    }
    for (_, reply) in waiters.lock().drain() {
        let _ = reply.try_send(Err(ReplicationError::Stopped));
    }
}

/// One Raft round: take in the apply side's reports, persist, send,
/// answer.
fn round<S: StateMachine>(
    driver: &mut MultiRaft<S>,
    transport: &dyn Transport,
    waiters: &Waiters,
    shared: &Shared,
) -> Result<()> {
    let outputs = std::mem::take(&mut *shared.apply_outputs.lock());
    for output in outputs {
        driver.on_apply_output(output?)?;
    }
    // Messages that may leave before the round's fsync (a leader's
    // appends) go out before it, so followers persist in parallel.
    driver.handle_ready_with(&mut |to, envelopes| transport.send(to, envelopes))?;
    for (to, envelopes) in driver.take_messages() {
        transport.send(to, envelopes);
    }
    for event in driver.take_events() {
        dispatch(event, waiters, shared);
    }
    Ok(())
}

/// Carries out one input; false means "shut down".
fn accept<S: StateMachine>(
    driver: &mut MultiRaft<S>,
    input: Input<S>,
    waiters: &Waiters,
) -> Result<bool> {
    let submitted = match input {
        Input::Propose {
            range,
            token,
            command,
            reply,
        } => Some((token, reply, driver.propose(range, token, command))),
        Input::Read {
            range,
            token,
            read_ts,
            reply,
        } => Some((token, reply, driver.read(range, token, read_ts))),
        Input::ChangeMembership {
            range,
            token,
            change,
            reply,
        } => Some((token, reply, driver.change_membership(range, token, change))),
        Input::Forget { range, token } => {
            driver.forget(range, token);
            waiters.lock().remove(&token);
            None
        }
        Input::Messages(envelopes) => {
            for envelope in envelopes {
                if let Err(e) = driver.step(envelope) {
                    tracing::debug!(error = %e, "rejected a raft message");
                }
            }
            None
        }
        Input::ApplyWake => None,
        Input::Inspect(inspect) => {
            inspect(driver);
            None
        }
        Input::Shutdown => return Ok(false),
    };
    if let Some((token, reply, outcome)) = submitted {
        match outcome {
            Ok(()) => {
                waiters.lock().insert(token, reply);
            }
            Err(e) => {
                let _ = reply.try_send(Err(e));
            }
        }
    }
    Ok(true)
}

fn dispatch(event: Event, waiters: &Waiters, shared: &Shared) {
    let (token, outcome) = match event {
        Event::Applied { token, reply } => (token, Ok(reply)),
        Event::ReadReady { token, .. } => (token, Ok(Vec::new())),
        Event::Failed { token, error } => (token, Err(error)),
        Event::LeaderChanged { range, leader } => {
            shared.leaders.write().insert(range, leader);
            return;
        }
    };
    let reply = waiters.lock().remove(&token);
    if let Some(reply) = reply {
        let _ = reply.try_send(outcome);
    }
}

/// Pause between attempts when no leader is known.
const RETRY_PAUSE: Duration = Duration::from_millis(25);
/// How long an idempotent proposal waits before proposing again.
const PROPOSE_ATTEMPT: Duration = Duration::from_secs(1);
/// Longest single wait for a read barrier before asking again.
const READ_ATTEMPT: Duration = Duration::from_secs(2);

impl<S: StateMachine> RaftHandle<S> {
    /// The bounds of every initialized replica on this node, kept current
    /// by the apply thread.
    pub fn local_bounds(&self) -> LocalBounds {
        self.shared.bounds.clone()
    }

    /// The node this handle's Raft thread runs on.
    pub fn node_id(&self) -> NodeId {
        self.node
    }

    /// Whether the Raft thread has stopped.
    pub fn is_stopped(&self) -> bool {
        self.shared.stopped.load(Ordering::SeqCst)
    }

    /// The leader of `range` as this node last learned it.
    pub fn leader(&self, range: RangeId) -> Option<NodeId> {
        self.shared.leaders.read().get(&range).copied().flatten()
    }

    fn token(&self) -> Token {
        self.shared.next_token.fetch_add(1, Ordering::Relaxed)
    }

    fn submit(&self, input: Input<S>) -> Result<()> {
        self.inputs
            .send(input)
            .map_err(|_| ReplicationError::Stopped)
    }

    /// Stops the Raft thread and waits for it to finish (it releases the
    /// engine). Requests after this fail with `Stopped`.
    pub fn shutdown(&self) {
        let _ = self.submit(Input::Shutdown);
        let thread = self.shared.thread.lock().take();
        if let Some(thread) = thread
            && thread.thread().id() != std::thread::current().id()
        {
            let _ = thread.join();
        }
    }

    /// Hands messages from another node to the Raft thread.
    pub fn deliver(&self, envelopes: Vec<RaftEnvelope>) {
        let _ = self.submit(Input::Messages(envelopes));
    }

    /// Runs `inspect` on the Raft thread and returns its result.
    pub fn inspect<T: Send + 'static>(
        &self,
        inspect: impl FnOnce(&mut MultiRaft<S>) -> T + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(Input::Inspect(Box::new(move |driver| {
            let _ = tx.send(inspect(driver));
        })))?;
        rx.recv().map_err(|_| ReplicationError::Stopped)
    }

    /// Proposes `command` to `range` and waits (up to `timeout`) for the
    /// state machine's reply. See the module documentation for retries.
    pub fn propose(&self, range: RangeId, command: Vec<u8>, timeout: Duration) -> Result<Vec<u8>> {
        self.request(range, timeout, Retry::Once, |token, reply| Input::Propose {
            range,
            token,
            command: command.clone(),
            reply,
        })
    }

    /// Like [`RaftHandle::propose`], for commands the state machine applies
    /// at most once however often they are proposed (they carry their own
    /// id). A late answer — the proposal may have been forwarded to a
    /// leader that died — is met by proposing again, so a leader change
    /// costs one attempt timeout instead of the whole deadline. Ambiguous
    /// only if no attempt was answered by the deadline.
    pub fn propose_idempotent(
        &self,
        range: RangeId,
        command: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>> {
        let retry = Retry::Idempotent {
            attempt: PROPOSE_ATTEMPT,
        };
        self.request(range, timeout, retry, |token, reply| Input::Propose {
            range,
            token,
            command: command.clone(),
            reply,
        })
    }

    /// Proposes a membership change of `range` (this node must lead it).
    pub fn change_membership(
        &self,
        range: RangeId,
        change: ConfChangeV2,
        timeout: Duration,
    ) -> Result<()> {
        let reply = self.request(range, timeout, Retry::Once, |token, reply| {
            Input::ChangeMembership {
                range,
                token,
                change: change.clone(),
                reply,
            }
        })?;
        if reply == crate::peer::CONF_CHANGE_REJECTED {
            return Err(ReplicationError::Raft(format!(
                "the membership change of range {range} was rejected"
            )));
        }
        Ok(())
    }

    /// Submits the request `make` builds, attempt after attempt as `retry`
    /// allows, until it is answered or `timeout` passes. One loop for every
    /// kind of request; see [`Retry`].
    fn request(
        &self,
        range: RangeId,
        timeout: Duration,
        retry: Retry,
        make: impl Fn(Token, Reply) -> Input<S>,
    ) -> Result<Vec<u8>> {
        let start = Instant::now();
        let deadline = start + timeout;
        let mut maybe_applied = false;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(if maybe_applied {
                    ReplicationError::Ambiguous(range)
                } else {
                    unavailable(range, start)
                });
            }
            let token = self.token();
            let (tx, rx) = mpsc::sync_channel(1);
            self.submit(make(token, tx))?;
            let remaining = deadline - now;
            let wait = match retry {
                Retry::Once => remaining,
                Retry::Idempotent { attempt } | Retry::Read { attempt } => remaining.min(attempt),
            };
            match crate::blocking::wait(|| rx.recv_timeout(wait)) {
                Ok(Ok(reply)) => return Ok(reply),
                Ok(Err(ReplicationError::Stopped)) | Err(RecvTimeoutError::Disconnected) => {
                    return Err(ReplicationError::Stopped);
                }
                // Nothing was proposed, or it certainly never ran.
                Ok(Err(ReplicationError::NotLeader { .. } | ReplicationError::Dropped(_))) => {}
                // A range a split just created: the apply thread has
                // published its bounds, the Raft thread opens its replica
                // when the split's report arrives. Nothing was proposed.
                Ok(Err(ReplicationError::RangeNotFound(r)))
                    if self.shared.bounds.read().contains_key(&r) => {}
                // A read may be asked again whatever went wrong, unless
                // this node has no replica to read.
                Ok(Err(e))
                    if matches!(retry, Retry::Read { .. })
                        && !matches!(e, ReplicationError::RangeNotFound(_)) =>
                {
                    let _ = self.submit(Input::Forget { range, token });
                }
                // An earlier attempt may have been applied: whatever this
                // one says, the outcome is unknown.
                Ok(Err(_)) if maybe_applied => return Err(ReplicationError::Ambiguous(range)),
                Ok(Err(e)) => return Err(e),
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.submit(Input::Forget { range, token });
                    match retry {
                        Retry::Once => return Err(ReplicationError::Ambiguous(range)),
                        Retry::Idempotent { .. } => maybe_applied = true,
                        Retry::Read { .. } => {}
                    }
                    continue;
                }
            }
            crate::blocking::sleep(
                RETRY_PAUSE.min(deadline.saturating_duration_since(Instant::now())),
            );
        }
    }

    /// Waits until this node's replica of `range` has applied every write
    /// acknowledged anywhere before the call (a ReadIndex barrier).
    pub fn read_barrier(&self, range: RangeId, timeout: Duration) -> Result<()> {
        self.read_barrier_at(range, 0, timeout)
    }

    /// A read barrier that also registers `read_ts` with the leader: every
    /// command applied after the barrier returns gets a timestamp floor
    /// above it (`peer.rs`, *Timestamp floors*).
    pub fn read_barrier_at(&self, range: RangeId, read_ts: u64, timeout: Duration) -> Result<()> {
        if self.lease_read(range, read_ts) {
            return Ok(());
        }
        let retry = Retry::Read {
            attempt: READ_ATTEMPT,
        };
        self.request(range, timeout, retry, |token, reply| Input::Read {
            range,
            token,
            read_ts,
            reply,
        })
        .map(|_| ())
    }
}

impl<S: StateMachine> RaftHandle<S> {
    /// Passes the read barrier of `range` at `read_ts` on this thread if
    /// this node leads it under a lease and has applied everything the
    /// read must see (`lease.rs`); false: the barrier takes the Raft
    /// thread's way.
    fn lease_read(&self, range: RangeId, read_ts: u64) -> bool {
        let read = {
            let leases = self.shared.leases.read();
            let Some(lease) = leases.get(&range) else {
                return false;
            };
            lease.try_read(read_ts, Instant::now())
        };
        let Some(read) = read else {
            return false;
        };
        let applied = self.shared.applied.read().get(&range).copied().unwrap_or(0);
        if applied < read.wait_index {
            return false;
        }
        self.shared.lease_reads.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// How many read barriers were passed under a lease since the node
    /// started.
    pub fn lease_reads(&self) -> u64 {
        self.shared.lease_reads.load(Ordering::Relaxed)
    }
}

/// When a request may be submitted again.
#[derive(Debug, Clone, Copy)]
enum Retry {
    /// Only while nothing can have happened (no leader, or the proposal was
    /// certainly overwritten); a late answer is an unknown outcome.
    Once,
    /// The state machine applies the command at most once, so a late answer
    /// (after `attempt`) is met by proposing it again.
    Idempotent { attempt: Duration },
    /// A read changes nothing: asked again after any failure or after
    /// `attempt`, never ambiguous.
    Read { attempt: Duration },
}

fn unavailable(range: RangeId, start: Instant) -> ReplicationError {
    ReplicationError::Unavailable {
        range,
        waited_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

/// A transport for a node alone: there is nobody to send to.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTransport;

impl Transport for NoTransport {
    fn send(&self, to: NodeId, envelopes: Vec<RaftEnvelope>) {
        tracing::trace!(
            to,
            dropped = envelopes.len(),
            "no transport; dropping messages"
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use shoal_storage::{ColumnFamily, Engine, MemoryEngine};

    use super::*;
    use crate::RaftConfig;
    use crate::sim::Registers;

    fn single_node() -> (Arc<MemoryEngine>, RaftHandle<Registers>) {
        let engine = Arc::new(MemoryEngine::new());
        MultiRaft::<Registers>::bootstrap_range(engine.as_ref(), 1, &[1]).unwrap();
        let driver = MultiRaft::open(1, engine.clone(), RaftConfig::default(), Registers).unwrap();
        let handle =
            RaftRunner::spawn(driver, Arc::new(NoTransport), Duration::from_millis(10)).unwrap();
        (engine, handle)
    }

    #[test]
    fn a_lone_node_applies_reads_and_stops() {
        let (engine, raft) = single_node();
        let reply = raft
            .propose(1, b"k=v".to_vec(), Duration::from_secs(10))
            .unwrap();
        assert_eq!(reply.len(), 8, "the reply is the entry's index");
        // Applied by the apply thread, answered directly, visible at once.
        assert_eq!(
            engine.get_cf(ColumnFamily::Data, b"k").unwrap().as_deref(),
            Some(&b"v"[..])
        );
        raft.read_barrier(1, Duration::from_secs(10)).unwrap();
        raft.shutdown();
        assert!(raft.is_stopped());
        assert!(matches!(
            raft.propose(1, b"k=w".to_vec(), Duration::from_secs(1)),
            Err(ReplicationError::Stopped)
        ));
    }

    #[test]
    fn a_leader_passes_read_barriers_under_its_lease() {
        let engine = Arc::new(MemoryEngine::new());
        MultiRaft::<Registers>::bootstrap_range(engine.as_ref(), 1, &[1]).unwrap();
        let driver = MultiRaft::open(1, engine.clone(), RaftConfig::default(), Registers).unwrap();
        // Leases last 720 ms at this tick: ample between two calls.
        let raft =
            RaftRunner::spawn(driver, Arc::new(NoTransport), Duration::from_millis(100)).unwrap();
        raft.propose(1, b"k=v".to_vec(), Duration::from_secs(10))
            .unwrap();
        // Far above the floor a new leader starts from (its clock plus the
        // maximum offset), so only the registration can raise it this high.
        let read_ts = u64::MAX / 4;
        let mut leased = false;
        for _ in 0..5 {
            // The first barrier of a round may take the Raft thread's way
            // (it confirms leadership and grants the lease), the next one
            // is passed on this thread.
            let before = raft.lease_reads();
            raft.read_barrier(1, Duration::from_secs(10)).unwrap();
            raft.read_barrier_at(1, read_ts, Duration::from_secs(10))
                .unwrap();
            if raft.lease_reads() > before {
                leased = true;
                break;
            }
        }
        assert!(leased, "no barrier was passed under the lease");
        // A command appended after the leased read is stamped above it.
        let floor = raft
            .inspect(|driver| driver.peers.get_mut(&1).map(|p| p.leader_floor(0)))
            .unwrap();
        assert_eq!(floor, Some(read_ts + 1));
        raft.shutdown();
    }

    #[test]
    fn dropping_every_handle_stops_both_threads() {
        let (engine, raft) = single_node();
        raft.propose(1, b"k=v".to_vec(), Duration::from_secs(10))
            .unwrap();
        drop(raft);
        // The Raft and apply threads each hold the engine; once they end,
        // only this test does.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&engine) > 1 {
            assert!(Instant::now() < deadline, "threads still running");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
