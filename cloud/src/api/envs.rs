//! `/api/v1/environments`

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::caller::Caller;
use super::dto::{CreateEnvironment, EnvironmentDto};
use super::error::{ApiError, Body, Path};
use super::state::AppState;
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
    Caller(actor): Caller,
    Body(req): Body<CreateEnvironment>,
) -> Result<(StatusCode, Json<EnvironmentDto>), ApiError> {
    let name = req.name.clone();
    s.engine
        .submit(
            actor,
            Command::CreateEnvironment {
                name: req.name,
                labels: req.labels,
                entries: req.entries,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(view(&s, &name)?)))
}

pub async fn list(State(s): State<AppState>) -> Json<Vec<EnvironmentDto>> {
    let p = s.engine.read();
    Json(p.envs.values().map(|e| views::environment(&p, e)).collect())
}

pub async fn show(
    State(s): State<AppState>,
    Path(env): Path<String>,
) -> Result<Json<EnvironmentDto>, ApiError> {
    view(&s, &env).map(Json)
}

pub async fn delete(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(env): Path<String>,
) -> Result<Json<EnvironmentDto>, ApiError> {
    let before = view(&s, &env)?;
    s.engine
        .submit(actor, Command::DeleteEnvironment { name: env })
        .await?;
    Ok(Json(before))
}
