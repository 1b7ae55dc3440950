//! The reconcile scheduler's task: when the reconciler runs a pass, and what becomes of
//! its reports.
//!
//! It owns the [`Reconciler`], idle or moved into the pass in flight (which comes back
//! with its outcome), and the time of the next pass. A pass runs at once when the desired
//! state changes (the commit path's `watch`) or a runtime saw a replica change by itself
//! (the reconciler's wake), [`FOLLOW_UP`] after a pass that acted, at the latest
//! [`RESYNC`] after one that did not (sooner when a replica's backoff ends first); none
//! runs while the journal is being rebuilt. A pass that sees the desired state change
//! ends its rounds, and another runs at once. Before a pass it hands the reconciler the
//! storage to purge (from the commit path) and, while the Docker engine is missing, looks
//! for it again every [`DOCKER_RETRY`]. After a pass it queues the replica reports in the
//! journal's outbox (all of them, as one complete report, after the first pass) and
//! wakes the outbox sender, which also gets the latest complete report to send after
//! every connect. When the commit path stops (its purge channel closes), the pass in
//! flight is awaited, so no action is cut in half.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use skerry_shared::ids::Name;
use skerry_shared::manifest::RuntimeKind;
use skerry_shared::outbox::OutboxBody;
use skerry_shared::reducer::NodeDesired;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

use super::outbox::{Pump, queue};
use crate::journal::blocking::AsyncJournal;
use crate::reconciler::{PassOutcome, Reconciler};
use crate::runtime::docker::{DockerEngine, DockerOptions, DockerRuntime};

/// How often the reconciler looks again when nothing told it to.
const RESYNC: Duration = Duration::from_secs(2);
/// How often the agent looks for a Docker engine that was not there at start.
const DOCKER_RETRY: Duration = Duration::from_secs(30);
/// How soon it looks again after acting, to follow up quickly (a started dependency).
const FOLLOW_UP: Duration = Duration::from_millis(300);

/// Storage to purge: (instance, storage names).
pub(super) type Purges = Vec<(Name, Vec<Name>)>;

/// A reconcile pass in flight, owning the reconciler until it ends.
type Pass = Pin<Box<dyn Future<Output = (Reconciler, PassOutcome)> + Send>>;

/// The reconcile scheduler's task; see the module docs.
pub(super) struct Scheduler {
    idle: Option<Reconciler>,
    running: Option<Pass>,
    next_pass: Instant,
    /// A runtime asks for a pass when it saw a replica change by itself (a container
    /// ended).
    engine_changed: Arc<Notify>,
    /// It did so while a pass ran: another runs at once.
    changed_during_pass: bool,
    /// The desired state as of the last commit. Seen when a pass begins, so whether it
    /// changed since says the pass in flight runs an old one.
    desired: watch::Receiver<Arc<NodeDesired>>,
    /// Whether the journal is being rebuilt (nothing is reconciled until it is).
    rebuilding: watch::Receiver<bool>,
    /// From the commit path; closed when it stops, and this task stops then.
    purges_in: mpsc::UnboundedReceiver<Purges>,
    purges: Purges,
    /// Whether container components run on the host's Docker engine.
    wants_docker: bool,
    /// The agent's Docker engine, to connect the Docker runtime on once it is reachable
    /// (none while its socket could not even be opened: it is made again then).
    docker: Option<DockerEngine>,
    last_docker_try: Instant,
    journal: AsyncJournal,
    pump: Pump,
    /// The latest complete report, for the outbox sender (none before the first pass).
    complete: watch::Sender<Option<OutboxBody>>,
}

/// What the scheduler is given; see [`Scheduler`]'s fields.
pub(super) struct SchedulerParts {
    pub reconciler: Reconciler,
    pub desired: watch::Receiver<Arc<NodeDesired>>,
    pub rebuilding: watch::Receiver<bool>,
    pub purges: mpsc::UnboundedReceiver<Purges>,
    pub wants_docker: bool,
    pub docker: Option<DockerEngine>,
    pub journal: AsyncJournal,
    pub pump: Pump,
    pub complete: watch::Sender<Option<OutboxBody>>,
}

impl Scheduler {
    pub fn new(parts: SchedulerParts) -> Self {
        let now = Instant::now();
        Self {
            engine_changed: parts.reconciler.wake(),
            idle: Some(parts.reconciler),
            running: None,
            next_pass: now,
            changed_during_pass: false,
            desired: parts.desired,
            rebuilding: parts.rebuilding,
            purges_in: parts.purges,
            purges: Vec::new(),
            wants_docker: parts.wants_docker,
            docker: parts.docker,
            last_docker_try: now,
            journal: parts.journal,
            pump: parts.pump,
            complete: parts.complete,
        }
    }

    pub async fn run(mut self) {
        loop {
            let idle = self.idle.is_some();
            let may_start = idle && !*self.rebuilding.borrow();
            let running = self.running.as_mut();
            tokio::select! {
                // The commit path's end is seen first, so no pass starts after it.
                biased;
                more = self.purges_in.recv() => match more {
                    Some(more) => self.purges.extend(more),
                    None => break,
                },
                changed = self.desired.changed(), if idle => {
                    if changed.is_err() {
                        break;
                    }
                    // The desired state changed: reconcile as soon as possible.
                    self.next_pass = Instant::now();
                }
                changed = self.rebuilding.changed(), if idle => {
                    if changed.is_err() {
                        break;
                    }
                }
                () = self.engine_changed.notified() => {
                    if idle {
                        self.next_pass = self.next_pass.min(Instant::now());
                    } else {
                        self.changed_during_pass = true;
                    }
                }
                () = tokio::time::sleep_until(self.next_pass), if may_start => self.start().await,
                (r, outcome) = async {
                    match running {
                        Some(pass) => pass.await,
                        None => std::future::pending().await,
                    }
                } => self.finish(r, outcome).await,
            }
        }
        if let Some(pass) = self.running.take() {
            // Let the pass in flight finish, so no action is cut in half.
            let _ = pass.await;
        }
    }

    /// Starts a pass on the latest desired state.
    async fn start(&mut self) {
        let Some(mut r) = self.idle.take() else {
            return;
        };
        if self.wants_docker
            && !r.has_runtime(RuntimeKind::Docker)
            && self.last_docker_try.elapsed() >= DOCKER_RETRY
        {
            self.last_docker_try = Instant::now();
            if self.docker.is_none() {
                // The engine's socket was not there (the agent started before the
                // engine, or the engine was installed later): make the client again.
                self.docker = DockerEngine::local().ok();
            }
            if let Some(engine) = &self.docker
                && let Ok(rt) =
                    DockerRuntime::connect_on(engine.clone(), DockerOptions::default()).await
            {
                tracing::info!("the Docker engine is available now");
                r.add_runtime(Arc::new(rt));
            }
        }
        // Purges sent with the commit whose desired state this pass runs are in the
        // channel already (the commit path sends them before the state).
        while let Ok(more) = self.purges_in.try_recv() {
            self.purges.extend(more);
        }
        r.queue_purges(std::mem::take(&mut self.purges));
        let desired = Arc::clone(&self.desired.borrow_and_update());
        // Says whether the desired state changed since this pass began: the pass ends
        // its rounds, and another runs at once.
        let changes = self.desired.clone();
        self.running = Some(Box::pin(async move {
            let outcome = r
                .pass(&desired, || changes.has_changed().unwrap_or(true))
                .await;
            (r, outcome)
        }));
    }

    /// A pass ended: queue its reports and pick the time of the next one.
    async fn finish(&mut self, r: Reconciler, outcome: PassOutcome) {
        self.running = None;
        let first = self.complete.borrow().is_none();
        let all = r.complete_report();
        self.complete.send_replace(Some(all.clone()));
        self.idle = Some(r);
        // The first pass after a start says everything; later ones what changed.
        let bodies = if first {
            vec![all.clone()]
        } else {
            outcome.report
        };
        if !bodies.is_empty() {
            if queue(&self.journal, bodies).await > 0 {
                // Replica reports gave way to the outbox quota: the complete report
                // carries the newest state of each replica instead.
                queue(&self.journal, vec![all]).await;
            }
            self.pump.notify_one();
        }
        if outcome.queued_runs {
            self.pump.notify_one();
        }
        let engine_changed_meanwhile = std::mem::take(&mut self.changed_during_pass);
        self.next_pass = Instant::now()
            + if self.desired.has_changed().unwrap_or(false) || engine_changed_meanwhile {
                // The desired state changed while the pass ran: reconcile it at once, as
                // a change between passes is.
                Duration::ZERO
            } else if outcome.actions > 0 {
                FOLLOW_UP
            } else {
                // Sooner when a replica's backoff ends before the next regular pass.
                outcome
                    .wake_in
                    .map_or(RESYNC, |due| due.clamp(FOLLOW_UP, RESYNC))
            };
    }
}
