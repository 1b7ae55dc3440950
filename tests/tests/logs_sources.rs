//! Where log lines come from, end to end: a real `skerry serve`, a real `skerry-edge run`
//! and real processes. `exec` components that share a `log_dir` (one of them with two
//! replicas) ship each file once, under the replica that wrote it; the output of an `exec`
//! component without a `log_dir` is shipped as `(stdout)` and `(stderr)`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use skerry_tests::agent::Agent;
use skerry_tests::agent::publish_and_deploy;
use skerry_tests::{Cloud, cli, wait_for};

const CONVERGE: Duration = Duration::from_secs(90);

fn logs(cloud: &Cloud, instance: &str) -> Value {
    let out = cli(cloud, &["logs", instance, "-o", "json"]);
    assert_eq!(out.code, 0, "{out}");
    out.json().unwrap()
}

/// Each line's text with (component, replica, file), in the order given.
fn origins(answer: &Value) -> Vec<(String, (String, u64, String))> {
    answer["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["text"].as_str().unwrap().to_owned(),
                (
                    l["component"].as_str().unwrap().to_owned(),
                    l["replica"].as_u64().unwrap(),
                    l["file"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect()
}

#[test]
fn exec_replicas_ship_their_own_files_once_and_their_output_without_a_log_dir() {
    const N: u32 = 20;
    let cloud = Cloud::start().unwrap();
    assert_eq!(cli(&cloud, &["env", "create", "plant"]).code, 0);
    let agent = Agent::enroll_with(&cloud, "plant", "gw-s", &["--runtime", "process"]).unwrap();
    let shared = agent.dir().join("shared-logs");
    let d = shared.display();
    let writer = |name: &str, extra: &str| {
        format!(
            r#"["/bin/sh", "-c", "i=0; while [ $i -lt {N} ]; do i=$((i+1)); echo \"{name} $SKERRY_REPLICA $i\"; done; {extra} exec sleep 100000"]"#
        )
    };
    let manifest = format!(
        r#"app: sharing
version: 1.0.0
components:
  - name: alpha
    exec: {alpha}
    replicas: 2
    log_dir: {d}
  - name: beta
    exec: {beta}
    log_dir: {d}
  - name: gamma
    exec: ["/bin/sh", "-c", "echo gamma out; echo gamma err >&2; exec sleep 100000"]
"#,
        alpha = writer(
            "alpha",
            &format!("echo \\\"mine $SKERRY_REPLICA\\\" >> {d}/alpha-$SKERRY_REPLICA.app.log;")
        ),
        beta = writer("beta", &format!("echo common >> {d}/common.log;")),
    );
    let instance = publish_and_deploy(&cloud, &agent, "plant", "sharing", &manifest).unwrap();
    let expected = 3 * N as usize + 2 + 1 + 2;
    let lines = wait_for(CONVERGE, || {
        let o = origins(&logs(&cloud, &instance));
        (o.len() >= expected).then_some(o)
    })
    .unwrap_or_else(|| panic!("{:?}\n{}", origins(&logs(&cloud, &instance)), agent.logs()));
    let mut by_text: BTreeMap<String, Vec<(String, u64, String)>> = BTreeMap::new();
    for (text, origin) in &lines {
        by_text
            .entry(text.clone())
            .or_default()
            .push(origin.clone());
    }
    let once = |text: &str| -> (String, u64, String) {
        let o = by_text
            .get(text)
            .unwrap_or_else(|| panic!("{text:?} never arrived: {by_text:?}"));
        assert_eq!(o.len(), 1, "{text:?} shipped {} times: {o:?}", o.len());
        o[0].clone()
    };
    for i in 1..=N {
        for r in 0..2u64 {
            assert_eq!(
                once(&format!("alpha {r} {i}")),
                ("alpha".into(), r, format!("alpha-{r}.stdout.log"))
            );
        }
        assert_eq!(
            once(&format!("beta 0 {i}")),
            ("beta".into(), 0, "beta-0.stdout.log".into())
        );
    }
    for r in 0..2u64 {
        assert_eq!(
            once(&format!("mine {r}")),
            ("alpha".into(), r, format!("alpha-{r}.app.log"))
        );
    }
    // A file no replica's name claims: shipped once, by the first replica of the directory.
    assert_eq!(once("common"), ("alpha".into(), 0, "common.log".into()));
    // Without a log_dir: the process's own output, as a container's.
    assert_eq!(once("gamma out"), ("gamma".into(), 0, "(stdout)".into()));
    assert_eq!(once("gamma err"), ("gamma".into(), 0, "(stderr)".into()));
    assert_eq!(lines.len(), expected, "{by_text:?}");
    println!(
        "{} lines from 4 exec replicas (3 sharing one log_dir), each once under its own replica",
        lines.len()
    );
    let table = cli(&cloud, &["logs", &instance, "--component", "gamma"]);
    println!("{}", table.stdout);
    assert!(
        table.stdout.contains("gamma-0  (stderr)  gamma err"),
        "{table}"
    );
    assert_eq!(cli(&cloud, &["undeploy", &instance]).code, 0);
}

#[test]
fn subdirectories_are_collected_and_files_past_the_limit_are_reported_waiting() {
    const FILES: usize = 1100;
    const TRACKED: usize = 1024;
    let cloud = Cloud::start().unwrap();
    assert_eq!(cli(&cloud, &["env", "create", "plant"]).code, 0);
    let agent = Agent::enroll_with(&cloud, "plant", "gw-w", &["--runtime", "process"]).unwrap();
    let dir = agent.dir().join("many-logs");
    // A file two levels down, then more files than a log_dir is read at once.
    std::fs::create_dir_all(dir.join("sub/deep")).unwrap();
    std::fs::write(dir.join("sub/deep/a.log"), "from a subdirectory\n").unwrap();
    std::fs::create_dir_all(dir.join("many")).unwrap();
    for i in 0..FILES {
        std::fs::write(dir.join(format!("many/f{i:05}.log")), format!("file {i}\n")).unwrap();
    }
    let manifest = format!(
        r#"app: crowded
version: 1.0.0
components:
  - name: app
    exec: ["/bin/sh", "-c", "exec sleep 100000"]
    log_dir: {}
"#,
        dir.display()
    );
    let instance = publish_and_deploy(&cloud, &agent, "plant", "crowded", &manifest).unwrap();
    let waiting = (FILES + 1 - TRACKED) as u64;
    let answer = wait_for(CONVERGE, || {
        let a = logs(&cloud, &instance);
        let n = a["waiting"]
            .as_array()
            .and_then(|w| w.first())
            .and_then(|w| w["files"].as_u64());
        (n == Some(waiting)).then_some(a)
    })
    .unwrap_or_else(|| panic!("{}\n{}", logs(&cloud, &instance)["waiting"], agent.logs()));
    let w = &answer["waiting"][0];
    assert_eq!(w["node_name"], "gw-w", "{w}");
    assert_eq!(w["replicas"][0]["component"], "app", "{w}");
    assert_eq!(w["replicas"][0]["files"], waiting, "{w}");
    let lines = wait_for(CONVERGE, || {
        let o = origins(&logs(&cloud, &instance));
        (o.len() >= TRACKED).then_some(o)
    })
    .unwrap();
    assert_eq!(lines.len(), TRACKED, "one line of each file read");
    assert!(
        lines
            .iter()
            .any(|(text, (_, _, file))| text == "from a subdirectory" && file == "sub/deep/a.log"),
        "the subdirectory's file"
    );
    // The table says so on standard error; so does the agent's own status.
    let table = cli(&cloud, &["logs", &instance]);
    assert_eq!(table.code, 0, "{table}");
    let said = format!("gw-w: {waiting} log files wait for a slot");
    assert!(table.stderr.contains(&said), "{}", table.stderr);
    println!("{}", table.stderr.trim());
    let out = std::process::Command::new(skerry_tests::bin("skerry-edge"))
        .args(["status", "-o", "json", "--data"])
        .arg(agent.data_dir())
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["logs_waiting"][0]["files"], waiting, "{status}");
    let out = std::process::Command::new(skerry_tests::bin("skerry-edge"))
        .args(["status", "--data"])
        .arg(agent.data_dir())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("logs waiting:"))
        .unwrap();
    println!("{line}");
    assert!(line.contains(&format!("{waiting} files")), "{text}");

    // Files go: the waiting ones are read, and none waits any more.
    for i in 0..FILES / 10 {
        std::fs::remove_file(dir.join(format!("many/f{i:05}.log"))).unwrap();
    }
    wait_for(CONVERGE, || {
        let a = logs(&cloud, &instance);
        (a["waiting"].as_array().is_some_and(Vec::is_empty) && origins(&a).len() == FILES + 1)
            .then_some(())
    })
    .unwrap_or_else(|| {
        let a = logs(&cloud, &instance);
        panic!("{} lines; waiting {}", origins(&a).len(), a["waiting"])
    });
    assert_eq!(cli(&cloud, &["undeploy", &instance]).code, 0);
}

#[test]
fn a_long_line_comes_in_pieces_that_keep_its_number() {
    const LONG: usize = 5_000_000;
    const PIECE: usize = 16 * 1024;
    let cloud = Cloud::start().unwrap();
    assert_eq!(cli(&cloud, &["env", "create", "plant"]).code, 0);
    let agent = Agent::enroll_with(&cloud, "plant", "gw-l", &["--runtime", "process"]).unwrap();
    let dir = agent.dir().join("long-logs");
    let manifest = format!(
        r#"app: longline
version: 1.0.0
components:
  - name: app
    exec: ["/bin/sh", "-c", "echo first >> {d}/app.log; head -c {LONG} /dev/zero | tr '\\0' x >> {d}/app.log; echo >> {d}/app.log; echo after >> {d}/app.log; exec sleep 100000"]
    log_dir: {d}
"#,
        d = dir.display()
    );
    let instance = publish_and_deploy(&cloud, &agent, "plant", "longline", &manifest).unwrap();
    let answer = wait_for(CONVERGE, || {
        let a = logs(&cloud, &instance);
        a["lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["text"] == "after")
            .then_some(a)
    })
    .unwrap_or_else(|| panic!("{}", agent.logs()));
    let lines: Vec<&Value> = answer["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["file"] == "app.log")
        .collect();
    let pieces = LONG.div_ceil(PIECE);
    assert_eq!(lines.len(), 1 + pieces + 1, "first, the pieces, after");
    let pos = |l: &Value| {
        (
            l["line"].as_u64().unwrap(),
            l["part"].as_u64().unwrap(),
            l["continued"].as_bool().unwrap(),
        )
    };
    assert_eq!(pos(lines[0]), (1, 0, false));
    for (i, l) in lines[1..=pieces].iter().enumerate() {
        assert_eq!(pos(l), (2, i as u64, i + 1 < pieces), "piece {i}");
    }
    let text: usize = lines[1..=pieces]
        .iter()
        .map(|l| l["text"].as_str().unwrap().len())
        .sum();
    assert_eq!(text, LONG, "the whole line, in its pieces");
    let after = lines.last().unwrap();
    assert_eq!(after["text"], "after");
    assert_eq!(
        pos(after),
        (3, 0, false),
        "the next line keeps its number in the file"
    );
    println!(
        "a {LONG}-byte line in {pieces} pieces, all line 2; the next line is line {}",
        after["line"]
    );
    assert_eq!(cli(&cloud, &["undeploy", &instance]).code, 0);
}
