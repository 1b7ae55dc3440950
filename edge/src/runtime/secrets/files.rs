//! Secret files on tmpfs, in directories only the agent controls.
//!
//! `/dev/shm` is world-writable, so [`SECRETS_ROOT`] and each level under it is made with
//! its own `mkdir` (0700); one that is there already is used only when it is a real
//! directory (not a link) of the agent's uid that no one else may write to (the root: that
//! no one else may enter at all). Anything else (someone made it first, or made it a link)
//! writes nothing and makes the replica unrunnable with the path and the reason. Files are
//! created new, never through a link, and renamed into place.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use skerry_shared::secret::SecretValue;

#[cfg(doc)]
use super::SECRETS_ROOT;

/// The tmpfs (POSIX shared memory) that holds [`SECRETS_ROOT`]: world-writable and sticky.
pub(super) const SHM: &str = "/dev/shm";

/// Why a directory on the way to a secret file is not one the agent alone controls.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsafeDir {
    #[error("is a symbolic link")]
    Symlink,
    #[error("is not a directory")]
    NotADirectory,
    #[error("is owned by uid {owner}, not by the agent's uid {agent}")]
    Owner { owner: u32, agent: u32 },
    #[error("has mode {mode:04o}: others than its owner may write to it")]
    Writable { mode: u32 },
    #[error("has mode {mode:04o}: only the agent may use it (0700)")]
    Open { mode: u32 },
    #[error("is writable by others without the sticky bit: anyone may move what is in it")]
    NotSticky,
    #[error("is not a plain path under the tmpfs")]
    Outside,
}

/// A secret file that could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    /// A directory on the way is not the agent's alone (someone made it first, or made it
    /// a link): nothing is written, and the replica is unrunnable until it is removed.
    #[error(
        "{}: {why}; secret files are written only under directories the agent alone controls (remove it and the agent makes it again)",
        path.display()
    )]
    Unsafe { path: PathBuf, why: UnsafeDir },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl SecretFileError {
    fn io(path: &Path) -> impl FnOnce(io::Error) -> Self + '_ {
        move |source| Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Whether the existing `path` may hold secret files: a real directory (not a link),
/// owned by `agent`, that no one else may write to; [`SECRETS_ROOT`] itself (`root`) that
/// no one else may even enter. Docker needs none of that access: the daemon resolves a
/// bind mount's source as root, and the container reaches the file through the mount,
/// where the file's own mode (0444) applies.
fn check_level(path: &Path, agent: u32, root: bool) -> Result<(), SecretFileError> {
    let meta = fs::symlink_metadata(path).map_err(SecretFileError::io(path))?;
    let mode = meta.mode() & 0o7777;
    let why = if meta.file_type().is_symlink() {
        UnsafeDir::Symlink
    } else if !meta.is_dir() {
        UnsafeDir::NotADirectory
    } else if meta.uid() != agent {
        UnsafeDir::Owner {
            owner: meta.uid(),
            agent,
        }
    } else if root && mode & 0o077 != 0 {
        UnsafeDir::Open { mode }
    } else if mode & 0o022 != 0 {
        UnsafeDir::Writable { mode }
    } else {
        return Ok(());
    };
    Err(SecretFileError::Unsafe {
        path: path.to_path_buf(),
        why,
    })
}

/// The levels of `dir` below `base` (the tmpfs, whose first level is [`SECRETS_ROOT`]).
pub(super) fn levels<'a>(
    base: &'a Path,
    dir: &'a Path,
) -> Result<impl Iterator<Item = PathBuf> + 'a, SecretFileError> {
    let outside = || SecretFileError::Unsafe {
        path: dir.to_path_buf(),
        why: UnsafeDir::Outside,
    };
    let rel = dir.strip_prefix(base).map_err(|_| outside())?;
    if rel.as_os_str().is_empty() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(outside());
    }
    Ok(rel
        .ancestors()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .skip(1)
        .map(|r| base.join(r)))
}

/// Makes `dir` and each level between `base` and it, one `mkdir` (0700) at a time; a level
/// that is there already must pass [`check_level`]. `base` is the tmpfs itself: world
/// writable, so it must be sticky (no one moves the agent's directory out of it).
fn private_dir(base: &Path, dir: &Path) -> Result<(), SecretFileError> {
    let meta = fs::metadata(base).map_err(SecretFileError::io(base))?;
    if meta.mode() & 0o002 != 0 && meta.mode() & 0o1000 == 0 {
        return Err(SecretFileError::Unsafe {
            path: base.to_path_buf(),
            why: UnsafeDir::NotSticky,
        });
    }
    let agent = nix::unistd::geteuid().as_raw();
    for (depth, path) in levels(base, dir)?.enumerate() {
        match fs::DirBuilder::new().mode(0o700).create(&path) {
            // The agent's own, 0700 (less the umask).
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                check_level(&path, agent, depth == 0)?;
            }
            Err(e) => return Err(SecretFileError::io(&path)(e)),
        }
    }
    Ok(())
}

/// Writes `value` to `dir/name` with `mode`, atomically, making `dir` (under
/// [`SECRETS_ROOT`], on tmpfs) as [`private_dir`] does. A container's file is 0444, so the
/// container's own user reads it whoever it is (the directories keep the host's other
/// users out); a process's is 0400.
pub fn write_file(
    dir: &Path,
    name: &str,
    value: &SecretValue,
    mode: u32,
) -> Result<PathBuf, SecretFileError> {
    write_file_in(Path::new(SHM), dir, name, value, mode)
}

fn write_file_in(
    base: &Path,
    dir: &Path,
    name: &str,
    value: &SecretValue,
    mode: u32,
) -> Result<PathBuf, SecretFileError> {
    private_dir(base, dir)?;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    // Left by a write that did not finish (only the agent writes here): `unlink` removes
    // a link itself, never what it points to.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(SecretFileError::io(&tmp)(e)),
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(SecretFileError::io(&tmp))?;
    f.write_all(value.as_bytes())
        .map_err(SecretFileError::io(&tmp))?;
    // On the open file, not by path.
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(SecretFileError::io(&tmp))?;
    drop(f);
    // Replaces `path` itself, a link there included.
    fs::rename(&tmp, &path).map_err(SecretFileError::io(&path))?;
    Ok(path)
}

/// Removes `dir`, a replica's secret files (idempotent); only when each level above it
/// is the agent's own (see [`check_level`]), never through a link.
pub fn remove_dir(dir: &Path) {
    remove_dir_in(Path::new(SHM), dir);
}

fn remove_dir_in(base: &Path, dir: &Path) {
    let agent = nix::unistd::geteuid().as_raw();
    let checked = levels(base, dir).and_then(|levels| {
        for (depth, path) in levels.enumerate() {
            match check_level(&path, agent, depth == 0) {
                Err(SecretFileError::Io { source, .. })
                    if source.kind() == io::ErrorKind::NotFound =>
                {
                    return Ok(false);
                }
                other => other?,
            }
        }
        Ok(true)
    });
    let result = match checked {
        Ok(false) => return,
        Ok(true) => fs::remove_dir_all(dir),
        Err(e) => Err(io::Error::other(e.to_string())),
    };
    match result {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a replica's secret files")
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn mode_of(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    /// A stand-in for /dev/shm: world-writable and sticky.
    fn shm() -> tempfile::TempDir {
        let base = tempfile::tempdir().unwrap();
        fs::set_permissions(base.path(), fs::Permissions::from_mode(0o1777)).unwrap();
        base
    }

    fn value() -> SecretValue {
        SecretValue::new(b"s3cret".to_vec())
    }

    #[test]
    fn the_writer_makes_each_level_0700_and_writes_the_file_with_its_mode() {
        let base = shm();
        let dir = base.path().join("skerry-secrets/node/web.api.0");
        let file = write_file_in(base.path(), &dir, "0", &value(), 0o444).unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"s3cret");
        assert_eq!(mode_of(&file), 0o444);
        for level in [
            "skerry-secrets",
            "skerry-secrets/node",
            "skerry-secrets/node/web.api.0",
        ] {
            // 0700 less the umask: never more.
            assert_eq!(mode_of(&base.path().join(level)) & !0o700, 0, "{level}");
        }
        // Again (a restart): the file is replaced, also over a temporary file left behind.
        fs::write(dir.join(".0.tmp"), b"left").unwrap();
        let again = write_file_in(
            base.path(),
            &dir,
            "0",
            &SecretValue::new(b"v2".to_vec()),
            0o444,
        )
        .unwrap();
        assert_eq!(fs::read(&again).unwrap(), b"v2");
        assert!(!dir.join(".0.tmp").exists());
    }

    #[test]
    fn the_writer_refuses_a_squatted_root() {
        // Made by someone else first, open to all: here, a mode no agent would give it.
        let base = shm();
        let root = base.path().join("skerry-secrets");
        fs::create_dir(&root).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o777)).unwrap();
        let dir = root.join("node/web.api.0");
        let e = write_file_in(base.path(), &dir, "0", &value(), 0o444).unwrap_err();
        assert!(e.to_string().contains(&root.display().to_string()), "{e}");
        assert!(e.to_string().contains("0777"), "{e}");
        assert!(!dir.exists(), "nothing is written under it");
        assert_eq!(mode_of(&root), 0o777, "and it is left as it was");
        // Readable by others (Docker needs no access for others: it mounts as root).
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        let e = write_file_in(base.path(), &dir, "0", &value(), 0o444).unwrap_err();
        assert!(e.to_string().contains("0755"), "{e}");
    }

    #[test]
    fn the_writer_refuses_a_symlink_at_any_level_and_writes_nothing_through_it() {
        let base = shm();
        let elsewhere = tempfile::tempdir().unwrap();
        let before = mode_of(elsewhere.path());
        // The root, then the node's directory, then the replica's, as a symlink.
        for link in [
            "skerry-secrets",
            "skerry-secrets/node",
            "skerry-secrets/node/web.api.0",
        ] {
            let _ = fs::remove_dir_all(base.path().join("skerry-secrets"));
            let at = base.path().join(link);
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(at.parent().unwrap())
                .unwrap();
            std::os::unix::fs::symlink(elsewhere.path(), &at).unwrap();
            let dir = base.path().join("skerry-secrets/node/web.api.0");
            let e = write_file_in(base.path(), &dir, "0", &value(), 0o444).unwrap_err();
            assert!(e.to_string().contains("symbolic link"), "{link}: {e}");
            assert!(e.to_string().contains(&at.display().to_string()), "{e}");
            assert_eq!(
                fs::read_dir(elsewhere.path()).unwrap().count(),
                0,
                "{link}: written through the link"
            );
            assert_eq!(mode_of(elsewhere.path()), before, "its target untouched");
            // Nor is anything removed through it.
            fs::create_dir_all(elsewhere.path().join("node/web.api.0")).unwrap();
            fs::create_dir_all(elsewhere.path().join("web.api.0")).unwrap();
            fs::write(elsewhere.path().join("keep"), b"x").unwrap();
            remove_dir_in(base.path(), &dir);
            assert!(elsewhere.path().join("keep").exists(), "{link}");
            assert!(elsewhere.path().join("node/web.api.0").exists(), "{link}");
            assert!(elsewhere.path().join("web.api.0").exists(), "{link}");
            for e in fs::read_dir(elsewhere.path()).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    fs::remove_dir_all(p).unwrap();
                } else {
                    fs::remove_file(p).unwrap();
                }
            }
        }
    }

    #[test]
    fn the_writer_refuses_a_level_owned_by_another_user_or_open_to_writes() {
        let base = shm();
        let root = base.path().join("skerry-secrets");
        let node = root.join("node");
        let dir = node.join("web.api.0");
        write_file_in(base.path(), &dir, "0", &value(), 0o444).unwrap();
        // The node's level, writable by its group.
        fs::set_permissions(&node, fs::Permissions::from_mode(0o770)).unwrap();
        let e = write_file_in(base.path(), &dir, "0", &value(), 0o444).unwrap_err();
        assert!(
            matches!(&e, SecretFileError::Unsafe { path, why: UnsafeDir::Writable { mode: 0o770 } } if *path == node),
            "{e}"
        );
        fs::set_permissions(&node, fs::Permissions::from_mode(0o700)).unwrap();
        // A file where a directory goes.
        fs::remove_dir_all(&dir).unwrap();
        fs::write(&dir, b"").unwrap();
        let e = write_file_in(base.path(), &dir, "0", &value(), 0o444).unwrap_err();
        assert!(e.to_string().contains("is not a directory"), "{e}");
        fs::remove_file(&dir).unwrap();
        // Another user's (only root may give a directory away).
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::chown(&root, Some(65534), None).unwrap();
            let e = write_file_in(base.path(), &dir, "0", &value(), 0o444).unwrap_err();
            assert!(e.to_string().contains("owned by uid 65534"), "{e}");
            assert!(!dir.exists());
        }
        // A tmpfs that anyone may write to without the sticky bit; a path outside it.
        fs::set_permissions(base.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let e = write_file_in(base.path(), &dir, "0", &value(), 0o444).unwrap_err();
        assert!(
            matches!(
                &e,
                SecretFileError::Unsafe {
                    why: UnsafeDir::NotSticky,
                    ..
                }
            ),
            "{e}"
        );
        fs::set_permissions(base.path(), fs::Permissions::from_mode(0o1777)).unwrap();
        let e = write_file_in(base.path(), &root.join("../x"), "0", &value(), 0o444).unwrap_err();
        assert!(
            matches!(
                &e,
                SecretFileError::Unsafe {
                    why: UnsafeDir::Outside,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn the_writer_does_not_follow_a_symlink_as_its_file() {
        let base = shm();
        let dir = base.path().join("skerry-secrets/node/web.api.0");
        write_file_in(base.path(), &dir, "0", &value(), 0o444).unwrap();
        let target = base.path().join("target");
        fs::write(&target, b"theirs").unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
        fs::remove_file(dir.join("0")).unwrap();
        std::os::unix::fs::symlink(&target, dir.join("0")).unwrap();
        std::os::unix::fs::symlink(&target, dir.join(".0.tmp")).unwrap();
        let file = write_file_in(base.path(), &dir, "0", &value(), 0o444).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"theirs");
        assert_eq!(mode_of(&target), 0o600);
        assert!(fs::symlink_metadata(&file).unwrap().file_type().is_file());
    }
}
