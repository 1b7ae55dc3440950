//! Read models folded from the command log.
//!
//! [`Projections`] holds environments, nodes, apps and versions, instances and
//! enrollment tokens, plus the head of the hash chain (next sequence number, last hash,
//! next `node_seq` per node). It changes only by [`Projections::apply`], so rebuilding it
//! from the log at start gives the same state the running cloud had.
//!
//! **Refused events.** A recorded event the read models cannot take (written by an older
//! build that checked less, or by hand) must not keep the cloud from starting. `apply`
//! checks an event before it changes anything ([`Projections::check`]): a refused event
//! changes no read model, only the chain head moves past it (so the chain still verifies
//! and the next event follows it), and it is kept in [`Projections::refused`] with its
//! kind and why, logged, and marked in `GET /api/v1/events` ([`refusal_of`]). Refused are:
//! - an `app.version-published` whose manifest fails the shared manifest validation;
//! - an `instance.deployed` of an app version that is not there (never published, or its
//!   publication was refused), or whose manifest fails the validation (the same rule the
//!   agents fold with, [`skerry_shared::reducer::check_instance`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use skerry_shared::clock::Timestamp;
use skerry_shared::event::{Event, EventPayload, InstanceSpec, NodeStatus};
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

/// A deployed instance.
#[derive(Debug, Clone)]
pub struct Instance {
    pub spec: InstanceSpec,
    pub deployed: Timestamp,
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
    /// Every instance name ever deployed, undeployed ones too: the names that have a
    /// history in the log (`GET /api/v1/events?instance=` answers 404 for any other).
    pub instance_names: BTreeSet<Name>,
    pub tokens: HashMap<TokenId, EnrollmentTokenState>,
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
            instance_names: BTreeSet::new(),
            tokens: HashMap::new(),
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
            EventPayload::InstanceDeployed { instance } => {
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
                self.instance_names.insert(instance.name.clone());
                self.instances.insert(
                    instance.name.clone(),
                    Instance {
                        spec: (**instance).clone(),
                        deployed: e.time,
                        seq: e.seq,
                    },
                );
            }
            EventPayload::InstanceUndeployed { name, .. } => {
                self.instances.remove(name);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::Arc;

    use skerry_shared::event::{Actor, InstanceMode, NodeSeq, NodeTarget};
    use skerry_shared::manifest::Component;

    use super::*;
    use crate::log::{EventLog, RedbLog, walk};

    fn name(s: &str) -> Name {
        Name::parse(s).unwrap()
    }

    fn node_id() -> NodeId {
        NodeId(uuid::Uuid::from_u128(7))
    }

    /// A manifest of `weather@VERSION` with one service of `replicas` copies, built by
    /// hand: nothing checked it.
    fn manifest(version: &str, replicas: u32) -> Manifest {
        Manifest {
            app: name("weather"),
            version: version.parse().unwrap(),
            description: None,
            components: vec![Component {
                replicas: Some(replicas),
                ..Component::image(name("api"), "weather:1")
            }],
        }
    }

    fn deploy(manifest: Manifest) -> EventPayload {
        EventPayload::InstanceDeployed {
            instance: Box::new(InstanceSpec {
                name: name("web"),
                env: name("prod"),
                app: manifest.app.clone(),
                version: manifest.version.clone(),
                manifest,
                nodes: vec![NodeTarget {
                    node: node_id(),
                    weight: 1,
                }],
                unschedulable: vec![],
                selector: Labels::new(),
                overrides: vec![],
                mode: InstanceMode::Production,
            }),
        }
    }

    fn publish(manifest: Manifest) -> EventPayload {
        EventPayload::AppVersionPublished {
            digest: Digest::of(&postcard::to_stdvec(&manifest).unwrap()),
            manifest,
        }
    }

    /// Seals `payload` as the next event of the chain `p` is the head of, and folds it.
    fn append(p: &mut Projections, log: &mut Vec<Event>, payload: EventPayload) -> Event {
        let audience = match &payload {
            EventPayload::InstanceDeployed { .. } | EventPayload::NodeEnrolled { .. } => {
                vec![node_id()]
            }
            _ => vec![],
        };
        let node_seqs = audience
            .into_iter()
            .map(|node| NodeSeq {
                node,
                node_seq: p.head.next_node_seq(node),
            })
            .collect();
        let seq = p.head.next_seq;
        let e = Event::seal(
            seq,
            Timestamp(1_700_000_000_000 + seq as i64),
            Actor::Cloud,
            payload,
            node_seqs,
            p.head.last_hash,
        )
        .unwrap();
        p.apply(&e);
        log.push(e.clone());
        e
    }

    /// An environment, a node in it, weather@1.0.0 (one replica) and `web` deployed of it.
    fn fleet() -> (Projections, Vec<Event>) {
        let mut p = Projections::default();
        let mut log = Vec::new();
        append(
            &mut p,
            &mut log,
            EventPayload::EnvironmentCreated {
                name: name("prod"),
                labels: Labels::new(),
                entries: vec![],
            },
        );
        let profile = skerry_shared::profile::builtin_names()[0];
        append(
            &mut p,
            &mut log,
            EventPayload::NodeEnrolled {
                node: node_id(),
                name: name("gw-1"),
                env: name("prod"),
                address: "10.0.0.1".into(),
                profile: Box::new(skerry_shared::profile::builtin(profile).unwrap()),
                token: TokenId(uuid::Uuid::from_u128(9)),
                certificate: Digest::ZERO,
            },
        );
        append(&mut p, &mut log, publish(manifest("1.0.0", 1)));
        append(&mut p, &mut log, deploy(manifest("1.0.0", 1)));
        assert!(p.refused.is_empty(), "{:?}", p.refused);
        (p, log)
    }

    /// The read models (everything but the chain head and the refusals), to compare.
    fn models(p: &Projections) -> String {
        format!(
            "{:?}",
            (&p.envs, &p.node_names, &p.apps, &p.instances, &p.tokens)
        ) + &format!(
            "{:?}",
            p.nodes
                .values()
                .map(|n| (&n.id, &n.name, &n.envs, &n.labels, n.status, n.acked))
                .collect::<Vec<_>>()
        )
    }

    #[test]
    fn a_deploy_of_four_billion_replicas_is_refused_whole_and_the_head_moves_past_it() {
        let (mut p, mut log) = fleet();
        let before = models(&p);
        let node_seq_before = p.head.next_node_seq(node_id());
        // The version is published (with one replica); the deploy's own manifest says
        // 4294967295, as a log written by hand or by an older build may.
        let e = append(&mut p, &mut log, deploy(manifest("1.0.0", u32::MAX)));

        assert_eq!(models(&p), before, "no read model changed");
        assert_eq!(
            p.instances["web"].spec.manifest.components[0].replicas(),
            1,
            "the instance keeps its last applied deploy"
        );
        let r = &p.refused[&e.seq];
        assert_eq!((r.seq, r.kind), (e.seq, "instance.deployed"));
        assert!(r.reason.contains("replicas"), "{}", r.reason);
        assert_eq!(p.refused_total, 1);
        // The head moved past it: the next event follows it in the chain.
        assert_eq!(p.head.next_seq, e.seq + 1);
        assert_eq!(p.head.last_hash, e.hash);
        assert_eq!(p.head.next_node_seq(node_id()), node_seq_before + 1);
        assert_eq!(p.nodes[&node_id()].node_seq, node_seq_before);
        append(
            &mut p,
            &mut log,
            EventPayload::EnvironmentCreated {
                name: name("lab"),
                labels: Labels::new(),
                entries: vec![],
            },
        );
        assert!(p.envs.contains_key("lab"));
        let mut node_next = HashMap::new();
        skerry_shared::event::verify_chain(&log, 1, Digest::ZERO, &mut node_next).unwrap();
    }

    #[test]
    fn a_refused_publication_refuses_its_deploys_too() {
        let (mut p, mut log) = fleet();
        let before = models(&p);
        let published = append(&mut p, &mut log, publish(manifest("2.0.0", u32::MAX)));
        assert!(
            p.app_version("weather", &"2.0.0".parse().unwrap())
                .is_none()
        );
        assert_eq!(p.refused[&published.seq].kind, "app.version-published");
        assert!(
            p.refused[&published.seq].reason.contains("replicas"),
            "{}",
            p.refused[&published.seq].reason
        );
        // Its deploy: the version is not there.
        let deployed = append(&mut p, &mut log, deploy(manifest("2.0.0", u32::MAX)));
        assert!(
            p.refused[&deployed.seq].reason.contains("not published"),
            "{}",
            p.refused[&deployed.seq].reason
        );
        assert_eq!(models(&p), before);
        assert_eq!(p.refused_total, 2);
        assert_eq!(p.head.next_seq, deployed.seq + 1);
    }

    #[test]
    fn the_engine_starts_on_a_log_that_holds_one_and_appends_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.redb");
        let (mut p, mut log) = fleet();
        let bad = append(&mut p, &mut log, deploy(manifest("1.0.0", u32::MAX)));
        {
            let redb = RedbLog::open(&path, 1 << 20).unwrap();
            let events: Vec<Arc<Event>> = log.iter().cloned().map(Arc::new).collect();
            redb.append(&events).unwrap();
        }
        let redb: Arc<dyn EventLog> = Arc::new(RedbLog::open(&path, 1 << 20).unwrap());
        let engine = crate::engine::Engine::start(redb.clone()).unwrap();
        {
            let state = engine.read();
            assert_eq!(models(&state), models(&fleet().0));
            assert_eq!(state.refused[&bad.seq].kind, "instance.deployed");
            assert_eq!(state.head.next_seq, bad.seq + 1);
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let events = rt
            .block_on(engine.submit(
                Actor::Cloud,
                crate::command::Command::CreateEnvironment {
                    name: "lab".into(),
                    labels: BTreeMap::new(),
                    entries: Vec::new(),
                },
            ))
            .unwrap();
        assert_eq!(events[0].seq, bad.seq + 1);
        assert_eq!(events[0].prev_hash, bad.hash);
        engine.close();
        let walked = walk(redb.as_ref(), |_| {}).unwrap();
        assert_eq!(walked.events, bad.seq + 1);
    }
}
