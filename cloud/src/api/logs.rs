//! `/api/v1/logs`: an instance's log lines, as the agents shipped them, paged or followed.
//!
//! `GET /api/v1/logs?instance=I[&component=C][&node=NODE][&since=T][&after=N][&limit=N]`
//! answers a [`LogsDto`]: lines in cursor order, the cursor to pass as `after` next, and the
//! lines the agents dropped for their log quota. With `follow=true` it streams the lines as
//! NDJSON (one [`LogLineDto`] per line), the backlog first, then new lines as they are
//! stored, with an empty line every 15 s, until the client leaves or the server stops.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use skerry_shared::ids::Name;
use tokio::sync::mpsc;

use super::dto::{FileDropsDto, LogLineDto, NodeDropsDto, NodeWaitingDto, ReplicaWaitingDto};
use super::error::{ApiError, Params};
use super::query;
use super::state::{AppState, node_id};
use super::streams::{self, Chunk, PAGE_BYTES};
use super::views::node_name;
use crate::projections::Projections;
use crate::reports::{LogLine, LogPage, LogQuery, NodeDrops, NodeWaiting};

/// Lines per page read from the store (and at most [`PAGE_BYTES`] of their texts).
const PAGE: usize = 1000;
const DEFAULT_LIMIT: usize = 1000;
/// The most lines one plain read answers (`limit`; docs/cli.md, "REST API"). A larger
/// `limit` is refused 400 `invalid_query` (field `limit`), not clamped.
pub const MAX_LIMIT: usize = 10_000;
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
    let limit = streams::limit(q.limit, DEFAULT_LIMIT, MAX_LIMIT, "lines")?;
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
    let node = q.node.as_deref().map(|n| node_id(s, n)).transpose()?;
    let since = query::since(q.since.as_deref())?;
    Ok(LogQuery {
        instance,
        component,
        node,
        since,
        after: q.after,
        limit,
    })
}

/// A page of lines read from the store, already in JSON.
struct Page {
    /// The lines, in `format`.
    json: Vec<u8>,
    count: usize,
    /// The page stopped at [`PAGE_BYTES`] with more lines to read.
    cut: bool,
    /// `lines` emptied (they are in `json`): `next`, `dropped`, `waiting`.
    rest: LogPage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// Members of the `lines` array of a [`super::dto::LogsDto`]; `first`: the first
    /// ones of it.
    Array {
        first: bool,
    },
    Lines,
}

/// Reads a page of at most `q.limit` lines and [`PAGE_BYTES`] of text, and writes them.
async fn read(s: &AppState, q: LogQuery, format: Format) -> Result<Page, ApiError> {
    let s = s.clone();
    streams::read(move || {
        let (mut rest, cut) = s.reports.query_bounded(&q, PAGE_BYTES)?;
        let lines = std::mem::take(&mut rest.lines);
        let mut json = Vec::new();
        let p = s.engine.read();
        for (i, l) in lines.iter().enumerate() {
            if format == (Format::Array { first: false }) || (i > 0 && format != Format::Lines) {
                json.push(b',');
            }
            // A LogLineDto always serialises (strings and numbers).
            let _ = serde_json::to_writer(&mut json, &line_dto(&p, l));
            if format == Format::Lines {
                json.push(b'\n');
            }
        }
        Ok(Page {
            json,
            count: lines.len(),
            cut,
            rest,
        })
    })
    .await
}

/// What follows the lines of a [`LogsDto`]: the array's end and the other fields.
fn tail(s: &AppState, page: &LogPage) -> Vec<u8> {
    let p = s.engine.read();
    let dropped: Vec<NodeDropsDto> = page.dropped.iter().map(|d| drops_dto(&p, d)).collect();
    let waiting: Vec<NodeWaitingDto> = page.waiting.iter().map(|w| waiting_dto(&p, w)).collect();
    let mut out = format!("],\"next\":{},\"dropped\":", page.next).into_bytes();
    let _ = serde_json::to_writer(&mut out, &dropped);
    out.extend_from_slice(b",\"waiting\":");
    let _ = serde_json::to_writer(&mut out, &waiting);
    out.push(b'}');
    out
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
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    caller: super::caller::Caller,
    Params(q): Params<LogsQuery>,
) -> Result<Response, ApiError> {
    let query = resolve(&s, &q)?;
    super::state::seen_instance(&s, &caller.scope, query.instance.as_str())?;
    if let Some(node) = q.node.as_deref() {
        super::state::seen_node(&s, &caller.scope, node)?;
    }
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
    let slot = match streams::admit_for(q.follow, query.limit, peer.ip()) {
        Ok(slot) => slot,
        Err(refused) => return Ok(refused.into_response()),
    };
    if q.follow {
        let (tx, answer) = streams::pipe("application/x-ndjson", slot);
        tokio::spawn(follow(s, query, caller.token, tx));
        return Ok(answer);
    }
    // The first page is read here, so that a failing store still gets an error answer.
    let limit = query.limit;
    let mut sub = query.clone();
    let sub_limit = limit.min(PAGE);
    sub.limit = sub_limit;
    let first = read(&s, sub, Format::Array { first: true }).await?;
    let mut json = b"{\"lines\":[".to_vec();
    json.extend_from_slice(&first.json);
    if !first.cut && (first.count >= limit || first.count < sub_limit) {
        json.extend_from_slice(&tail(&s, &first.rest));
        return Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response());
    }
    let (tx, answer) = streams::pipe("application/json", slot);
    tokio::spawn(read_rest(s, query, first, json, tx));
    Ok(answer)
}

/// Sends a plain read on, page by page after `first` (whose JSON is `json`), then the
/// answer's other fields, from the last page read.
async fn read_rest(
    s: AppState,
    mut q: LogQuery,
    first: Page,
    json: Vec<u8>,
    tx: mpsc::Sender<Chunk>,
) {
    if tx.send(Ok(Bytes::from(json))).await.is_err() {
        return;
    }
    let limit = q.limit;
    let mut sent = first.count;
    let mut next = first.rest.next;
    loop {
        q.after = Some(next);
        q.limit = (limit - sent).min(PAGE);
        let p = match read(&s, q.clone(), Format::Array { first: sent == 0 }).await {
            Ok(p) => p,
            Err(e) => {
                let _ = tx.send(Err(streams::cut(&e))).await;
                return;
            }
        };
        sent += p.count;
        next = p.rest.next;
        let done = sent >= limit || (!p.cut && p.count < q.limit);
        let mut chunk = p.json;
        if done {
            chunk.extend_from_slice(&tail(&s, &p.rest));
        }
        if !chunk.is_empty() && tx.send(Ok(Bytes::from(chunk))).await.is_err() {
            return;
        }
        if done {
            return;
        }
    }
}

/// Streams the backlog, then lines as they are stored, as NDJSON, until the client goes
/// away or the server stops. An empty line after 15 s without one keeps the connection
/// alive (counted from the last line sent: lines of other instances do not put it off).
/// Ends when the caller's `token` is revoked or expires (checked at each wake: lines
/// stored, or the keep-alive).
async fn follow(
    s: AppState,
    mut q: LogQuery,
    token: Option<skerry_shared::ids::TokenId>,
    tx: mpsc::Sender<Chunk>,
) {
    // Subscribe before the first read, so a line stored in between wakes the loop.
    let mut stored = s.reports.subscribe();
    let mut stopping = s.stopping.clone();
    q.limit = PAGE;
    let mut keepalive = tokio::time::Instant::now() + KEEPALIVE;
    loop {
        if !super::auth::still_live(&s, token) {
            return;
        }
        let page = tokio::select! {
            p = read(&s, q.clone(), Format::Lines) => p,
            () = tx.closed() => return,
            _ = stopping.changed() => return,
        };
        let page = match page {
            Ok(p) => p,
            Err(e) => {
                let _ = tx.send(Err(streams::cut(&e))).await;
                return;
            }
        };
        if !page.json.is_empty() {
            tokio::select! {
                sent = tx.send(Ok(Bytes::from(page.json))) => if sent.is_err() { return },
                _ = stopping.changed() => return,
            }
            keepalive = tokio::time::Instant::now() + KEEPALIVE;
        }
        q.after = Some(page.rest.next);
        if page.cut || page.count >= PAGE {
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
                () = tx.closed() => return,
                _ = stopping.changed() => return,
                () = tokio::time::sleep_until(keepalive) => {
                    if tx.send(Ok(Bytes::from_static(b"\n"))).await.is_err() {
                        return;
                    }
                    keepalive = tokio::time::Instant::now() + KEEPALIVE;
                }
            }
        }
    }
}
