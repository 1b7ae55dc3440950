//! The agent: `run(config, shutdown)`, which `skerry-edge run` and the cloud's local node
//! both call; [`run_with`], the same on [`Parts`] its caller made (the fleet simulator
//! gives each agent an in-memory journal and a simulated runtime).
//!
//! It enrolls on the first run, opens the journal and resumes from it (so apps keep
//! running, and are rebuilt, with the cloud unreachable); a journal found damaged is set
//! aside, a new one is filled from the cloud's snapshot, and nothing is reconciled until
//! that snapshot is committed. Then it runs a few tasks with typed channels, each owning
//! its state, over the cores that do no I/O ([`crate::sync`], [`crate::outbox`]):
//!
//! ```text
//!            LinkEvent (mpsc)  +-------------+  Hello, Ack, Heartbeat, NodeLogs
//!  link  -------------------->  | commit path | ---------------------------------> link
//!  (dyn Link)                   +-------------+  each commit durable in the journal
//!                                 |    |    |    before its ack
//!       watch<Arc<NodeDesired>>,  |    |    |  ToOutbox (mpsc): Reconnected, Acked;
//!       watch<bool> rebuilding,   |    |    |  Pump after a heartbeat
//!       Purges (mpsc)             v    |    v
//!                     +-----------+    |   +---------------+  Outbox frames,
//!                     | scheduler | -------> | outbox sender | -------------------> link
//!                     +-----------+    |   +---------------+  control before logs
//!  replica reports queued in the       |           ^
//!  journal's outbox, then Pump;        |           | Pump
//!  watch<complete report>              v           |
//!                                +-----------+     |
//!                                | collector | ----+  log batches queued in the
//!                                +-----------+       journal's outbox
//! ```
//!
//! (The collector follows the same desired-state watch as the scheduler.)
//!
//! - `commit.rs`: the link's events in order: `Hello` on connect, each down frame committed
//!   to the journal before its ack, the delayed `Hello` after a failed commit, heartbeats,
//!   the answers to requests for the agent's own log. It never waits on a reconcile pass.
//! - `scheduler.rs`: when a pass runs (a change of the desired state, a runtime's wake, a
//!   timer; never while rebuilding), the storage to purge, the Docker engine looked for
//!   again, the replica reports of each pass queued in the outbox.
//! - `outbox.rs`: the outbox sent while the link is up, control before logs; after each
//!   connect everything not acknowledged goes again, behind a complete report.
//! - `credentials.rs`: the node's certificate renewed over the link (a CSR for the same
//!   key, the certificate stored atomically, then the link reconnects with it), and the
//!   identity forgotten once the node's removal is committed.
//! - `collector.rs`: the log collector's task (a tokio task of its own), queueing log
//!   batches into the outbox and waking the outbox sender.
//!
//! The commit path and the outbox sender are futures joined in [`run_with`]; the
//! scheduler and the collector are tokio tasks of their own (so a frame never polls the
//! pass in flight). All run on the caller's runtime (a single current-thread one for
//! `skerry-edge run`); journal writes run on the blocking pool
//! ([`AsyncJournal`]). When `shutdown` resolves (or the link's channel closes) the
//! commit path ends, the collector is stopped, and the closed channels stop the others:
//! the outbox sender at once, the scheduler once the pass in flight has finished. The
//! link is shut down last.

mod collector;
mod commit;
mod credentials;
mod error;
mod io;
mod outbox;
mod scheduler;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use skerry_shared::manifest::RuntimeKind;
use tokio::sync::{Notify, mpsc, watch};

pub use self::error::AgentError;
use crate::config::AgentConfig;
use crate::identity::Identity;
use crate::journal::blocking::AsyncJournal;
use crate::journal::redb::RedbJournal;
use crate::journal::{FILE_NAME, Journal, JournalError, JournalState};
use crate::link::mqtt::MqttLink;
use crate::link::{Connector, LinkOptions};
use crate::logs::collect::Collector;
use crate::outbox::Sender;
use crate::reconciler::Reconciler;
use crate::runtime::Runtime;
use crate::runtime::docker::{DockerEngine, DockerOptions, DockerRuntime};
use crate::runtime::process::ProcessRuntime;
use crate::sync::{AgentSync, SyncConfig};

/// The identity under `config.data`, enrolling first if there is none.
///
/// A certificate that expired while the agent was off is said in the log: the cloud
/// refuses it, so the agent runs its apps from the journal without a link. It recovers by
/// enrolling again as a new node: `DATA/identity` moved away, then a run with `--cloud`
/// and a new token. A new enrollment sets aside the journal of an identity before it (a
/// removed or expired node's), as `journal.redb.previous`.
pub async fn identity(config: &AgentConfig) -> Result<Identity, AgentError> {
    if let Some(id) = Identity::load(&config.data)? {
        let now = skerry_shared::clock::Timestamp::now();
        match id.certificate_expires() {
            Some(expires) if expires <= now => {
                tracing::error!(node = %id.node_id(), %expires, "this node's certificate expired at {expires}, while the agent was not connected to renew it: the cloud refuses it, so the agent runs its apps from the journal without a link. To reconnect, enroll it again as a new node: move DATA/identity away, then run skerry-edge run --cloud URL --token TOKEN with a new token (skerry node token)");
                return Ok(id);
            }
            _ => return Ok(id),
        }
    }
    let (Some(cloud), Some(token)) = (&config.cloud, &config.token) else {
        return Err(AgentError::NotEnrolled);
    };
    set_aside_journal(&config.data)?;
    let id =
        crate::enroll::enroll(cloud, token, &config.name, &config.profile, &config.data).await?;
    tracing::info!(node = %id.node_id(), name = %id.name(), env = %id.env(), "enrolled");
    Ok(id)
}

/// Before a new enrollment: a journal left by an identity before it (a removed node's, or
/// one whose certificate expired) belongs to another node id, so it is renamed
/// `journal.redb.previous` (replacing an older one) and the new node starts empty.
fn set_aside_journal(data: &Path) -> Result<(), AgentError> {
    let path = data.join(FILE_NAME);
    if !path.exists() {
        return Ok(());
    }
    let aside = data.join(format!("{FILE_NAME}.previous"));
    std::fs::rename(&path, &aside)
        .map_err(|e| AgentError::Io(format!("{}: {e}", path.display())))?;
    tracing::warn!(journal = %aside.display(), "set aside the journal of this machine's previous identity before enrolling again");
    Ok(())
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

/// What the agent runs on: [`run`] makes them from the configuration (the identity under
/// `DATA`, the redb journal, the profile's runtimes, the MQTT link); the fleet simulator
/// makes its own.
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
    /// Starts the link to the cloud ([`MqttLink`] for the endpoints the cloud advertised).
    pub link: Box<dyn Connector>,
    /// The node's public key for secrets, said to the cloud after every `Hello` (a node
    /// enrolled without one makes it at start: [`crate::enroll::secrets_key`]). `None`:
    /// none is said, and the node receives no secrets.
    pub secrets_key: Option<skerry_shared::secret::NodeSecretsKey>,
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kinds: Vec<RuntimeKind> = self.runtimes.iter().map(|r| r.kind()).collect();
        f.debug_struct("Parts")
            .field("identity", &self.identity)
            .field("runtimes", &kinds)
            .field("docker", &self.docker)
            .field("rebuild", &self.rebuild)
            .field("link", &self.link)
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
    let secrets_key = node_secrets_key(&config.data).await;
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
        link: Box::new(MqttLink),
        secrets_key,
    };
    run_with(config, parts, shutdown).await
}

/// The node's key for secrets, made first if it was enrolled without one. A failure is
/// logged and the agent runs on: its apps do not wait for secrets they may not use.
async fn node_secrets_key(data: &Path) -> Option<skerry_shared::secret::NodeSecretsKey> {
    let dir = data.to_owned();
    match tokio::task::spawn_blocking(move || crate::enroll::secrets_key(&dir)).await {
        Ok(Ok(key)) => Some(key),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "no key for secrets: this node cannot receive secrets");
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "the task that loads the key for secrets failed");
            None
        }
    }
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
        link: connector,
        secrets_key,
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
            Ok(rt) => {
                // In the profile's order of runtimes, as the others were made.
                let rank = |kind: RuntimeKind| config.runtimes.iter().position(|k| *k == kind);
                let docker_rank = rank(RuntimeKind::Docker);
                let at = runtimes
                    .iter()
                    .take_while(|r| rank(r.kind()) < docker_rank)
                    .count();
                runtimes.insert(at, Arc::new(rt));
            }
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
    )
    .with_clock(config.clock);
    if config.clock.offset_ms() != 0 {
        tracing::warn!(offset = %config.clock.describe(), "the agent's clock is offset ({})", crate::clock::OFFSET_ENV);
    }
    // For `skerry-edge status`, which reads only the journal.
    crate::clock::record(journal.as_ref(), config.clock);
    tracing::info!(
        node = %node,
        applied = state.applied(),
        instances = sync.desired().instances.len(),
        "resumed from the journal"
    );

    let (events_tx, events) = mpsc::channel(256);
    let link = connector.connect(
        &identity,
        LinkOptions::from_profile(&config.profile),
        events_tx,
    )?;
    let tuning = &config.profile.agent;
    journal.set_outbox_quota(tuning.outbox_quota.bytes());

    // The outbox: sent while the link is up; the collector queues log batches into it.
    // How hard the agent batches is the link type's choice, in one place (`Link::tuning`).
    let link_tuning = config.profile.link.tuning();
    let sender = Sender::new(
        state.epoch,
        tuning.log_rate.bytes(),
        usize::try_from(tuning.event_batch).unwrap_or(256),
    )
    .with_linger(link_tuning.report_linger, link_tuning.log_linger);
    let pump = Arc::new(Notify::new());
    let (desired_tx, desired_rx) = watch::channel(Arc::clone(sync.desired()));
    let (rebuilding_tx, rebuilding_rx) = watch::channel(sync.is_rebuilding());
    let (complete_tx, complete_rx) = watch::channel(None);
    let (purges_tx, purges_rx) = mpsc::unbounded_channel();
    let (outbox_tx, outbox_rx) = mpsc::unbounded_channel();
    let (credentials_tx, credentials_rx) = mpsc::unbounded_channel();
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
    let collecting = tokio::spawn(collector::collect(
        collector,
        desired_rx,
        Arc::clone(&pump),
        link_tuning.collect_every,
        disk,
    ));

    let journal = AsyncJournal::new(journal);
    let scheduler = scheduler::Scheduler::new(scheduler::SchedulerParts {
        reconciler,
        desired: desired_tx.subscribe(),
        rebuilding: rebuilding_rx,
        purges: purges_rx,
        wants_docker,
        docker,
        journal: journal.clone(),
        pump: Arc::clone(&pump),
        complete: complete_tx,
    });
    let outbox = outbox::OutboxTask {
        sender,
        journal: journal.clone(),
        link: link.as_ref(),
        inbox: outbox_rx,
        pump: Arc::clone(&pump),
        complete: complete_rx,
    };
    let commit = commit::CommitPath {
        sync,
        journal,
        link: link.as_ref(),
        events,
        heartbeat: tuning.heartbeat.as_std().max(Duration::from_secs(1)),
        runtime_log: config.runtime_log.clone(),
        desired: &desired_tx,
        rebuilding: &rebuilding_tx,
        purges: purges_tx,
        outbox: outbox_tx,
        pump,
        credentials: credentials_tx,
        secrets_key,
    };
    let credentials = credentials::CredentialsTask {
        identity: identity.clone(),
        data: config.data.clone(),
        link: link.as_ref(),
        inbox: credentials_rx,
    };
    // The scheduler is a task of its own, so that the commit path's frames and heartbeats
    // never poll the pass in flight (and the other way round).
    let scheduling = tokio::spawn(scheduler.run());
    let front = async {
        let ended = commit.run(shutdown).await;
        if ended.is_ok() {
            collecting.abort();
        }
        ended
    };
    let sending = async {
        outbox.run().await;
        Ok(())
    };
    let renewing = async {
        credentials.run().await;
        Ok(())
    };
    // An error of the commit path ends the agent at once (the pass in flight with it).
    if let Err(e) = tokio::try_join!(front, sending, renewing) {
        scheduling.abort();
        return Err(e);
    }
    // The commit path's end closed the scheduler's channels: it ends once the pass in
    // flight has finished, so no action is cut in half.
    if let Err(e) = scheduling.await {
        tracing::error!(error = %e, "the reconcile scheduler failed");
    }
    link.close().await;
    tracing::info!("agent stopped; its apps keep running");
    Ok(())
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
