//! `skerry stop | start | restart INSTANCE`: an instance's replicas stopped and started
//! with everything else kept, or restarted node by node as a rollout.

use clap::Args;

use super::client::Client;
use super::error::CliError;
use super::output::{self, OutputFormat};
use super::rollout::{GateArgs, started};
use crate::api::dto::InstanceDto;
use crate::api::rollout_dto::{NodesBody, RestartBody};

/// `skerry stop|start INSTANCE [--node NODE]...`
#[derive(Debug, Clone, Args)]
pub struct StopStartArgs {
    pub instance: String,
    /// Only on this node, by name or id (repeatable); without it, the whole instance,
    /// nodes that run it later included.
    #[arg(long = "node", value_name = "NODE")]
    pub nodes: Vec<String>,
}

/// `skerry restart INSTANCE [--component C]... [--node NODE]...`
#[derive(Debug, Clone, Args)]
pub struct RestartArgs {
    pub instance: String,
    /// Only this component's replicas (repeatable); without it, every component's.
    #[arg(long = "component", value_name = "COMPONENT")]
    pub components: Vec<String>,
    /// Only on this node, by name or id (repeatable); without it, every node the instance
    /// runs on and is not stopped on.
    #[arg(long = "node", value_name = "NODE")]
    pub nodes: Vec<String>,
    #[command(flatten)]
    pub gates: GateArgs,
}

pub async fn stop_or_start(
    args: StopStartArgs,
    stop: bool,
    client: &Client,
    format: OutputFormat,
) -> Result<(), CliError> {
    let verb = if stop { "stop" } else { "start" };
    let i: InstanceDto = client
        .post(&["instances", &args.instance, verb])
        .json(&NodesBody {
            nodes: args.nodes.clone(),
        })
        .fetch()
        .await?;
    match format {
        OutputFormat::Json => output::json(&i),
        OutputFormat::Table => output::line(&render(&i, stop, &args.nodes)),
    }
}

/// What a stop or start did, in a line or two.
pub fn render(i: &InstanceDto, stop: bool, named: &[String]) -> String {
    let what = if named.is_empty() {
        format!("instance {}", i.name)
    } else {
        format!("instance {} on {}", i.name, named.join(", "))
    };
    let stopped = if i.stopped_on.is_empty() {
        "none".to_owned()
    } else {
        i.stopped_on.join(", ")
    };
    let how = if stop {
        "stopped: its replicas stop as each node applies it; version, settings and named \
         storage are kept"
    } else {
        "started: its replicas start again as each node applies it"
    };
    format!(
        "{what} {how}\nstopped on: {stopped} (of {} node(s)); `skerry status {}` shows each \
         replica",
        i.nodes.len(),
        i.name
    )
}

pub async fn restart(
    args: RestartArgs,
    client: &Client,
    format: OutputFormat,
) -> Result<(), CliError> {
    let g = &args.gates;
    let body = RestartBody {
        components: args.components.clone(),
        nodes: args.nodes.clone(),
        batch: g.batch.clone(),
        settle: g.settle.clone(),
        timeout: g.timeout.clone(),
        max_unavailable: g.max_unavailable,
        max_failed: g.max_failed.clone(),
        dry_run: g.dry_run,
    };
    let call = client
        .post(&["instances", &args.instance, "restart"])
        .json(&body);
    started(call, g.dry_run, format).await
}
