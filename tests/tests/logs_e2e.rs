//! Offline-first logs and status, end to end: a real `skerry serve`, a real agent and real
//! containers. The app writes numbered lines to two files in its `log_dir` and rotates one
//! of them mid-run while the cloud is down; a container of the app is killed while the
//! cloud is down and restarted by its policy. After the cloud is back, every line is in
//! `skerry logs` exactly once, in order per file, and `status` shows the restart and the
//! last exit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use skerry_tests::agent::Agent;
use skerry_tests::images::{busybox_image, unique};
use skerry_tests::{Cloud, cli, wait_for};

const LINES: u32 = 400;

fn manifest(image: &str) -> String {
    format!(
        r#"app: chatty
version: 1.0.0
components:
  - name: writer
    image: {image}
    log_dir: /logs
    command: ["sh", "-c", "i=0; while [ $i -lt {LINES} ]; do i=$((i+1)); echo \"a $i\" >> /logs/a.log; echo \"b $i\" >> /logs/b.log; if [ $i -eq {half} ]; then mv /logs/a.log /logs/a.log.1; fi; sleep 0.1; done; echo done; exec sleep 100000"]
  - name: sleeper
    image: {image}
    command: ["sleep", "100000"]
"#,
        half = LINES / 2
    )
}

fn status(cloud: &Cloud, instance: &str) -> Vec<Value> {
    let out = cli(cloud, &["status", instance, "-o", "json"]);
    assert_eq!(out.code, 0, "{out}");
    out.json().unwrap()["status"].as_array().unwrap().clone()
}

fn logs(cloud: &Cloud, instance: &str) -> Value {
    let out = cli(cloud, &["logs", instance, "-o", "json"]);
    assert_eq!(out.code, 0, "{out}");
    out.json().unwrap()
}

/// Line texts per file, in the order `skerry logs` gives them.
fn per_file(answer: &Value) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in answer["lines"].as_array().unwrap() {
        if l["component"] != "writer" {
            continue;
        }
        out.entry(l["file"].as_str().unwrap().to_owned())
            .or_default()
            .push(l["text"].as_str().unwrap().to_owned());
    }
    out
}

fn pid_of(container: &str) -> String {
    let out = std::process::Command::new("docker")
        .args(["inspect", "-f", "{{.State.Pid}}", container])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn lines_and_a_restart_reach_the_cloud_exactly_once_after_an_outage() {
    let image = busybox_image("1").unwrap();
    let mut cloud = Cloud::start().unwrap();
    assert_eq!(cli(&cloud, &["env", "create", "plant"]).code, 0);
    let agent = Agent::enroll(&cloud, "plant", "gw-1").unwrap();
    let node = agent.node_id().unwrap();
    let tag: String = node.chars().take(8).collect();
    let file = agent.dir().join("chatty.yaml");
    std::fs::write(&file, manifest(&image)).unwrap();
    assert_eq!(
        cli(&cloud, &["app", "publish", "-f", file.to_str().unwrap()]).code,
        0
    );
    let instance = unique("chatty");
    let out = cli(
        &cloud,
        &[
            "deploy",
            "chatty@1.0.0",
            "--env",
            "plant",
            "--name",
            &instance,
            "--node",
            "gw-1",
        ],
    );
    assert_eq!(out.code, 0, "{out}");
    // Wait for the first lines in the cloud.
    assert!(
        wait_for(Duration::from_secs(60), || {
            (!per_file(&logs(&cloud, &instance)).is_empty()).then_some(())
        })
        .is_some(),
        "no lines arrived\n{}",
        agent.logs()
    );

    // The link is cut: the cloud is killed. While it is down, the app rotates a.log and
    // the sleeper is killed (a crash, not a stop: its policy restarts it).
    cloud.kill9().unwrap();
    let down_at = Instant::now();
    let sleeper = format!("skerry-{tag}.{instance}.sleeper.0");
    let pid = pid_of(&sleeper);
    assert!(!pid.is_empty() && pid != "0", "{pid}");
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let outage = Duration::from_secs(
        std::env::var("SKERRY_TEST_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    std::thread::sleep(outage.saturating_sub(down_at.elapsed()));
    cloud.restart().unwrap();
    let back_at = Instant::now();

    // Every line exactly once, in order per file.
    let expected_a: Vec<String> = (1..=LINES).map(|i| format!("a {i}")).collect();
    let expected_b: Vec<String> = (1..=LINES).map(|i| format!("b {i}")).collect();
    let got = wait_for(Duration::from_secs(120), || {
        let files = per_file(&logs(&cloud, &instance));
        let done = files.get("a.log").map(Vec::len) >= Some(LINES as usize)
            && files.get("b.log").map(Vec::len) >= Some(LINES as usize);
        done.then_some(files)
    })
    .unwrap_or_else(|| {
        panic!(
            "not all lines arrived: {:?}\n{}",
            per_file(&logs(&cloud, &instance))
                .iter()
                .map(|(k, v)| (k.clone(), v.len()))
                .collect::<Vec<_>>(),
            agent.logs()
        )
    });
    println!(
        "outage {:.0} s; all {} lines of 2 files in the cloud {:.1} s after it came back",
        outage.as_secs_f64(),
        2 * LINES,
        back_at.elapsed().as_secs_f64()
    );
    assert_eq!(got["a.log"], expected_a, "a.log (rotated mid-run)");
    assert_eq!(got["b.log"], expected_b, "b.log");
    // The container's own output is collected too.
    let files = per_file(&logs(&cloud, &instance));
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        ["(stdout)", "a.log", "b.log"],
        "{files:?}"
    );
    assert_eq!(files["(stdout)"], ["done"]);
    let answer = logs(&cloud, &instance);
    assert!(answer["dropped"].as_array().unwrap().is_empty(), "{answer}");

    // The restart made while the cloud was down, with its last exit.
    let row = wait_for(Duration::from_secs(60), || {
        status(&cloud, &instance)
            .into_iter()
            .find(|r| r["component"] == "sleeper" && r["restarts"].as_u64() >= Some(1))
    })
    .unwrap_or_else(|| panic!("{:?}", status(&cloud, &instance)));
    let last_exit = row["last_exit"].as_str().unwrap_or_default().to_owned();
    println!(
        "sleeper after the outage: restarts {}, last exit {last_exit}",
        row["restarts"]
    );
    assert!(last_exit.starts_with("exited 137"), "{row}");
    println!("{}", cli(&cloud, &["status", &instance]).stdout);
    assert_eq!(cli(&cloud, &["undeploy", &instance]).code, 0);
}
