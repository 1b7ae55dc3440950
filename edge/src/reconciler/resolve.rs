//! From desired state to the [`ReplicaSpec`]s the runtimes run: the effective
//! environment, host ports (fixed, or assigned from 30000-32767 and remembered), named
//! storage and log directories.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use skerry_shared::event::InstanceSpec;
use skerry_shared::ids::NodeId;
use skerry_shared::manifest::Component;
use skerry_shared::planner::{ReplicaKey, spec_hash};

use crate::journal::{MemoChange, MemoChanges, Memos, NodePortKey};
use crate::runtime::{PortBinding, ReplicaSpec, StorageMount};

/// The range `nodeport` and `loadbalancer` host ports are taken from when left out.
pub const NODEPORT_RANGE: std::ops::RangeInclusive<u16> = 30000..=32767;

/// The host port for a published container port without a fixed one: the one it had
/// while that is still free on the host, or else the lowest port in the range that no
/// replica of this agent holds, no desired instance fixes and `taken` does not say is in
/// use on the host (recorded in `memos` and `changes`). `None` when the range is
/// exhausted.
pub fn host_port(
    key: NodePortKey,
    fixed: &BTreeSet<u16>,
    taken: &dyn Fn(u16) -> bool,
    memos: &mut Memos,
    changes: &mut MemoChanges,
) -> Option<u16> {
    if let Some(p) = memos.nodeports.get(&key) {
        if !taken(*p) {
            return Some(*p);
        }
        tracing::info!(replica = %key.replica, port = *p, "its host port is in use on the host now; choosing another");
    }
    let used = memos.host_ports();
    let port = NODEPORT_RANGE
        .clone()
        .find(|p| !used.contains(p) && !fixed.contains(p) && !taken(*p))?;
    let change = MemoChange::NodePort {
        port: key,
        host_port: port,
    };
    memos.apply(&change);
    changes.push(change);
    Some(port)
}

/// Every fixed host port that desired instances ask for.
pub fn fixed_ports<'a>(instances: impl Iterator<Item = &'a InstanceSpec>) -> BTreeSet<u16> {
    instances
        .flat_map(|i| i.manifest.components.iter())
        .flat_map(|c| c.ports.iter().filter_map(|p| p.host))
        .collect()
}

/// The directory on the node that backs a component's `log_dir`.
pub fn log_dir_host(data: &Path, key: &ReplicaKey) -> std::path::PathBuf {
    data.join("logs")
        .join(key.instance.as_str())
        .join(format!("{}-{}", key.component, key.replica))
}

/// What resolving a replica depends on beyond the instance.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub node: NodeId,
    /// Fixed host ports of every desired instance (never handed out as node ports).
    pub fixed: &'a BTreeSet<u16>,
    /// Whether a host port is in use on the host now (see [`super::ports`]).
    pub taken: &'a dyn Fn(u16) -> bool,
    /// The agent's data directory.
    pub data: &'a Path,
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("node", &self.node)
            .field("fixed", &self.fixed)
            .field("data", &self.data)
            .finish_non_exhaustive()
    }
}

/// Resolves one replica of `component` in `instance`.
pub fn replica_spec(
    ctx: Context<'_>,
    instance: &InstanceSpec,
    component: &Component,
    replica: u32,
    memos: &mut Memos,
    changes: &mut MemoChanges,
) -> Result<ReplicaSpec, String> {
    let Context {
        node,
        fixed,
        taken,
        data,
    } = ctx;
    let key = ReplicaKey::new(&instance.name, &component.name, replica);
    let mut env: BTreeMap<String, String> = instance
        .env_of(component.name.as_str())
        .into_iter()
        .collect();
    env.insert("SKERRY_INSTANCE".into(), instance.name.to_string());
    env.insert("SKERRY_COMPONENT".into(), component.name.to_string());
    env.insert("SKERRY_REPLICA".into(), replica.to_string());
    env.insert("SKERRY_NODE".into(), node.to_string());
    let mut bindings = Vec::new();
    for p in &component.ports {
        let host = match (p.host, p.expose.published()) {
            (Some(h), _) => Some(h),
            (None, false) => None,
            (None, true) => {
                let pk = NodePortKey {
                    replica: key.clone(),
                    container_port: p.container,
                };
                Some(host_port(pk, fixed, taken, memos, changes).ok_or_else(|| {
                    format!(
                        "no free host port left in {}-{}",
                        NODEPORT_RANGE.start(),
                        NODEPORT_RANGE.end()
                    )
                })?)
            }
        };
        bindings.push(PortBinding {
            container: p.container,
            host,
        });
    }
    let storage = component
        .storage
        .iter()
        .map(|s| StorageMount {
            name: s.name.clone(),
            container: component.image.is_some().then(|| s.container.clone()),
        })
        .collect();
    Ok(ReplicaSpec {
        node,
        spec_hash: spec_hash(instance, component),
        key: key.clone(),
        component: component.clone(),
        env,
        ports: bindings,
        storage,
        // A container's log_dir is backed by a directory of the agent's; an exec
        // component's log_dir is a host path already.
        log_dir_host: component.log_dir.as_ref().map(|dir| {
            if component.exec.is_some() {
                std::path::PathBuf::from(dir)
            } else {
                log_dir_host(data, &key)
            }
        }),
        secrets: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use skerry_shared::ids::Name;

    use super::*;

    fn key(instance: &str, replica: u32) -> NodePortKey {
        let n = |s: &str| Name::parse(s).unwrap();
        NodePortKey {
            replica: ReplicaKey::new(&n(instance), &n("web"), replica),
            container_port: 80,
        }
    }

    #[test]
    fn nodeports_are_stable_and_skip_fixed_ones() {
        let (mut memos, mut changes) = (Memos::default(), MemoChanges::new());
        let fixed = BTreeSet::from([30000]);
        let free = |_: u16| false;
        let a = host_port(key("i", 0), &fixed, &free, &mut memos, &mut changes);
        let b = host_port(key("i", 1), &fixed, &free, &mut memos, &mut changes);
        assert_eq!((a, b), (Some(30001), Some(30002)));
        assert_eq!(
            host_port(key("i", 0), &fixed, &free, &mut memos, &mut changes),
            Some(30001)
        );
        assert_eq!(changes.changes.len(), 2);
    }

    #[test]
    fn ports_in_use_on_the_host_are_skipped_and_a_taken_one_is_chosen_again() {
        let (mut memos, mut changes) = (Memos::default(), MemoChanges::new());
        let fixed = BTreeSet::new();
        // Another agent on the same engine holds 30000 and 30001.
        let other = |p: u16| p == 30000 || p == 30001;
        let a = host_port(key("i", 0), &fixed, &other, &mut memos, &mut changes);
        assert_eq!(a, Some(30002));
        // Later 30002 is taken too (the other agent came first after a restart).
        let more = |p: u16| p <= 30002;
        let again = host_port(key("i", 0), &fixed, &more, &mut memos, &mut changes);
        assert_eq!(again, Some(30003));
        assert_eq!(memos.nodeports.get(&key("i", 0)), Some(&30003));
        let none = |_: u16| true;
        assert_eq!(
            host_port(key("i", 1), &fixed, &none, &mut memos, &mut changes),
            None
        );
    }
}
