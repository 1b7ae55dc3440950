//! `skerry upgrade | rollback | rollout status|pause|resume|abort`: rollouts of an instance
//! in health-gated batches.

use clap::{Args, Subcommand};

use super::client::Client;
use super::error::CliError;
use super::output::{self, OutputFormat, Table};
use super::values;
use crate::api::dto::DeployNode;
use crate::api::rollout_dto::{
    NodeReasonDto, PolicyDto, RollbackBody, RolloutActionBody, RolloutDto, RolloutPlanDto,
    UpgradeBody,
};

/// How a rollout proceeds (`upgrade`, `rollback`).
#[derive(Debug, Clone, Args)]
pub struct PolicyArgs {
    #[command(flatten)]
    pub gates: GateArgs,
    /// On a failed batch, leave the changed nodes on the new version.
    #[arg(long)]
    pub no_auto_rollback: bool,
}

/// The batches and health gates of a rollout (`upgrade`, `rollback`, `restart`).
#[derive(Debug, Clone, Args)]
pub struct GateArgs {
    /// Cumulative shares of the instance's nodes, one batch each (default: 1,100%).
    #[arg(long, value_name = "1,10%,100%")]
    pub batch: Option<String>,
    /// How long a batch's replicas must stay healthy (default: 30s).
    #[arg(long, value_name = "DURATION", value_parser = values::duration)]
    pub settle: Option<String>,
    /// How long a batch may take before it fails (default: 10m).
    #[arg(long, value_name = "DURATION", value_parser = values::duration)]
    pub timeout: Option<String>,
    /// How many nodes change at once inside a batch (default: the whole batch; restart: 1).
    #[arg(long, value_name = "N")]
    pub max_unavailable: Option<u32>,
    /// How many nodes of a batch may fail and the batch still pass (default: 0).
    #[arg(long, value_name = "N|P%")]
    pub max_failed: Option<String>,
    /// Show the batches, and record nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `skerry upgrade INSTANCE [--to VERSION] ...`
#[derive(Debug, Clone, Args)]
pub struct UpgradeArgs {
    pub instance: String,
    /// The app version to move to; without it, only --set and --node weights change.
    #[arg(long = "to", value_name = "VERSION")]
    pub to: Option<String>,
    /// Override a component's environment variable (repeatable; merged into the current).
    #[arg(long = "set", value_name = "COMPONENT.VAR=VALUE", value_parser = values::env_override)]
    pub set: Vec<String>,
    /// A new weight of a node the instance runs on (repeatable).
    #[arg(long = "node", value_name = "NODE=WEIGHT", value_parser = values::node_choice)]
    pub nodes: Vec<DeployNode>,
    #[command(flatten)]
    pub policy: PolicyArgs,
}

/// `skerry rollback INSTANCE ...`
#[derive(Debug, Clone, Args)]
pub struct RollbackArgs {
    pub instance: String,
    #[command(flatten)]
    pub policy: PolicyArgs,
}

/// `skerry rollout status|pause|resume|abort INSTANCE`
#[derive(Debug, Clone, Subcommand)]
pub enum RolloutCommand {
    /// The running rollout (or the last one): batches, nodes done, waiting and failed.
    Status { instance: String },
    /// Start no new batch or wave until resumed.
    Pause { instance: String },
    /// Go on with a paused rollout.
    Resume { instance: String },
    /// Stop the rollout where it is (the nodes changed keep the new version).
    Abort { instance: String },
}

pub async fn upgrade(
    args: UpgradeArgs,
    client: &Client,
    format: OutputFormat,
) -> Result<(), CliError> {
    let p = &args.policy;
    let body = UpgradeBody {
        to: args.to.clone(),
        batch: p.gates.batch.clone(),
        settle: p.gates.settle.clone(),
        timeout: p.gates.timeout.clone(),
        max_unavailable: p.gates.max_unavailable,
        max_failed: p.gates.max_failed.clone(),
        no_auto_rollback: p.no_auto_rollback,
        set: args.set.clone(),
        nodes: args.nodes.clone(),
        dry_run: p.gates.dry_run,
    };
    let call = client
        .post(&["instances", &args.instance, "upgrade"])
        .json(&body);
    started(call, p.gates.dry_run, format).await
}

pub async fn rollback(
    args: RollbackArgs,
    client: &Client,
    format: OutputFormat,
) -> Result<(), CliError> {
    let p = &args.policy;
    let body = RollbackBody {
        batch: p.gates.batch.clone(),
        settle: p.gates.settle.clone(),
        timeout: p.gates.timeout.clone(),
        max_unavailable: p.gates.max_unavailable,
        max_failed: p.gates.max_failed.clone(),
        no_auto_rollback: p.no_auto_rollback,
        dry_run: p.gates.dry_run,
    };
    let call = client
        .post(&["instances", &args.instance, "rollback"])
        .json(&body);
    started(call, p.gates.dry_run, format).await
}

pub(super) async fn started(
    call: super::client::Call,
    dry_run: bool,
    format: OutputFormat,
) -> Result<(), CliError> {
    if dry_run {
        let plan: RolloutPlanDto = call.fetch().await?;
        return match format {
            OutputFormat::Json => output::json(&plan),
            OutputFormat::Table => output::line(&render_plan(&plan)),
        };
    }
    let r: RolloutDto = call.fetch().await?;
    match format {
        OutputFormat::Json => output::json(&r),
        OutputFormat::Table => output::line(&format!(
            "rollout {} of {}: {} {} on {} node(s) in {} batch(es); \
             `skerry rollout status {}` follows it",
            r.id,
            r.instance,
            r.kind,
            versions(&r.kind, &r.app, &r.from_version, &r.to_version),
            r.nodes,
            r.batches.len(),
            r.instance
        )),
    }
}

pub async fn rollout(
    cmd: RolloutCommand,
    client: &Client,
    format: OutputFormat,
) -> Result<(), CliError> {
    let (instance, action) = match cmd {
        RolloutCommand::Status { instance } => (instance, None),
        RolloutCommand::Pause { instance } => (instance, Some("pause")),
        RolloutCommand::Resume { instance } => (instance, Some("resume")),
        RolloutCommand::Abort { instance } => (instance, Some("abort")),
    };
    let call = match action {
        None => client.get(&["instances", &instance, "rollout"]),
        Some(action) => {
            client
                .post(&["instances", &instance, "rollout"])
                .json(&RolloutActionBody {
                    action: action.to_owned(),
                })
        }
    };
    let r: RolloutDto = call.fetch().await?;
    match format {
        OutputFormat::Json => output::json(&r),
        OutputFormat::Table => output::line(&render_rollout(&r)),
    }
}

fn policy_line(p: &PolicyDto) -> String {
    format!(
        "policy: batches {}, settle {}, timeout {}, max-unavailable {}, max-failed {}, \
         auto-rollback {}",
        p.batches.join(","),
        p.settle,
        p.timeout,
        p.max_unavailable
            .map_or_else(|| "the batch".to_owned(), |n| n.to_string()),
        p.max_failed,
        if p.auto_rollback { "yes" } else { "no" }
    )
}

fn list_or_dash(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(",")
    }
}

fn reasons(label: &str, list: &[NodeReasonDto], lines: &mut Vec<String>) {
    for n in list {
        lines.push(format!("{label}: {}: {}", n.node, n.reason));
    }
}

/// `rollout status` as a table: a heading, the policy, one row per batch, then every node
/// waiting and failed with why.
pub fn render_rollout(r: &RolloutDto) -> String {
    let mut lines = vec![
        format!(
            "rollout {} of {}: {} {}: {}{}",
            r.id,
            r.instance,
            r.kind,
            versions(&r.kind, &r.app, &r.from_version, &r.to_version),
            r.state,
            r.reason
                .as_deref()
                .map(|why| format!(" ({why})"))
                .unwrap_or_default()
        ),
        format!("nodes: {} of {} done", r.done, r.nodes),
        policy_line(&r.policy),
    ];
    let mut table = Table::new(&[
        "BATCH", "NODES", "STATE", "DURATION", "PASSED", "FAILED", "WAITING",
    ]);
    for b in &r.batches {
        table.row(vec![
            b.batch.to_string(),
            list_or_dash(&b.nodes),
            b.state.clone(),
            b.duration_ms.map_or_else(
                || "-".to_owned(),
                |ms| format!("{:.1}s", ms as f64 / 1000.0),
            ),
            list_or_dash(&b.passed),
            list_or_dash(&b.failed.iter().map(|f| f.node.clone()).collect::<Vec<_>>()),
            list_or_dash(&b.waiting.iter().map(|w| w.node.clone()).collect::<Vec<_>>()),
        ]);
    }
    lines.push(table.render().trim_end().to_owned());
    reasons("waiting", &r.waiting, &mut lines);
    reasons("failed", &r.failed, &mut lines);
    lines.join("\n")
}

/// `APP@FROM to TO`, or `APP@VERSION` for a restart (which keeps the version).
fn versions(kind: &str, app: &str, from: &str, to: &str) -> String {
    if kind == "restart" {
        format!("{app}@{from}")
    } else {
        format!("{app}@{from} to {to}")
    }
}

/// The plan of a dry run: the batches and their nodes.
pub fn render_plan(p: &RolloutPlanDto) -> String {
    let mut lines = vec![
        format!(
            "{} of {}: {}",
            p.kind,
            p.instance,
            versions(&p.kind, &p.app, &p.from_version, &p.to_version)
        ),
        policy_line(&p.policy),
    ];
    for (i, nodes) in p.batches.iter().enumerate() {
        lines.push(format!("batch {}: {}", i + 1, list_or_dash(nodes)));
    }
    if p.batches.is_empty() {
        lines.push("no node changes; the new weights apply at once".to_owned());
    }
    for node in &p.nodes {
        lines.push(format!("node {} ({})", node.node, node.node_id));
        super::instance::node_lines(&mut lines, node);
    }
    lines.push("dry run: nothing was recorded".to_owned());
    lines.join("\n")
}
