//! `/api/v1/environments`: create, list, show, rename (`POST .../{env}/rename`), set
//! the description and entry addresses (`PATCH .../{env}`), delete.
//!
//! A token limited to some environments sees, renames, sets and deletes only those (a
//! rename takes its scope along: the token is limited to the new name afterwards), and
//! creates none.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::caller::Caller;
use super::dto::{CreateEnvironment, EnvironmentDto, RenameEnvironment, UpdateEnvironment};
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

/// `POST /api/v1/environments/{env}/rename` with `{"name": NEW}`: the environment under
/// its new name.
pub async fn rename(
    State(s): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
    Body(req): Body<RenameEnvironment>,
) -> Result<Json<EnvironmentDto>, ApiError> {
    seen_env(&caller.scope, "env", &env)?;
    view(&s, &env)?;
    let to = req.name.clone();
    s.engine
        .submit(
            caller.actor,
            Command::RenameEnvironment {
                name: env,
                to: req.name,
            },
        )
        .await?;
    view(&s, &to).map(Json)
}

/// `PATCH /api/v1/environments/{env}` with `{"description", "entries"}`: the environment
/// as it is afterwards.
pub async fn update(
    State(s): State<AppState>,
    caller: Caller,
    Path(env): Path<String>,
    Body(req): Body<UpdateEnvironment>,
) -> Result<Json<EnvironmentDto>, ApiError> {
    seen_env(&caller.scope, "env", &env)?;
    view(&s, &env)?;
    s.engine
        .submit(
            caller.actor,
            Command::UpdateEnvironment {
                name: env.clone(),
                description: req.description,
                entries: req.entries,
            },
        )
        .await?;
    view(&s, &env).map(Json)
}
