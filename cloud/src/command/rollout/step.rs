//! The steps of a running rollout into events, each checked against the rollout's state
//! first, and the operator's pause, resume and abort.
//!
//! - **Start a batch**: only the next one, only after the one before passed, with exactly
//!   that batch's new nodes. Records `rollout.batch-started` and, for its first wave, the
//!   `instance.nodes-changed` that moves those nodes to the target.
//! - **A wave**: more nodes of the batch in progress, never one changed already.
//! - **Finish a batch**: it passes when at most `--max-failed` of its nodes failed and at
//!   least one passed. Its failed nodes return to the spec before (they stay on the
//!   previous version, listed). The last batch passing completes the rollout: every node
//!   of the instance not on the target yet and not failed (skipped while offline, placed
//!   since) gets it, as the rollout's outcome. A batch failing rolls every node the rollout
//!   changed back (or, with `--no-auto-rollback`, leaves them), and ends the rollout.

use std::collections::BTreeSet;

use skerry_shared::event::{ChangeReason, EventPayload, InstanceSpec, NodeChange};
use skerry_shared::ids::{Name, NodeId};
use skerry_shared::rollout::{NodeFailure, RolloutKind, RolloutOutcome, bounded_reason};

use super::super::checks::name;
use super::super::outcome::{Pending, Refusal};
use super::{RolloutAction, RolloutStep, describe, unknown_instance};
use crate::projections::rollouts::{same_run, same_settings};
use crate::projections::{Instance, Projections, RolloutState};

fn stale(why: impl Into<String>) -> Refusal {
    Refusal::conflict("rollout_step_stale", "step", why)
}

/// Checks one of the controller's steps against the rollout `id` of `instance`.
pub fn advance(
    p: &Projections,
    instance: &Name,
    id: u64,
    step: &RolloutStep,
) -> Result<Vec<Pending>, Refusal> {
    let inst = p
        .instances
        .get(instance)
        .ok_or_else(|| unknown_instance(instance.as_str()))?;
    let r = inst
        .active_rollout()
        .filter(|r| r.id() == id)
        .ok_or_else(|| stale(format!("rollout {id} of {instance} is not running")))?;
    let moves = matches!(
        step,
        RolloutStep::StartBatch { .. } | RolloutStep::Wave { .. } | RolloutStep::Complete
    );
    if r.paused && moves {
        return Err(stale(format!("rollout {id} of {instance} is paused")));
    }
    let start = &r.start;
    match step {
        RolloutStep::StartBatch {
            batch,
            nodes,
            offline,
            wave,
        } => {
            let next = r.batches.len() + 1;
            if *batch as usize != next || next > start.batches.len() {
                return Err(stale(format!("batch {batch} is not the next one")));
            }
            if r.current().is_some_and(|b| b.ok != Some(true)) {
                return Err(stale("the batch before has not passed"));
            }
            let want: BTreeSet<&NodeId> = start
                .batch(next)
                .ok_or_else(|| stale(format!("batch {batch} is beyond the rollout's nodes")))?
                .iter()
                .collect();
            let got: BTreeSet<&NodeId> = nodes.iter().chain(offline).collect();
            // The batch's nodes, less those that stopped being targets since the start.
            let left_out = want.difference(&got).all(|n| !inst.spec.targets(**n));
            if !got.is_subset(&want) || !left_out || got.len() != nodes.len() + offline.len() {
                return Err(stale(format!("batch {batch} has other nodes")));
            }
            if !wave
                .iter()
                .all(|n| nodes.contains(n) && inst.spec.targets(*n))
            {
                return Err(stale("a wave node is not an online target of the batch"));
            }
            let mut out = vec![Pending::cloud_only(EventPayload::RolloutBatchStarted {
                instance: instance.clone(),
                rollout: id,
                batch: *batch,
                nodes: nodes.clone(),
                offline: offline.clone(),
            })];
            out.extend(move_to(
                inst,
                &start.to,
                wave,
                &ChangeReason::Rollout {
                    rollout: id,
                    batch: *batch,
                },
            ));
            Ok(out)
        }
        RolloutStep::Wave { batch, nodes } => {
            let b = r
                .current()
                .filter(|b| b.batch == *batch && b.finished.is_none())
                .ok_or_else(|| stale(format!("batch {batch} is not in progress")))?;
            let open = |n: &NodeId| {
                (b.nodes.contains(n) || b.offline.contains(n))
                    && !b.changed.contains(n)
                    && inst.spec.targets(*n)
            };
            if nodes.is_empty() || !nodes.iter().all(open) {
                return Err(stale(format!(
                    "a node is not waiting to change in batch {batch}"
                )));
            }
            Ok(move_to(
                inst,
                &start.to,
                nodes,
                &ChangeReason::Rollout {
                    rollout: id,
                    batch: *batch,
                },
            ))
        }
        RolloutStep::FinishBatch {
            batch,
            passed,
            failed,
        } => {
            let b = r
                .current()
                .filter(|b| b.batch == *batch && b.finished.is_none())
                .ok_or_else(|| stale(format!("batch {batch} is not in progress")))?;
            let failed: Vec<NodeFailure> = failed
                .iter()
                .map(|f| NodeFailure {
                    node: f.node,
                    reason: bounded_reason(&f.reason),
                })
                .collect();
            let allowed = start.policy.max_failed.of(b.nodes.len() + b.offline.len());
            let ok = failed.len() <= allowed && !passed.is_empty();
            let mut out = vec![Pending::cloud_only(EventPayload::RolloutBatchFinished {
                instance: instance.clone(),
                rollout: id,
                batch: *batch,
                passed: passed.clone(),
                failed: failed.clone(),
                offline: b
                    .offline
                    .iter()
                    .filter(|n| !b.changed.contains(n))
                    .copied()
                    .collect(),
                passed_batch: ok,
            })];
            if ok {
                // The failed nodes of a batch that passed go back to the spec before; a
                // restart has none to go back to (it would restart them again).
                let back: Vec<NodeId> = failed
                    .iter()
                    .map(|f| f.node)
                    .filter(|n| r.changed.contains(n) && start.kind != RolloutKind::Restart)
                    .collect();
                out.extend(roll_back(inst, r, &back));
                if *batch as usize == start.batches.len() {
                    out.extend(complete(inst, r, &failed));
                }
            } else {
                let reason = batch_failure(*batch, passed, &failed, b.changed.is_empty());
                out.extend(fail(inst, r, reason));
            }
            Ok(out)
        }
        RolloutStep::Complete => {
            if !start.batches.is_empty() {
                return Err(stale("the rollout has nodes to change"));
            }
            Ok(complete(inst, r, &[]))
        }
    }
}

/// Why a batch failed, in one line.
fn batch_failure(
    batch: u32,
    passed: &[NodeId],
    failed: &[NodeFailure],
    none_changed: bool,
) -> String {
    if none_changed && failed.is_empty() {
        return format!("batch {batch}: no node of it was online before the timeout");
    }
    let first = failed
        .first()
        .map(|f| format!("; first: node {}: {}", f.node, f.reason))
        .unwrap_or_default();
    format!(
        "batch {batch}: {} node(s) failed, {} passed{first}",
        failed.len(),
        passed.len()
    )
}

/// The events that end a rollout that passed: the nodes not on the target yet get it
/// (but for the failed ones, which stay behind, and but for a restart, which restarts the
/// nodes it named only), then `rollout.finished`.
fn complete(inst: &Instance, r: &RolloutState, failed_now: &[NodeFailure]) -> Vec<Pending> {
    let mut out = Vec::new();
    if r.start.kind != RolloutKind::Restart {
        out.extend(left_behind(inst, r, failed_now));
    }
    out.push(finished(inst, r, RolloutOutcome::Completed));
    out
}

/// The nodes not on a completed rollout's target yet (skipped while offline, placed since)
/// moved to it, but for those that failed.
fn left_behind(inst: &Instance, r: &RolloutState, failed_now: &[NodeFailure]) -> Vec<Pending> {
    let failed: BTreeSet<NodeId> = r
        .batches
        .iter()
        .flat_map(|b| b.failed.iter().map(|f| f.node))
        .chain(failed_now.iter().map(|f| f.node))
        .collect();
    let behind: Vec<NodeId> = inst
        .spec
        .nodes
        .iter()
        .map(|t| t.node)
        .filter(|n| !failed.contains(n) && !same_settings(inst.spec_on(*n), &r.start.to))
        .collect();
    move_to(
        inst,
        &r.start.to,
        &behind,
        &ChangeReason::RolloutOutcome { rollout: r.id() },
    )
}

/// The events that end a rollout whose batch failed.
fn fail(inst: &Instance, r: &RolloutState, reason: String) -> Vec<Pending> {
    let mut out = Vec::new();
    if r.start.policy.auto_rollback {
        let changed: Vec<NodeId> = r.changed.iter().copied().collect();
        out.extend(roll_back(inst, r, &changed));
        out.push(finished(inst, r, RolloutOutcome::RolledBack { reason }));
    } else {
        out.push(finished(inst, r, RolloutOutcome::Failed { reason }));
    }
    out
}

/// `nodes` (those still targets) back to what each ran when the rollout started: one
/// event per spec they return to.
fn roll_back(inst: &Instance, r: &RolloutState, nodes: &[NodeId]) -> Vec<Pending> {
    let mut groups: Vec<(&InstanceSpec, Vec<NodeId>)> = Vec::new();
    for node in nodes.iter().filter(|n| inst.spec.targets(**n)) {
        let back = r.from_on(*node).as_ref();
        match groups.iter_mut().find(|(s, _)| same_run(s, back)) {
            Some((_, group)) => group.push(*node),
            None => groups.push((back, vec![*node])),
        }
    }
    groups
        .into_iter()
        .map(|(spec, group)| {
            change(
                inst,
                spec,
                &group,
                ChangeReason::RolledBack { rollout: r.id() },
            )
        })
        .collect()
}

fn finished(inst: &Instance, r: &RolloutState, outcome: RolloutOutcome) -> Pending {
    Pending::cloud_only(EventPayload::RolloutFinished {
        instance: inst.spec.name.clone(),
        rollout: r.id(),
        outcome,
    })
}

/// `nodes` of the instance move to a rollout's target `to`, each as
/// [`Instance::target_on`] gives it (stopped if it is stopped now, its own higher restart
/// generations kept): one event per spec they get.
fn move_to(
    inst: &Instance,
    to: &InstanceSpec,
    nodes: &[NodeId],
    reason: &ChangeReason,
) -> Vec<Pending> {
    let mut groups: Vec<(InstanceSpec, Vec<NodeId>)> = Vec::new();
    for node in nodes {
        let target = inst.target_on(to, *node);
        match groups
            .iter_mut()
            .find(|(s, _)| s.lifecycle == target.lifecycle)
        {
            Some((_, group)) => group.push(*node),
            None => groups.push((target.into_owned(), vec![*node])),
        }
    }
    groups
        .iter()
        .map(|(spec, group)| change(inst, spec, group, reason.clone()))
        .collect()
}

/// `nodes` of the instance move to `run` (a spec whose own node lists do not matter: the
/// instance's current ones are recorded).
pub(in crate::command) fn change(
    inst: &Instance,
    run: &InstanceSpec,
    nodes: &[NodeId],
    reason: ChangeReason,
) -> Pending {
    let spec = InstanceSpec {
        nodes: inst.spec.nodes.clone(),
        unschedulable: inst.spec.unschedulable.clone(),
        targeting: inst.spec.targeting,
        ..run.clone()
    };
    Pending {
        payload: EventPayload::InstanceNodesChanged {
            instance: Box::new(spec),
            changes: nodes
                .iter()
                .map(|n| NodeChange {
                    node: *n,
                    reason: reason.clone(),
                })
                .collect(),
        },
        audience: nodes.to_vec(),
    }
}

/// `rollout pause | resume | abort INSTANCE`.
pub fn control(
    p: &Projections,
    instance: &str,
    action: RolloutAction,
) -> Result<Vec<Pending>, Refusal> {
    let name = name("instance", instance)?;
    let inst = p
        .instances
        .get(&name)
        .ok_or_else(|| unknown_instance(instance))?;
    let r = inst.active_rollout().ok_or_else(|| {
        Refusal::conflict(
            "no_rollout",
            "instance",
            format!("instance {name} has no rollout in progress"),
        )
    })?;
    let id = r.id();
    let payload = match action {
        RolloutAction::Pause if r.paused => {
            return Err(Refusal::conflict(
                "rollout_paused",
                "action",
                format!("{}: it is paused already", describe(&name, r)),
            ));
        }
        RolloutAction::Pause => EventPayload::RolloutPaused {
            instance: name,
            rollout: id,
        },
        RolloutAction::Resume if !r.paused => {
            return Err(Refusal::conflict(
                "rollout_not_paused",
                "action",
                format!("{}: it is not paused", describe(&name, r)),
            ));
        }
        RolloutAction::Resume => EventPayload::RolloutResumed {
            instance: name,
            rollout: id,
        },
        RolloutAction::Abort => EventPayload::RolloutFinished {
            instance: name,
            rollout: id,
            outcome: RolloutOutcome::Aborted,
        },
    };
    Ok(vec![Pending::cloud_only(payload)])
}
