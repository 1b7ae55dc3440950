//! Whether a host port is free on this host now: nothing listens on it (a bind of
//! `0.0.0.0:PORT` works) and no container of the engine publishes it (with the engine's
//! userland proxy off, a published port has no listener to find).

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};

/// The host ports in use, as far as this agent can tell.
#[derive(Debug, Clone, Default)]
pub struct InUse {
    /// Ports the engine publishes (every container on it, any agent's).
    pub published: BTreeSet<u16>,
}

impl InUse {
    /// True when `port` is taken: published by the engine, or something listens on it.
    pub fn taken(&self, port: u16) -> bool {
        self.published.contains(&port) || !bindable(port)
    }
}

/// Whether a TCP listener can bind `0.0.0.0:port` now (the probe is closed at once).
pub fn bindable(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listened_port_is_taken_and_a_published_one_too() {
        let l = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        let in_use = InUse::default();
        assert!(in_use.taken(port));
        drop(l);
        assert!(!in_use.taken(port));
        let in_use = InUse {
            published: BTreeSet::from([port]),
        };
        assert!(in_use.taken(port));
    }
}
