//! `/api/v1/instances/{name}/jobs`: the runs of an instance's jobs, as the agents reported
//! them (one record per run; a run reported at its start and at its end is listed once).
//!
//! `GET /api/v1/instances/{name}/jobs[?component=C][&node=NODE][&limit=N]` answers a
//! [`JobRunsDto`]: the newest `limit` runs (default 100, at most
//! [`MAX_RUNS_LISTED`](crate::reports::jobs::MAX_RUNS_LISTED)), oldest first by start.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use skerry_shared::ids::Name;
use skerry_shared::job::{RunOutcome, RunTrigger};

use super::caller::Caller;
use super::error::{ApiError, Params, Path};
use super::state::{AppState, node_id, seen_instance, seen_node};
use super::views::node_name;
use crate::reports::jobs::{MAX_RUNS_LISTED, RunQuery, StoredRun};

const DEFAULT_LIMIT: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsQuery {
    component: Option<String>,
    /// A node's name or id.
    node: Option<String>,
    limit: Option<usize>,
}

/// One run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRunDto {
    pub node: String,
    pub node_id: String,
    pub component: String,
    pub replica: u32,
    pub id: u64,
    /// `schedule` or `manual`.
    pub trigger: String,
    /// For a scheduled run: when it was due (RFC 3339, by the agent's clock).
    pub due: Option<String>,
    pub started: String,
    pub ended: Option<String>,
    pub duration_ms: Option<i64>,
    /// `running`, `exited`, `timed-out`, `replaced`, `failed`, `stopped`.
    pub outcome: String,
    pub exit_code: Option<i64>,
    /// In words: `exited 0`, `timed out`, `failed: ...`.
    pub summary: String,
    pub skipped: u32,
    pub last_lines: Vec<String>,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRunsDto {
    pub runs: Vec<JobRunDto>,
    /// Run reports the agents' outboxes dropped for their quota (the most any node said).
    pub dropped: u64,
}

fn dto(p: &crate::projections::Projections, r: &StoredRun) -> JobRunDto {
    let run = &r.report.run;
    let (trigger, due) = match run.trigger {
        RunTrigger::Schedule { due } => ("schedule", Some(due.to_rfc3339())),
        RunTrigger::Manual => ("manual", None),
    };
    let (outcome, exit_code) = match &run.outcome {
        RunOutcome::Running => ("running", None),
        RunOutcome::Exited { code } => ("exited", Some(*code)),
        RunOutcome::TimedOut => ("timed-out", None),
        RunOutcome::Replaced => ("replaced", None),
        RunOutcome::Failed { .. } => ("failed", None),
        RunOutcome::Stopped => ("stopped", None),
    };
    JobRunDto {
        node: node_name(p, &r.node),
        node_id: r.node.to_string(),
        component: run.component.to_string(),
        replica: run.replica,
        id: run.id,
        trigger: trigger.into(),
        due,
        started: run.started.to_rfc3339(),
        ended: run.ended.map(|t| t.to_rfc3339()),
        duration_ms: run.duration_ms(),
        outcome: outcome.into(),
        exit_code,
        summary: run.outcome.describe(),
        skipped: run.skipped,
        last_lines: run.last_lines.clone(),
    }
}

/// `GET /api/v1/instances/{name}/jobs`
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Params(q): Params<JobsQuery>,
) -> Result<Json<JobRunsDto>, ApiError> {
    seen_instance(&s, &caller.scope, &name)?;
    let instance = Name::parse(&name)
        .map_err(|e| ApiError::bad_request("invalid_name", "instance", e.to_string()))?;
    let component = q
        .component
        .as_deref()
        .map(|c| {
            Name::parse(c)
                .map_err(|e| ApiError::bad_request("invalid_name", "component", e.to_string()))
        })
        .transpose()?;
    if let Some(node) = q.node.as_deref() {
        seen_node(&s, &caller.scope, node)?;
    }
    let node = q.node.as_deref().map(|n| node_id(&s, n)).transpose()?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_RUNS_LISTED {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit",
            format!("limit must be from 1 to {MAX_RUNS_LISTED}, not {limit}"),
        ));
    }
    {
        let p = s.engine.read();
        if let (Some(c), Some(i)) = (&component, p.instances.get(&instance))
            && i.spec.manifest.component(c.as_str()).is_none()
        {
            return Err(ApiError::not_found(
                "unknown_component",
                "component",
                format!("instance \"{instance}\" has no component \"{c}\""),
            ));
        }
    }
    let store = s.reports.clone();
    let query = RunQuery {
        instance,
        component,
        node,
        limit,
    };
    let runs = tokio::task::spawn_blocking(move || store.job_runs(&query))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    let p = s.engine.read();
    Ok(Json(JobRunsDto {
        dropped: runs
            .iter()
            .map(|r| r.report.dropped_before)
            .max()
            .unwrap_or(0),
        runs: runs.iter().map(|r| dto(&p, r)).collect(),
    }))
}
