//! What the reconciler does: the planner's actions performed on the runtimes (a start
//! waits its backoff, see [`super::retries`]), a replica's spec resolved with host ports
//! free on the host, stops all at once within one grace period ([`super::stops`]), and the
//! named storage of purged instances deleted once their replicas are gone.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use skerry_shared::ids::Name;
use skerry_shared::manifest::RuntimeKind;
use skerry_shared::planner::{Action, ReplicaKey};
use skerry_shared::reducer::NodeDesired;

use super::{Reconciler, ports, resolve, stops};
use crate::journal::{MemoChange, MemoChanges};
use crate::runtime::{ObservedReplica, Runtime, RuntimeError};

impl Reconciler {
    pub(super) async fn act(
        &mut self,
        desired: &NodeDesired,
        observed: &BTreeMap<ReplicaKey, (ObservedReplica, RuntimeKind)>,
        fixed: &BTreeSet<u16>,
        action: Action,
    ) -> bool {
        tracing::debug!(%action, "acting");
        let result = match &action {
            Action::CreateNetwork { instance } => match self.runtime(RuntimeKind::Docker) {
                Some(rt) => rt.create_network(self.node, instance).await,
                None => Ok(()),
            },
            Action::RemoveNetwork { instance } => match self.runtime(RuntimeKind::Docker) {
                Some(rt) => rt.remove_network(self.node, instance).await,
                None => Ok(()),
            },
            Action::RunInit { key, spec_hash, .. } | Action::Start { key, spec_hash } => {
                if !self
                    .retries
                    .may_try(key, *spec_hash, tokio::time::Instant::now())
                {
                    // It waits its backoff; the pass that follows it tries again.
                    return false;
                }
                self.start(desired, key, fixed).await
            }
            Action::Stop { key, .. } => {
                let kind = observed.get(key).map(|(_, k)| *k);
                match kind.and_then(|k| self.runtime(k)) {
                    Some(rt) => rt.stop(self.node, key).await,
                    None => Ok(()),
                }
            }
        };
        match (result, &action) {
            (Ok(()), Action::RunInit { key, spec_hash, .. } | Action::Start { key, spec_hash }) => {
                self.problems.remove(key);
                self.retries
                    .started(key, *spec_hash, tokio::time::Instant::now());
                true
            }
            (Err(e), Action::RunInit { key, spec_hash, .. } | Action::Start { key, spec_hash }) => {
                let delay =
                    self.retries
                        .start_failed(key, *spec_hash, &e, tokio::time::Instant::now());
                tracing::warn!(%action, error = %e, retry_in_ms = delay.as_millis() as u64, "start failed; trying again after the backoff");
                self.problems.insert(key.clone(), e.to_string());
                false
            }
            (Ok(()), _) => true,
            (Err(e), Action::Stop { key, .. }) => {
                tracing::warn!(%action, error = %e, "action failed");
                self.problems.insert(key.clone(), e.to_string());
                false
            }
            (Err(e), _) => {
                tracing::warn!(%action, error = %e, "action failed");
                false
            }
        }
    }

    pub(super) async fn start(
        &mut self,
        desired: &NodeDesired,
        key: &ReplicaKey,
        fixed: &BTreeSet<u16>,
    ) -> Result<(), RuntimeError> {
        let (spec, rt) = self.resolve(desired, key, fixed).await?;
        rt.start(&spec).await
    }

    /// The spec of one desired replica and the runtime that runs it, with host ports free
    /// on the host: a fixed one in use is refused ("host port N in use"), a chosen one in use
    /// is chosen again.
    pub(super) async fn resolve(
        &mut self,
        desired: &NodeDesired,
        key: &ReplicaKey,
        fixed: &BTreeSet<u16>,
    ) -> Result<(crate::runtime::ReplicaSpec, Arc<dyn Runtime>), RuntimeError> {
        let d = desired
            .instances
            .get(&key.instance)
            .ok_or_else(|| RuntimeError::Engine(format!("{key}: instance is not desired")))?;
        let c = d
            .spec
            .manifest
            .component(key.component.as_str())
            .ok_or_else(|| RuntimeError::Engine(format!("{key}: component is not desired")))?;
        let rt = Arc::clone(self.runtime(c.runtime()).ok_or_else(|| {
            RuntimeError::Unrunnable(format!("this node has no {} runtime", c.runtime()))
        })?);
        let mut in_use = ports::InUse::default();
        if c.ports
            .iter()
            .any(|p| p.host.is_some() || p.expose.published())
        {
            for r in &self.runtimes {
                in_use.published.extend(r.host_ports_in_use().await?);
            }
            for p in c.ports.iter().filter_map(|p| p.host) {
                if in_use.taken(p) {
                    return Err(RuntimeError::Unrunnable(format!("host port {p} in use")));
                }
            }
        }
        let taken = |p: u16| in_use.taken(p);
        let mut changes = MemoChanges::new();
        let ctx = resolve::Context {
            node: self.node,
            fixed,
            taken: &taken,
            data: &self.data,
        };
        let spec =
            resolve::replica_spec(ctx, &d.spec, c, key.replica, &mut self.memos, &mut changes)
                .map_err(RuntimeError::Unrunnable);
        self.save(changes);
        let spec = crate::runtime::secrets::attach(&self.data, desired, spec?)?;
        if let Some(dir) = &spec.log_dir_host {
            std::fs::create_dir_all(dir)
                .map_err(|e| RuntimeError::Engine(format!("{}: {e}", dir.display())))?;
        }
        Ok((spec, rt))
    }

    /// Performs stop actions at once (see [`stops`]). Returns how many worked.
    pub(super) async fn stop_all(
        &mut self,
        observed: &BTreeMap<ReplicaKey, (ObservedReplica, RuntimeKind)>,
        actions: &[Action],
    ) -> usize {
        let mut list = Vec::new();
        for action in actions {
            let Action::Stop { key, .. } = action else {
                continue;
            };
            tracing::debug!(%action, "acting");
            let kind = observed.get(key).map(|(_, k)| *k);
            if let Some(rt) = kind.and_then(|k| self.runtime(k)) {
                list.push(stops::Stop {
                    key: key.clone(),
                    runtime: Arc::clone(rt),
                });
            }
        }
        let unknown = actions.len() - list.len();
        let mut worked = unknown;
        for (key, result) in stops::stop_all(self.node, list, &self.dependencies).await {
            match result {
                Ok(()) => {
                    self.problems.remove(&key);
                    worked += 1;
                }
                Err(e) => {
                    tracing::warn!(replica = %key, error = %e, "stop failed");
                    self.problems.insert(key, e.to_string());
                }
            }
        }
        worked
    }

    /// Deletes the named storage of purged instances that no longer run here, and
    /// forgets their memos (so a new deploy under the same name starts afresh).
    pub(super) async fn purge(
        &mut self,
        desired: &NodeDesired,
        observed: &BTreeMap<ReplicaKey, (ObservedReplica, RuntimeKind)>,
    ) {
        let ready: Vec<Name> = self
            .purges
            .keys()
            .filter(|i| !observed.keys().any(|k| &k.instance == *i))
            .cloned()
            .collect();
        for instance in ready {
            let Some(storage) = self.purges.remove(&instance) else {
                continue;
            };
            if desired.instances.contains_key(&instance) {
                // Deployed again before the purge: its data stays.
                continue;
            }
            let mut done = true;
            for name in &storage {
                for rt in &self.runtimes {
                    if let Err(e) = rt.purge_storage(self.node, &instance, name).await {
                        tracing::warn!(%instance, storage = %name, error = %e, "cannot purge named storage; retrying");
                        done = false;
                    }
                }
            }
            if done {
                tracing::info!(%instance, "purged its named storage");
                self.save(vec![MemoChange::InstanceForgotten { instance }].into());
            } else {
                self.purges.insert(instance, storage);
            }
        }
    }
}
