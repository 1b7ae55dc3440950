//! Cron jobs on real agents with real containers: a job every 2 seconds runs while the
//! cloud is down and across an agent `kill -9`, and once the link is back `skerry jobs`
//! lists every run exactly once with its exit code, none overlapping under `forbid`; a run
//! longer than its timeout is killed and reported as timed out; an agent whose clock is
//! offset (`SKERRY_CLOCK_OFFSET`) runs by that clock and says so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::Value;
use skerry_tests::cli::{cli, deploy, publish};
use skerry_tests::fault::{Plant, journal_status};
use skerry_tests::images::unique;
use skerry_tests::wait_for;

const DEADLINE: Duration = Duration::from_secs(90);

fn job_manifest(app: &str, image: &str, extra: &str, script: &str) -> String {
    format!(
        "app: {app}\nversion: 1.0.0\ncomponents:\n  - name: tick\n    kind: job\n    image: {image}\n    \
         schedule: \"*/2 * * * * *\"\n{extra}    command: [\"sh\", \"-c\", \"{script}\"]\n"
    )
}

fn runs(cloud: &skerry_tests::cloud::Cloud, instance: &str) -> Vec<Value> {
    let out = cli(cloud, &["jobs", instance, "--limit", "1000", "-o", "json"]);
    assert_eq!(out.code, 0, "{out}");
    out.json().unwrap()["runs"].as_array().unwrap().clone()
}

fn millis(v: &Value) -> i64 {
    let text = v.as_str().unwrap();
    skerry_shared::clock::Timestamp::parse_rfc3339(text)
        .unwrap()
        .millis()
}

fn now_ms() -> i64 {
    skerry_shared::clock::Timestamp::now().millis()
}

#[test]
fn a_job_runs_offline_and_across_kill_9_and_every_run_is_reported_once() {
    let Plant {
        image,
        mut cloud,
        mut agent,
        ..
    } = Plant::start().unwrap();
    let instance = unique("ticks");
    let yaml = job_manifest("ticker", &image, "", "echo tick; sleep 1; echo done");
    publish(&cloud, agent.dir(), "ticker", &yaml).unwrap();
    deploy(&cloud, "ticker@1.0.0", "plant", &instance, "gw-1").unwrap();
    // The first run reaches the cloud.
    wait_for(DEADLINE, || {
        runs(&cloud, &instance)
            .iter()
            .any(|r| r["outcome"] == "exited")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("no run ended: {}", agent.logs()));

    // The link goes down: the cloud is killed. Runs go on; then the agent is killed too,
    // misses a few due times, and starts again with the cloud still down.
    cloud.kill9().unwrap();
    let offline_from = now_ms();
    std::thread::sleep(Duration::from_secs(7));
    agent.kill9().unwrap();
    let agent_down_from = now_ms();
    std::thread::sleep(Duration::from_secs(5));
    agent.restart().unwrap();
    let agent_up = now_ms();
    std::thread::sleep(Duration::from_secs(6));
    let offline_to = now_ms();
    cloud.restart().unwrap();

    // Every run the agent started reaches the cloud, once, and ends.
    let t0 = Instant::now();
    let listed = wait_for(DEADLINE, || {
        let started = agent.logs().matches("starting a job run").count();
        let listed = runs(&cloud, &instance);
        let ended = listed.iter().filter(|r| r["outcome"] != "running").count();
        // The runs that ended before the last one started: all of them are in.
        (listed.len() >= started && ended + 1 >= listed.len() && started > 5).then_some(listed)
    })
    .unwrap_or_else(|| {
        panic!(
            "runs not all reported: {:?}\n{}",
            runs(&cloud, &instance),
            agent.logs()
        )
    });
    let caught_up = t0.elapsed();
    let started_in_log = agent.logs().matches("starting a job run").count();
    let ids: Vec<u64> = listed.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    let mut unique_ids = ids.clone();
    unique_ids.dedup();
    assert_eq!(ids, unique_ids, "a run is listed twice");
    assert!(
        listed.len() >= started_in_log && listed.len() <= started_in_log + 1,
        "the agent started {started_in_log} runs, the cloud lists {}",
        listed.len()
    );

    // Runs happened while the cloud was down, before and after the agent's kill.
    let offline: Vec<&Value> = listed
        .iter()
        .filter(|r| {
            let s = millis(&r["started"]);
            s > offline_from && s < offline_to
        })
        .collect();
    assert!(
        offline
            .iter()
            .filter(|r| millis(&r["started"]) < agent_down_from)
            .count()
            >= 2,
        "too few runs before the agent's kill: {offline:?}"
    );
    let after_restart: Vec<&&Value> = offline
        .iter()
        .filter(|r| millis(&r["started"]) >= agent_up)
        .collect();
    assert!(
        after_restart.len() >= 2,
        "too few runs after the restart: {offline:?}"
    );
    // Missed while the agent was down: one catch-up run, not one per due time.
    let catch_ups = listed
        .iter()
        .filter(|r| {
            let s = millis(&r["started"]);
            s >= agent_down_from && s < agent_up + 3_000 && s - millis(&r["due"]) > 2_500
        })
        .count();
    assert!(catch_ups <= 1, "several catch-up runs: {listed:?}");

    // Ended runs exited 0 (the one running at the agent's kill too: its container went on),
    // and none overlapped (forbid).
    let mut prev_end = 0i64;
    for r in &listed {
        if r["outcome"] == "running" {
            continue;
        }
        assert_eq!(r["exit_code"], 0, "{r}");
        assert_eq!(r["last_lines"].as_array().unwrap().last().unwrap(), "done");
        let s = millis(&r["started"]);
        assert!(s >= prev_end, "runs overlap: {listed:?}");
        prev_end = millis(&r["ended"]);
    }
    // The table form, as a user reads it.
    let table = cli(&cloud, &["jobs", &instance, "--component", "tick"]);
    assert_eq!(table.code, 0, "{table}");
    assert!(table.stdout.contains("exited 0"), "{table}");
    println!(
        "{} runs of a 2 s job ({} while the cloud was down, {} after the agent's kill -9 and \
         restart), each listed once, exit 0, none overlapping; all reported {:.1} s after the \
         cloud came back",
        listed.len(),
        offline.len(),
        after_restart.len(),
        caught_up.as_secs_f64()
    );
}

#[test]
fn a_run_past_its_timeout_is_killed_and_an_offset_clock_is_shown() {
    let Plant {
        image,
        cloud,
        mut agent,
        ..
    } = Plant::start().unwrap();
    agent.set_env("SKERRY_CLOCK_OFFSET", "+3h");
    agent.restart().unwrap();
    let instance = unique("slow");
    let yaml = job_manifest(
        "slowjob",
        &image,
        "    timeout: 2s\n",
        "echo starting; sleep 30",
    );
    publish(&cloud, agent.dir(), "slowjob", &yaml).unwrap();
    deploy(&cloud, "slowjob@1.0.0", "plant", &instance, "gw-1").unwrap();
    let run = wait_for(DEADLINE, || {
        runs(&cloud, &instance)
            .into_iter()
            .find(|r| r["outcome"] != "running")
    })
    .unwrap_or_else(|| panic!("no run ended: {}", agent.logs()));
    assert_eq!(run["outcome"], "timed-out", "{run}");
    assert_eq!(run["summary"], "timed out", "{run}");
    let took = run["duration_ms"].as_i64().unwrap();
    assert!((2_000..6_000).contains(&took), "{run}");
    assert_eq!(run["last_lines"][0], "starting", "{run}");
    // The agent's clock is 3 h ahead: so are its runs' times, and its status says so.
    let ahead = millis(&run["started"]) - now_ms();
    assert!(
        (3 * 3_600_000 - 60_000..3 * 3_600_000 + 60_000).contains(&ahead),
        "{run}"
    );
    let status = journal_status(&agent.data_dir()).unwrap();
    assert_eq!(status["clock_offset"], "+3h", "{status}");
    println!(
        "a run with timeout 2s was killed after {took} ms and reported timed out; the agent's clock offset +3h shows in its status"
    );
}
