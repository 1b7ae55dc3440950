//! A node enrolled before nodes had keys for secrets gets one over its link: a real
//! `skerry serve`, a real agent (the process runtime).
//!
//! The node is enrolled by the agent's own enrollment code with no key
//! ([`Agent::enrolled_without_secrets_key`]), so neither its identity nor the cloud holds
//! one, and a deploy that uses a secret on it is refused. Started, the agent makes its
//! key (mode 0600) and says it after its `Hello`; the cloud records
//! `node.secrets-key-registered` as the node, once (a restart says it again and records
//! nothing), the delivery controller seals the secret for it, and its process sees the
//! value. A different key later is refused and logged, and the registered one stays.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use skerry_tests::agent::Agent;
use skerry_tests::images::unique;
use skerry_tests::{Cloud, cli, wait_for};

const CONVERGE: Duration = Duration::from_secs(60);

/// The `node.secrets-key-registered` events of `node`, with their actors.
fn registrations(cloud: &Cloud, node: &str) -> Vec<String> {
    let out = cli(cloud, &["-o", "json", "events"]);
    assert_eq!(out.code, 0, "{out}");
    let events: Value = out.json().unwrap();
    events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "node.secrets-key-registered")
        .filter(|e| e["summary"].as_str().unwrap_or_default().contains(node))
        .map(|e| e["actor"].as_str().unwrap().to_owned())
        .collect()
}

fn manifest(out_dir: &Path) -> String {
    format!(
        r#"app: late
version: 1.0.0
components:
  - name: job
    exec: ["/bin/busybox", "sh", "-c", "echo \"$DB_PASSWORD\" > \"$OUT/env.$$\"; exec sleep 3600"]
    env: {{ OUT: "{}" }}
    secrets:
      - {{ name: db-password, env: DB_PASSWORD }}
"#,
        out_dir.display()
    )
}

fn read_env(dir: &Path) -> Option<String> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("env."))
        .find_map(|e| {
            let text = std::fs::read_to_string(e.path()).ok()?;
            let text = text.trim();
            (!text.is_empty()).then(|| text.to_owned())
        })
}

fn deploy(cloud: &Cloud, instance: &str) -> skerry_tests::cli::CliOutput {
    cli(
        cloud,
        &[
            "deploy",
            "late@1.0.0",
            "--env",
            "plant",
            "--name",
            instance,
            "--node",
            "old-gw",
        ],
    )
}

#[test]
fn a_node_enrolled_without_a_key_registers_one_over_its_link_and_gets_its_secrets() {
    let cloud = Cloud::start().unwrap();
    assert_eq!(cli(&cloud, &["env", "create", "plant"]).code, 0);
    let work = tempfile::tempdir().unwrap();
    let password = format!("pw-{}", unique("Late"));
    let file = work.path().join("value");
    std::fs::write(&file, &password).unwrap();
    let set = cli(
        &cloud,
        &[
            "secret",
            "set",
            "db-password",
            "--from-file",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(set.code, 0, "{set}");

    let mut agent =
        Agent::enrolled_without_secrets_key(&cloud, "plant", "old-gw", &["--runtime", "process"])
            .unwrap();
    let node = agent.node_id().unwrap();
    let key_file = agent.data_dir().join("identity").join("secrets.key");
    assert!(!key_file.exists(), "enrolled without a key");
    assert!(registrations(&cloud, &node).is_empty());

    let out_dir = tempfile::tempdir().unwrap();
    let yaml = work.path().join("late.yaml");
    std::fs::write(&yaml, manifest(out_dir.path())).unwrap();
    assert_eq!(
        cli(&cloud, &["app", "publish", "-f", yaml.to_str().unwrap()]).code,
        0
    );
    // Without a key the node can receive no secret: the deploy is refused.
    let refused = deploy(&cloud, &unique("late"));
    assert_eq!(refused.code, 2, "{refused}");
    assert!(refused.stderr.contains("old-gw"), "{refused}");

    // Started: the agent makes its key and says it; the cloud records it as the node.
    agent.restart().unwrap();
    let actors = wait_for(CONVERGE, || {
        let r = registrations(&cloud, &node);
        (!r.is_empty()).then_some(r)
    })
    .unwrap_or_else(|| panic!("no key registered\n{}", agent.logs()));
    assert_eq!(actors, [format!("node:{node}")]);
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let key = std::fs::read(&key_file).unwrap();
    assert_eq!(key.len(), 32);

    // The secret reaches the node's process.
    let out = deploy(&cloud, &unique("late"));
    assert_eq!(out.code, 0, "{out}");
    let seen = wait_for(CONVERGE, || read_env(out_dir.path()))
        .unwrap_or_else(|| panic!("the process did not see its secret\n{}", agent.logs()));
    assert_eq!(seen, password);
    assert!(!agent.logs().contains(&password));

    // A restart keeps the key and says it again: nothing more is recorded.
    agent.restart().unwrap();
    let connects = |a: &Agent| a.logs().matches("connected to the cloud").count();
    assert!(
        wait_for(CONVERGE, || (connects(&agent) >= 2).then_some(())).is_some(),
        "{}",
        agent.logs()
    );
    assert_eq!(std::fs::read(&key_file).unwrap(), key);

    // Another key for the same node is refused and logged, never recorded.
    agent.kill9().unwrap();
    std::fs::remove_file(&key_file).unwrap();
    agent.restart().unwrap();
    assert!(
        wait_for(CONVERGE, || cloud
            .logs()
            .contains("refused a secrets key over the link")
            .then_some(()))
        .is_some(),
        "the cloud did not refuse the new key\n{}",
        cloud.logs()
    );
    assert_eq!(registrations(&cloud, &node), [format!("node:{node}")]);
    assert_ne!(std::fs::read(&key_file).unwrap(), key);
}
