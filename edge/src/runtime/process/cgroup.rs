//! Resource limits through cgroup v2.
//!
//! A replica with a CPU or memory limit gets the cgroup `skerry/{instance}-{component}-{replica}`
//! under the cgroup v2 root, with `memory.max` and `cpu.max`, and its process is moved there
//! right after it starts. The `memory` and `cpu` controllers are enabled on the way down
//! (`+memory +cpu` in `cgroup.subtree_control`). Requests are not mapped: they are what the
//! cloud's fit check counts, not limits.
//!
//! Anything that stops this (no cgroup v2 mount, a read-only or delegated hierarchy, a
//! missing controller, a root cgroup with processes of its own) is returned as the reason
//! the limits are not enforced; the process runs anyway.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use skerry_shared::manifest::Component;
use skerry_shared::planner::ReplicaKey;

/// Where cgroup v2 is mounted on a host that has it.
pub(super) const ROOT: &str = "/sys/fs/cgroup";

/// The `cpu.max` period, in microseconds.
const CPU_PERIOD_US: u64 = 100_000;
/// The smallest quota the kernel takes.
const CPU_MIN_QUOTA_US: u64 = 1_000;

/// The limits of one component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Limits {
    pub memory_bytes: Option<u64>,
    pub cpu_millicores: Option<u64>,
}

impl Limits {
    /// `None` when the component sets no limit.
    pub(super) fn of(component: &Component) -> Option<Self> {
        let resources = component.resources.as_ref()?;
        let limits = Self {
            memory_bytes: resources
                .memory
                .as_ref()
                .and_then(|m| m.limit)
                .map(|m| m.bytes()),
            cpu_millicores: resources
                .cpu
                .as_ref()
                .and_then(|c| c.limit)
                .map(|c| c.millicores()),
        };
        (limits.memory_bytes.is_some() || limits.cpu_millicores.is_some()).then_some(limits)
    }

    fn controllers(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.memory_bytes.is_some() {
            out.push("memory");
        }
        if self.cpu_millicores.is_some() {
            out.push("cpu");
        }
        out
    }

    /// `cpu.max`: the quota per period, in microseconds.
    fn cpu_max(millicores: u64) -> String {
        let quota = millicores
            .saturating_mul(CPU_PERIOD_US / 1000)
            .max(CPU_MIN_QUOTA_US);
        format!("{quota} {CPU_PERIOD_US}")
    }
}

/// The cgroup of a replica, relative to the root.
pub(super) fn leaf(key: &ReplicaKey) -> PathBuf {
    Path::new("skerry").join(format!(
        "{}-{}-{}",
        key.instance, key.component, key.replica
    ))
}

/// Puts `pid` into the replica's cgroup under `root`, with `limits`. On failure, returns
/// why, in words.
pub(super) fn enforce(
    root: &Path,
    key: &ReplicaKey,
    limits: &Limits,
    pid: u32,
) -> Result<(), String> {
    let controllers_file = root.join("cgroup.controllers");
    let available = fs::read_to_string(&controllers_file)
        .map_err(|e| format!("no cgroup v2 hierarchy at {} ({e})", root.display()))?;
    let needed = limits.controllers();
    if let Some(missing) = needed
        .iter()
        .find(|c| !available.split_whitespace().any(|a| a == **c))
    {
        return Err(format!(
            "the cgroup v2 controller \"{missing}\" is not available at {}",
            root.display()
        ));
    }
    let parent = root.join("skerry");
    create_dir(&parent)?;
    enable(root, &needed)?;
    enable(&parent, &needed)?;
    let dir = root.join(leaf(key));
    create_dir(&dir)?;
    if let Some(bytes) = limits.memory_bytes {
        write(&dir.join("memory.max"), &bytes.to_string())?;
    }
    if let Some(millicores) = limits.cpu_millicores {
        write(&dir.join("cpu.max"), &Limits::cpu_max(millicores))?;
    }
    write(&dir.join("cgroup.procs"), &pid.to_string())
}

/// Kills whatever is left in the replica's cgroup (`cgroup.kill`, Linux 5.14 and later)
/// and removes it. Best effort: a host without the cgroup has nothing to remove.
pub(super) fn remove(root: &Path, key: &ReplicaKey) {
    let dir = root.join(leaf(key));
    if !dir.is_dir() {
        return;
    }
    let _ = fs::write(dir.join("cgroup.kill"), "1");
    if let Err(e) = fs::remove_dir(&dir) {
        tracing::debug!(cgroup = %dir.display(), error = %e, "cannot remove a replica's cgroup");
    }
}

/// Enables `controllers` for the children of `dir`, unless they already are.
fn enable(dir: &Path, controllers: &[&str]) -> Result<(), String> {
    let file = dir.join("cgroup.subtree_control");
    let enabled = fs::read_to_string(&file).map_err(|e| describe(&file, &e))?;
    let missing: Vec<String> = controllers
        .iter()
        .filter(|c| !enabled.split_whitespace().any(|e| e == **c))
        .map(|c| format!("+{c}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    write(&file, &missing.join(" "))
}

fn create_dir(dir: &Path) -> Result<(), String> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(describe(dir, &e)),
    }
}

fn write(file: &Path, value: &str) -> Result<(), String> {
    fs::write(file, value).map_err(|e| describe(file, &e))
}

fn describe(path: &Path, e: &io::Error) -> String {
    format!("{}: {e}", path.display())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use skerry_shared::ids::Name;

    fn key() -> ReplicaKey {
        ReplicaKey::new(
            &Name::parse("web").unwrap(),
            &Name::parse("api").unwrap(),
            1,
        )
    }

    fn limits() -> Limits {
        Limits {
            memory_bytes: Some(64 << 20),
            cpu_millicores: Some(500),
        }
    }

    #[test]
    fn writes_limits_and_the_pid_into_a_hierarchy() {
        // A directory that looks like a cgroup v2 root (the kernel's files are plain here).
        let root = tempfile::tempdir().unwrap();
        fs::write(
            root.path().join("cgroup.controllers"),
            "cpuset cpu io memory pids",
        )
        .unwrap();
        fs::write(root.path().join("cgroup.subtree_control"), "memory").unwrap();
        fs::create_dir(root.path().join("skerry")).unwrap();
        fs::write(root.path().join("skerry/cgroup.subtree_control"), "").unwrap();

        enforce(root.path(), &key(), &limits(), 4242).unwrap();

        let dir = root.path().join("skerry/web-api-1");
        let read = |f: &str| fs::read_to_string(dir.join(f)).unwrap();
        assert_eq!(read("memory.max"), (64u64 << 20).to_string());
        assert_eq!(read("cpu.max"), "50000 100000");
        assert_eq!(read("cgroup.procs"), "4242");
        let root_control = fs::read_to_string(root.path().join("cgroup.subtree_control")).unwrap();
        assert_eq!(
            root_control, "+cpu",
            "only the missing controller is enabled"
        );

        remove(root.path(), &key());
    }

    #[test]
    fn says_why_it_cannot() {
        let root = tempfile::tempdir().unwrap();
        let why = enforce(root.path(), &key(), &limits(), 1).unwrap_err();
        assert!(why.starts_with("no cgroup v2 hierarchy at"), "{why}");

        fs::write(root.path().join("cgroup.controllers"), "cpu pids").unwrap();
        let why = enforce(root.path(), &key(), &limits(), 1).unwrap_err();
        assert!(why.contains("\"memory\" is not available"), "{why}");
    }

    #[test]
    fn tiny_cpu_limits_get_the_kernels_minimum_quota() {
        assert_eq!(Limits::cpu_max(1), "1000 100000");
        assert_eq!(Limits::cpu_max(2000), "200000 100000");
    }
}
