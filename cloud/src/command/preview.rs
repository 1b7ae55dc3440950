//! Preview: what a deploy or an upgrade would do on one node, for a dry run.
//!
//! [`preview`] compares the instance a node runs now (`current`) with the one it would run
//! (`next`) and says, without recording anything:
//! - the room on the node ([`Room`]): CPU (millicores) and memory (bytes) needed, free and
//!   the capacity, and each fixed host port with the instance that holds it, if any; the
//!   instance being replaced does not count against itself;
//! - the shortfalls, as [`fit`](super::fit) words them (empty when it fits);
//! - the replicas created, replaced or removed, each a container or a process named
//!   `INSTANCE/COMPONENT.REPLICA`. A replica whose component and index are in both and
//!   whose [`spec_hash`] is the same is kept, and not listed; one whose hash changed is
//!   replaced (one that moves between container and process is removed and created);
//!   one whose component or index is gone is removed.
//!
//! A deploy has no `current` (everything is created); an upgrade has both; a node that
//! leaves has no `next`. Jobs are not listed: a job runs on its schedule, not because of a
//! deploy (its requests do count in the room). The changes of one node are bounded by
//! the manifest's: at most 2 × `MAX_COMPONENTS` × `MAX_REPLICAS` (8,192) entries.

use std::fmt;

use skerry_shared::event::InstanceSpec;
use skerry_shared::ids::NodeId;
use skerry_shared::manifest::{Component, ComponentKind, RuntimeKind};
use skerry_shared::planner::spec_hash;

use super::fit::{Room, room, shortfalls_in};
use crate::projections::{Node, Projections};

/// What one node would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePreview {
    pub node: NodeId,
    /// What `next` needs of the node and what the node has free; zero needs when there is
    /// no `next`.
    pub room: Room,
    /// Why the node cannot take `next`; empty when it can (or there is no `next`).
    pub shortfalls: Vec<String>,
    /// The replicas created, replaced or removed, in the order of the components (those of
    /// `next`, then those only in `current`) and of their indexes.
    pub changes: Vec<Change>,
}

/// What happens to one replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    Create,
    Replace,
    Remove,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Create => "create",
            ChangeKind::Replace => "replace",
            ChangeKind::Remove => "remove",
        }
    }
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One replica created, replaced or removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    /// Where it runs: a container (`docker`) or a process. A replaced replica's is the
    /// new one's (the same as the old one's).
    pub runtime: RuntimeKind,
    pub component_kind: ComponentKind,
    pub instance: String,
    pub component: String,
    pub replica: u32,
}

impl Change {
    /// `INSTANCE/COMPONENT.REPLICA`: `weather/db.0`.
    pub fn replica_name(&self) -> String {
        format!("{}/{}.{}", self.instance, self.component, self.replica)
    }

    /// `container` or `process`.
    pub fn what(&self) -> &'static str {
        match self.runtime {
            RuntimeKind::Docker => "container",
            RuntimeKind::Process => "process",
        }
    }
}

impl fmt::Display for Change {
    /// `create container weather/db.0`, with ` (init)` for an init component.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.kind, self.what(), self.replica_name())?;
        if self.component_kind == ComponentKind::Init {
            f.write_str(" (init)")?;
        }
        Ok(())
    }
}

/// What `node` would do to go from `current` to `next` (see the module's doc). Pure: it
/// reads the projections and records nothing.
pub fn preview(
    p: &Projections,
    node: &Node,
    current: Option<&InstanceSpec>,
    next: Option<&InstanceSpec>,
) -> NodePreview {
    // The instance being replaced does not count against itself.
    let except = current.or(next).map(|i| i.name.as_str());
    let (room, shortfalls) = match (current, next) {
        (_, Some(next)) => {
            let room = room(p, node, &next.manifest, except);
            let shortfalls = shortfalls_in(node, &next.manifest, &room);
            (room, shortfalls)
        }
        // Nothing needed: what is free, and the capacity.
        (Some(current), None) => {
            let mut left = room(p, node, &current.manifest, except);
            left.cpu.needed = 0;
            left.memory.needed = 0;
            left.host_ports.clear();
            (left, Vec::new())
        }
        (None, None) => (Room::default(), Vec::new()),
    };
    NodePreview {
        node: node.id,
        room,
        shortfalls,
        changes: changes(current, next),
    }
}

/// The replicas of each component to run: every kind but jobs.
fn runs(c: &Component) -> bool {
    c.kind != ComponentKind::Job
}

fn change(kind: ChangeKind, spec: &InstanceSpec, c: &Component, replica: u32) -> Change {
    Change {
        kind,
        runtime: c.runtime(),
        component_kind: c.kind,
        instance: spec.name.to_string(),
        component: c.name.to_string(),
        replica,
    }
}

/// The replicas created, replaced and removed from `current` to `next`. A stopped spec
/// runs no replica.
fn changes(current: Option<&InstanceSpec>, next: Option<&InstanceSpec>) -> Vec<Change> {
    let current = current.filter(|s| !s.lifecycle.stopped);
    let next = next.filter(|s| !s.lifecycle.stopped);
    let mut out = Vec::new();
    let old_of = |name: &str| {
        current.and_then(|spec| {
            spec.manifest
                .component(name)
                .filter(|c| runs(c))
                .map(|c| (spec, c))
        })
    };
    if let Some(next) = next {
        for c in next.manifest.components.iter().filter(|c| runs(c)) {
            let old = old_of(c.name.as_str());
            let hash = spec_hash(next, c);
            let same = old.is_some_and(|(spec, o)| spec_hash(spec, o) == hash);
            let old_replicas = old.map_or(0, |(_, o)| o.replicas());
            for r in 0..c.replicas() {
                match old {
                    Some(_) if r < old_replicas && same => {}
                    Some((spec, o)) if r < old_replicas && o.runtime() != c.runtime() => {
                        out.push(change(ChangeKind::Remove, spec, o, r));
                        out.push(change(ChangeKind::Create, next, c, r));
                    }
                    Some(_) if r < old_replicas => {
                        out.push(change(ChangeKind::Replace, next, c, r));
                    }
                    _ => out.push(change(ChangeKind::Create, next, c, r)),
                }
            }
            if let Some((spec, o)) = old {
                for r in c.replicas()..old_replicas {
                    out.push(change(ChangeKind::Remove, spec, o, r));
                }
            }
        }
    }
    if let Some(current) = current {
        let kept = |name: &str| {
            next.and_then(|n| n.manifest.component(name))
                .is_some_and(runs)
        };
        for c in current.manifest.components.iter().filter(|c| runs(c)) {
            if !kept(c.name.as_str()) {
                for r in 0..c.replicas() {
                    out.push(change(ChangeKind::Remove, current, c, r));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use skerry_shared::event::EnvOverride;
    use skerry_shared::manifest::RuntimeKind;

    use super::{ChangeKind, preview};
    use crate::command::fit::tests::{deployed, fixture, manifest, n, spec};

    const V1: &str = "components:
  - name: migrate
    kind: init
    image: db:1
  - name: db
    image: db:1
    resources: { cpu: { request: 250m }, memory: { request: 64Mi } }
    ports: [ { container: 6379, host: 16379, expose: nodeport } ]
  - name: api
    image: api:1
    replicas: 2
    resources: { memory: { request: 32Mi } }
  - name: agent
    exec: [/usr/bin/agent]
  - name: cleanup
    kind: job
    image: db:1
    schedule: '*/5 * * * *'
";

    fn listed(changes: &[super::Change]) -> Vec<String> {
        changes.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_deploy_creates_every_replica_but_jobs_and_shows_the_room() {
        let (p, id) = fixture("x86-64-host");
        let next = spec("north", &manifest("1.0.0", V1), id);
        let view = preview(&p, &p.nodes[&id], None, Some(&next));
        assert_eq!(
            listed(&view.changes),
            [
                "create container north/migrate.0 (init)",
                "create container north/db.0",
                "create container north/api.0",
                "create container north/api.1",
                "create process north/agent.0",
            ]
        );
        assert_eq!(view.changes[4].runtime, RuntimeKind::Process);
        assert_eq!(view.changes[1].replica_name(), "north/db.0");
        assert!(view.shortfalls.is_empty());
        assert_eq!(
            (
                view.room.cpu.needed,
                view.room.cpu.free,
                view.room.cpu.capacity
            ),
            (250, 4000, 4000)
        );
        assert_eq!(view.room.memory.needed, 128 << 20);
        assert_eq!(view.room.memory.free, 8 << 30);
        assert_eq!(view.room.host_ports.len(), 1);
        assert_eq!(view.room.host_ports[0].port, 16379);
        assert_eq!(view.room.host_ports[0].in_use_by, None);
    }

    #[test]
    fn an_upgrade_replaces_what_changed_and_removes_what_is_gone() {
        let (mut p, id) = fixture("x86-64-host");
        let mut current = spec("north", &manifest("1.0.0", V1), id);
        // The same version with other settings: only what changed is replaced.
        current.overrides.clear();
        deployed(&mut p, &current);
        let mut next = current.clone();
        next.overrides.push(EnvOverride {
            component: n("db"),
            var: "TZ".into(),
            value: "UTC".into(),
        });
        // api goes from 2 replicas to 1 (its definition changed, so its replica 0 is
        // replaced too), agent from a process to a container.
        let v2 = V1
            .replace("replicas: 2", "replicas: 1")
            .replace("exec: [/usr/bin/agent]", "image: agent:1");
        next.manifest = manifest("1.0.0", &v2);
        let view = preview(&p, &p.nodes[&id], Some(&current), Some(&next));
        assert_eq!(
            listed(&view.changes),
            [
                "replace container north/db.0",
                "replace container north/api.0",
                "remove container north/api.1",
                "remove process north/agent.0",
                "create container north/agent.0",
            ]
        );
        // The instance replaced does not count against itself: its host port is free and
        // its requests are not taken from what is free.
        assert!(view.shortfalls.is_empty(), "{:?}", view.shortfalls);
        assert_eq!(view.room.host_ports[0].in_use_by, None);
        assert_eq!(view.room.cpu.free, 4000);
        // Another version replaces every replica (the version is in the spec hash); a
        // component left out is removed.
        let v3 = manifest(
            "2.0.0",
            &V1.replace("  - name: agent\n    exec: [/usr/bin/agent]\n", ""),
        );
        let mut upgraded = current.clone();
        upgraded.version = v3.version.clone();
        upgraded.manifest = v3;
        let view = preview(&p, &p.nodes[&id], Some(&current), Some(&upgraded));
        let kinds: Vec<ChangeKind> = view.changes.iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            [
                ChangeKind::Replace,
                ChangeKind::Replace,
                ChangeKind::Replace,
                ChangeKind::Replace,
                ChangeKind::Remove,
            ]
        );
        assert_eq!(view.changes[4].to_string(), "remove process north/agent.0");
        // Nothing to run there any more: everything is removed, nothing is needed.
        let view = preview(&p, &p.nodes[&id], Some(&current), None);
        assert_eq!(view.changes.len(), 5);
        assert!(view.changes.iter().all(|c| c.kind == ChangeKind::Remove));
        assert_eq!(
            (view.room.memory.needed, view.room.memory.free),
            (0, 8 << 30)
        );
    }

    #[test]
    fn another_instance_counts_and_a_node_that_does_not_fit_says_why() {
        let (mut p, id) = fixture("x86-64-host");
        let other = spec("south", &manifest("1.0.0", V1), id);
        deployed(&mut p, &other);
        let next = spec("north", &manifest("1.0.0", V1), id);
        let view = preview(&p, &p.nodes[&id], None, Some(&next));
        assert_eq!(view.room.cpu.free, 3750);
        assert_eq!(view.room.memory.free, (8 << 30) - (128 << 20));
        assert_eq!(view.room.host_ports[0].in_use_by.as_deref(), Some("south"));
        assert_eq!(
            view.shortfalls,
            ["host port 16379 (component db) is in use by instance south"]
        );
        let (p, id) = fixture("orange-pi-zero");
        let armv7_only = manifest("1.0.0", &format!("platforms: [linux/arm64]\n{V1}"));
        let view = preview(
            &p,
            &p.nodes[&id],
            None,
            Some(&spec("north", &armv7_only, id)),
        );
        assert_eq!(
            view.shortfalls[0],
            "platform: the node is armv7 (linux/arm/v7); the app is built for linux/arm64"
        );
        assert!(view.shortfalls[1].starts_with("runtime docker is missing"));
    }
}
