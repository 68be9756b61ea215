//! Moving Raft messages between nodes.
//!
//! [`RaftEnvelope`] is the unit: a raft-rs message and the range it belongs
//! to (raft-rs messages name peers, not groups). The driver hands its owner
//! all envelopes for one destination at once; a [`Transport`] sends them as
//! one frame. Delivery is best effort — Raft tolerates loss, duplication and
//! reordering — so `send` never blocks and never fails: an unreachable node
//! is simply not answered, and Raft retries.
//!
//! Wire form of an envelope: the range id (8 bytes, big-endian), then the
//! protobuf-encoded message. Framing and versioning belong to the TCP
//! transport.

use protobuf::Message as _;
use raft::prelude::Message;

use crate::error::{ReplicationError, Result};
use crate::{NodeId, RangeId};

/// A Raft message for one range.
#[derive(Debug, Clone, PartialEq)]
pub struct RaftEnvelope {
    /// The range (Raft group).
    pub range: RangeId,
    /// The message; `from` and `to` are node ids.
    pub message: Message,
}

impl RaftEnvelope {
    /// The envelope's wire form.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = self.range.to_be_bytes().to_vec();
        let body = self
            .message
            .write_to_bytes()
            .map_err(|e| ReplicationError::Codec(e.to_string()))?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Parses [`RaftEnvelope::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<RaftEnvelope> {
        let (range, body) = bytes
            .split_first_chunk::<8>()
            .ok_or_else(|| ReplicationError::Codec("envelope shorter than its header".into()))?;
        let message =
            Message::parse_from_bytes(body).map_err(|e| ReplicationError::Codec(e.to_string()))?;
        Ok(RaftEnvelope {
            range: u64::from_be_bytes(*range),
            message,
        })
    }
}

/// Sends envelopes to other nodes. Best effort; see the module docs.
pub trait Transport: Send + Sync {
    /// Queues `envelopes` (all addressed to node `to`) for delivery.
    fn send(&self, to: NodeId, envelopes: Vec<RaftEnvelope>);
}

/// Requests to other nodes: one request, one answer, synchronously (the
/// KV layer forwards reads and proposals for ranges it holds no replica
/// of). Unlike [`Transport::send`], a failure is reported: the caller tries
/// another node.
pub trait NodeRequests: Send + Sync {
    /// Sends `payload` to node `to` and waits up to `timeout` for its answer.
    fn request(&self, to: NodeId, payload: &[u8], timeout: std::time::Duration) -> Result<Vec<u8>>;
    /// The nodes that may be asked.
    fn nodes(&self) -> Vec<NodeId>;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use raft::prelude::MessageType;

    #[test]
    fn envelope_round_trips() {
        let mut message = Message::default();
        message.set_msg_type(MessageType::MsgHeartbeat);
        message.from = 1;
        message.to = 2;
        message.term = 7;
        let envelope = RaftEnvelope { range: 9, message };
        let bytes = envelope.encode().unwrap();
        assert_eq!(RaftEnvelope::decode(&bytes).unwrap(), envelope);
        assert!(RaftEnvelope::decode(&bytes[..3]).is_err());
    }
}
