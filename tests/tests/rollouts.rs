//! Rollouts with real parts: a real `skerry serve`, three real `skerry-edge run` agents on
//! this host, and real containers on the Docker engine from an image built here `FROM
//! scratch` with busybox.
//!
//! The app `sensor` has an `init` that appends its version to `/data/inits` and a service
//! `web` that appends its version to `/data/ran` at every start, both in named storage, and
//! a health check. Version 3.0.0 never becomes healthy.
//!
//! - an upgrade to 3.0.0 stops after its first batch and rolls back: the nodes of later
//!   batches never ran 3.0.0, named storage is intact, and the rollback does not run 1.0.0's
//!   init again; a good upgrade to 2.0.0 completes batch by batch (each batch's duration is
//!   printed); `rollback` returns to 1.0.0 as a rollout of its own; `upgrade` without `--to`
//!   changes an override on every node through batches;
//! - the cloud killed with `kill -9` in the middle of a rollout is restarted: the rollout
//!   goes on and completes, and no batch starts twice;
//! - a node offline during a rollout is skipped and gets the outcome when it returns; a
//!   node that returns after a failed rollout never runs the new version;
//! - `stop` (on one node, then the whole instance) removes the replicas and keeps named
//!   storage, `status` says `Stopped`; an upgrade of the stopped instance changes its
//!   version and leaves it stopped; `start` finds the data; `restart` goes node by node,
//!   one component or all, the version kept.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::Value;
use skerry_tests::agent::Agent;
use skerry_tests::cli::publish;
use skerry_tests::images::busybox_image;
use skerry_tests::{Cloud, cli, wait_for};

/// How long a rollout of a few nodes may take here.
const ROLLOUT: Duration = Duration::from_secs(120);

fn sensor(image: &str, version: &str, healthy: bool) -> String {
    let ready = if healthy { "touch /tmp/ok; " } else { "" };
    format!(
        r#"app: sensor
version: {version}
components:
  - name: migrate
    kind: init
    image: {image}
    command: ["sh", "-c", "echo {version} >> /data/inits"]
    storage: [ {{ name: data, container: /data }} ]
  - name: web
    image: {image}
    depends_on: [migrate]
    command: ["sh", "-c", "echo {version} >> /data/ran; {ready}trap 'exit 0' TERM; sleep 3600 & wait"]
    env: {{ GREETING: hello }}
    storage: [ {{ name: data, container: /data }} ]
    health:
      command: ["test", "-f", "/tmp/ok"]
      interval: 1s
      timeout: 1s
      retries: 2
"#
    )
}

fn ok(cloud: &Cloud, args: &[&str]) -> String {
    let out = cli(cloud, args);
    assert_eq!(out.code, 0, "{args:?}: {out}");
    out.stdout
}

fn docker(args: &[&str]) -> String {
    let out = std::process::Command::new("docker")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "docker {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A file in `instance`'s named storage `data` on `node`, read through its volume.
fn storage_file(node: &str, instance: &str, file: &str, image: &str) -> String {
    let volume = format!("skerry-{}.{instance}.data", &node[..8]);
    let out = std::process::Command::new("docker")
        .args([
            "run",
            "--rm",
            "-v",
            &format!("{volume}:/data"),
            image,
            "cat",
            &format!("/data/{file}"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn rollout(cloud: &Cloud, instance: &str) -> Value {
    let out = cli(cloud, &["rollout", "status", instance, "-o", "json"]);
    assert_eq!(out.code, 0, "{out}");
    out.json().unwrap()
}

/// Waits until `instance`'s rollout `id` is in `state`; returns it.
fn wait_rollout(cloud: &Cloud, agents: &[Agent], instance: &str, id: u64, state: &str) -> Value {
    let mut last = Value::Null;
    wait_for(ROLLOUT, || {
        last = rollout(cloud, instance);
        (last["id"] == id && last["state"] == state).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "rollout {id} of {instance} never got {state}: {last:#}\n{}\n{}\n{}",
            cli(cloud, &["rollout", "status", instance]),
            cli(cloud, &["events", "--instance", instance]),
            agents.iter().map(Agent::logs).collect::<String>()
        )
    });
    last
}

/// Waits until every node's `web` replica is Healthy with the version given, by node name
/// (in node order).
fn wait_healthy(cloud: &Cloud, instance: &str, want: &[(&str, &str)]) {
    let want: Vec<(&str, &str, &str)> = want.iter().map(|(n, v)| (*n, *v, "Healthy")).collect();
    wait_web(cloud, instance, &want);
}

/// Three agents in environment `plant`, named so that their rollout order is a, b, c.
fn fleet(cloud: &Cloud) -> Vec<Agent> {
    ok(cloud, &["env", "create", "plant"]);
    ["gw-a", "gw-b", "gw-c"]
        .into_iter()
        .map(|name| Agent::enroll(cloud, "plant", name).unwrap())
        .collect()
}

/// Publishes sensor 1.0.0, 2.0.0 and 3.0.0 (unhealthy), deploys 1.0.0 as `s1` on every
/// node of `plant` and waits until it is Healthy on gw-a, gw-b and gw-c.
fn setup(cloud: &Cloud, image: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    publish(cloud, dir.path(), "sensor", &sensor(image, "1.0.0", true)).unwrap();
    publish(cloud, dir.path(), "sensor-2", &sensor(image, "2.0.0", true)).unwrap();
    publish(
        cloud,
        dir.path(),
        "sensor-3",
        &sensor(image, "3.0.0", false),
    )
    .unwrap();
    ok(
        cloud,
        &["deploy", "sensor@1.0.0", "--env", "plant", "--name", "s1"],
    );
    wait_healthy(
        cloud,
        "s1",
        &[("gw-a", "1.0.0"), ("gw-b", "1.0.0"), ("gw-c", "1.0.0")],
    );
    dir
}

/// How many events the cloud has recorded.
fn event_count(cloud: &Cloud) -> usize {
    let out = cli(cloud, &["events", "-o", "json", "--limit", "1000"]);
    assert_eq!(out.code, 0, "{out}");
    out.json().unwrap().as_array().unwrap().len()
}

fn durations(r: &Value) -> String {
    r["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            format!(
                "batch {} ({} node(s)): {:.1}s",
                b["batch"],
                b["nodes"].as_array().map_or(0, Vec::len),
                b["duration_ms"].as_i64().unwrap_or(0) as f64 / 1000.0
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `rollout.batch-started` lines of `instance`'s events.
fn batch_starts(cloud: &Cloud, instance: &str) -> Vec<String> {
    ok(cloud, &["events", "--instance", instance])
        .lines()
        .filter(|l| l.contains("rollout.batch-started"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_bad_upgrade_rolls_back_after_its_first_batch_and_a_good_one_completes() {
    let image = busybox_image("1").unwrap();
    let cloud = Cloud::start().unwrap();
    let agents = fleet(&cloud);
    let ids: Vec<String> = agents.iter().map(|a| a.node_id().unwrap()).collect();
    let _dir = setup(&cloud, &image);

    // A second rollout while one runs is a conflict naming it; so is nothing to change.
    let out = cli(&cloud, &["upgrade", "s1", "--to", "1.0.0"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("already runs sensor@1.0.0"), "{out}");

    // A dry run shows the batches and, per node, the replicas replaced; it records nothing.
    let before = event_count(&cloud);
    let out = ok(&cloud, &["upgrade", "s1", "--to", "2.0.0", "--dry-run"]);
    assert!(out.contains("batch 1: gw-a\nbatch 2: gw-b,gw-c"), "{out}");
    assert!(out.contains("replace") && out.contains("s1/web.0"), "{out}");
    assert!(out.contains("dry run: nothing was recorded"), "{out}");
    assert_eq!(event_count(&cloud), before);

    // The bad version: the first batch (gw-a) never becomes healthy.
    let out = ok(
        &cloud,
        &[
            "upgrade",
            "s1",
            "--to",
            "3.0.0",
            "--batch",
            "1,100%",
            "--settle",
            "2s",
            "--timeout",
            "90s",
        ],
    );
    assert!(out.contains("rollout 1 of s1"), "{out}");
    let out = cli(&cloud, &["upgrade", "s1", "--to", "2.0.0"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("has rollout 1 in progress"), "{out}");
    let r = wait_rollout(&cloud, &agents, "s1", 1, "rolled-back");
    assert_eq!(r["batches"][0]["state"], "failed", "{r:#}");
    assert_eq!(r["batches"][1]["state"], "pending", "{r:#}");
    assert_eq!(r["failed"][0]["node"], "gw-a", "{r:#}");
    assert!(
        r["failed"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("Unhealthy"),
        "{r:#}"
    );
    println!("bad upgrade: {}", durations(&r));
    wait_healthy(
        &cloud,
        "s1",
        &[("gw-a", "1.0.0"), ("gw-b", "1.0.0"), ("gw-c", "1.0.0")],
    );
    // gw-a ran 3.0.0 and went back; its data is intact and 1.0.0's init did not run again.
    assert_eq!(
        storage_file(&ids[0], "s1", "ran", &image),
        "1.0.0\n3.0.0\n1.0.0\n"
    );
    assert_eq!(
        storage_file(&ids[0], "s1", "inits", &image),
        "1.0.0\n3.0.0\n"
    );
    // The untouched nodes never ran it.
    for id in &ids[1..] {
        assert_eq!(storage_file(id, "s1", "ran", &image), "1.0.0\n");
    }
    let text = ok(&cloud, &["rollout", "status", "s1"]);
    assert!(text.contains("rolled-back"), "{text}");
    assert!(text.contains("failed: gw-a: web.0 is Unhealthy"), "{text}");

    // The good version completes batch by batch.
    ok(
        &cloud,
        &[
            "upgrade", "s1", "--to", "2.0.0", "--batch", "1,2,100%", "--settle", "2s",
        ],
    );
    let r = wait_rollout(&cloud, &agents, "s1", 2, "completed");
    println!("good upgrade: {}", durations(&r));
    let states: Vec<&str> = r["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["passed", "passed", "passed"], "{r:#}");
    wait_healthy(
        &cloud,
        "s1",
        &[("gw-a", "2.0.0"), ("gw-b", "2.0.0"), ("gw-c", "2.0.0")],
    );
    let shown = ok(&cloud, &["status", "s1", "-o", "json"]);
    assert!(shown.contains("\"version\": \"2.0.0\""), "{shown}");

    // rollback: back to 1.0.0, as a rollout of its own; no init runs again.
    ok(&cloud, &["rollback", "s1", "--settle", "1s"]);
    let r = wait_rollout(&cloud, &agents, "s1", 3, "completed");
    assert_eq!(r["kind"], "rollback");
    assert_eq!(r["to_version"], "1.0.0");
    wait_healthy(
        &cloud,
        "s1",
        &[("gw-a", "1.0.0"), ("gw-b", "1.0.0"), ("gw-c", "1.0.0")],
    );
    assert_eq!(
        storage_file(&ids[1], "s1", "inits", &image),
        "1.0.0\n2.0.0\n"
    );

    // upgrade without --to: an override changes on every node, through batches.
    ok(
        &cloud,
        &[
            "upgrade",
            "s1",
            "--set",
            "web.GREETING=bye",
            "--batch",
            "1,100%",
            "--settle",
            "1s",
        ],
    );
    let r = wait_rollout(&cloud, &agents, "s1", 4, "completed");
    assert_eq!(r["kind"], "reconfigure");
    assert_eq!(r["batches"].as_array().unwrap().len(), 2, "{r:#}");
    let shown = ok(&cloud, &["-o", "json", "status", "s1"]);
    let v: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(v["set"], serde_json::json!(["web.GREETING=bye"]), "{v:#}");
    for id in &ids {
        let containers = docker(&[
            "ps",
            "--quiet",
            "--filter",
            &format!("label=io.skerry.node={id}"),
            "--filter",
            "label=io.skerry.component=web",
        ]);
        let c = containers.lines().next().unwrap();
        let env = docker(&["inspect", "--format", "{{.Config.Env}}", c]);
        assert!(env.contains("GREETING=bye"), "{env}");
    }
}

#[test]
fn a_cloud_killed_mid_rollout_resumes_it_and_starts_no_batch_twice() {
    let image = busybox_image("1").unwrap();
    let mut cloud = Cloud::start().unwrap();
    let agents = fleet(&cloud);
    let _dir = setup(&cloud, &image);
    ok(
        &cloud,
        &[
            "upgrade", "s1", "--to", "2.0.0", "--batch", "1,2,100%", "--settle", "4s",
        ],
    );
    // Killed while the first batch settles.
    wait_for(ROLLOUT, || {
        let r = rollout(&cloud, "s1");
        (r["batches"][0]["state"] == "running"
            && !r["batches"][0]["changed"].as_array()?.is_empty())
        .then_some(())
    })
    .unwrap();
    let t = Instant::now();
    cloud.kill9().unwrap();
    cloud.restart().unwrap();
    let r = wait_rollout(&cloud, &agents, "s1", 1, "completed");
    println!(
        "after kill -9 and restart: completed {:.1}s later; {}",
        t.elapsed().as_secs_f64(),
        durations(&r)
    );
    let starts = batch_starts(&cloud, "s1");
    assert_eq!(starts.len(), 3, "{starts:#?}");
    for (i, line) in starts.iter().enumerate() {
        assert!(line.contains(&format!("batch {}:", i + 1)), "{starts:#?}");
    }
    wait_healthy(
        &cloud,
        "s1",
        &[("gw-a", "2.0.0"), ("gw-b", "2.0.0"), ("gw-c", "2.0.0")],
    );
}

fn wait_status(cloud: &Cloud, node: &str, status: &str) {
    wait_for(ROLLOUT, || {
        let v = cli(cloud, &["-o", "json", "node", "show", node])
            .json()
            .ok()?;
        (v["status"] == status).then_some(())
    })
    .unwrap_or_else(|| panic!("node {node} never became {status}"));
}

#[test]
fn an_offline_node_is_skipped_and_gets_the_outcome_when_it_returns() {
    let image = busybox_image("1").unwrap();
    let cloud = Cloud::start().unwrap();
    let mut agents = fleet(&cloud);
    let ids: Vec<String> = agents.iter().map(|a| a.node_id().unwrap()).collect();
    let _dir = setup(&cloud, &image);

    // gw-c is offline during a good rollout: skipped, then it gets 2.0.0 on its return.
    agents[2].kill9().unwrap();
    wait_status(&cloud, "gw-c", "Abnormal");
    ok(
        &cloud,
        &[
            "upgrade", "s1", "--to", "2.0.0", "--batch", "1,100%", "--settle", "2s",
        ],
    );
    let r = wait_rollout(&cloud, &agents, "s1", 1, "completed");
    assert_eq!(
        r["batches"][1]["waiting"],
        serde_json::json!([{"node": "gw-c", "reason": "offline"}]),
        "{r:#}"
    );
    agents[2].restart().unwrap();
    wait_healthy(
        &cloud,
        "s1",
        &[("gw-a", "2.0.0"), ("gw-b", "2.0.0"), ("gw-c", "2.0.0")],
    );

    // gw-a is offline during a bad rollout whose first batch is gw-a and gw-b: gw-b fails,
    // the rollout rolls back, and gw-a, back later, never runs 3.0.0.
    agents[0].kill9().unwrap();
    wait_status(&cloud, "gw-a", "Abnormal");
    ok(
        &cloud,
        &[
            "upgrade",
            "s1",
            "--to",
            "3.0.0",
            "--batch",
            "2,100%",
            "--settle",
            "2s",
            "--timeout",
            "90s",
        ],
    );
    let r = wait_rollout(&cloud, &agents, "s1", 2, "rolled-back");
    assert_eq!(r["failed"][0]["node"], "gw-b", "{r:#}");
    assert_eq!(
        r["waiting"],
        serde_json::json!([{"node": "gw-a", "reason": "offline"}]),
        "{r:#}"
    );
    agents[0].restart().unwrap();
    wait_status(&cloud, "gw-a", "Normal");
    wait_healthy(
        &cloud,
        "s1",
        &[("gw-a", "2.0.0"), ("gw-b", "2.0.0"), ("gw-c", "2.0.0")],
    );
    assert_eq!(storage_file(&ids[0], "s1", "ran", &image), "1.0.0\n2.0.0\n");
    assert!(
        storage_file(&ids[1], "s1", "ran", &image).contains("3.0.0"),
        "gw-b ran the bad version in its batch"
    );
}

/// The `web` rows of `instance`'s status: (node, version, state), by node.
fn web_rows(cloud: &Cloud, instance: &str) -> Vec<(String, String, String)> {
    let v: Value = cli(cloud, &["status", instance, "-o", "json"])
        .json()
        .unwrap();
    let mut rows: Vec<(String, String, String)> = v["status"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["component"] == "web")
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or("").to_owned();
            (s("node"), s("version"), s("state"))
        })
        .collect();
    rows.sort();
    rows
}

fn wait_web(cloud: &Cloud, instance: &str, want: &[(&str, &str, &str)]) {
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
        .collect();
    let mut last = Vec::new();
    wait_for(ROLLOUT, || {
        last = web_rows(cloud, instance);
        (last == want).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "{instance} never showed {want:?}: {last:?}\n{}",
            cli(cloud, &["events", "--instance", instance])
        )
    });
}

/// The names of `instance`'s containers on the engine, of the nodes `ids` only (other
/// tests run beside this one, with instances of the same name).
fn containers(ids: &[String], instance: &str) -> Vec<String> {
    let prefixes: Vec<String> = ids
        .iter()
        .map(|id| format!("skerry-{}.{instance}.", &id[..8]))
        .collect();
    docker(&["ps", "-a", "--format", "{{.Names}}"])
        .lines()
        .filter(|n| prefixes.iter().any(|p| n.starts_with(p.as_str())))
        .map(str::to_owned)
        .collect()
}

#[test]
fn stop_start_and_restart_keep_storage_and_restart_goes_node_by_node() {
    let image = busybox_image("1").unwrap();
    let cloud = Cloud::start().unwrap();
    let agents = fleet(&cloud);
    let ids: Vec<String> = agents.iter().map(|a| a.node_id().unwrap()).collect();
    let _dir = setup(&cloud, &image);

    // Stop on one node: its replicas go, the others run on.
    let t = Instant::now();
    let out = ok(&cloud, &["stop", "s1", "--node", "gw-a"]);
    assert!(out.contains("stopped on: gw-a (of 3 node(s))"), "{out}");
    wait_web(
        &cloud,
        "s1",
        &[
            ("gw-a", "1.0.0", "Stopped"),
            ("gw-b", "1.0.0", "Healthy"),
            ("gw-c", "1.0.0", "Healthy"),
        ],
    );
    println!("stop on gw-a to Stopped: {} ms", t.elapsed().as_millis());
    assert!(
        containers(&ids[..1], "s1").is_empty(),
        "{:?}",
        containers(&ids, "s1")
    );
    let again = cli(&cloud, &["stop", "s1", "--node", "gw-a"]);
    assert_eq!(again.code, 2, "{again}");
    assert!(again.stderr.contains("already"), "{again}");

    // Stop the whole instance; status says Stopped, not failed.
    ok(&cloud, &["stop", "s1"]);
    wait_web(
        &cloud,
        "s1",
        &[
            ("gw-a", "1.0.0", "Stopped"),
            ("gw-b", "1.0.0", "Stopped"),
            ("gw-c", "1.0.0", "Stopped"),
        ],
    );
    assert!(
        containers(&ids, "s1").is_empty(),
        "{:?}",
        containers(&ids, "s1")
    );
    let table = ok(&cloud, &["status", "s1"]);
    assert!(
        table.contains("Stopped") && !table.contains("Failed"),
        "{table}"
    );
    let events = ok(&cloud, &["events", "--instance", "s1"]);
    assert!(events.contains("stopped, the whole instance"), "{events}");

    // An upgrade of the stopped instance changes its version and leaves it stopped: no
    // replica, no init of 2.0.0 runs.
    ok(
        &cloud,
        &["upgrade", "s1", "--to", "2.0.0", "--settle", "1s"],
    );
    wait_rollout(&cloud, &agents, "s1", 1, "completed");
    wait_web(
        &cloud,
        "s1",
        &[
            ("gw-a", "2.0.0", "Stopped"),
            ("gw-b", "2.0.0", "Stopped"),
            ("gw-c", "2.0.0", "Stopped"),
        ],
    );
    assert!(
        containers(&ids, "s1").is_empty(),
        "{:?}\n{}\n{}",
        containers(&ids, "s1"),
        cli(&cloud, &["events", "--instance", "s1"]),
        agents[0].logs()
    );
    for id in &ids {
        assert_eq!(storage_file(id, "s1", "ran", &image), "1.0.0\n");
        assert_eq!(storage_file(id, "s1", "inits", &image), "1.0.0\n");
    }

    // Start: the new version runs on the data it left.
    ok(&cloud, &["start", "s1"]);
    wait_healthy(
        &cloud,
        "s1",
        &[("gw-a", "2.0.0"), ("gw-b", "2.0.0"), ("gw-c", "2.0.0")],
    );
    for id in &ids {
        assert_eq!(storage_file(id, "s1", "ran", &image), "1.0.0\n2.0.0\n");
        assert_eq!(storage_file(id, "s1", "inits", &image), "1.0.0\n2.0.0\n");
    }

    // Restart web: node by node (one node changes at a time), the version kept, the init
    // not run again.
    let before = ok(&cloud, &["events", "--instance", "s1"]).lines().count();
    let out = ok(
        &cloud,
        &["restart", "s1", "--component", "web", "--settle", "1s"],
    );
    assert!(out.contains("rollout 2 of s1: restart"), "{out}");
    let r = wait_rollout(&cloud, &agents, "s1", 2, "completed");
    println!("restart: {}", durations(&r));
    assert_eq!(r["kind"], "restart");
    assert_eq!(r["policy"]["max_unavailable"], 1, "{r:#}");
    let events = ok(&cloud, &["events", "--instance", "s1"]);
    let changed: Vec<&str> = events
        .lines()
        .skip(before)
        .filter(|l| l.contains("instance.nodes-changed"))
        .collect();
    assert_eq!(changed.len(), 3, "{events}");
    for line in &changed {
        assert_eq!(line.matches("runs it").count(), 1, "{line}");
    }
    wait_healthy(
        &cloud,
        "s1",
        &[("gw-a", "2.0.0"), ("gw-b", "2.0.0"), ("gw-c", "2.0.0")],
    );
    for id in &ids {
        assert_eq!(
            storage_file(id, "s1", "ran", &image),
            "1.0.0\n2.0.0\n2.0.0\n"
        );
        assert_eq!(storage_file(id, "s1", "inits", &image), "1.0.0\n2.0.0\n");
    }

    // Restart everything on gw-b only: its init runs again too; the others are untouched.
    ok(
        &cloud,
        &["restart", "s1", "--node", "gw-b", "--settle", "1s"],
    );
    wait_rollout(&cloud, &agents, "s1", 3, "completed");
    wait_healthy(
        &cloud,
        "s1",
        &[("gw-a", "2.0.0"), ("gw-b", "2.0.0"), ("gw-c", "2.0.0")],
    );
    assert_eq!(
        storage_file(&ids[1], "s1", "ran", &image),
        "1.0.0\n2.0.0\n2.0.0\n2.0.0\n"
    );
    assert_eq!(
        storage_file(&ids[1], "s1", "inits", &image),
        "1.0.0\n2.0.0\n2.0.0\n"
    );
    for id in [&ids[0], &ids[2]] {
        assert_eq!(
            storage_file(id, "s1", "ran", &image),
            "1.0.0\n2.0.0\n2.0.0\n"
        );
    }
    // A restart of a node the instance is stopped on is refused, naming it.
    ok(&cloud, &["stop", "s1", "--node", "gw-c"]);
    let out = cli(&cloud, &["restart", "s1", "--node", "gw-c"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("stopped on node \"gw-c\""), "{out}");
}
