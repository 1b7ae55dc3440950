//! Placement: which nodes an instance goes on, with what weight, and which matching nodes
//! cannot take it.
//!
//! A deploy names its nodes (`--node NODE[=WEIGHT]`: each must be in the environment, match
//! the selector and fit, else the deploy is refused) or names none, and then takes every node
//! of the environment that matches the selector: those that fit are targets of weight 1,
//! those that do not are recorded as unschedulable, and a deploy that no node fits is
//! refused. Whether a node fits is [`fit`](super::fit)'s answer.
//!
//! Named nodes are a fixed set. Nodes chosen by the selector (an empty one: every node of
//! the environment) are chosen again as nodes are labelled, join, leave or enroll: the
//! selectors controller submits [`selection`](super::selection)'s command, which places
//! new matching nodes by the same rule (weight 1, fit or unschedulable).

use std::collections::{BTreeMap, BTreeSet};

use skerry_shared::event::{NodeTarget, Unschedulable};
use skerry_shared::ids::{Labels, Name, labels_match};
use skerry_shared::manifest::Manifest;

use super::checks::node_ref;
use super::fit::shortfalls;
use super::intent::NodeChoice;
use super::outcome::Refusal;
use crate::projections::{Environment, Projections};

/// The most nodes one deploy names (`--node`); more are reached with a `--selector`.
pub const MAX_DEPLOY_NODES: usize = super::checks::MAX_NAMED_NODES;

/// The weights a node named for a deploy may have.
const WEIGHTS: std::ops::RangeInclusive<u32> = 1..=1000;

/// What an instance asks of placement: where, which nodes, and what they must fit.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    pub env: &'a Environment,
    /// Checked labels; empty selects every node of the environment.
    pub selector: &'a Labels,
    /// The nodes named for it; empty when the selector chooses.
    pub chosen: &'a [NodeChoice],
    pub manifest: &'a Manifest,
    /// The app and version, as refusals name them.
    pub app: &'a Name,
    pub version: &'a semver::Version,
}

/// Where an instance goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// The nodes that take it, with their weights.
    pub nodes: Vec<NodeTarget>,
    /// The nodes the selector matched that do not fit, and why.
    pub unschedulable: Vec<Unschedulable>,
}

/// Places an instance, or says why it cannot be placed.
pub fn place(p: &Projections, want: &Wanted<'_>) -> Result<Placement, Refusal> {
    if want.chosen.len() > MAX_DEPLOY_NODES {
        return Err(Refusal::invalid(
            "invalid_nodes",
            "nodes",
            format!(
                "{} nodes; at most {MAX_DEPLOY_NODES} are accepted (use a selector to reach more)",
                want.chosen.len()
            ),
        ));
    }
    if want.chosen.is_empty() {
        selected(p, want)
    } else {
        named(p, want)
    }
}

/// The nodes named for the instance: each must be in the environment, match the selector
/// and fit.
fn named(p: &Projections, want: &Wanted<'_>) -> Result<Placement, Refusal> {
    let Wanted {
        env,
        selector,
        chosen,
        manifest,
        app,
        version,
    } = *want;
    let mut nodes = Vec::new();
    let mut unfit: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut named = BTreeSet::new();
    for (i, choice) in chosen.iter().enumerate() {
        let field = format!("nodes[{i}]");
        let node = node_ref(p, &field, &choice.node)?;
        let weight = choice.weight.unwrap_or(1);
        if !WEIGHTS.contains(&weight) {
            return Err(Refusal::invalid(
                "invalid_weight",
                format!("{field}.weight"),
                "a weight is 1 to 1000",
            ));
        }
        if !named.insert(node.id) {
            return Err(Refusal::invalid(
                "duplicate_node",
                field,
                format!("node \"{}\" is named twice", node.name),
            ));
        }
        if !node.envs.contains(&env.name) {
            return Err(Refusal::invalid(
                "node_not_in_environment",
                field,
                format!(
                    "node \"{}\" is not in environment \"{}\"; `skerry node join` it first",
                    node.name, env.name
                ),
            ));
        }
        if !labels_match(&node.labels, selector) {
            return Err(Refusal::invalid(
                "node_not_selected",
                field,
                format!("node \"{}\" does not match the selector", node.name),
            ));
        }
        let reasons = shortfalls(p, node, manifest, None);
        if reasons.is_empty() {
            nodes.push(NodeTarget {
                node: node.id,
                weight,
            });
        } else {
            unfit.insert(node.name.to_string(), reasons);
        }
    }
    if !unfit.is_empty() {
        let listing: Vec<String> = unfit
            .iter()
            .map(|(n, r)| format!("{n}: {}", r.join("; ")))
            .collect();
        return Err(Refusal::invalid(
            "unfit",
            "nodes",
            format!(
                "node(s) do not fit {app}@{version}: {}",
                listing.join(" | ")
            ),
        ));
    }
    Ok(Placement {
        nodes,
        unschedulable: Vec::new(),
    })
}

/// Every node of the environment that matches the selector, split into those that fit
/// (weight 1) and those that do not. Refused when none fits.
fn selected(p: &Projections, want: &Wanted<'_>) -> Result<Placement, Refusal> {
    let placement = matching(p, want.env, want.selector, want.manifest);
    if !placement.nodes.is_empty() {
        return Ok(placement);
    }
    let (env, app, version) = (want.env, want.app, want.version);
    let unschedulable = &placement.unschedulable;
    let detail = if unschedulable.is_empty() {
        format!("environment \"{}\" has no node that matches", env.name)
    } else {
        let listing: Vec<String> = unschedulable
            .iter()
            .map(|u| {
                let n = p
                    .nodes
                    .get(&u.node)
                    .map_or_else(|| u.node.to_string(), |n| n.name.to_string());
                format!("{n}: {}", u.reasons.join("; "))
            })
            .collect();
        format!(
            "no matching node fits {app}@{version}: {}",
            listing.join(" | ")
        )
    };
    Err(Refusal::invalid(
        "no_fit",
        if want.selector.is_empty() {
            "env"
        } else {
            "selector"
        },
        detail,
    ))
}

/// Every node of `env` that matches `selector`: those that fit `manifest` as targets of
/// weight 1, the others as unschedulable with their reasons.
pub fn matching(
    p: &Projections,
    env: &Environment,
    selector: &Labels,
    manifest: &Manifest,
) -> Placement {
    let mut placement = Placement::default();
    for node in p
        .nodes
        .values()
        .filter(|n| n.envs.contains(&env.name) && labels_match(&n.labels, selector))
    {
        let reasons = shortfalls(p, node, manifest, None);
        if reasons.is_empty() {
            placement.nodes.push(NodeTarget {
                node: node.id,
                weight: 1,
            });
        } else {
            placement.unschedulable.push(Unschedulable {
                node: node.id,
                reasons,
            });
        }
    }
    placement
}
