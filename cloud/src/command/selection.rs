//! Selectors that follow labels: one instance re-placed against the current projections.
//!
//! An instance whose nodes follow its selector ([`Targeting::Selector`]: deployed without
//! `--node`) targets every node of its environment whose labels match, now and later.
//! [`follow`] compares what the instance has (its targets and its unschedulable nodes)
//! with what the selector matches now, and returns one `instance.nodes-changed` event that
//! names each node that changes and why, or nothing when nothing changes (so the same
//! command submitted twice records once):
//! - a target that no longer matches loses the instance (`SelectorUnmatched`); its named
//!   storage stays on the node, as after an undeploy;
//! - an unschedulable node that no longer matches leaves the list (`SelectorUnmatched`);
//! - a node that matches and is neither gets it when it fits, with weight 1 (`Joined`
//!   when the caller saw it join or enroll, or the selector is empty; `SelectorMatched`
//!   otherwise), and is recorded unschedulable with its shortfalls when it does not
//!   (`Fit { reasons }`);
//! - an unschedulable node that matches and fits now is placed (`Fit` with no reasons);
//!   one that still does not fit keeps the reasons it was recorded with (no event);
//! - a target that still matches keeps the instance and its weight, even if it would not
//!   fit now (another instance's demand grew): nothing running is evicted.
//!
//! A node that leaves the environment loses its instances by the `node.left` event itself;
//! an unschedulable entry it leaves behind is dropped with the next change recorded.
//!
//! A node that newly matches gets the instance's declared spec ([`Instance::spec`]), also
//! while a rollout moves other nodes to another one.
//!
//! **Bounds.** One command looks at every node of the environment once (a label match
//! each), measures fit ([`shortfalls`]) for at most [`MAX_FIT_CHECKS`] nodes and records at
//! most [`MAX_CHANGES`] changes; what is left waits for the next command (the selectors
//! controller submits again while commands record). Matching nodes not yet placed are
//! measured first; unschedulable nodes are measured again from a starting point that moves
//! with the log's head, so every one is reached over successive commands.

use std::collections::{BTreeMap, BTreeSet};

use skerry_shared::event::{
    ChangeReason, EventPayload, InstanceSpec, NodeChange, NodeTarget, Unschedulable,
};
use skerry_shared::ids::{Name, NodeId, labels_match};

use super::fit::shortfalls;
use super::outcome::{Pending, Refusal};
use crate::projections::{Instance, Node, Projections};

/// The most nodes one command measures for fit (each costs a pass over what the node runs).
pub const MAX_FIT_CHECKS: usize = 256;

/// The most node changes one `instance.nodes-changed` event of a selector carries.
pub const MAX_CHANGES: usize = 1024;

/// The most nodes a caller may say joined (or enrolled into) the environment.
pub const MAX_JOINED: usize = 1024;

/// Re-places `instance` (by name) against its selector. `joined` are the nodes the caller
/// saw join or enroll into the environment (their reason is `Joined`).
pub fn follow(
    p: &Projections,
    instance: &Name,
    joined: &[NodeId],
) -> Result<Vec<Pending>, Refusal> {
    if joined.len() > MAX_JOINED {
        return Err(Refusal::invalid(
            "invalid_nodes",
            "joined",
            format!("{} nodes; at most {MAX_JOINED} are accepted", joined.len()),
        ));
    }
    let i = p.instances.get(instance).ok_or_else(|| {
        Refusal::not_found(
            "unknown_instance",
            "instance",
            format!("no instance named \"{instance}\""),
        )
    })?;
    if !i.spec.targeting.follows_labels() {
        return Err(Refusal::invalid(
            "named_nodes",
            "instance",
            format!(
                "instance \"{}\" runs on the nodes named at deploy; its nodes do not follow its selector",
                i.spec.name
            ),
        ));
    }
    let joined: BTreeSet<NodeId> = joined.iter().copied().collect();
    Ok(replace(p, i, &joined).into_iter().collect())
}

/// What a node is to the instance before the command.
enum Was<'a> {
    Target(&'a NodeTarget),
    Unschedulable(&'a Unschedulable),
    Nothing,
}

/// The new lists, the changes, and the fit budget left.
struct Plan {
    nodes: Vec<NodeTarget>,
    unschedulable: Vec<Unschedulable>,
    changes: Vec<NodeChange>,
    checks: usize,
}

impl Plan {
    fn full(&self) -> bool {
        self.changes.len() >= MAX_CHANGES
    }

    fn change(&mut self, node: NodeId, reason: ChangeReason) {
        self.changes.push(NodeChange { node, reason });
    }

    /// Measures `node` for fit, if the budget allows (`None`: it does not).
    fn measure(&mut self, p: &Projections, i: &Instance, node: &Node) -> Option<Vec<String>> {
        if self.checks == 0 {
            return None;
        }
        self.checks -= 1;
        Some(shortfalls(p, node, &i.spec.manifest, None))
    }
}

fn replace(p: &Projections, i: &Instance, joined: &BTreeSet<NodeId>) -> Option<Pending> {
    let spec = &i.spec;
    let targets: BTreeMap<NodeId, &NodeTarget> = spec.nodes.iter().map(|t| (t.node, t)).collect();
    let unfit: BTreeMap<NodeId, &Unschedulable> =
        spec.unschedulable.iter().map(|u| (u.node, u)).collect();
    let was = |id: NodeId| match (targets.get(&id), unfit.get(&id)) {
        (Some(t), _) => Was::Target(t),
        (None, Some(u)) => Was::Unschedulable(u),
        (None, None) => Was::Nothing,
    };
    let members: Vec<&Node> = p
        .nodes
        .values()
        .filter(|n| n.envs.contains(&spec.env))
        .collect();
    let mut plan = Plan {
        nodes: Vec::with_capacity(spec.nodes.len()),
        unschedulable: Vec::new(),
        changes: Vec::new(),
        checks: MAX_FIT_CHECKS,
    };
    // What is kept, what stops matching, and the new matching nodes.
    let mut retry: Vec<(&Unschedulable, &Node)> = Vec::new();
    for node in &members {
        let matches = labels_match(&node.labels, &spec.selector);
        match (was(node.id), matches) {
            (Was::Target(t), true) => plan.nodes.push(t.clone()),
            (Was::Unschedulable(u), true) => retry.push((u, node)),
            (Was::Target(t), false) if plan.full() => plan.nodes.push(t.clone()),
            (Was::Unschedulable(u), false) if plan.full() => plan.unschedulable.push(u.clone()),
            (Was::Target(_) | Was::Unschedulable(_), false) => {
                plan.change(node.id, ChangeReason::SelectorUnmatched);
            }
            (Was::Nothing, true) if !plan.full() => match plan.measure(p, i, node) {
                Some(reasons) if reasons.is_empty() => {
                    plan.nodes.push(NodeTarget {
                        node: node.id,
                        weight: 1,
                    });
                    let reason = if joined.contains(&node.id) || spec.selector.is_empty() {
                        ChangeReason::Joined
                    } else {
                        ChangeReason::SelectorMatched
                    };
                    plan.change(node.id, reason);
                }
                Some(reasons) => {
                    plan.unschedulable.push(Unschedulable {
                        node: node.id,
                        reasons: reasons.clone(),
                    });
                    plan.change(node.id, ChangeReason::Fit { reasons });
                }
                None => {}
            },
            (Was::Nothing, _) => {}
        }
    }
    // The unschedulable nodes that still match, measured again from a point that moves
    // with the log, so that over successive commands each is reached.
    if !retry.is_empty() {
        let start = usize::try_from(p.head.next_seq).unwrap_or(0) % retry.len();
        retry.rotate_left(start);
    }
    for (u, node) in retry {
        let fits = !plan.full()
            && plan
                .measure(p, i, node)
                .is_some_and(|reasons| reasons.is_empty());
        if fits {
            plan.nodes.push(NodeTarget {
                node: u.node,
                weight: 1,
            });
            plan.change(u.node, ChangeReason::Fit { reasons: vec![] });
        } else {
            plan.unschedulable.push(u.clone());
        }
    }
    if plan.changes.is_empty() {
        return None;
    }
    plan.nodes.sort_by_key(|t| t.node);
    plan.unschedulable.sort_by_key(|u| u.node);
    let audience = plan.changes.iter().map(|c| c.node).collect();
    let instance = InstanceSpec {
        nodes: plan.nodes,
        unschedulable: plan.unschedulable,
        ..spec.clone()
    };
    Some(Pending {
        payload: EventPayload::InstanceNodesChanged {
            instance: Box::new(instance),
            changes: plan.changes,
        },
        audience,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    //! The handler's tests, and helpers the selectors controller's tests share.
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
}
