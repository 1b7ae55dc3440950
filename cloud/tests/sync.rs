//! The cloud's side of the sync protocol, in process: a real `RedbLog` in a temporary
//! directory, the engine, and the hub, driven through `Hub::open` with channels (the MQTT
//! endpoint that carries these channels is tested on its own).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use skerry_cloud::api::dto::{InstanceDto, NodeDto};
use skerry_cloud::command::{Command, DeployIntent, NodeChoice};
use skerry_cloud::controllers::liveness;
use skerry_cloud::engine::Engine;
use skerry_cloud::sync::{Connection, Hub, OpenError};
use skerry_shared::clock::Timestamp;
use skerry_shared::event::{Actor, EventPayload, NodeEvent, NodeStatus};
use skerry_shared::frame::{
    self, Assembly, DownFrame, MAX_FRAME_BYTES, SnapshotAssembler, UpFrame,
};
use skerry_shared::hash::Digest;
use skerry_shared::ids::{Name, NodeId};
use skerry_shared::profile::FirmwareProfile;
use skerry_shared::reducer::{NodeReducer, NodeSnapshot};
use skerry_shared::report::{ReplicaReport, ReplicaState, StatusReport};
use tokio::time::Instant;

mod common;

use common::{enroll, x86};

const DEADLINE: Duration = Duration::from_secs(20);

struct Cloud {
    dir: tempfile::TempDir,
    engine: Engine,
    hub: Hub,
    node: NodeId,
}

/// A cloud with the environment `local` and one node, `gw-1`.
async fn cloud(profile: FirmwareProfile) -> Cloud {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::engine(dir.path()).await;
    let node = enroll(&engine, "gw-1", profile).await;
    let hub = Hub::new(engine.clone());
    Cloud {
        dir,
        engine,
        hub,
        node,
    }
}

const MANIFEST: &str = r#"
app: web
version: 1.0.0
components:
  - name: migrate
    kind: init
    image: web-db:1
  - name: db
    image: web-db:1
    replicas: 2
    depends_on: [migrate]
"#;

/// Publishes `web@1.0.0` and deploys it on `gw-1` as the instance `web`.
async fn deploy(engine: &Engine) {
    let manifest = skerry_shared::manifest::parse_manifest(MANIFEST).unwrap();
    engine
        .submit(
            Actor::Cloud,
            Command::PublishApp {
                manifest: Box::new(manifest),
            },
        )
        .await
        .unwrap();
    engine
        .submit(
            Actor::Cloud,
            Command::Deploy(Box::new(DeployIntent {
                app: "web".into(),
                version: "1.0.0".into(),
                env: "local".into(),
                name: "web".into(),
                nodes: vec![NodeChoice {
                    node: "gw-1".into(),
                    weight: None,
                }],
                ..DeployIntent::default()
            })),
        )
        .await
        .unwrap();
}

async fn label(engine: &Engine, key: &str, value: &str) {
    let events = engine
        .submit(
            Actor::Cloud,
            Command::LabelNode {
                node: "gw-1".into(),
                set: BTreeMap::from([(key.to_owned(), value.to_owned())]),
                remove: vec![],
            },
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
}

impl Cloud {
    /// The node's highest `node_seq`.
    fn head(&self) -> u64 {
        self.engine.read().nodes[&self.node].node_seq
    }

    /// The node's events, from the log.
    fn node_events(&self) -> Vec<NodeEvent> {
        self.engine
            .log()
            .read_node(self.node, 0, usize::MAX)
            .unwrap()
            .iter()
            .map(|e| e.for_node(self.node).unwrap())
            .collect()
    }

    /// The `node.status-changed` events of `node`, in order.
    fn statuses(&self, node: NodeId) -> Vec<(NodeStatus, Actor)> {
        self.engine
            .log()
            .read(0, usize::MAX)
            .unwrap()
            .into_iter()
            .filter_map(|e| match e.payload {
                EventPayload::NodeStatusChanged { node: n, status } if n == node => {
                    Some((status, e.actor))
                }
                _ => None,
            })
            .collect()
    }

    fn status(&self, node: NodeId) -> NodeStatus {
        self.engine.read().nodes[&node].status
    }

    fn agent(&self) -> Agent {
        Agent {
            conn: self.hub.open(self.node).unwrap(),
        }
    }
}

/// The agent's end of a session.
struct Agent {
    conn: Connection,
}

impl Agent {
    async fn send(&self, f: &UpFrame) {
        self.send_raw(frame::encode_up(f).unwrap()).await;
    }

    async fn send_raw(&self, bytes: Vec<u8>) {
        self.conn.up.send(Bytes::from(bytes)).await.unwrap();
    }

    async fn hello(&self, last_node_seq: u64) {
        self.send(&UpFrame::Hello {
            last_node_seq,
            agent_version: "test".into(),
        })
        .await;
    }

    /// The next down frame and its size on the wire.
    async fn recv(&mut self) -> (DownFrame, usize) {
        let bytes = tokio::time::timeout(DEADLINE, self.conn.down.recv())
            .await
            .expect("no down frame before the deadline")
            .expect("the session closed");
        assert!(bytes.len() <= MAX_FRAME_BYTES);
        (frame::decode_down(&bytes).unwrap(), bytes.len())
    }

    /// Events frames until `through`; panics on any other frame. Returns the events and
    /// their bytes on the wire.
    async fn events_through(&mut self, through: u64) -> (Vec<NodeEvent>, usize) {
        let mut events: Vec<NodeEvent> = Vec::new();
        let mut bytes = 0;
        while events.last().map_or(0, |e| e.node_seq) < through {
            match self.recv().await {
                (DownFrame::Events(evs), len) => {
                    events.extend(evs);
                    bytes += len;
                }
                (other, _) => panic!("expected events, got {other:?}"),
            }
        }
        (events, bytes)
    }

    /// Snapshot chunks until one snapshot is complete; panics on any other frame.
    async fn snapshot(&mut self) -> (NodeSnapshot, usize) {
        let mut assembler = SnapshotAssembler::default();
        let mut bytes = 0;
        loop {
            match self.recv().await {
                (
                    DownFrame::SnapshotChunk {
                        node_seq,
                        index,
                        total,
                        bytes: chunk,
                    },
                    len,
                ) => {
                    bytes += len;
                    if let Assembly::Complete(s) =
                        assembler.offer(node_seq, index, total, chunk).unwrap()
                    {
                        return (*s, bytes);
                    }
                }
                (other, _) => panic!("expected a snapshot chunk, got {other:?}"),
            }
        }
    }

    /// Sends a heartbeat and waits for its answer: every frame sent before it has been
    /// handled by then. Panics on any other frame in between.
    async fn barrier(&mut self, last_node_seq: u64) -> Timestamp {
        self.send(&UpFrame::Heartbeat {
            time: Timestamp::now(),
            last_node_seq,
        })
        .await;
        match self.recv().await {
            (DownFrame::HeartbeatAck { time }, _) => time,
            (other, _) => panic!("expected a heartbeat ack, got {other:?}"),
        }
    }
}

/// Waits for `cond`, polling, up to the deadline.
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn seqs(events: &[NodeEvent]) -> Vec<u64> {
    events.iter().map(|e| e.node_seq).collect()
}

#[tokio::test]
async fn hello_zero_gets_every_event_in_node_seq_order() {
    let c = cloud(x86()).await;
    deploy(&c.engine).await;
    label(&c.engine, "site", "north").await;
    let head = c.head();
    assert_eq!(head, 3, "enrolled, deployed, labelled");
    let mut agent = c.agent();
    agent.hello(0).await;
    let (events, _) = agent.events_through(head).await;
    assert_eq!(events, c.node_events());
    assert_eq!(seqs(&events), vec![1, 2, 3]);
    assert!(matches!(
        events[1].payload,
        EventPayload::InstanceDeployed { .. }
    ));
    agent.barrier(head).await;
}

#[tokio::test]
async fn hello_k_gets_only_the_later_events() {
    let c = cloud(x86()).await;
    deploy(&c.engine).await;
    label(&c.engine, "site", "north").await;
    label(&c.engine, "site", "south").await;
    let mut agent = c.agent();
    agent.hello(2).await;
    let (events, _) = agent.events_through(4).await;
    assert_eq!(seqs(&events), vec![3, 4]);
    assert_eq!(events, c.node_events()[2..]);
    // Nothing else came before the heartbeat's answer.
    agent.barrier(4).await;
    // Up to date: live at once, nothing sent.
    let mut again = c.agent();
    again.hello(4).await;
    again.barrier(4).await;
}

#[tokio::test]
async fn a_long_history_goes_as_a_much_shorter_snapshot() {
    let c = cloud(x86()).await;
    deploy(&c.engine).await;
    // 1,000 label changes, submitted together (group commit).
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000 {
        let engine = c.engine.clone();
        tasks.spawn(async move { label(&engine, "rev", &i.to_string()).await });
    }
    while let Some(t) = tasks.join_next().await {
        t.unwrap();
    }
    let head = c.head();
    assert_eq!(head, 1002);
    let mut agent = c.agent();
    agent.hello(0).await;
    let (snapshot, snapshot_bytes) = agent.snapshot().await;
    // The same state as folding the events, as the agent's reducer does.
    let events = c.node_events();
    let mut reducer = NodeReducer::new(c.node);
    for e in events.iter().cloned() {
        reducer.offer(e);
    }
    assert_eq!(snapshot.node_seq, head);
    assert_eq!(&snapshot.state, reducer.state());
    assert!(snapshot.state.instances.contains_key("web"));
    // Far fewer bytes than the events would have taken.
    let event_bytes: usize = frame::events_frames(&events)
        .unwrap()
        .iter()
        .map(|f| frame::encode_down(f).unwrap().len())
        .sum();
    assert!(
        snapshot_bytes * 10 < event_bytes,
        "snapshot {snapshot_bytes} bytes, events {event_bytes} bytes"
    );
    // Then live, right after the snapshot.
    label(&c.engine, "rev", "after").await;
    let (events, _) = agent.events_through(head + 1).await;
    assert_eq!(seqs(&events), vec![head + 1]);
    // An agent that has most of it gets the few events it misses.
    let mut late = c.agent();
    late.hello(head - 2).await;
    let (events, _) = late.events_through(head + 1).await;
    assert_eq!(seqs(&events), vec![head - 1, head, head + 1]);
}

#[tokio::test]
async fn an_agent_ahead_of_the_cloud_gets_a_snapshot() {
    let c = cloud(x86()).await;
    deploy(&c.engine).await;
    let mut agent = c.agent();
    agent.hello(50).await;
    let (snapshot, _) = agent.snapshot().await;
    assert_eq!(snapshot.node_seq, 2);
    assert!(snapshot.state.instances.contains_key("web"));
}

#[tokio::test]
async fn live_events_follow_catch_up_without_a_gap() {
    let c = cloud(x86()).await;
    deploy(&c.engine).await;
    let mut agent = c.agent();
    agent.hello(0).await;
    // Submitted while the session may still be catching up.
    label(&c.engine, "a", "1").await;
    let (events, _) = agent.events_through(3).await;
    assert_eq!(seqs(&events), vec![1, 2, 3]);
    // An event for no node is not forwarded; the next one for this node is.
    c.engine
        .submit(
            Actor::Cloud,
            Command::CreateEnvironment {
                name: "elsewhere".into(),
                labels: BTreeMap::new(),
                entries: vec![],
            },
        )
        .await
        .unwrap();
    label(&c.engine, "a", "2").await;
    let (events, _) = agent.events_through(4).await;
    assert_eq!(seqs(&events), vec![4]);
    // A burst of concurrent commands arrives complete and in order.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let engine = c.engine.clone();
        tasks.spawn(async move { label(&engine, "burst", &i.to_string()).await });
    }
    while let Some(t) = tasks.join_next().await {
        t.unwrap();
    }
    let (events, _) = agent.events_through(54).await;
    assert_eq!(seqs(&events), (5..=54).collect::<Vec<_>>());
    assert_eq!(events, c.node_events()[4..]);
    agent.barrier(54).await;
}

#[tokio::test]
async fn malformed_up_frames_are_dropped_and_counted() {
    let c = cloud(x86()).await;
    let mut agent = c.agent();
    agent.hello(0).await;
    agent.events_through(1).await;
    agent.send_raw(vec![]).await;
    agent.send_raw(b"garbage".to_vec()).await;
    agent
        .send_raw(vec![frame::FORMAT_VERSION, 0xff, 0xff, 0xff])
        .await;
    agent
        .send_raw(vec![frame::FORMAT_VERSION; MAX_FRAME_BYTES + 1])
        .await;
    // The session goes on.
    agent.barrier(1).await;
    assert_eq!(c.hub.dropped_frames(c.node), 4);
    assert_eq!(c.hub.dropped_frames_total(), 4);
    label(&c.engine, "still", "here").await;
    let (events, _) = agent.events_through(2).await;
    assert_eq!(seqs(&events), vec![2]);
}

#[tokio::test]
async fn acks_and_heartbeats_update_the_live_state() {
    let c = cloud(x86()).await;
    deploy(&c.engine).await;
    label(&c.engine, "a", "1").await;
    assert_eq!(c.hub.live(c.node), None);
    let mut agent = c.agent();
    agent.hello(1).await;
    agent.events_through(3).await;
    // Hello's last_node_seq counts as acknowledged.
    let live = c.hub.live(c.node).unwrap();
    assert!(live.connected);
    assert_eq!(live.acked, 1);
    let seen = live.last_seen.unwrap();
    // A heartbeat's last_node_seq too; it refreshes last_seen and is answered with the
    // cloud's time.
    let before = Timestamp::now();
    let answered = agent.barrier(2).await;
    assert!(answered >= before);
    let live = c.hub.live(c.node).unwrap();
    assert_eq!(live.acked, 2);
    assert!(live.last_seen.unwrap() >= seen);
    // Acks only move forward, and never beyond what the node was given.
    agent.send(&UpFrame::Ack { node_seq: 3 }).await;
    agent.send(&UpFrame::Ack { node_seq: 1 }).await;
    agent.barrier(0).await;
    assert_eq!(c.hub.live(c.node).unwrap().acked, 3);
    agent.send(&UpFrame::Ack { node_seq: 99 }).await;
    agent.barrier(0).await;
    assert_eq!(c.hub.live(c.node).unwrap().acked, 3);
    // The transport going away ends the session.
    drop(agent);
    wait_until("the session is closed", || {
        c.hub.live(c.node).is_some_and(|l| !l.connected)
    })
    .await;
    assert_eq!(c.hub.live(c.node).unwrap().acked, 3);
}

#[tokio::test]
async fn a_second_open_replaces_the_first_and_unknown_nodes_are_refused() {
    let c = cloud(x86()).await;
    let unknown = NodeId::random();
    assert_eq!(
        c.hub.open(unknown).err(),
        Some(OpenError::UnknownNode(unknown))
    );
    let mut first = c.agent();
    first.hello(0).await;
    first.events_through(1).await;
    let mut second = c.agent();
    // The first connection's down channel closes.
    let closed = tokio::time::timeout(DEADLINE, async {
        while first.conn.down.recv().await.is_some() {}
    })
    .await;
    assert!(
        closed.is_ok(),
        "the replaced session's down channel stays open"
    );
    second.hello(1).await;
    second.barrier(1).await;
    assert!(c.hub.live(c.node).unwrap().connected);
    assert_eq!(c.hub.connected(), 1);
    label(&c.engine, "x", "y").await;
    assert_eq!(seqs(&second.events_through(2).await.0), vec![2]);
}

fn replica(component: &str, replica: u32, state: ReplicaState, restarts: u32) -> ReplicaReport {
    ReplicaReport {
        instance: Name::parse("web").unwrap(),
        component: Name::parse(component).unwrap(),
        replica,
        state,
        restarts,
        reason: None,
        spec_hash: Digest::ZERO,
        ports: vec![],
    }
}

#[tokio::test]
async fn status_reports_update_the_replicas() {
    let c = cloud(x86()).await;
    deploy(&c.engine).await;
    let mut agent = c.agent();
    agent.hello(2).await;
    agent
        .send(&UpFrame::Status(StatusReport {
            complete: true,
            replicas: vec![
                replica("migrate", 0, ReplicaState::Succeeded, 0),
                replica("db", 0, ReplicaState::Running, 0),
                replica("db", 1, ReplicaState::Starting, 0),
            ],
            removed: vec![],
        }))
        .await;
    agent.barrier(2).await;
    assert_eq!(c.hub.replicas(c.node).len(), 3);
    agent
        .send(&UpFrame::Status(StatusReport {
            complete: false,
            replicas: vec![replica("db", 1, ReplicaState::Healthy, 2)],
            removed: vec![(
                Name::parse("web").unwrap(),
                Name::parse("migrate").unwrap(),
                0,
            )],
        }))
        .await;
    agent.barrier(2).await;
    let now: Vec<_> = c
        .hub
        .replicas(c.node)
        .into_iter()
        .map(|s| s.report)
        .collect();
    assert_eq!(
        now,
        vec![
            replica("db", 0, ReplicaState::Running, 0),
            replica("db", 1, ReplicaState::Healthy, 2),
        ]
    );
    // A complete report replaces everything.
    agent
        .send(&UpFrame::Status(StatusReport {
            complete: true,
            replicas: vec![replica("db", 0, ReplicaState::Failed { code: 3 }, 5)],
            removed: vec![],
        }))
        .await;
    agent.barrier(2).await;
    assert_eq!(
        c.hub.replicas(c.node)[0].report,
        replica("db", 0, ReplicaState::Failed { code: 3 }, 5)
    );
    assert_eq!(c.hub.replicas(c.node).len(), 1);
}

#[tokio::test]
async fn missed_heartbeats_are_recorded_once_and_so_is_the_return() {
    let c = cloud(x86()).await;
    let heartbeat = x86().agent.heartbeat.as_std();
    // Enrolled, never heard from: Abnormal, and nothing to record.
    assert_eq!(c.status(c.node), NodeStatus::Abnormal);
    assert!(liveness::check(&c.hub, Instant::now()).await.is_empty());
    let mut agent = c.agent();
    agent.hello(0).await;
    agent.events_through(1).await;
    assert_eq!(
        liveness::check(&c.hub, Instant::now()).await,
        vec![(c.node, NodeStatus::Normal)]
    );
    assert!(liveness::check(&c.hub, Instant::now()).await.is_empty());
    // Within three intervals nothing changes; beyond them the node is Abnormal, once.
    assert!(
        liveness::check(&c.hub, Instant::now() + heartbeat * 2)
            .await
            .is_empty()
    );
    let late = Instant::now() + heartbeat * 3 + Duration::from_secs(1);
    assert_eq!(
        liveness::check(&c.hub, late).await,
        vec![(c.node, NodeStatus::Abnormal)]
    );
    assert!(liveness::check(&c.hub, late).await.is_empty());
    assert!(
        liveness::check(&c.hub, late + heartbeat * 10)
            .await
            .is_empty()
    );
    assert_eq!(c.status(c.node), NodeStatus::Abnormal);
    // A heartbeat brings it back, once.
    agent.barrier(1).await;
    assert_eq!(
        liveness::check(&c.hub, Instant::now()).await,
        vec![(c.node, NodeStatus::Normal)]
    );
    assert!(liveness::check(&c.hub, Instant::now()).await.is_empty());
    assert_eq!(
        c.statuses(c.node),
        vec![
            (NodeStatus::Normal, Actor::Cloud),
            (NodeStatus::Abnormal, Actor::Cloud),
            (NodeStatus::Normal, Actor::Cloud),
        ]
    );
    // The status events concern the cloud only: the node's lag does not grow.
    assert_eq!(c.head(), 1);
}

#[tokio::test]
async fn the_monitor_runs_on_its_own_and_stops_on_shutdown() {
    let mut fast = x86();
    fast.agent.heartbeat = skerry_shared::quantity::Duration::from_secs(1);
    let c = cloud(fast).await;
    let silent = enroll(&c.engine, "gw-2", x86()).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let monitor = tokio::spawn(liveness::run(c.hub.clone(), async move {
        let _ = stopped.await;
    }));
    let mut agent = c.agent();
    agent.hello(0).await;
    agent.events_through(1).await;
    // Hearing from an Abnormal node wakes the monitor.
    wait_until("the node is Normal", || {
        c.status(c.node) == NodeStatus::Normal
    })
    .await;
    // No heartbeats for more than three seconds.
    wait_until("the node is Abnormal", || {
        c.status(c.node) == NodeStatus::Abnormal
    })
    .await;
    agent.barrier(1).await;
    wait_until("the node is Normal again", || {
        c.status(c.node) == NodeStatus::Normal
    })
    .await;
    stop.send(()).unwrap();
    tokio::time::timeout(DEADLINE, monitor)
        .await
        .expect("the monitor did not stop")
        .unwrap();
    assert_eq!(
        c.statuses(c.node)
            .into_iter()
            .map(|(s, _)| s)
            .collect::<Vec<_>>(),
        vec![NodeStatus::Normal, NodeStatus::Abnormal, NodeStatus::Normal]
    );
    // A node that never connected stays Abnormal, with no events.
    assert_eq!(c.status(silent), NodeStatus::Abnormal);
    assert!(c.statuses(silent).is_empty());
}

#[tokio::test]
async fn the_api_shows_lag_last_seen_and_replica_states() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let c = cloud(x86()).await;
    deploy(&c.engine).await;
    label(&c.engine, "a", "1").await;
    let pki = skerry_cloud::pki::Pki::load_or_create(&c.dir.path().join("keys")).unwrap();
    let (stop_tx, stopping) = tokio::sync::watch::channel(false);
    let state = skerry_cloud::api::AppState {
        engine: c.engine.clone(),
        pki: Arc::new(pki),
        mqtt: vec![],
        nats: vec![],
        stopping,
        hub: c.hub.clone(),
        reports: skerry_cloud::reports::ReportStore::open(
            &c.dir.path().join("reports.redb"),
            Default::default(),
        )
        .unwrap(),
        secrets: Arc::new(skerry_cloud::secrets::SecretsKey::generate()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = skerry_cloud::api::router(state).into_make_service_with_connect_info::<SocketAddr>();
    let mut stop = stop_tx.subscribe();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
            .unwrap();
    });
    let http = common::admin_client(&c.engine).await;
    let get_node = || async {
        http.get(format!("http://{addr}/api/v1/nodes/gw-1"))
            .send()
            .await
            .unwrap()
            .json::<NodeDto>()
            .await
            .unwrap()
    };
    let node = get_node().await;
    assert_eq!((node.node_seq, node.acked_node_seq, node.lag), (3, 0, 3));
    assert_eq!(node.last_seen, None);
    let mut agent = c.agent();
    agent.hello(1).await;
    agent.events_through(3).await;
    agent.send(&UpFrame::Ack { node_seq: 2 }).await;
    agent
        .send(&UpFrame::Status(StatusReport {
            complete: true,
            replicas: vec![
                replica("migrate", 0, ReplicaState::Succeeded, 0),
                ReplicaReport {
                    reason: Some("exited 1".into()),
                    ..replica("db", 1, ReplicaState::Failed { code: 1 }, 4)
                },
            ],
            removed: vec![],
        }))
        .await;
    agent.barrier(2).await;
    let node = get_node().await;
    assert_eq!((node.node_seq, node.acked_node_seq, node.lag), (3, 2, 1));
    assert!(node.last_seen.is_some());
    assert_eq!(node.status, "Abnormal", "status comes from events only");
    let instance: InstanceDto = http
        .get(format!("http://{addr}/api/v1/instances/web"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows: Vec<(String, u32, String, u32, Option<String>)> = instance
        .status
        .into_iter()
        .map(|r| (r.component, r.replica, r.state, r.restarts, r.reason))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("migrate".into(), 0, "Succeeded".into(), 0, None),
            ("db".into(), 0, "Pending".into(), 0, None),
            (
                "db".into(),
                1,
                "Failed (1)".into(),
                4,
                Some("exited 1".into())
            ),
        ]
    );
    stop_tx.send(true).unwrap();
    tokio::time::timeout(DEADLINE, server)
        .await
        .expect("the API did not stop")
        .unwrap();
}
