//! Projections to response bodies.

use skerry_shared::event::NodeStatus;
use skerry_shared::manifest::{ComponentKind, Manifest};
use skerry_shared::report::ReplicaState;

use super::caller::Scope;
use super::dto::{
    AppVersionDto, ComponentSummary, EnvironmentDto, InstanceDto, NodeDto, ReplicaStatusDto,
    TargetDto, UnschedulableDto,
};
use crate::projections::{AppVersion, Environment, Instance, Node, Projections};
use crate::sync::Hub;
use crate::sync::replicas::Reported;

pub fn environment(p: &Projections, e: &Environment) -> EnvironmentDto {
    EnvironmentDto {
        name: e.name.to_string(),
        labels: e.labels.clone(),
        entries: e.entries.clone(),
        description: e.description.clone(),
        nodes: p
            .nodes
            .values()
            .filter(|n| n.envs.contains(&e.name))
            .map(|n| n.name.to_string())
            .collect(),
        instances: p
            .instances
            .values()
            .filter(|i| i.spec.env == e.name)
            .map(|i| i.spec.name.to_string())
            .collect(),
        created: e.created.to_rfc3339(),
    }
}

/// A node: its record from the projections, with lag and last-seen time from the hub.
/// The status is the projections' (it changes by events).
/// Of a node in several environments, a caller of `scope` sees only its own environments
/// and their instances.
pub fn node(p: &Projections, n: &Node, hub: &Hub, scope: &Scope) -> NodeDto {
    let live = hub.live(n.id);
    let acked = live.map_or(n.acked, |l| l.acked.max(n.acked));
    NodeDto {
        id: n.id.to_string(),
        name: n.name.to_string(),
        envs: n
            .envs
            .iter()
            .filter(|e| scope.sees_env(e.as_str()))
            .map(ToString::to_string)
            .collect(),
        labels: n.labels.clone(),
        address: n.address.clone(),
        profile: n.profile.clone(),
        status: n.status.to_string(),
        lag: n.node_seq.saturating_sub(acked),
        node_seq: n.node_seq,
        acked_node_seq: acked,
        last_seen: live
            .and_then(|l| l.last_seen)
            .or(n.last_seen)
            .map(|t| t.to_rfc3339()),
        enrolled: n.enrolled.to_rfc3339(),
        instances: p
            .instances_on(n.id)
            .filter(|i| scope.sees_instance(&i.spec))
            .map(|i| i.spec.name.to_string())
            .collect(),
    }
}

fn kind(k: ComponentKind) -> &'static str {
    match k {
        ComponentKind::Service => "service",
        ComponentKind::Init => "init",
        ComponentKind::Job => "job",
    }
}

pub fn components(m: &Manifest) -> Vec<ComponentSummary> {
    m.components
        .iter()
        .map(|c| ComponentSummary {
            name: c.name.to_string(),
            kind: kind(c.kind).to_owned(),
            runtime: c.runtime().to_string(),
            run: match (&c.image, &c.exec) {
                (Some(image), _) => image.clone(),
                (None, Some(exec)) => exec.join(" "),
                (None, None) => String::new(),
            },
            replicas: c.replicas(),
            depends_on: c.depends_on.iter().map(ToString::to_string).collect(),
        })
        .collect()
}

pub fn app_version(v: &AppVersion, created: bool, with_manifest: bool) -> AppVersionDto {
    AppVersionDto {
        app: v.manifest.app.to_string(),
        version: v.manifest.version.to_string(),
        description: v.manifest.description.clone(),
        digest: v.digest.to_hex(),
        published: v.published.to_rfc3339(),
        seq: v.seq,
        components: components(&v.manifest),
        created,
        manifest: with_manifest.then(|| v.manifest.clone()),
    }
}

/// The most replica rows one instance's view lists (`skerry status INSTANCE`); the rest
/// are counted in `status_omitted`. The replica count comes from a recorded manifest, so
/// the view must not allocate per it unbounded.
pub const MAX_STATUS_ROWS: usize = 10_000;

pub(super) fn node_name(p: &Projections, id: &skerry_shared::ids::NodeId) -> String {
    p.nodes
        .get(id)
        .map_or_else(|| id.to_string(), |n| n.name.to_string())
}

/// An instance, with each replica's latest report from the hub ("Pending" until its node
/// reports on it) and the time of that report. The replicas of a node that is `Abnormal`
/// (it stopped reporting) are marked stale: what they show is that old report.
pub fn instance(p: &Projections, i: &Instance, hub: &Hub) -> InstanceDto {
    let spec = &i.spec;
    let mut status = Vec::new();
    let mut omitted: u64 = 0;
    let reports: Vec<Vec<Reported>> = spec
        .nodes
        .iter()
        .map(|t| hub.instance_replicas(t.node, spec.name.as_str()))
        .collect();
    // Per component, per node, per replica; each node by the spec it runs (during a
    // rollout, some run another version).
    let mut order: Vec<(usize, usize)> = Vec::new();
    for (n, (t, reported)) in spec.nodes.iter().zip(&reports).enumerate() {
        let run = i.spec_on(t.node);
        for c in &run.manifest.components {
            let abnormal = p
                .nodes
                .get(&t.node)
                .is_some_and(|n| n.status == NodeStatus::Abnormal);
            for replica in 0..c.replicas() {
                if status.len() >= MAX_STATUS_ROWS {
                    omitted = omitted.saturating_add(u64::from(c.replicas() - replica));
                    break;
                }
                let found = reported.iter().find(|r| {
                    r.status.report.component == c.name && r.status.report.replica == replica
                });
                let seen = found.map(|r| &r.status);
                let report = seen.map(|s| &s.report);
                let at = spec
                    .manifest
                    .components
                    .iter()
                    .position(|m| m.name == c.name)
                    .unwrap_or(usize::MAX);
                order.push((at, n));
                status.push(ReplicaStatusDto {
                    version: run.version.to_string(),
                    node: node_name(p, &t.node),
                    node_id: t.node.to_string(),
                    component: c.name.to_string(),
                    kind: kind(c.kind).to_owned(),
                    replica,
                    // Until a node reports that it applied a stop or a start, its
                    // replicas show as Stopping or Pending, not as they were.
                    state: match report {
                        Some(r) if run.lifecycle.stopped && r.state != ReplicaState::Stopped => {
                            "Stopping".to_owned()
                        }
                        Some(r) if !run.lifecycle.stopped && r.state == ReplicaState::Stopped => {
                            "Pending".to_owned()
                        }
                        Some(r) => r.state.to_string(),
                        None if run.lifecycle.stopped => "Stopped".to_owned(),
                        None => "Pending".to_owned(),
                    },
                    restarts: report.map_or(0, |r| r.restarts),
                    last_exit: seen
                        .and_then(|s| s.last_exit.as_ref())
                        .map(|e| format!("{} at {}", e.reason, e.at)),
                    reason: report.and_then(|r| r.reason.clone()),
                    // A replica never reported on is `Pending`, which says so already.
                    stale: abnormal && found.is_some(),
                    reported: found.and_then(|r| r.at).map(|t| t.to_rfc3339()),
                    ports: report.map_or_else(Vec::new, |r| {
                        r.ports.iter().map(|(c, h)| format!("{c}:{h}")).collect()
                    }),
                });
            }
        }
    }
    // Component-major, as the instance's manifest lists them, then node, then replica (the
    // sort is stable).
    let mut keyed: Vec<((usize, usize), ReplicaStatusDto)> =
        order.into_iter().zip(status).collect();
    keyed.sort_by_key(|(k, _)| *k);
    let mut status: Vec<ReplicaStatusDto> = keyed.into_iter().map(|(_, r)| r).collect();
    for u in &spec.unschedulable {
        if status.len() >= MAX_STATUS_ROWS {
            omitted = omitted.saturating_add(1);
            continue;
        }
        status.push(ReplicaStatusDto {
            node: node_name(p, &u.node),
            node_id: u.node.to_string(),
            component: "*".to_owned(),
            kind: "-".to_owned(),
            replica: 0,
            state: "Unschedulable".to_owned(),
            restarts: 0,
            last_exit: None,
            reason: Some(u.reasons.join("; ")),
            version: spec.version.to_string(),
            stale: false,
            reported: None,
            ports: Vec::new(),
        });
    }
    InstanceDto {
        name: spec.name.to_string(),
        app: spec.app.to_string(),
        version: spec.version.to_string(),
        env: spec.env.to_string(),
        mode: "production".to_owned(),
        nodes: spec
            .nodes
            .iter()
            .map(|t| TargetDto {
                id: t.node.to_string(),
                name: node_name(p, &t.node),
                weight: t.weight,
            })
            .collect(),
        unschedulable: spec
            .unschedulable
            .iter()
            .map(|u| UnschedulableDto {
                id: u.node.to_string(),
                name: node_name(p, &u.node),
                reasons: u.reasons.clone(),
            })
            .collect(),
        selector: spec.selector.clone(),
        set: spec
            .overrides
            .iter()
            .map(|o| format!("{}.{}={}", o.component, o.var, o.value))
            .collect(),
        stopped: spec.lifecycle.stopped,
        stopped_on: spec
            .nodes
            .iter()
            .filter(|t| i.stopped_on(t.node))
            .map(|t| node_name(p, &t.node))
            .collect(),
        deployed: i.deployed.to_rfc3339(),
        seq: i.seq,
        status,
        status_omitted: (omitted > 0).then_some(omitted),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::Arc;

    use skerry_shared::clock::Timestamp;
    use skerry_shared::event::{InstanceMode, InstanceSpec, NodeTarget};
    use skerry_shared::ids::{Labels, Name, NodeId};
    use skerry_shared::manifest::Component;

    use super::*;
    use crate::engine::Engine;
    use crate::log::RedbLog;

    /// An instance with a count no validation kept small (as a read model of an older
    /// build might hold) lists at most `MAX_STATUS_ROWS` rows and counts the rest.
    #[test]
    fn an_instance_of_four_billion_replicas_lists_a_bounded_number_of_rows() {
        let dir = tempfile::tempdir().unwrap();
        let log = RedbLog::open(&dir.path().join("events.redb"), 1 << 20).unwrap();
        let engine = Engine::start(Arc::new(log)).unwrap();
        let hub = Hub::new(engine.clone());
        let name = |s: &str| Name::parse(s).unwrap();
        let manifest = Manifest {
            app: name("weather"),
            version: "1.0.0".parse().unwrap(),
            description: None,
            platforms: None,
            components: vec![Component {
                replicas: Some(u32::MAX),
                ..Component::image(name("api"), "weather:1")
            }],
        };
        let big = Instance::new(
            InstanceSpec {
                name: name("web"),
                env: name("prod"),
                app: manifest.app.clone(),
                version: manifest.version.clone(),
                manifest,
                nodes: vec![NodeTarget {
                    node: NodeId(uuid::Uuid::from_u128(1)),
                    weight: 1,
                }],
                unschedulable: vec![],
                selector: Labels::new(),
                overrides: vec![],
                mode: InstanceMode::Production,
                targeting: skerry_shared::event::Targeting::Named,
                lifecycle: Default::default(),
            },
            Timestamp(0),
            1,
        );
        let dto = instance(&Projections::default(), &big, &hub);
        assert_eq!(dto.status.len(), MAX_STATUS_ROWS);
        assert_eq!(
            dto.status_omitted,
            Some(u64::from(u32::MAX) - MAX_STATUS_ROWS as u64)
        );
        engine.close();
    }
}
