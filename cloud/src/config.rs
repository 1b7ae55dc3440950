//! `skerry serve`'s configuration: one serde struct, read from TOML, with `SKERRY_*`
//! environment overrides and command-line flags on top. Every field is checked and all
//! errors are reported at once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use serde::Deserialize;
use skerry_shared::quantity::Memory;

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
}

/// Every problem found in the configuration.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  {}", .0.join("\n  "))]
pub struct ConfigError(pub Vec<String>);

impl Config {
    /// Merges file, environment (`SKERRY_DATA`, `SKERRY_LISTEN`, `SKERRY_MQTT`,
    /// `SKERRY_MQTT_ADVERTISE`, `SKERRY_NATS`, `SKERRY_KEYS`, `SKERRY_LOCAL_NODE`,
    /// `SKERRY_LOG_RETENTION`, `SKERRY_LOG_MAX_BYTES`, `SKERRY_SYNC_SNAPSHOTS`) and flags.
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
        let sync_snapshots = flag("SKERRY_SYNC_SNAPSHOTS", file.sync.snapshots);
        let log_retention = log_retention(
            env("SKERRY_LOG_RETENTION").or(file.logs.retention),
            env("SKERRY_LOG_MAX_BYTES")
                .map(Size::Text)
                .or(file.logs.max_bytes),
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
        })
    }
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
}
