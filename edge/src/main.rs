//! `skerry-edge`: the agent's binary. It parses flags, sets up logging and calls the
//! library; see the crate docs.
//!
//! Exit status, the same as `skerry`'s where the meaning is the same (docs/cli.md, "Exit
//! status"): 0 done (stopped by a signal, or printed); 1 anything else (the cloud
//! unreachable, an internal failure); 2 refused input (a usage error, a refused flag, a
//! malformed token, a first run without a token, an enrollment the cloud refused with 400
//! or 409); 3 a verification found a fault (the cloud's CA or certificates do not check
//! out against the token); 4 not found (no journal in `--data`, or no enrollment route at
//! `--cloud`); 5 not allowed (the cloud refused the token).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use skerry_edge::config::{AgentConfig, TOKEN_ENV, TokenFlags, enrollment};
use skerry_edge::journal::redb::RedbJournal;
use skerry_edge::journal::{FILE_NAME, inspect};
use skerry_shared::manifest::RuntimeKind;

/// The Skerry agent.
#[derive(Debug, Parser)]
#[command(name = "skerry-edge", version, about = "The Skerry agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RuntimeArg {
    Docker,
    Process,
}

#[derive(Debug, Clone, Copy, Default, ValueEnum, PartialEq, Eq)]
enum Output {
    #[default]
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Enroll (first run, with --cloud and a token) and run the node's apps.
    Run {
        /// The agent's data directory: identity, journal, storage, logs.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// The cloud's HTTP address (first run only; with --token-file, SKERRY_TOKEN or
        /// --token).
        #[arg(long, value_name = "URL")]
        cloud: Option<String>,
        /// The one-time enrollment token from `skerry node token` (first run only).
        /// Every user of the host sees it in `ps`: prefer --token-file or SKERRY_TOKEN.
        #[arg(long, value_name = "TOKEN", requires = "cloud")]
        token: Option<String>,
        /// A file that holds the enrollment token (first run only; not read once the
        /// node is enrolled). Without it or --token, the token is taken from SKERRY_TOKEN.
        #[arg(
            long,
            value_name = "FILE",
            requires = "cloud",
            conflicts_with = "token"
        )]
        token_file: Option<PathBuf>,
        /// The node's name at enrollment [default: the host name].
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// A built-in firmware profile's name, or a profile file.
        #[arg(long, value_name = "NAME|FILE")]
        profile: Option<String>,
        /// Use only this runtime [default: every runtime of the profile].
        #[arg(long, value_enum)]
        runtime: Option<RuntimeArg>,
    },
    /// What the local journal says: the last applied event, desired state, memos.
    Status {
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// The events in the local journal.
    Events {
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// Only events after this node_seq.
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
}

/// `RUST_LOG` as a list of `target=level` directives and a default level (`info` when
/// unset or unreadable). `Targets`, not `EnvFilter`: it needs no regex engine, which keeps
/// the agent's binary smaller; the agent has no use for span or field filters.
fn filter() -> tracing_subscriber::filter::Targets {
    std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO)
        })
}

/// Logs to standard error and, with `file`, also to the runtime log file there (rotated by
/// size), which `skerry node logs` reads. A file that cannot be opened is said and skipped.
fn init_tracing(file: Option<&std::path::Path>) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let file_layer = file
        .and_then(|f| match skerry_edge::runlog::writer(f) {
            Ok(w) => Some(w),
            Err(e) => {
                eprintln!(
                    "warning: {}: {e}; logging to standard error only",
                    f.display()
                );
                None
            }
        })
        .map(|writer| {
            tracing_subscriber::fmt::layer()
                .with_writer(std::sync::Mutex::new(writer))
                .with_ansi(false)
        });
    let _ = tracing_subscriber::registry()
        .with(filter())
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .with(file_layer)
        .try_init();
}

fn print<T: serde::Serialize + std::fmt::Display>(value: &T, output: Output) -> ExitCode {
    match output {
        Output::Table => println!("{value}"),
        Output::Json => match serde_json::to_string_pretty(value) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        },
    }
    ExitCode::SUCCESS
}

/// Exit status 4: not found.
const NOT_FOUND: u8 = 4;

fn inspect_journal(data: &std::path::Path) -> Result<RedbJournal, ExitCode> {
    RedbJournal::open_read_only(&data.join(FILE_NAME), 4 << 20).map_err(|e| {
        eprintln!("error: {}: {e}", data.join(FILE_NAME).display());
        match e {
            skerry_edge::journal::JournalError::Missing { .. } => ExitCode::from(NOT_FOUND),
            _ => ExitCode::from(1),
        }
    })
}

fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            data,
            cloud,
            token,
            token_file,
            name,
            profile,
            runtime,
        } => {
            let runtime = runtime.map(|r| match r {
                RuntimeArg::Docker => RuntimeKind::Docker,
                RuntimeArg::Process => RuntimeKind::Process,
            });
            let flags = TokenFlags {
                token,
                token_file,
                env: std::env::var(TOKEN_ENV).ok(),
            };
            let (cloud, token) = match enrollment(&data, cloud, flags) {
                Ok(pair) => pair,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let config = match AgentConfig::new(data, cloud, token, name, profile, runtime) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            init_tracing(config.runtime_log.as_deref());
            // The agent runs on one thread: its footprint is a feature.
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the runtime: {e}");
                    return ExitCode::from(1);
                }
            };
            match rt.block_on(skerry_edge::agent::run(config, shutdown())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    match e {
                        skerry_edge::agent::AgentError::NotEnrolled => ExitCode::from(2),
                        skerry_edge::agent::AgentError::Enroll(e) => ExitCode::from(e.exit_code()),
                        _ => ExitCode::from(1),
                    }
                }
            }
        }
        Command::Status { data, output } => match inspect_journal(&data) {
            Ok(j) => match inspect::status_report(&j) {
                Ok(s) => print(&s, output),
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            },
            Err(code) => code,
        },
        Command::Events {
            data,
            after,
            limit,
            output,
        } => match inspect_journal(&data) {
            Ok(j) => match inspect::events_report(&j, after, limit) {
                Ok(s) => print(&s, output),
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            },
            Err(code) => code,
        },
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = term => {},
    }
}
