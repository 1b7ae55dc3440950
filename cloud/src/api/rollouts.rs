//! `/api/v1/instances/{name}/upgrade`, `.../rollback` and `.../rollout`: rollouts started,
//! watched, paused, resumed and aborted (`.../restart` starts one too, in `lifecycle.rs`).
//!
//! `upgrade` and `rollback` answer 202 with the rollout as recorded (the rollout controller
//! carries it on), or 200 with the plan on a dry run, which records nothing. A second
//! rollout of an instance while one runs is 409, naming the running one.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use skerry_shared::clock::Timestamp;
use skerry_shared::ids::NodeId;
use skerry_shared::quantity::Duration;
use skerry_shared::rollout::{RolloutOutcome, RolloutPolicy};

use super::caller::Caller;
use super::dto::NodePlanDto;
use super::error::{ApiError, Body, Path};
use super::rollout_dto::{
    BatchDto, NodeReasonDto, PolicyDto, RollbackBody, RolloutActionBody, RolloutDto,
    RolloutPlanDto, UpgradeBody,
};
use super::state::{AppState, seen_instance, seen_node};
use crate::command::rollout::{RolloutAction, RolloutIntent, plan};
use crate::command::{Command, NodeChoice};
use crate::projections::{Projections, RolloutState};

fn name_of(p: &Projections, id: &NodeId) -> String {
    p.nodes
        .get(id)
        .map_or_else(|| id.to_string(), |n| n.name.to_string())
}

fn names(p: &Projections, ids: &[NodeId]) -> Vec<String> {
    ids.iter().map(|id| name_of(p, id)).collect()
}

fn policy_dto(policy: &RolloutPolicy) -> PolicyDto {
    PolicyDto {
        batches: policy.shares.iter().map(ToString::to_string).collect(),
        settle: Duration::from_millis(policy.settle_ms).to_string(),
        timeout: Duration::from_millis(policy.timeout_ms).to_string(),
        max_unavailable: policy.max_unavailable,
        max_failed: policy.max_failed.to_string(),
        auto_rollback: policy.auto_rollback,
    }
}

/// The rollout as `GET .../rollout` shows it, as of `now`.
pub fn rollout_view(p: &Projections, r: &RolloutState, now: Timestamp) -> RolloutDto {
    let start = &r.start;
    let (state, reason, finished) = match (&r.outcome, r.paused) {
        (None, false) => ("running", None, None),
        (None, true) => ("paused", None, None),
        (Some((o, at)), _) => {
            let (state, reason) = match o {
                RolloutOutcome::Completed => ("completed", None),
                RolloutOutcome::RolledBack { reason } => ("rolled-back", Some(reason.clone())),
                RolloutOutcome::Failed { reason } => ("failed", Some(reason.clone())),
                RolloutOutcome::Aborted => ("aborted", None),
            };
            (state, reason, Some(*at))
        }
    };
    let reason_list = |ids: &[NodeId], why: &str| -> Vec<NodeReasonDto> {
        ids.iter()
            .map(|id| NodeReasonDto {
                node: name_of(p, id),
                reason: why.to_owned(),
            })
            .collect()
    };
    let mut waiting = Vec::new();
    let mut failed = Vec::new();
    let mut done = 0;
    let batches: Vec<BatchDto> = start
        .batch_nodes()
        .enumerate()
        .map(|(i, new)| {
            let Some(b) = r.batches.get(i) else {
                return BatchDto {
                    batch: u32::try_from(i + 1).unwrap_or(u32::MAX),
                    nodes: names(p, new),
                    state: "pending".to_owned(),
                    started: None,
                    finished: None,
                    duration_ms: None,
                    changed: Vec::new(),
                    passed: Vec::new(),
                    failed: Vec::new(),
                    waiting: Vec::new(),
                };
            };
            let state = match b.ok {
                None if r.outcome.is_some() => "stopped",
                None => "running",
                Some(true) => "passed",
                Some(false) => "failed",
            };
            let end = b.finished.or(finished).unwrap_or(now);
            let offline: Vec<NodeId> = b
                .offline
                .iter()
                .filter(|n| !b.changed.contains(n))
                .copied()
                .collect();
            let b_waiting = reason_list(&offline, "offline");
            waiting.extend(b_waiting.iter().cloned());
            let b_failed: Vec<NodeReasonDto> = b
                .failed
                .iter()
                .map(|f| NodeReasonDto {
                    node: name_of(p, &f.node),
                    reason: f.reason.clone(),
                })
                .collect();
            failed.extend(b_failed.iter().cloned());
            done += b.passed.len();
            if b.finished.is_none() && r.outcome.is_none() {
                let pending: Vec<NodeId> = b
                    .changed
                    .iter()
                    .chain(b.nodes.iter().filter(|n| !b.changed.contains(n)))
                    .copied()
                    .collect();
                waiting.extend(reason_list(&pending, "settling"));
            }
            BatchDto {
                batch: b.batch,
                nodes: names(p, new),
                state: state.to_owned(),
                started: Some(b.started.to_string()),
                finished: b.finished.map(|t| t.to_string()),
                duration_ms: Some(end.0.saturating_sub(b.started.0)),
                changed: names(p, &b.changed),
                passed: names(p, &b.passed),
                failed: b_failed,
                waiting: b_waiting,
            }
        })
        .collect();
    RolloutDto {
        instance: start.instance.to_string(),
        id: start.id,
        kind: start.kind.to_string(),
        app: start.to.app.to_string(),
        from_version: r.from.version.to_string(),
        to_version: start.to.version.to_string(),
        state: state.to_owned(),
        reason,
        started: r.started.to_string(),
        finished: finished.map(|t| t.to_string()),
        policy: policy_dto(&start.policy),
        nodes: start.order.len(),
        done,
        batches,
        waiting,
        failed,
    }
}

fn recorded(s: &AppState, name: &str) -> Result<RolloutDto, ApiError> {
    let p = s.engine.read();
    let r = p
        .instances
        .get(name)
        .and_then(|i| i.rollout.as_ref())
        .ok_or_else(|| {
            ApiError::not_found(
                "no_rollout",
                "instance",
                format!("instance \"{name}\" has had no rollout"),
            )
        })?;
    Ok(rollout_view(&p, r, Timestamp::now()))
}

fn plan_view(s: &AppState, intent: &RolloutIntent) -> Result<RolloutPlanDto, ApiError> {
    let p = s.engine.read();
    let planned = plan(&p, intent)?;
    let start = &planned.start;
    let inst = p.instances.get(&start.instance);
    let from = inst.map(|i| i.spec.version.to_string()).unwrap_or_default();
    // Per node the rollout changes, in its order: the room, and the replicas replaced.
    let nodes = start
        .order
        .iter()
        .filter_map(|id| {
            let node = p.nodes.get(id)?;
            let current = inst.map(|i| i.spec_on(*id));
            // What the node gets: stopped if it is stopped, say.
            let to = inst.map_or(std::borrow::Cow::Borrowed(&start.to), |i| {
                i.target_on(&start.to, *id)
            });
            let preview = crate::command::preview::preview(&p, node, current, Some(&to));
            let (resources, shortfalls, changes) = super::instances::preview_dto(&preview);
            Some(NodePlanDto {
                node: node.name.to_string(),
                node_id: id.to_string(),
                weight: start
                    .to
                    .nodes
                    .iter()
                    .find(|t| t.node == *id)
                    .map_or(1, |t| t.weight),
                steps: Vec::new(),
                resources,
                shortfalls,
                changes,
            })
        })
        .collect();
    Ok(RolloutPlanDto {
        instance: start.instance.to_string(),
        kind: start.kind.to_string(),
        app: start.to.app.to_string(),
        from_version: from,
        to_version: start.to.version.to_string(),
        policy: policy_dto(&start.policy),
        batches: start.batch_nodes().map(|ids| names(&p, ids)).collect(),
        nodes,
    })
}

pub(super) async fn begin(
    s: &AppState,
    caller: Caller,
    intent: RolloutIntent,
    dry: bool,
) -> Result<Response, ApiError> {
    if dry {
        return Ok(Json(plan_view(s, &intent)?).into_response());
    }
    let name = intent.instance.clone();
    s.engine
        .submit(caller.actor, Command::StartRollout(Box::new(intent)))
        .await?;
    Ok((StatusCode::ACCEPTED, Json(recorded(s, &name)?)).into_response())
}

/// `POST /api/v1/instances/{name}/upgrade`
pub async fn upgrade(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Body(body): Body<UpgradeBody>,
) -> Result<Response, ApiError> {
    seen_instance(&s, &caller.scope, &name)?;
    for n in &body.nodes {
        seen_node(&s, &caller.scope, &n.node)?;
    }
    let intent = RolloutIntent {
        instance: name,
        to: body.to,
        batch: body.batch,
        settle: body.settle,
        timeout: body.timeout,
        max_unavailable: body.max_unavailable,
        max_failed: body.max_failed,
        set: body.set,
        nodes: body
            .nodes
            .into_iter()
            .map(|n| NodeChoice {
                node: n.node,
                weight: n.weight,
            })
            .collect(),
        auto_rollback: !body.no_auto_rollback,
        ..RolloutIntent::default()
    };
    begin(&s, caller, intent, body.dry_run).await
}

/// `POST /api/v1/instances/{name}/rollback`
pub async fn rollback(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Body(body): Body<RollbackBody>,
) -> Result<Response, ApiError> {
    seen_instance(&s, &caller.scope, &name)?;
    let intent = RolloutIntent {
        instance: name,
        rollback: true,
        batch: body.batch,
        settle: body.settle,
        timeout: body.timeout,
        max_unavailable: body.max_unavailable,
        max_failed: body.max_failed,
        auto_rollback: !body.no_auto_rollback,
        ..RolloutIntent::default()
    };
    begin(&s, caller, intent, body.dry_run).await
}

/// `GET /api/v1/instances/{name}/rollout`: the running rollout, or the last one.
pub async fn show(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<RolloutDto>, ApiError> {
    seen_instance(&s, &caller.scope, &name)?;
    if !s.engine.read().instances.contains_key(name.as_str()) {
        return Err(ApiError::not_found(
            "unknown_instance",
            "instance",
            format!("no instance named \"{name}\""),
        ));
    }
    recorded(&s, &name).map(Json)
}

/// `POST /api/v1/instances/{name}/rollout`: `pause`, `resume` or `abort`.
pub async fn act(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Body(body): Body<RolloutActionBody>,
) -> Result<Json<RolloutDto>, ApiError> {
    seen_instance(&s, &caller.scope, &name)?;
    let action = RolloutAction::parse(&body.action).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_action",
            Some("action"),
            format!(
                "{} is not an action: pause, resume or abort",
                skerry_shared::ids::shown(&body.action)
            ),
        )
    })?;
    s.engine
        .submit(
            caller.actor,
            Command::ControlRollout {
                instance: name.clone(),
                action,
            },
        )
        .await?;
    recorded(&s, &name).map(Json)
}
