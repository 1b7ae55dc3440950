//! Offline-first logs and status, end to end: a real `skerry serve`, a real agent and real
//! containers. The app writes numbered lines to two files in its `log_dir` and rotates one
//! of them mid-run while the cloud is down; a container of the app is killed while the
//! cloud is down and restarted by its policy. After the cloud is back, every line is in
//! `skerry logs` exactly once, in order per file, and `status` shows the restart and the
//! last exit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::Value;
use skerry_tests::agent::Agent;
use skerry_tests::agent::publish_and_deploy;
use skerry_tests::fixtures::host_profile_with;
use skerry_tests::images::busybox_image;
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
    let instance =
        publish_and_deploy(&cloud, &agent, "plant", "chatty", &manifest(&image)).unwrap();
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

/// Line numbers of `file` from component `writer` in the answer, in the order given.
fn numbers(answer: &Value, file: &str) -> Vec<u64> {
    answer["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["component"] == "writer" && l["file"] == file)
        .map(|l| l["line"].as_u64().unwrap())
        .collect()
}

/// Line numbers of `file` that the agent reported dropped for its quota.
fn dropped(answer: &Value, file: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for node in answer["dropped"].as_array().unwrap() {
        for f in node["files"].as_array().unwrap() {
            if f["file"] == file {
                let first = f["first_line"].as_u64().unwrap();
                out.extend(first..first + f["lines"].as_u64().unwrap());
            }
        }
    }
    out.sort_unstable();
    out
}

#[test]
fn an_agent_killed_while_shipping_loses_and_repeats_no_line() {
    const N: u64 = 3000;
    let image = busybox_image("1").unwrap();
    let cloud = Cloud::start().unwrap();
    assert_eq!(cli(&cloud, &["env", "create", "plant"]).code, 0);
    let mut agent = Agent::enroll(&cloud, "plant", "gw-k").unwrap();
    // About 3,000 lines over several seconds (one `usleep` per line), so kills land while
    // lines are read, queued and shipped.
    let manifest = format!(
        r#"app: steady
version: 1.0.0
components:
  - name: writer
    image: {image}
    log_dir: /logs
    command: ["sh", "-c", "i=0; while [ $i -lt {N} ]; do i=$((i+1)); echo \"k $i\" >> /logs/k.log; usleep 2000; done; exec sleep 100000"]
"#
    );
    let instance = publish_and_deploy(&cloud, &agent, "plant", "steady", &manifest).unwrap();
    assert!(
        wait_for(Duration::from_secs(60), || {
            (!numbers(&logs(&cloud, &instance), "k.log").is_empty()).then_some(())
        })
        .is_some(),
        "no lines arrived\n{}",
        agent.logs()
    );
    let started = Instant::now();
    let mut rng = rand::rng();
    let mut kills = Vec::new();
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(rng.random_range(300..1500)));
        let got = numbers(&logs(&cloud, &instance), "k.log").len();
        agent.kill9().unwrap();
        kills.push(got);
        agent.restart().unwrap();
    }
    let got = wait_for(Duration::from_secs(120), || {
        let got = numbers(&logs(&cloud, &instance), "k.log");
        (got.len() as u64 >= N).then_some(got)
    })
    .unwrap_or_else(|| {
        panic!(
            "{} of {N} lines arrived\n{}",
            numbers(&logs(&cloud, &instance), "k.log").len(),
            agent.logs()
        )
    });
    println!(
        "{} kill -9s of the agent (lines in the cloud at each: {kills:?}); all {N} lines once \
         and in order {:.1} s after the first kill",
        kills.len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        got,
        (1..=N).collect::<Vec<_>>(),
        "every line once, in order"
    );
    let texts: Vec<String> = per_file(&logs(&cloud, &instance))["k.log"].clone();
    assert_eq!(texts.first().map(String::as_str), Some("k 1"));
    assert_eq!(
        texts.last().map(String::as_str),
        Some(format!("k {N}").as_str())
    );
    assert!(
        logs(&cloud, &instance)["dropped"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(cli(&cloud, &["undeploy", &instance]).code, 0);
}

#[test]
fn drops_for_a_small_quota_are_reported_exactly_and_memory_stays_bounded() {
    const N: u64 = 20_000;
    let image = busybox_image("1").unwrap();
    let mut cloud = Cloud::start().unwrap();
    assert_eq!(cli(&cloud, &["env", "create", "plant"]).code, 0);
    // The host profile with a 256 KiB log quota (the quota counts compressed batches).
    let dir = tempfile::tempdir().unwrap();
    let profile = host_profile_with(
        dir.path(),
        "small-quota.toml",
        "log_quota = \"256Mi\"",
        "log_quota = \"256Ki\"",
    )
    .unwrap();
    let agent =
        Agent::enroll_profile(&cloud, "plant", "gw-q", profile.to_str().unwrap(), &[]).unwrap();
    // Ten lines, then nothing until `go` appears; then N lines of random digits (they
    // compress about 2:1, so the quota holds a fraction of them), then `end`.
    let manifest = format!(
        r#"app: flood
version: 1.0.0
components:
  - name: writer
    image: {image}
    log_dir: /logs
    command: ["sh", "-c", "i=0; while [ $i -lt 10 ]; do i=$((i+1)); echo \"q $i\" >> /logs/q.log; done; while [ ! -e /logs/go ]; do usleep 100000; done; while [ $i -lt {N} ]; do i=$((i+1)); echo \"q $i $RANDOM$RANDOM$RANDOM$RANDOM$RANDOM$RANDOM$RANDOM$RANDOM$RANDOM$RANDOM$RANDOM$RANDOM$RANDOM$RANDOM$RANDOM$RANDOM\" >> /logs/q.log; done; echo end >> /logs/q.log; exec sleep 100000"]
"#
    );
    let instance = publish_and_deploy(&cloud, &agent, "plant", "flood", &manifest).unwrap();
    assert!(
        wait_for(Duration::from_secs(60), || {
            (numbers(&logs(&cloud, &instance), "q.log").len() >= 10).then_some(())
        })
        .is_some(),
        "the first lines did not arrive\n{}",
        agent.logs()
    );
    let rss_before = agent.peak_rss().unwrap();

    // The link is down; the app writes far more than the quota holds.
    cloud.kill9().unwrap();
    let host_dir = agent
        .data_dir()
        .join("logs")
        .join(&instance)
        .join("writer-0");
    std::fs::write(host_dir.join("go"), "").unwrap();
    let written = host_dir.join("q.log");
    wait_for(Duration::from_secs(120), || {
        std::fs::read_to_string(&written)
            .unwrap_or_default()
            .ends_with("end\n")
            .then_some(())
    })
    .expect("the app did not finish writing");
    let raw = std::fs::metadata(&written).unwrap().len();
    // The agent says when it drops for the quota.
    wait_for(Duration::from_secs(60), || {
        agent.logs().contains("the log quota is full").then_some(())
    })
    .unwrap_or_else(|| panic!("no drop while the link was down\n{}", agent.logs()));
    // The agent keeps collecting (and dropping) until it has read the whole file; the link
    // comes back only after that, so every drop happens while the link is down (a batch
    // evicted while in flight after the reconnect could have arrived too). The collector
    // is done when its drops stop: no new quota line for 3 s.
    let quota_lines = |log: &str| log.matches("the log quota is full").count();
    let mut last = (quota_lines(&agent.logs()), Instant::now());
    wait_for(Duration::from_secs(120), || {
        let now = quota_lines(&agent.logs());
        if now != last.0 {
            last = (now, Instant::now());
        }
        (last.1.elapsed() >= Duration::from_secs(3)).then_some(())
    })
    .expect("the agent kept dropping for 2 minutes");
    cloud.restart().unwrap();
    let back = Instant::now();

    // Every line either arrived or is reported dropped, never both, and the dropped ones
    // are exactly the missing ones.
    let total = N + 1;
    let answer = wait_for(Duration::from_secs(180), || {
        let answer = logs(&cloud, &instance);
        let got = numbers(&answer, "q.log").len() as u64;
        let lost = dropped(&answer, "q.log").len() as u64;
        (got + lost >= total).then_some(answer)
    })
    .unwrap_or_else(|| {
        let answer = logs(&cloud, &instance);
        panic!(
            "got {} lines, {} reported dropped, of {total}\n{}",
            numbers(&answer, "q.log").len(),
            dropped(&answer, "q.log").len(),
            agent.logs()
        )
    });
    let got = numbers(&answer, "q.log");
    let lost = dropped(&answer, "q.log");
    let mut sorted = got.clone();
    sorted.sort_unstable();
    assert_eq!(got, sorted, "lines in order");
    let missing: Vec<u64> = {
        let have: std::collections::BTreeSet<u64> = got.iter().copied().collect();
        assert_eq!(have.len(), got.len(), "no line twice");
        (1..=total).filter(|n| !have.contains(n)).collect()
    };
    let node_total = answer["dropped"][0]["lines"].as_u64().unwrap();
    let peak = agent.peak_rss().unwrap();
    println!(
        "{raw} bytes written ({total} lines) with the link down and a 256 KiB quota: {} lines \
         arrived, {} reported dropped (node total {node_total}) = {} missing; all accounted \
         for {:.1} s after reconnect; agent peak RSS {:.1} MiB ({:.1} MiB before the outage)",
        got.len(),
        lost.len(),
        missing.len(),
        back.elapsed().as_secs_f64(),
        peak as f64 / 1048576.0,
        rss_before as f64 / 1048576.0
    );
    assert!(
        !lost.is_empty(),
        "the quota dropped nothing: {raw} bytes written"
    );
    assert_eq!(
        lost, missing,
        "the reported drops are exactly the missing lines"
    );
    assert_eq!(node_total, lost.len() as u64);
    assert_eq!(got.last(), Some(&total), "the newest lines are kept");
    assert_eq!(cli(&cloud, &["undeploy", &instance]).code, 0);
}

#[test]
fn node_logs_come_from_a_connected_agent_and_a_clear_refusal_otherwise() {
    let cloud = Cloud::start().unwrap();
    assert_eq!(cli(&cloud, &["env", "create", "plant"]).code, 0);
    let mut agent = Agent::enroll(&cloud, "plant", "gw-l").unwrap();
    let out = wait_for(Duration::from_secs(30), || {
        let out = cli(&cloud, &["node", "logs", "gw-l"]);
        (out.code == 0 && out.stdout.contains("connected to the cloud")).then_some(out)
    })
    .unwrap_or_else(|| panic!("{}", cli(&cloud, &["node", "logs", "gw-l"])));
    println!(
        "node logs: {} lines, {} bytes from the agent",
        out.stdout.lines().count(),
        out.stdout.len()
    );
    // The same file the agent keeps on disk.
    let on_disk = std::fs::read_to_string(agent.data_dir().join("agent.log")).unwrap();
    let first = out.stdout.lines().next().unwrap();
    assert!(on_disk.contains(first), "{first}");
    // `--since` in the future: nothing.
    let out = cli(
        &cloud,
        &["node", "logs", "gw-l", "--since", "2099-01-01T00:00:00Z"],
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(!out.stdout.contains("connected to the cloud"), "{out}");

    // Not connected: refused at once, exit 2, saying why.
    agent.kill9().unwrap();
    let out = wait_for(Duration::from_secs(30), || {
        let out = cli(&cloud, &["node", "logs", "gw-l"]);
        (out.code == 2).then_some(out)
    })
    .unwrap_or_else(|| panic!("{}", cli(&cloud, &["node", "logs", "gw-l"])));
    assert!(out.stderr.contains("not connected"), "{out}");
    println!("node logs of a stopped agent: {}", out.stderr.trim());
    let api = cloud.api().unwrap();
    let node = agent.node_id().unwrap();
    let answer = api.get(&format!("/api/v1/nodes/{node}/logs")).unwrap();
    assert_eq!(answer.status, 409, "{answer:?}");
    assert_eq!(
        answer.json().unwrap()["error"]["code"],
        "node_not_connected"
    );
}
