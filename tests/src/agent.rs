//! [`Agent`]: a real `skerry-edge run` process, enrolled with a cloud, in its own temporary
//! directory.
//!
//! The first start enrolls with a token from `skerry node token`; later starts need only
//! `--data`. Standard error (the agent's log) is appended to `DIR/agent.log`, so restarts
//! keep the earlier lines. [`Agent::set_env`] gives later starts extra environment. Dropping an [`Agent`] kills the process and removes every
//! container, network and volume labelled with its node id.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::binaries::try_bin;
use crate::cli::cli;
use crate::cloud::Cloud;
use crate::error::Error;
use crate::images::DockerCleanup;
use crate::wait::wait_for;

/// A running (or killed) `skerry-edge run`.
#[derive(Debug)]
pub struct Agent {
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    name: String,
    profile: String,
    extra: Vec<String>,
    /// Extra environment for the next starts ([`Agent::set_env`]).
    env: Vec<(String, String)>,
    child: Option<Child>,
    cleanup: Option<DockerCleanup>,
}

impl Agent {
    /// Enrolls a new node called `name` in `env` of `cloud`, and runs it.
    pub fn enroll(cloud: &Cloud, env: &str, name: &str) -> Result<Agent, Error> {
        Self::enroll_with(cloud, env, name, &[])
    }

    /// Like [`Agent::enroll`], with extra `run` flags (`--runtime process`).
    pub fn enroll_with(
        cloud: &Cloud,
        env: &str,
        name: &str,
        extra: &[&str],
    ) -> Result<Agent, Error> {
        Self::enroll_profile(cloud, env, name, "x86-64-host", extra)
    }

    /// Like [`Agent::enroll_with`], with a firmware profile: a built-in name or a TOML
    /// file (`--profile`), given at enrollment and at every start.
    pub fn enroll_profile(
        cloud: &Cloud,
        env: &str,
        name: &str,
        profile: &str,
        extra: &[&str],
    ) -> Result<Agent, Error> {
        let dir = tempfile::Builder::new()
            .prefix("skerry-agent-")
            .tempdir()
            .map_err(|e| Error::io("create a temporary directory", e))?;
        let root = dir.path().to_path_buf();
        let token = cli(cloud, &["node", "token", "--env", env]);
        if token.code != 0 {
            return Err(Error::unexpected(format!("node token failed:\n{token}")));
        }
        let mut agent = Agent {
            dir: Some(dir),
            root,
            name: name.to_owned(),
            profile: profile.to_owned(),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            env: Vec::new(),
            child: None,
            cleanup: None,
        };
        agent.spawn(Some((&cloud.url(), token.stdout.trim())))?;
        let id = wait_for(Duration::from_secs(30), || agent.node_id().ok()).ok_or_else(|| {
            Error::unexpected(format!("the agent did not enroll:\n{}", agent.logs()))
        })?;
        agent.cleanup = Some(DockerCleanup::new(&id));
        Ok(agent)
    }

    /// A node of `env` called `name`, enrolled the way agents enrolled before nodes had
    /// keys for secrets, and not started: the agent's own enrollment code
    /// (`skerry_edge::enroll::request`, which sends no key) and `Identity::save`, so
    /// neither the node's identity nor the cloud holds a key. [`Agent::restart`] runs it
    /// (with `--data`, `--name`, the x86-64-host profile and `extra`).
    pub fn enrolled_without_secrets_key(
        cloud: &Cloud,
        env: &str,
        name: &str,
        extra: &[&str],
    ) -> Result<Agent, Error> {
        let dir = tempfile::Builder::new()
            .prefix("skerry-agent-")
            .tempdir()
            .map_err(|e| Error::io("create a temporary directory", e))?;
        let root = dir.path().to_path_buf();
        let token = cli(cloud, &["node", "token", "--env", env]);
        if token.code != 0 {
            return Err(Error::unexpected(format!("node token failed:\n{token}")));
        }
        let profile = "x86-64-host";
        let builtin = skerry_shared::profile::builtin(profile)
            .ok_or_else(|| Error::unexpected(format!("no builtin profile {profile}")))?;
        let node_name = skerry_shared::ids::Name::parse(name)
            .map_err(|e| Error::unexpected(format!("node name {name}: {e}")))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("start a tokio runtime", e))?;
        let identity = rt
            .block_on(skerry_edge::enroll::request(
                &cloud.url(),
                token.stdout.trim(),
                &node_name,
                &builtin,
            ))
            .map_err(|e| Error::unexpected(format!("enrollment without a key: {e}")))?;
        let agent = Agent {
            dir: Some(dir),
            root,
            name: name.to_owned(),
            profile: profile.to_owned(),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            env: Vec::new(),
            child: None,
            cleanup: Some(DockerCleanup::new(identity.node_id())),
        };
        identity
            .save(&agent.data_dir())
            .map_err(|e| Error::unexpected(format!("save the identity: {e}")))?;
        Ok(agent)
    }

    /// `--data`.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node id the cloud gave at enrollment.
    pub fn node_id(&self) -> Result<String, Error> {
        let path = self.data_dir().join("identity").join("node.json");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(path.display(), e))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::unexpected(format!("{}: {e}", path.display())))?;
        v["node_id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::unexpected(format!("{}: no node_id", path.display())))
    }

    fn spawn(&mut self, enroll: Option<(&str, &str)>) -> Result<(), Error> {
        let bin = try_bin("skerry-edge")?;
        let path = self.root.join("agent.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(path.display(), e))?;
        let mut cmd = Command::new(&bin);
        cmd.arg("run")
            .arg("--data")
            .arg(self.data_dir())
            .args(["--name", &self.name, "--profile", &self.profile])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if let Some((cloud, token)) = enroll {
            cmd.args(["--cloud", cloud, "--token", token]);
        }
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        self.child = Some(
            cmd.spawn()
                .map_err(|e| Error::io(format!("spawn {}", bin.display()), e))?,
        );
        Ok(())
    }

    /// Kills the agent with SIGKILL (its apps keep running) and reaps it.
    pub fn kill9(&mut self) -> Result<(), Error> {
        if let Some(mut child) = self.child.take() {
            child
                .kill()
                .map_err(|e| Error::io("kill -9 skerry-edge", e))?;
            child
                .wait()
                .map_err(|e| Error::io("wait for skerry-edge", e))?;
        }
        Ok(())
    }

    /// Sets an environment variable (`DOCKER_HOST`, say) for the next
    /// [`Agent::restart`]; it stays set for later ones.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
    }

    /// Starts the agent again on the same data directory (killing it first if it runs).
    pub fn restart(&mut self) -> Result<(), Error> {
        self.kill9()?;
        self.spawn(None)
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The peak resident set size of the running process (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> Option<u64> {
        crate::procfs::peak_rss(self.pid()?)
    }

    /// The resident set size of the running process now (`VmRSS`), in bytes.
    pub fn rss(&self) -> Option<u64> {
        crate::procfs::rss(self.pid()?)
    }

    /// The agent's log so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.root.join("agent.log")).unwrap_or_default()
    }

    /// The temporary directory.
    pub fn dir(&self) -> &Path {
        &self.root
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.kill9();
        if std::thread::panicking() {
            let logs = self.logs();
            let start = logs.len().saturating_sub(32 * 1024);
            eprintln!(
                "--- skerry-edge log ({}) ---\n{}",
                self.root.display(),
                &logs[start..]
            );
            if std::env::var_os("SKERRY_KEEP_TEST_DATA").is_some()
                && let Some(dir) = self.dir.take()
            {
                eprintln!("kept the agent's directory: {}", dir.keep().display());
            }
        }
        // DockerCleanup's own drop removes the node's containers, networks and volumes.
        self.cleanup.take();
    }
}

/// [`publish`](crate::cli::publish)es `yaml` (app `app`, version 1.0.0) from the agent's directory and
/// [`deploy`](crate::cli::deploy)s it in `env` on that agent's node under a fresh instance name
/// ([`crate::images::unique`]`(app)`), which it returns.
pub fn publish_and_deploy(
    cloud: &Cloud,
    agent: &Agent,
    env: &str,
    app: &str,
    yaml: &str,
) -> Result<String, Error> {
    crate::cli::publish(cloud, agent.dir(), app, yaml)?;
    let instance = crate::images::unique(app);
    crate::cli::deploy(cloud, &format!("{app}@1.0.0"), env, &instance, agent.name())?;
    Ok(instance)
}
