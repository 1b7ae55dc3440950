//! The seam between a transport and the sync layer: what a transport (the embedded MQTT
//! endpoint today, a NATS link later) hands over for one node, and the trait it opens
//! node sessions through.
//!
//! A transport authenticates the node (the MQTT endpoint: the node id in the client
//! certificate), then calls [`Sessions::open`] and carries encoded frames both ways
//! through the [`Connection`] it gets: what the node sent goes into [`Connection::up`],
//! what comes out of [`Connection::down`] goes to the node. Nothing here knows of topics,
//! packets or subjects; the transport does, and depends on this module, never the other
//! way round.

use bytes::Bytes;
use skerry_shared::clock::Timestamp;
use skerry_shared::hash::Digest;
use skerry_shared::ids::NodeId;
use tokio::sync::mpsc;

/// Hands authenticated node connections to the cloud's sync layer.
pub trait Sessions: Clone + Send + Sync + 'static {
    /// A node's session opened (for MQTT: CONNECT accepted). Err = refuse (for MQTT:
    /// CONNACK "not authorized") with the reason logged.
    ///
    /// Called on the transport's task for that connection: it should not block. A node may
    /// connect again while an older connection of it is open; replacing the older one
    /// (dropping its `down` sender) is the sync layer's call.
    fn open(&self, node: NodeId) -> Result<Connection, String>;

    /// [`Sessions::open`] for the client certificate `peer` presented: the sync layer
    /// refuses a revoked certificate (a removed node's) and asks for the renewal of one
    /// near its end. The default knows no certificates and opens by the node id alone.
    fn open_peer(&self, peer: &PeerCertificate) -> Result<Connection, String> {
        self.open(peer.node)
    }
}

/// What a transport read from the certificate a node connected with (verified against
/// the cloud's CA, and within its validity, by the transport's TLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCertificate {
    pub node: NodeId,
    /// SHA-256 of the certificate's DER.
    pub digest: Digest,
    /// Its validity, from `not_before` to `not_after`.
    pub not_before: Timestamp,
    pub not_after: Timestamp,
}

/// One node session's two directions, as the transport holds them: what the node published
/// (on MQTT, its `up` topic) goes into `up`; what arrives on `down` is published to it (on
/// MQTT, on its `down` topic). When the `down` sender is dropped (the session ended or was
/// replaced), the transport disconnects the client; when the transport drops `up`, the
/// session ends.
#[derive(Debug)]
pub struct Connection {
    /// Payloads the node publishes on its `up` topic, in order. Dropping it (the endpoint
    /// does when the connection ends) tells the sync layer the node went away. The endpoint
    /// waits for room in it, and reads nothing more from that client meanwhile.
    pub up: mpsc::Sender<Bytes>,
    /// Payloads to publish on the node's `down` topic. When it ends (the sync layer dropped
    /// the sender, e.g. a newer connection of the same node replaced this one), the
    /// endpoint disconnects the client. Payloads wait here until the node subscribes.
    pub down: mpsc::Receiver<Bytes>,
}
