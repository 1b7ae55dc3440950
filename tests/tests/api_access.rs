//! API tokens against a real `skerry serve`: no token is 401, a role below the route's is
//! 403 (CLI exit 5), a token limited to one environment sees nothing of another (left out
//! of lists, 404), a revoked token's next request is 401 and stays revoked across a
//! restart, the admin token is made once, and every route of the table holds for every
//! role (the table is printed).

// Tests and their helpers fail loudly: unwrap and expect are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt as _;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use reqwest::Method;
use serde_json::Value;
use skerry_cloud::api::auth::ROUTES;
use skerry_shared::access::Role;
use skerry_tests::{CliOutput, Cloud, TestNode, cli, cli_as, fixtures};

fn ok(out: CliOutput) -> CliOutput {
    assert_eq!(out.code, 0, "{out}");
    out
}

/// A new token of `role`, limited to `envs`, made with the CLI as the admin.
fn token(cloud: &Cloud, role: &str, envs: &[&str]) -> String {
    let mut args = vec!["token", "create", "--role", role];
    for e in envs {
        args.extend(["--env", e]);
    }
    ok(cli(cloud, &args)).stdout.trim().to_owned()
}

fn names(v: &Value, key: &str) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x[key].as_str().unwrap().to_owned())
        .collect()
}

/// `token` with the last digit of its secret changed: the same id, another secret.
fn other_secret(token: &str) -> String {
    let (head, last) = token.split_at(token.len() - 1);
    format!("{head}{}", if last == "0" { "1" } else { "0" })
}

/// Two environments, a node in each, the app `weather` and an instance in each.
fn two_plants(cloud: &Cloud) {
    let api = cloud.api().unwrap();
    for env in ["plant-a", "plant-b"] {
        ok(cli(cloud, &["env", "create", env]));
        let t = api.enrollment_token(env, None).unwrap();
        TestNode::new(&format!("gw-{env}"))
            .unwrap()
            .enroll(&api, &t)
            .unwrap();
    }
    let manifest =
        fixtures::write(cloud.dir(), "weather.yaml", &fixtures::weather("1.0.0")).unwrap();
    ok(cli(
        cloud,
        &["app", "publish", "-f", manifest.to_str().unwrap()],
    ));
    for env in ["plant-a", "plant-b"] {
        ok(cli(
            cloud,
            &[
                "deploy",
                "weather@1.0.0",
                "--env",
                env,
                "--name",
                &format!("w-{env}"),
                "--node",
                &format!("gw-{env}"),
            ],
        ));
    }
}

#[test]
fn tokens_roles_and_scopes_hold_and_a_revocation_is_kept() {
    let mut cloud = Cloud::start().unwrap();
    // The admin token: written once, 0600, printed once on standard output.
    let file = cloud.data_dir().join("admin.token");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap().trim(),
        cloud.token()
    );
    let stdout = std::fs::read_to_string(cloud.dir().join("serve.stdout.log")).unwrap();
    assert!(
        stdout.contains(&format!("admin token: {}", cloud.token())),
        "{stdout}"
    );
    let stderr = std::fs::read_to_string(cloud.dir().join("serve.stderr.log")).unwrap();
    assert!(!stderr.contains(cloud.token()), "the token reached the log");
    two_plants(&cloud);

    // No token, a malformed one, an unknown one: 401, CLI exit 5.
    for t in [None, Some("nope"), Some(&*other_secret(cloud.token()))] {
        let out = cli_as(&cloud, t, &["env", "list"]);
        assert_eq!(out.code, 5, "{out}");
        assert!(out.stderr.contains("API token"), "{out}");
    }

    // A viewer reads, and may not deploy (403, exit 5).
    let viewer = token(&cloud, "viewer", &[]);
    ok(cli_as(&cloud, Some(&viewer), &["env", "list"]));
    let out = cli_as(
        &cloud,
        Some(&viewer),
        &[
            "deploy",
            "weather@1.0.0",
            "--env",
            "plant-a",
            "--name",
            "w-2",
            "--node",
            "gw-plant-a",
        ],
    );
    assert_eq!(out.code, 5, "{out}");
    assert!(out.stderr.contains("needs the operator role"), "{out}");

    // An operator of plant-a sees plant-a only.
    let operator = token(&cloud, "operator", &["plant-a"]);
    let as_op = |args: &[&str]| cli_as(&cloud, Some(&operator), args);
    let envs = ok(as_op(&["-o", "json", "env", "list"])).json().unwrap();
    assert_eq!(names(&envs, "name"), ["plant-a"]);
    let nodes = ok(as_op(&["-o", "json", "node", "list"])).json().unwrap();
    assert_eq!(names(&nodes, "name"), ["gw-plant-a"]);
    let instances = ok(as_op(&["-o", "json", "status"])).json().unwrap();
    assert_eq!(names(&instances, "name"), ["w-plant-a"]);
    for args in [
        &["env", "show", "plant-b"][..],
        &["node", "show", "gw-plant-b"],
        &["status", "w-plant-b"],
        &["undeploy", "w-plant-b"],
        &["node", "label", "gw-plant-b", "zone=x"],
        &["node", "token", "--env", "plant-b"],
        &["events", "--instance", "w-plant-b"],
        &["logs", "w-plant-b"],
    ] {
        let out = as_op(args);
        assert_eq!(out.code, 4, "{out}");
    }
    let out = as_op(&[
        "deploy",
        "weather@1.0.0",
        "--env",
        "plant-b",
        "--name",
        "w-b2",
        "--node",
        "gw-plant-b",
    ]);
    assert_eq!(out.code, 4, "{out}");
    // What it may do, it does, under its own name.
    ok(as_op(&["node", "label", "gw-plant-a", "zone=north"]));
    let events = ok(as_op(&["-o", "json", "events"])).json().unwrap();
    let summaries: Vec<String> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["summary"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        summaries.iter().any(|s| s.contains("w-plant-a")),
        "{summaries:?}"
    );
    assert!(
        !summaries.iter().any(|s| s.contains("plant-b")),
        "an operator of plant-a reads plant-b's events: {summaries:?}"
    );
    let tokens = ok(cli(&cloud, &["-o", "json", "token", "list"]))
        .json()
        .unwrap();
    let operator_id = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["role"] == "operator")
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .unwrap();
    let by_operator = ok(cli(
        &cloud,
        &["-o", "json", "events", "--actor", &operator_id],
    ))
    .json()
    .unwrap();
    let kinds: Vec<&str> = by_operator
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["node.labelled"]);
    assert_eq!(
        by_operator[0]["actor"].as_str().unwrap(),
        format!("token:{operator_id}(operator)")
    );
    // The list never shows a secret.
    let listed = ok(cli(&cloud, &["token", "list"])).stdout;
    assert!(!listed.contains(&operator[40..]), "{listed}");

    // A revoked token's next request is 401, and stays so after a restart.
    ok(cli(&cloud, &["token", "revoke", &operator_id]));
    let out = as_op(&["env", "list"]);
    assert_eq!(out.code, 5, "{out}");
    assert!(out.stderr.contains("revoked"), "{out}");
    let admin = cloud.token().to_owned();
    cloud.restart().unwrap();
    assert_eq!(cloud.token(), admin, "a later start keeps the admin token");
    let stdout = std::fs::read_to_string(cloud.dir().join("serve.stdout.log")).unwrap();
    assert!(stdout.contains("admin token: in "), "{stdout}");
    assert_eq!(stdout.matches("admin token: ska1").count(), 1, "{stdout}");
    let out = cli_as(&cloud, Some(&operator), &["env", "list"]);
    assert_eq!(out.code, 5, "{out}");
    ok(cli_as(&cloud, Some(&viewer), &["env", "list"]));
}

/// A path of the table with its parameters filled in.
fn concrete(path: &str) -> String {
    path.replace("{env}", "plant-a")
        .replace("{node}", "gw-plant-a")
        .replace("{app}", "weather")
        .replace("{version}", "1.0.0")
        .replace("{name}", "no-such-thing")
        .replace("{id}", "00000000000000000000000000000000")
}

#[test]
fn every_route_refuses_every_role_below_its_own() {
    let cloud = Cloud::start().unwrap();
    two_plants(&cloud);
    let tokens: Vec<(String, Option<String>)> = vec![
        ("none".to_owned(), None),
        (
            "bad".to_owned(),
            Some(format!("ska1.{}.{}", "0".repeat(32), "0".repeat(64))),
        ),
        ("viewer".to_owned(), Some(token(&cloud, "viewer", &[]))),
        ("operator".to_owned(), Some(token(&cloud, "operator", &[]))),
        ("admin".to_owned(), Some(cloud.token().to_owned())),
    ];
    let rt = skerry_tests::http::runtime();
    let http = skerry_tests::http::http_client().unwrap();
    let status = |method: &Method, path: &str, token: Option<&str>| -> u16 {
        rt.block_on(async {
            let mut req = http
                .request(method.clone(), format!("{}{path}", cloud.url()))
                .header("content-type", "application/json")
                .body("{}");
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            req.send().await.unwrap().status().as_u16()
        })
    };
    let mut table = format!(
        "{:<7} {:<44} {:<9} {}\n",
        "METHOD", "ROUTE", "NEEDS", "none bad viewer operator admin"
    );
    for route in ROUTES {
        let path = concrete(route.path);
        let mut cells = Vec::new();
        for (who, t) in &tokens {
            // The event streams are read without following, so each answers.
            let got = status(&route.method, &path, t.as_deref());
            let role = who.parse::<Role>().ok();
            match role {
                None => assert_eq!(got, 401, "{who} {} {path}", route.method),
                Some(r) if !r.includes(route.role) => {
                    assert_eq!(got, 403, "{who} {} {path}", route.method);
                }
                Some(_) => assert!(
                    got != 401 && got != 403,
                    "{who} {} {path}: {got}",
                    route.method
                ),
            }
            cells.push(got.to_string());
        }
        table.push_str(&format!(
            "{:<7} {:<44} {:<9} {}\n",
            route.method.as_str(),
            route.path,
            route.role.as_str(),
            cells.join(" ")
        ));
    }
    println!("{table}");

    // Tokens that are almost right are refused as no token is.
    let admin = cloud.token().to_owned();
    let mut runner = TestRunner::new(Config {
        cases: 200,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&(0..admin.len(), 1u8..=255), |(at, by)| {
            let mut bytes = admin.clone().into_bytes();
            bytes[at] = bytes[at].wrapping_add(by);
            if let Ok(changed) = String::from_utf8(bytes)
                && changed.to_ascii_lowercase() != admin
                && reqwest::header::HeaderValue::from_str(&format!("Bearer {changed}")).is_ok()
            {
                let got = status(&Method::GET, "/api/v1/environments", Some(&changed));
                prop_assert_eq!(got, 401, "{}", changed);
            }
            Ok(())
        })
        .unwrap();
}

/// What a token limited to one environment must not learn or change through another's
/// objects: a node shared by two environments, an app's instances, a gone instance's
/// events and lines, a node named in a deploy, and a follow that outlives its token.
#[test]
fn a_scoped_token_reaches_nothing_of_another_environment_through_shared_objects() {
    let cloud = Cloud::start().unwrap();
    two_plants(&cloud);
    // gw-plant-b is in plant-b and local too.
    ok(cli(
        &cloud,
        &["node", "join", "gw-plant-b", "--env", "local"],
    ));
    ok(cli(&cloud, &["undeploy", "w-plant-b"]));
    let operator = token(&cloud, "operator", &["local", "plant-a"]);
    let as_op = |args: &[&str]| cli_as(&cloud, Some(&operator), args);

    // The shared node: its other environment and instances are not shown...
    let node = ok(as_op(&["-o", "json", "node", "show", "gw-plant-b"]))
        .json()
        .unwrap();
    assert_eq!(node["envs"], serde_json::json!(["local"]), "{node}");
    // ...and it may not be changed for all of them.
    for args in [
        &["node", "label", "gw-plant-b", "zone=x"][..],
        &["node", "rename", "gw-plant-b", "gw-x"],
        &["node", "remove", "gw-plant-b"],
    ] {
        let out = as_op(args);
        assert_eq!(out.code, 5, "{out}");
        assert!(!out.stderr.contains("plant-b\""), "{out}");
    }
    // An app lists only the instances the token sees.
    let app = ok(as_op(&["-o", "json", "app", "show", "weather"]))
        .json()
        .unwrap();
    assert_eq!(app["instances"], serde_json::json!(["w-plant-a"]), "{app}");
    // A gone instance of plant-b: neither its events nor its lines.
    assert_eq!(as_op(&["events", "--instance", "w-plant-b"]).code, 4);
    assert_eq!(as_op(&["logs", "w-plant-b"]).code, 4);
    let events = ok(as_op(&["-o", "json", "events"])).json().unwrap();
    for e in events.as_array().unwrap() {
        let summary = e["summary"].as_str().unwrap();
        assert!(!summary.contains("w-plant-b"), "{summary}");
    }
    // A deploy that names a node of plant-b only: unknown, as a node that does not exist.
    ok(cli(&cloud, &["env", "create", "plant-c"]));
    let out = as_op(&[
        "deploy",
        "weather@1.0.0",
        "--env",
        "plant-a",
        "--name",
        "w-x",
        "--node",
        "gw-plant-a",
        "--node",
        "gw-nowhere",
    ]);
    assert_eq!(out.code, 4, "{out}");

    // A follow ends once its token is revoked.
    let rt = skerry_tests::http::runtime();
    let http = skerry_tests::http::http_client().unwrap();
    let url = format!("{}/api/v1/events?follow=true", cloud.url());
    let id = token_id(&cloud, "operator");
    rt.block_on(async {
        let mut answer = http.get(&url).bearer_auth(&operator).send().await.unwrap();
        assert_eq!(answer.status().as_u16(), 200);
        // The backlog arrives.
        answer.chunk().await.unwrap().unwrap();
        let revoke = cli(&cloud, &["token", "revoke", &id]);
        assert_eq!(revoke.code, 0, "{revoke}");
        let ended = tokio::time::timeout(std::time::Duration::from_secs(30), async {
            while let Ok(Some(_)) = answer.chunk().await {}
        })
        .await;
        assert!(ended.is_ok(), "the revoked token's follow went on");
    });
}

/// The id of the first token of `role` that `token list` shows.
fn token_id(cloud: &Cloud, role: &str) -> String {
    let tokens = ok(cli(cloud, &["-o", "json", "token", "list"]))
        .json()
        .unwrap();
    tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["role"] == role && t["state"] == "active")
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .unwrap()
}
