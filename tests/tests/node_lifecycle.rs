//! A node's lifecycle against a real `skerry serve`, real `skerry-edge run` agents (with
//! the process runtime and a real process) and Debian's `mosquitto_sub` showing a node's
//! certificate:
//!
//! - `node remove` closes the node's open session within a second (an agent's, once it acknowledged its removal, and a
//!   `mosquitto_sub`'s that never said hello); the agent stops and removes its app and
//!   forgets its identity; its certificate is refused from then on, by `mosquitto_sub` and
//!   by an agent given the saved identity back;
//! - with a node certificate lifetime of a few seconds, an agent renews its certificate
//!   over and over and keeps its link and its app (the same pid throughout);
//! - an agent whose certificate expired while it was off says why and keeps its app
//!   running; `mosquitto_sub` with that certificate is refused at the handshake.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use skerry_tests::agent::Agent;
use skerry_tests::cli::{deploy, publish};
use skerry_tests::mqtt::Mosquitto;
use skerry_tests::{Cloud, cli, wait_for};

const CONVERGE: Duration = Duration::from_secs(30);
const CLIENT_DEADLINE: Duration = Duration::from_secs(20);

/// A service that sleeps, on the process runtime.
fn sleeper(app: &str) -> String {
    format!(
        "app: {app}\nversion: 1.0.0\ncomponents:\n  - name: sleeper\n    exec: [\"/bin/sleep\", \"3600\"]\n    restart: always\n"
    )
}

/// The pid the process runtime recorded for `instance`'s sleeper, while it is alive.
fn running_pid(agent: &Agent, instance: &str) -> Option<u32> {
    let path = agent
        .data_dir()
        .join("process/replicas")
        .join(format!("{instance}.sleeper.0.json"));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let pid = u32::try_from(v["pid"].as_u64()?).ok()?;
    alive(pid).then_some(pid)
}

/// A process that exists and is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        !matches!(state, Some("Z" | "X"))
    })
}

/// Deploys a sleeper on `agent` and waits for its process.
fn deploy_sleeper(cloud: &Cloud, agent: &Agent, env: &str, app: &str) -> u32 {
    publish(cloud, agent.dir(), app, &sleeper(app)).unwrap();
    deploy(cloud, &format!("{app}@1.0.0"), env, app, agent.name()).unwrap();
    wait_for(CONVERGE, || running_pid(agent, app))
        .unwrap_or_else(|| panic!("{app} did not start:\n{}", agent.logs()))
}

/// Copies the agent's identity files (certificate, key, CA) to `to`.
fn save_identity(agent: &Agent, to: &Path) -> PathBuf {
    let from = agent.data_dir().join("identity");
    std::fs::create_dir_all(to).unwrap();
    for f in ["node.crt", "node.key", "ca.crt", "node.json"] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
    to.to_owned()
}

/// How many lines of the cloud's log mention `node` and `what`.
fn cloud_lines(cloud: &Cloud, node: &str, what: &str) -> usize {
    let path = cloud.dir().join("serve.stderr.log");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains(node) && l.contains(what))
        .count()
}

fn node_connected(cloud: &Cloud, name: &str) -> bool {
    let out = cli(cloud, &["node", "show", name, "-o", "json"]);
    out.code == 0 && out.json().is_ok_and(|v| v["last_seen"].is_string())
}

/// `mosquitto_sub` on the node's own down topic, showing the identity saved in `dir`.
fn mosquitto(cloud: &Cloud, dir: &Path) -> Mosquitto {
    Mosquitto::new("127.0.0.1", cloud.mqtt_addr().port(), &dir.join("ca.crt"))
        .with_cert(&dir.join("node.crt"), &dir.join("node.key"))
}

#[tokio::test(flavor = "multi_thread")]
async fn node_remove_closes_the_session_at_once_and_the_node_never_comes_back() {
    let cloud = Cloud::start().unwrap();
    assert_eq!(cli(&cloud, &["env", "create", "plant"]).code, 0);
    let mut agent =
        Agent::enroll_with(&cloud, "plant", "gw-rm", &["--runtime", "process"]).unwrap();
    let node = agent.node_id().unwrap();
    let pid = deploy_sleeper(&cloud, &agent, "plant", "sleepy");
    assert!(wait_for(CONVERGE, || node_connected(&cloud, "gw-rm").then_some(())).is_some());
    let saved = save_identity(&agent, &agent.dir().join("saved-identity"));
    let closed_before = cloud_lines(&cloud, &node, "MQTT: session closed");

    // Timed from before the command: its answer comes once the removal is durable.
    let removed = Instant::now();
    let out = cli(&cloud, &["node", "remove", "gw-rm"]);
    assert_eq!(out.code, 0, "{out}");
    let closed = wait_for(Duration::from_secs(5), || {
        (cloud_lines(&cloud, &node, "MQTT: session closed") > closed_before)
            .then(|| removed.elapsed())
    })
    .unwrap_or_else(|| panic!("the session was not closed:\n{}", cloud.logs()));
    println!("node remove: the agent's session closed {closed:?} after `node remove` started");
    assert!(closed < Duration::from_secs(1), "closed after {closed:?}");

    // The agent stops and removes its app, forgets its identity and says so.
    assert!(
        wait_for(CONVERGE, || (!alive(pid)).then_some(())).is_some(),
        "the app still runs:\n{}",
        agent.logs()
    );
    assert!(
        wait_for(CONVERGE, || agent
            .logs()
            .contains("this node was removed from the cloud")
            .then_some(()))
        .is_some(),
        "{}",
        agent.logs()
    );
    let identity = agent.data_dir().join("identity");
    assert!(!identity.join("node.json").exists() && !identity.join("node.key").exists());
    assert!(!identity.join("node.crt").exists());
    // The cloud knows it no more; its name is free.
    assert_ne!(cli(&cloud, &["node", "show", "gw-rm"]).code, 0);
    let events = cli(&cloud, &["events", "-o", "json"]);
    assert!(events.stdout.contains("node.removed"), "{events}");

    // mosquitto_sub with the node's certificate: refused at connect.
    let down = format!("skerry/v1/nodes/{node}/down");
    let sub = mosquitto(&cloud, &saved).sub(&down, &["-C", "1"]).unwrap();
    let got = sub.finish(CLIENT_DEADLINE).await.unwrap();
    assert!(!got.timed_out && got.code != Some(0), "{got:?}");
    assert!(got.stderr.contains("not authori"), "{got:?}");

    // The agent given its old identity back: refused, it never gets a session.
    agent.kill9().unwrap();
    let restored = agent.data_dir().join("identity");
    std::fs::create_dir_all(&restored).unwrap();
    for f in ["node.crt", "node.key", "ca.crt", "node.json"] {
        std::fs::copy(saved.join(f), restored.join(f)).unwrap();
    }
    let refused_before = cloud_lines(&cloud, &node, "session refused");
    agent.restart().unwrap();
    assert!(
        wait_for(CONVERGE, || (cloud_lines(&cloud, &node, "session refused")
            > refused_before)
            .then_some(()))
        .is_some(),
        "{}",
        cloud.logs()
    );
    assert!(
        wait_for(CONVERGE, || agent
            .logs()
            .contains("NotAuthorized")
            .then_some(()))
        .is_some(),
        "{}",
        agent.logs()
    );
    assert!(!node_connected(&cloud, &node));
    // A new node may take the name.
    let again = Agent::enroll(&cloud, "plant", "gw-rm").unwrap();
    assert_ne!(again.node_id().unwrap(), node);
}

#[tokio::test(flavor = "multi_thread")]
async fn node_remove_closes_a_session_that_never_said_hello() {
    let cloud = Cloud::start().unwrap();
    assert_eq!(cli(&cloud, &["env", "create", "plant"]).code, 0);
    let mut agent = Agent::enroll(&cloud, "plant", "gw-quiet").unwrap();
    let node = agent.node_id().unwrap();
    let saved = save_identity(&agent, &agent.dir().join("saved-identity"));
    agent.kill9().unwrap();

    let opened_before = cloud_lines(&cloud, &node, "MQTT: session opened");
    let down = format!("skerry/v1/nodes/{node}/down");
    let sub = mosquitto(&cloud, &saved).sub(&down, &["-v"]).unwrap();
    assert!(
        wait_for(CONVERGE, || (cloud_lines(
            &cloud,
            &node,
            "MQTT: session opened"
        ) > opened_before)
            .then_some(()))
        .is_some(),
        "{}",
        cloud.logs()
    );
    let closed_before = cloud_lines(&cloud, &node, "MQTT: session closed");
    let removed = Instant::now();
    let out = cli(&cloud, &["node", "remove", &node]);
    assert_eq!(out.code, 0, "{out}");
    let closed = wait_for(Duration::from_secs(5), || {
        (cloud_lines(&cloud, &node, "MQTT: session closed") > closed_before)
            .then(|| removed.elapsed())
    })
    .unwrap_or_else(|| panic!("the session was not closed:\n{}", cloud.logs()));
    println!("node remove: mosquitto_sub's session closed {closed:?} after `node remove` started");
    assert!(closed < Duration::from_secs(1), "closed after {closed:?}");
    // mosquitto_sub connects again and is refused: it ends.
    let got = sub.finish(CLIENT_DEADLINE).await.unwrap();
    assert!(!got.timed_out, "{got:?}");
    assert!(got.stderr.contains("not authori"), "{got:?}");
}

/// How many times `agent` says it renewed its certificate.
fn renewals(agent: &Agent) -> usize {
    agent
        .logs()
        .matches("renewed this node's certificate")
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_renews_a_short_lived_certificate_and_keeps_its_link_and_its_app() {
    let mut cloud = Cloud::start().unwrap();
    cloud.set_env("SKERRY_NODE_CERT_LIFETIME", "6s");
    cloud.restart().unwrap();
    assert_eq!(cli(&cloud, &["env", "create", "plant"]).code, 0);
    let agent = Agent::enroll_with(&cloud, "plant", "gw-renew", &["--runtime", "process"]).unwrap();
    let pid = deploy_sleeper(&cloud, &agent, "plant", "steady");
    let cert = agent.data_dir().join("identity/node.crt");
    let first = std::fs::read(&cert).unwrap();
    // Three renewals: each certificate lives 6 s and is renewed after 4.
    assert!(
        wait_for(Duration::from_secs(40), || (renewals(&agent) >= 3)
            .then_some(()))
        .is_some(),
        "{}",
        agent.logs()
    );
    assert_ne!(
        std::fs::read(&cert).unwrap(),
        first,
        "node.crt was replaced"
    );
    // The app never restarted, and the link is up (last seen moves on).
    assert_eq!(running_pid(&agent, "steady"), Some(pid));
    let seen = |cloud: &Cloud| {
        let v = cli(cloud, &["node", "show", "gw-renew", "-o", "json"])
            .json()
            .unwrap();
        (
            v["status"].as_str().unwrap_or("").to_owned(),
            v["last_seen"].clone(),
        )
    };
    let (_, before) = seen(&cloud);
    assert!(
        wait_for(CONVERGE, || {
            let (status, now) = seen(&cloud);
            (status == "Normal" && now != before).then_some(())
        })
        .is_some(),
        "{}",
        agent.logs()
    );
    let events = cli(&cloud, &["events", "-o", "json"]);
    assert!(
        events.stdout.matches("node.certificate-renewed").count() >= 3,
        "{events}"
    );
    assert_eq!(running_pid(&agent, "steady"), Some(pid));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_whose_certificate_expired_while_it_was_off_is_refused_and_says_why() {
    let mut cloud = Cloud::start().unwrap();
    cloud.set_env("SKERRY_NODE_CERT_LIFETIME", "6s");
    cloud.restart().unwrap();
    assert_eq!(cli(&cloud, &["env", "create", "plant"]).code, 0);
    let mut agent =
        Agent::enroll_with(&cloud, "plant", "gw-late", &["--runtime", "process"]).unwrap();
    let pid = deploy_sleeper(&cloud, &agent, "plant", "lonely");
    agent.kill9().unwrap();
    // Wait for the certificate it has on disk to expire.
    let saved = save_identity(&agent, &agent.dir().join("saved-identity"));
    let pem = std::fs::read(saved.join("node.crt")).unwrap();
    let (_, der) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let not_after = der.parse_x509().unwrap().validity().not_after.timestamp();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    assert!(
        wait_for(Duration::from_secs(15), || (now() > not_after)
            .then_some(()))
        .is_some()
    );

    let refused_before = cloud_lines(&cloud, "", "certificate expired");
    agent.restart().unwrap();
    assert!(
        wait_for(CONVERGE, || agent
            .logs()
            .contains("this node's certificate expired")
            .then_some(()))
        .is_some(),
        "{}",
        agent.logs()
    );
    assert!(agent.logs().contains("enroll it again as a new node"));
    // It runs on, its app too, without a link.
    assert!(agent.running(), "{}", agent.logs());
    assert!(alive(pid));
    assert_eq!(running_pid(&agent, "lonely"), Some(pid));
    // The cloud refused it at the handshake, for its expiry.
    assert!(
        wait_for(CONVERGE, || (cloud_lines(
            &cloud,
            "",
            "certificate expired"
        ) > refused_before)
            .then_some(()))
        .is_some(),
        "{}",
        cloud.logs()
    );
    // mosquitto_sub with the expired certificate: refused at the handshake.
    let node = agent.node_id().unwrap();
    let down = format!("skerry/v1/nodes/{node}/down");
    let got = mosquitto(&cloud, &saved)
        .sub(&down, &["-C", "1"])
        .unwrap()
        .finish(CLIENT_DEADLINE)
        .await
        .unwrap();
    assert!(!got.timed_out && got.code != Some(0), "{got:?}");
    println!(
        "mosquitto_sub with the expired certificate: {}",
        got.stderr.trim()
    );
}

/// A certificate issued for longer than the cloud issues them now (as every certificate
/// from before lifetimes were configurable was: 825 days) is renewed at the agent's next
/// connection, without a new token and without dropping its app.
#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_issued_for_longer_than_the_lifetime_is_renewed_at_the_next_connection() {
    let mut cloud = Cloud::start().unwrap();
    cloud.set_env("SKERRY_NODE_CERT_LIFETIME", "825d");
    cloud.restart().unwrap();
    assert_eq!(cli(&cloud, &["env", "create", "plant"]).code, 0);
    let agent = Agent::enroll_with(&cloud, "plant", "gw-old", &["--runtime", "process"]).unwrap();
    let pid = deploy_sleeper(&cloud, &agent, "plant", "steady");
    let cert = agent.data_dir().join("identity/node.crt");
    let first = std::fs::read(&cert).unwrap();
    assert_eq!(renewals(&agent), 0, "{}", agent.logs());
    // The cloud now issues certificates for 90 days (the default).
    cloud.set_env("SKERRY_NODE_CERT_LIFETIME", "90d");
    cloud.restart().unwrap();
    assert!(
        wait_for(CONVERGE, || (renewals(&agent) >= 1).then_some(())).is_some(),
        "{}",
        agent.logs()
    );
    assert_ne!(
        std::fs::read(&cert).unwrap(),
        first,
        "node.crt was replaced"
    );
    // The new certificate lives the cloud's 90 days, not 825.
    let events: serde_json::Value = cli(&cloud, &["events", "-o", "json"]).json().unwrap();
    let renewal = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "node.certificate-renewed")
        .unwrap_or_else(|| panic!("{events:#}"));
    let expires = renewal["payload"]["NodeCertificateRenewed"]["expires"]
        .as_i64()
        .unwrap_or_else(|| panic!("{renewal:#}"));
    let now = skerry_shared::clock::Timestamp::now().0;
    let days = (expires - now) / 86_400_000;
    assert!((89..=90).contains(&days), "{days} days: {renewal:#}");
    assert_eq!(running_pid(&agent, "steady"), Some(pid));
}
