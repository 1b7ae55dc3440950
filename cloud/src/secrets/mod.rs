//! The cloud's side of secrets: its secrets key (`secrets.key` in the keys directory,
//! 32 random bytes, mode 0600, made at first start) and the sealing done with it.
//!
//! A value arrives in plain text only in the body of `PUT /api/v1/secrets/{name}`; it is
//! sealed at once, under this key for the log ([`SecretsKey::seal_at_rest`]) and for each
//! node's own key ([`SecretsKey::seal_for`]), and dropped (wiped) after. The log, the
//! projections, the events and every frame to a node hold only ciphertext. The key itself
//! never reaches the log or any log line ([`SecretsKey`]'s `Debug` is redacted).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use skerry_shared::ids::{Name, NodeId};
use skerry_shared::secret::{
    NodeSecretsKey, SealedAtRest, SealedForNode, SecretCryptoError, SecretValue, open_at_rest,
    seal_at_rest, seal_for_node,
};
use zeroize::Zeroizing;

/// The key file's name in the keys directory.
pub const KEY_FILE: &str = "secrets.key";

/// Why the secrets key cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum SecretsKeyError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: not a 32-byte secrets key ({len} bytes)")]
    Malformed { path: PathBuf, len: usize },
}

/// The cloud's secrets key.
pub struct SecretsKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretsKey(redacted)")
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rand::fill(&mut out);
    out
}

impl SecretsKey {
    /// A key held in memory only (tests).
    pub fn generate() -> Self {
        Self(Zeroizing::new(random()))
    }

    /// The key in `dir/secrets.key`, made (mode 0600) when missing. A key file readable by
    /// others is set to 0600, with a warning.
    pub fn load_or_create(dir: &Path) -> Result<Self, SecretsKeyError> {
        let path = dir.join(KEY_FILE);
        let io_err = |source| SecretsKeyError::Io {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(dir).map_err(io_err)?;
        match fs::read(&path) {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                let raw: [u8; 32] =
                    bytes
                        .as_slice()
                        .try_into()
                        .map_err(|_| SecretsKeyError::Malformed {
                            path: path.clone(),
                            len: bytes.len(),
                        })?;
                let mode = fs::metadata(&path).map_err(io_err)?.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "the secrets key is readable by others; setting mode 0600");
                    fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
                        .map_err(io_err)?;
                }
                Ok(Self(Zeroizing::new(raw)))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let key = Self::generate();
                let tmp = dir.join(".secrets.key.tmp");
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&tmp)
                    .map_err(io_err)?;
                f.write_all(key.0.as_ref()).map_err(io_err)?;
                f.sync_all().map_err(io_err)?;
                fs::rename(&tmp, &path).map_err(io_err)?;
                tracing::info!(path = %path.display(), "created the secrets key");
                Ok(key)
            }
            Err(e) => Err(io_err(e)),
        }
    }

    /// `value` sealed for the log.
    pub fn seal_at_rest(
        &self,
        name: &Name,
        version: u64,
        value: &SecretValue,
    ) -> Result<SealedAtRest, SecretCryptoError> {
        seal_at_rest(&self.0, random(), name, version, value)
    }

    /// The value of a sealed version.
    pub fn open(
        &self,
        name: &Name,
        version: u64,
        sealed: &SealedAtRest,
    ) -> Result<SecretValue, SecretCryptoError> {
        open_at_rest(&self.0, name, version, sealed)
    }

    /// `value` sealed for `node`, whose key is `key`.
    pub fn seal_for(
        &self,
        key: &NodeSecretsKey,
        name: &Name,
        version: u64,
        node: NodeId,
        value: &SecretValue,
    ) -> Result<SealedForNode, SecretCryptoError> {
        seal_for_node(key, random(), name, version, node, value)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_key_is_made_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let a = SecretsKey::load_or_create(dir.path()).unwrap();
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = SecretsKey::load_or_create(dir.path()).unwrap();
        let name = Name::parse("db").unwrap();
        let v = SecretValue::new(b"x".to_vec());
        let sealed = a.seal_at_rest(&name, 1, &v).unwrap();
        assert_eq!(b.open(&name, 1, &sealed).unwrap(), v);
        assert_eq!(format!("{a:?}"), "SecretsKey(redacted)");
    }
}
