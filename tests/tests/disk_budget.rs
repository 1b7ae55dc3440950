//! The profile's `disk` bounds what the agent stores: a real agent whose data directory is
//! a tmpfs far larger than its profile's `disk`, an app whose output outruns the profile's
//! `log_rate`, so log batches queue. The file system's used bytes (everything in the data
//! directory) never pass `disk`; queued log batches give way first, and the drops are
//! counted in the journal and reported to the cloud (`skerry logs -o json`). Root only
//! (the tmpfs): without it the test prints NOT RUN and why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use skerry_tests::agent::Agent;
use skerry_tests::cli::{deploy, publish};
use skerry_tests::fault::journal_status;
use skerry_tests::images::busybox_image;
use skerry_tests::smallfs::{SmallFs, copy_dir};
use skerry_tests::{Cloud, cli, wait_for};

const MIB: u64 = 1024 * 1024;
/// The profile's `disk`.
const DISK: u64 = 24 * MIB;
/// How long the test waits for enough drops.
const CHURN: Duration = Duration::from_secs(180);

/// A profile whose queues alone nearly fill `disk` (22 + 1 of 24 MiB: valid), and a log
/// rate far below what the app writes.
fn profile() -> String {
    r#"name = "tight-disk"
description = "a device with little disk for the agent"
arch = "x86_64"
memory = "8Gi"
disk = "24Mi"
runtimes = ["docker", "process"]
link = "ethernet"

[cpu]
cores = 2

[agent]
heartbeat = "5s"
log_quota = "22Mi"
outbox_quota = "1Mi"
log_rate = "2Ki"
redb_cache = "4Mi"
"#
    .to_owned()
}

/// Output that compresses badly: base64 of random bytes, about 2.6 MB/s.
fn chatter_manifest(image: &str) -> String {
    format!(
        "app: chatter\nversion: 1.0.0\ncomponents:\n  - name: chatter\n    image: {image}\n    \
         command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; while :; do head -c 10000 /dev/urandom \
         | base64; usleep 5000; done\"]\n"
    )
}

#[test]
fn the_agent_keeps_what_it_stores_within_the_profiles_disk() {
    let image = busybox_image("1").unwrap();
    let cloud = Cloud::start().unwrap();
    assert_eq!(cli(&cloud, &["env", "create", "plant"]).code, 0);
    let dir = tempfile::tempdir().unwrap();
    let profile_file = dir.path().join("tight-disk.toml");
    std::fs::write(&profile_file, profile()).unwrap();
    let mut agent =
        Agent::enroll_profile(&cloud, "plant", "gw-1", profile_file.to_str().unwrap(), &[])
            .unwrap();
    let data = agent.data_dir();

    // The data directory onto a tmpfs of 128 MiB: the file system is not what stops it.
    agent.kill9().unwrap();
    let saved = tempfile::tempdir().unwrap();
    copy_dir(&data, saved.path()).unwrap();
    let fs = match SmallFs::mount(&data, 128 * MIB) {
        Ok(fs) => fs,
        Err(why) => {
            println!("NOT RUN: {why}");
            return;
        }
    };
    let size = fs.available().unwrap();
    copy_dir(saved.path(), &data).unwrap();
    agent.restart().unwrap();
    let used = || size - fs.available().unwrap();

    publish(&cloud, dir.path(), "chatter", &chatter_manifest(&image)).unwrap();
    deploy(&cloud, "chatter@1.0.0", "plant", "chatter", "gw-1").unwrap();

    // Until many batches were dropped: what is stored never passes `disk`.
    let start = Instant::now();
    let mut peak = 0;
    let dropped = wait_for(CHURN, || {
        peak = peak.max(used());
        assert!(
            peak <= DISK,
            "the data directory holds {peak} bytes, more than disk ({DISK}) after {:?}:\n{}",
            start.elapsed(),
            agent.logs()
        );
        let status = journal_status(&data).ok()?;
        let batches = status["outbox"]["dropped_batches"].as_u64()?;
        (batches >= 40).then_some(status)
    })
    .unwrap_or_else(|| panic!("too few drops in {CHURN:?}; peak {peak}:\n{}", agent.logs()));
    println!(
        "peak {:.1} MiB of {} MiB after {:.0} s; queued logs {:.1} MiB; dropped {} batches, {} lines",
        peak as f64 / MIB as f64,
        DISK / MIB,
        start.elapsed().as_secs_f64(),
        dropped["outbox"]["log_bytes"].as_u64().unwrap() as f64 / MIB as f64,
        dropped["outbox"]["dropped_batches"],
        dropped["outbox"]["dropped_lines"],
    );
    // Log batches gave way for the disk, not for the log quota: fewer are queued.
    assert!(
        dropped["outbox"]["log_bytes"].as_u64().unwrap() < 20 * MIB,
        "{dropped}"
    );
    assert!(
        agent.logs().contains("at its disk budget"),
        "{}",
        agent.logs()
    );
    // The cloud hears of the drops.
    let reported = wait_for(Duration::from_secs(60), || {
        let out = cli(&cloud, &["logs", "chatter", "-o", "json"]);
        let v = out.json().ok()?;
        let d = v["dropped"].as_array()?.clone();
        (!d.is_empty()).then_some(d)
    });
    assert!(reported.is_some(), "no drops reported to the cloud");
    assert_eq!(cli(&cloud, &["undeploy", "chatter"]).code, 0);
    agent.kill9().unwrap();
    drop(fs);
}
