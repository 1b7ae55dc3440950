//! Node removal, and the record of a node certificate renewed over its link.
//!
//! `node remove` records `node.removed` for the node, with a `node_seq` of its own so the
//! agent receives it: the agent stops and removes its apps and forgets its identity. The
//! projections drop the node from every instance's targets (an instance left on no node
//! stays deployed, on none, like after `node.left`: `status` shows it with no node, and a
//! redeploy places it again), revoke its certificates for good and free its name. A
//! removed node's id is never enrolled again.

use skerry_shared::clock::Timestamp;
use skerry_shared::event::EventPayload;
use skerry_shared::hash::Digest;
use skerry_shared::ids::NodeId;

use super::checks::node_ref;
use super::outcome::{Pending, Refusal};
use crate::projections::Projections;

/// `node remove NODE` (by name or id).
pub(super) fn remove(p: &Projections, node: &str) -> Result<Vec<Pending>, Refusal> {
    let n = node_ref(p, "node", node)?;
    Ok(vec![Pending {
        payload: EventPayload::NodeRemoved { node: n.id },
        audience: vec![n.id],
    }])
}

/// The sync layer signed a new certificate for `node` (its agent's CSR, over its link).
/// Concerns the cloud only: the agent gets the certificate in the link's answer.
pub(super) fn renewed(
    p: &Projections,
    node: NodeId,
    certificate: Digest,
    expires: Timestamp,
) -> Result<Vec<Pending>, Refusal> {
    super::checks::enrolled(p, node)?;
    Ok(vec![Pending::cloud_only(
        EventPayload::NodeCertificateRenewed {
            node,
            certificate,
            expires,
        },
    )])
}

/// Enrollment of a node id that was removed: refused, whatever the token.
pub(super) fn check_not_removed(p: &Projections, node: NodeId) -> Result<(), Refusal> {
    match p.certificates.removed(node) {
        Some(at) => Err(Refusal::forbidden(
            "node_removed",
            "node",
            format!("node {node} was removed at {at} and cannot enroll again"),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::command::{Command, handle};
    use skerry_shared::event::{Actor, Event, NodeSeq};

    fn enrolled(node: NodeId, name: &str) -> Projections {
        let mut p = Projections::default();
        let payload = EventPayload::NodeEnrolled {
            node,
            name: skerry_shared::ids::Name::parse(name).unwrap(),
            env: skerry_shared::ids::Name::parse("local").unwrap(),
            address: "127.0.0.1".into(),
            profile: Box::new(
                skerry_shared::profile::builtin(skerry_shared::profile::builtin_names()[0])
                    .unwrap(),
            ),
            token: skerry_shared::ids::TokenId::random(),
            certificate: Digest::of(b"cert"),
        };
        p.apply(&Event {
            seq: 1,
            time: Timestamp(1),
            actor: Actor::Cloud,
            payload,
            node_seqs: vec![NodeSeq { node, node_seq: 1 }],
            prev_hash: Digest::ZERO,
            hash: Digest::of(b"e1"),
        });
        p
    }

    #[test]
    fn removal_concerns_the_node_and_revokes_its_certificate() {
        let node = NodeId::random();
        let mut p = enrolled(node, "gw-1");
        let out = handle(
            &p,
            &Command::RemoveNode {
                node: "gw-1".into(),
            },
            Timestamp(2),
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].audience, vec![node]);
        p.apply(&Event {
            seq: 2,
            time: Timestamp(2),
            actor: Actor::Cloud,
            payload: out[0].payload.clone(),
            node_seqs: vec![NodeSeq { node, node_seq: 2 }],
            prev_hash: Digest::of(b"e1"),
            hash: Digest::of(b"e2"),
        });
        assert!(p.nodes.is_empty() && p.node_by_name("gw-1").is_none());
        assert!(p.certificates.refuses(node, &Digest::of(b"cert")).is_some());
        assert!(check_not_removed(&p, node).is_err());
        let again = handle(
            &p,
            &Command::RemoveNode {
                node: "gw-1".into(),
            },
            Timestamp(3),
        );
        assert!(again.is_err(), "a removed node is not found");
        assert!(renewed(&p, node, Digest::of(b"new"), Timestamp(9)).is_err());
    }
}
