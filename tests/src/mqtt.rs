//! The MQTT clients no one here wrote, as third-party peers of the cloud's MQTT endpoint:
//! Debian's `mosquitto_sub` and `mosquitto_pub` (package `mosquitto-clients`, which
//! `scripts/test.sh` installs), run as child processes with a deadline.
//!
//! - [`ClientKey`]: a P-256 key pair and a PKCS#10 CSR, for a certificate the test has
//!   issued (by the cloud's CA, or by another one).
//! - [`PemFiles`]: a temporary directory for the PEM files the clients read (keys with
//!   mode 0600); it also isolates the clients from any `mosquitto_sub` config file of the
//!   user running the tests.
//! - [`Mosquitto`]: the connection options (host, port, CA, client certificate, client id,
//!   always `-V mqttv311`); [`Mosquitto::sub`] and [`Mosquitto::publish`] start a client,
//!   and [`MosquittoRun::finish`] waits for its end within a deadline, killing it after.
//!
//! ```no_run
//! # async fn example(port: u16, ca: &std::path::Path, crt: &std::path::Path, key: &std::path::Path) {
//! use std::time::Duration;
//! use skerry_tests::mqtt::Mosquitto;
//!
//! let client = Mosquitto::new("127.0.0.1", port, ca).with_cert(crt, key);
//! let out = client
//!     .publish("skerry/v1/nodes/ID/up", b"hello", &[])
//!     .unwrap()
//!     .finish(Duration::from_secs(10))
//!     .await
//!     .unwrap();
//! assert_eq!(out.code, Some(0), "{out}");
//! # }
//! ```

use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::OsStringExt as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::process::{Child, Command};

use crate::error::Error;

/// The subscriber client.
pub const MOSQUITTO_SUB: &str = "mosquitto_sub";
/// The publisher client.
pub const MOSQUITTO_PUB: &str = "mosquitto_pub";

/// A client's key pair and its certificate signing request.
#[derive(Debug)]
pub struct ClientKey {
    key: KeyPair,
    csr_pem: String,
}

impl ClientKey {
    /// A new P-256 key pair and a CSR whose subject is `name` (the CA decides the subject
    /// of the certificate it issues).
    pub fn generate(name: &str) -> Result<ClientKey, Error> {
        let key = KeyPair::generate().map_err(|e| Error::unexpected(format!("key pair: {e}")))?;
        let mut params = CertificateParams::new(Vec::<String>::new())
            .map_err(|e| Error::unexpected(format!("CSR parameters: {e}")))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        let csr_pem = params
            .serialize_request(&key)
            .and_then(|csr| csr.pem())
            .map_err(|e| Error::unexpected(format!("CSR: {e}")))?;
        Ok(ClientKey { key, csr_pem })
    }

    /// The key pair.
    pub fn key_pair(&self) -> &KeyPair {
        &self.key
    }

    /// The CSR, PEM.
    pub fn csr_pem(&self) -> &str {
        &self.csr_pem
    }

    /// The private key, PKCS#8 PEM (for a file the client reads; never print it).
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }
}

/// A temporary directory for the clients' PEM files, removed on drop.
#[derive(Debug)]
pub struct PemFiles {
    dir: tempfile::TempDir,
}

impl PemFiles {
    pub fn new() -> Result<PemFiles, Error> {
        let dir = tempfile::Builder::new()
            .prefix("skerry-mqtt-")
            .tempdir()
            .map_err(|e| Error::io("create a temporary directory", e))?;
        Ok(PemFiles { dir })
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a certificate (mode 0644) and returns its path.
    pub fn write_cert(&self, name: &str, pem: &str) -> Result<PathBuf, Error> {
        self.write(name, pem, 0o644)
    }

    /// Writes a private key (mode 0600) and returns its path.
    pub fn write_key(&self, name: &str, pem: &str) -> Result<PathBuf, Error> {
        self.write(name, pem, 0o600)
    }

    fn write(&self, name: &str, pem: &str, mode: u32) -> Result<PathBuf, Error> {
        let path = self.dir.path().join(name);
        std::fs::write(&path, pem)
            .map_err(|e| Error::io(format!("write {}", path.display()), e))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(format!("chmod {}", path.display()), e))?;
        Ok(path)
    }
}

/// How a mosquitto client reaches a TLS MQTT endpoint, and as whom.
#[derive(Debug, Clone)]
pub struct Mosquitto {
    host: String,
    port: u16,
    cafile: PathBuf,
    cert: Option<(PathBuf, PathBuf)>,
    client_id: Option<String>,
    config_home: Option<PathBuf>,
}

impl Mosquitto {
    /// A client of `host:port` that trusts the CA in `cafile` and shows no certificate.
    pub fn new(host: &str, port: u16, cafile: &Path) -> Mosquitto {
        Mosquitto {
            host: host.to_owned(),
            port,
            cafile: cafile.to_owned(),
            cert: None,
            client_id: None,
            config_home: cafile.parent().map(Path::to_owned),
        }
    }

    /// Shows this client certificate (`--cert`, `--key`).
    pub fn with_cert(mut self, cert: &Path, key: &Path) -> Mosquitto {
        self.cert = Some((cert.to_owned(), key.to_owned()));
        self
    }

    /// Connects with this client id (`-i`).
    pub fn with_client_id(mut self, id: &str) -> Mosquitto {
        self.client_id = Some(id.to_owned());
        self
    }

    fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "-h".into(),
            self.host.clone().into(),
            "-p".into(),
            self.port.to_string().into(),
            "-V".into(),
            "mqttv311".into(),
            "--cafile".into(),
            self.cafile.clone().into(),
        ];
        if let Some((cert, key)) = &self.cert {
            args.extend(["--cert".into(), cert.into(), "--key".into(), key.into()]);
        }
        if let Some(id) = &self.client_id {
            args.extend(["-i".into(), id.into()]);
        }
        args
    }

    fn start(&self, program: &str, args: Vec<OsString>) -> Result<MosquittoRun, Error> {
        let command = format!(
            "{program} {}",
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let mut cmd = Command::new(program);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // The clients read `$XDG_CONFIG_HOME/mosquitto_sub` (or `..._pub`) for default
        // options: point it at the test's own directory, so nothing of the user's applies.
        if let Some(home) = &self.config_home {
            cmd.env("XDG_CONFIG_HOME", home);
        }
        let child = cmd.spawn().map_err(|e| {
            Error::io(
                format!("start `{program}` (Debian package mosquitto-clients)"),
                e,
            )
        })?;
        Ok(MosquittoRun { child, command })
    }

    /// Starts `mosquitto_sub -t TOPIC EXTRA...`.
    pub fn sub(&self, topic: &str, extra: &[&str]) -> Result<MosquittoRun, Error> {
        let mut args = self.args();
        args.extend(["-t".into(), topic.into()]);
        args.extend(extra.iter().map(OsString::from));
        self.start(MOSQUITTO_SUB, args)
    }

    /// Starts `mosquitto_pub -t TOPIC -m MESSAGE EXTRA...`.
    pub fn publish(
        &self,
        topic: &str,
        message: &[u8],
        extra: &[&str],
    ) -> Result<MosquittoRun, Error> {
        let mut args = self.args();
        args.extend(["-t".into(), topic.into(), "-m".into()]);
        args.push(OsString::from_vec(message.to_vec()));
        args.extend(extra.iter().map(OsString::from));
        self.start(MOSQUITTO_PUB, args)
    }
}

/// A running mosquitto client.
#[derive(Debug)]
pub struct MosquittoRun {
    child: Child,
    command: String,
}

/// What a finished (or killed) mosquitto client did.
#[derive(Debug, Clone)]
pub struct MosquittoOutput {
    /// The command line, for messages (file paths, never file contents).
    pub command: String,
    /// The exit status; `None` when a signal ended it.
    pub code: Option<i32>,
    /// Standard output, as bytes (the messages `mosquitto_sub` received).
    pub stdout: Vec<u8>,
    pub stderr: String,
    /// The client was still running at the deadline and was killed.
    pub timed_out: bool,
}

impl fmt::Display for MosquittoOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "$ {}", self.command)?;
        match (self.code, self.timed_out) {
            (_, true) => writeln!(f, "[killed at the deadline]")?,
            (Some(code), false) => writeln!(f, "[exit {code}]")?,
            (None, false) => writeln!(f, "[ended by a signal]")?,
        }
        writeln!(
            f,
            "stdout: {}",
            String::from_utf8_lossy(&self.stdout).trim_end()
        )?;
        write!(f, "stderr: {}", self.stderr.trim_end())
    }
}

async fn read_all(pipe: Option<impl AsyncRead + Unpin>) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(mut pipe) = pipe {
        let _ = pipe.read_to_end(&mut buf).await;
    }
    buf
}

impl MosquittoRun {
    /// The operating system's id of the client process.
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// Waits for the client to end, for at most `timeout`; kills it at the deadline.
    pub async fn finish(mut self, timeout: Duration) -> Result<MosquittoOutput, Error> {
        let stdout = tokio::spawn(read_all(self.child.stdout.take()));
        let stderr = tokio::spawn(read_all(self.child.stderr.take()));
        let (status, timed_out) = match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => (status, false),
            Err(_) => {
                let _ = self.child.start_kill();
                (self.child.wait().await, true)
            }
        };
        let status = status.map_err(|e| Error::io(format!("wait for `{}`", self.command), e))?;
        let stdout = stdout.await.unwrap_or_default();
        let stderr = stderr.await.unwrap_or_default();
        Ok(MosquittoOutput {
            command: self.command,
            code: status.code(),
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            timed_out,
        })
    }
}
