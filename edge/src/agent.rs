//! `run(config, shutdown)`: the agent's main loop, which `skerry-edge run` and the cloud's
//! local node both call.
//!
//! It enrolls on the first run, opens the journal and resumes from it (so apps keep
//! running, and are rebuilt, with the cloud unreachable), then serves three things at
//! once on one current-thread loop: the link (hello on connect, events committed to the
//! journal before each ack, heartbeats), the reconciler (on every change of the desired
//! state and on a timer), and replica reports (every change, and all of them after a
//! connect).

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use skerry_shared::clock::Timestamp;
use skerry_shared::event::EventPayload;
use skerry_shared::frame::{self, UpFrame};
use skerry_shared::ids::Name;
use skerry_shared::manifest::RuntimeKind;
use skerry_shared::reducer::NodeDesired;
use skerry_shared::report::StatusReport;
use tokio::sync::mpsc;

use crate::config::AgentConfig;
use crate::identity::Identity;
use crate::journal::redb::RedbJournal;
use crate::journal::{Commit, FILE_NAME, Journal, JournalError};
use crate::link::{LinkEvent, LinkHandle, LinkOptions, MqttLink};
use crate::reconciler::{PassOutcome, Reconciler};
use crate::runtime::Runtime;
use crate::runtime::docker::{DockerOptions, DockerRuntime};
use crate::runtime::process::ProcessRuntime;
use crate::sync::{AgentSync, SyncConfig};

/// How often the reconciler looks again when nothing told it to.
const RESYNC: Duration = Duration::from_secs(2);
/// How often the agent looks for a Docker engine that was not there at start.
const DOCKER_RETRY: Duration = Duration::from_secs(30);
/// How soon it looks again after acting, to follow up quickly (a started dependency).
const FOLLOW_UP: Duration = Duration::from_millis(300);

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("not enrolled yet: the first run needs --cloud URL and --token TOKEN")]
    NotEnrolled,
    #[error(transparent)]
    Enroll(#[from] crate::enroll::EnrollError),
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Sync(#[from] crate::sync::SyncError),
    #[error(transparent)]
    Link(#[from] crate::link::LinkError),
    #[error("{0}")]
    Io(String),
}

/// The identity under `config.data`, enrolling first if there is none.
pub async fn identity(config: &AgentConfig) -> Result<Identity, AgentError> {
    if let Some(id) = Identity::load(&config.data)? {
        return Ok(id);
    }
    let (Some(cloud), Some(token)) = (&config.cloud, &config.token) else {
        return Err(AgentError::NotEnrolled);
    };
    let id =
        crate::enroll::enroll(cloud, token, &config.name, &config.profile, &config.data).await?;
    tracing::info!(node = %id.node_id(), name = %id.name(), env = %id.env(), "enrolled");
    Ok(id)
}

fn open_journal(data: &Path, cache: u64) -> Result<Arc<dyn Journal>, AgentError> {
    let cache = usize::try_from(cache).unwrap_or(16 << 20);
    Ok(Arc::new(RedbJournal::open(&data.join(FILE_NAME), cache)?))
}

async fn runtimes(config: &AgentConfig) -> Vec<Arc<dyn Runtime>> {
    let mut out: Vec<Arc<dyn Runtime>> = Vec::new();
    for kind in &config.runtimes {
        match kind {
            RuntimeKind::Docker => match DockerRuntime::connect(DockerOptions::default()).await {
                Ok(rt) => out.push(Arc::new(rt)),
                Err(e) => {
                    tracing::error!(error = %e, "the Docker engine is not available: container components will stay Pending")
                }
            },
            RuntimeKind::Process => match ProcessRuntime::new(config.data.join("process")) {
                Ok(rt) => out.push(Arc::new(rt)),
                Err(e) => tracing::error!(error = %e, "the process runtime is not available"),
            },
        }
    }
    out
}

/// Runs the agent until `shutdown` resolves. Apps keep running after it returns: the
/// runtimes' replicas are not stopped (a restarted agent adopts them).
pub async fn run(
    config: AgentConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    std::fs::create_dir_all(&config.data)
        .map_err(|e| AgentError::Io(format!("{}: {e}", config.data.display())))?;
    let identity = identity(&config).await?;
    let node = identity.node_id();
    let journal = open_journal(&config.data, config.profile.agent.redb_cache.bytes())?;
    let state = journal.load()?;
    let mut sync = AgentSync::new(node, &state, SyncConfig::new(env!("CARGO_PKG_VERSION")))?;
    let reconciler = Reconciler::new(
        node,
        config.data.clone(),
        runtimes(&config).await,
        journal.clone(),
        state.memos.clone(),
    );
    tracing::info!(
        node = %node,
        applied = state.applied(),
        instances = sync.desired().instances.len(),
        "resumed from the journal"
    );

    let (tx, mut rx) = mpsc::channel(256);
    let link = MqttLink::spawn(&identity, LinkOptions::from_profile(&config.profile), tx)?;
    let mut heartbeat = tokio::time::interval(
        config
            .profile
            .agent
            .heartbeat
            .as_std()
            .max(Duration::from_secs(1)),
    );
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut received: u64 = 0;
    let mut next_pass = tokio::time::Instant::now();
    // A pass runs beside the loop, so a slow stop never delays heartbeats or acks. The
    // reconciler is moved into the running pass and comes back with its outcome.
    let mut idle = Some(reconciler);
    let mut running: Option<Pass> = None;
    let mut complete = StatusReport {
        complete: true,
        replicas: Vec::new(),
        removed: Vec::new(),
    };
    let mut purges: Vec<(Name, Vec<Name>)> = Vec::new();
    let wants_docker = config.runtimes.contains(&RuntimeKind::Docker);
    let mut last_docker_try = tokio::time::Instant::now();
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            () = &mut shutdown => break,
            event = rx.recv() => {
                let Some(event) = event else { break };
                match event {
                    LinkEvent::Connected => {
                        tracing::info!("connected to the cloud");
                        send(&link, sync.connected()?).await;
                        send_status(&link, complete.clone()).await;
                    }
                    LinkEvent::Disconnected(reason) => {
                        tracing::warn!(%reason, "the link to the cloud is down; running from the journal");
                    }
                    LinkEvent::Down(bytes) => {
                        received += bytes.len() as u64;
                        let before = sync.generation();
                        purges.extend(down(&mut sync, &journal, &link, &bytes, received).await?);
                        if sync.generation() != before {
                            // The desired state changed: reconcile as soon as possible.
                            next_pass = tokio::time::Instant::now();
                        }
                    }
                }
            }
            _ = heartbeat.tick() => {
                if link.is_connected() {
                    send(&link, sync.heartbeat(Timestamp::now())?).await;
                }
            }
            () = tokio::time::sleep_until(next_pass), if idle.is_some() => {
                if let Some(mut r) = idle.take() {
                    if wants_docker && !r.has_runtime(RuntimeKind::Docker) && last_docker_try.elapsed() >= DOCKER_RETRY {
                        last_docker_try = tokio::time::Instant::now();
                        if let Ok(rt) = DockerRuntime::connect(DockerOptions::default()).await {
                            tracing::info!("the Docker engine is available now");
                            r.add_runtime(Arc::new(rt));
                        }
                    }
                    r.queue_purges(std::mem::take(&mut purges));
                    let desired = Arc::clone(sync.desired());
                    running = Some(Box::pin(async move {
                        let outcome = r.pass(&desired).await;
                        (r, outcome)
                    }));
                }
            }
            (r, outcome) = async {
                match running.as_mut() {
                    Some(pass) => pass.await,
                    None => std::future::pending().await,
                }
            } => {
                running = None;
                complete = r.complete_report();
                idle = Some(r);
                if let Some(report) = outcome.report {
                    send_status(&link, report).await;
                }
                next_pass = tokio::time::Instant::now() + if outcome.actions > 0 { FOLLOW_UP } else { RESYNC };
            }
        }
    }
    if let Some(pass) = running.take() {
        // Let the pass in flight finish, so no action is cut in half.
        let _ = pass.await;
    }
    link.shutdown().await;
    tracing::info!("agent stopped; its apps keep running");
    Ok(())
}

/// A reconcile pass in flight, owning the reconciler until it ends.
type Pass = std::pin::Pin<Box<dyn Future<Output = (Reconciler, PassOutcome)> + Send>>;

/// The named storage of instances undeployed with `--purge` in `commit`, as they were
/// desired before it.
fn purges_in(commit: &Commit, before: &NodeDesired) -> Vec<(Name, Vec<Name>)> {
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

/// One down frame: apply, commit to the journal, then ack. Returns the storage to purge
/// for instances undeployed with `--purge`.
async fn down(
    sync: &mut AgentSync,
    journal: &Arc<dyn Journal>,
    link: &LinkHandle,
    bytes: &[u8],
    received: u64,
) -> Result<Vec<(Name, Vec<Name>)>, AgentError> {
    let step = sync.down(bytes, Timestamp::now());
    for frame in step.send {
        send(link, frame).await;
    }
    let Some(commit) = step.commit else {
        return Ok(Vec::new());
    };
    let purges = purges_in(&commit, sync.desired());
    // The write and its fsync run off the loop, so heartbeats and the reconciler go on.
    let committed = {
        let (journal, batch) = (Arc::clone(journal), commit.clone());
        tokio::task::spawn_blocking(move || journal.commit(&batch))
            .await
            .unwrap_or_else(|e| {
                Err(JournalError::Storage {
                    journal: "journal".into(),
                    reason: e.to_string(),
                })
            })
    };
    match committed {
        Ok(()) => {
            let ack = sync.committed(&commit)?;
            tracing::info!(
                through = commit.through(),
                events = commit.events.len(),
                snapshot = commit.snapshot.is_some(),
                bytes_received = received,
                "committed"
            );
            send(link, ack).await;
            Ok(purges)
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot commit to the journal; asking the cloud again");
            let hello = sync.resume(&journal.load()?)?;
            send(link, hello).await;
            Ok(Vec::new())
        }
    }
}

async fn send(link: &LinkHandle, frame: Vec<u8>) {
    if let Err(e) = link.send_up(Bytes::from(frame)).await {
        tracing::debug!(error = %e, "not sent; the next connect says it again");
    }
}

async fn send_status(link: &LinkHandle, report: StatusReport) {
    if !link.is_connected() {
        return;
    }
    match frame::encode_up(&UpFrame::Status(report)) {
        Ok(bytes) => send(link, bytes).await,
        Err(e) => tracing::error!(error = %e, "a status report does not encode"),
    }
}
