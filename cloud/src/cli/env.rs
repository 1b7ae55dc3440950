//! `skerry env create | list | show | rename | set | delete`: runtime environments.

use clap::Subcommand;

use super::client::Client;
use super::error::CliError;
use super::output::{self, Details, OutputFormat, Table};
use super::values;
use crate::api::dto::{CreateEnvironment, EnvironmentDto, RenameEnvironment, UpdateEnvironment};

#[derive(Debug, Clone, Subcommand)]
pub enum EnvCommand {
    /// Create an environment.
    Create {
        /// The environment's name.
        name: String,
        /// A label for the environment (repeatable).
        #[arg(long = "label", value_name = "K=V", value_parser = values::label)]
        labels: Vec<(String, String)>,
        /// An entry address (IP or host:port) through which its apps are reached (repeatable).
        #[arg(long = "entry", value_name = "ADDR")]
        entries: Vec<String>,
    },
    /// List the environments.
    List,
    /// Show one environment.
    Show { name: String },
    /// Give an environment a new name: its nodes, instances, tokens and secrets follow it
    /// (nothing restarts), and the old name is free.
    Rename {
        /// The environment's name.
        name: String,
        /// The new name.
        new: String,
    },
    /// Set an environment's description and/or replace its entry addresses.
    Set {
        /// The environment's name.
        name: String,
        /// One line of text, at most 1 KiB; "" clears it.
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
        /// An entry address (IP or host:port); the ones given replace the environment's
        /// (repeatable).
        #[arg(long = "entry", value_name = "ADDR")]
        entries: Vec<String>,
    },
    /// Delete an environment.
    Delete { name: String },
}

pub async fn run(cmd: EnvCommand, client: &Client, format: OutputFormat) -> Result<(), CliError> {
    match cmd {
        EnvCommand::Create {
            name,
            labels,
            entries,
        } => {
            let body = CreateEnvironment {
                name,
                labels: values::label_map(&labels),
                entries,
            };
            let env: EnvironmentDto = client.post(&["environments"]).json(&body).fetch().await?;
            match format {
                OutputFormat::Json => output::json(&env),
                OutputFormat::Table => output::line(&format!("created environment {}", env.name)),
            }
        }
        EnvCommand::List => {
            let envs: Vec<EnvironmentDto> = client.get(&["environments"]).fetch().await?;
            match format {
                OutputFormat::Json => output::json(&envs),
                OutputFormat::Table => {
                    let mut table = Table::new(&[
                        "NAME",
                        "LABELS",
                        "ENTRIES",
                        "NODES",
                        "INSTANCES",
                        "CREATED",
                        "DESCRIPTION",
                    ]);
                    for e in &envs {
                        table.row(vec![
                            e.name.clone(),
                            output::labels(&e.labels),
                            output::list(&e.entries),
                            e.nodes.len().to_string(),
                            e.instances.len().to_string(),
                            e.created.clone(),
                            output::or_dash(e.description.as_deref().unwrap_or_default()),
                        ]);
                    }
                    table.print()
                }
            }
        }
        EnvCommand::Show { name } => {
            let env: EnvironmentDto = client.get(&["environments", &name]).fetch().await?;
            match format {
                OutputFormat::Json => output::json(&env),
                OutputFormat::Table => Details::new()
                    .field("name", &env.name)
                    .field(
                        "description",
                        output::or_dash(env.description.as_deref().unwrap_or_default()),
                    )
                    .field("labels", output::labels(&env.labels))
                    .field("entries", output::list(&env.entries))
                    .field("nodes", output::list(&env.nodes))
                    .field("instances", output::list(&env.instances))
                    .field("created", &env.created)
                    .print(),
            }
        }
        EnvCommand::Rename { name, new } => {
            let body = RenameEnvironment { name: new };
            let env: EnvironmentDto = client
                .post(&["environments", &name, "rename"])
                .json(&body)
                .fetch()
                .await?;
            match format {
                OutputFormat::Json => output::json(&env),
                OutputFormat::Table => {
                    output::line(&format!("renamed environment {name} to {}", env.name))
                }
            }
        }
        EnvCommand::Set {
            name,
            description,
            entries,
        } => {
            let body = UpdateEnvironment {
                description,
                entries: (!entries.is_empty()).then_some(entries),
            };
            let env: EnvironmentDto = client
                .patch(&["environments", &name])
                .json(&body)
                .fetch()
                .await?;
            match format {
                OutputFormat::Json => output::json(&env),
                OutputFormat::Table => output::line(&format!("set environment {}", env.name)),
            }
        }
        EnvCommand::Delete { name } => {
            let env: EnvironmentDto = client.delete(&["environments", &name]).fetch().await?;
            match format {
                OutputFormat::Json => output::json(&env),
                OutputFormat::Table => output::line(&format!("deleted environment {}", env.name)),
            }
        }
    }
}
