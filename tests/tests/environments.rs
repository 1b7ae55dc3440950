//! Environments and nodes as operators change them, against a real `skerry serve`, a real
//! agent with the Docker runtime and a real container from an image built `FROM scratch`
//! (busybox):
//!
//! - `env rename` under a running instance: the container is not restarted (the same id,
//!   the same start time), the agent folds the rename (its lag goes back to 0), `status`
//!   and `node list --env NEW` list the instance under the new name, the old name is free
//!   for a new `env create`; `local` and a taken name are refused (exit 2), an unknown
//!   environment is not found (exit 4);
//! - `env set` changes the description and the entry addresses (`env show`, `env list`),
//!   and refuses a bad entry with its field;
//! - `node set --address` shows in `node show`; a bad address is refused with its field;
//! - `node list` counts each node's instances and shows when it enrolled;
//! - a token limited to an environment renames and sets only that one (another is not
//!   found for it), and its scope follows the rename.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use skerry_tests::agent::Agent;
use skerry_tests::fault::{containers_of, deploy_sleeper, publish_sleeper};
use skerry_tests::images::{DockerCleanup, busybox_image, unique};
use skerry_tests::{Cloud, cli, cli_as, wait_for};

const CONVERGE: Duration = Duration::from_secs(60);

/// The container's id and start time, while it runs.
fn running(node: &str, instance: &str) -> Option<(String, String)> {
    let c = containers_of(node, instance)
        .ok()?
        .into_iter()
        .find(|c| c.state == "running")?;
    let out = Command::new("docker")
        .args(["inspect", "--format", "{{.State.StartedAt}}", &c.id])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| (c.id, String::from_utf8_lossy(&out.stdout).trim().to_owned()))
}

fn json(cloud: &Cloud, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend_from_slice(&["-o", "json"]);
    let out = cli(cloud, &args);
    assert_eq!(out.code, 0, "{out}");
    out.json().unwrap()
}

/// Every replica of `instance` runs, as `status` has it.
fn all_running(cloud: &Cloud, instance: &str) -> bool {
    let status = json(cloud, &["status", instance]);
    status["status"]
        .as_array()
        .is_some_and(|rows| !rows.is_empty() && rows.iter().all(|r| r["state"] == "Running"))
}

#[test]
fn an_environment_renamed_under_a_running_instance_keeps_it_running_under_the_new_name() {
    let image = busybox_image("1").unwrap();
    let cloud = Cloud::start().unwrap();
    assert_eq!(cli(&cloud, &["env", "create", "plant"]).code, 0);
    let agent = Agent::enroll(&cloud, "plant", "gw-1").unwrap();
    let node = agent.node_id().unwrap();
    let _cleanup = DockerCleanup::new(&node);
    publish_sleeper(&cloud, agent.dir(), &image, 1).unwrap();
    let instance = unique("sleeper");
    deploy_sleeper(&cloud, "plant", &instance, "gw-1").unwrap();
    let before = wait_for(CONVERGE, || {
        all_running(&cloud, &instance)
            .then(|| running(&node, &instance))
            .flatten()
    })
    .unwrap_or_else(|| panic!("the sleeper did not start:\n{}", agent.logs()));

    let out = cli(&cloud, &["env", "rename", "plant", "factory"]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(out.stdout.trim(), "renamed environment plant to factory");
    // The agent folds the rename (it acknowledges it) and restarts nothing.
    let folded = wait_for(CONVERGE, || {
        let nodes = json(&cloud, &["node", "list", "--env", "factory"]);
        (nodes[0]["lag"] == 0).then_some(nodes)
    })
    .unwrap_or_else(|| panic!("the agent did not take the rename:\n{}", agent.logs()));
    assert_eq!(folded[0]["name"], "gw-1");
    assert_eq!(folded[0]["envs"], serde_json::json!(["factory"]));
    assert_eq!(folded[0]["instances"], serde_json::json!([instance]));
    let status = json(&cloud, &["status", &instance]);
    assert_eq!(status["env"], "factory", "{status}");
    assert!(all_running(&cloud, &instance), "{status}");
    assert_eq!(running(&node, &instance), Some(before.clone()), "restarted");
    assert!(
        status["status"][0]["restarts"] == 0,
        "restarts counted: {status}"
    );
    // `node list` counts the instance; the old name is gone, then free.
    let table = cli(&cloud, &["node", "list", "--env", "factory"]);
    let rows = table.table();
    assert_eq!(rows[0]["INSTANCES"], "1", "{table}");
    assert_eq!(rows[0]["ENROLLED"], folded[0]["enrolled"].as_str().unwrap());
    assert_eq!(cli(&cloud, &["node", "list", "--env", "plant"]).code, 4);
    assert_eq!(cli(&cloud, &["env", "create", "plant"]).code, 0);
    let plant = json(&cloud, &["env", "show", "plant"]);
    assert_eq!(plant["nodes"], serde_json::json!([]));
    assert_eq!(plant["instances"], serde_json::json!([]));

    // Refused: `local`, a taken name (exit 2, with the field); an unknown one (exit 4).
    let local = cli(&cloud, &["env", "rename", "local", "home"]);
    assert_eq!(local.code, 2, "{local}");
    assert!(local.stderr.contains("local"), "{local}");
    let taken = cli(&cloud, &["env", "rename", "factory", "plant"]);
    assert_eq!(taken.code, 2, "{taken}");
    assert!(taken.stderr.contains("already exists"), "{taken}");
    assert_eq!(cli(&cloud, &["env", "rename", "nowhere", "x"]).code, 4);

    // Still the same container, after all of it.
    assert_eq!(running(&node, &instance), Some(before));
    let events = cli(&cloud, &["events", "-o", "json"]);
    assert!(events.stdout.contains("environment.renamed"), "{events}");
}

#[test]
fn env_set_and_node_set_change_what_they_name_and_refuse_bad_input() {
    let cloud = Cloud::start().unwrap();
    assert_eq!(
        cli(&cloud, &["env", "create", "plant", "--entry", "10.0.0.1"]).code,
        0
    );
    let agent = Agent::enroll_with(&cloud, "plant", "gw-2", &["--runtime", "process"]).unwrap();

    // `env set`: the description and the entries (which replace the old ones).
    let out = cli(
        &cloud,
        &[
            "env",
            "set",
            "plant",
            "--description",
            "line 3, hall B",
            "--entry",
            "gw.plant.example:443",
            "--entry",
            "10.0.0.2:80",
        ],
    );
    assert_eq!(out.code, 0, "{out}");
    let env = json(&cloud, &["env", "show", "plant"]);
    assert_eq!(env["description"], "line 3, hall B");
    assert_eq!(
        env["entries"],
        serde_json::json!(["gw.plant.example:443", "10.0.0.2:80"])
    );
    let show = cli(&cloud, &["env", "show", "plant"]);
    assert!(show.stdout.contains("line 3, hall B"), "{show}");
    let list = cli(&cloud, &["env", "list"]);
    let row = list
        .table()
        .into_iter()
        .find(|r| r["NAME"] == "plant")
        .unwrap();
    assert_eq!(row["DESCRIPTION"], "line 3, hall B", "{list}");
    // Only the description: the entries stay.
    assert_eq!(
        cli(&cloud, &["env", "set", "plant", "--description", ""]).code,
        0
    );
    let env = json(&cloud, &["env", "show", "plant"]);
    assert!(env.get("description").is_none(), "{env}");
    assert_eq!(env["entries"].as_array().unwrap().len(), 2);
    let bad = cli(
        &cloud,
        &["env", "set", "plant", "--entry", "gw.plant.example"],
    );
    assert_eq!(bad.code, 2, "{bad}");
    assert!(bad.stderr.contains("entries[0]"), "{bad}");
    let long = "x".repeat(1025);
    let bad = cli(&cloud, &["env", "set", "plant", "--description", &long]);
    assert_eq!(bad.code, 2, "{bad}");
    assert!(bad.stderr.contains("description"), "{bad}");
    assert_eq!(cli(&cloud, &["env", "set", "plant"]).code, 2);
    assert_eq!(
        cli(&cloud, &["env", "set", "nowhere", "--description", "x"]).code,
        4
    );

    // `node set --address`: from the agent's at enrollment to the one set by hand.
    let enrolled = json(&cloud, &["node", "show", "gw-2"]);
    assert_eq!(enrolled["address"], "127.0.0.1");
    let out = cli(
        &cloud,
        &["node", "set", "gw-2", "--address", "gw-2.plant.example:22"],
    );
    assert_eq!(out.code, 0, "{out}");
    let show = cli(&cloud, &["node", "show", "gw-2"]);
    assert!(show.stdout.contains("gw-2.plant.example:22"), "{show}");
    let node = json(&cloud, &["node", "show", agent.node_id().unwrap().as_str()]);
    assert_eq!(node["address"], "gw-2.plant.example:22");
    let bad = cli(
        &cloud,
        &["node", "set", "gw-2", "--address", "not an address"],
    );
    assert_eq!(bad.code, 2, "{bad}");
    assert!(bad.stderr.contains("address"), "{bad}");
    assert_eq!(
        cli(&cloud, &["node", "set", "nowhere", "--address", "10.0.0.9"]).code,
        4
    );
    // No instance yet; the enrollment time.
    let list = cli(&cloud, &["node", "list"]);
    let rows = list.table();
    assert_eq!(rows[0]["INSTANCES"], "0", "{list}");
    assert_eq!(rows[0]["ENROLLED"], enrolled["enrolled"].as_str().unwrap());
}

#[test]
fn a_token_limited_to_an_environment_renames_only_it_and_its_scope_follows() {
    let cloud = Cloud::start().unwrap();
    for env in ["plant", "lab"] {
        assert_eq!(cli(&cloud, &["env", "create", env]).code, 0);
    }
    let out = cli(
        &cloud,
        &["token", "create", "--role", "admin", "--env", "plant"],
    );
    assert_eq!(out.code, 0, "{out}");
    let token = out.stdout.trim().to_owned();
    let as_plant = |args: &[&str]| cli_as(&cloud, Some(&token), args);
    // Another environment is not found for it, whatever the command.
    assert_eq!(as_plant(&["env", "rename", "lab", "bench"]).code, 4);
    assert_eq!(
        as_plant(&["env", "set", "lab", "--description", "x"]).code,
        4
    );
    let out = as_plant(&["env", "rename", "plant", "factory"]);
    assert_eq!(out.code, 0, "{out}");
    // Its scope is the new name now: it sets and sees `factory`, and `lab` still not.
    let out = as_plant(&["env", "set", "factory", "--description", "hall B"]);
    assert_eq!(out.code, 0, "{out}");
    let out = as_plant(&["env", "list", "-o", "json"]);
    let names: Vec<String> = out
        .json()
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["factory"]);
    let tokens = json(&cloud, &["token", "list"]);
    assert!(
        tokens
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["envs"] == serde_json::json!(["factory"])),
        "{tokens}"
    );
}
