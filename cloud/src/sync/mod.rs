//! The cloud's side of the sync protocol: one session per connected node, node liveness,
//! and what nodes report.
//!
//! The protocol is the agent's, not the transport's: on every connect the agent says the
//! last `node_seq` it applied (`Hello`), and the cloud answers with the node's events after
//! it, or with a snapshot of the node's desired state when that is shorter; then it
//! forwards the node's events as they become durable. The agent acknowledges what it has
//! committed (`Ack`), says it is alive (`Heartbeat`) and reports its replicas (`Status`).
//! An agent whose journal was damaged says `Rebuild` instead of `Hello`, and gets a
//! snapshot of the node's whole desired state whatever its size.
//! The [`Hub`] deals in encoded frames ([`bytes::Bytes`]) through a [`Connection`], so the
//! embedded MQTT endpoint and a NATS link share it.
//!
//! # Layout
//! - [`session`]: the sans-IO core of a session ([`NodeSession`]): catch-up by events or
//!   snapshot, then live events; inputs in, frames and log reads out.
//! - `link`: the I/O loop around a session: decodes up frames (dropping, counting and
//!   logging bad ones), reads log pages and the broadcast, sends down frames.
//! - `hub`: [`Hub`]: opens and replaces sessions, and keeps each node's live state in
//!   memory (connected, last seen, acked `node_seq`, replica reports, dropped frames).
//! - [`replicas`]: the latest replica reports of one node.
//! - `liveness`: the monitor that records `Normal` and `Abnormal` from heartbeats
//!   ([`Hub::monitor`], [`Hub::check_liveness`]).

mod hub;
mod link;
mod live;
pub mod replicas;
pub mod session;
pub mod transport;

pub use hub::{
    DOWN_CAPACITY, Hub, NODE_LOGS_TIMEOUT, NodeHeard, NodeLive, NodeLogsError, NodeLogsText,
    OpenError, UP_CAPACITY,
};
pub use session::{NodeSession, Output, SyncError};
pub use transport::{Connection, Sessions};
