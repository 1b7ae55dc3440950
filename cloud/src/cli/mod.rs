//! The `skerry` command line: `skerry serve` runs the cloud; every other command is a client
//! of its REST API.
//!
//! Client commands print their results on standard output (a table, or JSON with `-o json`)
//! and nothing else; errors go to standard error. The exit status says what happened
//! (docs/cli.md, "Exit status"): 0 done, 1 anything else, 2 refused (400, 409, or a usage error), 3 a
//! verification found a fault, 4 not found, 5 not allowed.
//!
//! # Layout
//! - [`values`]: parsers for structured arguments (`APP@VERSION`, `NODE[=WEIGHT]`, `K=V`, `K-`,
//!   `COMPONENT.VAR=VALUE`, times and durations).
//! - [`client`]: the HTTP client: requests, and answers read into typed bodies.
//! - [`lines`]: a streamed NDJSON answer (`--follow`), one value at a time.
//! - [`error`]: why a command did not finish, and its exit status and error body.
//! - [`output`]: `-o table|json`, tables, details, JSON and error reports.
//! - [`env`](mod@env): `skerry env ...`.
//! - [`node`]: `skerry node ...`, enrollment tokens included.
//! - [`token`]: `skerry token ...` (API tokens).
//! - [`app`]: `skerry app ...`.
//! - [`instance`]: `skerry deploy`, `undeploy` and `status`.
//! - [`rollout`]: `skerry upgrade`, `rollback` and `rollout status|pause|resume|abort`.
//! - [`lifecycle`]: `skerry stop`, `start` and `restart`.
//! - [`events`]: `skerry events` and `skerry events verify`.
//! - [`logs`]: `skerry logs`.
//!
//! Imports run one way: this file uses its children; the commands use `client`, `error`,
//! `output` and `values`, never this file.

pub mod app;
pub mod client;
pub mod env;
pub mod error;
pub mod events;
pub mod instance;
pub mod jobs;
pub mod lifecycle;
pub mod lines;
pub mod logs;
pub mod node;
pub mod output;
pub mod rollout;
pub mod secret;
pub mod token;
pub mod values;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use reqwest::Url;

use self::client::Client;
use self::error::CliError;
pub use self::output::OutputFormat;

/// The top-level command line.
#[derive(Debug, Parser)]
#[command(
    name = "skerry",
    version,
    about = "Skerry: run apps on fleets of edge gateways behind links that drop.",
    long_about = "Skerry: run apps on fleets of edge gateways behind links that drop.\n\n\
        `skerry serve` runs the cloud; every other command is a client of its REST API.\n\n\
        Exit status: 0 done; 1 anything else (the cloud unreachable, an internal failure); \
        2 the input or request was refused; 3 a verification found a fault; \
        4 not found; 5 not allowed."
)]
pub struct Cli {
    #[command(flatten)]
    pub client: ClientOpts,
    #[command(subcommand)]
    pub command: Command,
}

/// The help heading of the client options.
const CLIENT_OPTIONS: &str = "Client options";

/// Options of every client command.
#[derive(Debug, Clone, Args)]
pub struct ClientOpts {
    /// The cloud's REST API.
    #[arg(
        long,
        global = true,
        help_heading = CLIENT_OPTIONS,
        env = "SKERRY_CLOUD",
        value_name = "URL",
        default_value = "http://127.0.0.1:8080",
        value_parser = values::cloud_url
    )]
    pub cloud: Url,
    /// An API token, sent as `Authorization: Bearer`.
    #[arg(
        long,
        global = true,
        help_heading = CLIENT_OPTIONS,
        env = "SKERRY_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// A PEM file of CA certificates to trust for an https cloud, as the cloud's own CA
    /// (DATA/keys/ca.crt).
    #[arg(
        long,
        global = true,
        help_heading = CLIENT_OPTIONS,
        env = "SKERRY_CA",
        value_name = "FILE"
    )]
    pub ca: Option<std::path::PathBuf>,
    /// How results are printed.
    #[arg(
        short = 'o',
        long = "output",
        global = true,
        help_heading = CLIENT_OPTIONS,
        value_enum,
        default_value_t = OutputFormat::Table
    )]
    pub output: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the cloud: the REST API, the agents' MQTT endpoint and the local node.
    Serve(crate::config::ServeArgs),
    /// Runtime environments.
    #[command(subcommand)]
    Env(env::EnvCommand),
    /// Nodes and their enrollment tokens.
    #[command(subcommand)]
    Node(node::NodeCommand),
    /// API tokens: who may call the API, with which role, in which environments.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Apps and their versions.
    #[command(subcommand)]
    App(app::AppCommand),
    /// Secrets: values components receive as an env var or a file, stored and delivered
    /// encrypted.
    #[command(subcommand)]
    Secret(secret::SecretCommand),
    /// Deploy an app version into an environment as a named instance.
    Deploy(instance::DeployArgs),
    /// Move an instance to another version (or other settings) in health-gated batches.
    Upgrade(rollout::UpgradeArgs),
    /// Move an instance back to the version it had before, as a rollout of its own.
    Rollback(rollout::RollbackArgs),
    /// Follow, pause, resume or abort an instance's rollout.
    #[command(subcommand)]
    Rollout(rollout::RolloutCommand),
    /// Stop an instance's replicas, keeping its version, settings and named storage.
    Stop(lifecycle::StopStartArgs),
    /// Start a stopped instance's replicas again.
    Start(lifecycle::StopStartArgs),
    /// Restart an instance's replicas node by node, as a rollout of the same version.
    Restart(lifecycle::RestartArgs),
    /// Remove an instance from its nodes (named storage is kept unless --purge).
    Undeploy(instance::UndeployArgs),
    /// The state of each replica, per component and node.
    Status(instance::StatusArgs),
    /// The command log; `events verify` checks its hash chain.
    Events(events::EventsArgs),
    /// An instance's log lines, as collected from its nodes.
    Logs(logs::LogsArgs),
    /// The runs of an instance's jobs, per node, as the agents reported them.
    Jobs(jobs::JobsArgs),
}

/// The `skerry` binary's entry point.
pub fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    match cli.command {
        Command::Serve(args) => crate::serve::main(args),
        command => run_client(cli.client, command),
    }
}

/// Reports a command line that clap refused (exit 2), or prints the help or version that
/// was asked for (exit 0). With `-o json` on the command line a refusal is the error body
/// `{"error": {"code": "usage", "message", "field"?}}` on standard error, as every other
/// error is printed there; help and version stay text.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let code = ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
    let shown = matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if shown || !wants_json(std::env::args_os().skip(1)) {
        let _ = e.print();
        return code;
    }
    let body = crate::api::dto::ErrorBody {
        error: crate::api::dto::ErrorDetail {
            code: "usage".to_owned(),
            message: usage_message(&e.render().to_string()),
            field: usage_field(e),
        },
    };
    let text = serde_json::to_string_pretty(&body)
        .unwrap_or_else(|_| format!("error: {}", body.error.message));
    let _ = std::io::Write::write_all(
        &mut std::io::stderr().lock(),
        format!("{text}\n").as_bytes(),
    );
    code
}

/// Whether the command line asks for `-o json` (`-o json`, `-ojson`, `-o=json`, `--output
/// json`, `--output=json`), read without clap since clap refused it; arguments after `--`
/// are not options.
fn wants_json(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    let args: Vec<String> = args.map(|a| a.to_string_lossy().into_owned()).collect();
    let mut json = false;
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        if arg == "--" {
            break;
        }
        let value = match arg {
            "-o" | "--output" => {
                i += 1;
                args.get(i).map(String::as_str)
            }
            _ => arg
                .strip_prefix("--output=")
                .or_else(|| arg.strip_prefix("-o=").or_else(|| arg.strip_prefix("-o"))),
        };
        if let Some(v) = value {
            json = v == "json";
        }
        i += 1;
    }
    json
}

/// clap's rendered error as one line: without `error: `, the usage line and the pointer to
/// `--help`.
fn usage_message(rendered: &str) -> String {
    rendered
        .trim()
        .split("\n\n")
        .filter(|p| !p.starts_with("Usage:") && !p.starts_with("For more information"))
        .map(|p| {
            p.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("; ")
        .trim_start_matches("error: ")
        .to_owned()
}

/// The option or argument a clap error is about (`--since`), when it names one.
fn usage_field(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};
    match e.get(ContextKind::InvalidArg)? {
        ContextValue::String(s) => s.split_whitespace().next().map(str::to_owned),
        ContextValue::Strings(v) => v
            .first()
            .and_then(|s| s.split_whitespace().next())
            .map(str::to_owned),
        _ => None,
    }
}

/// Runs a client command on a current-thread runtime and reports its outcome.
fn run_client(opts: ClientOpts, command: Command) -> ExitCode {
    let format = opts.output;
    let outcome = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Internal(format!("cannot start the async runtime: {e}")))
        .and_then(|rt| rt.block_on(run(opts, command)));
    match outcome {
        Ok(code) => code,
        Err(e) => {
            output::error(&e, format);
            ExitCode::from(e.exit_code())
        }
    }
}

/// Runs one client command.
pub async fn run(opts: ClientOpts, command: Command) -> Result<ExitCode, CliError> {
    let format = opts.output;
    let client = Client::with_ca(opts.cloud, opts.token, opts.ca.as_deref())?;
    let c = &client;
    match command {
        Command::Serve(_) => Err(CliError::Internal(
            "`serve` is not a client command".to_owned(),
        )),
        Command::Env(cmd) => env::run(cmd, c, format).await.map(done),
        Command::Node(cmd) => node::run(cmd, c, format).await.map(done),
        Command::Token(cmd) => token::run(cmd, c, format).await.map(done),
        Command::Secret(cmd) => secret::run(cmd, c, format).await.map(done),
        Command::App(cmd) => app::run(cmd, c, format).await.map(done),
        Command::Deploy(args) => instance::deploy(args, c, format).await.map(done),
        Command::Upgrade(args) => rollout::upgrade(args, c, format).await.map(done),
        Command::Rollback(args) => rollout::rollback(args, c, format).await.map(done),
        Command::Rollout(cmd) => rollout::rollout(cmd, c, format).await.map(done),
        Command::Stop(args) => lifecycle::stop_or_start(args, true, c, format)
            .await
            .map(done),
        Command::Start(args) => lifecycle::stop_or_start(args, false, c, format)
            .await
            .map(done),
        Command::Restart(args) => lifecycle::restart(args, c, format).await.map(done),
        Command::Undeploy(args) => instance::undeploy(args, c, format).await.map(done),
        Command::Status(args) => instance::status(args, c, format).await.map(done),
        Command::Events(args) => events::run(args, c, format).await,
        Command::Logs(args) => logs::run(args, c, format).await.map(done),
        Command::Jobs(args) => jobs::run(args, c, format).await.map(done),
    }
}

fn done(_: ()) -> ExitCode {
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(args: &[&str]) -> bool {
        wants_json(args.iter().map(std::ffi::OsString::from))
    }

    #[test]
    fn o_json_is_found_in_every_spelling() {
        assert!(json(&["-o", "json", "env", "list", "--bogus"]));
        assert!(json(&["env", "list", "--output=json"]));
        assert!(json(&["-ojson", "events"]));
        assert!(json(&["-o=json", "events"]));
        assert!(json(&["--output", "json"]));
        assert!(!json(&["env", "list", "--bogus"]));
        assert!(!json(&["-o", "json", "-o", "table"]));
        assert!(!json(&["env", "create", "--", "-o", "json"]));
        assert!(!json(&["-o"]));
    }

    #[test]
    fn clap_errors_become_one_line() {
        let e = Cli::try_parse_from(["skerry", "env", "create"]).unwrap_err();
        let m = usage_message(&e.render().to_string());
        assert_eq!(
            m,
            "the following required arguments were not provided: <NAME>"
        );
        let e = Cli::try_parse_from(["skerry", "events", "--since", "yesterday"]).unwrap_err();
        assert_eq!(usage_field(&e).as_deref(), Some("--since"));
        let m = usage_message(&e.render().to_string());
        assert!(
            m.starts_with("invalid value 'yesterday' for '--since <T>'"),
            "{m}"
        );
        assert!(!m.contains('\n'), "{m}");
    }
}
