//! The I/O loop around one node's [`NodeSession`]: up frames in, the engine's broadcast
//! and log pages in, down frames out.
//!
//! Up frames are decoded here. One that is over the limit or does not decode is dropped,
//! counted (per node and in total) and logged; the session goes on. Acks, heartbeats and
//! status reports go to the hub's live state; `Hello` subscribes to the broadcast first,
//! then reads the node's head and starts catch-up. Log pages are read on the blocking pool;
//! the broadcast is read only once catch-up is over (a lag then sends the session back to
//! the log).
//!
//! A frame that carries this node's `node.removed` ends the session once the agent has
//! acknowledged it, or [`REMOVAL_LINGER`] after it was handed to the transport, whichever
//! comes first; the transport then closes the connection. (Closing at once can cut the
//! frame off: a client that reads the frame and the end of the stream in one read may drop
//! the frame.) When the session knows the
//! certificate the node connected with, it asks for that certificate's renewal when it is
//! due (`renewal.rs`), signs the CSR that comes back, records `node.certificate-renewed`
//! and sends the certificate once that is durable. A node's key for secrets sent over
//! the link is recorded only for a node without one (`secrets_key.rs`).

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use skerry_shared::clock::Timestamp;
use skerry_shared::event::Event;
use skerry_shared::frame::{self, DownFrame, UpFrame};
use skerry_shared::ids::NodeId;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::live::Shared;
use super::session::{NodeSession, Output, SyncError};
use crate::log::LogError;

/// How long a session that sent its node's removal waits for the agent's ack before it
/// closes.
pub const REMOVAL_LINGER: std::time::Duration = std::time::Duration::from_millis(500);

/// Broadcast events handed to the session at once.
const LIVE_BATCH: usize = 256;

type Page = JoinHandle<Result<Vec<Event>, LogError>>;

/// Ends the session's record in the hub however the task ends (also when aborted).
struct Closing {
    hub: Arc<Shared>,
    node: NodeId,
    id: u64,
}

impl Drop for Closing {
    fn drop(&mut self) {
        self.hub.closed(self.node, self.id);
    }
}

/// Why the loop stops.
enum Stop {
    /// The transport went away, or the engine stopped.
    Gone,
    Failed(SyncError),
}

/// Runs session `id` of `node` until the transport drops `up` or `down`, the engine stops,
/// or the session fails.
pub(super) async fn run(
    hub: Arc<Shared>,
    node: NodeId,
    id: u64,
    mut up: mpsc::Receiver<Bytes>,
    down: mpsc::Sender<Bytes>,
    mut control: mpsc::Receiver<DownFrame>,
    peer: Option<super::PeerCertificate>,
) {
    let _closing = Closing {
        hub: hub.clone(),
        node,
        id,
    };
    let mut session = NodeSession::new(node);
    if !hub.snapshots() {
        session = session.without_snapshots();
    }
    let mut link = Link {
        hub,
        node,
        session,
        events: None,
        page: None,
        down,
        closing: None,
        renewal: Renewal {
            peer,
            at: None,
            asked: false,
            signed: false,
        },
    };
    match link.serve(&mut up, &mut control).await {
        Stop::Gone => {}
        Stop::Failed(e) => tracing::error!(%node, session = id, error = %e, "session failed"),
    }
}

struct Link {
    hub: Arc<Shared>,
    node: NodeId,
    session: NodeSession,
    events: Option<broadcast::Receiver<Arc<Event>>>,
    page: Option<Page>,
    down: mpsc::Sender<Bytes>,
    /// The removal was sent at this `node_seq`: close on its ack, or at the deadline.
    closing: Option<(u64, tokio::time::Instant)>,
    renewal: Renewal,
}

/// The renewal of the certificate the session opened with.
struct Renewal {
    peer: Option<super::PeerCertificate>,
    /// When to ask, on the monotonic clock, once `Hello` came and it was not due yet.
    at: Option<tokio::time::Instant>,
    /// Asked in this session (once at most).
    asked: bool,
    /// A CSR was signed in this session (once at most).
    signed: bool,
}

/// Never resolves without a deadline.
async fn until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Link {
    async fn serve(
        &mut self,
        up: &mut mpsc::Receiver<Bytes>,
        control: &mut mpsc::Receiver<DownFrame>,
    ) -> Stop {
        loop {
            let live = self.session.is_live() && self.page.is_none();
            if let Some((seq, _)) = self.closing
                && self.hub.acked_of(self.node) >= seq
            {
                tracing::info!(node = %self.node, "the node acknowledged its removal; closing its session");
                return Stop::Gone;
            }
            let outputs = tokio::select! {
                () = until(self.closing.map(|(_, at)| at)) => {
                    tracing::info!(node = %self.node, "the node did not acknowledge its removal within {REMOVAL_LINGER:?}; closing its session");
                    return Stop::Gone;
                },
                frame = up.recv() => match frame {
                    Some(bytes) => self.up(&bytes).await,
                    None => return Stop::Gone,
                },
                frame = control.recv() => match frame {
                    Some(f) => Ok(vec![Output::Send(f)]),
                    None => return Stop::Gone,
                },
                page = wait(&mut self.page) => {
                    self.page = None;
                    match page {
                        Ok(Ok(events)) => self.session.page(&events),
                        Ok(Err(e)) => Err(e.into()),
                        Err(e) => Err(LogError::Storage(format!("log read: {e}")).into()),
                    }
                },
                () = until(self.renewal.at) => {
                    self.renewal.at = None;
                    Ok(self.ask_renewal("two thirds of its life have passed".into()))
                },
                got = recv(&mut self.events), if live => match got {
                    Ok(first) => self.live(first),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::debug!(node = %self.node, missed, "broadcast lagged; reading the log");
                        Ok(self.session.lagged())
                    }
                    Err(RecvError::Closed) => return Stop::Gone,
                },
            };
            match outputs {
                Ok(outputs) => {
                    if let Err(stop) = self.act(outputs).await {
                        return stop;
                    }
                }
                Err(e) => return Stop::Failed(e),
            }
        }
    }

    /// The node's highest `node_seq` (`None`: no longer enrolled).
    fn head(&self) -> Option<u64> {
        self.hub
            .engine()
            .read()
            .nodes
            .get(&self.node)
            .map(|n| n.node_seq)
    }

    /// One frame from the node.
    async fn up(&mut self, bytes: &[u8]) -> Result<Vec<Output>, SyncError> {
        let frame = match frame::decode_up(bytes) {
            Ok(f) => f,
            Err(e) => {
                self.hub.dropped(self.node);
                tracing::warn!(node = %self.node, len = bytes.len(), error = %e, "dropped an up frame");
                return Ok(Vec::new());
            }
        };
        match frame {
            UpFrame::Rebuild { agent_version } => {
                self.events = Some(self.hub.engine().subscribe());
                self.page = None;
                let Some(head) = self.head() else {
                    tracing::warn!(node = %self.node, "the node is no longer enrolled; ignoring its rebuild");
                    return Ok(Vec::new());
                };
                tracing::warn!(node = %self.node, head, agent = %agent_version, "the agent's journal was damaged; sending it a snapshot to rebuild from");
                self.hub.heard(self.node);
                Ok(self.session.rebuild(head))
            }
            UpFrame::Hello {
                last_node_seq,
                agent_version,
            } => {
                // Subscribe first: every event beyond the head read next is then either in
                // the broadcast or reported as a lag.
                self.events = Some(self.hub.engine().subscribe());
                // A read in flight belongs to the catch-up this Hello replaces.
                self.page = None;
                let Some(head) = self.head() else {
                    tracing::warn!(node = %self.node, "the node is no longer enrolled; ignoring its Hello");
                    return Ok(Vec::new());
                };
                tracing::info!(node = %self.node, last_node_seq, head, agent = %agent_version, "hello");
                self.hub.heard(self.node);
                let mut out = self.session.hello(last_node_seq, head);
                // What the agent says it applied counts as acknowledged.
                self.hub.acked(self.node, self.session.sent());
                out.extend(self.renewal_on_hello());
                Ok(out)
            }
            UpFrame::Ack { node_seq } => {
                self.hub.acked(self.node, node_seq.min(self.session.sent()));
                Ok(Vec::new())
            }
            UpFrame::Heartbeat { last_node_seq, .. } => {
                self.hub.heard(self.node);
                self.hub
                    .acked(self.node, last_node_seq.min(self.session.sent()));
                Ok(vec![Output::Send(DownFrame::HeartbeatAck {
                    time: Timestamp::now(),
                })])
            }
            UpFrame::Status(report) => {
                self.hub.report(self.node, report);
                Ok(Vec::new())
            }
            UpFrame::Outbox { epoch, entries } => Ok(self.outbox(epoch, entries).await),
            UpFrame::NodeLogs { request, result } => {
                self.hub.node_logs_answer(self.node, request, result);
                Ok(Vec::new())
            }
            UpFrame::CertificateRequest { csr } => Ok(self.renew(&csr).await),
            UpFrame::SecretsKey { key } => {
                super::secrets_key::received(&self.hub, self.node, key).await;
                Ok(Vec::new())
            }
        }
    }

    /// After `Hello`: ask for the renewal now if it is due, else at its time.
    fn renewal_on_hello(&mut self) -> Vec<Output> {
        let (Some(peer), Some(pki)) = (self.renewal.peer, self.hub.pki.get()) else {
            return Vec::new();
        };
        if self.renewal.asked {
            return Vec::new();
        }
        let now = Timestamp::now();
        match super::renewal::due(&peer, now, pki.node_lifetime()) {
            super::renewal::Due::Now(reason) => self.ask_renewal(reason),
            super::renewal::Due::At(at) => {
                let wait = u64::try_from(at.0.saturating_sub(now.0)).unwrap_or(0);
                self.renewal.at =
                    Some(tokio::time::Instant::now() + std::time::Duration::from_millis(wait));
                Vec::new()
            }
        }
    }

    fn ask_renewal(&mut self, reason: String) -> Vec<Output> {
        if self.renewal.asked {
            return Vec::new();
        }
        self.renewal.asked = true;
        tracing::info!(node = %self.node, %reason, "asking the node to renew its certificate");
        vec![Output::Send(DownFrame::RenewCertificate { reason })]
    }

    /// A CSR from the node: signed (once per session, and only when asked for), recorded,
    /// then the certificate sent down.
    async fn renew(&mut self, csr: &str) -> Vec<Output> {
        let refused = |reason: String| vec![Output::Send(DownFrame::CertificateRefused { reason })];
        let Some(pki) = self.hub.pki.get().cloned() else {
            return refused("this cloud renews no certificates".into());
        };
        if !self.renewal.asked || self.renewal.signed {
            tracing::warn!(node = %self.node, "a certificate request that was not asked for; refused");
            return refused("no renewal was asked for in this session".into());
        }
        self.renewal.signed = true;
        let issued = match pki.issue_node(csr, self.node) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(node = %self.node, error = %e, "the node's certificate request is refused");
                return refused(e.to_string());
            }
        };
        let cmd = crate::command::Command::RenewNodeCertificate {
            node: self.node,
            certificate: issued.digest,
            expires: issued.expires,
        };
        if let Err(e) = self
            .hub
            .engine()
            .submit(skerry_shared::event::Actor::Node(self.node), cmd)
            .await
        {
            tracing::error!(node = %self.node, error = %e, "cannot record the renewed certificate; not sending it");
            return refused(format!("the cloud could not record the certificate: {e}"));
        }
        tracing::info!(node = %self.node, certificate = %issued.digest, expires = %issued.expires, "renewed the node's certificate");
        vec![Output::Send(DownFrame::Certificate {
            certificate: issued.pem,
            expires: issued.expires,
        })]
    }

    /// Outbox entries: stored durably (duplicates skipped), then acknowledged.
    async fn outbox(
        &mut self,
        epoch: u64,
        entries: Vec<skerry_shared::outbox::OutboxEntry>,
    ) -> Vec<Output> {
        let Some(store) = self.hub.reports() else {
            return Vec::new();
        };
        match store.ingest(self.node, epoch, entries).await {
            Ok(done) => {
                self.hub
                    .report_entries(self.node, done.new.iter().map(|e| &e.body), done.at);
                if done.acked.is_empty() {
                    Vec::new()
                } else {
                    vec![Output::Send(DownFrame::OutboxAck {
                        epoch,
                        seqs: done.acked,
                    })]
                }
            }
            Err(e) => {
                // Not acknowledged: the agent sends them again.
                tracing::error!(node = %self.node, error = %e, "cannot store outbox entries");
                Vec::new()
            }
        }
    }

    /// A broadcast event, with whatever else is queued behind it.
    fn live(&mut self, first: Arc<Event>) -> Result<Vec<Output>, SyncError> {
        let mut batch = vec![first];
        let mut lagged = false;
        if let Some(rx) = &mut self.events {
            while batch.len() < LIVE_BATCH {
                match rx.try_recv() {
                    Ok(e) => batch.push(e),
                    Err(TryRecvError::Lagged(_)) => {
                        lagged = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        let mut out = self.session.events(batch.iter().map(|e| e.as_ref()))?;
        if lagged && self.session.is_live() {
            out.extend(self.session.lagged());
        }
        Ok(out)
    }

    async fn act(&mut self, outputs: Vec<Output>) -> Result<(), Stop> {
        for o in outputs {
            match o {
                Output::Send(f) => {
                    let bytes = frame::encode_down(&f).map_err(|e| Stop::Failed(e.into()))?;
                    if self.down.send(Bytes::from(bytes)).await.is_err() {
                        return Err(Stop::Gone);
                    }
                    if let Some(seq) = removal(&f, self.node)
                        && self.closing.is_none()
                    {
                        tracing::info!(node = %self.node, "the node's removal is sent; closing its session once it is acknowledged");
                        self.closing = Some((seq, tokio::time::Instant::now() + REMOVAL_LINGER));
                    }
                }
                Output::Read { after, limit } => {
                    let log = self.hub.engine().log().clone();
                    let node = self.node;
                    self.page = Some(tokio::task::spawn_blocking(move || {
                        log.read_node(node, after, limit)
                    }));
                }
            }
        }
        Ok(())
    }
}

/// The `node_seq` of the removal of `node` that `frame` carries, if it does.
fn removal(frame: &DownFrame, node: NodeId) -> Option<u64> {
    let DownFrame::Events(events) = frame else {
        return None;
    };
    events
        .iter()
        .find(|e| {
            matches!(
                e.payload,
                skerry_shared::event::EventPayload::NodeRemoved { node: n } if n == node
            )
        })
        .map(|e| e.node_seq)
}

/// Waits for the read in flight, if any (never resolves otherwise).
async fn wait(page: &mut Option<Page>) -> <Page as Future>::Output {
    match page {
        Some(p) => p.await,
        None => std::future::pending().await,
    }
}

/// The next broadcast event, if subscribed (never resolves otherwise).
async fn recv(rx: &mut Option<broadcast::Receiver<Arc<Event>>>) -> Result<Arc<Event>, RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
