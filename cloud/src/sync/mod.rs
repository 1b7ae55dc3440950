//! The cloud's side of the sync protocol: one session per connected node, each node's live
//! state, and what nodes report.
//!
//! The protocol is the agent's, not the transport's: on every connect the agent says the
//! last `node_seq` it applied (`Hello`), and the cloud answers with the node's events after
//! it, or with a snapshot of the node's desired state when that is shorter; then it
//! forwards the node's events as they become durable. The agent acknowledges what it has
//! committed (`Ack`), says it is alive (`Heartbeat`) and reports its replicas (`Status`).
//! An agent whose journal was damaged says `Rebuild` instead of `Hello`, and gets a
//! snapshot of the node's whole desired state whatever its size.
//! The [`Hub`] deals in encoded frames ([`bytes::Bytes`]) through a [`Connection`], so the
//! embedded MQTT endpoint and a NATS link share it: a transport depends on this module's
//! seam ([`transport`]), and nothing here knows a transport. What the cloud decides from
//! the nodes' live state (their liveness) is a controller's work (`controllers/`, which
//! reads [`Hub::heard_from`]; nothing here depends on it).
//!
//! Within the module the arrows go one way: `hub` uses `link`, `live`, `replicas` and
//! `transport`; `link` uses `live`, `secrets_key` and `session`; `live` uses `replicas`.
//!
//! # Layout
//! - [`transport`]: the seam a transport serves: [`Sessions`] (open a node's session) and
//!   [`Connection`] (the node's two channels of encoded frames).
//! - [`session`]: the sans-IO core of a session ([`NodeSession`]): catch-up by events or
//!   snapshot, then live events; inputs in, frames and log reads out.
//! - `link`: the I/O loop around a session: decodes up frames (dropping, counting and
//!   logging bad ones), reads log pages and the broadcast, sends down frames.
//! - `live`: the table of nodes in memory (connected, last seen, acked `node_seq`, replica
//!   reports, dropped frames) and what a session records in it.
//! - `hub`: [`Hub`]: opens and replaces sessions (implementing [`Sessions`]), answers
//!   queries on each node's live state, fetches agents' runtime logs, and gives watchers
//!   the nodes as last heard from ([`Hub::heard_from`]).
//! - [`replicas`]: the latest replica reports of one node.
//! - [`renewal`]: when a session asks its node to renew its certificate (pure).
//! - `secrets_key`: a node's key for secrets sent over its link, recorded only for a node
//!   without one.

mod hub;
mod link;
mod live;
pub mod renewal;
pub mod replicas;
mod secrets_key;
pub mod session;
pub mod transport;

pub use hub::{
    DOWN_CAPACITY, Hub, NODE_LOGS_TIMEOUT, NodeHeard, NodeLive, NodeLogsError, NodeLogsText,
    OpenError, REMOVAL_CLOSE_AFTER, UP_CAPACITY,
};
pub use session::{NodeSession, Output, SyncError};
pub use transport::{Connection, PeerCertificate, Sessions};
