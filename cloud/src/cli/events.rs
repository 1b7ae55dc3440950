//! `skerry events [--follow]` and `skerry events verify`: the command log, read or followed,
//! and a check of its hash chain.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::OutputFormat;
use super::client::{CliError, Client};
use super::output::{self, StreamColumns, Table};
use super::values;
use crate::api::dto::{EventDto, VerifyDto};

/// The event table's columns.
const HEADER: [&str; 5] = ["SEQ", "TIME", "ACTOR", "KIND", "SUMMARY"];
/// Column widths while following: a sequence number, an RFC 3339 time with milliseconds,
/// an actor, a dotted kind.
const FOLLOW_WIDTHS: [usize; 4] = [6, 24, 20, 23];
/// Events per request when reading the log.
const PAGE: usize = 1000;

/// `skerry events [--node NODE] [--instance I] [--since T] [--follow] | verify`
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EventsArgs {
    #[command(subcommand)]
    pub command: Option<EventsCommand>,
    /// Only events that concern this node (name or id).
    #[arg(long, value_name = "NODE")]
    pub node: Option<String>,
    /// Only events about this instance.
    #[arg(long, value_name = "I")]
    pub instance: Option<String>,
    /// From this time: RFC 3339 or a duration before now (90s, 10m, 2h, 3d).
    #[arg(long, value_name = "T", value_parser = values::since)]
    pub since: Option<String>,
    /// Keep printing events as they are recorded.
    #[arg(long, short = 'f')]
    pub follow: bool,
}

#[derive(Debug, Clone, Subcommand)]
pub enum EventsCommand {
    /// Check the command log's hash chain (exit 3 when it finds a fault).
    Verify,
}

pub async fn run(
    args: EventsArgs,
    client: &Client,
    format: OutputFormat,
) -> Result<ExitCode, CliError> {
    if let Some(EventsCommand::Verify) = args.command {
        return verify(client, format).await;
    }
    if args.follow {
        let call = client.get(&["events"]).query(&[
            ("node", args.node.as_deref()),
            ("instance", args.instance.as_deref()),
            ("since", args.since.as_deref()),
            ("follow", args.follow.then_some("true")),
        ]);
        let mut lines = call.lines().await?;
        let columns = StreamColumns::new(&FOLLOW_WIDTHS);
        if format == OutputFormat::Table {
            output::line(&columns.render(&HEADER.map(str::to_owned)))?;
        }
        loop {
            let event: EventDto = lines.next().await?;
            match format {
                OutputFormat::Json => output::json_line(&event)?,
                OutputFormat::Table => output::line(&columns.render(&row(&event)))?,
            }
        }
    }
    // The API answers a page at a time; read them all.
    let mut events: Vec<EventDto> = Vec::new();
    loop {
        let after = events.last().map_or(0, |e| e.seq).to_string();
        let limit = PAGE.to_string();
        let page: Vec<EventDto> = client
            .get(&["events"])
            .query(&[
                ("node", args.node.as_deref()),
                ("instance", args.instance.as_deref()),
                ("since", args.since.as_deref()),
                ("after", Some(&after)),
                ("limit", Some(&limit)),
            ])
            .fetch()
            .await?;
        let full = page.len() >= PAGE;
        events.extend(page);
        if !full {
            break;
        }
    }
    match format {
        OutputFormat::Json => output::json(&events)?,
        OutputFormat::Table => {
            let mut table = Table::new(&HEADER);
            for e in &events {
                table.row(row(e).to_vec());
            }
            table.print()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn row(e: &EventDto) -> [String; 5] {
    [
        e.seq.to_string(),
        e.time.clone(),
        e.actor.clone(),
        e.kind.clone(),
        e.summary.clone(),
    ]
}

async fn verify(client: &Client, format: OutputFormat) -> Result<ExitCode, CliError> {
    let v: VerifyDto = client.get(&["events", "verify"]).fetch().await?;
    match format {
        OutputFormat::Json => output::json(&v)?,
        OutputFormat::Table if v.ok => {
            output::line(&format!("ok: {} events, head {}", v.events, v.head))?
        }
        OutputFormat::Table => output::line(&format!(
            "fault: {} ({} events checked, head {})",
            v.fault
                .as_deref()
                .unwrap_or("the cloud reports a fault without saying which"),
            v.events,
            v.head
        ))?,
    }
    Ok(if v.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}
