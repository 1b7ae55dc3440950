//! A damaged journal: truncated, then bit-flipped, while the agent is down. Each time the
//! damage is found at open (`skerry-edge status` refuses the file, and the agent does not
//! use it), the file is set aside, and a new journal under a new epoch is filled from the
//! cloud's snapshot; meanwhile nothing is reconciled, so the running containers are left
//! alone (the same container ids before and after, none started). Once rebuilt, the agent
//! acts on new events again (an undeploy removes the containers).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use skerry_tests::agent::Agent;
use skerry_tests::fault::{
    Container, Plant, cloud_node_events, containers, containers_of, deploy_sleeper, journal_status,
    publish_sleeper,
};
use skerry_tests::images::unique;
use skerry_tests::{cli, wait_for};

const CONVERGE: Duration = Duration::from_secs(60);
const REPLICAS: usize = 2;

/// Containers started by this agent, as its log says.
fn starts(agent: &Agent) -> usize {
    agent.logs().matches(": started container=").count()
}

/// Damages the journal file; says how.
type Damage<'a> = Box<dyn Fn(&Path) -> String + 'a>;

/// Cuts the file off mid-page, as a torn write of its tail would. (Half its length is not
/// enough: when the second half holds only free pages, that is a sound, shorter journal.)
fn truncate(path: &Path) -> String {
    let len = std::fs::metadata(path).unwrap().len();
    let to = len / 2 - 1000;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(to).unwrap();
    format!("truncated from {len} to {to} bytes")
}

/// Flips one bit in every copy of `needle` in the file (the live copy is among them).
fn flip(path: &Path, needle: &[u8]) -> String {
    let mut bytes = std::fs::read(path).unwrap();
    let mut hits = 0;
    let mut i = 0;
    while i + needle.len() <= bytes.len() {
        if &bytes[i..i + needle.len()] == needle {
            bytes[i + needle.len() / 2] ^= 0x01;
            hits += 1;
            i += needle.len();
        } else {
            i += 1;
        }
    }
    assert!(hits > 0, "{needle:?} is not in the journal");
    std::fs::write(path, &bytes).unwrap();
    format!("flipped a bit in {hits} copies of the instance's name")
}

fn damaged_files(data: &Path) -> usize {
    std::fs::read_dir(data)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("journal.redb.damaged-")
        })
        .count()
}

fn running(cs: &[Container]) -> bool {
    cs.len() == REPLICAS && cs.iter().all(|c| c.state == "running")
}

#[test]
fn a_damaged_journal_is_never_used_and_is_rebuilt_without_touching_the_apps() {
    let Plant {
        image,
        cloud,
        api,
        mut agent,
        node,
    } = Plant::start().unwrap();
    publish_sleeper(&cloud, agent.dir(), &image, REPLICAS as u32).unwrap();
    let instance = unique("jrnl");
    deploy_sleeper(&cloud, "plant", &instance, "gw-1").unwrap();
    for i in 0..5 {
        let out = cli(&cloud, &["node", "label", "gw-1", &format!("k{i}=v{i}")]);
        assert_eq!(out.code, 0, "{out}");
    }
    let mut head = cloud_node_events(&api, &node).unwrap().len() as u64;
    let before = wait_for(CONVERGE, || {
        let cs = containers_of(&node, &instance).unwrap();
        let applied = journal_status(&agent.data_dir()).ok()?["last_applied"].as_u64()?;
        (running(&cs) && applied == head).then_some(cs)
    })
    .unwrap_or_else(|| panic!("not converged: {:?}\n{}", containers(&node), agent.logs()));

    let journal = agent.data_dir().join("journal.redb");
    let damages: [(&str, Damage); 2] = [
        ("truncated", Box::new(truncate)),
        (
            "bit-flipped",
            Box::new(|p: &Path| flip(p, instance.as_bytes())),
        ),
    ];
    for (n, (kind, damage)) in damages.iter().enumerate() {
        // `status` beside a running agent can find the file busy for a moment: retried.
        let epoch = wait_for(Duration::from_secs(10), || {
            journal_status(&agent.data_dir()).ok()
        })
        .unwrap()["epoch"]
            .as_str()
            .unwrap()
            .to_owned();
        agent.kill9().unwrap();
        let what = damage(&journal);
        // Found at open: the inspector refuses it too.
        let refused = journal_status(&agent.data_dir()).unwrap_err().to_string();
        assert!(refused.contains("damaged"), "{kind}: {refused}");
        let started_before = starts(&agent);

        agent.restart().unwrap();
        let t0 = Instant::now();
        let status = wait_for(CONVERGE, || {
            let s = journal_status(&agent.data_dir()).ok()?;
            (s["last_applied"].as_u64()? == head).then_some(s)
        })
        .unwrap_or_else(|| panic!("{kind}: not rebuilt\n{}", agent.logs()));
        let rebuilt = t0.elapsed();
        assert_ne!(
            status["epoch"].as_str().unwrap(),
            epoch,
            "{kind}: same epoch"
        );
        assert_eq!(damaged_files(&agent.data_dir()), n + 1, "{kind}");
        let instances = status["instances"].as_array().unwrap();
        assert_eq!(instances.len(), n + 1, "{kind}: {status}");
        assert!(
            instances.iter().any(|i| i["name"] == instance.as_str()),
            "{kind}: {status}"
        );
        assert_eq!(
            starts(&agent),
            started_before,
            "{kind}: a container was started"
        );
        // A probe instance deployed now runs only after a reconcile pass on the rebuilt
        // state, which holds the first instance too: that pass adopted, never replaced.
        let probe = format!("{instance}-p{n}");
        deploy_sleeper(&cloud, "plant", &probe, "gw-1").unwrap();
        assert!(
            wait_for(CONVERGE, || running(&containers_of(&node, &probe).unwrap())
                .then_some(()))
            .is_some(),
            "{kind}: the probe did not run: {:?}\n{}",
            containers(&node),
            agent.logs()
        );
        head = cloud_node_events(&api, &node).unwrap().len() as u64;
        let after = containers_of(&node, &instance).unwrap();
        assert_eq!(after, before, "{kind}: the containers changed");
        assert_eq!(
            starts(&agent),
            started_before + REPLICAS,
            "{kind}: a container other than the probe's was started"
        );
        println!(
            "{kind} journal ({what}): refused at open, set aside, rebuilt from the cloud's snapshot \
             (node_seq {head}, new epoch {}) in {:.2} s; {} containers kept with the same ids",
            status["epoch"].as_str().unwrap(),
            rebuilt.as_secs_f64(),
            after.len()
        );
    }

    // The rebuilt journal drives the agent as before: an undeploy removes the containers.
    let out = cli(&cloud, &["undeploy", &instance]);
    assert_eq!(out.code, 0, "{out}");
    assert!(
        wait_for(CONVERGE, || containers_of(&node, &instance)
            .unwrap()
            .is_empty()
            .then_some(()))
        .is_some(),
        "not undeployed after the rebuild: {:?}\n{}",
        containers(&node),
        agent.logs()
    );
}
