//! A node's public key for secrets, sent over its link (`UpFrame::SecretsKey`, after its
//! `Hello` on every connect).
//!
//! A node enrolled before nodes had keys for secrets has none in the log, so no secret
//! could be sealed for it; its agent makes one at start and says it here. The rule, over
//! what the read model holds for the node ([`judge`], pure):
//! - no key yet: `node.secrets-key-registered` is recorded, as the node
//!   (`Actor::Node`); the secrets controller then delivers what the node's scope holds;
//! - the same key: nothing (the agent says it on every connect);
//! - another key: refused, counted ([`super::Hub::secrets_keys_refused`]) and logged,
//!   never recorded: a node's key changes only by enrolling it again;
//! - a key that cannot receive secrets (a low-order point, see
//!   `NodeSecretsKey::is_usable`): the frame is dropped and counted as a bad frame.
//!
//! The key is public: logging it or its hash is harmless, but only the node is named.

use skerry_shared::event::Actor;
use skerry_shared::ids::NodeId;
use skerry_shared::secret::NodeSecretsKey;

use super::live::Shared;
use crate::command::{Command, RefusalKind};
use crate::engine::EngineError;

/// What a key sent over the link is, given the node's registered one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Not a key that can receive secrets.
    Malformed,
    /// The node has this key already.
    Known,
    /// The node has another key.
    Changed,
    /// The node has none: record it.
    Register,
}

/// See the module docs.
pub(super) fn judge(registered: Option<&NodeSecretsKey>, key: &NodeSecretsKey) -> Verdict {
    if !key.is_usable() {
        return Verdict::Malformed;
    }
    match registered {
        None => Verdict::Register,
        Some(r) if r == key => Verdict::Known,
        Some(_) => Verdict::Changed,
    }
}

/// The key `node` sent: recorded, ignored, or refused (see the module docs).
pub(super) async fn received(hub: &Shared, node: NodeId, key: NodeSecretsKey) {
    let registered = hub.engine().read().secrets.node_key(node).copied();
    match judge(registered.as_ref(), &key) {
        Verdict::Known => {}
        Verdict::Malformed => {
            hub.dropped(node);
            tracing::warn!(%node, "dropped a secrets key that cannot receive secrets (a low-order point)");
        }
        Verdict::Changed => refused(hub, node),
        Verdict::Register => {
            let cmd = Command::RegisterNodeSecretsKey { node, key };
            match hub.engine().submit(Actor::Node(node), cmd).await {
                Ok(_) => {
                    tracing::info!(%node, "registered the node's key for secrets, sent over its link");
                }
                // Another session of the node registered a different key in between.
                Err(EngineError::Refused(r)) if r.kind == RefusalKind::Conflict => {
                    refused(hub, node);
                }
                Err(e) => {
                    // Not recorded: the agent says it again on its next connect.
                    tracing::warn!(%node, error = %e, "cannot record the node's key for secrets");
                }
            }
        }
    }
}

fn refused(hub: &Shared, node: NodeId) {
    hub.secrets_key_refused();
    tracing::warn!(
        %node,
        "refused a secrets key over the link: the node has another key registered (a node's key changes only by enrolling it again)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_keyless_node_gets_a_usable_key_registered() {
        let a = NodeSecretsKey(
            skerry_shared::secret::NodeSecretsPrivate::from_bytes([3; 32])
                .public()
                .0,
        );
        let b = NodeSecretsKey(
            skerry_shared::secret::NodeSecretsPrivate::from_bytes([4; 32])
                .public()
                .0,
        );
        assert_eq!(judge(None, &a), Verdict::Register);
        assert_eq!(judge(Some(&a), &a), Verdict::Known);
        assert_eq!(judge(Some(&a), &b), Verdict::Changed);
        // The identity and a point of order 8: no sealing for them is secret.
        assert_eq!(judge(None, &NodeSecretsKey([0; 32])), Verdict::Malformed);
        let mut one = [0; 32];
        one[0] = 1;
        assert_eq!(judge(None, &NodeSecretsKey(one)), Verdict::Malformed);
        assert_eq!(
            judge(Some(&a), &NodeSecretsKey([0; 32])),
            Verdict::Malformed
        );
    }
}
