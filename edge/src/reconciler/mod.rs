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
//! again under the same backoff ([`supervise`]); stops run at once, in reverse dependency
//! order per instance, within one grace period ([`stops`]).
//!
//! # Layout
//! - [`resolve`]: desired state to [`ReplicaSpec`]s (environment, host ports, storage).
//! - [`ports`]: whether a host port is free on the host.
//! - [`retries`]: when a replica may be tried again, and why it waits.
//! - [`supervise`]: restarts of exited containers, and the engine's restart policy.
//! - [`stops`]: many stops within one grace period.
//! - [`report`]: replica states for the cloud.

pub mod ports;
pub mod report;
pub mod resolve;
pub mod retries;
pub mod stops;
mod supervise;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use skerry_shared::ids::{Name, NodeId};
use skerry_shared::manifest::{ComponentKind, RuntimeKind};
use skerry_shared::outbox::OutboxBody;
use skerry_shared::planner::{
    self, Action, ActualReplica, ActualState, FailedInit, Phase, ReplicaKey,
};
use skerry_shared::reducer::NodeDesired;
use skerry_shared::report::ReplicaStatus;

use crate::journal::{Journal, MemoChange, MemoChanges, Memos};
use crate::runtime::{ObservedReplica, Runtime, RuntimeError};
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
    /// When a replica's backoff ends, if one waits: the next pass should run by then.
    pub wake_in: Option<Duration>,
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
        }
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

    /// Every replica the runtimes hold, with the runtime that holds it, and the networks.
    /// A container's restart count is the engine's plus the agent's own restarts.
    async fn observe(
        &mut self,
    ) -> Result<
        (
            BTreeMap<ReplicaKey, (ObservedReplica, RuntimeKind)>,
            BTreeSet<Name>,
        ),
        RuntimeError,
    > {
        let mut replicas = BTreeMap::new();
        let mut networks = BTreeSet::new();
        for rt in &self.runtimes {
            let seen = rt.observe(self.node).await?;
            networks.extend(seen.networks);
            for mut r in seen.replicas {
                if rt.kind() == RuntimeKind::Docker {
                    let recorded = self.memos.restarts.get(&r.key).copied();
                    r.restarts = self
                        .retries
                        .count(&r.key, r.spec_hash, r.restarts, recorded);
                    if r.exited.is_none() {
                        r.exited = self.retries.last_exit(&r.key, r.spec_hash);
                    }
                }
                replicas.insert(r.key.clone(), (r, rt.kind()));
            }
        }
        Ok((replicas, networks))
    }

    /// The actual state the planner compares `desired` with: what the runtimes hold, the
    /// networks, and the memos.
    fn actual(
        &self,
        desired: &NodeDesired,
        observed: &BTreeMap<ReplicaKey, (ObservedReplica, RuntimeKind)>,
        networks: BTreeSet<Name>,
    ) -> ActualState {
        let mut actual = ActualState {
            networks,
            ..ActualState::default()
        };
        self.memos.fill(&mut actual);
        // Which instances need a network is the planner's (`planner::needs_network`). Without
        // a Docker runtime there is none to create: a container component cannot start here
        // anyway, and says so.
        if self.runtime(RuntimeKind::Docker).is_none() {
            for d in desired.instances.values() {
                actual.networks.insert(d.spec.name.clone());
            }
        }
        for (key, (o, _)) in observed {
            actual.insert(ActualReplica {
                key: key.clone(),
                spec_hash: o.spec_hash,
                phase: o.phase,
            });
        }
        actual
    }

    /// Records init runs that ended, for the spec hash they ran.
    fn record_inits(
        &mut self,
        desired: &NodeDesired,
        observed: &BTreeMap<ReplicaKey, (ObservedReplica, RuntimeKind)>,
    ) {
        let mut changes = MemoChanges::new();
        for d in desired.instances.values() {
            for c in d
                .spec
                .manifest
                .components
                .iter()
                .filter(|c| c.kind == ComponentKind::Init)
            {
                let hash = planner::spec_hash(&d.spec, c);
                let key = ReplicaKey::new(&d.spec.name, &c.name, 0);
                let Some((o, _)) = observed.get(&key) else {
                    continue;
                };
                let Phase::Exited { code } = o.phase else {
                    continue;
                };
                if o.spec_hash != hash {
                    continue;
                }
                let (instance, component) = (d.spec.name.clone(), c.name.clone());
                if code == 0 {
                    if !self.memos.inits_succeeded.contains(&(
                        instance.clone(),
                        component.clone(),
                        hash,
                    )) {
                        changes.push(MemoChange::InitSucceeded {
                            instance: instance.clone(),
                            component: component.clone(),
                            spec_hash: hash,
                        });
                        changes.push(MemoChange::InitFailureCleared {
                            instance,
                            component,
                        });
                    }
                } else {
                    let failure = FailedInit {
                        spec_hash: hash,
                        deployed_at: d.deployed_at,
                        code,
                    };
                    if self
                        .memos
                        .inits_failed
                        .get(&(instance.clone(), component.clone()))
                        != Some(&failure)
                    {
                        changes.push(MemoChange::InitFailed {
                            instance,
                            component,
                            failure,
                        });
                    }
                }
            }
        }
        self.save(changes);
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
                    .is_none_or(|c| k.replica.replica >= c.replicas())
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
        self.retries.retain(|k| {
            desired
                .instances
                .get(&k.instance)
                .and_then(|d| d.spec.manifest.component(k.component.as_str()))
                .is_some_and(|c| k.replica < c.replicas())
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
            wake_in: self.retries.next_due(tokio::time::Instant::now()),
        }
    }

    /// Keeps what each desired instance's components depend on, for the order of stops
    /// once it is undeployed; forgets instances that are neither desired nor running.
    fn remember_dependencies(
        &mut self,
        desired: &NodeDesired,
        observed: &BTreeMap<ReplicaKey, (ObservedReplica, RuntimeKind)>,
    ) {
        for (name, d) in &desired.instances {
            let deps = d
                .spec
                .manifest
                .components
                .iter()
                .map(|c| (c.name.clone(), c.depends_on.clone()))
                .collect();
            self.dependencies.insert(name.clone(), deps);
        }
        self.dependencies.retain(|name, _| {
            desired.instances.contains_key(name) || observed.keys().any(|k| &k.instance == name)
        });
    }

    /// Performs stop actions at once (see [`stops`]). Returns how many worked.
    async fn stop_all(
        &mut self,
        observed: &BTreeMap<ReplicaKey, (ObservedReplica, RuntimeKind)>,
        actions: &[Action],
    ) -> usize {
        let mut list = Vec::new();
        for action in actions {
            let Action::Stop { key, .. } = action else {
                continue;
            };
            tracing::debug!(%action, "acting");
            let kind = observed.get(key).map(|(_, k)| *k);
            if let Some(rt) = kind.and_then(|k| self.runtime(k)) {
                list.push(stops::Stop {
                    key: key.clone(),
                    runtime: Arc::clone(rt),
                });
            }
        }
        let unknown = actions.len() - list.len();
        let mut worked = unknown;
        for (key, result) in stops::stop_all(self.node, list, &self.dependencies).await {
            match result {
                Ok(()) => {
                    self.problems.remove(&key);
                    worked += 1;
                }
                Err(e) => {
                    tracing::warn!(replica = %key, error = %e, "stop failed");
                    self.problems.insert(key, e.to_string());
                }
            }
        }
        worked
    }

    /// Named storage to delete once the instance's replicas are gone (`undeploy --purge`).
    pub fn queue_purges(&mut self, purges: Vec<(Name, Vec<Name>)>) {
        self.purges.extend(purges);
    }

    /// Deletes the named storage of purged instances that no longer run here, and
    /// forgets their memos (so a new deploy under the same name starts afresh).
    async fn purge(
        &mut self,
        desired: &NodeDesired,
        observed: &BTreeMap<ReplicaKey, (ObservedReplica, RuntimeKind)>,
    ) {
        let ready: Vec<Name> = self
            .purges
            .keys()
            .filter(|i| !observed.keys().any(|k| &k.instance == *i))
            .cloned()
            .collect();
        for instance in ready {
            let Some(storage) = self.purges.remove(&instance) else {
                continue;
            };
            if desired.instances.contains_key(&instance) {
                // Deployed again before the purge: its data stays.
                continue;
            }
            let mut done = true;
            for name in &storage {
                for rt in &self.runtimes {
                    if let Err(e) = rt.purge_storage(self.node, &instance, name).await {
                        tracing::warn!(%instance, storage = %name, error = %e, "cannot purge named storage; retrying");
                        done = false;
                    }
                }
            }
            if done {
                tracing::info!(%instance, "purged its named storage");
                self.save(vec![MemoChange::InstanceForgotten { instance }].into());
            } else {
                self.purges.insert(instance, storage);
            }
        }
    }

    /// Every replica's current state, for the first report after a connect.
    pub fn complete_report(&self) -> OutboxBody {
        report::complete(&self.reports)
    }

    async fn act(
        &mut self,
        desired: &NodeDesired,
        observed: &BTreeMap<ReplicaKey, (ObservedReplica, RuntimeKind)>,
        fixed: &BTreeSet<u16>,
        action: Action,
    ) -> bool {
        tracing::debug!(%action, "acting");
        let result = match &action {
            Action::CreateNetwork { instance } => match self.runtime(RuntimeKind::Docker) {
                Some(rt) => rt.create_network(self.node, instance).await,
                None => Ok(()),
            },
            Action::RemoveNetwork { instance } => match self.runtime(RuntimeKind::Docker) {
                Some(rt) => rt.remove_network(self.node, instance).await,
                None => Ok(()),
            },
            Action::RunInit { key, spec_hash, .. } | Action::Start { key, spec_hash } => {
                if !self
                    .retries
                    .may_try(key, *spec_hash, tokio::time::Instant::now())
                {
                    // It waits its backoff; the pass that follows it tries again.
                    return false;
                }
                self.start(desired, key, fixed).await
            }
            Action::Stop { key, .. } => {
                let kind = observed.get(key).map(|(_, k)| *k);
                match kind.and_then(|k| self.runtime(k)) {
                    Some(rt) => rt.stop(self.node, key).await,
                    None => Ok(()),
                }
            }
        };
        match (result, &action) {
            (Ok(()), Action::RunInit { key, spec_hash, .. } | Action::Start { key, spec_hash }) => {
                self.problems.remove(key);
                self.retries
                    .started(key, *spec_hash, tokio::time::Instant::now());
                true
            }
            (Err(e), Action::RunInit { key, spec_hash, .. } | Action::Start { key, spec_hash }) => {
                let delay =
                    self.retries
                        .start_failed(key, *spec_hash, &e, tokio::time::Instant::now());
                tracing::warn!(%action, error = %e, retry_in_ms = delay.as_millis() as u64, "start failed; trying again after the backoff");
                self.problems.insert(key.clone(), e.to_string());
                false
            }
            (Ok(()), _) => true,
            (Err(e), Action::Stop { key, .. }) => {
                tracing::warn!(%action, error = %e, "action failed");
                self.problems.insert(key.clone(), e.to_string());
                false
            }
            (Err(e), _) => {
                tracing::warn!(%action, error = %e, "action failed");
                false
            }
        }
    }

    async fn start(
        &mut self,
        desired: &NodeDesired,
        key: &ReplicaKey,
        fixed: &BTreeSet<u16>,
    ) -> Result<(), RuntimeError> {
        let (spec, rt) = self.resolve(desired, key, fixed).await?;
        rt.start(&spec).await
    }

    /// The spec of one desired replica and the runtime that runs it, with host ports free
    /// on the host: a fixed one in use is refused ("host port N in use"), a chosen one in use
    /// is chosen again.
    async fn resolve(
        &mut self,
        desired: &NodeDesired,
        key: &ReplicaKey,
        fixed: &BTreeSet<u16>,
    ) -> Result<(crate::runtime::ReplicaSpec, Arc<dyn Runtime>), RuntimeError> {
        let d = desired
            .instances
            .get(&key.instance)
            .ok_or_else(|| RuntimeError::Engine(format!("{key}: instance is not desired")))?;
        let c = d
            .spec
            .manifest
            .component(key.component.as_str())
            .ok_or_else(|| RuntimeError::Engine(format!("{key}: component is not desired")))?;
        let rt = Arc::clone(self.runtime(c.runtime()).ok_or_else(|| {
            RuntimeError::Unrunnable(format!("this node has no {} runtime", c.runtime()))
        })?);
        let mut in_use = ports::InUse::default();
        if c.ports
            .iter()
            .any(|p| p.host.is_some() || p.expose.published())
        {
            for r in &self.runtimes {
                in_use.published.extend(r.host_ports_in_use().await?);
            }
            for p in c.ports.iter().filter_map(|p| p.host) {
                if in_use.taken(p) {
                    return Err(RuntimeError::Unrunnable(format!("host port {p} in use")));
                }
            }
        }
        let taken = |p: u16| in_use.taken(p);
        let mut changes = MemoChanges::new();
        let ctx = resolve::Context {
            node: self.node,
            fixed,
            taken: &taken,
            data: &self.data,
        };
        let spec =
            resolve::replica_spec(ctx, &d.spec, c, key.replica, &mut self.memos, &mut changes)
                .map_err(RuntimeError::Unrunnable);
        self.save(changes);
        let spec = spec?;
        if let Some(dir) = &spec.log_dir_host {
            std::fs::create_dir_all(dir)
                .map_err(|e| RuntimeError::Engine(format!("{}: {e}", dir.display())))?;
        }
        Ok((spec, rt))
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
