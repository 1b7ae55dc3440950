//! Read models folded from the command log.
//!
//! [`Projections`] holds environments, nodes, apps and versions, instances and
//! enrollment tokens, API tokens ([`access`]), plus the head of the hash chain (next sequence number, last hash,
//! next `node_seq` per node). It changes only by [`Projections::apply`], so rebuilding it
//! from the log at start gives the same state the running cloud had.
//!
//! **Refused events.** A recorded event the read models cannot take (written by an older
//! build that checked less, or by hand) must not keep the cloud from starting. `apply`
//! checks an event before it changes anything ([`Projections::check`]): a refused event
//! changes no read model, only the chain head moves past it (so the chain still verifies
//! and the next event follows it), and it is kept in [`Projections::refused`] with its
//! kind and why, logged, and marked in `GET /api/v1/events`. Refused are:
//! - an `app.version-published` whose manifest fails the shared manifest validation;
//! - an `instance.deployed` of an app version that is not there (never published, or its
//!   publication was refused), or whose manifest fails the validation (the same rule the
//!   agents fold with, [`skerry_shared::reducer::check_instance`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

pub mod access;
pub mod certificates;
mod environments;
pub mod rollouts;
pub mod secrets;

pub use access::{ApiTokenState, ApiTokens};
pub use certificates::Certificates;
pub use rollouts::{BatchState, Instance, RolloutState};
pub use secrets::{SecretState, Secrets};

use skerry_shared::clock::Timestamp;
use skerry_shared::event::{Event, EventPayload, NodeStatus};
use skerry_shared::hash::Digest;
use skerry_shared::ids::{Labels, Name, NodeId, TokenId};
use skerry_shared::manifest::{Manifest, validate};
use skerry_shared::profile::FirmwareProfile;
use skerry_shared::reducer::check_instance;

/// An environment.
#[derive(Debug, Clone)]
pub struct Environment {
    pub name: Name,
    pub labels: Labels,
    pub entries: Vec<String>,
    /// Set by `env set --description` (at most `MAX_DESCRIPTION_BYTES` of the commands).
    pub description: Option<String>,
    pub created: Timestamp,
}

/// An enrolled node.
#[derive(Debug, Clone)]
pub struct Node {
    pub id: NodeId,
    pub name: Name,
    pub envs: BTreeSet<Name>,
    pub labels: Labels,
    pub address: String,
    pub profile: FirmwareProfile,
    pub status: NodeStatus,
    pub enrolled: Timestamp,
    /// The highest `node_seq` given to this node.
    pub node_seq: u64,
    /// The highest `node_seq` the node has acknowledged.
    pub acked: u64,
    pub last_seen: Option<Timestamp>,
    pub certificate: Digest,
}

impl Node {
    /// Events addressed to the node that it has not acknowledged.
    pub fn lag(&self) -> u64 {
        self.node_seq.saturating_sub(self.acked)
    }
}

/// A published app version.
#[derive(Debug, Clone)]
pub struct AppVersion {
    pub manifest: Manifest,
    pub digest: Digest,
    pub published: Timestamp,
    pub seq: u64,
}

/// An issued enrollment token (only its secret's hash).
#[derive(Debug, Clone)]
pub struct EnrollmentTokenState {
    pub env: Name,
    pub secret_hash: Digest,
    pub expires: Timestamp,
    pub used_by: Option<NodeId>,
}

/// The head of the hash chain: what the next event will be given.
#[derive(Debug, Clone, Default)]
pub struct ChainHead {
    pub next_seq: u64,
    pub last_hash: Digest,
    /// The time of the last event.
    pub last_time: Timestamp,
    pub node_next: HashMap<NodeId, u64>,
}

impl ChainHead {
    /// The `node_seq` the next event for `node` gets.
    pub fn next_node_seq(&self, node: NodeId) -> u64 {
        self.node_next.get(&node).copied().unwrap_or(1)
    }
}

/// A recorded event the read models did not take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedEvent {
    pub seq: u64,
    /// The event's kind (`instance.deployed`).
    pub kind: &'static str,
    /// Why, naming the field.
    pub reason: String,
}

impl std::fmt::Display for RefusedEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "event {} ({}): {}", self.seq, self.kind, self.reason)
    }
}

/// The most refused events kept with their reasons, in [`Projections::refused`]; beyond it
/// they are only counted ([`Projections::refused_total`]).
pub const MAX_REFUSED_KEPT: usize = 1024;

/// All read models.
#[derive(Debug, Clone)]
pub struct Projections {
    pub envs: BTreeMap<Name, Environment>,
    pub nodes: BTreeMap<NodeId, Node>,
    node_names: BTreeMap<Name, NodeId>,
    pub apps: BTreeMap<Name, BTreeMap<semver::Version, AppVersion>>,
    pub instances: BTreeMap<Name, Instance>,
    /// Every instance name ever deployed, undeployed ones too, with the environment it was
    /// last deployed in: the names that have a history in the log (`GET
    /// /api/v1/events?instance=` answers 404 for any other), and what a token limited to
    /// some environments may read of it once it is gone.
    pub instance_envs: BTreeMap<Name, Name>,
    /// The last rollout id of every instance name ever rolled out (ids go on across an
    /// undeploy and a new deploy of the same name, so the log never has two rollout 1s).
    pub rollout_ids: BTreeMap<Name, u64>,
    pub tokens: HashMap<TokenId, EnrollmentTokenState>,
    /// API tokens ([`access`]).
    pub api_tokens: ApiTokens,
    /// Secrets, sealed, and the nodes' keys for them ([`secrets`]).
    pub secrets: Secrets,
    /// Node certificates issued and revoked, and removed nodes ([`certificates`]).
    pub certificates: Certificates,
    pub head: ChainHead,
    /// Recorded events that were not applied, by `seq` (the first [`MAX_REFUSED_KEPT`]).
    pub refused: BTreeMap<u64, RefusedEvent>,
    /// How many recorded events were not applied, kept or not.
    pub refused_total: u64,
}

impl Default for Projections {
    fn default() -> Self {
        Projections {
            envs: BTreeMap::new(),
            nodes: BTreeMap::new(),
            node_names: BTreeMap::new(),
            apps: BTreeMap::new(),
            instances: BTreeMap::new(),
            instance_envs: BTreeMap::new(),
            rollout_ids: BTreeMap::new(),
            tokens: HashMap::new(),
            api_tokens: ApiTokens::default(),
            secrets: Secrets::default(),
            certificates: Certificates::default(),
            head: ChainHead {
                next_seq: 1,
                last_hash: Digest::ZERO,
                last_time: Timestamp(0),
                node_next: HashMap::new(),
            },
            refused: BTreeMap::new(),
            refused_total: 0,
        }
    }
}

impl Projections {
    /// Finds a node by id or by name.
    pub fn node(&self, reference: &str) -> Option<&Node> {
        if let Ok(id) = reference.parse::<NodeId>()
            && let Some(n) = self.nodes.get(&id)
        {
            return Some(n);
        }
        let id = self.node_names.get(reference)?;
        self.nodes.get(id)
    }

    pub fn node_by_name(&self, name: &str) -> Option<&Node> {
        self.node_names.get(name).and_then(|id| self.nodes.get(id))
    }

    pub fn app_version(&self, app: &str, version: &semver::Version) -> Option<&AppVersion> {
        self.apps.get(app)?.get(version)
    }

    /// Instances that target `node`.
    pub fn instances_on(&self, node: NodeId) -> impl Iterator<Item = &Instance> {
        self.instances
            .values()
            .filter(move |i| i.spec.targets(node))
    }

    /// Why the read models cannot take `payload` as the next event (`Ok`: they can). Reads
    /// only: nothing changes until this passes.
    pub fn check(&self, payload: &EventPayload) -> Result<(), String> {
        match payload {
            EventPayload::AppVersionPublished { manifest, .. } => validate(manifest)
                .map_err(|err| format!("manifest {}@{}: {err}", manifest.app, manifest.version)),
            EventPayload::InstanceDeployed { instance }
            | EventPayload::InstanceNodesChanged { instance, .. } => {
                if self
                    .app_version(instance.app.as_str(), &instance.version)
                    .is_none()
                {
                    return Err(format!(
                        "instance {}: app version {}@{} is not published (or its publication \
                         was not applied)",
                        instance.name, instance.app, instance.version
                    ));
                }
                check_instance(instance)
            }
            EventPayload::RolloutStarted { rollout } => {
                if !self.instances.contains_key(&rollout.instance) {
                    return Err(format!("instance {} is not deployed", rollout.instance));
                }
                self.check(&EventPayload::InstanceDeployed {
                    instance: Box::new(rollout.to.clone()),
                })
            }
            _ => Ok(()),
        }
    }

    /// Folds one committed (or about-to-be-committed) event. The chain head always moves
    /// past it; the read models take it only if [`Self::check`] passes, else it is recorded
    /// as refused (and logged) and changes nothing else.
    pub fn apply(&mut self, e: &Event) {
        self.head.next_seq = e.seq + 1;
        self.head.last_hash = e.hash;
        self.head.last_time = e.time;
        for ns in &e.node_seqs {
            self.head.node_next.insert(ns.node, ns.node_seq + 1);
            if let Some(n) = self.nodes.get_mut(&ns.node) {
                n.node_seq = n.node_seq.max(ns.node_seq);
            }
        }
        if let Err(reason) = self.check(&e.payload) {
            self.refuse(e, reason);
            return;
        }
        self.apply_checked(e);
    }

    /// A node is removed: it leaves every instance's targets (an instance left with no
    /// node stays deployed, on none, as after `node.left`), its name is free, and its
    /// certificates are revoked for good ([`certificates`]).
    fn node_removed(&mut self, node: NodeId, at: Timestamp) {
        if let Some(n) = self.nodes.remove(&node) {
            self.node_names.remove(&n.name);
        }
        for i in self.instances.values_mut() {
            i.spec.nodes.retain(|t| t.node != node);
            i.spec.unschedulable.retain(|u| u.node != node);
            i.runs.remove(&node);
        }
        self.certificates.node_removed(node, at);
        self.secrets.node_removed(node);
    }

    /// The running rollout `id` of `instance`.
    fn rollout_mut(&mut self, instance: &Name, id: u64) -> Option<&mut RolloutState> {
        self.instances
            .get_mut(instance)?
            .rollout
            .as_mut()
            .filter(|r| r.id() == id && r.outcome.is_none())
    }

    fn refuse(&mut self, e: &Event, reason: String) {
        let kind = e.payload.kind();
        tracing::error!(
            seq = e.seq,
            kind,
            reason = %reason,
            "recorded event {} ({kind}) is not applied: {reason}",
            e.seq
        );
        self.refused_total = self.refused_total.saturating_add(1);
        if self.refused.len() < MAX_REFUSED_KEPT {
            self.refused.insert(
                e.seq,
                RefusedEvent {
                    seq: e.seq,
                    kind,
                    reason,
                },
            );
        }
    }

    fn apply_checked(&mut self, e: &Event) {
        match &e.payload {
            EventPayload::EnvironmentCreated {
                name,
                labels,
                entries,
            } => {
                self.envs.insert(
                    name.clone(),
                    Environment {
                        name: name.clone(),
                        labels: labels.clone(),
                        entries: entries.clone(),
                        description: None,
                        created: e.time,
                    },
                );
            }
            EventPayload::EnvironmentDeleted { name } => {
                self.envs.remove(name);
                for n in self.nodes.values_mut() {
                    n.envs.remove(name);
                }
            }
            EventPayload::EnrollmentTokenIssued {
                token,
                env,
                secret_hash,
                expires,
            } => {
                self.tokens.insert(
                    *token,
                    EnrollmentTokenState {
                        env: env.clone(),
                        secret_hash: *secret_hash,
                        expires: *expires,
                        used_by: None,
                    },
                );
            }
            EventPayload::NodeEnrolled {
                node,
                name,
                env,
                address,
                profile,
                token,
                certificate,
            } => {
                if let Some(t) = self.tokens.get_mut(token) {
                    t.used_by = Some(*node);
                }
                self.certificates.issued(*node, *certificate, None);
                self.node_names.insert(name.clone(), *node);
                self.nodes.insert(
                    *node,
                    Node {
                        id: *node,
                        name: name.clone(),
                        envs: BTreeSet::from([env.clone()]),
                        labels: Labels::new(),
                        address: address.clone(),
                        profile: (**profile).clone(),
                        status: NodeStatus::Abnormal,
                        enrolled: e.time,
                        node_seq: e.node_seq_for(*node).unwrap_or(0),
                        acked: 0,
                        last_seen: None,
                        certificate: *certificate,
                    },
                );
            }
            EventPayload::NodeRenamed { node, name } => {
                if let Some(n) = self.nodes.get_mut(node) {
                    self.node_names.remove(&n.name);
                    n.name = name.clone();
                    self.node_names.insert(name.clone(), *node);
                }
            }
            EventPayload::NodeLabelled { node, set, removed } => {
                if let Some(n) = self.nodes.get_mut(node) {
                    skerry_shared::reducer::apply_labels(&mut n.labels, set, removed);
                }
            }
            EventPayload::NodeJoined { node, env } => {
                if let Some(n) = self.nodes.get_mut(node) {
                    n.envs.insert(env.clone());
                }
            }
            EventPayload::NodeLeft { node, env } => {
                if let Some(n) = self.nodes.get_mut(node) {
                    n.envs.remove(env);
                }
                for i in self.instances.values_mut() {
                    if &i.spec.env == env {
                        i.spec.nodes.retain(|t| t.node != *node);
                        i.runs.remove(node);
                    }
                }
            }
            EventPayload::NodeStatusChanged { node, status } => {
                if let Some(n) = self.nodes.get_mut(node) {
                    n.status = *status;
                }
            }
            EventPayload::AppVersionPublished { manifest, digest } => {
                self.apps.entry(manifest.app.clone()).or_default().insert(
                    manifest.version.clone(),
                    AppVersion {
                        manifest: manifest.clone(),
                        digest: *digest,
                        published: e.time,
                        seq: e.seq,
                    },
                );
            }
            EventPayload::InstanceDeployed { instance } => {
                self.instance_envs
                    .insert(instance.name.clone(), instance.env.clone());
                self.instances.insert(
                    instance.name.clone(),
                    Instance::new((**instance).clone(), e.time, e.seq),
                );
            }
            EventPayload::InstanceUndeployed { name, .. } => {
                self.instances.remove(name);
            }
            EventPayload::ApiTokenCreated {
                token,
                role,
                envs,
                secret_hash,
                expires,
                description,
            } => self.api_tokens.created(ApiTokenState {
                id: *token,
                role: *role,
                envs: envs.clone(),
                secret_hash: *secret_hash,
                expires: *expires,
                description: description.clone(),
                created: e.time,
                revoked: None,
            }),
            EventPayload::ApiTokenRevoked { token } => self.api_tokens.revoked(token, e.time),
            EventPayload::NodeRemoved { node } => self.node_removed(*node, e.time),
            EventPayload::NodeCertificateRenewed {
                node,
                certificate,
                expires,
            } => {
                if let Some(n) = self.nodes.get_mut(node) {
                    n.certificate = *certificate;
                    self.certificates
                        .issued(*node, *certificate, Some(*expires));
                }
            }
            EventPayload::SecretSet {
                name,
                env,
                version,
                sealed,
            } => self.secrets.set(name, env, *version, sealed, e.time),
            EventPayload::SecretDeleted { name } => self.secrets.deleted(name),
            EventPayload::SecretDelivered {
                name,
                version,
                node,
                ..
            } => self.secrets.delivered(name, *version, *node),
            EventPayload::NodeSecretsKeyRegistered { node, key } => {
                self.secrets.key_registered(*node, *key);
            }
            EventPayload::InstanceNodesChanged { instance, changes } => {
                if let Some(i) = self.instances.get_mut(&instance.name) {
                    i.nodes_changed(instance, changes, e.time);
                }
            }
            EventPayload::RolloutStarted { rollout } => {
                self.rollout_ids
                    .insert(rollout.instance.clone(), rollout.id);
                if let Some(i) = self.instances.get_mut(&rollout.instance) {
                    i.rollout = Some(RolloutState::new((**rollout).clone(), i, e.time));
                }
            }
            EventPayload::RolloutBatchStarted {
                instance,
                rollout,
                batch,
                nodes,
                offline,
            } => {
                if let Some(r) = self.rollout_mut(instance, *rollout) {
                    r.batch_started(*batch, nodes, offline, e.time);
                }
            }
            EventPayload::RolloutBatchFinished {
                instance,
                rollout,
                batch,
                passed,
                failed,
                passed_batch,
                ..
            } => {
                if let Some(r) = self.rollout_mut(instance, *rollout) {
                    r.batch_finished(*batch, passed, failed, *passed_batch, e.time);
                }
            }
            EventPayload::RolloutPaused { instance, rollout } => {
                if let Some(r) = self.rollout_mut(instance, *rollout) {
                    r.paused = true;
                }
            }
            EventPayload::RolloutResumed { instance, rollout } => {
                if let Some(r) = self.rollout_mut(instance, *rollout) {
                    r.paused = false;
                    r.resumed = Some(e.time);
                }
            }
            EventPayload::RolloutFinished {
                instance,
                rollout,
                outcome,
            } => {
                if let Some(i) = self.instances.get_mut(instance)
                    && i.rollout.as_ref().is_some_and(|r| r.id() == *rollout)
                {
                    i.rollout_finished(outcome, e.time);
                }
            }
            // Environments and node addresses (`env rename`, `env set`, `node set`): see
            // [`environments`].
            EventPayload::EnvironmentRenamed { name, to } => self.environment_renamed(name, to),
            EventPayload::EnvironmentUpdated {
                name,
                description,
                entries,
            } => self.environment_updated(name, description, entries),
            EventPayload::NodeAddressChanged { node, address } => {
                self.node_address_changed(*node, address);
            }
        }
    }
}

#[cfg(test)]
mod tests;
