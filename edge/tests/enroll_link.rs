//! Enrollment and the MQTT link against a real cloud, in-process: `skerry_cloud::serve::run`
//! on a loopback listener with its data in a temporary directory, and the cloud's embedded
//! MQTT endpoint bound beside it with the same CA.
//!
//! - enrollment saves the identity (key 0600, directory 0700) under the node id the cloud
//!   lists, and the identity loads again;
//! - a token whose CA hash was tampered with is refused by the agent, which saves nothing;
//! - a used token is refused with a clear message; a malformed one before any request;
//! - over https the agent trusts the cloud only through the token's CA;
//! - the link connects with the enrolled identity, receives down payloads, sends up
//!   frames, reports an outage once, fails fast while down, and reconnects;
//! - the link trusts no endpoint of another CA.

// Tests and their helpers fail loudly: unwrap and expect are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use skerry_cloud::mqtt::{Connection, MqttEndpoint, Sessions};
use skerry_cloud::pki::Pki;
use skerry_edge::enroll::{EnrollError, enroll};
use skerry_edge::identity::{self, Identity};
use skerry_edge::link::mqtt::MqttLink;
use skerry_edge::link::{LinkError, LinkEvent, LinkOptions};
use skerry_shared::ids::{Name, NodeId};
use skerry_shared::profile::FirmwareProfile;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// How long a condition may take to hold.
const WAIT: Duration = Duration::from_secs(20);

fn provider() {
    // The test's own HTTP client (reqwest, built with `rustls-no-provider`) needs a
    // process default; the agent's code never relies on one.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn profile() -> FirmwareProfile {
    let name = skerry_shared::profile::builtin_names()[0];
    skerry_shared::profile::builtin(name).unwrap()
}

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Nothing of an identity under `data`.
fn nothing_saved(data: &Path) {
    assert!(Identity::load(data).unwrap().is_none());
    assert!(
        !Identity::dir(data).join(identity::KEY_FILE).exists(),
        "a key was saved"
    );
}

/// A cloud served in-process.
struct TestCloud {
    dir: tempfile::TempDir,
    url: String,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    served: Option<JoinHandle<Result<(), skerry_cloud::serve::ServeError>>>,
}

impl TestCloud {
    /// Starts a cloud whose keys are in `dir/keys` and which advertises `mqtt`.
    async fn start_in(dir: tempfile::TempDir, mqtt: &str) -> TestCloud {
        provider();
        let data = dir.path().join("data");
        let config_file = dir.path().join("serve.toml");
        let toml = format!(
            "data = {data:?}\nkeys = {keys:?}\nmqtt = \"127.0.0.1:0\"\nmqtt_advertise = {mqtt:?}\nlocal_node = false\n",
            data = data.display().to_string(),
            keys = dir.path().join("keys").display().to_string(),
        );
        std::fs::write(&config_file, toml).unwrap();
        let args = skerry_cloud::config::ServeArgs {
            config: Some(config_file),
            listen: Some("127.0.0.1:0".into()),
            no_local_node: true,
            ..Default::default()
        };
        let config = skerry_cloud::config::Config::load(&args).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(skerry_cloud::serve::run(config, listener, async move {
            let _ = stopped.await;
        }));
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let cloud = TestCloud {
            dir,
            url,
            http,
            stop: Some(stop),
            served: Some(served),
        };
        let healthy = tokio::time::timeout(WAIT, async {
            loop {
                if let Ok(r) = cloud
                    .http
                    .get(format!("{}/healthz", cloud.url))
                    .send()
                    .await
                    && r.status().is_success()
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(healthy.is_ok(), "the cloud did not become ready");
        // The admin token, written before the API answered.
        let admin = std::fs::read_to_string(skerry_cloud::admin_token::path(&data)).unwrap();
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", admin.trim()).parse().unwrap(),
        );
        let mut cloud = cloud;
        cloud.http = reqwest::Client::builder()
            .no_proxy()
            .default_headers(headers)
            .build()
            .unwrap();
        cloud
            .post("/api/v1/environments", json!({"name": "prod"}))
            .await;
        cloud
    }

    async fn start(mqtt: &str) -> TestCloud {
        TestCloud::start_in(tempfile::tempdir().unwrap(), mqtt).await
    }

    fn keys(&self) -> PathBuf {
        self.dir.path().join("keys")
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// A one-time enrollment token for `prod`.
    async fn token(&self) -> String {
        let t = self
            .post("/api/v1/enrollment-tokens", json!({"env": "prod"}))
            .await;
        t["token"].as_str().unwrap().to_owned()
    }

    async fn nodes(&self) -> Vec<Value> {
        self.get("/api/v1/nodes").await.as_array().unwrap().clone()
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            served.await.unwrap().unwrap();
        }
    }
}

/// The token with the last hex digit of its CA part changed.
fn tamper_ca(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let last = chars.last_mut().unwrap();
    *last = if *last == '0' { '1' } else { '0' };
    chars.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_saves_a_private_identity_under_the_id_the_cloud_lists() {
    let cloud = TestCloud::start("127.0.0.1:7883").await;
    let token = cloud.token().await;
    let data = tempfile::tempdir().unwrap();
    let id = enroll(&cloud.url, &token, &name("gw-1"), &profile(), data.path())
        .await
        .unwrap();

    let dir = Identity::dir(data.path());
    for file in [
        identity::KEY_FILE,
        identity::CERT_FILE,
        identity::CA_FILE,
        identity::NODE_FILE,
    ] {
        assert!(dir.join(file).is_file(), "{file} is missing");
    }
    assert_eq!(mode(&dir.join(identity::KEY_FILE)), 0o600);
    assert_eq!(mode(&dir), 0o700);

    let nodes = cloud.nodes().await;
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0]["id"], id.node_id().to_string());
    assert_eq!(nodes[0]["name"], "gw-1");
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(identity::NODE_FILE)).unwrap())
            .unwrap();
    assert_eq!(record["node_id"], id.node_id().to_string());
    assert_eq!(record["env"], "prod");
    assert_eq!(record["mqtt"], json!(["127.0.0.1:7883"]));
    assert_eq!(record["cloud"], cloud.url.as_str());

    // The CA the agent keeps is the cloud's, byte for byte.
    let ca = std::fs::read_to_string(cloud.keys().join("ca.crt")).unwrap();
    assert_eq!(id.ca_pem(), ca);
    // The key is the node's own: the cloud has no copy of it.
    let key = std::fs::read_to_string(dir.join(identity::KEY_FILE)).unwrap();
    for entry in walk(cloud.dir.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(key.lines().nth(1).unwrap()),
            "{} holds the node's key",
            entry.display()
        );
    }

    let loaded = Identity::load(data.path()).unwrap().unwrap();
    assert_eq!(loaded.record(), id.record());
    loaded.tls_client_config().unwrap();

    // Enrollment runs once.
    let again = enroll(
        &cloud.url,
        &cloud.token().await,
        &name("gw-1"),
        &profile(),
        data.path(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(again, EnrollError::AlreadyEnrolled { .. }),
        "{again}"
    );
    assert_eq!(cloud.nodes().await.len(), 1);
    cloud.stop().await;
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// A token that names another CA is refused before anything is signed: by the cloud
/// (which compares the hash with its own CA and does not spend the token), and the agent
/// saves nothing. The agent's own check of the answer's CA is what stops a cloud that
/// accepts such a token anyway (a server pretending to be the cloud).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_whose_ca_hash_was_tampered_with_is_refused() {
    let cloud = TestCloud::start("127.0.0.1:7883").await;
    let good = cloud.token().await;
    let token = tamper_ca(&good);
    let data = tempfile::tempdir().unwrap();
    let err = enroll(&cloud.url, &token, &name("gw-1"), &profile(), data.path())
        .await
        .unwrap_err();
    assert!(matches!(err, EnrollError::TokenRefused), "{err}");
    nothing_saved(data.path());
    // The refusal did not spend the token.
    enroll(&cloud.url, &good, &name("gw-1"), &profile(), data.path())
        .await
        .unwrap();
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_token_is_refused_with_a_clear_message() {
    let cloud = TestCloud::start("127.0.0.1:7883").await;
    let token = cloud.token().await;
    let first = tempfile::tempdir().unwrap();
    enroll(&cloud.url, &token, &name("gw-1"), &profile(), first.path())
        .await
        .unwrap();
    let second = tempfile::tempdir().unwrap();
    let err = enroll(&cloud.url, &token, &name("gw-2"), &profile(), second.path())
        .await
        .unwrap_err();
    assert!(matches!(err, EnrollError::TokenRefused), "{err}");
    assert_eq!(err.to_string(), "the token is unknown, used or expired");
    assert_eq!(err.exit_code(), 5);
    nothing_saved(second.path());
    assert_eq!(cloud.nodes().await.len(), 1);

    // A malformed token is refused before anything is sent.
    let err = enroll(
        &cloud.url,
        "skr1.nope",
        &name("gw-3"),
        &profile(),
        second.path(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, EnrollError::Token(_)), "{err}");
    assert_eq!(err.exit_code(), 2);
    nothing_saved(second.path());
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cloud_is_a_retryable_error() {
    provider();
    // A port that was free a moment ago: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let token = format!(
        "skr1.{}.{}.{}",
        "0".repeat(32),
        "1".repeat(64),
        "2".repeat(64)
    );
    let data = tempfile::tempdir().unwrap();
    let err = enroll(
        &format!("http://127.0.0.1:{port}"),
        &token,
        &name("gw-1"),
        &profile(),
        data.path(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, EnrollError::Unreachable { .. }), "{err}");
    assert!(err.is_retryable());
    assert_eq!(err.exit_code(), 1);
    nothing_saved(data.path());
}

/// A TLS front for the cloud's plain HTTP API, with a server certificate for 127.0.0.1
/// issued by the CA in `ca_dir` (the chain it presents includes that CA).
async fn tls_front(ca_dir: &Path, backend: &str) -> (String, JoinHandle<()>) {
    let ca_pem = std::fs::read_to_string(ca_dir.join("ca.crt")).unwrap();
    let ca_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(ca_dir.join("ca.key")).unwrap()).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let chain = vec![
        cert.der().clone(),
        CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap(),
    ];
    let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let backend = backend.trim_start_matches("http://").to_owned();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let backend = backend.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(&backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (url, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_trusts_the_cloud_only_through_the_tokens_ca() {
    let cloud = TestCloud::start("127.0.0.1:7883").await;
    let token = cloud.token().await;

    // A front whose certificate comes from another CA: refused before the token is sent.
    let stranger = tempfile::tempdir().unwrap();
    Pki::load_or_create(stranger.path()).unwrap();
    let (bad_url, bad_front) = tls_front(stranger.path(), &cloud.url).await;
    let data = tempfile::tempdir().unwrap();
    let err = enroll(&bad_url, &token, &name("gw-1"), &profile(), data.path())
        .await
        .unwrap_err();
    assert!(
        matches!(err, EnrollError::ServerNotTrusted { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("does not include the CA the token names"),
        "{err}"
    );
    assert!(!err.is_retryable());
    nothing_saved(data.path());
    bad_front.abort();

    // The token was not spent: through a front of the cloud's own CA it enrolls.
    let (url, front) = tls_front(&cloud.keys(), &cloud.url).await;
    let id = enroll(&url, &token, &name("gw-1"), &profile(), data.path())
        .await
        .unwrap();
    assert_eq!(id.cloud(), url);
    assert_eq!(cloud.nodes().await[0]["id"], id.node_id().to_string());
    front.abort();
    cloud.stop().await;
}

/// A `Sessions` in place of the sync layer: it hands each opened session to the test.
#[derive(Clone)]
struct Recorder {
    opened: mpsc::UnboundedSender<(NodeId, mpsc::Sender<Bytes>, mpsc::Receiver<Bytes>)>,
}

impl Sessions for Recorder {
    fn open(&self, node: NodeId) -> Result<Connection, String> {
        let (up, up_rx) = mpsc::channel(16);
        let (down_tx, down) = mpsc::channel(16);
        self.opened
            .send((node, down_tx, up_rx))
            .map_err(|_| "the test is gone".to_owned())?;
        Ok(Connection { up, down })
    }
}

/// An MQTT endpoint of the CA in `keys`, served on `addr` until the sender is used.
async fn endpoint(
    keys: &Path,
    addr: SocketAddr,
    recorder: Recorder,
) -> (SocketAddr, oneshot::Sender<()>, JoinHandle<()>) {
    let pki = Pki::load_or_create(keys).unwrap();
    let names = ["127.0.0.1".to_owned(), "localhost".to_owned()];
    let endpoint = MqttEndpoint::bind(addr, &pki, &names).await.unwrap();
    let local = endpoint.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        endpoint
            .run(recorder, async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (local, stop, task)
}

async fn next_event(events: &mut mpsc::Receiver<LinkEvent>) -> LinkEvent {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .expect("no link event in time")
        .expect("the link stopped")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_connects_with_the_enrolled_identity_and_carries_frames_both_ways() {
    // The CA first, so the endpoint and the cloud share it; then the cloud advertises the
    // endpoint's address.
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let (opened_tx, mut opened) = mpsc::unbounded_channel();
    let recorder = Recorder { opened: opened_tx };
    let (addr, stop_endpoint, served) =
        endpoint(&keys, "127.0.0.1:0".parse().unwrap(), recorder.clone()).await;
    let cloud = TestCloud::start_in(dir, &addr.to_string()).await;
    let data = tempfile::tempdir().unwrap();
    let id = enroll(
        &cloud.url,
        &cloud.token().await,
        &name("gw-1"),
        &profile(),
        data.path(),
    )
    .await
    .unwrap();
    assert_eq!(id.mqtt(), [addr.to_string()]);

    let (events_tx, mut events) = mpsc::channel(16);
    let link = MqttLink::spawn(&id, LinkOptions::from_profile(&profile()), events_tx).unwrap();
    assert_eq!(next_event(&mut events).await, LinkEvent::Connected);
    let (node, down, mut up) = tokio::time::timeout(WAIT, opened.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(node, id.node_id(), "the endpoint saw another node id");

    down.send(Bytes::from_static(b"down-1")).await.unwrap();
    assert_eq!(
        next_event(&mut events).await,
        LinkEvent::Down(Bytes::from_static(b"down-1"))
    );
    link.send_up(Bytes::from_static(b"hello")).await.unwrap();
    let got = tokio::time::timeout(WAIT, up.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, Bytes::from_static(b"hello"));
    let too_big = Bytes::from(vec![0u8; skerry_shared::frame::MAX_FRAME_BYTES + 1]);
    assert!(matches!(
        link.send_up(too_big).await,
        Err(LinkError::TooLarge { .. })
    ));

    // The endpoint goes away: one Disconnected, sends fail fast.
    stop_endpoint.send(()).unwrap();
    served.await.unwrap();
    match next_event(&mut events).await {
        LinkEvent::Disconnected(reason) => assert!(!reason.is_empty()),
        other => panic!("expected Disconnected, got {other:?}"),
    }
    assert!(!link.is_connected());
    assert!(matches!(
        link.send_up(Bytes::from_static(b"lost")).await,
        Err(LinkError::NotConnected)
    ));

    // It comes back on the same address: the link reconnects by itself, and the outage
    // was reported once (the next event is Connected, not another Disconnected).
    let (_, stop_endpoint, served) = endpoint(&keys, addr, recorder).await;
    assert_eq!(next_event(&mut events).await, LinkEvent::Connected);
    let (node, down, _up) = tokio::time::timeout(WAIT, opened.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(node, id.node_id());
    down.send(Bytes::from_static(b"down-2")).await.unwrap();
    assert_eq!(
        next_event(&mut events).await,
        LinkEvent::Down(Bytes::from_static(b"down-2"))
    );

    link.shutdown().await;
    stop_endpoint.send(()).unwrap();
    served.await.unwrap();
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_trusts_no_endpoint_of_another_ca() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let (opened_tx, mut opened) = mpsc::unbounded_channel();
    let recorder = Recorder { opened: opened_tx };
    // The endpoint runs with another CA than the cloud that enrolls the node.
    let stranger = tempfile::tempdir().unwrap();
    let (addr, stop_endpoint, served) =
        endpoint(stranger.path(), "127.0.0.1:0".parse().unwrap(), recorder).await;
    Pki::load_or_create(&keys).unwrap();
    let cloud = TestCloud::start_in(dir, &addr.to_string()).await;
    let data = tempfile::tempdir().unwrap();
    let id = enroll(
        &cloud.url,
        &cloud.token().await,
        &name("gw-1"),
        &profile(),
        data.path(),
    )
    .await
    .unwrap();

    let (events_tx, mut events) = mpsc::channel(16);
    let link = MqttLink::spawn(&id, LinkOptions::from_profile(&profile()), events_tx).unwrap();
    match next_event(&mut events).await {
        LinkEvent::Disconnected(reason) => {
            assert!(reason.contains(&addr.to_string()), "{reason}");
            assert!(reason.contains("certificate"), "{reason}");
        }
        other => panic!("expected Disconnected, got {other:?}"),
    }
    assert!(opened.try_recv().is_err(), "a session opened");
    assert!(!link.is_connected());
    link.shutdown().await;
    stop_endpoint.send(()).unwrap();
    served.await.unwrap();
    cloud.stop().await;
}
