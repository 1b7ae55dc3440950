//! `/api/v1/secrets`: set (`PUT /api/v1/secrets/{name}`, admin), list (viewer: names,
//! environment, version and times, never values) and delete (admin).
//!
//! The value travels once, hex-encoded in the `PUT` body; it is sealed here (for the log
//! and for each node in the secret's scope that has a key) and wiped; nothing stores or
//! logs it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use skerry_shared::ids::{Name, shown};
use skerry_shared::secret::{MAX_SECRET_BYTES, SecretValue};
use zeroize::Zeroize;

use super::caller::Caller;
use super::error::{ApiError, Body, Path};
use super::state::{AppState, seen_env};
use crate::command::Command;
use crate::command::secret::{NewSecret, in_scope};
use crate::projections::SecretState;

/// The body of `PUT /api/v1/secrets/{name}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetSecret {
    /// The value, hex-encoded (at most 64 KiB once decoded).
    pub value_hex: String,
    /// The environment the secret is limited to; left out: every environment.
    #[serde(default)]
    pub env: Option<String>,
}

impl std::fmt::Debug for SetSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetSecret")
            .field("env", &self.env)
            .finish_non_exhaustive()
    }
}

/// A secret as lists show it: never its value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretDto {
    pub name: String,
    pub env: Option<String>,
    pub version: u64,
    pub created: String,
    pub updated: String,
    /// How many nodes hold its latest version.
    pub nodes: usize,
}

fn dto(s: &SecretState) -> SecretDto {
    SecretDto {
        name: s.name.to_string(),
        env: s.env.as_ref().map(ToString::to_string),
        version: s.version,
        created: s.created.to_rfc3339(),
        updated: s.updated.to_rfc3339(),
        nodes: s.delivered.values().filter(|v| **v == s.version).count(),
    }
}

fn sees(caller: &Caller, s: &SecretState) -> bool {
    match &s.env {
        Some(env) => caller.scope.sees_env(env.as_str()),
        None => caller.scope.is_all(),
    }
}

fn unknown(name: &str) -> ApiError {
    ApiError::not_found(
        "unknown_secret",
        "name",
        format!("no secret named {}", shown(name)),
    )
}

pub async fn set(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Body(mut req): Body<SetSecret>,
) -> Result<(StatusCode, Json<SecretDto>), ApiError> {
    let parsed = Name::parse(&name)
        .map_err(|e| ApiError::bad_request("invalid_name", "name", e.to_string()))?;
    match &req.env {
        Some(env) => seen_env(&caller.scope, "env", env)?,
        None if !caller.scope.is_all() => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                Some("env"),
                "a token limited to some environments sets secrets for one of them: name it with --env",
            ));
        }
        None => {}
    }
    if req.value_hex.len() > 2 * MAX_SECRET_BYTES {
        return Err(ApiError::bad_request(
            "invalid_value",
            "value_hex",
            format!("the value is over {MAX_SECRET_BYTES} bytes (64 KiB)"),
        ));
    }
    let decoded = hex::decode(req.value_hex.as_bytes());
    req.value_hex.zeroize();
    let value = SecretValue::new(
        decoded
            .map_err(|_| ApiError::bad_request("invalid_value", "value_hex", "not hex digits"))?,
    );
    let secret = {
        let p = s.engine.read();
        // One secret per name: one of an environment the caller does not see (or for
        // every environment, for a scoped caller) is as unknown to it as a missing one.
        if p.secrets
            .get(parsed.as_str())
            .is_some_and(|c| !sees(&caller, c))
        {
            return Err(unknown(&name));
        }
        let version = p.secrets.get(parsed.as_str()).map_or(1, |c| c.version + 1);
        let env = req
            .env
            .as_deref()
            .and_then(|e| p.envs.get(e))
            .map(|e| e.name.clone());
        let sealed = s
            .secrets
            .seal_at_rest(&parsed, version, &value)
            .map_err(|e| ApiError::bad_request("invalid_value", "value_hex", e.to_string()))?;
        let mut copies = Vec::new();
        for node in p.nodes.values().filter(|n| in_scope(env.as_ref(), n)) {
            let Some(key) = p.secrets.node_key(node.id) else {
                continue;
            };
            match s.secrets.seal_for(key, &parsed, version, node.id, &value) {
                Ok(sealed) => copies.push((node.id, sealed)),
                Err(e) => {
                    tracing::warn!(node = %node.id, error = %e, "cannot seal a secret for a node")
                }
            }
        }
        NewSecret {
            name: name.clone(),
            env: req.env.clone(),
            version,
            sealed,
            copies,
        }
    };
    drop(value);
    s.engine
        .submit(caller.actor, Command::SetSecret(Box::new(secret)))
        .await?;
    let p = s.engine.read();
    let state = p.secrets.get(&name).ok_or_else(|| unknown(&name))?;
    Ok((StatusCode::OK, Json(dto(state))))
}

pub async fn list(State(s): State<AppState>, caller: Caller) -> Json<Vec<SecretDto>> {
    let p = s.engine.read();
    Json(
        p.secrets
            .iter()
            .filter(|sec| sees(&caller, sec))
            .map(dto)
            .collect(),
    )
}

pub async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<SecretDto>, ApiError> {
    let shown = {
        let p = s.engine.read();
        match p.secrets.get(&name) {
            Some(sec) if sees(&caller, sec) => dto(sec),
            _ => return Err(unknown(&name)),
        }
    };
    s.engine
        .submit(caller.actor, Command::DeleteSecret { name })
        .await?;
    Ok(Json(shown))
}
