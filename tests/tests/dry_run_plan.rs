//! `deploy --dry-run` plans exactly what a real deploy then does: a real `skerry serve`,
//! a real `skerry-edge run` with both runtimes (the Docker engine and native processes),
//! and three app shapes: `exec` components only, containers (init, service, job), and a
//! mix. For each, the dry run's rounds are compared with what the agent did (its log of
//! networks created and replicas started, in order) and with what exists afterwards (the
//! engine's networks, the cloud's status rows).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use skerry_tests::fault::Plant;
use skerry_tests::{cli, wait_for};

const CONVERGE: Duration = Duration::from_secs(60);

/// One thing a node does, as both sides can name it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Done {
    /// An instance network was created.
    Network,
    /// A replica (`component#index`) was started (an init run or a service replica).
    Started(String),
}

/// The dry run's line (`create network X`, `run init X/c`, `start X/c#0`) as a [`Done`].
fn planned(instance: &str, line: &str) -> Done {
    if line == format!("create network {instance}") {
        return Done::Network;
    }
    if let Some(c) = line.strip_prefix(&format!("run init {instance}/")) {
        return Done::Started(format!("{c}#0"));
    }
    if let Some(r) = line.strip_prefix(&format!("start {instance}/")) {
        return Done::Started(r.to_owned());
    }
    panic!("unexpected dry-run action: {line}");
}

/// What the agent's log says it did for `instance`, in order, after `from` bytes of it.
fn performed(log: &str, instance: &str) -> Vec<Done> {
    let network_suffix = format!(".{instance}");
    let replica_prefix = format!("replica={instance}/");
    log.lines()
        .filter_map(|l| {
            if l.contains("created the instance network") {
                let net = l.split("network=").nth(1)?.split_whitespace().next()?;
                return net.ends_with(&network_suffix).then_some(Done::Network);
            }
            if l.contains(" started ") || l.contains(": started") {
                let r = l.split(&replica_prefix).nth(1)?.split_whitespace().next()?;
                return Some(Done::Started(r.to_owned()));
            }
            None
        })
        .collect()
}

/// The engine's networks of `instance` on `node`.
fn networks(node: &str, instance: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(["network", "ls", "--format", "{{.Name}}", "--filter"])
        .arg(format!("label=io.skerry.node={node}"))
        .arg("--filter")
        .arg(format!("label=io.skerry.instance={instance}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn status_rows(plant: &Plant, instance: &str) -> Vec<Value> {
    let out = cli(&plant.cloud, &["status", instance, "-o", "json"]);
    assert_eq!(out.code, 0, "{out}");
    out.json().unwrap()["status"].as_array().unwrap().clone()
}

/// Publishes `manifest`, asks for the dry run, deploys, waits until every started replica
/// is up (or an init succeeded), and compares.
fn dry_run_matches_the_deploy(plant: &Plant, dir: &Path, instance: &str, manifest: &str) {
    let file = dir.join(format!("{instance}.yaml"));
    std::fs::write(&file, manifest).unwrap();
    let out = cli(
        &plant.cloud,
        &["app", "publish", "-f", file.to_str().unwrap()],
    );
    assert_eq!(out.code, 0, "{out}");
    let app = format!("{instance}@1.0.0");
    let deploy = [
        "deploy", &app, "--env", "plant", "--name", instance, "--node", "gw-1",
    ];
    let mut dry = deploy.to_vec();
    dry.extend(["--dry-run", "-o", "json"]);
    let out = cli(&plant.cloud, &dry);
    assert_eq!(out.code, 0, "{out}");
    let plan = out.json().unwrap();
    let rounds: Vec<Vec<Done>> = plan["plan"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|round| {
            round
                .as_array()
                .unwrap()
                .iter()
                .map(|a| planned(instance, a.as_str().unwrap()))
                .collect()
        })
        .collect();
    println!("{instance}: dry run {rounds:?}");

    let out = cli(&plant.cloud, &deploy);
    assert_eq!(out.code, 0, "{out}");
    let expected: BTreeSet<Done> = rounds.iter().flatten().cloned().collect();
    let wanted_started = expected
        .iter()
        .filter(|d| matches!(d, Done::Started(_)))
        .count();
    // Settled: every replica the plan starts has run (an init to success, a service up).
    let rows = wait_for(CONVERGE, || {
        let rows = status_rows(plant, instance);
        let up = rows
            .iter()
            .filter(|r| {
                matches!(
                    r["state"].as_str(),
                    Some("Running" | "Healthy" | "Succeeded")
                )
            })
            .count();
        (up == wanted_started).then_some(rows)
    })
    .unwrap_or_else(|| {
        panic!(
            "{instance} did not settle: {:?}\n{}",
            status_rows(plant, instance),
            plant.agent.logs()
        )
    });

    // What the agent did is what was planned: the same actions, none more.
    let done = performed(&plant.agent.logs(), instance);
    let done_set: BTreeSet<Done> = done.iter().cloned().collect();
    assert_eq!(done_set, expected, "{instance}: performed {done:?}");
    assert_eq!(done.len(), expected.len(), "{instance}: performed {done:?}");
    // In the plan's order: everything of a round before anything of a later round.
    let round_of = |d: &Done| rounds.iter().position(|r| r.contains(d)).unwrap();
    for pair in done.windows(2) {
        assert!(
            round_of(&pair[0]) <= round_of(&pair[1]),
            "{instance}: performed {done:?}, planned {rounds:?}"
        );
    }
    // And what exists is what the plan ends with.
    let nets = networks(&plant.node, instance);
    assert_eq!(
        nets.len(),
        usize::from(expected.contains(&Done::Network)),
        "{instance}: networks {nets:?}, planned {rounds:?}"
    );
    let replicas: BTreeSet<Done> = rows
        .iter()
        .filter(|r| r["state"] != "Pending")
        .map(|r| {
            Done::Started(format!(
                "{}#{}",
                r["component"].as_str().unwrap(),
                r["replica"]
            ))
        })
        .collect();
    let started: BTreeSet<Done> = expected
        .iter()
        .filter(|d| matches!(d, Done::Started(_)))
        .cloned()
        .collect();
    assert_eq!(replicas, started, "{instance}: status {rows:?}");
    let out = cli(&plant.cloud, &["undeploy", instance]);
    assert_eq!(out.code, 0, "{out}");
}

#[test]
fn dry_run_plans_what_the_agent_then_does() {
    let plant = Plant::start().unwrap();
    let dir = plant.agent.dir().join("apps");
    std::fs::create_dir_all(&dir).unwrap();
    let image = &plant.image;
    // A job's schedule that does not come during the test: the scheduler's business, and
    // not in the plan.
    let never = "0 0 1 1 *";

    // exec components only: no network, the init first, then the service.
    let exec_only = format!(
        r#"app: native
version: 1.0.0
components:
  - name: prep
    kind: init
    exec: ["/bin/sh", "-c", "exit 0"]
  - name: reader
    exec: ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
    depends_on: [prep]
    replicas: 2
  - name: sweep
    kind: job
    schedule: "{never}"
    exec: ["/bin/true"]
"#
    );
    dry_run_matches_the_deploy(&plant, &dir, "native", &exec_only);

    // Containers: a network, the init, the service, no job run.
    let containers = format!(
        r#"app: boxed
version: 1.0.0
components:
  - name: migrate
    kind: init
    image: {image}
    command: ["sh", "-c", "exit 0"]
  - name: web
    image: {image}
    command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
    depends_on: [migrate]
  - name: sweep
    kind: job
    schedule: "{never}"
    image: {image}
    command: ["true"]
"#
    );
    dry_run_matches_the_deploy(&plant, &dir, "boxed", &containers);

    // Mixed: a container in the app, so a network, and the exec components behind it.
    let mixed = format!(
        r#"app: mixed
version: 1.0.0
components:
  - name: prep
    kind: init
    exec: ["/bin/sh", "-c", "exit 0"]
  - name: web
    image: {image}
    command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
    depends_on: [prep]
  - name: reader
    exec: ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
    depends_on: [web]
"#
    );
    dry_run_matches_the_deploy(&plant, &dir, "mixed", &mixed);
}
