//! The events and the command log's entry format.
//!
//! Every accepted command becomes one or more [`EventPayload`]s. The event log seals each
//! into an [`Event`]: a global sequence number with no gaps, a time, an actor, the payload,
//! the `node_seq` it was given for each node it concerns, and the hash of the event before
//! it. The hashes form one chain, so an auditor can check that nothing was changed,
//! dropped or reordered ([`verify_chain`]).
//!
//! Variants are only ever appended: their order is part of the postcard format.

use serde::{Deserialize, Serialize};

use crate::access::Role;
use crate::clock::Timestamp;
use crate::hash::Digest;
use crate::ids::{Labels, Name, NodeId, TokenId};
use crate::manifest::Manifest;
use crate::profile::FirmwareProfile;
use crate::secret::{NodeSecretsKey, SealedAtRest, SealedForNode};

pub use crate::instance::{
    ChangeReason, EnvOverride, InstanceMode, InstanceSpec, Lifecycle, NodeChange, NodeTarget,
    Targeting, Unschedulable,
};
use crate::rollout::{NodeFailure, RolloutOutcome, RolloutStart};

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Actor {
    /// The cloud itself (start-up, status changes it noticed).
    Cloud,
    /// A caller without an API token, on a listener that allows that (loopback), by its
    /// peer address.
    Anonymous { peer: String },
    /// A caller with an API token.
    Token { id: String, role: String },
    /// A node (enrollment, reports).
    Node(NodeId),
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::Cloud => f.write_str("cloud"),
            Actor::Anonymous { peer } => write!(f, "anonymous@{peer}"),
            Actor::Token { id, role } => write!(f, "token:{id}({role})"),
            Actor::Node(id) => write!(f, "node:{id}"),
        }
    }
}

/// A node's status as the cloud sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NodeStatus {
    /// Heartbeats arrive.
    Normal,
    /// Three heartbeats were missed (or none has arrived yet).
    Abnormal,
}

impl std::fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NodeStatus::Normal => "Normal",
            NodeStatus::Abnormal => "Abnormal",
        })
    }
}

/// What happened. Append new variants at the end only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventPayload {
    EnvironmentCreated {
        name: Name,
        labels: Labels,
        entries: Vec<String>,
    },
    EnvironmentDeleted {
        name: Name,
    },
    EnrollmentTokenIssued {
        token: TokenId,
        env: Name,
        /// SHA-256 of the token's secret; the secret itself is never stored.
        secret_hash: Digest,
        expires: Timestamp,
    },
    NodeEnrolled {
        node: NodeId,
        name: Name,
        env: Name,
        address: String,
        /// Boxed to keep the enum small (serde encodes a box as its content).
        profile: Box<FirmwareProfile>,
        /// The token burnt by this enrollment.
        token: TokenId,
        /// SHA-256 of the DER certificate issued to the node.
        certificate: Digest,
    },
    NodeRenamed {
        node: NodeId,
        name: Name,
    },
    NodeLabelled {
        node: NodeId,
        set: Labels,
        removed: Vec<String>,
    },
    NodeJoined {
        node: NodeId,
        env: Name,
    },
    NodeLeft {
        node: NodeId,
        env: Name,
    },
    NodeStatusChanged {
        node: NodeId,
        status: NodeStatus,
    },
    AppVersionPublished {
        manifest: Manifest,
        /// SHA-256 of the manifest's postcard encoding: the identity of its content.
        digest: Digest,
    },
    InstanceDeployed {
        /// Boxed to keep the enum small (serde encodes a box as its content).
        instance: Box<InstanceSpec>,
    },
    InstanceUndeployed {
        name: Name,
        purge: bool,
    },
    /// An API token was created. Only the hash of its secret is kept.
    ApiTokenCreated {
        token: TokenId,
        role: Role,
        /// The environments the token is limited to; empty: every environment.
        envs: Vec<Name>,
        /// SHA-256 of the token's secret; the secret itself is never stored.
        secret_hash: Digest,
        /// When the token stops being accepted; `None`: never.
        expires: Option<Timestamp>,
        description: String,
    },
    /// An API token was revoked: its next request is refused.
    ApiTokenRevoked {
        token: TokenId,
    },
    /// A node was removed: its instances are gone from it, it forgets its identity and its
    /// certificate is revoked.
    NodeRemoved {
        node: NodeId,
    },
    /// A node's certificate was renewed over its link.
    NodeCertificateRenewed {
        node: NodeId,
        /// SHA-256 of the new DER certificate.
        certificate: Digest,
        expires: Timestamp,
    },
    /// A secret was set: a new version, its value sealed under the cloud's secrets key
    /// (never in plain text). Concerns no node: each node's copy is a `SecretDelivered`.
    SecretSet {
        name: Name,
        /// The environment it is limited to; `None`: every environment.
        env: Option<Name>,
        /// From 1, one more at each `secret set` of this name.
        version: u64,
        sealed: SealedAtRest,
    },
    /// A secret was deleted; the nodes holding a copy drop it.
    SecretDeleted {
        name: Name,
    },
    /// One node's copy of a secret version, sealed for that node's key alone.
    SecretDelivered {
        name: Name,
        version: u64,
        node: NodeId,
        sealed: SealedForNode,
    },
    /// A node's public key for secrets (its X25519 key, sent at enrollment, or over its
    /// link by a node enrolled without one).
    NodeSecretsKeyRegistered {
        node: NodeId,
        key: NodeSecretsKey,
    },
    /// Some nodes of an instance change what they run of it: each node in `changes` runs
    /// `instance` from now on if `instance` targets it, and nothing of it otherwise.
    /// `instance.nodes` and `instance.unschedulable` are the instance's whole lists after
    /// the change; in a rollout the other nodes keep the spec they run.
    InstanceNodesChanged {
        instance: Box<InstanceSpec>,
        changes: Vec<NodeChange>,
    },
    /// A rollout started (`upgrade`, `rollback`); concerns no node until a batch starts.
    RolloutStarted {
        rollout: Box<RolloutStart>,
    },
    /// A batch of a rollout started: `nodes` are changed (in waves of the rollout's
    /// `max_unavailable`), `offline` were skipped.
    RolloutBatchStarted {
        instance: Name,
        rollout: u64,
        batch: u32,
        nodes: Vec<NodeId>,
        offline: Vec<NodeId>,
    },
    /// A batch ended: `passed` settled, `failed` did not (and why); `passed_batch` says
    /// whether the batch passed (within `--max-failed`).
    RolloutBatchFinished {
        instance: Name,
        rollout: u64,
        batch: u32,
        passed: Vec<NodeId>,
        failed: Vec<NodeFailure>,
        offline: Vec<NodeId>,
        passed_batch: bool,
    },
    RolloutPaused {
        instance: Name,
        rollout: u64,
    },
    RolloutResumed {
        instance: Name,
        rollout: u64,
    },
    /// A rollout ended, and how.
    RolloutFinished {
        instance: Name,
        rollout: u64,
        outcome: RolloutOutcome,
    },
    /// An environment has a new name; everything that named it follows.
    EnvironmentRenamed {
        name: Name,
        to: Name,
    },
    /// An environment's description and entry addresses.
    EnvironmentUpdated {
        name: Name,
        description: Option<String>,
        entries: Vec<String>,
    },
    /// A node's address, set by hand (`node set --address`).
    NodeAddressChanged {
        node: NodeId,
        address: String,
    },
}

impl EventPayload {
    /// A stable dotted name, for tables and filters.
    pub fn kind(&self) -> &'static str {
        match self {
            EventPayload::EnvironmentCreated { .. } => "environment.created",
            EventPayload::EnvironmentDeleted { .. } => "environment.deleted",
            EventPayload::EnrollmentTokenIssued { .. } => "enrollment-token.issued",
            EventPayload::NodeEnrolled { .. } => "node.enrolled",
            EventPayload::NodeRenamed { .. } => "node.renamed",
            EventPayload::NodeLabelled { .. } => "node.labelled",
            EventPayload::NodeJoined { .. } => "node.joined",
            EventPayload::NodeLeft { .. } => "node.left",
            EventPayload::NodeStatusChanged { .. } => "node.status-changed",
            EventPayload::AppVersionPublished { .. } => "app.version-published",
            EventPayload::InstanceDeployed { .. } => "instance.deployed",
            EventPayload::InstanceUndeployed { .. } => "instance.undeployed",
            EventPayload::ApiTokenCreated { .. } => "api-token.created",
            EventPayload::ApiTokenRevoked { .. } => "api-token.revoked",
            EventPayload::NodeRemoved { .. } => "node.removed",
            EventPayload::NodeCertificateRenewed { .. } => "node.certificate-renewed",
            EventPayload::SecretSet { .. } => "secret.set",
            EventPayload::SecretDeleted { .. } => "secret.deleted",
            EventPayload::SecretDelivered { .. } => "secret.delivered",
            EventPayload::NodeSecretsKeyRegistered { .. } => "node.secrets-key-registered",
            EventPayload::InstanceNodesChanged { .. } => "instance.nodes-changed",
            EventPayload::RolloutStarted { .. } => "rollout.started",
            EventPayload::RolloutBatchStarted { .. } => "rollout.batch-started",
            EventPayload::RolloutBatchFinished { .. } => "rollout.batch-finished",
            EventPayload::RolloutPaused { .. } => "rollout.paused",
            EventPayload::RolloutResumed { .. } => "rollout.resumed",
            EventPayload::RolloutFinished { .. } => "rollout.finished",
            EventPayload::EnvironmentRenamed { .. } => "environment.renamed",
            EventPayload::EnvironmentUpdated { .. } => "environment.updated",
            EventPayload::NodeAddressChanged { .. } => "node.address-changed",
        }
    }

    /// A one-line human summary.
    pub fn summary(&self) -> String {
        match self {
            EventPayload::EnvironmentCreated { name, .. } => format!("environment {name}"),
            EventPayload::EnvironmentDeleted { name } => format!("environment {name}"),
            EventPayload::EnrollmentTokenIssued {
                token,
                env,
                expires,
                ..
            } => {
                format!("token {token} for {env}, expires {expires}")
            }
            EventPayload::NodeEnrolled {
                node,
                name,
                env,
                profile,
                ..
            } => {
                format!("node {name} ({node}) in {env}, profile {}", profile.name)
            }
            EventPayload::NodeRenamed { node, name } => format!("node {node} is now {name}"),
            EventPayload::NodeLabelled { node, set, removed } => {
                let mut parts: Vec<String> = set.iter().map(|(k, v)| format!("{k}={v}")).collect();
                parts.extend(removed.iter().map(|k| format!("{k}-")));
                format!("node {node}: {}", parts.join(" "))
            }
            EventPayload::NodeJoined { node, env } => format!("node {node} joined {env}"),
            EventPayload::NodeLeft { node, env } => format!("node {node} left {env}"),
            EventPayload::NodeStatusChanged { node, status } => format!("node {node} {status}"),
            EventPayload::AppVersionPublished { manifest, .. } => {
                format!("{}@{}", manifest.app, manifest.version)
            }
            EventPayload::InstanceDeployed { instance } => format!(
                "{} = {}@{} in {} on {} node(s)",
                instance.name,
                instance.app,
                instance.version,
                instance.env,
                instance.nodes.len()
            ),
            EventPayload::InstanceUndeployed { name, purge } => {
                format!("{name}{}", if *purge { " (purge)" } else { "" })
            }
            EventPayload::ApiTokenCreated {
                token,
                role,
                envs,
                expires,
                ..
            } => {
                let scope = if envs.is_empty() {
                    "every environment".to_owned()
                } else {
                    envs.iter().map(Name::as_str).collect::<Vec<_>>().join(", ")
                };
                match expires {
                    Some(t) => format!("token {token} ({role}) for {scope}, expires {t}"),
                    None => format!("token {token} ({role}) for {scope}"),
                }
            }
            EventPayload::ApiTokenRevoked { token } => format!("token {token}"),
            EventPayload::NodeRemoved { node } => format!("node {node}"),
            EventPayload::NodeCertificateRenewed { node, expires, .. } => {
                format!("node {node}, valid until {expires}")
            }
            EventPayload::SecretSet {
                name, env, version, ..
            } => match env {
                Some(env) => format!("secret {name} version {version} for {env}"),
                None => format!("secret {name} version {version}"),
            },
            EventPayload::SecretDeleted { name } => format!("secret {name}"),
            EventPayload::SecretDelivered {
                name,
                version,
                node,
                ..
            } => format!("secret {name} version {version} to node {node}"),
            EventPayload::NodeSecretsKeyRegistered { node, .. } => format!("node {node}"),
            EventPayload::InstanceNodesChanged { instance, changes } => {
                let parts: Vec<String> = changes
                    .iter()
                    .map(|c| {
                        let verb = match (instance.targets(c.node), instance.lifecycle.stopped) {
                            (false, _) => "leaves it",
                            (true, false) => "runs it",
                            (true, true) => "has it stopped",
                        };
                        format!("node {} {verb} ({})", c.node, c.reason)
                    })
                    .collect();
                format!(
                    "{} = {}@{}: {}",
                    instance.name,
                    instance.app,
                    instance.version,
                    parts.join("; ")
                )
            }
            EventPayload::RolloutStarted { rollout } => format!(
                "{} rollout {}: {} to {}@{} on {} node(s) in {} batch(es)",
                rollout.instance,
                rollout.id,
                rollout.kind,
                rollout.to.app,
                rollout.to.version,
                rollout.order.len(),
                rollout.batches.len()
            ),
            EventPayload::RolloutBatchStarted {
                instance,
                rollout,
                batch,
                nodes,
                offline,
            } => format!(
                "{instance} rollout {rollout} batch {batch}: {} node(s), {} offline",
                nodes.len(),
                offline.len()
            ),
            EventPayload::RolloutBatchFinished {
                instance,
                rollout,
                batch,
                passed,
                failed,
                offline,
                passed_batch,
            } => format!(
                "{instance} rollout {rollout} batch {batch} {}: {} passed, {} failed, {} offline",
                if *passed_batch { "passed" } else { "failed" },
                passed.len(),
                failed.len(),
                offline.len()
            ),
            EventPayload::RolloutPaused { instance, rollout } => {
                format!("{instance} rollout {rollout}")
            }
            EventPayload::RolloutResumed { instance, rollout } => {
                format!("{instance} rollout {rollout}")
            }
            EventPayload::RolloutFinished {
                instance,
                rollout,
                outcome,
            } => format!("{instance} rollout {rollout} {outcome}"),
            EventPayload::EnvironmentRenamed { name, to } => {
                format!("environment {name} is now {to}")
            }
            EventPayload::EnvironmentUpdated { name, .. } => format!("environment {name}"),
            EventPayload::NodeAddressChanged { node, address } => {
                format!("node {node} at {address}")
            }
        }
    }

    /// The payload as `node` receives it. A deploy keeps only `node`'s own target and its own
    /// unschedulable entry: no node learns which other nodes run an instance, and a deploy to
    /// N nodes sends each a frame of its own size rather than N copies of the whole target
    /// list (N^2 bytes in all). Every other payload is sent whole.
    pub fn for_node(&self, node: NodeId) -> EventPayload {
        match self {
            EventPayload::InstanceDeployed { instance } => EventPayload::InstanceDeployed {
                instance: Box::new(instance.for_node(node)),
            },
            EventPayload::InstanceNodesChanged { instance, changes } => {
                EventPayload::InstanceNodesChanged {
                    instance: Box::new(instance.for_node(node)),
                    changes: changes.iter().filter(|c| c.node == node).cloned().collect(),
                }
            }
            other => other.clone(),
        }
    }

    /// The instance this event is about, if any.
    pub fn instance(&self) -> Option<&Name> {
        match self {
            EventPayload::InstanceDeployed { instance } => Some(&instance.name),
            EventPayload::InstanceUndeployed { name, .. } => Some(name),
            EventPayload::InstanceNodesChanged { instance, .. } => Some(&instance.name),
            EventPayload::RolloutStarted { rollout } => Some(&rollout.instance),
            EventPayload::RolloutBatchStarted { instance, .. }
            | EventPayload::RolloutBatchFinished { instance, .. }
            | EventPayload::RolloutPaused { instance, .. }
            | EventPayload::RolloutResumed { instance, .. }
            | EventPayload::RolloutFinished { instance, .. } => Some(instance),
            _ => None,
        }
    }
}

/// The `node_seq` an event was given for one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSeq {
    pub node: NodeId,
    pub node_seq: u64,
}

/// One entry of the command log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Global sequence number, from 1, with no gaps.
    pub seq: u64,
    pub time: Timestamp,
    pub actor: Actor,
    pub payload: EventPayload,
    /// The nodes this event concerns, each with its own sequence number.
    pub node_seqs: Vec<NodeSeq>,
    pub prev_hash: Digest,
    pub hash: Digest,
}

/// Why a chain does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("event {seq}: expected sequence number {expected}")]
    Gap { seq: u64, expected: u64 },
    #[error("event {seq}: prev_hash does not match the hash of event {}", seq.saturating_sub(1))]
    Broken { seq: u64 },
    #[error("event {seq}: its hash does not match its content")]
    Tampered { seq: u64 },
    #[error("event {seq}: node {node} expected node_seq {expected}, found {found}")]
    NodeSeqGap {
        seq: u64,
        node: NodeId,
        expected: u64,
        found: u64,
    },
    #[error("event {seq}: cannot encode: {reason}")]
    Encode { seq: u64, reason: String },
}

impl ChainError {
    /// The sequence number of the event at fault.
    pub fn seq(&self) -> u64 {
        match self {
            ChainError::Gap { seq, .. }
            | ChainError::Broken { seq }
            | ChainError::Tampered { seq }
            | ChainError::NodeSeqGap { seq, .. }
            | ChainError::Encode { seq, .. } => *seq,
        }
    }
}

#[derive(Serialize)]
struct HashInput<'a> {
    seq: u64,
    time: Timestamp,
    actor: &'a Actor,
    payload: &'a EventPayload,
    node_seqs: &'a [NodeSeq],
    prev_hash: Digest,
}

impl Event {
    /// Seals a payload into a log entry, computing its hash.
    pub fn seal(
        seq: u64,
        time: Timestamp,
        actor: Actor,
        payload: EventPayload,
        node_seqs: Vec<NodeSeq>,
        prev_hash: Digest,
    ) -> Result<Event, ChainError> {
        let mut e = Event {
            seq,
            time,
            actor,
            payload,
            node_seqs,
            prev_hash,
            hash: Digest::ZERO,
        };
        e.hash = e.compute_hash()?;
        Ok(e)
    }

    /// The hash of this entry's content and its predecessor's hash.
    pub fn compute_hash(&self) -> Result<Digest, ChainError> {
        let input = HashInput {
            seq: self.seq,
            time: self.time,
            actor: &self.actor,
            payload: &self.payload,
            node_seqs: &self.node_seqs,
            prev_hash: self.prev_hash,
        };
        let bytes = postcard::to_stdvec(&input).map_err(|e| ChainError::Encode {
            seq: self.seq,
            reason: e.to_string(),
        })?;
        Ok(Digest::of(&bytes))
    }

    pub fn node_seq_for(&self, node: NodeId) -> Option<u64> {
        self.node_seqs
            .iter()
            .find(|n| n.node == node)
            .map(|n| n.node_seq)
    }

    /// The event as delivered to `node`, if it concerns that node: its `node_seq`, and the
    /// payload as [`EventPayload::for_node`] gives it.
    pub fn for_node(&self, node: NodeId) -> Option<NodeEvent> {
        Some(NodeEvent {
            node_seq: self.node_seq_for(node)?,
            seq: self.seq,
            time: self.time,
            payload: self.payload.for_node(node),
        })
    }
}

/// Checks a run of the chain: consecutive sequence numbers from `start_seq`, each
/// `prev_hash` equal to its predecessor's hash (`start_prev` for the first), each hash
/// matching its content, and each node's `node_seq` going up by one (`node_next` holds
/// the next expected `node_seq` per node and is updated).
pub fn verify_chain<'a>(
    events: impl IntoIterator<Item = &'a Event>,
    start_seq: u64,
    start_prev: Digest,
    node_next: &mut std::collections::HashMap<NodeId, u64>,
) -> Result<(u64, Digest), ChainError> {
    let (mut expected, mut prev) = (start_seq, start_prev);
    for e in events {
        if e.seq != expected {
            return Err(ChainError::Gap {
                seq: e.seq,
                expected,
            });
        }
        if e.prev_hash != prev {
            return Err(ChainError::Broken { seq: e.seq });
        }
        if e.compute_hash()? != e.hash {
            return Err(ChainError::Tampered { seq: e.seq });
        }
        for ns in &e.node_seqs {
            let next = node_next.entry(ns.node).or_insert(1);
            if ns.node_seq != *next {
                return Err(ChainError::NodeSeqGap {
                    seq: e.seq,
                    node: ns.node,
                    expected: *next,
                    found: ns.node_seq,
                });
            }
            *next += 1;
        }
        prev = e.hash;
        expected += 1;
    }
    Ok((expected, prev))
}

/// An event as a node receives it: its place in the node's own sequence, and the payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEvent {
    pub node_seq: u64,
    /// The global sequence number, for the audit trail.
    pub seq: u64,
    pub time: Timestamp,
    pub payload: EventPayload,
}

impl NodeEvent {
    /// A digest of the content, to tell a duplicate from equivocation.
    pub fn digest(&self) -> Digest {
        Digest::of(&postcard::to_stdvec(self).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<Event> {
        let node = NodeId::random();
        let mut prev = Digest::ZERO;
        let mut out = Vec::new();
        for seq in 1..=n {
            let payload = EventPayload::NodeRenamed {
                node,
                name: Name::parse(&format!("n{seq}")).unwrap(),
            };
            let e = Event::seal(
                seq,
                Timestamp(seq as i64),
                Actor::Cloud,
                payload,
                vec![NodeSeq {
                    node,
                    node_seq: seq,
                }],
                prev,
            )
            .unwrap();
            prev = e.hash;
            out.push(e);
        }
        out
    }

    #[test]
    fn a_node_receives_only_its_own_part_of_a_deploy() {
        let manifest = crate::manifest::parse_manifest(
            "app: web\nversion: 1.0.0\ncomponents:\n  - name: api\n    image: api:1\n",
        )
        .unwrap();
        let (a, b, c) = (NodeId::random(), NodeId::random(), NodeId::random());
        let target = |node| NodeTarget { node, weight: 1 };
        let spec = InstanceSpec {
            name: Name::parse("web").unwrap(),
            env: Name::parse("prod").unwrap(),
            app: Name::parse("web").unwrap(),
            version: manifest.version.clone(),
            manifest,
            nodes: vec![target(a), target(b)],
            unschedulable: vec![Unschedulable {
                node: c,
                reasons: vec!["memory".into()],
            }],
            selector: Labels::new(),
            overrides: vec![],
            mode: InstanceMode::Production,
            targeting: crate::event::Targeting::Named,
            lifecycle: Default::default(),
        };
        let payload = EventPayload::InstanceDeployed {
            instance: Box::new(spec.clone()),
        };
        let EventPayload::InstanceDeployed { instance } = payload.for_node(a) else {
            panic!("a deploy stays a deploy");
        };
        assert_eq!(instance.nodes, vec![target(a)]);
        assert!(instance.unschedulable.is_empty());
        assert!(instance.targets(a) && !instance.targets(b));
        // Everything but the other nodes' entries is the node's to see.
        let mut whole = (*instance).clone();
        whole.nodes = spec.nodes.clone();
        whole.unschedulable = spec.unschedulable.clone();
        assert_eq!(whole, spec);

        let EventPayload::InstanceDeployed { instance } = payload.for_node(c) else {
            panic!("a deploy stays a deploy");
        };
        assert!(instance.nodes.is_empty());
        assert_eq!(instance.unschedulable, spec.unschedulable);

        let rename = EventPayload::NodeRenamed {
            node: a,
            name: Name::parse("gw").unwrap(),
        };
        assert_eq!(rename.for_node(a), rename);
    }

    #[test]
    fn chain_verifies_and_detects_tampering() {
        let mut events = chain(5);
        let mut nn = Default::default();
        assert!(verify_chain(&events, 1, Digest::ZERO, &mut nn).is_ok());
        events[2].time = Timestamp(99);
        let mut nn = Default::default();
        assert_eq!(
            verify_chain(&events, 1, Digest::ZERO, &mut nn),
            Err(ChainError::Tampered { seq: 3 })
        );
        let mut events = chain(5);
        events.remove(3);
        let mut nn = Default::default();
        assert_eq!(
            verify_chain(&events, 1, Digest::ZERO, &mut nn),
            Err(ChainError::Gap {
                seq: 5,
                expected: 4
            })
        );
    }
}
