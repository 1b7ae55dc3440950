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
//! - [`spec`]: the container config, names and labels (pure).
//! - [`state`]: labels and container state back to replica key, phase and exit (pure).
//! - [`subnet`]: the subnet pool and its first free block (pure).
//! - [`error`]: bollard's errors as `Engine` (retry) or `Unrunnable` (the spec cannot run).
//! - [`engine`]: [`DockerEngine`], the one client of the engine, shared by the runtime and
//!   the log collector.
//! - [`output`]: a container's stdout and stderr, read from the engine by timestamp
//!   ([`OutputReader`], [`OutputCursor`]).

mod engine;
pub mod error;
mod exits;
pub mod output;
mod restart;
pub mod spec;
pub mod state;
pub mod subnet;

pub use self::engine::DockerEngine;
pub use self::output::{OutputCursor, OutputLines, OutputReader};

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{Ipam, IpamConfig, Network, NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    ListNetworksOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
    StopContainerOptionsBuilder,
};
use futures_util::future::BoxFuture;
use futures_util::{StreamExt, stream};
use skerry_shared::ids::{Name, NodeId};
use skerry_shared::manifest::{PullPolicy, RuntimeKind};
use skerry_shared::planner::ReplicaKey;

use self::subnet::{Subnet, SubnetPool};
use super::{Observed, ObservedReplica, ReplicaSpec, Runtime, RuntimeError, labels};

/// How many containers `observe` inspects at once.
const INSPECT_CONCURRENCY: usize = 8;

/// How many times `create_network` picks another block when someone else took the one it
/// chose between its list and its create.
const SUBNET_ATTEMPTS: usize = 8;

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

    async fn observe_node(&self, node: NodeId) -> Result<Observed, RuntimeError> {
        let node_filter = HashMap::from([("label", vec![format!("{}={node}", labels::NODE)])]);
        let containers = self
            .docker
            .list_containers(Some(
                ListContainersOptionsBuilder::new()
                    .all(true)
                    .filters(&node_filter)
                    .build(),
            ))
            .await
            .map_err(|e| error::engine("list containers", &e))?;

        let mut found = Vec::with_capacity(containers.len());
        for c in containers {
            let id = c.id.unwrap_or_default();
            let name = c
                .names
                .and_then(|n| n.into_iter().next())
                .unwrap_or_else(|| id.clone());
            match state::key_from_labels(&c.labels.unwrap_or_default()) {
                Ok((key, hash)) => found.push((id, key, hash)),
                Err(why) => {
                    tracing::warn!(container = %name, "skipping a container with bad labels: {why}");
                }
            }
        }

        let inspected: Vec<Result<Option<(String, ObservedReplica)>, RuntimeError>> =
            stream::iter(found)
                .map(|(id, key, spec_hash)| async move {
                    match self.docker.inspect_container(&id, None).await {
                        Ok(c) => {
                            let s = c.state.unwrap_or_default();
                            if state::never_started(&s) {
                                // The agent died between create and start (passes never
                                // overlap, so no start of ours is in flight): remove it, and
                                // the planner starts the replica afresh.
                                tracing::warn!(container = %id, replica = %key, "removing a container that was created and never started");
                                self.remove_container(&id).await?;
                                return Ok(None);
                            }
                            let restarts = state::restarts(c.restart_count);
                            let last_exit = state::last_exit(&s);
                            // The time is the engine's (`FinishedAt`); the code is the
                            // state's while it is not running, else the events' (the engine
                            // resets it when its policy starts the container again).
                            let seen = self.exits.get(&id);
                            let at = exits::finished_at(s.finished_at.as_deref())
                                .or(seen.as_ref().map(|e| e.at));
                            let reason =
                                last_exit.clone().or(seen.map(|e| e.reason)).or_else(|| {
                                    (restarts > 0)
                                        .then(|| "exited (code not seen by the agent)".to_owned())
                                });
                            let exited = at
                                .zip(reason)
                                .map(|(at, reason)| skerry_shared::report::LastExit { at, reason });
                            Ok(Some((
                                id,
                                ObservedReplica {
                                    phase: state::phase(&s),
                                    restarts,
                                    last_exit,
                                    exited,
                                    key,
                                    spec_hash,
                                },
                            )))
                        }
                        // Removed between the list and the inspect.
                        Err(e) if error::not_found(&e) => Ok(None),
                        Err(e) => Err(error::engine(format!("inspect container {id}"), &e)),
                    }
                })
                .buffered(INSPECT_CONCURRENCY)
                .collect()
                .await;
        let mut replicas = Vec::with_capacity(inspected.len());
        let mut ids = std::collections::HashSet::new();
        for r in &inspected {
            if let Ok(Some((id, _))) = r {
                ids.insert(id.as_str());
            }
        }
        self.exits.retain(&ids);
        for r in inspected {
            replicas.extend(r?.map(|(_, o)| o));
        }
        replicas.sort_by(|a, b| a.key.cmp(&b.key));

        let networks = self
            .docker
            .list_networks(Some(
                ListNetworksOptionsBuilder::new()
                    .filters(&node_filter)
                    .build(),
            ))
            .await
            .map_err(|e| error::engine("list networks", &e))?;
        let networks: BTreeSet<Name> = networks
            .iter()
            .filter_map(|n| {
                let value = n.labels.as_ref()?.get(labels::INSTANCE)?;
                match Name::parse(value) {
                    Ok(name) => Some(name),
                    Err(e) => {
                        tracing::warn!(network = ?n.name, "skipping a network with a bad instance label: {}", e.0);
                        None
                    }
                }
            })
            .collect();

        Ok(Observed {
            replicas,
            networks: networks.into_iter().collect(),
        })
    }

    async fn create_instance_network(
        &self,
        node: NodeId,
        instance: &Name,
    ) -> Result<(), RuntimeError> {
        let _one_at_a_time = self.network_lock.lock().await;
        let name = spec::network_name(node, instance);
        let mut lost: Vec<Subnet> = Vec::new();
        for _ in 0..SUBNET_ATTEMPTS {
            let networks = self
                .docker
                .list_networks(None)
                .await
                .map_err(|e| error::engine("list networks", &e))?;
            if networks
                .iter()
                .any(|n| n.name.as_deref() == Some(name.as_str()))
            {
                return Ok(());
            }
            let mut used: Vec<Subnet> = networks.iter().flat_map(subnets_of).collect();
            used.extend(lost.iter().copied());
            let subnet = self.pool.first_free(&used).ok_or_else(|| {
                RuntimeError::Engine(format!(
                    "network {name}: every /{} of the subnet pool {} is in use",
                    self.options.block,
                    self.pool.pool()
                ))
            })?;
            let request = NetworkCreateRequest {
                name: name.clone(),
                driver: Some("bridge".to_owned()),
                ipam: Some(Ipam {
                    driver: Some("default".to_owned()),
                    config: Some(vec![IpamConfig {
                        subnet: Some(subnet.to_string()),
                        ..Default::default()
                    }]),
                    options: None,
                }),
                labels: Some(HashMap::from([
                    (labels::INSTANCE.to_owned(), instance.to_string()),
                    (labels::NODE.to_owned(), node.to_string()),
                ])),
                ..Default::default()
            };
            match self.docker.create_network(request).await {
                Ok(_) => {
                    tracing::info!(network = %name, %subnet, "created the instance network");
                    return Ok(());
                }
                // Another process took the block between the list and the create.
                Err(e) if error::status(&e).is_some_and(|(_, m)| m.contains("overlap")) => {
                    tracing::debug!(network = %name, %subnet, "subnet taken meanwhile; trying the next one");
                    lost.push(subnet);
                }
                // Newer engines refuse a duplicate name: someone created it meanwhile.
                Err(e) if error::status(&e).is_some_and(|(code, _)| code == 409) => {
                    return Ok(());
                }
                Err(e) => return Err(error::engine(format!("create network {name}"), &e)),
            }
        }
        Err(RuntimeError::Engine(format!(
            "network {name}: the chosen subnets were taken {SUBNET_ATTEMPTS} times in a row"
        )))
    }

    async fn remove_instance_network(
        &self,
        node: NodeId,
        instance: &Name,
    ) -> Result<(), RuntimeError> {
        let name = spec::network_name(node, instance);
        // The name filter matches substrings; an engine before 25 may even hold two
        // networks of one name. Remove every exact match by id.
        let filter = HashMap::from([("name", vec![name.clone()])]);
        let networks = self
            .docker
            .list_networks(Some(
                ListNetworksOptionsBuilder::new().filters(&filter).build(),
            ))
            .await
            .map_err(|e| error::engine("list networks", &e))?;
        for n in networks
            .iter()
            .filter(|n| n.name.as_deref() == Some(name.as_str()))
        {
            let id = n.id.as_deref().unwrap_or(name.as_str());
            match self.docker.remove_network(id).await {
                Ok(()) => tracing::info!(network = %name, "removed the instance network"),
                Err(e) if error::not_found(&e) => {}
                // Containers still attached: the reconciler stops them and tries again.
                Err(e) => return Err(error::engine(format!("remove network {name}"), &e)),
            }
        }
        Ok(())
    }

    async fn start_replica(&self, spec: &ReplicaSpec) -> Result<(), RuntimeError> {
        let body = spec::container_body(spec, &self.options.storage_prefix)?;
        let image = body.image.clone().unwrap_or_default();
        self.ensure_image(&image, spec.component.pull()).await?;

        for storage in &spec.storage {
            if storage.container.is_none() {
                continue;
            }
            self.ensure_volume(spec.node, &spec.key.instance, &storage.name)
                .await?;
        }
        if let (Some(dir), Some(_)) = (&spec.log_dir_host, &spec.component.log_dir) {
            tokio::fs::create_dir_all(dir).await.map_err(|e| {
                RuntimeError::Engine(format!("create log directory {}: {e}", dir.display()))
            })?;
        }

        // A container of that name may be left from a crash between create and start, or
        // be an older spec the reconciler replaces.
        let name = spec::container_name(spec.node, &spec.key);
        self.remove_container(&name).await?;

        self.docker
            .create_container(
                Some(CreateContainerOptionsBuilder::new().name(&name).build()),
                body,
            )
            .await
            .map_err(|e| error::create(format!("create container {name}"), &e))?;
        if let Err(e) = self.docker.start_container(&name, None).await {
            let err = error::start(format!("start container {name}"), &e);
            // A created container that never ran would be observed as Starting forever.
            if let Err(cleanup) = self.remove_container(&name).await {
                tracing::warn!(container = %name, "could not remove the container that failed to start: {cleanup}");
            }
            return Err(err);
        }
        tracing::info!(container = %name, replica = %spec.key, "started");
        Ok(())
    }

    /// Makes `image` available as `policy` says.
    async fn ensure_image(&self, image: &str, policy: PullPolicy) -> Result<(), RuntimeError> {
        match policy {
            PullPolicy::Never => {
                if self.image_exists(image).await? {
                    Ok(())
                } else {
                    Err(RuntimeError::Unrunnable(format!(
                        "image {image} is not on this node (pull: never)"
                    )))
                }
            }
            PullPolicy::IfMissing => {
                if self.image_exists(image).await? {
                    return Ok(());
                }
                self.pull(image).await.map_err(|why| {
                    RuntimeError::Pull(format!(
                        "image {image} is not on this node and could not be pulled: {why}"
                    ))
                })
            }
            PullPolicy::Always => match self.pull(image).await {
                Ok(()) => Ok(()),
                Err(why) => {
                    if self.image_exists(image).await? {
                        tracing::warn!(%image, "pull failed, running the node's copy: {why}");
                        Ok(())
                    } else {
                        Err(RuntimeError::Pull(format!(
                            "image {image} could not be pulled and is not on this node: {why}"
                        )))
                    }
                }
            },
        }
    }

    async fn image_exists(&self, image: &str) -> Result<bool, RuntimeError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(e) if error::not_found(&e) => Ok(false),
            Err(e) => Err(error::engine(format!("inspect image {image}"), &e)),
        }
    }

    /// Pulls `image`; the error is the engine's reason.
    async fn pull(&self, image: &str) -> Result<(), String> {
        let (repository, tag) = split_reference(image);
        let mut options = CreateImageOptionsBuilder::new().from_image(repository);
        if let Some(tag) = tag {
            options = options.tag(tag);
        }
        tracing::info!(%image, "pulling");
        let mut progress = Box::pin(self.docker.create_image(Some(options.build()), None, None));
        while let Some(step) = progress.next().await {
            step.map_err(|e| match error::status(&e) {
                Some((_, m)) => m.to_owned(),
                None => e.to_string(),
            })?;
        }
        Ok(())
    }

    async fn ensure_volume(
        &self,
        node: NodeId,
        instance: &Name,
        storage: &Name,
    ) -> Result<(), RuntimeError> {
        let name = spec::volume_name(&self.options.storage_prefix, node, instance, storage);
        // Creating a volume that exists returns it unchanged.
        self.docker
            .create_volume(VolumeCreateRequest {
                name: Some(name.clone()),
                labels: Some(HashMap::from([
                    (labels::INSTANCE.to_owned(), instance.to_string()),
                    (labels::NODE.to_owned(), node.to_string()),
                    (spec::STORAGE_LABEL.to_owned(), storage.to_string()),
                ])),
                ..Default::default()
            })
            .await
            .map_err(|e| error::engine(format!("create volume {name}"), &e))?;
        Ok(())
    }

    /// Removes a container whatever its state; absent is fine.
    async fn remove_container(&self, name: &str) -> Result<(), RuntimeError> {
        match self
            .docker
            .remove_container(
                name,
                Some(RemoveContainerOptionsBuilder::new().force(true).build()),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if error::not_found(&e) => Ok(()),
            // Another caller is already removing it.
            Err(e) if error::status(&e).is_some_and(|(_, m)| m.contains("already in progress")) => {
                Ok(())
            }
            Err(e) => Err(error::engine(format!("remove container {name}"), &e)),
        }
    }

    async fn stop_replica(
        &self,
        node: NodeId,
        key: &ReplicaKey,
        grace: Duration,
    ) -> Result<(), RuntimeError> {
        let name = spec::container_name(node, key);
        let timeout = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        match self
            .docker
            .stop_container(
                &name,
                Some(StopContainerOptionsBuilder::new().t(timeout).build()),
            )
            .await
        {
            Ok(()) => {}
            Err(e) if error::not_found(&e) => return Ok(()),
            // 304: it was not running. Anything else: the forced remove below kills it.
            Err(e) => {
                if !matches!(error::status(&e), Some((304, _))) {
                    tracing::debug!(container = %name, "stop failed, removing by force: {e}");
                }
            }
        }
        self.remove_container(&name).await?;
        tracing::info!(container = %name, replica = %key, "stopped and removed");
        Ok(())
    }

    async fn purge_volume(
        &self,
        node: NodeId,
        instance: &Name,
        storage: &Name,
    ) -> Result<(), RuntimeError> {
        let name = spec::volume_name(&self.options.storage_prefix, node, instance, storage);
        match self
            .docker
            .remove_volume(&name, Some(RemoveVolumeOptionsBuilder::new().build()))
            .await
        {
            Ok(()) => {
                tracing::info!(volume = %name, "purged named storage");
                Ok(())
            }
            Err(e) if error::not_found(&e) => Ok(()),
            // 409: a container still uses it; the reconciler stops it first and retries.
            Err(e) => Err(error::engine(format!("remove volume {name}"), &e)),
        }
    }
}

/// The IPv4 subnets a network's IPAM config holds.
fn subnets_of(network: &Network) -> Vec<Subnet> {
    network
        .ipam
        .as_ref()
        .and_then(|ipam| ipam.config.as_ref())
        .map(|configs| {
            configs
                .iter()
                .filter_map(|c| c.subnet.as_deref().and_then(Subnet::parse))
                .collect()
        })
        .unwrap_or_default()
}

/// Splits an image reference into the repository and the tag for a pull: `busybox` →
/// (`busybox`, `latest`), `reg:5000/app:1` → (`reg:5000/app`, `1`). A reference by digest
/// is pulled as it is (without a tag the engine would pull every tag of the repository).
fn split_reference(image: &str) -> (&str, Option<&str>) {
    if image.contains('@') {
        return (image, None);
    }
    let name_start = image.rfind('/').map_or(0, |i| i + 1);
    match image[name_start..].rfind(':') {
        Some(i) => (&image[..name_start + i], Some(&image[name_start + i + 1..])),
        None => (image, Some("latest")),
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
    fn references_split_for_pull() {
        assert_eq!(split_reference("busybox"), ("busybox", Some("latest")));
        assert_eq!(split_reference("busybox:1.36"), ("busybox", Some("1.36")));
        assert_eq!(
            split_reference("reg.local:5000/team/app"),
            ("reg.local:5000/team/app", Some("latest"))
        );
        assert_eq!(
            split_reference("reg.local:5000/team/app:2"),
            ("reg.local:5000/team/app", Some("2"))
        );
        assert_eq!(
            split_reference("app@sha256:abcd"),
            ("app@sha256:abcd", None)
        );
    }

    #[test]
    fn default_options() {
        let o = DockerOptions::default();
        assert_eq!(o.subnet_pool, (Ipv4Addr::new(10, 213, 0, 0), 16));
        assert_eq!(o.block, 26);
        assert_eq!(o.storage_prefix, "skerry");
    }
}
