//! The selectors controller: instances whose nodes follow their selector
//! ([`Targeting::Selector`](skerry_shared::event::Targeting::Selector)) re-placed as nodes
//! are labelled, join, leave or enroll, and as room frees up on nodes they did not fit.
//!
//! It watches the log ([`Engine::subscribe`]) and, for each event that can change a
//! selection, submits `Command::FollowSelector` ([`crate::command::selection`]) as
//! [`Actor::Cloud`] for the instances it affects. The handler decides and records the
//! changes; the controller only says where to look. At start it checks every instance that
//! follows labels once, so a cloud restarted after an event it did not see catches up; a
//! receiver that fell behind the log does the same.
//!
//! - The core, [`affected`] (and [`every`]), does no I/O: the projections and one event in,
//!   the instances to check (with the nodes seen joining) out.
//! - The driver, [`run`], gathers what the events call for, and [`pass`] submits one
//!   command per instance, again while commands record (each is bounded, see
//!   [`crate::command::selection`]), at most [`MAX_ROUNDS`] times; an instance still
//!   recording then goes on in the next pass.
//!
//! Which events matter:
//! - `node.labelled`, `node.joined`, `node.enrolled`: the instances of the node's
//!   environments whose view of it is out of date (it matches and they lack it, or it does
//!   not and they have it);
//! - `instance.deployed`: that instance (a node may have joined while it was checked);
//! - `instance.undeployed`, `instance.nodes-changed`, `rollout.finished` and `node.left`
//!   free room on nodes (or change what an instance asks): the instances with
//!   unschedulable nodes, which the handler measures again;
//! - status changes, heartbeats and the rest are not looked at.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::future::Future;

use skerry_shared::event::{Actor, EventPayload};
use skerry_shared::ids::{Name, NodeId, labels_match};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use crate::command::Command;
use crate::command::selection::MAX_JOINED;
use crate::engine::{Engine, EngineError};
use crate::projections::{Instance, Node, Projections};

/// The most commands one pass submits for one instance (each records at most
/// [`crate::command::selection::MAX_CHANGES`] changes).
pub const MAX_ROUNDS: usize = 64;

/// The most events gathered into one pass (the rest make the next one).
pub const MAX_EVENTS_PER_PASS: usize = 4096;

/// What to check: instance name to the nodes seen joining its environment.
pub type Todo = BTreeMap<Name, BTreeSet<NodeId>>;

/// Every instance that follows labels, with no node seen joining (the check at start).
pub fn every(p: &Projections) -> Todo {
    p.instances
        .values()
        .filter(|i| i.spec.targeting.follows_labels())
        .map(|i| (i.spec.name.clone(), BTreeSet::new()))
        .collect()
}

/// The nodes each instance has (targets and unschedulable), gathered once per pass for
/// the instances a pass asks about, so that a pass of many events costs one walk of each
/// instance's lists, not one per event.
#[derive(Debug, Default)]
pub struct Held(BTreeMap<Name, HashSet<NodeId>>);

impl Held {
    fn has(&mut self, i: &Instance, node: NodeId) -> bool {
        self.0
            .entry(i.spec.name.clone())
            .or_insert_with(|| {
                let spec = &i.spec;
                spec.nodes
                    .iter()
                    .map(|t| t.node)
                    .chain(spec.unschedulable.iter().map(|u| u.node))
                    .collect()
            })
            .contains(&node)
    }
}

/// The core: adds to `todo` the instances `event` calls for, judged against `p` (the
/// projections with the event folded in). `held` is the pass's cache of [`Held`] nodes.
pub fn affected(p: &Projections, event: &EventPayload, todo: &mut Todo, held: &mut Held) {
    let follows = || {
        p.instances
            .values()
            .filter(|i| i.spec.targeting.follows_labels())
    };
    match event {
        EventPayload::NodeLabelled { node, .. } => {
            if let Some(n) = p.nodes.get(node) {
                for i in follows() {
                    if !todo.contains_key(&i.spec.name) && out_of_date(i, n, held) {
                        todo.entry(i.spec.name.clone()).or_default();
                    }
                }
            }
        }
        EventPayload::NodeJoined { node, env } | EventPayload::NodeEnrolled { node, env, .. } => {
            if let Some(n) = p.nodes.get(node) {
                for i in follows().filter(|i| &i.spec.env == env) {
                    let wanted = labels_match(&n.labels, &i.spec.selector);
                    let hint = match todo.get_mut(&i.spec.name) {
                        Some(joined) => wanted.then_some(joined),
                        None if out_of_date(i, n, held) => {
                            Some(todo.entry(i.spec.name.clone()).or_default())
                        }
                        None => None,
                    };
                    if let Some(joined) = hint.filter(|j| j.len() < MAX_JOINED) {
                        joined.insert(*node);
                    }
                }
            }
        }
        EventPayload::InstanceDeployed { instance } if instance.targeting.follows_labels() => {
            // A new spec: what the pass gathered of an earlier one is stale.
            held.0.remove(&instance.name);
            todo.entry(instance.name.clone()).or_default();
        }
        EventPayload::InstanceUndeployed { .. }
        | EventPayload::InstanceNodesChanged { .. }
        | EventPayload::RolloutFinished { .. }
        | EventPayload::NodeLeft { .. } => {
            for i in follows().filter(|i| !i.spec.unschedulable.is_empty()) {
                todo.entry(i.spec.name.clone()).or_default();
            }
        }
        _ => {}
    }
}

/// Whether `i`'s lists disagree with the selector about `n`: it matches (in the
/// environment, labels matching) and `i` has it neither as a target nor as unschedulable,
/// or it does not and `i` has it.
fn out_of_date(i: &Instance, n: &Node, held: &mut Held) -> bool {
    let wanted = n.envs.contains(&i.spec.env) && labels_match(&n.labels, &i.spec.selector);
    wanted != held.has(i, n.id)
}

/// The driver, until `shutdown` resolves.
pub async fn run(engine: Engine, shutdown: impl Future<Output = ()> + Send + 'static) {
    // Subscribed before the first look, so no event after it is missed.
    let mut events = engine.subscribe();
    let mut todo = every(&engine.read());
    tokio::pin!(shutdown);
    loop {
        let (_, unfinished) = pass(&engine, std::mem::take(&mut todo)).await;
        todo = unfinished;
        let first = tokio::select! {
            () = &mut shutdown => break,
            r = events.recv() => r,
        };
        let mut seen = Vec::new();
        let mut behind = false;
        match first {
            Ok(e) => seen.push(e),
            Err(RecvError::Lagged(_)) => behind = true,
            Err(RecvError::Closed) => break,
        }
        // Whatever else is committed already goes into the same pass.
        while seen.len() < MAX_EVENTS_PER_PASS {
            match events.try_recv() {
                Ok(e) => seen.push(e),
                Err(TryRecvError::Lagged(_)) => behind = true,
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        let p = engine.read();
        if behind {
            tracing::info!("the selectors controller fell behind the log; checking every instance");
            todo = every(&p);
        } else {
            let mut held = Held::default();
            for e in &seen {
                affected(&p, &e.payload, &mut todo, &mut held);
            }
        }
    }
    tracing::debug!("selectors controller stopped");
}

/// Submits `Command::FollowSelector` for each instance of `todo`, again while it records
/// (at most [`MAX_ROUNDS`] times). Returns how many events were recorded, and the
/// instances still recording after [`MAX_ROUNDS`] (for the next pass, which their own
/// events start at once).
pub async fn pass(engine: &Engine, todo: Todo) -> (usize, Todo) {
    let mut recorded = 0;
    let mut unfinished = Todo::new();
    'instances: for (instance, joined) in todo {
        let hints: Vec<NodeId> = joined.iter().copied().collect();
        for _ in 0..MAX_ROUNDS {
            let command = Command::FollowSelector {
                instance: instance.clone(),
                joined: hints.clone(),
            };
            match engine.submit(Actor::Cloud, command).await {
                Ok(events) if events.is_empty() => continue 'instances,
                Ok(events) => {
                    recorded += events.len();
                    for e in &events {
                        if let EventPayload::InstanceNodesChanged { changes, .. } = &e.payload {
                            tracing::info!(instance = %instance, seq = e.seq, nodes = changes.len(), "selector followed");
                        }
                    }
                }
                // Undeployed (or redeployed with named nodes) since: nothing to follow.
                Err(EngineError::Refused(r)) => {
                    tracing::debug!(instance = %instance, reason = %r, "selector not followed");
                    continue 'instances;
                }
                Err(e) => {
                    tracing::warn!(instance = %instance, error = %e, "cannot follow a selector");
                    continue 'instances;
                }
            }
        }
        unfinished.insert(instance, joined);
    }
    (recorded, unfinished)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use skerry_shared::ids::Labels;

    use super::*;
    use crate::command::selection::tests::{
        WEB, apply, deployed, enroll, fixture, follower, label, manifest, n, spec,
    };

    fn names(todo: &Todo) -> Vec<&str> {
        todo.keys().map(Name::as_str).collect()
    }

    #[test]
    fn at_start_every_instance_that_follows_labels_is_checked() {
        let (mut p, a) = fixture("x86-64-host");
        follower(&mut p, "all", WEB, &[]);
        follower(&mut p, "north", WEB, &[("zone", "north")]);
        deployed(&mut p, &spec("fixed", &manifest("1.0.0", WEB), a));
        assert_eq!(names(&every(&p)), ["all", "north"]);
    }

    #[test]
    fn a_label_calls_for_the_instances_whose_view_of_the_node_is_out_of_date() {
        let (mut p, a) = fixture("x86-64-host");
        follower(&mut p, "all", WEB, &[]);
        follower(&mut p, "north", WEB, &[("zone", "north")]);
        follower(&mut p, "south", WEB, &[("zone", "south")]);
        deployed(&mut p, &spec("fixed", &manifest("1.0.0", WEB), a));
        label(&mut p, a, &[("zone", "north")], &[]);
        let event = EventPayload::NodeLabelled {
            node: a,
            set: Labels::from([("zone".to_owned(), "north".to_owned())]),
            removed: vec![],
        };
        let mut todo = Todo::new();
        affected(&p, &event, &mut todo, &mut Held::default());
        // "all" has it and still matches; "south" lacks it and does not match; "fixed"
        // does not follow labels.
        assert_eq!(names(&todo), ["north"]);
        // A status change is not looked at.
        let mut todo = Todo::new();
        let status = EventPayload::NodeStatusChanged {
            node: a,
            status: skerry_shared::event::NodeStatus::Normal,
        };
        affected(&p, &status, &mut todo, &mut Held::default());
        assert!(todo.is_empty());
    }

    #[test]
    fn a_node_that_enrolls_is_passed_on_as_joined() {
        let (mut p, _) = fixture("x86-64-host");
        follower(&mut p, "all", WEB, &[]);
        follower(&mut p, "north", WEB, &[("zone", "north")]);
        let b = enroll(&mut p, "gw-b", "x86-64-host");
        let event = EventPayload::NodeJoined {
            node: b,
            env: n("plant"),
        };
        let mut todo = Todo::new();
        affected(&p, &event, &mut todo, &mut Held::default());
        assert_eq!(names(&todo), ["all"]);
        assert_eq!(todo[&n("all")], BTreeSet::from([b]));
        // Already to be checked (a label before it in the same pass): the hint is kept.
        let mut todo = Todo::from([(n("all"), BTreeSet::new())]);
        affected(&p, &event, &mut todo, &mut Held::default());
        assert_eq!(todo[&n("all")], BTreeSet::from([b]));
    }

    #[test]
    fn freed_room_calls_for_the_instances_with_unschedulable_nodes() {
        let (mut p, _) = fixture("orange-pi-zero");
        follower(&mut p, "all", WEB, &[]);
        assert_eq!(p.instances[&n("all")].spec.unschedulable.len(), 1);
        let x = enroll(&mut p, "gw-x", "x86-64-host");
        deployed(&mut p, &spec("fixed", &manifest("2.0.0", WEB), x));
        let mut todo = Todo::new();
        let gone = EventPayload::InstanceUndeployed {
            name: n("fixed"),
            purge: false,
        };
        apply(&mut p, gone.clone());
        affected(&p, &gone, &mut todo, &mut Held::default());
        assert_eq!(names(&todo), ["all"]);
    }

    /// A log with a label change that no controller followed (a cloud stopped right after
    /// it): a restarted cloud's controller follows it at start.
    #[tokio::test]
    async fn a_restarted_cloud_catches_up_on_a_label_it_missed() {
        use std::sync::Arc;

        use skerry_shared::clock::Timestamp;
        use skerry_shared::event::Event;

        use crate::log::{EventLog, RedbLog};

        // The events, as a cloud without the controller recorded them.
        let (mut p, a) = fixture("x86-64-host");
        follower(&mut p, "north", WEB, &[("zone", "north")]);
        label(&mut p, a, &[("zone", "north")], &[]);
        assert!(p.instances[&n("north")].spec.nodes.is_empty());
        let mut events = Vec::new();
        let mut q = Projections::default();
        for payload in history(&p) {
            let seq = q.head.next_seq;
            let e = Event::seal(
                seq,
                Timestamp(seq as i64),
                Actor::Cloud,
                payload,
                vec![],
                q.head.last_hash,
            )
            .unwrap();
            q.apply(&e);
            events.push(Arc::new(e));
        }
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(RedbLog::open(&dir.path().join("events.redb"), 1 << 20).unwrap());
        log.append(&events).unwrap();

        let engine = Engine::start(log).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let driver = tokio::spawn(run(engine.clone(), async move {
            let _ = stopped.await;
        }));
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while !engine.read().instances[&n("north")].spec.targets(a) {
            assert!(tokio::time::Instant::now() < deadline, "never caught up");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let _ = stop.send(());
        driver.await.unwrap();
        let closer = engine.clone();
        tokio::task::spawn_blocking(move || closer.close())
            .await
            .unwrap();
    }

    /// The payloads that built `p` in the tests' fixtures: the environment, its nodes
    /// (with their labels), the published versions and the instances as deployed.
    fn history(p: &Projections) -> Vec<EventPayload> {
        let mut out = Vec::new();
        for env in p.envs.values() {
            out.push(EventPayload::EnvironmentCreated {
                name: env.name.clone(),
                labels: env.labels.clone(),
                entries: vec![],
            });
        }
        for node in p.nodes.values() {
            out.push(EventPayload::NodeEnrolled {
                node: node.id,
                name: node.name.clone(),
                env: n("plant"),
                address: node.address.clone(),
                profile: Box::new(node.profile.clone()),
                token: skerry_shared::ids::TokenId::random(),
                certificate: node.certificate,
            });
        }
        for versions in p.apps.values() {
            for v in versions.values() {
                out.push(EventPayload::AppVersionPublished {
                    manifest: v.manifest.clone(),
                    digest: v.digest,
                });
            }
        }
        for i in p.instances.values() {
            out.push(EventPayload::InstanceDeployed {
                instance: Box::new(i.spec.clone()),
            });
        }
        for node in p.nodes.values() {
            out.push(EventPayload::NodeLabelled {
                node: node.id,
                set: node.labels.clone(),
                removed: vec![],
            });
        }
        out
    }

    #[test]
    fn a_selector_deploy_is_checked_once_recorded() {
        let (mut p, _) = fixture("x86-64-host");
        follower(&mut p, "all", WEB, &[]);
        let i = p.instances[&n("all")].spec.clone();
        let mut todo = Todo::new();
        affected(
            &p,
            &EventPayload::InstanceDeployed {
                instance: Box::new(i),
            },
            &mut todo,
            &mut Held::default(),
        );
        assert_eq!(names(&todo), ["all"]);
    }
}
