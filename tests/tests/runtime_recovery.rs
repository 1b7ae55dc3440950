//! How the agent recovers on the Docker runtime, end to end: a real `skerry serve`, real
//! `skerry-edge run` agents and real containers on the engine, from an image built here
//! `FROM scratch`.
//! - Two agents on one engine deploy the same `nodeport` app: both replicas run, on
//!   different host ports, shown in `skerry status`; a fixed host port that something else
//!   holds is reported by name.
//! - An image that does not exist is pulled at most 8 times in 60 s
//!   (`SKERRY_TEST_PULL_WINDOW_SECS`, 60 by default), and `status` shows the backoff with the
//!   registry's message.
//! - A `restart: always` container stopped with `docker stop` runs again (restart counted),
//!   with the agent running and when the agent was down at the time; one that keeps
//!   exiting waits the agent's backoff (`CrashLoopBackOff`), its engine policy off.
//! - An undeploy of containers that ignore SIGTERM takes about one grace period, not one
//!   per container.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, TcpListener};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use skerry_tests::agent::Agent;
use skerry_tests::fault::containers_of;
use skerry_tests::images::{busybox_image, unique};
use skerry_tests::{Cloud, cli, wait_for};

const CONVERGE: Duration = Duration::from_secs(60);

fn status(cloud: &Cloud, instance: &str) -> Vec<Value> {
    let out = cli(cloud, &["status", instance, "-o", "json"]);
    assert_eq!(out.code, 0, "{out}");
    out.json().unwrap()["status"].as_array().unwrap().clone()
}

/// Publishes `manifest` (its app and version `APP@1.0.0`) and deploys it to `nodes`.
fn deploy(
    cloud: &Cloud,
    dir: &std::path::Path,
    app: &str,
    manifest: &str,
    nodes: &[&str],
) -> String {
    let file = dir.join(format!("{app}.yaml"));
    std::fs::write(&file, manifest).unwrap();
    let out = cli(cloud, &["app", "publish", "-f", file.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out}");
    let instance = unique(app);
    let target = format!("{app}@1.0.0");
    let mut args = vec!["deploy", &target, "--env", "plant", "--name", &instance];
    for n in nodes {
        args.extend(["--node", n]);
    }
    let out = cli(cloud, &args);
    assert_eq!(out.code, 0, "{out}");
    instance
}

fn plant() -> (String, Cloud) {
    let image = busybox_image("1").unwrap();
    let cloud = Cloud::start().unwrap();
    assert_eq!(cli(&cloud, &["env", "create", "plant"]).code, 0);
    (image, cloud)
}

fn up(row: &Value) -> bool {
    row["state"] == "Running" || row["state"] == "Healthy"
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(out.status.success(), "docker {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn two_agents_on_one_engine_get_different_node_ports_and_a_taken_fixed_port_is_named() {
    let (image, cloud) = plant();
    let a = Agent::enroll(&cloud, "plant", "gw-a").unwrap();
    let b = Agent::enroll(&cloud, "plant", "gw-b").unwrap();
    let manifest = format!(
        r#"app: web
version: 1.0.0
components:
  - name: web
    image: {image}
    command: ["sh", "-c", "mkdir -p /www && echo hi > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports: [ {{ container: 8080, expose: nodeport }} ]
"#
    );
    let instance = deploy(&cloud, a.dir(), "web", &manifest, &[a.name(), b.name()]);
    let rows = wait_for(CONVERGE, || {
        let rows = status(&cloud, &instance);
        (rows.len() == 2 && rows.iter().all(up) && rows.iter().all(|r| r["ports"].is_array()))
            .then_some(rows)
    })
    .unwrap_or_else(|| panic!("not both running: {:?}", status(&cloud, &instance)));
    let ports: Vec<u16> = rows
        .iter()
        .map(|r| {
            let p = r["ports"][0].as_str().unwrap();
            let (container, host) = p.split_once(':').unwrap();
            assert_eq!(container, "8080", "{r}");
            host.parse().unwrap()
        })
        .collect();
    println!("node ports: {ports:?}");
    assert_ne!(ports[0], ports[1], "{rows:?}");
    for p in &ports {
        assert!((30000..=32767).contains(p), "{p}");
        // Each answers on the host.
        let got = wait_for(Duration::from_secs(10), || {
            let mut s = std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, *p)).ok()?;
            use std::io::{Read, Write};
            s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
            let mut body = String::new();
            s.read_to_string(&mut body).ok()?;
            body.contains("hi").then_some(())
        });
        assert!(got.is_some(), "port {p} does not answer");
    }
    // The table shows both replicas running.
    let table = cli(&cloud, &["status", &instance]);
    assert_eq!(table.code, 0, "{table}");
    println!("{}", table.stdout);

    // A fixed host port that something else on the host holds.
    let holder = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
    let taken = holder.local_addr().unwrap().port();
    let manifest = format!(
        r#"app: fixed
version: 1.0.0
components:
  - name: web
    image: {image}
    command: ["sleep", "100000"]
    ports: [ {{ container: 8080, host: {taken}, expose: nodeport }} ]
"#
    );
    let instance = deploy(&cloud, a.dir(), "fixed", &manifest, &[a.name()]);
    let want = format!("host port {taken} in use");
    let row = wait_for(CONVERGE, || {
        status(&cloud, &instance).into_iter().find(|r| {
            r["reason"]
                .as_str()
                .is_some_and(|reason| reason.contains(&want))
        })
    })
    .unwrap_or_else(|| panic!("no {want:?}: {:?}", status(&cloud, &instance)));
    println!("{row}");
    assert_eq!(row["state"], "Unschedulable", "{row}");
    assert!(
        row["reason"].as_str().unwrap().contains("next try at"),
        "{row}"
    );
    drop(holder);
}

#[test]
fn a_missing_image_is_pulled_with_backoff_and_status_says_why() {
    let (_, cloud) = plant();
    let agent = Agent::enroll(&cloud, "plant", "gw-p").unwrap();
    // A registry on a port nothing listens on: every pull fails at once.
    let closed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let image = format!("127.0.0.1:{port}/skerry-missing/{}:1", unique("nope"));
    let manifest =
        format!("app: missing\nversion: 1.0.0\ncomponents:\n  - name: app\n    image: {image}\n");
    let window = Duration::from_secs(
        std::env::var("SKERRY_TEST_PULL_WINDOW_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    let instance = deploy(&cloud, agent.dir(), "missing", &manifest, &[agent.name()]);
    let pulls = || {
        agent
            .logs()
            .lines()
            .filter(|l| l.contains("pulling") && l.contains(&image))
            .count()
    };
    assert!(
        wait_for(CONVERGE, || (pulls() > 0).then_some(())).is_some(),
        "no pull:\n{}",
        agent.logs()
    );
    let first = Instant::now();
    // The window of real time, counted from the first pull.
    std::thread::sleep(window.saturating_sub(first.elapsed()));
    let n = pulls();
    println!("{n} pulls in {} s", window.as_secs());
    assert!(n <= 8, "{n} pulls in {window:?}:\n{}", agent.logs());
    assert!(n >= 2, "it stopped trying: {n}");
    // The backoff shows in status, with the registry's (here: the engine's) message.
    let row = wait_for(CONVERGE, || {
        status(&cloud, &instance)
            .into_iter()
            .find(|r| r["state"] == "ImagePullBackOff")
    })
    .unwrap_or_else(|| panic!("no backoff: {:?}", status(&cloud, &instance)));
    println!("{row}");
    let reason = row["reason"].as_str().unwrap();
    assert!(reason.contains(&image), "{reason}");
    assert!(reason.contains("could not be pulled: "), "{reason}");
    assert!(reason.contains("next try at 20"), "{reason}");
}

/// Waits until `instance`'s one replica runs with at least `restarts` restarts, and its
/// container runs on the engine.
fn wait_running_again(cloud: &Cloud, node: &str, instance: &str, restarts: u64) -> Value {
    wait_for(CONVERGE, || {
        let row = status(cloud, instance).into_iter().next()?;
        let running = containers_of(node, instance)
            .ok()?
            .iter()
            .all(|c| c.state == "running");
        (up(&row) && row["restarts"].as_u64() >= Some(restarts) && running).then_some(row)
    })
    .unwrap_or_else(|| {
        panic!(
            "not running again with {restarts} restarts: {:?} {:?}",
            status(cloud, instance),
            containers_of(node, instance)
        )
    })
}

#[test]
fn a_container_stopped_from_outside_runs_again_also_after_the_agent_was_down() {
    let (image, cloud) = plant();
    let mut agent = Agent::enroll(&cloud, "plant", "gw-s").unwrap();
    let node = agent.node_id().unwrap();
    let manifest = format!(
        "app: steady\nversion: 1.0.0\ncomponents:\n  - name: app\n    image: {image}\n    \
         command: [\"sleep\", \"100000\"]\n    restart: always\n"
    );
    let instance = deploy(&cloud, agent.dir(), "steady", &manifest, &[agent.name()]);
    wait_running_again(&cloud, &node, &instance, 0);
    let name = containers_of(&node, &instance).unwrap()[0].name.clone();
    let id = containers_of(&node, &instance).unwrap()[0].id.clone();

    // Stopped from outside while the agent runs.
    let stopped = Instant::now();
    docker(&["stop", "-t", "1", &name]);
    let row = wait_running_again(&cloud, &node, &instance, 1);
    println!(
        "running again {:.1} s after docker stop: {row}",
        stopped.elapsed().as_secs_f64()
    );
    assert!(
        row["last_exit"]
            .as_str()
            .unwrap_or("")
            .starts_with("exited 137"),
        "{row}"
    );
    // The same container, started again.
    assert_eq!(containers_of(&node, &instance).unwrap()[0].id, id);

    // Killed from outside while the agent is down; the agent comes back.
    agent.kill9().unwrap();
    docker(&["kill", &name]);
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Status}}", &name]),
        "exited"
    );
    agent.restart().unwrap();
    let row = wait_running_again(&cloud, &node, &instance, 2);
    println!("after the agent came back: {row}");

    let table = cli(&cloud, &["status", &instance]);
    println!("{}", table.stdout);
    assert_eq!(cli(&cloud, &["undeploy", &instance]).code, 0);
}

#[test]
fn a_container_that_keeps_exiting_waits_the_agents_backoff() {
    let (image, cloud) = plant();
    let agent = Agent::enroll(&cloud, "plant", "gw-c").unwrap();
    let node = agent.node_id().unwrap();
    let manifest = format!(
        "app: crashy\nversion: 1.0.0\ncomponents:\n  - name: app\n    image: {image}\n    \
         command: [\"sh\", \"-c\", \"sleep 0.5; exit 3\"]\n    restart: always\n"
    );
    let instance = deploy(&cloud, agent.dir(), "crashy", &manifest, &[agent.name()]);
    // Once the loop is seen, the agent paces it: the state says so, with the exit and the
    // time of the next start, and the engine's own policy is off meanwhile.
    let row = wait_for(CONVERGE, || {
        status(&cloud, &instance)
            .into_iter()
            .find(|r| r["state"] == "CrashLoopBackOff" && r["restarts"].as_u64() >= Some(2))
    })
    .unwrap_or_else(|| panic!("no backoff: {:?}", status(&cloud, &instance)));
    println!("{row}");
    let reason = row["reason"].as_str().unwrap();
    assert!(reason.starts_with("exited 3; restarts at 20"), "{reason}");
    let name = containers_of(&node, &instance).unwrap()[0].name.clone();
    assert_eq!(
        docker(&["inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", &name]),
        "no"
    );
    // And it is started again, counted.
    let before = row["restarts"].as_u64().unwrap();
    assert!(
        wait_for(CONVERGE, || status(&cloud, &instance)
            .into_iter()
            .find(|r| r["restarts"].as_u64() > Some(before)))
        .is_some(),
        "not restarted after {before}: {:?}",
        status(&cloud, &instance)
    );
}

#[test]
fn undeploy_stops_containers_that_ignore_sigterm_within_one_grace_period() {
    // The agent's grace period for a stop (DockerOptions::stop_timeout).
    const GRACE: Duration = Duration::from_secs(10);
    let (image, cloud) = plant();
    let agent = Agent::enroll(&cloud, "plant", "gw-u").unwrap();
    let node = agent.node_id().unwrap();
    // `sleep` as PID 1 has no handler for SIGTERM: only the kill after the grace ends it.
    let manifest = format!(
        r#"app: stubborn
version: 1.0.0
components:
  - name: db
    image: {image}
    command: ["sleep", "100000"]
    replicas: 2
  - name: api
    image: {image}
    command: ["sleep", "100000"]
    depends_on: [db]
    replicas: 2
"#
    );
    let instance = deploy(&cloud, agent.dir(), "stubborn", &manifest, &[agent.name()]);
    wait_for(CONVERGE, || {
        let rows = status(&cloud, &instance);
        (rows.len() == 4 && rows.iter().all(up)).then_some(())
    })
    .unwrap_or_else(|| panic!("not running: {:?}", status(&cloud, &instance)));
    assert_eq!(containers_of(&node, &instance).unwrap().len(), 4);

    let started = Instant::now();
    assert_eq!(cli(&cloud, &["undeploy", &instance]).code, 0);
    assert!(
        wait_for(CONVERGE * 2, || containers_of(&node, &instance)
            .unwrap()
            .is_empty()
            .then_some(()))
        .is_some(),
        "still there: {:?}",
        containers_of(&node, &instance)
    );
    let took = started.elapsed();
    println!(
        "4 containers that ignore SIGTERM stopped in {:.1} s (grace {} s)",
        took.as_secs_f64(),
        GRACE.as_secs()
    );
    assert!(took < 2 * GRACE, "{took:?}:\n{}", agent.logs());
}
