//! The cloud killed with SIGKILL while agents are connected.
//!
//! - In the middle of a deploy to three agents, twice (a deploy, then an undeploy with a
//!   new deploy), at a random moment: after each restart every agent reconnects and the
//!   fleet converges (lag 0, each journal through its node's last `node_seq`, exactly one
//!   running container per replica of what is deployed).
//! - Under load with deploys in flight: 16 clients set labels while one deploys and
//!   undeploys instances on two agents; the cloud is killed at a random moment. Every
//!   deploy and undeploy that got a 2xx is in the log after the restart, and the agents
//!   converge to what the log says. (`crash_durability` proves the same of plain commands
//!   without agents; this adds the agents and deploys in flight.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{Value, json};
use skerry_tests::agent::Agent;
use skerry_tests::fault::{containers, journal_status, sleeper_manifest};
use skerry_tests::images::{busybox_image, unique};
use skerry_tests::{Api, Cloud, cli, wait_for};

const CONVERGE: Duration = Duration::from_secs(120);
const REPLICAS: usize = 2;

/// A cloud with `n` agents (gw-1..) in env `plant` and the sleeper app published.
fn fleet(n: usize) -> (Cloud, Vec<Agent>) {
    let image = busybox_image("1").unwrap();
    let cloud = Cloud::start().unwrap();
    assert_eq!(cli(&cloud, &["env", "create", "plant"]).code, 0);
    let agents: Vec<Agent> = (1..=n)
        .map(|i| Agent::enroll(&cloud, "plant", &format!("gw-{i}")).unwrap())
        .collect();
    let manifest = agents[0].dir().join("sleeper.yaml");
    std::fs::write(
        &manifest,
        sleeper_manifest("sleeper", "1.0.0", &image, REPLICAS as u32),
    )
    .unwrap();
    let out = cli(
        &cloud,
        &["app", "publish", "-f", manifest.to_str().unwrap()],
    );
    assert_eq!(out.code, 0, "{out}");
    (cloud, agents)
}

/// The instances the cloud has, by name.
fn deployed(api: &Api) -> Vec<String> {
    let mut names: Vec<String> = api
        .get_json("/api/v1/instances")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// Whether every agent has applied its node's last `node_seq` and runs exactly one
/// container per replica of each deployed instance (all instances target every node).
fn converged(api: &Api, agents: &[Agent]) -> bool {
    let instances = deployed(api);
    agents.iter().all(|a| {
        let node = a.node_id().unwrap();
        let n = api.get_json(&format!("/api/v1/nodes/{node}")).unwrap();
        let applied = journal_status(&a.data_dir())
            .ok()
            .and_then(|s| s["last_applied"].as_u64());
        let Ok(cs) = containers(&node) else {
            return false;
        };
        let tag: String = node.chars().take(8).collect();
        let mut expected: Vec<String> = Vec::new();
        for i in &instances {
            for r in 0..REPLICAS {
                expected.push(format!("skerry-{tag}.{i}.sleeper.{r}"));
            }
        }
        expected.sort();
        let names: Vec<&str> = cs.iter().map(|c| c.name.as_str()).collect();
        n["lag"] == 0
            && applied == n["node_seq"].as_u64()
            && names == expected
            && cs.iter().all(|c| c.state == "running")
    })
}

fn wait_converged(api: &Api, agents: &[Agent], what: &str) -> Duration {
    let t0 = Instant::now();
    assert!(
        wait_for(CONVERGE, || converged(api, agents).then_some(())).is_some(),
        "{what}: not converged; instances {:?}; containers {:?}\n{}",
        deployed(api),
        agents
            .iter()
            .map(|a| containers(&a.node_id().unwrap()).unwrap())
            .collect::<Vec<_>>(),
        agents[0].logs()
    );
    t0.elapsed()
}

#[test]
fn the_cloud_restarted_in_the_middle_of_a_deploy_to_three_agents() {
    let (mut cloud, agents) = fleet(3);
    let mut rng = rand::rng();
    let first = unique("mid-a");
    let second = unique("mid-b");
    let deploy = |api: &Api, name: &str| {
        api.post_json(
            "/api/v1/instances",
            &json!({ "app": "sleeper", "version": "1.0.0", "env": "plant", "name": name }),
        )
        .unwrap()
        .expect_status(201)
        .unwrap();
    };
    for round in 0..2 {
        // A new client after each restart: the old one's pooled connections are dead.
        let api = cloud.api().unwrap();
        let what = if round == 0 {
            deploy(&api, &first);
            "deploy"
        } else {
            api.delete(&format!("/api/v1/instances/{first}"))
                .unwrap()
                .expect_status(200)
                .unwrap();
            deploy(&api, &second);
            "undeploy and deploy"
        };
        // The random moment of the kill is the point of the test, not a wait.
        let after = rng.random_range(0..=500);
        std::thread::sleep(Duration::from_millis(after));
        let running_before: usize = agents
            .iter()
            .map(|a| {
                containers(&a.node_id().unwrap())
                    .unwrap()
                    .iter()
                    .filter(|c| c.state == "running")
                    .count()
            })
            .sum();
        cloud.kill9().unwrap();
        let t0 = Instant::now();
        cloud.restart().unwrap();
        let restarted = t0.elapsed();
        let api = cloud.api().unwrap();
        let converge = wait_converged(&api, &agents, what);
        println!(
            "{what} to 3 agents, cloud killed {after} ms after the command ({running_before} \
             containers running then), restarted in {:.2} s; the fleet converged {:.2} s after \
             the restart ({} containers per node)",
            restarted.as_secs_f64(),
            converge.as_secs_f64(),
            REPLICAS * deployed(&api).len()
        );
    }
    assert_eq!(deployed(&cloud.api().unwrap()), vec![second.clone()]);
}

#[test]
fn the_cloud_killed_under_load_with_deploys_in_flight_keeps_every_2xx() {
    let (mut cloud, agents) = fleet(2);
    let url = cloud.url();
    let stop = Arc::new(AtomicBool::new(false));
    let labels_acked = Arc::new(AtomicU64::new(0));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let http = cloud.http().unwrap();
    let prefix = unique("load");
    // 16 clients set labels as fast as the cloud answers.
    let mut label_tasks = Vec::new();
    for me in 0..16 {
        let (http, url, stop, acked) = (
            http.clone(),
            url.clone(),
            stop.clone(),
            labels_acked.clone(),
        );
        let node = agents[me % agents.len()].node_id().unwrap();
        label_tasks.push(rt.spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let res = http
                    .post(format!("{url}/api/v1/nodes/{node}/labels"))
                    .json(&json!({ "set": { format!("k{me}"): format!("v{i}") } }))
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status().is_success() => {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    // Cut off by the kill.
                    _ => return,
                }
            }
        }));
    }
    // One client deploys an instance to both agents and undeploys it, again and again.
    let deployer = {
        let (http, url, stop, prefix) = (http.clone(), url.clone(), stop.clone(), prefix.clone());
        rt.spawn(async move {
            let mut acked: Vec<(String, &'static str)> = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let name = format!("{prefix}-{i}");
                let body =
                    json!({ "app": "sleeper", "version": "1.0.0", "env": "plant", "name": name });
                match http
                    .post(format!("{url}/api/v1/instances"))
                    .json(&body)
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => acked.push((name.clone(), "deployed")),
                    Ok(r) => panic!("deploy {name}: {}", r.status()),
                    Err(_) => return acked,
                }
                // Leave it deployed long enough for the agents to start on it.
                tokio::time::sleep(Duration::from_millis(150)).await;
                match http
                    .delete(format!("{url}/api/v1/instances/{name}"))
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => acked.push((name, "undeployed")),
                    Ok(r) => panic!("undeploy {name}: {}", r.status()),
                    Err(_) => return acked,
                }
            }
            acked
        })
    };
    let kill_after = Duration::from_millis(rand::rng().random_range(500..=2000));
    // The random moment of the kill is the point of the test, not a wait.
    std::thread::sleep(kill_after);
    cloud.kill9().unwrap();
    stop.store(true, Ordering::Relaxed);
    let acked = rt.block_on(deployer).unwrap();
    for t in label_tasks {
        rt.block_on(t).unwrap();
    }
    cloud.restart().unwrap();
    let api = cloud.api().unwrap();

    // Every acknowledged deploy and undeploy is in the log.
    let instances = deployed(&api);
    let mut deploys = 0;
    let mut undeploys = 0;
    for (name, what) in &acked {
        let events = api
            .get_json(&format!("/api/v1/events?instance={name}&limit=100"))
            .unwrap();
        let kinds: Vec<String> = events
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert!(!kinds.is_empty(), "{name} {what}: not in the log");
        if *what == "undeployed" {
            undeploys += 1;
            assert!(!instances.contains(name), "{name}: undeployed but listed");
            assert!(
                kinds.len() >= 2,
                "{name}: the undeploy is not in the log: {kinds:?}"
            );
        } else {
            deploys += 1;
        }
    }
    assert!(deploys > 0, "no deploy was acknowledged before the kill");
    let converge = wait_converged(&api, &agents, "after the kill");
    let verify: Value = api.get_json("/api/v1/events/verify").unwrap();
    println!(
        "cloud killed after {} ms under load: {} label changes and {deploys} deploys, \
         {undeploys} undeploys acknowledged, all in the log after the restart (verify: {}); \
         instances left deployed: {}; 2 agents converged {:.2} s after the restart",
        kill_after.as_millis(),
        labels_acked.load(Ordering::Relaxed),
        verify["ok"],
        instances.len(),
        converge.as_secs_f64()
    );
}
