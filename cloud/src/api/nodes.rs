//! `/api/v1/nodes`

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::caller::{Caller, Scope};
use super::dto::{JoinEnvironment, LabelNode, NodeDto, NodeLogsDto, PatchNode};
use super::error::{ApiError, Body, Params, Path};
use super::state::{AppState, seen_env, seen_node};
use super::{query, views};
use crate::command::Command;
use crate::sync::NodeLogsError;

fn view(s: &AppState, scope: &Scope, node: &str) -> Result<NodeDto, ApiError> {
    let p = s.engine.read();
    let n = p.node(node).ok_or_else(|| {
        ApiError::not_found(
            "unknown_node",
            "node",
            format!("no node named or with id \"{node}\""),
        )
    })?;
    Ok(views::node(&p, n, &s.hub, scope))
}

/// 403 `forbidden` unless `scope` sees every environment of `node`: what changes a node
/// for all of them (its name, its labels, which steer other environments' selectors, its
/// removal, which drops their placements) needs a caller of every one. The caller sees
/// the node already, so the answer names none of the environments it does not see.
fn whole_node(s: &AppState, scope: &Scope, node: &str) -> Result<(), ApiError> {
    let p = s.engine.read();
    match p.node(node) {
        Some(n) if !n.envs.iter().all(|e| scope.sees_env(e.as_str())) => Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "forbidden",
            Some("node"),
            format!(
                "node {} is also in environments this token does not see; only a token of \
                 all of them may rename, label, readdress or remove it",
                n.name
            ),
        )),
        _ => Ok(()),
    }
}

/// How much of a node a command's caller must see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// One of its environments (joining or leaving one of the caller's).
    Part,
    /// All of them ([`whole_node`]).
    Whole,
}

/// Runs a node command and answers with the node as it is afterwards. The node is looked
/// up by id after the command, so a rename is followed.
async fn command(
    s: &AppState,
    caller: Caller,
    node: &str,
    needs: Needs,
    cmd: Command,
) -> Result<Json<NodeDto>, ApiError> {
    seen_node(s, &caller.scope, node)?;
    if needs == Needs::Whole {
        whole_node(s, &caller.scope, node)?;
    }
    let id = view(s, &caller.scope, node)?.id;
    s.engine.submit(caller.actor, cmd).await?;
    view(s, &caller.scope, &id).map(Json)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    env: Option<String>,
}

pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Params(q): Params<ListQuery>,
) -> Result<Json<Vec<NodeDto>>, ApiError> {
    if let Some(env) = &q.env {
        seen_env(&caller.scope, "env", env)?;
    }
    let p = s.engine.read();
    if let Some(env) = &q.env
        && !p.envs.contains_key(env.as_str())
    {
        return Err(ApiError::not_found(
            "unknown_environment",
            "env",
            format!("no environment named \"{env}\""),
        ));
    }
    // By name, as people read the list; the node index is by id.
    let mut nodes: Vec<NodeDto> = p
        .nodes
        .values()
        .filter(|n| caller.scope.sees_node(n))
        .filter(|n| {
            q.env
                .as_ref()
                .is_none_or(|e| n.envs.iter().any(|x| x.as_str() == e))
        })
        .map(|n| views::node(&p, n, &s.hub, &caller.scope))
        .collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(nodes))
}

pub async fn show(
    State(s): State<AppState>,
    caller: Caller,
    Path(node): Path<String>,
) -> Result<Json<NodeDto>, ApiError> {
    seen_node(&s, &caller.scope, &node)?;
    view(&s, &caller.scope, &node).map(Json)
}

/// `PATCH /api/v1/nodes/{node}`: `{"name"}` renames the node (`node rename`),
/// `{"address"}` sets its address (`node set --address`); one of them per call. Either
/// changes the node for all its environments, so the caller must see every one.
pub async fn patch(
    State(s): State<AppState>,
    caller: Caller,
    Path(node): Path<String>,
    Body(req): Body<PatchNode>,
) -> Result<Json<NodeDto>, ApiError> {
    let cmd = match req {
        PatchNode {
            name: Some(name),
            address: None,
        } => Command::RenameNode {
            node: node.clone(),
            name,
        },
        PatchNode {
            name: None,
            address: Some(address),
        } => Command::SetNodeAddress {
            node: node.clone(),
            address,
        },
        PatchNode { name: None, .. } => {
            return Err(ApiError::bad_request(
                "invalid_request",
                "name",
                "give the node's new name or its address",
            ));
        }
        PatchNode { .. } => {
            return Err(ApiError::bad_request(
                "invalid_request",
                "address",
                "give the node's new name or its address, one at a time",
            ));
        }
    };
    command(&s, caller, &node, Needs::Whole, cmd).await
}

pub async fn label(
    State(s): State<AppState>,
    caller: Caller,
    Path(node): Path<String>,
    Body(req): Body<LabelNode>,
) -> Result<Json<NodeDto>, ApiError> {
    let cmd = Command::LabelNode {
        node: node.clone(),
        set: req.set,
        remove: req.remove,
    };
    command(&s, caller, &node, Needs::Whole, cmd).await
}

pub async fn join(
    State(s): State<AppState>,
    caller: Caller,
    Path(node): Path<String>,
    Body(req): Body<JoinEnvironment>,
) -> Result<Json<NodeDto>, ApiError> {
    seen_env(&caller.scope, "env", &req.env)?;
    let cmd = Command::JoinEnvironment {
        node: node.clone(),
        env: req.env,
    };
    command(&s, caller, &node, Needs::Part, cmd).await
}

pub async fn leave(
    State(s): State<AppState>,
    caller: Caller,
    Path((node, env)): Path<(String, String)>,
) -> Result<Json<NodeDto>, ApiError> {
    seen_env(&caller.scope, "env", &env)?;
    let cmd = Command::LeaveEnvironment {
        node: node.clone(),
        env,
    };
    command(&s, caller, &node, Needs::Part, cmd).await
}

/// `DELETE /api/v1/nodes/{node}` (`node remove`): the node as it was before. Its agent is
/// told to stop its apps and forget its identity, its open session is closed and its
/// certificate revoked (see `command/remove.rs`).
pub async fn remove(
    State(s): State<AppState>,
    caller: Caller,
    Path(node): Path<String>,
) -> Result<Json<NodeDto>, ApiError> {
    seen_node(&s, &caller.scope, &node)?;
    whole_node(&s, &caller.scope, &node)?;
    let before = view(&s, &caller.scope, &node)?;
    let cmd = Command::RemoveNode {
        node: before.id.clone(),
    };
    s.engine.submit(caller.actor, cmd).await?;
    tracing::info!(node = %before.id, name = %before.name, "node removed");
    Ok(Json(before))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeLogsQuery {
    /// RFC 3339 or a duration before now.
    since: Option<String>,
    /// The newest bytes at most (default and limit 4 MiB).
    max_bytes: Option<u32>,
}

/// `GET /api/v1/nodes/{node}/logs`: the agent's own runtime log, fetched from it now.
pub async fn logs(
    State(s): State<AppState>,
    caller: Caller,
    Path(node): Path<String>,
    Params(q): Params<NodeLogsQuery>,
) -> Result<Json<NodeLogsDto>, ApiError> {
    seen_node(&s, &caller.scope, &node)?;
    let (id, name) = {
        let p = s.engine.read();
        let n = p.node(&node).ok_or_else(|| {
            ApiError::not_found(
                "unknown_node",
                "node",
                format!("no node named or with id \"{node}\""),
            )
        })?;
        (n.id, n.name.to_string())
    };
    let since = query::since(q.since.as_deref())?;
    let max = q
        .max_bytes
        .unwrap_or(MAX_NODE_LOG_BYTES)
        .clamp(1, MAX_NODE_LOG_BYTES);
    match s.hub.node_logs(id, since, max).await {
        Ok(logs) => Ok(Json(NodeLogsDto {
            node: name,
            node_id: id.to_string(),
            text: logs.text,
            truncated: logs.truncated,
        })),
        Err(e @ NodeLogsError::NotConnected { .. }) => Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "node_not_connected",
            Some("node"),
            format!("node {name}: {e}"),
        )),
        Err(e @ NodeLogsError::Timeout) => Err(ApiError::new(
            axum::http::StatusCode::GATEWAY_TIMEOUT,
            "node_timeout",
            Some("node"),
            format!("node {name}: {e}"),
        )),
        Err(e) => Err(ApiError::new(
            axum::http::StatusCode::BAD_GATEWAY,
            "node_error",
            Some("node"),
            format!("node {name}: {e}"),
        )),
    }
}

/// The most runtime log one answer carries.
const MAX_NODE_LOG_BYTES: u32 = 4 * 1024 * 1024;
