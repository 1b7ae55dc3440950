//! [`SimRuntime`]: a [`Runtime`] whose replicas start at once (or after a configurable
//! delay) and then report `Running`, for one simulated node.
//!
//! It keeps its replicas and networks in memory, as the engine would keep containers, so
//! the reconciler's observe, plan and act steps run unchanged. Every start is counted in
//! the fleet's [`Tally`](super::Tally).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use skerry_edge::runtime::{Observed, ObservedReplica, ReplicaSpec, Runtime, RuntimeError};
use skerry_shared::ids::{Name, NodeId};
use skerry_shared::manifest::RuntimeKind;
use skerry_shared::planner::{Phase, ReplicaKey};

use super::Tally;

/// The replicas and networks of one simulated node.
#[derive(Debug)]
pub struct SimRuntime {
    kind: RuntimeKind,
    delay: Duration,
    tally: Arc<Tally>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    replicas: BTreeMap<ReplicaKey, ObservedReplica>,
    networks: BTreeSet<Name>,
}

impl SimRuntime {
    /// A runtime that takes `kind` components and starts each replica after `delay`.
    pub fn new(kind: RuntimeKind, delay: Duration, tally: Arc<Tally>) -> Self {
        Self {
            kind,
            delay,
            tally,
            state: Mutex::new(State::default()),
        }
    }

    /// How many replicas it runs now.
    pub fn replicas(&self) -> usize {
        self.state.lock().replicas.len()
    }
}

impl Runtime for SimRuntime {
    fn kind(&self) -> RuntimeKind {
        self.kind
    }

    fn observe(&self, _node: NodeId) -> BoxFuture<'_, Result<Observed, RuntimeError>> {
        let state = self.state.lock();
        let observed = Observed {
            replicas: state.replicas.values().cloned().collect(),
            networks: state.networks.iter().cloned().collect(),
        };
        std::future::ready(Ok(observed)).boxed()
    }

    fn create_network<'a>(
        &'a self,
        _node: NodeId,
        instance: &'a Name,
    ) -> BoxFuture<'a, Result<(), RuntimeError>> {
        self.state.lock().networks.insert(instance.clone());
        std::future::ready(Ok(())).boxed()
    }

    fn remove_network<'a>(
        &'a self,
        _node: NodeId,
        instance: &'a Name,
    ) -> BoxFuture<'a, Result<(), RuntimeError>> {
        self.state.lock().networks.remove(instance);
        std::future::ready(Ok(())).boxed()
    }

    fn start<'a>(&'a self, spec: &'a ReplicaSpec) -> BoxFuture<'a, Result<(), RuntimeError>> {
        async move {
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            let replica = ObservedReplica {
                key: spec.key.clone(),
                spec_hash: spec.spec_hash,
                phase: Phase::Running,
                restarts: 0,
                last_exit: None,
                exited: None,
            };
            self.state.lock().replicas.insert(spec.key.clone(), replica);
            self.tally.started(&spec.key);
            Ok(())
        }
        .boxed()
    }

    fn stop<'a>(
        &'a self,
        _node: NodeId,
        key: &'a ReplicaKey,
    ) -> BoxFuture<'a, Result<(), RuntimeError>> {
        self.state.lock().replicas.remove(key);
        std::future::ready(Ok(())).boxed()
    }

    fn purge_storage<'a>(
        &'a self,
        _node: NodeId,
        _instance: &'a Name,
        _storage: &'a Name,
    ) -> BoxFuture<'a, Result<(), RuntimeError>> {
        std::future::ready(Ok(())).boxed()
    }
}
