//! The operator's command line, walked like a new user would, against the real `skerry`
//! binary and a real `skerry serve`.

// Tests and their helpers fail loudly: unwrap and expect are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use skerry_shared::enroll::EnrollmentToken;
use skerry_shared::hash::Digest;
use skerry_tests::{CliOutput, CliStream, Cloud, TestNode, cli, cli_at, fixtures, free_port};

/// Runs a command that must succeed.
fn ok(cloud: &Cloud, args: &[&str]) -> CliOutput {
    let out = cli(cloud, args);
    assert_eq!(out.code, 0, "{out}");
    out
}

/// Runs a command with `-o json` that must succeed, and parses its output.
fn json(cloud: &Cloud, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend(["-o", "json"]);
    ok(cloud, &args).json().unwrap()
}

/// Runs a command that must fail with `code`.
fn fails(cloud: &Cloud, args: &[&str], code: i32) -> CliOutput {
    let out = cli(cloud, args);
    assert_eq!(out.code, code, "{out}");
    assert!(
        out.stdout.is_empty(),
        "a failed command printed results:\n{out}"
    );
    assert!(out.stderr.contains("error"), "no error message:\n{out}");
    out
}

fn event_count(cloud: &Cloud) -> usize {
    json(cloud, &["events"]).as_array().unwrap().len()
}

fn names(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap().to_owned())
        .collect()
}

/// `node token --env ENV`: the token alone on one line of standard output.
fn token(cloud: &Cloud, env: &str) -> String {
    let out = ok(cloud, &["node", "token", "--env", env]);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "the token is not alone on stdout:\n{out}");
    assert!(out.stdout.ends_with('\n'));
    let token = lines[0];
    assert_eq!(token, token.trim(), "{out}");
    let parsed: EnrollmentToken = token.parse().unwrap();
    assert_eq!(parsed.to_string(), token);
    token.to_owned()
}

#[test]
fn a_new_user_walks_through_every_command() {
    let cloud = Cloud::start().unwrap();
    let api = cloud.api().unwrap();
    let dir = tempfile::tempdir().unwrap();

    // --- environments ---
    let out = ok(
        &cloud,
        &[
            "env",
            "create",
            "prod",
            "--label",
            "tier=edge",
            "--label",
            "region=eu",
            "--entry",
            "10.0.0.1:80",
            "--entry",
            "gw.example.com:8443",
        ],
    );
    assert_eq!(out.stdout.lines().count(), 1, "{out}");
    assert!(out.stdout.contains("prod"), "{out}");
    let out = ok(&cloud, &["env", "list"]);
    let rows = out.table();
    let prod = rows
        .iter()
        .find(|r| r["NAME"] == "prod")
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(prod["LABELS"], "region=eu,tier=edge", "{out}");
    assert_eq!(prod["ENTRIES"], "10.0.0.1:80,gw.example.com:8443", "{out}");
    assert_eq!(prod["NODES"], "0", "{out}");
    assert!(
        rows.iter().any(|r| r["NAME"] == "local"),
        "no local environment:\n{out}"
    );
    let list = json(&cloud, &["env", "list"]);
    assert_eq!(
        names(&list),
        BTreeSet::from(["local".to_owned(), "prod".to_owned()])
    );
    let out = ok(&cloud, &["env", "show", "prod"]);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("name:") && l.ends_with("prod")),
        "{out}"
    );
    assert!(out.stdout.contains("region=eu,tier=edge"), "{out}");
    let shown = json(&cloud, &["env", "show", "prod"]);
    assert_eq!(shown["labels"]["tier"], "edge");
    assert_eq!(shown["entries"][1], "gw.example.com:8443");

    // --- enrollment: the token alone on stdout, then two real enrollments ---
    let ca_der = std::fs::read(cloud.data_dir().join("keys/ca.crt")).unwrap();
    let (_, ca_pem) = x509_parser::pem::parse_x509_pem(&ca_der).unwrap();
    let ca_hash = Digest::of(&ca_pem.contents);
    let mut ids = Vec::new();
    for name in ["gw-1", "gw-2"] {
        let t = token(&cloud, "prod");
        assert_eq!(
            t.parse::<EnrollmentToken>().unwrap().ca,
            ca_hash,
            "the token's CA hash"
        );
        let enrolled = TestNode::new(name).unwrap().enroll(&api, &t).unwrap();
        assert_eq!(enrolled.response.env.as_str(), "prod");
        assert_eq!(enrolled.ca_sha256, ca_hash);
        ids.push(enrolled.id());
    }

    // --- nodes ---
    let out = ok(&cloud, &["node", "list"]);
    let rows = out.table();
    assert_eq!(rows.len(), 2, "{out}");
    let listed = json(&cloud, &["node", "list"]);
    assert_eq!(
        names(&listed),
        BTreeSet::from(["gw-1".to_owned(), "gw-2".to_owned()])
    );
    for node in listed.as_array().unwrap() {
        let name = node["name"].as_str().unwrap();
        let row = rows
            .iter()
            .find(|r| r["NAME"] == name)
            .unwrap_or_else(|| panic!("{out}"));
        let lag = node["lag"].as_u64().expect("lag is a number");
        assert_eq!(row["LAG"], lag.to_string(), "{out}");
        assert_eq!(row["ID"], node["id"].as_str().unwrap(), "{out}");
        assert_eq!(row["STATUS"], node["status"].as_str().unwrap(), "{out}");
        assert_eq!(row["PROFILE"], "raspberry-pi-4", "{out}");
        assert_eq!(row["ENVS"], "prod", "{out}");
        assert!(ids.contains(&node["id"].as_str().unwrap().to_owned()));
    }
    let in_prod = json(&cloud, &["node", "list", "--env", "prod"]);
    assert_eq!(in_prod.as_array().unwrap().len(), 2);
    let in_local = json(&cloud, &["node", "list", "--env", "local"]);
    assert_eq!(in_local.as_array().unwrap().len(), 0);

    let by_name = json(&cloud, &["node", "show", "gw-1"]);
    let by_id = json(&cloud, &["node", "show", &ids[0]]);
    assert_eq!(by_name["id"], ids[0].as_str());
    assert_eq!(by_name["id"], by_id["id"]);
    assert_eq!(by_id["name"], "gw-1");
    let out = ok(&cloud, &["node", "show", &ids[1]]);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("name:") && l.ends_with("gw-2")),
        "{out}"
    );
    assert!(out.stdout.lines().any(|l| l.starts_with("lag:")), "{out}");

    ok(&cloud, &["node", "rename", "gw-2", "gw-two"]);
    assert_eq!(json(&cloud, &["node", "show", &ids[1]])["name"], "gw-two");
    fails(&cloud, &["node", "show", "gw-2"], 4);

    ok(&cloud, &["node", "label", "gw-1", "zone=a", "rack=r1"]);
    let labels = &json(&cloud, &["node", "show", "gw-1"])["labels"];
    assert_eq!(labels["zone"], "a");
    assert_eq!(labels["rack"], "r1");
    ok(&cloud, &["node", "label", "gw-1", "rack-"]);
    let labels = json(&cloud, &["node", "show", "gw-1"])["labels"].clone();
    assert_eq!(labels, serde_json::json!({ "zone": "a" }));

    ok(&cloud, &["env", "create", "staging"]);
    ok(&cloud, &["node", "join", "gw-1", "--env", "staging"]);
    let envs = json(&cloud, &["node", "show", "gw-1"])["envs"].clone();
    assert_eq!(envs, serde_json::json!(["prod", "staging"]));
    assert_eq!(
        json(&cloud, &["env", "show", "staging"])["nodes"],
        serde_json::json!(["gw-1"])
    );
    ok(&cloud, &["node", "leave", "gw-1", "--env", "staging"]);
    assert_eq!(
        json(&cloud, &["node", "show", "gw-1"])["envs"],
        serde_json::json!(["prod"])
    );

    // --- apps ---
    let v1 = fixtures::write(dir.path(), "weather.yaml", &fixtures::weather("1.0.0")).unwrap();
    let v1 = v1.to_str().unwrap();
    let out = ok(&cloud, &["app", "publish", "-f", v1]);
    assert!(out.stdout.contains("weather@1.0.0"), "{out}");
    assert!(!out.stdout.contains("already"), "the first publish: {out}");
    let published = json(&cloud, &["app", "show", "weather@1.0.0"]);
    assert_eq!(
        published["seq"].as_u64(),
        Some(event_count(&cloud) as u64),
        "{published}"
    );
    let before = event_count(&cloud);
    let out = ok(&cloud, &["app", "publish", "-f", v1]);
    assert!(out.stdout.contains("already published"), "{out}");
    assert_eq!(
        event_count(&cloud),
        before,
        "a repeated publish recorded an event"
    );
    let changed = fixtures::write(
        dir.path(),
        "weather-changed.yaml",
        &fixtures::weather_with_description("1.0.0", "Something else"),
    )
    .unwrap();
    let out = fails(
        &cloud,
        &["app", "publish", "-f", changed.to_str().unwrap()],
        2,
    );
    assert!(
        out.stderr.contains("already published with other content"),
        "{out}"
    );
    assert!(out.stderr.contains("(field: version)"), "{out}");
    assert_eq!(event_count(&cloud), before);

    let out = ok(&cloud, &["app", "list"]);
    let rows = out.table();
    assert_eq!(rows.len(), 1, "{out}");
    assert_eq!(rows[0]["NAME"], "weather");
    assert_eq!(rows[0]["LATEST"], "1.0.0");
    assert_eq!(
        names(&json(&cloud, &["app", "list"])),
        BTreeSet::from(["weather".to_owned()])
    );
    let app = json(&cloud, &["app", "show", "weather"]);
    assert_eq!(app["versions"], serde_json::json!(["1.0.0"]));
    let out = ok(&cloud, &["app", "show", "weather"]);
    assert!(out.stdout.contains("1.0.0"), "{out}");
    let out = ok(&cloud, &["app", "show", "weather@1.0.0"]);
    assert!(out.stdout.contains("digest:"), "{out}");
    let components: Vec<String> = out
        .stdout
        .split("\n\n")
        .nth(1)
        .map(|t| {
            CliOutput {
                stdout: t.to_owned(),
                ..out.clone()
            }
            .table()
        })
        .unwrap_or_default()
        .iter()
        .map(|r| r["COMPONENT"].clone())
        .collect();
    assert_eq!(components, ["migrate", "db", "web"], "{out}");
    let version = json(&cloud, &["app", "show", "weather@1.0.0"]);
    assert_eq!(version["components"][2]["replicas"], 2);
    assert_eq!(
        version["components"][1]["depends_on"],
        serde_json::json!(["migrate"])
    );
    fails(&cloud, &["app", "show", "weather@9.9.9"], 4);

    // --- deploy: a dry run records nothing ---
    let deploy = [
        "deploy",
        "weather@1.0.0",
        "--env",
        "prod",
        "--name",
        "station",
        "--node",
        "gw-1=2",
        "--node",
        "gw-two",
        "--set",
        "db.TZ=Europe/Berlin",
    ];
    let before = event_count(&cloud);
    let mut dry = deploy.to_vec();
    dry.push("--dry-run");
    let out = ok(&cloud, &dry);
    let plan_line = |node: &str, id: &str, weight: &str| {
        out.stdout
            .lines()
            .any(|l| l.contains(node) && l.contains(id) && l.contains(weight))
    };
    assert!(
        plan_line("gw-1", &ids[0], "weight 2"),
        "no plan for gw-1:\n{out}"
    );
    assert!(
        plan_line("gw-two", &ids[1], "weight 1"),
        "no plan for gw-two:\n{out}"
    );
    assert!(out.stdout.contains("nothing was recorded"), "{out}");
    for component in ["migrate", "db", "web"] {
        assert!(
            out.stdout.contains(component),
            "the plan does not mention {component}:\n{out}"
        );
    }
    let mut dry_json = dry.clone();
    dry_json.extend(["-o", "json"]);
    let plan = ok(&cloud, &dry_json).json().unwrap();
    assert_eq!(plan["plan"].as_array().unwrap().len(), 2, "{plan}");
    assert_eq!(event_count(&cloud), before, "a dry run recorded events");
    fails(&cloud, &["status", "station"], 4);

    // --- deploy for real, and status ---
    let out = ok(&cloud, &deploy);
    assert!(
        out.stdout.contains("weather@1.0.0") && out.stdout.contains("station"),
        "{out}"
    );
    assert_eq!(event_count(&cloud), before + 1);
    let out = ok(&cloud, &["status"]);
    let rows = out.table();
    let mut expected = BTreeSet::new();
    for node in ["gw-1", "gw-two"] {
        for (component, replica) in [("migrate", 0), ("db", 0), ("web", 0), ("web", 1)] {
            expected.insert((node.to_owned(), component.to_owned(), replica.to_string()));
        }
    }
    let seen: BTreeSet<(String, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["NODE"].clone(),
                r["COMPONENT"].clone(),
                r["REPLICA"].clone(),
            )
        })
        .collect();
    assert_eq!(seen, expected, "{out}");
    assert!(
        rows.iter()
            .all(|r| r["STATE"] == "Pending" && r["INSTANCE"] == "station"),
        "{out}"
    );
    let status = json(&cloud, &["status", "station"]);
    assert_eq!(status["name"], "station");
    assert_eq!(status["status"].as_array().unwrap().len(), 8, "{status}");
    assert!(
        status["status"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["state"] == "Pending")
    );
    assert_eq!(status["set"], serde_json::json!(["db.TZ=Europe/Berlin"]));
    let weights: BTreeSet<(String, u64)> = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_owned(),
                t["weight"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        weights,
        BTreeSet::from([("gw-1".to_owned(), 2), ("gw-two".to_owned(), 1)])
    );
    assert_eq!(json(&cloud, &["status"]).as_array().unwrap().len(), 1);

    // --- events ---
    let all = json(&cloud, &["events"]);
    let all = all.as_array().unwrap();
    let seqs: Vec<u64> = all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=all.len() as u64).collect::<Vec<_>>());
    let out = ok(&cloud, &["events"]);
    let rows = out.table();
    assert_eq!(rows.len(), all.len(), "{out}");
    assert!(
        rows.iter().any(|r| r["KIND"] == "instance.deployed"),
        "{out}"
    );

    let of_node = json(&cloud, &["events", "--node", "gw-1"]);
    let of_node = of_node.as_array().unwrap();
    assert!(!of_node.is_empty());
    for e in of_node {
        let concerned = e["node_seqs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["node"] == ids[0].as_str());
        assert!(concerned, "event does not concern gw-1: {e}");
    }
    let kinds: BTreeSet<&str> = of_node
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "node.enrolled",
        "node.labelled",
        "node.joined",
        "node.left",
        "instance.deployed",
    ] {
        assert!(
            kinds.contains(kind),
            "no {kind} in events --node gw-1: {kinds:?}"
        );
    }
    let node_seqs: Vec<u64> = of_node
        .iter()
        .map(|e| {
            e["node_seqs"]
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["node"] == ids[0].as_str())
                .unwrap()["node_seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        node_seqs,
        (1..=of_node.len() as u64).collect::<Vec<_>>(),
        "node_seq has gaps"
    );
    // By id too.
    assert_eq!(
        json(&cloud, &["events", "--node", &ids[0]])
            .as_array()
            .unwrap()
            .len(),
        of_node.len()
    );

    let of_instance = json(&cloud, &["events", "--instance", "station"]);
    let kinds: Vec<&str> = of_instance
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["instance.deployed"]);
    assert_eq!(
        json(&cloud, &["events", "--since", "1h"])
            .as_array()
            .unwrap()
            .len(),
        all.len()
    );
    assert_eq!(
        json(&cloud, &["events", "--since", "2999-01-01T00:00:00Z"]),
        serde_json::json!([])
    );

    let out = ok(&cloud, &["events", "verify"]);
    assert!(out.stdout.starts_with("ok"), "{out}");
    assert!(
        out.stdout.contains(&format!("{} events", all.len())),
        "{out}"
    );
    let verified = json(&cloud, &["events", "verify"]);
    assert_eq!(verified["ok"], true);

    // --- undeploy ---
    let out = ok(&cloud, &["undeploy", "station"]);
    assert!(out.stdout.contains("station"), "{out}");
    fails(&cloud, &["status", "station"], 4);
    fails(&cloud, &["undeploy", "station"], 4);
    let of_instance = json(&cloud, &["events", "--instance", "station"]);
    let kinds: Vec<&str> = of_instance
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["instance.deployed", "instance.undeployed"]);
    ok(&cloud, &["events", "verify"]);
}

#[test]
fn refusals_and_failures_have_their_exit_codes() {
    let cloud = Cloud::start().unwrap();
    ok(&cloud, &["env", "create", "prod"]);

    // Not found: 4.
    fails(&cloud, &["env", "show", "nope"], 4);
    fails(&cloud, &["env", "delete", "nope"], 4);
    fails(&cloud, &["node", "token", "--env", "nope"], 4);
    fails(&cloud, &["node", "list", "--env", "nope"], 4);
    fails(&cloud, &["node", "show", "nope"], 4);
    fails(&cloud, &["app", "show", "nope"], 4);

    // Refused: 2, naming the field.
    let out = fails(&cloud, &["env", "create", "prod"], 2);
    assert!(out.stderr.contains("already exists"), "{out}");
    assert!(out.stderr.contains("(field: name)"), "{out}");
    let out = fails(&cloud, &["env", "create", "Not_A_Name"], 2);
    assert!(out.stderr.contains("(field: name)"), "{out}");
    let out = cli(&cloud, &["env", "create", "prod", "-o", "json"]);
    assert_eq!(out.code, 2, "{out}");
    let body: Value = serde_json::from_str(&out.stderr).unwrap_or_else(|e| panic!("{e}\n{out}"));
    assert_eq!(body["error"]["field"], "name", "{out}");

    // Malformed arguments: 2, before anything is sent.
    let before = cloud.api().unwrap().event_count().unwrap();
    for args in [
        &["env", "create"][..],
        &["env", "create", "x", "--label", "no-equals-sign"],
        &["node", "label", "gw-1", "neither"],
        &["deploy", "weather", "--env", "prod", "--name", "x"],
        &[
            "deploy",
            "weather@1.0.0",
            "--env",
            "prod",
            "--name",
            "x",
            "--node",
            "gw=heavy",
        ],
        &[
            "deploy",
            "weather@1.0.0",
            "--env",
            "prod",
            "--name",
            "x",
            "--set",
            "novar",
        ],
        &["events", "--since", "yesterday"],
        &["node", "token", "--env", "prod", "--ttl", "forever"],
        &["no-such-command"],
        &["env", "list", "-o", "yaml"],
    ] {
        let out = cli(&cloud, args);
        assert_eq!(out.code, 2, "{out}");
        assert!(out.stdout.is_empty(), "{out}");
        assert!(!out.stderr.is_empty(), "{out}");
    }
    assert_eq!(cloud.api().unwrap().event_count().unwrap(), before);

    // Unreachable: 1.
    let closed = format!("http://127.0.0.1:{}", free_port().unwrap());
    let out = cli_at(&closed, &["env", "list"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("cannot reach the cloud"), "{out}");
    assert!(out.stdout.is_empty(), "{out}");
}

#[test]
fn events_follow_prints_new_events_as_json_lines() {
    let cloud = Cloud::start().unwrap();
    let mut follow = CliStream::start(&cloud, &["events", "--follow", "-o", "json"]).unwrap();
    // The backlog first: the bootstrap's `local` environment.
    let first = follow
        .wait_for_line(Duration::from_secs(30), |_| true)
        .unwrap();
    let first: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["seq"], 1);
    assert_eq!(first["kind"], "environment.created");

    ok(&cloud, &["env", "create", "followed"]);
    let line = follow
        .wait_for_line(Duration::from_secs(30), |line| {
            serde_json::from_str::<Value>(line).is_ok_and(|e| {
                e["kind"] == "environment.created" && e["summary"] == "environment followed"
            })
        })
        .unwrap();
    let event: Value = serde_json::from_str(&line).unwrap();
    assert!(event["seq"].as_u64().unwrap() > 1);
    // Every line is one JSON event, in order, with no gaps.
    let seqs: Vec<u64> = follow
        .seen()
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    follow.kill().unwrap();
}
