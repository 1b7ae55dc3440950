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
//! - `step`: the controller's steps and the operator's actions, into events.

mod plan;
mod step;

#[cfg(test)]
mod tests;

use skerry_shared::ids::{Name, NodeId};
use skerry_shared::rollout::NodeFailure;

pub use plan::{RolloutPlan, plan};
pub use step::{advance, control};

use super::intent::NodeChoice;

/// An `upgrade` or a `rollback`, as the caller asks for it. Fields are raw user input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolloutIntent {
    pub instance: String,
    /// `rollback`: back to the version before. Takes no `to`, `set` or `nodes`.
    pub rollback: bool,
    /// The version to move to (`upgrade --to`); `None`: the same version, with other
    /// overrides or weights.
    pub to: Option<String>,
    /// `--batch 1,10%,100%`
    pub batch: Option<String>,
    /// `--settle 30s`
    pub settle: Option<String>,
    /// `--timeout 10m`
    pub timeout: Option<String>,
    /// `--max-unavailable N`
    pub max_unavailable: Option<u32>,
    /// `--max-failed N|P%`
    pub max_failed: Option<String>,
    /// `--set COMPONENT.VAR=VALUE`, merged into the instance's overrides.
    pub set: Vec<String>,
    /// `--node NODE=WEIGHT`: new weights of nodes the instance runs on.
    pub nodes: Vec<NodeChoice>,
    /// `false` with `--no-auto-rollback`.
    pub auto_rollback: bool,
}

/// What an operator does to a running rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutAction {
    Pause,
    Resume,
    Abort,
}

impl RolloutAction {
    pub fn parse(s: &str) -> Option<RolloutAction> {
        match s {
            "pause" => Some(RolloutAction::Pause),
            "resume" => Some(RolloutAction::Resume),
            "abort" => Some(RolloutAction::Abort),
            _ => None,
        }
    }
}

/// One step of a running rollout, as the controller decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutStep {
    /// Start the next batch: its new nodes online now (`nodes`) and offline (`offline`),
    /// and the first of them to change (`wave`, at most `--max-unavailable`).
    StartBatch {
        batch: u32,
        nodes: Vec<NodeId>,
        offline: Vec<NodeId>,
        wave: Vec<NodeId>,
    },
    /// Change more nodes of the batch in progress.
    Wave { batch: u32, nodes: Vec<NodeId> },
    /// End the batch in progress: these nodes settled, these failed.
    FinishBatch {
        batch: u32,
        passed: Vec<NodeId>,
        failed: Vec<NodeFailure>,
    },
    /// End a rollout that has no node to change (only weights change).
    Complete,
}

/// The instance a rollout command names, refused as the API refuses an unknown one.
fn unknown_instance(name: &str) -> super::Refusal {
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
