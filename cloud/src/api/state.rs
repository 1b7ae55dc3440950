//! What every handler shares ([`AppState`]), and the lookups several handlers make in it.

use std::sync::Arc;

use skerry_shared::ids::NodeId;

use super::error::ApiError;
use crate::engine::Engine;
use crate::pki::Pki;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    pub engine: Engine,
    pub pki: Arc<Pki>,
    /// The MQTT endpoints agents are told to use.
    pub mqtt: Vec<String>,
    /// The NATS URLs agents are told to use, when the cloud runs on NATS.
    pub nats: Vec<String>,
    /// Turns true when the server starts shutting down, so long-lived streams end.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// The nodes' sessions and live state (lag, last seen, replica reports).
    pub hub: crate::sync::Hub,
    /// What agents reported through their outboxes: log lines, drops, replica statuses.
    pub reports: crate::reports::ReportStore,
    /// The cloud's secrets key ([`crate::secrets`]).
    pub secrets: Arc<crate::secrets::SecretsKey>,
}

/// A node's id by its name or id, or 404 `unknown_node` (field `node`).
pub(crate) fn node_id(s: &AppState, node: &str) -> Result<NodeId, ApiError> {
    s.engine.read().node(node).map(|n| n.id).ok_or_else(|| {
        ApiError::not_found(
            "unknown_node",
            "node",
            format!("no node named or with id \"{node}\""),
        )
    })
}
