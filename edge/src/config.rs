//! The agent's configuration: `skerry-edge run` flags, checked, with defaults.

use std::path::{Path, PathBuf};

use skerry_shared::ids::Name;
use skerry_shared::manifest::RuntimeKind;
use skerry_shared::profile::{self, FirmwareProfile};

/// What `run` needs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The agent's data directory: identity, journal, storage, logs.
    pub data: PathBuf,
    /// The cloud's HTTP address, for the first run's enrollment.
    pub cloud: Option<String>,
    /// The one-time enrollment token, for the first run.
    pub token: Option<String>,
    /// The node's name at enrollment.
    pub name: Name,
    pub profile: FirmwareProfile,
    /// The runtimes to use: those of the profile, or the one `--runtime` names.
    pub runtimes: Vec<RuntimeKind>,
    /// The agent's own log file (`DATA/agent.log`), which `skerry node logs` reads; `None`
    /// when the agent logs elsewhere (the cloud's local node logs with the cloud).
    pub runtime_log: Option<PathBuf>,
}

/// Why the configuration is refused.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    pub field: &'static str,
    pub message: String,
}

fn refuse(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field,
        message: message.into(),
    }
}

/// The profile for this host when none is given.
pub fn default_profile_name() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "raspberry-pi-4",
        _ => "x86-64-host",
    }
}

/// A profile by built-in name or TOML file.
pub fn load_profile(spec: &str) -> Result<FirmwareProfile, ConfigError> {
    if let Some(p) = profile::builtin(spec) {
        return Ok(p);
    }
    let path = Path::new(spec);
    if !path.exists() {
        return Err(refuse(
            "profile",
            format!(
                "\"{spec}\" is neither a built-in profile ({}) nor a file",
                profile::builtin_names().join(", ")
            ),
        ));
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| refuse("profile", format!("{spec}: {e}")))?;
    FirmwareProfile::from_toml(&text).map_err(|e| refuse("profile", format!("{spec}: {e}")))
}

/// The host's name, made into a node name.
pub fn default_name() -> String {
    let raw = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let cleaned: String = raw
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let cleaned = cleaned
        .trim_matches('-')
        .chars()
        .take(63)
        .collect::<String>();
    if cleaned.is_empty() {
        "node".into()
    } else {
        cleaned
    }
}

impl AgentConfig {
    /// Checks the flags of `skerry-edge run`.
    pub fn new(
        data: PathBuf,
        cloud: Option<String>,
        token: Option<String>,
        name: Option<String>,
        profile: Option<String>,
        runtime: Option<RuntimeKind>,
    ) -> Result<AgentConfig, ConfigError> {
        let name = name.unwrap_or_else(default_name);
        let name = Name::parse(&name).map_err(|e| refuse("name", e.to_string()))?;
        let profile = load_profile(profile.as_deref().unwrap_or_else(|| default_profile_name()))?;
        let runtimes = match runtime {
            Some(r) if !profile.supports(r) => {
                return Err(refuse(
                    "runtime",
                    format!("profile {} has no {r} runtime", profile.name),
                ));
            }
            Some(r) => vec![r],
            None => profile.runtimes.clone(),
        };
        if token.is_some() != cloud.is_some() {
            return Err(refuse("token", "--cloud and --token go together"));
        }
        Ok(AgentConfig {
            runtime_log: Some(crate::runlog::path_in(&data)),
            data,
            cloud,
            token,
            name,
            profile,
            runtimes,
        })
    }
}
