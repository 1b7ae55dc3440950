//! The planner's rounds: deploys, upgrades and rollbacks, failed and exited inits,
//! undeploys, `exec`-only instances, cycles and spec hashes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::event::InstanceSpec;
use crate::event::{InstanceMode, NodeTarget};
use crate::ids::Name;
use crate::ids::NodeId;
use crate::manifest::{Component, ComponentKind, Manifest};
use crate::manifest::{EnvValue, Health};
use crate::reducer::{DesiredInstance, NodeDesired};

fn n(s: &str) -> Name {
    Name::parse(s).unwrap()
}

fn comp(name: &str, kind: ComponentKind, deps: &[&str]) -> Component {
    Component {
        kind,
        depends_on: deps.iter().map(|d| n(d)).collect(),
        ..Component::image(n(name), "weather-db:1")
    }
}

fn node() -> NodeId {
    NodeId(uuid::Uuid::from_u128(1))
}

fn weather(version: &str) -> InstanceSpec {
    let mut db = comp("db", ComponentKind::Service, &["migrate"]);
    db.health = Some(Health {
        command: vec!["true".into()],
        interval: None,
        timeout: None,
        retries: None,
    });
    db.env.insert("TZ".into(), EnvValue("UTC".into()));
    let mut api = comp("api", ComponentKind::Service, &["db", "cleanup"]);
    api.replicas = Some(2);
    let manifest = Manifest {
        app: n("weather"),
        version: version.parse().unwrap(),
        description: None,
        platforms: None,
        components: vec![
            api,
            comp("cleanup", ComponentKind::Job, &[]),
            db,
            comp("migrate", ComponentKind::Init, &[]),
        ],
    };
    InstanceSpec {
        name: n("weather"),
        env: n("prod"),
        app: n("weather"),
        version: manifest.version.clone(),
        manifest,
        nodes: vec![NodeTarget {
            node: node(),
            weight: 1,
        }],
        unschedulable: vec![],
        selector: Default::default(),
        overrides: vec![],
        mode: InstanceMode::Production,
        targeting: crate::event::Targeting::Named,
        lifecycle: Default::default(),
    }
}

fn desired(spec: InstanceSpec, deployed_at: u64) -> NodeDesired {
    let mut d = NodeDesired::new(node());
    d.instances
        .insert(spec.name.clone(), DesiredInstance { spec, deployed_at });
    d
}

fn lines(sim: &Simulation) -> Vec<String> {
    sim.rounds
        .iter()
        .map(|r| {
            r.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })
        .collect()
}

#[test]
fn fresh_deploy_goes_in_dependency_order() {
    let d = desired(weather("1.0.0"), 3);
    let sim = simulate(&d, &ActualState::default()).unwrap();
    assert_eq!(
        lines(&sim),
        vec![
            "create network weather",
            "run init weather/migrate",
            "start weather/db#0",
            "start weather/api#0; start weather/api#1",
        ]
    );
    assert!(plan(&d, &sim.end).is_empty());
    assert_eq!(sim.to_lines()[0], "round 1:");
}

#[test]
fn upgrade_replaces_and_rollback_skips_the_init() {
    let v1 = desired(weather("1.0.0"), 3);
    let s1 = simulate(&v1, &ActualState::default()).unwrap().end;
    let v2 = desired(weather("2.0.0"), 4);
    let sim = simulate(&v2, &s1).unwrap();
    assert_eq!(
        lines(&sim),
        vec![
            "stop weather/api#0 (replaced); stop weather/api#1 (replaced); \
             stop weather/db#0 (replaced); run init weather/migrate",
            "start weather/db#0",
            "start weather/api#0; start weather/api#1",
        ]
    );
    let back = desired(weather("1.0.0"), 5);
    let sim = simulate(&back, &sim.end).unwrap();
    assert!(
        !lines(&sim).iter().any(|l| l.contains("run init")),
        "{:?}",
        lines(&sim)
    );
}

#[test]
fn failed_init_blocks_until_a_later_deploy() {
    let d = desired(weather("1.0.0"), 3);
    let mut a = ActualState::default();
    a.networks.insert(n("weather"));
    let spec = &d.instances[&n("weather")].spec;
    let hash = spec_hash(spec, spec.manifest.component("migrate").unwrap());
    a.inits_failed.insert(
        (n("weather"), n("migrate")),
        FailedInit {
            spec_hash: hash,
            deployed_at: 3,
            code: 1,
        },
    );
    assert!(plan(&d, &a).is_empty());
    let db = spec.manifest.component("db").unwrap();
    assert_eq!(waiting_on(spec, db, &a), vec![n("migrate")]);
    let again = desired(weather("1.0.0"), 9);
    assert_eq!(
        plan(&again, &a)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec!["run init weather/migrate"]
    );
}

#[test]
fn exited_init_is_cleaned_once_recorded_and_unhealthy_blocks() {
    let d = desired(weather("1.0.0"), 3);
    let spec = &d.instances[&n("weather")].spec;
    let mig = spec.manifest.component("migrate").unwrap();
    let db = spec.manifest.component("db").unwrap();
    let mut a = ActualState::default();
    a.networks.insert(n("weather"));
    let key = ReplicaKey::new(&n("weather"), &n("migrate"), 0);
    a.insert(ActualReplica {
        key: key.clone(),
        spec_hash: spec_hash(spec, mig),
        phase: Phase::Exited { code: 0 },
    });
    // Not recorded yet: wait.
    assert!(plan(&d, &a).is_empty());
    a.inits_succeeded
        .insert((n("weather"), n("migrate"), spec_hash(spec, mig)));
    let p = plan(&d, &a);
    assert_eq!(
        p[0],
        Action::Stop {
            key,
            reason: StopReason::Completed
        }
    );
    assert_eq!(p[1].to_string(), "start weather/db#0");
    let mut a = simulate(&d, &a).unwrap().end;
    let db0 = ReplicaKey::new(&n("weather"), &n("db"), 0);
    if let Some(r) = a.replicas.get_mut(&db0) {
        r.phase = Phase::Unhealthy;
    }
    assert!(!component_ready(spec, db, &a));
    a.replicas
        .remove(&ReplicaKey::new(&n("weather"), &n("api"), 1));
    assert!(plan(&d, &a).is_empty(), "api waits for a healthy db");
}

#[test]
fn undeploy_stops_then_removes_the_network() {
    let d = desired(weather("1.0.0"), 3);
    let a = simulate(&d, &ActualState::default()).unwrap().end;
    let empty = NodeDesired::new(node());
    let sim = simulate(&empty, &a).unwrap();
    assert_eq!(sim.rounds.len(), 2);
    assert!(sim.rounds[0].iter().all(|a| matches!(
        a,
        Action::Stop {
            reason: StopReason::Undeployed,
            ..
        }
    )));
    assert_eq!(lines(&sim)[1], "remove network weather");
    assert!(sim.end.replicas.is_empty() && sim.end.networks.is_empty());
}

#[test]
fn exec_only_instances_get_no_network_and_mixed_ones_do() {
    let exec = |name: &str, kind, deps: &[&str]| Component {
        image: None,
        exec: Some(vec!["/bin/sleep".into(), "60".into()]),
        ..comp(name, kind, deps)
    };
    let mut spec = weather("1.0.0");
    spec.manifest.components = vec![
        exec("prep", ComponentKind::Init, &[]),
        exec("reader", ComponentKind::Service, &["prep"]),
        exec("sweep", ComponentKind::Job, &[]),
    ];
    assert!(!needs_network(&spec));
    let d = desired(spec.clone(), 1);
    let sim = simulate(&d, &ActualState::default()).unwrap();
    assert_eq!(
        lines(&sim),
        vec!["run init weather/prep", "start weather/reader#0"]
    );
    assert!(sim.end.networks.is_empty());

    spec.manifest
        .components
        .push(comp("db", ComponentKind::Service, &["prep"]));
    assert!(needs_network(&spec));
    let sim = simulate(&desired(spec, 1), &ActualState::default()).unwrap();
    assert_eq!(
        lines(&sim),
        vec![
            "create network weather",
            "run init weather/prep",
            "start weather/reader#0; start weather/db#0",
        ]
    );
}

#[test]
fn cycles_do_not_loop() {
    let mut spec = weather("1.0.0");
    spec.manifest.components = vec![
        comp("a", ComponentKind::Service, &["b"]),
        comp("b", ComponentKind::Service, &["a"]),
        comp("c", ComponentKind::Service, &["nope"]),
    ];
    let d = desired(spec, 1);
    let sim = simulate(&d, &ActualState::default()).unwrap();
    assert_eq!(lines(&sim), vec!["create network weather"]);
}

#[test]
fn spec_hash_follows_overrides_and_version() {
    let a = weather("1.0.0");
    let db = a.manifest.component("db").unwrap().clone();
    let mut b = a.clone();
    b.overrides.push(crate::event::EnvOverride {
        component: n("db"),
        var: "TZ".into(),
        value: "CET".into(),
    });
    assert_ne!(spec_hash(&a, &db), spec_hash(&b, &db));
    let api = a.manifest.component("api").unwrap();
    assert_eq!(spec_hash(&a, api), spec_hash(&b, api));
    let mut c = a.clone();
    c.version = "1.0.1".parse().unwrap();
    assert_ne!(spec_hash(&a, &db), spec_hash(&c, &db));
}

#[test]
fn a_stopped_instance_stops_its_replicas_keeps_its_network_and_starts_without_its_init() {
    let running = desired(weather("1.0.0"), 3);
    let s1 = simulate(&running, &ActualState::default()).unwrap().end;
    let stopped = desired(weather("1.0.0").with_stopped(true), 4);
    let sim = simulate(&stopped, &s1).unwrap();
    assert_eq!(
        lines(&sim),
        vec![
            "stop weather/api#0 (stopped); stop weather/api#1 (stopped); \
             stop weather/db#0 (stopped)"
        ]
    );
    assert!(sim.end.networks.contains(&n("weather")));
    assert!(sim.end.replicas.is_empty());
    // Started again: the same spec hashes, so the init that succeeded does not run again.
    let started = desired(weather("1.0.0"), 5);
    let sim = simulate(&started, &sim.end).unwrap();
    assert_eq!(
        lines(&sim),
        vec![
            "start weather/db#0",
            "start weather/api#0; start weather/api#1"
        ]
    );
}

#[test]
fn a_restart_generation_replaces_only_its_component() {
    let a = weather("1.0.0");
    let d1 = desired(a.clone(), 3);
    let s1 = simulate(&d1, &ActualState::default()).unwrap().end;
    let mut b = a.clone();
    b.lifecycle.restarts.insert(n("db"), 1);
    let db = a.manifest.component("db").unwrap();
    let api = a.manifest.component("api").unwrap();
    assert_ne!(spec_hash(&a, db), spec_hash(&b, db));
    assert_eq!(spec_hash(&a, api), spec_hash(&b, api));
    // Whether it is stopped is not in the hash.
    assert_eq!(spec_hash(&a, db), spec_hash(&a.with_stopped(true), db));
    let sim = simulate(&desired(b, 4), &s1).unwrap();
    assert_eq!(
        lines(&sim),
        vec!["stop weather/db#0 (replaced)", "start weather/db#0"]
    );
}
