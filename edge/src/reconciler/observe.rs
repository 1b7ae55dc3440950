//! What is there: every replica the runtimes hold (with the agent's own restart counts
//! for containers), the actual state the planner compares the desired state with, the
//! `init` runs that ended (recorded once per spec hash), and what each instance's
//! components depend on (the order of stops once it is undeployed).

use std::collections::{BTreeMap, BTreeSet};

use skerry_shared::ids::Name;
use skerry_shared::manifest::{ComponentKind, RuntimeKind};
use skerry_shared::planner::{self, ActualReplica, ActualState, FailedInit, Phase, ReplicaKey};
use skerry_shared::reducer::NodeDesired;

use super::Reconciler;
use crate::journal::{MemoChange, MemoChanges};
use crate::runtime::{ObservedReplica, RuntimeError};

impl Reconciler {
    /// Every replica the runtimes hold, with the runtime that holds it, and the networks.
    /// A container's restart count is the engine's plus the agent's own restarts.
    pub(super) async fn observe(
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
    pub(super) fn actual(
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
    pub(super) fn record_inits(
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
                let hash = planner::replica_hash(&d.spec, c, &desired.secrets);
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

    /// Keeps what each desired instance's components depend on, for the order of stops
    /// once it is undeployed; forgets instances that are neither desired nor running.
    pub(super) fn remember_dependencies(
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
}
