//! API access: roles, and the API token's format.
//!
//! An API token reads `ska1.<id>.<secret>`: the token's id (32 hex digits) and its secret
//! (64 hex digits). The cloud keeps only the secret's SHA-256, in the command log
//! ([`crate::event::EventPayload::ApiTokenCreated`]); the id is what lists, revocations
//! and the events' actors name. The secret never reaches a log: [`ApiToken`]'s `Debug`
//! leaves it out.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::hash::Digest;
use crate::ids::TokenId;

const PREFIX: &str = "ska1";

/// The longest text [`ApiToken::from_str`] looks at: a token is 102 bytes, and anything
/// much longer is refused before it is split.
pub const MAX_TOKEN_BYTES: usize = 256;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Read only.
    Viewer,
    /// Publish, deploy, upgrade, rollback, undeploy, node labels, enrollment tokens.
    Operator,
    /// Everything.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Operator, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }

    /// Whether this role includes every right of `other` (admin > operator > viewer).
    pub fn includes(self, other: Role) -> bool {
        self >= other
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `role` is not one of the three.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}; the roles are admin, operator and viewer")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, UnknownRole> {
        match s {
            "admin" => Ok(Role::Admin),
            "operator" => Ok(Role::Operator),
            "viewer" => Ok(Role::Viewer),
            other => Err(UnknownRole(crate::ids::shown(other))),
        }
    }
}

/// An API token: its id and its secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: TokenId,
    pub secret: [u8; 32],
}

impl ApiToken {
    /// The hash the cloud stores in place of the secret.
    pub fn secret_hash(&self) -> Digest {
        Digest::of(&self.secret)
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The secret never reaches a log.
        f.debug_struct("ApiToken")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX}.{}.{}",
            self.id.0.simple(),
            hex::encode(self.secret)
        )
    }
}

/// Why a token does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed API token: {0}")]
pub struct ApiTokenFormatError(&'static str);

impl FromStr for ApiToken {
    type Err = ApiTokenFormatError;
    fn from_str(s: &str) -> Result<Self, ApiTokenFormatError> {
        if s.len() > MAX_TOKEN_BYTES {
            return Err(ApiTokenFormatError("it is too long"));
        }
        let mut parts = s.trim().split('.');
        if parts.next() != Some(PREFIX) {
            return Err(ApiTokenFormatError("it does not start with ska1."));
        }
        let id = parts
            .next()
            .filter(|p| p.len() == 32)
            .and_then(|p| uuid::Uuid::try_parse(p).ok())
            .ok_or(ApiTokenFormatError("bad id"))?;
        let mut secret = [0u8; 32];
        parts
            .next()
            .and_then(|p| hex::decode_to_slice(p, &mut secret).ok())
            .ok_or(ApiTokenFormatError("bad secret"))?;
        if parts.next().is_some() {
            return Err(ApiTokenFormatError("too many parts"));
        }
        Ok(ApiToken {
            id: TokenId(id),
            secret,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    fn token() -> ApiToken {
        ApiToken {
            id: TokenId(uuid::Uuid::from_u128(0xabc)),
            secret: [7; 32],
        }
    }

    #[test]
    fn a_token_reads_back_as_it_was_written() {
        let t = token();
        let text = t.to_string();
        assert!(text.starts_with("ska1."));
        assert_eq!(text.len(), 4 + 1 + 32 + 1 + 64);
        assert_eq!(text.parse::<ApiToken>().unwrap(), t);
    }

    #[test]
    fn debug_leaves_the_secret_out() {
        let shown = format!("{:?}", token());
        assert!(!shown.contains(&hex::encode([7u8; 32])), "{shown}");
    }

    #[test]
    fn roles_are_ordered_by_what_they_may_do() {
        assert!(Role::Admin.includes(Role::Operator));
        assert!(Role::Operator.includes(Role::Viewer));
        assert!(!Role::Viewer.includes(Role::Operator));
        assert!(!Role::Operator.includes(Role::Admin));
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn an_enrollment_token_is_not_an_api_token() {
        let enrollment = format!(
            "skr1.{}.{}.{}",
            "a".repeat(32),
            "b".repeat(64),
            "c".repeat(64)
        );
        assert!(enrollment.parse::<ApiToken>().is_err());
    }

    proptest! {
        #[test]
        fn any_text_parses_or_is_refused_without_panic(s in ".{0,300}") {
            let _ = s.parse::<ApiToken>();
        }

        #[test]
        fn a_changed_token_does_not_read_as_the_same(
            id in any::<u128>(),
            secret in any::<[u8; 32]>(),
            at in 0usize..102,
            by in 1u8..=255,
        ) {
            let t = ApiToken { id: TokenId(uuid::Uuid::from_u128(id)), secret };
            let mut bytes = t.to_string().into_bytes();
            bytes[at] = bytes[at].wrapping_add(by);
            if let Ok(text) = String::from_utf8(bytes) {
                // Hex is case-insensitive: an upper-case digit reads as the same token.
                if text.to_ascii_lowercase() != t.to_string() {
                    prop_assert_ne!(text.parse::<ApiToken>().ok(), Some(t));
                }
            }
        }
    }
}
