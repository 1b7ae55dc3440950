//! Secrets: set (a new version, sealed at rest, with each node's sealed copy), delivered
//! (a node's copy of the latest version, from the delivery controller), deleted, a node's
//! key registered, and the check a deploy passes: every secret its components name exists
//! for its environment, and every target node can receive it.
//!
//! Values never reach a handler in plain text: the caller (the API, the controller) seals
//! them first, so a command, like the events it causes, holds only ciphertext.

use std::collections::BTreeSet;

use skerry_shared::event::{EventPayload, NodeTarget};
use skerry_shared::ids::{Name, NodeId, shown};
use skerry_shared::manifest::Manifest;
use skerry_shared::secret::{MAX_SECRETS, NodeSecretsKey, SealedAtRest, SealedForNode};

use super::checks::environment;
use super::outcome::{Pending, Refusal};
use crate::projections::{Node, Projections};

/// A `secret set`, sealed by the caller.
#[derive(Debug, Clone)]
pub struct NewSecret {
    pub name: String,
    pub env: Option<String>,
    /// The version this sets: one more than the current one (a concurrent set makes the
    /// later of the two a 409).
    pub version: u64,
    pub sealed: SealedAtRest,
    /// Each node's copy, sealed for its key.
    pub copies: Vec<(NodeId, SealedForNode)>,
}

/// Whether `node` is one a secret limited to `env` goes to.
pub fn in_scope(env: Option<&Name>, node: &Node) -> bool {
    env.is_none_or(|e| node.envs.contains(e))
}

fn secret_name(raw: &str) -> Result<Name, Refusal> {
    Name::parse(raw).map_err(|e| Refusal::invalid("invalid_name", "name", e.to_string()))
}

pub(super) fn set(p: &Projections, s: &NewSecret) -> Result<Vec<Pending>, Refusal> {
    let name = secret_name(&s.name)?;
    let env = match &s.env {
        Some(raw) => Some(environment(p, "env", raw)?.name.clone()),
        None => None,
    };
    let current = p.secrets.get(name.as_str());
    if current.is_none() && p.secrets.len() >= MAX_SECRETS {
        return Err(Refusal::conflict(
            "too_many_secrets",
            "name",
            format!("{MAX_SECRETS} secrets exist; delete some first"),
        ));
    }
    // One secret per name: a set keeps its environment. Moving it would hand one
    // environment's value to another and change what running instances receive.
    if let Some(c) = current
        && c.env != env
    {
        let scope = |e: &Option<Name>| {
            e.as_ref().map_or_else(
                || "every environment".to_owned(),
                |e| format!("environment {e}"),
            )
        };
        return Err(Refusal::conflict(
            "secret_env_changed",
            "env",
            format!(
                "secret {name} is for {}, not {}; delete it first to set it for another",
                scope(&c.env),
                scope(&env)
            ),
        ));
    }
    let expected = current.map_or(1, |c| c.version + 1);
    if s.version != expected {
        return Err(Refusal::conflict(
            "secret_changed",
            "name",
            format!("secret {name} changed while this was set; try again"),
        ));
    }
    let mut out = vec![Pending::cloud_only(EventPayload::SecretSet {
        name: name.clone(),
        env: env.clone(),
        version: s.version,
        sealed: s.sealed.clone(),
    })];
    // By node name, so that the log reads in the order people name the nodes (and the
    // same set gives the same events whatever the nodes' random ids).
    let mut copies: Vec<(&Name, NodeId, &SealedForNode)> = s
        .copies
        .iter()
        .filter_map(|(node, sealed)| {
            let n = p.nodes.get(node)?;
            (in_scope(env.as_ref(), n) && p.secrets.node_key(*node).is_some())
                .then_some((&n.name, *node, sealed))
        })
        .collect();
    copies.sort_by(|a, b| a.0.cmp(b.0));
    out.extend(
        copies
            .into_iter()
            .map(|(_, node, sealed)| delivered(&name, s.version, node, sealed.clone())),
    );
    Ok(out)
}

fn delivered(name: &Name, version: u64, node: NodeId, sealed: SealedForNode) -> Pending {
    Pending {
        payload: EventPayload::SecretDelivered {
            name: name.clone(),
            version,
            node,
            sealed,
        },
        audience: vec![node],
    }
}

/// A node's copy of a secret version. Changes nothing when the version is no longer the
/// latest, the node already has it, or is gone or out of the secret's scope.
pub(super) fn deliver(
    p: &Projections,
    name: &Name,
    version: u64,
    node: NodeId,
    sealed: &SealedForNode,
) -> Result<Vec<Pending>, Refusal> {
    let Some(s) = p.secrets.get(name.as_str()) else {
        return Ok(Vec::new());
    };
    let wanted = s.version == version
        && s.delivered.get(&node).is_none_or(|v| *v < version)
        && p.nodes
            .get(&node)
            .is_some_and(|n| in_scope(s.env.as_ref(), n))
        && p.secrets.node_key(node).is_some();
    if !wanted {
        return Ok(Vec::new());
    }
    Ok(vec![delivered(name, version, node, sealed.clone())])
}

/// The instances whose components name secret `name`.
pub fn users<'a>(p: &'a Projections, name: &'a str) -> impl Iterator<Item = &'a Name> + 'a {
    p.instances
        .values()
        .filter(move |i| {
            i.spec
                .manifest
                .components
                .iter()
                .any(|c| c.secrets.iter().any(|s| s.name.as_str() == name))
        })
        .map(|i| &i.spec.name)
}

pub(super) fn delete(p: &Projections, raw: &str) -> Result<Vec<Pending>, Refusal> {
    let s = p.secrets.get(raw).ok_or_else(|| {
        Refusal::not_found(
            "unknown_secret",
            "name",
            format!("no secret named {}", shown(raw)),
        )
    })?;
    let users: Vec<&str> = users(p, raw).map(Name::as_str).collect();
    if !users.is_empty() {
        return Err(Refusal::conflict(
            "secret_in_use",
            "name",
            format!(
                "secret {} is used by instance(s) {}; undeploy them first",
                s.name,
                users.join(", ")
            ),
        ));
    }
    Ok(vec![Pending {
        payload: EventPayload::SecretDeleted {
            name: s.name.clone(),
        },
        audience: s.delivered.keys().copied().collect(),
    }])
}

pub(super) fn register_key(
    p: &Projections,
    node: NodeId,
    key: NodeSecretsKey,
) -> Result<Vec<Pending>, Refusal> {
    if p.secrets.node_key(node) == Some(&key) {
        return Ok(Vec::new());
    }
    Ok(vec![Pending::cloud_only(
        EventPayload::NodeSecretsKeyRegistered { node, key },
    )])
}

/// A key a node sent over its link (it enrolled before nodes had one): recorded only for
/// an enrolled node without a key. The same key again changes nothing; another key than
/// the registered one is refused, so a node's key never changes without a new enrollment.
pub(super) fn register_key_over_link(
    p: &Projections,
    node: NodeId,
    key: NodeSecretsKey,
) -> Result<Vec<Pending>, Refusal> {
    super::checks::enrolled(p, node)?;
    match p.secrets.node_key(node) {
        None => Ok(vec![Pending::cloud_only(
            EventPayload::NodeSecretsKeyRegistered { node, key },
        )]),
        Some(registered) if *registered == key => Ok(Vec::new()),
        Some(_) => Err(Refusal::conflict(
            "secrets_key_changed",
            "key",
            format!(
                "node {node} already has another key for secrets; a node's key changes only \
                 by enrolling it again"
            ),
        )),
    }
}

/// What a deploy of `manifest` in `env` to `nodes` needs of secrets: each secret a
/// component names exists and is for that environment (or every one), and each target
/// node has a key to receive it with.
pub fn check_deploy(
    p: &Projections,
    env: &Name,
    manifest: &Manifest,
    nodes: &[NodeTarget],
) -> Result<(), Refusal> {
    let mut any = false;
    for (i, c) in manifest.components.iter().enumerate() {
        for (j, u) in c.secrets.iter().enumerate() {
            any = true;
            let field = format!("components[{i}].secrets[{j}].name");
            match p.secrets.get(u.name.as_str()) {
                None => {
                    return Err(Refusal::invalid(
                        "unknown_secret",
                        field,
                        format!(
                            "no secret named {}; set it with `skerry secret set`",
                            u.name
                        ),
                    ));
                }
                Some(s) if s.env.as_ref().is_some_and(|e| e != env) => {
                    return Err(Refusal::invalid(
                        "unknown_secret",
                        field,
                        format!("secret {} is not for environment {env}", u.name),
                    ));
                }
                Some(_) => {}
            }
        }
    }
    if any {
        let keyless: BTreeSet<String> = nodes
            .iter()
            .filter(|t| p.secrets.node_key(t.node).is_none())
            .map(|t| {
                p.nodes
                    .get(&t.node)
                    .map_or_else(|| t.node.to_string(), |n| n.name.to_string())
            })
            .collect();
        if !keyless.is_empty() {
            return Err(Refusal::invalid(
                "node_without_secrets_key",
                "nodes",
                format!(
                    "node(s) {} have no key to receive secrets with yet (enrolled by an \
                     agent without secrets); an agent of this release registers one when it \
                     connects",
                    keyless.into_iter().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;

    use skerry_shared::clock::Timestamp;
    use skerry_shared::event::{Actor, Event, EventPayload, InstanceMode, InstanceSpec};
    use skerry_shared::hash::Digest;
    use skerry_shared::ids::{Labels, Name, NodeId};
    use skerry_shared::manifest::parse_manifest;
    use skerry_shared::secret::{NodeSecretsKey, SealedAtRest, SealedForNode};

    use super::*;
    use crate::command::outcome::RefusalKind;

    fn n(s: &str) -> Name {
        Name::parse(s).unwrap()
    }

    fn apply(p: &mut Projections, payload: EventPayload) {
        let seq = p.head.next_seq;
        let e = Event::seal(
            seq,
            Timestamp(seq as i64),
            Actor::Cloud,
            payload,
            vec![],
            p.head.last_hash,
        )
        .unwrap();
        p.apply(&e);
    }

    fn sealed() -> SealedAtRest {
        SealedAtRest {
            nonce: [0; 12],
            ciphertext: vec![9; 20],
        }
    }

    fn copy() -> SealedForNode {
        SealedForNode {
            ephemeral: [1; 32],
            ciphertext: vec![2; 20],
        }
    }

    /// Environment `plant` with node `gw` (that has a key) and `old` (that has none).
    fn fixture() -> (Projections, NodeId, NodeId) {
        let mut p = Projections::default();
        apply(
            &mut p,
            EventPayload::EnvironmentCreated {
                name: n("plant"),
                labels: Labels::new(),
                entries: vec![],
            },
        );
        let (gw, old) = (NodeId::random(), NodeId::random());
        for (id, name) in [(gw, "gw"), (old, "old")] {
            apply(
                &mut p,
                EventPayload::NodeEnrolled {
                    node: id,
                    name: n(name),
                    env: n("plant"),
                    address: "127.0.0.1".into(),
                    profile: Box::new(skerry_shared::profile::builtin("x86-64-host").unwrap()),
                    token: skerry_shared::ids::TokenId::random(),
                    certificate: Digest::ZERO,
                },
            );
        }
        apply(
            &mut p,
            EventPayload::NodeSecretsKeyRegistered {
                node: gw,
                key: NodeSecretsKey([5; 32]),
            },
        );
        (p, gw, old)
    }

    fn new_secret(version: u64, copies: Vec<(NodeId, SealedForNode)>) -> NewSecret {
        NewSecret {
            name: "db".into(),
            env: None,
            version,
            sealed: sealed(),
            copies,
        }
    }

    #[test]
    fn set_records_the_version_and_a_copy_for_each_keyed_node_only() {
        let (mut p, gw, old) = fixture();
        let out = set(&p, &new_secret(1, vec![(gw, copy()), (old, copy())])).unwrap();
        assert_eq!(out.len(), 2, "the set and gw's copy; old has no key");
        assert_eq!(out[1].audience, vec![gw]);
        for e in &out {
            apply(&mut p, e.payload.clone());
        }
        assert_eq!(p.secrets.get("db").unwrap().version, 1);
        // A set that raced another is refused; the next version is 2.
        let stale = set(&p, &new_secret(1, vec![])).unwrap_err();
        assert_eq!(stale.kind, RefusalKind::Conflict);
        assert!(set(&p, &new_secret(2, vec![])).is_ok());
    }

    #[test]
    fn a_set_does_not_move_an_existing_secret_to_another_environment() {
        let (mut p, gw, _) = fixture();
        apply(
            &mut p,
            EventPayload::EnvironmentCreated {
                name: n("other"),
                labels: Labels::new(),
                entries: vec![],
            },
        );
        let mut s = new_secret(1, vec![(gw, copy())]);
        s.env = Some("plant".into());
        for e in set(&p, &s).unwrap() {
            apply(&mut p, e.payload);
        }
        // To another environment, to every one; and a secret for every one to one.
        for env in [Some("other"), None] {
            let mut moved = new_secret(2, vec![]);
            moved.env = env.map(Into::into);
            let e = set(&p, &moved).unwrap_err();
            assert_eq!(
                (e.kind, e.code, e.field.as_deref()),
                (RefusalKind::Conflict, "secret_env_changed", Some("env"))
            );
            assert!(e.message.contains("delete it first"), "{}", e.message);
        }
        assert_eq!(p.secrets.get("db").unwrap().env, Some(n("plant")));
        let mut global = new_secret(1, vec![]);
        global.name = "everywhere".into();
        for e in set(&p, &global).unwrap() {
            apply(&mut p, e.payload);
        }
        let mut moved = new_secret(2, vec![]);
        moved.name = "everywhere".into();
        moved.env = Some("plant".into());
        assert_eq!(set(&p, &moved).unwrap_err().code, "secret_env_changed");
        // The same environment: the next version.
        s.version = 2;
        assert!(set(&p, &s).is_ok());
    }

    #[test]
    fn a_key_over_the_link_is_recorded_only_for_a_keyless_enrolled_node() {
        let (mut p, gw, old) = fixture();
        let key = NodeSecretsKey([7; 32]);
        let out = register_key_over_link(&p, old, key).unwrap();
        assert_eq!(out.len(), 1);
        assert!(out[0].audience.is_empty(), "the cloud's own record");
        apply(&mut p, out[0].payload.clone());
        assert_eq!(p.secrets.node_key(old), Some(&key));
        // The same key again: nothing; another one: refused, the first one stays.
        assert!(register_key_over_link(&p, old, key).unwrap().is_empty());
        let e = register_key_over_link(&p, old, NodeSecretsKey([8; 32])).unwrap_err();
        assert_eq!(
            (e.kind, e.code),
            (RefusalKind::Conflict, "secrets_key_changed")
        );
        assert!(!e.message.contains(&NodeSecretsKey([8; 32]).to_hex()));
        let e = register_key_over_link(&p, gw, key).unwrap_err();
        assert_eq!(e.code, "secrets_key_changed");
        assert_eq!(p.secrets.node_key(old), Some(&key));
        // A node the cloud does not know.
        let e = register_key_over_link(&p, NodeId::random(), key).unwrap_err();
        assert_eq!(e.kind, RefusalKind::NotFound);
    }

    #[test]
    fn delivery_is_recorded_once_and_only_for_the_latest_version() {
        let (mut p, gw, _) = fixture();
        for e in set(&p, &new_secret(1, vec![])).unwrap() {
            apply(&mut p, e.payload);
        }
        assert_eq!(
            crate::controllers::secrets::missing(&p),
            vec![(n("db"), 1, gw)]
        );
        let out = deliver(&p, &n("db"), 1, gw, &copy()).unwrap();
        assert_eq!(out.len(), 1);
        apply(&mut p, out[0].payload.clone());
        assert!(crate::controllers::secrets::missing(&p).is_empty());
        assert!(deliver(&p, &n("db"), 1, gw, &copy()).unwrap().is_empty());
        assert!(deliver(&p, &n("db"), 0, gw, &copy()).unwrap().is_empty());
    }

    #[test]
    fn a_deploy_needs_its_secrets_and_keyed_nodes_and_a_used_secret_stays() {
        let (mut p, gw, old) = fixture();
        let m = parse_manifest(
            "app: a\nversion: 1.0.0\ncomponents:\n  - name: web\n    image: web:1\n    secrets:\n      - { name: other, env: OTHER }\n      - { name: db, env: DB }\n",
        )
        .unwrap();
        let target = |node| vec![skerry_shared::event::NodeTarget { node, weight: 1 }];
        let e = check_deploy(&p, &n("plant"), &m, &target(gw)).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("components[0].secrets[0].name"));
        assert_eq!(e.kind, RefusalKind::Invalid);
        for name in ["db", "other"] {
            let mut s = new_secret(1, vec![]);
            s.name = name.into();
            for e in set(&p, &s).unwrap() {
                apply(&mut p, e.payload);
            }
        }
        assert!(check_deploy(&p, &n("plant"), &m, &target(gw)).is_ok());
        let e = check_deploy(&p, &n("plant"), &m, &target(old)).unwrap_err();
        assert_eq!(e.code, "node_without_secrets_key");

        apply(
            &mut p,
            EventPayload::AppVersionPublished {
                manifest: m.clone(),
                digest: Digest::ZERO,
            },
        );
        apply(
            &mut p,
            EventPayload::InstanceDeployed {
                instance: Box::new(InstanceSpec {
                    name: n("web"),
                    env: n("plant"),
                    app: n("a"),
                    version: m.version.clone(),
                    manifest: m.clone(),
                    nodes: target(gw),
                    unschedulable: vec![],
                    selector: BTreeMap::new(),
                    overrides: vec![],
                    mode: InstanceMode::Production,
                    targeting: skerry_shared::event::Targeting::Named,
                    lifecycle: Default::default(),
                }),
            },
        );
        let e = delete(&p, "db").unwrap_err();
        assert_eq!(e.kind, RefusalKind::Conflict);
        assert!(e.message.contains("web"), "{}", e.message);
        assert_eq!(delete(&p, "nope").unwrap_err().kind, RefusalKind::NotFound);
    }
}
