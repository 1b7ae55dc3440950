//! The agent end to end, as a new user runs it: a real `skerry serve`, a real
//! `skerry-edge run` enrolled with a token, and real containers on the Docker engine,
//! from an image built here `FROM scratch`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::Value;
use skerry_tests::agent::Agent;
use skerry_tests::images::{busybox_image, unique};
use skerry_tests::{Cloud, cli, wait_for};

const CONVERGE: Duration = Duration::from_secs(60);

/// An init that writes to named storage, a web service with a node port and a health
/// check, and a client that reaches `web` by name.
fn demo_manifest(image: &str, version: &str) -> String {
    format!(
        r#"app: demo
version: {version}
components:
  - name: migrate
    kind: init
    image: {image}
    command: ["sh", "-c", "echo migrated >> /data/migrations"]
    storage: [ {{ name: data, container: /data }} ]
  - name: web
    image: {image}
    command: ["sh", "-c", "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 8080 -h /www"]
    depends_on: [migrate]
    ports: [ {{ container: 8080, expose: nodeport }} ]
    storage: [ {{ name: data, container: /data }} ]
    health:
      command: ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
      interval: 1s
      timeout: 1s
      retries: 3
  - name: client
    image: {image}
    command: ["sh", "-c", "while true; do wget -q -O /tmp/got http://web:8080/ && touch /tmp/ok; sleep 1; done"]
    depends_on: [web]
    health:
      command: ["test", "-f", "/tmp/ok"]
      interval: 1s
      timeout: 1s
      retries: 3
"#
    )
}

fn status(cloud: &Cloud, instance: &str) -> Vec<Value> {
    let out = cli(cloud, &["status", instance, "-o", "json"]);
    assert_eq!(out.code, 0, "{out}");
    out.json().unwrap()["status"].as_array().unwrap().clone()
}

fn state_of<'a>(rows: &'a [Value], component: &str) -> Vec<&'a str> {
    rows.iter()
        .filter(|r| r["component"] == component)
        .map(|r| r["state"].as_str().unwrap())
        .collect()
}

fn converged(rows: &[Value]) -> bool {
    let up = |s: &str| s == "Running" || s == "Healthy";
    state_of(rows, "migrate") == ["Succeeded"]
        && state_of(rows, "web").iter().all(|s| up(s))
        && state_of(rows, "client").iter().all(|s| up(s))
        && !state_of(rows, "web").is_empty()
        && !state_of(rows, "client").is_empty()
}

/// `docker ps` names of the node's containers, sorted.
fn containers(node: &str) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args(["ps", "--all", "--format", "{{.Names}}", "--filter"])
        .arg(format!("label=io.skerry.node={node}"))
        .output()
        .unwrap();
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    names.sort();
    names
}

/// `deploy demo@1.0.0` as `instance` on gw-1.
fn deploy(cloud: &Cloud, instance: &str) {
    let out = cli(
        cloud,
        &[
            "deploy",
            "demo@1.0.0",
            "--env",
            "plant",
            "--name",
            instance,
            "--node",
            "gw-1",
        ],
    );
    assert_eq!(out.code, 0, "{out}");
}

/// What the demo's init wrote to the named storage, read through `container`.
fn migrations(container: &str) -> String {
    wait_for(Duration::from_secs(20), || {
        let out = std::process::Command::new("docker")
            .args(["exec", container, "cat", "/data/migrations"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    })
    .unwrap()
}

/// The names of the node's volumes, one a line.
fn volumes(node: &str) -> String {
    docker(&[
        "volume",
        "ls",
        "--filter",
        &format!("label=io.skerry.node={node}"),
        "--format",
        "{{.Name}}",
    ])
}

fn docker(args: &[&str]) -> String {
    let out = std::process::Command::new("docker")
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn deploy_kill_offline_rebuild_and_undeploy() {
    let image = busybox_image("1").unwrap();
    let cloud = Cloud::start().unwrap();
    assert_eq!(cli(&cloud, &["env", "create", "plant"]).code, 0);
    let mut agent = Agent::enroll(&cloud, "plant", "gw-1").unwrap();
    let node = agent.node_id().unwrap();
    // Docker names carry the node id's first 8 hex digits.
    let tag: String = node.chars().take(8).collect();

    let manifest = agent.dir().join("demo.yaml");
    std::fs::write(&manifest, demo_manifest(&image, "1.0.0")).unwrap();
    let out = cli(
        &cloud,
        &["app", "publish", "-f", manifest.to_str().unwrap()],
    );
    assert_eq!(out.code, 0, "{out}");
    let instance = unique("demo");

    // Deploy, and wait until the services run and the init succeeded.
    let started = Instant::now();
    deploy(&cloud, &instance);
    let rows = wait_for(CONVERGE, || {
        Some(status(&cloud, &instance)).filter(|r| converged(r))
    })
    .unwrap_or_else(|| {
        panic!(
            "not converged: {:?}\n{}",
            status(&cloud, &instance),
            agent.logs()
        )
    });
    println!(
        "deploy to running: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let table = cli(&cloud, &["status", &instance]);
    println!("{}", table.stdout);
    assert_eq!(rows.len(), 3);
    let expected = vec![
        format!("skerry-{tag}.{instance}.client.0"),
        format!("skerry-{tag}.{instance}.web.0"),
    ];
    // The finished init's container is removed once its result is recorded.
    assert!(
        wait_for(CONVERGE, || (containers(&node) == expected).then_some(())).is_some(),
        "{:?}",
        containers(&node)
    );

    // kill -9 of the agent and a restart: exactly one container per replica.
    agent.kill9().unwrap();
    agent.restart().unwrap();
    assert!(
        wait_for(Duration::from_secs(20), || agent
            .logs()
            .matches("connected to the cloud")
            .count()
            .ge(&2)
            .then_some(()))
        .is_some(),
        "the restarted agent did not reconnect:\n{}",
        agent.logs()
    );
    std::thread::sleep(Duration::from_secs(3)); // let one reconcile pass run after adoption
    assert_eq!(containers(&node), expected, "after kill -9 and restart");

    // With the cloud stopped, the containers are removed and the agent restarted: it
    // rebuilds them from its journal alone.
    let mut cloud = cloud;
    cloud.kill9().unwrap();
    agent.kill9().unwrap();
    for c in &expected {
        docker(&["rm", "--force", c]);
    }
    assert!(containers(&node).is_empty());
    agent.restart().unwrap();
    let rebuilt = Instant::now();
    assert!(
        wait_for(CONVERGE, || (containers(&node) == expected).then_some(())).is_some(),
        "not rebuilt offline: {:?}\n{}",
        containers(&node),
        agent.logs()
    );
    println!(
        "rebuilt offline from the journal in {:.1} s",
        rebuilt.elapsed().as_secs_f64()
    );
    // The init ran once for this spec: the storage shows one migration.
    let web = format!("skerry-{tag}.{instance}.web.0");
    let found = migrations(&web);
    assert_eq!(found.lines().count(), 1, "the init ran again: {found}");

    // Undeploy: containers and the network go, the named storage stays.
    cloud.restart().unwrap();
    let out = cli(&cloud, &["undeploy", &instance]);
    assert_eq!(out.code, 0, "{out}");
    assert!(
        wait_for(CONVERGE, || containers(&node).is_empty().then_some(())).is_some(),
        "containers left: {:?}\n{}",
        containers(&node),
        agent.logs()
    );
    assert!(
        wait_for(Duration::from_secs(20), || docker(&[
            "network",
            "ls",
            "--filter",
            &format!("label=io.skerry.node={node}"),
            "--format",
            "{{.Name}}"
        ])
        .trim()
        .is_empty()
        .then_some(()))
        .is_some(),
        "the instance network is left"
    );
    let left = volumes(&node);
    assert!(
        left.contains(&instance),
        "named storage was removed: {left:?}"
    );

    // Deployed again under the same name, it finds its data; `--purge` then removes it.
    deploy(&cloud, &instance);
    assert!(
        wait_for(CONVERGE, || Some(status(&cloud, &instance))
            .filter(|r| converged(r)))
        .is_some(),
        "not converged after the redeploy: {:?}",
        status(&cloud, &instance)
    );
    let found = migrations(&web);
    assert!(!found.is_empty(), "the data was not found again");
    let out = cli(&cloud, &["undeploy", &instance, "--purge"]);
    assert_eq!(out.code, 0, "{out}");
    let volume_gone = wait_for(CONVERGE, || {
        let v = volumes(&node);
        (!v.contains(&instance)).then_some(())
    });
    assert!(
        volume_gone.is_some(),
        "--purge left the named storage\n{}",
        agent.logs()
    );
}

#[test]
fn an_offline_agent_catches_up_on_1000_events() {
    let cloud = Cloud::start().unwrap();
    assert_eq!(cli(&cloud, &["env", "create", "plant"]).code, 0);
    let mut agent = Agent::enroll(&cloud, "plant", "gw-1").unwrap();
    let node = agent.node_id().unwrap();
    assert!(
        wait_for(Duration::from_secs(20), || agent
            .logs()
            .contains("connected to the cloud")
            .then_some(()))
        .is_some()
    );
    agent.kill9().unwrap();

    // 1,000 events for the node while it is away: label changes.
    let api = cloud.api().unwrap();
    for i in 0..1000 {
        let body = serde_json::json!({"set": {"round": i.to_string()}});
        let answer = api
            .post_json(&format!("/api/v1/nodes/{node}/labels"), &body)
            .unwrap();
        assert_eq!(answer.status, 200, "{:?}", answer.body);
    }
    let lag = |api: &skerry_tests::Api| -> u64 {
        let v = api.get_json(&format!("/api/v1/nodes/{node}")).unwrap();
        v["lag"].as_u64().unwrap()
    };
    assert!(lag(&api) >= 1000);

    let before = agent.logs().len();
    let started = Instant::now();
    agent.restart().unwrap();
    assert!(
        wait_for(Duration::from_secs(60), || (lag(&api) == 0).then_some(())).is_some(),
        "lag stayed {}\n{}",
        lag(&api),
        agent.logs()
    );
    let elapsed = started.elapsed();
    let log = agent.logs()[before..].to_owned();
    let bytes: u64 = log
        .lines()
        .filter_map(|l| l.split("bytes_received=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .max()
        .unwrap_or(0);
    println!(
        "caught up on 1000 events in {:.2} s (agent start included), {bytes} bytes received",
        elapsed.as_secs_f64()
    );
    assert!(bytes > 0, "{log}");
    // The journal can be read while the agent runs.
    let status = std::process::Command::new(skerry_tests::bin("skerry-edge"))
        .args(["status", "-o", "json", "--data"])
        .arg(agent.data_dir())
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let v: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(v["last_applied"].as_u64().unwrap() >= 1000, "{v}");
}

#[test]
fn exec_components_run_and_restart_as_native_processes() {
    let cloud = Cloud::start().unwrap();
    assert_eq!(cli(&cloud, &["env", "create", "plant"]).code, 0);
    let agent = Agent::enroll_with(&cloud, "plant", "gw-1", &["--runtime", "process"]).unwrap();
    let dir = agent.dir().join("work");
    std::fs::create_dir_all(&dir).unwrap();
    let marker = dir.join("starts");
    let manifest = format!(
        r#"app: native
version: 1.0.0
components:
  - name: ticker
    exec: ["/bin/sh", "-c", "echo start >> {marker}; sleep 1; exit 1"]
    restart: always
"#,
        marker = marker.display()
    );
    skerry_tests::cli::publish(&cloud, agent.dir(), "native", &manifest).unwrap();
    skerry_tests::cli::deploy(&cloud, "native@1.0.0", "plant", "native", "gw-1").unwrap();
    let starts = wait_for(CONVERGE, || {
        let n = std::fs::read_to_string(&marker).ok()?.lines().count();
        (n >= 3).then_some(n)
    })
    .unwrap_or_else(|| panic!("not restarted:\n{}", agent.logs()));
    println!("the exec component started {starts} times");
    let rows = wait_for(CONVERGE, || {
        let rows = status(&cloud, "native");
        rows.iter()
            .any(|r| r["restarts"].as_u64().unwrap_or(0) >= 1)
            .then_some(rows)
    })
    .unwrap_or_else(|| panic!("no restarts reported: {:?}", status(&cloud, "native")));
    println!("{rows:?}");
    assert_eq!(cli(&cloud, &["undeploy", "native"]).code, 0);
}
