//! Enrollment against a real `skerry serve`: one-time tokens, expiry, CSR checks, the CA a
//! token pins, and the CA key's file mode.

// Tests and their helpers fail loudly: unwrap and expect are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::Value;
use skerry_shared::clock::Timestamp;
use skerry_shared::enroll::EnrollmentToken;
use skerry_shared::hash::Digest;
use skerry_tests::{Api, Cloud, HttpResponse, TestNode, cli, wait_until};

fn setup() -> (Cloud, Api) {
    let cloud = Cloud::start().unwrap();
    let out = cli(&cloud, &["env", "create", "prod"]);
    assert_eq!(out.code, 0, "{out}");
    let api = cloud.api().unwrap();
    (cloud, api)
}

/// `skerry node token --env ENV [ARGS...]`, the token alone on stdout.
fn token(cloud: &Cloud, extra: &[&str]) -> String {
    let mut args = vec!["node", "token", "--env", "prod"];
    args.extend(extra);
    let out = cli(cloud, &args);
    assert_eq!(out.code, 0, "{out}");
    out.stdout.trim().to_owned()
}

fn node_count(api: &Api) -> usize {
    api.get_json("/api/v1/nodes")
        .unwrap()
        .as_array()
        .unwrap()
        .len()
}

fn enrolled_events(api: &Api) -> usize {
    api.events()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "node.enrolled")
        .count()
}

/// A refusal in the API's error shape: the status, a code, and the field.
fn assert_refused(answer: &HttpResponse, status: u16, field: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert!(
        answer.error_code().is_some_and(|c| !c.is_empty()),
        "{}",
        answer.body
    );
    assert_eq!(
        answer.error_field().as_deref(),
        Some(field),
        "{}",
        answer.body
    );
}

/// The SHA-256 of the DER of the CA certificate in `cloud`'s keys directory.
fn ca_hash(cloud: &Cloud) -> Digest {
    let pem = std::fs::read(cloud.data_dir().join("keys/ca.crt")).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    Digest::of(&pem.contents)
}

#[test]
fn a_token_enrolls_one_node_only() {
    let (cloud, api) = setup();
    let t = token(&cloud, &[]);
    let first = TestNode::new("gw-1").unwrap().enroll(&api, &t).unwrap();
    assert_eq!(first.ca_sha256, ca_hash(&cloud));
    assert_eq!(node_count(&api), 1);

    let again = TestNode::new("gw-2").unwrap().try_enroll(&api, &t).unwrap();
    assert_refused(&again, 403, "token");
    // The same node trying again with its own CSR is refused as well.
    let same = TestNode::new("gw-1").unwrap().try_enroll(&api, &t).unwrap();
    assert_refused(&same, 403, "token");
    assert_eq!(node_count(&api), 1, "a reused token made a node");
    assert_eq!(enrolled_events(&api), 1);
    let nodes = api.get_json("/api/v1/nodes").unwrap();
    assert_eq!(nodes[0]["id"], first.id().as_str());
}

#[test]
fn an_expired_token_is_refused() {
    let (cloud, api) = setup();
    let out = cli(
        &cloud,
        &[
            "node", "token", "--env", "prod", "--ttl", "1s", "-o", "json",
        ],
    );
    assert_eq!(out.code, 0, "{out}");
    let issued: Value = out.json().unwrap();
    let t = issued["token"].as_str().unwrap().to_owned();
    let expires =
        Timestamp::parse_cli(issued["expires"].as_str().unwrap(), Timestamp::now()).unwrap();
    let left = expires.millis() - Timestamp::now().millis();
    assert!(
        (0..=1_000).contains(&left),
        "a 1s token expires in {left} ms"
    );
    // Expiry is time itself: wait for the clock to pass the token's expiry (at most ~1 s).
    assert!(wait_until(Duration::from_secs(2), || Timestamp::now() > expires));

    let answer = TestNode::new("late").unwrap().try_enroll(&api, &t).unwrap();
    assert_refused(&answer, 403, "token");
    assert_eq!(node_count(&api), 0);
    assert_eq!(enrolled_events(&api), 0);
}

#[test]
fn a_garbage_csr_is_refused_and_does_not_use_the_token() {
    let (cloud, api) = setup();
    let t = token(&cloud, &[]);
    let node = TestNode::new("gw-1").unwrap();
    let before = api.event_count().unwrap();
    for garbage in [
        "not a CSR",
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        "",
    ] {
        let answer = node.try_enroll_with_csr(&api, &t, garbage).unwrap();
        assert_refused(&answer, 400, "csr");
    }
    // A CSR whose signature does not match its key: the PEM of one node, tampered.
    let other = TestNode::new("gw-2").unwrap();
    let mut tampered: Vec<char> = other.csr_pem().chars().collect();
    let at = (tampered.len() / 2..tampered.len())
        .find(|&i| tampered[i].is_ascii_alphanumeric())
        .unwrap();
    tampered[at] = if tampered[at] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();
    let answer = node.try_enroll_with_csr(&api, &t, &tampered).unwrap();
    assert_refused(&answer, 400, "csr");

    assert_eq!(node_count(&api), 0);
    assert_eq!(
        api.event_count().unwrap(),
        before,
        "a refused enrollment recorded events"
    );
    // The refusals did not use the token up.
    node.enroll(&api, &t).unwrap();
    assert_eq!(node_count(&api), 1);
}

#[test]
fn a_taken_name_is_refused_and_does_not_use_the_token() {
    let (cloud, api) = setup();
    TestNode::new("gw-1")
        .unwrap()
        .enroll(&api, &token(&cloud, &[]))
        .unwrap();
    let t = token(&cloud, &[]);
    let answer = TestNode::new("gw-1").unwrap().try_enroll(&api, &t).unwrap();
    assert_refused(&answer, 409, "name");
    assert_eq!(node_count(&api), 1);
    TestNode::new("gw-2").unwrap().enroll(&api, &t).unwrap();
    assert_eq!(node_count(&api), 2);
}

#[test]
fn a_token_of_one_cloud_is_refused_by_another() {
    let (a, api_a) = setup();
    let (b, api_b) = setup();
    let t = token(&a, &[]);
    let pinned = t.parse::<EnrollmentToken>().unwrap().ca;
    assert_eq!(pinned, ca_hash(&a));
    assert_ne!(pinned, ca_hash(&b), "two clouds share a CA");

    let answer = TestNode::new("gw-1")
        .unwrap()
        .try_enroll(&api_b, &t)
        .unwrap();
    assert_refused(&answer, 403, "token");
    assert_eq!(node_count(&api_b), 0);

    // Had cloud B signed anyway, the agent's check would refuse B's CA: B's own token
    // enrolls at B and pins B's CA, which is not the one A's token pins.
    let tb = token(&b, &[]);
    let at_b = TestNode::new("gw-1").unwrap().enroll(&api_b, &tb).unwrap();
    assert_ne!(at_b.ca_sha256, pinned);
    let node = TestNode::new("gw-1").unwrap();
    let mismatch = node.check(&t.parse().unwrap(), &at_b.response);
    assert!(
        mismatch.is_err(),
        "an answer from cloud B passed the check against A's token"
    );

    // A's token is still good at A.
    node.enroll(&api_a, &t).unwrap();
    assert_eq!(node_count(&api_a), 1);
}

#[cfg(unix)]
#[test]
fn the_ca_key_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;

    let (cloud, _api) = setup();
    let key = cloud.data_dir().join("keys/ca.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{} has mode {mode:o}", key.display());
    let text = std::fs::read_to_string(&key).unwrap();
    assert!(
        text.contains("PRIVATE KEY"),
        "{} holds no private key",
        key.display()
    );
}
