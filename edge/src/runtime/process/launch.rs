//! How a replica's process is started: its program, arguments, environment, working
//! directory and output files.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::{Child, Command};

use super::state::{self, Paths};
use crate::runtime::secrets::{self, SecretTarget};
use crate::runtime::{ReplicaSpec, RuntimeError};
use skerry_shared::secret::SecretValue;
use std::os::unix::ffi::OsStrExt;

/// Where `PATH` lookups go when neither the replica nor the agent has a `PATH`.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything needed to start one replica's process, again and again.
#[derive(Debug, Clone)]
pub(super) struct Launch {
    /// `exec` as published; `argv[0]` is resolved at each start.
    pub argv: Vec<String>,
    /// Exactly the replica's environment, plus `SKERRY_STORAGE_<NAME>` per storage.
    pub env: BTreeMap<String, String>,
    pub work_dir: PathBuf,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    /// The output files are the agent's own (no `log_dir`): the log collector ships them
    /// and the supervisor rotates them.
    pub forward_output: bool,
    /// Secrets as environment variables (in memory only; never in the state file).
    pub secret_env: Vec<(String, SecretValue)>,
    /// Secrets as files: each file's name in `secret_dir` and its value.
    pub secret_files: Vec<(String, SecretValue)>,
    /// The replica's private directory of secret files (tmpfs, 0700), in
    /// `SKERRY_SECRETS_DIR`; written at each start, removed when the process ends.
    pub secret_dir: Option<PathBuf>,
}

impl Launch {
    /// The launch of `spec`. Touches nothing on disk.
    pub(super) fn of(paths: &Paths, spec: &ReplicaSpec) -> Self {
        let key = &spec.key;
        let mut env = spec.env.clone();
        for s in &spec.storage {
            let dir = paths.storage(&key.instance, &s.name);
            env.insert(
                storage_var(s.name.as_str()),
                dir.to_string_lossy().into_owned(),
            );
        }
        let mut secret_env = Vec::new();
        let mut secret_files = Vec::new();
        for s in &spec.secrets {
            match &s.target {
                SecretTarget::Env(var) => secret_env.push((var.clone(), s.value.clone())),
                SecretTarget::File(path) => {
                    let name = path.rsplit('/').next().unwrap_or(path.as_str());
                    secret_files.push((name.to_owned(), s.value.clone()));
                }
            }
        }
        let secret_dir = (!secret_files.is_empty()).then(|| secrets::replica_dir(spec.node, key));
        if let Some(dir) = &secret_dir {
            env.insert(
                "SKERRY_SECRETS_DIR".to_owned(),
                dir.to_string_lossy().into_owned(),
            );
        }
        let (stdout, stderr, forward_output) = match &spec.log_dir_host {
            Some(dir) => {
                let stem = format!("{}-{}", key.component, key.replica);
                (
                    dir.join(format!("{stem}.stdout.log")),
                    dir.join(format!("{stem}.stderr.log")),
                    false,
                )
            }
            None => {
                let (out, err) = paths.own_logs(key);
                (out, err, true)
            }
        };
        Self {
            argv: spec.component.exec.clone().unwrap_or_default(),
            env,
            work_dir: paths.work(key),
            stdout,
            stderr,
            forward_output,
            secret_env,
            secret_files,
            secret_dir,
        }
    }

    /// Writes the secret files (before each start).
    fn write_secrets(&self) -> Result<(), secrets::SecretFileError> {
        let Some(dir) = &self.secret_dir else {
            return Ok(());
        };
        for (name, value) in &self.secret_files {
            secrets::write_file(dir, name, value, 0o400)?;
        }
        Ok(())
    }

    /// Removes the secret files (when the process has ended).
    pub(super) fn remove_secrets(&self) {
        if let Some(dir) = &self.secret_dir {
            secrets::remove_dir(dir);
        }
    }

    /// Checks that the program can be found, before anything is created.
    pub(super) fn check(&self) -> Result<(), RuntimeError> {
        self.program().map(|_| ()).map_err(RuntimeError::Unrunnable)
    }

    /// Creates the working directory (empty when `fresh`), the output files' directory,
    /// and the named storage directories. The output files are kept: what a new process
    /// writes is appended, and the collector goes on reading where it was.
    pub(super) fn prepare(&self, paths: &Paths, spec: &ReplicaSpec, fresh: bool) -> io::Result<()> {
        if fresh {
            state::remove_any(&self.work_dir)?;
        }
        state::make_private_dir(&self.work_dir)?;
        for s in &spec.storage {
            state::make_private_dir(&paths.storage(&spec.key.instance, &s.name))?;
        }
        for file in [&self.stdout, &self.stderr] {
            if let Some(dir) = file.parent() {
                fs::create_dir_all(dir)?;
            }
        }
        Ok(())
    }

    /// `argv[0]`, resolved: an absolute path as it is, a bare name through the replica's
    /// `PATH` (or the agent's).
    pub(super) fn program(&self) -> Result<PathBuf, String> {
        resolve(&self.argv, &self.search_path())
    }

    /// The `PATH` that bare program names are looked up in: the replica's, else the
    /// agent's, else a default.
    pub(super) fn search_path(&self) -> String {
        self.env
            .get("PATH")
            .cloned()
            .or_else(|| std::env::var("PATH").ok())
            .unwrap_or_else(|| DEFAULT_PATH.to_owned())
    }

    /// Starts the process: in its own process group (so that stopping it reaches its
    /// children, and the agent's death does not), not killed when its handle is dropped,
    /// with stdin from /dev/null and output appended to the output files.
    pub(super) fn spawn(&self) -> Result<Child, SpawnError> {
        let program = self.program().map_err(SpawnError::Unrunnable)?;
        let open = |p: &Path| -> Result<File, SpawnError> {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| SpawnError::Io(format!("{}: {e}", p.display())))
        };
        let stdout = open(&self.stdout)?;
        let stderr = open(&self.stderr)?;
        self.write_secrets().map_err(|e| {
            let what = format!("cannot write its secret files: {e}");
            match e {
                secrets::SecretFileError::Unsafe { .. } => SpawnError::Unrunnable(what),
                secrets::SecretFileError::Io { .. } => SpawnError::Io(what),
            }
        })?;
        let mut cmd = Command::new(&program);
        if let Some(argv0) = self.argv.first() {
            cmd.arg0(argv0);
        }
        cmd.args(self.argv.iter().skip(1))
            .env_clear()
            .envs(&self.env)
            .envs(
                self.secret_env
                    .iter()
                    .map(|(k, v)| (k, std::ffi::OsStr::from_bytes(v.as_bytes()))),
            )
            .current_dir(&self.work_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .process_group(0)
            .kill_on_drop(false);
        cmd.spawn().map_err(|e| {
            let what = format!("{}: {e}", program.display());
            match e.kind() {
                io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied => {
                    SpawnError::Unrunnable(what)
                }
                _ if e.raw_os_error() == Some(nix::libc::ENOEXEC) => SpawnError::Unrunnable(what),
                _ => SpawnError::Io(what),
            }
        })
    }
}

/// Why a process did not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SpawnError {
    /// The program is missing, not executable or not a program.
    Unrunnable(String),
    /// The OS failed; it may work later.
    Io(String),
}

impl SpawnError {
    pub(super) fn message(&self) -> &str {
        match self {
            SpawnError::Unrunnable(m) | SpawnError::Io(m) => m,
        }
    }
}

impl From<SpawnError> for RuntimeError {
    fn from(e: SpawnError) -> Self {
        match e {
            SpawnError::Unrunnable(m) => RuntimeError::Unrunnable(m),
            SpawnError::Io(m) => RuntimeError::Engine(m),
        }
    }
}

/// `SKERRY_STORAGE_<NAME>`: the name upper-cased, `-` as `_`.
pub(super) fn storage_var(name: &str) -> String {
    format!(
        "SKERRY_STORAGE_{}",
        name.to_ascii_uppercase().replace('-', "_")
    )
}

/// Resolves `argv[0]` against `path` (a `PATH` value).
pub(super) fn resolve(argv: &[String], path: &str) -> Result<PathBuf, String> {
    let Some(name) = argv.first().filter(|n| !n.is_empty()) else {
        return Err("exec is empty: it needs at least a program".to_owned());
    };
    if name.contains('/') {
        let p = Path::new(name);
        if !p.is_absolute() {
            return Err(format!(
                "exec program {name:?} is a relative path; \
                 give an absolute path or a name found in PATH"
            ));
        }
        return if executable(p) {
            Ok(p.to_path_buf())
        } else {
            Err(format!("exec program {name} is not an executable file"))
        };
    }
    std::env::split_paths(OsStr::new(path))
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|p| executable(p))
        .ok_or_else(|| format!("exec program {name:?} is not found in PATH ({path})"))
}

fn executable(p: &Path) -> bool {
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        vec![s.to_owned()]
    }

    #[test]
    fn resolves_names_through_path_and_takes_absolute_paths() {
        assert_eq!(
            resolve(&argv("sh"), "/nonexistent:/bin").unwrap(),
            Path::new("/bin/sh")
        );
        assert_eq!(resolve(&argv("/bin/sh"), "").unwrap(), Path::new("/bin/sh"));
        assert!(resolve(&argv("no-such-program-here"), "/bin").is_err());
        assert!(
            resolve(&argv("./sh"), "/bin")
                .unwrap_err()
                .contains("relative")
        );
        assert!(
            resolve(&argv("/etc/passwd"), "/bin").is_err(),
            "not executable"
        );
        assert!(resolve(&[], "/bin").is_err());
        assert!(
            resolve(&argv("sh"), "relative/dir").is_err(),
            "relative PATH entries are skipped"
        );
    }

    #[test]
    fn storage_variables_are_upper_case_with_underscores() {
        assert_eq!(storage_var("data"), "SKERRY_STORAGE_DATA");
        assert_eq!(storage_var("raw-frames2"), "SKERRY_STORAGE_RAW_FRAMES2");
    }
}
