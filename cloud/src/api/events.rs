//! `/api/v1/events`: the command log, filtered, paged or followed, and its verification.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use skerry_shared::clock::Timestamp;
use skerry_shared::event::Event;
use skerry_shared::ids::NodeId;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::AppState;
use super::dto::{EventDto, VerifyDto};
use super::error::{ApiError, Params};
use crate::log::EventLog;

const PAGE: usize = 1024;
const DEFAULT_LIMIT: usize = 1000;
const MAX_LIMIT: usize = 100_000;
const KEEPALIVE: Duration = Duration::from_secs(15);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// A node's name or id.
    node: Option<String>,
    instance: Option<String>,
    /// RFC 3339.
    since: Option<String>,
    /// Only events after this sequence number.
    after: Option<u64>,
    limit: Option<usize>,
    #[serde(default)]
    follow: bool,
}

/// The filters, resolved.
#[derive(Debug, Clone)]
struct Filter {
    node: Option<NodeId>,
    instance: Option<String>,
    since: Option<Timestamp>,
}

impl Filter {
    fn matches(&self, e: &Event) -> bool {
        self.node.is_none_or(|n| e.node_seq_for(n).is_some())
            && self
                .instance
                .as_deref()
                .is_none_or(|i| e.payload.instance().is_some_and(|x| x.as_str() == i))
            && self.since.is_none_or(|t| e.time >= t)
    }
}

/// Reads matching events after `after` (up to `limit`), from the node's index when the
/// filter names a node.
fn read_matching(
    log: &dyn EventLog,
    f: &Filter,
    mut after: u64,
    limit: usize,
) -> Result<Vec<Event>, ApiError> {
    let mut out = Vec::new();
    if let Some(node) = f.node {
        let mut after_node = 0;
        loop {
            let page = log.read_node(node, after_node, PAGE)?;
            let Some(last) = page.last() else { break };
            after_node = last.node_seq_for(node).unwrap_or(u64::MAX);
            out.extend(page.into_iter().filter(|e| e.seq > after && f.matches(e)));
            if out.len() >= limit {
                break;
            }
        }
    } else {
        loop {
            let page = log.read(after, PAGE)?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            out.extend(page.into_iter().filter(|e| f.matches(e)));
            if out.len() >= limit {
                break;
            }
        }
    }
    out.truncate(limit);
    Ok(out)
}

fn line(e: &Event) -> Bytes {
    let mut v = serde_json::to_vec(&EventDto::from(e)).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

pub async fn list(
    State(s): State<AppState>,
    Params(q): Params<EventsQuery>,
) -> Result<Response, ApiError> {
    let node = q
        .node
        .as_deref()
        .map(|n| super::node_id(&s, n))
        .transpose()?;
    let since = super::since(q.since.as_deref())?;
    let filter = Filter {
        node,
        instance: q.instance.clone(),
        since,
    };
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
    let after = q.after.unwrap_or(0);
    if !q.follow {
        let log = s.engine.log().clone();
        let f = filter.clone();
        let events =
            tokio::task::spawn_blocking(move || read_matching(log.as_ref(), &f, after, limit))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))??;
        return Ok(Json(events.iter().map(EventDto::from).collect::<Vec<_>>()).into_response());
    }
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    tokio::spawn(follow(s, filter, after, tx));
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(ReceiverStream::new(rx)),
    )
        .into_response())
}

/// Streams the backlog, then live events, as NDJSON, until the client goes away. An empty
/// line every 15 s keeps the connection alive and notices a client that left.
async fn follow(
    s: AppState,
    filter: Filter,
    mut last: u64,
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
) {
    // Subscribe before reading the backlog, so nothing falls between the two.
    let mut live = s.engine.subscribe();
    let mut stopping = s.stopping.clone();
    let mut backlog = true;
    loop {
        if backlog {
            let log = s.engine.log().clone();
            // Everything up to `tip` is in the log now, so the read below covers it; what
            // comes later arrives on `live`, which was subscribed before this.
            let tip = log.last_seq().unwrap_or(last);
            let f = filter.clone();
            let after = last;
            let page =
                tokio::task::spawn_blocking(move || read_matching(log.as_ref(), &f, after, PAGE))
                    .await;
            let Ok(Ok(page)) = page else { return };
            for e in &page {
                if tx.send(Ok(line(e))).await.is_err() {
                    return;
                }
                last = e.seq;
            }
            if page.len() < PAGE {
                last = last.max(tip);
                backlog = false;
            }
            continue;
        }
        let next: Result<Arc<Event>, RecvError> = tokio::select! {
            r = live.recv() => r,
            _ = stopping.changed() => return,
            () = tokio::time::sleep(KEEPALIVE) => {
                if tx.send(Ok(Bytes::from_static(b"\n"))).await.is_err() {
                    return;
                }
                continue;
            }
        };
        match next {
            Ok(e) if e.seq <= last => {}
            Ok(e) => {
                if filter.matches(&e) && tx.send(Ok(line(&e))).await.is_err() {
                    return;
                }
                last = e.seq;
            }
            Err(RecvError::Lagged(_)) => backlog = true,
            Err(RecvError::Closed) => return,
        }
    }
}

/// `GET /api/v1/events/verify`: walks the whole chain.
pub async fn verify(State(s): State<AppState>) -> Result<Json<VerifyDto>, ApiError> {
    let log = s.engine.log().clone();
    let walked = tokio::task::spawn_blocking(move || crate::log::walk(log.as_ref(), |_| {}))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let (at, fault) = match walked {
        Ok(at) => (at, None),
        Err((at, e)) => (at, Some(e.to_string())),
    };
    Ok(Json(VerifyDto {
        ok: fault.is_none(),
        events: at.events,
        head: at.head.to_hex(),
        fault,
    }))
}
