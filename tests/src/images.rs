//! Container images and engine hygiene for tests that run real containers.
//!
//! No registry is reachable, and none is needed: [`busybox_image`] builds an image
//! `FROM scratch` that holds the host's statically linked `/bin/busybox` (Debian's
//! `busybox-static`, which `scripts/test.sh` installs) and a symlink for every applet it
//! has (`sh`, `sleep`, `httpd`, `wget`, `nc`, ...), plus a world-writable `/tmp`.
//! [`unique`] gives names that no other test uses, and [`DockerCleanup`] removes what a
//! test node left on the engine when it is dropped.
//!
//! ```no_run
//! use skerry_tests::images::{DockerCleanup, busybox_image, unique};
//!
//! let image = busybox_image("1").unwrap(); // "skerry-test-busybox:1"
//! let instance = unique("web");            // "web-3f9c2a1b"
//! let _cleanup = DockerCleanup::new("0f9e6c1e-5d0c-4c3b-9d51-6a4f2f1c9b10");
//! ```

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

use rand::Rng;

use crate::error::Error;

/// Where the static busybox comes from.
const HOST_BUSYBOX: &str = "/bin/busybox";

/// The repository of the images [`busybox_image`] builds.
pub const BUSYBOX_REPOSITORY: &str = "skerry-test-busybox";

/// The label every container, network and volume of a Skerry node carries.
const NODE_LABEL: &str = "io.skerry.node";

/// Tags built by this process.
fn built() -> &'static Mutex<HashSet<String>> {
    static BUILT: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    BUILT.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Builds `skerry-test-busybox:{tag}` (once per process and tag) and returns its reference.
///
/// The image has no entrypoint and no command: a component names its own (`sh -c ...`).
pub fn busybox_image(tag: &str) -> Result<String, Error> {
    let image = format!("{BUSYBOX_REPOSITORY}:{tag}");
    // Held for the whole build: two tests that ask at once build once.
    let mut built = built()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if built.contains(tag) {
        return Ok(image);
    }
    let context = tempfile::tempdir().map_err(|e| Error::io("create a build context", e))?;
    write_context(context.path())?;
    let out = Command::new("docker")
        .args(["build", "--quiet", "--tag", &image])
        .arg(context.path())
        // The classic builder: no buildx plugin or BuildKit session is needed.
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .map_err(|e| Error::io("run `docker build` (is the docker CLI installed?)", e))?;
    check(&format!("docker build --tag {image}"), &out)?;
    built.insert(tag.to_owned());
    Ok(image)
}

/// The build context: `Dockerfile` and `rootfs/` with `bin/busybox`, one symlink per
/// applet, and `tmp/` (mode 1777).
fn write_context(dir: &Path) -> Result<(), Error> {
    let busybox = Path::new(HOST_BUSYBOX);
    if !busybox.exists() {
        return Err(Error::unexpected(format!(
            "{HOST_BUSYBOX} is missing: install Debian's busybox-static (scripts/test.sh does)"
        )));
    }
    let list = Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(|e| Error::io(format!("run {HOST_BUSYBOX} --list"), e))?;
    check(&format!("{HOST_BUSYBOX} --list"), &list)?;
    let applets = String::from_utf8_lossy(&list.stdout).into_owned();

    let bin = dir.join("rootfs/bin");
    let tmp = dir.join("rootfs/tmp");
    fs::create_dir_all(&bin).map_err(|e| Error::io(format!("create {}", bin.display()), e))?;
    fs::create_dir_all(&tmp).map_err(|e| Error::io(format!("create {}", tmp.display()), e))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777))
        .map_err(|e| Error::io(format!("chmod 1777 {}", tmp.display()), e))?;
    fs::copy(busybox, bin.join("busybox"))
        .map_err(|e| Error::io(format!("copy {HOST_BUSYBOX}"), e))?;
    for applet in applets.lines().map(str::trim) {
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        symlink("busybox", bin.join(applet))
            .map_err(|e| Error::io(format!("symlink bin/{applet}"), e))?;
    }
    let dockerfile = dir.join("Dockerfile");
    fs::write(&dockerfile, "FROM scratch\nCOPY rootfs/ /\n")
        .map_err(|e| Error::io(format!("write {}", dockerfile.display()), e))?;
    Ok(())
}

fn check(command: &str, out: &Output) -> Result<(), Error> {
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::unexpected(format!(
            "`{command}` failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

/// A name no other test uses: `{prefix}-{8 hex digits}`. A valid Skerry name when `prefix`
/// is one of at most 54 characters.
pub fn unique(prefix: &str) -> String {
    let n: u32 = rand::rng().random();
    format!("{prefix}-{n:08x}")
}

/// Removes every container, network and volume labelled `io.skerry.node=<node>` when
/// dropped, whether the test passed or not. Create it before the first container.
#[derive(Debug)]
pub struct DockerCleanup {
    node: String,
}

impl DockerCleanup {
    pub fn new(node: impl fmt::Display) -> Self {
        Self {
            node: node.to_string(),
        }
    }

    /// Removes what the node left now (also done on drop).
    pub fn clean(&self) {
        let filter = format!("label={NODE_LABEL}={}", self.node);
        // Containers first: networks and volumes in use cannot be removed.
        for (list, remove) in [
            (&["ps", "--all", "--quiet"][..], &["rm", "--force"][..]),
            (&["network", "ls", "--quiet"][..], &["network", "rm"][..]),
            (
                &["volume", "ls", "--quiet"][..],
                &["volume", "rm", "--force"][..],
            ),
        ] {
            let ids = docker_lines(list, &filter);
            if ids.is_empty() {
                continue;
            }
            let out = Command::new("docker").args(remove).args(&ids).output();
            if let Ok(out) = out
                && !out.status.success()
            {
                eprintln!(
                    "cleanup: docker {} failed: {}",
                    remove.join(" "),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}

/// The ids `docker <list> --filter <filter>` prints.
fn docker_lines(list: &[&str], filter: &str) -> Vec<String> {
    match Command::new("docker")
        .args(list)
        .args(["--filter", filter])
        .output()
    {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        Ok(out) => {
            eprintln!(
                "cleanup: docker {} failed: {}",
                list.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
            Vec::new()
        }
        Err(e) => {
            eprintln!("cleanup: cannot run docker: {e}");
            Vec::new()
        }
    }
}

impl Drop for DockerCleanup {
    fn drop(&mut self) {
        self.clean();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_are_valid_and_differ() {
        let a = unique("web");
        let b = unique("web");
        assert_ne!(a, b);
        assert!(skerry_shared::ids::Name::parse(&a).is_ok(), "{a}");
        assert_eq!(a.len(), "web-".len() + 8);
    }
}
