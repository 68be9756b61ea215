//! Cluster status as this node sees it: every range (span, replicas, leader,
//! size) and every node (address, liveness, replica and lease counts). What
//! `SHOW RANGES`, the `shoal_internal.nodes` view and `shoal node status`
//! print.
//!
//! Ranges with a replica here are described by this node's own state — its
//! Raft thread's view (membership, leader) and its size record; other
//! ranges by the directory (`directory.rs`), their size asked of one of
//! their replicas. Nodes are described by this node's replica of the first
//! range (registry, liveness records), so a node cut off from the quorum
//! still answers with its last knowledge (its own liveness then expires
//! like anyone's).
//!
//! The *lease holder* of a range is its Raft leader: reads are served by
//! the leader's read index and writes are ordered by it.

use std::time::Duration;

use crate::command::{Command, Reply};
use crate::error::{KvError, Result};
use crate::liveness::{self, LIVENESS_TTL};
use crate::remote::{Answer, Request};
use crate::settings;
use crate::store::Kv;
use shoal_placement::RangeDescriptor;

/// One range, as [`Kv::range_status`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeStatus {
    /// The range's id.
    pub range_id: u64,
    /// First key (inclusive).
    pub start_key: Vec<u8>,
    /// End key (exclusive); `None`: the end of the key space.
    pub end_key: Option<Vec<u8>>,
    /// Nodes holding a replica (voters and learners), ascending.
    pub replicas: Vec<u64>,
    /// The node leading the range, if this node knows one.
    pub lease_holder: Option<u64>,
    /// Bytes of keys and values the range holds on this node.
    pub size_bytes: Option<u64>,
}

/// One node, as [`Kv::node_status`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// The node's id.
    pub node_id: u64,
    /// Its node-to-node address.
    pub address: String,
    /// Whether its liveness record is unexpired by this node's clock.
    pub live: bool,
    /// Whether it is being decommissioned (drained of replicas and
    /// leases).
    pub decommissioning: bool,
    /// Its liveness expiration (wall-clock microseconds), if it ever
    /// heartbeated.
    pub expiration_micros: Option<u64>,
    /// Ranges with a replica on it.
    pub replicas: u64,
    /// Ranges it leads.
    pub leases: u64,
}

impl NodeStatus {
    /// `active`, `decommissioning` (being drained) or `decommissioned`
    /// (drained: it holds no replica and may be stopped).
    pub fn membership(&self) -> &'static str {
        match (self.decommissioning, self.replicas) {
            (false, _) => "active",
            (true, 0) => "decommissioned",
            (true, _) => "decommissioning",
        }
    }
}

/// Whether two ranges share a key.
fn overlaps(a: &RangeDescriptor, b: &RangeDescriptor) -> bool {
    a.end_key
        .as_deref()
        .is_none_or(|e| b.start_key.as_slice() < e)
        && b.end_key
            .as_deref()
            .is_none_or(|e| a.start_key.as_slice() < e)
}

impl Kv {
    /// Renews the liveness of `node` (this node, or one without a replica
    /// of the first range that asked it to; see `liveness.rs`); returns the
    /// new expiration. Waits at most `timeout`.
    pub fn heartbeat(&self, node: u64, timeout: Duration) -> Result<u64> {
        let ttl = u64::try_from(LIVENESS_TTL.as_micros()).unwrap_or(u64::MAX);
        let command = Command::Heartbeat {
            node_id: node,
            expiration: self.clock.wall_now().saturating_add(ttl),
        };
        match self.propose_cluster(&command, timeout)? {
            Reply::Alive(expiration) => Ok(expiration),
            other => Err(other.unexpected("a heartbeat")),
        }
    }

    /// Every range, in key order: local replicas as this node sees them,
    /// other ranges as the directory describes them (their size asked of
    /// a replica). A directory record overlapping a newer description of
    /// its keys is left out.
    pub fn range_status(&self) -> Result<Vec<RangeStatus>> {
        let ranges = self.ranges();
        let ranges: Vec<RangeDescriptor> = ranges
            .iter()
            .filter(|r| {
                !ranges.iter().any(|other| {
                    other.range_id != r.range_id
                        && other.generation > r.generation
                        && overlaps(other, r)
                })
            })
            .cloned()
            .collect();
        let ids: Vec<u64> = ranges.iter().map(|r| r.range_id).collect();
        let views = self.raft.inspect(move |driver| {
            ids.iter()
                .map(|&id| (driver.conf_state(id), driver.leader(id)))
                .collect::<Vec<_>>()
        })?;
        let mut out = Vec::with_capacity(ranges.len());
        for (descriptor, (conf_state, leader)) in ranges.into_iter().zip(views) {
            let range_id = descriptor.range_id;
            // A replica a split just created has its state written before
            // the Raft thread opens it: read the membership from there.
            let conf_state = match conf_state {
                None if self.is_local(range_id) => self.stored_conf_state(range_id)?,
                known => known,
            };
            let (mut replicas, lease_holder, size_bytes) = match conf_state {
                Some(cs) if self.is_local(range_id) => (
                    cs.voters
                        .into_iter()
                        .chain(cs.learners)
                        .collect::<Vec<u64>>(),
                    leader,
                    Some(self.published.bytes(range_id, self.engine.as_ref())?),
                ),
                _ => {
                    let record = self.record_of(range_id)?;
                    // Unknown (NULL) if no replica answers in time: the
                    // other rows are worth showing.
                    // A second at most: a status view must not wait out a
                    // request timeout per unreachable range.
                    let request = Request::RangeSize { range: range_id };
                    let size = match self.ask_within(&record, &request, Duration::from_secs(1)) {
                        Ok(Answer::Size(n)) => Some(n),
                        _ => None,
                    };
                    let leader = (record.leader != 0).then_some(record.leader);
                    let replicas = record.voters.into_iter().chain(record.learners).collect();
                    (replicas, leader, size)
                }
            };
            replicas.sort_unstable();
            replicas.dedup();
            out.push(RangeStatus {
                range_id,
                start_key: descriptor.start_key,
                end_key: descriptor.end_key,
                replicas,
                lease_holder,
                size_bytes,
            });
        }
        Ok(out)
    }

    /// The membership of the local replica of `range` as its stored apply
    /// state has it.
    fn stored_conf_state(&self, range: u64) -> Result<Option<shoal_replication::ConfState>> {
        let raw = self.engine.get_cf(
            shoal_storage::ColumnFamily::Raft,
            &shoal_replication::keys::apply_state(range),
        )?;
        Ok(match raw {
            Some(raw) => Some(shoal_replication::ApplyState::decode(&raw)?.conf_state),
            None => None,
        })
    }

    /// The nodes that may receive replicas (live, not decommissioning), and
    /// those whose replicas must move elsewhere: dead for longer than
    /// `server.time_until_store_dead`, or being decommissioned. A node in
    /// neither list is suspect: not heartbeating, but maybe coming back.
    pub fn node_verdicts(&self) -> Result<(Vec<u64>, Vec<u64>)> {
        let leaving = crate::registry::decommissioning(self.engine.as_ref())?;
        let grace = settings::get_duration(self.engine.as_ref(), settings::TIME_UNTIL_STORE_DEAD)?;
        let grace = u64::try_from(grace.as_micros()).unwrap_or(u64::MAX);
        let expirations = liveness::expirations(self.engine.as_ref())?;
        let now = self.clock.wall_now();
        let (mut live, mut dead) = (Vec::new(), Vec::new());
        for (node, _) in self.nodes()? {
            if leaving.contains(&node) {
                dead.push(node);
                continue;
            }
            match expirations.get(&node) {
                Some(&e) if e > now => live.push(node),
                Some(&e) if now.saturating_sub(e) > grace => dead.push(node),
                _ => {}
            }
        }
        Ok((live, dead))
    }

    /// Sets cluster setting `name` (checked and normalized first; see
    /// `settings.rs`) for every node; returns the stored value.
    pub fn set_cluster_setting(&self, name: &str, value: &str) -> Result<String> {
        let value = settings::normalize(name, value)?;
        let command = Command::SetSetting {
            name: name.to_string(),
            value: value.clone(),
        };
        match self.propose_cluster(&command, self.timeout)? {
            Reply::SettingStored => Ok(value),
            other => Err(other.unexpected("a cluster setting")),
        }
    }

    /// Marks node `node` as being decommissioned: from now on its replicas
    /// and leases move to other live nodes (see `node_verdicts`).
    pub fn decommission(&self, node: u64) -> Result<()> {
        if !self.nodes()?.iter().any(|(id, _)| *id == node) {
            return Err(KvError::UnknownNode(node));
        }
        match self.propose_cluster(&Command::Decommission { node_id: node }, self.timeout)? {
            Reply::NodeMarked => Ok(()),
            other => Err(other.unexpected("a decommission")),
        }
    }

    /// The value of cluster setting `name` as this node's replica has it.
    pub fn cluster_setting(&self, name: &str) -> Result<String> {
        settings::get(self.engine.as_ref(), name)
    }

    /// Every registered node, by id.
    pub fn node_status(&self) -> Result<Vec<NodeStatus>> {
        let ranges = self.range_status()?;
        let expirations = liveness::expirations(self.engine.as_ref())?;
        let leaving = crate::registry::decommissioning(self.engine.as_ref())?;
        let now = self.clock.wall_now();
        let nodes = self.nodes()?;
        Ok(nodes
            .into_iter()
            .map(|(node_id, address)| {
                let expiration = expirations.get(&node_id).copied();
                NodeStatus {
                    node_id,
                    address,
                    live: expiration.is_some_and(|e| e > now),
                    decommissioning: leaving.contains(&node_id),
                    expiration_micros: expiration,
                    replicas: ranges
                        .iter()
                        .filter(|r| r.replicas.contains(&node_id))
                        .count() as u64,
                    leases: ranges
                        .iter()
                        .filter(|r| r.lease_holder == Some(node_id))
                        .count() as u64,
                }
            })
            .collect())
    }
}
