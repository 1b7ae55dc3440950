//! The rollout controller: moves each running rollout on, batch by batch, from what the
//! nodes report.
//!
//! Each pass looks at every instance with a rollout in progress (not paused) and decides its
//! next step ([`decide`]), which the driver submits as `Command::AdvanceRollout`. The
//! command handler checks the step against the rollout's state in the log, so a step
//! decided on older state records nothing.
//!
//! - **A batch starts** with its new nodes: those online (`Normal`) are changed, in waves of
//!   at most `--max-unavailable`; those offline are skipped (`waiting: offline`), and one
//!   that comes back while its batch runs is changed too.
//! - **A node settles** when every replica of the target's services on it reports the
//!   target's spec hash and is `Healthy` (or `Running`, for a component without a health
//!   check), continuously for `--settle` (on a node the instance is stopped on: reports
//!   every replica `Stopped` under that hash). It **fails** when a replica of the target is
//!   `Unhealthy`, crash-looping, cannot have its image, is `Failed` (an `init` among them)
//!   or unschedulable, or when it does not fit the target any more.
//! - **A batch ends** as soon as more nodes failed than `--max-failed` allows; or when
//!   every changed node has settled or failed and no online node waits; or at `--timeout`
//!   (counted from the batch's start, or from the last resume), the nodes not settled by
//!   then failing with what they were waiting for.
//!
//! How long a node has been settled is kept in memory only: a cloud restarted in the middle
//! of a batch waits the settle time again for the nodes of that batch, and never starts
//! the batch again (the log says it started).
//!
//! - The core, [`decide`], does no I/O: the projections, what the nodes report
//!   ([`Observed`]), the time and the settle memory in, the step out.
//! - The driver, [`run`], wakes on every event, on a tick, and submits each step.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::time::Duration;

use skerry_shared::clock::Timestamp;
use skerry_shared::event::{Actor, InstanceSpec};
use skerry_shared::ids::{Name, NodeId};
use skerry_shared::manifest::ComponentKind;
use skerry_shared::planner::replica_hash_by;
use skerry_shared::report::ReplicaState;
use skerry_shared::rollout::NodeFailure;

use crate::command::Command;
use crate::command::fit::shortfalls;
use crate::command::rollout::RolloutStep;
use crate::engine::Engine;
use crate::projections::{BatchState, Instance, Projections, RolloutState};
use crate::sync::Hub;
use crate::sync::replicas::Reported;

/// How often the driver looks when nothing wakes it.
pub const TICK: Duration = Duration::from_millis(500);

/// What the nodes report, as the core reads it.
pub trait Observed {
    /// The latest report of each of `node`'s replicas of `instance`.
    fn replicas(&self, node: NodeId, instance: &Name) -> Vec<Reported>;
}

impl Observed for Hub {
    fn replicas(&self, node: NodeId, instance: &Name) -> Vec<Reported> {
        self.instance_replicas(node, instance.as_str())
    }
}

/// When each node of a batch was first seen with every replica ready, by (instance,
/// rollout, node). A node that stops being ready loses its entry.
#[derive(Debug, Default)]
pub struct Settling {
    since: HashMap<(Name, u64, NodeId), Timestamp>,
}

impl Settling {
    /// Forgets every rollout but the running ones.
    fn retain(&mut self, running: &BTreeSet<(Name, u64)>) {
        self.since
            .retain(|(i, r, _), _| running.contains(&(i.clone(), *r)));
    }
}

/// How one changed node is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Judged {
    Settled,
    /// Ready, for less than the settle time so far.
    Settling,
    Waiting(String),
    Failed(String),
}

/// The core: the next step of `inst`'s running rollout as of `now`, if one is due.
pub fn decide(
    p: &Projections,
    inst: &Instance,
    seen: &dyn Observed,
    settling: &mut Settling,
    now: Timestamp,
) -> Option<RolloutStep> {
    let r = inst.active_rollout()?;
    let start = &r.start;
    match r.current() {
        // Paused, a batch in progress still fails (and rolls back) past --max-failed;
        // nothing else moves.
        Some(b) if b.finished.is_none() => in_batch(p, inst, r, b, seen, settling, now),
        _ if r.paused => None,
        _ if start.batches.is_empty() => Some(RolloutStep::Complete),
        Some(b) if b.ok != Some(true) => None,
        _ => next_batch(p, inst, r),
    }
}

fn online(p: &Projections, node: NodeId) -> bool {
    p.nodes
        .get(&node)
        .is_some_and(|n| n.status == skerry_shared::event::NodeStatus::Normal)
}

/// Why `node` cannot take the target now (empty: it fits).
fn unfit(p: &Projections, inst: &Instance, to: &InstanceSpec, node: NodeId) -> Vec<String> {
    match p.nodes.get(&node) {
        Some(n) => shortfalls(p, n, &to.manifest, Some(inst.spec.name.as_str())),
        None => vec!["the node was removed".to_owned()],
    }
}

fn next_batch(p: &Projections, inst: &Instance, r: &RolloutState) -> Option<RolloutStep> {
    let start = &r.start;
    let k = r.batches.len() + 1;
    let new = start.batch(k)?;
    // A node that stopped being a target since the rollout started (its labels, a
    // leave, a removal) is left out.
    let (nodes, offline): (Vec<NodeId>, Vec<NodeId>) = new
        .iter()
        .filter(|n| inst.spec.targets(**n))
        .partition(|n| online(p, **n));
    let cap = cap(r);
    let wave: Vec<NodeId> = nodes
        .iter()
        .filter(|n| unfit(p, inst, &start.to, **n).is_empty())
        .take(cap)
        .copied()
        .collect();
    Some(RolloutStep::StartBatch {
        batch: u32::try_from(k).unwrap_or(u32::MAX),
        nodes,
        offline,
        wave,
    })
}

fn cap(r: &RolloutState) -> usize {
    r.start
        .policy
        .max_unavailable
        .map_or(usize::MAX, |n| n as usize)
}

fn in_batch(
    p: &Projections,
    inst: &Instance,
    r: &RolloutState,
    b: &BatchState,
    seen: &dyn Observed,
    settling: &mut Settling,
    now: Timestamp,
) -> Option<RolloutStep> {
    let start = &r.start;
    let policy = &start.policy;
    let mut passed = Vec::new();
    let mut failed = Vec::new();
    let mut in_flight = Vec::new();
    let mut settling_now = 0usize;
    // A changed node that stopped being a target (its labels, a leave, a removal) is
    // neither passed nor failed: it is out of the rollout.
    for node in b.changed.iter().filter(|n| inst.spec.targets(**n)) {
        match judge(p, inst, r, *node, seen, settling, now) {
            Judged::Settled => passed.push(*node),
            Judged::Failed(reason) => failed.push(NodeFailure {
                node: *node,
                reason,
            }),
            Judged::Settling => {
                settling_now += 1;
                in_flight.push((*node, "settling".to_owned()));
            }
            Judged::Waiting(why) => in_flight.push((*node, why)),
        }
    }
    let failed_changed = failed.len();
    let finish = |passed: Vec<NodeId>, failed: Vec<NodeFailure>| RolloutStep::FinishBatch {
        batch: b.batch,
        passed,
        failed,
    };
    let allowed = policy.max_failed.of(b.nodes.len() + b.offline.len());
    if failed.len() > allowed {
        return Some(finish(passed, failed));
    }
    if r.paused {
        return None;
    }
    // Online nodes of the batch not changed yet, in order; fit is checked for those about
    // to change only (up to the room a wave has: --max-unavailable less the nodes
    // changing or failed).
    let waiting: Vec<NodeId> = b
        .nodes
        .iter()
        .chain(&b.offline)
        .filter(|n| !b.changed.contains(n) && inst.spec.targets(**n) && online(p, **n))
        .copied()
        .collect();
    let clock = r.resumed.map_or(b.started, |t| t.max(b.started));
    let timed_out =
        now.0.saturating_sub(clock.0) >= i64::try_from(policy.timeout_ms).unwrap_or(i64::MAX);
    if timed_out {
        // A node ready but not yet for the settle time (say, after a cloud restart
        // forgot since when) is waited for; every other is failed.
        let timeout = skerry_shared::quantity::Duration::from_millis(policy.timeout_ms);
        let mut late: Vec<NodeFailure> = in_flight
            .iter()
            .filter(|(_, why)| why != "settling")
            .map(|(node, why)| NodeFailure {
                node: *node,
                reason: format!("did not settle within {timeout}: {why}"),
            })
            .collect();
        late.extend(waiting.iter().map(|node| NodeFailure {
            node: *node,
            reason: format!("not changed within {timeout}"),
        }));
        if settling_now > 0 && failed.len() + late.len() <= allowed {
            return None;
        }
        failed.extend(late);
        return Some(finish(passed, failed));
    }
    let room = cap(r).saturating_sub(in_flight.len() + failed_changed);
    let mut wave = Vec::new();
    for node in &waiting {
        if wave.len() >= room {
            break;
        }
        let reasons = unfit(p, inst, &start.to, *node);
        if reasons.is_empty() {
            wave.push(*node);
        } else {
            failed.push(NodeFailure {
                node: *node,
                reason: format!("does not fit: {}", reasons.join("; ")),
            });
        }
    }
    if failed.len() > allowed {
        return Some(finish(passed, failed));
    }
    if !wave.is_empty() {
        return Some(RolloutStep::Wave {
            batch: b.batch,
            nodes: wave,
        });
    }
    // Every waiting node was checked and none fits: they are failed, not waiting.
    let none_left = failed.len() - failed_changed == waiting.len();
    let all_judged = in_flight.is_empty() && none_left;
    if all_judged && !(passed.is_empty() && failed.is_empty()) {
        return Some(finish(passed, failed));
    }
    None
}

/// How `node`, changed to the rollout's target, is doing.
fn judge(
    p: &Projections,
    inst: &Instance,
    r: &RolloutState,
    node: NodeId,
    seen: &dyn Observed,
    settling: &mut Settling,
    now: Timestamp,
) -> Judged {
    let key = (inst.spec.name.clone(), r.id(), node);
    // What the rollout gave the node (its own lifecycle kept).
    let verdict = readiness(p, &inst.target_on(&r.start.to, node), node, seen);
    let Judged::Settled = verdict else {
        settling.since.remove(&key);
        return verdict;
    };
    let since = *settling.since.entry(key).or_insert(now);
    let settle = i64::try_from(r.start.policy.settle_ms).unwrap_or(i64::MAX);
    if now.0.saturating_sub(since.0) >= settle {
        Judged::Settled
    } else {
        Judged::Settling
    }
}

/// Whether every replica of `to`'s services on `node` is ready now (`Settled` here means
/// ready, not yet for how long), or why not. Where `to` is stopped,
/// ready is every replica reported `Stopped` under the target's spec hash: the node took
/// the new spec and runs nothing of it.
fn readiness(p: &Projections, to: &InstanceSpec, node: NodeId, seen: &dyn Observed) -> Judged {
    let stopped = to.lifecycle.stopped;
    if !online(p, node) {
        return Judged::Waiting("the node is offline".to_owned());
    }
    let reports = seen.replicas(node, &to.name);
    let version_of = |secret: &Name| {
        p.secrets
            .get(secret.as_str())
            .and_then(|s| s.delivered.get(&node).copied())
            .unwrap_or(0)
    };
    for c in &to.manifest.components {
        let hash = replica_hash_by(to, c, version_of);
        let of_c = reports
            .iter()
            .filter(|r| r.status.report.component == c.name && r.status.report.spec_hash == hash);
        if stopped {
            let taken = (0..c.replicas()).all(|i| {
                of_c.clone().any(|r| {
                    r.status.report.replica == i && r.status.report.state == ReplicaState::Stopped
                })
            });
            if !taken {
                return Judged::Waiting(format!("{} has not taken the new spec yet", c.name));
            }
            continue;
        }
        for rep in of_c.clone() {
            let state = &rep.status.report.state;
            let failing = matches!(
                state,
                ReplicaState::Unhealthy
                    | ReplicaState::Failed { .. }
                    | ReplicaState::Unschedulable
                    | ReplicaState::ImagePullBackOff { .. }
                    | ReplicaState::CrashLoopBackOff { .. }
            );
            if failing {
                let reason = rep
                    .status
                    .report
                    .reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default();
                return Judged::Failed(skerry_shared::rollout::bounded_reason(&format!(
                    "{}.{} is {state}{reason}",
                    c.name, rep.status.report.replica
                )));
            }
        }
        if c.kind != ComponentKind::Service {
            continue;
        }
        for i in 0..c.replicas() {
            let Some(rep) = of_c.clone().find(|r| r.status.report.replica == i) else {
                return Judged::Waiting(format!("{}.{i} does not run the new spec yet", c.name));
            };
            let state = &rep.status.report.state;
            let ready = match state {
                ReplicaState::Healthy => true,
                ReplicaState::Running => c.health.is_none(),
                _ => false,
            };
            if !ready {
                return Judged::Waiting(format!("{}.{i} is {state}", c.name));
            }
        }
    }
    Judged::Settled
}

/// The driver, until `shutdown` resolves.
pub async fn run(hub: Hub, shutdown: impl Future<Output = ()> + Send + 'static) {
    let engine = hub.engine().clone();
    let mut events = engine.subscribe();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut settling = Settling::default();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = tick.tick() => {}
            r = events.recv() => {
                if matches!(r, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                    break;
                }
            }
        }
        pass(&engine, &hub, &mut settling).await;
    }
    tracing::debug!("rollout controller stopped");
}

/// One pass: the next step of every running rollout, submitted. Returns how many steps
/// were recorded.
pub async fn pass(engine: &Engine, seen: &Hub, settling: &mut Settling) -> usize {
    let now = Timestamp::now();
    let steps: Vec<(Name, u64, RolloutStep)> = {
        let p = engine.read();
        let running: BTreeSet<(Name, u64)> = p
            .instances
            .values()
            .filter_map(|i| i.active_rollout().map(|r| (i.spec.name.clone(), r.id())))
            .collect();
        settling.retain(&running);
        running
            .iter()
            .filter_map(|(name, id)| {
                let inst = p.instances.get(name)?;
                decide(&p, inst, seen, settling, now).map(|s| (name.clone(), *id, s))
            })
            .collect()
    };
    let mut recorded = 0;
    for (instance, rollout, step) in steps {
        let what = format!("{step:?}");
        let command = Command::AdvanceRollout {
            instance: instance.clone(),
            rollout,
            step: Box::new(step),
        };
        match engine.submit(Actor::Cloud, command).await {
            Ok(events) => {
                recorded += 1;
                for e in &events {
                    tracing::info!(instance = %instance, rollout, seq = e.seq, "rollout: {}", e.payload.summary());
                }
            }
            Err(e) => {
                tracing::debug!(instance = %instance, rollout, step = %what, error = %e, "a rollout step no longer applies")
            }
        }
    }
    recorded
}
