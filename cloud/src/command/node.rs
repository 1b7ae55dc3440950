//! Nodes: enrollment, rename, labels, environment membership, status.

use std::collections::BTreeMap;

use skerry_shared::clock::Timestamp;
use skerry_shared::event::{EventPayload, NodeStatus};
use skerry_shared::ids::{MAX_LABELS, Name, NodeId};

use super::checks::{environment, labels, name, node_ref};
use super::intent::Enrollment;
use super::outcome::{Pending, Refusal};
use crate::projections::Projections;

/// Commands take a node's name or id, so a name may not read as an id.
fn not_an_id(name: &Name) -> Result<(), Refusal> {
    if name.as_str().parse::<NodeId>().is_ok() {
        return Err(Refusal::invalid(
            "invalid_name",
            "name",
            format!("\"{name}\" reads as a node id; choose a name that does not"),
        ));
    }
    Ok(())
}

pub(super) fn enroll(
    p: &Projections,
    e: &Enrollment,
    now: Timestamp,
) -> Result<Vec<Pending>, Refusal> {
    let Enrollment {
        token,
        node,
        name,
        profile,
        address,
        certificate,
        secrets_key: _,
    } = e;
    let (node, certificate) = (*node, *certificate);
    // One answer for every kind of bad token, so the endpoint tells an attacker nothing.
    let refused = || {
        Refusal::forbidden(
            "invalid_token",
            "token",
            "the enrollment token is unknown, used or expired",
        )
    };
    let state = p.tokens.get(&token.id).ok_or_else(refused)?;
    if state.secret_hash != token.secret_hash() || state.used_by.is_some() || state.expires <= now {
        return Err(refused());
    }
    not_an_id(name)?;
    if p.node_by_name(name.as_str()).is_some() {
        return Err(Refusal::conflict(
            "node_exists",
            "name",
            format!("a node named \"{name}\" already exists"),
        ));
    }
    profile
        .validate()
        .map_err(|e| Refusal::invalid("invalid_profile", "profile", e.to_string()))?;
    if !p.envs.contains_key(&state.env) {
        return Err(Refusal::conflict(
            "unknown_environment",
            "token",
            format!("the token's environment \"{}\" was deleted", state.env),
        ));
    }
    Ok(vec![Pending {
        payload: EventPayload::NodeEnrolled {
            node,
            name: name.clone(),
            env: state.env.clone(),
            address: address.to_owned(),
            profile: Box::new(profile.clone()),
            token: token.id,
            certificate,
        },
        audience: vec![node],
    }])
}

pub(super) fn rename(p: &Projections, node: &str, raw: &str) -> Result<Vec<Pending>, Refusal> {
    let n = node_ref(p, "node", node)?;
    let new = name("name", raw)?;
    not_an_id(&new)?;
    if new == n.name {
        return Ok(Vec::new());
    }
    if p.node_by_name(new.as_str()).is_some() {
        return Err(Refusal::conflict(
            "node_exists",
            "name",
            format!("a node named \"{new}\" already exists"),
        ));
    }
    Ok(vec![Pending {
        payload: EventPayload::NodeRenamed {
            node: n.id,
            name: new,
        },
        audience: vec![n.id],
    }])
}

pub(super) fn label(
    p: &Projections,
    node: &str,
    set: &BTreeMap<String, String>,
    remove: &[String],
) -> Result<Vec<Pending>, Refusal> {
    let n = node_ref(p, "node", node)?;
    let set = labels("set", set)?;
    if remove.len() > MAX_LABELS {
        return Err(Refusal::invalid(
            "invalid_label",
            "remove",
            format!(
                "{} labels to remove; at most {MAX_LABELS} are accepted",
                remove.len()
            ),
        ));
    }
    for (i, k) in remove.iter().enumerate() {
        skerry_shared::ids::check_label_key(k).map_err(|e| {
            Refusal::invalid("invalid_label", format!("remove[{i}]"), e.to_string())
        })?;
        if set.contains_key(k) {
            return Err(Refusal::invalid(
                "invalid_label",
                format!("remove[{i}]"),
                format!("label \"{k}\" is both set and removed"),
            ));
        }
    }
    let set: BTreeMap<_, _> = set
        .into_iter()
        .filter(|(k, v)| n.labels.get(k) != Some(v))
        .collect();
    let removed: Vec<String> = remove
        .iter()
        .filter(|k| n.labels.contains_key(*k))
        .cloned()
        .collect();
    if set.is_empty() && removed.is_empty() {
        return Ok(Vec::new());
    }
    let after = n
        .labels
        .keys()
        .filter(|k| !removed.contains(k))
        .chain(set.keys().filter(|k| !n.labels.contains_key(*k)))
        .count();
    if after > MAX_LABELS {
        return Err(Refusal::invalid(
            "invalid_label",
            "set",
            format!(
                "node \"{}\" would have {after} labels; at most {MAX_LABELS} are accepted",
                n.name
            ),
        ));
    }
    Ok(vec![Pending {
        payload: EventPayload::NodeLabelled {
            node: n.id,
            set,
            removed,
        },
        audience: vec![n.id],
    }])
}

pub(super) fn join(p: &Projections, node: &str, env: &str) -> Result<Vec<Pending>, Refusal> {
    let n = node_ref(p, "node", node)?;
    let e = environment(p, "env", env)?;
    if n.envs.contains(&e.name) {
        return Ok(Vec::new());
    }
    Ok(vec![Pending {
        payload: EventPayload::NodeJoined {
            node: n.id,
            env: e.name.clone(),
        },
        audience: vec![n.id],
    }])
}

pub(super) fn leave(p: &Projections, node: &str, env: &str) -> Result<Vec<Pending>, Refusal> {
    let n = node_ref(p, "node", node)?;
    let e = environment(p, "env", env)?;
    if !n.envs.contains(&e.name) {
        return Err(Refusal::invalid(
            "not_a_member",
            "env",
            format!("node \"{}\" is not in environment \"{}\"", n.name, e.name),
        ));
    }
    Ok(vec![Pending {
        payload: EventPayload::NodeLeft {
            node: n.id,
            env: e.name.clone(),
        },
        audience: vec![n.id],
    }])
}

/// A status the cloud noticed. Idempotent: no event when the node already has it. The
/// event concerns the cloud only (no `node_seq`): the agent has nothing to do with it.
pub(super) fn set_status(
    p: &Projections,
    node: NodeId,
    status: NodeStatus,
) -> Result<Vec<Pending>, Refusal> {
    let n = p.nodes.get(&node).ok_or_else(|| {
        Refusal::not_found(
            "unknown_node",
            "node",
            format!("no node with id \"{node}\""),
        )
    })?;
    if n.status == status {
        return Ok(Vec::new());
    }
    Ok(vec![Pending::cloud_only(EventPayload::NodeStatusChanged {
        node,
        status,
    })])
}
