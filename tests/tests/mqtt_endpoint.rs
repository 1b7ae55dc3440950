//! The cloud's embedded MQTT endpoint, in-process, against MQTT clients no one here wrote:
//! Debian's `mosquitto_sub` and `mosquitto_pub`. The endpoint runs with a recording
//! `Sessions` in place of the sync layer, so each test sees exactly what reached it.
//!
//! - no client certificate, or one from another CA: the TLS handshake fails, no session;
//! - a node subscribes to its own `down` only: another node's topic and wildcards are
//!   denied, its own receives what the sync layer sends;
//! - a node publishes to its own `up` only: another node's topic gets it disconnected and
//!   nothing forwarded, its own reaches the sync layer;
//! - the sync layer may refuse a node ("not authorised");
//! - shutdown closes the sessions.

// Tests and their helpers fail loudly: unwrap and expect are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use skerry_cloud::mqtt::{Connection, EndpointStats, MqttEndpoint, Sessions, down_topic, up_topic};
use skerry_cloud::pki::Pki;
use skerry_shared::ids::NodeId;
use skerry_tests::mqtt::{ClientKey, Mosquitto, MosquittoOutput, PemFiles};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// How long one mosquitto client may run.
const CLIENT_DEADLINE: Duration = Duration::from_secs(20);
/// How long a condition on the recorded sessions may take to hold.
const WAIT: Duration = Duration::from_secs(10);

/// What the endpoint handed to the "sync layer".
#[derive(Debug, Default)]
struct Recorded {
    opened: Vec<NodeId>,
    closed: Vec<NodeId>,
    up: Vec<(NodeId, Vec<u8>)>,
}

/// A `Sessions` that records everything and lets the test send down payloads.
#[derive(Clone)]
struct Recorder {
    state: Arc<watch::Sender<Recorded>>,
    down: Arc<Mutex<HashMap<NodeId, mpsc::Sender<Vec<u8>>>>>,
    refuse: Arc<BTreeSet<NodeId>>,
}

impl Sessions for Recorder {
    fn open(&self, node: NodeId) -> Result<Connection, String> {
        if self.refuse.contains(&node) {
            return Err(format!("node {node} is not enrolled here"));
        }
        let (up, mut up_rx) = mpsc::channel(16);
        let (down_tx, down) = mpsc::channel(16);
        let connection = Connection { up, down };
        // The test pushes plain bytes; this task hands them to the endpoint's channel,
        // and ends it (as the sync layer does) when the test drops its sender.
        let (push, mut pushed) = mpsc::channel::<Vec<u8>>(16);
        tokio::spawn(async move {
            while let Some(payload) = pushed.recv().await {
                if down_tx.send(payload.into()).await.is_err() {
                    break;
                }
            }
        });
        self.down.lock().unwrap().insert(node, push);
        self.state.send_modify(|s| s.opened.push(node));
        let state = self.state.clone();
        tokio::spawn(async move {
            while let Some(payload) = up_rx.recv().await {
                state.send_modify(|s| s.up.push((node, payload.to_vec())));
            }
            state.send_modify(|s| s.closed.push(node));
        });
        Ok(connection)
    }
}

/// A node with a certificate, and the files its client reads.
struct TestNodeCert {
    id: NodeId,
    cert: PathBuf,
    key: PathBuf,
}

/// The endpoint running in-process, a CA, nodes A and B (and C, which the sync layer
/// refuses), and a certificate from another CA.
struct Fixture {
    _pki_dir: tempfile::TempDir,
    _other_dir: tempfile::TempDir,
    _files: PemFiles,
    ca: PathBuf,
    addr: SocketAddr,
    stats: Arc<EndpointStats>,
    recorder: Recorder,
    a: TestNodeCert,
    b: TestNodeCert,
    c: TestNodeCert,
    /// A's id in a certificate from another CA.
    stranger: TestNodeCert,
    stop: Option<oneshot::Sender<()>>,
    served: Option<JoinHandle<Result<(), skerry_cloud::mqtt::MqttError>>>,
}

fn issue(pki: &Pki, files: &PemFiles, label: &str, id: NodeId) -> TestNodeCert {
    let key = ClientKey::generate(label).unwrap();
    let (cert_pem, _digest) = pki.sign_node(key.csr_pem(), id).unwrap();
    TestNodeCert {
        id,
        cert: files
            .write_cert(&format!("{label}.crt"), &cert_pem)
            .unwrap(),
        key: files
            .write_key(&format!("{label}.key"), &key.key_pem())
            .unwrap(),
    }
}

impl Fixture {
    async fn start() -> Fixture {
        let pki_dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(pki_dir.path()).unwrap();
        let other_dir = tempfile::tempdir().unwrap();
        let other = Pki::load_or_create(other_dir.path()).unwrap();
        let files = PemFiles::new().unwrap();
        let ca = files.write_cert("ca.crt", pki.ca_pem()).unwrap();
        let a = issue(&pki, &files, "a", NodeId::random());
        let b = issue(&pki, &files, "b", NodeId::random());
        let c = issue(&pki, &files, "c", NodeId::random());
        let stranger = issue(&other, &files, "stranger", a.id);
        let names = ["127.0.0.1".to_owned(), "localhost".to_owned()];
        let endpoint = MqttEndpoint::bind("127.0.0.1:0".parse().unwrap(), &pki, &names)
            .await
            .unwrap();
        let addr = endpoint.local_addr();
        let stats = endpoint.stats();
        let recorder = Recorder {
            state: Arc::new(watch::channel(Recorded::default()).0),
            down: Arc::default(),
            refuse: Arc::new(BTreeSet::from([c.id])),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(endpoint.run(recorder.clone(), async move {
            let _ = stopped.await;
        }));
        Fixture {
            _pki_dir: pki_dir,
            _other_dir: other_dir,
            _files: files,
            ca,
            addr,
            stats,
            recorder,
            a,
            b,
            c,
            stranger,
            stop: Some(stop),
            served: Some(served),
        }
    }

    /// A client that trusts the cloud's CA and shows no certificate.
    fn anonymous(&self) -> Mosquitto {
        Mosquitto::new("127.0.0.1", self.addr.port(), &self.ca)
    }

    /// A client with `node`'s certificate, its id as the client id (as agents do).
    fn client(&self, node: &TestNodeCert) -> Mosquitto {
        self.anonymous()
            .with_cert(&node.cert, &node.key)
            .with_client_id(&node.id.to_string())
    }

    /// Waits until the recorded sessions satisfy `check`.
    async fn wait_for(&self, what: &str, check: impl FnMut(&Recorded) -> bool) {
        let mut rx = self.recorder.state.subscribe();
        if tokio::time::timeout(WAIT, rx.wait_for(check))
            .await
            .is_err()
        {
            panic!(
                "waited {WAIT:?} for {what}; recorded: {:?}",
                *self.recorder.state.borrow()
            );
        }
    }

    fn recorded<T>(&self, read: impl FnOnce(&Recorded) -> T) -> T {
        read(&self.recorder.state.borrow())
    }

    /// Sends `payload` to `node` as the sync layer would.
    async fn push_down(&self, node: NodeId, payload: &[u8]) {
        let push = self
            .recorder
            .down
            .lock()
            .unwrap()
            .get(&node)
            .cloned()
            .unwrap();
        push.send(payload.to_vec()).await.unwrap();
    }

    /// Stops the endpoint and waits for `run` to return.
    async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            tokio::time::timeout(WAIT, served)
                .await
                .expect("run returns after shutdown")
                .unwrap()
                .unwrap();
        }
    }
}

/// Waits until the endpoint's counters satisfy `check`, polling them.
async fn wait_stats(stats: &EndpointStats, what: &str, check: impl Fn(&EndpointStats) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check(stats) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {WAIT:?} for {what}; counters: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn finish(run: skerry_tests::mqtt::MosquittoRun) -> MosquittoOutput {
    let out = run.finish(CLIENT_DEADLINE).await.unwrap();
    println!("{out}\n");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_a_certificate_fails_the_handshake() {
    let mut f = Fixture::start().await;
    let topic = down_topic(f.a.id);
    let out = finish(f.anonymous().sub(&topic, &["-C", "1", "-W", "5"]).unwrap()).await;
    assert_ne!(out.code, Some(0), "{out}");
    assert!(out.stdout.is_empty(), "{out}");
    assert!(f.stats.handshakes_refused() >= 1, "{:?}", f.stats);
    assert_eq!(f.stats.sessions_opened(), 0);
    assert!(f.recorded(|r| r.opened.is_empty()));
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_fails_the_handshake() {
    let mut f = Fixture::start().await;
    // The stranger's certificate names node A, but another CA issued it.
    let topic = down_topic(f.a.id);
    let out = finish(
        f.client(&f.stranger)
            .sub(&topic, &["-C", "1", "-W", "5"])
            .unwrap(),
    )
    .await;
    assert_ne!(out.code, Some(0), "{out}");
    assert!(out.stdout.is_empty(), "{out}");
    assert!(f.stats.handshakes_refused() >= 1, "{:?}", f.stats);
    assert_eq!(f.stats.sessions_opened(), 0);
    assert!(f.recorded(|r| r.opened.is_empty()));
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_subscribes_to_its_own_down_only() {
    let mut f = Fixture::start().await;
    let (a, b) = (f.a.id, f.b.id);

    // Another node's down topic, and a wildcard that would match every node's: denied.
    for topic in [down_topic(b), "skerry/v1/nodes/+/down".to_owned()] {
        let refused_before = f.stats.packets_refused();
        let out = finish(f.client(&f.a).sub(&topic, &["-C", "1", "-W", "5"]).unwrap()).await;
        // mosquitto_sub 2.0.11 (Debian 12) disconnects at once when every filter is
        // denied, but exits 0 all the same (later releases exit 1): the denial shows in
        // what it says, in what it does not print, and in the endpoint's counter.
        assert!(!out.timed_out, "{out}");
        assert!(out.stdout.is_empty(), "{out}");
        assert!(
            out.stderr.contains("All subscription requests were denied"),
            "{out}"
        );
        assert_eq!(f.stats.packets_refused(), refused_before + 1);
    }

    // Its own: it receives what the sync layer sends, byte for byte. The payload is sent
    // as soon as the session opens; the endpoint holds it until the SUBACK has gone out.
    let opened_before = f.recorded(|r| r.opened.len());
    let sub = f
        .client(&f.a)
        .sub(&down_topic(a), &["-C", "1", "-W", "15", "-N"])
        .unwrap();
    f.wait_for("A's session", |r| r.opened.len() > opened_before)
        .await;
    let payload = b"\x01frame for A: \x00\xff binary";
    f.push_down(a, payload).await;
    let out = finish(sub).await;
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.stdout, payload, "{out}");
    assert_eq!(f.recorded(|r| r.opened.clone()), vec![a, a, a]);
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_publishes_to_its_own_up_only() {
    let mut f = Fixture::start().await;
    let (a, b) = (f.a.id, f.b.id);

    // To another node's up topic: disconnected, never forwarded.
    let out = finish(f.client(&f.a).publish(&up_topic(b), b"x", &[]).unwrap()).await;
    f.wait_for("A's first session to close", |r| r.closed.len() == 1)
        .await;
    assert_eq!(f.stats.packets_refused(), 1, "{out}");
    // At QoS 0 the client cannot tell (it exits 0); at QoS 1 it waits for a PUBACK and
    // sees the connection dropped instead.
    let out = finish(
        f.client(&f.a)
            .publish(&up_topic(b), b"y", &["-q", "1"])
            .unwrap(),
    )
    .await;
    assert_ne!(out.code, Some(0), "{out}");
    assert!(f.stats.packets_refused() >= 2, "{:?}", f.stats);
    assert!(
        f.recorded(|r| r.up.is_empty()),
        "{:?}",
        f.recorded(|r| r.up.clone())
    );

    // To its own: the sync layer receives it, at QoS 0 and 1.
    let out = finish(f.client(&f.a).publish(&up_topic(a), b"hello", &[]).unwrap()).await;
    assert_eq!(out.code, Some(0), "{out}");
    f.wait_for("A's hello", |r| r.up.iter().any(|(_, p)| p == b"hello"))
        .await;
    let out = finish(
        f.client(&f.a)
            .publish(&up_topic(a), b"hello again", &["-q", "1"])
            .unwrap(),
    )
    .await;
    assert_eq!(out.code, Some(0), "{out}");
    f.wait_for("A's second hello", |r| r.up.len() == 2).await;
    assert_eq!(
        f.recorded(|r| r.up.clone()),
        vec![(a, b"hello".to_vec()), (a, b"hello again".to_vec())]
    );
    assert_eq!(f.stats.malformed_packets(), 0);
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_layer_can_refuse_a_node() {
    let mut f = Fixture::start().await;
    let out = finish(
        f.client(&f.c)
            .sub(&down_topic(f.c.id), &["-C", "1", "-W", "5"])
            .unwrap(),
    )
    .await;
    assert_ne!(out.code, Some(0), "{out}");
    assert!(out.stderr.contains("not authorised"), "{out}");
    assert_eq!(f.stats.sessions_refused(), 1);
    assert_eq!(f.stats.sessions_opened(), 0);
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_every_session() {
    let mut f = Fixture::start().await;
    let a = f.a.id;
    let sub = f
        .client(&f.a)
        .sub(&down_topic(a), &["-C", "1", "-W", "15"])
        .unwrap();
    f.wait_for("A's session", |r| r.opened == [a]).await;
    wait_stats(&f.stats, "one active session", |s| s.sessions_active() == 1).await;
    f.shutdown().await;
    f.wait_for("A's session to close", |r| r.closed == [a])
        .await;
    assert_eq!(f.stats.sessions_active(), 0);
    // The client is left without a server; it gets nothing and is stopped here.
    let out = sub.finish(Duration::ZERO).await.unwrap();
    assert!(out.stdout.is_empty(), "{out}");
}
