//! `/api/v1/logs`: an instance's log lines, as the agents shipped them, paged or followed.
//!
//! `GET /api/v1/logs?instance=I[&component=C][&node=NODE][&since=T][&after=N][&limit=N]`
//! answers a [`LogsDto`]: lines in cursor order, the cursor to pass as `after` next, and the
//! lines the agents dropped for their log quota. With `follow=true` it streams the lines as
//! NDJSON (one [`LogLineDto`] per line), the backlog first, then new lines as they are
//! stored, with an empty line every 15 s, until the client leaves or the server stops.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use skerry_shared::ids::Name;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::AppState;
use super::dto::{
    FileDropsDto, LogLineDto, LogsDto, NodeDropsDto, NodeWaitingDto, ReplicaWaitingDto,
};
use super::error::{ApiError, Params};
use super::views::node_name;
use crate::projections::Projections;
use crate::reports::{LogLine, LogPage, LogQuery, NodeDrops, NodeWaiting};

/// Lines per read while following.
const PAGE: usize = 1000;
const DEFAULT_LIMIT: usize = 1000;
const MAX_LIMIT: usize = 10_000;
const KEEPALIVE: Duration = Duration::from_secs(15);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    /// Required.
    instance: Option<String>,
    component: Option<String>,
    /// A node's name or id.
    node: Option<String>,
    /// RFC 3339 (or a duration before now): only lines the agent read from then on.
    since: Option<String>,
    /// Only lines after this cursor.
    after: Option<u64>,
    limit: Option<usize>,
    #[serde(default)]
    follow: bool,
}

fn name(field: &str, text: &str) -> Result<Name, ApiError> {
    Name::parse(text).map_err(|e| ApiError::bad_request("invalid_name", field, e.to_string()))
}

/// The query parameters, checked and resolved against the projections.
fn resolve(s: &AppState, q: &LogsQuery) -> Result<LogQuery, ApiError> {
    let instance = match &q.instance {
        Some(i) => name("instance", i)?,
        None => {
            return Err(ApiError::bad_request(
                "missing_field",
                "instance",
                "instance is required: the instance whose log lines to read",
            ));
        }
    };
    let component = q
        .component
        .as_deref()
        .map(|c| name("component", c))
        .transpose()?;
    let node = q
        .node
        .as_deref()
        .map(|n| super::node_id(s, n))
        .transpose()?;
    let since = super::since(q.since.as_deref())?;
    Ok(LogQuery {
        instance,
        component,
        node,
        since,
        after: q.after,
        limit: q.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT),
    })
}

async fn read(s: &AppState, q: LogQuery) -> Result<LogPage, ApiError> {
    let store = s.reports.clone();
    tokio::task::spawn_blocking(move || store.query(&q))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(ApiError::from)
}

fn line_dto(p: &Projections, l: &LogLine) -> LogLineDto {
    LogLineDto {
        cursor: l.cursor,
        node: l.node.to_string(),
        node_name: node_name(p, &l.node),
        component: l.component.to_string(),
        replica: l.replica,
        file: l.file.clone(),
        line: l.line,
        part: l.part,
        continued: l.continued,
        time: l.time.to_rfc3339(),
        text: l.text.clone(),
    }
}

fn drops_dto(p: &Projections, d: &NodeDrops) -> NodeDropsDto {
    NodeDropsDto {
        node: d.node.to_string(),
        node_name: node_name(p, &d.node),
        lines: d.lines,
        batches: d.batches,
        files: d
            .files
            .iter()
            .map(|f| FileDropsDto {
                component: f.component.to_string(),
                replica: f.replica,
                file: f.file.clone(),
                first_line: f.first_line,
                lines: f.lines,
            })
            .collect(),
    }
}

fn waiting_dto(p: &Projections, w: &NodeWaiting) -> NodeWaitingDto {
    NodeWaitingDto {
        node: w.node.to_string(),
        node_name: node_name(p, &w.node),
        files: w.replicas.iter().map(|r| r.2).sum(),
        replicas: w
            .replicas
            .iter()
            .map(|(component, replica, files)| ReplicaWaitingDto {
                component: component.to_string(),
                replica: *replica,
                files: *files,
            })
            .collect(),
    }
}

pub async fn list(
    State(s): State<AppState>,
    Params(q): Params<LogsQuery>,
) -> Result<Response, ApiError> {
    let query = resolve(&s, &q)?;
    // An instance that is gone still has its lines; one that never had any is a typo.
    let known = s.engine.read().instances.contains_key(&query.instance);
    if !known {
        let store = s.reports.clone();
        let instance = query.instance.clone();
        let stored = tokio::task::spawn_blocking(move || store.has_instance(&instance))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))??;
        if !stored {
            return Err(ApiError::not_found(
                "unknown_instance",
                "instance",
                format!("no instance named \"{}\"", query.instance),
            ));
        }
    }
    if !q.follow {
        let page = read(&s, query).await?;
        let p = s.engine.read();
        let body = LogsDto {
            lines: page.lines.iter().map(|l| line_dto(&p, l)).collect(),
            next: page.next,
            dropped: page.dropped.iter().map(|d| drops_dto(&p, d)).collect(),
            waiting: page.waiting.iter().map(|w| waiting_dto(&p, w)).collect(),
        };
        return Ok(Json(body).into_response());
    }
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    tokio::spawn(follow(s, query, tx));
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(ReceiverStream::new(rx)),
    )
        .into_response())
}

/// Streams the backlog, then lines as they are stored, as NDJSON, until the client goes
/// away or the server stops. An empty line every 15 s keeps the connection alive and
/// notices a client that left.
async fn follow(s: AppState, mut q: LogQuery, tx: mpsc::Sender<Result<Bytes, Infallible>>) {
    // Subscribe before the first read, so a line stored in between wakes the loop.
    let mut stored = s.reports.subscribe();
    let mut stopping = s.stopping.clone();
    q.limit = PAGE;
    loop {
        let Ok(page) = read(&s, q.clone()).await else {
            return;
        };
        let lines: Vec<Bytes> = {
            let p = s.engine.read();
            page.lines
                .iter()
                .map(|l| {
                    let mut v = serde_json::to_vec(&line_dto(&p, l)).unwrap_or_default();
                    v.push(b'\n');
                    Bytes::from(v)
                })
                .collect()
        };
        for line in lines {
            if tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
        q.after = Some(page.next);
        if page.lines.len() >= PAGE {
            continue;
        }
        // Caught up: wait for the store to say that lines were stored.
        loop {
            tokio::select! {
                changed = stored.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    break;
                }
                _ = stopping.changed() => return,
                () = tokio::time::sleep(KEEPALIVE) => {
                    if tx.send(Ok(Bytes::from_static(b"\n"))).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}
