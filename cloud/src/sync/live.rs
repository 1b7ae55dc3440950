//! The hub's table of nodes in memory, and what a node's session records in it.
//!
//! [`Shared`] is what the [`Hub`](super::Hub) and every session task hold: the engine, one
//! [`Entry`] per node (its session, last seen, acked `node_seq`, replica reports, dropped
//! frames), the pending `skerry node logs` requests and the report store. The session's
//! loop (`link.rs`) records what it hears through the methods here; the hub's public
//! methods read the same table. Neither `link.rs` nor this file knows the hub, so the hub
//! depends on both and nothing depends back on it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use skerry_shared::clock::Timestamp;
use skerry_shared::frame::{DownFrame, NodeLogs};
use skerry_shared::ids::NodeId;
use skerry_shared::report::StatusReport;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

use super::replicas::Replicas;
use crate::engine::Engine;
use crate::reports::ReportStore;

/// The hub's record of one node.
#[derive(Debug, Default)]
pub(super) struct Entry {
    /// The open session: its id and a handle to end it.
    pub session: Option<(u64, tokio::task::AbortHandle)>,
    /// Frames for the open session to send to the node.
    pub control: Option<mpsc::Sender<DownFrame>>,
    pub last_seen: Option<Timestamp>,
    /// When the node was last heard from, on the monotonic clock (for liveness).
    pub last_heard: Option<Instant>,
    pub acked: u64,
    pub dropped: u64,
    pub replicas: Replicas,
    /// The monitor last saw the node Abnormal (or has not looked yet): hearing from it
    /// wakes the monitor.
    pub abnormal: Option<bool>,
}

pub(super) struct Shared {
    pub engine: Engine,
    pub nodes: Mutex<HashMap<NodeId, Entry>>,
    pub dropped_total: AtomicU64,
    /// Secrets keys refused over a link: another key than the node's registered one.
    pub secrets_keys_refused: AtomicU64,
    pub next_session: AtomicU64,
    /// Wakes the liveness monitor early (an Abnormal node was heard from).
    pub wake: Notify,
    /// When this hub started: the grace period of nodes that were Normal before a restart.
    pub started: Instant,
    /// `skerry node logs` requests waiting for their answer: id -> (node, waiter).
    pub requests: Mutex<HashMap<u64, (NodeId, oneshot::Sender<NodeLogs>)>>,
    pub next_request: AtomicU64,
    /// Whether a catch-up may send a snapshot in place of the missed events.
    pub snapshots: AtomicBool,
    /// Where the nodes' outbox entries are stored (without it they are not acknowledged,
    /// and the agents keep them).
    pub reports: std::sync::OnceLock<ReportStore>,
    /// The CA, which signs the certificates nodes renew over their link (without it no
    /// renewal is asked for).
    pub pki: std::sync::OnceLock<std::sync::Arc<crate::pki::Pki>>,
    /// The task that closes removed nodes' sessions has started.
    pub removals: AtomicBool,
}

impl Shared {
    pub(super) fn new(engine: Engine) -> Shared {
        Shared {
            engine,
            nodes: Mutex::new(HashMap::new()),
            dropped_total: AtomicU64::new(0),
            secrets_keys_refused: AtomicU64::new(0),
            next_session: AtomicU64::new(1),
            wake: Notify::new(),
            started: Instant::now(),
            requests: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(1),
            snapshots: AtomicBool::new(true),
            reports: std::sync::OnceLock::new(),
            pki: std::sync::OnceLock::new(),
            removals: AtomicBool::new(false),
        }
    }

    pub(super) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether a catch-up may send a snapshot in place of the missed events.
    pub(super) fn snapshots(&self) -> bool {
        self.snapshots.load(Ordering::Relaxed)
    }

    /// The report store, once attached.
    pub(super) fn reports(&self) -> Option<&ReportStore> {
        self.reports.get()
    }

    pub(super) fn dropped(&self, node: NodeId) {
        self.dropped_total.fetch_add(1, Ordering::Relaxed);
        if let Some(e) = self.nodes.lock().get_mut(&node) {
            e.dropped += 1;
        }
    }

    /// A node sent another secrets key than its registered one (`secrets_key.rs`).
    pub(super) fn secrets_key_refused(&self) {
        self.secrets_keys_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// The node said `Hello` or sent a heartbeat.
    pub(super) fn heard(&self, node: NodeId) {
        let wake = {
            let mut nodes = self.nodes.lock();
            let e = nodes.entry(node).or_default();
            e.last_seen = Some(Timestamp::now());
            e.last_heard = Some(Instant::now());
            e.abnormal != Some(false)
        };
        if wake {
            self.wake.notify_one();
        }
    }

    /// The node has every event through `node_seq` (kept as a running maximum).
    pub(super) fn acked(&self, node: NodeId, node_seq: u64) {
        if let Some(e) = self.nodes.lock().get_mut(&node) {
            e.acked = e.acked.max(node_seq);
        }
    }

    /// The highest `node_seq` `node` acknowledged (0: none, or no record).
    pub(super) fn acked_of(&self, node: NodeId) -> u64 {
        self.nodes.lock().get(&node).map_or(0, |e| e.acked)
    }

    pub(super) fn report(&self, node: NodeId, report: StatusReport) {
        let refused = match self.nodes.lock().get_mut(&node) {
            Some(e) => e.replicas.apply(report, Timestamp::now()),
            None => 0,
        };
        if refused > 0 {
            tracing::warn!(%node, refused, limit = super::replicas::MAX_REPLICAS_PER_NODE, "a node reports more replicas than the cloud keeps; the rest are dropped");
        }
    }

    /// The session `id` of `node` ended.
    pub(super) fn closed(&self, node: NodeId, id: u64) {
        let mut nodes = self.nodes.lock();
        if let Some(e) = nodes.get_mut(&node)
            && e.session
                .as_ref()
                .is_some_and(|(current, _)| *current == id)
        {
            e.session = None;
            e.control = None;
            tracing::info!(%node, session = id, "session closed");
        }
    }

    /// The answer to a runtime-log request, from `node`'s session.
    pub(super) fn node_logs_answer(&self, node: NodeId, request: u64, result: NodeLogs) {
        let mut requests = self.requests.lock();
        match requests.remove(&request) {
            Some((asked, tx)) if asked == node => {
                let _ = tx.send(result);
            }
            Some(other) => {
                // Another node's request: put it back, and ignore this answer.
                requests.insert(request, other);
                tracing::warn!(%node, request, "a runtime log answer for another node's request; ignored");
            }
            None => tracing::debug!(%node, request, "a late runtime log answer; ignored"),
        }
    }

    /// Applies a node's new status entries (from its outbox, stored `at`) to its live view.
    pub(super) fn report_entries<'a>(
        &self,
        node: NodeId,
        bodies: impl IntoIterator<Item = &'a skerry_shared::outbox::OutboxBody>,
        at: Timestamp,
    ) {
        let refused: usize = match self.nodes.lock().get_mut(&node) {
            Some(e) => bodies
                .into_iter()
                .map(|b| e.replicas.apply_entry(b, at))
                .sum(),
            None => 0,
        };
        if refused > 0 {
            tracing::warn!(%node, refused, limit = super::replicas::MAX_REPLICAS_PER_NODE, "a node reports more replicas than the cloud keeps; the rest are dropped");
        }
    }
}
