//! What a caller asks of the cloud: a [`Command`] and the intent types it carries
//! ([`Enrollment`], [`DeployIntent`]). They are the command layer's own types: the API
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
    /// `upgrade` or `rollback` ([`super::rollout`]).
    StartRollout(Box<super::rollout::RolloutIntent>),
    /// `rollout pause | resume | abort`.
    ControlRollout {
        instance: String,
        action: super::rollout::RolloutAction,
    },
    /// A step of rollout `rollout` of `instance`, as the rollout controller decided it.
    AdvanceRollout {
        instance: Name,
        rollout: u64,
        step: Box<super::rollout::RolloutStep>,
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
