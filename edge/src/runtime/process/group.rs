//! Signals to a replica's process group.
//!
//! A replica's process leads its own group (pgid = its pid), so a signal to the group
//! reaches what it started too. A pgid is a pid: Linux hands a number out again only once
//! no process and no group uses it. So the group is signalled only when its leader is
//! gone (then any process left in the group is a child of ours) or still the very process
//! recorded (same start time); a different process under that number means the group is
//! long gone and the number is someone else's.

use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::state::{ProcessId, proc_stat};

/// Sends `signal` to the group of `process` if it is still ours. Returns false when
/// nothing was signalled (no such group any more, or not ours).
pub(super) fn signal(process: &ProcessId, signal: Signal) -> bool {
    if proc_stat(process.pgid).is_some_and(|s| s.start_time != process.start_time) {
        return false;
    }
    send(process.pgid, signal)
}

/// `killpg`, ignoring a group that is gone.
pub(super) fn send(pgid: u32, signal: Signal) -> bool {
    let Ok(raw) = i32::try_from(pgid) else {
        return false;
    };
    if raw <= 1 {
        // 0 would be our own group and 1 init's; neither is a replica.
        return false;
    }
    match killpg(Pid::from_raw(raw), signal) {
        Ok(()) => true,
        Err(Errno::ESRCH) => false,
        Err(e) => {
            tracing::warn!(pgid, %signal, error = %e, "cannot signal a process group");
            false
        }
    }
}

/// Stops a process that this agent cannot wait for (adopted, or found on disk): SIGTERM
/// to its group, up to `grace` for it to go, then SIGKILL; then SIGKILL to whatever is
/// left in the group.
pub(super) async fn terminate_detached(process: &ProcessId, grace: Duration) {
    const POLL: Duration = Duration::from_millis(50);
    if process.alive() {
        signal(process, Signal::SIGTERM);
        let deadline = tokio::time::Instant::now() + grace;
        while process.alive() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
        }
        if process.alive() {
            tracing::warn!(pid = process.pid, "did not stop after SIGTERM; killing it");
        }
    }
    signal(process, Signal::SIGKILL);
}
