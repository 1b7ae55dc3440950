//! The checks that several handlers share: a name, a map of labels, an environment or a
//! node given by the user, each refused naming its field.

use std::collections::BTreeMap;

use skerry_shared::ids::{Labels, MAX_LABELS, Name, NodeId, shown};

use super::outcome::Refusal;
use crate::projections::{Environment, Node, Projections};

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
