//! Nodes: enrollment, rename, labels, address, environment membership, status.

use std::collections::BTreeMap;

use skerry_shared::clock::Timestamp;
use skerry_shared::event::{EventPayload, NodeStatus};
use skerry_shared::ids::{MAX_HOST_BYTES, MAX_LABELS, Name, NodeId, check_entry, check_host_name};

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

/// The longest node address (`node set --address`), in bytes: a host name of
/// [`MAX_HOST_BYTES`] with a port.
pub const MAX_ADDRESS_BYTES: usize = MAX_HOST_BYTES + ":65535".len();

/// Checks a node's address: an IP address (`10.0.0.7`, `fe80::1`), a host name by RFC
/// 1123 (`gw-7.plant.example`), or either with a port (`10.0.0.7:22`, `[fe80::1]:22`,
/// `gw-7.plant.example:22`); at most [`MAX_ADDRESS_BYTES`].
fn check_address(address: &str) -> Result<(), Refusal> {
    let bad = |why: String| Refusal::invalid("invalid_address", "address", why);
    if address.len() > MAX_ADDRESS_BYTES {
        return Err(bad(format!(
            "the address is {} bytes long; at most {MAX_ADDRESS_BYTES} are accepted",
            address.len()
        )));
    }
    if address.is_empty() {
        return Err(bad("the address is empty".to_owned()));
    }
    if address.parse::<std::net::IpAddr>().is_ok() || check_host_name(address).is_ok() {
        return Ok(());
    }
    check_entry(address).map(|_| ()).map_err(|e| {
        bad(format!(
            "{}; give an IP address or a host name, with or without a port",
            e.0
        ))
    })
}

/// `node set NODE --address ADDR`: the address the agent gave at enrollment, replaced by
/// hand. The agent has nothing to do with it (the event concerns the cloud only).
pub(super) fn set_address(
    p: &Projections,
    node: &str,
    address: &str,
) -> Result<Vec<Pending>, Refusal> {
    let n = node_ref(p, "node", node)?;
    check_address(address)?;
    if n.address == address {
        return Ok(Vec::new());
    }
    Ok(vec![Pending::cloud_only(
        EventPayload::NodeAddressChanged {
            node: n.id,
            address: address.to_owned(),
        },
    )])
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::fit::tests::fixture;
    use super::super::selection::tests::apply;
    use super::*;
    use crate::command::RefusalKind;

    #[test]
    fn an_address_set_by_hand_is_checked_and_concerns_no_node() {
        let (mut p, node) = fixture("raspberry-pi-4");
        for ok in [
            "10.0.0.8",
            "fe80::1",
            "10.0.0.8:22",
            "[fe80::1]:22",
            "gw-7.plant.example",
            "gw-7.plant.example:22",
        ] {
            let out = set_address(&p, "gw", ok).unwrap();
            assert!(out[0].audience.is_empty(), "{ok}");
        }
        let out = set_address(&p, &node.to_string(), "gw-7.plant.example").unwrap();
        apply(&mut p, out[0].payload.clone());
        assert_eq!(p.nodes[&node].address, "gw-7.plant.example");
        assert!(
            set_address(&p, "gw", "gw-7.plant.example")
                .unwrap()
                .is_empty()
        );
        let long = format!("{}.example", "a".repeat(MAX_ADDRESS_BYTES));
        for bad in [
            "",
            "not an address",
            "gw:0",
            "-gw",
            "[fe80::1]",
            long.as_str(),
        ] {
            let r = set_address(&p, "gw", bad).unwrap_err();
            assert_eq!(
                (r.kind, r.code, r.field.as_deref()),
                (RefusalKind::Invalid, "invalid_address", Some("address")),
                "{bad}"
            );
        }
        let r = set_address(&p, "nowhere", "10.0.0.8").unwrap_err();
        assert_eq!(r.kind, RefusalKind::NotFound);
    }
}
