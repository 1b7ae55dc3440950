//! Property tests of the planner: from any starting actual state, the simulated rounds
//! converge; no component acts before its dependencies are ready; the end state is exactly
//! what is desired, and plans nothing more.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use proptest::prelude::*;
use skerry_shared::event::{InstanceMode, InstanceSpec, NodeTarget};
use skerry_shared::hash::Digest;
use skerry_shared::ids::{Labels, Name, NodeId};
use skerry_shared::manifest::{Component, ComponentKind, Health, Manifest};
use skerry_shared::planner::{
    Action, ActualReplica, ActualState, FailedInit, Phase, ReplicaKey, plan, simulate, spec_hash,
};
use skerry_shared::reducer::{DesiredInstance, NodeDesired};

fn n(s: &str) -> Name {
    Name::parse(s).unwrap()
}

fn me() -> NodeId {
    NodeId(uuid::Uuid::from_u128(1))
}

/// A generated component: its kind, whether it has a health check, its replicas, and
/// which earlier components (by bit) it depends on.
#[derive(Debug, Clone)]
struct Gen {
    kind: ComponentKind,
    health: bool,
    replicas: u32,
    deps: u8,
}

fn gen_component() -> impl Strategy<Value = Gen> {
    (
        prop_oneof![
            3 => Just(ComponentKind::Service),
            2 => Just(ComponentKind::Init),
            1 => Just(ComponentKind::Job),
        ],
        any::<bool>(),
        1..=3u32,
        any::<u8>(),
    )
        .prop_map(|(kind, health, replicas, deps)| Gen {
            kind,
            health,
            replicas,
            deps,
        })
}

/// A DAG manifest: component `i` may depend only on components before it in generation
/// order, then the list is shuffled so the planner has to sort it.
fn gen_manifest() -> impl Strategy<Value = Manifest> {
    proptest::collection::vec(gen_component(), 1..=6)
        .prop_map(|gens| {
            gens.iter()
                .enumerate()
                .map(|(i, g)| Component {
                    kind: g.kind,
                    depends_on: (0..i)
                        .filter(|j| g.deps & (1 << j) != 0)
                        .map(|j| n(&format!("c{j}")))
                        .collect(),
                    replicas: (g.kind == ComponentKind::Service).then_some(g.replicas),
                    health: (g.health && g.kind == ComponentKind::Service).then(|| Health {
                        command: vec!["true".into()],
                        interval: None,
                        timeout: None,
                        retries: None,
                    }),
                    schedule: (g.kind == ComponentKind::Job).then(|| "*/5 * * * *".into()),
                    ..Component::image(n(&format!("c{i}")), "busybox:1")
                })
                .collect::<Vec<_>>()
        })
        .prop_shuffle()
        .prop_map(|components| Manifest {
            app: n("app"),
            version: "1.0.0".parse().unwrap(),
            description: None,
            platforms: None,
            components,
        })
}

fn spec(name: &str, manifest: Manifest) -> InstanceSpec {
    InstanceSpec {
        name: n(name),
        env: n("prod"),
        app: n("app"),
        version: manifest.version.clone(),
        manifest,
        nodes: vec![NodeTarget {
            node: me(),
            weight: 1,
        }],
        unschedulable: vec![],
        selector: Labels::new(),
        overrides: vec![],
        mode: InstanceMode::Production,
        targeting: skerry_shared::event::Targeting::Named,
        lifecycle: Default::default(),
    }
}

fn desired(manifests: Vec<(Manifest, u64)>) -> NodeDesired {
    let mut d = NodeDesired::new(me());
    for (i, (m, deployed_at)) in manifests.into_iter().enumerate() {
        let s = spec(&format!("i{i}"), m);
        d.instances.insert(
            s.name.clone(),
            DesiredInstance {
                spec: s,
                deployed_at,
            },
        );
    }
    d
}

const STALE: Digest = Digest([0xee; 32]);

/// Builds a starting actual state from random choices: replicas present with the current
/// hash (in a ready phase), with a stale hash (any phase), at extra indices, of leftover
/// instances; networks; init results current, stale, or failed for an older deploy.
fn actual_from(d: &NodeDesired, choices: &[u8]) -> ActualState {
    let mut it = choices.iter().copied().cycle();
    let mut next = move || it.next().unwrap_or(0);
    let phase_any = |c: u8| match c % 5 {
        0 => Phase::Starting,
        1 => Phase::Running,
        2 => Phase::Healthy,
        3 => Phase::Unhealthy,
        _ => Phase::Exited { code: i64::from(c) },
    };
    let mut a = ActualState::default();
    for (name, inst) in &d.instances {
        if next() % 2 == 0 {
            a.networks.insert(name.clone());
        }
        for c in &inst.spec.manifest.components {
            let hash = spec_hash(&inst.spec, c);
            let wanted = match c.kind {
                ComponentKind::Service => c.replicas(),
                _ => 1,
            };
            for i in 0..wanted + 1 {
                let key = ReplicaKey::new(name, &c.name, i);
                let pick = next();
                let replica = match (c.kind, pick % 4) {
                    (_, 0) => None,
                    (_, 1) => Some((STALE, phase_any(next()))),
                    (ComponentKind::Service, _) if i < wanted => Some((
                        hash,
                        if c.health.is_some() || pick % 2 == 0 {
                            Phase::Healthy
                        } else {
                            Phase::Running
                        },
                    )),
                    (ComponentKind::Service, _) => Some((hash, phase_any(next()))),
                    (ComponentKind::Job, _) if i == 0 => Some((hash, phase_any(next()))),
                    (ComponentKind::Init, _) if i == 0 => {
                        // An exited init whose success is recorded.
                        a.inits_succeeded
                            .insert((name.clone(), c.name.clone(), hash));
                        Some((hash, Phase::Exited { code: 0 }))
                    }
                    _ => Some((STALE, phase_any(next()))),
                };
                if let Some((spec_hash, phase)) = replica {
                    a.insert(ActualReplica {
                        key,
                        spec_hash,
                        phase,
                    });
                }
            }
            if c.kind == ComponentKind::Init {
                match next() % 4 {
                    0 => {
                        a.inits_succeeded
                            .insert((name.clone(), c.name.clone(), hash));
                    }
                    1 => {
                        a.inits_succeeded
                            .insert((name.clone(), c.name.clone(), STALE));
                    }
                    2 => {
                        a.inits_failed.insert(
                            (name.clone(), c.name.clone()),
                            FailedInit {
                                spec_hash: hash,
                                deployed_at: inst.deployed_at - 1,
                                code: 1,
                            },
                        );
                    }
                    _ => {}
                }
            }
        }
    }
    // Leftovers of an instance no longer desired.
    if next() % 2 == 0 {
        let old = n("old");
        a.networks.insert(old.clone());
        for i in 0..(next() % 3) {
            a.insert(ActualReplica {
                key: ReplicaKey::new(&old, &n("c0"), u32::from(i)),
                spec_hash: STALE,
                phase: phase_any(next()),
            });
        }
    }
    a
}

/// The test's own readiness rule, written from the contract rather than the planner.
fn ready(inst: &InstanceSpec, dep: &Component, a: &ActualState) -> bool {
    let hash = spec_hash(inst, dep);
    match dep.kind {
        ComponentKind::Job => true,
        ComponentKind::Init => {
            a.inits_succeeded
                .contains(&(inst.name.clone(), dep.name.clone(), hash))
        }
        ComponentKind::Service => (0..dep.replicas()).all(|i| {
            a.replicas
                .get(&ReplicaKey::new(&inst.name, &dep.name, i))
                .is_some_and(|r| {
                    r.spec_hash == hash
                        && (r.phase == Phase::Healthy
                            || (r.phase == Phase::Running && dep.health.is_none()))
                })
        }),
    }
}

/// The test's own "as if it succeeded".
fn apply(d: &NodeDesired, a: &mut ActualState, action: &Action) {
    match action {
        Action::CreateNetwork { instance } => {
            a.networks.insert(instance.clone());
        }
        Action::RemoveNetwork { instance } => {
            a.networks.remove(instance);
        }
        Action::RunInit { key, spec_hash, .. } => {
            a.inits_succeeded
                .insert((key.instance.clone(), key.component.clone(), *spec_hash));
        }
        Action::Start { key, spec_hash } => {
            let c = d.instances[&key.instance]
                .spec
                .manifest
                .component(key.component.as_str())
                .unwrap();
            a.insert(ActualReplica {
                key: key.clone(),
                spec_hash: *spec_hash,
                phase: if c.health.is_some() {
                    Phase::Healthy
                } else {
                    Phase::Running
                },
            });
        }
        Action::Stop { key, .. } => {
            a.replicas.remove(key);
        }
    }
}

fn scenario() -> impl Strategy<Value = (NodeDesired, ActualState)> {
    (
        proptest::collection::vec((gen_manifest(), 2..100u64), 0..=3),
        proptest::collection::vec(any::<u8>(), 1..64),
    )
        .prop_map(|(manifests, choices)| {
            let d = desired(manifests);
            let a = actual_from(&d, &choices);
            (d, a)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn simulation_converges_to_exactly_the_desired_state((d, start) in scenario()) {
        let sim = simulate(&d, &start).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let components: usize =
            d.instances.values().map(|i| i.spec.manifest.components.len()).sum();
        prop_assert!(sim.rounds.len() <= components + 4, "{} rounds", sim.rounds.len());
        prop_assert!(plan(&d, &sim.end).is_empty());

        // Replay the rounds with the test's own rules.
        let mut a = start.clone();
        for round in &sim.rounds {
            prop_assert!(!round.is_empty());
            prop_assert_eq!(round, &plan(&d, &a), "plan is deterministic");
            for action in round {
                let key = match action {
                    Action::Start { key, .. } | Action::RunInit { key, .. } => key,
                    _ => continue,
                };
                let inst = &d.instances[&key.instance].spec;
                let c = inst.manifest.component(key.component.as_str()).unwrap();
                prop_assert!(a.networks.contains(&key.instance), "{} before its network", action);
                prop_assert!(c.kind != ComponentKind::Job, "the planner started a job");
                for dep in &c.depends_on {
                    let dc = inst.manifest.component(dep.as_str()).unwrap();
                    prop_assert!(ready(inst, dc, &a), "{} while {} was not ready", action, dep);
                }
            }
            for action in round {
                apply(&d, &mut a, action);
            }
        }
        prop_assert_eq!(&a, &sim.end);

        // Exactly one replica per desired (service, index) with the desired hash; job
        // runs of the current spec may remain; nothing else.
        let mut expected = BTreeSet::new();
        for (name, inst) in &d.instances {
            for c in &inst.spec.manifest.components {
                let hash = spec_hash(&inst.spec, c);
                match c.kind {
                    ComponentKind::Service => {
                        for i in 0..c.replicas() {
                            expected.insert((ReplicaKey::new(name, &c.name, i), hash));
                        }
                    }
                    ComponentKind::Init => {
                        prop_assert!(a.inits_succeeded.contains(&(name.clone(), c.name.clone(), hash)));
                    }
                    ComponentKind::Job => {}
                }
            }
        }
        let found: BTreeSet<(ReplicaKey, Digest)> = a
            .replicas
            .values()
            .filter(|r| {
                let kind = d.instances.get(&r.key.instance)
                    .and_then(|i| i.spec.manifest.component(r.key.component.as_str()))
                    .map(|c| c.kind);
                kind != Some(ComponentKind::Job)
            })
            .map(|r| (r.key.clone(), r.spec_hash))
            .collect();
        prop_assert_eq!(found, expected);
        for r in a.replicas.values() {
            let inst = &d.instances[&r.key.instance].spec;
            let c = inst.manifest.component(r.key.component.as_str()).unwrap();
            prop_assert_eq!(r.spec_hash, spec_hash(inst, c));
        }
        let nets: BTreeSet<Name> = d.instances.keys().cloned().collect();
        prop_assert_eq!(&a.networks, &nets);
    }

    #[test]
    fn a_failed_init_blocks_only_its_dependents((d, start) in scenario(), pick in any::<prop::sample::Index>()) {
        // Fail one init for the current deploy; its dependents never start, the rest converge.
        let inits: Vec<(Name, Component, u64)> = d.instances.iter()
            .flat_map(|(name, i)| i.spec.manifest.components.iter()
                .filter(|c| c.kind == ComponentKind::Init)
                .map(move |c| (name.clone(), c.clone(), i.deployed_at)))
            .collect();
        prop_assume!(!inits.is_empty());
        let (inst_name, init, deployed_at) = inits[pick.index(inits.len())].clone();
        let inst = d.instances[&inst_name].spec.clone();
        let hash = spec_hash(&inst, &init);
        let mut a = start;
        a.inits_succeeded.remove(&(inst_name.clone(), init.name.clone(), hash));
        a.inits_failed.insert(
            (inst_name.clone(), init.name.clone()),
            FailedInit { spec_hash: hash, deployed_at, code: 2 },
        );
        let sim = simulate(&d, &a).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(plan(&d, &sim.end).is_empty());
        let acted = |name: &Name| sim.rounds.iter().flatten().any(|act| matches!(act,
            Action::Start { key, .. } | Action::RunInit { key, .. }
                if key.instance == inst_name && key.component == *name));
        prop_assert!(!acted(&init.name), "the failed init ran again");
        for c in &inst.manifest.components {
            if c.depends_on.contains(&init.name) {
                prop_assert!(!acted(&c.name), "{} started behind a failed init", c.name);
            }
        }
    }
}
