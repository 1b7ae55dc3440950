//! The reconciler: observe the runtimes, plan with the shared planner, act, report.
//!
//! One [`Reconciler::pass`] observes every replica the runtimes hold for this node,
//! records the results of `init` runs (so an init runs once per spec hash, also across
//! agent restarts), plans against the desired state and performs the actions; while
//! actions work and are new in the pass, it looks again and plans the next round at once
//! (up to 8 rounds, none once a newer desired state has come), and it reports what it saw
//! last. The agent calls it when the desired state changes and on a timer, so a replica that died, a
//! container removed by hand, or a missing network is put back without the cloud.
//!
//! A start that fails waits its backoff ([`retries`]); a container that exited and whose
//! restart policy restarts it (stopped from outside, or exiting again and again) is started
//! again under the same backoff (`supervise.rs`); stops run at once, in reverse dependency
//! order per instance, within one grace period ([`stops`]).
//!
//! # Layout
//! - `mod.rs`: [`Reconciler`] and [`Reconciler::pass`], the rounds of observe, plan and act,
//!   and what the pass keeps and reports at its end.
//! - `observe.rs`: what the runtimes hold, as the actual state the planner compares with;
//!   the `init` runs that ended; what components depend on.
//! - `act.rs`: the planner's actions performed on the runtimes, stops all at once, purges.
//! - [`resolve`]: desired state to [`ReplicaSpec`](crate::runtime::ReplicaSpec)s (environment, host ports, storage).
//! - [`ports`]: whether a host port is free on the host.
//! - [`retries`]: when a replica may be tried again, and why it waits.
//! - `supervise.rs`: restarts of exited containers, and the engine's restart policy.
//! - [`stops`]: many stops within one grace period.
//! - [`report`]: replica states for the cloud.
//! - `jobs.rs`: cron jobs' runs: due runs started ([`crate::jobs`] decides), ends found
//!   and reported through the outbox with the jobs' states in one transaction.

mod act;
mod jobs;
mod observe;
pub mod ports;
pub mod report;
pub mod resolve;
pub mod retries;
pub mod stops;
mod supervise;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use skerry_shared::ids::{Name, NodeId};
use skerry_shared::manifest::RuntimeKind;
use skerry_shared::outbox::OutboxBody;
use skerry_shared::planner::{self, Action, ReplicaKey};
use skerry_shared::reducer::NodeDesired;
use skerry_shared::report::ReplicaStatus;

use crate::clock::Clock;
use crate::journal::{Journal, MemoChange, MemoChanges, Memos};
use crate::runtime::{ObservedReplica, Runtime};
use report::ReportKey;

/// The most rounds of plan and act in one pass (see [`Reconciler::pass`]).
const MAX_ROUNDS: usize = 8;

/// What one pass did.
#[derive(Debug, Clone, Default)]
pub struct PassOutcome {
    /// Actions performed (or attempted).
    pub actions: usize,
    /// Replica states that changed since the last pass (outbox entries, one per replica).
    pub report: Vec<OutboxBody>,
    /// When a replica's backoff ends or a job's run is due, if one waits: the next pass
    /// should run by then.
    pub wake_in: Option<Duration>,
    /// Whether job run reports were queued in the outbox (the sender is woken).
    pub queued_runs: bool,
}

/// The reconciler of one node.
pub struct Reconciler {
    node: NodeId,
    data: PathBuf,
    runtimes: Vec<Arc<dyn Runtime>>,
    journal: Arc<dyn Journal>,
    memos: Memos,
    /// The last problem acting on a replica (shown as its reason until it clears).
    problems: BTreeMap<ReplicaKey, String>,
    reports: BTreeMap<ReportKey, ReplicaStatus>,
    /// Instances undeployed with `--purge`: their named storage goes once their replicas do.
    purges: BTreeMap<Name, Vec<Name>>,
    /// When each replica may be tried again, and why it waits.
    retries: retries::Retries,
    /// What each component depends on, per instance as last desired: the order of stops
    /// once an instance is no longer desired.
    dependencies: BTreeMap<Name, stops::Dependencies>,
    /// Notified when a runtime sees a replica change by itself.
    wake: Arc<tokio::sync::Notify>,
    /// The agent's clock, which jobs run by.
    clock: Clock,
    /// The jobs' states (read from the journal at the first pass).
    jobs: Option<jobs::JobStates>,
    /// Job run reports the outbox dropped for its quota since the journal was created.
    runs_dropped: u64,
    /// Whether job run reports were queued in this pass.
    jobs_queued: bool,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler")
            .field("node", &self.node)
            .field(
                "runtimes",
                &self.runtimes.iter().map(|r| r.kind()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Reconciler {
    pub fn new(
        node: NodeId,
        data: PathBuf,
        runtimes: Vec<Arc<dyn Runtime>>,
        journal: Arc<dyn Journal>,
        memos: Memos,
    ) -> Self {
        let wake = Arc::new(tokio::sync::Notify::new());
        for rt in &runtimes {
            forward_changes(rt.as_ref(), &wake);
        }
        Reconciler {
            node,
            data,
            runtimes,
            journal,
            memos,
            problems: BTreeMap::new(),
            reports: BTreeMap::new(),
            purges: BTreeMap::new(),
            retries: retries::Retries::default(),
            dependencies: BTreeMap::new(),
            wake,
            clock: Clock::system(),
            jobs: None,
            runs_dropped: 0,
            jobs_queued: false,
        }
    }

    /// The clock jobs run by (the host's unless set).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Notified when a runtime sees a replica change by itself (a container that ended):
    /// a pass soon after sees it.
    pub fn wake(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.wake)
    }

    /// Whether a runtime of this kind is in use.
    pub fn has_runtime(&self, kind: RuntimeKind) -> bool {
        self.runtime(kind).is_some()
    }

    /// Adds a runtime that became available (the Docker engine started after the agent).
    pub fn add_runtime(&mut self, runtime: Arc<dyn Runtime>) {
        if !self.has_runtime(runtime.kind()) {
            forward_changes(runtime.as_ref(), &self.wake);
            self.runtimes.push(runtime);
        }
    }

    fn runtime(&self, kind: RuntimeKind) -> Option<&Arc<dyn Runtime>> {
        self.runtimes.iter().find(|r| r.kind() == kind)
    }

    /// Applies memo changes here and makes them durable.
    fn save(&mut self, changes: MemoChanges) {
        if changes.is_empty() {
            return;
        }
        self.memos.apply_all(&changes);
        if let Err(e) = self.journal.put_memos(&changes) {
            tracing::error!(error = %e, "cannot save the reconciler's memos");
        }
    }

    /// One observe, plan and act round.
    /// `superseded` says whether a newer desired state has come: no round starts after it
    /// has (the agent runs a pass on the new state right after this one).
    pub async fn pass(
        &mut self,
        desired: &NodeDesired,
        superseded: impl Fn() -> bool,
    ) -> PassOutcome {
        let (mut observed, networks) = match self.observe().await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "cannot observe the runtimes; retrying later");
                return PassOutcome::default();
            }
        };
        self.record_inits(desired, &observed);
        let fixed = resolve::fixed_ports(desired.instances.values().map(|d| &d.spec));
        self.remember_dependencies(desired, &observed);
        // Containers that exited and are to run again: restarted once their backoff ends.
        let mut networks = networks;
        if self.supervise(desired, &observed, &fixed).await > 0 {
            match self.observe().await {
                Ok((again, nets)) => {
                    observed = again;
                    networks = nets;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot observe the runtimes after restarts; retrying later");
                    return PassOutcome::default();
                }
            }
        }
        let mut actual = self.actual(desired, &observed, networks);

        // Rounds of plan, act and look again, while the actions work and are new in this
        // pass: a network created is followed at once by the replicas that wait for it, and
        // the report says what the actions made (a replica started runs now), not what was
        // there before them. An action that is planned again in the same pass (a replica
        // that exits as soon as it starts) waits for the next pass, so nothing spins.
        let mut taken: Vec<Action> = Vec::new();
        let mut count = 0;
        for round in 0..MAX_ROUNDS {
            if round > 0 && superseded() {
                break;
            }
            let actions: Vec<Action> = planner::plan(desired, &actual)
                .into_iter()
                .filter(|a| !taken.contains(a))
                .collect();
            let mut worked = 0;
            // The stops first (the plan puts them first), all at once.
            let (stop_actions, actions): (Vec<Action>, Vec<Action>) = actions
                .into_iter()
                .partition(|a| matches!(a, Action::Stop { .. }));
            if !stop_actions.is_empty() {
                worked += self.stop_all(&observed, &stop_actions).await;
                taken.extend(stop_actions);
            }
            for action in actions {
                // Only what worked calls for a quick follow-up; a failing action waits for
                // the next regular pass instead of spinning.
                worked += usize::from(self.act(desired, &observed, &fixed, action.clone()).await);
                taken.push(action);
            }
            count += worked;
            if worked == 0 {
                break;
            }
            match self.observe().await {
                Ok((again, networks)) => {
                    self.record_inits(desired, &again);
                    actual = self.actual(desired, &again, networks);
                    observed = again;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot observe the runtimes after acting; the next pass goes on");
                    break;
                }
            }
        }
        self.purge(desired, &observed).await;
        let (jobs_due, queued_runs) = self.run_jobs(desired, &observed, &actual, &fixed).await;
        // Host ports of replicas that are gone are free again.
        let released: Vec<MemoChange> = self
            .memos
            .nodeports
            .keys()
            .filter(|k| {
                desired
                    .instances
                    .get(&k.replica.instance)
                    .and_then(|d| d.spec.manifest.component(k.replica.component.as_str()))
                    .is_none_or(|c| k.replica.replica >= c.slots())
            })
            .map(|k| MemoChange::NodePortReleased { port: k.clone() })
            .collect();
        self.save(released.into());
        // Restart counts into the journal, for `skerry-edge status` (which reads only it).
        let counts: BTreeMap<ReplicaKey, u32> = observed
            .iter()
            .filter(|(k, _)| desired.instances.contains_key(&k.instance))
            .map(|(k, (o, _))| (k.clone(), o.restarts))
            .collect();
        self.save(self.memos.restart_changes(&counts));

        let observed_only: BTreeMap<ReplicaKey, ObservedReplica> =
            observed.into_iter().map(|(k, (o, _))| (k, o)).collect();
        self.problems
            .retain(|k, _| desired.instances.contains_key(&k.instance));
        // A stopped instance waits for no retry of a start: it is not to run.
        self.retries.retain(|k| {
            desired
                .instances
                .get(&k.instance)
                .filter(|d| !d.spec.lifecycle.stopped)
                .and_then(|d| d.spec.manifest.component(k.component.as_str()))
                .is_some_and(|c| k.replica < c.slots())
        });
        let mut now = report::replica_reports(
            desired,
            &actual,
            &observed_only,
            &self.problems,
            &self.memos,
        );
        // A replica that waits for its next try says so, and until when.
        for ((instance, component, replica), status) in &mut now {
            let key = ReplicaKey::new(instance, component, *replica);
            if let Some((state, reason)) = self.retries.report(&key, status.report.spec_hash) {
                status.report.state = state;
                status.report.reason = Some(reason);
            }
        }
        let delta = report::diff(&self.reports, &now);
        self.reports = now;
        PassOutcome {
            actions: count,
            report: delta,
            wake_in: match (self.retries.next_due(tokio::time::Instant::now()), jobs_due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            queued_runs,
        }
    }

    /// Named storage to delete once the instance's replicas are gone (`undeploy --purge`).
    pub fn queue_purges(&mut self, purges: Vec<(Name, Vec<Name>)>) {
        self.purges.extend(purges);
    }

    /// Every replica's current state, for the first report after a connect.
    pub fn complete_report(&self) -> OutboxBody {
        report::complete(&self.reports)
    }
}

/// Lets `runtime`'s own changes wake the reconciler's `wake` (a task that lives as long
/// as the runtime's notifier is notified; none without a tokio runtime).
fn forward_changes(runtime: &dyn Runtime, wake: &Arc<tokio::sync::Notify>) {
    let (Some(changes), Ok(handle)) = (runtime.changes(), tokio::runtime::Handle::try_current())
    else {
        return;
    };
    let wake = Arc::downgrade(wake);
    handle.spawn(async move {
        loop {
            changes.notified().await;
            match wake.upgrade() {
                Some(w) => w.notify_one(),
                None => break,
            }
        }
    });
}
