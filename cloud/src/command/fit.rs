//! Fit: whether a node can take an instance.
//!
//! A node does not fit when it lacks a runtime a component needs, when the instance's
//! requests exceed the node's free capacity (its firmware profile's CPU and memory less
//! the requests of the instances already on it), or when a fixed host port is taken by
//! another instance on it. Requests count for services and jobs, times their replicas;
//! `init` components run to completion before the services start, so they do not hold
//! capacity.

use std::collections::BTreeSet;

use skerry_shared::manifest::{ComponentKind, Manifest, RuntimeKind};

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

/// Every reason `node` cannot take `manifest`; empty when it fits. `except` names an
/// instance whose current demand is not counted (the one being replaced).
pub fn shortfalls(
    p: &Projections,
    node: &Node,
    manifest: &Manifest,
    except: Option<&str>,
) -> Vec<String> {
    let want = demand(manifest);
    let mut out = Vec::new();
    for rt in &want.runtimes {
        if !node
            .profile
            .runtimes
            .iter()
            .any(|r| r.to_string() == rt.to_string())
        {
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
    let mut used = Demand::default();
    let mut taken: Vec<(u16, String)> = Vec::new();
    for i in p.instances_on(node.id) {
        if Some(i.spec.name.as_str()) == except {
            continue;
        }
        let d = demand(&i.spec.manifest);
        used.millicores = used.millicores.saturating_add(d.millicores);
        used.memory = used.memory.saturating_add(d.memory);
        taken.extend(
            d.host_ports
                .into_iter()
                .map(|(port, _)| (port, i.spec.name.to_string())),
        );
    }
    let cpu_cap = node.profile.capacity_millicores();
    let cpu_free = cpu_cap.saturating_sub(used.millicores);
    if want.millicores > cpu_free {
        out.push(format!(
            "cpu: requests {}m, {}m free of {}m",
            want.millicores, cpu_free, cpu_cap
        ));
    }
    let mem_cap = node.profile.memory.bytes();
    let mem_free = mem_cap.saturating_sub(used.memory);
    if want.memory > mem_free {
        out.push(format!(
            "memory: requests {}, {} free of {}",
            mem(want.memory),
            mem(mem_free),
            mem(mem_cap)
        ));
    }
    for (port, component) in &want.host_ports {
        if let Some((_, other)) = taken.iter().find(|(p, _)| p == port) {
            out.push(format!(
                "host port {port} (component {component}) is in use by instance {other}"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use skerry_shared::ids::Name;
    use skerry_shared::manifest::{Component, CpuRange, Manifest, MemoryRange, Resources};
    use skerry_shared::quantity::{Cpu, Memory};

    use super::demand;

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
