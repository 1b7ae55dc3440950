//! `kill -9` of the agent at random points of deploy and undeploy cycles. Each cycle
//! deploys a new instance (two replicas) and undeploys the one before, waits a random 0 to
//! 1,200 ms and kills the agent: before, during or after the commit of the events, the
//! creation, start or removal of containers. After each kill the journal opens and holds
//! every event the cloud saw acknowledged; after the last restart the node converges to
//! exactly one container per replica of the last instance, and the journal's events are
//! the cloud's events for the node.
//!
//! The default run does a few cycles; `cargo test -p skerry-tests --test faults_agent --
//! --ignored --nocapture` does `SKERRY_FAULT_KILLS` (200 by default).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use rand::Rng;
use skerry_tests::fault::{
    Plant, cloud_node_events, containers, deploy_sleeper, journal_events, journal_status,
    publish_sleeper,
};
use skerry_tests::images::unique;
use skerry_tests::{cli, wait_for};

const CONVERGE: Duration = Duration::from_secs(120);
const REPLICAS: usize = 2;

fn kills_from_env(default: usize) -> usize {
    std::env::var("SKERRY_FAULT_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn kill_cycles(kills: usize) {
    let Plant {
        image,
        cloud,
        api,
        mut agent,
        node,
    } = Plant::start().unwrap();
    publish_sleeper(&cloud, agent.dir(), &image, REPLICAS as u32).unwrap();

    let prefix = unique("kill");
    let mut rng = rand::rng();
    let mut worst_gap = 0u64;
    let started = Instant::now();
    for i in 0..kills {
        let instance = format!("{prefix}-{i}");
        deploy_sleeper(&cloud, "plant", &instance, "gw-1").unwrap();
        if i > 0 {
            let out = cli(&cloud, &["undeploy", &format!("{prefix}-{}", i - 1)]);
            assert_eq!(out.code, 0, "{out}");
        }
        // The random moment of the kill is the point of the test, not a wait.
        std::thread::sleep(Duration::from_millis(rng.random_range(0..=1200)));
        agent.kill9().unwrap();
        let acked = api.get_json(&format!("/api/v1/nodes/{node}")).unwrap()["acked_node_seq"]
            .as_u64()
            .unwrap();
        let status = journal_status(&agent.data_dir())
            .unwrap_or_else(|e| panic!("cycle {i}: the journal does not open: {e}"));
        let applied = status["last_applied"].as_u64().unwrap();
        assert!(
            applied >= acked,
            "cycle {i}: the cloud saw node_seq {acked} acknowledged, the journal has {applied}"
        );
        worst_gap = worst_gap.max(applied - acked);
        agent.restart().unwrap();
    }
    let cycles = started.elapsed();

    // Converged: exactly one running container per replica of the last instance.
    let last = format!("{prefix}-{}", kills - 1);
    let t0 = Instant::now();
    let expected: Vec<String> = {
        let tag: String = node.chars().take(8).collect();
        (0..REPLICAS)
            .map(|r| format!("skerry-{tag}.{last}.sleeper.{r}"))
            .collect()
    };
    let head = cloud_node_events(&api, &node).unwrap();
    let converged = wait_for(CONVERGE, || {
        let cs = containers(&node).ok()?;
        let names: Vec<&str> = cs.iter().map(|c| c.name.as_str()).collect();
        let applied = journal_status(&agent.data_dir()).ok()?["last_applied"].as_u64()?;
        (names == expected
            && cs.iter().all(|c| c.state == "running")
            && applied == head.len() as u64)
            .then_some(cs)
    })
    .unwrap_or_else(|| panic!("not converged: {:?}\n{}", containers(&node), agent.logs()));
    let converge = t0.elapsed();
    agent.kill9().unwrap();
    // Nothing acknowledged is missing: the journal's events are the cloud's for the node,
    // in node_seq order without a gap, through the last (from the first, unless a
    // catch-up went as a snapshot, which replaces the events before it).
    let journal = journal_events(&agent.data_dir()).unwrap();
    let first = journal.first().map_or(1, |(n, _)| *n);
    let node_seqs: Vec<u64> = journal.iter().map(|(n, _)| *n).collect();
    let seqs: Vec<u64> = journal.iter().map(|(_, s)| *s).collect();
    assert_eq!(node_seqs, (first..=head.len() as u64).collect::<Vec<_>>());
    assert_eq!(
        seqs,
        head[first as usize - 1..],
        "the journal's events are not the cloud's"
    );
    let removed = agent
        .logs()
        .matches("removing a container that was created and never started")
        .count();
    println!(
        "{kills} kill -9s of the agent in {:.1} s of deploy/undeploy cycles; after each the \
         journal opened and held every acknowledged event (at most {worst_gap} committed \
         beyond the cloud's last ack); converged {:.1} s after the last restart to {} \
         containers for {} replicas; journal = cloud log for the node ({} events, the \
         journal holds node_seq {first} on); \
         created-never-started containers removed: {removed}",
        cycles.as_secs_f64(),
        converge.as_secs_f64(),
        converged.len(),
        REPLICAS,
        head.len()
    );
}

#[test]
fn kill_9_of_the_agent_in_deploy_and_undeploy_cycles() {
    kill_cycles(8);
}

#[test]
#[ignore = "long: SKERRY_FAULT_KILLS kills (200 by default)"]
fn kill_9_of_the_agent_many_times() {
    kill_cycles(kills_from_env(200));
}
