//! The secrets' read model: each secret's latest version (its value sealed under the
//! cloud's secrets key, never in plain text), which version each node holds, and each
//! node's public key for secrets.

use std::collections::BTreeMap;

use skerry_shared::clock::Timestamp;
use skerry_shared::ids::{Name, NodeId};
use skerry_shared::secret::{NodeSecretsKey, SealedAtRest};

/// A secret as the log knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretState {
    pub name: Name,
    /// The environment it is limited to; `None`: every environment.
    pub env: Option<Name>,
    pub version: u64,
    pub sealed: SealedAtRest,
    pub created: Timestamp,
    pub updated: Timestamp,
    /// The version each node was sent.
    pub delivered: BTreeMap<NodeId, u64>,
}

/// Every secret, and the nodes' keys.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    by_name: BTreeMap<Name, SecretState>,
    node_keys: BTreeMap<NodeId, NodeSecretsKey>,
}

impl Secrets {
    pub fn get(&self, name: &str) -> Option<&SecretState> {
        self.by_name.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &SecretState> {
        self.by_name.values()
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The node's public key for secrets, if it sent one.
    pub fn node_key(&self, node: NodeId) -> Option<&NodeSecretsKey> {
        self.node_keys.get(&node)
    }

    pub(super) fn set(
        &mut self,
        name: &Name,
        env: &Option<Name>,
        version: u64,
        sealed: &SealedAtRest,
        at: Timestamp,
    ) {
        let s = self
            .by_name
            .entry(name.clone())
            .or_insert_with(|| SecretState {
                name: name.clone(),
                env: env.clone(),
                version,
                sealed: sealed.clone(),
                created: at,
                updated: at,
                delivered: BTreeMap::new(),
            });
        s.env = env.clone();
        s.version = version;
        s.sealed = sealed.clone();
        s.updated = at;
    }

    pub(super) fn deleted(&mut self, name: &Name) {
        self.by_name.remove(name);
    }

    pub(super) fn delivered(&mut self, name: &Name, version: u64, node: NodeId) {
        if let Some(s) = self.by_name.get_mut(name) {
            let v = s.delivered.entry(node).or_insert(version);
            *v = (*v).max(version);
        }
    }

    pub(super) fn key_registered(&mut self, node: NodeId, key: NodeSecretsKey) {
        self.node_keys.insert(node, key);
    }

    /// An environment renamed: the secrets limited to it are limited to the new name.
    pub(super) fn env_renamed(&mut self, from: &Name, to: &Name) {
        for s in self.by_name.values_mut() {
            if s.env.as_ref() == Some(from) {
                s.env = Some(to.clone());
            }
        }
    }

    /// A removed node gets no more copies, and a deletion is not addressed to it.
    pub(super) fn node_removed(&mut self, node: NodeId) {
        self.node_keys.remove(&node);
        for s in self.by_name.values_mut() {
            s.delivered.remove(&node);
        }
    }
}
