//! The REST API: JSON over HTTP, the same resources as the CLI.
//!
//! A 2xx answer to a command means its events are durable. Errors are
//! `{"error": {"code", "message", "field"}}` ([`error::ApiError`]).
//!
//! # Layout
//! - [`dto`]: request and response bodies, shared with the CLI.
//! - [`error`]: error answers and the extractors (body, query, path) that answer in the
//!   error shape, naming the field.
//! - [`caller`]: the [`Caller`] extractor, who is calling (the
//!   [`Actor`](skerry_shared::event::Actor) their commands are recorded under).
//! - [`server`]: the HTTP server (accept loop, connection bound, timeouts, TLS and where it
//!   is needed, hyper's own error answers in the error shape) and the request guard
//!   (origin, media type, body size and deadline).
//! - `state`: [`AppState`], what every handler shares, and lookups in it; `query`: query
//!   parameters several routes share.
//! - `envs`, `nodes`, `enroll`, `apps`, `instances`, `events`, `logs`: one module per
//!   resource. A handler converts its request body into the command's own types
//!   ([`crate::command`]) and submits them; `instances` turns a [`dto::DeployInstance`]
//!   into a [`crate::command::DeployIntent`].
//! - `rollouts` (and [`rollout_dto`], its bodies): `upgrade`, `rollback` and `rollout`.
//! - `lifecycle`: `stop`, `start` and `restart` of an instance.
//! - `views`: projections to response bodies.
//!
//! The routes are two routers, merged in [`router_with`]: the public ones ([`public`]:
//! `/healthz`, `/api/v1/enroll`) and every other ([`protected`]).
//!
//! Imports run one way: this file uses its children, and the handlers use `state`,
//! `caller`, `query`, `error`, `dto`, `views` and `streams`, never this file.

pub mod auth;
pub mod caller;
pub mod dto;
pub mod error;
pub mod server;
pub mod streams;

mod apps;
mod enroll;
mod envs;
mod events;
mod instances;
pub mod jobs;
mod lifecycle;
mod logs;
mod nodes;
mod query;
pub mod rollout_dto;
mod rollouts;
pub mod secrets;
mod state;
pub mod tokens;
mod views;

use axum::Router;
use axum::routing::{get, post};

pub use caller::Caller;
/// The default and the largest `limit` of `GET /api/v1/events`, which the CLI keeps too.
pub use events::{DEFAULT_LIMIT as EVENTS_DEFAULT_LIMIT, MAX_LIMIT as EVENTS_MAX_LIMIT};
pub use state::AppState;

/// The router of every API route, behind the default request guard (no other origin
/// allowed, the default body deadline).
pub fn router(state: AppState) -> Router {
    router_with(state, server::Guard::default())
}

/// The router of every API route, behind `guard`: cross-origin requests, bodies that are
/// not JSON, too large or too slow are refused before any handler runs.
///
/// This is the one place the two routers meet: [`public`] and [`protected`] are merged,
/// then the fallbacks (405 and 404 in the error shape) and the guard apply to every route
/// of both alike. The auth layer ([`auth::check`]) goes on [`protected`] alone, here,
/// before the merge, so that a node can enroll and a probe check health without a token;
/// as a route layer it runs on matched routes only, where it knows the route's row in
/// [`auth::ROUTES`].
pub fn router_with(state: AppState, guard: server::Guard) -> Router {
    Router::new()
        .merge(public())
        .merge(
            protected().route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                auth::check,
            )),
        )
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
        // The guard has read the body within its own limit ([`error::MAX_BODY_BYTES`]).
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            guard,
            server::guard::guard,
        ))
}

/// The routes anyone may call: the health check, and enrollment (its token is the
/// credential).
pub fn public() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/v1/enroll", post(enroll::enroll))
}

/// Every other route: each needs an API token with the role its row in [`auth::ROUTES`]
/// names.
pub fn protected() -> Router<AppState> {
    Router::new()
        .route("/api/v1/environments", get(envs::list).post(envs::create))
        .route(
            "/api/v1/environments/{env}",
            get(envs::show).patch(envs::update).delete(envs::delete),
        )
        .route("/api/v1/environments/{env}/rename", post(envs::rename))
        .route("/api/v1/enrollment-tokens", post(enroll::issue_token))
        .route("/api/v1/nodes", get(nodes::list))
        .route(
            "/api/v1/nodes/{node}",
            get(nodes::show).patch(nodes::patch).delete(nodes::remove),
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
        .route("/api/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/api/v1/tokens/{id}", axum::routing::delete(tokens::revoke))
        .route("/api/v1/nodes/{node}/logs", get(nodes::logs))
        .route("/api/v1/instances/{name}/upgrade", post(rollouts::upgrade))
        .route(
            "/api/v1/instances/{name}/rollback",
            post(rollouts::rollback),
        )
        .route(
            "/api/v1/instances/{name}/rollout",
            get(rollouts::show).post(rollouts::act),
        )
        .route("/api/v1/instances/{name}/jobs", get(jobs::list))
        .route("/api/v1/instances/{name}/stop", post(lifecycle::stop))
        .route("/api/v1/instances/{name}/start", post(lifecycle::start))
        .route("/api/v1/instances/{name}/restart", post(lifecycle::restart))
        .route("/api/v1/events/verify", get(events::verify))
        .route("/api/v1/secrets", get(secrets::list))
        .route(
            "/api/v1/secrets/{name}",
            axum::routing::put(secrets::set).delete(secrets::delete),
        )
}
