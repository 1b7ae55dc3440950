//! Property tests of the reducer: any delivery of a node's history (any order, with
//! duplicates and replays, with or without a snapshot taken part way) ends in the state of
//! the in-order fold; equivocation is refused and changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use skerry_shared::clock::Timestamp;
use skerry_shared::event::{
    EventPayload, InstanceMode, InstanceSpec, NodeEvent, NodeStatus, NodeTarget,
};
use skerry_shared::ids::{Labels, Name, NodeId};
use skerry_shared::manifest::{Component, ComponentKind, Manifest};
use skerry_shared::reducer::{NodeDesired, NodeReducer, NodeSnapshot, Offer, Restore, fold};

fn n(s: &str) -> Name {
    Name::parse(s).unwrap()
}

fn me() -> NodeId {
    NodeId(uuid::Uuid::from_u128(1))
}

fn other() -> NodeId {
    NodeId(uuid::Uuid::from_u128(2))
}

const ENVS: [&str; 3] = ["prod", "lab", "edge"];
const INSTANCES: [&str; 3] = ["weather", "metrics", "relay"];
const VERSIONS: [&str; 2] = ["1.0.0", "1.1.0"];
const NAMES: [&str; 3] = ["gw-1", "gw-2", "gw-3"];
const KEYS: [&str; 3] = ["zone", "rack", "example.com/tier"];

fn manifest(version: &str) -> Manifest {
    let comp = |name: &str, kind| Component {
        kind,
        ..Component::image(n(name), "weather-db:1")
    };
    let mut db = comp("db", ComponentKind::Service);
    db.depends_on = vec![n("migrate")];
    Manifest {
        app: n("weather"),
        version: version.parse().unwrap(),
        description: None,
        platforms: None,
        components: vec![comp("migrate", ComponentKind::Init), db],
    }
}

/// One command of a node's history.
#[derive(Debug, Clone)]
enum Op {
    Deploy {
        instance: usize,
        version: usize,
        env: usize,
        here: bool,
    },
    Undeploy {
        instance: usize,
    },
    Join {
        env: usize,
    },
    Leave {
        env: usize,
    },
    Rename {
        name: usize,
        mine: bool,
    },
    Label {
        set: Option<(usize, u8)>,
        remove: Option<usize>,
    },
    DeleteEnv {
        env: usize,
    },
    Status,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, 0..2usize, 0..3usize, any::<bool>())
            .prop_map(|(instance, version, env, here)| Op::Deploy { instance, version, env, here }),
        2 => (0..3usize).prop_map(|instance| Op::Undeploy { instance }),
        2 => (0..3usize).prop_map(|env| Op::Join { env }),
        1 => (0..3usize).prop_map(|env| Op::Leave { env }),
        1 => (0..3usize, any::<bool>()).prop_map(|(name, mine)| Op::Rename { name, mine }),
        2 => (proptest::option::of((0..3usize, 0..4u8)), proptest::option::of(0..3usize))
            .prop_map(|(set, remove)| Op::Label { set, remove }),
        1 => (0..3usize).prop_map(|env| Op::DeleteEnv { env }),
        1 => Just(Op::Status),
    ]
}

fn payload(op: &Op) -> EventPayload {
    match op {
        Op::Deploy {
            instance,
            version,
            env,
            here,
        } => {
            let manifest = manifest(VERSIONS[*version]);
            let mut nodes = vec![NodeTarget {
                node: other(),
                weight: 1,
            }];
            if *here {
                nodes.push(NodeTarget {
                    node: me(),
                    weight: 2,
                });
            }
            EventPayload::InstanceDeployed {
                instance: Box::new(InstanceSpec {
                    name: n(INSTANCES[*instance]),
                    env: n(ENVS[*env]),
                    app: n("weather"),
                    version: manifest.version.clone(),
                    manifest,
                    nodes,
                    unschedulable: vec![],
                    selector: Labels::new(),
                    overrides: vec![],
                    mode: InstanceMode::Production,
                    targeting: skerry_shared::event::Targeting::Named,
                    lifecycle: Default::default(),
                }),
            }
        }
        Op::Undeploy { instance } => EventPayload::InstanceUndeployed {
            name: n(INSTANCES[*instance]),
            purge: false,
        },
        Op::Join { env } => EventPayload::NodeJoined {
            node: me(),
            env: n(ENVS[*env]),
        },
        Op::Leave { env } => EventPayload::NodeLeft {
            node: me(),
            env: n(ENVS[*env]),
        },
        Op::Rename { name, mine } => EventPayload::NodeRenamed {
            node: if *mine { me() } else { other() },
            name: n(NAMES[*name]),
        },
        Op::Label { set, remove } => EventPayload::NodeLabelled {
            node: me(),
            set: set
                .iter()
                .map(|(k, v)| (KEYS[*k].to_owned(), format!("v{v}")))
                .collect(),
            removed: remove.iter().map(|k| KEYS[*k].to_owned()).collect(),
        },
        Op::DeleteEnv { env } => EventPayload::EnvironmentDeleted {
            name: n(ENVS[*env]),
        },
        Op::Status => EventPayload::NodeStatusChanged {
            node: me(),
            status: NodeStatus::Normal,
        },
    }
}

fn history(ops: &[Op]) -> Vec<NodeEvent> {
    ops.iter()
        .zip(1u64..)
        .map(|(op, node_seq)| NodeEvent {
            node_seq,
            seq: node_seq * 3,
            time: Timestamp(1_795_255_200_000 + node_seq as i64 * 1000),
            payload: payload(op),
        })
        .collect()
}

fn fold_in_order(events: &[NodeEvent]) -> NodeDesired {
    let mut s = NodeDesired::new(me());
    for e in events {
        fold(&mut s, e.node_seq, &e.payload);
    }
    s
}

/// The same event with other content.
fn tampered(ev: &NodeEvent) -> NodeEvent {
    let mut t = ev.clone();
    t.time = Timestamp(t.time.0 + 1);
    t
}

/// A history, a delivery order (indices into it, every one at least once, some repeated),
/// and maybe a snapshot: (events folded into it, position in the delivery).
fn scenario() -> impl Strategy<Value = (Vec<Op>, Vec<usize>, Option<(usize, usize)>)> {
    proptest::collection::vec(op(), 1..40)
        .prop_flat_map(|ops| {
            let len = ops.len();
            (
                Just(ops),
                proptest::collection::vec(0..len, 0..len),
                proptest::option::of((0..=len, 0..=2 * len)),
            )
        })
        .prop_flat_map(|(ops, extra, snap)| {
            let order: Vec<usize> = (0..ops.len()).chain(extra).collect();
            (Just(ops), Just(order).prop_shuffle(), Just(snap))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_delivery_ends_in_the_in_order_state((ops, order, snap) in scenario()) {
        let events = history(&ops);
        let expected = fold_in_order(&events);
        let snapshot = snap.map(|(k, at)| {
            let state = fold_in_order(&events[..k]);
            (NodeSnapshot { node_seq: k as u64, state }, at)
        });
        let mut r = NodeReducer::new(me());
        for (pos, &i) in order.iter().enumerate() {
            if let Some((s, at)) = &snapshot
                && *at == pos
            {
                    let out = r.restore(s.clone());
                    prop_assert!(
                        matches!(out, Restore::Restored { .. } | Restore::Stale),
                        "restore gave {:?}",
                        out
                    );
            }
            let before = r.applied();
            match r.offer(events[i].clone()) {
                Offer::Applied { through } => {
                    prop_assert_eq!(events[i].node_seq, before + 1);
                    prop_assert!(through > before);
                    prop_assert_eq!(through, r.applied());
                }
                Offer::Duplicate | Offer::Buffered => prop_assert_eq!(r.applied(), before),
                other => prop_assert!(false, "unexpected {:?}", other),
            }
            // The state always equals the in-order fold of what is applied.
            prop_assert_eq!(r.state(), &fold_in_order(&events[..r.applied() as usize]));
        }
        if let Some((s, at)) = snapshot
            && at >= order.len()
        {
            prop_assert_eq!(r.restore(s), Restore::Stale);
        }
        prop_assert_eq!(r.state(), &expected);
        prop_assert_eq!(r.snapshot().node_seq, events.len() as u64);
        prop_assert_eq!(r.pending(), 0);
        prop_assert_eq!(r.equivocations(), 0);
    }

    #[test]
    fn equivocation_is_refused_and_changes_nothing(
        ops in proptest::collection::vec(op(), 2..30),
        cut in any::<prop::sample::Index>(),
        victim in any::<prop::sample::Index>(),
    ) {
        let events = history(&ops);
        let len = events.len();
        // Deliver all but the event at `cut`, so later ones are buffered.
        let cut = cut.index(len);
        let mut r = NodeReducer::new(me());
        for (i, e) in events.iter().enumerate() {
            if i != cut {
                r.offer(e.clone());
            }
        }
        let victim = &events[victim.index(len)];
        let before = (r.state().clone(), r.applied(), r.pending());
        if victim.node_seq != events[cut].node_seq {
            prop_assert_eq!(
                r.offer(tampered(victim)),
                Offer::Equivocation { node_seq: victim.node_seq }
            );
            prop_assert_eq!(r.equivocations(), 1);
        }
        prop_assert_eq!((r.state().clone(), r.applied(), r.pending()), before);
        // Filling the gap with the true event reaches the in-order state; a forged one
        // at a seq never seen is simply taken (nothing can tell), so only true events here.
        r.offer(events[cut].clone());
        prop_assert_eq!(r.state(), &fold_in_order(&events));
        // After everything is applied, a forged replay is still caught.
        prop_assert_eq!(
            r.offer(tampered(victim)),
            Offer::Equivocation { node_seq: victim.node_seq }
        );
        prop_assert_eq!(r.state(), &fold_in_order(&events));
    }
}

#[test]
fn deploy_away_and_leave_remove_instances() {
    let ops = [
        Op::Join { env: 0 },
        Op::Deploy {
            instance: 0,
            version: 0,
            env: 0,
            here: true,
        },
        Op::Deploy {
            instance: 1,
            version: 0,
            env: 1,
            here: true,
        },
        Op::Deploy {
            instance: 0,
            version: 1,
            env: 0,
            here: true,
        },
    ];
    let s = fold_in_order(&history(&ops));
    assert_eq!(s.instances.len(), 2);
    assert_eq!(s.instances[&n("weather")].deployed_at, 4);
    assert_eq!(s.instances[&n("weather")].spec.version.to_string(), "1.1.0");

    let mut more = ops.to_vec();
    more.push(Op::Deploy {
        instance: 0,
        version: 1,
        env: 0,
        here: false,
    });
    let s = fold_in_order(&history(&more));
    assert!(!s.instances.contains_key(&n("weather")));

    let mut leave = ops.to_vec();
    leave.push(Op::Leave { env: 1 });
    let s = fold_in_order(&history(&leave));
    assert!(!s.instances.contains_key(&n("metrics")));
    assert!(s.instances.contains_key(&n("weather")));

    let mut delete = ops.to_vec();
    delete.push(Op::DeleteEnv { env: 0 });
    let s = fold_in_order(&history(&delete));
    assert!(!s.envs.contains(&n("prod")));
    assert_eq!(s.instances.keys().collect::<Vec<_>>(), vec![&n("metrics")]);
}
