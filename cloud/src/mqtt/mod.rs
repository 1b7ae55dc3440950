//! The embedded MQTT 3.1.1 endpoint for agents: not a broker.
//!
//! With its embedded defaults the cloud accepts the agents' MQTT sessions itself, over TLS
//! with client certificates from the cloud's CA. The node id in a client's certificate
//! decides everything it may do: subscribe to its own `down` topic
//! ([`down_topic`], `skerry/v1/nodes/{node_id}/down`) and publish to its own `up` topic
//! ([`up_topic`]), nothing else. Nodes never see each other's messages: what a node
//! publishes goes to the sync layer only, and only the sync layer publishes to a node.
//! The endpoint serves the sync layer's transport seam ([`crate::sync::transport`]:
//! [`Sessions`] and [`Connection`], re-exported here); the sync layer knows nothing of MQTT,
//! so another transport (NATS) can sit beside this one.
//!
//! ```text
//!  agent ──TLS (client cert = node id)──> MqttEndpoint ──Sessions::open(node)──> sync layer
//!        PUBLISH skerry/v1/nodes/{id}/up   ──────────────> Connection::up   (in order, backpressure)
//!        SUBSCRIBE skerry/v1/nodes/{id}/down <──────────── Connection::down (QoS 0)
//! ```
//!
//! - **Handshake.** A client without a certificate, or with one from another CA, fails the
//!   TLS handshake (logged at info with its address, and counted). The server certificate
//!   is issued by the cloud's CA at each [`MqttEndpoint::bind`], for the names given; its key
//!   is never written to disk. The crypto provider is rustls' ring, named explicitly.
//! - **CONNECT** must be the first packet, within 10 s of the TCP accept (TLS included),
//!   and MQTT 3.1.1 (other versions get CONNACK "unacceptable protocol version"). The client
//!   id may be anything; user name, password and will are ignored (the certificate is the
//!   identity, and the endpoint publishes nothing on a client's behalf). The sync layer's
//!   [`Sessions::open`] decides: a refusal is answered "not authorized". No session is
//!   persistent ("session present" is always false): the sync protocol is the agent's.
//! - **Subscriptions** are granted, at QoS 0, for exactly the node's own `down` topic; every
//!   other filter (another node's, a wildcard) gets the failure code in the SUBACK, and is
//!   logged and counted. Down payloads wait in the [`Connection::down`] channel until the
//!   node holds that subscription, and stop again after UNSUBSCRIBE.
//! - **Publishes** to exactly the node's own `up` topic are forwarded to
//!   [`Connection::up`], in order, waiting for room in the channel (backpressure: the
//!   endpoint reads no more from that client meanwhile). QoS 1 is acknowledged after the
//!   payload is handed over, QoS 2 is forwarded once. The retain flag is ignored. A publish
//!   anywhere else is never forwarded: it is logged, counted, and the client is
//!   disconnected.
//! - **Limits.** Packets carry frames of at most 256 KiB
//!   ([`skerry_shared::frame::MAX_FRAME_BYTES`]); a larger or malformed packet is logged,
//!   counted, and closes the connection. A client silent for 1.5 times its keep-alive is
//!   disconnected.
//! - **Shutdown.** [`MqttEndpoint::run`] stops accepting when its shutdown future resolves,
//!   closes every session (the sync layer sees each `up` end) and returns.
//!
//! # Layout
//! - [`authz`]: the topics and the two authorization decisions, pure functions.
//! - `tls`: the server configuration (certificate from the cloud's CA, client certificates
//!   required) and the node id read from a client certificate.
//! - `session`: one session as a state machine without I/O: a packet in, actions out.
//! - `connection`: one connection's I/O: handshake, CONNECT, and the loop over the client,
//!   the sync layer's channels, keep-alive and shutdown.
//! - [`stats`]: the counters ([`EndpointStats`]).

pub mod authz;
mod connection;
mod session;
pub mod stats;
#[cfg(test)]
mod tests;
mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// The sync layer's seam, which the endpoint serves: re-exported here for its users.
pub use crate::sync::{Connection, PeerCertificate, Sessions};
pub use authz::{authorize_publish, authorize_subscribe, down_topic, up_topic};
pub use connection::packet_codec;
pub use stats::EndpointStats;

use crate::pki::{Pki, PkiError};

/// How long [`MqttEndpoint::run`] lets sessions close cleanly at shutdown before it stops
/// the rest.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// The pause after a failed accept (out of file descriptors, say), so the loop does not
/// spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("MQTT endpoint {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("MQTT endpoint TLS, {what}: {reason}")]
    Tls { what: &'static str, reason: String },
}

/// The endpoint, bound and ready to [`run`](MqttEndpoint::run).
pub struct MqttEndpoint {
    listener: TcpListener,
    local: SocketAddr,
    acceptor: TlsAcceptor,
    stats: Arc<EndpointStats>,
}

impl std::fmt::Debug for MqttEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttEndpoint")
            .field("local", &self.local)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl MqttEndpoint {
    /// Binds `addr` (port 0 allowed) with a fresh server certificate for `names`.
    pub async fn bind(
        addr: SocketAddr,
        pki: &Pki,
        names: &[String],
    ) -> Result<MqttEndpoint, MqttError> {
        let config = tls::server_config(pki, names)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| MqttError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| MqttError::Bind { addr, source })?;
        Ok(MqttEndpoint {
            listener,
            local,
            acceptor: TlsAcceptor::from(config),
            stats: Arc::new(EndpointStats::default()),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Serves until `shutdown` resolves, then closes every session and returns.
    pub async fn run<S: Sessions>(
        self,
        sessions: S,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), MqttError> {
        let MqttEndpoint {
            listener,
            local,
            acceptor,
            stats,
        } = self;
        tracing::info!(addr = %local, "MQTT endpoint (TLS, client certificates) is ready");
        let (stop_tx, stop) = watch::channel(false);
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        let _ = tcp.set_nodelay(true);
                        connections.spawn(connection::serve(
                            tcp,
                            peer,
                            acceptor.clone(),
                            sessions.clone(),
                            stats.clone(),
                            stop.clone(),
                        ));
                    }
                    Err(error) => {
                        tracing::warn!(addr = %local, %error, "MQTT: accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
                Some(done) = connections.join_next(), if !connections.is_empty() => {
                    if let Err(error) = done {
                        tracing::error!(%error, "MQTT: a connection task failed");
                    }
                }
            }
        }
        drop(listener);
        let open = connections.len();
        tracing::info!(addr = %local, connections = open, "MQTT endpoint stopping");
        let _ = stop_tx.send(true);
        let drain = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
            tracing::warn!(
                "MQTT: connections still closing after {SHUTDOWN_GRACE:?}; stopping them"
            );
            connections.shutdown().await;
        }
        Ok(())
    }

    /// Counters for tests and logs: handshakes refused, packets refused (unauthorized
    /// subscribe/publish), malformed packets, and more (see [`EndpointStats`]).
    pub fn stats(&self) -> Arc<EndpointStats> {
        self.stats.clone()
    }
}
