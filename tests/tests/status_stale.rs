//! `status` does not pass an old report off as the truth: a real `skerry serve`, a real
//! agent (with a 1 s heartbeat, from a profile file) and a real container. Once the agent
//! is stopped and its node turns `Abnormal`, `status` still shows what the replica last
//! reported, marked stale with the time of that report, in the table and in `-o json`;
//! after a cloud restart too. When the agent is back, the mark goes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::Value;
use skerry_tests::agent::Agent;
use skerry_tests::fault::{deploy_sleeper, publish_sleeper};
use skerry_tests::fixtures::host_profile_with;
use skerry_tests::images::{busybox_image, unique};
use skerry_tests::{Cloud, cli, wait_for};

/// The replica rows of `instance` in `status -o json`.
fn replicas(cloud: &Cloud, instance: &str) -> Vec<Value> {
    let out = cli(cloud, &["status", instance, "-o", "json"]);
    assert_eq!(out.code, 0, "{out}");
    out.json().unwrap()["status"].as_array().unwrap().clone()
}

fn node_status(cloud: &Cloud, node: &str) -> String {
    let out = cli(cloud, &["node", "show", node, "-o", "json"]);
    assert_eq!(out.code, 0, "{out}");
    out.json().unwrap()["status"].as_str().unwrap().to_owned()
}

#[test]
fn replicas_of_an_abnormal_node_are_marked_stale_with_the_time_of_their_report() {
    let image = busybox_image("1").unwrap();
    let mut cloud = Cloud::start().unwrap();
    assert_eq!(cli(&cloud, &["env", "create", "plant"]).code, 0);
    let dir = tempfile::tempdir().unwrap();
    let profile = host_profile_with(
        dir.path(),
        "fast-heartbeat.toml",
        "heartbeat = \"5s\"",
        "heartbeat = \"1s\"",
    )
    .unwrap();
    let mut agent =
        Agent::enroll_profile(&cloud, "plant", "gw-1", profile.to_str().unwrap(), &[]).unwrap();
    publish_sleeper(&cloud, dir.path(), &image, 1).unwrap();
    let instance = unique("stale");
    deploy_sleeper(&cloud, "plant", &instance, "gw-1").unwrap();

    // Running and fresh: reported, not stale.
    let running = wait_for(Duration::from_secs(60), || {
        let rows = replicas(&cloud, &instance);
        (rows.len() == 1 && rows[0]["state"] == "Running").then(|| rows[0].clone())
    })
    .unwrap_or_else(|| panic!("never Running\n{}", agent.logs()));
    assert_eq!(running["stale"], false, "{running}");
    let reported = running["reported"]
        .as_str()
        .unwrap_or_else(|| panic!("no report time: {running}"))
        .to_owned();
    let table = cli(&cloud, &["status", &instance]);
    assert_eq!(table.code, 0, "{table}");
    assert_eq!(table.table()[0]["STATE"], "Running", "{table}");

    // The agent stops reporting: the node turns Abnormal, the replica stays as reported,
    // marked stale with the time of that report.
    agent.kill9().unwrap();
    assert!(
        wait_for(Duration::from_secs(30), || {
            (node_status(&cloud, "gw-1") == "Abnormal").then_some(())
        })
        .is_some(),
        "gw-1 never turned Abnormal"
    );
    let check_stale = |cloud: &Cloud| {
        let rows = replicas(cloud, &instance);
        assert_eq!(rows.len(), 1, "{rows:?}");
        let row = &rows[0];
        assert_eq!(row["state"], "Running", "{row}");
        assert_eq!(row["stale"], true, "{row}");
        assert_eq!(row["reported"], reported.as_str(), "{row}");
        let table = cli(cloud, &["status", &instance]);
        assert_eq!(table.code, 0, "{table}");
        let rows = table.table();
        assert_eq!(
            rows[0]["STATE"],
            format!("Running (stale: reported {reported})"),
            "{table}"
        );
    };
    check_stale(&cloud);

    // The statuses and their times survive a cloud restart; the node is still silent.
    cloud.restart().unwrap();
    assert_eq!(node_status(&cloud, "gw-1"), "Abnormal");
    check_stale(&cloud);

    // The agent is back: Normal again, and the replica is fresh, with a newer report.
    agent.restart().unwrap();
    let fresh = wait_for(Duration::from_secs(60), || {
        let rows = replicas(&cloud, &instance);
        let row = rows.first()?.clone();
        // The node is Normal from its hello; its complete report follows a moment later.
        let newer = row["reported"]
            .as_str()
            .is_some_and(|t| t > reported.as_str());
        (row["stale"] == false && row["state"] == "Running" && newer).then_some(row)
    })
    .unwrap_or_else(|| panic!("never fresh again\n{}", agent.logs()));
    assert_eq!(node_status(&cloud, "gw-1"), "Normal");
    assert!(
        fresh["reported"].as_str().unwrap() > reported.as_str(),
        "{fresh} vs {reported}"
    );
    let table = cli(&cloud, &["status", &instance]);
    assert_eq!(table.table()[0]["STATE"], "Running", "{table}");
}
