//! `skerry node ...`: enrollment tokens, and listing, renaming, labelling, addressing,
//! moving and removing nodes. Every command accepts a node's name or its id.

use clap::Subcommand;
use serde_json::Value;

use super::client::Client;
use super::error::CliError;
use super::output::{self, Details, OutputFormat, Table};
use super::values::{self, LabelChange};
use crate::api::dto::{
    CreateEnrollmentToken, EnrollmentTokenDto, JoinEnvironment, LabelNode, NodeDto, PatchNode,
};

#[derive(Debug, Clone, Subcommand)]
pub enum NodeCommand {
    /// Issue a one-time enrollment token for a new node (printed alone on standard output).
    Token {
        /// The environment the node joins.
        #[arg(long, value_name = "NAME")]
        env: String,
        /// How long the token stays valid [default: 24h].
        #[arg(long, value_name = "DURATION", value_parser = values::duration)]
        ttl: Option<String>,
    },
    /// List the nodes.
    List {
        /// Only the nodes of this environment.
        #[arg(long, value_name = "NAME")]
        env: Option<String>,
    },
    /// Show one node.
    Show {
        /// The node's name or id.
        node: String,
    },
    /// Give a node a new name.
    Rename {
        /// The node's name or id.
        node: String,
        /// The new name.
        name: String,
    },
    /// Set a node's address (the agent gives it at enrollment): an IP address or a host
    /// name, with or without a port.
    Set {
        /// The node's name or id.
        node: String,
        #[arg(long, value_name = "ADDR")]
        address: String,
    },
    /// Set labels (K=V) or remove them (K-).
    Label {
        /// The node's name or id.
        node: String,
        /// K=V sets a label, K- removes it.
        #[arg(value_name = "K=V|K-", required = true, value_parser = values::label_change)]
        changes: Vec<LabelChange>,
    },
    /// Add a node to an environment.
    Join {
        /// The node's name or id.
        node: String,
        #[arg(long, value_name = "NAME")]
        env: String,
    },
    /// Take a node out of an environment (its instances there are removed from it).
    Leave {
        /// The node's name or id.
        node: String,
        #[arg(long, value_name = "NAME")]
        env: String,
    },
    /// Remove a node: its instances leave it, its agent stops and removes its apps and
    /// forgets its identity, its session is closed and its certificate revoked for good.
    Remove {
        /// The node's name or id.
        node: String,
    },
    /// The agent's own runtime log.
    Logs {
        /// The node's name or id.
        node: String,
        /// From this time: RFC 3339 or a duration before now (90s, 10m, 2h, 3d).
        #[arg(long, value_name = "T", value_parser = values::since)]
        since: Option<String>,
    },
}

pub async fn run(cmd: NodeCommand, client: &Client, format: OutputFormat) -> Result<(), CliError> {
    match cmd {
        NodeCommand::Token { env, ttl } => {
            let body = CreateEnrollmentToken { env, ttl };
            let token: EnrollmentTokenDto = client
                .post(&["enrollment-tokens"])
                .json(&body)
                .fetch()
                .await?;
            match format {
                OutputFormat::Json => output::json(&token),
                OutputFormat::Table => output::line(&token.token),
            }
        }
        NodeCommand::List { env } => {
            let nodes: Vec<NodeDto> = client
                .get(&["nodes"])
                .query(&[("env", env.as_deref())])
                .fetch()
                .await?;
            match format {
                OutputFormat::Json => output::json(&nodes),
                OutputFormat::Table => list_table(&nodes).print(),
            }
        }
        NodeCommand::Show { node } => {
            let node: NodeDto = client.get(&["nodes", &node]).fetch().await?;
            match format {
                OutputFormat::Json => output::json(&node),
                OutputFormat::Table => details(&node).print(),
            }
        }
        NodeCommand::Rename { node, name } => {
            let body = PatchNode {
                name: Some(name.clone()),
                address: None,
            };
            let answer = client
                .patch(&["nodes", &node])
                .json(&body)
                .fetch_any()
                .await?;
            done(format, &answer, &format!("renamed node {node} to {name}"))
        }
        NodeCommand::Set { node, address } => {
            let body = PatchNode {
                name: None,
                address: Some(address.clone()),
            };
            let answer = client
                .patch(&["nodes", &node])
                .json(&body)
                .fetch_any()
                .await?;
            done(format, &answer, &format!("node {node}: address {address}"))
        }
        NodeCommand::Label { node, changes } => {
            let mut body = LabelNode::default();
            for change in &changes {
                match change {
                    LabelChange::Set(k, v) => {
                        body.remove.retain(|r| r != k);
                        body.set.insert(k.clone(), v.clone());
                    }
                    LabelChange::Remove(k) => {
                        body.set.remove(k);
                        body.remove.push(k.clone());
                    }
                }
            }
            let answer = client
                .post(&["nodes", &node, "labels"])
                .json(&body)
                .fetch_any()
                .await?;
            let written: Vec<String> = changes
                .iter()
                .map(|c| match c {
                    LabelChange::Set(k, v) => format!("{k}={v}"),
                    LabelChange::Remove(k) => format!("{k}-"),
                })
                .collect();
            done(
                format,
                &answer,
                &format!("labelled node {node}: {}", written.join(" ")),
            )
        }
        NodeCommand::Join { node, env } => {
            let body = JoinEnvironment { env: env.clone() };
            let answer = client
                .post(&["nodes", &node, "environments"])
                .json(&body)
                .fetch_any()
                .await?;
            done(
                format,
                &answer,
                &format!("node {node} joined environment {env}"),
            )
        }
        NodeCommand::Leave { node, env } => {
            let answer = client
                .delete(&["nodes", &node, "environments", &env])
                .fetch_any()
                .await?;
            done(
                format,
                &answer,
                &format!("node {node} left environment {env}"),
            )
        }
        NodeCommand::Remove { node } => {
            let answer = client.delete(&["nodes", &node]).fetch_any().await?;
            done(
                format,
                &answer,
                &format!("removed node {node}; its certificate is revoked"),
            )
        }
        NodeCommand::Logs { node, since } => {
            let answer = client
                .get(&["nodes", &node, "logs"])
                .query(&[("since", since.as_deref())])
                .fetch_any()
                .await?;
            match format {
                OutputFormat::Json => output::json(&answer),
                OutputFormat::Table => {
                    let text = answer
                        .get("text")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    // The agent's log may quote what apps wrote: escaped like any table.
                    print!("{}", output::escape_lines(text));
                    if answer.get("truncated").and_then(Value::as_bool) == Some(true) {
                        eprintln!("(older lines left out)");
                    }
                    Ok(())
                }
            }
        }
    }
}

/// After a change: the cloud's answer in JSON mode, a one-line confirmation otherwise (a 2xx
/// means the change is recorded durably).
fn done(format: OutputFormat, answer: &Value, message: &str) -> Result<(), CliError> {
    match format {
        OutputFormat::Json => output::json(answer),
        OutputFormat::Table => output::line(message),
    }
}

fn list_table(nodes: &[NodeDto]) -> Table {
    let mut table = Table::new(&[
        "NAME",
        "ID",
        "STATUS",
        "ENVS",
        "LABELS",
        "ADDRESS",
        "PROFILE",
        "LAG",
        "LAST SEEN",
        "INSTANCES",
        "ENROLLED",
    ]);
    for n in nodes {
        table.row(vec![
            n.name.clone(),
            n.id.clone(),
            n.status.clone(),
            output::list(&n.envs),
            output::labels(&n.labels),
            output::or_dash(&n.address),
            output::or_dash(&n.profile.name),
            n.lag.to_string(),
            n.last_seen.clone().unwrap_or_else(|| "never".to_owned()),
            n.instances.len().to_string(),
            n.enrolled.clone(),
        ]);
    }
    table
}

fn details(n: &NodeDto) -> Details {
    let mut d = Details::new();
    d.field("name", &n.name)
        .field("id", &n.id)
        .field("status", &n.status)
        .field("environments", output::list(&n.envs))
        .field("labels", output::labels(&n.labels))
        .field("address", output::or_dash(&n.address))
        .field("profile", output::or_dash(&n.profile.name))
        .field(
            "lag",
            format!(
                "{} (node_seq {}, acknowledged {})",
                n.lag, n.node_seq, n.acked_node_seq
            ),
        )
        .field(
            "last seen",
            n.last_seen.clone().unwrap_or_else(|| "never".to_owned()),
        )
        .field("enrolled", &n.enrolled)
        .field("instances", output::list(&n.instances));
    d
}
