//! Edge to cloud: the frames of a node's `up` topic.

use serde::{Deserialize, Serialize};

use super::codec::{FrameError, decode, encode};
use crate::clock::Timestamp;

/// Edge to cloud, on `skerry/v1/nodes/{node_id}/up`. Append new variants at the end only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpFrame {
    /// Sent on every connect: the last `node_seq` the agent applied. The cloud answers with
    /// the events after it, or a snapshot when that is shorter.
    Hello {
        last_node_seq: u64,
        agent_version: String,
    },
    /// Every event through `node_seq` is committed in the agent's journal.
    Ack { node_seq: u64 },
    /// The agent is alive; refreshes the node's last-seen time only.
    Heartbeat { time: Timestamp, last_node_seq: u64 },
    /// Replica states that changed, or all of them after a connect. Agents of this build
    /// report through [`UpFrame::Outbox`]; the cloud still takes this one.
    Status(crate::report::StatusReport),
    /// Outbox entries of the journal `epoch`, each lane in `seq` order.
    Outbox {
        epoch: u64,
        entries: Vec<crate::outbox::OutboxEntry>,
    },
    /// The answer to [`DownFrame::NodeLogsRequest`].
    ///
    /// [`DownFrame::NodeLogsRequest`]: super::DownFrame::NodeLogsRequest
    NodeLogs { request: u64, result: NodeLogs },
    /// Sent on connect instead of `Hello` by an agent whose journal was found damaged and
    /// started again empty (under a new epoch): it has nothing it can trust. The cloud
    /// answers with a snapshot of the node's whole desired state (nothing, for a node
    /// without events), then live events, as after `Hello { last_node_seq: 0 }`.
    Rebuild { agent_version: String },
    /// The answer to [`DownFrame::RenewCertificate`]: a PKCS#10 request (PEM) for the key
    /// the node already has (the key never leaves the node and is never replaced, so one
    /// file changes at a renewal and a crash at any point leaves a matching pair).
    ///
    /// [`DownFrame::RenewCertificate`]: super::DownFrame::RenewCertificate
    CertificateRequest { csr: String },
    /// The node's public X25519 key for secrets, sent after `Hello` (or `Rebuild`) on
    /// every connect: a node enrolled before nodes had one makes it at start, and the
    /// cloud records it only while the node has none (a registered key never changes).
    /// 32 bytes: the frame's size is fixed.
    SecretsKey { key: crate::secret::NodeSecretsKey },
}

/// The agent's runtime log, or why it could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeLogs {
    /// The text, zstd-compressed (see [`crate::outbox::compress_text`]).
    Text {
        raw_len: u32,
        #[serde(with = "super::byte_buf")]
        zstd: Vec<u8>,
        /// Older lines were left out to keep to the size asked for or to one frame.
        truncated: bool,
    },
    Error(String),
}

pub fn encode_up(frame: &UpFrame) -> Result<Vec<u8>, FrameError> {
    encode(frame)
}

pub fn decode_up(bytes: &[u8]) -> Result<UpFrame, FrameError> {
    decode(bytes)
}
