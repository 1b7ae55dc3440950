//! Fit by platform, runtime and memory, and the dry run that shows it, with real parts: a
//! real `skerry serve`, three real `skerry-edge run` agents enrolled with different
//! firmware profiles (`x86-64-host`; `orange-pi-zero`: 256 MB, armv7, no container engine;
//! `beaglebone-black`: armv7 with Docker), an app built for `linux/amd64` whose container
//! (from an image built here `FROM scratch`) asks for 300Mi, and a real container on the
//! Docker engine for the node that fits. Every agent here runs on this x86-64 host: the
//! profile given at enrollment is what the cloud fits against.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::Value;
use skerry_tests::agent::Agent;
use skerry_tests::images::busybox_image;
use skerry_tests::{Cloud, cli, wait_for};

const CONVERGE: Duration = Duration::from_secs(60);

/// `gauge@1.0.0`: built for linux/amd64, one container of 300Mi and 100m.
fn gauge(image: &str) -> String {
    format!(
        r#"app: gauge
version: 1.0.0
platforms: [linux/amd64]
components:
  - name: web
    image: {image}
    command: ["sh", "-c", "exec sleep 3600"]
    resources:
      cpu: {{ request: 100m }}
      memory: {{ request: 300Mi }}
"#
    )
}

/// `probe@1.0.0`: any platform, one native process.
const PROBE: &str = r#"app: probe
version: 1.0.0
components:
  - name: probe
    exec: ["/bin/sh", "-c", "exec sleep 3600"]
"#;

fn publish(cloud: &Cloud, dir: &std::path::Path, name: &str, yaml: &str) {
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, yaml).unwrap();
    let out = cli(cloud, &["app", "publish", "-f", file.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out}");
}

/// How many events the cloud has recorded.
fn event_count(cloud: &Cloud) -> usize {
    let out = cli(cloud, &["events", "-o", "json", "--limit", "1000"]);
    assert_eq!(out.code, 0, "{out}");
    let events = out.json().unwrap();
    let n = events.as_array().unwrap().len();
    assert!(n < 1000, "more events than one page holds");
    n
}

fn status(cloud: &Cloud, instance: &str) -> Vec<Value> {
    let out = cli(cloud, &["status", instance, "-o", "json"]);
    assert_eq!(out.code, 0, "{out}");
    out.json().unwrap()["status"].as_array().unwrap().clone()
}

const OPI_SHORT: [&str; 3] = [
    "platform: the node is armv7 (linux/arm/v7); the app is built for linux/amd64",
    "runtime docker is missing (profile orange-pi-zero has process)",
    "memory: requests 300Mi, 256Mi free of 256Mi",
];
const BBB_SHORT: &str =
    "platform: the node is armv7 (linux/arm/v7); the app is built for linux/amd64";

#[test]
fn nodes_of_other_platforms_runtimes_and_sizes_do_not_fit() {
    let image = busybox_image("1").unwrap();
    let cloud = Cloud::start().unwrap();
    assert_eq!(cli(&cloud, &["env", "create", "plant"]).code, 0);
    let agents: Vec<Agent> = [
        ("gw-x86", "x86-64-host"),
        ("gw-opi", "orange-pi-zero"),
        ("gw-bbb", "beaglebone-black"),
    ]
    .into_iter()
    .map(|(name, profile)| {
        let agent = Agent::enroll_profile(&cloud, "plant", name, profile, &[]).unwrap();
        let out = cli(&cloud, &["node", "label", name, "zone=north"]);
        assert_eq!(out.code, 0, "{out}");
        agent
    })
    .collect();
    // Every node linked and caught up, so that no event of theirs is still to come.
    let settled = wait_for(CONVERGE, || {
        let out = cli(&cloud, &["node", "list", "-o", "json"]);
        let nodes = out.json().ok()?;
        let nodes = nodes.as_array()?;
        (nodes.len() == 3
            && nodes
                .iter()
                .all(|n| n["status"] == "Normal" && n["lag"] == 0))
        .then_some(())
    });
    assert!(
        settled.is_some(),
        "{}\n{}",
        cli(&cloud, &["node", "list"]),
        agents.iter().map(Agent::logs).collect::<String>()
    );
    let dir = tempfile::tempdir().unwrap();
    publish(&cloud, dir.path(), "gauge", &gauge(&image));
    publish(&cloud, dir.path(), "probe", PROBE);

    // --node with nodes that do not fit: refused, every shortfall named per node; the same
    // for its dry run.
    let named = [
        "deploy",
        "gauge@1.0.0",
        "--env",
        "plant",
        "--name",
        "gauge-named",
        "--node",
        "gw-x86",
        "--node",
        "gw-opi",
        "--node",
        "gw-bbb",
    ];
    let before = event_count(&cloud);
    for dry in [false, true] {
        let mut args = named.to_vec();
        if dry {
            args.push("--dry-run");
        }
        let out = cli(&cloud, &args);
        assert_eq!(out.code, 2, "{out}");
        let opi = format!("gw-opi: {}", OPI_SHORT.join("; "));
        let bbb = format!("gw-bbb: {BBB_SHORT}");
        assert!(out.stderr.contains(&opi), "{out}");
        assert!(out.stderr.contains(&bbb), "{out}");
        assert!(!out.stderr.contains("gw-x86:"), "{out}");
        assert!(out.stderr.contains("(field: nodes)"), "{out}");
    }
    assert_eq!(
        event_count(&cloud),
        before,
        "a refused deploy records nothing"
    );

    // The dry run of a --selector deploy: the plan, and nothing recorded.
    let selected = [
        "deploy",
        "gauge@1.0.0",
        "--env",
        "plant",
        "--name",
        "gauge",
        "--selector",
        "zone=north",
    ];
    let mut dry = selected.to_vec();
    dry.extend(["--dry-run", "-o", "json"]);
    let out = cli(&cloud, &dry);
    assert_eq!(out.code, 0, "{out}");
    let plan = out.json().unwrap();
    let targets = plan["plan"].as_array().unwrap();
    assert_eq!(targets.len(), 1, "{plan}");
    let x86 = &targets[0];
    assert_eq!(x86["node"], "gw-x86");
    assert_eq!(
        x86["changes"],
        serde_json::json!([{
            "action": "create",
            "kind": "container",
            "replica": "gauge/web.0",
            "component_kind": "service",
        }])
    );
    assert_eq!(
        x86["resources"]["memory_bytes"],
        serde_json::json!({"needed": 300u64 << 20, "free": 8u64 << 30, "capacity": 8u64 << 30})
    );
    assert_eq!(
        x86["resources"]["cpu_millicores"],
        serde_json::json!({"needed": 100, "free": 4000, "capacity": 4000})
    );
    assert_eq!(x86["shortfalls"], serde_json::json!([]));
    let unschedulable: Vec<(&str, Vec<&str>)> = plan["unschedulable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            let reasons = u["reasons"].as_array().unwrap();
            (
                u["name"].as_str().unwrap(),
                reasons.iter().map(|r| r.as_str().unwrap()).collect(),
            )
        })
        .collect();
    let mut unschedulable = unschedulable;
    unschedulable.sort();
    assert_eq!(
        unschedulable,
        [("gw-bbb", vec![BBB_SHORT]), ("gw-opi", OPI_SHORT.to_vec())]
    );
    let opi = plan["unfit"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["node"] == "gw-opi")
        .unwrap();
    assert_eq!(
        opi["resources"]["memory_bytes"],
        serde_json::json!({"needed": 300u64 << 20, "free": 256u64 << 20, "capacity": 256u64 << 20})
    );
    // The table says the same.
    dry.truncate(dry.len() - 2);
    let out = cli(&cloud, &dry);
    assert_eq!(out.code, 0, "{out}");
    for line in [
        "  cpu        100m needed, 4000m free of 4000m",
        "  memory     300Mi needed, 8Gi free of 8Gi",
        "  create     container gauge/web.0",
        "  memory     300Mi needed, 256Mi free of 256Mi",
        "dry run: nothing was recorded",
    ] {
        assert!(out.stdout.lines().any(|l| l == line), "{line:?} in\n{out}");
    }
    // Any platform, a process: the armv7 nodes fit (a dry run again).
    let out = cli(
        &cloud,
        &[
            "deploy",
            "probe@1.0.0",
            "--env",
            "plant",
            "--name",
            "probe",
            "--node",
            "gw-opi",
            "--node",
            "gw-bbb",
            "--dry-run",
        ],
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout
            .lines()
            .filter(|l| *l == "  create     process probe/probe.0")
            .count()
            == 2,
        "{out}"
    );
    assert_eq!(event_count(&cloud), before, "a dry run records nothing");
    assert_eq!(cli(&cloud, &["status", "gauge"]).code, 4);

    // The --selector deploy: the unfit nodes are Unschedulable with their reasons, and
    // the node that fits runs the container.
    let out = cli(&cloud, &selected);
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout.contains(&format!("): {}", OPI_SHORT.join("; "))),
        "{out}"
    );
    let rows = wait_for(CONVERGE, || {
        let rows = status(&cloud, "gauge");
        rows.iter()
            .any(|r| r["node"] == "gw-x86" && r["state"] == "Running")
            .then_some(rows)
    })
    .unwrap_or_else(|| {
        panic!(
            "gauge never ran on gw-x86: {:?}\n{}",
            status(&cloud, "gauge"),
            agents[0].logs()
        )
    });
    let reason = |node: &str| {
        let row = rows.iter().find(|r| r["node"] == node).unwrap();
        assert_eq!(row["state"], "Unschedulable", "{row}");
        row["reason"].as_str().unwrap().to_owned()
    };
    assert_eq!(reason("gw-opi"), OPI_SHORT.join("; "));
    assert_eq!(reason("gw-bbb"), BBB_SHORT);
    assert!(event_count(&cloud) > before);

    let out = cli(&cloud, &["undeploy", "gauge"]);
    assert_eq!(out.code, 0, "{out}");
}
