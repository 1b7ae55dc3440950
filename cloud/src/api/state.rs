//! What every handler shares ([`AppState`]), and the lookups several handlers make in it.

use std::sync::Arc;

use skerry_shared::ids::{NodeId, shown};

use super::caller::Scope;

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

// A scope's check answers exactly as a missing object does, so that a token learns
// nothing of the environments, nodes and instances outside its scope.

/// 404 `unknown_environment` (field `field`) unless `scope` sees the environment `env`.
pub(crate) fn seen_env(scope: &Scope, field: &str, env: &str) -> Result<(), ApiError> {
    if scope.sees_env(env) {
        return Ok(());
    }
    Err(ApiError::not_found(
        "unknown_environment",
        field,
        format!("no environment named {}", shown(env)),
    ))
}

/// 404 `unknown_node` unless `scope` sees the node `node` (a name or an id); a node
/// that does not exist passes, for the handler to refuse as it does.
pub(crate) fn seen_node(s: &AppState, scope: &Scope, node: &str) -> Result<(), ApiError> {
    let p = s.engine.read();
    match p.node(node) {
        Some(n) if !scope.sees_node(n) => Err(ApiError::not_found(
            "unknown_node",
            "node",
            format!("no node named or with id \"{node}\""),
        )),
        _ => Ok(()),
    }
}

/// 404 `unknown_instance` unless `scope` sees the instance `name`, deployed now or once
/// (by the environment it was last deployed in); a name never deployed passes, for the
/// handler to refuse as it does.
pub(crate) fn seen_instance(s: &AppState, scope: &Scope, name: &str) -> Result<(), ApiError> {
    let p = s.engine.read();
    match p.instance_envs.get(name) {
        Some(env) if !scope.sees_env(env.as_str()) => Err(ApiError::not_found(
            "unknown_instance",
            "instance",
            format!("no instance named \"{name}\""),
        )),
        _ => Ok(()),
    }
}
