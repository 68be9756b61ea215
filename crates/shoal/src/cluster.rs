//! Cluster membership from one node's point of view: who it is, how a
//! cluster is initialized, how a node joins.
//!
//! # Identity
//!
//! A node's identity — the cluster id and its node id — is written once to
//! its store (Raft column family, `n cluster_id` / `n node_id`) and never
//! changes. A node without one either initializes a cluster (`shoal start`
//! without `--join`, or `shoal init` sent to it) or joins one. A node with
//! one only ever talks Raft to nodes of the same cluster (the transport's
//! handshake carries the cluster id).
//!
//! # Control calls (on the node-to-node port, JSON)
//!
//! * `Init`: sent by `shoal init --host ADDR`. An uninitialized node
//!   creates a cluster: new cluster id, node id 1, the first range
//!   bootstrapped with itself as the only voter. A second init fails: "the
//!   cluster is already initialized".
//! * `Join { addr }`: sent by a starting node that has no identity, to the
//!   addresses of its `--join` list until one answers. A member registers
//!   the address in the replicated node registry (allocating the next node
//!   id; the same address keeps its id, so a retried join is harmless) and
//!   answers with the cluster id, the new id and the registry.
//! * `Heartbeat { node_id }`: sent by a node that holds no replica of the
//!   first range (so cannot propose) to a member, which renews the
//!   sender's liveness for it.
//! * `Decommission { node_id }`: sent by `shoal node decommission`. A
//!   member marks the node for draining (its replicas and leases move to
//!   other live nodes).
//! * `NodeStatus`: sent by `shoal node status --host ADDR`. A member
//!   answers with every registered node as it sees them (address, liveness,
//!   replica and lease counts).
//!
//! After joining, the node has no replica yet: the first range's leader
//! notices a registered node without one and adds it, as a learner first
//! (see `shoal_replication::replicate_queue`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use shoal_kv::{Kv, KvStateMachine};
use shoal_replication::tcp::{AddressBook, NodeService};
use shoal_replication::{PeerStorage, RaftEnvelope, RaftHandle};
use shoal_storage::{ColumnFamily, Engine, WriteBatch};
use tokio::sync::watch;

/// The range every cluster starts with.
pub const FIRST_RANGE: u64 = 1;

/// Who a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// The cluster's id, chosen at init.
    pub cluster_id: u128,
    /// This node's id, unique in the cluster.
    pub node_id: u64,
}

fn cluster_key() -> Vec<u8> {
    shoal_replication::keys::node("cluster_id")
}

fn node_key() -> Vec<u8> {
    shoal_replication::keys::node("node_id")
}

/// The identity stored in `engine`, if the node has one.
pub fn load_identity(engine: &dyn Engine) -> anyhow::Result<Option<Identity>> {
    let cluster = engine.get_cf(ColumnFamily::Raft, &cluster_key())?;
    let node = engine.get_cf(ColumnFamily::Raft, &node_key())?;
    match (cluster, node) {
        (Some(cluster), Some(node)) => {
            let cluster: [u8; 16] = cluster
                .as_slice()
                .try_into()
                .map_err(|_| anyhow::anyhow!("stored cluster id is corrupt"))?;
            let node: [u8; 8] = node
                .as_slice()
                .try_into()
                .map_err(|_| anyhow::anyhow!("stored node id is corrupt"))?;
            Ok(Some(Identity {
                cluster_id: u128::from_be_bytes(cluster),
                node_id: u64::from_be_bytes(node),
            }))
        }
        (None, None) => Ok(None),
        _ => anyhow::bail!("the store holds half an identity; it is corrupt"),
    }
}

fn save_identity(identity: Identity, batch: &mut WriteBatch) {
    batch.put_cf(
        ColumnFamily::Raft,
        cluster_key(),
        identity.cluster_id.to_be_bytes().to_vec(),
    );
    batch.put_cf(
        ColumnFamily::Raft,
        node_key(),
        identity.node_id.to_be_bytes().to_vec(),
    );
}

/// A control call.
#[derive(Debug, Serialize, Deserialize)]
pub enum ControlRequest {
    /// Initialize a new cluster on this node.
    Init,
    /// Let the node at `addr` join.
    Join {
        /// The joining node's node-to-node address.
        addr: String,
    },
    /// Renew the liveness of `node_id` (which cannot propose itself).
    Heartbeat {
        /// The node.
        node_id: u64,
    },
    /// Start draining `node_id`.
    Decommission {
        /// The node.
        node_id: u64,
    },
    /// List the cluster's nodes.
    NodeStatus,
}

/// One node in a [`ControlResponse::Nodes`] answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct NodeRow {
    /// The node's id.
    pub node_id: u64,
    /// Its node-to-node address.
    pub address: String,
    /// Whether its liveness record is unexpired.
    pub is_live: bool,
    /// `active`, `decommissioning` or `decommissioned`.
    pub membership: String,
    /// Ranges with a replica on it.
    pub replicas: u64,
    /// Ranges it leads.
    pub leases: u64,
}

/// The answer to a control call.
#[derive(Debug, Serialize, Deserialize)]
pub enum ControlResponse {
    /// The cluster was created.
    Initialized {
        /// Its id, hex.
        cluster_id: String,
    },
    /// The node may join.
    Joined {
        /// The cluster's id, hex.
        cluster_id: String,
        /// The joining node's id.
        node_id: u64,
        /// Every registered node and its address.
        nodes: Vec<(u64, String)>,
    },
    /// The node's liveness was renewed.
    Alive,
    /// The node is marked for draining.
    Decommissioning,
    /// The cluster's nodes.
    Nodes {
        /// One row per registered node, by id.
        nodes: Vec<NodeRow>,
    },
    /// The call was refused.
    Refused {
        /// Why, for a human.
        reason: String,
    },
}

/// Parses a hex cluster id.
pub fn parse_cluster_id(hex: &str) -> anyhow::Result<u128> {
    u128::from_str_radix(hex, 16).with_context(|| format!("bad cluster id {hex:?}"))
}

/// Sends a control call to `addr`.
pub async fn call(addr: SocketAddr, request: &ControlRequest) -> anyhow::Result<ControlResponse> {
    let bytes = serde_json::to_vec(request)?;
    let answer = shoal_replication::tcp::call(addr, &bytes, Duration::from_secs(15)).await?;
    Ok(serde_json::from_slice(&answer)?)
}

/// A node's listener-facing state: identity, Raft and KV once running.
pub struct NodeControl {
    engine: Arc<dyn Engine>,
    listen_addr: SocketAddr,
    /// Serializes initialization.
    init_lock: Mutex<()>,
    identity: watch::Sender<Option<Identity>>,
    raft: RwLock<Option<RaftHandle<KvStateMachine>>>,
    kv: RwLock<Option<Arc<Kv>>>,
    /// Node id → node-to-node address, for the transport.
    pub addresses: AddressBook,
}

impl NodeControl {
    /// The control state of a node over `engine`, with its stored identity.
    pub fn new(
        engine: Arc<dyn Engine>,
        listen_addr: SocketAddr,
        identity: Option<Identity>,
    ) -> Arc<NodeControl> {
        let (identity, _) = watch::channel(identity);
        Arc::new(NodeControl {
            engine,
            listen_addr,
            init_lock: Mutex::new(()),
            identity,
            raft: RwLock::new(None),
            kv: RwLock::new(None),
            addresses: AddressBook::default(),
        })
    }

    /// The node's identity, once it has one.
    pub fn identity(&self) -> Option<Identity> {
        *self.identity.borrow()
    }

    /// Waits until the node has an identity (initialized or joined).
    pub async fn wait_identity(&self) -> Identity {
        let mut rx = self.identity.subscribe();
        loop {
            if let Some(identity) = *rx.borrow_and_update() {
                return identity;
            }
            if rx.changed().await.is_err() {
                // The sender lives in `self`; it cannot be dropped first.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Creates a new cluster with this node as node 1 and the only replica
    /// of the first range. Fails if the node already has an identity.
    pub fn initialize(&self) -> anyhow::Result<Identity> {
        let _serialized = self.init_lock.lock();
        if let Some(identity) = self.identity() {
            anyhow::bail!(
                "the cluster is already initialized (cluster id {:032x})",
                identity.cluster_id
            );
        }
        let identity = Identity {
            cluster_id: uuid::Uuid::new_v4().as_u128(),
            node_id: 1,
        };
        if Kv::is_bootstrapped(self.engine.as_ref())? {
            anyhow::bail!("the store already holds a range but no identity; it is corrupt");
        }
        // One synced batch: the first range, the node's identity and its
        // registry record appear together or not at all, and a node joining
        // right after sees node 1 registered (and gets id 2).
        let mut batch = WriteBatch::new();
        PeerStorage::bootstrap(FIRST_RANGE, &[1], &mut batch)?;
        save_identity(identity, &mut batch);
        shoal_kv::registry::add_record(&mut batch, 1, &self.listen_addr.to_string());
        self.engine.write(batch, true)?;
        self.addresses.write().insert(1, self.listen_addr);
        tracing::info!(cluster_id = %format!("{:032x}", identity.cluster_id), "initialized a new cluster");
        self.identity.send_replace(Some(identity));
        Ok(identity)
    }

    /// Adopts the identity a member gave this node in answer to its join.
    fn adopt(&self, identity: Identity, nodes: &[(u64, String)]) -> anyhow::Result<()> {
        let _serialized = self.init_lock.lock();
        if self.identity().is_some() {
            return Ok(());
        }
        let mut batch = WriteBatch::new();
        save_identity(identity, &mut batch);
        self.engine.write(batch, true)?;
        self.learn_registry(nodes);
        tracing::info!(
            node_id = identity.node_id,
            cluster_id = %format!("{:032x}", identity.cluster_id),
            "joined the cluster"
        );
        self.identity.send_replace(Some(identity));
        Ok(())
    }

    /// Adds registry records to the address book.
    pub fn learn_registry(&self, nodes: &[(u64, String)]) {
        let mut book = self.addresses.write();
        for (id, addr) in nodes {
            if let Ok(addr) = addr.parse() {
                book.insert(*id, addr);
            }
        }
    }

    /// Records the running Raft thread and KV store.
    pub fn set_running(&self, raft: RaftHandle<KvStateMachine>, kv: Arc<Kv>) {
        *self.raft.write() = Some(raft);
        *self.kv.write() = Some(kv);
    }

    /// Asks the nodes in `join` (other than this one) to let it join, round
    /// after round, until one accepts or the node is initialized by
    /// `shoal init` meanwhile.
    pub async fn join(self: &Arc<Self>, join: &[SocketAddr]) -> anyhow::Result<Identity> {
        let mut announced = false;
        loop {
            if let Some(identity) = self.identity() {
                return Ok(identity);
            }
            for &addr in join.iter().filter(|&&a| a != self.listen_addr) {
                let request = ControlRequest::Join {
                    addr: self.listen_addr.to_string(),
                };
                match call(addr, &request).await {
                    Ok(ControlResponse::Joined {
                        cluster_id,
                        node_id,
                        nodes,
                    }) => {
                        let identity = Identity {
                            cluster_id: parse_cluster_id(&cluster_id)?,
                            node_id,
                        };
                        self.adopt(identity, &nodes)?;
                        return Ok(self.identity().unwrap_or(identity));
                    }
                    Ok(other) => tracing::debug!(%addr, answer = ?other, "join refused"),
                    Err(e) => tracing::debug!(%addr, error = %e, "join attempt failed"),
                }
            }
            if !announced {
                tracing::info!(
                    "waiting to join a cluster: run `shoal init --host <address>` on one node if the cluster is new"
                );
                announced = true;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = self.wait_identity() => {}
            }
        }
    }

    async fn answer(self: Arc<Self>, request: Vec<u8>) -> ControlResponse {
        let request: ControlRequest = match serde_json::from_slice(&request) {
            Ok(request) => request,
            Err(e) => {
                return ControlResponse::Refused {
                    reason: format!("malformed control call: {e}"),
                };
            }
        };
        let refused = |reason: String| ControlResponse::Refused { reason };
        match request {
            ControlRequest::Init => {
                let this = self.clone();
                match tokio::task::spawn_blocking(move || this.initialize()).await {
                    Ok(Ok(identity)) => ControlResponse::Initialized {
                        cluster_id: format!("{:032x}", identity.cluster_id),
                    },
                    Ok(Err(e)) => refused(e.to_string()),
                    Err(e) => refused(format!("initialization failed: {e}")),
                }
            }
            ControlRequest::Join { addr } => {
                let (Some(identity), Some(kv)) = (self.identity(), self.kv.read().clone()) else {
                    return refused("this node is not part of an initialized cluster yet".into());
                };
                if addr.parse::<SocketAddr>().is_err() {
                    return refused(format!("{addr:?} is not an address"));
                }
                let registered = tokio::task::spawn_blocking(move || {
                    let id = kv.register_node(0, &addr)?;
                    Ok::<_, shoal_kv::KvError>((id, kv.nodes()?))
                })
                .await;
                match registered {
                    Ok(Ok((node_id, nodes))) => ControlResponse::Joined {
                        cluster_id: format!("{:032x}", identity.cluster_id),
                        node_id,
                        nodes,
                    },
                    Ok(Err(e)) => refused(format!("cannot register the node: {e}")),
                    Err(e) => refused(format!("cannot register the node: {e}")),
                }
            }
            ControlRequest::Heartbeat { node_id } => {
                let Some(kv) = self.kv.read().clone() else {
                    return refused("this node is not part of an initialized cluster yet".into());
                };
                let timeout = shoal_kv::liveness::HEARTBEAT_INTERVAL;
                match tokio::task::spawn_blocking(move || kv.heartbeat(node_id, timeout)).await {
                    Ok(Ok(_)) => ControlResponse::Alive,
                    Ok(Err(e)) => {
                        refused(format!("cannot renew the liveness of node {node_id}: {e}"))
                    }
                    Err(e) => refused(format!("cannot renew the liveness of node {node_id}: {e}")),
                }
            }
            ControlRequest::Decommission { node_id } => {
                let Some(kv) = self.kv.read().clone() else {
                    return refused("this node is not part of an initialized cluster yet".into());
                };
                match tokio::task::spawn_blocking(move || kv.decommission(node_id)).await {
                    Ok(Ok(())) => ControlResponse::Decommissioning,
                    Ok(Err(e)) => refused(format!("cannot decommission node {node_id}: {e}")),
                    Err(e) => refused(format!("cannot decommission node {node_id}: {e}")),
                }
            }
            ControlRequest::NodeStatus => {
                let Some(kv) = self.kv.read().clone() else {
                    return refused("this node is not part of an initialized cluster yet".into());
                };
                match tokio::task::spawn_blocking(move || kv.node_status()).await {
                    Ok(Ok(nodes)) => ControlResponse::Nodes {
                        nodes: nodes
                            .into_iter()
                            .map(|n| NodeRow {
                                membership: n.membership().to_string(),
                                node_id: n.node_id,
                                address: n.address,
                                is_live: n.live,
                                replicas: n.replicas,
                                leases: n.leases,
                            })
                            .collect(),
                    },
                    Ok(Err(e)) => refused(format!("cannot read the node status: {e}")),
                    Err(e) => refused(format!("cannot read the node status: {e}")),
                }
            }
        }
    }
}

impl NodeService for NodeControl {
    fn cluster_id(&self) -> Option<u128> {
        self.identity().map(|i| i.cluster_id)
    }

    fn learn_address(&self, node: u64, addr: SocketAddr) {
        self.addresses.write().insert(node, addr);
    }

    fn deliver(&self, from: u64, mut batch: Vec<RaftEnvelope>) {
        // A connection speaks for the node that introduced itself on it.
        batch.retain(|envelope| envelope.message.from == from);
        if let Some(raft) = self.raft.read().as_ref() {
            raft.deliver(batch);
        }
    }

    fn control(
        self: Arc<Self>,
        request: Vec<u8>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<u8>> + Send>> {
        Box::pin(async move {
            let response = self.answer(request).await;
            serde_json::to_vec(&response).unwrap_or_default()
        })
    }

    fn request(
        self: Arc<Self>,
        request: Vec<u8>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<u8>> + Send>> {
        Box::pin(async move {
            let kv = self.kv.read().clone();
            match kv {
                // KV requests block on Raft: off the async threads.
                Some(kv) => tokio::task::spawn_blocking(move || kv.serve_request(&request))
                    .await
                    .unwrap_or_else(|_| shoal_kv::not_serving("the request failed")),
                None => shoal_kv::not_serving("the node is still starting"),
            }
        })
    }
}
