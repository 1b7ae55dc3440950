//! The checks that several handlers share: a name, a map of labels, an environment or a
//! node given by the user, each refused naming its field.

use std::collections::{BTreeMap, BTreeSet};

use skerry_shared::ids::{Labels, MAX_LABELS, Name, NodeId, shown};

use super::outcome::Refusal;
use crate::projections::{Environment, Instance, Node, Projections};

/// The most nodes a command names (`--node`, repeated).
pub const MAX_NAMED_NODES: usize = 1024;

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
) -> Result<&'a Environment, Refusal> {
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
) -> Result<&'a Node, Refusal> {
    p.node(node).ok_or_else(|| {
        Refusal::not_found(
            "unknown_node",
            field,
            format!("no node named or with id {}", shown(node)),
        )
    })
}

/// The node `node` (an id the cloud itself holds: a session's, a controller's), or 404
/// `unknown_node`: it was removed meanwhile.
pub(crate) fn enrolled(p: &Projections, node: NodeId) -> Result<&Node, Refusal> {
    p.nodes.get(&node).ok_or_else(|| {
        Refusal::not_found(
            "unknown_node",
            "node",
            format!("no node with id \"{node}\" (removed?)"),
        )
    })
}

/// The nodes a `stop`, `start` or `restart` names (`--node`, by name or id), each one the
/// instance runs on, none twice, at most [`MAX_NAMED_NODES`].
pub(crate) fn named_targets(
    p: &Projections,
    inst: &Instance,
    nodes: &[String],
) -> Result<Vec<NodeId>, Refusal> {
    if nodes.len() > MAX_NAMED_NODES {
        return Err(Refusal::invalid(
            "too_many_nodes",
            "nodes",
            format!("at most {MAX_NAMED_NODES} nodes are accepted"),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(nodes.len());
    for (i, n) in nodes.iter().enumerate() {
        let field = format!("nodes[{i}]");
        let node = node_ref(p, &field, n)?;
        if !seen.insert(node.id) {
            return Err(Refusal::invalid(
                "duplicate_node",
                field,
                format!("node \"{}\" is named twice", node.name),
            ));
        }
        if !inst.spec.targets(node.id) {
            return Err(Refusal::invalid(
                "node_not_targeted",
                field,
                format!(
                    "instance {} does not run on node \"{}\"",
                    inst.spec.name, node.name
                ),
            ));
        }
        out.push(node.id);
    }
    Ok(out)
}
