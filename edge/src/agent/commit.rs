//! The commit path: the agent's side of the link session, over the sans-IO [`AgentSync`].
//!
//! It owns the sync state machine and takes the link's events in order:
//! - **connected**: says `Hello` (or `Rebuild`) and the node's key for secrets, then tells
//!   the outbox sender ([`ToOutbox::Reconnected`]);
//! - **a down frame**: applies it, makes the batch durable in the journal and only then
//!   sends the ack (a commit is durable before its ack); hands the reconcile scheduler the
//!   storage to purge for instances undeployed with `--purge`, then the new desired state
//!   (a `watch`, which the log collector follows too) and whether the journal is still
//!   being rebuilt; passes the cloud's outbox acknowledgements on to the outbox sender;
//!   answers requests for the agent's own log;
//! - **a failed commit** (a full disk): goes back to what the journal holds and asks the
//!   cloud for the events again with a `Hello` sent after a backoff, so that a disk that
//!   stays full is not hammered;
//! - **its heartbeat timer**: a heartbeat while the link is up, then a pump of the outbox;
//! - **the node's credentials**: renewal frames, and this node's removal once committed,
//!   go to the credentials task (`credentials.rs`).
//!
//! It never waits on a reconcile pass, so heartbeats and acks go on while one runs. It
//! stops when `shutdown` resolves or the link's channel closes, and its channels to the
//! other tasks close with it.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use skerry_shared::clock::Timestamp;
use skerry_shared::event::EventPayload;
use skerry_shared::frame::{self, UpFrame};
use skerry_shared::ids::Name;
use skerry_shared::reducer::NodeDesired;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::error::AgentError;
use super::io::{send, sleep_until};
use super::outbox::{Pump, ToOutbox};
use super::scheduler::Purges;
use crate::backoff::Backoff;
use crate::journal::blocking::AsyncJournal;
use crate::journal::{Commit, JournalState};
use crate::link::{Link, LinkEvent};
use crate::sync::{AgentSync, Other};

/// The commit path's task; see the module docs.
pub(super) struct CommitPath<'a> {
    pub sync: AgentSync,
    pub journal: AsyncJournal,
    pub link: &'a dyn Link,
    pub events: mpsc::Receiver<LinkEvent>,
    /// The heartbeat's period.
    pub heartbeat: Duration,
    /// The agent's own log, for `skerry node logs` (none on the cloud's local node).
    pub runtime_log: Option<PathBuf>,
    /// The desired state as of the last commit, sent when it changes.
    pub desired: &'a watch::Sender<Arc<NodeDesired>>,
    /// Whether the journal is being rebuilt ([`AgentSync::is_rebuilding`]).
    pub rebuilding: &'a watch::Sender<bool>,
    pub purges: mpsc::UnboundedSender<Purges>,
    pub outbox: mpsc::UnboundedSender<ToOutbox>,
    pub pump: Pump,
    /// Renewal frames, and this node's removal once committed.
    pub credentials: mpsc::UnboundedSender<super::credentials::ToCredentials>,
    /// Said after every `Hello` (see [`super::Parts::secrets_key`]).
    pub secrets_key: Option<skerry_shared::secret::NodeSecretsKey>,
}

/// What became of the journal commit a down frame asked for.
enum Committed {
    /// The frame asked for none.
    Nothing,
    Yes,
    /// It failed; the agent went back to what the journal holds. The `Hello` to send
    /// (after a backoff) so that the cloud sends the rest again.
    Failed(Vec<u8>),
}

impl CommitPath<'_> {
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), AgentError> {
        let mut heartbeat = tokio::time::interval(self.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Bytes received from the cloud since the start.
        let mut received: u64 = 0;
        // After a failed commit (a full disk) the `Hello` that asks for the events again
        // waits a backoff, so a disk that stays full is not hammered.
        let mut commit_backoff = Backoff::new();
        let mut hello_at: Option<(Instant, Vec<u8>)> = None;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                event = self.events.recv() => {
                    let Some(event) = event else { break };
                    match event {
                        LinkEvent::Connected => {
                            tracing::info!("connected to the cloud");
                            send(self.link, self.sync.connected()?).await;
                            self.say_secrets_key().await;
                            let _ = self.outbox.send(ToOutbox::Reconnected);
                        }
                        LinkEvent::Disconnected(reason) => {
                            tracing::warn!(%reason, "the link to the cloud is down; running from the journal");
                        }
                        LinkEvent::Down(bytes) => {
                            received += bytes.len() as u64;
                            self.down(&bytes, received, &mut commit_backoff, &mut hello_at).await?;
                        }
                    }
                }
                _ = heartbeat.tick() => {
                    if self.link.is_connected() {
                        send(self.link, self.sync.heartbeat(Timestamp::now())?).await;
                        self.pump.notify_one();
                    }
                }
                () = sleep_until(hello_at.as_ref().map(|(at, _)| *at)) => {
                    if let Some((_, hello)) = hello_at.take() {
                        send(self.link, hello).await;
                    }
                }
            }
        }
        Ok(())
    }

    /// The node's key for secrets, after `Hello` on every connect: 34 bytes, and the cloud
    /// records it only for a node without one, so saying it always is simpler than knowing
    /// whether the cloud has it (a registration it lost to a crash is made again).
    async fn say_secrets_key(&self) {
        let Some(key) = self.secrets_key else { return };
        match frame::encode_up(&UpFrame::SecretsKey { key }) {
            Ok(bytes) => send(self.link, bytes).await,
            Err(e) => tracing::error!(error = %e, "cannot encode the key for secrets"),
        }
    }

    /// One down frame: apply, commit to the journal, then ack; then tell the other tasks
    /// what changed. After a failed commit, `hello_at` holds the `Hello` to send after
    /// the `backoff`.
    async fn down(
        &mut self,
        bytes: &[u8],
        received: u64,
        backoff: &mut Backoff,
        hello_at: &mut Option<(Instant, Vec<u8>)>,
    ) -> Result<(), AgentError> {
        let before = self.sync.generation();
        let (purges, other, committed) = self.apply(bytes, received).await?;
        if !purges.is_empty() {
            let _ = self.purges.send(purges);
        }
        match committed {
            Committed::Yes => {
                backoff.succeeded();
            }
            Committed::Failed(hello) => {
                let delay = backoff.failed();
                tracing::warn!(
                    retry_in_ms = delay.as_millis() as u64,
                    "asking the cloud for the events again after a backoff"
                );
                *hello_at = Some((Instant::now() + delay, hello));
            }
            Committed::Nothing => {}
        }
        let rebuilding = self.sync.is_rebuilding();
        self.rebuilding
            .send_if_modified(|r| std::mem::replace(r, rebuilding) != rebuilding);
        if self.sync.generation() != before {
            // The desired state changed: reconcile as soon as possible.
            self.desired.send_replace(Arc::clone(self.sync.desired()));
        }
        match other {
            Some(Other::OutboxAck { epoch, seqs }) => {
                let _ = self.outbox.send(ToOutbox::Acked { epoch, seqs });
            }
            Some(Other::NodeLogs {
                request,
                since,
                max_bytes,
            }) => {
                let result = match self.runtime_log.clone() {
                    Some(path) => tokio::task::spawn_blocking(move || {
                        crate::runlog::read(&path, since, max_bytes as usize)
                    })
                    .await
                    .unwrap_or_else(|e| frame::NodeLogs::Error(e.to_string())),
                    None => frame::NodeLogs::Error(
                        "this agent runs inside the cloud (the local node): its log is the cloud's own output".into(),
                    ),
                };
                match frame::encode_up(&UpFrame::NodeLogs { request, result }) {
                    Ok(bytes) => send(self.link, bytes).await,
                    Err(e) => {
                        tracing::error!(error = %e, "the runtime log answer does not encode")
                    }
                }
            }
            Some(Other::Credentials(f)) => {
                let _ = self
                    .credentials
                    .send(super::credentials::ToCredentials::Frame(f));
            }
            None => {}
        }
        Ok(())
    }

    /// Applies one down frame, commits the batch it gives to the journal, then acks.
    /// Returns the storage to purge for instances undeployed with `--purge`, and a frame
    /// for another part of the agent.
    async fn apply(
        &mut self,
        bytes: &[u8],
        received: u64,
    ) -> Result<(Purges, Option<Other>, Committed), AgentError> {
        let step = self.sync.down(bytes, Timestamp::now());
        for frame in step.send {
            send(self.link, frame).await;
        }
        let Some(commit) = step.commit else {
            return Ok((Vec::new(), step.other, Committed::Nothing));
        };
        let purges = purges_in(&commit, self.sync.desired());
        // The write and its fsync run off the async thread, so heartbeats and the
        // reconciler go on.
        match self.journal.commit(&commit).await {
            Ok(()) => {
                let ack = self.sync.committed(&commit)?;
                tracing::info!(
                    through = commit.through(),
                    events = commit.events.len(),
                    snapshot = commit.snapshot.is_some(),
                    bytes_received = received,
                    "committed"
                );
                send(self.link, ack).await;
                // Only this node's removal reaches it (its own node_seq).
                if commit
                    .events
                    .iter()
                    .any(|e| matches!(e.payload, EventPayload::NodeRemoved { .. }))
                {
                    let _ = self
                        .credentials
                        .send(super::credentials::ToCredentials::Removed);
                }
                Ok((purges, step.other, Committed::Yes))
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot commit to the journal; asking the cloud again");
                // The journal may not even read back on a full disk: the agent stays up
                // and tries again after the backoff.
                let hello = match self.journal.load().await {
                    Ok(state) => self.sync.resume(&state)?,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read the journal back; going back to the last committed state");
                        // What the journal last committed is what `sync` last reported.
                        let desired = Some(self.sync.desired().as_ref().clone());
                        self.sync.resume(&JournalState {
                            desired,
                            epoch: 0,
                            memos: crate::journal::Memos::default(),
                            recent: std::collections::BTreeMap::new(),
                        })?
                    }
                };
                Ok((Vec::new(), step.other, Committed::Failed(hello)))
            }
        }
    }
}

/// The named storage of instances undeployed with `--purge` in `commit`, as they were
/// desired before it.
fn purges_in(commit: &Commit, before: &NodeDesired) -> Purges {
    commit
        .events
        .iter()
        .filter_map(|e| match &e.payload {
            EventPayload::InstanceUndeployed { name, purge: true } => Some(name),
            _ => None,
        })
        .filter_map(|name| {
            let spec = &before.instances.get(name)?.spec;
            let mut storage: Vec<Name> = spec
                .manifest
                .components
                .iter()
                .flat_map(|c| c.storage.iter().map(|s| s.name.clone()))
                .collect();
            storage.sort();
            storage.dedup();
            Some((name.clone(), storage))
        })
        .collect()
}
