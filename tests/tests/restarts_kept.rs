//! What an agent knows of a crash-looping `exec` component survives the agent: a real
//! `skerry serve`, a real `skerry-edge run --runtime process` and a real process that
//! keeps exiting. `skerry-edge status` shows its restarts (from the journal), and after a
//! `kill -9` and restart of the agent the crash-loop backoff goes on where it was (the
//! process runtime's state file keeps it) instead of starting again from its first wait,
//! and so does the last exit with its time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use skerry_edge::runtime::Runtime;
use skerry_edge::runtime::process::ProcessRuntime;
use skerry_tests::agent::Agent;
use skerry_tests::cli::{deploy, publish};
use skerry_tests::{Cloud, cli, wait_for};

const CONVERGE: Duration = Duration::from_secs(90);

/// The start times (ns since the epoch) the process wrote, one per start.
fn starts(marker: &Path) -> Vec<u128> {
    std::fs::read_to_string(marker)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn gaps(starts: &[u128]) -> Vec<Duration> {
    starts
        .windows(2)
        .map(|w| Duration::from_nanos(u64::try_from(w[1] - w[0]).unwrap()))
        .collect()
}

fn edge_status(agent: &Agent) -> Value {
    let out = std::process::Command::new(skerry_tests::bin("skerry-edge"))
        .args(["status", "-o", "json", "--data"])
        .arg(agent.data_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `restarts` of `component` in `skerry-edge status -o json`: (replica, count) pairs.
fn journal_restarts(status: &Value, component: &str) -> Vec<(u64, u64)> {
    status["instances"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["components"].as_array().unwrap().iter())
        .filter(|c| c["name"] == component)
        .flat_map(|c| c["restarts"].as_array().unwrap().iter())
        .map(|p| (p[0].as_u64().unwrap(), p[1].as_u64().unwrap()))
        .collect()
}

#[test]
fn restarts_and_the_crash_loop_backoff_survive_an_agent_restart() {
    let cloud = Cloud::start().unwrap();
    assert_eq!(cli(&cloud, &["env", "create", "plant"]).code, 0);
    let mut agent = Agent::enroll_with(&cloud, "plant", "gw-r", &["--runtime", "process"]).unwrap();
    let marker = agent.dir().join("starts");
    let manifest = format!(
        r#"app: crashy
version: 1.0.0
components:
  - name: looper
    exec: ["/bin/sh", "-c", "date +%s%N >> {marker}; exit 1"]
    restart: always
"#,
        marker = marker.display()
    );
    publish(&cloud, agent.dir(), "crashy", &manifest).unwrap();
    deploy(&cloud, "crashy@1.0.0", "plant", "crashy", "gw-r").unwrap();

    // The backoff grows until one wait is at least 1.5 s.
    let before = wait_for(CONVERGE, || {
        let s = starts(&marker);
        gaps(&s)
            .last()
            .is_some_and(|g| *g >= Duration::from_millis(1500))
            .then_some(s)
    })
    .unwrap_or_else(|| panic!("{:?}\n{}", gaps(&starts(&marker)), agent.logs()));
    let last_gap = *gaps(&before).last().unwrap();

    // The journal has the restarts the runtime counted (it had none before).
    let counted = wait_for(CONVERGE, || {
        let r = journal_restarts(&edge_status(&agent), "looper");
        r.first().filter(|(_, n)| *n >= 2).copied()
    })
    .unwrap_or_else(|| panic!("{}", edge_status(&agent)));
    assert_eq!(counted.0, 0, "replica 0");
    println!(
        "skerry-edge status: looper #0 restarts {} (the process started {} times); waits so \
         far {:?}",
        counted.1,
        before.len(),
        gaps(&before)
    );

    // kill -9 of the agent, and a new one on the same data directory.
    agent.kill9().unwrap();
    let at_kill = starts(&marker).len();
    agent.restart().unwrap();
    let after = wait_for(CONVERGE, || {
        let s = starts(&marker);
        (s.len() >= at_kill + 2).then_some(s)
    })
    .unwrap_or_else(|| panic!("not restarted after the agent came back\n{}", agent.logs()));
    // The waits around the agent's restart: the one it was in, and the next one.
    let waits: Vec<Duration> = gaps(&after[at_kill - 1..at_kill + 2]);
    println!("the last wait before the agent's restart {last_gap:?}; the waits after it {waits:?}");
    for w in &waits {
        assert!(
            *w >= last_gap.mul_f64(0.9),
            "the backoff started again after the agent's restart: {w:?} after a wait of \
             {last_gap:?} (all waits {:?})",
            gaps(&after)
        );
    }
    // The restarts go on counting from where they were.
    let again = wait_for(CONVERGE, || {
        let r = journal_restarts(&edge_status(&agent), "looper");
        r.first().filter(|(_, n)| *n > counted.1).copied()
    })
    .unwrap_or_else(|| panic!("{}", edge_status(&agent)));
    println!("after the agent's restart: looper #0 restarts {}", again.1);
    assert_eq!(cli(&cloud, &["undeploy", "crashy"]).code, 0);
}

/// The same on the runtime alone: a runtime that takes over from a dropped one (as after a
/// `kill -9` of the agent) reports the last exit with the time it happened, and waits out
/// the backoff the old one was in.
#[tokio::test]
async fn a_new_runtime_keeps_the_last_exit_and_the_backoff() {
    use skerry_edge::runtime::ReplicaSpec;
    use skerry_shared::hash::Digest;
    use skerry_shared::ids::{Name, NodeId};
    use skerry_shared::manifest::Component;
    use skerry_shared::planner::ReplicaKey;

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let marker = dir.path().join("starts");
    let node = NodeId::random();
    let key = ReplicaKey::new(
        &Name::parse("crashy").unwrap(),
        &Name::parse("looper").unwrap(),
        0,
    );
    let script = format!("date +%s%N >> {}; exit 1", marker.display());
    let component = Component {
        image: None,
        exec: Some(vec!["/bin/sh".into(), "-c".into(), script]),
        ..Component::image(Name::parse("looper").unwrap(), "unused")
    };
    let spec = ReplicaSpec {
        node,
        key: key.clone(),
        spec_hash: Digest::of(b"looper"),
        component,
        env: Default::default(),
        ports: Vec::new(),
        storage: Vec::new(),
        log_dir_host: None,
        secrets: Vec::new(),
    };
    let rt = ProcessRuntime::new(state.clone()).unwrap();
    rt.start(&spec).await.unwrap();
    let deadline = std::time::Instant::now() + CONVERGE;
    while gaps(&starts(&marker))
        .last()
        .is_none_or(|g| *g < Duration::from_millis(1500))
    {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Dropped while it waits for its next restart (the process has exited).
    let seen = loop {
        let r = rt.observe(node).await.unwrap().replicas[0].clone();
        // Exited, and not in the middle of starting the next process (whose attempt is
        // counted before its state file is written).
        let recorded = std::fs::read(state.join("replicas/crashy.looper.0.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .filter(|v| v["pid"].is_null() && v["restart_pending"] == true);
        if r.phase.exited()
            && recorded.is_some_and(|v| v["restarts"].as_u64() == Some(u64::from(r.restarts)))
        {
            break r;
        }
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let last_gap = *gaps(&starts(&marker)).last().unwrap();
    drop(rt);
    let at_drop = starts(&marker).len();

    let rt = ProcessRuntime::new(state).unwrap();
    let adopted = rt.observe(node).await.unwrap().replicas[0].clone();
    assert_eq!(adopted.restarts, seen.restarts);
    let exited = adopted.exited.clone().expect("the last exit, kept");
    assert_eq!(exited.reason, "exited 1");
    if starts(&marker).len() == at_drop {
        assert_eq!(Some(exited), seen.exited, "the same exit, with its time");
    }
    while starts(&marker).len() < at_drop + 2 {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = starts(&marker);
    let waits = gaps(&s[at_drop - 1..at_drop + 2]);
    println!("last wait before the new runtime {last_gap:?}; after it {waits:?}");
    for w in &waits {
        assert!(*w >= last_gap.mul_f64(0.9), "{w:?} < {last_gap:?}");
    }
    rt.stop(node, &key).await.unwrap();
}
