//! `wire`: the bytes one deploy of a 5-component app costs on the link, beside the same
//! event as JSON.
//!
//! A real cloud records the deploy; the scenario reads the event back from the API, rebuilds
//! the [`NodeEvent`] the node receives (its `node_seq`, the global `seq`, the time and the
//! payload), packs it the way the cloud's sync does ([`frame::events_frames`], then
//! [`frame::encode_down`]: the version byte and postcard) and counts the bytes. The baseline
//! is the same `NodeEvent` encoded by `serde_json`, without whitespace. The agent's own
//! count of the bytes it received is printed beside them as a check that the frame measured
//! is the one that went down.

use std::time::Duration;

use anyhow::{Context, bail};
use skerry_shared::clock::Timestamp;
use skerry_shared::event::{EventPayload, NodeEvent};
use skerry_shared::frame;

use super::report::{Better, Figure, Report};
use super::stage::{Stage, log_number};
use crate::wait::wait_for;

#[derive(Debug, clap::Args)]
pub struct Args {}

/// Five components with the fields a real gateway app uses: an init with storage, a
/// database with resources, ports, storage, a health check and a log directory, two
/// services that depend on it, and a cron job.
pub const MANIFEST: &str = r#"app: plant
version: 2.3.1
description: Line monitoring for plant A
components:
  - name: migrate
    kind: init
    image: plant/db:2.3.1
    command: ["/bin/migrate", "--to", "latest"]
    storage: [ { name: data, container: /data } ]
  - name: db
    image: plant/db:2.3.1
    command: ["/bin/db", "--port", "6379"]
    depends_on: [migrate]
    env: { TZ: UTC, DB_CACHE: "64" }
    resources:
      cpu: { request: 100m, limit: 500m }
      memory: { request: 32Mi, limit: 64Mi }
    ports:
      - { container: 6379, expose: cluster }
    storage: [ { name: data, container: /data } ]
    log_dir: /var/log/db
    health:
      command: ["/bin/sh", "-c", "test -f /tmp/ready"]
      interval: 5s
      timeout: 2s
      retries: 3
  - name: ingest
    image: plant/ingest:2.3.1
    command: ["/bin/ingest", "--bus", "modbus://10.0.0.7:502"]
    depends_on: [db]
    env: { DB_HOST: db, SAMPLE_MS: "250" }
    resources:
      memory: { limit: 48Mi }
    log_dir: /var/log/ingest
  - name: api
    image: plant/api:2.3.1
    depends_on: [db]
    replicas: 2
    env: { DB_HOST: db }
    ports:
      - { container: 8080, expose: nodeport }
  - name: compact
    kind: job
    image: plant/db:2.3.1
    command: ["/bin/compact"]
    schedule: "*/15 * * * *"
"#;

/// The deploy event of `instance` as the node `node_id` receives it.
fn node_event(stage: &Stage, node_id: &str, instance: &str) -> anyhow::Result<NodeEvent> {
    let events = stage.api.get_json(&format!(
        "/api/v1/events?instance={instance}&node={node_id}"
    ))?;
    let event = events
        .as_array()
        .and_then(|all| all.iter().find(|e| e["kind"] == "instance.deployed"))
        .with_context(|| format!("no instance.deployed event for {instance}: {events}"))?;
    let node_seq = event["node_seqs"]
        .as_array()
        .and_then(|all| all.iter().find(|n| n["node"] == node_id))
        .and_then(|n| n["node_seq"].as_u64())
        .context("the deploy event has no node_seq for the node")?;
    let time = event["time"].as_str().context("an event without a time")?;
    Ok(NodeEvent {
        node_seq,
        seq: event["seq"].as_u64().context("an event without a seq")?,
        time: Timestamp::parse_rfc3339(time).map_err(anyhow::Error::msg)?,
        payload: serde_json::from_value::<EventPayload>(event["payload"].clone())?,
    })
}

/// The agent's `bytes_received` on its "committed" line for `node_seq`, minus the one
/// before: the down bytes that carried it (and any heartbeat answer in between).
fn agent_received(logs: &str, node_seq: u64) -> Option<u64> {
    let mut before = None;
    for line in logs.lines().filter(|l| l.contains("committed")) {
        let received = log_number(line, "bytes_received=")?;
        if log_number(line, "through=") == Some(node_seq) {
            return Some(received - before.unwrap_or(0));
        }
        before = Some(received);
    }
    None
}

pub fn run(_: &Args) -> anyhow::Result<Report> {
    let stage = Stage::start("bench-wire", "x86-64-host")?;
    stage.publish(MANIFEST)?;
    stage.deploy("plant", "2.3.1", "plant-a")?;
    let node_id = stage.agent.node_id()?;
    let event = node_event(&stage, &node_id, "plant-a")?;
    let frames = frame::events_frames(std::slice::from_ref(&event))?;
    let mut wire = 0;
    for f in &frames {
        wire += frame::encode_down(f)?.len();
    }
    let json = serde_json::to_vec(&event)?.len();
    if json == 0 || wire == 0 {
        bail!("nothing encoded");
    }
    let received = wait_for(Duration::from_secs(30), || {
        agent_received(&stage.agent.logs(), event.node_seq)
    });
    let components = match &event.payload {
        EventPayload::InstanceDeployed { instance } => instance.manifest.components.len(),
        _ => 0,
    };
    let ratio = wire as f64 / json as f64;
    let mut report = Report::new("wire");
    report
        .setup(
            "app",
            format!("{components} components (init, 3 services, job)"),
        )
        .setup("manifest YAML", format!("{} bytes", MANIFEST.len()))
        .setup("frames", frames.len())
        .setup(
            "agent's bytes received for the commit",
            received.map_or("not seen".to_owned(), |b| b.to_string()),
        );
    report
        .compare(
            Figure::new("deploy event as a down frame (postcard)", wire as f64, "B"),
            Figure::new("the same NodeEvent as serde_json", json as f64, "B"),
            Better::Lower,
        )
        .target("<= 40% of JSON", ratio <= 0.4);
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_agent_count_is_the_difference_between_commits() {
        let logs = "x committed through=1 events=1 snapshot=false bytes_received=216\n\
                    y committed through=2 events=1 snapshot=false bytes_received=1016\n";
        assert_eq!(agent_received(logs, 2), Some(800));
        assert_eq!(agent_received(logs, 1), Some(216));
        assert_eq!(agent_received(logs, 3), None);
    }

    #[test]
    fn the_manifest_is_valid_and_has_five_components() {
        let app = skerry_shared::manifest::parse_manifest(MANIFEST).unwrap();
        assert_eq!(app.components.len(), 5);
    }
}
