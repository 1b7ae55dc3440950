//! The REST API: JSON over HTTP, the same resources as the CLI.
//!
//! A 2xx answer to a command means its events are durable. Errors are
//! `{"error": {"code", "message", "field"}}` ([`error::ApiError`]).
//!
//! # Layout
//! - [`dto`]: request and response bodies, shared with the CLI.
//! - [`error`]: error answers and the extractors (body, query, path) that answer in the
//!   error shape, naming the field.
//! - [`server`]: the HTTP server (accept loop, connection bound, timeouts, hyper's own
//!   error answers in the error shape) and the request guard (origin, media type, body
//!   size and deadline).
//! - `envs`, `nodes`, `enroll`, `apps`, `instances`, `events`, `logs`: one module per
//!   resource.
//! - `views`: projections to response bodies.

pub mod dto;
pub mod error;
pub mod server;
pub mod streams;

mod apps;
mod enroll;
mod envs;
mod events;

/// The default and the largest `limit` of `GET /api/v1/events`, which the CLI keeps too.
pub use events::{DEFAULT_LIMIT as EVENTS_DEFAULT_LIMIT, MAX_LIMIT as EVENTS_MAX_LIMIT};
mod instances;
mod logs;
mod nodes;
mod views;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use skerry_shared::event::Actor;

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
}

/// Who is calling. API tokens arrive in a later release; until then the API listens on
/// loopback and the actor is the peer's address.
pub(crate) fn actor(peer: &ConnectInfo<SocketAddr>) -> Actor {
    Actor::Anonymous {
        peer: peer.0.ip().to_string(),
    }
}

/// A node's id by its name or id, or 404 `unknown_node` (field `node`).
pub(crate) fn node_id(
    s: &AppState,
    node: &str,
) -> Result<skerry_shared::ids::NodeId, error::ApiError> {
    s.engine.read().node(node).map(|n| n.id).ok_or_else(|| {
        error::ApiError::not_found(
            "unknown_node",
            "node",
            format!("no node named or with id \"{node}\""),
        )
    })
}

/// A `since` query parameter (RFC 3339 or a duration before now), or 400 `invalid_time`.
pub(crate) fn since(
    since: Option<&str>,
) -> Result<Option<skerry_shared::clock::Timestamp>, error::ApiError> {
    use skerry_shared::clock::Timestamp;
    since
        .map(|t| Timestamp::parse_cli(t, Timestamp::now()))
        .transpose()
        .map_err(|e| error::ApiError::bad_request("invalid_time", "since", e))
}

/// The answer of routes that belong to later releases.
async fn later(uri: axum::http::Uri) -> error::ApiError {
    error::ApiError::new(
        axum::http::StatusCode::NOT_IMPLEMENTED,
        "not_implemented",
        None,
        format!("{} is not available in this release", uri.path()),
    )
}

/// The router of every API route, behind the default request guard (no other origin
/// allowed, the default body deadline).
pub fn router(state: AppState) -> Router {
    router_with(state, server::Guard::default())
}

/// The router of every API route, behind `guard`: cross-origin requests, bodies that are
/// not JSON, too large or too slow are refused before any handler runs.
pub fn router_with(state: AppState, guard: server::Guard) -> Router {
    routes(state)
        // The guard has read the body within its own limit ([`error::MAX_BODY_BYTES`]).
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            guard,
            server::guard::guard,
        ))
}

fn routes(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/v1/environments", get(envs::list).post(envs::create))
        .route(
            "/api/v1/environments/{env}",
            get(envs::show).delete(envs::delete),
        )
        .route("/api/v1/enrollment-tokens", post(enroll::issue_token))
        .route("/api/v1/enroll", post(enroll::enroll))
        .route("/api/v1/nodes", get(nodes::list))
        .route(
            "/api/v1/nodes/{node}",
            get(nodes::show).patch(nodes::rename),
        )
        .route("/api/v1/nodes/{node}/labels", post(nodes::label))
        .route("/api/v1/nodes/{node}/environments", post(nodes::join))
        .route(
            "/api/v1/nodes/{node}/environments/{env}",
            axum::routing::delete(nodes::leave),
        )
        .route("/api/v1/apps", get(apps::list).post(apps::publish))
        .route("/api/v1/apps/{app}", get(apps::show))
        .route(
            "/api/v1/apps/{app}/versions/{version}",
            get(apps::show_version),
        )
        .route(
            "/api/v1/instances",
            get(instances::list).post(instances::deploy),
        )
        .route(
            "/api/v1/instances/{name}",
            get(instances::show).delete(instances::undeploy),
        )
        .route("/api/v1/events", get(events::list))
        .route("/api/v1/logs", get(logs::list))
        // Resources of later releases answer 501 in the error shape, so clients can tell
        // "not in this release" from "not found".
        .route("/api/v1/tokens", get(later).post(later))
        .route("/api/v1/tokens/{id}", axum::routing::delete(later))
        .route("/api/v1/nodes/{node}/logs", get(nodes::logs))
        .route("/api/v1/instances/{name}/upgrade", post(later))
        .route("/api/v1/instances/{name}/rollback", post(later))
        .route("/api/v1/events/verify", get(events::verify))
        .method_not_allowed_fallback(|| async {
            error::ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                None,
                "this route does not take that method",
            )
        })
        .fallback(|| async {
            error::ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "not_found",
                None,
                "no such API route",
            )
        })
        .with_state(state)
}
