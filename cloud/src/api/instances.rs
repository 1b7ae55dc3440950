//! `/api/v1/instances`: deploy (and its dry run), status, undeploy.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::caller::Caller;
use super::dto::{
    DeployInstance, DryRunDto, InstanceDto, NodePlanDto, UndeployDto, UnschedulableDto,
};
use super::error::{ApiError, Body, Params, Path};
use super::state::{AppState, seen_env, seen_instance, seen_node};
use super::views;
use crate::command::{Command, DeployIntent, NodeChoice, plan_deploy};

fn view(s: &AppState, name: &str) -> Result<InstanceDto, ApiError> {
    let p = s.engine.read();
    let i = p.instances.get(name).ok_or_else(|| {
        ApiError::not_found(
            "unknown_instance",
            "instance",
            format!("no instance named \"{name}\""),
        )
    })?;
    Ok(views::instance(&p, i, &s.hub))
}

/// The deploy the body asks for, in the command's own terms, and whether it is a dry run.
fn intent(body: DeployInstance) -> (DeployIntent, bool) {
    let DeployInstance {
        app,
        version,
        env,
        name,
        nodes,
        selector,
        set,
        dry_run,
    } = body;
    let nodes = nodes
        .into_iter()
        .map(|n| NodeChoice {
            node: n.node,
            weight: n.weight,
        })
        .collect();
    let intent = DeployIntent {
        app,
        version,
        env,
        name,
        nodes,
        selector,
        set,
    };
    (intent, dry_run)
}

fn dry_run(s: &AppState, intent: &DeployIntent) -> Result<DryRunDto, ApiError> {
    let p = s.engine.read();
    let plan = plan_deploy(&p, intent)?;
    let name_of = |id: &skerry_shared::ids::NodeId| {
        p.nodes
            .get(id)
            .map_or_else(|| id.to_string(), |n| n.name.to_string())
    };
    Ok(DryRunDto {
        instance: plan.spec.name.to_string(),
        app: plan.spec.app.to_string(),
        version: plan.spec.version.to_string(),
        env: plan.spec.env.to_string(),
        plan: plan
            .node_plans()
            .into_iter()
            .map(|np| NodePlanDto {
                node: name_of(&np.node),
                node_id: np.node.to_string(),
                weight: np.weight,
                steps: np
                    .steps
                    .iter()
                    .map(|round| round.iter().map(ToString::to_string).collect())
                    .collect(),
            })
            .collect(),
        unschedulable: plan
            .spec
            .unschedulable
            .iter()
            .map(|u| UnschedulableDto {
                id: u.node.to_string(),
                name: name_of(&u.node),
                reasons: u.reasons.clone(),
            })
            .collect(),
    })
}

/// `POST /api/v1/instances`: 201 with the instance, or 200 with the plan on a dry run
/// (which records nothing).
pub async fn deploy(
    State(s): State<AppState>,
    caller: Caller,
    Body(body): Body<DeployInstance>,
) -> Result<Response, ApiError> {
    let (intent, dry) = intent(body);
    seen_env(&caller.scope, "env", &intent.env)?;
    // A node named out of the scope is unknown, as a node that does not exist is.
    for choice in &intent.nodes {
        seen_node(&s, &caller.scope, &choice.node)?;
    }
    // An instance of that name elsewhere is a conflict the command names; out of the
    // scope, it is one the caller cannot see, so the name is refused as taken.
    seen_instance(&s, &caller.scope, &intent.name).map_err(|_| {
        ApiError::new(
            StatusCode::CONFLICT,
            "instance_exists",
            Some("name"),
            format!("the instance name \"{}\" is taken", intent.name),
        )
    })?;
    if dry {
        return Ok(Json(dry_run(&s, &intent)?).into_response());
    }
    let name = intent.name.clone();
    s.engine
        .submit(caller.actor, Command::Deploy(Box::new(intent)))
        .await?;
    Ok((StatusCode::CREATED, Json(view(&s, &name)?)).into_response())
}

pub async fn list(State(s): State<AppState>, caller: Caller) -> Json<Vec<InstanceDto>> {
    let p = s.engine.read();
    Json(
        p.instances
            .values()
            .filter(|i| caller.scope.sees_instance(&i.spec))
            .map(|i| views::instance(&p, i, &s.hub))
            .collect(),
    )
}

pub async fn show(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<InstanceDto>, ApiError> {
    seen_instance(&s, &caller.scope, &name)?;
    view(&s, &name).map(Json)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UndeployQuery {
    #[serde(default)]
    purge: bool,
}

pub async fn undeploy(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Params(q): Params<UndeployQuery>,
) -> Result<Json<UndeployDto>, ApiError> {
    seen_instance(&s, &caller.scope, &name)?;
    let events = s
        .engine
        .submit(
            caller.actor,
            Command::Undeploy {
                name: name.clone(),
                purge: q.purge,
            },
        )
        .await?;
    Ok(Json(UndeployDto {
        name,
        purge: q.purge,
        seq: events.first().map_or(0, |e| e.seq),
    }))
}
