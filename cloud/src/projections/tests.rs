//! Tests of the projections: folding events, and refusals recorded at rebuild.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use skerry_shared::event::{Actor, InstanceMode, InstanceSpec, NodeSeq, NodeTarget};
use skerry_shared::manifest::Component;

use super::*;
use crate::log::{EventLog, RedbLog, walk};

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

fn node_id() -> NodeId {
    NodeId(uuid::Uuid::from_u128(7))
}

/// A manifest of `weather@VERSION` with one service of `replicas` copies, built by
/// hand: nothing checked it.
fn manifest(version: &str, replicas: u32) -> Manifest {
    Manifest {
        app: name("weather"),
        version: version.parse().unwrap(),
        description: None,
        platforms: None,
        components: vec![Component {
            replicas: Some(replicas),
            ..Component::image(name("api"), "weather:1")
        }],
    }
}

fn deploy(manifest: Manifest) -> EventPayload {
    EventPayload::InstanceDeployed {
        instance: Box::new(InstanceSpec {
            name: name("web"),
            env: name("prod"),
            app: manifest.app.clone(),
            version: manifest.version.clone(),
            manifest,
            nodes: vec![NodeTarget {
                node: node_id(),
                weight: 1,
            }],
            unschedulable: vec![],
            selector: Labels::new(),
            overrides: vec![],
            mode: InstanceMode::Production,
            targeting: skerry_shared::event::Targeting::Named,
            lifecycle: Default::default(),
        }),
    }
}

fn publish(manifest: Manifest) -> EventPayload {
    EventPayload::AppVersionPublished {
        digest: Digest::of(&postcard::to_stdvec(&manifest).unwrap()),
        manifest,
    }
}

/// Seals `payload` as the next event of the chain `p` is the head of, and folds it.
fn append(p: &mut Projections, log: &mut Vec<Event>, payload: EventPayload) -> Event {
    let audience = match &payload {
        EventPayload::InstanceDeployed { .. } | EventPayload::NodeEnrolled { .. } => {
            vec![node_id()]
        }
        _ => vec![],
    };
    let node_seqs = audience
        .into_iter()
        .map(|node| NodeSeq {
            node,
            node_seq: p.head.next_node_seq(node),
        })
        .collect();
    let seq = p.head.next_seq;
    let e = Event::seal(
        seq,
        Timestamp(1_700_000_000_000 + seq as i64),
        Actor::Cloud,
        payload,
        node_seqs,
        p.head.last_hash,
    )
    .unwrap();
    p.apply(&e);
    log.push(e.clone());
    e
}

/// An environment, a node in it, weather@1.0.0 (one replica) and `web` deployed of it.
fn fleet() -> (Projections, Vec<Event>) {
    let mut p = Projections::default();
    let mut log = Vec::new();
    append(
        &mut p,
        &mut log,
        EventPayload::EnvironmentCreated {
            name: name("prod"),
            labels: Labels::new(),
            entries: vec![],
        },
    );
    let profile = skerry_shared::profile::builtin_names()[0];
    append(
        &mut p,
        &mut log,
        EventPayload::NodeEnrolled {
            node: node_id(),
            name: name("gw-1"),
            env: name("prod"),
            address: "10.0.0.1".into(),
            profile: Box::new(skerry_shared::profile::builtin(profile).unwrap()),
            token: TokenId(uuid::Uuid::from_u128(9)),
            certificate: Digest::ZERO,
        },
    );
    append(&mut p, &mut log, publish(manifest("1.0.0", 1)));
    append(&mut p, &mut log, deploy(manifest("1.0.0", 1)));
    assert!(p.refused.is_empty(), "{:?}", p.refused);
    (p, log)
}

/// The read models (everything but the chain head and the refusals), to compare.
fn models(p: &Projections) -> String {
    format!(
        "{:?}",
        (&p.envs, &p.node_names, &p.apps, &p.instances, &p.tokens)
    ) + &format!(
        "{:?}",
        p.nodes
            .values()
            .map(|n| (&n.id, &n.name, &n.envs, &n.labels, n.status, n.acked))
            .collect::<Vec<_>>()
    )
}

#[test]
fn a_deploy_of_four_billion_replicas_is_refused_whole_and_the_head_moves_past_it() {
    let (mut p, mut log) = fleet();
    let before = models(&p);
    let node_seq_before = p.head.next_node_seq(node_id());
    // The version is published (with one replica); the deploy's own manifest says
    // 4294967295, as a log written by hand or by an older build may.
    let e = append(&mut p, &mut log, deploy(manifest("1.0.0", u32::MAX)));

    assert_eq!(models(&p), before, "no read model changed");
    assert_eq!(
        p.instances["web"].spec.manifest.components[0].replicas(),
        1,
        "the instance keeps its last applied deploy"
    );
    let r = &p.refused[&e.seq];
    assert_eq!((r.seq, r.kind), (e.seq, "instance.deployed"));
    assert!(r.reason.contains("replicas"), "{}", r.reason);
    assert_eq!(p.refused_total, 1);
    // The head moved past it: the next event follows it in the chain.
    assert_eq!(p.head.next_seq, e.seq + 1);
    assert_eq!(p.head.last_hash, e.hash);
    assert_eq!(p.head.next_node_seq(node_id()), node_seq_before + 1);
    assert_eq!(p.nodes[&node_id()].node_seq, node_seq_before);
    append(
        &mut p,
        &mut log,
        EventPayload::EnvironmentCreated {
            name: name("lab"),
            labels: Labels::new(),
            entries: vec![],
        },
    );
    assert!(p.envs.contains_key("lab"));
    let mut node_next = HashMap::new();
    skerry_shared::event::verify_chain(&log, 1, Digest::ZERO, &mut node_next).unwrap();
}

#[test]
fn a_refused_publication_refuses_its_deploys_too() {
    let (mut p, mut log) = fleet();
    let before = models(&p);
    let published = append(&mut p, &mut log, publish(manifest("2.0.0", u32::MAX)));
    assert!(
        p.app_version("weather", &"2.0.0".parse().unwrap())
            .is_none()
    );
    assert_eq!(p.refused[&published.seq].kind, "app.version-published");
    assert!(
        p.refused[&published.seq].reason.contains("replicas"),
        "{}",
        p.refused[&published.seq].reason
    );
    // Its deploy: the version is not there.
    let deployed = append(&mut p, &mut log, deploy(manifest("2.0.0", u32::MAX)));
    assert!(
        p.refused[&deployed.seq].reason.contains("not published"),
        "{}",
        p.refused[&deployed.seq].reason
    );
    assert_eq!(models(&p), before);
    assert_eq!(p.refused_total, 2);
    assert_eq!(p.head.next_seq, deployed.seq + 1);
}

#[test]
fn the_engine_starts_on_a_log_that_holds_one_and_appends_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.redb");
    let (mut p, mut log) = fleet();
    let bad = append(&mut p, &mut log, deploy(manifest("1.0.0", u32::MAX)));
    {
        let redb = RedbLog::open(&path, 1 << 20).unwrap();
        let events: Vec<Arc<Event>> = log.iter().cloned().map(Arc::new).collect();
        redb.append(&events).unwrap();
    }
    let redb: Arc<dyn EventLog> = Arc::new(RedbLog::open(&path, 1 << 20).unwrap());
    let engine = crate::engine::Engine::start(redb.clone()).unwrap();
    {
        let state = engine.read();
        assert_eq!(models(&state), models(&fleet().0));
        assert_eq!(state.refused[&bad.seq].kind, "instance.deployed");
        assert_eq!(state.head.next_seq, bad.seq + 1);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let events = rt
        .block_on(engine.submit(
            Actor::Cloud,
            crate::command::Command::CreateEnvironment {
                name: "lab".into(),
                labels: BTreeMap::new(),
                entries: Vec::new(),
            },
        ))
        .unwrap();
    assert_eq!(events[0].seq, bad.seq + 1);
    assert_eq!(events[0].prev_hash, bad.hash);
    engine.close();
    let walked = walk(redb.as_ref(), |_| {}).unwrap();
    assert_eq!(walked.events, bad.seq + 1);
}
