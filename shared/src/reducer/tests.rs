//! The reducer: folding in order, duplicates, equivocation and gaps, the bounds of the
//! pending map and the window, snapshots, refused deploys and other nodes' events.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::clock::Timestamp;

fn node() -> NodeId {
    NodeId(uuid::Uuid::from_u128(1))
}

fn rename(node_seq: u64, name: &str) -> NodeEvent {
    NodeEvent {
        node_seq,
        seq: node_seq * 10,
        time: Timestamp(1_000 + node_seq as i64),
        payload: EventPayload::NodeRenamed {
            node: node(),
            name: Name::parse(name).unwrap(),
        },
    }
}

#[test]
fn in_order_duplicate_gap_and_equivocation() {
    let mut r = NodeReducer::new(node());
    assert_eq!(r.offer(rename(1, "a")), Offer::Applied { through: 1 });
    assert_eq!(r.offer(rename(1, "a")), Offer::Duplicate);
    assert_eq!(r.offer(rename(3, "c")), Offer::Buffered);
    assert_eq!(r.offer(rename(3, "c")), Offer::Duplicate);
    assert_eq!(r.offer(rename(3, "x")), Offer::Equivocation { node_seq: 3 });
    assert_eq!(r.offer(rename(1, "x")), Offer::Equivocation { node_seq: 1 });
    assert_eq!(r.equivocations(), 2);
    assert_eq!(r.offer(rename(2, "b")), Offer::Applied { through: 3 });
    assert_eq!(r.state().name.as_ref().map(Name::as_str), Some("c"));
    assert_eq!(r.pending(), 0);
}

#[test]
fn pending_is_bounded() {
    let mut r = NodeReducer::new(node()).with_limits(2, 8);
    assert_eq!(r.offer(rename(3, "c")), Offer::Buffered);
    assert_eq!(r.offer(rename(4, "d")), Offer::Buffered);
    assert_eq!(r.offer(rename(5, "e")), Offer::Overflow);
    assert_eq!(r.offer(rename(1, "a")), Offer::Applied { through: 1 });
    assert_eq!(r.offer(rename(2, "b")), Offer::Applied { through: 4 });
}

#[test]
fn beyond_the_window_is_a_duplicate() {
    let mut r = NodeReducer::new(node()).with_limits(8, 2);
    for (i, n) in ["a", "b", "c"].iter().enumerate() {
        r.offer(rename(i as u64 + 1, n));
    }
    assert_eq!(r.offer(rename(1, "x")), Offer::Duplicate);
    assert_eq!(r.offer(rename(2, "x")), Offer::Equivocation { node_seq: 2 });
}

#[test]
fn restore_takes_only_newer_snapshots_and_drains() {
    let mut r = NodeReducer::new(node());
    r.offer(rename(1, "a"));
    assert_eq!(r.offer(rename(6, "f")), Offer::Buffered);
    assert_eq!(r.offer(rename(4, "d")), Offer::Buffered);
    let mut s = NodeDesired::new(node());
    fold(&mut s, 5, &rename(5, "e").payload);
    let snap = NodeSnapshot {
        node_seq: 5,
        state: s,
    };
    assert_eq!(r.restore(snap.clone()), Restore::Restored { through: 6 });
    assert_eq!(r.state().name.as_ref().map(Name::as_str), Some("f"));
    assert_eq!(r.restore(snap.clone()), Restore::Stale);
    let other = NodeSnapshot {
        node_seq: 99,
        state: NodeDesired::new(NodeId(uuid::Uuid::from_u128(2))),
    };
    assert_eq!(r.restore(other), Restore::WrongNode);
    assert_eq!(r.offer(rename(4, "zzz")), Offer::Duplicate);
}

fn deploy(node_seq: u64, replicas: u32) -> NodeEvent {
    use crate::event::{InstanceMode, NodeTarget};
    use crate::manifest::{Component, Manifest};
    let manifest = Manifest {
        app: Name::parse("weather").unwrap(),
        version: "1.0.0".parse().unwrap(),
        description: None,
        platforms: None,
        components: vec![Component {
            replicas: Some(replicas),
            ..Component::image(Name::parse("api").unwrap(), "weather:1")
        }],
    };
    NodeEvent {
        node_seq,
        seq: node_seq * 10,
        time: Timestamp(1_000),
        payload: EventPayload::InstanceDeployed {
            instance: Box::new(InstanceSpec {
                name: Name::parse("web").unwrap(),
                env: Name::parse("prod").unwrap(),
                app: manifest.app.clone(),
                version: manifest.version.clone(),
                manifest,
                nodes: vec![NodeTarget {
                    node: node(),
                    weight: 1,
                }],
                unschedulable: vec![],
                selector: Labels::new(),
                overrides: vec![],
                mode: InstanceMode::Production,
                targeting: crate::event::Targeting::Named,
                lifecycle: Default::default(),
            }),
        },
    }
}

#[test]
fn a_deploy_the_node_cannot_take_is_refused_whole_and_applied_past() {
    let mut r = NodeReducer::new(node());
    r.offer(deploy(1, 2));
    let before = r.state().clone();
    assert_eq!(r.offer(deploy(2, u32::MAX)), Offer::Applied { through: 2 });
    let mut expected = before;
    expected.applied = 2;
    assert_eq!(r.state(), &expected, "only applied moved");
    assert_eq!(r.refused(), 1);
    let taken = r.take_refused();
    assert_eq!((taken[0].node_seq, taken[0].kind), (2, "instance.deployed"));
    assert!(taken[0].reason.contains("replicas"), "{}", taken[0].reason);
    assert!(r.take_refused().is_empty());
    // The same rule for a snapshot that holds one.
    let mut s = NodeDesired::new(node());
    s.instances.insert(
        Name::parse("web").unwrap(),
        DesiredInstance {
            spec: match deploy(5, u32::MAX).payload {
                EventPayload::InstanceDeployed { instance } => *instance,
                _ => unreachable!(),
            },
            deployed_at: 5,
        },
    );
    assert_eq!(
        r.restore(NodeSnapshot {
            node_seq: 5,
            state: s
        }),
        Restore::Restored { through: 5 }
    );
    assert!(r.state().instances.is_empty());
    assert_eq!(r.refused(), 2);
}

#[test]
fn other_nodes_change_nothing_but_applied() {
    let mut s = NodeDesired::new(node());
    let p = EventPayload::NodeRenamed {
        node: NodeId(uuid::Uuid::from_u128(2)),
        name: Name::parse("x").unwrap(),
    };
    fold(&mut s, 1, &p);
    let mut expected = NodeDesired::new(node());
    expected.applied = 1;
    assert_eq!(s, expected);
}

#[test]
fn the_removal_of_this_node_empties_its_state_and_another_nodes_changes_nothing() {
    let mut s = NodeDesired::new(node());
    fold(&mut s, 1, &rename(1, "gw").payload);
    fold(&mut s, 2, &deploy(2, 1).payload);
    assert_eq!(s.instances.len(), 1);
    let other = EventPayload::NodeRemoved {
        node: NodeId(uuid::Uuid::from_u128(2)),
    };
    fold(&mut s, 3, &other);
    assert_eq!(s.instances.len(), 1, "another node's removal");
    fold(&mut s, 4, &EventPayload::NodeRemoved { node: node() });
    assert!(s.instances.is_empty() && s.secrets.is_empty() && s.envs.is_empty());
    assert_eq!(s.applied, 4);
}

fn delivered(node_seq: u64, to: NodeId, version: u64) -> NodeEvent {
    NodeEvent {
        node_seq,
        seq: node_seq * 10,
        time: Timestamp(1_000 + node_seq as i64),
        payload: EventPayload::SecretDelivered {
            name: Name::parse("db").unwrap(),
            version,
            node: to,
            sealed: crate::secret::SealedForNode {
                ephemeral: [version as u8; 32],
                ciphertext: vec![1, 2, 3],
            },
        },
    }
}

#[test]
fn a_node_keeps_the_latest_copy_of_its_own_secrets_until_deleted() {
    let mut r = NodeReducer::new(node());
    r.offer(delivered(1, node(), 2));
    // An older version delivered later (a replay) does not replace the newer one.
    r.offer(delivered(2, node(), 1));
    // Another node's copy is not this node's.
    r.offer(delivered(3, NodeId::random(), 5));
    assert_eq!(r.state().secrets["db"].version, 2);
    assert_eq!(r.state().secrets.len(), 1);
    r.offer(NodeEvent {
        node_seq: 4,
        seq: 40,
        time: Timestamp(1_004),
        payload: EventPayload::SecretDeleted {
            name: Name::parse("db").unwrap(),
        },
    });
    assert!(r.state().secrets.is_empty());
}

#[test]
fn a_state_stored_before_secrets_decodes_and_one_without_secrets_encodes_as_before() {
    /// The desired state as the first release stored it.
    #[derive(serde::Serialize)]
    struct Legacy {
        node: NodeId,
        name: Option<Name>,
        labels: Labels,
        envs: BTreeSet<Name>,
        instances: BTreeMap<Name, DesiredInstance>,
        applied: u64,
    }
    let old = Legacy {
        node: node(),
        name: Some(Name::parse("gw").unwrap()),
        labels: Labels::new(),
        envs: BTreeSet::new(),
        instances: BTreeMap::new(),
        applied: 7,
    };
    let bytes = postcard::to_stdvec(&old).unwrap();
    let state: NodeDesired = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(state.applied, 7);
    assert!(state.secrets.is_empty());
    assert_eq!(postcard::to_stdvec(&state).unwrap(), bytes);

    let mut r = NodeReducer::from_state(state);
    r.offer(delivered(8, node(), 1));
    let with = postcard::to_stdvec(r.state()).unwrap();
    let back: NodeDesired = postcard::from_bytes(&with).unwrap();
    assert_eq!(&back, r.state());
}

fn event(node_seq: u64, payload: EventPayload) -> NodeEvent {
    NodeEvent {
        node_seq,
        seq: node_seq * 10,
        time: Timestamp(1_000 + node_seq as i64),
        payload,
    }
}

fn renamed(name: &str, to: &str) -> EventPayload {
    EventPayload::EnvironmentRenamed {
        name: Name::parse(name).unwrap(),
        to: Name::parse(to).unwrap(),
    }
}

#[test]
fn a_renamed_environment_keeps_its_instances_under_the_new_name() {
    let mut r = NodeReducer::new(node());
    let joined = EventPayload::NodeJoined {
        node: node(),
        env: Name::parse("prod").unwrap(),
    };
    r.offer(event(1, joined));
    r.offer(deploy(2, 1));
    assert_eq!(
        r.offer(event(3, renamed("prod", "live"))),
        Offer::Applied { through: 3 }
    );
    let s = r.state();
    assert_eq!(
        s.envs.iter().map(Name::as_str).collect::<Vec<_>>(),
        ["live"]
    );
    let web = &s.instances["web"];
    assert_eq!(web.spec.env.as_str(), "live");
    // The same deploy as before, only renamed: nothing to restart.
    assert_eq!(web.deployed_at, 2);
    // Another environment's rename changes nothing but `applied`.
    let before = r.state().clone();
    r.offer(event(4, renamed("lab", "bench")));
    let mut expected = before;
    expected.applied = 4;
    assert_eq!(r.state(), &expected);
    // The old name is gone: its deletion leaves the instance; the new name's removes it.
    let deleted = |name: &str| EventPayload::EnvironmentDeleted {
        name: Name::parse(name).unwrap(),
    };
    r.offer(event(5, deleted("prod")));
    assert_eq!(r.state().instances.len(), 1);
    r.offer(event(6, deleted("live")));
    assert!(r.state().instances.is_empty() && r.state().envs.is_empty());
}

#[test]
fn a_rename_folds_the_same_into_a_snapshot_restored_and_the_state_it_left() {
    let mut s = NodeDesired::new(node());
    fold(&mut s, 1, &rename(1, "gw").payload);
    fold(&mut s, 2, &deploy(2, 1).payload);
    fold(&mut s, 3, &renamed("prod", "live"));
    // No membership of `prod` is held here (no enrollment or join folded); the
    // instance's environment follows all the same.
    assert!(s.envs.is_empty());
    assert_eq!(s.instances["web"].spec.env.as_str(), "live");
    let mut r = NodeReducer::new(node());
    assert_eq!(
        r.restore(NodeSnapshot {
            node_seq: 3,
            state: s.clone()
        }),
        Restore::Restored { through: 3 }
    );
    assert_eq!(r.state(), &s);
}
