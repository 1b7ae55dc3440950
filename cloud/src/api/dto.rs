//! The REST API's JSON bodies, shared by the server and the operator CLI.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use skerry_shared::event::{Event, EventPayload};
use skerry_shared::manifest::Manifest;
use skerry_shared::profile::FirmwareProfile;

/// `{"error": {...}}`: every refusal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// `POST /api/v1/environments`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateEnvironment {
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub entries: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvironmentDto {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub entries: Vec<String>,
    /// Set by `env set --description`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Names of the member nodes.
    pub nodes: Vec<String>,
    /// Names of the instances deployed into it.
    pub instances: Vec<String>,
    pub created: String,
}

/// `POST /api/v1/environments/{env}/rename`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameEnvironment {
    /// The new name.
    pub name: String,
}

/// `PATCH /api/v1/environments/{env}`: what is given replaces the environment's (an
/// empty description clears it); at least one of them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateEnvironment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries: Option<Vec<String>>,
}

/// `POST /api/v1/enrollment-tokens`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateEnrollmentToken {
    pub env: String,
    /// A duration: `24h`, `30m`. Default 24h.
    #[serde(default)]
    pub ttl: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollmentTokenDto {
    pub id: String,
    pub env: String,
    pub expires: String,
    /// The one-time token; shown once, never stored by the cloud.
    pub token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeDto {
    pub id: String,
    pub name: String,
    pub envs: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub address: String,
    pub profile: FirmwareProfile,
    /// `Normal` or `Abnormal`.
    pub status: String,
    /// Events addressed to the node that it has not acknowledged yet.
    pub lag: u64,
    /// The highest `node_seq` given to the node.
    pub node_seq: u64,
    pub acked_node_seq: u64,
    pub last_seen: Option<String>,
    pub enrolled: String,
    /// Names of the instances that target it.
    pub instances: Vec<String>,
}

/// `PATCH /api/v1/nodes/{node}`: a new name (`node rename`) or a new address (`node set`),
/// one of them per call.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchNode {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// `POST /api/v1/nodes/{node}/labels`: `set` adds or changes, `remove` deletes keys.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelNode {
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

/// `POST /api/v1/nodes/{node}/environments`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinEnvironment {
    pub env: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ComponentSummary {
    pub name: String,
    pub kind: String,
    pub runtime: String,
    /// The image, or the `exec` command line.
    pub run: String,
    pub replicas: u32,
    pub depends_on: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppVersionDto {
    pub app: String,
    pub version: String,
    pub description: Option<String>,
    pub digest: String,
    pub published: String,
    pub seq: u64,
    pub components: Vec<ComponentSummary>,
    /// False when the same version was already published with the same content.
    pub created: bool,
    /// The full manifest (on `GET .../versions/{version}` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Manifest>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppDto {
    pub name: String,
    pub versions: Vec<String>,
    pub latest: String,
    /// Instances of any version of the app.
    pub instances: Vec<String>,
}

/// `--node NODE[=WEIGHT]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployNode {
    pub node: String,
    #[serde(default)]
    pub weight: Option<u32>,
}

/// `POST /api/v1/instances`: a deploy ([`crate::command::DeployIntent`] once the API has
/// converted it), or its dry run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployInstance {
    pub app: String,
    pub version: String,
    pub env: String,
    pub name: String,
    #[serde(default)]
    pub nodes: Vec<DeployNode>,
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
    /// `COMPONENT.VAR=VALUE`
    #[serde(default)]
    pub set: Vec<String>,
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeRef {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetDto {
    pub id: String,
    pub name: String,
    pub weight: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnschedulableDto {
    pub id: String,
    pub name: String,
    pub reasons: Vec<String>,
}

/// One replica's state on one node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplicaStatusDto {
    /// The app version the node runs (during a rollout, nodes differ).
    #[serde(default)]
    pub version: String,
    pub node: String,
    pub node_id: String,
    pub component: String,
    pub kind: String,
    pub replica: u32,
    /// `Pending`, `Running`, `Succeeded`, `Failed`, `Unschedulable`, ...
    pub state: String,
    pub restarts: u32,
    /// How its process last ended and when: `exited 137 at 2026-11-22T04:30:00.000Z`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The node has stopped reporting (it is `Abnormal`) and had reported on this replica:
    /// `state`, `restarts`, `last_exit` and `reason` are what it last reported, at
    /// `reported`, not what is true now. (A replica never reported on is `Pending`.)
    #[serde(default)]
    pub stale: bool,
    /// When the cloud stored the report that `state` comes from (RFC 3339); `null` until
    /// the node reports on the replica.
    #[serde(default)]
    pub reported: Option<String>,
    /// Host ports published for it, as `CONTAINER:HOST` (`8080:30001`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceDto {
    pub name: String,
    pub app: String,
    pub version: String,
    pub env: String,
    pub mode: String,
    pub nodes: Vec<TargetDto>,
    pub unschedulable: Vec<UnschedulableDto>,
    pub selector: BTreeMap<String, String>,
    /// `COMPONENT.VAR=VALUE`
    pub set: Vec<String>,
    /// The instance as a whole was stopped (`skerry stop` without `--node`): nodes that
    /// run it later run it stopped too.
    #[serde(default)]
    pub stopped: bool,
    /// The nodes the instance is stopped on, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stopped_on: Vec<String>,
    pub deployed: String,
    pub seq: u64,
    pub status: Vec<ReplicaStatusDto>,
    /// Replica rows left out of `status` beyond its bound
    /// ([`crate::api::views::MAX_STATUS_ROWS`]); absent when none was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_omitted: Option<u64>,
}

/// What `deploy --dry-run` would do on one node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodePlanDto {
    pub node: String,
    pub node_id: String,
    pub weight: u32,
    /// Rounds of actions; the actions of one round do not wait on each other.
    pub steps: Vec<Vec<String>>,
    /// What the instance needs of the node, and what is free there.
    #[serde(default)]
    pub resources: ResourcesDto,
    /// Why the node could not take the instance; empty when it can.
    #[serde(default)]
    pub shortfalls: Vec<String>,
    /// The containers and processes that would be created, replaced or removed.
    #[serde(default)]
    pub changes: Vec<ChangeDto>,
}

/// An instance's needs on a node against what the node has free (its capacity less the
/// requests of the other instances there).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourcesDto {
    pub cpu_millicores: AmountDto,
    pub memory_bytes: AmountDto,
    /// Each fixed host port the instance asks for.
    pub host_ports: Vec<HostPortDto>,
}

/// One resource: needed, free and the capacity, in its unit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmountDto {
    pub needed: u64,
    pub free: u64,
    pub capacity: u64,
}

/// A fixed host port, and the instance that holds it already (`null`: it is free).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPortDto {
    pub port: u16,
    pub component: String,
    #[serde(default)]
    pub in_use_by: Option<String>,
}

/// A replica that would be created, replaced or removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeDto {
    /// `create`, `replace` or `remove`.
    pub action: String,
    /// `container` or `process`.
    pub kind: String,
    /// `INSTANCE/COMPONENT.REPLICA`.
    pub replica: String,
    /// `service` or `init` (jobs run on their schedule and are not listed).
    pub component_kind: String,
}

/// A node the selector matched that does not fit: what the instance needs of it and what
/// is free (its reasons are those of `unschedulable`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnfitNodeDto {
    pub node: String,
    pub node_id: String,
    pub resources: ResourcesDto,
    pub shortfalls: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DryRunDto {
    pub instance: String,
    pub app: String,
    pub version: String,
    pub env: String,
    pub plan: Vec<NodePlanDto>,
    pub unschedulable: Vec<UnschedulableDto>,
    /// The room on each node of `unschedulable`, in the same order.
    #[serde(default)]
    pub unfit: Vec<UnfitNodeDto>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UndeployDto {
    pub name: String,
    pub purge: bool,
    pub seq: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeSeqDto {
    pub node: String,
    pub node_seq: u64,
}

/// One event of the command log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventDto {
    pub seq: u64,
    pub time: String,
    pub actor: String,
    pub kind: String,
    pub summary: String,
    pub node_seqs: Vec<NodeSeqDto>,
    pub prev_hash: String,
    pub hash: String,
    pub payload: EventPayload,
    /// Why the cloud's read models did not take this recorded event (it is in the log and
    /// the chain, and changed nothing); absent for an event that was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

impl From<&Event> for EventDto {
    fn from(e: &Event) -> Self {
        EventDto {
            seq: e.seq,
            time: e.time.to_rfc3339(),
            actor: e.actor.to_string(),
            kind: e.payload.kind().to_owned(),
            summary: e.payload.summary(),
            node_seqs: e
                .node_seqs
                .iter()
                .map(|n| NodeSeqDto {
                    node: n.node.to_string(),
                    node_seq: n.node_seq,
                })
                .collect(),
            prev_hash: e.prev_hash.to_hex(),
            hash: e.hash.to_hex(),
            payload: e.payload.clone(),
            refused: None,
        }
    }
}

/// `GET /api/v1/events/verify`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyDto {
    pub ok: bool,
    pub events: u64,
    pub head: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

/// `GET /api/v1/logs`: a page of an instance's log lines, and what the agents dropped.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogsDto {
    /// In cursor order (the order the cloud stored them; per file, the file's order).
    pub lines: Vec<LogLineDto>,
    /// The cursor to pass as `after` for the next page.
    pub next: u64,
    /// Per node, the lines its agent dropped for its log quota.
    pub dropped: Vec<NodeDropsDto>,
    /// Per node, the files of log directories its agent does not read for want of a slot
    /// (more files than it reads at once in one `log_dir`).
    #[serde(default)]
    pub waiting: Vec<NodeWaitingDto>,
}

/// Files of log directories one node's agent does not read for want of a slot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeWaitingDto {
    /// The node's id.
    pub node: String,
    pub node_name: String,
    /// Files waiting in all.
    pub files: u64,
    pub replicas: Vec<ReplicaWaitingDto>,
}

/// Files of one replica's log directory that wait for a slot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplicaWaitingDto {
    pub component: String,
    pub replica: u32,
    pub files: u64,
}

/// One log line (also one line of `GET /api/v1/logs?follow=true`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogLineDto {
    pub cursor: u64,
    /// The node's id.
    pub node: String,
    pub node_name: String,
    pub component: String,
    pub replica: u32,
    /// The file's name in the component's `log_dir`, `(stdout)` or `(stderr)`.
    pub file: String,
    /// The line's number in its file, from 1 (the pieces of a long line share it).
    pub line: u64,
    /// A line longer than 16 KiB comes in pieces: which one this is (0: the first, or
    /// the whole line).
    #[serde(default)]
    pub part: u32,
    /// More of the line follows, in the next piece.
    #[serde(default)]
    pub continued: bool,
    /// When the agent read it (RFC 3339).
    pub time: String,
    pub text: String,
}

/// What one node's agent dropped of the instance's lines.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeDropsDto {
    /// The node's id.
    pub node: String,
    pub node_name: String,
    pub lines: u64,
    pub batches: u64,
    /// The runs of lines dropped, per file, oldest first.
    pub files: Vec<FileDropsDto>,
}

/// A run of dropped lines of one file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileDropsDto {
    pub component: String,
    pub replica: u32,
    pub file: String,
    pub first_line: u64,
    pub lines: u64,
}

/// `GET /api/v1/nodes/{node}/logs`: the agent's runtime log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeLogsDto {
    pub node: String,
    pub node_id: String,
    pub text: String,
    /// Older lines were left out (the size asked for, or one frame).
    pub truncated: bool,
}

/// `POST /api/v1/tokens`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateApiToken {
    /// `admin`, `operator` or `viewer`.
    pub role: String,
    /// The environments the token is limited to; empty: every environment.
    #[serde(default)]
    pub envs: Vec<String>,
    /// A duration (`30d`, `12h`); none: the token does not expire.
    #[serde(default)]
    pub ttl: Option<String>,
    #[serde(default)]
    pub description: String,
}

/// An API token as lists show it: never its secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiTokenDto {
    pub id: String,
    pub role: String,
    /// Empty: every environment.
    pub envs: Vec<String>,
    pub description: String,
    pub created: String,
    pub expires: Option<String>,
    pub revoked: Option<String>,
    /// `active`, `expired` or `revoked`.
    pub state: String,
}

/// The answer of `POST /api/v1/tokens`: the token itself, shown this once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedApiTokenDto {
    #[serde(flatten)]
    pub info: ApiTokenDto,
    pub token: String,
}
