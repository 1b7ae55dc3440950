//! The API tokens' read model: what each token may do, folded from `api-token.created`
//! and `api-token.revoked`. Only secrets' hashes are here, as in the log.

use std::collections::BTreeMap;

use skerry_shared::access::Role;
use skerry_shared::clock::Timestamp;
use skerry_shared::hash::Digest;
use skerry_shared::ids::{Name, TokenId};

/// An API token as the log knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenState {
    pub id: TokenId,
    pub role: Role,
    /// The environments the token is limited to; empty: every environment.
    pub envs: Vec<Name>,
    pub secret_hash: Digest,
    pub expires: Option<Timestamp>,
    pub description: String,
    pub created: Timestamp,
    /// When it was revoked; a revoked token is kept, so that lists and the events still
    /// name it.
    pub revoked: Option<Timestamp>,
}

impl ApiTokenState {
    /// Whether the token is accepted at `now`: not revoked, not expired.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.revoked.is_none() && self.expires.is_none_or(|t| now < t)
    }
}

/// Every API token the log has created.
#[derive(Debug, Clone, Default)]
pub struct ApiTokens {
    by_id: BTreeMap<TokenId, ApiTokenState>,
}

impl ApiTokens {
    pub fn get(&self, id: &TokenId) -> Option<&ApiTokenState> {
        self.by_id.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &ApiTokenState> {
        self.by_id.values()
    }

    /// Tokens that are not revoked (expired ones too: they are still listed).
    pub fn unrevoked(&self) -> usize {
        self.by_id.values().filter(|t| t.revoked.is_none()).count()
    }

    /// A token put in directly, for unit tests of what reads the model.
    #[cfg(test)]
    pub fn insert_for_test(&mut self, token: ApiTokenState) {
        self.created(token);
    }

    pub(super) fn created(&mut self, token: ApiTokenState) {
        self.by_id.insert(token.id, token);
    }

    /// An environment renamed: the tokens limited to it are limited to the new name.
    pub(super) fn env_renamed(&mut self, from: &Name, to: &Name) {
        for t in self.by_id.values_mut() {
            for e in t.envs.iter_mut().filter(|e| *e == from) {
                *e = to.clone();
            }
        }
    }

    pub(super) fn revoked(&mut self, id: &TokenId, at: Timestamp) {
        if let Some(t) = self.by_id.get_mut(id) {
            t.revoked.get_or_insert(at);
        }
    }
}
