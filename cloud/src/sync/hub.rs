//! The hub: every node's session and live state.
//!
//! [`Hub::open`] starts a node's session (a task running [`super::link::run`]) and hands
//! the transport a [`Connection`]: a sender for the frames the node publishes and a
//! receiver for the frames to publish to it. A second open for the same node replaces the
//! first: the old task is aborted, which drops its down sender, so the transport closes
//! the old connection.
//!
//! The live state of a node (connected or not, last seen, acked `node_seq`, replica
//! reports, dropped frames) is kept in memory (the table in `live.rs`, which the sessions
//! write), not in the log: acks and heartbeats would flood it. After a cloud restart it fills again from the agents' next `Hello`,
//! heartbeats and complete status reports; the replica reports, each with the time the
//! cloud stored it, are loaded from the report store at start.
//!
//! Watchers of the nodes (the liveness controller) read them through [`Hub::heard_from`],
//! mark what they saw ([`Hub::mark_abnormal`]) and wait on [`Hub::abnormal_heard`].

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use skerry_shared::clock::Timestamp;
use skerry_shared::event::NodeStatus;
use skerry_shared::frame::{DownFrame, NodeLogs};
use skerry_shared::ids::NodeId;
use skerry_shared::report::ReplicaStatus;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::live::Shared;
use super::replicas::Reported;
use super::transport::{Connection, Sessions};
use crate::engine::Engine;
use crate::reports::ReportStore;

/// Frames from the node waiting for its session.
pub const UP_CAPACITY: usize = 64;
/// Frames for the node waiting for the transport (each at most 256 KiB).
pub const DOWN_CAPACITY: usize = 16;

/// Frames the hub asks a node's session to send (beside its own).
pub(super) const CONTROL_CAPACITY: usize = 8;

/// How long `skerry node logs` waits for the agent's answer.
pub const NODE_LOGS_TIMEOUT: Duration = Duration::from_secs(15);

/// The agent's runtime log, as fetched for `skerry node logs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLogsText {
    pub text: String,
    /// Older lines were left out.
    pub truncated: bool,
}

/// Why the runtime log could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeLogsError {
    #[error("the node is not connected{}; its runtime log is fetched from the agent on demand, so try again once it is", last_seen.map(|t| format!(" (last seen {t})")).unwrap_or_else(|| " (never seen)".into()))]
    NotConnected { last_seen: Option<Timestamp> },
    #[error("the agent did not answer within {}s", NODE_LOGS_TIMEOUT.as_secs())]
    Timeout,
    #[error("the agent could not read its log: {0}")]
    Agent(String),
    #[error("the agent's answer does not decode: {0}")]
    Decode(String),
}

/// Why a session was not opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("node {0} is not enrolled with this cloud")]
    UnknownNode(NodeId),
    #[error("sessions need a tokio runtime: {0}")]
    NoRuntime(String),
    /// The node was removed, or the certificate is revoked.
    #[error("{0}")]
    Revoked(String),
}

/// How long after a node's removal is durable its open session is closed, if the session
/// has not closed itself after sending the removal (a session that never said `Hello`).
pub const REMOVAL_CLOSE_AFTER: Duration = Duration::from_millis(600);

/// What the hub knows of a node right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeLive {
    /// A session is open.
    pub connected: bool,
    /// The cloud's time when the node last said `Hello` or sent a heartbeat.
    pub last_seen: Option<Timestamp>,
    /// The highest `node_seq` the node has acknowledged (since this cloud started).
    pub acked: u64,
}

/// One enrolled node as a watcher of liveness sees it ([`Hub::heard_from`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeHeard {
    pub node: NodeId,
    /// The status the projections record.
    pub status: NodeStatus,
    /// The node's heartbeat interval (its firmware profile's `agent.heartbeat`).
    pub heartbeat: Duration,
    /// When this hub last heard from it (a `Hello` or a heartbeat), on the monotonic clock;
    /// `None` if not since this hub started.
    pub last_heard: Option<Instant>,
}

/// Every node's session and live state; cheap to clone. Transport-agnostic: it deals in
/// encoded frames ([`bytes::Bytes`]), so the MQTT endpoint and a NATS link share it.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Shared>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("nodes", &self.inner.nodes.lock().len())
            .finish_non_exhaustive()
    }
}

impl Hub {
    pub fn new(engine: Engine) -> Hub {
        Hub {
            inner: Arc::new(Shared::new(engine)),
        }
    }

    pub fn engine(&self) -> &Engine {
        self.inner.engine()
    }

    /// Stores the nodes' outbox entries in `store` from now on, starting from the replica
    /// statuses it kept, with their times (`store.replica_reports()`). Once only; a second
    /// store is ignored.
    pub fn attach_reports(
        &self,
        store: ReportStore,
        statuses: std::collections::BTreeMap<NodeId, Vec<crate::reports::StoredStatus>>,
    ) {
        if self.inner.reports.set(store).is_err() {
            tracing::warn!("the hub has a report store already");
            return;
        }
        let mut nodes = self.inner.nodes.lock();
        for (node, all) in statuses {
            nodes.entry(node).or_default().replicas.load(all);
        }
    }

    /// `false`: catch-ups replay the missed events, never a snapshot in their place
    /// (`[sync] snapshots`). Applies to sessions that start later.
    pub fn set_snapshots(&self, enabled: bool) {
        self.inner.snapshots.store(enabled, Ordering::Relaxed);
    }

    /// See [`Hub::set_snapshots`].
    pub fn snapshots(&self) -> bool {
        self.inner.snapshots()
    }

    /// Signs the certificates nodes renew over their link with `pki` (and its node
    /// lifetime) from now on. Once only; without it no renewal is asked for.
    pub fn attach_pki(&self, pki: std::sync::Arc<crate::pki::Pki>) {
        if self.inner.pki.set(pki).is_err() {
            tracing::warn!("the hub has a CA already");
        }
    }

    /// Opens a session for the node of `peer`, as [`Hub::open`], unless the node was
    /// removed or the certificate is revoked; the session asks for the certificate's
    /// renewal when it is due (see `renewal.rs`).
    pub fn open_peer(&self, peer: &super::PeerCertificate) -> Result<Connection, OpenError> {
        if let Some(reason) = self
            .inner
            .engine
            .read()
            .certificates
            .refuses(peer.node, &peer.digest)
        {
            return Err(OpenError::Revoked(reason));
        }
        self.open_with(peer.node, Some(*peer))
    }

    /// The report store, once attached.
    pub fn reports(&self) -> Option<&ReportStore> {
        self.inner.reports()
    }

    /// Opens a session for `node` (enrolled here), replacing any open one. Call it on a
    /// tokio runtime: the session is a task.
    pub fn open(&self, node: NodeId) -> Result<Connection, OpenError> {
        self.open_with(node, None)
    }

    fn open_with(
        &self,
        node: NodeId,
        peer: Option<super::PeerCertificate>,
    ) -> Result<Connection, OpenError> {
        if !self.inner.engine.read().nodes.contains_key(&node) {
            return Err(OpenError::UnknownNode(node));
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| OpenError::NoRuntime(e.to_string()))?;
        if !self.inner.removals.swap(true, Ordering::AcqRel) {
            runtime.spawn(close_removed(
                std::sync::Arc::downgrade(&self.inner),
                self.inner.engine().subscribe(),
            ));
        }
        let (up_tx, up_rx) = mpsc::channel(UP_CAPACITY);
        let (down_tx, down_rx) = mpsc::channel(DOWN_CAPACITY);
        let (control_tx, control_rx) = mpsc::channel(CONTROL_CAPACITY);
        let id = self.inner.next_session.fetch_add(1, Ordering::Relaxed);
        // The task is spawned with the lock held, so its end (which takes the lock) is
        // recorded after its start.
        let mut nodes = self.inner.nodes.lock();
        let entry = nodes.entry(node).or_default();
        if let Some((old, handle)) = entry.session.take() {
            tracing::info!(%node, old, new = id, "a new session replaces the open one");
            handle.abort();
        }
        let task = runtime.spawn(super::link::run(
            self.inner.clone(),
            node,
            id,
            up_rx,
            down_tx,
            control_rx,
            peer,
        ));
        entry.session = Some((id, task.abort_handle()));
        entry.control = Some(control_tx);
        tracing::info!(%node, session = id, "session opened");
        Ok(Connection {
            up: up_tx,
            down: down_rx,
        })
    }

    /// What the hub knows of `node` right now; `None` if it has never opened a session.
    pub fn live(&self, node: NodeId) -> Option<NodeLive> {
        self.inner.nodes.lock().get(&node).map(|e| NodeLive {
            connected: e.session.is_some(),
            last_seen: e.last_seen,
            acked: e.acked,
        })
    }

    /// The latest report of each of `node`'s replicas.
    pub fn replicas(&self, node: NodeId) -> Vec<ReplicaStatus> {
        self.inner
            .nodes
            .lock()
            .get(&node)
            .map(|e| e.replicas.all())
            .unwrap_or_default()
    }

    /// The latest report of each of `node`'s replicas of `instance`, with its time.
    pub fn instance_replicas(&self, node: NodeId, instance: &str) -> Vec<Reported> {
        self.inner
            .nodes
            .lock()
            .get(&node)
            .map(|e| e.replicas.of(instance))
            .unwrap_or_default()
    }

    /// Up frames from `node` dropped because they were over the limit or did not decode.
    pub fn dropped_frames(&self, node: NodeId) -> u64 {
        self.inner.nodes.lock().get(&node).map_or(0, |e| e.dropped)
    }

    /// Up frames dropped, all nodes together.
    pub fn dropped_frames_total(&self) -> u64 {
        self.inner.dropped_total.load(Ordering::Relaxed)
    }

    /// Secrets keys sent over a link and refused because the node has another one
    /// registered, all nodes together.
    pub fn secrets_keys_refused(&self) -> u64 {
        self.inner.secrets_keys_refused.load(Ordering::Relaxed)
    }

    /// When this hub started, on the monotonic clock: the grace period of nodes that were
    /// `Normal` before a restart starts here.
    pub fn started(&self) -> Instant {
        self.inner.started
    }

    /// Every enrolled node, in id order, with its recorded status, its heartbeat interval
    /// and when the hub last heard from it. Each node the hub has a record of is marked
    /// with the status it is seen with (see [`Hub::mark_abnormal`]). The projections and
    /// the hub's table are read under one lock, so a node heard from meanwhile is either
    /// in this view or wakes [`Hub::abnormal_heard`].
    pub fn heard_from(&self) -> Vec<NodeHeard> {
        let projections = self.inner.engine().read();
        let mut nodes = self.inner.nodes.lock();
        projections
            .nodes
            .values()
            .map(|n| {
                let entry = nodes.get_mut(&n.id);
                let last_heard = entry.as_ref().and_then(|e| e.last_heard);
                if let Some(e) = entry {
                    e.abnormal = Some(n.status == NodeStatus::Abnormal);
                }
                NodeHeard {
                    node: n.id,
                    status: n.status,
                    heartbeat: n.profile.agent.heartbeat.as_std(),
                    last_heard,
                }
            })
            .collect()
    }

    /// Marks `node` as seen `abnormal` (or not) by the watcher of liveness: hearing from a
    /// node marked abnormal, or not yet marked, wakes [`Hub::abnormal_heard`].
    pub fn mark_abnormal(&self, node: NodeId, abnormal: bool) {
        if let Some(e) = self.inner.nodes.lock().get_mut(&node) {
            e.abnormal = Some(abnormal);
        }
    }

    /// Resolves when a node marked abnormal (or not yet marked) is heard from; one such
    /// hearing before the call is kept for it.
    pub async fn abnormal_heard(&self) {
        self.inner.wake.notified().await;
    }

    /// Nodes with an open session.
    pub fn connected(&self) -> usize {
        self.inner
            .nodes
            .lock()
            .values()
            .filter(|e| e.session.is_some())
            .count()
    }

    /// Fetches `node`'s runtime log from its agent (`skerry node logs`): the lines since
    /// `since`, at most `max_bytes` of the newest. Fails at once when the node is not
    /// connected.
    pub async fn node_logs(
        &self,
        node: NodeId,
        since: Option<Timestamp>,
        max_bytes: u32,
    ) -> Result<NodeLogsText, NodeLogsError> {
        let control = {
            let nodes = self.inner.nodes.lock();
            let entry = nodes.get(&node);
            match entry.and_then(|e| e.control.clone()) {
                Some(c) => c,
                None => {
                    return Err(NodeLogsError::NotConnected {
                        last_seen: entry.and_then(|e| e.last_seen),
                    });
                }
            }
        };
        let request = self.inner.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.inner.requests.lock().insert(request, (node, tx));
        let asked = control
            .send(DownFrame::NodeLogsRequest {
                request,
                since,
                max_bytes,
            })
            .await;
        let answer = match asked {
            Ok(()) => tokio::time::timeout(NODE_LOGS_TIMEOUT, rx).await,
            Err(_) => {
                self.inner.requests.lock().remove(&request);
                return Err(NodeLogsError::NotConnected {
                    last_seen: self.live(node).and_then(|l| l.last_seen),
                });
            }
        };
        self.inner.requests.lock().remove(&request);
        match answer {
            Ok(Ok(NodeLogs::Text {
                raw_len,
                zstd,
                truncated,
            })) => {
                let text = skerry_shared::outbox::decompress_text(&zstd, raw_len as usize)
                    .map_err(|e| NodeLogsError::Decode(e.to_string()))?;
                Ok(NodeLogsText {
                    text: String::from_utf8_lossy(&text).into_owned(),
                    truncated,
                })
            }
            Ok(Ok(NodeLogs::Error(e))) => Err(NodeLogsError::Agent(e)),
            // The session ended before the answer came.
            Ok(Err(_)) => Err(NodeLogsError::NotConnected {
                last_seen: self.live(node).and_then(|l| l.last_seen),
            }),
            Err(_) => Err(NodeLogsError::Timeout),
        }
    }
}

/// Transports (the MQTT endpoint) open sessions through the hub.
impl Sessions for Hub {
    fn open(&self, node: NodeId) -> Result<Connection, String> {
        Hub::open(self, node).map_err(|e| e.to_string())
    }

    fn open_peer(&self, peer: &super::PeerCertificate) -> Result<Connection, String> {
        Hub::open_peer(self, peer).map_err(|e| e.to_string())
    }
}

/// Closes the open session of each node removed, [`REMOVAL_CLOSE_AFTER`] after its
/// removal is durable (the session closes itself at once after it sent the removal; this
/// is for one that did not). After a lagged broadcast, every session of a node that is no
/// longer enrolled is closed. Ends with the engine, or when the hub is gone.
async fn close_removed(
    hub: std::sync::Weak<Shared>,
    mut events: tokio::sync::broadcast::Receiver<std::sync::Arc<skerry_shared::event::Event>>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let removed: Vec<NodeId> = match events.recv().await {
            Ok(e) => match e.payload {
                skerry_shared::event::EventPayload::NodeRemoved { node } => vec![node],
                _ => continue,
            },
            Err(RecvError::Lagged(_)) => {
                let Some(shared) = hub.upgrade() else { return };
                let p = shared.engine().read();
                let open: Vec<NodeId> = shared.nodes.lock().keys().copied().collect();
                open.into_iter()
                    .filter(|n| !p.nodes.contains_key(n))
                    .collect()
            }
            Err(RecvError::Closed) => return,
        };
        tokio::time::sleep(REMOVAL_CLOSE_AFTER).await;
        let Some(shared) = hub.upgrade() else { return };
        let mut nodes = shared.nodes.lock();
        for node in removed {
            if let Some(e) = nodes.get_mut(&node)
                && let Some((id, handle)) = e.session.take()
            {
                tracing::info!(%node, session = id, "closing the session of a removed node");
                handle.abort();
                e.control = None;
            }
        }
    }
}
