//! Injected network faults: the node-to-node links a fault-injection run
//! has cut.
//!
//! Shoal's chaos tests (`tests/src/chaos/`) partition real `shoal`
//! processes from one another without root rights, network namespaces or
//! firewall rules: each node keeps a [`NetFaults`], the set of peers it
//! must not reach, and its two outbound paths consult it —
//!
//! * [`crate::tcp::TcpTransport`] drops the Raft messages it would send to
//!   a cut peer (as a lossy link does: Raft retransmits once healed);
//! * [`crate::tcp_requests::TcpRequests`] makes a request to a cut peer
//!   wait out its timeout and fail as unreachable (as a request into a
//!   black hole does).
//!
//! Cuts are one-way: a node that cuts peer 2 stops talking to it, and a
//! symmetric partition is both sides cutting each other. (The answer to a
//! request travels on the asker's connection, so a one-way cut from A to B
//! still lets B ask A and hear back; Raft traffic is cut exactly one way.)
//!
//! A node changes its cuts only when it was started with fault injection
//! enabled (`shoal start --fault-injection`, a hidden flag) and is told so
//! through its HTTP endpoint; otherwise the set stays empty and each check
//! is one relaxed atomic load.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::RwLock;

use crate::NodeId;

/// The peers this node must not reach (module docs).
#[derive(Debug, Default)]
pub struct NetFaults {
    /// Whether `cut` may be non-empty: the fast path of [`Self::is_cut`].
    any: AtomicBool,
    cut: RwLock<BTreeSet<NodeId>>,
}

impl NetFaults {
    /// No cuts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether messages and requests to `peer` are lost.
    pub fn is_cut(&self, peer: NodeId) -> bool {
        self.any.load(Ordering::Relaxed) && self.cut.read().contains(&peer)
    }

    /// From now on, exactly `peers` are cut (an empty set heals every link).
    pub fn set_cut(&self, peers: impl IntoIterator<Item = NodeId>) {
        let mut cut = self.cut.write();
        *cut = peers.into_iter().collect();
        self.any.store(!cut.is_empty(), Ordering::Relaxed);
    }

    /// The peers cut now, in order.
    pub fn cut(&self) -> Vec<NodeId> {
        self.cut.read().iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_are_set_replaced_and_healed() {
        let faults = NetFaults::new();
        assert!(!faults.is_cut(2));
        faults.set_cut([2, 3]);
        assert!(faults.is_cut(2) && faults.is_cut(3) && !faults.is_cut(1));
        faults.set_cut([3]);
        assert_eq!(faults.cut(), vec![3]);
        assert!(!faults.is_cut(2));
        faults.set_cut([]);
        assert!(!faults.is_cut(3));
        assert!(faults.cut().is_empty());
    }
}
