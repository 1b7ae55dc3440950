//! What the process runtime keeps on disk, and what it reads from `/proc`.
//!
//! Under the runtime's state directory:
//! - `replicas/{instance}.{component}.{replica}.json`: one [`Record`] per replica, written
//!   atomically (temporary file, fsync, rename, fsync of the directory) whenever its
//!   process starts or exits;
//! - `storage/{instance}/{storage}`: named storage (0700), kept until purged;
//! - `work/{instance}.{component}.{replica}`: the replica's working directory;
//! - `logs/{instance}.{component}.{replica}.{stdout,stderr}.log`: the output of replicas
//!   without a `log_dir`, which the log collector ships (`(stdout)`, `(stderr)`) and the
//!   supervisor rotates (`forward.rs`).
//!
//! Names match `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, so the dots in these file names cannot be
//! confused with a name's own characters, and no name can climb out of the directory.

use std::collections::BTreeMap;
use std::fs::{self, DirBuilder, File};
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use skerry_shared::hash::Digest;
use skerry_shared::ids::{Name, NodeId};
use skerry_shared::manifest::Component;
use skerry_shared::planner::ReplicaKey;

use crate::runtime::{PortBinding, ReplicaSpec, StorageMount};

/// The state file's format version.
pub(super) const FORMAT: u32 = 1;

/// The directories of one runtime.
#[derive(Debug, Clone)]
pub(super) struct Paths {
    root: PathBuf,
}

impl Paths {
    /// Creates the layout under `root` (0700), made absolute so that the paths handed to
    /// processes do not depend on their working directory.
    pub(super) fn create(root: &Path) -> io::Result<Self> {
        make_private_dir(root)?;
        let root = fs::canonicalize(root)?;
        let paths = Self { root };
        for dir in [
            paths.replicas_dir(),
            paths.root.join("storage"),
            paths.root.join("work"),
            paths.root.join("logs"),
        ] {
            make_private_dir(&dir)?;
        }
        Ok(paths)
    }

    pub(super) fn replicas_dir(&self) -> PathBuf {
        self.root.join("replicas")
    }

    pub(super) fn record(&self, key: &ReplicaKey) -> PathBuf {
        self.replicas_dir().join(format!("{}.json", stem(key)))
    }

    pub(super) fn storage_instance(&self, instance: &Name) -> PathBuf {
        self.root.join("storage").join(instance.as_str())
    }

    pub(super) fn storage(&self, instance: &Name, storage: &Name) -> PathBuf {
        self.storage_instance(instance).join(storage.as_str())
    }

    pub(super) fn work(&self, key: &ReplicaKey) -> PathBuf {
        self.root.join("work").join(stem(key))
    }

    /// The agent-owned output files of a replica without a `log_dir`.
    pub(super) fn own_logs(&self, key: &ReplicaKey) -> (PathBuf, PathBuf) {
        let base = self.root.join("logs");
        let stem = stem(key);
        (
            base.join(format!("{stem}.stdout.log")),
            base.join(format!("{stem}.stderr.log")),
        )
    }
}

fn stem(key: &ReplicaKey) -> String {
    format!("{}.{}.{}", key.instance, key.component, key.replica)
}

/// Creates `dir` and its parents; a directory it creates gets mode 0700.
pub(super) fn make_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Removes a file, or a directory and its contents; absent is fine.
pub(super) fn remove_any(path: &Path) -> io::Result<()> {
    let result = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// One replica as the runtime last left it: enough to adopt its process after an agent
/// restart, or to start it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Record {
    pub format: u32,
    pub node: NodeId,
    pub key: ReplicaKey,
    pub spec_hash: Digest,
    pub spec: SavedSpec,
    /// The running process: its pid, which is also its process group.
    pub pid: Option<u32>,
    pub pgid: Option<u32>,
    /// Its start time (`/proc/PID/stat` field 22, clock ticks since boot), which tells it
    /// from a later process that got the same pid.
    pub start_time: Option<u64>,
    /// The kernel's boot id when it started: after a reboot, nothing recorded runs.
    pub boot_id: Option<String>,
    pub restarts: u32,
    pub last_exit: Option<String>,
    /// Set once the process exited (with -1 when the code is unknown).
    pub exit_code: Option<i64>,
    /// It exited and its supervisor was waiting to start it again.
    pub restart_pending: bool,
    /// `resources not enforced: ...` when its limits could not be applied.
    pub enforcement: Option<String>,
    /// When it last exited (ms since the epoch), so the last exit keeps its time across
    /// agent restarts. Absent in files written before it was kept.
    #[serde(default)]
    pub exited_at: Option<i64>,
    /// The crash-loop backoff's next wait (ms), so an agent restart does not reset it.
    #[serde(default)]
    pub backoff_ms: Option<u64>,
    /// With `restart_pending`: when the restart is due (ms since the epoch).
    #[serde(default)]
    pub restart_at: Option<i64>,
}

impl Record {
    /// The running process, if the record names one.
    pub(super) fn process(&self) -> Option<ProcessId> {
        Some(ProcessId {
            pid: self.pid?,
            pgid: self.pgid?,
            start_time: self.start_time?,
            boot_id: self.boot_id.clone(),
        })
    }
}

/// The parts of a [`ReplicaSpec`] that the runtime needs to start a replica again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct SavedSpec {
    pub component: Component,
    pub env: BTreeMap<String, String>,
    /// `(container, host)` port pairs.
    pub ports: Vec<(u16, Option<u16>)>,
    /// `(name, container path)` pairs.
    pub storage: Vec<(Name, Option<String>)>,
    pub log_dir_host: Option<PathBuf>,
}

impl SavedSpec {
    pub(super) fn of(spec: &ReplicaSpec) -> Self {
        Self {
            component: spec.component.clone(),
            env: spec.env.clone(),
            ports: spec.ports.iter().map(|p| (p.container, p.host)).collect(),
            storage: spec
                .storage
                .iter()
                .map(|s| (s.name.clone(), s.container.clone()))
                .collect(),
            log_dir_host: spec.log_dir_host.clone(),
        }
    }

    pub(super) fn to_spec(&self, node: NodeId, key: &ReplicaKey, spec_hash: Digest) -> ReplicaSpec {
        ReplicaSpec {
            node,
            key: key.clone(),
            spec_hash,
            component: self.component.clone(),
            env: self.env.clone(),
            ports: self
                .ports
                .iter()
                .map(|&(container, host)| PortBinding { container, host })
                .collect(),
            storage: self
                .storage
                .iter()
                .map(|(name, container)| StorageMount {
                    name: name.clone(),
                    container: container.clone(),
                })
                .collect(),
            log_dir_host: self.log_dir_host.clone(),
            secrets: Vec::new(),
        }
    }
}

/// Writes `record` atomically.
pub(super) fn write(paths: &Paths, record: &Record) -> io::Result<()> {
    let dir = paths.replicas_dir();
    let path = paths.record(&record.key);
    let tmp = dir.join(format!(".{}.json.tmp", stem(&record.key)));
    let bytes = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
    let mut file = File::create(&tmp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, &path)?;
    File::open(&dir)?.sync_all()
}

/// Every record in the state directory. A file that cannot be read or parsed is skipped
/// with a warning: one bad file must not hide the other replicas.
pub(super) fn read_all(paths: &Paths) -> io::Result<Vec<Record>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(paths.replicas_dir())? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        match fs::read(&path).map(|b| serde_json::from_slice::<Record>(&b)) {
            Ok(Ok(record)) if record.format == FORMAT => out.push(record),
            Ok(Ok(record)) => tracing::warn!(
                path = %path.display(),
                format = record.format,
                "skipping a replica state file of an unknown format"
            ),
            Ok(Err(e)) => {
                let path = path.display();
                tracing::warn!(%path, error = %e, "skipping a damaged replica state file");
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                let path = path.display();
                tracing::warn!(%path, error = %e, "cannot read a replica state file");
            }
        }
    }
    Ok(out)
}

/// The record of `key`, if there is one that parses.
pub(super) fn read(paths: &Paths, key: &ReplicaKey) -> io::Result<Option<Record>> {
    match fs::read(paths.record(key)) {
        Ok(bytes) => Ok(serde_json::from_slice::<Record>(&bytes)
            .ok()
            .filter(|r| r.format == FORMAT)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A process as the state file names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ProcessId {
    pub pid: u32,
    pub pgid: u32,
    pub start_time: u64,
    pub boot_id: Option<String>,
}

impl ProcessId {
    /// The process that now has `pid` (just spawned by this agent).
    pub(super) fn of_child(pid: u32) -> io::Result<Self> {
        let stat = proc_stat(pid).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("/proc/{pid}/stat is gone"))
        })?;
        Ok(Self {
            pid,
            pgid: pid,
            start_time: stat.start_time,
            boot_id: boot_id(),
        })
    }

    /// True while this very process runs: the pid exists, is not a zombie, and started
    /// when recorded, in this boot.
    pub(super) fn alive(&self) -> bool {
        if self.boot_id.is_some() && self.boot_id != boot_id() {
            return false;
        }
        self.running()
    }

    /// [`ProcessId::alive`] without the boot check, for a process already known to be of
    /// this boot.
    pub(super) fn running(&self) -> bool {
        proc_stat(self.pid)
            .is_some_and(|s| s.start_time == self.start_time && !matches!(s.state, 'Z' | 'X'))
    }

    /// True when the process ran in this boot (so its pgid may still be its group).
    pub(super) fn this_boot(&self) -> bool {
        self.boot_id.is_some() && self.boot_id == boot_id()
    }
}

/// The fields of `/proc/PID/stat` that the runtime uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ProcStat {
    pub state: char,
    pub start_time: u64,
}

/// Reads `/proc/PID/stat`; `None` when there is no such process.
pub(super) fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// `pid (comm) state ppid ...`: the command may hold spaces and parentheses, so the
/// fields are counted from the last `)`. The state is field 3, the start time field 22.
fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// The kernel's boot id, which changes at every boot.
pub(super) fn boot_id() -> Option<String> {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let text = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 \
                    987654 1000 100 18446744073709551615";
        assert_eq!(
            parse_stat(text),
            Some(ProcStat {
                state: 'S',
                start_time: 987_654
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_is_alive_and_a_changed_start_time_is_not() {
        let me = ProcessId::of_child(std::process::id()).unwrap();
        assert!(me.alive());
        let other = ProcessId {
            start_time: me.start_time + 1,
            ..me.clone()
        };
        assert!(!other.alive());
        let other_boot = ProcessId {
            boot_id: Some("another boot".into()),
            ..me
        };
        assert!(!other_boot.alive());
    }
}
