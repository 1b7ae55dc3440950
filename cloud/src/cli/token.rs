//! `skerry token create | list | revoke`: API tokens.
//!
//! The API has no token bodies in `api::dto` yet, so the request is written here as JSON
//! (`{"role", "envs"}`) and answers are shown as the cloud sends them.

use clap::{Subcommand, ValueEnum};
use serde_json::json;

use super::client::Client;
use super::error::CliError;
use super::output::{self, OutputFormat};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    Admin,
    Operator,
    Viewer,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum TokenCommand {
    /// Create an API token (printed alone on standard output).
    Create {
        /// What the token may do.
        #[arg(long, value_enum)]
        role: Role,
        /// Limit the token to these environments (repeatable; all when left out).
        #[arg(long = "env", value_name = "ENV")]
        envs: Vec<String>,
    },
    /// List the API tokens (never their secrets).
    List,
    /// Revoke an API token.
    Revoke {
        /// The token's id.
        id: String,
    },
}

pub async fn run(cmd: TokenCommand, client: &Client, format: OutputFormat) -> Result<(), CliError> {
    match cmd {
        TokenCommand::Create { role, envs } => {
            let answer = client
                .post(&["tokens"])
                .json(&json!({ "role": role.as_str(), "envs": envs }))
                .fetch_any()
                .await?;
            match (format, answer.get("token").and_then(|t| t.as_str())) {
                (OutputFormat::Json, _) => output::json(&answer),
                (OutputFormat::Table, Some(token)) => output::line(token),
                (OutputFormat::Table, None) => Err(CliError::Unexpected {
                    method: reqwest::Method::POST,
                    path: "/api/v1/tokens".to_owned(),
                    reason: "the answer has no \"token\"".to_owned(),
                }),
            }
        }
        TokenCommand::List => {
            let answer = client.get(&["tokens"]).fetch_any().await?;
            match format {
                OutputFormat::Json => output::json(&answer),
                OutputFormat::Table => output::value(&answer),
            }
        }
        TokenCommand::Revoke { id } => {
            let answer = client.delete(&["tokens", &id]).fetch_any().await?;
            match format {
                OutputFormat::Json => output::json(&answer),
                OutputFormat::Table => output::line(&format!("revoked token {id}")),
            }
        }
    }
}
