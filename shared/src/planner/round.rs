//! One round of the plan: stops, networks, then each desired instance's components in
//! dependency order (the module doc of [`crate::planner`] gives the rules).

use std::collections::{BTreeMap, BTreeSet};

use super::readiness::{
    needs_network, ready_with, replica_hash, spec_hash, topological_order, wanted_replicas,
};
use super::state::{Action, ActualReplica, ActualState, ReplicaKey, StopReason};
use crate::hash::Digest;
use crate::ids::Name;
use crate::manifest::{Component, ComponentKind};
use crate::reducer::{DesiredInstance, NodeDesired};

/// The desired spec hashes, by (instance, component).
fn desired_hashes(desired: &NodeDesired) -> BTreeMap<(&Name, &Name), Digest> {
    let mut out = BTreeMap::new();
    for (name, inst) in &desired.instances {
        for c in &inst.spec.manifest.components {
            out.insert(
                (name, &c.name),
                replica_hash(&inst.spec, c, &desired.secrets),
            );
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

    // 3. and 4. Per desired instance that is not stopped: its network (when it needs one),
    // then its components. A stopped instance keeps the network it has.
    for (name, inst) in desired
        .instances
        .iter()
        .filter(|(_, i)| !i.spec.lifecycle.stopped)
    {
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
    if inst.spec.lifecycle.stopped {
        return Some(StopReason::Stopped);
    }
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
