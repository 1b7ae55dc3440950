//! `skerry serve`: the composition root.
//!
//! Opens the data directory, the event log (on the backend the configuration names,
//! [`Config::log_backend`], through [`log::open`]) and the CA, rebuilds the projections, makes
//! sure the environment `local` exists, opens the report store (`reports.redb`: what agents
//! send through their outboxes), starts the sync hub, the controllers
//! ([`crate::controllers`]: liveness, rollouts, secrets, selectors), the agents' MQTT
//! endpoint and the local node, and serves the REST API until shutdown (Ctrl-C or
//! SIGTERM); then it waits for each of them before it closes the engine. Tests call [`run`] with their own listener and shutdown
//! future.

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;

use skerry_shared::event::Actor;
use tokio::net::TcpListener;

use crate::api::server::tls::{self, TlsError};
use crate::api::{self, AppState};
use crate::command::Command;
use crate::config::{Config, ServeArgs};
use crate::engine::{Engine, EngineError};
use crate::log::{self, LogError};
use crate::mqtt::MqttEndpoint;
use crate::pki::{Pki, PkiError};
use crate::reports::{ReportError, ReportStore};
use crate::sync::Hub;

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("the secrets key: {0}")]
    Secrets(#[from] crate::secrets::SecretsKeyError),
    #[error(transparent)]
    Reports(#[from] ReportError),
    #[error(transparent)]
    Mqtt(#[from] crate::mqtt::MqttError),
    #[error(transparent)]
    AdminToken(#[from] crate::admin_token::AdminTokenError),
    #[error(
        "the NATS JetStream backend (--nats) is not part of this build yet; run without --nats to use the embedded log"
    )]
    NatsUnavailable,
    #[error(transparent)]
    Tls(#[from] TlsError),
}

impl ServeError {
    /// The exit status: 2 for a configuration the cloud refuses, 1 for anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            ServeError::Config(_) => 2,
            ServeError::Tls(e) if !matches!(e, TlsError::Build(_)) => 2,
            _ => 1,
        }
    }
}

/// The running server's parts, for tests and the binary.
#[derive(Debug, Clone)]
pub struct Cloud {
    pub engine: Engine,
    pub pki: Arc<Pki>,
}

/// Opens the log, the projections and the CA under `config`.
pub async fn open(config: &Config) -> Result<Cloud, ServeError> {
    if !config.nats.is_empty() {
        return Err(ServeError::NatsUnavailable);
    }
    std::fs::create_dir_all(&config.data).map_err(|source| ServeError::Io {
        path: config.data.display().to_string(),
        source,
    })?;
    let backend = config.log_backend();
    let log = tokio::task::spawn_blocking(move || log::open(&backend))
        .await
        .map_err(|e| LogError::Storage(e.to_string()))??;
    let engine = tokio::task::spawn_blocking(move || Engine::start(log))
        .await
        .map_err(|e| LogError::Storage(e.to_string()))??;
    engine.submit(Actor::Cloud, Command::Bootstrap).await?;
    let keys = config.keys.clone();
    let pki = tokio::task::spawn_blocking(move || Pki::load_or_create(&keys))
        .await
        .map_err(|e| LogError::Storage(e.to_string()))??
        .with_node_lifetime(config.node_cert_lifetime);
    Ok(Cloud {
        engine,
        pki: Arc::new(pki),
    })
}

/// `host` of `host:port` (an IPv6 literal keeps its brackets off).
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let local = listener.local_addr().map_err(|source| ServeError::Io {
        path: "listener".into(),
        source,
    })?;
    // Beyond loopback: TLS, or `--insecure-http`, or no start at all.
    let tls_plan = tls::plan(local, &config.keys, &config.tls_names, config.insecure_http)?;
    let cloud = open(&config).await?;
    let acceptor = tls::acceptor(&tls_plan, &cloud.pki, local)?;
    tls::announce(&tls_plan, local);
    // The report store: replica statuses, log lines and drop counts from the agents'
    // outboxes, with the log retention applied by its writer.
    let reports_path = config.data.join("reports.redb");
    let retention = config.log_retention;
    let reports = tokio::task::spawn_blocking(move || ReportStore::open(&reports_path, retention))
        .await
        .map_err(|e| ReportError::Storage(e.to_string()))??;
    let statuses = {
        let r = reports.clone();
        tokio::task::spawn_blocking(move || r.replica_reports())
            .await
            .map_err(|e| ReportError::Storage(e.to_string()))??
    };
    let keys = config.keys.clone();
    let secrets =
        tokio::task::spawn_blocking(move || crate::secrets::SecretsKey::load_or_create(&keys))
            .await
            .map_err(|e| LogError::Storage(e.to_string()))??;
    let secrets = Arc::new(secrets);
    let (stop_tx, stopping) = tokio::sync::watch::channel(false);
    let hub = Hub::new(cloud.engine.clone());
    hub.set_snapshots(config.sync_snapshots);
    hub.attach_reports(reports.clone(), statuses);
    hub.attach_pki(cloud.pki.clone());
    let monitor = tokio::spawn(crate::controllers::liveness::run(hub.clone(), {
        let mut stopping = stopping.clone();
        async move {
            let _ = stopping.wait_for(|s| *s).await;
        }
    }));
    let rollouts = tokio::spawn(crate::controllers::rollouts::run(hub.clone(), {
        let mut stopping = stopping.clone();
        async move {
            let _ = stopping.wait_for(|s| *s).await;
        }
    }));
    let deliveries = tokio::spawn(crate::controllers::secrets::run(
        cloud.engine.clone(),
        secrets.clone(),
        {
            let mut stopping = stopping.clone();
            async move {
                let _ = stopping.wait_for(|s| *s).await;
            }
        },
    ));
    let selectors = tokio::spawn(crate::controllers::selectors::run(cloud.engine.clone(), {
        let mut stopping = stopping.clone();
        async move {
            let _ = stopping.wait_for(|s| *s).await;
        }
    }));
    let stopped = {
        let stopping = stopping.clone();
        move || {
            let mut stopping = stopping.clone();
            async move {
                let _ = stopping.wait_for(|s| *s).await;
            }
        }
    };

    // The agents' MQTT endpoint, with a server certificate from the cloud's CA for the
    // names agents may dial.
    let mut names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
    if !config.mqtt.ip().is_unspecified() {
        names.push(config.mqtt.ip().to_string());
    }
    if let Some(adv) = &config.mqtt_advertise {
        names.push(host_of(adv).to_owned());
    }
    names.sort();
    names.dedup();
    let endpoint = MqttEndpoint::bind(config.mqtt, &cloud.pki, &names).await?;
    let advertised = config
        .mqtt_advertise
        .clone()
        .unwrap_or_else(|| endpoint.local_addr().to_string());
    if config.mqtt_advertise.is_none() && config.mqtt.ip().is_unspecified() {
        tracing::warn!(
            mqtt = %endpoint.local_addr(),
            "the MQTT endpoint listens on every address, but agents are told {advertised}, which they cannot dial: set mqtt_advertise (SKERRY_MQTT_ADVERTISE) to the address agents reach"
        );
    }
    tracing::info!(mqtt = %endpoint.local_addr(), advertised = %advertised, "the agents' MQTT endpoint is up");
    let mqtt_task = tokio::spawn(endpoint.run(hub.clone(), stopped()));

    let state = AppState {
        engine: cloud.engine.clone(),
        pki: cloud.pki.clone(),
        mqtt: vec![advertised],
        nats: config.nats.clone(),
        stopping,
        hub: hub.clone(),
        reports: reports.clone(),
        secrets: secrets.clone(),
    };
    // Streams (`events --follow`) end when shutdown starts, so it does not wait on them.
    let shutdown = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    crate::admin_token::ensure(&cloud.engine, &config.data).await?;
    let head = cloud.engine.read().head.next_seq - 1;
    let scheme = if tls_plan.is_tls() { "https" } else { "http" };
    tracing::info!(api = %format!("{scheme}://{local}"), data = %config.data.display(), events = head, "skerry serve is ready");
    let local_node = if config.local_node {
        Some(tokio::spawn(crate::local_node::run(
            config.data.join("local-node"),
            tls::local_api_url(local, tls_plan.is_tls()),
            cloud.engine.clone(),
            cloud.pki.clone(),
            stopped(),
        )))
    } else {
        None
    };
    let guard = api::server::Guard {
        allowed_origins: Arc::new(config.http.allowed_origins.clone()),
        body_timeout: config.http.body_timeout,
    };
    let app = api::router_with(state, guard);
    let limits = api::server::Limits {
        header_timeout: config.http.header_timeout,
        max_connections: connection_bound(config.http.max_connections),
    };
    tracing::info!(
        header_timeout = ?limits.header_timeout,
        body_timeout = ?config.http.body_timeout,
        max_connections = limits.max_connections,
        allowed_origins = ?config.http.allowed_origins,
        "API server limits"
    );
    let served = api::server::serve(listener, app, limits, acceptor, shutdown)
        .await
        .map_err(|source| ServeError::Io {
            path: local.to_string(),
            source,
        });
    if let Some(task) = local_node {
        let _ = task.await;
    }
    match mqtt_task.await {
        Ok(Err(e)) => tracing::error!(error = %e, "the MQTT endpoint failed"),
        Err(e) => tracing::error!(error = %e, "the MQTT endpoint failed"),
        Ok(Ok(())) => {}
    }
    // The monitor saw the stop; wait for it, so no status change is submitted after the
    // engine closes.
    if let Err(e) = selectors.await {
        tracing::error!(error = %e, "the selectors controller failed");
    }
    if let Err(e) = deliveries.await {
        tracing::error!(error = %e, "the secrets delivery controller failed");
    }
    if let Err(e) = rollouts.await {
        tracing::error!(error = %e, "the rollout controller failed");
    }
    if let Err(e) = monitor.await {
        tracing::error!(error = %e, "the liveness monitor failed");
    }
    // No session is left to ingest reports: finish what is queued and release the file.
    let _ = tokio::task::spawn_blocking(move || reports.close()).await;
    let engine = cloud.engine.clone();
    let _ = tokio::task::spawn_blocking(move || engine.close()).await;
    served
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

/// Sets up tracing on standard error (`RUST_LOG`, default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Raises the soft open-files limit to the hard one: every connected agent holds a socket,
/// and a default soft limit of 1,024 would stop the cloud near 1,000 agents.
fn raise_open_files() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::info!(from = soft, to = hard, "raised the open-files limit"),
            Err(e) => {
                tracing::warn!(soft, hard, error = %e, "cannot raise the open-files limit: each connected agent takes one")
            }
        },
        Ok((soft, _)) => tracing::info!(limit = soft, "open-files limit"),
        Err(e) => tracing::warn!(error = %e, "cannot read the open-files limit"),
    }
}

/// `[http] max_connections`, lowered to half the open-files limit when it is above that:
/// the other half is left to the agents' MQTT sessions, the data files and the local node.
fn connection_bound(configured: usize) -> usize {
    use nix::sys::resource::{Resource, getrlimit};
    let Ok((soft, _)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return configured;
    };
    let half = usize::try_from(soft / 2).unwrap_or(usize::MAX).max(1);
    if configured > half {
        tracing::warn!(
            configured,
            open_files = soft,
            bound = half,
            "http.max_connections is above half the open-files limit; the API serves at most {half} connections at once"
        );
        half
    } else {
        configured
    }
}

/// `skerry serve`.
pub fn main(args: ServeArgs) -> ExitCode {
    init_tracing();
    raise_open_files();
    let config = match Config::load(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServeError::Io {
                path: config.listen.to_string(),
                source,
            })?;
        run(config, listener, shutdown_signal()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_connection_bound_leaves_half_the_open_files_to_the_rest() {
        use nix::sys::resource::{Resource, getrlimit};
        let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        let half = usize::try_from(soft / 2).unwrap();
        assert_eq!(connection_bound(usize::MAX), half.max(1));
        assert_eq!(connection_bound(1), 1);
    }
}
