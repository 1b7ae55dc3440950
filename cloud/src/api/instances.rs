//! `/api/v1/instances`: deploy (and its dry run), status, undeploy.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use skerry_shared::manifest::ComponentKind;

use super::caller::Caller;
use super::dto::{
    AmountDto, ChangeDto, DeployInstance, DryRunDto, HostPortDto, InstanceDto, NodePlanDto,
    ResourcesDto, UndeployDto, UnfitNodeDto, UnschedulableDto,
};
use super::error::{ApiError, Body, Params, Path};
use super::state::{AppState, seen_env, seen_instance, seen_node};
use super::views;
use crate::command::fit::Amount;
use crate::command::preview::NodePreview;
use crate::command::{Command, DeployIntent, NodeChoice, plan_deploy};

pub(super) fn view(s: &AppState, name: &str) -> Result<InstanceDto, ApiError> {
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

/// The room, shortfalls and changes of a [`NodePreview`], as the dry runs' JSON says them.
pub(super) fn preview_dto(preview: &NodePreview) -> (ResourcesDto, Vec<String>, Vec<ChangeDto>) {
    let amount = |a: &Amount| AmountDto {
        needed: a.needed,
        free: a.free,
        capacity: a.capacity,
    };
    let room = &preview.room;
    let resources = ResourcesDto {
        cpu_millicores: amount(&room.cpu),
        memory_bytes: amount(&room.memory),
        host_ports: room
            .host_ports
            .iter()
            .map(|h| HostPortDto {
                port: h.port,
                component: h.component.clone(),
                in_use_by: h.in_use_by.clone(),
            })
            .collect(),
    };
    let changes = preview
        .changes
        .iter()
        .map(|c| ChangeDto {
            action: c.kind.to_string(),
            kind: c.what().to_owned(),
            replica: c.replica_name(),
            component_kind: match c.component_kind {
                ComponentKind::Service => "service",
                ComponentKind::Init => "init",
                ComponentKind::Job => "job",
            }
            .to_owned(),
        })
        .collect();
    (resources, preview.shortfalls.clone(), changes)
}

/// The plan of a deploy, recording nothing: per target node the planner's rounds, the
/// room and the replicas created; per unfit node its reasons and room.
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
            .node_plans(&p)
            .into_iter()
            .map(|np| {
                let (resources, shortfalls, changes) = preview_dto(&np.preview);
                NodePlanDto {
                    node: name_of(&np.node),
                    node_id: np.node.to_string(),
                    weight: np.weight,
                    steps: np
                        .steps
                        .iter()
                        .map(|round| round.iter().map(ToString::to_string).collect())
                        .collect(),
                    resources,
                    shortfalls,
                    changes,
                }
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
        unfit: plan
            .unfit_previews(&p)
            .iter()
            .map(|preview| {
                let (resources, shortfalls, _) = preview_dto(preview);
                UnfitNodeDto {
                    node: name_of(&preview.node),
                    node_id: preview.node.to_string(),
                    resources,
                    shortfalls,
                }
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
