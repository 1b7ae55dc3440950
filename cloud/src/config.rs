//! `skerry serve`'s configuration: one serde struct, read from TOML, with `SKERRY_*`
//! environment overrides and command-line flags on top. Every field is checked and all
//! errors are reported at once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use serde::Deserialize;
use skerry_shared::quantity::Memory;

use crate::log::LogBackend;
use crate::reports::LogRetention;

/// `skerry serve` flags. Each overrides the config file and the environment.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// A TOML config file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the cloud keeps its data [default: ./skerry-data].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// The REST API's address [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// The agents' MQTT endpoint (TLS) [default: 127.0.0.1:7883].
    #[arg(long, value_name = "ADDR")]
    pub mqtt: Option<String>,
    /// Put the event log and the agents' links on a NATS JetStream cluster.
    #[arg(long, value_name = "URL,...", value_delimiter = ',')]
    pub nats: Vec<String>,
    /// Where the CA and signing keys live [default: DATA/keys].
    #[arg(long, value_name = "DIR")]
    pub keys: Option<PathBuf>,
    /// Do not run the local node in-process.
    #[arg(long)]
    pub no_local_node: bool,
    /// Serve the API over https with a certificate from the cloud's CA for NAME (a DNS
    /// name or an IP address; repeatable).
    #[arg(long = "tls-name", value_name = "NAME")]
    pub tls_names: Vec<String>,
    /// Serve the API over plain http beyond loopback (tokens and secrets cross the network
    /// in the clear).
    #[arg(long)]
    pub insecure_http: bool,
}

/// The whole configuration, as read from the config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    pub data: Option<PathBuf>,
    pub listen: Option<String>,
    pub mqtt: Option<String>,
    /// The MQTT address agents are told to use, when it differs from `mqtt` (behind NAT).
    pub mqtt_advertise: Option<String>,
    pub nats: Vec<String>,
    pub keys: Option<PathBuf>,
    pub local_node: Option<bool>,
    /// The event log's redb cache, in bytes.
    pub log_cache_bytes: Option<usize>,
    /// `[logs]`: how long the cloud keeps the log lines agents ship, and how much of them.
    pub logs: LogsConfig,
    /// `[sync]`: how nodes catch up.
    pub sync: SyncConfig,
    /// `[http]`: the REST API's server: other origins allowed, timeouts, connections.
    pub http: HttpFileConfig,
    /// Names (DNS names or IP addresses) of the API's certificate from the cloud's CA: the
    /// API serves https.
    pub tls_names: Vec<String>,
    /// Serve the API over plain http beyond loopback.
    pub insecure_http: Option<bool>,
    /// `[pki]`: node certificates.
    pub pki: PkiFileConfig,
}

/// `[pki]` in the config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PkiFileConfig {
    /// How long a node certificate is valid (`90d`; `5s` in tests). Agents renew theirs over
    /// the link once two thirds of it have passed. Default 90 days.
    pub node_certificate_lifetime: Option<String>,
}

/// The longest `[pki] node_certificate_lifetime` accepted: the CA's own ten years.
pub const MAX_NODE_CERT_LIFETIME: std::time::Duration =
    std::time::Duration::from_secs(3650 * 24 * 3600);

/// `[http]` in the config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpFileConfig {
    /// Web origins (`https://console.example`) whose pages may call the API. Default none:
    /// a request a browser marks as cross-origin is refused (403 `cross_origin`).
    pub allowed_origins: Vec<String>,
    /// How long a request head may take to arrive, and a kept-alive connection may stay
    /// idle (`10s`). Default 10 s.
    pub header_timeout: Option<String>,
    /// How long a request body may take to arrive whole (`60s`). Default 60 s.
    pub body_timeout: Option<String>,
    /// How many API connections are served at once. Default 4096.
    pub max_connections: Option<usize>,
}

/// The longest `[http] header_timeout` or `body_timeout` accepted.
pub const MAX_HTTP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

/// The most `[http] max_connections` accepted.
pub const MAX_HTTP_CONNECTIONS: usize = 1 << 20;

/// The REST API server's settings in force.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub allowed_origins: Vec<String>,
    pub header_timeout: std::time::Duration,
    pub body_timeout: std::time::Duration,
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        use crate::api::server;
        HttpConfig {
            allowed_origins: Vec::new(),
            header_timeout: server::DEFAULT_HEADER_TIMEOUT,
            body_timeout: server::DEFAULT_BODY_TIMEOUT,
            max_connections: server::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// `[sync]` in the config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// `false`: a node that reconnects always gets the events it missed, never a snapshot
    /// of its desired state in their place, so its journal holds every event. Default true.
    pub snapshots: Option<bool>,
}

/// `[logs]` in the config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    /// A duration (`7d`, `36h`): older lines are removed. Default 7 days.
    pub retention: Option<String>,
    /// A size (`1Gi`, `500Mi`, or bytes): beyond it the oldest lines are removed. Default 1Gi.
    pub max_bytes: Option<Size>,
}

/// A size as a quantity (`1Gi`) or a number of bytes.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Size {
    Bytes(u64),
    Text(String),
}

/// The configuration in force.
#[derive(Debug, Clone)]
pub struct Config {
    pub data: PathBuf,
    pub listen: SocketAddr,
    pub mqtt: SocketAddr,
    /// The MQTT address agents are told; `None`: the address the endpoint bound.
    pub mqtt_advertise: Option<String>,
    pub nats: Vec<String>,
    pub keys: PathBuf,
    pub local_node: bool,
    pub log_cache_bytes: usize,
    /// What the report store keeps of the agents' log lines.
    pub log_retention: LogRetention,
    /// Whether a catch-up may send a snapshot in place of the missed events.
    pub sync_snapshots: bool,
    /// The REST API server: allowed origins, timeouts, the connection bound.
    pub http: HttpConfig,
    /// The names of the API's certificate from the cloud's CA (`--tls-name`); none: no
    /// certificate is issued (see `api::server::tls` for the policy).
    pub tls_names: Vec<String>,
    /// Plain http beyond loopback is allowed (`--insecure-http`).
    pub insecure_http: bool,
    /// How long the node certificates issued are valid (`[pki] node_certificate_lifetime`).
    pub node_cert_lifetime: std::time::Duration,
}

impl Config {
    /// The event log backend this configuration runs on: the embedded log,
    /// `<data>/events.redb`, with a cache of `log_cache_bytes`. (`serve` refuses `nats`
    /// before it opens a log, until the JetStream backend is built; it will be chosen here.)
    pub fn log_backend(&self) -> LogBackend {
        LogBackend::Redb {
            path: self.data.join("events.redb"),
            cache_bytes: self.log_cache_bytes,
        }
    }
}

/// Every problem found in the configuration.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  {}", .0.join("\n  "))]
pub struct ConfigError(pub Vec<String>);

impl Config {
    /// Merges file, environment (`SKERRY_DATA`, `SKERRY_LISTEN`, `SKERRY_MQTT`,
    /// `SKERRY_MQTT_ADVERTISE`, `SKERRY_NATS`, `SKERRY_KEYS`, `SKERRY_LOCAL_NODE`,
    /// `SKERRY_LOG_RETENTION`, `SKERRY_LOG_MAX_BYTES`, `SKERRY_SYNC_SNAPSHOTS`,
    /// `SKERRY_HTTP_ALLOWED_ORIGINS`, `SKERRY_HTTP_HEADER_TIMEOUT`, `SKERRY_HTTP_BODY_TIMEOUT`,
    /// `SKERRY_HTTP_MAX_CONNECTIONS`, `SKERRY_TLS_NAMES` (comma-separated),
    /// `SKERRY_INSECURE_HTTP`, `SKERRY_NODE_CERT_LIFETIME`) and flags.
    pub fn load(args: &ServeArgs) -> Result<Config, ConfigError> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let mut errors = Vec::new();
        let file = match &args.config {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => toml::from_str::<FileConfig>(&text).unwrap_or_else(|e| {
                    errors.push(format!("{}: {}", path.display(), e.message()));
                    FileConfig::default()
                }),
                Err(e) => {
                    errors.push(format!("{}: {e}", path.display()));
                    FileConfig::default()
                }
            },
            None => FileConfig::default(),
        };
        let data = args
            .data
            .clone()
            .or_else(|| env("SKERRY_DATA").map(PathBuf::from))
            .or(file.data)
            .unwrap_or_else(|| PathBuf::from("skerry-data"));
        let mut addr =
            |field: &str, flag: &Option<String>, var: &str, file: Option<String>, default: &str| {
                let text = flag
                    .clone()
                    .or_else(|| env(var))
                    .or(file)
                    .unwrap_or_else(|| default.to_owned());
                text.parse::<SocketAddr>().unwrap_or_else(|e| {
                    errors.push(format!(
                        "{field}: \"{text}\" is not an address like 127.0.0.1:8080 ({e})"
                    ));
                    SocketAddr::from(([127, 0, 0, 1], 0))
                })
            };
        let listen = addr(
            "listen",
            &args.listen,
            "SKERRY_LISTEN",
            file.listen,
            "127.0.0.1:8080",
        );
        let mqtt = addr(
            "mqtt",
            &args.mqtt,
            "SKERRY_MQTT",
            file.mqtt,
            "127.0.0.1:7883",
        );
        let mqtt_advertise = env("SKERRY_MQTT_ADVERTISE").or(file.mqtt_advertise);
        let nats = if !args.nats.is_empty() {
            args.nats.clone()
        } else if let Some(v) = env("SKERRY_NATS") {
            v.split(',').map(str::to_owned).collect()
        } else {
            file.nats
        };
        for url in &nats {
            if !(url.starts_with("nats://") || url.starts_with("tls://")) {
                errors.push(format!("nats: \"{url}\" is not a nats:// or tls:// URL"));
            }
        }
        let keys = args
            .keys
            .clone()
            .or_else(|| env("SKERRY_KEYS").map(PathBuf::from))
            .or(file.keys)
            .unwrap_or_else(|| data.join("keys"));
        let mut flag = |var: &str, file: Option<bool>| match env(var) {
            Some(v) => match v.as_str() {
                "1" | "true" | "yes" => true,
                "0" | "false" | "no" => false,
                _ => {
                    errors.push(format!("{var}: \"{v}\" is not true or false"));
                    true
                }
            },
            None => file.unwrap_or(true),
        };
        let local_node = !args.no_local_node && flag("SKERRY_LOCAL_NODE", file.local_node);
        let insecure_http = args.insecure_http
            || flag(
                "SKERRY_INSECURE_HTTP",
                Some(file.insecure_http.unwrap_or(false)),
            );
        let tls_names = if !args.tls_names.is_empty() {
            args.tls_names.clone()
        } else if let Some(v) = env("SKERRY_TLS_NAMES") {
            v.split(',')
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty())
                .collect()
        } else {
            file.tls_names
        };
        let sync_snapshots = flag("SKERRY_SYNC_SNAPSHOTS", file.sync.snapshots);
        for name in &tls_names {
            if name.parse::<std::net::IpAddr>().is_err()
                && rustls::pki_types::DnsName::try_from(name.as_str()).is_err()
            {
                errors.push(format!(
                    "tls_names: \"{name}\" (--tls-name) is neither a DNS name nor an IP address"
                ));
            }
        }
        let log_retention = log_retention(
            env("SKERRY_LOG_RETENTION").or(file.logs.retention),
            env("SKERRY_LOG_MAX_BYTES")
                .map(Size::Text)
                .or(file.logs.max_bytes),
            &mut errors,
        );
        let http = http_config(
            HttpFileConfig {
                allowed_origins: match env("SKERRY_HTTP_ALLOWED_ORIGINS") {
                    Some(v) => v.split(',').map(|o| o.trim().to_owned()).collect(),
                    None => file.http.allowed_origins,
                },
                header_timeout: env("SKERRY_HTTP_HEADER_TIMEOUT").or(file.http.header_timeout),
                body_timeout: env("SKERRY_HTTP_BODY_TIMEOUT").or(file.http.body_timeout),
                max_connections: match env("SKERRY_HTTP_MAX_CONNECTIONS") {
                    Some(v) => match v.parse() {
                        Ok(n) => Some(n),
                        Err(_) => {
                            errors.push(format!(
                                "http.max_connections: \"{v}\" (SKERRY_HTTP_MAX_CONNECTIONS) is not a number"
                            ));
                            None
                        }
                    },
                    None => file.http.max_connections,
                },
            },
            &mut errors,
        );
        let node_cert_lifetime = node_cert_lifetime(
            env("SKERRY_NODE_CERT_LIFETIME").or(file.pki.node_certificate_lifetime),
            &mut errors,
        );
        if !errors.is_empty() {
            return Err(ConfigError(errors));
        }
        Ok(Config {
            data,
            listen,
            mqtt,
            mqtt_advertise,
            nats,
            keys,
            local_node,
            log_cache_bytes: file.log_cache_bytes.unwrap_or(64 << 20),
            log_retention,
            sync_snapshots,
            http,
            tls_names,
            insecure_http,
            node_cert_lifetime,
        })
    }
}

/// `[pki] node_certificate_lifetime` (or `SKERRY_NODE_CERT_LIFETIME`), checked: from one
/// second to [`MAX_NODE_CERT_LIFETIME`]; 90 days when not given.
fn node_cert_lifetime(text: Option<String>, errors: &mut Vec<String>) -> std::time::Duration {
    let default = crate::pki::DEFAULT_NODE_CERT_LIFETIME;
    let Some(text) = text else { return default };
    match humantime::parse_duration(&text) {
        Ok(d) if d >= std::time::Duration::from_secs(1) && d <= MAX_NODE_CERT_LIFETIME => d,
        Ok(_) => {
            errors.push(format!(
                "pki.node_certificate_lifetime: \"{text}\" is out of range; give 1s to 3650d"
            ));
            default
        }
        Err(e) => {
            errors.push(format!(
                "pki.node_certificate_lifetime: \"{text}\" is not a duration such as 90d or 5s ({e})"
            ));
            default
        }
    }
}

/// `[http]`, checked; the defaults for what is not given.
fn http_config(file: HttpFileConfig, errors: &mut Vec<String>) -> HttpConfig {
    let mut out = HttpConfig::default();
    for origin in file.allowed_origins {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        let ok = origin.split_once("://").is_some_and(|(scheme, host)| {
            matches!(scheme, "http" | "https")
                && !host.is_empty()
                && !host.contains(['/', '?', '#', '@', ' '])
        });
        if ok {
            out.allowed_origins.push(origin);
        } else {
            errors.push(format!(
                "http.allowed_origins: \"{origin}\" is not an origin like https://console.example (a scheme and a host, with no path)"
            ));
        }
    }
    let mut duration = |field: &str, text: Option<String>, slot: &mut std::time::Duration| {
        let Some(text) = text else { return };
        match humantime::parse_duration(&text) {
            Ok(d) if !d.is_zero() && d <= MAX_HTTP_TIMEOUT => *slot = d,
            Ok(_) => errors.push(format!(
                "http.{field}: \"{text}\" is out of range; give a duration above zero and at most 1h"
            )),
            Err(e) => errors.push(format!(
                "http.{field}: \"{text}\" is not a duration such as 10s ({e})"
            )),
        }
    };
    duration(
        "header_timeout",
        file.header_timeout,
        &mut out.header_timeout,
    );
    duration("body_timeout", file.body_timeout, &mut out.body_timeout);
    match file.max_connections {
        Some(n) if (1..=MAX_HTTP_CONNECTIONS).contains(&n) => out.max_connections = n,
        Some(n) => errors.push(format!(
            "http.max_connections: {n} is out of range; give 1 to {MAX_HTTP_CONNECTIONS}"
        )),
        None => {}
    }
    out
}

/// `[logs] retention` and `max_bytes`, checked; the defaults for what is not given.
fn log_retention(
    retention: Option<String>,
    max_bytes: Option<Size>,
    errors: &mut Vec<String>,
) -> LogRetention {
    let mut out = LogRetention::default();
    if let Some(text) = retention {
        match humantime::parse_duration(&text) {
            Ok(d) if !d.is_zero() => out.max_age = d,
            Ok(_) => errors.push(format!(
                "logs.retention: \"{text}\" is zero; give a positive duration such as 7d"
            )),
            Err(e) => errors.push(format!(
                "logs.retention: \"{text}\" is not a duration such as 7d or 36h ({e})"
            )),
        }
    }
    let bytes = match max_bytes {
        None => None,
        Some(Size::Bytes(n)) => Some(n),
        Some(Size::Text(text)) => match Memory::from_str(&text) {
            Ok(m) => Some(m.bytes()),
            Err(e) => {
                errors.push(format!("logs.max_bytes: {e}"));
                None
            }
        },
    };
    match bytes {
        Some(0) => errors.push("logs.max_bytes: 0 keeps no lines; give a size such as 1Gi".into()),
        Some(n) => out.max_bytes = n,
        None => {}
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;

    fn parse(text: &str) -> Result<LogRetention, Vec<String>> {
        let file: FileConfig = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        let mut errors = Vec::new();
        let r = log_retention(file.logs.retention, file.logs.max_bytes, &mut errors);
        if errors.is_empty() {
            Ok(r)
        } else {
            Err(errors)
        }
    }

    #[test]
    fn logs_retention_is_read_with_defaults_and_checked() {
        assert_eq!(parse("").unwrap(), LogRetention::default());
        let r = parse("[logs]\nretention = \"36h\"\nmax_bytes = \"500Mi\"\n").unwrap();
        assert_eq!(r.max_age, Duration::from_secs(36 * 3600));
        assert_eq!(r.max_bytes, 500 << 20);
        let r = parse("[logs]\nmax_bytes = 1000\n").unwrap();
        assert_eq!(
            (r.max_age, r.max_bytes),
            (LogRetention::default().max_age, 1000)
        );
        let errors = parse("[logs]\nretention = \"soon\"\nmax_bytes = \"1Qi\"\n").unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("logs.retention"), "{errors:?}");
        assert!(errors[1].starts_with("logs.max_bytes"), "{errors:?}");
        assert!(parse("[logs]\nretention = \"0s\"\n").is_err());
        assert!(parse("[logs]\nmax_bytes = 0\n").is_err());
        assert!(parse("[logs]\nkeep = 1\n").is_err());
    }

    #[test]
    fn http_settings_are_read_with_defaults_and_checked() {
        let parse = |text: &str| {
            let file: FileConfig = toml::from_str(text).unwrap();
            let mut errors = Vec::new();
            let h = http_config(file.http, &mut errors);
            (h, errors)
        };
        let (h, errors) = parse("");
        assert!(errors.is_empty() && h.allowed_origins.is_empty());
        assert_eq!(h.header_timeout, crate::api::server::DEFAULT_HEADER_TIMEOUT);
        let (h, errors) = parse(
            "[http]\nallowed_origins = [\"https://Console.example/\"]\nheader_timeout = \"2s\"\nbody_timeout = \"5s\"\nmax_connections = 10\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(h.allowed_origins, ["https://console.example"]);
        assert_eq!(
            (h.header_timeout, h.body_timeout, h.max_connections),
            (Duration::from_secs(2), Duration::from_secs(5), 10)
        );
        let (_, errors) = parse(
            "[http]\nallowed_origins = [\"console.example\", \"https://a.example/app\"]\nheader_timeout = \"0s\"\nbody_timeout = \"soon\"\nmax_connections = 0\n",
        );
        assert_eq!(errors.len(), 5, "{errors:?}");
    }

    #[test]
    fn sync_snapshots_are_on_unless_the_file_turns_them_off() {
        let dir = tempfile::tempdir().unwrap();
        let load = |text: &str| {
            let path = dir.path().join("skerry.toml");
            std::fs::write(&path, text).unwrap();
            Config::load(&ServeArgs {
                config: Some(path),
                ..ServeArgs::default()
            })
        };
        assert!(load("").unwrap().sync_snapshots);
        assert!(!load("[sync]\nsnapshots = false\n").unwrap().sync_snapshots);
        let err = load("[sync]\nsnapshot = false\n").unwrap_err();
        assert!(err.to_string().contains("snapshot"), "{err}");
    }

    #[test]
    fn tls_names_and_insecure_http_come_from_flags_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("skerry.toml");
        std::fs::write(
            &path,
            "tls_names = [\"cloud.example\", \"192.0.2.10\"]\ninsecure_http = true\n",
        )
        .unwrap();
        let from_file = Config::load(&ServeArgs {
            config: Some(path.clone()),
            ..ServeArgs::default()
        })
        .unwrap();
        assert_eq!(from_file.tls_names, ["cloud.example", "192.0.2.10"]);
        assert!(from_file.insecure_http);
        let defaults = Config::load(&ServeArgs::default()).unwrap();
        assert!(defaults.tls_names.is_empty() && !defaults.insecure_http);
        let flags = Config::load(&ServeArgs {
            config: Some(path),
            tls_names: vec!["a.example".into()],
            ..ServeArgs::default()
        })
        .unwrap();
        assert_eq!(flags.tls_names, ["a.example"]);
        let err = Config::load(&ServeArgs {
            tls_names: vec!["not a name".into(), "".into()],
            ..ServeArgs::default()
        })
        .unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
        assert!(err.0[0].contains("--tls-name"), "{err}");
    }

    #[test]
    fn the_node_certificate_lifetime_is_90_days_unless_given_and_checked() {
        let mut errors = Vec::new();
        assert_eq!(
            node_cert_lifetime(None, &mut errors),
            Duration::from_secs(90 * 86400)
        );
        assert_eq!(
            node_cert_lifetime(Some("5s".into()), &mut errors),
            Duration::from_secs(5)
        );
        assert_eq!(
            node_cert_lifetime(Some("30d".into()), &mut errors),
            Duration::from_secs(30 * 86400)
        );
        assert!(errors.is_empty(), "{errors:?}");
        for bad in ["0s", "soon", "20000d", "500ms"] {
            let mut errors = Vec::new();
            node_cert_lifetime(Some(bad.into()), &mut errors);
            assert_eq!(errors.len(), 1, "{bad}");
            assert!(errors[0].starts_with("pki.node_certificate_lifetime"));
        }
        let file: FileConfig =
            toml::from_str("[pki]\nnode_certificate_lifetime = \"45d\"\n").unwrap();
        assert_eq!(file.pki.node_certificate_lifetime.as_deref(), Some("45d"));
        assert!(toml::from_str::<FileConfig>("[pki]\nlifetime = \"45d\"\n").is_err());
    }

    #[test]
    fn the_example_config_in_deploy_loads() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/skerry.toml");
        let config = Config::load(&ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        })
        .expect("deploy/examples/skerry.toml loads");
        assert_eq!(config.http.max_connections, 4096);
        assert!(config.http.allowed_origins.is_empty());
    }
}
