//! Replica states for `skerry status`, from desired state and what the runtimes show.

use std::collections::BTreeMap;

use skerry_shared::ids::Name;
use skerry_shared::manifest::{ComponentKind, RestartPolicy};
use skerry_shared::outbox::OutboxBody;
use skerry_shared::planner::{ActualState, Phase, ReplicaKey, replica_hash, waiting_on};
use skerry_shared::reducer::NodeDesired;
use skerry_shared::report::{ReplicaReport, ReplicaState, ReplicaStatus};

use crate::journal::{Memos, NodePortKey};
use crate::runtime::ObservedReplica;

/// (instance, component, replica)
pub type ReportKey = (Name, Name, u32);

/// Every desired replica's state.
pub fn replica_reports(
    desired: &NodeDesired,
    actual: &ActualState,
    observed: &BTreeMap<ReplicaKey, ObservedReplica>,
    problems: &BTreeMap<ReplicaKey, String>,
    memos: &Memos,
) -> BTreeMap<ReportKey, ReplicaStatus> {
    let mut out = BTreeMap::new();
    for desired_instance in desired.instances.values() {
        let spec = &desired_instance.spec;
        for c in &spec.manifest.components {
            let hash = replica_hash(spec, c, &desired.secrets);
            for replica in 0..c.replicas() {
                let key = ReplicaKey::new(&spec.name, &c.name, replica);
                let seen = observed.get(&key).filter(|o| o.spec_hash == hash);
                let waiting = waiting_on(spec, c, actual);
                let mut reason = problems
                    .get(&key)
                    .cloned()
                    .or_else(|| seen.and_then(|o| o.last_exit.clone()));
                let state = match c.kind {
                    ComponentKind::Init => {
                        if actual.inits_succeeded.contains(&(
                            spec.name.clone(),
                            c.name.clone(),
                            hash,
                        )) {
                            ReplicaState::Succeeded
                        } else if let Some(f) = actual
                            .inits_failed
                            .get(&(spec.name.clone(), c.name.clone()))
                            .filter(|f| f.spec_hash == hash)
                        {
                            ReplicaState::Failed { code: f.code }
                        } else {
                            match seen.map(|o| o.phase) {
                                Some(Phase::Exited { code: 0 }) => ReplicaState::Succeeded,
                                Some(Phase::Exited { code }) => ReplicaState::Failed { code },
                                Some(_) => ReplicaState::Running,
                                None => ReplicaState::Pending,
                            }
                        }
                    }
                    // A job's run shows as running while it runs; between runs the job
                    // waits for its schedule (its runs are listed by `skerry jobs`).
                    ComponentKind::Job => match seen.map(|o| o.phase) {
                        Some(p) if !p.exited() => ReplicaState::Running,
                        _ => {
                            // The last run's exit shows as the last exit (and in
                            // `skerry jobs`); the reason says when the job runs.
                            if !problems.contains_key(&key) {
                                reason = c.schedule.as_ref().map(|s| {
                                    let zone = c.timezone.as_deref().unwrap_or("UTC");
                                    format!("runs on schedule {s} ({zone})")
                                });
                            }
                            ReplicaState::Pending
                        }
                    },
                    ComponentKind::Service => match seen.map(|o| o.phase) {
                        Some(Phase::Starting) => ReplicaState::Starting,
                        Some(Phase::Running) => ReplicaState::Running,
                        Some(Phase::Healthy) => ReplicaState::Healthy,
                        Some(Phase::Unhealthy) => ReplicaState::Unhealthy,
                        Some(Phase::Exited { code }) => {
                            let restarts = match c.restart() {
                                RestartPolicy::Always => true,
                                RestartPolicy::OnFailure => code != 0,
                                RestartPolicy::Never => false,
                            };
                            if restarts {
                                ReplicaState::Starting
                            } else {
                                ReplicaState::Failed { code }
                            }
                        }
                        None => ReplicaState::Pending,
                    },
                };
                // A stopped instance's replica is `Stopped` once it is gone; one still
                // there (its stop failed, or has not happened yet) shows what it is doing.
                let state = if spec.lifecycle.stopped && !observed.contains_key(&key) {
                    reason = None;
                    ReplicaState::Stopped
                } else {
                    state
                };
                if state == ReplicaState::Pending && reason.is_none() && !waiting.is_empty() {
                    let names: Vec<&str> = waiting.iter().map(Name::as_str).collect();
                    reason = Some(format!("waiting for {}", names.join(", ")));
                }
                let host_ports = c
                    .ports
                    .iter()
                    .filter_map(|p| {
                        let h = p.host.or_else(|| {
                            memos
                                .nodeports
                                .get(&NodePortKey {
                                    replica: key.clone(),
                                    container_port: p.container,
                                })
                                .copied()
                        })?;
                        Some((p.container, h))
                    })
                    .collect();
                out.insert(
                    (spec.name.clone(), c.name.clone(), replica),
                    ReplicaStatus {
                        last_exit: seen.and_then(|o| o.exited.clone()),
                        report: ReplicaReport {
                            instance: spec.name.clone(),
                            component: c.name.clone(),
                            replica,
                            state,
                            restarts: seen.map_or(0, |o| o.restarts),
                            reason,
                            spec_hash: hash,
                            ports: host_ports,
                        },
                    },
                );
            }
        }
    }
    out
}

/// What changed between two sets of reports, as outbox entries (one per replica).
pub fn diff(
    before: &BTreeMap<ReportKey, ReplicaStatus>,
    after: &BTreeMap<ReportKey, ReplicaStatus>,
) -> Vec<OutboxBody> {
    let changed = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|((i, c, r), v)| OutboxBody::Replica {
            key: ReplicaKey::new(i, c, *r),
            status: Some(Box::new(v.clone())),
        });
    let removed = before
        .keys()
        .filter(|k| !after.contains_key(*k))
        .map(|(i, c, r)| OutboxBody::Replica {
            key: ReplicaKey::new(i, c, *r),
            status: None,
        });
    changed.chain(removed).collect()
}

/// Everything, for the first report after a connect.
pub fn complete(all: &BTreeMap<ReportKey, ReplicaStatus>) -> OutboxBody {
    OutboxBody::Complete(all.values().cloned().collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use skerry_shared::event::{InstanceMode, InstanceSpec, NodeTarget};
    use skerry_shared::ids::{Name, NodeId};
    use skerry_shared::manifest::{Component, Manifest};
    use skerry_shared::reducer::DesiredInstance;

    use super::*;

    fn desired(stopped: bool) -> (NodeDesired, ReplicaKey, InstanceSpec) {
        let n = |s: &str| Name::parse(s).unwrap();
        let node = NodeId::random();
        let manifest = Manifest {
            app: n("web"),
            version: "1.0.0".parse().unwrap(),
            description: None,
            platforms: None,
            components: vec![Component::image(n("api"), "api:1")],
        };
        let spec = InstanceSpec {
            name: n("web"),
            env: n("prod"),
            app: n("web"),
            version: manifest.version.clone(),
            manifest,
            nodes: vec![NodeTarget { node, weight: 1 }],
            unschedulable: vec![],
            selector: Default::default(),
            overrides: vec![],
            mode: InstanceMode::Production,
            targeting: Default::default(),
            lifecycle: Default::default(),
        }
        .with_stopped(stopped);
        let mut d = NodeDesired::new(node);
        d.instances.insert(
            spec.name.clone(),
            DesiredInstance {
                spec: spec.clone(),
                deployed_at: 1,
            },
        );
        (d, ReplicaKey::new(&n("web"), &n("api"), 0), spec)
    }

    fn state_of(d: &NodeDesired, observed: &BTreeMap<ReplicaKey, ObservedReplica>) -> ReplicaState {
        let reports = replica_reports(
            d,
            &ActualState::default(),
            observed,
            &BTreeMap::new(),
            &Memos::default(),
        );
        reports.values().next().unwrap().report.state.clone()
    }

    /// A stopped instance's replica is Stopped once it is gone, and shows what it does
    /// while it is still there (a stop that failed or has not happened yet).
    #[test]
    fn a_replica_of_a_stopped_instance_is_stopped_only_once_gone() {
        let (d, key, spec) = desired(true);
        assert_eq!(state_of(&d, &BTreeMap::new()), ReplicaState::Stopped);
        let c = &spec.manifest.components[0];
        let running = ObservedReplica {
            key: key.clone(),
            spec_hash: replica_hash(&spec, c, &d.secrets),
            phase: Phase::Running,
            restarts: 0,
            last_exit: None,
            exited: None,
        };
        let observed = BTreeMap::from([(key, running)]);
        assert_eq!(state_of(&d, &observed), ReplicaState::Running);
        let (started, _, _) = desired(false);
        assert_eq!(state_of(&started, &BTreeMap::new()), ReplicaState::Pending);
    }
}
