//! `/api/v1/events`: the command log, filtered, paged or followed, and its verification.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use skerry_shared::clock::Timestamp;
use skerry_shared::event::{Actor, Event, EventPayload};
use skerry_shared::ids::{Name, NodeId};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::caller::{Caller, Scope};
use super::dto::{EventDto, VerifyDto};
use super::error::{ApiError, Params};
use super::query;
use super::state::{AppState, node_id, seen_instance, seen_node};
use super::streams::{self, Chunk, PAGE_BYTES, PAGE_ITEMS};
use crate::log::EventLog;

/// The events a plain read answers when it names no `limit` (docs/cli.md, "Events").
pub const DEFAULT_LIMIT: usize = 1000;
/// The most events one plain read answers (`limit`; docs/cli.md, "REST API"). A larger
/// `limit` is refused 400 `invalid_query` (field `limit`), not clamped.
pub const MAX_LIMIT: usize = 100_000;
const KEEPALIVE: Duration = Duration::from_secs(15);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// A node's name or id.
    node: Option<String>,
    instance: Option<String>,
    /// Who caused it: an API token's id, or an actor as events show it (`cloud`,
    /// `node:ID`, `anonymous@ADDR`).
    actor: Option<String>,
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
    instance: Option<Name>,
    actor: Option<String>,
    since: Option<Timestamp>,
    /// What a token limited to some environments may read (`None`: everything).
    scope: Option<Arc<Seen>>,
    /// The caller's token: a follow ends when it is revoked or expires.
    token: Option<skerry_shared::ids::TokenId>,
    /// Not a filter: why the read models did not take recorded events (by `seq`, as of the
    /// request), so that the answer marks them.
    refused: Arc<BTreeMap<u64, String>>,
}

impl Filter {
    fn matches(&self, e: &Event) -> bool {
        self.node.is_none_or(|n| e.node_seq_for(n).is_some())
            && self
                .instance
                .as_ref()
                .is_none_or(|i| e.payload.instance().is_some_and(|x| x == i))
            && self.since.is_none_or(|t| e.time >= t)
            && self.actor.as_deref().is_none_or(|a| actor_is(&e.actor, a))
            && self.scope.as_deref().is_none_or(|seen| seen.sees(e))
    }
}

/// Whether `actor` is the one a filter names: a token by its id, any actor as it is shown.
fn actor_is(actor: &Actor, wanted: &str) -> bool {
    match actor {
        // An id in either form: hyphenated, as events show it, or 32 hex digits, as it
        // stands in the token.
        Actor::Token { id, .. } => {
            id == wanted
                || wanted
                    .parse::<skerry_shared::ids::TokenId>()
                    .is_ok_and(|w| w.to_string() == *id)
                || actor.to_string() == wanted
        }
        other => other.to_string() == wanted,
    }
}

/// What a token limited to some environments sees of the log: events about one of its
/// environments, an instance or a secret of one of them (by the environment the instance
/// was last deployed in, the secret's now), or a node that is in one of them, and every
/// app's publications (apps belong to no environment). Token events and anything else are
/// left out.
#[derive(Debug)]
struct Seen {
    envs: Vec<Name>,
    nodes: std::collections::BTreeSet<NodeId>,
    /// Instances ever deployed in one of the environments.
    instances: std::collections::BTreeSet<Name>,
    /// Secrets of one of the environments.
    secrets: std::collections::BTreeSet<Name>,
}

impl Seen {
    fn new(p: &crate::projections::Projections, scope: &Scope) -> Option<Seen> {
        let envs = scope.envs()?.to_vec();
        let nodes = p
            .nodes
            .values()
            .filter(|n| scope.sees_node(n))
            .map(|n| n.id)
            .collect();
        let instances = p
            .instance_envs
            .iter()
            .filter(|(_, env)| scope.sees_env(env.as_str()))
            .map(|(name, _)| name.clone())
            .collect();
        let secrets = p
            .secrets
            .iter()
            .filter(|s| s.env.as_ref().is_some_and(|e| scope.sees_env(e.as_str())))
            .map(|s| s.name.clone())
            .collect();
        Some(Seen {
            envs,
            nodes,
            instances,
            secrets,
        })
    }

    fn sees(&self, e: &Event) -> bool {
        let env = |name: &Name| self.envs.contains(name);
        let node = |id: &NodeId| self.nodes.contains(id);
        match &e.payload {
            EventPayload::EnvironmentCreated { name, .. }
            | EventPayload::EnvironmentDeleted { name } => env(name),
            EventPayload::EnrollmentTokenIssued { env: name, .. }
            | EventPayload::NodeEnrolled { env: name, .. }
            | EventPayload::NodeJoined { env: name, .. }
            | EventPayload::NodeLeft { env: name, .. } => env(name),
            EventPayload::InstanceDeployed { instance } => env(&instance.env),
            EventPayload::InstanceUndeployed { name, .. } => self.instances.contains(name),
            EventPayload::SecretSet { env: Some(e), .. } => env(e),
            EventPayload::SecretDeleted { name } => self.secrets.contains(name),
            EventPayload::SecretDelivered { name, node: id, .. } => {
                self.secrets.contains(name) && node(id)
            }
            EventPayload::NodeSecretsKeyRegistered { node: id, .. } => node(id),
            EventPayload::NodeRenamed { node: id, .. }
            | EventPayload::NodeLabelled { node: id, .. }
            | EventPayload::NodeStatusChanged { node: id, .. }
            | EventPayload::NodeRemoved { node: id }
            | EventPayload::NodeCertificateRenewed { node: id, .. } => node(id),
            EventPayload::AppVersionPublished { .. } => true,
            _ => false,
        }
    }
}

/// Where a read is: past every event up to `seq`, and, when the filter names a node, past
/// the node's events up to `node_seq` (the read goes through the node's index).
#[derive(Debug, Clone, Copy)]
struct Cursor {
    seq: u64,
    node_seq: u64,
}

/// How events are written out: a JSON array (a plain read) or NDJSON (a follow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Array,
    Lines,
}

/// One page read from the log, already in JSON.
#[derive(Debug)]
struct Page {
    json: Vec<u8>,
    /// Matching events in `json`.
    count: usize,
    cursor: Cursor,
    /// The log has nothing after `cursor` (as of the read).
    end: bool,
}

/// Writes `e`, marked `refused` with `why` when the read models did not take it.
fn write_event(out: &mut Vec<u8>, e: &Event, why: Option<&String>, format: Format, first: bool) {
    if format == Format::Array && !first {
        out.push(b',');
    }
    let dto = EventDto {
        refused: why.cloned(),
        ..EventDto::from(e)
    };
    // An EventDto always serialises (strings, numbers and JSON values).
    let _ = serde_json::to_writer(&mut *out, &dto);
    if format == Format::Lines {
        out.push(b'\n');
    }
}

/// Reads one page (at most [`PAGE_ITEMS`] events, [`PAGE_BYTES`] as stored) after
/// `cursor` and writes the matching ones, at most `max`, in `format`; `sent` says how many
/// the answer has before these.
fn read_page(
    log: &dyn EventLog,
    f: &Filter,
    mut cursor: Cursor,
    max: usize,
    format: Format,
    sent: usize,
) -> Result<Page, ApiError> {
    let events = match f.node {
        Some(node) => log.read_node_bounded(node, cursor.node_seq, PAGE_ITEMS, PAGE_BYTES)?,
        None => log.read_bounded(cursor.seq, PAGE_ITEMS, PAGE_BYTES)?,
    };
    let end = events.is_empty();
    let mut json = Vec::new();
    let mut count = 0;
    for e in &events {
        if count >= max {
            break;
        }
        if let Some(ns) = f.node.and_then(|n| e.node_seq_for(n)) {
            cursor.node_seq = ns;
        }
        let fresh = e.seq > cursor.seq;
        cursor.seq = cursor.seq.max(e.seq);
        if fresh && f.matches(e) {
            write_event(
                &mut json,
                e,
                f.refused.get(&e.seq),
                format,
                sent + count == 0,
            );
            count += 1;
        }
    }
    Ok(Page {
        json,
        count,
        cursor,
        end,
    })
}

async fn page(
    s: &AppState,
    f: &Filter,
    cursor: Cursor,
    max: usize,
    format: Format,
    sent: usize,
) -> Result<Page, ApiError> {
    let log = s.engine.log().clone();
    let f = f.clone();
    streams::read(move || read_page(log.as_ref(), &f, cursor, max, format, sent)).await
}

fn line(e: &Event, why: Option<&String>) -> Bytes {
    let mut v = Vec::new();
    write_event(&mut v, e, why, Format::Lines, true);
    Bytes::from(v)
}

/// The query's filters, checked against the read models: an unknown node is 404
/// `unknown_node`, an instance name never deployed 404 `unknown_instance` (one that was
/// undeployed has its history and is read).
fn resolve(s: &AppState, q: &EventsQuery, caller: &Caller) -> Result<Filter, ApiError> {
    let scope = &caller.scope;
    if let Some(n) = q.node.as_deref() {
        seen_node(s, scope, n)?;
    }
    if let Some(i) = q.instance.as_deref() {
        seen_instance(s, scope, i)?;
    }
    let node = q.node.as_deref().map(|n| node_id(s, n)).transpose()?;
    let instance = match q.instance.as_deref() {
        None => None,
        Some(i) => {
            let name = Name::parse(i)
                .map_err(|e| ApiError::bad_request("invalid_name", "instance", e.to_string()))?;
            if !s.engine.read().instance_envs.contains_key(&name) {
                return Err(ApiError::not_found(
                    "unknown_instance",
                    "instance",
                    format!("no instance named \"{name}\" was ever deployed"),
                ));
            }
            Some(name)
        }
    };
    let since = query::since(q.since.as_deref())?;
    let refused = s
        .engine
        .read()
        .refused
        .iter()
        .map(|(seq, r)| (*seq, r.reason.clone()))
        .collect();
    let seen = Seen::new(&s.engine.read(), scope).map(Arc::new);
    Ok(Filter {
        node,
        instance,
        actor: q.actor.clone(),
        since,
        scope: seen,
        token: caller.token,
        refused: Arc::new(refused),
    })
}

pub async fn list(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    caller: Caller,
    Params(q): Params<EventsQuery>,
) -> Result<Response, ApiError> {
    let limit = streams::limit(q.limit, DEFAULT_LIMIT, MAX_LIMIT, "events")?;
    let filter = resolve(&s, &q, &caller)?;
    let slot = match streams::admit_for(q.follow, limit, peer.ip()) {
        Ok(slot) => slot,
        Err(refused) => return Ok(refused.into_response()),
    };
    let cursor = Cursor {
        seq: q.after.unwrap_or(0),
        node_seq: 0,
    };
    if q.follow {
        let (tx, answer) = streams::pipe("application/x-ndjson", slot);
        tokio::spawn(follow(s, filter, cursor, tx));
        return Ok(answer);
    }
    // The first page is read here, so that a failing log still gets an error answer.
    let first = page(&s, &filter, cursor, limit, Format::Array, 0).await?;
    let mut json = Vec::with_capacity(first.json.len() + 2);
    json.push(b'[');
    json.extend_from_slice(&first.json);
    if first.end || first.count >= limit {
        json.push(b']');
        return Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response());
    }
    let (tx, answer) = streams::pipe("application/json", slot);
    tokio::spawn(read_rest(s, filter, first, limit, json, tx));
    Ok(answer)
}

/// Sends a plain read on, page by page after `first` (whose JSON is `json`), and closes
/// the array once `limit` events are sent or the log has no more.
async fn read_rest(
    s: AppState,
    filter: Filter,
    first: Page,
    limit: usize,
    json: Vec<u8>,
    tx: mpsc::Sender<Chunk>,
) {
    if tx.send(Ok(Bytes::from(json))).await.is_err() {
        return;
    }
    let mut sent = first.count;
    let mut cursor = first.cursor;
    loop {
        let p = match page(&s, &filter, cursor, limit - sent, Format::Array, sent).await {
            Ok(p) => p,
            Err(e) => {
                let _ = tx.send(Err(streams::cut(&e))).await;
                return;
            }
        };
        sent += p.count;
        cursor = p.cursor;
        let done = p.end || sent >= limit;
        let mut chunk = p.json;
        if done {
            chunk.push(b']');
        }
        if !chunk.is_empty() && tx.send(Ok(Bytes::from(chunk))).await.is_err() {
            return;
        }
        if done {
            return;
        }
    }
}

/// Streams the backlog, then live events, as NDJSON, until the client goes away or the
/// server stops. An empty line after 15 s without one keeps the connection alive (counted
/// from the last line sent: events that do not match the filter do not put it off).
async fn follow(s: AppState, filter: Filter, mut cursor: Cursor, tx: mpsc::Sender<Chunk>) {
    // Subscribe before reading the backlog, so nothing falls between the two.
    let mut live = s.engine.subscribe();
    let mut stopping = s.stopping.clone();
    let mut backlog = true;
    let mut keepalive = tokio::time::Instant::now() + KEEPALIVE;
    loop {
        if !super::auth::still_live(&s, filter.token) {
            return;
        }
        if backlog {
            // Everything up to `tip` is in the log now, so reading to the end covers it;
            // what comes later arrives on `live`, which was subscribed before this.
            let tip = s.engine.log().last_seq().unwrap_or(cursor.seq);
            let p = tokio::select! {
                p = page(&s, &filter, cursor, usize::MAX, Format::Lines, 0) => p,
                () = tx.closed() => return,
                _ = stopping.changed() => return,
            };
            let p = match p {
                Ok(p) => p,
                Err(e) => {
                    let _ = tx.send(Err(streams::cut(&e))).await;
                    return;
                }
            };
            cursor = p.cursor;
            if !p.json.is_empty() {
                tokio::select! {
                    sent = tx.send(Ok(Bytes::from(p.json))) => if sent.is_err() { return },
                    _ = stopping.changed() => return,
                }
                keepalive = tokio::time::Instant::now() + KEEPALIVE;
            }
            if p.end {
                cursor.seq = cursor.seq.max(tip);
                backlog = false;
            }
            continue;
        }
        let next: Result<Arc<Event>, RecvError> = tokio::select! {
            r = live.recv() => r,
            () = tx.closed() => return,
            _ = stopping.changed() => return,
            () = tokio::time::sleep_until(keepalive) => {
                if tx.send(Ok(Bytes::from_static(b"\n"))).await.is_err() {
                    return;
                }
                keepalive = tokio::time::Instant::now() + KEEPALIVE;
                continue;
            }
        };
        match next {
            Ok(e) if e.seq <= cursor.seq => {}
            Ok(e) => {
                cursor.seq = e.seq;
                if let Some(ns) = filter.node.and_then(|n| e.node_seq_for(n)) {
                    cursor.node_seq = ns;
                }
                if filter.matches(&e) {
                    // A live event is newer than the request's marks: ask the read models.
                    let why = s
                        .engine
                        .read()
                        .refused
                        .get(&e.seq)
                        .map(|r| r.reason.clone());
                    if tx.send(Ok(line(&e, why.as_ref()))).await.is_err() {
                        return;
                    }
                    keepalive = tokio::time::Instant::now() + KEEPALIVE;
                }
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
