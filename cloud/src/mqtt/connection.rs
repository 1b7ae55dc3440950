//! One client connection, from TCP accept to close: the TLS handshake, the CONNECT, then
//! the loop that moves packets between the client, the [`Session`] state machine and the
//! sync layer's [`Connection`] channels. Everything here is I/O and waiting; the decisions
//! are in [`session`](super::session).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use rumqttc::mqttbytes::Error as CodecError;
use rumqttc::mqttbytes::v4::{Codec, ConnAck, Connect, ConnectReturnCode, Packet};
use skerry_shared::frame::MAX_FRAME_BYTES;
use skerry_shared::ids::NodeId;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, timeout, timeout_at};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::codec::Framed;

use super::session::{Action, Close, Session, check_protocol, packet_name};
use super::stats::EndpointStats;
use super::{Connection, Sessions, tls};

/// The TLS handshake and the CONNECT must both be done this long after the TCP accept.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A client that reads nothing for this long while the endpoint writes to it is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a closing connection waits for its TLS close to be written.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest packet the codec takes or makes (remaining length): a whole frame, plus
/// room for the topic, the packet id and the header fields.
pub(crate) const MAX_PACKET_BYTES: usize = MAX_FRAME_BYTES + 1024;
/// The MQTT 3.1.1 codec of every connection, limited to `MAX_PACKET_BYTES` each way.
pub fn packet_codec() -> Codec {
    Codec {
        max_incoming_size: MAX_PACKET_BYTES,
        max_outgoing_size: MAX_PACKET_BYTES,
    }
}
/// Down payloads written before one flush, when the sync layer has queued several.
const DOWN_BATCH: usize = 64;
/// Stands for "no keep-alive": never reached.
const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

type Transport = Framed<TlsStream<TcpStream>, Codec>;

/// Resolves once the endpoint is shutting down (or its shutdown signal is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// Serves one accepted TCP connection to its end. Never panics on what the client sends.
pub(crate) async fn serve<S: Sessions>(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    sessions: S,
    stats: Arc<EndpointStats>,
    mut stop: watch::Receiver<bool>,
) {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let tls = tokio::select! {
        () = stopped(&mut stop) => return,
        accepted = timeout_at(deadline, acceptor.accept(tcp)) => match accepted {
            Ok(Ok(tls)) => tls,
            Ok(Err(error)) => {
                stats.handshake_refused();
                tracing::info!(%peer, %error, "MQTT: TLS handshake refused");
                return;
            }
            Err(_) => {
                stats.handshake_refused();
                tracing::info!(%peer, "MQTT: no TLS handshake within {CONNECT_TIMEOUT:?}; closing");
                return;
            }
        },
    };
    let peer_cert = match tls::peer(tls.get_ref().1.peer_certificates()) {
        Ok(cert) => cert,
        Err(reason) => {
            stats.handshake_refused();
            tracing::info!(%peer, %reason, "MQTT: client certificate refused");
            close(tls).await;
            return;
        }
    };
    let node = peer_cert.node;
    let mut framed = Framed::new(tls, packet_codec());
    let Some(connect) = first_packet(&mut framed, node, peer, deadline, &stats, &mut stop).await
    else {
        close(framed.into_inner()).await;
        return;
    };
    let code = check_protocol(&connect);
    if code != ConnectReturnCode::Success {
        stats.protocol_error();
        tracing::info!(%node, %peer, protocol = ?connect.protocol, "MQTT: refused a protocol other than MQTT 3.1.1");
        let _ = send(&mut framed, Packet::ConnAck(ConnAck::new(code, false))).await;
        close(framed.into_inner()).await;
        return;
    }
    let mut connection = match sessions.open_peer(&peer_cert) {
        Ok(connection) => connection,
        Err(reason) => {
            stats.session_refused();
            tracing::warn!(%node, %peer, %reason, "MQTT: session refused by the sync layer; answering not authorized");
            let refused = ConnAck::new(ConnectReturnCode::NotAuthorized, false);
            let _ = send(&mut framed, Packet::ConnAck(refused)).await;
            close(framed.into_inner()).await;
            return;
        }
    };
    let active = stats.session_opened();
    let client_id: String = connect.client_id.chars().take(64).collect();
    let accepted = ConnAck::new(ConnectReturnCode::Success, false);
    let end = match send(&mut framed, Packet::ConnAck(accepted)).await {
        Ok(()) => {
            tracing::info!(%node, %peer, %client_id, keep_alive = connect.keep_alive, "MQTT: session opened");
            let keep_alive = (connect.keep_alive > 0)
                .then(|| Duration::from_millis(u64::from(connect.keep_alive) * 1500));
            session_loop(
                &mut framed,
                node,
                &mut connection,
                keep_alive,
                &stats,
                &mut stop,
            )
            .await
        }
        Err(reason) => End::Write(reason),
    };
    // Counted and logged first, then the sync layer hears that the node went away (its
    // `up` ends), then the client.
    end.report(node, peer, &stats);
    drop(connection);
    drop(active);
    close(framed.into_inner()).await;
}

/// The CONNECT, which must come first and before `deadline`. `None`: the connection is
/// to close (the reason is logged and counted).
async fn first_packet(
    framed: &mut Transport,
    node: NodeId,
    peer: SocketAddr,
    deadline: Instant,
    stats: &EndpointStats,
    stop: &mut watch::Receiver<bool>,
) -> Option<Connect> {
    let first = tokio::select! {
        () = stopped(stop) => return None,
        first = timeout_at(deadline, framed.next()) => first,
    };
    match first {
        Ok(Some(Ok(Packet::Connect(connect)))) => Some(connect),
        Ok(Some(Ok(other))) => {
            stats.protocol_error();
            tracing::warn!(%node, %peer, packet = packet_name(&other), "MQTT: the first packet is not CONNECT; closing");
            None
        }
        Ok(Some(Err(CodecError::InvalidProtocol | CodecError::InvalidProtocolLevel(_)))) => {
            stats.protocol_error();
            tracing::info!(%node, %peer, "MQTT: refused a protocol other than MQTT 3.1.1");
            let refused = ConnAck::new(ConnectReturnCode::RefusedProtocolVersion, false);
            let _ = send(framed, Packet::ConnAck(refused)).await;
            None
        }
        Ok(Some(Err(error))) => {
            stats.malformed();
            tracing::warn!(%node, %peer, %error, "MQTT: malformed packet before CONNECT; closing");
            None
        }
        Ok(None) => {
            tracing::info!(%node, %peer, "MQTT: the client closed before CONNECT");
            None
        }
        Err(_) => {
            tracing::info!(%node, %peer, "MQTT: no CONNECT within {CONNECT_TIMEOUT:?}; closing");
            None
        }
    }
}

/// Why a session ended.
#[derive(Debug)]
enum End {
    Shutdown,
    /// The client closed the connection without DISCONNECT.
    Gone,
    Client(Close),
    /// The sync layer ended `down` (a newer connection of the node replaced this one).
    Replaced,
    /// The sync layer dropped `up`'s receiver.
    SyncGone,
    KeepAlive(Duration),
    Malformed(CodecError),
    Write(String),
}

impl End {
    fn report(self, node: NodeId, peer: SocketAddr, stats: &EndpointStats) {
        match self {
            End::Shutdown => {
                tracing::info!(%node, %peer, "MQTT: session closed: the cloud is shutting down");
            }
            End::Gone => {
                tracing::info!(%node, %peer, "MQTT: session closed by the client without DISCONNECT");
            }
            End::Client(Close::Disconnect) => {
                tracing::info!(%node, %peer, "MQTT: session closed by the client (DISCONNECT)");
            }
            End::Client(Close::DeniedPublish(topic)) => {
                stats.packet_refused();
                tracing::warn!(%node, %peer, %topic, "MQTT: publish refused (a node may publish to its own up topic only); disconnecting the client");
            }
            End::Client(Close::Oversize(len)) => {
                stats.malformed();
                tracing::warn!(%node, %peer, len, max = MAX_FRAME_BYTES, "MQTT: publish over the frame limit; disconnecting the client");
            }
            End::Client(Close::Protocol(what)) => {
                stats.protocol_error();
                tracing::warn!(%node, %peer, %what, "MQTT: protocol error; disconnecting the client");
            }
            End::Replaced => {
                tracing::info!(%node, %peer, "MQTT: session closed: the sync layer ended it (a newer connection of the node, or the node was removed)");
            }
            End::SyncGone => {
                tracing::info!(%node, %peer, "MQTT: session closed: the sync layer stopped taking its messages");
            }
            End::KeepAlive(after) => {
                stats.keep_alive_expiry();
                tracing::info!(%node, %peer, silent_for = ?after, "MQTT: session closed: keep-alive expired");
            }
            End::Malformed(CodecError::Io(error)) => {
                tracing::info!(%node, %peer, %error, "MQTT: session closed: read failed");
            }
            End::Malformed(error) => {
                stats.malformed();
                tracing::warn!(%node, %peer, %error, "MQTT: malformed packet; disconnecting the client");
            }
            End::Write(reason) => {
                tracing::info!(%node, %peer, %reason, "MQTT: session closed: write failed");
            }
        }
    }
}

/// The session after CONNACK, until one side ends it.
async fn session_loop(
    framed: &mut Transport,
    node: NodeId,
    connection: &mut Connection,
    keep_alive: Option<Duration>,
    stats: &EndpointStats,
    stop: &mut watch::Receiver<bool>,
) -> End {
    let mut session = Session::new(node);
    // One down payload taken from the channel while the node is not subscribed: taking it
    // is how an ended channel is noticed. The rest wait in the channel (its bound is the
    // sync layer's backpressure) until the node subscribes.
    let mut held: Option<Bytes> = None;
    let idle = tokio::time::sleep(keep_alive.unwrap_or(NEVER));
    tokio::pin!(idle);
    loop {
        tokio::select! {
            () = stopped(stop) => return End::Shutdown,
            () = &mut idle, if keep_alive.is_some() => {
                return End::KeepAlive(keep_alive.unwrap_or(NEVER));
            }
            inbound = framed.next() => {
                let packet = match inbound {
                    None => return End::Gone,
                    Some(Err(error)) => return End::Malformed(error),
                    Some(Ok(packet)) => packet,
                };
                if let Some(keep_alive) = keep_alive {
                    idle.as_mut().reset(Instant::now() + keep_alive);
                }
                for action in session.on_packet(packet) {
                    match action {
                        Action::Forward(payload) => tokio::select! {
                            () = stopped(stop) => return End::Shutdown,
                            sent = connection.up.send(payload) => {
                                if sent.is_err() {
                                    return End::SyncGone;
                                }
                            }
                        },
                        Action::Send(packet) => {
                            if let Err(reason) = send(framed, packet).await {
                                return End::Write(reason);
                            }
                        }
                        Action::Denied(filter) => {
                            stats.packet_refused();
                            tracing::warn!(%node, %filter, "MQTT: subscription denied (a node may subscribe to its own down topic only)");
                        }
                        Action::Close(why) => return End::Client(why),
                    }
                }
                if session.subscribed()
                    && let Some(payload) = held.take()
                    && let Err(end) = publish_down(framed, &session, &mut connection.down, payload).await
                {
                    return end;
                }
            }
            down = connection.down.recv(), if held.is_none() => match down {
                None => return End::Replaced,
                Some(payload) if session.subscribed() => {
                    if let Err(end) = publish_down(framed, &session, &mut connection.down, payload).await {
                        return end;
                    }
                }
                Some(payload) => held = Some(payload),
            },
        }
    }
}

/// Publishes `first` and whatever else the sync layer has queued (up to a batch), then
/// flushes once.
async fn publish_down(
    framed: &mut Transport,
    session: &Session,
    down: &mut mpsc::Receiver<Bytes>,
    first: Bytes,
) -> Result<(), End> {
    let write = async {
        let mut next = Some(first);
        let mut written = 0;
        while let Some(payload) = next.take() {
            if payload.len() > MAX_FRAME_BYTES {
                // The sync layer chunks; a frame over the limit here is its bug.
                tracing::error!(
                    len = payload.len(),
                    max = MAX_FRAME_BYTES,
                    "MQTT: a down payload over the frame limit was dropped"
                );
            } else {
                framed.feed(session.publish_down(payload)).await?;
                written += 1;
            }
            if written < DOWN_BATCH {
                next = down.try_recv().ok();
            }
        }
        framed.flush().await
    };
    match timeout(WRITE_TIMEOUT, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(End::Write(error.to_string())),
        Err(_) => Err(End::Write(format!(
            "the client read nothing for {WRITE_TIMEOUT:?}"
        ))),
    }
}

/// Writes one packet and flushes it, within the write timeout.
async fn send(framed: &mut Transport, packet: Packet) -> Result<(), String> {
    match timeout(WRITE_TIMEOUT, framed.send(packet)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("the client read nothing for {WRITE_TIMEOUT:?}")),
    }
}

/// Ends the TLS session (close_notify) and the TCP connection, within a short deadline.
async fn close(mut tls: TlsStream<TcpStream>) {
    let _ = timeout(CLOSE_TIMEOUT, tls.shutdown()).await;
}
