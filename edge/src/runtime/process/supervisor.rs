//! The supervisor: one task per replica that keeps its process running.
//!
//! It watches the process (waits for a child; polls `/proc` every 500 ms for an adopted
//! process, which it cannot wait for), runs the health checks, keeps the output files of
//! a replica without a `log_dir` bounded (`forward.rs`), and on an exit applies the restart policy with its
//! backoff. Every start and exit is written to the replica's state file. A stop request
//! terminates the process group; a dropped runtime (the sender gone, or the task
//! aborted) leaves the process running, to be adopted by the next agent.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use skerry_shared::ids::NodeId;
use skerry_shared::planner::Phase;
use tokio::process::Child;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::cgroup::{self, Limits};
use super::forward::Forward;
use super::launch::{Launch, SpawnError};
use super::policy::{self, Backoff, Exit};
use super::state::{self, FORMAT, Paths, ProcessId, Record, SavedSpec};
use super::status::{SharedStatus, Status};
use super::{group, health};
use crate::runtime::ReplicaSpec;

/// How long a stopped process gets between SIGTERM and SIGKILL.
pub(super) const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long to wait for a process after SIGKILL before giving up on it.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// How often an adopted process is looked for in `/proc`.
const ADOPTED_POLL: Duration = Duration::from_millis(500);
/// How often the output files of a replica without a `log_dir` are checked for rotation.
const FORWARD_EVERY: Duration = Duration::from_secs(1);

/// How the supervisor begins.
#[derive(Debug)]
pub(super) enum Begin {
    /// Watch a process that `start` has just spawned.
    Child(Child, ProcessId),
    /// Watch a process of an earlier agent, found alive.
    Adopted(ProcessId),
    /// Start one after this wait: a restart that was pending when the agent died (the
    /// rest of its backoff), or one after an exit.
    Restart(Duration),
}

/// How watching a process ended.
enum Outcome {
    Exited(Exit),
    /// Stopped on request.
    Stopped,
    /// The runtime is gone: leave the process alone.
    Detached,
}

/// A task that is aborted when its handle goes.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One replica's supervisor.
#[derive(Debug)]
pub(super) struct Supervisor {
    node: NodeId,
    spec: ReplicaSpec,
    launch: Arc<Launch>,
    paths: Arc<Paths>,
    cgroup_root: Arc<std::path::PathBuf>,
    limits: Option<Limits>,
    status: SharedStatus,
    stop: watch::Receiver<bool>,
    enforcement_logged: bool,
    forwards: Vec<Forward>,
    /// The crash-loop backoff, saved with every exit.
    backoff: Backoff,
}

impl Supervisor {
    pub(super) fn new(
        spec: ReplicaSpec,
        launch: Arc<Launch>,
        paths: Arc<Paths>,
        cgroup_root: Arc<std::path::PathBuf>,
        status: SharedStatus,
        stop: watch::Receiver<bool>,
    ) -> Self {
        let forwards = if launch.forward_output {
            vec![
                Forward::new(launch.stdout.clone()),
                Forward::new(launch.stderr.clone()),
            ]
        } else {
            Vec::new()
        };
        Self {
            node: spec.node,
            limits: Limits::of(&spec.component),
            spec,
            launch,
            paths,
            cgroup_root,
            status,
            stop,
            enforcement_logged: false,
            forwards,
            backoff: Backoff::new(),
        }
    }

    /// Goes on with a backoff saved by an earlier agent.
    pub(super) fn resume_backoff(&mut self, backoff: Backoff) {
        self.backoff = backoff;
    }

    /// Starts a process (counting a restart when `restart`), puts it in its cgroup and
    /// records it in the state file. A process that cannot be recorded is killed: one
    /// that the next agent could not find would run twice.
    pub(super) async fn spawn(&mut self, restart: bool) -> Result<(Child, ProcessId), SpawnError> {
        let mut next = self.status.lock().clone();
        if restart {
            next.restarts = next.restarts.saturating_add(1);
            // Attempts count, whether they start or not.
            self.status.lock().restarts = next.restarts;
        }
        let mut child = self.launch.spawn()?;
        let process = child
            .id()
            .ok_or_else(|| std::io::Error::other("it exited before its pid was read"))
            .and_then(ProcessId::of_child);
        let process = match process {
            Ok(p) => p,
            Err(e) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err(SpawnError::Io(format!("cannot identify the process: {e}")));
            }
        };
        let enforcement = self.limits.and_then(|limits| {
            cgroup::enforce(&self.cgroup_root, &self.spec.key, &limits, process.pid)
                .err()
                .map(|why| format!("resources not enforced: {why}"))
        });
        if let Some(why) = &enforcement
            && !self.enforcement_logged
        {
            tracing::info!(replica = %self.spec.key, "{why}");
            self.enforcement_logged = true;
        }
        next.phase = Phase::Running;
        next.pid = Some(process.pid);
        next.enforcement = enforcement;
        // On disk before it is reported.
        let record = self.record(&next, Some(&process), None, None);
        if let Err(e) = persist(&self.paths, record).await {
            group::signal(&process, Signal::SIGKILL);
            let _ = child.wait().await;
            return Err(SpawnError::Io(format!("cannot record the process: {e}")));
        }
        *self.status.lock() = next;
        tracing::debug!(replica = %self.spec.key, pid = process.pid, restart, "process started");
        Ok((child, process))
    }

    /// Supervises until the replica is stopped, exits for good, or the runtime goes.
    pub(super) async fn run(mut self, begin: Begin) {
        let mut next = begin;
        loop {
            if let Begin::Restart(delay) = next
                && !delay.is_zero()
            {
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = stop_signal(&mut self.stop) => return,
                }
            }
            let started = Instant::now();
            let outcome = match next {
                Begin::Child(child, process) => self.watch(Some(child), process).await,
                Begin::Adopted(process) => self.watch(None, process).await,
                Begin::Restart(_) => match self.spawn(true).await {
                    Ok((child, process)) => self.watch(Some(child), process).await,
                    Err(e) => Outcome::Exited(Exit::SpawnFailed(e.message().to_owned())),
                },
            };
            let exit = match outcome {
                Outcome::Exited(exit) => exit,
                Outcome::Stopped | Outcome::Detached => return,
            };
            match self.exited(&exit, started.elapsed()).await {
                Some(delay) => next = Begin::Restart(delay),
                None => return,
            }
        }
    }

    /// Records an exit of a process that ran for `uptime` in the status and the state
    /// file, with the restart that follows (if the policy says so) and its backoff. Returns
    /// the wait before that restart.
    pub(super) async fn exited(&mut self, exit: &Exit, uptime: Duration) -> Option<Duration> {
        let restart = policy::restarts(&self.spec.component, exit);
        let delay = restart.then(|| self.backoff.delay(uptime));
        let mut next = self.status.lock().clone();
        next.phase = Phase::Exited { code: exit.code() };
        next.pid = None;
        next.last_exit = Some(exit.describe());
        next.exited_at = Some(skerry_shared::clock::Timestamp::now());
        next.generation = next.generation.wrapping_add(1);
        tracing::info!(replica = %self.spec.key, exit = %exit.describe(), restart, "process ended");
        self.launch.remove_secrets();
        // On disk before it is reported.
        let record = self.record(&next, None, Some(exit.code()), delay);
        if let Err(e) = persist(&self.paths, record).await {
            tracing::warn!(replica = %self.spec.key, error = %e, "cannot record an exit");
        }
        *self.status.lock() = next;
        delay
    }

    /// Watches one process until it exits, is stopped, or the runtime goes. `child` is
    /// `None` for an adopted process.
    async fn watch(&mut self, child: Option<Child>, process: ProcessId) -> Outcome {
        let generation = {
            let mut s = self.status.lock();
            s.phase = Phase::Running;
            s.pid = Some(process.pid);
            s.generation = s.generation.wrapping_add(1);
            s.generation
        };
        let _health = self.spec.component.health.clone().map(|h| {
            AbortOnDrop(health::spawn(
                h,
                Arc::clone(&self.launch),
                Arc::clone(&self.status),
                generation,
                self.spec.key.clone(),
            ))
        });
        let wait = wait_for(child, process.clone());
        tokio::pin!(wait);
        let mut tick = tokio::time::interval(FORWARD_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let forwarding = !self.forwards.is_empty();
        let outcome = loop {
            tokio::select! {
                exit = &mut wait => break Outcome::Exited(exit),
                stop = stop_signal(&mut self.stop) => {
                    if !stop {
                        break Outcome::Detached;
                    }
                    terminate(&process, wait.as_mut()).await;
                    break Outcome::Stopped;
                }
                _ = tick.tick(), if forwarding => self.forward(),
            }
        };
        self.forward();
        if !matches!(outcome, Outcome::Detached) {
            // What the process left in its group goes with it, as in a container.
            group::signal(&process, Signal::SIGKILL);
        }
        outcome
    }

    fn forward(&mut self) {
        for f in &mut self.forwards {
            f.poll(&self.spec.key);
        }
    }

    fn record(
        &self,
        s: &Status,
        process: Option<&ProcessId>,
        exit_code: Option<i64>,
        restart_in: Option<Duration>,
    ) -> Record {
        let restart_at = restart_in.map(|d| {
            let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
            skerry_shared::clock::Timestamp::now().plus_millis(ms).0
        });
        Record {
            format: FORMAT,
            node: self.node,
            key: self.spec.key.clone(),
            spec_hash: self.spec.spec_hash,
            spec: SavedSpec::of(&self.spec),
            pid: process.map(|p| p.pid),
            pgid: process.map(|p| p.pgid),
            start_time: process.map(|p| p.start_time),
            boot_id: process.and_then(|p| p.boot_id.clone()),
            restarts: s.restarts,
            last_exit: s.last_exit.clone(),
            exit_code,
            restart_pending: restart_in.is_some(),
            enforcement: s.enforcement.clone(),
            exited_at: s.exited_at.map(|t| t.0),
            backoff_ms: Some(self.backoff.saved()),
            restart_at,
        }
    }
}

/// Writes a record off the async thread (it fsyncs).
async fn persist(paths: &Arc<Paths>, record: Record) -> Result<(), String> {
    let paths = Arc::clone(paths);
    tokio::task::spawn_blocking(move || state::write(&paths, &record))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// Resolves when the process is gone.
async fn wait_for(child: Option<Child>, process: ProcessId) -> Exit {
    match child {
        Some(mut child) => match child.wait().await {
            Ok(status) => Exit::from_status(status),
            Err(e) => {
                tracing::warn!(pid = process.pid, error = %e, "cannot wait for a process");
                while process.running() {
                    tokio::time::sleep(ADOPTED_POLL).await;
                }
                Exit::Unknown
            }
        },
        None => {
            while process.running() {
                tokio::time::sleep(ADOPTED_POLL).await;
            }
            Exit::Unknown
        }
    }
}

/// SIGTERM to the group, [`STOP_GRACE`] to go, then SIGKILL.
async fn terminate(process: &ProcessId, mut wait: Pin<&mut impl Future<Output = Exit>>) {
    group::signal(process, Signal::SIGTERM);
    if tokio::time::timeout(STOP_GRACE, wait.as_mut())
        .await
        .is_ok()
    {
        return;
    }
    tracing::warn!(
        pid = process.pid,
        "did not stop within {STOP_GRACE:?} of SIGTERM; killing it"
    );
    group::signal(process, Signal::SIGKILL);
    if tokio::time::timeout(KILL_WAIT, wait).await.is_err() {
        tracing::warn!(
            pid = process.pid,
            "still there after SIGKILL; giving up on it"
        );
    }
}

/// Resolves with true when the runtime asks for a stop, or false when the runtime is
/// gone (detach).
async fn stop_signal(rx: &mut watch::Receiver<bool>) -> bool {
    loop {
        if *rx.borrow_and_update() {
            return true;
        }
        if rx.changed().await.is_err() {
            return *rx.borrow();
        }
    }
}
