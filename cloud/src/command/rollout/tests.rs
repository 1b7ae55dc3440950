//! Rollouts end to end in the pure core: `plan`, the controller's `decide` over reports a
//! test chooses, `advance`, and the projections folding what it records.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use skerry_shared::clock::Timestamp;
use skerry_shared::event::{Actor, Event, EventPayload, NodeStatus, NodeTarget};
use skerry_shared::ids::{Name, NodeId};
use skerry_shared::planner::replica_hash_by;
use skerry_shared::report::{ReplicaReport, ReplicaState, ReplicaStatus};
use skerry_shared::rollout::RolloutOutcome;

use super::*;
use crate::command::fit::tests::{deployed, manifest, n, spec};
use crate::command::selection::tests::enroll;
use crate::controllers::rollouts::{Observed, Settling, decide};
use crate::projections::Projections;
use crate::sync::replicas::Reported;

const WEB: &str = "components:\n  - name: web\n    image: web:1\n";

fn apply_at(p: &mut Projections, payload: EventPayload, time: i64) {
    let seq = p.head.next_seq;
    let e = Event::seal(
        seq,
        Timestamp(time),
        Actor::Cloud,
        payload,
        vec![],
        p.head.last_hash,
    )
    .unwrap();
    p.apply(&e);
}

/// What the nodes report: every node runs what the projections say it runs, healthy
/// unless it is in `failing`.
struct Fake {
    runs: BTreeMap<NodeId, skerry_shared::event::InstanceSpec>,
    failing: BTreeSet<NodeId>,
}

impl Observed for Fake {
    fn replicas(&self, node: NodeId, instance: &Name) -> Vec<Reported> {
        let Some(spec) = self.runs.get(&node) else {
            return Vec::new();
        };
        let state = if spec.lifecycle.stopped {
            ReplicaState::Stopped
        } else if self.failing.contains(&node) && spec.version.major == 2 {
            ReplicaState::Unhealthy
        } else {
            ReplicaState::Running
        };
        spec.manifest
            .components
            .iter()
            .map(|c| Reported {
                status: ReplicaStatus::from(ReplicaReport {
                    instance: instance.clone(),
                    component: c.name.clone(),
                    replica: 0,
                    state: state.clone(),
                    restarts: 0,
                    reason: None,
                    spec_hash: replica_hash_by(spec, c, |_| 0),
                    ports: vec![],
                }),
                at: None,
            })
            .collect()
    }
}

/// Instance `web` of 1.0.0 on nodes a, b, c (all online), and 2.0.0 published.
fn fleet() -> (Projections, Vec<NodeId>) {
    let (mut p, first) = crate::command::fit::tests::fixture("x86-64-host");
    let mut nodes = vec![first];
    nodes.push(enroll(&mut p, "gx", "x86-64-host"));
    nodes.push(enroll(&mut p, "gy", "x86-64-host"));
    for node in &nodes {
        apply_at(
            &mut p,
            EventPayload::NodeStatusChanged {
                node: *node,
                status: NodeStatus::Normal,
            },
            0,
        );
    }
    let v1 = manifest("1.0.0", WEB);
    let mut s = spec("web", &v1, first);
    s.nodes = nodes
        .iter()
        .map(|node| NodeTarget {
            node: *node,
            weight: 1,
        })
        .collect();
    deployed(&mut p, &s);
    let v2 = manifest("2.0.0", WEB);
    deployed(&mut p, &spec("other", &v2, first));
    (p, nodes)
}

fn upgrade(batch: &str) -> RolloutIntent {
    RolloutIntent {
        instance: "web".into(),
        to: Some("2.0.0".into()),
        batch: Some(batch.into()),
        settle: Some("1s".into()),
        timeout: Some("1m".into()),
        auto_rollback: true,
        ..RolloutIntent::default()
    }
}

fn start(p: &mut Projections, intent: &RolloutIntent) {
    let plan = plan(p, intent).unwrap();
    apply_at(
        p,
        EventPayload::RolloutStarted {
            rollout: Box::new(plan.start),
        },
        0,
    );
}

/// Runs the controller and the handler until the rollout ends (or `limit` steps), a
/// second apart; returns the steps taken.
fn drive(p: &mut Projections, failing: &[NodeId], limit: usize) -> Vec<RolloutStep> {
    let mut settling = Settling::default();
    let mut steps = Vec::new();
    for tick in 1..=limit as i64 * 4 {
        let now = Timestamp(tick * 1000);
        let inst = &p.instances[&n("web")];
        if inst.active_rollout().is_none() {
            break;
        }
        let fake = Fake {
            runs: inst
                .spec
                .nodes
                .iter()
                .map(|t| (t.node, inst.spec_on(t.node).clone()))
                .collect(),
            failing: failing.iter().copied().collect(),
        };
        let Some(step) = decide(p, inst, &fake, &mut settling, now) else {
            continue;
        };
        let id = inst.active_rollout().unwrap().id();
        let events = advance(p, &n("web"), id, &step).unwrap();
        for e in events {
            apply_at(p, e.payload, now.0);
        }
        steps.push(step);
        if steps.len() >= limit {
            break;
        }
    }
    steps
}

/// The nodes of the running (or last) rollout of `web`, in its order.
fn order(p: &Projections) -> Vec<NodeId> {
    p.instances[&n("web")]
        .rollout
        .as_ref()
        .unwrap()
        .start
        .order
        .clone()
}

fn versions(p: &Projections, nodes: &[NodeId]) -> Vec<String> {
    let inst = &p.instances[&n("web")];
    nodes
        .iter()
        .map(|node| inst.spec_on(*node).version.to_string())
        .collect()
}

#[test]
fn a_good_upgrade_goes_batch_by_batch_and_completes() {
    let (mut p, nodes) = fleet();
    start(&mut p, &upgrade("1,100%"));
    let steps = drive(&mut p, &[], 20);
    let starts = steps
        .iter()
        .filter(|s| matches!(s, RolloutStep::StartBatch { .. }))
        .count();
    assert_eq!(starts, 2, "{steps:?}");
    let inst = &p.instances[&n("web")];
    let r = inst.rollout.as_ref().unwrap();
    assert_eq!(r.outcome.as_ref().unwrap().0, RolloutOutcome::Completed);
    assert_eq!(inst.spec.version.to_string(), "2.0.0");
    assert!(inst.runs.is_empty());
    assert_eq!(inst.previous.as_ref().unwrap().version.to_string(), "1.0.0");
    assert_eq!(versions(&p, &nodes), ["2.0.0", "2.0.0", "2.0.0"]);
    // The first batch is one node, the first by name.
    assert_eq!(r.batches[0].changed.len(), 1);
}

#[test]
fn a_failed_first_batch_rolls_back_and_later_nodes_are_never_changed() {
    let (mut p, nodes) = fleet();
    start(&mut p, &upgrade("1,100%"));
    let first = order(&p)[0];
    drive(&mut p, &[first], 20);
    let inst = &p.instances[&n("web")];
    let r = inst.rollout.as_ref().unwrap();
    assert!(
        matches!(r.outcome, Some((RolloutOutcome::RolledBack { .. }, _))),
        "{:?}",
        r.outcome
    );
    assert_eq!(r.batches.len(), 1);
    assert_eq!(r.batches[0].failed[0].node, first);
    assert!(r.batches[0].failed[0].reason.contains("Unhealthy"));
    assert_eq!(versions(&p, &nodes), ["1.0.0", "1.0.0", "1.0.0"]);
    assert_eq!(inst.spec.version.to_string(), "1.0.0");
}

#[test]
fn a_batch_is_never_started_twice_and_a_second_rollout_is_a_conflict() {
    let (mut p, _) = fleet();
    start(&mut p, &upgrade("1,100%"));
    let err = plan(&p, &upgrade("1,100%")).unwrap_err();
    assert_eq!(err.code, "rollout_in_progress");
    let mut settling = Settling::default();
    let inst = &p.instances[&n("web")];
    let fake = Fake {
        runs: BTreeMap::new(),
        failing: BTreeSet::new(),
    };
    let step = decide(&p, inst, &fake, &mut settling, Timestamp(1000)).unwrap();
    assert!(matches!(step, RolloutStep::StartBatch { batch: 1, .. }));
    for e in advance(&p, &n("web"), 1, &step).unwrap() {
        apply_at(&mut p, e.payload, 1000);
    }
    // The same step, decided on older state (or by a restarted cloud), records nothing.
    let err = advance(&p, &n("web"), 1, &step).unwrap_err();
    assert_eq!(err.code, "rollout_step_stale");
}

#[test]
fn max_failed_lets_a_batch_pass_and_its_failed_node_stays_behind() {
    let (mut p, nodes) = fleet();
    let intent = RolloutIntent {
        max_failed: Some("1".into()),
        ..upgrade("100%")
    };
    start(&mut p, &intent);
    let order = order(&p);
    drive(&mut p, &[order[1]], 20);
    let inst = &p.instances[&n("web")];
    let r = inst.rollout.as_ref().unwrap();
    assert_eq!(r.outcome.as_ref().unwrap().0, RolloutOutcome::Completed);
    assert_eq!(inst.spec_on(order[1]).version.to_string(), "1.0.0");
    assert_eq!(inst.spec_on(order[0]).version.to_string(), "2.0.0");
    assert_eq!(inst.spec_on(order[2]).version.to_string(), "2.0.0");
    assert_eq!(nodes.len(), 3);
}

#[test]
fn an_offline_node_is_skipped_and_gets_the_outcome() {
    let (mut p, _) = fleet();
    start(&mut p, &upgrade("1,100%"));
    let order = order(&p);
    apply_at(
        &mut p,
        EventPayload::NodeStatusChanged {
            node: order[2],
            status: NodeStatus::Abnormal,
        },
        0,
    );
    drive(&mut p, &[], 20);
    let inst = &p.instances[&n("web")];
    let r = inst.rollout.as_ref().unwrap();
    assert_eq!(r.outcome.as_ref().unwrap().0, RolloutOutcome::Completed);
    assert_eq!(r.batches[1].offline, vec![order[2]]);
    // Recorded for it, to take when it is back.
    assert_eq!(inst.spec_on(order[2]).version.to_string(), "2.0.0");
}

#[test]
fn max_unavailable_changes_a_batch_in_waves() {
    let (mut p, _) = fleet();
    let intent = RolloutIntent {
        max_unavailable: Some(1),
        ..upgrade("100%")
    };
    start(&mut p, &intent);
    let steps = drive(&mut p, &[], 30);
    let waves: Vec<usize> = steps
        .iter()
        .filter_map(|s| match s {
            RolloutStep::StartBatch { wave, .. } => Some(wave.len()),
            RolloutStep::Wave { nodes, .. } => Some(nodes.len()),
            _ => None,
        })
        .collect();
    assert_eq!(waves, [1, 1, 1], "{steps:?}");
    let r = p.instances[&n("web")].rollout.as_ref().unwrap();
    assert_eq!(r.outcome.as_ref().unwrap().0, RolloutOutcome::Completed);
}

#[test]
fn an_upgrade_after_an_abort_that_changed_every_node_completes_at_once() {
    let (mut p, nodes) = fleet();
    start(&mut p, &upgrade("100%"));
    // Let the batch change every node, then abort before it finishes.
    let mut settling = Settling::default();
    let inst = &p.instances[&n("web")];
    let fake = Fake {
        runs: BTreeMap::new(),
        failing: BTreeSet::new(),
    };
    let step = decide(&p, inst, &fake, &mut settling, Timestamp(1000)).unwrap();
    for e in advance(&p, &n("web"), 1, &step).unwrap() {
        apply_at(&mut p, e.payload, 1000);
    }
    for e in control(&p, "web", RolloutAction::Abort).unwrap() {
        apply_at(&mut p, e.payload, 1000);
    }
    assert_eq!(versions(&p, &nodes), ["2.0.0", "2.0.0", "2.0.0"]);
    assert_eq!(p.instances[&n("web")].spec.version.to_string(), "1.0.0");
    start(&mut p, &upgrade("100%"));
    drive(&mut p, &[], 5);
    let inst = &p.instances[&n("web")];
    assert_eq!(inst.spec.version.to_string(), "2.0.0");
    assert!(inst.runs.is_empty());
}

#[test]
fn a_node_that_leaves_before_its_batch_is_left_out() {
    let (mut p, _) = fleet();
    start(&mut p, &upgrade("1,100%"));
    let order = order(&p);
    apply_at(
        &mut p,
        EventPayload::NodeLeft {
            node: order[2],
            env: n("plant"),
        },
        0,
    );
    drive(&mut p, &[], 20);
    let inst = &p.instances[&n("web")];
    let r = inst.rollout.as_ref().unwrap();
    assert_eq!(r.outcome.as_ref().unwrap().0, RolloutOutcome::Completed);
    assert_eq!(r.batches[1].nodes, vec![order[1]]);
    assert!(!inst.spec.targets(order[2]));
}

#[test]
fn pause_resume_and_abort() {
    let (mut p, _) = fleet();
    start(&mut p, &upgrade("1,100%"));
    for e in control(&p, "web", RolloutAction::Pause).unwrap() {
        apply_at(&mut p, e.payload, 0);
    }
    assert_eq!(
        control(&p, "web", RolloutAction::Pause).unwrap_err().code,
        "rollout_paused"
    );
    assert!(drive(&mut p, &[], 5).is_empty());
    for e in control(&p, "web", RolloutAction::Resume).unwrap() {
        apply_at(&mut p, e.payload, 0);
    }
    for e in control(&p, "web", RolloutAction::Abort).unwrap() {
        apply_at(&mut p, e.payload, 0);
    }
    let r = p.instances[&n("web")].rollout.as_ref().unwrap();
    assert_eq!(r.outcome.as_ref().unwrap().0, RolloutOutcome::Aborted);
    assert_eq!(
        control(&p, "web", RolloutAction::Abort).unwrap_err().code,
        "no_rollout"
    );
}

#[test]
fn bad_policies_and_targets_are_refused_naming_the_field() {
    let (p, _) = fleet();
    let cases: [(RolloutIntent, &str); 6] = [
        (
            RolloutIntent {
                settle: Some("2m".into()),
                timeout: Some("1m".into()),
                ..upgrade("1")
            },
            "timeout",
        ),
        (upgrade("0,100%"), "batch"),
        (
            RolloutIntent {
                settle: Some("5".into()),
                ..upgrade("1")
            },
            "settle",
        ),
        (
            RolloutIntent {
                to: Some("9.9.9".into()),
                ..upgrade("1")
            },
            "to",
        ),
        (
            RolloutIntent {
                max_failed: Some("200%".into()),
                ..upgrade("1")
            },
            "max_failed",
        ),
        (
            RolloutIntent {
                rollback: true,
                to: None,
                ..upgrade("1")
            },
            "instance",
        ),
    ];
    for (intent, field) in cases {
        let err = plan(&p, &intent).unwrap_err();
        assert_eq!(err.field.as_deref(), Some(field), "{err:?}");
    }
}

fn stop_or_start(
    p: &mut Projections,
    stop: bool,
    nodes: &[&str],
) -> Result<(), crate::command::Refusal> {
    let intent = crate::command::LifecycleIntent {
        instance: "web".into(),
        stop,
        nodes: nodes.iter().map(|s| (*s).to_owned()).collect(),
    };
    let command = crate::command::Command::StopOrStart(Box::new(intent));
    for e in crate::command::handle(p, &command, Timestamp(0))? {
        apply_at(p, e.payload, 0);
    }
    Ok(())
}

fn stopped(p: &Projections, nodes: &[NodeId]) -> Vec<bool> {
    let inst = &p.instances[&n("web")];
    nodes.iter().map(|node| inst.stopped_on(*node)).collect()
}

fn name_of(p: &Projections, node: NodeId) -> String {
    p.nodes[&node].name.to_string()
}

#[test]
fn stop_and_start_keep_the_spec_and_say_what_they_change() {
    let (mut p, nodes) = fleet();
    let one = name_of(&p, nodes[1]);
    stop_or_start(&mut p, true, &[&one]).unwrap();
    assert_eq!(stopped(&p, &nodes), [false, true, false]);
    assert!(!p.instances[&n("web")].spec.lifecycle.stopped);
    let again = stop_or_start(&mut p, true, &[&one]).unwrap_err();
    assert_eq!(again.code, "already_stopped");
    // The whole instance: the other two stop, and the instance's own spec is stopped.
    stop_or_start(&mut p, true, &[]).unwrap();
    assert_eq!(stopped(&p, &nodes), [true, true, true]);
    assert!(p.instances[&n("web")].spec.lifecycle.stopped);
    assert_eq!(
        stop_or_start(&mut p, true, &[]).unwrap_err().code,
        "already_stopped"
    );
    stop_or_start(&mut p, false, &[]).unwrap();
    let inst = &p.instances[&n("web")];
    assert_eq!(stopped(&p, &nodes), [false, false, false]);
    assert!(!inst.spec.lifecycle.stopped);
    assert!(inst.runs.is_empty(), "{:?}", inst.runs.keys());
    assert_eq!(versions(&p, &nodes), ["1.0.0", "1.0.0", "1.0.0"]);
    // Refusals name the field.
    let unknown = stop_or_start(&mut p, true, &["nope"]).unwrap_err();
    assert_eq!(
        (unknown.code, unknown.field.as_deref().unwrap_or("")),
        ("unknown_node", "nodes[0]")
    );
    let twice = stop_or_start(&mut p, true, &[&one, &one]).unwrap_err();
    assert_eq!(
        (twice.code, twice.field.as_deref().unwrap_or("")),
        ("duplicate_node", "nodes[1]")
    );
}

#[test]
fn an_upgrade_of_a_stopped_instance_changes_its_version_and_leaves_it_stopped() {
    let (mut p, nodes) = fleet();
    stop_or_start(&mut p, true, &[]).unwrap();
    start(&mut p, &upgrade("1,100%"));
    // No stop or start while a rollout runs.
    assert_eq!(
        stop_or_start(&mut p, false, &[]).unwrap_err().code,
        "rollout_in_progress"
    );
    drive(&mut p, &[], 20);
    let inst = &p.instances[&n("web")];
    let r = inst.rollout.as_ref().unwrap();
    assert_eq!(r.outcome.as_ref().unwrap().0, RolloutOutcome::Completed);
    assert_eq!(versions(&p, &nodes), ["2.0.0", "2.0.0", "2.0.0"]);
    assert_eq!(stopped(&p, &nodes), [true, true, true]);
    assert!(inst.spec.lifecycle.stopped);
    stop_or_start(&mut p, false, &[]).unwrap();
    assert_eq!(versions(&p, &nodes), ["2.0.0", "2.0.0", "2.0.0"]);
    assert_eq!(stopped(&p, &nodes), [false, false, false]);
}

fn restart(nodes: &[&str], components: &[&str]) -> RolloutIntent {
    RolloutIntent {
        instance: "web".into(),
        restart: true,
        components: components.iter().map(|s| (*s).to_owned()).collect(),
        nodes: nodes
            .iter()
            .map(|s| crate::command::NodeChoice {
                node: (*s).to_owned(),
                weight: None,
            })
            .collect(),
        settle: Some("1s".into()),
        timeout: Some("1m".into()),
        ..RolloutIntent::default()
    }
}

fn generations(p: &Projections, nodes: &[NodeId]) -> Vec<u32> {
    let inst = &p.instances[&n("web")];
    nodes
        .iter()
        .map(|node| inst.spec_on(*node).lifecycle.generation(&n("web")))
        .collect()
}

#[test]
fn a_restart_goes_node_by_node_and_keeps_the_version() {
    let (mut p, nodes) = fleet();
    start(&mut p, &restart(&[], &[]));
    let steps = drive(&mut p, &[], 40);
    // One node changes at a time: every batch start and wave names one node.
    for step in &steps {
        match step {
            RolloutStep::StartBatch { wave, .. } => assert!(wave.len() <= 1, "{steps:?}"),
            RolloutStep::Wave { nodes, .. } => assert_eq!(nodes.len(), 1, "{steps:?}"),
            _ => {}
        }
    }
    let inst = &p.instances[&n("web")];
    let r = inst.rollout.as_ref().unwrap();
    assert_eq!(r.outcome.as_ref().unwrap().0, RolloutOutcome::Completed);
    assert_eq!(r.start.policy.max_unavailable, Some(1));
    assert_eq!(versions(&p, &nodes), ["1.0.0", "1.0.0", "1.0.0"]);
    assert_eq!(generations(&p, &nodes), [1, 1, 1]);
    // A restart changes no deployment: not the instance's spec, and not the version
    // rollback returns to.
    assert_eq!(inst.spec.lifecycle.generation(&n("web")), 0);
    assert!(inst.previous.is_none());
}

#[test]
fn a_restart_on_one_node_leaves_the_others_as_they_run() {
    let (mut p, nodes) = fleet();
    let one = name_of(&p, nodes[2]);
    start(&mut p, &restart(&[&one], &["web"]));
    drive(&mut p, &[], 20);
    let inst = &p.instances[&n("web")];
    assert_eq!(
        inst.rollout.as_ref().unwrap().outcome.as_ref().unwrap().0,
        RolloutOutcome::Completed
    );
    assert_eq!(generations(&p, &nodes), [0, 0, 1]);
}

#[test]
fn a_restart_is_refused_where_it_cannot_run() {
    let (mut p, nodes) = fleet();
    let one = name_of(&p, nodes[0]);
    let err = |p: &Projections, i: &RolloutIntent| plan(p, i).unwrap_err();
    let unknown = err(&p, &restart(&[], &["nope"]));
    assert_eq!(
        (unknown.code, unknown.field.as_deref().unwrap_or("")),
        ("unknown_component", "components[0]")
    );
    let with_to = RolloutIntent {
        to: Some("2.0.0".into()),
        ..restart(&[], &[])
    };
    assert_eq!(err(&p, &with_to).code, "invalid_restart");
    stop_or_start(&mut p, true, &[&one]).unwrap();
    let on_stopped = err(&p, &restart(&[&one], &[]));
    assert_eq!(
        (on_stopped.code, on_stopped.field.as_deref().unwrap_or("")),
        ("instance_stopped", "nodes[0]")
    );
    // Without --node, the stopped node is left out.
    let planned = plan(&p, &restart(&[], &[])).unwrap();
    assert_eq!(planned.start.order.len(), 2);
    assert!(!planned.start.order.contains(&nodes[0]));
    stop_or_start(&mut p, true, &[]).unwrap();
    assert_eq!(err(&p, &restart(&[], &[])).code, "nothing_to_restart");
}

#[test]
fn a_rollback_leaves_a_stopped_instance_stopped() {
    let (mut p, nodes) = fleet();
    start(&mut p, &upgrade("100%"));
    drive(&mut p, &[], 20);
    stop_or_start(&mut p, true, &[]).unwrap();
    let back = RolloutIntent {
        instance: "web".into(),
        rollback: true,
        settle: Some("1s".into()),
        timeout: Some("1m".into()),
        ..RolloutIntent::default()
    };
    start(&mut p, &back);
    drive(&mut p, &[], 20);
    let inst = &p.instances[&n("web")];
    assert_eq!(
        inst.rollout.as_ref().unwrap().outcome.as_ref().unwrap().0,
        RolloutOutcome::Completed
    );
    assert_eq!(versions(&p, &nodes), ["1.0.0", "1.0.0", "1.0.0"]);
    assert_eq!(stopped(&p, &nodes), [true, true, true]);
    assert!(
        inst.spec.lifecycle.stopped,
        "a node joining later would run it"
    );
}

#[test]
fn a_restart_after_an_aborted_one_restarts_the_nodes_it_reached_too() {
    let (mut p, nodes) = fleet();
    start(&mut p, &restart(&[], &["web"]));
    // One step: the first batch starts and its one node restarts; then abort.
    drive(&mut p, &[], 1);
    for e in control(&p, "web", RolloutAction::Abort).unwrap() {
        apply_at(&mut p, e.payload, 10_000);
    }
    let reached: Vec<u32> = generations(&p, &nodes);
    assert_eq!(
        reached.iter().filter(|g| **g == 1).count(),
        1,
        "{reached:?}"
    );
    let planned = plan(&p, &restart(&[], &["web"])).unwrap();
    assert_eq!(planned.start.to.lifecycle.generation(&n("web")), 2);
    start(&mut p, &restart(&[], &["web"]));
    drive(&mut p, &[], 40);
    assert_eq!(generations(&p, &nodes), [2, 2, 2]);
    // Neither restart is a version for rollback: there is none.
    let back = RolloutIntent {
        instance: "web".into(),
        rollback: true,
        ..RolloutIntent::default()
    };
    assert_eq!(plan(&p, &back).unwrap_err().code, "no_previous_version");
}

#[test]
fn a_stop_names_at_most_1024_nodes() {
    let (mut p, _) = fleet();
    let many: Vec<String> = (0..=crate::command::placement::MAX_DEPLOY_NODES)
        .map(|i| format!("gw-{i}"))
        .collect();
    let names: Vec<&str> = many.iter().map(String::as_str).collect();
    let err = stop_or_start(&mut p, true, &names).unwrap_err();
    assert_eq!(
        (err.code, err.field.as_deref().unwrap_or("")),
        ("too_many_nodes", "nodes")
    );
    let err = plan(&p, &restart(&names, &[])).unwrap_err();
    assert_eq!(err.code, "too_many_nodes");
}

#[test]
fn a_node_restarted_on_its_own_keeps_its_generation_through_later_rollouts() {
    let (mut p, nodes) = fleet();
    let one = name_of(&p, nodes[2]);
    start(&mut p, &restart(&[&one], &["web"]));
    drive(&mut p, &[], 20);
    assert_eq!(generations(&p, &nodes), [0, 0, 1]);
    // A change of weights only restarts nobody: no node differs in what it runs.
    let weights = RolloutIntent {
        instance: "web".into(),
        nodes: vec![crate::command::NodeChoice {
            node: one.clone(),
            weight: Some(5),
        }],
        ..RolloutIntent::default()
    };
    assert!(plan(&p, &weights).unwrap().start.order.is_empty());
    // An upgrade moves every node, and the generation it had stays.
    start(&mut p, &upgrade("100%"));
    drive(&mut p, &[], 20);
    assert_eq!(versions(&p, &nodes), ["2.0.0", "2.0.0", "2.0.0"]);
    assert_eq!(generations(&p, &nodes), [0, 0, 1]);
}
