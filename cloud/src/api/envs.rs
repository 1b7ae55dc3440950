//! `/api/v1/environments`

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::caller::Caller;
use super::dto::{CreateEnvironment, EnvironmentDto};
use super::error::{ApiError, Body, Path};
use super::state::{AppState, seen_env};
use super::views;
use crate::command::Command;

fn view(s: &AppState, name: &str) -> Result<EnvironmentDto, ApiError> {
    let p = s.engine.read();
    let e = p.envs.get(name).ok_or_else(|| {
        ApiError::not_found(
            "unknown_environment",
            "env",
            format!("no environment named \"{name}\""),
        )
    })?;
    Ok(views::environment(&p, e))
}

pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    Body(req): Body<CreateEnvironment>,
) -> Result<(StatusCode, Json<EnvironmentDto>), ApiError> {
    if !caller.scope.is_all() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            Some("name"),
            "a token limited to some environments cannot create one",
        ));
    }
    let name = req.name.clone();
    s.engine
        .submit(
            caller.actor,
            Command::CreateEnvironment {
                name: req.name,
                labels: req.labels,
                entries: req.entries,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(view(&s, &name)?)))
}

pub async fn list(State(s): State<AppState>, caller: Caller) -> Json<Vec<EnvironmentDto>> {
    let p = s.engine.read();
    Json(
        p.envs
            .values()
            .filter(|e| caller.scope.sees_env(e.name.as_str()))
            .map(|e| views::environment(&p, e))
            .collect(),
    )
}

pub async fn show(
    State(s): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
) -> Result<Json<EnvironmentDto>, ApiError> {
    seen_env(&caller.scope, "env", &env)?;
    view(&s, &env).map(Json)
}

pub async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
) -> Result<Json<EnvironmentDto>, ApiError> {
    seen_env(&caller.scope, "env", &env)?;
    let before = view(&s, &env)?;
    s.engine
        .submit(caller.actor, Command::DeleteEnvironment { name: env })
        .await?;
    Ok(Json(before))
}
