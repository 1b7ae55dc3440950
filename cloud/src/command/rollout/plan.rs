//! `upgrade` and `rollback` into a [`RolloutStart`] (`restart` in `restart.rs`).
//!
//! - **The target.** `upgrade --to V` takes the instance's spec to version `V` of its app;
//!   `upgrade` without `--to` keeps the version and changes overrides and weights only;
//!   `rollback` returns to the version before: the spec before the last completed rollout,
//!   or, after a rollout that failed or was aborted and left some nodes on the new spec,
//!   the instance's own spec. `--set` values are merged into the overrides (a later
//!   `COMPONENT.VAR` replaces the earlier; the overrides of a component the new version
//!   does not have are dropped). `--node NODE=WEIGHT` changes weights of nodes the
//!   instance runs on.
//! - **Fit** is checked for every node against the target (the instance's own current
//!   demand not counted): a node that does not fit refuses the rollout, every shortfall
//!   listed per node.
//! - **The nodes** that change are the instance's targets whose current spec differs from
//!   the target, in the order of their names; the batches are the policy's cumulative
//!   shares of them ([`skerry_shared::rollout::cumulative`]).
//! - One rollout per instance at a time: a second is a conflict naming the running one.

use std::collections::BTreeSet;

use skerry_shared::event::InstanceSpec;
use skerry_shared::ids::{NodeId, shown};
use skerry_shared::manifest::MAX_VERSION_BYTES;
use skerry_shared::quantity::Duration;
use skerry_shared::rollout::{
    MAX_WAIT_MS, RolloutKind, RolloutOutcome, RolloutPolicy, RolloutStart, Share, cumulative,
    parse_batches,
};

use super::super::checks::{name, node_ref};
use super::super::fit::shortfalls;
use super::super::outcome::Refusal;
use super::super::overrides::{merged, overrides};
use super::{RolloutIntent, busy, unknown_instance};
use crate::projections::rollouts::same_settings;
use crate::projections::{Instance, Projections};

/// A checked rollout: what it records, and the spec each of its nodes runs now (for a dry
/// run's preview).
#[derive(Debug, Clone)]
pub struct RolloutPlan {
    pub start: RolloutStart,
}

/// The weights a node may have (as at deploy).
const WEIGHTS: std::ops::RangeInclusive<u32> = 1..=1000;

/// Checks an `upgrade` or `rollback` against the projections.
pub fn plan(p: &Projections, intent: &RolloutIntent) -> Result<RolloutPlan, Refusal> {
    let instance = name("instance", &intent.instance)?;
    let inst = p
        .instances
        .get(&instance)
        .ok_or_else(|| unknown_instance(&intent.instance))?;
    if let Some(r) = inst.active_rollout() {
        return Err(busy(&instance, r));
    }
    let policy = policy(intent)?;
    let id = p.rollout_ids.get(&instance).copied().unwrap_or(0) + 1;
    if intent.restart {
        let start = super::restart::plan_restart(p, inst, intent, policy, id)?;
        return Ok(RolloutPlan { start });
    }
    let (kind, mut to) = target(p, inst, intent)?;

    // Weights of nodes the instance runs on.
    let mut seen = BTreeSet::new();
    for (i, choice) in intent.nodes.iter().enumerate() {
        let field = format!("nodes[{i}]");
        let node = node_ref(p, &field, &choice.node)?;
        let weight = choice.weight.ok_or_else(|| {
            Refusal::invalid(
                "invalid_weight",
                format!("{field}.weight"),
                "an upgrade's --node gives a weight: NODE=WEIGHT",
            )
        })?;
        if !WEIGHTS.contains(&weight) {
            return Err(Refusal::invalid(
                "invalid_weight",
                format!("{field}.weight"),
                "a weight is 1 to 1000",
            ));
        }
        if !seen.insert(node.id) {
            return Err(Refusal::invalid(
                "duplicate_node",
                field,
                format!("node \"{}\" is named twice", node.name),
            ));
        }
        let Some(t) = to.nodes.iter_mut().find(|t| t.node == node.id) else {
            return Err(Refusal::invalid(
                "node_not_targeted",
                field,
                format!(
                    "instance {instance} does not run on node \"{}\"; an upgrade changes the \
                     weights of its nodes, not which nodes it runs on",
                    node.name
                ),
            ));
        };
        t.weight = weight;
    }

    super::super::secret::check_deploy(p, &to.env, &to.manifest, &to.nodes)?;
    fits(p, inst, &to)?;

    let mut order: Vec<(&str, NodeId)> = to
        .nodes
        .iter()
        .filter(|t| !same_settings(inst.spec_on(t.node), &to))
        .map(|t| {
            let n = p.nodes.get(&t.node).map_or("", |n| n.name.as_str());
            (n, t.node)
        })
        .collect();
    order.sort();
    let order: Vec<NodeId> = order.into_iter().map(|(_, id)| id).collect();
    if order.is_empty() && to.nodes == inst.spec.nodes && same_settings(&inst.spec, &to) {
        return Err(Refusal::conflict(
            "nothing_to_change",
            if intent.to.is_some() { "to" } else { "set" },
            format!(
                "instance {instance} already runs {}@{} with these overrides and weights on \
                 every node",
                to.app, to.version
            ),
        ));
    }
    let batches = cumulative(&policy.shares, order.len())
        .into_iter()
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
        .collect();
    to.targeting = inst.spec.targeting;
    Ok(RolloutPlan {
        start: RolloutStart {
            instance,
            id,
            kind,
            to,
            order,
            batches,
            policy,
        },
    })
}

/// The spec the rollout moves the instance to, and its kind.
fn target(
    p: &Projections,
    inst: &Instance,
    intent: &RolloutIntent,
) -> Result<(RolloutKind, InstanceSpec), Refusal> {
    let current = &inst.spec;
    if intent.rollback {
        if !intent.set.is_empty() || !intent.nodes.is_empty() || intent.to.is_some() {
            return Err(Refusal::invalid(
                "invalid_rollback",
                if intent.to.is_some() { "to" } else { "set" },
                "a rollback returns to the version before as it ran; it takes no --to, --set \
                 or --node (use upgrade for those)",
            ));
        }
        // After an upgrade that failed or was aborted with some nodes on its spec, those
        // nodes return to the instance's own spec. Nodes that differ only in whether they
        // are stopped or in restart generations (a restart) do not count.
        let mixed = inst.rollout.as_ref().is_some_and(|r| {
            r.start.kind != RolloutKind::Restart
                && matches!(
                    r.outcome,
                    Some((RolloutOutcome::Failed { .. } | RolloutOutcome::Aborted, _))
                )
        }) && inst.runs.values().any(|run| !same_settings(run, current));
        let back = if mixed {
            current.clone()
        } else {
            let prev = inst.previous.as_deref().ok_or_else(|| {
                Refusal::conflict(
                    "no_previous_version",
                    "instance",
                    format!(
                        "instance {} has no version to roll back to: no upgrade of it has \
                         completed",
                        current.name
                    ),
                )
            })?;
            InstanceSpec {
                nodes: current.nodes.clone(),
                unschedulable: current.unschedulable.clone(),
                ..prev.clone()
            }
            .with_stopped(current.lifecycle.stopped)
        };
        if p.app_version(back.app.as_str(), &back.version).is_none() {
            return Err(Refusal::not_found(
                "unknown_app_version",
                "instance",
                format!("{}@{} is not published", back.app, back.version),
            ));
        }
        return Ok((RolloutKind::Rollback, back));
    }
    let mut to = current.clone();
    let kind = match &intent.to {
        Some(v) => {
            if v.len() > MAX_VERSION_BYTES {
                return Err(Refusal::invalid(
                    "invalid_version",
                    "to",
                    format!("at most {MAX_VERSION_BYTES} bytes are accepted"),
                ));
            }
            let version = semver::Version::parse(v).map_err(|e| {
                Refusal::invalid(
                    "invalid_version",
                    "to",
                    format!("{} is not a semantic version: {e}", shown(v)),
                )
            })?;
            let published = p
                .app_version(current.app.as_str(), &version)
                .ok_or_else(|| {
                    let known: Vec<String> = p
                        .apps
                        .get(current.app.as_str())
                        .map(|vs| vs.keys().map(ToString::to_string).collect())
                        .unwrap_or_default();
                    Refusal::not_found(
                        "unknown_app_version",
                        "to",
                        format!(
                            "{}@{version} is not published (published: {})",
                            current.app,
                            known.join(", ")
                        ),
                    )
                })?;
            to.version = version;
            to.manifest = published.manifest.clone();
            // Restart generations of components the new version has not are dropped.
            let manifest = &to.manifest;
            to.lifecycle
                .restarts
                .retain(|c, _| manifest.component(c.as_str()).is_some());
            RolloutKind::Upgrade
        }
        None => RolloutKind::Reconfigure,
    };
    let changes = overrides(&to.manifest, &intent.set)?;
    to.overrides = merged(&current.overrides, changes, &to.manifest);
    Ok((kind, to))
}

/// Every node the instance runs on must fit the target, its own demand not counted.
fn fits(p: &Projections, inst: &Instance, to: &InstanceSpec) -> Result<(), Refusal> {
    let mut unfit = Vec::new();
    for t in &to.nodes {
        let Some(node) = p.nodes.get(&t.node) else {
            continue;
        };
        let reasons = shortfalls(p, node, &to.manifest, Some(inst.spec.name.as_str()));
        if !reasons.is_empty() {
            unfit.push(format!("{}: {}", node.name, reasons.join("; ")));
        }
    }
    if unfit.is_empty() {
        return Ok(());
    }
    Err(Refusal::invalid(
        "unfit",
        "to",
        format!(
            "node(s) do not fit {}@{}: {}",
            to.app,
            to.version,
            unfit.join(" | ")
        ),
    ))
}

/// The policy the intent asks for, each field checked.
fn policy(intent: &RolloutIntent) -> Result<RolloutPolicy, Refusal> {
    let mut policy = RolloutPolicy {
        auto_rollback: intent.auto_rollback,
        ..RolloutPolicy::default()
    };
    if let Some(b) = &intent.batch {
        policy.shares =
            parse_batches(b).map_err(|why| Refusal::invalid("invalid_batch", "batch", why))?;
    }
    let wait = |field: &'static str, s: &Option<String>, default: u64| match s {
        None => Ok(default),
        Some(s) => {
            let d: Duration = s
                .parse()
                .map_err(|e: skerry_shared::quantity::QuantityError| {
                    Refusal::invalid("invalid_duration", field, e.to_string())
                })?;
            if d.millis() > MAX_WAIT_MS {
                return Err(Refusal::invalid(
                    "invalid_duration",
                    field,
                    format!("{s} is longer than a week"),
                ));
            }
            Ok(d.millis())
        }
    };
    policy.settle_ms = wait("settle", &intent.settle, policy.settle_ms)?;
    policy.timeout_ms = wait("timeout", &intent.timeout, policy.timeout_ms)?;
    if policy.timeout_ms <= policy.settle_ms {
        return Err(Refusal::invalid(
            "invalid_duration",
            "timeout",
            format!(
                "the timeout ({}) must be longer than the settle time ({}): a batch could                  never pass",
                Duration::from_millis(policy.timeout_ms),
                Duration::from_millis(policy.settle_ms)
            ),
        ));
    }
    if let Some(n) = intent.max_unavailable {
        if n == 0 {
            return Err(Refusal::invalid(
                "invalid_max_unavailable",
                "max_unavailable",
                "at least one node must be allowed to change at once",
            ));
        }
        policy.max_unavailable = Some(n);
    }
    if let Some(f) = &intent.max_failed {
        policy.max_failed = Share::parse(f)
            .map_err(|why| Refusal::invalid("invalid_max_failed", "max_failed", why))?;
    }
    Ok(policy)
}
