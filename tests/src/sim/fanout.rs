//! One deploy to every node of a fleet, timed: what the `fanout` benchmark and the
//! `fleet_sim` test measure.
//!
//! The clock starts just before `POST /api/v1/instances` (no `nodes`: every node of the
//! environment). Three instants end figures:
//! - **acknowledged**: the last node's journal commit of the `instance.deployed` event (the
//!   agent sends its ack right after the commit returns; [`super::Tally`]);
//! - **started**: the last replica started in a simulated runtime;
//! - **running**: the first poll of `GET /api/v1/instances/NAME` with every replica
//!   `Running` (the cloud's status, from the agents' reports), so it is late by at most
//!   one poll interval, reported beside it.
//!
//! Afterwards the cloud's own view of the acks is checked: every node has lag 0 in `GET
//! /api/v1/nodes`.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::Fleet;
use crate::http::Api;
use crate::wait::wait_for;

/// A one-component app of `image` components, which the simulated runtime "runs".
pub fn manifest(app: &str, replicas: u32) -> String {
    format!(
        "app: {app}\nversion: 1.0.0\ncomponents:\n  - name: main\n    image: sim/idle:1\n    \
         command: [\"/bin/sleep\", \"infinity\"]\n    replicas: {replicas}\n"
    )
}

/// Creates `env` and publishes the app of [`manifest`].
pub fn prepare(api: &Api, env: &str, app: &str, replicas: u32) -> anyhow::Result<()> {
    api.post_json("/api/v1/environments", &json!({ "name": env }))?
        .expect_status(201)?;
    let published = api.post_bytes(
        "/api/v1/apps",
        manifest(app, replicas).into_bytes(),
        "application/yaml",
    )?;
    if !matches!(published.status, 200 | 201) {
        bail!("publish answered {}: {}", published.status, published.body);
    }
    Ok(())
}

/// The figures of one deploy, each from the API call.
#[derive(Debug, Clone)]
pub struct Fanout {
    pub nodes: usize,
    pub replicas: usize,
    /// Until the 201.
    pub post: Duration,
    pub acknowledged: Duration,
    pub started: Duration,
    pub running: Duration,
    /// How often the cloud's status was read.
    pub poll: Duration,
    /// Status reads until all ran.
    pub polls: usize,
}

/// Replicas of `instance` the cloud reports `Running`, and its rows.
pub fn running(api: &Api, instance: &str) -> anyhow::Result<(usize, usize)> {
    let view = api.get_json(&format!("/api/v1/instances/{instance}"))?;
    let rows = view["status"]
        .as_array()
        .context("an instance without status")?;
    Ok((
        rows.iter().filter(|r| r["state"] == "Running").count(),
        rows.len(),
    ))
}

/// Deploys `app` as `instance` to every node of `env` and times it (see the module docs).
pub fn deploy(
    api: &Api,
    fleet: &Fleet,
    env: &str,
    app: &str,
    instance: &str,
    replicas_per_node: usize,
    timeout: Duration,
) -> anyhow::Result<Fanout> {
    let n = fleet.len();
    let replicas = n * replicas_per_node;
    // Reading 10,000 rows costs the cloud time it would spend on the deploy: read less
    // often the larger the fleet.
    let poll = Duration::from_millis((replicas as u64 / 40).clamp(10, 250));
    let body = json!({ "app": app, "version": "1.0.0", "env": env, "name": instance });
    let t0 = Instant::now();
    let answer = api.post_json("/api/v1/instances", &body)?;
    let post = t0.elapsed();
    if answer.status != 201 {
        bail!("deploy answered {}: {}", answer.status, answer.body);
    }
    let mut polls = 0;
    let running_at = loop {
        polls += 1;
        let (ok, rows) = running(api, instance)?;
        if rows > replicas {
            bail!("{instance} has {rows} status rows for {replicas} replicas");
        }
        if ok == replicas {
            break t0.elapsed();
        }
        if t0.elapsed() > timeout {
            bail!(
                "{instance}: {ok} of {replicas} replicas Running after {timeout:?}; {} nodes \
                 committed it, {} replicas started",
                fleet.tally().commits(instance).len(),
                fleet.tally().starts(instance).len()
            );
        }
        std::thread::sleep(poll);
    };
    let committed = fleet
        .wait_committed(instance, Duration::from_secs(5))
        .context("the cloud reports Running, but not every node committed the deploy")?;
    let started = fleet
        .wait_started(instance, replicas, Duration::from_secs(5))
        .context("the cloud reports Running, but not every replica started")?;
    // The cloud's view of the acks.
    let lagging = wait_for(Duration::from_secs(30), || {
        let nodes: Value = api.get_json(&format!("/api/v1/nodes?env={env}")).ok()?;
        let lagging = nodes
            .as_array()?
            .iter()
            .filter(|n| n["lag"] != 0 || !n["instances"].to_string().contains(instance))
            .count();
        (lagging == 0).then_some(())
    });
    if lagging.is_none() {
        bail!("some nodes still lag in the cloud's view 30 s after they all ran {instance}");
    }
    Ok(Fanout {
        nodes: n,
        replicas,
        post,
        acknowledged: committed.saturating_duration_since(t0),
        started: started.saturating_duration_since(t0),
        running: running_at,
        poll,
        polls,
    })
}
