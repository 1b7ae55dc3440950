//! `skerry serve`'s configuration: one serde struct, read from TOML, with `SKERRY_*`
//! environment overrides and command-line flags on top. Every field is checked and all
//! errors are reported at once.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

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
}

/// Every problem found in the configuration.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  {}", .0.join("\n  "))]
pub struct ConfigError(pub Vec<String>);

impl Config {
    /// Merges file, environment (`SKERRY_DATA`, `SKERRY_LISTEN`, `SKERRY_MQTT`,
    /// `SKERRY_MQTT_ADVERTISE`, `SKERRY_NATS`, `SKERRY_KEYS`, `SKERRY_LOCAL_NODE`) and flags.
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
        let local_node = if args.no_local_node {
            false
        } else if let Some(v) = env("SKERRY_LOCAL_NODE") {
            match v.as_str() {
                "1" | "true" | "yes" => true,
                "0" | "false" | "no" => false,
                _ => {
                    errors.push(format!("SKERRY_LOCAL_NODE: \"{v}\" is not true or false"));
                    true
                }
            }
        } else {
            file.local_node.unwrap_or(true)
        };
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
        })
    }
}
