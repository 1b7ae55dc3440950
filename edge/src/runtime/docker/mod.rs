//! The Docker runtime: replicas as containers on the node's Docker engine, through bollard.
//!
//! [`DockerRuntime::connect_on`] builds the runtime on the agent's one [`DockerEngine`]
//! (the local socket, `DOCKER_HOST=unix://...` or `/var/run/docker.sock`) and negotiates
//! the API version, so an older engine (20.10 speaks API 1.41) is answered in its own
//! version. The same engine gives the log collector containers' output ([`output`]).
//!
//! # What the engine holds
//! | Skerry                          | Docker                                                        |
//! |---------------------------------|---------------------------------------------------------------|
//! | instance network                | bridge network `skerry-{node}.{instance}` (`{node}`: the node id's first 8 hex digits), labels `io.skerry.instance`, `io.skerry.node`; an explicit subnet from the pool (see [`subnet`]) |
//! | replica                         | container `skerry-{node}.{instance}.{component}.{replica}` (dots: names never hold one, so `a-b`/`c` and `a`/`b-c` differ) |
//! | replica key, node, spec hash    | labels `io.skerry.instance`, `.component`, `.replica`, `.node`, `.spec-hash` (64 hex digits), and `io.skerry.kind` (`service`, `init`, `job`) |
//! | named storage                   | volume `{storage_prefix}-{node8}.{instance}.{storage}`, labels `io.skerry.instance`, `.node`, `.storage`; kept by `stop` and undeploy, removed by `purge_storage` |
//!
//! # From a [`ReplicaSpec`] to a container (see [`spec`])
//! | manifest                           | container                                                 |
//! |------------------------------------|-----------------------------------------------------------|
//! | `image`                            | `Image`                                                   |
//! | `command`                          | `Cmd` (the image's entrypoint stays, its command is replaced) |
//! | `env` (+ overrides, `SKERRY_*`)    | `Env`                                                     |
//! | `resources.cpu.limit`              | `NanoCpus` = millicores × 10⁶                             |
//! | `resources.cpu.request`            | `CpuShares` = millicores × 1024 / 1000, at least 2        |
//! | `resources.memory.limit`           | `Memory` (bytes)                                          |
//! | `resources.memory.request`         | `MemoryReservation` (bytes)                               |
//! | `ports[]`                          | `ExposedPorts` `{port}/tcp`; with a host port also `PortBindings` → `0.0.0.0:{host}` |
//! | `host_network: true`               | `NetworkMode: host`, no instance network, no port bindings |
//! | otherwise                          | `NetworkMode: skerry-{node}.{instance}`, alias = component name (components reach each other by name) |
//! | `mounts` file, directory, socket   | bind mounts                                               |
//! | `mounts` char-device, block-device | `Devices` (`rwm`)                                         |
//! | `storage[]`                        | volume mounts of the named volumes                        |
//! | `log_dir` (with a host directory)  | bind mount of the node's directory at `log_dir` (created first) |
//! | `health`                           | `Healthcheck`: `["CMD", command...]`, interval, timeout, retries (ns) |
//! | `restart` of a service             | `always` → `unless-stopped`, `on-failure` → `on-failure`, `never` → `no` |
//! | an `init` or a `job`               | restart `no`                                              |
//!
//! `pull`: `never` runs only an image that is on the node (else `Unrunnable`); `if-missing`
//! pulls when the image is not on the node (a failed pull is `Unrunnable`); `always` pulls,
//! and falls back on the node's copy, with a warning, when the pull fails.
//!
//! # What the engine says (see [`state`])
//! `observe` lists every container with `io.skerry.node=<node>` (running or not) and
//! inspects each: `running` with health `healthy` → Healthy, `unhealthy` → Unhealthy,
//! `starting` or no check → Running; `created`, `restarting` → Starting; `exited`, `dead`
//! → Exited with the exit code. `restarts` is the engine's `RestartCount`; `last_exit`
//! reads `exited 3`, `OOM killed`. Containers with labels that do not parse are skipped
//! and logged. A container `created` and never started (the agent was killed between
//! create and start) is removed, not observed, so the planner starts its replica afresh.
//! Networks labelled with the node give the instances that have one.
//!
//! # Layout
//! - `mod.rs`: [`DockerOptions`], [`DockerRuntime`] and its [`Runtime`] impl, which hands
//!   each call to the file of its part:
//! - `observe.rs`: `observe`, the containers and networks labelled with the node.
//! - `network.rs`: instance networks, on a subnet of the pool.
//! - `containers.rs`: a replica's container created and started, stopped and removed.
//! - `images.rs`: images made available as the `pull` policy says.
//! - `volumes.rs`: named storage volumes, created and purged.
//! - `restart.rs`: an exited container started again, the engine's restart policy held
//!   while the agent paces a crash loop, the published host ports.
//! - `exits.rs`: the last exit of each container, from the engine's events.
//! - [`spec`]: the container config, names and labels (pure).
//! - [`state`]: labels and container state back to replica key, phase and exit (pure).
//! - [`subnet`]: the subnet pool and its first free block (pure).
//! - [`error`]: bollard's errors as `Engine` (retry) or `Unrunnable` (the spec cannot run).
//! - `engine.rs`: [`DockerEngine`], the one client of the engine, shared by the runtime and
//!   the log collector.
//! - [`output`]: a container's stdout and stderr, read from the engine by timestamp
//!   ([`OutputReader`], [`OutputCursor`]).

mod containers;
mod engine;
pub mod error;
mod exits;
mod images;
mod network;
mod observe;
pub mod output;
mod restart;
pub mod spec;
pub mod state;
pub mod subnet;
mod volumes;

pub use self::engine::DockerEngine;
pub use self::output::{OutputCursor, OutputLines, OutputReader};

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use bollard::Docker;
use futures_util::future::BoxFuture;
use skerry_shared::ids::{Name, NodeId};
use skerry_shared::manifest::RuntimeKind;
use skerry_shared::planner::ReplicaKey;

use self::subnet::SubnetPool;
use super::{Observed, ReplicaSpec, Runtime, RuntimeError};

/// The Docker runtime's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerOptions {
    /// The pool that instance networks take their subnets from (default 10.213.0.0/16).
    pub subnet_pool: (Ipv4Addr, u8),
    /// The prefix length of one instance network (default 26: 1024 networks of 61 hosts in
    /// the default pool).
    pub block: u8,
    /// The first part of named-storage volume names (default `skerry`:
    /// `skerry-{node}.{instance}.{storage}`).
    pub storage_prefix: String,
    /// How long `stop` waits after SIGTERM before the engine kills (default 10 s).
    pub stop_timeout: Duration,
}

impl Default for DockerOptions {
    fn default() -> Self {
        Self {
            subnet_pool: (Ipv4Addr::new(10, 213, 0, 0), 16),
            block: 26,
            storage_prefix: "skerry".to_owned(),
            stop_timeout: Duration::from_secs(10),
        }
    }
}

/// Replicas as containers on the local Docker engine.
#[derive(Debug)]
pub struct DockerRuntime {
    docker: Docker,
    options: DockerOptions,
    pool: SubnetPool,
    /// One network create at a time in this process, so that two creates never pick the
    /// same block or create one name twice (engines before 25 do not refuse a duplicate
    /// name).
    network_lock: tokio::sync::Mutex<()>,
    /// The last exit of each container, from the engine's events.
    exits: exits::Exits,
}

impl DockerRuntime {
    /// Connects to the local engine on a handle of its own and negotiates the API version
    /// (for tests and tools; the agent shares its one engine with [`Self::connect_on`]).
    pub async fn connect(options: DockerOptions) -> Result<Self, RuntimeError> {
        Self::connect_on(DockerEngine::local()?, options).await
    }

    /// The runtime on `engine`: checks the options, negotiates the API version (fails when
    /// the engine does not answer) and follows the engine's exits.
    pub async fn connect_on(
        engine: DockerEngine,
        options: DockerOptions,
    ) -> Result<Self, RuntimeError> {
        let (addr, prefix) = options.subnet_pool;
        let pool = SubnetPool::new(addr, prefix, options.block).map_err(RuntimeError::Engine)?;
        if options.storage_prefix.is_empty() {
            return Err(RuntimeError::Engine(
                "the Docker runtime's storage prefix is empty".to_owned(),
            ));
        }
        engine.negotiate().await?;
        let docker = engine.client().clone();
        Ok(Self {
            exits: exits::Exits::watch(docker.clone()),
            docker,
            options,
            pool,
            network_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The bollard client, for callers that need more than the seam (tests, diagnostics).
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    pub fn options(&self) -> &DockerOptions {
        &self.options
    }
}

impl Runtime for DockerRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Docker
    }

    fn observe(&self, node: NodeId) -> BoxFuture<'_, Result<Observed, RuntimeError>> {
        Box::pin(self.observe_node(node))
    }

    fn create_network<'a>(
        &'a self,
        node: NodeId,
        instance: &'a Name,
    ) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(self.create_instance_network(node, instance))
    }

    fn remove_network<'a>(
        &'a self,
        node: NodeId,
        instance: &'a Name,
    ) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(self.remove_instance_network(node, instance))
    }

    fn start<'a>(&'a self, spec: &'a ReplicaSpec) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(self.start_replica(spec))
    }

    fn stop<'a>(
        &'a self,
        node: NodeId,
        key: &'a ReplicaKey,
    ) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(self.stop_replica(node, key, self.options.stop_timeout))
    }

    fn restart<'a>(&'a self, spec: &'a ReplicaSpec) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(self.restart_replica(spec))
    }

    fn hold_restarts<'a>(
        &'a self,
        node: NodeId,
        key: &'a ReplicaKey,
        component: &'a skerry_shared::manifest::Component,
        held: bool,
    ) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(self.hold(node, key, component, held))
    }

    fn host_ports_in_use(&self) -> BoxFuture<'_, Result<BTreeSet<u16>, RuntimeError>> {
        Box::pin(self.published_ports())
    }

    fn stop_within<'a>(
        &'a self,
        node: NodeId,
        key: &'a ReplicaKey,
        grace: Duration,
    ) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(self.stop_replica(node, key, grace))
    }

    fn stop_grace(&self) -> Duration {
        self.options.stop_timeout
    }

    fn output_tail<'a>(
        &'a self,
        node: NodeId,
        key: &'a ReplicaKey,
        _component: &'a skerry_shared::manifest::Component,
        lines: usize,
    ) -> BoxFuture<'a, Result<Vec<String>, RuntimeError>> {
        Box::pin(async move {
            let name = spec::container_name(node, key);
            output::tail(&self.docker, &name, lines)
                .await
                .map_err(RuntimeError::Engine)
        })
    }

    fn changes(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        Some(self.exits.ended())
    }

    fn purge_storage<'a>(
        &'a self,
        node: NodeId,
        instance: &'a Name,
        storage: &'a Name,
    ) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(self.purge_volume(node, instance, storage))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_options() {
        let o = DockerOptions::default();
        assert_eq!(o.subnet_pool, (Ipv4Addr::new(10, 213, 0, 0), 16));
        assert_eq!(o.block, 26);
        assert_eq!(o.storage_prefix, "skerry");
    }
}
