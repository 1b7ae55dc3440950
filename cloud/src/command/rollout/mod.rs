//! Rollouts: `upgrade` and `rollback` checked into a [`RolloutStart`], the operator's
//! `rollout pause | resume | abort`, and the steps the rollout controller takes
//! ([`RolloutStep`]), each checked against the rollout's state in the projections before it
//! becomes events.
//!
//! The controller decides *when* (a batch settled, failed or timed out); these handlers
//! decide *whether* the step still applies and *what* it records. A step that no longer
//! applies (the controller looked at older state, or a restarted cloud decided again) is
//! refused as a conflict and records nothing, so a batch is never started twice and a
//! finished batch is never finished again.
//!
//! # Layout
//! - `plan`: `upgrade` and `rollback` into a [`RolloutStart`]: the target spec, the
//!   policy, the nodes in order and the batches;
//! - `restart`: `restart` into a [`RolloutStart`] of the same version, with the restart
//!   generations of its components raised;
//! - `step`: the controller's steps and the operator's actions, into events.

mod plan;
mod restart;
mod step;

#[cfg(test)]
mod tests;

use skerry_shared::ids::Name;

pub use super::intent::{RolloutAction, RolloutIntent, RolloutStep};
pub use plan::{RolloutPlan, plan};
pub(super) use step::change;
pub use step::{advance, control};

/// The instance a rollout command names, refused as the API refuses an unknown one.
pub(super) fn unknown_instance(name: &str) -> super::Refusal {
    super::Refusal::not_found(
        "unknown_instance",
        "instance",
        format!("no instance named {}", skerry_shared::ids::shown(name)),
    )
}

/// A running rollout's one-line description, for conflicts.
fn describe(name: &Name, r: &crate::projections::RolloutState) -> String {
    let s = &r.start;
    format!(
        "instance {name} has rollout {} in progress ({} to {}@{}, batch {} of {}{})",
        s.id,
        s.kind,
        s.to.app,
        s.to.version,
        r.batches.len(),
        s.batches.len(),
        if r.paused { ", paused" } else { "" }
    )
}

/// The conflict of a command that waits for no rollout of the instance to run.
pub(super) fn busy(name: &Name, r: &crate::projections::RolloutState) -> super::Refusal {
    super::Refusal::conflict(
        "rollout_in_progress",
        "instance",
        format!(
            "{}; `skerry rollout status|pause|resume|abort {name}`",
            describe(name, r)
        ),
    )
}
