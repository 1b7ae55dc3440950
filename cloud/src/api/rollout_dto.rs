//! The JSON bodies of rollouts (`upgrade`, `rollback`, `rollout`), shared by the server
//! and the operator CLI.

use serde::{Deserialize, Serialize};

use super::dto::DeployNode;

/// `POST /api/v1/instances/{name}/upgrade`. Every field is optional: without `to` the
/// version stays and only `set` and `nodes` (weights) change.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradeBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// `1,10%,100%` (default `1,100%`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
    /// Default `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle: Option<String>,
    /// Default `10m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<u32>,
    /// `N` or `P%` (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failed: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_auto_rollback: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<String>,
    /// New weights of nodes the instance runs on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<DeployNode>,
    #[serde(default)]
    pub dry_run: bool,
}

/// `POST /api/v1/instances/{name}/rollback`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    /// `1,10%,100%` (default `1,100%`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
    /// Default `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle: Option<String>,
    /// Default `10m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<u32>,
    /// `N` or `P%` (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failed: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_auto_rollback: bool,
    #[serde(default)]
    pub dry_run: bool,
}

/// `POST /api/v1/instances/{name}/restart`: the components (every one when empty) and the
/// nodes (every node the instance runs on when empty), and the policy (`max_unavailable`
/// 1 unless given).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartBody {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    /// `1,10%,100%` (default `1,100%`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
    /// Default `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle: Option<String>,
    /// Default `10m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<u32>,
    /// `N` or `P%` (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failed: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
}

/// `POST /api/v1/instances/{name}/stop` and `.../start`: the nodes (every node the
/// instance runs on, and the instance as a whole, when empty).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodesBody {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
}

/// `POST /api/v1/instances/{name}/rollout`: `{"action": "pause" | "resume" | "abort"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutActionBody {
    pub action: String,
}

/// A node and why it is where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReasonDto {
    pub node: String,
    pub reason: String,
}

/// The policy as recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyDto {
    pub batches: Vec<String>,
    pub settle: String,
    pub timeout: String,
    pub max_unavailable: Option<u32>,
    pub max_failed: String,
    pub auto_rollback: bool,
}

/// One batch: its new nodes, and how far it got.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchDto {
    /// From 1.
    pub batch: u32,
    /// The batch's new nodes (its share less the batches before).
    pub nodes: Vec<String>,
    /// `pending`, `running`, `passed` or `failed`.
    pub state: String,
    pub started: Option<String>,
    pub finished: Option<String>,
    /// From its start to its end (or to now, while it runs).
    pub duration_ms: Option<i64>,
    pub changed: Vec<String>,
    pub passed: Vec<String>,
    pub failed: Vec<NodeReasonDto>,
    /// Its nodes skipped while offline.
    pub waiting: Vec<NodeReasonDto>,
}

/// `GET /api/v1/instances/{name}/rollout`: the running rollout, or the last one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RolloutDto {
    pub instance: String,
    pub id: u64,
    /// `upgrade`, `rollback` or `reconfigure`.
    pub kind: String,
    pub app: String,
    pub from_version: String,
    pub to_version: String,
    /// `running`, `paused`, `completed`, `rolled-back`, `failed` or `aborted`.
    pub state: String,
    /// Why it failed or was rolled back.
    pub reason: Option<String>,
    pub started: String,
    pub finished: Option<String>,
    pub policy: PolicyDto,
    /// The nodes it changes, in its order.
    pub nodes: usize,
    /// The nodes that passed so far.
    pub done: usize,
    pub batches: Vec<BatchDto>,
    /// Every node skipped while offline, and every node of the running batch not settled
    /// yet, with why.
    pub waiting: Vec<NodeReasonDto>,
    /// Every node that failed, with why.
    pub failed: Vec<NodeReasonDto>,
}

/// What `upgrade --dry-run` or `rollback --dry-run` would do; nothing is recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RolloutPlanDto {
    pub instance: String,
    pub kind: String,
    pub app: String,
    pub from_version: String,
    pub to_version: String,
    pub policy: PolicyDto,
    /// The new nodes of each batch, in order.
    pub batches: Vec<Vec<String>>,
    /// Per node: what would change on it.
    pub nodes: Vec<super::dto::NodePlanDto>,
}
