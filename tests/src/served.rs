//! [`Served`]: a `skerry serve` child process with the arguments a test gives, for what the
//! loopback, plain-http [`crate::Cloud`] does not cover: other listen addresses, TLS,
//! `--insecure-http`, a keys directory prepared beforehand.
//!
//! It runs `skerry serve --data DIR/data --mqtt 127.0.0.1:Q ARGS...` in its own temporary
//! directory, with standard output and error in `DIR/serve.stdout.log` and
//! `DIR/serve.stderr.log`, and the `SKERRY_*` settings of the environment removed. The test
//! says when it is ready ([`Served::wait_ready`]) or waits for its exit
//! ([`Served::wait_exit`]). Dropping it kills the process (SIGKILL) and removes the
//! directory; when a test panicked, the logs are printed first.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::binaries::try_bin;
use crate::cloud::{READY_TIMEOUT, SERVE_VARS, free_port};
use crate::error::Error;
use crate::wait::wait_for;

/// A `skerry serve` started with a test's own arguments.
#[derive(Debug)]
pub struct Served {
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    child: Option<Child>,
}

impl Served {
    /// A new temporary directory for a cloud, with nothing started yet: prepare its data
    /// or keys directory, then [`Served::spawn`].
    pub fn new() -> Result<Served, Error> {
        let dir = tempfile::Builder::new()
            .prefix("skerry-served-")
            .tempdir()
            .map_err(|e| Error::io("create a temporary directory", e))?;
        let root = dir.path().to_path_buf();
        Ok(Served {
            dir: Some(dir),
            root,
            child: None,
        })
    }

    /// `--data`: the cloud's data directory (`DIR/data`).
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The default keys directory, `DIR/data/keys`.
    pub fn keys_dir(&self) -> PathBuf {
        self.data_dir().join("keys")
    }

    /// The temporary directory.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// Starts `skerry serve --data DIR/data --mqtt 127.0.0.1:Q ARGS...` (killing a process
    /// this started before).
    pub fn spawn(&mut self, args: &[&str]) -> Result<(), Error> {
        self.kill9()?;
        let skerry = try_bin("skerry")?;
        let log = |name: &str| {
            let path = self.root.join(name);
            File::options()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| Error::io(format!("open {}", path.display()), e))
        };
        let mut cmd = Command::new(&skerry);
        cmd.arg("serve")
            .arg("--data")
            .arg(self.data_dir())
            .arg("--mqtt")
            .arg(format!("127.0.0.1:{}", free_port()?))
            .args(args)
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .stdout(log("serve.stdout.log")?)
            .stderr(log("serve.stderr.log")?);
        for var in SERVE_VARS {
            cmd.env_remove(var);
        }
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        let child = cmd
            .spawn()
            .map_err(|e| Error::io(format!("spawn {}", skerry.display()), e))?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits (at most `timeout`) for the process to exit, and returns how it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let status = wait_for(timeout, || child.try_wait().ok().flatten());
        if status.is_some() {
            self.child = None;
        }
        status
    }

    /// Waits (at most [`READY_TIMEOUT`]) until `ready` holds while the process runs.
    pub fn wait_ready(&mut self, mut ready: impl FnMut() -> bool) -> Result<(), Error> {
        let outcome = wait_for(READY_TIMEOUT, || {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                return Some(Err(format!("skerry serve exited with {status}")));
            }
            ready().then_some(Ok(()))
        });
        match outcome {
            Some(Ok(())) => Ok(()),
            Some(Err(reason)) => {
                self.child = None;
                Err(Error::NotReady {
                    reason,
                    logs: self.logs(),
                })
            }
            None => Err(Error::NotReady {
                reason: format!("not ready within {READY_TIMEOUT:?}"),
                logs: self.logs(),
            }),
        }
    }

    /// Everything the process wrote on standard error so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(
            &std::fs::read(self.root.join("serve.stderr.log")).unwrap_or_default(),
        )
        .into_owned()
    }

    /// Everything the process wrote on standard output so far.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(
            &std::fs::read(self.root.join("serve.stdout.log")).unwrap_or_default(),
        )
        .into_owned()
    }

    /// The cloud's admin token (`DATA/admin.token`), once the cloud wrote it.
    pub fn admin_token(&self) -> Option<String> {
        std::fs::read_to_string(self.data_dir().join("admin.token"))
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
    }

    /// Both logs, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "--- skerry serve stdout ---\n{}\n--- skerry serve stderr ---\n{}",
            self.stdout(),
            self.stderr()
        )
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill9(&mut self) -> Result<(), Error> {
        if let Some(mut child) = self.child.take() {
            child
                .kill()
                .map_err(|e| Error::io("kill -9 skerry serve", e))?;
            child
                .wait()
                .map_err(|e| Error::io("wait for skerry serve", e))?;
        }
        Ok(())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.kill9();
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
            if std::env::var_os("SKERRY_KEEP_TEST_DATA").is_some()
                && let Some(dir) = self.dir.take()
            {
                eprintln!("kept the cloud's directory: {}", dir.keep().display());
            }
        }
    }
}
