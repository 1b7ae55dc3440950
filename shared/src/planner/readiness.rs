//! What the planner derives from a desired instance: spec hashes, which replicas count as
//! ready, the order of components and whether an instance needs a network.

use super::state::{ActualState, Phase, ReplicaKey};
use crate::event::InstanceSpec;
use crate::hash::Digest;
use crate::ids::Name;
use crate::manifest::{Component, ComponentKind, Manifest, RuntimeKind};

/// The spec hash of a component of an instance: a digest of the component's definition,
/// the instance's name, the app version and the component's effective environment, and of
/// its restart generation when `skerry restart` raised it (a component never restarted
/// keeps the hash it always had). It goes on containers as the label
/// `io.skerry.spec-hash`; a replica with another hash is replaced. Whether the instance is
/// stopped is not part of it: a start runs the same spec again.
pub fn spec_hash(instance: &InstanceSpec, component: &Component) -> Digest {
    // postcard only fails to encode sequences of unknown length and types it does not
    // support; a Component and a BTreeMap of strings have neither, so these never fail.
    let definition = postcard::to_stdvec(component).unwrap_or_default();
    let env = postcard::to_stdvec(&instance.env_of(component.name.as_str())).unwrap_or_default();
    let version = instance.version.to_string();
    let parts: [&[u8]; 5] = [
        b"skerry.spec-hash.v1",
        instance.name.as_str().as_bytes(),
        version.as_bytes(),
        &definition,
        &env,
    ];
    match instance.lifecycle.generation(&component.name) {
        0 => Digest::of_parts(&parts),
        generation => {
            let generation = generation.to_be_bytes();
            let mut with = parts.to_vec();
            with.push(b"restart");
            with.push(&generation);
            Digest::of_parts(&with)
        }
    }
}

/// The hash a replica of `component` runs under: [`spec_hash`], and for a component that
/// uses secrets, the version of each secret it names as this node holds it (0: not here
/// yet), so that a new `secret set` restarts the replicas that use it. A component
/// without secrets keeps its [`spec_hash`].
pub fn replica_hash(
    instance: &InstanceSpec,
    component: &Component,
    secrets: &std::collections::BTreeMap<crate::ids::Name, crate::reducer::DesiredSecret>,
) -> Digest {
    replica_hash_by(instance, component, |name| {
        secrets.get(name).map_or(0, |d| d.version)
    })
}

/// [`replica_hash`] with the version of each secret a node holds given by `version_of`
/// (0: not there): how the cloud, which knows what it delivered, computes the hash a
/// node's replica will report.
pub fn replica_hash_by(
    instance: &InstanceSpec,
    component: &Component,
    version_of: impl Fn(&crate::ids::Name) -> u64,
) -> Digest {
    let base = spec_hash(instance, component);
    if component.secrets.is_empty() {
        return base;
    }
    let mut parts: Vec<Vec<u8>> = vec![b"skerry.spec-hash.secrets.v1".to_vec(), base.0.to_vec()];
    for s in &component.secrets {
        let version = version_of(&s.name);
        parts.push(s.name.as_str().as_bytes().to_vec());
        parts.push(version.to_be_bytes().to_vec());
    }
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    Digest::of_parts(&refs)
}

/// How many replicas of a component the planner keeps: a service's `replicas`, one init
/// run, and no job runs (the scheduler's business).
pub(super) fn wanted_replicas(component: &Component) -> u32 {
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

pub(super) fn ready_with(
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
///
/// [`plan`]: super::plan
pub fn needs_network(spec: &InstanceSpec) -> bool {
    spec.manifest
        .components
        .iter()
        .any(|c| c.runtime() == RuntimeKind::Docker)
}
