//! What an agent reports about its replicas.
//!
//! The agent sends a [`StatusReport`] when a replica's state, restart count or health
//! changes, and a complete one after every connect, so the cloud's view is whole again
//! after either side restarts.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::hash::Digest;
use crate::ids::Name;

/// A replica's state, as `skerry status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaState {
    /// Desired, not started: waiting on dependencies, an image, or the runtime.
    Pending,
    /// Created and starting.
    Starting,
    /// Running (no health check, or no verdict yet).
    Running,
    /// Running and its health check passes.
    Healthy,
    /// Running and its health check fails.
    Unhealthy,
    /// An `init` (or a job run) that exited 0.
    Succeeded,
    /// Exited with an error (an `init` that failed, or a service that will not restart).
    Failed { code: i64 },
    /// Cannot run here: the reason says why.
    Unschedulable,
    /// An image pull failed; the agent tries again at `next_try` (the reason has the
    /// registry's message).
    ImagePullBackOff { next_try: crate::clock::Timestamp },
    /// Exited (it keeps exiting, or was stopped from outside) and waits for its restart at
    /// `next_try`, under the restart backoff (the reason has the exit).
    CrashLoopBackOff { next_try: crate::clock::Timestamp },
    /// Its instance is stopped on this node (`skerry stop`): it does not run until
    /// `skerry start`.
    Stopped,
}

impl fmt::Display for ReplicaState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplicaState::Pending => f.write_str("Pending"),
            ReplicaState::Starting => f.write_str("Starting"),
            ReplicaState::Running => f.write_str("Running"),
            ReplicaState::Healthy => f.write_str("Healthy"),
            ReplicaState::Unhealthy => f.write_str("Unhealthy"),
            ReplicaState::Succeeded => f.write_str("Succeeded"),
            ReplicaState::Failed { code } => write!(f, "Failed ({code})"),
            ReplicaState::Unschedulable => f.write_str("Unschedulable"),
            ReplicaState::ImagePullBackOff { .. } => f.write_str("ImagePullBackOff"),
            ReplicaState::CrashLoopBackOff { .. } => f.write_str("CrashLoopBackOff"),
            ReplicaState::Stopped => f.write_str("Stopped"),
        }
    }
}

/// One replica's state on the reporting node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaReport {
    pub instance: Name,
    pub component: Name,
    pub replica: u32,
    pub state: ReplicaState,
    /// Restarts the agent or the runtime made since the replica was created.
    pub restarts: u32,
    /// Why it is in this state (the last exit, a missing image, a failing dependency).
    pub reason: Option<String>,
    /// The spec hash it runs (the `io.skerry.spec-hash` label).
    pub spec_hash: Digest,
    /// Host ports published for it, as `container:host`.
    pub ports: Vec<(u16, u16)>,
}

/// A batch of replica reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// True when `replicas` is everything the node runs: the cloud replaces its view of
    /// the node. False: only these replicas changed.
    pub complete: bool,
    pub replicas: Vec<ReplicaReport>,
    /// Replicas that are gone (undeployed, scaled down), by (instance, component, replica).
    pub removed: Vec<(Name, Name, u32)>,
}

/// How a replica's process last ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastExit {
    /// When the agent saw it end.
    pub at: crate::clock::Timestamp,
    /// In words: `exited 137`, `exited 3`, `OOM killed`.
    pub reason: String,
}

/// A replica's report with how it last ended: what the outbox carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    pub report: ReplicaReport,
    /// The last exit of its process, kept while it runs again after a restart.
    pub last_exit: Option<LastExit>,
}

impl From<ReplicaReport> for ReplicaStatus {
    fn from(report: ReplicaReport) -> Self {
        Self {
            report,
            last_exit: None,
        }
    }
}
