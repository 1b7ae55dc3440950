//! `/api/v1/apps`: publish (the manifest's YAML as the body) and read apps and versions.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use skerry_shared::manifest::parse_manifest;

use super::caller::{Caller, Scope};
use super::dto::{AppDto, AppVersionDto};
use super::error::{ApiError, Path};
use super::state::AppState;
use super::views;
use crate::command::Command;
use crate::projections::Projections;

/// `POST /api/v1/apps`: 201 when published, 200 when the same content was already
/// published under that version, 400 naming the field when the manifest is refused.
pub async fn publish(
    State(s): State<AppState>,
    Caller { actor, .. }: Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<AppVersionDto>), ApiError> {
    let body =
        body.map_err(|e| ApiError::new(e.status(), "invalid_manifest", None, e.body_text()))?;
    let text = std::str::from_utf8(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_manifest",
            "",
            format!("the manifest is not UTF-8: {e}"),
        )
    })?;
    let manifest = parse_manifest(text).map_err(|e| {
        let first = e.first();
        let mut message = first.message.clone();
        if e.errors.len() > 1 {
            let rest: Vec<String> = e.errors[1..]
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect();
            message = format!("{message} (also: {})", rest.join("; "));
        }
        ApiError::bad_request("invalid_manifest", &first.field, message)
    })?;
    let (app, version) = (manifest.app.clone(), manifest.version.clone());
    let events = s
        .engine
        .submit(
            actor,
            Command::PublishApp {
                manifest: Box::new(manifest),
            },
        )
        .await?;
    let p = s.engine.read();
    let v = p
        .app_version(app.as_str(), &version)
        .ok_or_else(|| ApiError::internal("published version not found"))?;
    let created = !events.is_empty();
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(views::app_version(v, created, false))))
}

/// An app, with the instances of it that a caller of `scope` sees.
fn app_view(p: &Projections, name: &str, scope: &Scope) -> Option<AppDto> {
    let versions = p.apps.get(name)?;
    Some(AppDto {
        name: name.to_owned(),
        versions: versions.keys().map(ToString::to_string).collect(),
        latest: versions
            .keys()
            .next_back()
            .map(ToString::to_string)
            .unwrap_or_default(),
        instances: p
            .instances
            .values()
            .filter(|i| i.spec.app.as_str() == name && scope.sees_instance(&i.spec))
            .map(|i| i.spec.name.to_string())
            .collect(),
    })
}

pub async fn list(State(s): State<AppState>, caller: Caller) -> Json<Vec<AppDto>> {
    let p = s.engine.read();
    Json(
        p.apps
            .keys()
            .filter_map(|a| app_view(&p, a.as_str(), &caller.scope))
            .collect(),
    )
}

pub async fn show(
    State(s): State<AppState>,
    caller: Caller,
    Path(app): Path<String>,
) -> Result<Json<AppDto>, ApiError> {
    let p = s.engine.read();
    app_view(&p, &app, &caller.scope).map(Json).ok_or_else(|| {
        ApiError::not_found(
            "unknown_app",
            "app",
            format!("no app named \"{app}\" is published"),
        )
    })
}

pub async fn show_version(
    State(s): State<AppState>,
    Path((app, version)): Path<(String, String)>,
) -> Result<Json<AppVersionDto>, ApiError> {
    let v = semver::Version::parse(&version).map_err(|e| {
        ApiError::bad_request("invalid_version", "version", format!("\"{version}\": {e}"))
    })?;
    let p = s.engine.read();
    // One code for one fact: an app that is not published is `unknown_app` here too.
    if !p.apps.contains_key(app.as_str()) {
        return Err(ApiError::not_found(
            "unknown_app",
            "app",
            format!("no app named \"{app}\" is published"),
        ));
    }
    let found = p.app_version(&app, &v).ok_or_else(|| {
        ApiError::not_found(
            "unknown_app_version",
            "version",
            format!("{app}@{version} is not published"),
        )
    })?;
    Ok(Json(views::app_version(found, false, true)))
}
