//! `skerry jobs INSTANCE [--component C] [--node N]`: the runs of an instance's jobs, as
//! the agents reported them (runs made while a node was offline arrive when its link
//! returns, each once).

use clap::Args;

use super::client::Client;
use super::error::CliError;
use super::output::{self, OutputFormat, Table};
use crate::api::jobs::{JobRunDto, JobRunsDto};

/// `skerry jobs INSTANCE [--component C] [--node NODE] [--limit N]`
#[derive(Debug, Clone, Args)]
pub struct JobsArgs {
    pub instance: String,
    /// Only this job's runs.
    #[arg(long)]
    pub component: Option<String>,
    /// Only the runs on this node, by name or id.
    #[arg(long)]
    pub node: Option<String>,
    /// The newest this many runs (1 to 1000; default 100).
    #[arg(long)]
    pub limit: Option<usize>,
}

pub async fn run(args: JobsArgs, client: &Client, format: OutputFormat) -> Result<(), CliError> {
    let limit = args.limit.map(|l| l.to_string());
    let runs: JobRunsDto = client
        .get(&["instances", &args.instance, "jobs"])
        .query(&[
            ("component", args.component.as_deref()),
            ("node", args.node.as_deref()),
            ("limit", limit.as_deref()),
        ])
        .fetch()
        .await?;
    match format {
        OutputFormat::Json => output::json(&runs),
        OutputFormat::Table => {
            table(&runs.runs).print()?;
            if runs.dropped > 0 {
                output::line(&format!(
                    "{} run reports were dropped by an agent's outbox for its quota",
                    runs.dropped
                ))?;
            }
            Ok(())
        }
    }
}

/// One row per run, oldest first.
pub fn table(runs: &[JobRunDto]) -> Table {
    let mut table = Table::new(&[
        "COMPONENT",
        "NODE",
        "RUN",
        "TRIGGER",
        "STARTED",
        "DURATION",
        "OUTCOME",
        "SKIPPED",
        "LAST LINE",
    ]);
    for r in runs {
        table.row(vec![
            r.component.clone(),
            r.node.clone(),
            r.id.to_string(),
            r.trigger.clone(),
            r.started.clone(),
            r.duration_ms.map_or_else(|| "-".to_owned(), duration),
            r.summary.clone(),
            r.skipped.to_string(),
            output::or_dash(r.last_lines.last().map(String::as_str).unwrap_or_default()),
        ]);
    }
    table
}

/// `850ms`, `2.0s`, `12.3s`.
fn duration(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}
