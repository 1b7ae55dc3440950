//! The process runtime: `exec` components as supervised native processes of the host,
//! for hosts without a container engine.
//!
//! # Supervision
//! Each replica has a supervisor task (`supervisor.rs`) that starts `exec` (`argv[0]` an
//! absolute path, or a name looked up in the replica's `PATH`, else the agent's) with
//! exactly the replica's environment plus `SKERRY_STORAGE_<NAME>` for each named storage
//! (`{state_dir}/storage/{instance}/{storage}`, 0700, kept until `purge_storage`), in its
//! own working directory (`{state_dir}/work/{instance}.{component}.{replica}`, emptied at
//! each `start`, removed at `stop`) and its own process group, with stdin from
//! `/dev/null`. Output is appended to `{log_dir}/{component}-{replica}.stdout.log` and
//! `.stderr.log` when the component has a `log_dir`; otherwise to files of the agent's,
//! [`output_dir`]`/{instance}.{component}.{replica}.stdout.log` and `.stderr.log`, which
//! the log collector ships as `(stdout)` and `(stderr)` and the supervisor rotates by copy
//! and truncate past 4 MiB (`forward.rs` says why files, not a pipe).
//!
//! Restarts follow Docker: `always` on any exit, `on-failure` on anything but `exit 0`,
//! `never` not at all; an `init` or a `job` is never restarted. The wait before a restart
//! is the agent's restart backoff ([`crate::backoff::RESTART`]: 1 s, doubling up to
//! 5 min, back to 1 s after a run of 60 s); it is kept in the state file with each exit, so
//! an agent restart goes on with it. Restarts
//! (attempts included) are counted, and the last exit is kept in words (`exited 3`,
//! `killed by signal 9`). While it waits to restart, a replica is `Exited`.
//!
//! A `health` command runs on the host (`health.rs`); before its first verdict a replica is
//! `Running`, then `Healthy` after a success and `Unhealthy` after `retries` failures in a
//! row. What the runtime reports about a replica is one shared status (`status.rs`), which
//! the supervisor and its health checker write: the supervisor uses the health checker,
//! never the other way round.
//!
//! `stop` sends SIGTERM to the process group, waits up to 10 s, then sends SIGKILL, and
//! kills what is left in the group; the supervisor ends without a restart, and the state
//! file and the working directory are removed. A process that leaves its group (`setsid`,
//! a daemon's double fork) escapes this, as it would escape any supervisor without cgroups.
//!
//! # Adoption
//! Processes outlive the agent: they lead their own process group (a signal to the
//! agent's group does not reach them), are not killed when their handle is dropped, and
//! write to files, not to pipes that would break. Dropping a [`ProcessRuntime`] aborts the
//! supervisors and leaves the processes running, as `kill -9` of the agent would.
//!
//! So that the next agent finds them, every start and exit is written atomically to
//! `{state_dir}/replicas/{instance}.{component}.{replica}.json` (see `state.rs`): node,
//! spec hash, the spec itself (to restart it), pid and process group, the start time from
//! `/proc/PID/stat` and the boot id (against pid reuse and reboots), restarts, last exit.
//! [`Runtime::observe`] reads these files and adopts each replica of the node that it does
//! not supervise yet:
//! - a process that is alive, with its recorded start time and boot, gets a new
//!   supervisor that polls `/proc/PID` every 500 ms (it cannot `wait()` for a process that
//!   is not its child); when the process is gone, its exit code is unknown (-1), and the
//!   restart policy applies as to any exit;
//! - a process that died while no agent watched it (or before a reboot) is an exit with
//!   an unknown code: restarted at once if its policy says so, else `Exited { code: -1 }`;
//! - a replica that had exited is `Exited` with its recorded code, and started again if a
//!   restart was due.
//!
//! That is how a `kill -9` of the agent and a restart leave exactly one process per
//! replica. Calls are serialized: `start`, `stop` and the adoption in `observe` take one
//! lock, so adoption never races a start of the same replica.
//!
//! # Resources
//! A component with a CPU or memory limit gets a cgroup v2 group,
//! `/sys/fs/cgroup/skerry/{instance}-{component}-{replica}` with `memory.max` and
//! `cpu.max`, and its process is moved there right after it starts (so what it does in
//! its first instant is not limited). See `cgroup.rs`. Where that is not possible (no
//! cgroup v2, a read-only hierarchy, a missing controller), the process runs anyway, the
//! agent logs `resources not enforced: <why>` once per replica at info, and the runtime
//! reports it: [`ProcessRuntime::enforcement`] returns it, and
//! [`ObservedReplica::last_exit`] carries it as long as the replica has no exit to report
//! (the seam has no field of its own for it).
//!
//! # Networks
//! Processes share the host's network: `create_network` and `remove_network` do nothing,
//! and `observe` reports no networks.

mod cgroup;
mod forward;
mod group;
mod health;
mod launch;
mod policy;
mod state;
mod status;
mod supervisor;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use nix::sys::signal::Signal;
use parking_lot::Mutex;
use skerry_shared::hash::Digest;
use skerry_shared::ids::{Name, NodeId};
use skerry_shared::manifest::RuntimeKind;
use skerry_shared::planner::{Phase, ReplicaKey};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::launch::Launch;
use self::policy::{Backoff, Exit};
use self::state::{Paths, Record};
use self::status::{SharedStatus, Status};
use self::supervisor::{Begin, Supervisor};
use crate::runtime::{Observed, ObservedReplica, ReplicaSpec, Runtime, RuntimeError};

/// Where the agent keeps the process runtime's state under its data directory.
pub fn state_dir(data: &std::path::Path) -> PathBuf {
    data.join("process")
}

/// Where the process runtime of an agent with data directory `data` writes the output of
/// replicas without a `log_dir`: `{instance}.{component}.{replica}.stdout.log` and
/// `.stderr.log` (with their rotated copies, `.1`).
pub fn output_dir(data: &std::path::Path) -> PathBuf {
    state_dir(data).join("logs")
}

/// Supervised native processes (see the module doc).
#[derive(Debug)]
pub struct ProcessRuntime {
    paths: Arc<Paths>,
    cgroup_root: Arc<PathBuf>,
    replicas: Mutex<BTreeMap<(NodeId, ReplicaKey), Entry>>,
    /// Serializes start, stop and adoption.
    ops: tokio::sync::Mutex<()>,
}

/// A replica this runtime supervises (or knows to have exited).
#[derive(Debug)]
struct Entry {
    spec_hash: Digest,
    status: SharedStatus,
    stop: watch::Sender<bool>,
    /// `None` once nothing is left to supervise.
    task: Option<JoinHandle<()>>,
}

impl ProcessRuntime {
    /// A runtime that keeps its state files, working directories and named storage under
    /// `state_dir` (created, 0700). It adopts the processes recorded there at its first
    /// [`Runtime::observe`].
    pub fn new(state_dir: PathBuf) -> Result<Self, RuntimeError> {
        let paths = Paths::create(&state_dir).map_err(|e| {
            RuntimeError::Engine(format!(
                "cannot create the process runtime's directory {}: {e}",
                state_dir.display()
            ))
        })?;
        Ok(Self {
            paths: Arc::new(paths),
            cgroup_root: Arc::new(PathBuf::from(cgroup::ROOT)),
            replicas: Mutex::new(BTreeMap::new()),
            ops: tokio::sync::Mutex::new(()),
        })
    }

    /// Uses another cgroup v2 mount point than `/sys/fs/cgroup` (a host that mounts it
    /// elsewhere, or a test).
    pub fn with_cgroup_root(mut self, root: PathBuf) -> Self {
        self.cgroup_root = Arc::new(root);
        self
    }

    /// `resources not enforced: <why>` when the replica's limits could not be applied;
    /// `None` when they are, or when it has none.
    pub fn enforcement(&self, node: NodeId, key: &ReplicaKey) -> Option<String> {
        let replicas = self.replicas.lock();
        let entry = replicas.get(&(node, key.clone()))?;
        entry.status.lock().enforcement.clone()
    }

    fn supervisor(
        &self,
        spec: ReplicaSpec,
        launch: Arc<Launch>,
        status: SharedStatus,
    ) -> (Supervisor, watch::Sender<bool>) {
        let (tx, rx) = watch::channel(false);
        let sup = Supervisor::new(
            spec,
            launch,
            Arc::clone(&self.paths),
            Arc::clone(&self.cgroup_root),
            status,
            rx,
        );
        (sup, tx)
    }

    async fn start_replica(&self, spec: &ReplicaSpec) -> Result<(), RuntimeError> {
        if spec.component.exec.is_none() {
            return Err(RuntimeError::Unrunnable(format!(
                "{}: the process runtime runs exec components only",
                spec.key
            )));
        }
        let launch = Arc::new(Launch::of(&self.paths, spec));
        launch.check()?;
        let _ops = self.ops.lock().await;
        self.stop_locked(spec.node, &spec.key).await?;

        let prepared = {
            let (paths, spec, launch) =
                (Arc::clone(&self.paths), spec.clone(), Arc::clone(&launch));
            blocking(move || launch.prepare(&paths, &spec, true)).await?
        };
        prepared.map_err(|e| {
            RuntimeError::Engine(format!("{}: cannot prepare its directories: {e}", spec.key))
        })?;

        let status = Arc::new(Mutex::new(Status {
            phase: Phase::Starting,
            restarts: 0,
            last_exit: None,
            exited_at: None,
            pid: None,
            enforcement: None,
            generation: 0,
        }));
        let (mut sup, stop) = self.supervisor(spec.clone(), launch, Arc::clone(&status));
        let (child, process) = match sup.spawn(false).await {
            Ok(started) => started,
            Err(e) => {
                let work = self.paths.work(&spec.key);
                let _ = blocking(move || state::remove_any(&work)).await;
                return Err(RuntimeError::from(e));
            }
        };
        tracing::info!(replica = %spec.key, pid = process.pid, "started");
        let task = tokio::spawn(sup.run(Begin::Child(child, process)));
        let old = self.replicas.lock().insert(
            (spec.node, spec.key.clone()),
            Entry {
                spec_hash: spec.spec_hash,
                status,
                stop,
                task: Some(task),
            },
        );
        if let Some(old) = old {
            // Not expected: stop_locked removed it under the same lock.
            let _ = old.stop.send(true);
        }
        Ok(())
    }

    /// Stops a replica: the one this runtime supervises, or the one its state file names.
    /// The caller holds `ops`.
    async fn stop_locked(&self, node: NodeId, key: &ReplicaKey) -> Result<(), RuntimeError> {
        let entry = self.replicas.lock().remove(&(node, key.clone()));
        match entry {
            Some(entry) => {
                let _ = entry.stop.send(true);
                if let Some(task) = entry.task
                    && let Err(e) = task.await
                {
                    tracing::warn!(replica = %key, error = %e, "a supervisor failed");
                }
            }
            None => {
                let record = {
                    let (paths, key) = (Arc::clone(&self.paths), key.clone());
                    blocking(move || state::read(&paths, &key)).await?
                };
                let record = record.map_err(|e| {
                    RuntimeError::Engine(format!("{key}: cannot read its state file: {e}"))
                })?;
                match record {
                    // Another node's replica under the same key: not this call's.
                    Some(r) if r.node != node => return Ok(()),
                    Some(r) => {
                        if let Some(process) = r.process() {
                            group::terminate_detached(&process, supervisor::STOP_GRACE).await;
                        }
                    }
                    None => {}
                }
            }
        }
        cgroup::remove(&self.cgroup_root, key);
        crate::runtime::secrets::remove_files(node, key);
        let (paths, key2) = (Arc::clone(&self.paths), key.clone());
        let removed = blocking(move || {
            let (out, err) = paths.own_logs(&key2);
            for path in [paths.record(&key2), paths.work(&key2), out, err] {
                state::remove_any(&path)?;
            }
            Ok::<(), std::io::Error>(())
        })
        .await?;
        removed.map_err(|e| RuntimeError::Engine(format!("{key}: cannot remove its files: {e}")))
    }

    /// Takes over a replica that an earlier agent (or runtime) recorded. The caller holds
    /// `ops`.
    async fn adopt(&self, record: Record) {
        let key = record.key.clone();
        // Its secrets were in the last agent's memory only: stop it, and the reconciler
        // starts it again with them.
        if !record.spec.component.secrets.is_empty() {
            tracing::info!(replica = %key, "not adopting a process that uses secrets; it starts again");
            if let Err(e) = self.stop_locked(record.node, &key).await {
                tracing::warn!(replica = %key, error = %e, "cannot stop a process that uses secrets");
            }
            return;
        }
        let spec = record.spec.to_spec(record.node, &key, record.spec_hash);
        let launch = Arc::new(Launch::of(&self.paths, &spec));
        let recorded_exit = Phase::Exited {
            code: record.exit_code.unwrap_or(-1),
        };
        let status = Arc::new(Mutex::new(Status {
            phase: recorded_exit,
            restarts: record.restarts,
            last_exit: record.last_exit.clone(),
            exited_at: record.exited_at.map(skerry_shared::clock::Timestamp),
            pid: None,
            enforcement: record.enforcement.clone(),
            generation: 0,
        }));
        let (mut sup, stop) =
            self.supervisor(spec.clone(), Arc::clone(&launch), Arc::clone(&status));
        // The crash-loop backoff goes on where the last agent left it.
        sup.resume_backoff(Backoff::resume(record.backoff_ms));
        let begin = match record.process() {
            Some(process) if process.alive() => {
                tracing::info!(replica = %key, pid = process.pid, "adopted a running process");
                let mut s = status.lock();
                s.phase = Phase::Running;
                s.pid = Some(process.pid);
                Some(Begin::Adopted(process))
            }
            Some(process) => {
                if process.this_boot() {
                    group::signal(&process, Signal::SIGKILL);
                }
                let exit = Exit::Unknown;
                tracing::info!(
                    replica = %key,
                    pid = process.pid,
                    "its process died while no agent watched it"
                );
                // How long it ran is not known: no reset of the backoff.
                sup.exited(&exit, Duration::ZERO).await.map(Begin::Restart)
            }
            // A restart was pending: it waits what was left of its backoff.
            None => record.restart_pending.then(|| {
                let now = skerry_shared::clock::Timestamp::now().0;
                let left = record.restart_at.map_or(0, |at| at.saturating_sub(now));
                Begin::Restart(Duration::from_millis(u64::try_from(left).unwrap_or(0)))
            }),
        };
        if matches!(begin, Some(Begin::Restart(_))) {
            let (paths, spec, launch) =
                (Arc::clone(&self.paths), spec.clone(), Arc::clone(&launch));
            match blocking(move || launch.prepare(&paths, &spec, false)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(replica = %key, error = %e, "cannot prepare its directories")
                }
                Err(e) => {
                    tracing::warn!(replica = %key, error = %e, "cannot prepare its directories")
                }
            }
        }
        let task = begin.map(|b| tokio::spawn(sup.run(b)));
        self.replicas.lock().insert(
            (record.node, key),
            Entry {
                spec_hash: record.spec_hash,
                status,
                stop,
                task,
            },
        );
    }

    fn observed(&self, node: NodeId) -> Observed {
        let replicas = self
            .replicas
            .lock()
            .iter()
            .filter(|((n, _), _)| *n == node)
            .map(|((_, key), entry)| {
                let s = entry.status.lock();
                ObservedReplica {
                    key: key.clone(),
                    spec_hash: entry.spec_hash,
                    phase: s.phase,
                    restarts: s.restarts,
                    last_exit: s.last_exit.clone().or_else(|| s.enforcement.clone()),
                    exited: s
                        .last_exit
                        .clone()
                        .zip(s.exited_at)
                        .map(|(reason, at)| skerry_shared::report::LastExit { at, reason }),
                }
            })
            .collect();
        Observed {
            replicas,
            networks: Vec::new(),
        }
    }
}

impl Drop for ProcessRuntime {
    /// Stops supervising and leaves the processes running, for the next agent to adopt.
    fn drop(&mut self) {
        for entry in self.replicas.get_mut().values() {
            if let Some(task) = &entry.task {
                task.abort();
            }
        }
    }
}

impl Runtime for ProcessRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Process
    }

    fn observe(&self, node: NodeId) -> BoxFuture<'_, Result<Observed, RuntimeError>> {
        Box::pin(async move {
            let _ops = self.ops.lock().await;
            let paths = Arc::clone(&self.paths);
            let records = blocking(move || state::read_all(&paths))
                .await?
                .map_err(|e| {
                    RuntimeError::Engine(format!("cannot read the replicas' state files: {e}"))
                })?;
            for record in records {
                let known = self
                    .replicas
                    .lock()
                    .contains_key(&(node, record.key.clone()));
                if record.node == node && !known {
                    self.adopt(record).await;
                }
            }
            Ok(self.observed(node))
        })
    }

    fn create_network<'a>(
        &'a self,
        _node: NodeId,
        _instance: &'a Name,
    ) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(async { Ok(()) })
    }

    fn remove_network<'a>(
        &'a self,
        _node: NodeId,
        _instance: &'a Name,
    ) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(async { Ok(()) })
    }

    fn start<'a>(&'a self, spec: &'a ReplicaSpec) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(self.start_replica(spec))
    }

    fn stop<'a>(
        &'a self,
        node: NodeId,
        key: &'a ReplicaKey,
    ) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(async move {
            let _ops = self.ops.lock().await;
            self.stop_locked(node, key).await
        })
    }

    fn output_tail<'a>(
        &'a self,
        _node: NodeId,
        key: &'a ReplicaKey,
        component: &'a skerry_shared::manifest::Component,
        lines: usize,
    ) -> BoxFuture<'a, Result<Vec<String>, RuntimeError>> {
        let (stdout, stderr) = match &component.log_dir {
            Some(dir) => {
                let stem = format!("{}-{}", key.component, key.replica);
                let dir = PathBuf::from(dir);
                (
                    dir.join(format!("{stem}.stdout.log")),
                    dir.join(format!("{stem}.stderr.log")),
                )
            }
            None => self.paths.own_logs(key),
        };
        Box::pin(async move {
            blocking(move || {
                // Standard output's last lines, then standard error's.
                let mut out = forward::tail_lines(&stdout, lines);
                out.extend(forward::tail_lines(&stderr, lines));
                let extra = out.len().saturating_sub(lines);
                out.drain(..extra);
                out
            })
            .await
        })
    }

    fn purge_storage<'a>(
        &'a self,
        // The storage directories belong to this agent's state directory already.
        _node: NodeId,
        instance: &'a Name,
        storage: &'a Name,
    ) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(async move {
            let dir = self.paths.storage(instance, storage);
            let parent = self.paths.storage_instance(instance);
            let shown = dir.display().to_string();
            blocking(move || {
                state::remove_any(&dir)?;
                // The instance's directory goes with its last storage (fails while not empty).
                let _ = std::fs::remove_dir(&parent);
                Ok::<(), std::io::Error>(())
            })
            .await?
            .map_err(|e| RuntimeError::Engine(format!("cannot remove {shown}: {e}")))
        })
    }
}

/// Runs blocking file work off the async thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, RuntimeError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RuntimeError::Engine(format!("a file task failed: {e}")))
}
