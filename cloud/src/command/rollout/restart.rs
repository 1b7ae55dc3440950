//! `restart` into a [`RolloutStart`]: the instance's own version and settings, with the
//! restart generation of the components named (every component when none is) raised, so
//! that their replicas are replaced, node by node, through the same batches and health
//! gates as an upgrade.
//!
//! - **The nodes** are those named (`--node`), or every node the instance runs on, less
//!   those it is stopped on (a node named that is stopped is 409: start it first). A node
//!   that runs another version than the instance's (left behind by a failed rollout) is
//!   409: a restart does not change versions. A node offline during the restart is not
//!   restarted (a restart completes without the nodes it left behind).
//! - **The generations** are raised past the highest any node runs, so nodes that an
//!   earlier restart (failed or aborted) reached restart again too.
//! - **The policy** is an upgrade's, but for `--max-unavailable`, which defaults to 1 (one
//!   node restarts at a time), and for the rollback: a failed batch ends the restart and
//!   leaves the nodes after it untouched, as there is nothing to roll back to.

use std::collections::BTreeSet;

use skerry_shared::ids::{Name, NodeId};
use skerry_shared::manifest::MAX_COMPONENTS;
use skerry_shared::rollout::{RolloutKind, RolloutPolicy, RolloutStart, cumulative};

use super::super::checks::named_targets;
use super::super::outcome::Refusal;
use super::RolloutIntent;
use crate::projections::rollouts::same_settings;
use crate::projections::{Instance, Projections};

/// Checks a `restart` of `inst` under `policy` (parsed from the same intent).
pub(super) fn plan_restart(
    p: &Projections,
    inst: &Instance,
    intent: &RolloutIntent,
    mut policy: RolloutPolicy,
    id: u64,
) -> Result<RolloutStart, Refusal> {
    let spec = &inst.spec;
    if intent.to.is_some() || !intent.set.is_empty() || intent.rollback {
        return Err(Refusal::invalid(
            "invalid_restart",
            if intent.set.is_empty() { "to" } else { "set" },
            "a restart runs the same version with the same settings; it takes no --to or \
             --set (use upgrade for those)",
        ));
    }
    if let Some(i) = intent.nodes.iter().position(|n| n.weight.is_some()) {
        return Err(Refusal::invalid(
            "invalid_weight",
            format!("nodes[{i}].weight"),
            "a restart names nodes without weights",
        ));
    }
    let components = components(inst, &intent.components)?;
    let named: Vec<String> = intent.nodes.iter().map(|n| n.node.clone()).collect();
    let nodes: Vec<NodeId> = if named.is_empty() {
        spec.nodes
            .iter()
            .map(|t| t.node)
            .filter(|n| !inst.stopped_on(*n))
            .collect()
    } else {
        let ids = named_targets(p, inst, &named)?;
        if let Some(i) = ids.iter().position(|n| inst.stopped_on(*n)) {
            return Err(Refusal::conflict(
                "instance_stopped",
                format!("nodes[{i}]"),
                format!(
                    "instance {} is stopped on node \"{}\": `skerry start {} --node {}` first",
                    spec.name, named[i], spec.name, named[i]
                ),
            ));
        }
        ids
    };
    for n in &nodes {
        let run = inst.spec_on(*n);
        if !same_settings(run, spec) {
            let name = p
                .nodes
                .get(n)
                .map_or_else(|| n.to_string(), |x| x.name.to_string());
            let field = named
                .iter()
                .position(|x| *x == name || *x == n.to_string())
                .map_or_else(|| "nodes".to_owned(), |i| format!("nodes[{i}]"));
            return Err(Refusal::conflict(
                "mixed_versions",
                field,
                format!(
                    "node \"{name}\" runs {}@{} with other settings than the instance's {}@{}: \
                     a restart changes neither; upgrade or roll back first",
                    run.app, run.version, spec.app, spec.version
                ),
            ));
        }
    }
    if nodes.is_empty() {
        return Err(Refusal::conflict(
            "nothing_to_restart",
            "instance",
            format!(
                "instance {} runs on no node, or is stopped on every node it runs on",
                spec.name
            ),
        ));
    }
    let mut to = spec.clone();
    // Generations of components the manifest no longer has are dropped.
    to.lifecycle
        .restarts
        .retain(|c, _| spec.manifest.component(c.as_str()).is_some());
    for c in &components {
        // Past every generation a node runs now: a node that an earlier restart, failed
        // or aborted, reached is restarted again too.
        let highest = nodes
            .iter()
            .map(|n| inst.spec_on(*n).lifecycle.generation(c))
            .chain([spec.lifecycle.generation(c)])
            .max()
            .unwrap_or(0);
        let generation = highest.checked_add(1).ok_or_else(|| {
            Refusal::conflict(
                "restart_limit",
                "components",
                format!("component {c} was restarted {} times already", u32::MAX),
            )
        })?;
        to.lifecycle.restarts.insert(c.clone(), generation);
    }
    let mut order: Vec<(&str, NodeId)> = nodes
        .iter()
        .map(|n| (p.nodes.get(n).map_or("", |x| x.name.as_str()), *n))
        .collect();
    order.sort();
    let order: Vec<NodeId> = order.into_iter().map(|(_, n)| n).collect();
    if intent.max_unavailable.is_none() {
        policy.max_unavailable = Some(1);
    }
    policy.auto_rollback = false;
    let batches = cumulative(&policy.shares, order.len())
        .into_iter()
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
        .collect();
    Ok(RolloutStart {
        instance: spec.name.clone(),
        id,
        kind: RolloutKind::Restart,
        to,
        order,
        batches,
        policy,
    })
}

/// The components `restart --component` names (each once), or every component.
fn components(inst: &Instance, named: &[String]) -> Result<BTreeSet<Name>, Refusal> {
    let manifest = &inst.spec.manifest;
    if named.is_empty() {
        return Ok(manifest.components.iter().map(|c| c.name.clone()).collect());
    }
    if named.len() > MAX_COMPONENTS {
        return Err(Refusal::invalid(
            "too_many_components",
            "components",
            format!("at most {MAX_COMPONENTS} components are accepted"),
        ));
    }
    named
        .iter()
        .enumerate()
        .map(|(i, c)| {
            manifest
                .component(c)
                .map(|c| c.name.clone())
                .ok_or_else(|| {
                    let known: Vec<&str> = manifest
                        .components
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect();
                    Refusal::invalid(
                        "unknown_component",
                        format!("components[{i}]"),
                        format!(
                            "{}@{} has no component {} (it has: {})",
                            manifest.app,
                            manifest.version,
                            skerry_shared::ids::shown(c),
                            known.join(", ")
                        ),
                    )
                })
        })
        .collect()
}
