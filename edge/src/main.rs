//! `skerry-edge`: the agent's binary.

use clap::Parser;

/// The Skerry agent.
#[derive(Debug, Parser)]
#[command(name = "skerry-edge", version, about = "The Skerry agent")]
enum Cli {
    /// Enroll (first run) and run the node's apps.
    Run,
}

fn main() -> anyhow::Result<()> {
    let Cli::Run = Cli::parse();
    anyhow::bail!("this release of skerry-edge cannot enroll or run apps yet")
}
