//! Enrollment: the token format, and the request and answer of `POST /api/v1/enroll`.
//!
//! A token reads `skr1.<id>.<secret>.<ca>`: the token's id (32 hex digits), its secret
//! (64 hex digits) and the SHA-256 of the cloud's CA certificate in DER (64 hex digits).
//! The cloud keeps only the secret's hash; the agent trusts the CA whose certificate has
//! that hash, and no other.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::hash::Digest;
use crate::ids::{Name, NodeId, TokenId};
use crate::profile::FirmwareProfile;

const PREFIX: &str = "skr1";

/// A one-time enrollment token.
#[derive(Clone, PartialEq, Eq)]
pub struct EnrollmentToken {
    pub id: TokenId,
    pub secret: [u8; 32],
    /// SHA-256 of the cloud's CA certificate (DER).
    pub ca: Digest,
}

impl EnrollmentToken {
    /// The hash the cloud stores in place of the secret.
    pub fn secret_hash(&self) -> Digest {
        Digest::of(&self.secret)
    }
}

impl fmt::Debug for EnrollmentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The secret never reaches a log.
        f.debug_struct("EnrollmentToken")
            .field("id", &self.id)
            .field("ca", &self.ca)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for EnrollmentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX}.{}.{}.{}",
            self.id.0.simple(),
            hex::encode(self.secret),
            self.ca.to_hex()
        )
    }
}

/// Why a token does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed enrollment token: {0}")]
pub struct TokenFormatError(&'static str);

impl FromStr for EnrollmentToken {
    type Err = TokenFormatError;
    fn from_str(s: &str) -> Result<Self, TokenFormatError> {
        let mut parts = s.trim().split('.');
        if parts.next() != Some(PREFIX) {
            return Err(TokenFormatError("it does not start with skr1."));
        }
        let id = parts
            .next()
            .and_then(|p| uuid::Uuid::try_parse(p).ok())
            .ok_or(TokenFormatError("bad id"))?;
        let mut secret = [0u8; 32];
        parts
            .next()
            .and_then(|p| hex::decode_to_slice(p, &mut secret).ok())
            .ok_or(TokenFormatError("bad secret"))?;
        let ca = parts
            .next()
            .and_then(Digest::from_hex)
            .ok_or(TokenFormatError("bad CA hash"))?;
        if parts.next().is_some() {
            return Err(TokenFormatError("too many parts"));
        }
        Ok(Self {
            id: TokenId(id),
            secret,
            ca,
        })
    }
}

/// `POST /api/v1/enroll`: JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollRequest {
    pub token: String,
    /// A PKCS#10 certificate signing request, PEM.
    pub csr: String,
    pub name: Name,
    pub profile: FirmwareProfile,
    /// The node's X25519 public key for secrets, 64 hex digits; left out by agents
    /// without secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets_key: Option<String>,
}

/// The answer to an enrollment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub node_id: NodeId,
    pub name: Name,
    pub env: Name,
    /// The node's certificate, PEM; its subject common name and DNS name are the node id.
    pub certificate: String,
    /// The CA certificate, PEM.
    pub ca: String,
    /// The MQTT endpoints the agent may connect to (`host:port`, TLS).
    pub mqtt: Vec<String>,
    /// The NATS URLs, when the cloud runs on NATS.
    pub nats: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trip_and_debug_hides_secret() {
        let t = EnrollmentToken {
            id: TokenId::random(),
            secret: [7; 32],
            ca: Digest::of(b"ca"),
        };
        let s = t.to_string();
        assert_eq!(s.parse::<EnrollmentToken>().ok(), Some(t.clone()));
        assert!(!format!("{t:?}").contains(&hex::encode([7u8; 32])));
        assert!("skr2.x".parse::<EnrollmentToken>().is_err());
        assert!(format!("{s}.x").parse::<EnrollmentToken>().is_err());
    }
}
