//! The MQTT link: rumqttc over TLS with the node's certificate, reconnecting with
//! backoff; [`MqttLink`] is its [`Connector`] and [`MqttHandle`] its [`Link`].
//!
//! [`MqttLink::spawn`] starts a task that owns rumqttc's [`EventLoop`] and polls it; the
//! caller keeps an [`MqttHandle`] to send frames up and receives [`LinkEvent`]s on a
//! bounded channel:
//! - [`LinkEvent::Connected`] after every CONNACK, once the task has asked for the node's
//!   `down` topic (`skerry/v1/nodes/{node_id}/down`, QoS 0). The agent then says hello
//!   (its last applied `node_seq`): the sync protocol is the agent's, so every session is
//!   clean and the broker keeps nothing for the node.
//! - [`LinkEvent::Down`] with the payload of each message on that topic, unchanged.
//! - [`LinkEvent::Disconnected`] once per outage (the first connection attempt that fails
//!   counts as one), with the reason. The task then waits, 500 ms doubling up to 30 s
//!   with jitter (the wait is reset after a connection that lasted 30 s), and connects
//!   again, trying the advertised endpoints in turn.
//!
//! [`MqttHandle::send_up`] publishes QoS 0 on `skerry/v1/nodes/{node_id}/up`. It fails at
//! once with [`LinkError::NotConnected`] while the link is down, so the caller keeps what
//! it had to say (its outbox) for the next connection; while connected it waits for room
//! in the bounded request queue. A successful `send_up` means the frame is queued on the
//! open session, not that the cloud has it: at-least-once delivery is the sync
//! protocol's, by acknowledgement.
//!
//! TLS comes from [`Identity::tls_client_config`]: the cloud's CA is the only root and the
//! node's certificate is the client's. The server name is the endpoint's host (an IP
//! literal is checked against the certificate's IP addresses).

use std::time::Duration;

use bytes::Bytes;
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, NetworkOptions, Outgoing, Packet,
    QoS, SubscribeReasonCode, TlsConfiguration, Transport,
};
use rustls::pki_types::ServerName;
use skerry_shared::frame::MAX_FRAME_BYTES;
use skerry_shared::ids::NodeId;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{BoxFuture, Connector, Link, LinkError, LinkEvent, LinkOptions, MAX_CAPACITY};
use crate::identity::Identity;

/// The shortest keep-alive the link uses.
pub const MIN_KEEPALIVE: Duration = Duration::from_secs(5);
/// The first wait before connecting again.
pub const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// The longest wait before connecting again.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A connection that lasted this long resets the wait to [`BACKOFF_MIN`].
const STABLE: Duration = BACKOFF_MAX;
/// Room for an MQTT PUBLISH's header and topic around a frame of the largest size.
const PACKET_HEADROOM: usize = 4 * 1024;
/// Seconds that opening a connection (TCP, TLS and CONNECT/CONNACK) may take.
const CONNECT_TIMEOUT_SECS: u64 = 15;
/// How long a shutdown waits for the DISCONNECT to go out.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// `skerry/v1/nodes/{node_id}/up`: edge to cloud.
pub fn up_topic(node: NodeId) -> String {
    format!("skerry/v1/nodes/{node}/up")
}

/// `skerry/v1/nodes/{node_id}/down`: cloud to edge.
pub fn down_topic(node: NodeId) -> String {
    format!("skerry/v1/nodes/{node}/down")
}

/// The exponential backoff between connection attempts (sans I/O: the caller gives the
/// jitter and does the waiting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    step: Duration,
}

impl Backoff {
    /// Starts at `min`, doubles up to `max`.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        let max = max.max(min);
        Backoff {
            min,
            max,
            step: min,
        }
    }

    /// Back to the first step.
    pub fn reset(&mut self) {
        self.step = self.min;
    }

    /// The wait before the next attempt: the current step scaled by `jitter` (clamped to
    /// `0.5..=1.0`), so that nodes cut off together do not come back together. The step
    /// then doubles, up to the maximum.
    pub fn next_delay(&mut self, jitter: f64) -> Duration {
        let delay = self.step.mul_f64(jitter.clamp(0.5, 1.0));
        self.step = self.step.saturating_mul(2).min(self.max);
        delay
    }
}

/// An endpoint: host (no brackets) and port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    host: String,
    port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// `host:port` or `[v6]:port`; the host must make a TLS server name.
fn parse_endpoint(text: &str) -> Result<Endpoint, LinkError> {
    let bad = |reason: &str| LinkError::BadEndpoint {
        endpoint: text.to_owned(),
        reason: reason.to_owned(),
    };
    let (host, port) = text.trim().rsplit_once(':').ok_or_else(|| bad("no port"))?;
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.strip_suffix(']').ok_or_else(|| bad("unclosed ["))?,
        None if host.contains(':') => return Err(bad("an IPv6 address needs brackets")),
        None => host,
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| bad("the port is not a number"))?;
    ServerName::try_from(host.to_owned()).map_err(|e| bad(&e.to_string()))?;
    Ok(Endpoint {
        host: host.to_owned(),
        port,
    })
}

/// The MQTT link; see the module docs.
#[derive(Debug)]
pub struct MqttLink;

impl MqttLink {
    /// Starts the link task (on the current tokio runtime) for `identity`, connecting to
    /// the first advertised MQTT endpoint. Events arrive on `inbound`; when its receiver
    /// is dropped, the link stops.
    pub fn spawn(
        identity: &Identity,
        options: LinkOptions,
        inbound: mpsc::Sender<LinkEvent>,
    ) -> Result<MqttHandle, LinkError> {
        let endpoints = identity
            .mqtt()
            .iter()
            .map(|e| parse_endpoint(e))
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Err(LinkError::NoEndpoint {
                nats: identity.nats().to_vec(),
            });
        }
        let tls = identity.tls_client_config()?;
        let node = identity.node_id();
        let capacity = options.capacity.clamp(1, MAX_CAPACITY);
        let all = mqtt_options(node, &endpoints, options.keepalive, &tls);
        let (client, mut eventloop) = AsyncClient::new(all[0].clone(), capacity);
        let mut network = NetworkOptions::new();
        network.set_connection_timeout(CONNECT_TIMEOUT_SECS);
        eventloop.set_network_options(network);
        let (state_tx, state_rx) = watch::channel(false);
        let (stop_tx, stop_rx) = oneshot::channel();
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let task = LinkTask {
            eventloop,
            client: client.clone(),
            endpoints,
            options: all,
            current: 0,
            down_topic: down_topic(node),
            inbound,
            state: state_tx,
            backoff: Backoff::new(BACKOFF_MIN, BACKOFF_MAX),
            control: control_rx,
            forgotten: false,
        };
        tracing::info!(node = %node, endpoint = %task.endpoints[0], "starting the MQTT link");
        let join = tokio::spawn(task.run(stop_rx));
        Ok(MqttHandle {
            client,
            node,
            up_topic: up_topic(node),
            state: state_rx,
            stop: Some(stop_tx),
            task: Some(join),
            control: control_tx,
            keepalive: options.keepalive,
        })
    }
}

/// The rumqttc options of each endpoint, with the node's TLS configuration.
fn mqtt_options(
    node: NodeId,
    endpoints: &[Endpoint],
    keepalive: Duration,
    tls: &std::sync::Arc<rustls::ClientConfig>,
) -> Vec<MqttOptions> {
    endpoints
        .iter()
        .map(|endpoint| {
            let mut o = MqttOptions::new(node.to_string(), endpoint.host.clone(), endpoint.port);
            o.set_keep_alive(keepalive.max(MIN_KEEPALIVE))
                .set_clean_session(true)
                .set_max_packet_size(
                    MAX_FRAME_BYTES + PACKET_HEADROOM,
                    MAX_FRAME_BYTES + PACKET_HEADROOM,
                )
                .set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                    tls.clone(),
                )));
            o
        })
        .collect()
}

impl Connector for MqttLink {
    fn connect(
        &self,
        identity: &Identity,
        options: LinkOptions,
        events: mpsc::Sender<LinkEvent>,
    ) -> Result<Box<dyn Link>, LinkError> {
        Ok(Box::new(MqttLink::spawn(identity, options, events)?))
    }
}

/// The caller's side of a running MQTT link. Dropping it stops the link (without
/// waiting); [`MqttHandle::shutdown`] stops it and waits for a clean DISCONNECT.
#[derive(Debug)]
pub struct MqttHandle {
    client: AsyncClient,
    node: NodeId,
    up_topic: String,
    state: watch::Receiver<bool>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    control: mpsc::UnboundedSender<Control>,
    /// The keep-alive the link started with, kept for renewed credentials.
    keepalive: Duration,
}

/// What the handle asks of the link task besides stopping.
enum Control {
    /// Connect again with these options (one per endpoint, renewed credentials).
    Renewed(Vec<MqttOptions>),
    /// Never connect again.
    Forget,
}

impl MqttHandle {
    /// The node this link speaks for.
    pub fn node_id(&self) -> NodeId {
        self.node
    }

    /// Whether a session is open now.
    pub fn is_connected(&self) -> bool {
        *self.state.borrow()
    }

    /// The options of every endpoint for `identity` (the same endpoints, new credentials).
    fn options_for(
        &self,
        identity: &Identity,
        tls: std::sync::Arc<rustls::ClientConfig>,
    ) -> Result<Vec<MqttOptions>, LinkError> {
        let endpoints = identity
            .mqtt()
            .iter()
            .map(|e| parse_endpoint(e))
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Err(LinkError::NoEndpoint {
                nats: identity.nats().to_vec(),
            });
        }
        Ok(mqtt_options(self.node, &endpoints, self.keepalive, &tls))
    }

    /// Publishes `payload` (one frame) QoS 0 on the node's `up` topic. Fails at once with
    /// [`LinkError::NotConnected`] while the link is down, and when it goes down while
    /// the frame waits for room in the queue.
    pub async fn send_up(&self, payload: Bytes) -> Result<(), LinkError> {
        if payload.len() > MAX_FRAME_BYTES {
            return Err(LinkError::TooLarge {
                size: payload.len(),
            });
        }
        let mut state = self.state.clone();
        if !*state.borrow_and_update() {
            return Err(LinkError::NotConnected);
        }
        let publish =
            self.client
                .publish_bytes(self.up_topic.clone(), QoS::AtMostOnce, false, payload);
        tokio::select! {
            sent = publish => sent.map_err(|_| LinkError::Stopped),
            _ = state.wait_for(|up| !*up) => Err(LinkError::NotConnected),
        }
    }

    /// Stops the link: a DISCONNECT if a session is open, then the task ends.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            tracing::warn!(error = %e, "the MQTT link task failed");
        }
    }
}

impl Link for MqttHandle {
    fn is_connected(&self) -> bool {
        MqttHandle::is_connected(self)
    }

    fn send_up(&self, frame: Bytes) -> BoxFuture<'_, Result<(), LinkError>> {
        Box::pin(MqttHandle::send_up(self, frame))
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(MqttHandle::shutdown(*self))
    }

    fn renewed(&self, identity: &Identity) -> Result<(), LinkError> {
        let tls = identity.tls_client_config()?;
        let options = self.options_for(identity, tls)?;
        self.control
            .send(Control::Renewed(options))
            .map_err(|_| LinkError::Stopped)
    }

    fn forget(&self) {
        let _ = self.control.send(Control::Forget);
    }
}

/// What to do after handing an event to the agent.
enum Flow {
    Go,
    Stop,
}

/// The task that owns the event loop.
struct LinkTask {
    eventloop: EventLoop,
    client: AsyncClient,
    endpoints: Vec<Endpoint>,
    options: Vec<MqttOptions>,
    current: usize,
    down_topic: String,
    inbound: mpsc::Sender<LinkEvent>,
    state: watch::Sender<bool>,
    backoff: Backoff,
    control: mpsc::UnboundedReceiver<Control>,
    /// The node forgot its identity: no connection again.
    forgotten: bool,
}

impl LinkTask {
    async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        // Whether the current outage has been reported (none is, before the first try).
        let mut reported = false;
        // When the current session opened.
        let mut since: Option<Instant> = None;
        loop {
            let polled = tokio::select! {
                biased;
                _ = &mut stop => break,
                Some(control) = self.control.recv() => {
                    self.on_control(control).await;
                    continue;
                }
                polled = self.eventloop.poll(), if !self.forgotten => polled,
            };
            let flow = match polled {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    since = Some(Instant::now());
                    reported = false;
                    self.connected(&mut stop).await
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if p.topic == self.down_topic {
                        self.emit(LinkEvent::Down(p.payload), &mut stop).await
                    } else {
                        tracing::warn!(topic = %p.topic, "dropped a message on a topic this node did not ask for");
                        Flow::Go
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    if ack.return_codes.contains(&SubscribeReasonCode::Failure) {
                        tracing::error!(topic = %self.down_topic, "the cloud refused this node's down topic: no command will reach it");
                    }
                    Flow::Go
                }
                Ok(_) => Flow::Go,
                Err(e) => {
                    self.state.send_replace(false);
                    let reason = reason(&e, &self.endpoints[self.current]);
                    let flow = if reported {
                        tracing::debug!(%reason, "the MQTT link is still down");
                        Flow::Go
                    } else {
                        reported = true;
                        tracing::warn!(%reason, "the MQTT link is down; the node runs on from its journal");
                        self.emit(LinkEvent::Disconnected(reason), &mut stop).await
                    };
                    if since.take().is_some_and(|t| t.elapsed() >= STABLE) {
                        self.backoff.reset();
                    }
                    if matches!(flow, Flow::Stop) {
                        break;
                    }
                    self.next_endpoint();
                    let delay = self.backoff.next_delay(rand::random_range(0.5..=1.0));
                    tokio::select! {
                        biased;
                        _ = &mut stop => break,
                        () = tokio::time::sleep(delay) => {}
                    }
                    Flow::Go
                }
            };
            if matches!(flow, Flow::Stop) {
                break;
            }
        }
        let was_up = self.state.send_replace(false);
        if was_up {
            self.disconnect().await;
        }
        tracing::info!("the MQTT link stopped");
    }

    /// New credentials, or none: the open session ends either way.
    async fn on_control(&mut self, control: Control) {
        let was_up = self.state.send_replace(false);
        if was_up {
            self.disconnect().await;
        }
        self.eventloop.clean();
        match control {
            Control::Renewed(options) => {
                self.options = options;
                self.current = 0;
                if let Some(first) = self.options.first() {
                    self.eventloop.mqtt_options = first.clone();
                }
                self.backoff.reset();
                tracing::info!("reconnecting with the renewed certificate");
            }
            Control::Forget => {
                self.forgotten = true;
                tracing::warn!("the MQTT link stops for good: the node forgot its identity");
            }
        }
        if was_up {
            let reason = "the link is renewing its credentials".to_owned();
            let _ = self.inbound.send(LinkEvent::Disconnected(reason)).await;
        }
    }

    /// A session opened: ask for the down topic, then tell the agent.
    async fn connected(&mut self, stop: &mut oneshot::Receiver<()>) -> Flow {
        // The request queue was emptied when the last session ended and nothing is sent
        // while the link is down, so the SUBSCRIBE goes out before any frame the agent
        // sends after `Connected`.
        if let Err(e) = self
            .client
            .try_subscribe(self.down_topic.clone(), QoS::AtMostOnce)
        {
            tracing::error!(error = %e, "cannot ask for the down topic; reconnecting");
            // Drop the session; the next poll connects again.
            self.eventloop.clean();
            return Flow::Go;
        }
        self.state.send_replace(true);
        tracing::info!(endpoint = %self.endpoints[self.current], "the MQTT link is up");
        self.emit(LinkEvent::Connected, stop).await
    }

    /// Hands `event` to the agent, waiting for room; stops when the agent is gone or the
    /// link is told to stop meanwhile.
    async fn emit(&mut self, event: LinkEvent, stop: &mut oneshot::Receiver<()>) -> Flow {
        tokio::select! {
            biased;
            _ = stop => Flow::Stop,
            sent = self.inbound.send(event) => match sent {
                Ok(()) => Flow::Go,
                Err(_) => Flow::Stop,
            },
        }
    }

    /// The next advertised endpoint, for the next attempt.
    fn next_endpoint(&mut self) {
        if self.options.len() > 1 {
            self.current = (self.current + 1) % self.options.len();
            if let Some(options) = self.options.get(self.current) {
                self.eventloop.mqtt_options = options.clone();
            }
        }
    }

    /// Sends DISCONNECT and waits (briefly) for it to go out.
    async fn disconnect(&mut self) {
        if self.client.try_disconnect().is_err() {
            return;
        }
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
            loop {
                match self.eventloop.poll().await {
                    Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
    }
}

/// A connection error, for people.
fn reason(e: &ConnectionError, endpoint: &Endpoint) -> String {
    match e {
        ConnectionError::NetworkTimeout => {
            format!("no answer from {endpoint} within {CONNECT_TIMEOUT_SECS} s")
        }
        ConnectionError::ConnectionRefused(code) => {
            format!("{endpoint} refused the session: {code:?}")
        }
        other => format!("{endpoint}: {other}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
        let full: Vec<_> = (0..9).map(|_| b.next_delay(1.0)).collect();
        assert_eq!(full[0], Duration::from_millis(500));
        assert_eq!(full[1], Duration::from_secs(1));
        assert_eq!(full[5], Duration::from_secs(16));
        assert_eq!(full[6], BACKOFF_MAX);
        assert_eq!(full[8], BACKOFF_MAX);
        b.reset();
        assert_eq!(b.next_delay(0.5), Duration::from_millis(250));
        // Jitter outside the range is clamped.
        assert_eq!(b.next_delay(7.0), Duration::from_secs(1));
        assert_eq!(b.next_delay(-1.0), Duration::from_secs(1));
    }

    #[test]
    fn endpoints_parse_and_name_the_server() {
        let e = parse_endpoint("127.0.0.1:7883").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 7883));
        let e = parse_endpoint("[::1]:7883").unwrap();
        assert_eq!(e.host, "::1");
        assert_eq!(e.to_string(), "[::1]:7883");
        let e = parse_endpoint("cloud.example:8883").unwrap();
        assert_eq!(e.to_string(), "cloud.example:8883");
        for bad in [
            "cloud.example",
            ":7883",
            "::1:7883",
            "[::1:7883",
            "h:x",
            "h:70000",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn topics_name_the_node() {
        let node: NodeId = "7f0c4f7e-2d0b-4b7e-9c59-0c4f1d1e2a3b".parse().unwrap();
        assert_eq!(
            up_topic(node),
            "skerry/v1/nodes/7f0c4f7e-2d0b-4b7e-9c59-0c4f1d1e2a3b/up"
        );
        assert_eq!(
            down_topic(node),
            "skerry/v1/nodes/7f0c4f7e-2d0b-4b7e-9c59-0c4f1d1e2a3b/down"
        );
    }
}
