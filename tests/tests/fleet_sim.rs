#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The fleet simulator end to end: 50 simulated agents (the real agent loop, in-memory
//! journals, a simulated runtime) enrolled with a real `skerry serve` and connected over
//! its MQTT endpoint with TLS; one deploy to all reaches every journal, every simulated
//! runtime starts its replica, the cloud reports all `Running` with every node at lag 0;
//! the undeploy stops every replica.

use std::time::Duration;

use skerry_tests::Cloud;
use skerry_tests::sim::fanout::{self, running};
use skerry_tests::sim::{Fleet, FleetOptions, raise_open_files};
use skerry_tests::wait::wait_until;

const NODES: usize = 50;
const ENV: &str = "sim";

#[test]
fn one_deploy_reaches_every_simulated_node_and_all_report_running() {
    raise_open_files().unwrap();
    let cloud = Cloud::start().unwrap();
    let api = cloud.api().unwrap();
    fanout::prepare(&api, ENV, "idle", 1).unwrap();
    let fleet = Fleet::start(&cloud, &FleetOptions::new(NODES, ENV)).unwrap();
    let setup = fleet.setup().clone();
    assert_eq!(setup.nodes, NODES, "{setup:?}");
    assert!(setup.limited.is_none(), "{setup:?}");
    println!(
        "fleet: {} nodes enrolled in {:?}, connected (TLS, CONNECT, hello) in {:?}; open files {} (was {}, hard {})",
        setup.nodes,
        setup.enroll,
        setup.connect,
        setup.open_files.soft,
        setup.open_files.before,
        setup.open_files.hard
    );

    let f = fanout::deploy(
        &api,
        &fleet,
        ENV,
        "idle",
        "idle-1",
        1,
        Duration::from_secs(60),
    )
    .unwrap();
    println!(
        "deploy to {} nodes: 201 in {:?}; all acknowledged (journal commits) in {:?}; all \
         started in {:?}; all Running in the cloud's status in {:?} (read every {:?}, {} reads)",
        f.nodes, f.post, f.acknowledged, f.started, f.running, f.poll, f.polls
    );
    assert_eq!(f.replicas, NODES);
    assert_eq!(fleet.tally().commits("idle-1").len(), NODES);
    assert_eq!(fleet.tally().starts("idle-1").len(), NODES);
    for node in fleet.nodes() {
        assert_eq!(node.runtime.replicas(), 1, "{}", node.name);
    }
    assert!(
        f.acknowledged <= f.running && f.started <= f.running,
        "{f:?}"
    );

    api.delete("/api/v1/instances/idle-1")
        .unwrap()
        .expect_status(200)
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || fleet
            .nodes()
            .iter()
            .all(|n| n.runtime.replicas() == 0)),
        "some simulated replicas still run after the undeploy"
    );
    assert!(running(&api, "idle-1").is_err(), "the instance is gone");
    fleet.stop().unwrap();
}
