//! `skerry token create | list | revoke`: API tokens.
//!
//! `create` prints the token alone on standard output (in table mode too), so that a
//! script can capture it; it is shown this once. `list` never shows a secret.

use clap::{Subcommand, ValueEnum};

use super::client::Client;
use super::error::CliError;
use super::output::{self, OutputFormat, Table};
use crate::api::dto::{ApiTokenDto, CreateApiToken, CreatedApiTokenDto};

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
    /// Create an API token (printed alone on standard output, this once).
    Create {
        /// What the token may do: admin (everything), operator (publish, deploy,
        /// undeploy, node labels, enrollment tokens) or viewer (read only).
        #[arg(long, value_enum)]
        role: Role,
        /// Limit the token to this environment (repeatable; every environment when left out).
        #[arg(long = "env", value_name = "ENV")]
        envs: Vec<String>,
        /// How long the token lives (30d, 12h); it does not expire when left out.
        #[arg(long, value_name = "DURATION")]
        ttl: Option<String>,
        /// What the token is for, shown by `token list`.
        #[arg(long, value_name = "TEXT", default_value = "")]
        description: String,
    },
    /// List the API tokens (never their secrets).
    List,
    /// Revoke an API token: its next request is refused.
    Revoke {
        /// The token's id (`token list` shows it).
        id: String,
    },
}

fn table(tokens: &[ApiTokenDto]) -> Result<(), CliError> {
    let mut t = Table::new(&["ID", "ROLE", "ENVS", "STATE", "EXPIRES", "DESCRIPTION"]);
    for token in tokens {
        t.row(vec![
            token.id.clone(),
            token.role.clone(),
            if token.envs.is_empty() {
                "*".to_owned()
            } else {
                token.envs.join(",")
            },
            token.state.clone(),
            token.expires.clone().unwrap_or_else(|| "never".to_owned()),
            token.description.clone(),
        ]);
    }
    t.print()
}

pub async fn run(cmd: TokenCommand, client: &Client, format: OutputFormat) -> Result<(), CliError> {
    match cmd {
        TokenCommand::Create {
            role,
            envs,
            ttl,
            description,
        } => {
            let body = CreateApiToken {
                role: role.as_str().to_owned(),
                envs,
                ttl,
                description,
            };
            let made: CreatedApiTokenDto = client.post(&["tokens"]).json(&body).fetch().await?;
            match format {
                OutputFormat::Json => output::json(&made),
                OutputFormat::Table => output::line(&made.token),
            }
        }
        TokenCommand::List => {
            let tokens: Vec<ApiTokenDto> = client.get(&["tokens"]).fetch().await?;
            match format {
                OutputFormat::Json => output::json(&tokens),
                OutputFormat::Table => table(&tokens),
            }
        }
        TokenCommand::Revoke { id } => {
            let token: ApiTokenDto = client.delete(&["tokens", &id]).fetch().await?;
            match format {
                OutputFormat::Json => output::json(&token),
                OutputFormat::Table => output::line(&format!("revoked token {}", token.id)),
            }
        }
    }
}
