//! The tests of [`super`] (selectors that follow labels), and helpers the selectors
//! controller's tests share.
#![allow(clippy::unwrap_used)]

use skerry_shared::clock::Timestamp;
use skerry_shared::event::{Actor, Event, EventPayload, InstanceSpec, Targeting};
use skerry_shared::hash::Digest;
use skerry_shared::ids::{Labels, NodeId, TokenId};

use super::super::fit::tests as fit;
use super::*;

// fit's fixtures, for the selectors controller's tests too.
pub(crate) fn n(s: &str) -> Name {
    fit::n(s)
}
pub(crate) fn fixture(profile: &str) -> (Projections, NodeId) {
    fit::fixture(profile)
}
pub(crate) fn manifest(version: &str, rest: &str) -> skerry_shared::manifest::Manifest {
    fit::manifest(version, rest)
}
pub(crate) fn spec(
    name: &str,
    m: &skerry_shared::manifest::Manifest,
    node: NodeId,
) -> InstanceSpec {
    fit::spec(name, m, node)
}
pub(crate) fn deployed(p: &mut Projections, s: &InstanceSpec) {
    fit::deployed(p, s);
}

pub(crate) fn apply(p: &mut Projections, payload: EventPayload) {
    let seq = p.head.next_seq;
    let e = Event::seal(
        seq,
        Timestamp(seq as i64),
        Actor::Cloud,
        payload,
        vec![],
        p.head.last_hash,
    )
    .unwrap();
    p.apply(&e);
}

/// Enrolls node `name` of `profile` into environment `plant`.
pub(crate) fn enroll(p: &mut Projections, name: &str, profile: &str) -> NodeId {
    let node = NodeId::random();
    apply(
        p,
        EventPayload::NodeEnrolled {
            node,
            name: n(name),
            env: n("plant"),
            address: "127.0.0.1".into(),
            profile: Box::new(skerry_shared::profile::builtin(profile).unwrap()),
            token: TokenId::random(),
            certificate: Digest::ZERO,
        },
    );
    node
}

pub(crate) fn label(p: &mut Projections, node: NodeId, set: &[(&str, &str)], removed: &[&str]) {
    apply(
        p,
        EventPayload::NodeLabelled {
            node,
            set: set
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            removed: removed.iter().map(|k| (*k).to_owned()).collect(),
        },
    );
}

pub(crate) const WEB: &str = "components:\n  - name: web\n    image: web:1\n";

/// Instance `name` of `yaml` following `selector`, deployed on what it matches now
/// (the deploy's own placement).
pub(crate) fn follower(p: &mut Projections, name: &str, yaml: &str, selector: &[(&str, &str)]) {
    let m = manifest("1.0.0", yaml);
    let selector: Labels = selector
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let placed = crate::command::placement::matching(p, &p.envs[&n("plant")], &selector, &m);
    let any = NodeId::random();
    let s = InstanceSpec {
        nodes: placed.nodes,
        unschedulable: placed.unschedulable,
        selector,
        targeting: Targeting::Selector,
        lifecycle: Default::default(),
        ..spec(name, &m, any)
    };
    deployed(p, &s);
}

/// Runs the command and folds what it records; returns its changes.
fn follow_and_fold(p: &mut Projections, name: &str, joined: &[NodeId]) -> Vec<NodeChange> {
    let out = follow(p, &n(name), joined).unwrap();
    assert!(out.len() <= 1);
    let Some(pending) = out.into_iter().next() else {
        return Vec::new();
    };
    let EventPayload::InstanceNodesChanged { changes, .. } = &pending.payload else {
        panic!("{:?}", pending.payload)
    };
    let changes = changes.clone();
    let audience: BTreeSet<NodeId> = pending.audience.iter().copied().collect();
    let named: BTreeSet<NodeId> = changes.iter().map(|c| c.node).collect();
    assert_eq!(audience, named, "the audience is the nodes changed");
    apply(p, pending.payload);
    changes
}

fn targets(p: &Projections, name: &str) -> Vec<NodeId> {
    p.instances[&n(name)]
        .spec
        .nodes
        .iter()
        .map(|t| t.node)
        .collect()
}

fn sorted(mut v: Vec<NodeId>) -> Vec<NodeId> {
    v.sort();
    v
}

#[test]
fn a_node_labelled_later_gets_it_and_one_unlabelled_loses_it_once() {
    let (mut p, a) = fixture("x86-64-host");
    let b = enroll(&mut p, "gw-b", "x86-64-host");
    label(&mut p, a, &[("zone", "north")], &[]);
    follower(&mut p, "north", WEB, &[("zone", "north")]);
    assert_eq!(targets(&p, "north"), [a]);
    assert!(
        follow(&p, &n("north"), &[]).unwrap().is_empty(),
        "nothing to do"
    );

    label(&mut p, b, &[("zone", "north")], &[]);
    let changes = follow_and_fold(&mut p, "north", &[]);
    assert_eq!(
        changes,
        [NodeChange {
            node: b,
            reason: ChangeReason::SelectorMatched
        }]
    );
    assert_eq!(targets(&p, "north"), sorted(vec![a, b]));
    assert!(
        p.instances[&n("north")]
            .spec
            .nodes
            .iter()
            .all(|t| t.weight == 1)
    );
    // Submitted again: recorded once.
    assert!(follow(&p, &n("north"), &[]).unwrap().is_empty());

    label(&mut p, a, &[], &["zone"]);
    let changes = follow_and_fold(&mut p, "north", &[]);
    assert_eq!(
        changes,
        [NodeChange {
            node: a,
            reason: ChangeReason::SelectorUnmatched
        }]
    );
    assert_eq!(targets(&p, "north"), [b]);
    assert!(follow(&p, &n("north"), &[]).unwrap().is_empty());
}

#[test]
fn a_node_that_joins_or_enrolls_is_joined() {
    let (mut p, a) = fixture("x86-64-host");
    follower(&mut p, "all", WEB, &[]);
    assert_eq!(targets(&p, "all"), [a]);
    let c = enroll(&mut p, "gw-c", "x86-64-host");
    assert_eq!(
        follow_and_fold(&mut p, "all", &[]),
        [NodeChange {
            node: c,
            reason: ChangeReason::Joined
        }],
        "an empty selector: only joining makes a node match"
    );
    // With a selector, the caller says which nodes it saw join.
    label(&mut p, a, &[("zone", "north")], &[]);
    follower(&mut p, "north", WEB, &[("zone", "north")]);
    let d = enroll(&mut p, "gw-d", "x86-64-host");
    label(&mut p, d, &[("zone", "north")], &[]);
    assert_eq!(
        follow_and_fold(&mut p, "north", &[d]),
        [NodeChange {
            node: d,
            reason: ChangeReason::Joined
        }]
    );
}

#[test]
fn a_node_that_does_not_fit_is_unschedulable_until_it_fits() {
    let (mut p, a) = fixture("x86-64-host");
    let five = "components:\n  - name: web\n    image: web:1\n    \
                resources: { memory: { request: 5Gi } }\n";
    follower(&mut p, "big", five, &[("zone", "north")]);
    assert!(targets(&p, "big").is_empty());
    // Another instance holds 5Gi of the node's 8Gi.
    let m = manifest("2.0.0", five);
    deployed(&mut p, &spec("hog", &m, a));

    label(&mut p, a, &[("zone", "north")], &[]);
    let changes = follow_and_fold(&mut p, "big", &[]);
    let reasons = vec!["memory: requests 5Gi, 3Gi free of 8Gi".to_owned()];
    assert_eq!(
        changes,
        [NodeChange {
            node: a,
            reason: ChangeReason::Fit {
                reasons: reasons.clone()
            }
        }]
    );
    assert_eq!(
        p.instances[&n("big")].spec.unschedulable,
        [Unschedulable { node: a, reasons }]
    );
    assert!(
        follow(&p, &n("big"), &[]).unwrap().is_empty(),
        "still does not fit"
    );

    apply(
        &mut p,
        EventPayload::InstanceUndeployed {
            name: n("hog"),
            purge: false,
        },
    );
    assert_eq!(
        follow_and_fold(&mut p, "big", &[]),
        [NodeChange {
            node: a,
            reason: ChangeReason::Fit { reasons: vec![] }
        }]
    );
    assert_eq!(targets(&p, "big"), [a]);
    assert!(p.instances[&n("big")].spec.unschedulable.is_empty());
    assert!(follow(&p, &n("big"), &[]).unwrap().is_empty());
}

#[test]
fn a_running_target_is_kept_when_another_instance_grows() {
    let (mut p, a) = fixture("x86-64-host");
    let five = "components:\n  - name: web\n    image: web:1\n    \
                resources: { memory: { request: 5Gi } }\n";
    follower(&mut p, "big", five, &[]);
    assert_eq!(targets(&p, "big"), [a]);
    // Over the node's memory now, counted with "big": "big" stays.
    deployed(&mut p, &spec("hog", &manifest("2.0.0", five), a));
    assert!(follow(&p, &n("big"), &[]).unwrap().is_empty());
    assert_eq!(targets(&p, "big"), [a]);
}

#[test]
fn an_unschedulable_node_that_stops_matching_leaves_the_list() {
    let (mut p, a) = fixture("orange-pi-zero");
    label(&mut p, a, &[("zone", "north")], &[]);
    follower(&mut p, "north", WEB, &[("zone", "north")]);
    assert_eq!(p.instances[&n("north")].spec.unschedulable.len(), 1);
    label(&mut p, a, &[("zone", "south")], &[]);
    assert_eq!(
        follow_and_fold(&mut p, "north", &[]),
        [NodeChange {
            node: a,
            reason: ChangeReason::SelectorUnmatched
        }]
    );
    assert!(p.instances[&n("north")].spec.unschedulable.is_empty());
}

#[test]
fn named_instances_and_unknown_ones_are_refused() {
    let (mut p, a) = fixture("x86-64-host");
    deployed(&mut p, &spec("fixed", &manifest("1.0.0", WEB), a));
    let r = follow(&p, &n("fixed"), &[]).unwrap_err();
    assert_eq!(
        (r.code, r.field.as_deref()),
        ("named_nodes", Some("instance"))
    );
    let r = follow(&p, &n("nope"), &[]).unwrap_err();
    assert_eq!(r.code, "unknown_instance");
    let many = vec![a; MAX_JOINED + 1];
    let r = follow(&p, &n("fixed"), &many).unwrap_err();
    assert_eq!(
        (r.code, r.field.as_deref()),
        ("invalid_nodes", Some("joined"))
    );
}

#[test]
fn one_command_measures_a_bounded_number_of_nodes() {
    let (mut p, _) = fixture("x86-64-host");
    follower(&mut p, "all", WEB, &[]);
    let extra = MAX_FIT_CHECKS + 44;
    for k in 0..extra {
        enroll(&mut p, &format!("gw-{k}"), "x86-64-host");
    }
    assert_eq!(follow_and_fold(&mut p, "all", &[]).len(), MAX_FIT_CHECKS);
    assert_eq!(follow_and_fold(&mut p, "all", &[]).len(), 44);
    assert!(follow_and_fold(&mut p, "all", &[]).is_empty());
    assert_eq!(targets(&p, "all").len(), extra + 1);
}

/// An environment of 10,000 nodes that all start to match at once: each command is
/// bounded, and the commands converge (the time is printed, not asserted).
#[test]
fn ten_thousand_nodes_converge_in_bounded_commands() {
    let (mut p, _) = fixture("x86-64-host");
    follower(&mut p, "all", WEB, &[("zone", "north")]);
    follower(&mut p, "south", WEB, &[("zone", "south")]);
    let nodes: Vec<NodeId> = (0..10_000)
        .map(|k| enroll(&mut p, &format!("gw-{k}"), "x86-64-host"))
        .collect();
    for node in &nodes {
        label(&mut p, *node, &[("zone", "north")], &[]);
    }
    let t = std::time::Instant::now();
    let mut commands = 0;
    loop {
        let one = std::time::Instant::now();
        let changes = follow_and_fold(&mut p, "all", &[]);
        commands += 1;
        assert!(changes.len() <= MAX_FIT_CHECKS);
        if commands == 1 {
            println!("one command over 10,000 nodes: {:?}", one.elapsed());
        }
        if changes.is_empty() {
            break;
        }
    }
    println!(
        "10,000 nodes placed in {commands} commands, {:?}",
        t.elapsed()
    );
    assert_eq!(commands, 10_000usize.div_ceil(MAX_FIT_CHECKS) + 1);
    assert_eq!(targets(&p, "all").len(), 10_000);
    assert!(targets(&p, "south").is_empty());
}

/// Mid-rollout, node `a` runs 2.0.0 while the instance is declared 1.0.0: a node that
/// starts to match gets 1.0.0, and `a` keeps what it runs.
#[test]
fn mid_rollout_a_new_node_gets_the_declared_spec_and_the_others_keep_theirs() {
    let (mut p, a) = fixture("x86-64-host");
    follower(&mut p, "all", WEB, &[]);
    let v2 = manifest("2.0.0", WEB);
    // Publish 2.0.0 (a throwaway instance does it), then move `a` to it.
    deployed(&mut p, &spec("other", &v2, NodeId::random()));
    let declared = p.instances[&n("all")].spec.clone();
    let moved = InstanceSpec {
        version: v2.version.clone(),
        manifest: v2.clone(),
        ..declared.clone()
    };
    apply(
        &mut p,
        EventPayload::InstanceNodesChanged {
            instance: Box::new(moved),
            changes: vec![NodeChange {
                node: a,
                reason: ChangeReason::Rollout {
                    rollout: 1,
                    batch: 1,
                },
            }],
        },
    );
    assert_eq!(p.instances[&n("all")].spec_on(a).version, v2.version);
    let b = enroll(&mut p, "gw-b", "x86-64-host");
    let out = follow(&p, &n("all"), &[b]).unwrap();
    let EventPayload::InstanceNodesChanged { instance, changes } = &out[0].payload else {
        panic!()
    };
    assert_eq!(instance.version, declared.version);
    assert_eq!(changes.len(), 1);
    apply(&mut p, out[0].payload.clone());
    let i = &p.instances[&n("all")];
    assert_eq!(i.spec_on(a).version, v2.version, "a keeps what it runs");
    assert_eq!(i.spec_on(b).version, declared.version);
    assert!(i.spec.targets(a) && i.spec.targets(b));
}

#[test]
fn a_new_node_gets_the_declared_spec_with_the_whole_lists() {
    let (mut p, a) = fixture("x86-64-host");
    follower(&mut p, "all", WEB, &[]);
    let b = enroll(&mut p, "gw-b", "x86-64-host");
    let out = follow(&p, &n("all"), &[b]).unwrap();
    let EventPayload::InstanceNodesChanged { instance, .. } = &out[0].payload else {
        panic!()
    };
    let declared = &p.instances[&n("all")].spec;
    assert_eq!(instance.manifest, declared.manifest);
    assert_eq!(instance.targeting, Targeting::Selector);
    let mut want = vec![a, b];
    want.sort();
    assert_eq!(
        instance.nodes.iter().map(|t| t.node).collect::<Vec<_>>(),
        want
    );
}
