//! `stop` and `start` of an instance, and the nodes that `stop`, `start` and `restart`
//! name.
//!
//! - **Stop** keeps the instance (its version, settings, network and named storage) on
//!   each node and stops its replicas there: the nodes get the spec they run, stopped
//!   (`instance.nodes-changed`, reason `stopped`). Without `--node` the instance as a
//!   whole is stopped, and a node that starts to run it later (a selector match, a join)
//!   gets it stopped too.
//! - **Start** is the reverse: the same spec started, so its replicas start again with the
//!   spec hashes they had (an init that succeeded does not run again).
//! - Nodes already as asked are left out; a stop or start that changes nothing is 409.
//!   Neither is taken while a rollout of the instance runs (409, naming it). Nodes that
//!   run different specs (one left behind by a failed rollout) each keep theirs: one event
//!   per spec.
//! - `restart` is a rollout (see [`super::rollout`]); both name nodes through
//!   `checks::named_targets`.

use skerry_shared::event::{ChangeReason, InstanceSpec};
use skerry_shared::ids::NodeId;

use super::checks::{name, named_targets};
use super::intent::LifecycleIntent;
use super::outcome::{Pending, Refusal};
use super::rollout::{busy, change, unknown_instance};
use crate::projections::Projections;
use crate::projections::rollouts::same_run;

/// `stop` or `start`: the events, or why not.
pub fn stop_or_start(p: &Projections, intent: &LifecycleIntent) -> Result<Vec<Pending>, Refusal> {
    let instance = name("instance", &intent.instance)?;
    let inst = p
        .instances
        .get(&instance)
        .ok_or_else(|| unknown_instance(&intent.instance))?;
    if let Some(r) = inst.active_rollout() {
        return Err(busy(&instance, r));
    }
    let stop = intent.stop;
    let all = intent.nodes.is_empty();
    let named = if all {
        inst.spec.nodes.iter().map(|t| t.node).collect()
    } else {
        named_targets(p, inst, &intent.nodes)?
    };
    let reason = if stop {
        ChangeReason::Stopped { all }
    } else {
        ChangeReason::Started { all }
    };
    // The nodes to change, grouped by the spec each runs.
    let mut groups: Vec<(InstanceSpec, Vec<NodeId>)> = Vec::new();
    for node in named.into_iter().filter(|n| inst.stopped_on(*n) != stop) {
        let run = inst.spec_on(node).with_stopped(stop);
        match groups.iter_mut().find(|(s, _)| same_run(s, &run)) {
            Some((_, group)) => group.push(node),
            None => groups.push((run, vec![node])),
        }
    }
    let whole_changes = all && inst.spec.lifecycle.stopped != stop;
    if groups.is_empty() && !whole_changes {
        let (code, state) = if stop {
            ("already_stopped", "stopped")
        } else {
            ("already_started", "running")
        };
        let on = if all {
            "on every node it runs on".to_owned()
        } else {
            "on the nodes named".to_owned()
        };
        return Err(Refusal::conflict(
            code,
            if all { "instance" } else { "nodes" },
            format!("instance {instance} is {state} {on} already"),
        ));
    }
    if groups.is_empty() {
        // An instance on no node now: only its own spec changes, for the nodes it gets
        // later.
        return Ok(vec![change(
            inst,
            &inst.spec.with_stopped(stop),
            &[],
            reason,
        )]);
    }
    Ok(groups
        .iter()
        .map(|(run, nodes)| change(inst, run, nodes, reason.clone()))
        .collect())
}
