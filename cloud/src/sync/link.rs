//! The I/O loop around one node's [`NodeSession`]: up frames in, the engine's broadcast
//! and log pages in, down frames out.
//!
//! Up frames are decoded here. One that is over the limit or does not decode is dropped,
//! counted (per node and in total) and logged; the session goes on. Acks, heartbeats and
//! status reports go to the hub's live state; `Hello` subscribes to the broadcast first,
//! then reads the node's head and starts catch-up. Log pages are read on the blocking pool;
//! the broadcast is read only once catch-up is over (a lag then sends the session back to
//! the log).

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
}

impl Link {
    async fn serve(
        &mut self,
        up: &mut mpsc::Receiver<Bytes>,
        control: &mut mpsc::Receiver<DownFrame>,
    ) -> Stop {
        loop {
            let live = self.session.is_live() && self.page.is_none();
            let outputs = tokio::select! {
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
                let out = self.session.hello(last_node_seq, head);
                // What the agent says it applied counts as acknowledged.
                self.hub.acked(self.node, self.session.sent());
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
        }
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
