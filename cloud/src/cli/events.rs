//! `skerry events [--follow]` and `skerry events verify`: the command log, read or followed,
//! and a check of its hash chain.

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::client::Client;
use super::error::CliError;
use super::output::{self, OutputFormat, StreamColumns, Table};
use super::values;
use crate::api::dto::{EventDto, VerifyDto};

/// The event table's columns.
const HEADER: [&str; 5] = ["SEQ", "TIME", "ACTOR", "KIND", "SUMMARY"];
/// Column widths while following: a sequence number, an RFC 3339 time with milliseconds,
/// an actor, a dotted kind.
const FOLLOW_WIDTHS: [usize; 4] = [6, 24, 20, 23];
/// Events per request when reading the log.
const PAGE: usize = 1000;
/// The events printed when `--limit` is not given: the API's default page (docs/cli.md,
/// "Events").
pub const DEFAULT_LIMIT: u32 = crate::api::EVENTS_DEFAULT_LIMIT as u32;
/// The most events one command prints (`--limit`), the API's largest page (docs/cli.md,
/// "REST API"); more are read with `--after`.
pub const MAX_LIMIT: u32 = crate::api::EVENTS_MAX_LIMIT as u32;

/// `skerry events [--node NODE] [--instance I] [--actor A] [--since T] [--after SEQ] [--limit N]
/// [--follow] | verify`
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
    /// Only events this actor caused: an API token's id, `cloud`, or `node:ID`.
    #[arg(long, value_name = "A")]
    pub actor: Option<String>,
    /// From this time: RFC 3339 or a duration before now (90s, 10m, 2h, 3d).
    #[arg(long, value_name = "T", value_parser = values::since)]
    pub since: Option<String>,
    /// Only events with a greater sequence number.
    #[arg(long, value_name = "SEQ")]
    pub after: Option<u64>,
    /// Print at most N events (1 to 100000) [default: 1000].
    #[arg(long, value_name = "N", value_parser = event_limit, allow_hyphen_values = true, conflicts_with = "follow")]
    pub limit: Option<u32>,
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
            ("actor", args.actor.as_deref()),
            ("since", args.since.as_deref()),
            ("after", args.after.map(|a| a.to_string()).as_deref()),
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
    // The API answers a page at a time; read up to the limit, then one more event to know
    // whether more match.
    let limit = usize::try_from(args.limit.unwrap_or(DEFAULT_LIMIT)).unwrap_or(PAGE);
    let mut events: Vec<EventDto> = Vec::new();
    let mut more = false;
    loop {
        let after = events
            .last()
            .map_or(args.after.unwrap_or(0), |e| e.seq)
            .to_string();
        let want = (limit - events.len()).min(PAGE);
        let asked = want.max(1);
        let page: Vec<EventDto> = client
            .get(&["events"])
            .query(&[
                ("node", args.node.as_deref()),
                ("instance", args.instance.as_deref()),
                ("actor", args.actor.as_deref()),
                ("since", args.since.as_deref()),
                ("after", Some(&after)),
                ("limit", Some(&asked.to_string())),
            ])
            .fetch()
            .await?;
        if want == 0 {
            more = !page.is_empty();
            break;
        }
        let full = page.len() >= want;
        events.extend(page.into_iter().take(want));
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
    if more && let Some(last) = events.last() {
        let note = format!(
            "{} events shown; more match: run again with --after {} for the next ones, or with --limit up to {MAX_LIMIT}",
            events.len(),
            last.seq
        );
        let _ = writeln!(std::io::stderr().lock(), "{note}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `--limit N`: 1 to [`MAX_LIMIT`].
fn event_limit(s: &str) -> Result<u32, String> {
    values::count(s, MAX_LIMIT)
}

/// An event's columns; one the cloud did not apply says so first, with why.
fn row(e: &EventDto) -> [String; 5] {
    let summary = match &e.refused {
        Some(why) => format!("NOT APPLIED ({why}): {}", e.summary),
        None => e.summary.clone(),
    };
    [
        e.seq.to_string(),
        e.time.clone(),
        e.actor.clone(),
        e.kind.clone(),
        summary,
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
