//! The fan-out baseline: a raw MQTT round trip to N connected clients, with no Skerry logic.
//!
//! A bare server speaks MQTT 3.1.1 with the codec the cloud's endpoint uses (rumqttc's
//! `mqttbytes::v4::Codec` over tokio-rustls, client certificates required, ring), in a
//! child process (`skerry-bench raw-mqtt-server`) so that the two ends of N connections do
//! not share one open-files limit. N rumqttc clients, configured as the agent's link is
//! (TLS with a client certificate, clean session, QoS 0), run on a two-thread tokio
//! runtime in this process, as the simulated agents do. Each subscribes to its own `down`
//! topic and answers each message with one on its `up` topic.
//!
//! Once all N are connected and subscribed (timed apart: TCP, TLS, CONNECT, SUBSCRIBE), the
//! server sends one 64-byte PUBLISH to each client and stops its clock when the N answers
//! are in: the transport's share of a fan-out, as Skerry's deploy must also reach N
//! sessions and hear back from each.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{
    Codec, ConnAck, ConnectReturnCode, Packet, Publish, SubAck, SubscribeReasonCode,
};
use rumqttc::{AsyncClient, Event, MqttOptions, TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

/// The payload of each message.
const PAYLOAD: usize = 64;
const MAX_PACKET: usize = 64 * 1024;
/// How soon a client whose connection failed tries again.
const RETRY: Duration = Duration::from_millis(100);

/// `skerry-bench raw-mqtt-server` (started by the fan-out scenario, not by hand).
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// The directory with `ca.pem`, `server.pem` and `server.key`.
    #[arg(long)]
    pub dir: PathBuf,
    /// How many clients to wait for.
    #[arg(long)]
    pub clients: usize,
}

/// The result of one baseline run.
#[derive(Debug, Clone, Copy)]
pub struct RoundTrip {
    pub clients: usize,
    /// From the first client's start until all were connected and subscribed.
    pub connect: Duration,
    /// From the first PUBLISH until the last answer.
    pub round_trip: Duration,
}

fn read_pem_cert(path: &Path) -> anyhow::Result<CertificateDer<'static>> {
    CertificateDer::from_pem_file(path).with_context(|| format!("{}", path.display()))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server: accepts `clients` connections, then answers `go` on standard input with one
/// round trip to all, and prints `round-trip NANOS`.
pub fn serve(args: &ServerArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve_async(args))
}

async fn serve_async(args: &ServerArgs) -> anyhow::Result<()> {
    crate::sim::raise_open_files()?;
    let ca = read_pem_cert(&args.dir.join("ca.pem"))?;
    let cert = read_pem_cert(&args.dir.join("server.pem"))?;
    let key = PrivateKeyDer::from_pem_file(args.dir.join("server.key")).context("server.key")?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca)?;
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert], key)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening {}", listener.local_addr()?.port());
    std::io::stdout().flush()?;

    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<mpsc::Sender<()>>();
    let (answer_tx, mut answer_rx) = mpsc::unbounded_channel::<()>();
    // Handshakes that fail (a client that gave up waiting connects again).
    let failed = Arc::new(AtomicUsize::new(0));
    let failures = Arc::clone(&failed);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, ready, answers) =
                (acceptor.clone(), ready_tx.clone(), answer_tx.clone());
            let failed = Arc::clone(&failed);
            tokio::spawn(async move {
                if connection(acceptor, tcp, ready, answers).await.is_err() {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });

    let mut go = Vec::with_capacity(args.clients);
    while go.len() < args.clients {
        go.push(ready_rx.recv().await.context("the listener stopped")?);
    }
    println!("connected {}", go.len());
    let failures = failures.load(Ordering::Relaxed);
    if failures > 0 {
        eprintln!("raw-mqtt-server: {failures} connection attempts failed before all were in");
    }
    std::io::stdout().flush()?;
    let mut line = String::new();
    tokio::task::spawn_blocking(move || std::io::stdin().read_line(&mut line)).await??;

    let t0 = Instant::now();
    for tx in &go {
        tx.send(()).await?;
    }
    for _ in 0..args.clients {
        answer_rx.recv().await.context("a connection stopped")?;
    }
    println!("round-trip {}", t0.elapsed().as_nanos());
    std::io::stdout().flush()?;
    Ok(())
}

async fn connection(
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
    ready: mpsc::UnboundedSender<mpsc::Sender<()>>,
    answers: mpsc::UnboundedSender<()>,
) -> anyhow::Result<()> {
    let tls = acceptor.accept(tcp).await?;
    let mut framed = Framed::new(
        tls,
        Codec {
            max_incoming_size: MAX_PACKET,
            max_outgoing_size: MAX_PACKET,
        },
    );
    let Some(Packet::Connect(connect)) = framed.next().await.transpose()? else {
        bail!("the first packet is not CONNECT");
    };
    framed
        .send(Packet::ConnAck(ConnAck::new(
            ConnectReturnCode::Success,
            false,
        )))
        .await?;
    let Some(Packet::Subscribe(subscribe)) = framed.next().await.transpose()? else {
        bail!("the second packet is not SUBSCRIBE");
    };
    let down = subscribe
        .filters
        .first()
        .map(|f| f.path.clone())
        .context("an empty SUBSCRIBE")?;
    framed
        .send(Packet::SubAck(SubAck::new(
            subscribe.pkid,
            vec![SubscribeReasonCode::Success(QoS::AtMostOnce)],
        )))
        .await?;
    let (go_tx, mut go_rx) = mpsc::channel(1);
    ready.send(go_tx)?;
    let _ = connect;
    // From here on, a closed connection is the end of the run (the clients stop), not a
    // failure worth a line.
    let _ = exchange(&mut framed, &down, &mut go_rx, &answers).await;
    Ok(())
}

async fn exchange(
    framed: &mut Framed<tokio_rustls::server::TlsStream<tokio::net::TcpStream>, Codec>,
    down: &str,
    go_rx: &mut mpsc::Receiver<()>,
    answers: &mpsc::UnboundedSender<()>,
) -> anyhow::Result<()> {
    loop {
        tokio::select! {
            go = go_rx.recv() => {
                if go.is_none() {
                    return Ok(());
                }
                let payload = Bytes::from(vec![0x5a; PAYLOAD]);
                framed.send(Packet::Publish(Publish::new(down, QoS::AtMostOnce, payload))).await?;
            }
            packet = framed.next() => match packet.transpose()? {
                Some(Packet::Publish(_)) => { let _ = answers.send(()); }
                Some(Packet::PingReq) => framed.send(Packet::PingResp).await?,
                Some(Packet::Disconnect) | None => return Ok(()),
                Some(_) => {}
            },
        }
    }
}

/// The certificates of one run, written to `dir`; the client's TLS configuration.
fn certificates(dir: &Path) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "raw MQTT baseline CA");
    ca_params.distinguished_name = dn;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let ca = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.pem(), ca_key)?;

    let server_key = KeyPair::generate()?;
    let server =
        CertificateParams::new(vec!["127.0.0.1".to_owned()])?.signed_by(&server_key, &issuer)?;
    std::fs::write(dir.join("ca.pem"), ca.pem())?;
    std::fs::write(dir.join("server.pem"), server.pem())?;
    std::fs::write(dir.join("server.key"), server_key.serialize_pem())?;

    let client_key = KeyPair::generate()?;
    let mut client_params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "raw-client");
    client_params.distinguished_name = dn;
    let client = client_params.signed_by(&client_key, &issuer)?;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone())?;
    let key = PrivateKeyDer::from_pem_slice(client_key.serialize_pem().as_bytes())?;
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![client.der().clone()], key)?;
    Ok(Arc::new(config))
}

/// Reads the child's next line that starts with `word`; the rest of it.
fn expect_line(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
    word: &str,
) -> anyhow::Result<String> {
    let line = lines
        .next()
        .with_context(|| format!("the raw MQTT server ended before \"{word}\""))??;
    line.strip_prefix(word)
        .map(|rest| rest.trim().to_owned())
        .with_context(|| format!("the raw MQTT server said \"{line}\", not \"{word} ...\""))
}

/// Runs the baseline with `clients` clients on a runtime of `threads` workers.
pub fn round_trip(clients: usize, threads: usize) -> anyhow::Result<RoundTrip> {
    crate::sim::raise_open_files()?;
    let dir = tempfile::tempdir()?;
    let tls = certificates(dir.path())?;
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .arg("raw-mqtt-server")
        .arg("--dir")
        .arg(dir.path())
        .arg("--clients")
        .arg(clients.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("start skerry-bench raw-mqtt-server")?;
    let outcome = drive(&mut child, clients, threads, tls);
    let _ = child.kill();
    let _ = child.wait();
    outcome
}

fn drive(
    child: &mut std::process::Child,
    clients: usize,
    threads: usize,
    tls: Arc<rustls::ClientConfig>,
) -> anyhow::Result<RoundTrip> {
    let stdout = child.stdout.take().context("the server's stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let port: u16 = expect_line(&mut lines, "listening")?.parse()?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?;
    let (stop_tx, _) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    for i in 0..clients {
        let mut options = MqttOptions::new(format!("raw-{i}"), "127.0.0.1", port);
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_session(true)
            .set_max_packet_size(MAX_PACKET, MAX_PACKET)
            .set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                Arc::clone(&tls),
            )));
        let (client, mut eventloop) = AsyncClient::new(options, 16);
        // The agent's link allows 15 s for TCP, TLS and CONNECT; so do these clients.
        let mut network = rumqttc::NetworkOptions::new();
        network.set_connection_timeout(15);
        eventloop.set_network_options(network);
        let mut stop = stop_tx.subscribe();
        rt.spawn(async move {
            let (down, up) = (format!("raw/{i}/down"), format!("raw/{i}/up"));
            loop {
                let event = tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    event = eventloop.poll() => event,
                };
                match event {
                    Ok(Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                        let _ = client.try_subscribe(&down, rumqttc::QoS::AtMostOnce);
                    }
                    Ok(Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        let _ = client.try_publish(&up, rumqttc::QoS::AtMostOnce, false, p.payload);
                    }
                    Ok(_) => {}
                    // The server ends the run by exiting; before that, the next poll
                    // connects again, as the agent's link does.
                    Err(_) => {
                        if *stop.borrow() {
                            return;
                        }
                        tokio::time::sleep(RETRY).await;
                    }
                }
            }
        });
    }
    let connected: usize = expect_line(&mut lines, "connected")?.parse()?;
    let connect = started.elapsed();
    let stdin = child.stdin.as_mut().context("the server's stdin")?;
    writeln!(stdin, "go")?;
    stdin.flush()?;
    let nanos: u64 = expect_line(&mut lines, "round-trip")?.parse()?;
    stop_tx.send_replace(true);
    rt.shutdown_timeout(Duration::from_secs(5));
    Ok(RoundTrip {
        clients: connected,
        connect,
        round_trip: Duration::from_nanos(nanos),
    })
}
