//! [`Cloud`]: a real `skerry serve` process on free ports, in its own temporary directory.
//!
//! The server runs as a child process of the test:
//! `skerry serve --data DIR/data --listen 127.0.0.1:P --mqtt 127.0.0.1:Q --no-local-node`,
//! with its standard output and error appended to `DIR/serve.stdout.log` and
//! `DIR/serve.stderr.log` (every start of the same cloud appends, so a restart keeps the
//! earlier logs). It is ready when `GET /healthz` answers 200, within [`READY_TIMEOUT`].
//!
//! Dropping a [`Cloud`] kills the process (SIGKILL) and removes the directory. When the drop
//! happens because a test panicked, the server's logs are printed first, and with
//! `SKERRY_KEEP_TEST_DATA=1` the directory is kept and its path printed.
//!
//! Free ports are found by binding `127.0.0.1:0` and closing the socket again. Between that
//! and the server's own bind, another process may take the port; [`Cloud::start`] then
//! tries once more with new ports. [`Cloud::restart`] reuses the ports the cloud had, since
//! clients hold its URL.

use std::fs::{File, OpenOptions};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::binaries::try_bin;
use crate::error::Error;
use crate::http::{Api, healthz};
use crate::wait::wait_for;

/// How long a start may take before the cloud counts as failed.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The `SKERRY_*` variables of `skerry serve`, removed from its environment (here and by
/// [`crate::served::Served`]), so that the test's environment cannot change what a test starts.
pub(crate) const SERVE_VARS: [&str; 17] = [
    "SKERRY_CONFIG",
    "SKERRY_DATA",
    "SKERRY_LISTEN",
    "SKERRY_MQTT",
    "SKERRY_MQTT_ADVERTISE",
    "SKERRY_NATS",
    "SKERRY_KEYS",
    "SKERRY_LOCAL_NODE",
    "SKERRY_HTTP_ALLOWED_ORIGINS",
    "SKERRY_HTTP_HEADER_TIMEOUT",
    "SKERRY_HTTP_BODY_TIMEOUT",
    "SKERRY_HTTP_MAX_CONNECTIONS",
    "SKERRY_TLS_NAMES",
    "SKERRY_INSECURE_HTTP",
    "SKERRY_CA",
    "SKERRY_TOKEN",
    "SKERRY_NODE_CERT_LIFETIME",
];

/// How much of each log [`Cloud::logs`] shows (the tail).
const LOG_TAIL_BYTES: usize = 64 * 1024;

/// A free TCP port on 127.0.0.1 (see the module docs for the race this leaves).
pub fn free_port() -> Result<u16, Error> {
    let listener =
        TcpListener::bind(("127.0.0.1", 0)).map_err(|e| Error::io("bind 127.0.0.1:0", e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("local address of 127.0.0.1:0", e))?;
    Ok(addr.port())
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A running (or killed) `skerry serve`.
#[derive(Debug)]
pub struct Cloud {
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    listen: SocketAddr,
    mqtt: SocketAddr,
    child: Option<Child>,
    /// Extra environment for the next start ([`Cloud::set_env`]).
    env: Vec<(String, String)>,
    /// Whether `serve` runs its local node ([`Cloud::start_with_local_node`]).
    local_node: bool,
    /// The admin token `serve` wrote to `DATA/admin.token` at its first start.
    token: Option<String>,
}

/// Why one start attempt failed.
enum StartFailure {
    /// The process exited before it was ready (a port taken, a bad data directory).
    Exited(String),
    /// Anything else: not worth another attempt.
    Other(Error),
}

impl Cloud {
    /// Starts a cloud in a new temporary directory and waits until it is ready.
    pub fn start() -> Result<Cloud, Error> {
        Self::start_inner(false)
    }

    /// Like [`Cloud::start`], without `--no-local-node`: `serve` also runs the host's own
    /// node (named after the host, in `local`, with its data in `DATA/local-node`). Its
    /// containers are the caller's to remove ([`crate::images::DockerCleanup`]).
    pub fn start_with_local_node() -> Result<Cloud, Error> {
        Self::start_inner(true)
    }

    fn start_inner(local_node: bool) -> Result<Cloud, Error> {
        let dir = tempfile::Builder::new()
            .prefix("skerry-cloud-")
            .tempdir()
            .map_err(|e| Error::io("create a temporary directory", e))?;
        let root = dir.path().to_path_buf();
        let mut cloud = Cloud {
            dir: Some(dir),
            root,
            listen: loopback(0),
            mqtt: loopback(0),
            child: None,
            env: Vec::new(),
            local_node,
            token: None,
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            cloud.listen = loopback(free_port()?);
            cloud.mqtt = loopback(free_port()?);
            match cloud.spawn_and_wait() {
                Ok(()) => return Ok(cloud),
                // Most likely a port was taken between free_port() and the server's bind.
                Err(StartFailure::Exited(_)) if attempts < 2 => {}
                Err(StartFailure::Exited(reason)) => {
                    return Err(Error::NotReady {
                        reason,
                        logs: cloud.logs(),
                    });
                }
                Err(StartFailure::Other(e)) => return Err(e),
            }
        }
    }

    /// The REST API's base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.listen)
    }

    /// The API's address.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// The MQTT address the cloud was given.
    pub fn mqtt_addr(&self) -> SocketAddr {
        self.mqtt
    }

    /// The temporary directory that holds the data directory and the logs.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// `--data`: the cloud's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The process id, while the process runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A blocking API client of this cloud, with its admin token (not for use inside an
    /// async context).
    pub fn api(&self) -> Result<Api, Error> {
        Api::with_token(&self.url(), self.token.as_deref())
    }

    /// The admin token (`DATA/admin.token`), which [`crate::cli::cli`] and [`Cloud::api`]
    /// send; empty if the cloud wrote none.
    pub fn token(&self) -> &str {
        self.token.as_deref().unwrap_or_default()
    }

    /// An async reqwest client that sends the admin token with every request.
    pub fn http(&self) -> Result<reqwest::Client, Error> {
        crate::http::http_client_with(self.token.as_deref())
    }

    /// Kills the process with SIGKILL (what `Child::kill` sends on unix) and reaps it.
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

    /// Sets an environment variable (`SKERRY_SYNC_SNAPSHOTS`, say) for the next
    /// [`Cloud::restart`]; it stays set for later ones.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
    }

    /// Starts the cloud again on the same data directory and ports (killing it first if it
    /// still runs) and waits until it is ready.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.kill9()?;
        match self.spawn_and_wait() {
            Ok(()) => Ok(()),
            Err(StartFailure::Exited(reason)) => Err(Error::NotReady {
                reason,
                logs: self.logs(),
            }),
            Err(StartFailure::Other(e)) => Err(e),
        }
    }

    /// The tail of the server's standard output and standard error, for failure messages.
    pub fn logs(&self) -> String {
        let tail = |name: &str| {
            let text = std::fs::read(self.root.join(name)).unwrap_or_default();
            let start = text.len().saturating_sub(LOG_TAIL_BYTES);
            String::from_utf8_lossy(&text[start..]).into_owned()
        };
        format!(
            "--- skerry serve stdout ({}) ---\n{}\n--- skerry serve stderr ({}) ---\n{}",
            self.root.join("serve.stdout.log").display(),
            tail("serve.stdout.log"),
            self.root.join("serve.stderr.log").display(),
            tail("serve.stderr.log"),
        )
    }

    /// The server's standard output and standard error, whole (every start of it), for
    /// tests that search them.
    pub fn whole_logs(&self) -> String {
        let whole = |name: &str| {
            String::from_utf8_lossy(&std::fs::read(self.root.join(name)).unwrap_or_default())
                .into_owned()
        };
        format!(
            "{}\n{}",
            whole("serve.stdout.log"),
            whole("serve.stderr.log")
        )
    }

    fn log_file(&self, name: &str) -> Result<File, Error> {
        let path = self.root.join(name);
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(format!("open {}", path.display()), e))
    }

    fn spawn_and_wait(&mut self) -> Result<(), StartFailure> {
        let skerry = try_bin("skerry").map_err(StartFailure::Other)?;
        let stdout = self
            .log_file("serve.stdout.log")
            .map_err(StartFailure::Other)?;
        let stderr = self
            .log_file("serve.stderr.log")
            .map_err(StartFailure::Other)?;
        let mut cmd = Command::new(&skerry);
        cmd.arg("serve")
            .arg("--data")
            .arg(self.data_dir())
            .arg("--listen")
            .arg(self.listen.to_string())
            .arg("--mqtt")
            .arg(self.mqtt.to_string())
            .args((!self.local_node).then_some("--no-local-node"))
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        // The environment must not override the flags above.
        for var in SERVE_VARS {
            cmd.env_remove(var);
        }
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let child = cmd.spawn().map_err(|e| {
            StartFailure::Other(Error::io(format!("spawn {}", skerry.display()), e))
        })?;
        self.child = Some(child);
        let listen = self.listen;
        let outcome = wait_for(READY_TIMEOUT, || {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                return Some(Err(format!("skerry serve exited with {status}")));
            }
            healthz(listen).then_some(Ok(()))
        });
        match outcome {
            Some(Ok(())) => {
                // Written before the API answers (the token is made before `serve` is ready).
                self.token =
                    std::fs::read_to_string(skerry_cloud::admin_token::path(&self.data_dir()))
                        .ok()
                        .map(|t| t.trim().to_owned())
                        .filter(|t| !t.is_empty());
                Ok(())
            }
            Some(Err(reason)) => {
                self.child = None;
                Err(StartFailure::Exited(reason))
            }
            None => {
                let _ = self.kill9();
                Err(StartFailure::Other(Error::NotReady {
                    reason: format!(
                        "GET http://{listen}/healthz did not answer 200 within {READY_TIMEOUT:?}"
                    ),
                    logs: self.logs(),
                }))
            }
        }
    }
}

impl Drop for Cloud {
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
