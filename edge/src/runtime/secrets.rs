//! Secrets on the node: its X25519 key (`DATA/identity/secrets.key`, mode 0600, made at
//! enrollment, or at start for a node enrolled without one), and the opening of a replica's secrets just before it starts.
//!
//! The journal holds each secret's latest copy sealed for this node's key
//! ([`NodeDesired::secrets`]); [`attach`] opens the copies a component names, only for the
//! start at hand, into [`ReplicaSpec::secrets`], which is never saved. A secret delivered
//! as a file to a container is written to a directory on tmpfs ([`SECRETS_ROOT`], one per
//! replica, mode 0700) and bind-mounted read-only; the directory goes when the container
//! does ([`remove_files`]). The replica's hash includes each secret's version
//! ([`replica_hash`]), so a new version restarts the replicas that use it.

mod files;

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use skerry_shared::ids::{Name, NodeId};
use skerry_shared::manifest::RuntimeKind;
use skerry_shared::planner::{ReplicaKey, replica_hash};
use skerry_shared::reducer::NodeDesired;
use skerry_shared::secret::{NodeSecretsKey, NodeSecretsPrivate, SecretValue, open_for_node};

pub use self::files::{SecretFileError, UnsafeDir, remove_dir, write_file};
use super::{ReplicaSpec, RuntimeError};
use crate::identity::Identity;

/// Where secret files for containers are written: tmpfs, never a disk. Each level is made
/// by the agent, 0700, and one that is there already is used only when it is the agent's
/// alone ([`write_file`]).
pub const SECRETS_ROOT: &str = "/dev/shm/skerry-secrets";

const KEY_FILE: &str = "secrets.key";

/// The node's private key for secrets.
#[derive(Debug)]
pub struct NodeKey(NodeSecretsPrivate);

impl NodeKey {
    /// A new key from the operating system's randomness.
    pub fn generate() -> Self {
        Self(NodeSecretsPrivate::from_bytes(rand::random()))
    }

    pub fn public(&self) -> NodeSecretsKey {
        self.0.public()
    }

    /// `DATA/identity/secrets.key`.
    pub fn path(data: &Path) -> PathBuf {
        Identity::dir(data).join(KEY_FILE)
    }

    /// Writes the key (32 bytes, mode 0600), atomically and durably (the directory is
    /// synced after the rename: the cloud may record its public half next).
    pub fn save(&self, data: &Path) -> io::Result<()> {
        let path = Self::path(data);
        let tmp = path.with_extension("key.tmp");
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(self.0.to_bytes().as_ref())?;
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
        fs::File::open(Identity::dir(data))?.sync_all()
    }

    /// The key under `data`, if the node has one (a node enrolled before secrets has none
    /// until the agent's next start makes it: `crate::enroll::secrets_key`).
    pub fn load(data: &Path) -> io::Result<Option<NodeKey>> {
        let path = Self::path(data);
        let bytes = match fs::read(&path) {
            Ok(b) => zeroize::Zeroizing::new(b),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let raw: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: not a 32-byte key", path.display()),
            )
        })?;
        Ok(Some(NodeKey(NodeSecretsPrivate::from_bytes(raw))))
    }
}

/// Where a secret reaches a replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretTarget {
    /// An environment variable.
    Env(String),
    /// A file: in a container, at this path; for a process, in its private directory.
    File(String),
}

/// One secret opened for one start of a replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMount {
    pub name: Name,
    pub version: u64,
    pub target: SecretTarget,
    pub value: SecretValue,
    /// For a file in a container: the tmpfs file that is bind-mounted.
    pub host_file: Option<PathBuf>,
}

/// The directory of one container replica's secret files.
pub fn replica_dir(node: NodeId, key: &ReplicaKey) -> PathBuf {
    Path::new(SECRETS_ROOT).join(node.to_string()).join(format!(
        "{}.{}.{}",
        key.instance, key.component, key.replica
    ))
}

/// Removes a replica's secret files (idempotent).
pub fn remove_files(node: NodeId, key: &ReplicaKey) {
    remove_dir(&replica_dir(node, key));
}

/// The file system type of the mount that holds `path`, from `/proc/self/mounts` (the
/// longest mount point that is a prefix of it).
fn fs_type_of(mounts: &str, path: &Path) -> Option<String> {
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, point, kind) = (f.next()?, f.next()?, f.next()?);
            path.starts_with(point)
                .then(|| (point.len(), kind.to_owned()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, kind)| kind)
}

/// Secret files go only where memory backs them: refuses a [`SECRETS_ROOT`] that is not
/// on tmpfs (or ramfs).
fn ensure_tmpfs() -> Result<(), RuntimeError> {
    let mounts = fs::read_to_string("/proc/self/mounts")
        .map_err(|e| RuntimeError::Engine(format!("/proc/self/mounts: {e}")))?;
    match fs_type_of(&mounts, Path::new(SECRETS_ROOT)).as_deref() {
        Some("tmpfs" | "ramfs") => Ok(()),
        other => Err(unrunnable(format!(
            "{SECRETS_ROOT} is not on tmpfs ({}): secret files are written to memory only",
            other.unwrap_or("no mount found")
        ))),
    }
}

fn unrunnable(what: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Unrunnable(what.to_string())
}

/// Opens the secrets `spec`'s component names from `desired` into `spec.secrets`, and sets
/// its hash to [`replica_hash`]. A secret that has not reached the node yet is an engine
/// error (tried again at the next pass); one that does not open, or a node without a key,
/// is unrunnable.
pub fn attach(
    data: &Path,
    desired: &NodeDesired,
    mut spec: ReplicaSpec,
) -> Result<ReplicaSpec, RuntimeError> {
    let uses = spec.component.secrets.clone();
    if uses.is_empty() {
        return Ok(spec);
    }
    let instance = desired
        .instances
        .get(&spec.key.instance)
        .ok_or_else(|| RuntimeError::Engine(format!("{}: instance is not desired", spec.key)))?;
    spec.spec_hash = replica_hash(&instance.spec, &spec.component, &desired.secrets);
    let key = NodeKey::load(data)
        .map_err(|e| RuntimeError::Engine(format!("the node's secrets key: {e}")))?
        .ok_or_else(|| {
            unrunnable("this node has no secrets key (it enrolled before secrets); enroll it again")
        })?;
    let docker = spec.component.runtime() == RuntimeKind::Docker;
    if uses.iter().any(|u| u.file.is_some()) {
        ensure_tmpfs()?;
    }
    let mut opened = Vec::with_capacity(uses.len());
    for (j, u) in uses.iter().enumerate() {
        let copy = desired.secrets.get(&u.name).ok_or_else(|| {
            RuntimeError::Engine(format!(
                "{}: secret {} has not reached this node yet",
                spec.key, u.name
            ))
        })?;
        let value = open_for_node(&key.0, &u.name, copy.version, spec.node, &copy.sealed)
            .map_err(|e| unrunnable(format!("{}: secret {}: {e}", spec.key, u.name)))?;
        let target = match (&u.env, &u.file) {
            (Some(var), _) => SecretTarget::Env(var.clone()),
            (None, Some(path)) => SecretTarget::File(path.clone()),
            (None, None) => {
                return Err(unrunnable(format!(
                    "{}: secret {} names no target",
                    spec.key, u.name
                )));
            }
        };
        let host_file = match (&target, docker) {
            (SecretTarget::File(_), true) => Some(
                write_file(
                    &replica_dir(spec.node, &spec.key),
                    &j.to_string(),
                    &value,
                    0o444,
                )
                .map_err(|e| {
                    let what = format!("{}: secret {}: {e}", spec.key, u.name);
                    match e {
                        SecretFileError::Unsafe { .. } => unrunnable(what),
                        SecretFileError::Io { .. } => RuntimeError::Engine(what),
                    }
                })?,
            ),
            _ => None,
        };
        opened.push(SecretMount {
            name: u.name.clone(),
            version: copy.version,
            target,
            value,
            host_file,
        });
    }
    spec.secrets = opened;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_mount_that_holds_a_path_is_the_longest_prefix() {
        let mounts = "/dev/vda / ext4 rw 0 0\nshm /dev/shm tmpfs rw 0 0\nproc /proc proc rw 0 0\n";
        let kind = |p: &str| fs_type_of(mounts, Path::new(p));
        assert_eq!(kind("/dev/shm/skerry-secrets").as_deref(), Some("tmpfs"));
        assert_eq!(kind("/var/lib/x").as_deref(), Some("ext4"));
        // A path component, not a string prefix.
        assert_eq!(kind("/dev/shmx").as_deref(), Some("ext4"));
    }

    #[test]
    fn a_replica_dir_is_two_levels_under_the_root_one_under_the_tmpfs() {
        let key = ReplicaKey {
            instance: Name::parse("web").unwrap(),
            component: Name::parse("api").unwrap(),
            replica: 0,
        };
        let dir = replica_dir(NodeId::random(), &key);
        let levels: Vec<PathBuf> = files::levels(Path::new(files::SHM), &dir)
            .unwrap()
            .collect();
        // The first level is the one `check_level` holds to 0700.
        assert_eq!(levels[0], Path::new(SECRETS_ROOT));
        assert_eq!(levels.len(), 3);
        assert_eq!(levels[2], dir);
    }

    #[test]
    fn the_key_is_saved_with_mode_0600_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(Identity::dir(dir.path())).unwrap();
        assert!(NodeKey::load(dir.path()).unwrap().is_none());
        let key = NodeKey::generate();
        key.save(dir.path()).unwrap();
        let mode = fs::metadata(NodeKey::path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let back = NodeKey::load(dir.path()).unwrap().unwrap();
        assert_eq!(back.public(), key.public());
    }
}
