//! `skerry logs INSTANCE [--component C] [--node NODE] [--since T] [--follow]`: the log lines
//! the agents collected for an instance, read or followed.
//!
//! The API has no log-line body in `api::dto` yet, so the lines are shown as the cloud sends
//! them: a table with one column per field, or JSON.

use clap::Args;
use serde_json::Value;

use super::OutputFormat;
use super::client::{CliError, Client};
use super::output::{self, StreamColumns};
use super::values;

/// `skerry logs INSTANCE ...`
#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    pub instance: String,
    /// Only this component's lines.
    #[arg(long, value_name = "C")]
    pub component: Option<String>,
    /// Only this node's lines (name or id).
    #[arg(long, value_name = "NODE")]
    pub node: Option<String>,
    /// From this time: RFC 3339 or a duration before now (90s, 10m, 2h, 3d).
    #[arg(long, value_name = "T", value_parser = values::since)]
    pub since: Option<String>,
    /// Keep printing lines as they arrive.
    #[arg(long, short = 'f')]
    pub follow: bool,
}

pub async fn run(args: LogsArgs, client: &Client, format: OutputFormat) -> Result<(), CliError> {
    let call = client.get(&["logs"]).query(&[
        ("instance", Some(args.instance.as_str())),
        ("component", args.component.as_deref()),
        ("node", args.node.as_deref()),
        ("since", args.since.as_deref()),
        ("follow", args.follow.then_some("true")),
    ]);
    if !args.follow {
        let answer = call.fetch_any().await?;
        return match format {
            OutputFormat::Json => output::json(&answer),
            OutputFormat::Table => output::value(&answer),
        };
    }
    let mut lines = call.lines().await?;
    let mut keys: Option<Vec<String>> = None;
    let columns = StreamColumns::new(&[]);
    loop {
        let entry: Value = lines.next().await?;
        match (format, entry.as_object()) {
            (OutputFormat::Table, Some(map)) => {
                let keys =
                    match &keys {
                        Some(keys) => keys,
                        None => {
                            let first: Vec<String> = map.keys().cloned().collect();
                            output::line(&columns.render(
                                &first.iter().map(|k| k.to_uppercase()).collect::<Vec<_>>(),
                            ))?;
                            keys.insert(first)
                        }
                    };
                let cells: Vec<String> = keys
                    .iter()
                    .map(|k| output::cell(&entry[k.as_str()]))
                    .collect();
                output::line(&columns.render(&cells))?;
            }
            _ => output::json_line(&entry)?,
        }
    }
}
