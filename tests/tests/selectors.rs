//! Selectors that follow labels, with real parts: a real `skerry serve`, three real
//! `skerry-edge run` agents on this host with different labels (two in environment
//! `plant`, one in `yard`), and real containers on the Docker engine from an image built
//! here `FROM scratch` with busybox.
//!
//! - a `--selector zone=north` deploy reaches exactly the matching nodes of its
//!   environment (not a matching node of another environment);
//! - a node labelled later gets it; a node whose label is removed loses it: its container
//!   goes, its named storage (the Docker volume) stays;
//! - a deploy with neither `--node` nor `--selector` reaches a node that joins the
//!   environment later, and so does the selector deploy when that node matches;
//! - a deploy with `--node` and `--selector` keeps its named node when its label goes;
//! - `skerry events --instance I` shows the `instance.nodes-changed` events, each naming
//!   the node and the reason.
//!
//! The time from the label (or join) command to the replica `Running` is printed (see it
//! with `--nocapture`), as a figure, not asserted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::Value;
use skerry_tests::agent::Agent;
use skerry_tests::cli::publish;
use skerry_tests::images::busybox_image;
use skerry_tests::{Cloud, cli, wait_for};

const CONVERGE: Duration = Duration::from_secs(60);

/// `beacon@1.0.0`: one container that writes to its named storage and sleeps (and stops
/// at once on SIGTERM, so that a removal takes no stop grace).
fn beacon(image: &str) -> String {
    format!(
        r#"app: beacon
version: 1.0.0
components:
  - name: web
    image: {image}
    command: ["sh", "-c", "date >> /data/starts; trap 'exit 0' TERM; sleep 3600 & wait"]
    storage: [ {{ name: data, container: /data }} ]
"#
    )
}

fn status(cloud: &Cloud, instance: &str) -> Vec<Value> {
    let out = cli(cloud, &["status", instance, "-o", "json"]);
    assert_eq!(out.code, 0, "{out}");
    out.json().unwrap()["status"].as_array().unwrap().clone()
}

/// The nodes on which `instance` has a replica `Running`, sorted.
fn running_on(cloud: &Cloud, instance: &str) -> Vec<String> {
    let mut nodes: Vec<String> = status(cloud, instance)
        .iter()
        .filter(|r| r["state"] == "Running")
        .filter_map(|r| r["node"].as_str().map(str::to_owned))
        .collect();
    nodes.sort();
    nodes.dedup();
    nodes
}

/// Waits until `instance` runs on exactly `nodes`; returns how long that took.
fn wait_running_on(cloud: &Cloud, agents: &[Agent], instance: &str, nodes: &[&str]) -> Duration {
    let t = Instant::now();
    let want: Vec<String> = nodes.iter().map(|s| (*s).to_owned()).collect();
    wait_for(CONVERGE, || {
        (running_on(cloud, instance) == want).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "{instance} never ran on exactly {nodes:?}: {:?}\n{}\n{}",
            status(cloud, instance),
            cli(cloud, &["events", "--instance", instance]),
            agents.iter().map(Agent::logs).collect::<String>()
        )
    });
    t.elapsed()
}

fn docker(args: &[&str]) -> String {
    let out = std::process::Command::new("docker")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "docker {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The node's containers of `instance`.
fn containers(node: &str, instance: &str) -> String {
    docker(&[
        "ps",
        "--all",
        "--quiet",
        "--filter",
        &format!("label=io.skerry.node={node}"),
        "--filter",
        &format!("label=io.skerry.instance={instance}"),
    ])
}

/// The names of the node's volumes, one a line.
fn volumes(node: &str) -> String {
    docker(&[
        "volume",
        "ls",
        "--filter",
        &format!("label=io.skerry.node={node}"),
        "--format",
        "{{.Name}}",
    ])
}

fn ok(cloud: &Cloud, args: &[&str]) -> String {
    let out = cli(cloud, args);
    assert_eq!(out.code, 0, "{args:?}: {out}");
    out.stdout
}

/// The `instance.nodes-changed` summaries of `instance`, as `skerry events` shows them.
fn nodes_changed(cloud: &Cloud, instance: &str) -> Vec<String> {
    ok(cloud, &["events", "--instance", instance])
        .lines()
        .filter(|l| l.contains("instance.nodes-changed"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn selectors_follow_labels_and_memberships() {
    let image = busybox_image("1").unwrap();
    let cloud = Cloud::start().unwrap();
    ok(&cloud, &["env", "create", "plant"]);
    ok(&cloud, &["env", "create", "yard"]);
    let agents: Vec<Agent> = [
        ("gw-a", "plant", "zone=north"),
        ("gw-b", "plant", "zone=south"),
        ("gw-c", "yard", "zone=north"),
    ]
    .into_iter()
    .map(|(name, env, label)| {
        let agent = Agent::enroll(&cloud, env, name).unwrap();
        ok(&cloud, &["node", "label", name, label]);
        agent
    })
    .collect();
    let id = |i: usize| agents[i].node_id().unwrap();
    let (a, b, c) = (id(0), id(1), id(2));
    let dir = tempfile::tempdir().unwrap();
    publish(&cloud, dir.path(), "beacon", &beacon(&image)).unwrap();

    // A selector deploy: exactly the matching nodes of its environment (gw-c matches
    // but is in yard).
    let out = ok(
        &cloud,
        &[
            "deploy",
            "beacon@1.0.0",
            "--env",
            "plant",
            "--name",
            "north",
            "--selector",
            "zone=north",
        ],
    );
    assert!(out.contains("on 1 node(s): gw-a (weight 1)"), "{out}");
    // Neither --node nor --selector: every node of plant, now and later.
    let out = ok(
        &cloud,
        &[
            "deploy",
            "beacon@1.0.0",
            "--env",
            "plant",
            "--name",
            "every",
        ],
    );
    assert!(out.contains("on 2 node(s)"), "{out}");
    // Named nodes with a selector: each must match, and the set does not follow labels.
    let out = ok(
        &cloud,
        &[
            "deploy",
            "beacon@1.0.0",
            "--env",
            "plant",
            "--name",
            "pinned",
            "--node",
            "gw-a",
            "--selector",
            "zone=north",
        ],
    );
    assert!(out.contains("on 1 node(s): gw-a (weight 1)"), "{out}");
    wait_running_on(&cloud, &agents, "north", &["gw-a"]);
    wait_running_on(&cloud, &agents, "every", &["gw-a", "gw-b"]);
    wait_running_on(&cloud, &agents, "pinned", &["gw-a"]);
    assert!(containers(&b, "north").trim().is_empty());
    assert!(containers(&c, "north").trim().is_empty());

    // gw-b labelled zone=north: it gets the instance.
    let t = Instant::now();
    ok(&cloud, &["node", "label", "gw-b", "zone=north"]);
    wait_running_on(&cloud, &agents, "north", &["gw-a", "gw-b"]);
    println!(
        "selectors: node label -> replica Running on the newly matching node: {} ms",
        t.elapsed().as_millis()
    );

    // gw-a's label removed: it loses the instance; its container goes, its named storage
    // stays. "every" stays on it.
    let volume = format!("skerry-{}.north.data", &a[..8]);
    assert!(volumes(&a).lines().any(|v| v == volume), "{}", volumes(&a));
    let t = Instant::now();
    ok(&cloud, &["node", "label", "gw-a", "zone-"]);
    let gone = wait_for(CONVERGE, || {
        containers(&a, "north").trim().is_empty().then_some(())
    });
    assert!(
        gone.is_some(),
        "north's container stayed on gw-a\n{}",
        agents[0].logs()
    );
    println!(
        "selectors: label removed -> container gone from the node: {} ms",
        t.elapsed().as_millis()
    );
    wait_running_on(&cloud, &agents, "north", &["gw-b"]);
    assert!(
        volumes(&a).lines().any(|v| v == volume),
        "the named storage went with the instance: {}",
        volumes(&a)
    );
    assert!(!containers(&a, "every").trim().is_empty());

    // gw-c joins plant: "every" reaches it, and so does "north" (it is zone=north).
    let t = Instant::now();
    ok(&cloud, &["node", "join", "gw-c", "--env", "plant"]);
    wait_running_on(&cloud, &agents, "every", &["gw-a", "gw-b", "gw-c"]);
    println!(
        "selectors: node join -> replica Running on the joining node: {} ms",
        t.elapsed().as_millis()
    );
    wait_running_on(&cloud, &agents, "north", &["gw-b", "gw-c"]);

    // The log says why each node runs what it runs.
    let north = nodes_changed(&cloud, "north");
    let line = |node: &str, verb: &str, why: &str| {
        north.iter().any(|l| {
            l.contains(&format!("node {node} {verb} it ({why})")) && l.starts_with(char::is_numeric)
        })
    };
    assert!(
        line(&b, "runs", "its labels match the selector"),
        "{north:#?}"
    );
    assert!(
        line(&a, "leaves", "its labels no longer match the selector"),
        "{north:#?}"
    );
    assert!(line(&c, "runs", "it joined the environment"), "{north:#?}");
    assert_eq!(north.len(), 3, "one event per change: {north:#?}");
    for l in &north {
        assert!(l.contains(" cloud "), "recorded by the cloud: {l}");
    }
    let every = nodes_changed(&cloud, "every");
    assert_eq!(every.len(), 1, "{every:#?}");
    assert!(
        every[0].contains(&format!("node {c} runs it (it joined the environment)")),
        "{every:#?}"
    );
    // The named set stayed as it was: on gw-a, whose label went; not on gw-b or gw-c.
    assert_eq!(running_on(&cloud, "pinned"), ["gw-a"]);
    assert!(nodes_changed(&cloud, "pinned").is_empty());
    println!("{}", ok(&cloud, &["events", "--instance", "north"]));

    ok(&cloud, &["undeploy", "north"]);
    ok(&cloud, &["undeploy", "every"]);
    ok(&cloud, &["undeploy", "pinned"]);
}
