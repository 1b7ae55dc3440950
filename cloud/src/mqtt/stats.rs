//! The endpoint's counters, for tests and logs.

use std::sync::atomic::{AtomicU64, Ordering};

/// What the endpoint has counted since it was bound. Every counter only grows, except
/// [`EndpointStats::sessions_active`].
#[derive(Debug, Default)]
pub struct EndpointStats {
    handshakes_refused: AtomicU64,
    sessions_opened: AtomicU64,
    sessions_refused: AtomicU64,
    sessions_active: AtomicU64,
    packets_refused: AtomicU64,
    malformed_packets: AtomicU64,
    protocol_errors: AtomicU64,
    keep_alive_expired: AtomicU64,
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl EndpointStats {
    /// Connections that never got to MQTT: TLS refused (no client certificate, one from
    /// another CA, not TLS at all), no handshake within the deadline, or a verified
    /// certificate that names no node.
    pub fn handshakes_refused(&self) -> u64 {
        get(&self.handshakes_refused)
    }

    /// CONNECTs accepted: sessions handed to the sync layer.
    pub fn sessions_opened(&self) -> u64 {
        get(&self.sessions_opened)
    }

    /// CONNECTs answered "not authorized" because the sync layer refused the node.
    pub fn sessions_refused(&self) -> u64 {
        get(&self.sessions_refused)
    }

    /// Sessions open now.
    pub fn sessions_active(&self) -> u64 {
        get(&self.sessions_active)
    }

    /// Subscriptions denied and publishes refused (a topic that is not the node's own).
    pub fn packets_refused(&self) -> u64 {
        get(&self.packets_refused)
    }

    /// Packets that did not decode, or were over the size limit.
    pub fn malformed_packets(&self) -> u64 {
        get(&self.malformed_packets)
    }

    /// Packets that decoded but broke the protocol: no CONNECT first, a second CONNECT, a
    /// packet only a server sends, another protocol version.
    pub fn protocol_errors(&self) -> u64 {
        get(&self.protocol_errors)
    }

    /// Sessions closed because the client was silent for 1.5 times its keep-alive.
    pub fn keep_alive_expired(&self) -> u64 {
        get(&self.keep_alive_expired)
    }

    pub(crate) fn handshake_refused(&self) {
        bump(&self.handshakes_refused);
    }

    pub(crate) fn session_refused(&self) {
        bump(&self.sessions_refused);
    }

    pub(crate) fn packet_refused(&self) {
        bump(&self.packets_refused);
    }

    pub(crate) fn malformed(&self) {
        bump(&self.malformed_packets);
    }

    pub(crate) fn protocol_error(&self) {
        bump(&self.protocol_errors);
    }

    pub(crate) fn keep_alive_expiry(&self) {
        bump(&self.keep_alive_expired);
    }

    /// Counts a session opened; it stays active until the guard drops.
    pub(crate) fn session_opened(&self) -> ActiveSession<'_> {
        bump(&self.sessions_opened);
        bump(&self.sessions_active);
        ActiveSession(self)
    }
}

/// One open session in [`EndpointStats::sessions_active`].
#[derive(Debug)]
pub(crate) struct ActiveSession<'a>(&'a EndpointStats);

impl Drop for ActiveSession<'_> {
    fn drop(&mut self) {
        self.0.sessions_active.fetch_sub(1, Ordering::Relaxed);
    }
}
