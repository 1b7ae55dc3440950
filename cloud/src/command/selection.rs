//! Selectors that follow labels: one instance re-placed against the current projections.
//!
//! An instance whose nodes follow its selector ([`Targeting::Selector`]: deployed without
//! `--node`) targets every node of its environment whose labels match, now and later.
//! [`follow`] compares what the instance has (its targets and its unschedulable nodes)
//! with what the selector matches now, and returns one `instance.nodes-changed` event that
//! names each node that changes and why, or nothing when nothing changes (so the same
//! command submitted twice records once):
//! - a target that no longer matches loses the instance (`SelectorUnmatched`); its named
//!   storage stays on the node, as after an undeploy;
//! - an unschedulable node that no longer matches leaves the list (`SelectorUnmatched`);
//! - a node that matches and is neither gets it when it fits, with weight 1 (`Joined`
//!   when the caller saw it join or enroll, or the selector is empty; `SelectorMatched`
//!   otherwise), and is recorded unschedulable with its shortfalls when it does not
//!   (`Fit { reasons }`);
//! - an unschedulable node that matches and fits now is placed (`Fit` with no reasons);
//!   one that still does not fit keeps the reasons it was recorded with (no event);
//! - a target that still matches keeps the instance and its weight, even if it would not
//!   fit now (another instance's demand grew): nothing running is evicted.
//!
//! A node that leaves the environment loses its instances by the `node.left` event itself;
//! an unschedulable entry it leaves behind is dropped with the next change recorded.
//!
//! A node that newly matches gets the instance's declared spec ([`Instance::spec`]), also
//! while a rollout moves other nodes to another one.
//!
//! **Bounds.** One command looks at every node of the environment once (a label match
//! each), measures fit ([`shortfalls`]) for at most [`MAX_FIT_CHECKS`] nodes and records at
//! most [`MAX_CHANGES`] changes; what is left waits for the next command (the selectors
//! controller submits again while commands record). Matching nodes not yet placed are
//! measured first; unschedulable nodes are measured again from a starting point that moves
//! with the log's head, so every one is reached over successive commands.

use std::collections::{BTreeMap, BTreeSet};

use skerry_shared::event::{
    ChangeReason, EventPayload, InstanceSpec, NodeChange, NodeTarget, Unschedulable,
};
use skerry_shared::ids::{Name, NodeId, labels_match};

use super::fit::shortfalls;
use super::outcome::{Pending, Refusal};
use crate::projections::{Instance, Node, Projections};

/// The most nodes one command measures for fit (each costs a pass over what the node runs).
pub const MAX_FIT_CHECKS: usize = 256;

/// The most node changes one `instance.nodes-changed` event of a selector carries.
pub const MAX_CHANGES: usize = 1024;

/// The most nodes a caller may say joined (or enrolled into) the environment.
pub const MAX_JOINED: usize = 1024;

/// Re-places `instance` (by name) against its selector. `joined` are the nodes the caller
/// saw join or enroll into the environment (their reason is `Joined`).
pub fn follow(
    p: &Projections,
    instance: &Name,
    joined: &[NodeId],
) -> Result<Vec<Pending>, Refusal> {
    if joined.len() > MAX_JOINED {
        return Err(Refusal::invalid(
            "invalid_nodes",
            "joined",
            format!("{} nodes; at most {MAX_JOINED} are accepted", joined.len()),
        ));
    }
    let i = p.instances.get(instance).ok_or_else(|| {
        Refusal::not_found(
            "unknown_instance",
            "instance",
            format!("no instance named \"{instance}\""),
        )
    })?;
    if !i.spec.targeting.follows_labels() {
        return Err(Refusal::invalid(
            "named_nodes",
            "instance",
            format!(
                "instance \"{}\" runs on the nodes named at deploy; its nodes do not follow its selector",
                i.spec.name
            ),
        ));
    }
    let joined: BTreeSet<NodeId> = joined.iter().copied().collect();
    Ok(replace(p, i, &joined).into_iter().collect())
}

/// What a node is to the instance before the command.
enum Was<'a> {
    Target(&'a NodeTarget),
    Unschedulable(&'a Unschedulable),
    Nothing,
}

/// The new lists, the changes, and the fit budget left.
struct Plan {
    nodes: Vec<NodeTarget>,
    unschedulable: Vec<Unschedulable>,
    changes: Vec<NodeChange>,
    checks: usize,
}

impl Plan {
    fn full(&self) -> bool {
        self.changes.len() >= MAX_CHANGES
    }

    fn change(&mut self, node: NodeId, reason: ChangeReason) {
        self.changes.push(NodeChange { node, reason });
    }

    /// Measures `node` for fit, if the budget allows (`None`: it does not).
    fn measure(&mut self, p: &Projections, i: &Instance, node: &Node) -> Option<Vec<String>> {
        if self.checks == 0 {
            return None;
        }
        self.checks -= 1;
        Some(shortfalls(p, node, &i.spec.manifest, None))
    }
}

fn replace(p: &Projections, i: &Instance, joined: &BTreeSet<NodeId>) -> Option<Pending> {
    let spec = &i.spec;
    let targets: BTreeMap<NodeId, &NodeTarget> = spec.nodes.iter().map(|t| (t.node, t)).collect();
    let unfit: BTreeMap<NodeId, &Unschedulable> =
        spec.unschedulable.iter().map(|u| (u.node, u)).collect();
    let was = |id: NodeId| match (targets.get(&id), unfit.get(&id)) {
        (Some(t), _) => Was::Target(t),
        (None, Some(u)) => Was::Unschedulable(u),
        (None, None) => Was::Nothing,
    };
    let members: Vec<&Node> = p
        .nodes
        .values()
        .filter(|n| n.envs.contains(&spec.env))
        .collect();
    let mut plan = Plan {
        nodes: Vec::with_capacity(spec.nodes.len()),
        unschedulable: Vec::new(),
        changes: Vec::new(),
        checks: MAX_FIT_CHECKS,
    };
    // What is kept, what stops matching, and the new matching nodes.
    let mut retry: Vec<(&Unschedulable, &Node)> = Vec::new();
    for node in &members {
        let matches = labels_match(&node.labels, &spec.selector);
        match (was(node.id), matches) {
            (Was::Target(t), true) => plan.nodes.push(t.clone()),
            (Was::Unschedulable(u), true) => retry.push((u, node)),
            (Was::Target(t), false) if plan.full() => plan.nodes.push(t.clone()),
            (Was::Unschedulable(u), false) if plan.full() => plan.unschedulable.push(u.clone()),
            (Was::Target(_) | Was::Unschedulable(_), false) => {
                plan.change(node.id, ChangeReason::SelectorUnmatched);
            }
            (Was::Nothing, true) if !plan.full() => match plan.measure(p, i, node) {
                Some(reasons) if reasons.is_empty() => {
                    plan.nodes.push(NodeTarget {
                        node: node.id,
                        weight: 1,
                    });
                    let reason = if joined.contains(&node.id) || spec.selector.is_empty() {
                        ChangeReason::Joined
                    } else {
                        ChangeReason::SelectorMatched
                    };
                    plan.change(node.id, reason);
                }
                Some(reasons) => {
                    plan.unschedulable.push(Unschedulable {
                        node: node.id,
                        reasons: reasons.clone(),
                    });
                    plan.change(node.id, ChangeReason::Fit { reasons });
                }
                None => {}
            },
            (Was::Nothing, _) => {}
        }
    }
    // The unschedulable nodes that still match, measured again from a point that moves
    // with the log, so that over successive commands each is reached.
    if !retry.is_empty() {
        let start = usize::try_from(p.head.next_seq).unwrap_or(0) % retry.len();
        retry.rotate_left(start);
    }
    for (u, node) in retry {
        let fits = !plan.full()
            && plan
                .measure(p, i, node)
                .is_some_and(|reasons| reasons.is_empty());
        if fits {
            plan.nodes.push(NodeTarget {
                node: u.node,
                weight: 1,
            });
            plan.change(u.node, ChangeReason::Fit { reasons: vec![] });
        } else {
            plan.unschedulable.push(u.clone());
        }
    }
    if plan.changes.is_empty() {
        return None;
    }
    plan.nodes.sort_by_key(|t| t.node);
    plan.unschedulable.sort_by_key(|u| u.node);
    let audience = plan.changes.iter().map(|c| c.node).collect();
    let instance = InstanceSpec {
        nodes: plan.nodes,
        unschedulable: plan.unschedulable,
        ..spec.clone()
    };
    Some(Pending {
        payload: EventPayload::InstanceNodesChanged {
            instance: Box::new(instance),
            changes: plan.changes,
        },
        audience,
    })
}

#[cfg(test)]
#[path = "selection_tests.rs"]
pub(crate) mod tests;
