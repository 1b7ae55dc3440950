//! The agent's data directory on a small file system that fills up: a tmpfs mounted over
//! it (root only: without root, or when the mount fails, the test prints NOT RUN and why).
//! An app writes output lines the agent collects. The file system is filled to the last
//! byte while the cloud records events for the node and the app keeps writing: the agent
//! stays up (a failed commit asks the cloud again after a backoff of 1 s doubling to 30 s;
//! collected lines that cannot be queued are read again later from their cursors); once
//! the space is freed its journal opens sound (`skerry-edge status`) and it catches up with
//! everything recorded meanwhile, leaving the app's container as it was.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use skerry_tests::cli::{deploy, publish};
use skerry_tests::fault::{Plant, containers, journal_status};
use skerry_tests::images::unique;
use skerry_tests::smallfs::{SmallFs, copy_dir};
use skerry_tests::{cli, wait_for};

const CONVERGE: Duration = Duration::from_secs(120);
const FULL_FOR: Duration = Duration::from_secs(8);
const LABELS: usize = 100;

fn talker_manifest(image: &str) -> String {
    format!(
        "app: talker\nversion: 1.0.0\ncomponents:\n  - name: talker\n    image: {image}\n    \
         command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; i=0; while :; do i=$((i+1)); echo \
         line $i of the talker, padded to be a little longer than short; usleep 2000; \
         done\"]\n"
    )
}

#[test]
fn a_full_disk_does_not_stop_the_agent_and_the_journal_is_sound_after() {
    let Plant {
        image,
        cloud,
        api,
        mut agent,
        node,
    } = Plant::start().unwrap();
    let data = agent.data_dir();

    // Move the data directory onto a 16 MiB tmpfs.
    agent.kill9().unwrap();
    let saved = tempfile::tempdir().unwrap();
    copy_dir(&data, saved.path()).unwrap();
    let mut fs = match SmallFs::mount(&data, 16 << 20) {
        Ok(fs) => fs,
        Err(why) => {
            println!("NOT RUN: {why}");
            return;
        }
    };
    copy_dir(saved.path(), &data).unwrap();
    agent.restart().unwrap();

    publish(&cloud, agent.dir(), "talker", &talker_manifest(&image)).unwrap();
    let instance = unique("disk");
    deploy(&cloud, "talker@1.0.0", "plant", &instance, "gw-1").unwrap();
    let node_json = || api.get_json(&format!("/api/v1/nodes/{node}")).unwrap();
    assert!(
        wait_for(CONVERGE, || {
            let cs = containers(&node).ok()?;
            (cs.len() == 1 && cs[0].state == "running" && node_json()["lag"] == 0).then_some(())
        })
        .is_some(),
        "not running: {:?}\n{}",
        containers(&node),
        agent.logs()
    );
    let id_before = containers(&node).unwrap()[0].id.clone();

    // Full: the cloud records events for the node, and the app keeps talking.
    let filled = fs.fill().unwrap();
    let full_at = Instant::now();
    for i in 0..LABELS {
        let out = cli(&cloud, &["node", "label", "gw-1", &format!("k=v{i}")]);
        assert_eq!(out.code, 0, "{out}");
    }
    // The length of the outage is the fault under test, not a wait for a condition.
    std::thread::sleep(FULL_FOR.saturating_sub(full_at.elapsed()));
    assert!(
        agent.running(),
        "the agent stopped on a full disk:\n{}",
        agent.logs()
    );
    let during = node_json();
    let full_for = full_at.elapsed();
    fs.free().unwrap();
    let freed = Instant::now();

    let status = wait_for(CONVERGE, || {
        let n = node_json();
        let s = journal_status(&data).ok()?;
        (n["lag"] == 0 && s["last_applied"] == n["node_seq"]).then_some(s)
    })
    .unwrap_or_else(|| {
        panic!(
            "no catch-up after the space was freed: {}\n{}",
            node_json(),
            agent.logs()
        )
    });
    let caught_up = freed.elapsed();
    assert!(agent.running(), "the agent stopped:\n{}", agent.logs());
    let labels = status["labels"].as_array().unwrap();
    assert!(
        labels
            .iter()
            .any(|kv| kv[0] == "k" && kv[1] == format!("v{}", LABELS - 1)),
        "{status}"
    );
    // The app was left running throughout.
    let cs = containers(&node).unwrap();
    assert_eq!(cs.len(), 1);
    assert_eq!(cs[0].id, id_before);
    // The journal opens sound once the agent is gone too.
    agent.kill9().unwrap();
    let sound = journal_status(&data).unwrap();
    assert_eq!(sound["last_applied"], status["last_applied"]);
    let logs = agent.logs();
    let commit_failures = logs.matches("cannot commit to the journal").count();
    let queue_failures = logs.matches("cannot queue").count();
    let collector_failures = logs.matches("cannot queue collected log lines").count();
    println!(
        "data dir on a 16 MiB tmpfs filled ({filled} bytes of filler) for {:.1} s while {LABELS} \
         events were recorded (lag {} then): the agent stayed up; {commit_failures} journal \
         commits (retried after 1, 2, 4... s) and {queue_failures} outbox pushes ({collector_failures} \
         of collected log lines, read again later from their cursors) failed for lack of space; \
         caught up {:.2} s after the space was freed (node_seq {}), the \
         journal opens sound, the app's container kept its id",
        full_for.as_secs_f64(),
        during["lag"],
        caught_up.as_secs_f64(),
        status["last_applied"]
    );
}
