//! The agent's configuration: `skerry-edge run` flags, checked, with defaults.
//!
//! The enrollment token comes from `--token-file FILE`, `SKERRY_TOKEN` or `--token TOKEN`
//! ([`enrollment`]); the first two keep it out of the process's command line, which every
//! user of the host can read (`ps`, `/proc/PID/cmdline`). It is read only when the node
//! is not enrolled yet, and never written anywhere by the agent.

use std::path::{Path, PathBuf};

use skerry_shared::ids::Name;
use skerry_shared::manifest::RuntimeKind;
use skerry_shared::profile::{self, FirmwareProfile};

/// The environment variable that may hold the enrollment token.
pub const TOKEN_ENV: &str = "SKERRY_TOKEN";

/// The longest token file read (a token is about 170 bytes).
const TOKEN_FILE_MAX: u64 = 4096;

/// What `run` needs. Its `Debug` output leaves the token out.
#[derive(Clone)]
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
    /// The agent's clock: the host's, offset by `SKERRY_CLOCK_OFFSET` (for tests).
    pub clock: crate::clock::Clock,
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("data", &self.data)
            .field("cloud", &self.cloud)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("name", &self.name)
            .field("profile", &self.profile.name)
            .field("runtimes", &self.runtimes)
            .field("runtime_log", &self.runtime_log)
            .field("clock_offset", &self.clock.describe())
            .finish()
    }
}

/// Where `skerry-edge run` was told to find the enrollment token.
#[derive(Clone, Default)]
pub struct TokenFlags {
    /// `--token TOKEN` (visible in `ps`).
    pub token: Option<String>,
    /// `--token-file FILE`.
    pub token_file: Option<PathBuf>,
    /// The value of `SKERRY_TOKEN`, if set.
    pub env: Option<String>,
}

impl std::fmt::Debug for TokenFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenFlags")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_file", &self.token_file)
            .field("env", &self.env.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The cloud and the token to enroll with, for [`AgentConfig::new`]: both `None` once the
/// node is enrolled (`DATA/identity/node.json` exists: later runs ignore them, and a token
/// file that was removed after enrollment is not read), else `--cloud` with the token from
/// `--token`, `--token-file` (trimmed; empty or unreadable is refused) or `SKERRY_TOKEN`,
/// in that order. `--cloud` with none of them is refused, and so is a token without
/// `--cloud`, unless it comes from `SKERRY_TOKEN` (the environment may outlive the first
/// run).
pub fn enrollment(
    data: &Path,
    cloud: Option<String>,
    flags: TokenFlags,
) -> Result<(Option<String>, Option<String>), ConfigError> {
    if crate::identity::Identity::dir(data)
        .join("node.json")
        .exists()
    {
        return Ok((None, None));
    }
    let TokenFlags {
        token,
        token_file,
        env,
    } = flags;
    if token.is_some() && token_file.is_some() {
        return Err(refuse(
            "token-file",
            "give the token once: --token or --token-file",
        ));
    }
    let from_flags = match (token, token_file) {
        (Some(t), _) => Some(t),
        (None, Some(path)) => Some(read_token_file(&path)?),
        (None, None) => None,
    };
    match (cloud, from_flags) {
        (None, None) => Ok((None, None)),
        (None, Some(_)) => Err(refuse("token", "--cloud and the token go together")),
        (Some(cloud), Some(token)) => Ok((Some(cloud), Some(token))),
        (Some(cloud), None) => match env.map(|t| t.trim().to_owned()) {
            Some(t) if !t.is_empty() => Ok((Some(cloud), Some(t))),
            _ => Err(refuse(
                "token",
                format!(
                    "--cloud needs the enrollment token: --token-file FILE, {TOKEN_ENV} or --token TOKEN"
                ),
            )),
        },
    }
}

/// The token in `path`, without surrounding white space.
fn read_token_file(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    let bad = |why: String| refuse("token-file", format!("{}: {why}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let mut text = String::new();
    file.take(TOKEN_FILE_MAX + 1)
        .read_to_string(&mut text)
        .map_err(|e| bad(e.to_string()))?;
    if text.len() as u64 > TOKEN_FILE_MAX {
        return Err(bad(format!(
            "longer than {TOKEN_FILE_MAX} bytes; a token is one line"
        )));
    }
    let token = text.trim();
    if token.is_empty() {
        return Err(bad("it is empty".to_owned()));
    }
    Ok(token.to_owned())
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

/// The profile for this host when none is given, by its architecture (which fit matches
/// against a manifest's `platforms`): a 32-bit ARM host gets a 32-bit ARM board's profile.
pub fn default_profile_name() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "raspberry-pi-4",
        "arm" => "beaglebone-black",
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
        let clock = crate::clock::Clock::from_env().map_err(|e| refuse("clock", e))?;
        Ok(AgentConfig {
            runtime_log: Some(crate::runlog::path_in(&data)),
            clock,
            data,
            cloud,
            token,
            name,
            profile,
            runtimes,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn flags(token: Option<&str>, file: Option<&Path>, env: Option<&str>) -> TokenFlags {
        TokenFlags {
            token: token.map(str::to_owned),
            token_file: file.map(Path::to_owned),
            env: env.map(str::to_owned),
        }
    }

    #[test]
    fn the_token_comes_from_a_flag_a_file_or_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let cloud = || Some("http://127.0.0.1:1".to_owned());
        let file = dir.path().join("token");
        std::fs::write(&file, "  skr1.a.b.c\n").unwrap();
        let got = |f| enrollment(&data, cloud(), f).map(|(_, t)| t);
        assert_eq!(
            got(flags(Some("flag"), None, Some("env")))
                .unwrap()
                .as_deref(),
            Some("flag")
        );
        assert_eq!(
            got(flags(None, Some(&file), Some("env")))
                .unwrap()
                .as_deref(),
            Some("skr1.a.b.c")
        );
        assert_eq!(
            got(flags(None, None, Some(" env\n"))).unwrap().as_deref(),
            Some("env")
        );
        // Refused, each naming its field.
        let field = |f| got(f).unwrap_err().field;
        assert_eq!(field(flags(None, None, None)), "token");
        assert_eq!(field(flags(None, None, Some("  "))), "token");
        assert_eq!(field(flags(Some("a"), Some(&file), None)), "token-file");
        assert_eq!(
            field(flags(None, Some(&dir.path().join("nope")), None)),
            "token-file"
        );
        std::fs::write(&file, "\n").unwrap();
        assert_eq!(field(flags(None, Some(&file), None)), "token-file");
        std::fs::write(&file, "x".repeat(5000)).unwrap();
        assert_eq!(field(flags(None, Some(&file), None)), "token-file");
        // A token flag needs --cloud; the environment alone does not.
        assert_eq!(
            enrollment(&data, None, flags(Some("a"), None, None))
                .unwrap_err()
                .field,
            "token"
        );
        assert_eq!(
            enrollment(&data, None, flags(None, None, Some("env"))).unwrap(),
            (None, None)
        );
    }

    #[test]
    fn an_enrolled_node_reads_no_token() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_owned();
        std::fs::create_dir_all(data.join("identity")).unwrap();
        std::fs::write(data.join("identity").join("node.json"), "{}").unwrap();
        // The token file is gone after enrollment: later runs do not need it.
        let gone = data.join("removed-token");
        assert_eq!(
            enrollment(
                &data,
                Some("http://x".into()),
                flags(None, Some(&gone), Some("env"))
            )
            .unwrap(),
            (None, None)
        );
    }

    #[test]
    fn debug_output_leaves_the_token_out() {
        let config = AgentConfig::new(
            PathBuf::from("/tmp/x"),
            Some("http://127.0.0.1:1".into()),
            Some("skr1.secret".into()),
            Some("gw-1".into()),
            None,
            None,
        )
        .unwrap();
        let text = format!(
            "{config:?} {:?}",
            flags(Some("skr1.secret"), None, Some("skr1.secret"))
        );
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }
}
