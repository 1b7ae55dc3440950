//! `skerry secret set | list | delete`: values that components receive as an environment
//! variable or a file, stored encrypted and delivered encrypted for each node.

use std::io::Read;
use std::path::PathBuf;

use clap::{ArgGroup, Subcommand};
use skerry_shared::secret::MAX_SECRET_BYTES;
use zeroize::Zeroizing;

use super::client::Client;
use super::error::CliError;
use super::output::{self, OutputFormat, Table};
use crate::api::secrets::SecretDto;

#[derive(Debug, Clone, Subcommand)]
pub enum SecretCommand {
    /// Set a secret (a new version; the replicas that use it restart with it).
    #[command(group(ArgGroup::new("source").required(true).args(["from_file", "from_stdin"])))]
    Set {
        /// The secret's name.
        name: String,
        /// Read the value from this file.
        #[arg(long, value_name = "FILE")]
        from_file: Option<PathBuf>,
        /// Read the value from standard input.
        #[arg(long)]
        from_stdin: bool,
        /// Limit the secret to this environment's instances and nodes.
        #[arg(long, value_name = "ENV")]
        env: Option<String>,
    },
    /// List the secrets (never their values).
    List,
    /// Delete a secret that no instance uses.
    Delete { name: String },
}

fn too_large(field: &str) -> CliError {
    CliError::Usage {
        message: format!("the value is over {MAX_SECRET_BYTES} bytes (64 KiB)"),
        field: Some(field.to_owned()),
    }
}

/// Reads at most one byte more than the bound, so a larger input is refused without
/// reading it all.
fn read_value(mut from: impl Read, field: &str) -> Result<Zeroizing<Vec<u8>>, CliError> {
    let mut buf = Zeroizing::new(Vec::new());
    from.by_ref()
        .take(MAX_SECRET_BYTES as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| CliError::Usage {
            message: format!("cannot read the value: {e}"),
            field: Some(field.to_owned()),
        })?;
    if buf.len() > MAX_SECRET_BYTES {
        return Err(too_large(field));
    }
    Ok(buf)
}

pub async fn run(
    cmd: SecretCommand,
    client: &Client,
    format: OutputFormat,
) -> Result<(), CliError> {
    match cmd {
        SecretCommand::Set {
            name,
            from_file,
            from_stdin,
            env,
        } => {
            let value = match (from_file, from_stdin) {
                (Some(path), _) => {
                    let file = std::fs::File::open(&path).map_err(|e| CliError::Usage {
                        message: format!("{}: {e}", path.display()),
                        field: Some("from-file".into()),
                    })?;
                    read_value(file, "from-file")?
                }
                (None, true) => read_value(std::io::stdin().lock(), "from-stdin")?,
                (None, false) => {
                    return Err(CliError::Usage {
                        message: "give --from-file FILE or --from-stdin".into(),
                        field: Some("from-file".into()),
                    });
                }
            };
            let mut body = serde_json::Map::new();
            body.insert(
                "value_hex".into(),
                serde_json::Value::String(hex::encode(value.as_slice())),
            );
            if let Some(env) = env {
                body.insert("env".into(), serde_json::Value::String(env));
            }
            let secret: SecretDto = client
                .put(&["secrets", &name])
                .json(&serde_json::Value::Object(body))
                .fetch()
                .await?;
            match format {
                OutputFormat::Json => output::json(&secret),
                OutputFormat::Table => output::line(&format!(
                    "set secret {} version {}",
                    secret.name, secret.version
                )),
            }
        }
        SecretCommand::List => {
            let secrets: Vec<SecretDto> = client.get(&["secrets"]).fetch().await?;
            match format {
                OutputFormat::Json => output::json(&secrets),
                OutputFormat::Table => {
                    let mut table =
                        Table::new(&["NAME", "ENV", "VERSION", "NODES", "CREATED", "UPDATED"]);
                    for s in &secrets {
                        table.row(vec![
                            s.name.clone(),
                            s.env.clone().unwrap_or_else(|| "*".into()),
                            s.version.to_string(),
                            s.nodes.to_string(),
                            s.created.clone(),
                            s.updated.clone(),
                        ]);
                    }
                    table.print()
                }
            }
        }
        SecretCommand::Delete { name } => {
            let secret: SecretDto = client.delete(&["secrets", &name]).fetch().await?;
            match format {
                OutputFormat::Json => output::json(&secret),
                OutputFormat::Table => output::line(&format!("deleted secret {}", secret.name)),
            }
        }
    }
}
