//! A recorded event that the read models cannot take does not keep the cloud, or an agent,
//! from starting (issue 13): a real `skerry serve` and a real agent (process runtime) run
//! an app; with the cloud stopped, a deploy of that instance with `replicas: 4294967295` and
//! a publication of such a manifest are sealed into its redb log with the real hash chain
//! (as an older build, or a hand, would have written them). The cloud starts again and
//! serves: `status` and `status INSTANCE` answer, `GET /api/v1/events` marks both events
//! `refused`, `events verify` exits 0, and its log names them. The agent takes the deploy,
//! acknowledges it, does not run it, and starts again on its journal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use skerry_cloud::engine::rebuild;
use skerry_cloud::log::{EventLog, RedbLog};
use skerry_shared::event::{Actor, Event, EventPayload, NodeSeq};
use skerry_shared::hash::Digest;
use skerry_tests::agent::Agent;
use skerry_tests::{Cloud, cli, wait_for};

const CONVERGE: Duration = Duration::from_secs(60);

fn rows(cloud: &Cloud, instance: &str) -> Vec<Value> {
    let out = cli(cloud, &["status", instance, "-o", "json"]);
    assert_eq!(out.code, 0, "{out}");
    out.json().unwrap()["status"].as_array().unwrap().clone()
}

fn node(cloud: &Cloud, name: &str) -> Value {
    let out = cli(cloud, &["node", "show", name, "-o", "json"]);
    assert_eq!(out.code, 0, "{out}");
    out.json().unwrap()
}

/// Seals `payloads` after the last event of the log at `path` (each addressed to the nodes
/// given with it) and appends them, as the engine would. Returns their sequence numbers.
fn append_by_hand(
    path: &std::path::Path,
    payloads: Vec<(EventPayload, Vec<skerry_shared::ids::NodeId>)>,
) -> Vec<u64> {
    let log = RedbLog::open(path, 1 << 20).unwrap();
    let mut head = rebuild(&log).unwrap().head;
    let mut sealed = Vec::new();
    for (payload, audience) in payloads {
        let node_seqs = audience
            .into_iter()
            .map(|node| NodeSeq {
                node,
                node_seq: head.next_node_seq(node),
            })
            .collect::<Vec<_>>();
        let e = Event::seal(
            head.next_seq,
            head.last_time,
            Actor::Cloud,
            payload,
            node_seqs.clone(),
            head.last_hash,
        )
        .unwrap();
        head.next_seq = e.seq + 1;
        head.last_hash = e.hash;
        for ns in node_seqs {
            head.node_next.insert(ns.node, ns.node_seq + 1);
        }
        sealed.push(Arc::new(e));
    }
    log.append(&sealed).unwrap();
    sealed.iter().map(|e| e.seq).collect()
}

#[test]
fn a_recorded_deploy_of_four_billion_replicas_is_refused_and_everything_still_starts() {
    let mut cloud = Cloud::start().unwrap();
    assert_eq!(cli(&cloud, &["env", "create", "plant"]).code, 0);
    let mut agent = Agent::enroll_with(&cloud, "plant", "gw-1", &["--runtime", "process"]).unwrap();
    let manifest = "app: idle\nversion: 1.0.0\ncomponents:\n  - name: sleeper\n    \
                    exec: [\"/bin/sleep\", \"600\"]\n";
    skerry_tests::cli::publish(&cloud, agent.dir(), "idle", manifest).unwrap();
    skerry_tests::cli::deploy(&cloud, "idle@1.0.0", "plant", "web", "gw-1").unwrap();
    wait_for(CONVERGE, || {
        let r = rows(&cloud, "web");
        (r.len() == 1 && r[0]["state"] == "Running").then_some(())
    })
    .unwrap_or_else(|| panic!("never Running:\n{}", agent.logs()));
    let node_id: skerry_shared::ids::NodeId = agent.node_id().unwrap().parse().unwrap();

    // What the log says now: the deploy of `web` as recorded, to copy.
    cloud.kill9().unwrap();
    let path = cloud.data_dir().join("events.redb");
    let recorded = {
        let log = RedbLog::open(&path, 1 << 20).unwrap();
        rebuild(&log).unwrap().instances["web"].spec.clone()
    };
    let mut poisoned = recorded.clone();
    poisoned.manifest.components[0].replicas = Some(u32::MAX);
    let mut published = poisoned.manifest.clone();
    published.version = "2.0.0".parse().unwrap();
    let seqs = append_by_hand(
        &path,
        vec![
            (
                EventPayload::InstanceDeployed {
                    instance: Box::new(poisoned),
                },
                vec![node_id],
            ),
            (
                EventPayload::AppVersionPublished {
                    digest: Digest::of(&postcard::to_stdvec(&published).unwrap()),
                    manifest: published,
                },
                vec![],
            ),
        ],
    );

    // The cloud starts and serves.
    cloud.restart().unwrap();
    let out = cli(&cloud, &["status"]);
    assert_eq!(out.code, 0, "{out}");
    let r = rows(&cloud, "web");
    assert_eq!(r.len(), 1, "the instance keeps its last applied deploy");
    let out = cli(
        &cloud,
        &[
            "deploy",
            "idle@1.0.0",
            "--env",
            "plant",
            "--name",
            "other",
            "--node",
            "gw-1",
            "--dry-run",
        ],
    );
    assert_eq!(out.code, 0, "{out}");
    let out = cli(&cloud, &["app", "show", "idle@2.0.0"]);
    assert_ne!(out.code, 0, "the refused publication is not there: {out}");

    // Both events are in the log, marked.
    let events: Vec<Value> = cloud
        .api()
        .unwrap()
        .get_json("/api/v1/events")
        .unwrap()
        .as_array()
        .unwrap()
        .clone();
    for seq in &seqs {
        let e = events
            .iter()
            .find(|e| e["seq"] == *seq)
            .unwrap_or_else(|| panic!("event {seq} not listed"));
        let why = e["refused"]
            .as_str()
            .unwrap_or_else(|| panic!("not marked: {e}"));
        assert!(why.contains("replicas"), "{why}");
    }
    assert!(
        events.iter().filter(|e| e.get("refused").is_some()).count() == seqs.len(),
        "only those are marked"
    );
    // `skerry events` says which were not applied, and why.
    let out = cli(&cloud, &["events"]);
    assert_eq!(out.code, 0, "{out}");
    let marked: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains("NOT APPLIED ("))
        .collect();
    assert_eq!(marked.len(), seqs.len(), "{out}");
    assert!(marked.iter().all(|l| l.contains("replicas")), "{out}");
    let out = cli(&cloud, &["events", "verify"]);
    assert_eq!(out.code, 0, "{out}");
    let logs = cloud.logs();
    assert!(
        logs.contains("2 recorded event(s) were not applied"),
        "{logs}"
    );

    // The agent takes the deploy (it is addressed to it), acknowledges it, and runs only
    // what it ran.
    wait_for(CONVERGE, || {
        let n = node(&cloud, "gw-1");
        (n["lag"] == 0 && n["acked_node_seq"] == n["node_seq"]).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "never acknowledged: {}\n{}",
            node(&cloud, "gw-1"),
            agent.logs()
        )
    });
    assert!(
        agent.logs().contains("refused node_seq"),
        "{}",
        agent.logs()
    );
    agent.restart().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(agent.running(), "{}", agent.logs());
    assert_eq!(rows(&cloud, "web").len(), 1);

    // After restarts, it all still holds, and the chain goes on after them.
    cloud.restart().unwrap();
    assert_eq!(cli(&cloud, &["status", "web"]).code, 0);
    assert_eq!(cli(&cloud, &["env", "create", "lab"]).code, 0);
    let out = cli(&cloud, &["events", "verify"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(agent.running(), "{}", agent.logs());
}
