//! The agent's link to the cloud, behind a seam: a [`Connector`] starts a [`Link`] for the
//! node's identity, and the agent speaks to the cloud through it without knowing the
//! transport.
//!
//! - **connect**: [`Connector::connect`] starts the link (it connects, and reconnects, by
//!   itself) and hands back the [`Link`];
//! - **receive down**: the link sends [`LinkEvent`]s on the bounded channel given to
//!   `connect`: `Connected` after every session opened (the agent then says hello),
//!   `Down` with each frame from the cloud, unchanged, and `Disconnected` once per outage;
//!   when the channel's receiver is dropped, the link stops;
//! - **send up**: [`Link::send_up`] queues one frame on the open session, and fails at once
//!   with [`LinkError::NotConnected`] while there is none (the agent keeps what it had to
//!   say for the next session: delivery is the sync protocol's, by acknowledgement);
//! - **close**: [`Link::close`] ends the session cleanly and stops the link.
//! - **new credentials**: [`Link::renewed`] ends the open session and connects again with
//!   the identity given (a renewed certificate); [`Link::forget`] ends the session and never
//!   connects again (the node was removed and forgot its identity).
//!
//! Transports: [`mqtt`] (rumqttc over TLS with the node's certificate;
//! [`mqtt::MqttLink`] is its connector). A NATS link goes beside it, as `nats.rs`, chosen
//! by the endpoints the cloud advertised at enrollment.
//!
//! The transport modules use this one; this one names none of them.

pub mod mqtt;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use skerry_shared::frame::MAX_FRAME_BYTES;
use skerry_shared::profile::FirmwareProfile;
use tokio::sync::mpsc;

use crate::identity::{Identity, IdentityError};

/// The bounds of the request queue and the event channel's default.
const MIN_CAPACITY: usize = 16;
const MAX_CAPACITY: usize = 1024;

/// A boxed future, so that [`Link`] stays object safe without a macro crate.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A running link to the cloud; see the module docs.
pub trait Link: Send + Sync + std::fmt::Debug {
    /// Whether a session is open now.
    fn is_connected(&self) -> bool;

    /// Sends `frame` (one encoded up frame) on the open session. Fails at once with
    /// [`LinkError::NotConnected`] while the link is down, and when it goes down while the
    /// frame waits for room; [`LinkError::TooLarge`] over the wire's limit.
    fn send_up(&self, frame: Bytes) -> BoxFuture<'_, Result<(), LinkError>>;

    /// Ends the session cleanly (if one is open) and stops the link.
    fn close(self: Box<Self>) -> BoxFuture<'static, ()>;

    /// Connects again, at once, with `identity`'s credentials (a renewed certificate), and
    /// with them from then on. The agent hears `Disconnected`, then `Connected`.
    fn renewed(&self, identity: &Identity) -> Result<(), LinkError>;

    /// Ends the session and never connects again: the credentials it holds are no longer
    /// the node's. [`Link::close`] still ends the link.
    fn forget(&self);
}

/// Starts a [`Link`] of one transport.
pub trait Connector: Send + Sync + std::fmt::Debug {
    /// Starts the link for `identity` on the current tokio runtime; its events arrive on
    /// `events`.
    fn connect(
        &self,
        identity: &Identity,
        options: LinkOptions,
        events: mpsc::Sender<LinkEvent>,
    ) -> Result<Box<dyn Link>, LinkError>;
}

/// What the link tells the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// A session is open and the node's `down` topic is asked for: time to say hello.
    Connected,
    /// The link went down (or could not come up); sent once per outage, with the reason.
    Disconnected(String),
    /// A message on the node's `down` topic: one frame, as it came.
    Down(Bytes),
}

/// Why the link cannot start or a frame cannot go up.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The enrollment answer named no MQTT endpoint (the cloud runs on NATS).
    #[error(
        "the cloud advertised no MQTT endpoint{}; this agent links over MQTT only",
        if .nats.is_empty() { String::new() } else { format!(" (it advertised NATS: {})", .nats.join(", ")) }
    )]
    NoEndpoint { nats: Vec<String> },
    /// An endpoint that is not `host:port`.
    #[error("\"{endpoint}\" is not an MQTT endpoint like host:port: {reason}")]
    BadEndpoint { endpoint: String, reason: String },
    /// The node's credentials do not make a TLS configuration.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The link is down: keep the frame for the next connection.
    #[error("the link to the cloud is down")]
    NotConnected,
    /// A frame over the wire's limit.
    #[error("an up frame of {size} bytes is over the {MAX_FRAME_BYTES}-byte limit")]
    TooLarge { size: usize },
    /// The link was shut down.
    #[error("the link has stopped")]
    Stopped,
}

/// The link's tuning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkOptions {
    /// The keep-alive; at least [`mqtt::MIN_KEEPALIVE`] on MQTT.
    pub keepalive: Duration,
    /// The capacity of the request queue (frames waiting to go up).
    pub capacity: usize,
}

impl LinkOptions {
    /// Keep-alive from the profile's heartbeat, queue from its event batch.
    pub fn from_profile(profile: &FirmwareProfile) -> LinkOptions {
        let batch = usize::try_from(profile.agent.event_batch).unwrap_or(MAX_CAPACITY);
        LinkOptions {
            keepalive: profile.agent.heartbeat.as_std(),
            capacity: batch.clamp(MIN_CAPACITY, MAX_CAPACITY),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn options_come_from_the_profile() {
        let profile =
            skerry_shared::profile::builtin(skerry_shared::profile::builtin_names()[0]).unwrap();
        let o = LinkOptions::from_profile(&profile);
        assert_eq!(o.keepalive, profile.agent.heartbeat.as_std());
        assert!((MIN_CAPACITY..=MAX_CAPACITY).contains(&o.capacity));
    }
}
