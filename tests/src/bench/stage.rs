//! The stage the container scenarios run on: a real `skerry serve`, one real agent with the
//! Docker runtime, and the REST API, with deploy and "all running" timed from outside.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::agent::Agent;
use crate::cli::cli;
use crate::cloud::Cloud;
use crate::http::Api;
use crate::wait::wait_for;

/// The environment every stage deploys into.
pub const ENV: &str = "bench";

/// A cloud, one enrolled agent and an API client.
#[derive(Debug)]
pub struct Stage {
    pub cloud: Cloud,
    pub agent: Agent,
    pub api: Api,
    dir: tempfile::TempDir,
}

impl Stage {
    /// Starts a cloud and enrolls one agent called `node` with `profile` (a built-in name
    /// or a file).
    pub fn start(node: &str, profile: &str) -> anyhow::Result<Stage> {
        let cloud = Cloud::start()?;
        let out = cli(&cloud, &["env", "create", ENV]);
        if out.code != 0 {
            bail!("env create failed: {out}");
        }
        let agent = Agent::enroll_profile(&cloud, ENV, node, profile, &[])?;
        let api = cloud.api()?;
        let dir = tempfile::tempdir()?;
        Ok(Stage {
            cloud,
            agent,
            api,
            dir,
        })
    }

    /// Publishes an app from its manifest.
    pub fn publish(&self, manifest: &str) -> anyhow::Result<()> {
        let file = self.dir.path().join("app.yaml");
        std::fs::write(&file, manifest)?;
        let path = file
            .to_str()
            .context("a temporary path that is not UTF-8")?;
        let out = cli(&self.cloud, &["app", "publish", "-f", path]);
        if out.code != 0 {
            bail!("publish failed: {out}");
        }
        Ok(())
    }

    /// Deploys `app@version` as `name` on the agent's node; returns when the API answered.
    pub fn deploy(&self, app: &str, version: &str, name: &str) -> anyhow::Result<()> {
        let body = json!({
            "app": app,
            "version": version,
            "env": ENV,
            "name": name,
            "nodes": [{"node": self.agent.name()}],
        });
        let answer = self.api.post_json("/api/v1/instances", &body)?;
        if answer.status != 201 {
            bail!("deploy answered {}: {}", answer.status, answer.body);
        }
        Ok(())
    }

    /// The replicas of `instance` in state `Running`, as the cloud reports them.
    pub fn running(&self, instance: &str) -> anyhow::Result<usize> {
        let view: Value = self
            .api
            .get_json(&format!("/api/v1/instances/{instance}"))?;
        Ok(view["status"].as_array().map_or(0, |rows| {
            rows.iter().filter(|r| r["state"] == "Running").count()
        }))
    }

    /// Waits until `replicas` replicas of `instance` run, polling every 5 ms; the time
    /// since `from`.
    pub fn wait_running(
        &self,
        instance: &str,
        replicas: usize,
        from: Instant,
        deadline: Duration,
    ) -> anyhow::Result<Duration> {
        loop {
            if self.running(instance)? >= replicas {
                return Ok(from.elapsed());
            }
            if from.elapsed() > deadline {
                bail!(
                    "{instance}: {} of {replicas} replicas running after {deadline:?}\n{}",
                    self.running(instance)?,
                    self.agent.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Undeploys `instance` and waits until its containers are gone from the engine.
    pub fn undeploy(&self, instance: &str) -> anyhow::Result<()> {
        let answer = self.api.delete(&format!("/api/v1/instances/{instance}"))?;
        if answer.status != 200 {
            bail!("undeploy answered {}: {}", answer.status, answer.body);
        }
        let filter = format!("name=.{instance}.");
        wait_for(Duration::from_secs(120), || {
            let out = std::process::Command::new("docker")
                .args(["ps", "-aq", "--filter", &filter])
                .output()
                .ok()?;
            out.stdout.is_empty().then_some(())
        })
        .with_context(|| format!("the containers of {instance} were not removed"))
    }
}

/// A shell command for a service that exits at once on SIGTERM.
pub fn idle_command() -> &'static str {
    r#"["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]"#
}

/// The median of some durations.
pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

/// The number after `key` (say `bytes_received=`) on a line of the agent's log.
pub fn log_number(line: &str, key: &str) -> Option<u64> {
    let start = line.find(key)? + key.len();
    let rest = &line[start..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}
