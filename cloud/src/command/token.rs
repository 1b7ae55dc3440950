//! API tokens: creating one (its secret's hash, role, scope and lifetime) and revoking one.
//!
//! The caller's own rights are checked before this (`api::auth`: only `admin` reaches
//! these commands). What is checked here is the request itself: the environments exist,
//! the description and the scope are within their bounds, a lifetime is positive, and a
//! token limited to some environments cannot make one that sees more
//! ([`NewApiToken::within`]).

use skerry_shared::access::Role;
use skerry_shared::clock::Timestamp;
use skerry_shared::event::EventPayload;
use skerry_shared::hash::Digest;
use skerry_shared::ids::{MAX_LABELS, Name, TokenId, shown};

use super::checks::environment;
use super::outcome::{Pending, Refusal};
use crate::projections::Projections;

/// The longest description of an API token, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 1024;
/// The most environments one API token is limited to.
pub const MAX_TOKEN_ENVS: usize = MAX_LABELS;
/// The most API tokens the log keeps unrevoked at once.
pub const MAX_LIVE_TOKENS: usize = 10_000;

/// What a new API token is: its id and secret's hash (the secret itself stays with the
/// caller), its role, its scope, its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiToken {
    pub id: TokenId,
    pub secret_hash: Digest,
    pub role: Role,
    /// Raw environment names; empty: every environment.
    pub envs: Vec<String>,
    pub expires: Option<Timestamp>,
    pub description: String,
    /// The scope of the token that asks (`None`: every environment): the new token must
    /// see no more than it.
    pub within: Option<Vec<Name>>,
}

pub(super) fn create(
    p: &Projections,
    t: &NewApiToken,
    now: Timestamp,
) -> Result<Vec<Pending>, Refusal> {
    if t.envs.len() > MAX_TOKEN_ENVS {
        return Err(Refusal::invalid(
            "invalid_scope",
            "envs",
            format!(
                "{} environments; a token is limited to at most {MAX_TOKEN_ENVS}",
                t.envs.len()
            ),
        ));
    }
    let mut envs: Vec<Name> = Vec::with_capacity(t.envs.len());
    for (i, raw) in t.envs.iter().enumerate() {
        let env = environment(p, &format!("envs[{i}]"), raw)?;
        if !envs.contains(&env.name) {
            envs.push(env.name.clone());
        }
    }
    if let Some(within) = &t.within {
        let outside: Vec<&str> = envs
            .iter()
            .filter(|e| !within.contains(e))
            .map(Name::as_str)
            .collect();
        if envs.is_empty() || !outside.is_empty() {
            return Err(Refusal::forbidden(
                "forbidden",
                "envs",
                if envs.is_empty() {
                    "a token limited to some environments cannot create one for every \
                     environment: name them with --env"
                        .to_owned()
                } else {
                    format!(
                        "this token cannot create one for {}: it is outside its own environments",
                        outside.join(", ")
                    )
                },
            ));
        }
    }
    if t.description.len() > MAX_DESCRIPTION_BYTES {
        return Err(Refusal::invalid(
            "invalid_description",
            "description",
            format!(
                "{} bytes; at most {MAX_DESCRIPTION_BYTES} are accepted",
                t.description.len()
            ),
        ));
    }
    if t.description.chars().any(char::is_control) {
        return Err(Refusal::invalid(
            "invalid_description",
            "description",
            "the description holds a control character",
        ));
    }
    if t.expires.is_some_and(|e| e <= now) {
        return Err(Refusal::invalid(
            "invalid_ttl",
            "ttl",
            "the token's lifetime must be positive",
        ));
    }
    if p.api_tokens.get(&t.id).is_some() {
        return Err(Refusal::conflict(
            "token_exists",
            "id",
            format!("a token with id {} exists", t.id),
        ));
    }
    if p.api_tokens.unrevoked() >= MAX_LIVE_TOKENS {
        return Err(Refusal::conflict(
            "too_many_tokens",
            "",
            format!("{MAX_LIVE_TOKENS} API tokens are not revoked; revoke some first"),
        ));
    }
    Ok(vec![Pending::cloud_only(EventPayload::ApiTokenCreated {
        token: t.id,
        role: t.role,
        envs,
        secret_hash: t.secret_hash,
        expires: t.expires,
        description: t.description.clone(),
    })])
}

/// Revokes the token `raw` (its id). Revoking a revoked token changes nothing.
pub(super) fn revoke(
    p: &Projections,
    raw: &str,
    within: Option<&[Name]>,
) -> Result<Vec<Pending>, Refusal> {
    let unknown = || {
        Refusal::not_found(
            "unknown_token",
            "id",
            format!("no API token with id {}", shown(raw)),
        )
    };
    let id: TokenId = raw.parse().map_err(|_| unknown())?;
    let token = p.api_tokens.get(&id).ok_or_else(unknown)?;
    // A token limited to some environments sees only tokens within them.
    if let Some(within) = within
        && (token.envs.is_empty() || token.envs.iter().any(|e| !within.contains(e)))
    {
        return Err(unknown());
    }
    if token.revoked.is_some() {
        return Ok(Vec::new());
    }
    Ok(vec![Pending::cloud_only(EventPayload::ApiTokenRevoked {
        token: id,
    })])
}
