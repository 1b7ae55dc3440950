//! The node certificates' read model: every certificate the cloud issued to each node
//! (at enrollment, then each renewal), and those revoked by `node.removed`.
//!
//! A removed node's certificates stay revoked for good, and its id stays refused: the
//! sync layer refuses a session with either ([`Certificates::refuses`]) and the enrollment
//! handler refuses that node id again. Its name is free for a new node. Only SHA-256
//! digests of certificates are kept, as in the log.

use std::collections::{BTreeMap, BTreeSet};

use skerry_shared::clock::Timestamp;
use skerry_shared::hash::Digest;
use skerry_shared::ids::NodeId;

/// One node's certificate, as the log knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssuedCertificate {
    pub digest: Digest,
    /// When it stops being valid; `None` for a certificate recorded at enrollment, whose
    /// event does not carry it.
    pub expires: Option<Timestamp>,
}

/// Every node certificate issued, and those revoked.
#[derive(Debug, Clone, Default)]
pub struct Certificates {
    /// The certificates of each enrolled node, oldest first.
    issued: BTreeMap<NodeId, Vec<IssuedCertificate>>,
    /// Digests of the certificates of removed nodes.
    revoked: BTreeSet<Digest>,
    /// Removed nodes, with the time of their removal.
    removed: BTreeMap<NodeId, Timestamp>,
}

/// How many certificates are kept per node: the oldest are dropped beyond it (a renewal
/// every few seconds in a test must not grow the read model without bound). The node id
/// of a removed node is refused whatever its certificate, so a dropped digest is still
/// refused through it.
pub const MAX_CERTIFICATES_PER_NODE: usize = 16;

impl Certificates {
    /// A certificate was issued to `node` (enrollment or renewal).
    pub fn issued(&mut self, node: NodeId, digest: Digest, expires: Option<Timestamp>) {
        let all = self.issued.entry(node).or_default();
        all.push(IssuedCertificate { digest, expires });
        if all.len() > MAX_CERTIFICATES_PER_NODE {
            let extra = all.len() - MAX_CERTIFICATES_PER_NODE;
            all.drain(..extra);
        }
    }

    /// `node` was removed at `at`: every certificate it was issued is revoked.
    pub fn node_removed(&mut self, node: NodeId, at: Timestamp) {
        if let Some(all) = self.issued.remove(&node) {
            self.revoked.extend(all.iter().map(|c| c.digest));
        }
        self.removed.insert(node, at);
    }

    /// The latest certificate issued to `node`.
    pub fn current(&self, node: NodeId) -> Option<IssuedCertificate> {
        self.issued.get(&node).and_then(|all| all.last().copied())
    }

    /// When `node` was removed, if it was.
    pub fn removed(&self, node: NodeId) -> Option<Timestamp> {
        self.removed.get(&node).copied()
    }

    /// Whether the certificate `digest` was revoked.
    pub fn is_revoked(&self, digest: &Digest) -> bool {
        self.revoked.contains(digest)
    }

    /// Why a session of `node` with the certificate `digest` is refused, if it is: the
    /// node was removed, or the certificate revoked.
    pub fn refuses(&self, node: NodeId, digest: &Digest) -> Option<String> {
        if let Some(at) = self.removed(node) {
            return Some(format!(
                "node {node} was removed at {at}; its certificate is revoked"
            ));
        }
        if self.is_revoked(digest) {
            return Some(format!("the certificate {digest} is revoked"));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_node_stays_refused_and_its_certificates_revoked() {
        let mut c = Certificates::default();
        let (a, b) = (NodeId::random(), NodeId::random());
        let (d1, d2, d3) = (Digest::of(b"1"), Digest::of(b"2"), Digest::of(b"3"));
        c.issued(a, d1, None);
        c.issued(a, d2, Some(Timestamp(5)));
        c.issued(b, d3, None);
        assert_eq!(c.current(a).map(|x| x.digest), Some(d2));
        assert!(c.refuses(a, &d2).is_none() && c.refuses(a, &d1).is_none());
        c.node_removed(a, Timestamp(9));
        assert!(c.refuses(a, &d2).is_some());
        assert!(c.is_revoked(&d1) && c.is_revoked(&d2) && !c.is_revoked(&d3));
        // Another node presenting a revoked digest is refused too.
        assert!(c.refuses(b, &d1).is_some());
        assert!(c.refuses(b, &d3).is_none());
        assert_eq!(c.removed(a), Some(Timestamp(9)));
        assert!(c.current(a).is_none());
    }

    #[test]
    fn the_certificates_kept_per_node_are_bounded() {
        let mut c = Certificates::default();
        let a = NodeId::random();
        for i in 0..100u32 {
            c.issued(a, Digest::of(&i.to_be_bytes()), None);
        }
        assert_eq!(c.issued[&a].len(), MAX_CERTIFICATES_PER_NODE);
        assert_eq!(
            c.current(a).map(|x| x.digest),
            Some(Digest::of(&99u32.to_be_bytes()))
        );
    }
}
