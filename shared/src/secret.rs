//! Secrets' crypto formats: a value sealed for the cloud's own key (at rest in the log) and
//! sealed for one node's key (delivered to it), with the names and bounds both sides check.
//!
//! Pure: the caller brings the randomness (an ephemeral key's 32 bytes, a nonce), so the
//! same code runs in the cloud, in the agent and in unit tests.
//!
//! - **At rest** ([`seal_at_rest`], [`open_at_rest`]): ChaCha20-Poly1305 under the cloud's
//!   32-byte secrets key (`secrets.key` in its keys directory), a random 96-bit nonce, and
//!   the secret's name and version as associated data, so a sealed value cannot be moved
//!   to another name or version.
//! - **For a node** ([`seal_for_node`], [`open_for_node`]): an ephemeral X25519 key agrees
//!   with the node's static X25519 key; HKDF-SHA256 (salt: both public keys) turns the
//!   shared secret into a ChaCha20-Poly1305 key used once (so its nonce is zero); the
//!   associated data names the secret, its version and the node, so a node's copy opens
//!   only on that node and only as that secret. Only the node holds the private half.
//!
//! A [`SecretValue`] never prints: its `Debug` says how many bytes it holds and nothing else.

use std::fmt;

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf;
use serde::{Deserialize, Serialize};
use x25519_dalek::{PublicKey, StaticSecret, X25519_BASEPOINT_BYTES, x25519};
use zeroize::Zeroizing;

use crate::ids::{Name, NodeId};

/// The largest secret value accepted, in bytes (64 KiB).
pub const MAX_SECRET_BYTES: usize = 64 * 1024;
/// The most secrets the cloud keeps at once.
pub const MAX_SECRETS: usize = 1_000;
/// The length of a sealed value's authentication tag.
pub const TAG_BYTES: usize = 16;

const AT_REST_CONTEXT: &[u8] = b"skerry secret at rest v1\0";
const FOR_NODE_CONTEXT: &[u8] = b"skerry secret for node v1\0";
const HKDF_INFO: &[u8] = b"skerry secret seal v1";

/// A secret's plain value. Wiped from memory when dropped; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Zeroizing<Vec<u8>>);

impl SecretValue {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretValue({} bytes, redacted)", self.0.len())
    }
}

/// A node's X25519 public key for secrets, sent at enrollment.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeSecretsKey(pub [u8; 32]);

impl NodeSecretsKey {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Self(out))
    }

    /// Whether secrets can be sealed for this key: every 32 bytes name a point, but a
    /// low-order one (the identity, say) gives every sealing a shared secret known in
    /// advance, and [`seal_for_node`] refuses it. A clamped scalar is a multiple of 8, so
    /// its product with a low-order point is the identity (all zero bytes).
    pub fn is_usable(&self) -> bool {
        x25519([1; 32], self.0) != [0; 32]
    }
}

impl fmt::Debug for NodeSecretsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeSecretsKey({})", self.to_hex())
    }
}

/// A node's private X25519 key for secrets. Never printed.
#[derive(Clone)]
pub struct NodeSecretsPrivate(StaticSecret);

impl NodeSecretsPrivate {
    /// The key from 32 random bytes (clamped as X25519 requires).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(StaticSecret::from(bytes))
    }

    /// The 32 bytes to store (mode 0600).
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    pub fn public(&self) -> NodeSecretsKey {
        NodeSecretsKey(public_of(&self.0))
    }
}

impl fmt::Debug for NodeSecretsPrivate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeSecretsPrivate({:?}, redacted)", self.public())
    }
}

/// A value sealed under the cloud's secrets key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedAtRest {
    pub nonce: [u8; NONCE_LEN],
    /// The ciphertext with its tag.
    pub ciphertext: Vec<u8>,
}

/// A value sealed for one node's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedForNode {
    /// The ephemeral X25519 public key of this sealing.
    pub ephemeral: [u8; 32],
    /// The ciphertext with its tag.
    pub ciphertext: Vec<u8>,
}

/// Why a seal or an open failed. Says nothing of the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretCryptoError {
    #[error("the sealed value does not open with this key (wrong key, or it was altered)")]
    Open,
    #[error("the key agreement gave a weak shared secret (a low-order public key)")]
    WeakKey,
    #[error("the value is {0} bytes; at most {MAX_SECRET_BYTES} are accepted")]
    TooLarge(usize),
    #[error("the crypto library refused the operation")]
    Crypto,
}

/// The public key of `secret`, by the Montgomery ladder on the base point: the same value as
/// `PublicKey::from`, without the Edwards-curve code that one pulls in (which would cost the
/// agent's binary more than the ladder it uses anyway).
fn public_of(secret: &StaticSecret) -> [u8; 32] {
    x25519(
        *zeroize::Zeroizing::new(secret.to_bytes()),
        X25519_BASEPOINT_BYTES,
    )
}

fn aad(context: &[u8], name: &Name, version: u64, node: Option<NodeId>) -> Vec<u8> {
    let mut out = Vec::with_capacity(context.len() + name.as_str().len() + 32);
    out.extend_from_slice(context);
    out.extend_from_slice(name.as_str().as_bytes());
    out.push(0);
    out.extend_from_slice(&version.to_be_bytes());
    if let Some(node) = node {
        out.extend_from_slice(node.0.as_bytes());
    }
    out
}

fn aead_key(bytes: &[u8; 32]) -> Result<LessSafeKey, SecretCryptoError> {
    UnboundKey::new(&CHACHA20_POLY1305, bytes)
        .map(LessSafeKey::new)
        .map_err(|_| SecretCryptoError::Crypto)
}

fn seal(
    key: &LessSafeKey,
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    value: &SecretValue,
) -> Result<Vec<u8>, SecretCryptoError> {
    if value.len() > MAX_SECRET_BYTES {
        return Err(SecretCryptoError::TooLarge(value.len()));
    }
    let mut buf = value.as_bytes().to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut buf,
    )
    .map_err(|_| SecretCryptoError::Crypto)?;
    Ok(buf)
}

fn open(
    key: &LessSafeKey,
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<SecretValue, SecretCryptoError> {
    if ciphertext.len() > MAX_SECRET_BYTES + TAG_BYTES {
        return Err(SecretCryptoError::TooLarge(ciphertext.len()));
    }
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    let plain = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut buf,
        )
        .map_err(|_| SecretCryptoError::Open)?;
    Ok(SecretValue::new(plain.to_vec()))
}

/// Seals `value` (secret `name`, version `version`) under the cloud's key, with a nonce the
/// caller drew at random.
pub fn seal_at_rest(
    key: &[u8; 32],
    nonce: [u8; NONCE_LEN],
    name: &Name,
    version: u64,
    value: &SecretValue,
) -> Result<SealedAtRest, SecretCryptoError> {
    let ciphertext = seal(
        &aead_key(key)?,
        nonce,
        &aad(AT_REST_CONTEXT, name, version, None),
        value,
    )?;
    Ok(SealedAtRest { nonce, ciphertext })
}

/// Opens what [`seal_at_rest`] sealed.
pub fn open_at_rest(
    key: &[u8; 32],
    name: &Name,
    version: u64,
    sealed: &SealedAtRest,
) -> Result<SecretValue, SecretCryptoError> {
    open(
        &aead_key(key)?,
        sealed.nonce,
        &aad(AT_REST_CONTEXT, name, version, None),
        &sealed.ciphertext,
    )
}

fn node_key(
    shared: &[u8; 32],
    ephemeral: &[u8; 32],
    recipient: &NodeSecretsKey,
) -> Result<LessSafeKey, SecretCryptoError> {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(ephemeral);
    salt[32..].copy_from_slice(&recipient.0);
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &salt).extract(shared);
    let mut key = Zeroizing::new([0u8; 32]);
    prk.expand(&[HKDF_INFO], hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(key.as_mut()))
        .map_err(|_| SecretCryptoError::Crypto)?;
    aead_key(&key)
}

/// Seals `value` for `node`, whose public key is `recipient`; `ephemeral` is 32 random bytes
/// the caller drew for this sealing alone.
pub fn seal_for_node(
    recipient: &NodeSecretsKey,
    ephemeral: [u8; 32],
    name: &Name,
    version: u64,
    node: NodeId,
    value: &SecretValue,
) -> Result<SealedForNode, SecretCryptoError> {
    let secret = StaticSecret::from(ephemeral);
    let ephemeral_public = public_of(&secret);
    let shared = secret.diffie_hellman(&PublicKey::from(recipient.0));
    if !shared.was_contributory() {
        return Err(SecretCryptoError::WeakKey);
    }
    let key = node_key(shared.as_bytes(), &ephemeral_public, recipient)?;
    let ciphertext = seal(
        &key,
        [0; NONCE_LEN],
        &aad(FOR_NODE_CONTEXT, name, version, Some(node)),
        value,
    )?;
    Ok(SealedForNode {
        ephemeral: ephemeral_public,
        ciphertext,
    })
}

/// Opens, on `node` with its private key, what [`seal_for_node`] sealed for it.
pub fn open_for_node(
    private: &NodeSecretsPrivate,
    name: &Name,
    version: u64,
    node: NodeId,
    sealed: &SealedForNode,
) -> Result<SecretValue, SecretCryptoError> {
    let shared = private.0.diffie_hellman(&PublicKey::from(sealed.ephemeral));
    if !shared.was_contributory() {
        return Err(SecretCryptoError::WeakKey);
    }
    let key = node_key(shared.as_bytes(), &sealed.ephemeral, &private.public())?;
    open(
        &key,
        [0; NONCE_LEN],
        &aad(FOR_NODE_CONTEXT, name, version, Some(node)),
        &sealed.ciphertext,
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn name(s: &str) -> Name {
        Name::parse(s).unwrap()
    }

    #[test]
    fn at_rest_round_trips_and_binds_name_and_version() {
        let key = [7u8; 32];
        let value = SecretValue::new(b"hunter2".to_vec());
        let sealed = seal_at_rest(&key, [1; 12], &name("db"), 3, &value).unwrap();
        assert!(!sealed.ciphertext.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(open_at_rest(&key, &name("db"), 3, &sealed).unwrap(), value);
        assert_eq!(
            open_at_rest(&key, &name("db"), 4, &sealed),
            Err(SecretCryptoError::Open)
        );
        assert_eq!(
            open_at_rest(&key, &name("other"), 3, &sealed),
            Err(SecretCryptoError::Open)
        );
        assert_eq!(
            open_at_rest(&[8u8; 32], &name("db"), 3, &sealed),
            Err(SecretCryptoError::Open)
        );
        let mut altered = sealed.clone();
        altered.ciphertext[0] ^= 1;
        assert_eq!(
            open_at_rest(&key, &name("db"), 3, &altered),
            Err(SecretCryptoError::Open)
        );
    }

    #[test]
    fn for_node_opens_only_on_that_node_with_its_key() {
        let private = NodeSecretsPrivate::from_bytes([9u8; 32]);
        let public = private.public();
        let (node, other) = (NodeId::random(), NodeId::random());
        let value = SecretValue::new(vec![0, 1, 2, 255]);
        let sealed = seal_for_node(&public, [3u8; 32], &name("tls"), 1, node, &value).unwrap();
        assert_eq!(
            open_for_node(&private, &name("tls"), 1, node, &sealed).unwrap(),
            value
        );
        // Another node, another version, another name, another key: nothing opens.
        for (n, v, id) in [("tls", 1, other), ("tls", 2, node), ("db", 1, node)] {
            assert_eq!(
                open_for_node(&private, &name(n), v, id, &sealed),
                Err(SecretCryptoError::Open)
            );
        }
        let stranger = NodeSecretsPrivate::from_bytes([10u8; 32]);
        assert_eq!(
            open_for_node(&stranger, &name("tls"), 1, node, &sealed),
            Err(SecretCryptoError::Open)
        );
        // Two sealings of the same value differ (a fresh ephemeral key each).
        let again = seal_for_node(&public, [4u8; 32], &name("tls"), 1, node, &value).unwrap();
        assert_ne!(again.ciphertext, sealed.ciphertext);
    }

    #[test]
    fn a_low_order_key_and_an_oversized_value_are_refused() {
        let zero = NodeSecretsKey([0u8; 32]);
        let value = SecretValue::new(b"x".to_vec());
        assert_eq!(
            seal_for_node(&zero, [3u8; 32], &name("a"), 1, NodeId::random(), &value),
            Err(SecretCryptoError::WeakKey)
        );
        let big = SecretValue::new(vec![0; MAX_SECRET_BYTES + 1]);
        assert_eq!(
            seal_at_rest(&[1; 32], [0; 12], &name("a"), 1, &big),
            Err(SecretCryptoError::TooLarge(MAX_SECRET_BYTES + 1))
        );
    }

    #[test]
    fn the_ladder_gives_the_public_key_the_library_does() {
        for seed in [[0u8; 32], [9u8; 32], [255u8; 32]] {
            let secret = StaticSecret::from(seed);
            assert_eq!(public_of(&secret), PublicKey::from(&secret).to_bytes());
        }
    }

    #[test]
    fn debug_never_shows_a_value_or_a_private_key() {
        let value = SecretValue::new(b"hunter2".to_vec());
        assert_eq!(format!("{value:?}"), "SecretValue(7 bytes, redacted)");
        let private = NodeSecretsPrivate::from_bytes([9u8; 32]);
        let shown = format!("{private:?}");
        assert!(!shown.contains(&hex::encode(private.to_bytes().as_ref())));
    }
}
