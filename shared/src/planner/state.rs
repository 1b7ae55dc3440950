//! What the runtime has, as the planner sees it, and the steps the planner returns.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::hash::Digest;
use crate::ids::Name;

/// One replica of one component of one instance on this node. Containers carry it as the
/// labels `io.skerry.instance`, `io.skerry.component` and `io.skerry.replica`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReplicaKey {
    pub instance: Name,
    pub component: Name,
    pub replica: u32,
}

impl ReplicaKey {
    pub fn new(instance: &Name, component: &Name, replica: u32) -> Self {
        Self {
            instance: instance.clone(),
            component: component.clone(),
            replica,
        }
    }
}

impl fmt::Display for ReplicaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}#{}", self.instance, self.component, self.replica)
    }
}

/// What the runtime says about a replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// Created, not yet running.
    Starting,
    /// Running; no health verdict (yet, or no health check).
    Running,
    /// Running and its health check passes.
    Healthy,
    /// Running and its health check fails.
    Unhealthy,
    /// Not running any more.
    Exited { code: i64 },
}

impl Phase {
    pub fn exited(self) -> bool {
        matches!(self, Phase::Exited { .. })
    }
}

/// A replica the runtime has (a container or a supervised process).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActualReplica {
    pub key: ReplicaKey,
    /// The `io.skerry.spec-hash` it was started with.
    pub spec_hash: Digest,
    pub phase: Phase,
}

/// An init that exited with a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedInit {
    pub spec_hash: Digest,
    /// The `deployed_at` of the instance it ran for.
    pub deployed_at: u64,
    pub code: i64,
}

/// What the node has: observed replicas and networks, and the recorded results of inits.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ActualState {
    /// Replicas by key; each value's `key` equals its map key ([`ActualState::insert`]).
    pub replicas: BTreeMap<ReplicaKey, ActualReplica>,
    /// Instances whose network exists.
    pub networks: BTreeSet<Name>,
    /// (instance, component, spec hash) of every init that exited 0. Old hashes are kept,
    /// so a rollback does not run an init again.
    pub inits_succeeded: BTreeSet<(Name, Name, Digest)>,
    /// The last failure of each (instance, component) init.
    pub inits_failed: BTreeMap<(Name, Name), FailedInit>,
}

impl ActualState {
    /// Adds or replaces a replica, by its key.
    pub fn insert(&mut self, replica: ActualReplica) {
        self.replicas.insert(replica.key.clone(), replica);
    }

    pub(super) fn init_succeeded(&self, instance: &Name, component: &Name, hash: Digest) -> bool {
        self.inits_succeeded
            .contains(&(instance.clone(), component.clone(), hash))
    }
}

/// Why a replica is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StopReason {
    /// Its instance is no longer desired on this node.
    Undeployed,
    /// Its component is not in the instance's manifest any more.
    Removed,
    /// Its index is beyond the component's replicas.
    Scaled,
    /// Its spec hash is not the desired one (an upgrade, a rollback, other overrides).
    Replaced,
    /// An init that exited and whose result is recorded.
    Completed,
    /// Its instance is stopped on this node (`skerry stop`).
    Stopped,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopReason::Undeployed => "undeployed",
            StopReason::Removed => "removed",
            StopReason::Scaled => "scaled",
            StopReason::Replaced => "replaced",
            StopReason::Completed => "completed",
            StopReason::Stopped => "stopped",
        })
    }
}

/// One step for the reconciler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    CreateNetwork {
        instance: Name,
    },
    RemoveNetwork {
        instance: Name,
    },
    /// Run an init to completion; on failure record a [`FailedInit`] with `deployed_at`.
    RunInit {
        key: ReplicaKey,
        spec_hash: Digest,
        deployed_at: u64,
    },
    Start {
        key: ReplicaKey,
        spec_hash: Digest,
    },
    /// Stop and remove.
    Stop {
        key: ReplicaKey,
        reason: StopReason,
    },
}

impl fmt::Display for Action {
    /// One line of `deploy --dry-run`: `create network weather`, `run init weather/migrate`,
    /// `start weather/db#0`, `stop weather/db#0 (replaced)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::CreateNetwork { instance } => write!(f, "create network {instance}"),
            Action::RemoveNetwork { instance } => write!(f, "remove network {instance}"),
            Action::RunInit { key, .. } => {
                write!(f, "run init {}/{}", key.instance, key.component)
            }
            Action::Start { key, .. } => write!(f, "start {key}"),
            Action::Stop { key, reason } => write!(f, "stop {key} ({reason})"),
        }
    }
}
