//! Desired and actual state to ordered actions (sans-IO).
//!
//! The agent's reconciler calls [`plan`] in a loop: it observes the runtime into an
//! [`ActualState`], plans against the node's [`NodeDesired`], performs the actions and
//! observes again. The plan is level-triggered (it depends only on the two states, never on
//! what was done before) and deterministic (the same states give the same actions, in the
//! same order). The cloud's `deploy --dry-run` calls [`simulate`] to print the rounds a node
//! would go through.
//!
//! One round of [`plan`], in this order:
//! 1. **Stops**: replicas whose instance is no longer desired, whose component is gone,
//!    whose index is beyond the component's replicas, or whose spec hash is not the desired
//!    one; and init containers that have exited once their result is recorded. A replaced
//!    replica is started again in a later round, once it is gone.
//! 2. **RemoveNetwork** for an undesired instance's network once none of its replicas is
//!    left.
//! 3. **CreateNetwork** for a desired instance that needs one ([`needs_network`]: it has a
//!    container component) and has none. Nothing of that instance acts in the same round.
//!    An instance of `exec` components only gets no network and starts in round 1.
//! 4. Per desired instance, its components in topological order of `depends_on`; a
//!    component acts only when all its dependencies are ready in the actual state (see
//!    [`component_ready`]):
//!    - `init`: **RunInit** unless it succeeded for its current spec hash, is running (or
//!      has exited and awaits its result being recorded), or failed for the same deploy (the
//!      same `deployed_at`). A failed init blocks its dependents until a later deploy.
//!    - `service`: **Start** each missing replica index.
//!    - `job`: nothing; the cron scheduler starts job runs. A job is never a dependency
//!      gate.
//!
//! The reconciler records an init's result (in `inits_succeeded` or `inits_failed`) when
//! it sees the init exit, before it plans again.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::event::InstanceSpec;
use crate::hash::Digest;
use crate::ids::Name;
use crate::manifest::{Component, ComponentKind, Manifest, RuntimeKind};
use crate::reducer::{DesiredInstance, NodeDesired};

/// One replica of one component of one instance on this node. Containers carry it as the
/// labels `io.skerry.instance`, `io.skerry.component` and `io.skerry.replica`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReplicaKey {
    pub instance: Name,
    pub component: Name,
    pub replica: u32,
}

impl ReplicaKey {
    pub fn new(instance: &Name, component: &Name, replica: u32) -> Self {
        Self {
            instance: instance.clone(),
            component: component.clone(),
            replica,
        }
    }
}

impl fmt::Display for ReplicaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}#{}", self.instance, self.component, self.replica)
    }
}

/// What the runtime says about a replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// Created, not yet running.
    Starting,
    /// Running; no health verdict (yet, or no health check).
    Running,
    /// Running and its health check passes.
    Healthy,
    /// Running and its health check fails.
    Unhealthy,
    /// Not running any more.
    Exited { code: i64 },
}

impl Phase {
    pub fn exited(self) -> bool {
        matches!(self, Phase::Exited { .. })
    }
}

/// A replica the runtime has (a container or a supervised process).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActualReplica {
    pub key: ReplicaKey,
    /// The `io.skerry.spec-hash` it was started with.
    pub spec_hash: Digest,
    pub phase: Phase,
}

/// An init that exited with a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedInit {
    pub spec_hash: Digest,
    /// The `deployed_at` of the instance it ran for.
    pub deployed_at: u64,
    pub code: i64,
}

/// What the node has: observed replicas and networks, and the recorded results of inits.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ActualState {
    /// Replicas by key; each value's `key` equals its map key ([`ActualState::insert`]).
    pub replicas: BTreeMap<ReplicaKey, ActualReplica>,
    /// Instances whose network exists.
    pub networks: BTreeSet<Name>,
    /// (instance, component, spec hash) of every init that exited 0. Old hashes are kept,
    /// so a rollback does not run an init again.
    pub inits_succeeded: BTreeSet<(Name, Name, Digest)>,
    /// The last failure of each (instance, component) init.
    pub inits_failed: BTreeMap<(Name, Name), FailedInit>,
}

impl ActualState {
    /// Adds or replaces a replica, by its key.
    pub fn insert(&mut self, replica: ActualReplica) {
        self.replicas.insert(replica.key.clone(), replica);
    }

    fn init_succeeded(&self, instance: &Name, component: &Name, hash: Digest) -> bool {
        self.inits_succeeded
            .contains(&(instance.clone(), component.clone(), hash))
    }
}

/// Why a replica is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StopReason {
    /// Its instance is no longer desired on this node.
    Undeployed,
    /// Its component is not in the instance's manifest any more.
    Removed,
    /// Its index is beyond the component's replicas.
    Scaled,
    /// Its spec hash is not the desired one (an upgrade, a rollback, other overrides).
    Replaced,
    /// An init that exited and whose result is recorded.
    Completed,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopReason::Undeployed => "undeployed",
            StopReason::Removed => "removed",
            StopReason::Scaled => "scaled",
            StopReason::Replaced => "replaced",
            StopReason::Completed => "completed",
        })
    }
}

/// One step for the reconciler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    CreateNetwork {
        instance: Name,
    },
    RemoveNetwork {
        instance: Name,
    },
    /// Run an init to completion; on failure record a [`FailedInit`] with `deployed_at`.
    RunInit {
        key: ReplicaKey,
        spec_hash: Digest,
        deployed_at: u64,
    },
    Start {
        key: ReplicaKey,
        spec_hash: Digest,
    },
    /// Stop and remove.
    Stop {
        key: ReplicaKey,
        reason: StopReason,
    },
}

impl fmt::Display for Action {
    /// One line of `deploy --dry-run`: `create network weather`, `run init weather/migrate`,
    /// `start weather/db#0`, `stop weather/db#0 (replaced)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::CreateNetwork { instance } => write!(f, "create network {instance}"),
            Action::RemoveNetwork { instance } => write!(f, "remove network {instance}"),
            Action::RunInit { key, .. } => {
                write!(f, "run init {}/{}", key.instance, key.component)
            }
            Action::Start { key, .. } => write!(f, "start {key}"),
            Action::Stop { key, reason } => write!(f, "stop {key} ({reason})"),
        }
    }
}

/// The spec hash of a component of an instance: a digest of the component's definition,
/// the instance's name, the app version and the component's effective environment. It goes
/// on containers as the label `io.skerry.spec-hash`; a replica with another hash is
/// replaced.
pub fn spec_hash(instance: &InstanceSpec, component: &Component) -> Digest {
    // postcard only fails to encode sequences of unknown length and types it does not
    // support; a Component and a BTreeMap of strings have neither, so these never fail.
    let definition = postcard::to_stdvec(component).unwrap_or_default();
    let env = postcard::to_stdvec(&instance.env_of(component.name.as_str())).unwrap_or_default();
    let version = instance.version.to_string();
    Digest::of_parts(&[
        b"skerry.spec-hash.v1",
        instance.name.as_str().as_bytes(),
        version.as_bytes(),
        &definition,
        &env,
    ])
}

/// How many replicas of a component the planner keeps: a service's `replicas`, one init
/// run, and no job runs (the scheduler's business).
fn wanted_replicas(component: &Component) -> u32 {
    match component.kind {
        ComponentKind::Service => component.replicas(),
        ComponentKind::Init => 1,
        ComponentKind::Job => 0,
    }
}

/// True when a replica in `phase` counts as ready: healthy, or running when the component
/// has no health check.
pub fn phase_ready(component: &Component, phase: Phase) -> bool {
    match phase {
        Phase::Healthy => true,
        Phase::Running => component.health.is_none(),
        Phase::Starting | Phase::Unhealthy | Phase::Exited { .. } => false,
    }
}

/// True when `component` of `instance` is ready as a dependency: an init that succeeded
/// for its current spec hash; a service whose every replica is present with the current
/// spec hash and ready ([`phase_ready`]); always for a job.
pub fn component_ready(
    instance: &InstanceSpec,
    component: &Component,
    actual: &ActualState,
) -> bool {
    ready_with(instance, component, spec_hash(instance, component), actual)
}

fn ready_with(
    instance: &InstanceSpec,
    component: &Component,
    hash: Digest,
    actual: &ActualState,
) -> bool {
    match component.kind {
        ComponentKind::Job => true,
        ComponentKind::Init => actual.init_succeeded(&instance.name, &component.name, hash),
        ComponentKind::Service => (0..component.replicas()).all(|i| {
            actual
                .replicas
                .get(&ReplicaKey::new(&instance.name, &component.name, i))
                .is_some_and(|r| r.spec_hash == hash && phase_ready(component, r.phase))
        }),
    }
}

/// The dependencies of `component` that are not ready (a name the manifest does not
/// define counts as not ready). Empty when the component may act.
pub fn waiting_on(
    instance: &InstanceSpec,
    component: &Component,
    actual: &ActualState,
) -> Vec<Name> {
    let manifest = &instance.manifest;
    component
        .depends_on
        .iter()
        .filter(|dep| {
            manifest
                .component(dep.as_str())
                .is_none_or(|d| !component_ready(instance, d, actual))
        })
        .cloned()
        .collect()
}

/// The components of a manifest in topological order of `depends_on`, ties in manifest
/// order. Components on a cycle or behind an unknown dependency (which validation refuses)
/// come last, in manifest order; they never become ready to act.
pub fn topological_order(manifest: &Manifest) -> Vec<&Component> {
    let comps = &manifest.components;
    let mut placed = vec![false; comps.len()];
    let mut out = Vec::with_capacity(comps.len());
    loop {
        let mut progressed = false;
        for (i, c) in comps.iter().enumerate() {
            if placed[i] {
                continue;
            }
            let deps_placed = c.depends_on.iter().all(|d| {
                comps
                    .iter()
                    .position(|x| x.name == *d)
                    .is_some_and(|j| placed[j])
            });
            if deps_placed {
                placed[i] = true;
                out.push(c);
                progressed = true;
            }
        }
        if !progressed {
            break;
        }
    }
    out.extend(
        comps
            .iter()
            .zip(&placed)
            .filter(|(_, p)| !**p)
            .map(|(c, _)| c),
    );
    out
}

/// Whether an instance gets a network of its own: it does when it has a container
/// component (`image`); an app of `exec` components only shares the host's network and
/// gets none. The agent's reconciler and `deploy --dry-run` both plan through [`plan`],
/// so this is the one place that decides.
pub fn needs_network(spec: &InstanceSpec) -> bool {
    spec.manifest
        .components
        .iter()
        .any(|c| c.runtime() == RuntimeKind::Docker)
}

/// The desired spec hashes, by (instance, component).
fn desired_hashes(desired: &NodeDesired) -> BTreeMap<(&Name, &Name), Digest> {
    let mut out = BTreeMap::new();
    for (name, inst) in &desired.instances {
        for c in &inst.spec.manifest.components {
            out.insert((name, &c.name), spec_hash(&inst.spec, c));
        }
    }
    out
}

/// One round of actions that moves `actual` toward `desired` (see the module doc).
pub fn plan(desired: &NodeDesired, actual: &ActualState) -> Vec<Action> {
    let hashes = desired_hashes(desired);
    let mut actions = Vec::new();

    // 1. Stops.
    for (key, replica) in &actual.replicas {
        if let Some(reason) = stop_reason(desired, &hashes, actual, key, replica) {
            actions.push(Action::Stop {
                key: key.clone(),
                reason,
            });
        }
    }

    // 2. Networks of undesired instances, once their replicas are gone.
    let with_replicas: BTreeSet<&Name> = actual.replicas.keys().map(|k| &k.instance).collect();
    for net in &actual.networks {
        if !desired.instances.contains_key(net) && !with_replicas.contains(net) {
            actions.push(Action::RemoveNetwork {
                instance: net.clone(),
            });
        }
    }

    // 3. and 4. Per desired instance: its network (when it needs one), then its components.
    for (name, inst) in &desired.instances {
        if needs_network(&inst.spec) && !actual.networks.contains(name) {
            actions.push(Action::CreateNetwork {
                instance: name.clone(),
            });
            continue;
        }
        plan_instance(inst, &hashes, actual, &mut actions);
    }
    actions
}

fn stop_reason(
    desired: &NodeDesired,
    hashes: &BTreeMap<(&Name, &Name), Digest>,
    actual: &ActualState,
    key: &ReplicaKey,
    replica: &ActualReplica,
) -> Option<StopReason> {
    let Some(inst) = desired.instances.get(&key.instance) else {
        return Some(StopReason::Undeployed);
    };
    let Some(component) = inst.spec.manifest.component(key.component.as_str()) else {
        return Some(StopReason::Removed);
    };
    let hash = hashes.get(&(&key.instance, &key.component)).copied()?;
    let kind = component.kind;
    if kind != ComponentKind::Job && key.replica >= wanted_replicas(component) {
        return Some(StopReason::Scaled);
    }
    if replica.spec_hash != hash {
        return Some(StopReason::Replaced);
    }
    if kind == ComponentKind::Init && replica.phase.exited() {
        let recorded = actual.init_succeeded(&key.instance, &key.component, hash)
            || actual
                .inits_failed
                .get(&(key.instance.clone(), key.component.clone()))
                .is_some_and(|f| f.spec_hash == hash);
        if recorded {
            return Some(StopReason::Completed);
        }
    }
    None
}

fn plan_instance(
    inst: &DesiredInstance,
    hashes: &BTreeMap<(&Name, &Name), Digest>,
    actual: &ActualState,
    actions: &mut Vec<Action>,
) {
    let spec = &inst.spec;
    let manifest = &spec.manifest;
    let hash_of = |c: &Component| {
        hashes
            .get(&(&spec.name, &c.name))
            .copied()
            .unwrap_or_else(|| spec_hash(spec, c))
    };
    for component in topological_order(manifest) {
        let deps_ready = component.depends_on.iter().all(|dep| {
            manifest
                .component(dep.as_str())
                .is_some_and(|d| ready_with(spec, d, hash_of(d), actual))
        });
        if !deps_ready {
            continue;
        }
        let hash = hash_of(component);
        match component.kind {
            ComponentKind::Job => {}
            ComponentKind::Init => {
                let key = ReplicaKey::new(&spec.name, &component.name, 0);
                let failed_here = actual
                    .inits_failed
                    .get(&(spec.name.clone(), component.name.clone()))
                    .is_some_and(|f| f.deployed_at == inst.deployed_at && f.spec_hash == hash);
                if !actual.init_succeeded(&spec.name, &component.name, hash)
                    && !actual.replicas.contains_key(&key)
                    && !failed_here
                {
                    actions.push(Action::RunInit {
                        key,
                        spec_hash: hash,
                        deployed_at: inst.deployed_at,
                    });
                }
            }
            ComponentKind::Service => {
                for i in 0..component.replicas() {
                    let key = ReplicaKey::new(&spec.name, &component.name, i);
                    if !actual.replicas.contains_key(&key) {
                        actions.push(Action::Start {
                            key,
                            spec_hash: hash,
                        });
                    }
                }
            }
        }
    }
}

/// Changes `actual` as if `action` succeeded at once: an init succeeds, a service becomes
/// healthy (running when it has no health check), a stop removes the replica.
pub fn assume_done(desired: &NodeDesired, actual: &mut ActualState, action: &Action) {
    match action {
        Action::CreateNetwork { instance } => {
            actual.networks.insert(instance.clone());
        }
        Action::RemoveNetwork { instance } => {
            actual.networks.remove(instance);
        }
        Action::RunInit { key, spec_hash, .. } => {
            actual.inits_succeeded.insert((
                key.instance.clone(),
                key.component.clone(),
                *spec_hash,
            ));
        }
        Action::Start { key, spec_hash } => {
            let healthy = desired
                .instances
                .get(&key.instance)
                .and_then(|i| i.spec.manifest.component(key.component.as_str()))
                .is_some_and(|c| c.health.is_some());
            actual.insert(ActualReplica {
                key: key.clone(),
                spec_hash: *spec_hash,
                phase: if healthy {
                    Phase::Healthy
                } else {
                    Phase::Running
                },
            });
        }
        Action::Stop { key, .. } => {
            actual.replicas.remove(key);
        }
    }
}

/// The rounds a node goes through, and where it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Simulation {
    /// Each round's actions; the last round is not empty (there are none when nothing is
    /// to be done).
    pub rounds: Vec<Vec<Action>>,
    /// The actual state after the last round.
    pub end: ActualState,
}

impl Simulation {
    /// The dry-run listing: `round N:` and one indented action per line.
    pub fn to_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, round) in self.rounds.iter().enumerate() {
            out.push(format!("round {}:", i + 1));
            out.extend(round.iter().map(|a| format!("  {a}")));
        }
        out
    }
}

/// The plan did not settle: a bug in the planner, reported rather than looped on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the plan did not settle within {limit} rounds; round {limit} was: {last}")]
pub struct NotConverged {
    pub limit: usize,
    pub last: String,
    pub rounds: Vec<Vec<Action>>,
}

/// Plans rounds against a copy of `actual`, assuming every action succeeds at once
/// ([`assume_done`]), until a round is empty. Used by `deploy --dry-run`.
///
/// It settles within `components + 4` rounds (a round of stops, one of networks, and at
/// most one per component along a dependency chain); the bound allows twice that.
pub fn simulate(desired: &NodeDesired, actual: &ActualState) -> Result<Simulation, NotConverged> {
    let components: usize = desired
        .instances
        .values()
        .map(|i| i.spec.manifest.components.len())
        .sum();
    let limit = 2 * (components + 4);
    let mut state = actual.clone();
    let mut rounds = Vec::new();
    while rounds.len() < limit {
        let round = plan(desired, &state);
        if round.is_empty() {
            return Ok(Simulation { rounds, end: state });
        }
        for a in &round {
            assume_done(desired, &mut state, a);
        }
        rounds.push(round);
    }
    let last = rounds
        .last()
        .map(|r| {
            r.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    Err(NotConverged {
        limit,
        last,
        rounds,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::event::{InstanceMode, NodeTarget};
    use crate::ids::NodeId;
    use crate::manifest::{EnvValue, Health};

    fn n(s: &str) -> Name {
        Name::parse(s).unwrap()
    }

    fn comp(name: &str, kind: ComponentKind, deps: &[&str]) -> Component {
        Component {
            kind,
            depends_on: deps.iter().map(|d| n(d)).collect(),
            ..Component::image(n(name), "weather-db:1")
        }
    }

    fn node() -> NodeId {
        NodeId(uuid::Uuid::from_u128(1))
    }

    fn weather(version: &str) -> InstanceSpec {
        let mut db = comp("db", ComponentKind::Service, &["migrate"]);
        db.health = Some(Health {
            command: vec!["true".into()],
            interval: None,
            timeout: None,
            retries: None,
        });
        db.env.insert("TZ".into(), EnvValue("UTC".into()));
        let mut api = comp("api", ComponentKind::Service, &["db", "cleanup"]);
        api.replicas = Some(2);
        let manifest = Manifest {
            app: n("weather"),
            version: version.parse().unwrap(),
            description: None,
            components: vec![
                api,
                comp("cleanup", ComponentKind::Job, &[]),
                db,
                comp("migrate", ComponentKind::Init, &[]),
            ],
        };
        InstanceSpec {
            name: n("weather"),
            env: n("prod"),
            app: n("weather"),
            version: manifest.version.clone(),
            manifest,
            nodes: vec![NodeTarget {
                node: node(),
                weight: 1,
            }],
            unschedulable: vec![],
            selector: Default::default(),
            overrides: vec![],
            mode: InstanceMode::Production,
        }
    }

    fn desired(spec: InstanceSpec, deployed_at: u64) -> NodeDesired {
        let mut d = NodeDesired::new(node());
        d.instances
            .insert(spec.name.clone(), DesiredInstance { spec, deployed_at });
        d
    }

    fn lines(sim: &Simulation) -> Vec<String> {
        sim.rounds
            .iter()
            .map(|r| {
                r.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .collect()
    }

    #[test]
    fn fresh_deploy_goes_in_dependency_order() {
        let d = desired(weather("1.0.0"), 3);
        let sim = simulate(&d, &ActualState::default()).unwrap();
        assert_eq!(
            lines(&sim),
            vec![
                "create network weather",
                "run init weather/migrate",
                "start weather/db#0",
                "start weather/api#0; start weather/api#1",
            ]
        );
        assert!(plan(&d, &sim.end).is_empty());
        assert_eq!(sim.to_lines()[0], "round 1:");
    }

    #[test]
    fn upgrade_replaces_and_rollback_skips_the_init() {
        let v1 = desired(weather("1.0.0"), 3);
        let s1 = simulate(&v1, &ActualState::default()).unwrap().end;
        let v2 = desired(weather("2.0.0"), 4);
        let sim = simulate(&v2, &s1).unwrap();
        assert_eq!(
            lines(&sim),
            vec![
                "stop weather/api#0 (replaced); stop weather/api#1 (replaced); \
                 stop weather/db#0 (replaced); run init weather/migrate",
                "start weather/db#0",
                "start weather/api#0; start weather/api#1",
            ]
        );
        let back = desired(weather("1.0.0"), 5);
        let sim = simulate(&back, &sim.end).unwrap();
        assert!(
            !lines(&sim).iter().any(|l| l.contains("run init")),
            "{:?}",
            lines(&sim)
        );
    }

    #[test]
    fn failed_init_blocks_until_a_later_deploy() {
        let d = desired(weather("1.0.0"), 3);
        let mut a = ActualState::default();
        a.networks.insert(n("weather"));
        let spec = &d.instances[&n("weather")].spec;
        let hash = spec_hash(spec, spec.manifest.component("migrate").unwrap());
        a.inits_failed.insert(
            (n("weather"), n("migrate")),
            FailedInit {
                spec_hash: hash,
                deployed_at: 3,
                code: 1,
            },
        );
        assert!(plan(&d, &a).is_empty());
        let db = spec.manifest.component("db").unwrap();
        assert_eq!(waiting_on(spec, db, &a), vec![n("migrate")]);
        let again = desired(weather("1.0.0"), 9);
        assert_eq!(
            plan(&again, &a)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            vec!["run init weather/migrate"]
        );
    }

    #[test]
    fn exited_init_is_cleaned_once_recorded_and_unhealthy_blocks() {
        let d = desired(weather("1.0.0"), 3);
        let spec = &d.instances[&n("weather")].spec;
        let mig = spec.manifest.component("migrate").unwrap();
        let db = spec.manifest.component("db").unwrap();
        let mut a = ActualState::default();
        a.networks.insert(n("weather"));
        let key = ReplicaKey::new(&n("weather"), &n("migrate"), 0);
        a.insert(ActualReplica {
            key: key.clone(),
            spec_hash: spec_hash(spec, mig),
            phase: Phase::Exited { code: 0 },
        });
        // Not recorded yet: wait.
        assert!(plan(&d, &a).is_empty());
        a.inits_succeeded
            .insert((n("weather"), n("migrate"), spec_hash(spec, mig)));
        let p = plan(&d, &a);
        assert_eq!(
            p[0],
            Action::Stop {
                key,
                reason: StopReason::Completed
            }
        );
        assert_eq!(p[1].to_string(), "start weather/db#0");
        let mut a = simulate(&d, &a).unwrap().end;
        let db0 = ReplicaKey::new(&n("weather"), &n("db"), 0);
        if let Some(r) = a.replicas.get_mut(&db0) {
            r.phase = Phase::Unhealthy;
        }
        assert!(!component_ready(spec, db, &a));
        a.replicas
            .remove(&ReplicaKey::new(&n("weather"), &n("api"), 1));
        assert!(plan(&d, &a).is_empty(), "api waits for a healthy db");
    }

    #[test]
    fn undeploy_stops_then_removes_the_network() {
        let d = desired(weather("1.0.0"), 3);
        let a = simulate(&d, &ActualState::default()).unwrap().end;
        let empty = NodeDesired::new(node());
        let sim = simulate(&empty, &a).unwrap();
        assert_eq!(sim.rounds.len(), 2);
        assert!(sim.rounds[0].iter().all(|a| matches!(
            a,
            Action::Stop {
                reason: StopReason::Undeployed,
                ..
            }
        )));
        assert_eq!(lines(&sim)[1], "remove network weather");
        assert!(sim.end.replicas.is_empty() && sim.end.networks.is_empty());
    }

    #[test]
    fn exec_only_instances_get_no_network_and_mixed_ones_do() {
        let exec = |name: &str, kind, deps: &[&str]| Component {
            image: None,
            exec: Some(vec!["/bin/sleep".into(), "60".into()]),
            ..comp(name, kind, deps)
        };
        let mut spec = weather("1.0.0");
        spec.manifest.components = vec![
            exec("prep", ComponentKind::Init, &[]),
            exec("reader", ComponentKind::Service, &["prep"]),
            exec("sweep", ComponentKind::Job, &[]),
        ];
        assert!(!needs_network(&spec));
        let d = desired(spec.clone(), 1);
        let sim = simulate(&d, &ActualState::default()).unwrap();
        assert_eq!(
            lines(&sim),
            vec!["run init weather/prep", "start weather/reader#0"]
        );
        assert!(sim.end.networks.is_empty());

        spec.manifest
            .components
            .push(comp("db", ComponentKind::Service, &["prep"]));
        assert!(needs_network(&spec));
        let sim = simulate(&desired(spec, 1), &ActualState::default()).unwrap();
        assert_eq!(
            lines(&sim),
            vec![
                "create network weather",
                "run init weather/prep",
                "start weather/reader#0; start weather/db#0",
            ]
        );
    }

    #[test]
    fn cycles_do_not_loop() {
        let mut spec = weather("1.0.0");
        spec.manifest.components = vec![
            comp("a", ComponentKind::Service, &["b"]),
            comp("b", ComponentKind::Service, &["a"]),
            comp("c", ComponentKind::Service, &["nope"]),
        ];
        let d = desired(spec, 1);
        let sim = simulate(&d, &ActualState::default()).unwrap();
        assert_eq!(lines(&sim), vec!["create network weather"]);
    }

    #[test]
    fn spec_hash_follows_overrides_and_version() {
        let a = weather("1.0.0");
        let db = a.manifest.component("db").unwrap().clone();
        let mut b = a.clone();
        b.overrides.push(crate::event::EnvOverride {
            component: n("db"),
            var: "TZ".into(),
            value: "CET".into(),
        });
        assert_ne!(spec_hash(&a, &db), spec_hash(&b, &db));
        let api = a.manifest.component("api").unwrap();
        assert_eq!(spec_hash(&a, api), spec_hash(&b, api));
        let mut c = a.clone();
        c.version = "1.0.1".parse().unwrap();
        assert_ne!(spec_hash(&a, &db), spec_hash(&c, &db));
    }
}
