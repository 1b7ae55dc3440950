//! Health checks of a running replica, run on the host.
//!
//! Every `interval` (the first one `interval` after the start), the check runs with the
//! replica's environment and working directory, in its own process group, and is killed
//! after `timeout`. A success makes the replica Healthy; `retries` failures in a row make
//! it Unhealthy; before the first verdict it stays Running.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use skerry_shared::manifest::Health;
use skerry_shared::planner::{Phase, ReplicaKey};
use tokio::process::Command;
use tokio::task::JoinHandle;

use super::group;
use super::launch::{Launch, resolve};
use super::status::SharedStatus;

/// Starts checking the run `generation` of a replica. The task ends by itself when the
/// status moves on to another run; the supervisor also aborts it.
pub(super) fn spawn(
    health: Health,
    launch: Arc<Launch>,
    status: SharedStatus,
    generation: u64,
    key: ReplicaKey,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let interval = Duration::from_millis(health.interval_ms().max(1));
        let timeout = Duration::from_millis(health.timeout_ms().max(1));
        let retries = health.retries().max(1);
        let mut failures = 0u32;
        loop {
            tokio::time::sleep(interval).await;
            let result = check(&health.command, &launch, timeout).await;
            let mut s = status.lock();
            if s.generation != generation || s.phase.exited() {
                return;
            }
            let before = s.phase;
            match &result {
                Ok(()) => {
                    failures = 0;
                    s.phase = Phase::Healthy;
                }
                Err(_) => {
                    failures = failures.saturating_add(1);
                    if failures >= retries {
                        s.phase = Phase::Unhealthy;
                    }
                }
            }
            if s.phase != before {
                match &result {
                    Ok(()) => tracing::info!(replica = %key, "healthy"),
                    Err(why) => tracing::info!(replica = %key, %why, "unhealthy"),
                }
            }
        }
    })
}

/// Runs the check once.
async fn check(argv: &[String], launch: &Launch, timeout: Duration) -> Result<(), String> {
    let program = resolve(argv, &launch.search_path())?;
    let mut cmd = Command::new(&program);
    cmd.args(argv.iter().skip(1))
        .env_clear()
        .envs(&launch.env)
        .current_dir(&launch.work_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("health check {}: {e}", program.display()))?;
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("health check {status}")),
        Ok(Err(e)) => Err(format!("health check: {e}")),
        Err(_) => {
            // Not reaped yet, so its pid (its group's id) is still ours.
            if let Some(pid) = child.id() {
                group::send(pid, Signal::SIGKILL);
            }
            Err(format!("health check timed out after {timeout:?}"))
        }
    }
}
