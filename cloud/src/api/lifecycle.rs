//! `/api/v1/instances/{name}/stop`, `.../start` and `.../restart`.
//!
//! `stop` and `start` answer 200 with the instance as it is now (its replicas say
//! `Stopped` once each node has applied it). `restart` is a rollout of the same version:
//! 202 with the rollout as recorded, or 200 with the plan on a dry run, as `upgrade`.

use axum::Json;
use axum::extract::State;
use axum::response::Response;

use super::caller::Caller;
use super::dto::InstanceDto;
use super::error::{ApiError, Body, Path};
use super::rollout_dto::{NodesBody, RestartBody};
use super::rollouts::begin;
use super::state::{AppState, seen_instance, seen_node};
use crate::command::rollout::RolloutIntent;
use crate::command::{Command, LifecycleIntent, NodeChoice};

async fn stop_or_start(
    s: AppState,
    caller: Caller,
    name: String,
    body: NodesBody,
    stop: bool,
) -> Result<Json<InstanceDto>, ApiError> {
    seen_instance(&s, &caller.scope, &name)?;
    for n in &body.nodes {
        seen_node(&s, &caller.scope, n)?;
    }
    let intent = LifecycleIntent {
        instance: name.clone(),
        stop,
        nodes: body.nodes,
    };
    s.engine
        .submit(caller.actor, Command::StopOrStart(Box::new(intent)))
        .await?;
    super::instances::view(&s, &name).map(Json)
}

/// `POST /api/v1/instances/{name}/stop`
pub async fn stop(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Body(body): Body<NodesBody>,
) -> Result<Json<InstanceDto>, ApiError> {
    stop_or_start(s, caller, name, body, true).await
}

/// `POST /api/v1/instances/{name}/start`
pub async fn start(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Body(body): Body<NodesBody>,
) -> Result<Json<InstanceDto>, ApiError> {
    stop_or_start(s, caller, name, body, false).await
}

/// `POST /api/v1/instances/{name}/restart`
pub async fn restart(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Body(body): Body<RestartBody>,
) -> Result<Response, ApiError> {
    seen_instance(&s, &caller.scope, &name)?;
    for n in &body.nodes {
        seen_node(&s, &caller.scope, n)?;
    }
    let intent = RolloutIntent {
        instance: name,
        restart: true,
        components: body.components,
        nodes: body
            .nodes
            .into_iter()
            .map(|node| NodeChoice { node, weight: None })
            .collect(),
        batch: body.batch,
        settle: body.settle,
        timeout: body.timeout,
        max_unavailable: body.max_unavailable,
        max_failed: body.max_failed,
        ..RolloutIntent::default()
    };
    begin(&s, caller, intent, body.dry_run).await
}
