//! `/api/v1/tokens`: API tokens, created (the secret shown once), listed (never the
//! secret) and revoked. Only `admin` reaches these routes ([`super::auth::ROUTES`]); a
//! token limited to some environments sees and makes only tokens within them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use skerry_shared::access::{ApiToken, Role};
use skerry_shared::clock::Timestamp;
use skerry_shared::ids::TokenId;

use super::caller::{Caller, Scope};
use super::dto::{ApiTokenDto, CreateApiToken, CreatedApiTokenDto};
use super::error::{ApiError, Body, Path};
use super::state::AppState;
use crate::command::Command;
use crate::command::token::NewApiToken;
use crate::projections::ApiTokenState;

/// The longest lifetime a token is given (ten years).
const MAX_TTL: std::time::Duration = std::time::Duration::from_secs(3650 * 24 * 3600);

/// A new token with a random id and secret.
pub fn random_token() -> ApiToken {
    ApiToken {
        id: TokenId::random(),
        secret: rand::random(),
    }
}

/// A token state as lists show it.
pub fn view(t: &ApiTokenState, now: Timestamp) -> ApiTokenDto {
    let state = if t.revoked.is_some() {
        "revoked"
    } else if t.is_live(now) {
        "active"
    } else {
        "expired"
    };
    ApiTokenDto {
        id: t.id.to_string(),
        role: t.role.to_string(),
        envs: t.envs.iter().map(ToString::to_string).collect(),
        description: t.description.clone(),
        created: t.created.to_string(),
        expires: t.expires.map(|e| e.to_string()),
        revoked: t.revoked.map(|r| r.to_string()),
        state: state.to_owned(),
    }
}

/// Whether a caller of `scope` sees the token `t`: every token when unlimited, else the
/// tokens limited to environments within its own.
fn sees(scope: &Scope, t: &ApiTokenState) -> bool {
    match scope.envs() {
        None => true,
        Some(envs) => !t.envs.is_empty() && t.envs.iter().all(|e| envs.contains(e)),
    }
}

fn ttl(raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    let Some(t) = raw else { return Ok(None) };
    let d = humantime::parse_duration(t).map_err(|e| {
        ApiError::bad_request(
            "invalid_ttl",
            "ttl",
            format!("\"{t}\" is not a duration like 30d or 12h: {e}"),
        )
    })?;
    if d.is_zero() || d > MAX_TTL {
        return Err(ApiError::bad_request(
            "invalid_ttl",
            "ttl",
            "an API token lives more than 0 s and at most 3650 days",
        ));
    }
    Ok(Some(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
}

/// `POST /api/v1/tokens`: 201 with the token, shown this once.
pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    Body(req): Body<CreateApiToken>,
) -> Result<(StatusCode, Json<CreatedApiTokenDto>), ApiError> {
    let role: Role = req
        .role
        .parse()
        .map_err(|e: skerry_shared::access::UnknownRole| {
            ApiError::bad_request("invalid_role", "role", e.to_string())
        })?;
    let now = Timestamp::now();
    let expires = ttl(req.ttl.as_deref())?.map(|ms| now.plus_millis(ms));
    let token = random_token();
    let new = NewApiToken {
        id: token.id,
        secret_hash: token.secret_hash(),
        role,
        envs: req.envs,
        expires,
        description: req.description,
        within: caller.scope.envs().map(<[_]>::to_vec),
    };
    s.engine
        .submit(caller.actor, Command::CreateApiToken(Box::new(new)))
        .await?;
    let info = {
        let p = s.engine.read();
        let state = p
            .api_tokens
            .get(&token.id)
            .ok_or_else(|| ApiError::internal("the new token is not in the read model"))?;
        view(state, Timestamp::now())
    };
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiTokenDto {
            info,
            token: token.to_string(),
        }),
    ))
}

/// `GET /api/v1/tokens`: every token the caller sees, oldest first, never a secret.
pub async fn list(State(s): State<AppState>, caller: Caller) -> Json<Vec<ApiTokenDto>> {
    let now = Timestamp::now();
    let p = s.engine.read();
    let mut tokens: Vec<&ApiTokenState> = p
        .api_tokens
        .iter()
        .filter(|t| sees(&caller.scope, t))
        .collect();
    tokens.sort_by_key(|t| (t.created, t.id));
    Json(tokens.into_iter().map(|t| view(t, now)).collect())
}

/// `DELETE /api/v1/tokens/{id}`: the token's next request gets 401. Revoking a revoked
/// token answers as the first revocation did.
pub async fn revoke(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ApiTokenDto>, ApiError> {
    let within = caller.scope.envs().map(<[_]>::to_vec);
    s.engine
        .submit(
            caller.actor,
            Command::RevokeApiToken {
                id: id.clone(),
                within,
            },
        )
        .await?;
    let p = s.engine.read();
    let state = id
        .parse::<TokenId>()
        .ok()
        .and_then(|id| p.api_tokens.get(&id))
        .ok_or_else(|| ApiError::internal("the revoked token is not in the read model"))?;
    Ok(Json(view(state, Timestamp::now())))
}
