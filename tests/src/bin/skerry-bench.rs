//! `skerry-bench SCENARIO`: runs one benchmark scenario and prints its figures beside the
//! baseline it ran with, in the same run. Run it as
//! `cargo run --release -p skerry-tests --bin skerry-bench -- SCENARIO`.

use clap::{Parser, Subcommand};
use skerry_tests::bench::{self, report::Report};

#[derive(Debug, Parser)]
#[command(
    name = "skerry-bench",
    about = "Skerry's benchmarks, each beside its baseline"
)]
struct Cli {
    /// Print each report as one JSON line instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Durable commands per second with 64 clients, beside raw redb commits.
    Append(bench::append::Args),
    /// A node that missed 100,000 events catching up, beside full replay and raw TCP.
    #[command(name = "catch-up")]
    CatchUp(bench::catchup::Args),
    /// A 5-service app from the API call until running, beside docker-compose up -d.
    Deploy(bench::deploy::Args),
    /// The agent's RSS and binary size, beside the Docker engine's RSS.
    Footprint(bench::footprint::Args),
    /// Lines from log_dir files until queryable in the cloud, beside cat.
    Logs(bench::logs::Args),
    /// Bytes of a 5-component deploy on the link, beside the same event as JSON.
    Wire(bench::wire::Args),
    /// One deploy to N simulated nodes until acknowledged and running, beside a raw MQTT
    /// round trip to N clients.
    Fanout(bench::fanout::Args),
    /// An upgrade of N simulated nodes in batches, each batch beside a plain deploy.
    Rollout(bench::rollout::Args),
    /// Slow clients and event streams while a deploy runs to simulated nodes, beside the
    /// same deploy and the cloud's RSS at rest.
    Siege(bench::siege::Args),
    /// The fan-out baseline's server, started by `fanout`.
    #[command(hide = true)]
    RawMqttServer(bench::rawmqtt::ServerArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let reports: Vec<Report> = match &cli.scenario {
        Scenario::Append(a) => vec![bench::append::run(a)?],
        Scenario::CatchUp(a) => vec![bench::catchup::run(a)?],
        Scenario::Deploy(a) => vec![bench::deploy::run(a)?],
        Scenario::Footprint(a) => vec![bench::footprint::run(a)?],
        Scenario::Logs(a) => vec![bench::logs::run(a)?],
        Scenario::Wire(a) => vec![bench::wire::run(a)?],
        Scenario::Fanout(a) => bench::fanout::run(a)?,
        Scenario::Rollout(a) => vec![bench::rollout::run(a)?],
        Scenario::Siege(a) => vec![bench::siege::run(a)?],
        Scenario::RawMqttServer(a) => {
            bench::rawmqtt::serve(a)?;
            Vec::new()
        }
    };
    for report in &reports {
        report.print(cli.json);
    }
    Ok(())
}
