//! [`SmallFs`]: a small tmpfs mounted over a directory for a test, and filled up on demand.
//! Mounting needs root; [`SmallFs::mount`] says why it could not, so a test can report
//! itself not run.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::Error;

/// A tmpfs mounted at a directory; unmounted (lazily) on drop.
#[derive(Debug)]
pub struct SmallFs {
    at: PathBuf,
    filler: Option<PathBuf>,
}

impl SmallFs {
    /// Mounts a tmpfs of `bytes` at `at` (which must exist), hiding what is there. `Err`
    /// with the reason when the test cannot (not root, or the mount fails).
    pub fn mount(at: &Path, bytes: u64) -> Result<SmallFs, String> {
        let uid = Command::new("id")
            .arg("-u")
            .output()
            .map_err(|e| format!("id -u: {e}"))?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return Err("not running as root: cannot mount a tmpfs".into());
        }
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(SmallFs {
            at: at.to_owned(),
            filler: None,
        })
    }

    /// Writes a filler file until the file system is full; returns the bytes written.
    pub fn fill(&mut self) -> Result<u64, Error> {
        let path = self.at.join("filler");
        let mut f = std::fs::File::create(&path).map_err(|e| Error::io(path.display(), e))?;
        self.filler = Some(path);
        let chunk = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) => return Err(Error::io("fill the file system", e)),
            }
        }
        let _ = f.flush();
        Ok(written)
    }

    /// Deletes the filler: the space is free again.
    pub fn free(&mut self) -> Result<(), Error> {
        if let Some(path) = self.filler.take() {
            std::fs::remove_file(&path).map_err(|e| Error::io(path.display(), e))?;
        }
        Ok(())
    }

    /// Free bytes now (`df`).
    pub fn available(&self) -> Option<u64> {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.at)
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

/// Copies the contents of directory `from` into directory `to` with `cp -a`, keeping
/// modes and times: how a test moves an agent's data directory onto a [`SmallFs`] (copy
/// it aside, mount over it, copy it back).
pub fn copy_dir(from: &Path, to: &Path) -> Result<(), Error> {
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .map_err(|e| Error::io("cp -a", e))?;
    if !status.success() {
        return Err(Error::unexpected(format!(
            "cp -a {} {}: {status}",
            from.display(),
            to.display()
        )));
    }
    Ok(())
}
