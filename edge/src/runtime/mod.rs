//! The runtime seam: where replicas run.
//!
//! A [`Runtime`] runs resolved [`ReplicaSpec`]s and reports what it finds
//! ([`Observed`]). [`docker::DockerRuntime`] runs containers on the node's Docker engine
//! through bollard; [`process::ProcessRuntime`] runs supervised native processes for
//! `exec` components. The reconciler owns the decisions (the shared planner); a runtime
//! only does what it is told and says what is there.
//!
//! Everything a runtime creates carries the node id, instance, component, replica and
//! spec hash (Docker labels `io.skerry.*`; for processes, the runtime's own state file),
//! so after an agent restart it is adopted, not started twice.

pub mod docker;
pub mod process;
pub mod secrets;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use futures_util::future::BoxFuture;
use skerry_shared::hash::Digest;
use skerry_shared::ids::{Name, NodeId};
use skerry_shared::manifest::{Component, RuntimeKind};
use skerry_shared::planner::{Phase, ReplicaKey};

/// Container labels.
pub mod labels {
    pub const INSTANCE: &str = "io.skerry.instance";
    pub const COMPONENT: &str = "io.skerry.component";
    pub const REPLICA: &str = "io.skerry.replica";
    pub const NODE: &str = "io.skerry.node";
    pub const SPEC_HASH: &str = "io.skerry.spec-hash";
}

/// A published port: the container's port and the node's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortBinding {
    pub container: u16,
    /// `None` for `expose: cluster`.
    pub host: Option<u16>,
}

/// Named storage, resolved for one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageMount {
    pub name: Name,
    /// Where it appears in a container (`None` for an `exec` component, which gets it in
    /// `SKERRY_STORAGE_<NAME>`).
    pub container: Option<String>,
}

/// Everything a runtime needs to run one replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSpec {
    pub node: NodeId,
    pub key: ReplicaKey,
    pub spec_hash: Digest,
    /// The component as published.
    pub component: Component,
    /// The effective environment: the manifest's, the deploy's overrides, then
    /// `SKERRY_INSTANCE`, `SKERRY_COMPONENT`, `SKERRY_REPLICA`, `SKERRY_NODE`.
    pub env: BTreeMap<String, String>,
    /// Every port of the component, with the host port chosen for published ones.
    pub ports: Vec<PortBinding>,
    pub storage: Vec<StorageMount>,
    /// For components with a `log_dir`: the node's directory that backs it.
    pub log_dir_host: Option<PathBuf>,
    /// The component's secrets, opened for this start only ([`secrets`]); never saved.
    pub secrets: Vec<secrets::SecretMount>,
}

/// A replica as a runtime found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedReplica {
    pub key: ReplicaKey,
    pub spec_hash: Digest,
    pub phase: Phase,
    /// Restarts since it was created (the engine's count for containers).
    pub restarts: u32,
    /// The last exit, in words (`exited 3`, `OOM killed`), while it is the replica's
    /// state (it is not running).
    pub last_exit: Option<String>,
    /// How it last ended, with the time, also once it runs again after a restart.
    pub exited: Option<skerry_shared::report::LastExit>,
}

/// What a runtime runs for one node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub replicas: Vec<ObservedReplica>,
    /// Instances that have a network (always empty for runtimes without networks).
    pub networks: Vec<Name>,
}

/// What can go wrong in a runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The engine or the OS refused or failed; worth retrying later.
    #[error("{0}")]
    Engine(String),
    /// The spec cannot run here (an image that is missing with `pull: never`, a host port
    /// in use, a binary not found); retrying the same spec will not help.
    #[error("{0}")]
    Unrunnable(String),
    /// The image could not be pulled (the registry's or the engine's message); tried again
    /// under the restart backoff.
    #[error("{0}")]
    Pull(String),
}

/// Where replicas run.
pub trait Runtime: Send + Sync + 'static {
    /// Which components this runtime takes.
    fn kind(&self) -> RuntimeKind;

    /// Every replica and network this runtime holds for `node`, adopted by its labels.
    fn observe(&self, node: NodeId) -> BoxFuture<'_, Result<Observed, RuntimeError>>;

    /// Creates the instance's network (idempotent). Runtimes without networks do nothing.
    fn create_network<'a>(
        &'a self,
        node: NodeId,
        instance: &'a Name,
    ) -> BoxFuture<'a, Result<(), RuntimeError>>;

    /// Removes the instance's network (idempotent).
    fn remove_network<'a>(
        &'a self,
        node: NodeId,
        instance: &'a Name,
    ) -> BoxFuture<'a, Result<(), RuntimeError>>;

    /// Creates and starts one replica (an `init` runs once: never restarted).
    fn start<'a>(&'a self, spec: &'a ReplicaSpec) -> BoxFuture<'a, Result<(), RuntimeError>>;

    /// Stops and removes one replica (idempotent). Named storage stays.
    fn stop<'a>(
        &'a self,
        node: NodeId,
        key: &'a ReplicaKey,
    ) -> BoxFuture<'a, Result<(), RuntimeError>>;

    /// Deletes an instance's named storage on this node (`undeploy --purge`).
    fn purge_storage<'a>(
        &'a self,
        node: NodeId,
        instance: &'a Name,
        storage: &'a Name,
    ) -> BoxFuture<'a, Result<(), RuntimeError>>;

    /// Starts a replica that exited again, keeping what the runtime holds for it (a
    /// container's id and output). The caller counts the restart. By default: [`Runtime::start`].
    fn restart<'a>(&'a self, spec: &'a ReplicaSpec) -> BoxFuture<'a, Result<(), RuntimeError>> {
        self.start(spec)
    }

    /// Suspends (`held`) or restores the runtime's own restarts of a replica, so that the
    /// agent's backoff, not the runtime's, paces a replica that keeps exiting. By default
    /// nothing to do (a runtime that restarts only when told).
    fn hold_restarts<'a>(
        &'a self,
        _node: NodeId,
        _key: &'a ReplicaKey,
        _component: &'a Component,
        _held: bool,
    ) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(async { Ok(()) })
    }

    /// Host ports this runtime has published (for every node it serves, and for other
    /// users of the same engine), so a port chosen for a node port is not one of them. By
    /// default none.
    fn host_ports_in_use(&self) -> BoxFuture<'_, Result<BTreeSet<u16>, RuntimeError>> {
        Box::pin(async { Ok(BTreeSet::new()) })
    }

    /// Like [`Runtime::stop`], but a replica that has not ended within `grace` after it was
    /// asked to is killed. By default: [`Runtime::stop`] with the runtime's own grace.
    fn stop_within<'a>(
        &'a self,
        node: NodeId,
        key: &'a ReplicaKey,
        _grace: std::time::Duration,
    ) -> BoxFuture<'a, Result<(), RuntimeError>> {
        self.stop(node, key)
    }

    /// The last `lines` lines a replica wrote to its standard output and error (for a job
    /// run's report), oldest first; none when the runtime keeps no output. By default none.
    fn output_tail<'a>(
        &'a self,
        _node: NodeId,
        _key: &'a ReplicaKey,
        _component: &'a Component,
        _lines: usize,
    ) -> BoxFuture<'a, Result<Vec<String>, RuntimeError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// The runtime's own grace period for a stop.
    fn stop_grace(&self) -> std::time::Duration {
        std::time::Duration::from_secs(10)
    }

    /// Notified when the runtime sees a replica change by itself (a container that ended):
    /// the agent looks again at once instead of at its next periodic pass.
    fn changes(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        None
    }
}
