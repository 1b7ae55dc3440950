//! The fleet simulator: N agents in one process, each running the real agent loop
//! ([`skerry_edge::agent::run_with`]: link, sync, reducer, planner, reconciler, outbox) with
//! an in-memory journal ([`journal::WatchedJournal`]) and a simulated runtime
//! ([`runtime::SimRuntime`]), over the real embedded MQTT endpoint, with TLS and a client
//! certificate per node, of a real `skerry serve`.
//!
//! [`Fleet::start`] raises this process's open-files limit to the hard limit, enrolls the
//! nodes concurrently through the HTTP endpoints an agent uses (`POST
//! /api/v1/enrollment-tokens`, then `POST /api/v1/enroll` with a new key pair and CSR per
//! node, every check of `skerry-edge`'s enrollment, nothing written to disk), starts every
//! agent, and returns once the cloud has seen each node's hello (`last_seen` in `GET
//! /api/v1/nodes`): connections, TLS handshakes and hellos are done before any figure of a
//! scenario starts, and their time is reported on its own ([`Setup`]).
//!
//! Each node costs one socket here and one in the cloud. When either process's open-files
//! limit leaves no room for N nodes, the fleet is cut to what fits and [`Setup::limited`]
//! says so with the limits (and it is printed). The cloud inherits the limit of the process
//! that starts it: call [`raise_open_files`] before [`crate::Cloud::start`].
//!
//! A simulated agent opens no redb file, never talks to the Docker engine (its log
//! collector gets no engine, and the fleet's manifests have no `log_dir`), and has no
//! runtime log; its data directory is a path that is never created.
//!
//! # Layout
//! - [`fanout`]: one deploy to every node, timed until acknowledged, started and
//!   `Running` in the cloud's status.
//! - [`journal`]: [`journal::WatchedJournal`], the edge's `MemoryJournal` noting when each
//!   instance first reached a commit.
//! - [`runtime`]: [`runtime::SimRuntime`], replicas that start at once (or after a delay)
//!   and report `Running`.

pub mod fanout;
pub mod journal;
pub mod runtime;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{StreamExt as _, TryStreamExt as _};
use parking_lot::Mutex;
use serde_json::{Value, json};
use skerry_edge::agent::{AgentError, Parts, run_with};
use skerry_edge::config::AgentConfig;
use skerry_edge::identity::Identity;
use skerry_edge::link::mqtt::MqttLink;
use skerry_shared::ids::{Name, NodeId};
use skerry_shared::manifest::RuntimeKind;
use skerry_shared::planner::ReplicaKey;
use skerry_shared::profile::FirmwareProfile;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::journal::WatchedJournal;
use self::runtime::SimRuntime;
use crate::cloud::Cloud;
use crate::http::Api;
use crate::wait::wait_for;

/// File descriptors kept free for everything but the nodes' sockets (HTTP clients, the
/// runtime, the cloud's log and database files).
const RESERVE_FDS: u64 = 256;

/// This process's open-files limit after [`raise_open_files`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit before.
    pub before: u64,
    pub soft: u64,
    pub hard: u64,
}

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit (children started later
/// inherit it).
pub fn raise_open_files() -> anyhow::Result<OpenFiles> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (before, hard) = getrlimit(Resource::RLIMIT_NOFILE).context("getrlimit(NOFILE)")?;
    if before < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).context("setrlimit(NOFILE)")?;
    }
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).context("getrlimit(NOFILE)")?;
    Ok(OpenFiles { before, soft, hard })
}

/// A process's soft open-files limit (`/proc/PID/limits`) and its open descriptors.
pub fn fd_use(pid: u32) -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    let soft = if soft == "unlimited" {
        u64::MAX
    } else {
        soft.parse().ok()?
    };
    let open = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some((soft, open))
}

/// When each instance first reached each node's journal, and when each replica started.
#[derive(Debug, Default)]
pub struct Tally {
    committed: Mutex<HashMap<String, Vec<Instant>>>,
    started: Mutex<HashMap<String, Vec<Instant>>>,
}

impl Tally {
    fn committed(&self, instance: &Name) {
        self.committed
            .lock()
            .entry(instance.as_str().to_owned())
            .or_default()
            .push(Instant::now());
    }

    fn started(&self, key: &ReplicaKey) {
        self.started
            .lock()
            .entry(key.instance.as_str().to_owned())
            .or_default()
            .push(Instant::now());
    }

    /// The times `instance` reached a node's journal (one per node).
    pub fn commits(&self, instance: &str) -> Vec<Instant> {
        self.committed
            .lock()
            .get(instance)
            .cloned()
            .unwrap_or_default()
    }

    /// The times a replica of `instance` started, on any node.
    pub fn starts(&self, instance: &str) -> Vec<Instant> {
        self.started
            .lock()
            .get(instance)
            .cloned()
            .unwrap_or_default()
    }
}

/// How to start a fleet.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    pub nodes: usize,
    /// The environment the nodes enroll into (it must exist).
    pub env: String,
    /// A built-in firmware profile.
    pub profile: String,
    /// How long each simulated replica takes to start.
    pub start_delay: Duration,
    /// Enrollments in flight at once.
    pub enroll_concurrency: usize,
    /// Worker threads of the simulator's tokio runtime (the agents share them).
    pub threads: usize,
    /// How long the connections may take.
    pub connect_timeout: Duration,
}

impl FleetOptions {
    pub fn new(nodes: usize, env: &str) -> Self {
        Self {
            nodes,
            env: env.to_owned(),
            profile: "x86-64-host".to_owned(),
            start_delay: Duration::ZERO,
            enroll_concurrency: 32,
            threads: 2,
            connect_timeout: Duration::from_secs(120),
        }
    }
}

/// How the fleet came up.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Nodes asked for.
    pub wanted: usize,
    /// Nodes enrolled and running.
    pub nodes: usize,
    pub enroll: Duration,
    /// From the first agent's start until the cloud had a hello from every node: TCP
    /// connect, TLS handshake, MQTT CONNECT and SUBSCRIBE, and the hello frame.
    pub connect: Duration,
    pub open_files: OpenFiles,
    /// The cloud's soft open-files limit, when it could be read.
    pub cloud_open_files: Option<u64>,
    /// Why fewer nodes than wanted run: the limit that stopped the simulator.
    pub limited: Option<String>,
}

/// One simulated node.
#[derive(Debug)]
pub struct SimNode {
    pub id: NodeId,
    pub name: String,
    pub runtime: Arc<SimRuntime>,
}

/// N simulated agents connected to one cloud.
#[derive(Debug)]
pub struct Fleet {
    nodes: Vec<SimNode>,
    tally: Arc<Tally>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<Result<(), AgentError>>>,
    setup: Setup,
    // Last: the agents' tasks end with the runtime.
    rt: Option<tokio::runtime::Runtime>,
}

/// Enrolls one node the way `skerry-edge` does, keeping its identity in memory.
async fn enroll_one(
    client: &reqwest::Client,
    cloud: &str,
    env: &str,
    name: &Name,
    profile: &FirmwareProfile,
) -> anyhow::Result<Identity> {
    let answer = client
        .post(format!("{cloud}/api/v1/enrollment-tokens"))
        .json(&json!({ "env": env }))
        .send()
        .await?;
    let status = answer.status();
    let body: Value = answer.json().await?;
    if status.as_u16() != 201 {
        bail!("enrollment-tokens answered {status}: {body}");
    }
    let token = body["token"]
        .as_str()
        .context("an enrollment token answer without a token")?;
    Ok(skerry_edge::enroll::request(cloud, token, name, profile).await?)
}

impl Fleet {
    /// Enrolls `options.nodes` nodes into `options.env` of `cloud`, starts an agent for
    /// each, and waits until the cloud has seen every one (see the module docs).
    pub fn start(cloud: &Cloud, options: &FleetOptions) -> anyhow::Result<Fleet> {
        crate::http::init_crypto();
        let open_files = raise_open_files()?;
        let mut room = open_files
            .soft
            .saturating_sub(fd_use(std::process::id()).map_or(0, |(_, open)| open))
            .saturating_sub(RESERVE_FDS);
        let cloud_limit = cloud.pid().and_then(fd_use);
        if let Some((soft, open)) = cloud_limit {
            room = room.min(soft.saturating_sub(open).saturating_sub(RESERVE_FDS));
        }
        let n = options
            .nodes
            .min(usize::try_from(room).unwrap_or(usize::MAX));
        let limited = (n < options.nodes).then(|| {
            format!(
                "the open-files limit stops the simulator at {n} of {} nodes: this process's \
                 soft limit is {} (hard {}), the cloud's is {}; each node needs one \
                 descriptor in each",
                options.nodes,
                open_files.soft,
                open_files.hard,
                cloud_limit.map_or_else(|| "unknown".to_owned(), |(s, _)| s.to_string()),
            )
        });
        if let Some(why) = &limited {
            eprintln!("fleet simulator: {why}");
        }
        let profile = skerry_shared::profile::builtin(&options.profile)
            .with_context(|| format!("no built-in profile {}", options.profile))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.threads.max(1))
            .thread_name("fleet-sim")
            .enable_all()
            .build()
            .context("the simulator's tokio runtime")?;

        let url = cloud.url();
        let started = Instant::now();
        let identities: Vec<Identity> = rt.block_on(async {
            let client = reqwest::Client::builder()
                .default_headers(crate::http::bearer(cloud.token()))
                .pool_max_idle_per_host(options.enroll_concurrency)
                .pool_idle_timeout(skerry_cloud::api::server::CLIENT_POOL_IDLE)
                .build()?;
            futures_util::stream::iter(0..n)
                .map(|i| {
                    let (client, url, profile) = (&client, &url, &profile);
                    async move {
                        let name = Name::parse(&format!("sim-{i:05}"))
                            .map_err(|e| anyhow::anyhow!("node name: {e}"))?;
                        enroll_one(client, url, &options.env, &name, profile)
                            .await
                            .with_context(|| format!("enrolling {name}"))
                    }
                })
                .buffer_unordered(options.enroll_concurrency.max(1))
                .try_collect()
                .await
        })?;
        let enroll = started.elapsed();

        let tally = Arc::new(Tally::default());
        let (stop, _) = watch::channel(false);
        let mut nodes = Vec::with_capacity(n);
        let mut tasks = Vec::with_capacity(n);
        let data = std::env::temp_dir().join("skerry-fleet-sim-never-created");
        let started = Instant::now();
        for identity in identities {
            let runtime = Arc::new(SimRuntime::new(
                RuntimeKind::Docker,
                options.start_delay,
                Arc::clone(&tally),
            ));
            let runtimes: Vec<Arc<dyn skerry_edge::runtime::Runtime>> = vec![
                Arc::clone(&runtime) as Arc<dyn skerry_edge::runtime::Runtime>,
                Arc::new(SimRuntime::new(
                    RuntimeKind::Process,
                    options.start_delay,
                    Arc::clone(&tally),
                )),
            ];
            let config = AgentConfig {
                data: data.join(identity.node_id().to_string()),
                cloud: None,
                token: None,
                name: identity.name().clone(),
                profile: profile.clone(),
                runtimes: vec![RuntimeKind::Docker, RuntimeKind::Process],
                runtime_log: None,
                clock: skerry_edge::clock::Clock::system(),
            };
            nodes.push(SimNode {
                id: identity.node_id(),
                name: identity.name().as_str().to_owned(),
                runtime,
            });
            let parts = Parts {
                identity,
                journal: Arc::new(WatchedJournal::new(Arc::clone(&tally))),
                runtimes,
                docker: false,
                rebuild: false,
                link: Box::new(MqttLink),
                // Simulated nodes enroll without keys for secrets.
                secrets_key: None,
            };
            let mut stopped = stop.subscribe();
            tasks.push(rt.spawn(run_with(config, parts, async move {
                let _ = stopped.wait_for(|s| *s).await;
            })));
        }

        let mut fleet = Fleet {
            nodes,
            tally,
            stop,
            tasks,
            setup: Setup {
                wanted: options.nodes,
                nodes: n,
                enroll,
                connect: Duration::ZERO,
                open_files,
                cloud_open_files: cloud_limit.map(|(s, _)| s),
                limited,
            },
            rt: Some(rt),
        };
        let api = cloud.api()?;
        // A node list costs the cloud more the larger the fleet: poll less often.
        let poll = Duration::from_millis((n as u64 / 20).clamp(20, 500));
        let deadline = started + options.connect_timeout;
        loop {
            if let Some(failed) = fleet.failed() {
                bail!("a simulated agent stopped while connecting: {failed}");
            }
            let seen = fleet.seen_by_cloud(&api)?;
            if seen >= n {
                break;
            }
            if Instant::now() >= deadline {
                let (soft, open) = fd_use(std::process::id()).unwrap_or((0, 0));
                let cloud = cloud.pid().and_then(fd_use);
                bail!(
                    "{seen} of {n} simulated nodes connected within {:?}; open files here: {open} \
                     of {soft}, in the cloud: {}",
                    options.connect_timeout,
                    cloud.map_or_else(|| "unknown".to_owned(), |(s, o)| format!("{o} of {s}"))
                );
            }
            std::thread::sleep(poll);
        }
        fleet.setup.connect = started.elapsed();
        Ok(fleet)
    }

    /// How many of the fleet's nodes the cloud has a hello or heartbeat from.
    fn seen_by_cloud(&self, api: &Api) -> anyhow::Result<usize> {
        let ids: std::collections::HashSet<String> =
            self.nodes.iter().map(|n| n.id.to_string()).collect();
        let list = api.get_json("/api/v1/nodes")?;
        Ok(list.as_array().map_or(0, |nodes| {
            nodes
                .iter()
                .filter(|n| {
                    n["id"].as_str().is_some_and(|id| ids.contains(id)) && !n["last_seen"].is_null()
                })
                .count()
        }))
    }

    /// The first agent that stopped with an error, if one did.
    fn failed(&mut self) -> Option<String> {
        let rt = self.rt.as_ref()?;
        for task in &mut self.tasks {
            if task.is_finished() {
                return Some(match rt.block_on(task) {
                    Ok(Ok(())) => "it returned".to_owned(),
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => e.to_string(),
                });
            }
        }
        None
    }

    pub fn nodes(&self) -> &[SimNode] {
        &self.nodes
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn setup(&self) -> &Setup {
        &self.setup
    }

    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// Waits until every node committed `instance`; the time of the last commit.
    pub fn wait_committed(&self, instance: &str, timeout: Duration) -> Option<Instant> {
        wait_for(timeout, || {
            let commits = self.tally.commits(instance);
            (commits.len() >= self.nodes.len())
                .then(|| commits.iter().copied().max())
                .flatten()
        })
    }

    /// Waits until `replicas` replicas of `instance` started; the time of the last start.
    pub fn wait_started(
        &self,
        instance: &str,
        replicas: usize,
        timeout: Duration,
    ) -> Option<Instant> {
        wait_for(timeout, || {
            let starts = self.tally.starts(instance);
            (starts.len() >= replicas)
                .then(|| starts.iter().copied().max())
                .flatten()
        })
    }

    /// Stops every agent and waits for them to end; an error names the first agent that
    /// failed.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.stop.send_replace(true);
        let tasks = std::mem::take(&mut self.tasks);
        let rt = self
            .rt
            .as_ref()
            .context("the simulator's runtime is gone")?;
        let outcomes = rt.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(60),
                futures_util::future::join_all(tasks),
            )
            .await
        });
        let outcomes = outcomes.context("the simulated agents did not stop within 60 s")?;
        for (node, outcome) in self.nodes.iter().zip(outcomes) {
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(e)) => bail!("agent {} stopped with an error: {e}", node.name),
                Err(e) => bail!("agent {} failed: {e}", node.name),
            }
        }
        Ok(())
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}
