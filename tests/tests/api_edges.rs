//! Edges of the API and the CLI where bugs were once found: names that read as ids, error
//! shapes for query strings and methods, far-off times, and routes of later releases.

// Tests and their helpers fail loudly: unwrap and expect are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::Method;
use skerry_shared::clock::Timestamp;
use skerry_tests::{Cloud, TestNode, cli};

fn cloud_with_nodes(names: &[&str]) -> (Cloud, Vec<String>) {
    let cloud = Cloud::start().unwrap();
    let out = cli(&cloud, &["env", "create", "prod"]);
    assert_eq!(out.code, 0, "{out}");
    let api = cloud.api().unwrap();
    let ids = names
        .iter()
        .map(|name| {
            let token = api.enrollment_token("prod", None).unwrap();
            TestNode::new(name)
                .unwrap()
                .enroll(&api, &token)
                .unwrap()
                .id()
        })
        .collect();
    (cloud, ids)
}

/// Every command accepts a node's name or its id, so a name that is another node's id makes
/// one of them unreachable by that word: `node rename gw-2 <id of gw-1>` is accepted, and
/// `node label <id of gw-1> ...` then changes gw-1, not the node with that name.
#[test]
fn a_node_cannot_be_named_like_a_node_id() {
    let (cloud, ids) = cloud_with_nodes(&["gw-1", "gw-2"]);
    let out = cli(&cloud, &["node", "rename", "gw-2", &ids[0]]);
    assert_eq!(out.code, 2, "a name that is a node id was accepted:\n{out}");
    assert!(out.stderr.contains("(field: name)"), "{out}");
}

/// Every error, a bad query string and an unsupported method included, is `{"error": {...}}`.
#[test]
fn every_api_error_has_the_error_shape() {
    let cloud = Cloud::start().unwrap();
    let api = cloud.api().unwrap();
    let mut wrong = Vec::new();
    for (method, path) in [
        (Method::GET, "/api/v1/events?limit=abc"),
        (Method::GET, "/api/v1/nodes?bogus=1"),
        (Method::DELETE, "/api/v1/instances/x?purge=maybe"),
        (Method::PUT, "/api/v1/environments"),
    ] {
        let answer = api.request(method.clone(), path, None).unwrap();
        assert!(answer.status >= 400, "{method} {path}: {}", answer.status);
        if answer.error_code().is_none() {
            wrong.push(format!(
                "{method} {path} -> {} {:?}",
                answer.status, answer.body
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "not in the error shape:\n{}",
        wrong.join("\n")
    );
}

/// `node token --ttl 300000years` is accepted and answers `"expires": "9469075312816882"`,
/// which is not an RFC 3339 time (it is past the year 9999).
#[test]
fn a_token_expiry_is_always_rfc3339() {
    let cloud = Cloud::start().unwrap();
    cli(&cloud, &["env", "create", "prod"]);
    let out = cli(
        &cloud,
        &[
            "node",
            "token",
            "--env",
            "prod",
            "--ttl",
            "300000years",
            "-o",
            "json",
        ],
    );
    if out.code == 0 {
        let expires = out.json().unwrap()["expires"].as_str().unwrap().to_owned();
        assert!(
            expires.contains('T'),
            "expires {expires:?} is not RFC 3339:\n{out}"
        );
        Timestamp::parse_cli(&expires, Timestamp::now()).unwrap();
    } else {
        assert_eq!(out.code, 2, "{out}");
        assert!(out.stderr.contains("ttl"), "{out}");
    }
}

/// `events --since 100000000d` is refused (right) with a message about a number the user
/// never typed: `"-8638204687183110" is neither an RFC 3339 time ...` — the CLI turned the
/// duration into a time that `to_rfc3339` cannot format and sent the raw milliseconds.
#[test]
fn a_since_out_of_range_is_refused_in_the_users_words() {
    let cloud = Cloud::start().unwrap();
    let out = cli(&cloud, &["events", "--since", "100000000d"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(!out.stderr.contains("-86"), "{out}");
    assert!(out.stderr.contains("100000000d"), "{out}");
}

/// A rollout of an instance that does not exist is 404 in the error shape, and the CLI
/// exits 4.
#[test]
fn a_rollout_of_an_unknown_instance_is_not_found() {
    let cloud = Cloud::start().unwrap();
    let api = cloud.api().unwrap();
    let answer = api
        .request(
            Method::POST,
            "/api/v1/instances/demo-1/rollback",
            Some((b"{}".to_vec(), "application/json")),
        )
        .unwrap();
    assert_eq!(answer.status, 404);
    assert_eq!(answer.error_code().as_deref(), Some("unknown_instance"));
    let out = cli(&cloud, &["rollback", "demo-1"]);
    assert_eq!(out.code, 4, "{out}");
}
