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
    for (node, sealed) in &s.copies {
        let fits = p.nodes.get(node).is_some_and(|n| in_scope(env.as_ref(), n))
            && p.secrets.node_key(*node).is_some();
        if fits {
            out.push(delivered(&name, s.version, *node, sealed.clone()));
        }
    }
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
                    "node(s) {} have no key to receive secrets with (enrolled by an agent \
                     without secrets); enroll them again",
                    keyless.into_iter().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    Ok(())
}
