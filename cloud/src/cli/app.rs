//! `skerry app publish | list | show`: apps and their published versions.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use skerry_shared::manifest::MAX_MANIFEST_BYTES;
use tokio::io::AsyncReadExt;

use super::client::Client;
use super::error::CliError;
use super::output::{self, Details, OutputFormat, Table};
use super::values::{self, AppRef};
use crate::api::dto::{AppDto, AppVersionDto};

#[derive(Debug, Clone, Subcommand)]
pub enum AppCommand {
    /// Publish an app version from its manifest (YAML).
    Publish {
        /// The manifest file.
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: PathBuf,
    },
    /// List the apps.
    List,
    /// Show an app, or one of its versions with its components.
    Show {
        /// APP or APP@VERSION.
        #[arg(value_name = "APP[@VERSION]", value_parser = values::app_ref)]
        app: AppRef,
    },
}

pub async fn run(cmd: AppCommand, client: &Client, format: OutputFormat) -> Result<(), CliError> {
    match cmd {
        AppCommand::Publish { file } => publish(client, format, file).await,
        AppCommand::List => {
            let apps: Vec<AppDto> = client.get(&["apps"]).fetch().await?;
            match format {
                OutputFormat::Json => output::json(&apps),
                OutputFormat::Table => {
                    let mut table = Table::new(&["NAME", "LATEST", "VERSIONS", "INSTANCES"]);
                    for a in &apps {
                        table.row(vec![
                            a.name.clone(),
                            output::or_dash(&a.latest),
                            output::list(&a.versions),
                            output::list(&a.instances),
                        ]);
                    }
                    table.print()
                }
            }
        }
        AppCommand::Show {
            app: AppRef { app, version: None },
        } => {
            let app: AppDto = client.get(&["apps", &app]).fetch().await?;
            match format {
                OutputFormat::Json => output::json(&app),
                OutputFormat::Table => Details::new()
                    .field("name", &app.name)
                    .field("latest", output::or_dash(&app.latest))
                    .field("versions", output::list(&app.versions))
                    .field("instances", output::list(&app.instances))
                    .print(),
            }
        }
        AppCommand::Show {
            app: AppRef {
                app,
                version: Some(version),
            },
        } => {
            let v: AppVersionDto = client
                .get(&["apps", &app, "versions", &version])
                .fetch()
                .await?;
            match format {
                OutputFormat::Json => output::json(&v),
                OutputFormat::Table => show_version(&v),
            }
        }
    }
}

async fn publish(client: &Client, format: OutputFormat, file: PathBuf) -> Result<(), CliError> {
    let bytes = read_manifest(&file).await?;
    // 201 with `created`, or 200 when the same content was already published.
    let v: AppVersionDto = client
        .post(&["apps"])
        .bytes(bytes, "application/yaml")
        .fetch()
        .await?;
    match format {
        OutputFormat::Json => output::json(&v),
        OutputFormat::Table if v.created => output::line(&format!(
            "published {}@{} (digest {})",
            v.app,
            v.version,
            output::short_digest(&v.digest)
        )),
        OutputFormat::Table => output::line(&format!(
            "{}@{} is already published with the same content",
            v.app, v.version
        )),
    }
}

/// Reads a manifest file of at most [`MAX_MANIFEST_BYTES`]; a larger one is refused before
/// anything is sent, naming the file, its size and the limit. The read itself is bounded,
/// so a pipe or a device (`-f /dev/zero`) is refused as soon as it passes the limit.
async fn read_manifest(file: &Path) -> Result<Vec<u8>, CliError> {
    let unreadable = |e: std::io::Error| CliError::Usage {
        message: format!("cannot read {}: {e}", file.display()),
        field: Some("-f".to_owned()),
    };
    let too_large = |size: String| CliError::Usage {
        message: format!(
            "{} is {size} bytes; a manifest may be at most {MAX_MANIFEST_BYTES} bytes ({} MiB)",
            file.display(),
            MAX_MANIFEST_BYTES >> 20
        ),
        field: Some("-f".to_owned()),
    };
    let f = tokio::fs::File::open(file).await.map_err(unreadable)?;
    let size = f.metadata().await.map_err(unreadable)?.len();
    if usize::try_from(size).map_or(true, |n| n > MAX_MANIFEST_BYTES) {
        return Err(too_large(size.to_string()));
    }
    let mut bytes = Vec::new();
    let cap = u64::try_from(MAX_MANIFEST_BYTES).unwrap_or(u64::MAX);
    f.take(cap + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(unreadable)?;
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(too_large(format!("more than {MAX_MANIFEST_BYTES}")));
    }
    Ok(bytes)
}

fn show_version(v: &AppVersionDto) -> Result<(), CliError> {
    Details::new()
        .field("app", &v.app)
        .field("version", &v.version)
        .field(
            "description",
            output::or_dash(v.description.as_deref().unwrap_or_default()),
        )
        .field("digest", &v.digest)
        .field("published", &v.published)
        .print()?;
    output::line("")?;
    let mut table = Table::new(&[
        "COMPONENT",
        "KIND",
        "RUNTIME",
        "RUN",
        "REPLICAS",
        "DEPENDS ON",
    ]);
    for c in &v.components {
        table.row(vec![
            c.name.clone(),
            c.kind.clone(),
            c.runtime.clone(),
            c.run.clone(),
            c.replicas.to_string(),
            output::list(&c.depends_on),
        ]);
    }
    table.print()
}
