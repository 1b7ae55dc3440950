//! The endpoint in-process against a raw MQTT client (rustls and rumqttc's codec), for
//! what a well-behaved third-party client never does: malformed and oversize packets,
//! protocol errors, silence past the keep-alive, QoS 2, and the exact order of packets
//! around subscriptions. `tests/tests/mqtt_endpoint.rs` checks the rest with mosquitto.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use rcgen::{CertificateParams, KeyPair};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{
    Codec, ConnAck, Connect, ConnectReturnCode, Packet, PubAck, PubComp, PubRec, PubRel, Publish,
    SubAck, Subscribe, SubscribeFilter, SubscribeReasonCode, UnsubAck, Unsubscribe,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use skerry_shared::frame::MAX_FRAME_BYTES;
use skerry_shared::ids::NodeId;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::codec::Framed;

use super::*;

const WAIT: Duration = Duration::from_secs(5);

/// A session the endpoint opened, as the sync layer holds it.
struct Opened {
    node: NodeId,
    down: mpsc::Sender<Bytes>,
    up: mpsc::Receiver<Bytes>,
}

/// Hands every opened session to the test.
#[derive(Clone)]
struct Recorder {
    opened: mpsc::UnboundedSender<Opened>,
    up_capacity: usize,
}

impl Sessions for Recorder {
    fn open(&self, node: NodeId) -> Result<Connection, String> {
        let (up, up_rx) = mpsc::channel(self.up_capacity);
        let (down_tx, down) = mpsc::channel(16);
        self.opened
            .send(Opened {
                node,
                down: down_tx,
                up: up_rx,
            })
            .map_err(|_| "the test is gone".to_owned())?;
        Ok(Connection { up, down })
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    pki: Pki,
    addr: SocketAddr,
    stats: Arc<EndpointStats>,
    opened: mpsc::UnboundedReceiver<Opened>,
    stop: Option<oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<Result<(), MqttError>>,
}

type Client = Framed<TlsStream<TcpStream>, Codec>;

impl Harness {
    async fn start() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path()).unwrap();
        let endpoint = MqttEndpoint::bind(
            "127.0.0.1:0".parse().unwrap(),
            &pki,
            &["localhost".to_owned()],
        )
        .await
        .unwrap();
        let (addr, stats) = (endpoint.local_addr(), endpoint.stats());
        let (tx, opened) = mpsc::unbounded_channel();
        let recorder = Recorder {
            opened: tx,
            up_capacity: 16,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(endpoint.run(recorder, async move {
            let _ = stopped.await;
        }));
        Harness {
            _dir: dir,
            pki,
            addr,
            stats,
            opened,
            stop: Some(stop),
            served,
        }
    }

    /// A TLS connection with a certificate for `node`, before any MQTT.
    async fn tls(&self, node: NodeId) -> Client {
        let key = KeyPair::generate().unwrap();
        let csr = CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap();
        let (cert_pem, _) = self.pki.sign_node(&csr, node).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.pki.ca_pem().as_bytes()).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
            )
            .unwrap();
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let tls = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .unwrap();
        let codec = Codec {
            max_incoming_size: 1 << 20,
            max_outgoing_size: 1 << 20,
        };
        Framed::new(tls, codec)
    }

    /// A session for `node`: CONNECT accepted, and the sync layer's side of it.
    async fn session(&mut self, node: NodeId, keep_alive: u16) -> (Client, Opened) {
        let mut client = self.tls(node).await;
        let mut connect = Connect::new(node.to_string());
        connect.keep_alive = keep_alive;
        client.send(Packet::Connect(connect)).await.unwrap();
        assert_eq!(
            next(&mut client).await,
            Some(Packet::ConnAck(ConnAck::new(
                ConnectReturnCode::Success,
                false
            )))
        );
        let opened = tokio::time::timeout(WAIT, self.opened.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(opened.node, node);
        (client, opened)
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(WAIT, self.served)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

/// The next packet from the endpoint; `None` once it closed the connection.
async fn next(client: &mut Client) -> Option<Packet> {
    match tokio::time::timeout(WAIT, client.next()).await {
        Ok(Some(Ok(packet))) => Some(packet),
        Ok(Some(Err(_)) | None) => None,
        Err(_) => panic!("the endpoint neither answered nor closed within {WAIT:?}"),
    }
}

async fn write_raw(client: &mut Client, bytes: &[u8]) {
    let tls = client.get_mut();
    tls.write_all(bytes).await.unwrap();
    tls.flush().await.unwrap();
}

async fn recv_up(opened: &mut Opened) -> Option<Bytes> {
    tokio::time::timeout(WAIT, opened.up.recv()).await.unwrap()
}

fn subscribe(pkid: u16, filter: String) -> Packet {
    Packet::Subscribe(Subscribe {
        pkid,
        filters: vec![SubscribeFilter::new(filter, QoS::AtLeastOnce)],
    })
}

fn publish(topic: String, qos: QoS, pkid: u16, payload: Bytes) -> Packet {
    let mut publish = Publish::from_bytes(topic, qos, payload);
    publish.pkid = pkid;
    Packet::Publish(publish)
}

fn down_publish(node: NodeId, payload: &'static [u8]) -> Packet {
    Packet::Publish(Publish::from_bytes(
        down_topic(node),
        QoS::AtMostOnce,
        Bytes::from_static(payload),
    ))
}

#[tokio::test]
async fn down_payloads_wait_for_the_subscription_and_stop_after_unsubscribe() {
    let mut h = Harness::start().await;
    let node = NodeId::random();
    let (mut client, opened) = h.session(node, 60).await;
    // Queued before the node subscribes: held, then published after the SUBACK, in order.
    opened.down.send(Bytes::from_static(b"one")).await.unwrap();
    opened.down.send(Bytes::from_static(b"two")).await.unwrap();
    client.send(subscribe(1, down_topic(node))).await.unwrap();
    assert_eq!(
        next(&mut client).await,
        Some(Packet::SubAck(SubAck::new(
            1,
            vec![SubscribeReasonCode::Success(QoS::AtMostOnce)]
        )))
    );
    assert_eq!(next(&mut client).await, Some(down_publish(node, b"one")));
    assert_eq!(next(&mut client).await, Some(down_publish(node, b"two")));

    let unsubscribe = Packet::Unsubscribe(Unsubscribe {
        pkid: 2,
        topics: vec![down_topic(node)],
    });
    client.send(unsubscribe).await.unwrap();
    assert_eq!(
        next(&mut client).await,
        Some(Packet::UnsubAck(UnsubAck::new(2)))
    );
    opened
        .down
        .send(Bytes::from_static(b"three"))
        .await
        .unwrap();
    // The endpoint has taken it from the channel (and holds it) ...
    let deadline = tokio::time::Instant::now() + WAIT;
    while opened.down.capacity() < opened.down.max_capacity() {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // ... but publishes nothing while the node is not subscribed.
    client.send(Packet::PingReq).await.unwrap();
    assert_eq!(next(&mut client).await, Some(Packet::PingResp));
    client.send(subscribe(3, down_topic(node))).await.unwrap();
    assert!(matches!(next(&mut client).await, Some(Packet::SubAck(_))));
    assert_eq!(next(&mut client).await, Some(down_publish(node, b"three")));
    h.shutdown().await;
}

#[tokio::test]
async fn a_replaced_session_is_disconnected() {
    let mut h = Harness::start().await;
    let node = NodeId::random();
    let (mut client, opened) = h.session(node, 60).await;
    client.send(subscribe(1, down_topic(node))).await.unwrap();
    assert!(matches!(next(&mut client).await, Some(Packet::SubAck(_))));
    let Opened { down, mut up, .. } = opened;
    drop(down);
    assert_eq!(next(&mut client).await, None);
    // And the sync layer's `up` ends with it.
    assert_eq!(tokio::time::timeout(WAIT, up.recv()).await.unwrap(), None);
    h.shutdown().await;
}

#[tokio::test]
async fn publishes_are_forwarded_then_acknowledged_and_qos_2_only_once() {
    let mut h = Harness::start().await;
    let node = NodeId::random();
    let (mut client, mut opened) = h.session(node, 60).await;
    let up = |qos, pkid, payload: &'static [u8]| {
        publish(up_topic(node), qos, pkid, Bytes::from_static(payload))
    };
    client.send(up(QoS::AtLeastOnce, 5, b"q1")).await.unwrap();
    assert_eq!(
        next(&mut client).await,
        Some(Packet::PubAck(PubAck::new(5)))
    );
    assert_eq!(recv_up(&mut opened).await.as_deref(), Some(&b"q1"[..]));

    client.send(up(QoS::ExactlyOnce, 6, b"q2")).await.unwrap();
    assert_eq!(
        next(&mut client).await,
        Some(Packet::PubRec(PubRec::new(6)))
    );
    let mut again = up(QoS::ExactlyOnce, 6, b"q2");
    if let Packet::Publish(p) = &mut again {
        p.dup = true;
    }
    client.send(again).await.unwrap();
    assert_eq!(
        next(&mut client).await,
        Some(Packet::PubRec(PubRec::new(6)))
    );
    client.send(Packet::PubRel(PubRel::new(6))).await.unwrap();
    assert_eq!(
        next(&mut client).await,
        Some(Packet::PubComp(PubComp::new(6)))
    );
    client.send(up(QoS::AtMostOnce, 0, b"q0")).await.unwrap();
    // "q2" once, then "q0".
    assert_eq!(recv_up(&mut opened).await.as_deref(), Some(&b"q2"[..]));
    assert_eq!(recv_up(&mut opened).await.as_deref(), Some(&b"q0"[..]));
    assert_eq!(h.stats.packets_refused(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn a_malformed_packet_closes_the_connection_and_is_counted() {
    let mut h = Harness::start().await;
    let (mut client, mut opened) = h.session(NodeId::random(), 60).await;
    // A PUBLISH whose remaining length never ends (five continuation bytes).
    write_raw(&mut client, &[0x30, 0xff, 0xff, 0xff, 0xff, 0xff]).await;
    assert_eq!(next(&mut client).await, None);
    assert_eq!(recv_up(&mut opened).await, None);
    assert_eq!(h.stats.malformed_packets(), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn a_packet_over_the_limit_is_refused_from_its_header() {
    let mut h = Harness::start().await;
    let node = NodeId::random();
    let (mut client, mut opened) = h.session(node, 60).await;
    // A PUBLISH that announces 1 MiB: refused as soon as the header is read.
    write_raw(&mut client, &[0x30, 0x80, 0x80, 0x40]).await;
    assert_eq!(next(&mut client).await, None);
    assert_eq!(recv_up(&mut opened).await, None);
    assert_eq!(h.stats.malformed_packets(), 1);

    // A frame one byte over 256 KiB, in a packet under the codec's limit: refused too.
    let (mut client, mut opened) = h.session(node, 60).await;
    let big = Publish::from_bytes(
        up_topic(node),
        QoS::AtMostOnce,
        Bytes::from(vec![7u8; MAX_FRAME_BYTES + 1]),
    );
    client.send(Packet::Publish(big)).await.unwrap();
    assert_eq!(next(&mut client).await, None);
    assert_eq!(recv_up(&mut opened).await, None);
    assert_eq!(h.stats.malformed_packets(), 2);

    // A whole frame passes.
    let (mut client, mut opened) = h.session(node, 60).await;
    let fits = publish(
        up_topic(node),
        QoS::AtLeastOnce,
        1,
        Bytes::from(vec![7u8; MAX_FRAME_BYTES]),
    );
    client.send(fits).await.unwrap();
    assert_eq!(
        next(&mut client).await,
        Some(Packet::PubAck(PubAck::new(1)))
    );
    assert_eq!(
        recv_up(&mut opened).await.map(|p| p.len()),
        Some(MAX_FRAME_BYTES)
    );
    h.shutdown().await;
}

#[tokio::test]
async fn connect_must_come_first_and_be_mqtt_3_1_1() {
    let mut h = Harness::start().await;
    let node = NodeId::random();
    let mut client = h.tls(node).await;
    client.send(Packet::PingReq).await.unwrap();
    assert_eq!(next(&mut client).await, None);
    assert_eq!(h.stats.protocol_errors(), 1);

    let mut client = h.tls(node).await;
    let mut v5 = Connect::new("v5");
    v5.protocol = rumqttc::mqttbytes::Protocol::V5;
    client.send(Packet::Connect(v5)).await.unwrap();
    assert_eq!(
        next(&mut client).await,
        Some(Packet::ConnAck(ConnAck::new(
            ConnectReturnCode::RefusedProtocolVersion,
            false
        )))
    );
    assert_eq!(next(&mut client).await, None);

    // MQTT 3.1 ("MQIsdp", level 3) does not even decode as 3.1.1.
    let mut client = h.tls(node).await;
    let mut v31 = vec![0x10, 0x11, 0x00, 0x06];
    v31.extend_from_slice(b"MQIsdp");
    v31.extend_from_slice(&[0x03, 0x02, 0x00, 0x3c, 0x00, 0x03]);
    v31.extend_from_slice(b"v31");
    write_raw(&mut client, &v31).await;
    assert_eq!(
        next(&mut client).await,
        Some(Packet::ConnAck(ConnAck::new(
            ConnectReturnCode::RefusedProtocolVersion,
            false
        )))
    );
    assert_eq!(h.stats.protocol_errors(), 3);

    // A second CONNECT in a session.
    let (mut client, _opened) = h.session(node, 60).await;
    client
        .send(Packet::Connect(Connect::new("again")))
        .await
        .unwrap();
    assert_eq!(next(&mut client).await, None);
    assert_eq!(h.stats.protocol_errors(), 4);
    assert_eq!(h.stats.sessions_opened(), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn a_silent_client_is_dropped_after_one_and_a_half_keep_alives() {
    let mut h = Harness::start().await;
    let (mut client, mut opened) = h.session(NodeId::random(), 1).await;
    let started = tokio::time::Instant::now();
    assert_eq!(next(&mut client).await, None);
    assert!(started.elapsed() >= Duration::from_millis(1400));
    assert_eq!(recv_up(&mut opened).await, None);
    assert_eq!(h.stats.keep_alive_expired(), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_sessions_and_returns() {
    let mut h = Harness::start().await;
    let (mut client, mut opened) = h.session(NodeId::random(), 0).await;
    let stats = h.stats.clone();
    assert_eq!(stats.sessions_active(), 1);
    h.shutdown().await;
    assert_eq!(stats.sessions_active(), 0);
    assert_eq!(next(&mut client).await, None);
    assert_eq!(recv_up(&mut opened).await, None);
}
