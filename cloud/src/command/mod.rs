//! Command handlers.
//!
//! A handler checks a [`Command`] against the [`Projections`] and returns either a
//! [`Refusal`] (a field and a reason) or the events the command causes, each with the
//! nodes it concerns. Handlers do no I/O: the engine seals and appends what they return.

mod app;
mod deploy;
mod env;
pub mod fit;
mod node;

use std::collections::BTreeMap;

use skerry_shared::clock::Timestamp;
use skerry_shared::enroll::EnrollmentToken;
use skerry_shared::event::{EventPayload, NodeStatus};
use skerry_shared::hash::Digest;
use skerry_shared::ids::{Labels, MAX_LABELS, Name, NodeId, TokenId, shown};
use skerry_shared::manifest::Manifest;
use skerry_shared::profile::FirmwareProfile;

use crate::projections::Projections;

pub use deploy::{DeployPlan, NodePlan, plan_deploy};

/// How a refusal maps to the API: 400, 409, 404 or 403.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    Invalid,
    Conflict,
    NotFound,
    Forbidden,
}

/// A refused command: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub kind: RefusalKind,
    pub code: &'static str,
    pub field: Option<String>,
    pub message: String,
}

impl Refusal {
    pub fn invalid(
        code: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(RefusalKind::Invalid, code, field, message)
    }
    pub fn conflict(
        code: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(RefusalKind::Conflict, code, field, message)
    }
    pub fn not_found(
        code: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(RefusalKind::NotFound, code, field, message)
    }
    pub fn forbidden(
        code: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(RefusalKind::Forbidden, code, field, message)
    }
    fn new(
        kind: RefusalKind,
        code: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let field = field.into();
        Refusal {
            kind,
            code,
            field: (!field.is_empty()).then_some(field),
            message: message.into(),
        }
    }
}

/// An event a command causes, and the nodes it concerns (each gets a `node_seq`).
#[derive(Debug, Clone)]
pub struct Pending {
    pub payload: EventPayload,
    pub audience: Vec<NodeId>,
}

impl Pending {
    pub fn cloud_only(payload: EventPayload) -> Self {
        Pending {
            payload,
            audience: Vec::new(),
        }
    }
}

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
    Deploy(Box<crate::api::dto::DeployRequest>),
    Undeploy {
        name: String,
        purge: bool,
    },
    /// The cloud noticed a node's liveness change (the liveness monitor). Records nothing
    /// when the node already has that status.
    SetNodeStatus {
        node: NodeId,
        status: NodeStatus,
    },
}

/// Checks `command` at time `now`: the events it causes, or why it is refused. An empty
/// list means the command changes nothing (a repeated publish of the same content).
pub fn handle(p: &Projections, command: &Command, now: Timestamp) -> Result<Vec<Pending>, Refusal> {
    match command {
        Command::Bootstrap => Ok(env::bootstrap(p)),
        Command::CreateEnvironment {
            name,
            labels,
            entries,
        } => env::create(p, name, labels, entries),
        Command::DeleteEnvironment { name } => env::delete(p, name),
        Command::IssueEnrollmentToken {
            env,
            id,
            secret_hash,
            expires,
        } => env::issue_token(p, env, *id, *secret_hash, *expires, now),
        Command::Enroll(e) => node::enroll(p, e, now),
        Command::RenameNode { node, name } => node::rename(p, node, name),
        Command::LabelNode { node, set, remove } => node::label(p, node, set, remove),
        Command::JoinEnvironment { node, env } => node::join(p, node, env),
        Command::LeaveEnvironment { node, env } => node::leave(p, node, env),
        Command::PublishApp { manifest } => app::publish(p, manifest),
        Command::Deploy(req) => {
            let plan = plan_deploy(p, req)?;
            Ok(vec![plan.into_pending()])
        }
        Command::Undeploy { name, purge } => app::undeploy(p, name, *purge),
        Command::SetNodeStatus { node, status } => node::set_status(p, *node, *status),
    }
}

/// Parses a name given for `field`.
pub(crate) fn name(field: &str, s: &str) -> Result<Name, Refusal> {
    Name::parse(s).map_err(|e| Refusal::invalid("invalid_name", field, e.to_string()))
}

/// Checks a map of labels given for `field`: at most [`MAX_LABELS`], each by Kubernetes'
/// rules.
pub(crate) fn labels(field: &str, labels: &BTreeMap<String, String>) -> Result<Labels, Refusal> {
    if labels.len() > MAX_LABELS {
        return Err(Refusal::invalid(
            "invalid_label",
            field,
            format!("{} labels; at most {MAX_LABELS} are accepted", labels.len()),
        ));
    }
    for (k, v) in labels {
        skerry_shared::ids::check_label_key(k)
            .and_then(|()| skerry_shared::ids::check_label_value(v))
            .map_err(|e| {
                // A key that breaks the rules may be long: the field names it only when short.
                let at = if k.len() <= 317 {
                    format!("{field}.{k}")
                } else {
                    field.to_owned()
                };
                Refusal::invalid("invalid_label", at, e.to_string())
            })?;
    }
    Ok(labels.clone())
}

/// Finds an environment given for `field`.
pub(crate) fn environment<'a>(
    p: &'a Projections,
    field: &str,
    env: &str,
) -> Result<&'a crate::projections::Environment, Refusal> {
    p.envs.get(env).ok_or_else(|| {
        Refusal::not_found(
            "unknown_environment",
            field,
            format!("no environment named {}", shown(env)),
        )
    })
}

/// Finds a node by name or id given for `field`.
pub(crate) fn node_ref<'a>(
    p: &'a Projections,
    field: &str,
    node: &str,
) -> Result<&'a crate::projections::Node, Refusal> {
    p.node(node).ok_or_else(|| {
        Refusal::not_found(
            "unknown_node",
            field,
            format!("no node named or with id {}", shown(node)),
        )
    })
}
