//! What the fault tests (`tests/tests/faults_*.rs`) look at after a fault: the node's
//! containers on the engine (with their ids and states), the events of the agent's journal
//! read by `skerry-edge events`, and the events the cloud's log holds for the node.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::agent::Agent;
use crate::binaries::try_bin;
use crate::cli::{cli, deploy, publish};
use crate::cloud::Cloud;
use crate::error::Error;
use crate::http::Api;
use crate::images::busybox_image;

/// One container labelled with a node id, as `docker ps --all` lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Container {
    pub name: String,
    /// The full id.
    pub id: String,
    /// `created`, `running`, `exited`, ...
    pub state: String,
}

/// Every container of `node` on the engine, in any state, sorted by name.
pub fn containers(node: &str) -> Result<Vec<Container>, Error> {
    let out = Command::new("docker")
        .args([
            "ps",
            "--all",
            "--no-trunc",
            "--format",
            "{{.Names}}\t{{.ID}}\t{{.State}}",
            "--filter",
        ])
        .arg(format!("label=io.skerry.node={node}"))
        .output()
        .map_err(|e| Error::io("docker ps", e))?;
    if !out.status.success() {
        return Err(Error::unexpected(format!(
            "docker ps: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let mut found: Vec<Container> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut parts = l.split('\t');
            Some(Container {
                name: parts.next()?.to_owned(),
                id: parts.next()?.to_owned(),
                state: parts.next()?.to_owned(),
            })
        })
        .collect();
    found.sort();
    Ok(found)
}

/// How every fault test begins: a cloud with the environment `plant`, one agent `gw-1`
/// enrolled in it, and the busybox image the sleeper app runs.
#[derive(Debug)]
pub struct Plant {
    pub image: String,
    pub cloud: Cloud,
    pub api: Api,
    pub agent: Agent,
    /// The agent's node id.
    pub node: String,
}

impl Plant {
    pub fn start() -> Result<Plant, Error> {
        let image = busybox_image("1")?;
        let cloud = Cloud::start()?;
        let api = cloud.api()?;
        let out = cli(&cloud, &["env", "create", "plant"]);
        if out.code != 0 {
            return Err(Error::unexpected(format!("env create plant: {out}")));
        }
        let agent = Agent::enroll(&cloud, "plant", "gw-1")?;
        let node = agent.node_id()?;
        Ok(Plant {
            image,
            cloud,
            api,
            agent,
            node,
        })
    }
}

/// Runs `skerry-edge ARGS -o json` and parses its output.
fn edge_json(args: &[&str]) -> Result<Value, Error> {
    let bin = try_bin("skerry-edge")?;
    let out = Command::new(&bin)
        .args(args)
        .args(["-o", "json"])
        .output()
        .map_err(|e| Error::io(format!("run {}", bin.display()), e))?;
    if !out.status.success() {
        return Err(Error::unexpected(format!(
            "skerry-edge {}: exit {:?}\n{}",
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::unexpected(format!("skerry-edge {}: {e}", args.join(" "))))
}

/// `skerry-edge status --data DATA -o json`: opens the journal (with its integrity check)
/// and reports it. An error when the journal does not open.
pub fn journal_status(data: &Path) -> Result<Value, Error> {
    let data = data.to_string_lossy();
    edge_json(&["status", "--data", &data])
}

/// The events the journal holds (`skerry-edge events`), as (node_seq, seq in the cloud's
/// log), in `node_seq` order.
pub fn journal_events(data: &Path) -> Result<Vec<(u64, u64)>, Error> {
    let data = data.to_string_lossy();
    let v = edge_json(&["events", "--data", &data, "--limit", "100000"])?;
    let events = v["events"]
        .as_array()
        .ok_or_else(|| Error::unexpected(format!("skerry-edge events: {v}")))?;
    events
        .iter()
        .map(|e| {
            e["node_seq"]
                .as_u64()
                .zip(e["seq"].as_u64())
                .ok_or_else(|| Error::unexpected(format!("skerry-edge events: {e}")))
        })
        .collect()
}

/// The sequence numbers of every event the cloud's log holds for `node` (id or name),
/// oldest first, read page by page.
pub fn cloud_node_events(api: &Api, node: &str) -> Result<Vec<u64>, Error> {
    let mut all: Vec<u64> = Vec::new();
    loop {
        let after = all.last().copied().unwrap_or(0);
        let page = api.get_json(&format!(
            "/api/v1/events?node={node}&after={after}&limit=10000"
        ))?;
        let page = page
            .as_array()
            .ok_or_else(|| Error::unexpected(format!("events: not an array: {page}")))?;
        if page.is_empty() {
            return Ok(all);
        }
        for e in page {
            all.push(
                e["seq"]
                    .as_u64()
                    .ok_or_else(|| Error::unexpected(format!("event without seq: {e}")))?,
            );
        }
    }
}

/// A one-service app (`APP`, version `VERSION`) whose `replicas` replicas sleep, from
/// `image` (see [`crate::images::busybox_image`]): no init, no port, so a replica's spec
/// depends on the manifest alone. The replicas exit at SIGTERM, so a stop is quick.
pub fn sleeper_manifest(app: &str, version: &str, image: &str, replicas: u32) -> String {
    format!(
        "app: {app}\nversion: {version}\ncomponents:\n  - name: sleeper\n    image: {image}\n    \
         command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; while :; do sleep 1; done\"]\n    \
         replicas: {replicas}\n"
    )
}

/// The node's containers of `instance` (named `skerry-{node}.{instance}.…`).
pub fn containers_of(node: &str, instance: &str) -> Result<Vec<Container>, Error> {
    let dotted = format!(".{instance}.");
    Ok(containers(node)?
        .into_iter()
        .filter(|c| c.name.contains(&dotted))
        .collect())
}

/// Publishes [`sleeper_manifest`] as `sleeper@1.0.0` with `replicas` replicas (the
/// manifest file is written in `dir`).
pub fn publish_sleeper(cloud: &Cloud, dir: &Path, image: &str, replicas: u32) -> Result<(), Error> {
    publish(
        cloud,
        dir,
        "sleeper",
        &sleeper_manifest("sleeper", "1.0.0", image, replicas),
    )
}

/// `skerry deploy sleeper@1.0.0 --env ENV --name INSTANCE --node NODE`.
pub fn deploy_sleeper(cloud: &Cloud, env: &str, instance: &str, node: &str) -> Result<(), Error> {
    deploy(cloud, "sleeper@1.0.0", env, instance, node)
}

/// Points an enrolled agent at other MQTT endpoints (a [`crate::proxy::Proxy`]): rewrites
/// the `mqtt` list of `DATA/identity/node.json`. Takes effect at the agent's next start.
pub fn set_mqtt_endpoint(data: &Path, addr: std::net::SocketAddr) -> Result<(), Error> {
    let path = data.join("identity").join("node.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(path.display(), e))?;
    let mut v: Value = serde_json::from_str(&text)
        .map_err(|e| Error::unexpected(format!("{}: {e}", path.display())))?;
    v["mqtt"] = Value::Array(vec![Value::String(addr.to_string())]);
    let text = serde_json::to_string_pretty(&v)
        .map_err(|e| Error::unexpected(format!("{}: {e}", path.display())))?;
    std::fs::write(&path, text).map_err(|e| Error::io(path.display(), e))
}
