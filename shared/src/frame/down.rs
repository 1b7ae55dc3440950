//! Cloud to edge: the frames of a node's `down` topic, and events packed into them.

use serde::{Deserialize, Serialize};

use super::codec::{FrameError, MAX_FRAME_BYTES, decode, encode, varint_len};
use crate::clock::Timestamp;
use crate::event::NodeEvent;

/// Cloud to edge, on `skerry/v1/nodes/{node_id}/down`. Append new variants at the end only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DownFrame {
    /// Events for this node, in `node_seq` order.
    Events(Vec<NodeEvent>),
    /// One piece of a snapshot of the node's desired state as of `node_seq`: chunk `index`
    /// of `total`, each carrying a slice of the snapshot's postcard encoding.
    SnapshotChunk {
        node_seq: u64,
        index: u32,
        total: u32,
        #[serde(with = "super::byte_buf")]
        bytes: Vec<u8>,
    },
    /// The answer to a heartbeat, with the cloud's time.
    HeartbeatAck { time: Timestamp },
    /// The outbox entries of `epoch` with these sequence numbers are stored in the cloud
    /// (or were already): the agent may delete them.
    OutboxAck { epoch: u64, seqs: Vec<u64> },
    /// Asks for the agent's own runtime log (`skerry node logs`): the lines since `since`
    /// (all it keeps without), at most `max_bytes` of the newest.
    NodeLogsRequest {
        request: u64,
        since: Option<Timestamp>,
        max_bytes: u32,
    },
    /// Asks the agent to renew the certificate it connected with (it has passed two thirds
    /// of its life, or outlives what the cloud now issues): the agent answers with
    /// [`UpFrame::CertificateRequest`](super::UpFrame::CertificateRequest). `reason` is
    /// for its log.
    RenewCertificate { reason: String },
    /// The renewed certificate (PEM), valid until `expires`, recorded in the command log
    /// before it was sent. The agent stores it durably, then reconnects with it.
    Certificate {
        certificate: String,
        expires: Timestamp,
    },
    /// The cloud could not renew the certificate (a CSR it refused); the agent keeps its
    /// certificate and asks again at a later connection.
    CertificateRefused { reason: String },
}

pub fn encode_down(frame: &DownFrame) -> Result<Vec<u8>, FrameError> {
    encode(frame)
}

pub fn decode_down(bytes: &[u8]) -> Result<DownFrame, FrameError> {
    decode(bytes)
}

/// Packs events, in the given order, into as few [`DownFrame::Events`] frames as fit under
/// [`MAX_FRAME_BYTES`] (greedily, so each frame holds a run of consecutive events). An
/// event too large for a frame of its own is an error that names its `node_seq`.
pub fn events_frames(events: &[NodeEvent]) -> Result<Vec<DownFrame>, FrameError> {
    // Version byte and variant index; the vector's length prefix is added per frame.
    const FIXED: usize = 2;
    let mut frames = Vec::new();
    let mut batch: Vec<NodeEvent> = Vec::new();
    let mut batch_bytes = 0usize;
    for ev in events {
        let len = postcard::experimental::serialized_size(ev)
            .map_err(|e| FrameError::Encode(e.to_string()))?;
        if FIXED + varint_len(1) + len > MAX_FRAME_BYTES {
            return Err(FrameError::EventTooLarge {
                node_seq: ev.node_seq,
                len,
            });
        }
        let grown = FIXED + varint_len(batch.len() + 1) + batch_bytes + len;
        if !batch.is_empty() && grown > MAX_FRAME_BYTES {
            frames.push(DownFrame::Events(std::mem::take(&mut batch)));
            batch_bytes = 0;
        }
        batch.push(ev.clone());
        batch_bytes += len;
    }
    if !batch.is_empty() {
        frames.push(DownFrame::Events(batch));
    }
    Ok(frames)
}
