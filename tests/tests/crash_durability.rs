//! A 2xx means the event is durable: 64 clients send commands as fast as they can, the cloud
//! is killed with SIGKILL at a random moment, and after a restart on the same data directory
//! every acknowledged command's effect is there, the log has no gap and its hash chain holds.
//! Three kill cycles run on the same data directory, so the log keeps growing across crashes.

// Tests and their helpers fail loudly: unwrap and expect are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{Value, json};
use skerry_tests::{Cloud, TestNode, cli};

const CLIENTS: usize = 64;
const CYCLES: usize = 3;

/// A command one client sent.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Cmd {
    /// `POST /api/v1/environments` with a unique name.
    CreateEnv(String),
    /// `POST /api/v1/nodes/{node}/labels` setting `key=value`.
    Label {
        node: String,
        key: String,
        value: String,
    },
}

/// What one client saw.
#[derive(Debug, Default)]
struct ClientReport {
    sent: usize,
    /// Answered 2xx, in the order sent.
    acked: Vec<Cmd>,
    /// No answer: the connection failed (the cloud was killed).
    failed: usize,
    /// Answered, but not 2xx.
    rejected: Vec<(Cmd, u16, String)>,
}

async fn client(
    http: reqwest::Client,
    url: String,
    cycle: usize,
    me: usize,
    nodes: Arc<Vec<String>>,
    stop: Arc<AtomicBool>,
) -> ClientReport {
    let mut report = ClientReport::default();
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let (cmd, request) = if i.is_multiple_of(4) {
            let node = nodes[me % nodes.len()].clone();
            let (key, value) = (format!("k{me}"), format!("c{cycle}-{i}"));
            let request = http
                .post(format!("{url}/api/v1/nodes/{node}/labels"))
                .json(&json!({ "set": { &key: &value } }));
            (Cmd::Label { node, key, value }, request)
        } else {
            let name = format!("crash-c{cycle}-k{me}-{i}");
            let request = http
                .post(format!("{url}/api/v1/environments"))
                .json(&json!({ "name": name, "labels": { "client": format!("k{me}") } }));
            (Cmd::CreateEnv(name), request)
        };
        report.sent += 1;
        match request.send().await {
            Ok(response) if response.status().is_success() => {
                let status = response.status().as_u16();
                // The answer is the created environment or the labelled node.
                let body: Value = match response.json().await {
                    Ok(body) => body,
                    Err(e) => {
                        report
                            .rejected
                            .push((cmd, status, format!("unreadable 2xx body: {e}")));
                        continue;
                    }
                };
                match &cmd {
                    Cmd::CreateEnv(name) => assert_eq!(body["name"], name.as_str(), "{body}"),
                    Cmd::Label { key, value, .. } => {
                        assert_eq!(body["labels"][key], value.as_str(), "{body}");
                    }
                }
                report.acked.push(cmd);
            }
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.text().await.unwrap_or_default();
                report.rejected.push((cmd, status, body));
            }
            Err(_) => {
                // The cloud is gone; nothing more to send.
                report.failed += 1;
                break;
            }
        }
    }
    report
}

/// One cycle's figures.
#[derive(Debug, Default)]
struct Cycle {
    sent: usize,
    acked: Vec<Cmd>,
    failed: usize,
    rejected: Vec<(Cmd, u16, String)>,
    killed_after: Duration,
}

/// Starts the clients, kills the cloud `kill_after` later, and collects what they saw.
async fn load(
    cloud: &mut Cloud,
    cycle: usize,
    kill_after: Duration,
    nodes: Arc<Vec<String>>,
) -> Cycle {
    let http = cloud.http().unwrap();
    let url = cloud.url();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for me in 0..CLIENTS {
        tasks.spawn(client(
            http.clone(),
            url.clone(),
            cycle,
            me,
            nodes.clone(),
            stop.clone(),
        ));
    }
    // The random moment of the crash is the point of the test, not a wait for a condition.
    tokio::time::sleep(kill_after).await;
    let killed_after = started.elapsed();
    cloud.kill9().unwrap();
    stop.store(true, Ordering::Relaxed);
    let mut out = Cycle {
        killed_after,
        ..Cycle::default()
    };
    while let Some(report) = tasks.join_next().await {
        let report = report.unwrap();
        out.sent += report.sent;
        out.failed += report.failed;
        out.acked.extend(report.acked);
        out.rejected.extend(report.rejected);
    }
    out
}

/// The environment name of an `environment.created` event.
fn created_env(e: &Value) -> Option<String> {
    e["payload"]["EnvironmentCreated"]["name"]
        .as_str()
        .map(str::to_owned)
}

#[test]
fn acknowledged_commands_survive_kill_9() {
    let mut cloud = Cloud::start().unwrap();
    let out = cli(&cloud, &["env", "create", "prod"]);
    assert_eq!(out.code, 0, "{out}");
    let mut nodes = Vec::new();
    {
        let api = cloud.api().unwrap();
        for name in ["crash-gw-1", "crash-gw-2"] {
            let token = api.enrollment_token("prod", None).unwrap();
            nodes.push(
                TestNode::new(name)
                    .unwrap()
                    .enroll(&api, &token)
                    .unwrap()
                    .id(),
            );
        }
    }
    let nodes = Arc::new(nodes);
    let mut acked_envs: BTreeSet<String> = BTreeSet::new();
    let mut acked_labels: BTreeSet<(String, String, String)> = BTreeSet::new();

    for cycle in 1..=CYCLES {
        let kill_after = Duration::from_millis(rand::rng().random_range(300..=1500));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let report = runtime.block_on(load(&mut cloud, cycle, kill_after, nodes.clone()));
        drop(runtime);
        assert!(
            report.rejected.is_empty(),
            "cycle {cycle}: commands answered with an error: {:?}",
            &report.rejected[..report.rejected.len().min(5)]
        );
        assert!(
            !report.acked.is_empty(),
            "cycle {cycle}: nothing was acknowledged before the kill"
        );
        for cmd in &report.acked {
            match cmd {
                Cmd::CreateEnv(name) => {
                    acked_envs.insert(name.clone());
                }
                Cmd::Label { node, key, value } => {
                    acked_labels.insert((node.clone(), key.clone(), value.clone()));
                }
            }
        }

        cloud.restart().unwrap();
        let api = cloud.api().unwrap();

        // The log: 1..=N with no gap, and a sound hash chain.
        let events = api.events().unwrap();
        let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        let n = seqs.len() as u64;
        assert_eq!(
            seqs,
            (1..=n).collect::<Vec<_>>(),
            "cycle {cycle}: the sequence has gaps"
        );
        for pair in events.windows(2) {
            assert_eq!(
                pair[1]["prev_hash"], pair[0]["hash"],
                "cycle {cycle}: the chain breaks"
            );
        }
        let verified = api.get_json("/api/v1/events/verify").unwrap();
        assert_eq!(verified["ok"], true, "cycle {cycle}: {verified}");
        assert_eq!(
            verified["events"].as_u64(),
            Some(n),
            "cycle {cycle}: {verified}"
        );
        let out = cli(&cloud, &["events", "verify"]);
        assert_eq!(out.code, 0, "cycle {cycle}: {out}");

        // Every acknowledged environment: in the log, and in the rebuilt projections.
        let logged: BTreeSet<String> = events.iter().filter_map(created_env).collect();
        let missing: Vec<&String> = acked_envs.difference(&logged).collect();
        assert!(
            missing.is_empty(),
            "cycle {cycle}: acknowledged but not in the log: {missing:?}"
        );
        let listed: BTreeSet<String> = api
            .get_json("/api/v1/environments")
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_owned())
            .collect();
        let missing: Vec<&String> = acked_envs.difference(&listed).collect();
        assert!(
            missing.is_empty(),
            "cycle {cycle}: acknowledged but not listed: {missing:?}"
        );
        assert_eq!(
            listed, logged,
            "cycle {cycle}: the projections and the log disagree"
        );

        // Every acknowledged label change is in the log, and each node's labels are what
        // the log says last.
        let mut logged_labels = BTreeSet::new();
        let mut last: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for e in &events {
            let labelled = &e["payload"]["NodeLabelled"];
            let Some(node) = labelled["node"].as_str() else {
                continue;
            };
            for (key, value) in labelled["set"].as_object().unwrap() {
                let value = value.as_str().unwrap().to_owned();
                logged_labels.insert((node.to_owned(), key.clone(), value.clone()));
                last.entry(node.to_owned())
                    .or_default()
                    .insert(key.clone(), value);
            }
        }
        let missing: Vec<_> = acked_labels.difference(&logged_labels).collect();
        assert!(
            missing.is_empty(),
            "cycle {cycle}: acknowledged labels not in the log: {missing:?}"
        );
        for node in nodes.iter() {
            let shown = api.get_json(&format!("/api/v1/nodes/{node}")).unwrap();
            let labels: BTreeMap<String, String> =
                serde_json::from_value(shown["labels"].clone()).unwrap();
            assert_eq!(
                labels,
                last.get(node).cloned().unwrap_or_default(),
                "cycle {cycle}: node {node}"
            );
        }

        let before_kill = report.killed_after.as_secs_f64();
        println!(
            "cycle {cycle}: killed after {} ms; sent {}, acknowledged (2xx) {}, failed (no answer) {}, \
             rejected {}; events in the log after restart {n}; {:.0} acknowledged commands/s before the kill",
            report.killed_after.as_millis(),
            report.sent,
            report.acked.len(),
            report.failed,
            report.rejected.len(),
            report.acked.len() as f64 / before_kill,
        );
    }
}
