//! A Docker engine that comes after the agent, end to end: a real `skerry serve`, a real
//! `skerry-edge run` and the real engine, with an image built here `FROM scratch`.
//!
//! The agent starts with `DOCKER_HOST` on a socket that is not there yet (as when it starts
//! before `dockerd`, or Docker is installed later): a deployed container component is not
//! run (`status` shows "this node has no docker runtime") and no container is made. Once
//! the socket is there (a symlink to the real engine's), the agent finds the engine on its
//! next look (every 30 s) and runs the component: `Running` in `skerry status`, its
//! container on the engine, "the Docker engine is available now" in the agent's log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use skerry_tests::agent::{Agent, publish_and_deploy};
use skerry_tests::fault::{containers_of, sleeper_manifest};
use skerry_tests::images::busybox_image;
use skerry_tests::{Cloud, cli, wait_for};

/// The real engine's socket.
const ENGINE: &str = "/var/run/docker.sock";
/// How long the replica must stay not running while the socket is missing.
const HOLD: Duration = Duration::from_secs(8);
/// The agent's look for the engine (every 30 s) and the replica's next try (its failed
/// starts wait 1 s doubling: at 1, 3, 7, 15, 31, 63 s after the deploy).
const FOUND: Duration = Duration::from_secs(75);

fn status(cloud: &Cloud, instance: &str) -> Vec<Value> {
    let out = cli(cloud, &["status", instance, "-o", "json"]);
    assert_eq!(out.code, 0, "{out}");
    out.json().unwrap()["status"].as_array().unwrap().clone()
}

fn up(row: &Value) -> bool {
    row["state"] == "Running" || row["state"] == "Healthy"
}

#[test]
fn an_engine_that_comes_after_the_agent_runs_the_pending_containers() {
    assert!(
        Path::new(ENGINE).exists(),
        "{ENGINE} is missing: this test needs the host's Docker engine"
    );
    let image = busybox_image("1").unwrap();
    let cloud = Cloud::start().unwrap();
    assert_eq!(cli(&cloud, &["env", "create", "plant"]).code, 0);
    let mut agent = Agent::enroll(&cloud, "plant", "gw-late").unwrap();
    let node = agent.node_id().unwrap();

    // The agent starts again with its engine's socket missing.
    let sockets = tempfile::tempdir().unwrap();
    let socket = sockets.path().join("docker.sock");
    agent.set_env("DOCKER_HOST", &format!("unix://{}", socket.display()));
    let before = agent.logs().len();
    agent.restart().unwrap();
    let started = Instant::now();
    let missing = wait_for(Duration::from_secs(30), || {
        agent.logs()[before..]
            .contains("the Docker engine is not available")
            .then_some(())
    });
    assert!(
        missing.is_some(),
        "the agent did not say the engine is missing:\n{}",
        &agent.logs()[before..]
    );

    let manifest = sleeper_manifest("sleeper", "1.0.0", &image, 1);
    let instance = publish_and_deploy(&cloud, &agent, "plant", "sleeper", &manifest).unwrap();
    // The agent reports the replica, not running, for want of the engine.
    let row = wait_for(Duration::from_secs(30), || {
        status(&cloud, &instance).into_iter().find(|r| {
            r["reason"]
                .as_str()
                .is_some_and(|reason| reason.contains("no docker runtime"))
        })
    })
    .unwrap_or_else(|| {
        panic!(
            "no replica waiting for the engine: {:?}",
            status(&cloud, &instance)
        )
    });
    println!("without the engine: {row}");
    assert!(!up(&row), "{row}");
    let held = Instant::now();
    while held.elapsed() < HOLD {
        let rows = status(&cloud, &instance);
        assert!(!rows.iter().any(up), "running without an engine: {rows:?}");
        assert!(containers_of(&node, &instance).unwrap().is_empty());
        std::thread::sleep(Duration::from_millis(500));
    }

    // The engine comes.
    std::os::unix::fs::symlink(ENGINE, &socket).unwrap();
    let came = Instant::now();
    println!(
        "socket made {:.1} s after the agent started",
        came.duration_since(started).as_secs_f64()
    );
    let rows = wait_for(FOUND, || {
        let rows = status(&cloud, &instance);
        (rows.len() == 1 && rows.iter().all(up)).then_some(rows)
    })
    .unwrap_or_else(|| {
        panic!(
            "not Running {} s after the engine's socket came: {:?}",
            FOUND.as_secs(),
            status(&cloud, &instance)
        )
    });
    println!(
        "running {:.1} s after the socket came: {}",
        came.elapsed().as_secs_f64(),
        rows[0]
    );
    let containers = containers_of(&node, &instance).unwrap();
    assert_eq!(containers.len(), 1, "{containers:?}");
    assert_eq!(containers[0].state, "running", "{containers:?}");
    assert!(
        agent.logs()[before..].contains("the Docker engine is available now"),
        "{}",
        &agent.logs()[before..]
    );
}
