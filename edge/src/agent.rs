//! `run(config, shutdown)`: the agent's main loop, which `skerry-edge run` and the cloud's
//! local node both call; [`run_with`], the same loop on [`Parts`] its caller made (the
//! fleet simulator gives each agent an in-memory journal and a simulated runtime).
//!
//! It enrolls on the first run, opens the journal and resumes from it (so apps keep
//! running, and are rebuilt, with the cloud unreachable); a journal found damaged is set
//! aside, a new one is filled from the cloud's snapshot, and nothing is reconciled until
//! that snapshot is committed. Then it serves these at once on one
//! current-thread loop: the link (hello on connect, events committed to the journal before
//! each ack, heartbeats), the reconciler (on every change of the desired state and on a
//! timer), the outbox (replica states queued in the journal at every change, and all of
//! them after a connect; log batches from the collector; sent while the link is up, control
//! before logs), and requests for the agent's own log. The log collector runs as a task
//! beside the loop and wakes it when it has queued lines.

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
use skerry_shared::outbox::OutboxBody;
use skerry_shared::reducer::NodeDesired;
use tokio::sync::{Notify, mpsc, watch};

use crate::config::AgentConfig;
use crate::identity::Identity;
use crate::journal::redb::RedbJournal;
use crate::journal::{Commit, FILE_NAME, Journal, JournalError, JournalState, OutboxPush};
use crate::link::{LinkEvent, LinkHandle, LinkOptions, MqttLink};
use crate::logs::collect::Collector;
use crate::outbox::Sender;
use crate::reconciler::{PassOutcome, Reconciler};
use crate::runtime::Runtime;
use crate::runtime::docker::{DockerEngine, DockerOptions, DockerRuntime};
use crate::runtime::process::ProcessRuntime;
use crate::sync::{AgentSync, Other, SyncConfig};

/// How often the reconciler looks again when nothing told it to.
const RESYNC: Duration = Duration::from_secs(2);
/// How often the agent looks for a Docker engine that was not there at start.
const DOCKER_RETRY: Duration = Duration::from_secs(30);
/// How soon it looks again after acting, to follow up quickly (a started dependency).
const FOLLOW_UP: Duration = Duration::from_millis(300);
/// How soon it reads again when a source had more than one round takes.
const COLLECT_MORE: Duration = Duration::from_millis(50);

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(
        "not enrolled yet: the first run needs --cloud URL and a token (--token-file FILE, SKERRY_TOKEN or --token TOKEN)"
    )]
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

/// How long the agent waits at start for a journal another process holds. `skerry-edge
/// status` and `events` hold it for a moment (and as a writer when they recover a journal
/// left by a crash), so an agent started beside one waits its turn; a second agent holds it
/// for good, and this one then stops with [`JournalError::Locked`].
const LOCKED_WAIT: Duration = Duration::from_secs(10);

/// Opens the journal; a damaged one is set aside and a new one started (see
/// [`RedbJournal::open_or_set_aside`]): the bool says so.
/// A journal another process holds is tried again for up to `wait`.
async fn open_journal(
    data: &Path,
    cache: u64,
    wait: Duration,
) -> Result<(Arc<dyn Journal>, JournalState, bool), AgentError> {
    let cache = usize::try_from(cache).unwrap_or(16 << 20);
    let path = data.join(FILE_NAME);
    let deadline = tokio::time::Instant::now() + wait;
    let mut waiting = false;
    let (journal, state, aside) = loop {
        match RedbJournal::open_or_set_aside(&path, cache) {
            Err(JournalError::Locked { journal }) if tokio::time::Instant::now() < deadline => {
                if !waiting {
                    tracing::warn!(%journal, ?wait, "the journal is in use by another process; waiting for it");
                    waiting = true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            opened => break opened?,
        }
    };
    if waiting {
        tracing::info!("the journal is free now");
    }
    Ok((Arc::new(journal), state, aside.is_some()))
}

async fn runtimes(config: &AgentConfig) -> Vec<Arc<dyn Runtime>> {
    let mut out: Vec<Arc<dyn Runtime>> = Vec::new();
    for kind in &config.runtimes {
        match kind {
            // Connected in `run_with`, on the agent's one Docker engine (`Parts::docker`).
            RuntimeKind::Docker => {}
            RuntimeKind::Process => match ProcessRuntime::new(config.data.join("process")) {
                Ok(rt) => out.push(Arc::new(rt)),
                Err(e) => tracing::error!(error = %e, "the process runtime is not available"),
            },
        }
    }
    out
}

/// What the loop runs on: [`run`] makes them from the configuration (the identity under
/// `DATA`, the redb journal, the profile's runtimes); the fleet simulator makes its own.
pub struct Parts {
    pub identity: Identity,
    pub journal: Arc<dyn Journal>,
    pub runtimes: Vec<Arc<dyn Runtime>>,
    /// Whether container components run on the host's Docker engine: the agent then makes
    /// its one client of the engine, connects the Docker runtime on it (looking again every
    /// 30 s while the engine is not reachable), and the log collector reads containers'
    /// output from it. `runtimes` holds no Docker runtime then.
    pub docker: bool,
    /// The journal is new because the old one was found damaged and set aside: the agent
    /// asks the cloud for a snapshot and reconciles nothing until it is committed.
    pub rebuild: bool,
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kinds: Vec<RuntimeKind> = self.runtimes.iter().map(|r| r.kind()).collect();
        f.debug_struct("Parts")
            .field("identity", &self.identity)
            .field("runtimes", &kinds)
            .field("docker", &self.docker)
            .field("rebuild", &self.rebuild)
            .finish_non_exhaustive()
    }
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
    // The token is spent (or was not needed): it is not kept beyond enrollment.
    let config = AgentConfig {
        token: None,
        ..config
    };
    let (journal, _, damaged) = open_journal(
        &config.data,
        config.profile.agent.redb_cache.bytes(),
        LOCKED_WAIT,
    )
    .await?;
    let parts = Parts {
        identity,
        journal,
        runtimes: runtimes(&config).await,
        docker: config.runtimes.contains(&RuntimeKind::Docker),
        rebuild: damaged,
    };
    run_with(config, parts, shutdown).await
}

/// [`run`] on the given parts: resumes from `parts.journal` and drives `parts.runtimes`.
/// `config.data` is where the reconciler places the host side of `log_dir`s and `exec`
/// components' storage, and where the log collector looks for them.
pub async fn run_with(
    config: AgentConfig,
    parts: Parts,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    let Parts {
        identity,
        journal,
        runtimes,
        docker: wants_docker,
        rebuild: damaged,
    } = parts;
    // The agent's one Docker client: the Docker runtime and the log collector share it.
    let mut runtimes = runtimes;
    let docker = match wants_docker.then(DockerEngine::local) {
        Some(Ok(engine)) => Some(engine),
        Some(Err(e)) => {
            tracing::error!(error = %e, "the Docker engine is not available: container components will stay Pending");
            None
        }
        None => None,
    };
    if let Some(engine) = &docker {
        match DockerRuntime::connect_on(engine.clone(), DockerOptions::default()).await {
            Ok(rt) => runtimes.push(Arc::new(rt)),
            Err(e) => {
                tracing::error!(error = %e, "the Docker engine is not available: container components will stay Pending")
            }
        }
    }
    let node = identity.node_id();
    let state = journal.load()?;
    let mut sync = AgentSync::new(node, &state, SyncConfig::new(env!("CARGO_PKG_VERSION")))?;
    if damaged {
        // Nothing of the old journal is used, and nothing is reconciled (no container
        // touched) until the cloud's snapshot is committed to the new one.
        sync.rebuild();
        tracing::warn!(node = %node, epoch = state.epoch, "rebuilding the journal from the cloud; the apps are left as they run until then");
    }
    let reconciler = Reconciler::new(
        node,
        config.data.clone(),
        runtimes,
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
    let tuning = &config.profile.agent;
    journal.set_outbox_quota(tuning.outbox_quota.bytes());
    let mut heartbeat =
        tokio::time::interval(tuning.heartbeat.as_std().max(Duration::from_secs(1)));
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut received: u64 = 0;
    let mut next_pass = tokio::time::Instant::now();
    // A pass runs beside the loop, so a slow stop never delays heartbeats or acks. The
    // reconciler is moved into the running pass and comes back with its outcome.
    // A runtime that saw a replica change by itself (a container ended) asks for a pass.
    let engine_changed = reconciler.wake();
    let mut changed_during_pass = false;
    let mut idle = Some(reconciler);
    let mut running: Option<Pass> = None;
    let mut complete: Option<OutboxBody> = None;
    let mut purges: Vec<(Name, Vec<Name>)> = Vec::new();
    let mut last_docker_try = tokio::time::Instant::now();
    // After a failed commit (a full disk) the `Hello` that asks for the events again waits
    // a backoff, so a disk that stays full is not hammered.
    let mut commit_backoff = crate::backoff::Backoff::new();
    let mut hello_at: Option<(tokio::time::Instant, Vec<u8>)> = None;

    // The outbox: sent while the link is up; the collector queues log batches into it.
    // How hard the agent batches is the link type's choice, in one place (`Link::tuning`).
    let link_tuning = config.profile.link.tuning();
    let mut sender = Sender::new(
        state.epoch,
        tuning.log_rate.bytes(),
        usize::try_from(tuning.event_batch).unwrap_or(256),
    )
    .with_linger(link_tuning.report_linger, link_tuning.log_linger);
    let mut outbox_wake: Option<tokio::time::Instant> = None;
    let queued = Arc::new(Notify::new());
    let (desired_tx, desired_rx) = watch::channel(Arc::clone(sync.desired()));
    // Says whether the desired state changed since the running pass began: the pass ends
    // its rounds, and another runs at once.
    let mut pass_changes = desired_tx.subscribe();
    let collector = Collector::new(
        node,
        config.data.clone(),
        Arc::clone(&journal),
        docker.as_ref().map(DockerEngine::output),
        tuning.log_quota.bytes(),
    )?;
    let disk = crate::disk::DiskWatch::new(
        config.profile.disk.bytes(),
        config.data.clone(),
        Arc::clone(&journal),
    );
    let collecting = tokio::spawn(collect(
        collector,
        desired_rx,
        Arc::clone(&queued),
        link_tuning.collect_every,
        disk,
    ));
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
                        // Everything not acknowledged goes again, behind a complete report.
                        sender.reconnected();
                        if let Some(all) = complete.clone() {
                            queue(&journal, vec![all]).await;
                        }
                        pump(&mut sender, &journal, &link, &mut outbox_wake).await;
                    }
                    LinkEvent::Disconnected(reason) => {
                        tracing::warn!(%reason, "the link to the cloud is down; running from the journal");
                    }
                    LinkEvent::Down(bytes) => {
                        received += bytes.len() as u64;
                        let before = sync.generation();
                        let (more_purges, other, commit) = down(&mut sync, &journal, &link, &bytes, received).await?;
                        purges.extend(more_purges);
                        match commit {
                            Committed::Yes => {
                                commit_backoff.succeeded();
                            }
                            Committed::Failed(hello) => {
                                let delay = commit_backoff.failed();
                                tracing::warn!(retry_in_ms = delay.as_millis() as u64, "asking the cloud for the events again after a backoff");
                                hello_at = Some((tokio::time::Instant::now() + delay, hello));
                            }
                            Committed::Nothing => {}
                        }
                        if sync.generation() != before {
                            // The desired state changed: reconcile as soon as possible.
                            next_pass = tokio::time::Instant::now();
                            desired_tx.send_replace(Arc::clone(sync.desired()));
                        }
                        match other {
                            Some(Other::OutboxAck { epoch, seqs }) => {
                                let seqs = sender.acked(epoch, &seqs);
                                if !seqs.is_empty() {
                                    let j = Arc::clone(&journal);
                                    match tokio::task::spawn_blocking(move || j.outbox_ack(&seqs)).await {
                                        Ok(Ok(())) => {}
                                        Ok(Err(e)) => tracing::warn!(error = %e, "cannot delete acknowledged outbox entries; they are sent again"),
                                        Err(e) => tracing::warn!(error = %e, "outbox delete failed"),
                                    }
                                }
                                pump(&mut sender, &journal, &link, &mut outbox_wake).await;
                            }
                            Some(Other::NodeLogs { request, since, max_bytes }) => {
                                let result = match config.runtime_log.clone() {
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
                                    Ok(bytes) => send(&link, bytes).await,
                                    Err(e) => tracing::error!(error = %e, "the runtime log answer does not encode"),
                                }
                            }
                            None => {}
                        }
                    }
                }
            }
            _ = heartbeat.tick() => {
                if link.is_connected() {
                    send(&link, sync.heartbeat(Timestamp::now())?).await;
                    pump(&mut sender, &journal, &link, &mut outbox_wake).await;
                }
            }
            () = sleep_until(hello_at.as_ref().map(|(at, _)| *at)) => {
                if let Some((_, hello)) = hello_at.take() {
                    send(&link, hello).await;
                }
            }
            () = queued.notified() => {
                pump(&mut sender, &journal, &link, &mut outbox_wake).await;
            }
            () = sleep_until(outbox_wake) => {
                outbox_wake = None;
                pump(&mut sender, &journal, &link, &mut outbox_wake).await;
            }
            () = engine_changed.notified() => {
                if idle.is_some() {
                    next_pass = next_pass.min(tokio::time::Instant::now());
                } else {
                    changed_during_pass = true;
                }
            }
            () = tokio::time::sleep_until(next_pass), if idle.is_some() && !sync.is_rebuilding() => {
                if let Some(mut r) = idle.take() {
                    if let Some(engine) = &docker && !r.has_runtime(RuntimeKind::Docker) && last_docker_try.elapsed() >= DOCKER_RETRY {
                        last_docker_try = tokio::time::Instant::now();
                        if let Ok(rt) = DockerRuntime::connect_on(engine.clone(), DockerOptions::default()).await {
                            tracing::info!("the Docker engine is available now");
                            r.add_runtime(Arc::new(rt));
                        }
                    }
                    r.queue_purges(std::mem::take(&mut purges));
                    let desired = Arc::clone(sync.desired());
                    pass_changes = desired_tx.subscribe();
                    let changes = pass_changes.clone();
                    running = Some(Box::pin(async move {
                        let outcome = r.pass(&desired, || changes.has_changed().unwrap_or(true)).await;
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
                let first = complete.is_none();
                complete = Some(r.complete_report());
                idle = Some(r);
                // The first pass after a start says everything; later ones what changed.
                let bodies = match (&complete, first) {
                    (Some(all), true) => vec![all.clone()],
                    _ => outcome.report,
                };
                if !bodies.is_empty() {
                    if queue(&journal, bodies).await > 0
                        && let Some(all) = complete.clone()
                    {
                        // Replica reports gave way to the outbox quota: the complete
                        // report carries the newest state of each replica instead.
                        queue(&journal, vec![all]).await;
                    }
                    pump(&mut sender, &journal, &link, &mut outbox_wake).await;
                }
                let engine_changed_meanwhile = std::mem::take(&mut changed_during_pass);
                next_pass = tokio::time::Instant::now() + if pass_changes.has_changed().unwrap_or(false) || engine_changed_meanwhile {
                    // The desired state changed while the pass ran: reconcile it at once,
                    // as a change between passes is.
                    Duration::ZERO
                } else if outcome.actions > 0 {
                    FOLLOW_UP
                } else {
                    // Sooner when a replica's backoff ends before the next regular pass.
                    outcome.wake_in.map_or(RESYNC, |due| due.clamp(FOLLOW_UP, RESYNC))
                };
            }
        }
    }
    collecting.abort();
    if let Some(pass) = running.take() {
        // Let the pass in flight finish, so no action is cut in half.
        let _ = pass.await;
    }
    link.shutdown().await;
    tracing::info!("agent stopped; its apps keep running");
    Ok(())
}

/// Sleeps until `at`, or forever without it.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Queues replica reports in the outbox (durable before anything is sent). Gives how many
/// queued reports the outbox quota dropped (the caller then queues a complete report).
async fn queue(journal: &Arc<dyn Journal>, bodies: Vec<OutboxBody>) -> u64 {
    let j = Arc::clone(journal);
    let push = OutboxPush {
        bodies,
        cursors: Vec::new(),
    };
    match tokio::task::spawn_blocking(move || j.outbox_push(&push, u64::MAX)).await {
        Ok(Ok(pushed)) => {
            if pushed.dropped_reports > 0 {
                tracing::warn!(
                    dropped = pushed.dropped_reports,
                    "the outbox is over its quota (agent.outbox_quota): the oldest replica reports gave way to a complete report"
                );
            }
            pushed.dropped_reports
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot queue replica reports; the next change or connect reports again");
            0
        }
        Err(e) => {
            tracing::error!(error = %e, "queueing replica reports failed");
            0
        }
    }
}

/// Sends what the outbox has to send now, if the link is up.
async fn pump(
    sender: &mut Sender,
    journal: &Arc<dyn Journal>,
    link: &LinkHandle,
    wake: &mut Option<tokio::time::Instant>,
) {
    if !link.is_connected() {
        return;
    }
    match sender.frames(journal.as_ref(), tokio::time::Instant::now()) {
        Ok(out) => {
            *wake = out.wake_at;
            for f in out.frames {
                send(link, f).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the outbox"),
    }
}

/// The log collector's task: reads the sources of the latest desired state every
/// `every` (the link's `collect_every`; sooner while it has more to read) and wakes the
/// loop when it queued lines. Before each round it applies the disk budget (`disk`).
async fn collect(
    mut collector: Collector,
    mut desired: watch::Receiver<Arc<NodeDesired>>,
    queued: Arc<Notify>,
    every: Duration,
    mut disk: crate::disk::DiskWatch,
) {
    loop {
        let current = Arc::clone(&desired.borrow_and_update());
        collector.follow(&current);
        disk.look();
        let wait = match collector.collect().await {
            Ok(c) => {
                if c.lines > 0 || c.dropped.lines() > 0 {
                    queued.notify_one();
                }
                if c.more { COLLECT_MORE } else { every }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot queue collected log lines; reading them again");
                every
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            changed = desired.changed() => if changed.is_err() { return },
        }
    }
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

/// Storage to purge: (instance, storage names).
type Purges = Vec<(Name, Vec<Name>)>;

/// What became of the journal commit a down frame asked for.
enum Committed {
    /// The frame asked for none.
    Nothing,
    Yes,
    /// It failed; the agent went back to what the journal holds. The `Hello` to send
    /// (after a backoff) so that the cloud sends the rest again.
    Failed(Vec<u8>),
}

/// One down frame: apply, commit to the journal, then ack. Returns the storage to purge
/// for instances undeployed with `--purge`, and a frame for another part of the agent.
async fn down(
    sync: &mut AgentSync,
    journal: &Arc<dyn Journal>,
    link: &LinkHandle,
    bytes: &[u8],
    received: u64,
) -> Result<(Purges, Option<Other>, Committed), AgentError> {
    let step = sync.down(bytes, Timestamp::now());
    for frame in step.send {
        send(link, frame).await;
    }
    let Some(commit) = step.commit else {
        return Ok((Vec::new(), step.other, Committed::Nothing));
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
            Ok((purges, step.other, Committed::Yes))
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot commit to the journal; asking the cloud again");
            // The journal may not even read back on a full disk: the agent stays up and
            // tries again after the backoff.
            let state = {
                let j = Arc::clone(journal);
                tokio::task::spawn_blocking(move || j.load())
                    .await
                    .unwrap_or_else(|e| {
                        Err(JournalError::Storage {
                            journal: "journal".into(),
                            reason: e.to_string(),
                        })
                    })
            };
            let hello = match state {
                Ok(state) => sync.resume(&state)?,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the journal back; going back to the last committed state");
                    // What the journal last committed is what `sync` last reported.
                    sync.resume(&JournalState {
                        desired: Some(sync.desired().as_ref().clone()),
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

async fn send(link: &LinkHandle, frame: Vec<u8>) {
    if let Err(e) = link.send_up(Bytes::from(frame)).await {
        tracing::debug!(error = %e, "not sent; the next connect says it again");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_journal_held_for_a_moment_is_waited_for_and_one_held_for_good_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        // Another open of the file holds it as `skerry-edge status` or a second agent would
        // (redb's locks are per open file, so a second open in this process conflicts too).
        let holder = RedbJournal::open(&path, 1 << 20).unwrap();
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            drop(holder);
        });
        let started = std::time::Instant::now();
        let (_, _, aside) = open_journal(dir.path(), 1 << 20, Duration::from_secs(10))
            .await
            .unwrap();
        assert!(!aside);
        assert!(started.elapsed() >= Duration::from_millis(250));
        release.await.unwrap();

        let dir = tempfile::tempdir().unwrap();
        let _held = RedbJournal::open(&dir.path().join(FILE_NAME), 1 << 20).unwrap();
        let Err(err) = open_journal(dir.path(), 1 << 20, Duration::from_millis(300)).await else {
            panic!("a journal held for good is refused");
        };
        assert!(
            matches!(err, AgentError::Journal(JournalError::Locked { .. })),
            "{err}"
        );
    }
}
