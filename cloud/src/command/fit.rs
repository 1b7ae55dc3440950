//! Fit: whether a node can take an instance.
//!
//! A node does not fit when its firmware profile's architecture is not among the
//! manifest's `platforms` (when the manifest names any), when it lacks a runtime a
//! component needs, when the instance's requests exceed the node's free capacity (its
//! firmware profile's CPU and memory less the requests of the instances already on it,
//! [`room`]), or when a fixed host port is taken by another instance on it. Requests count for services and jobs, times their replicas;
//! `init` components run to completion before the services start, so they do not hold
//! capacity.

use std::collections::BTreeSet;

use skerry_shared::manifest::{ComponentKind, Manifest, Platform, RuntimeKind};

use crate::projections::{Node, Projections};

/// What an instance asks of a node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Demand {
    pub millicores: u64,
    pub memory: u64,
    pub runtimes: BTreeSet<RuntimeKind>,
    /// Fixed host ports, with the component that asks for each.
    pub host_ports: Vec<(u16, String)>,
}

/// The demand of one manifest.
pub fn demand(manifest: &Manifest) -> Demand {
    let mut d = Demand::default();
    for c in &manifest.components {
        d.runtimes.insert(c.runtime());
        if c.kind != ComponentKind::Init {
            let replicas = u64::from(c.replicas());
            // Saturating: a sum past u64 fits no node, and must not wrap to one that does.
            d.millicores = d.millicores.saturating_add(
                c.cpu_request()
                    .map_or(0, |q| q.millicores())
                    .saturating_mul(replicas),
            );
            d.memory = d.memory.saturating_add(
                c.memory_request()
                    .map_or(0, |q| q.bytes())
                    .saturating_mul(replicas),
            );
        }
        for port in &c.ports {
            if let Some(h) = port.host {
                d.host_ports.push((h, c.name.to_string()));
            }
        }
    }
    d
}

fn mem(bytes: u64) -> String {
    skerry_shared::quantity::Memory::from_bytes(bytes).to_string()
}

/// One resource of a node: what an instance needs of it, what is free (the capacity less
/// what the other instances on the node request), and the capacity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Amount {
    pub needed: u64,
    pub free: u64,
    pub capacity: u64,
}

impl Amount {
    pub fn fits(&self) -> bool {
        self.needed <= self.free
    }
}

/// A fixed host port an instance asks for, and the instance that holds it already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortUse {
    pub port: u16,
    pub component: String,
    pub in_use_by: Option<String>,
}

/// What an instance asks of a node against what the node has left: CPU in millicores,
/// memory in bytes, and each fixed host port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Room {
    pub cpu: Amount,
    pub memory: Amount,
    pub host_ports: Vec<PortUse>,
}

/// The room `manifest` would have on `node`. `except` names an instance whose current
/// demand is not counted (the one being replaced).
pub fn room(p: &Projections, node: &Node, manifest: &Manifest, except: Option<&str>) -> Room {
    let want = demand(manifest);
    let mut used = Demand::default();
    let mut taken: Vec<(u16, String)> = Vec::new();
    for i in p.instances_on(node.id) {
        if Some(i.spec.name.as_str()) == except {
            continue;
        }
        // What the node runs of it: another version while a rollout has not reached it.
        let runs = i.runs.get(&node.id).map_or(&i.spec, |spec| &**spec);
        let d = demand(&runs.manifest);
        used.millicores = used.millicores.saturating_add(d.millicores);
        used.memory = used.memory.saturating_add(d.memory);
        taken.extend(
            d.host_ports
                .into_iter()
                .map(|(port, _)| (port, i.spec.name.to_string())),
        );
    }
    let cpu = node.profile.capacity_millicores();
    let memory = node.profile.memory.bytes();
    Room {
        cpu: Amount {
            needed: want.millicores,
            free: cpu.saturating_sub(used.millicores),
            capacity: cpu,
        },
        memory: Amount {
            needed: want.memory,
            free: memory.saturating_sub(used.memory),
            capacity: memory,
        },
        host_ports: want
            .host_ports
            .into_iter()
            .map(|(port, component)| PortUse {
                port,
                component,
                in_use_by: taken
                    .iter()
                    .find(|(p, _)| *p == port)
                    .map(|(_, other)| other.clone()),
            })
            .collect(),
    }
}

/// Why `node`'s architecture is not among `manifest`'s platforms, if it is not.
fn platform_shortfall(node: &Node, manifest: &Manifest) -> Option<String> {
    let arch = node.profile.arch;
    if manifest.runs_on(arch) {
        return None;
    }
    let built_for: Vec<&str> = manifest
        .platforms
        .iter()
        .flatten()
        .map(|p| p.as_str())
        .collect();
    Some(format!(
        "platform: the node is {arch} ({}); the app is built for {}",
        Platform::of(arch),
        built_for.join(", ")
    ))
}

/// Every reason `node` cannot take `manifest`; empty when it fits. `except` names an
/// instance whose current demand is not counted (the one being replaced).
pub fn shortfalls(
    p: &Projections,
    node: &Node,
    manifest: &Manifest,
    except: Option<&str>,
) -> Vec<String> {
    shortfalls_in(node, manifest, &room(p, node, manifest, except))
}

/// [`shortfalls`], the room already measured.
pub fn shortfalls_in(node: &Node, manifest: &Manifest, room: &Room) -> Vec<String> {
    let mut out: Vec<String> = platform_shortfall(node, manifest).into_iter().collect();
    for rt in &demand(manifest).runtimes {
        if !node.profile.supports(*rt) {
            out.push(format!(
                "runtime {rt} is missing (profile {} has {})",
                node.profile.name,
                node.profile
                    .runtimes
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    let Room {
        cpu,
        memory,
        host_ports,
    } = room;
    if !cpu.fits() {
        out.push(format!(
            "cpu: requests {}m, {}m free of {}m",
            cpu.needed, cpu.free, cpu.capacity
        ));
    }
    if !memory.fits() {
        out.push(format!(
            "memory: requests {}, {} free of {}",
            mem(memory.needed),
            mem(memory.free),
            mem(memory.capacity)
        ));
    }
    for port in host_ports {
        if let Some(other) = &port.in_use_by {
            out.push(format!(
                "host port {} (component {}) is in use by instance {other}",
                port.port, port.component
            ));
        }
    }
    out
}

#[cfg(test)]
pub(super) mod tests {
    //! Fit's tests, and the projections the tests of fit and preview start from.
    #![allow(clippy::unwrap_used)]

    use skerry_shared::clock::Timestamp;
    use skerry_shared::event::{
        Actor, Event, EventPayload, InstanceMode, InstanceSpec, NodeTarget, Targeting,
    };
    use skerry_shared::hash::Digest;
    use skerry_shared::ids::{Labels, Name, NodeId, TokenId};
    use skerry_shared::manifest::{
        Component, CpuRange, Manifest, MemoryRange, Resources, parse_manifest,
    };
    use skerry_shared::quantity::{Cpu, Memory};

    use super::{demand, room, shortfalls};
    use crate::projections::Projections;

    pub(crate) fn n(s: &str) -> Name {
        Name::parse(s).unwrap()
    }

    fn apply(p: &mut Projections, payload: EventPayload) {
        let seq = p.head.next_seq;
        let e = Event::seal(
            seq,
            Timestamp(seq as i64),
            Actor::Cloud,
            payload,
            vec![],
            p.head.last_hash,
        )
        .unwrap();
        p.apply(&e);
    }

    /// Projections with environment `plant` and one node `gw` of the builtin `profile`.
    pub(crate) fn fixture(profile: &str) -> (Projections, NodeId) {
        let mut p = Projections::default();
        apply(
            &mut p,
            EventPayload::EnvironmentCreated {
                name: n("plant"),
                labels: Labels::new(),
                entries: vec![],
            },
        );
        let node = NodeId::random();
        apply(
            &mut p,
            EventPayload::NodeEnrolled {
                node,
                name: n("gw"),
                env: n("plant"),
                address: "127.0.0.1".into(),
                profile: Box::new(skerry_shared::profile::builtin(profile).unwrap()),
                token: TokenId::random(),
                certificate: Digest::ZERO,
            },
        );
        (p, node)
    }

    /// A checked manifest of app `weather` from the YAML after its `version` line.
    pub(crate) fn manifest(version: &str, rest: &str) -> Manifest {
        parse_manifest(&format!("app: weather\nversion: {version}\n{rest}")).unwrap()
    }

    /// Instance `name` of `manifest` on `node`, as a deploy records it.
    pub(crate) fn spec(name: &str, manifest: &Manifest, node: NodeId) -> InstanceSpec {
        InstanceSpec {
            name: n(name),
            env: n("plant"),
            app: manifest.app.clone(),
            version: manifest.version.clone(),
            manifest: manifest.clone(),
            nodes: vec![NodeTarget { node, weight: 1 }],
            unschedulable: vec![],
            selector: Labels::new(),
            overrides: vec![],
            mode: InstanceMode::Production,
            targeting: Targeting::Named,
            lifecycle: Default::default(),
        }
    }

    /// Publishes the spec's version (once) and deploys it.
    pub(crate) fn deployed(p: &mut Projections, spec: &InstanceSpec) {
        if p.app_version(spec.app.as_str(), &spec.version).is_none() {
            apply(
                p,
                EventPayload::AppVersionPublished {
                    digest: Digest::of(&postcard::to_stdvec(&spec.manifest).unwrap()),
                    manifest: spec.manifest.clone(),
                },
            );
        }
        apply(
            p,
            EventPayload::InstanceDeployed {
                instance: Box::new(spec.clone()),
            },
        );
        assert!(p.instances.contains_key(spec.name.as_str()));
    }

    const WEB: &str = "components:\n  - name: web\n    image: web:1\n";

    #[test]
    fn a_node_of_another_platform_does_not_fit() {
        let (p, id) = fixture("raspberry-pi-4");
        let node = &p.nodes[&id];
        let amd64 = manifest("1.0.0", &format!("platforms: [linux/amd64]\n{WEB}"));
        assert_eq!(
            shortfalls(&p, node, &amd64, None),
            ["platform: the node is aarch64 (linux/arm64); the app is built for linux/amd64"]
        );
        let two = manifest(
            "1.0.0",
            &format!("platforms: [linux/amd64, linux/arm/v7]\n{WEB}"),
        );
        assert_eq!(
            shortfalls(&p, node, &two, None),
            [
                "platform: the node is aarch64 (linux/arm64); the app is built for linux/amd64, linux/arm/v7"
            ]
        );
        let arm64 = manifest(
            "1.0.0",
            &format!("platforms: [linux/amd64, linux/arm64]\n{WEB}"),
        );
        assert!(shortfalls(&p, node, &arm64, None).is_empty());
        let any = manifest("1.0.0", WEB);
        assert!(shortfalls(&p, node, &any, None).is_empty());
    }

    #[test]
    fn every_shortfall_is_listed_platform_first() {
        let (p, id) = fixture("orange-pi-zero");
        let node = &p.nodes[&id];
        let m = manifest(
            "1.0.0",
            "platforms: [linux/amd64]\ncomponents:\n  - name: web\n    image: web:1\n    \
             resources: { cpu: { request: 5 }, memory: { request: 300Mi } }\n",
        );
        let reasons = shortfalls(&p, node, &m, None);
        assert_eq!(reasons.len(), 4, "{reasons:?}");
        assert!(reasons[0].starts_with("platform: the node is armv7 (linux/arm/v7)"));
        assert_eq!(
            reasons[1],
            "runtime docker is missing (profile orange-pi-zero has process)"
        );
        assert_eq!(reasons[2], "cpu: requests 5000m, 4000m free of 4000m");
        assert_eq!(reasons[3], "memory: requests 300Mi, 256Mi free of 256Mi");
    }

    #[test]
    fn the_instance_replaced_does_not_count_against_itself() {
        let (mut p, id) = fixture("x86-64-host");
        let m = manifest(
            "1.0.0",
            "components:\n  - name: web\n    image: web:1\n    \
             resources: { memory: { request: 5Gi } }\n    \
             ports: [ { container: 80, host: 18080, expose: nodeport } ]\n",
        );
        deployed(&mut p, &spec("north", &m, id));
        let node = &p.nodes[&id];
        let r = room(&p, node, &m, None);
        assert_eq!(r.memory.free, 3 << 30);
        assert_eq!(r.host_ports[0].in_use_by.as_deref(), Some("north"));
        assert_eq!(shortfalls(&p, node, &m, None).len(), 2);
        let r = room(&p, node, &m, Some("north"));
        assert_eq!((r.memory.needed, r.memory.free), (5 << 30, 8 << 30));
        assert_eq!(r.cpu.capacity, 4000);
        assert_eq!(r.host_ports[0].in_use_by, None);
        assert!(shortfalls(&p, node, &m, Some("north")).is_empty());
    }

    #[test]
    fn demand_saturates_instead_of_wrapping() {
        let Ok(name) = Name::parse("c") else {
            panic!("a name")
        };
        let big = Component {
            replicas: Some(u32::MAX),
            resources: Some(Resources {
                cpu: Some(CpuRange {
                    request: Some(Cpu::from_millicores(u64::MAX / 2)),
                    limit: None,
                }),
                memory: Some(MemoryRange {
                    request: Some(Memory::from_bytes(u64::MAX / 2)),
                    limit: None,
                }),
            }),
            ..Component::image(name, "i")
        };
        let Ok(app) = Name::parse("a") else {
            panic!("a name")
        };
        let m = Manifest {
            app,
            version: semver::Version::new(1, 0, 0),
            description: None,
            platforms: None,
            components: vec![big.clone(), big],
        };
        let d = demand(&m);
        assert_eq!(d.millicores, u64::MAX);
        assert_eq!(d.memory, u64::MAX);
    }
}
