//! The key for secrets of a node enrolled before nodes had one.
//!
//! Such a node's identity has no `identity/secrets.key`, and the cloud knows no key for it,
//! so no secret can be sealed for it. At every start of an enrolled agent,
//! [`secrets_key`] loads the key or, when there is none, makes one and saves it as
//! enrollment does (atomically, mode 0600, durably). The agent then says its public half
//! after every `Hello` (`UpFrame::SecretsKey`); the cloud records it only while the node
//! has none, so a node enrolled later, whose key the cloud has, changes nothing.

use std::path::Path;

use skerry_shared::secret::NodeSecretsKey;

use crate::runtime::secrets::NodeKey;

/// The node's public key for secrets under `data`, made and saved first if the node has
/// none. `Err` names the file: the agent runs on without one (it receives no secrets).
pub fn secrets_key(data: &Path) -> Result<NodeSecretsKey, String> {
    let path = NodeKey::path(data);
    let fail = |e: std::io::Error| format!("{}: {e}", path.display());
    if let Some(key) = NodeKey::load(data).map_err(fail)? {
        return Ok(key.public());
    }
    let key = NodeKey::generate();
    key.save(data).map_err(fail)?;
    tracing::info!(file = %path.display(), "made this node's key for secrets (it was enrolled without one); it is sent to the cloud on connect");
    Ok(key.public())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn a_node_without_a_key_gets_one_once_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(crate::identity::Identity::dir(dir.path())).unwrap();
        let made = secrets_key(dir.path()).unwrap();
        let path = NodeKey::path(dir.path());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read(&path).unwrap().len(), 32);
        // Later starts load the same key; the one enrollment saved is kept as it is.
        assert_eq!(secrets_key(dir.path()).unwrap(), made);
        assert_eq!(NodeKey::load(dir.path()).unwrap().unwrap().public(), made);
        // A damaged key file is an error, not replaced (the cloud may know its key).
        std::fs::write(&path, b"short").unwrap();
        let e = secrets_key(dir.path()).unwrap_err();
        assert!(e.contains("secrets.key"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"short");
    }
}
