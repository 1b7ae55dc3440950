//! What a caller asks of the cloud: a [`Command`] and the intent types it carries
//! ([`Enrollment`], [`DeployIntent`], [`RolloutIntent`], [`LifecycleIntent`], and the
//! rollout controller's [`RolloutStep`]). They are the command layer's own types: the API
//! converts its request bodies into them, so that a change of the API's JSON is not a
//! change of the commands, and a caller that is not the API (the local node, a controller,
//! the console) builds them directly.

use std::collections::BTreeMap;

use skerry_shared::clock::Timestamp;
use skerry_shared::enroll::EnrollmentToken;
use skerry_shared::event::NodeStatus;
use skerry_shared::hash::Digest;
use skerry_shared::ids::{Name, NodeId, TokenId};
use skerry_shared::manifest::Manifest;
use skerry_shared::profile::FirmwareProfile;
use skerry_shared::rollout::NodeFailure;

/// An enrollment, as the API hands it to the engine.
#[derive(Debug, Clone)]
pub struct Enrollment {
    pub token: EnrollmentToken,
    pub node: NodeId,
    pub name: Name,
    pub profile: FirmwareProfile,
    pub address: String,
    /// SHA-256 of the certificate issued to the node.
    pub certificate: Digest,
    /// The node's public key for secrets, recorded with the enrollment (`None`: an agent
    /// without secrets).
    pub secrets_key: Option<skerry_shared::secret::NodeSecretsKey>,
}

/// Everything that can change state. Fields are raw user input where the handler is the
/// one to check them.
#[derive(Debug, Clone)]
pub enum Command {
    /// Creates the environment `local` at first start, if missing.
    Bootstrap,
    CreateEnvironment {
        name: String,
        labels: BTreeMap<String, String>,
        entries: Vec<String>,
    },
    DeleteEnvironment {
        name: String,
    },
    /// `env rename ENV NEW` (see `command/env.rs`).
    RenameEnvironment {
        name: String,
        to: String,
    },
    /// `env set ENV`: what is `Some` replaces the environment's (an empty description
    /// clears it).
    UpdateEnvironment {
        name: String,
        description: Option<String>,
        entries: Option<Vec<String>>,
    },
    /// `node set NODE --address ADDR`.
    SetNodeAddress {
        node: String,
        address: String,
    },
    IssueEnrollmentToken {
        env: String,
        id: TokenId,
        secret_hash: Digest,
        expires: Timestamp,
    },
    /// The API has parsed the CSR and signed a certificate for the node; it is recorded
    /// only if the token checks out.
    Enroll(Box<Enrollment>),
    RenameNode {
        node: String,
        name: String,
    },
    LabelNode {
        node: String,
        set: BTreeMap<String, String>,
        remove: Vec<String>,
    },
    JoinEnvironment {
        node: String,
        env: String,
    },
    LeaveEnvironment {
        node: String,
        env: String,
    },
    PublishApp {
        manifest: Box<Manifest>,
    },
    Deploy(Box<DeployIntent>),
    Undeploy {
        name: String,
        purge: bool,
    },
    /// Creates an API token ([`super::token`]).
    CreateApiToken(Box<super::token::NewApiToken>),
    /// Revokes an API token, by its id; `within` is the asking token's scope (`None`:
    /// every environment), outside which tokens are not found.
    RevokeApiToken {
        id: String,
        within: Option<Vec<Name>>,
    },
    /// The cloud noticed a node's liveness change (the liveness monitor). Records nothing
    /// when the node already has that status.
    SetNodeStatus {
        node: NodeId,
        status: NodeStatus,
    },
    /// Sets a secret's next version ([`super::secret`]), sealed by the caller.
    SetSecret(Box<super::secret::NewSecret>),
    /// One node's copy of a secret's latest version (the delivery controller).
    DeliverSecret {
        name: Name,
        version: u64,
        node: NodeId,
        sealed: skerry_shared::secret::SealedForNode,
    },
    /// Deletes a secret no instance uses.
    DeleteSecret {
        name: String,
    },
    /// Removes a node, by name or id (`node remove`): see `command/remove.rs`.
    RemoveNode {
        node: String,
    },
    /// The sync layer signed a renewed certificate for a node over its link.
    RenewNodeCertificate {
        node: NodeId,
        /// SHA-256 of the new certificate's DER.
        certificate: Digest,
        expires: Timestamp,
    },
    /// A node enrolled without a key for secrets sent one over its link: recorded only
    /// while the node has none (a registered key never changes).
    RegisterNodeSecretsKey {
        node: NodeId,
        key: skerry_shared::secret::NodeSecretsKey,
    },
    /// `upgrade`, `rollback` or `restart` ([`super::rollout`]).
    StartRollout(Box<RolloutIntent>),
    /// `stop` or `start` of an instance ([`super::lifecycle`]).
    StopOrStart(Box<LifecycleIntent>),
    /// `rollout pause | resume | abort`.
    ControlRollout {
        instance: String,
        action: RolloutAction,
    },
    /// A step of rollout `rollout` of `instance`, as the rollout controller decided it.
    AdvanceRollout {
        instance: Name,
        rollout: u64,
        step: Box<RolloutStep>,
    },
    /// Re-places an instance whose nodes follow its selector (the selectors controller):
    /// see [`super::selection`]. `joined` are nodes seen joining or enrolling into its
    /// environment. Records nothing when its nodes are already what the selector matches.
    FollowSelector {
        instance: Name,
        joined: Vec<NodeId>,
    },
}

/// A deploy: which app version, into which environment, under which instance name, on which
/// nodes. Fields are raw user input; [`plan_deploy`](super::plan_deploy) checks them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeployIntent {
    pub app: String,
    pub version: String,
    pub env: String,
    /// The instance's name.
    pub name: String,
    /// The nodes named for it (`--node`); when empty, every node of the environment that
    /// matches the selector and fits.
    pub nodes: Vec<NodeChoice>,
    pub selector: BTreeMap<String, String>,
    /// `COMPONENT.VAR=VALUE`
    pub set: Vec<String>,
}

/// A node named for a deploy, by name or id, with its weight (1 when not given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeChoice {
    pub node: String,
    pub weight: Option<u32>,
}

/// An `upgrade`, a `rollback` or a `restart`, as the caller asks for it. Fields are raw
/// user input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolloutIntent {
    pub instance: String,
    /// `rollback`: back to the version before. Takes no `to`, `set` or `nodes`.
    pub rollback: bool,
    /// `restart`: the same version and settings, the replicas of `components` (every
    /// component when empty) replaced node by node on `nodes` (every node that runs the
    /// instance when empty). Takes no `to` or `set`, and `nodes` without weights.
    pub restart: bool,
    /// `restart --component C`.
    pub components: Vec<String>,
    /// The version to move to (`upgrade --to`); `None`: the same version, with other
    /// overrides or weights.
    pub to: Option<String>,
    /// `--batch 1,10%,100%`
    pub batch: Option<String>,
    /// `--settle 30s`
    pub settle: Option<String>,
    /// `--timeout 10m`
    pub timeout: Option<String>,
    /// `--max-unavailable N`
    pub max_unavailable: Option<u32>,
    /// `--max-failed N|P%`
    pub max_failed: Option<String>,
    /// `--set COMPONENT.VAR=VALUE`, merged into the instance's overrides.
    pub set: Vec<String>,
    /// `--node NODE=WEIGHT`: new weights of nodes the instance runs on (`restart`: the
    /// nodes to restart on, without weights).
    pub nodes: Vec<NodeChoice>,
    /// `false` with `--no-auto-rollback`.
    pub auto_rollback: bool,
}

/// What an operator does to a running rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutAction {
    Pause,
    Resume,
    Abort,
}

impl RolloutAction {
    pub fn parse(s: &str) -> Option<RolloutAction> {
        match s {
            "pause" => Some(RolloutAction::Pause),
            "resume" => Some(RolloutAction::Resume),
            "abort" => Some(RolloutAction::Abort),
            _ => None,
        }
    }
}

/// One step of a running rollout, as the controller decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutStep {
    /// Start the next batch: its new nodes online now (`nodes`) and offline (`offline`),
    /// and the first of them to change (`wave`, at most `--max-unavailable`).
    StartBatch {
        batch: u32,
        nodes: Vec<NodeId>,
        offline: Vec<NodeId>,
        wave: Vec<NodeId>,
    },
    /// Change more nodes of the batch in progress.
    Wave { batch: u32, nodes: Vec<NodeId> },
    /// End the batch in progress: these nodes settled, these failed.
    FinishBatch {
        batch: u32,
        passed: Vec<NodeId>,
        failed: Vec<NodeFailure>,
    },
    /// End a rollout that has no node to change (only weights change).
    Complete,
}

/// `stop` or `start INSTANCE [--node NODE]...`. Fields are raw user input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LifecycleIntent {
    pub instance: String,
    /// `true`: stop; `false`: start.
    pub stop: bool,
    /// The nodes, by name or id; when empty, the whole instance (and the nodes that run it
    /// later).
    pub nodes: Vec<String>,
}
