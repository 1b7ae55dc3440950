//! The firmware-profile schema: a class of device, and the agent's tuning for it.
//!
//! A profile is a TOML file in `firmware-profiles/` (see the files there for commented
//! examples). It says what the device is (architecture, CPU, memory, disk), what it can
//! run (docker, process), how it is linked (ethernet, wifi, cellular-metered), and the
//! fixed budgets the agent keeps on it (`[agent]`). The cloud uses it for fit (`arch`
//! against the manifest's `platforms`, runtimes, capacity); the agent sizes its caches,
//! queues and batches from it, keeps what it stores within `disk`, and batches by `link`
//! ([`Link::tuning`]); `name`, `description` and `cpu.model` are for people (`node list`
//! and `node show`). Every field is used by one of these, and a field the schema does not
//! have is refused, named (`deny_unknown_fields`). `docs/profiles.md` describes every
//! field and what reads it (a test checks that each one is there).
//!
//! The same struct travels in events and enrollment (postcard and JSON), so it uses no
//! self-describing serde features. [`builtin`] gives the profiles shipped in
//! `firmware-profiles/`, compiled in.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::Name;
use crate::manifest::{FieldError, RuntimeKind};
use crate::quantity::{Duration, Memory};

/// A class of device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirmwareProfile {
    /// The profile's name, by the name rule (`raspberry-pi-4`); builtin profiles are named
    /// like their files.
    pub name: String,
    /// What the device is, for people.
    #[serde(default)]
    pub description: String,
    /// The CPU architecture: `x86_64`, `aarch64` or `armv7`. Part of fit: a manifest that
    /// lists `platforms` fits only nodes of one of them ([`crate::manifest::Platform`]).
    pub arch: Arch,
    pub cpu: CpuSpec,
    /// Memory that apps and the agent share.
    pub memory: Memory,
    /// Disk space for images, storage, logs and the agent's database. The agent keeps
    /// what it stores in its data directory within it (`skerry_edge::disk`).
    pub disk: Memory,
    /// The runtimes the device has: `docker`, `process` or both (at least one).
    pub runtimes: Vec<RuntimeKind>,
    /// How the device reaches the cloud; chooses the agent's batching ([`Link::tuning`]).
    pub link: Link,
    /// The agent's tuning; every field has a default.
    #[serde(default)]
    pub agent: AgentTuning,
}

/// The CPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuSpec {
    /// Cores available to apps (the scheduling capacity is 1000 millicores per core).
    pub cores: u32,
    /// The CPU model, for people only (`Cortex-A72`): nothing decides anything by it;
    /// `skerry node show -o json` shows it.
    #[serde(default)]
    pub model: Option<String>,
}

/// A CPU architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Arch {
    #[serde(rename = "x86_64")]
    X86_64,
    #[serde(rename = "aarch64")]
    Aarch64,
    #[serde(rename = "armv7")]
    Armv7,
}

impl Arch {
    /// The architecture this program was built for, if it is one of these.
    pub fn host() -> Option<Arch> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Arch::X86_64),
            "aarch64" => Some(Arch::Aarch64),
            "arm" => Some(Arch::Armv7),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
            Arch::Armv7 => "armv7",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a device reaches the cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Link {
    Ethernet,
    Wifi,
    /// Every byte costs: the agent batches harder (see [`Link::tuning`]).
    CellularMetered,
}

/// How the agent batches what it sends over a link: the one place where the link type
/// chooses the agent's parameters ([`Link::tuning`]); the sender and the log collector
/// read them from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkTuning {
    /// How often the log collector reads its sources once it has caught up (more lines
    /// per batch, fewer batches, when longer).
    pub collect_every: std::time::Duration,
    /// How long queued log batches wait to fill a frame before they are sent anyway (a
    /// frame that is full goes at once): fewer, fuller frames when longer.
    pub log_linger: std::time::Duration,
    /// How long replica reports wait before they are sent, so that a burst of changes
    /// coalesces (one state per replica) into one frame.
    pub report_linger: std::time::Duration,
}

impl Link {
    /// The agent's batching for this link type: `ethernet` and `wifi` send at once and
    /// read logs every second; `cellular-metered` reads logs every 10 s, holds log
    /// batches up to 30 s to fill a frame, and holds replica reports 2 s.
    pub fn tuning(self) -> LinkTuning {
        use std::time::Duration as D;
        match self {
            Link::Ethernet | Link::Wifi => LinkTuning {
                collect_every: D::from_secs(1),
                log_linger: D::ZERO,
                report_linger: D::ZERO,
            },
            Link::CellularMetered => LinkTuning {
                collect_every: D::from_secs(10),
                log_linger: D::from_secs(30),
                report_linger: D::from_secs(2),
            },
        }
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Link::Ethernet => "ethernet",
            Link::Wifi => "wifi",
            Link::CellularMetered => "cellular-metered",
        })
    }
}

/// The agent's fixed budgets on a device (`[agent]` in the file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentTuning {
    /// How often the agent tells the cloud it is alive (default `10s`); the cloud marks a
    /// node Abnormal after 3 missed heartbeats.
    pub heartbeat: Duration,
    /// Bytes of collected logs kept queued while the link is down (default `64Mi`); the
    /// oldest are dropped, and counted, beyond it.
    pub log_quota: Memory,
    /// Bytes of log batches per second the agent sends to the cloud (default `256Ki`), so
    /// log shipping never starves status and sync traffic on a thin link; what waits stays
    /// queued within `log_quota`.
    pub log_rate: Memory,
    /// Events (and reports) handled per database transaction and per frame (default 256).
    pub event_batch: u32,
    /// The cache of the agent's redb journal (default `16Mi`; redb's own default is 1 GiB).
    pub redb_cache: Memory,
    /// Bytes of the outbox's control lane (replica reports, the drop count: everything
    /// but log batches) kept while the link is down (default `32Mi`); beyond it the drop
    /// count is compacted, then the oldest replica reports give way to a complete report.
    pub outbox_quota: Memory,
}

impl Default for AgentTuning {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(10),
            log_quota: Memory::mib(64),
            log_rate: Memory::from_bytes(256 * 1024),
            event_batch: 256,
            redb_cache: Memory::mib(16),
            outbox_quota: Memory::mib(32),
        }
    }
}

/// A refused profile: every reason found; displays as the first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.errors.first().map_or_else(String::new, ToString::to_string))]
pub struct ProfileError {
    pub errors: Vec<FieldError>,
}

impl ProfileError {
    fn single(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            errors: vec![FieldError::new(field, message)],
        }
    }
}

impl FirmwareProfile {
    /// Parses and validates a profile file.
    pub fn from_toml(text: &str) -> Result<Self, ProfileError> {
        let deserializer = toml::Deserializer::parse(text)
            .map_err(|e| ProfileError::single("", with_line(e.message(), e.span(), text)))?;
        let profile: FirmwareProfile =
            serde_path_to_error::deserialize(deserializer).map_err(|e| {
                let field = e.path().to_string();
                let field = if field == "." { String::new() } else { field };
                let inner = e.into_inner();
                ProfileError::single(field, with_line(inner.message(), inner.span(), text))
            })?;
        profile.validate()?;
        Ok(profile)
    }

    /// Checks every field; `Err` lists all that are wrong.
    pub fn validate(&self) -> Result<(), ProfileError> {
        let mut errors = Vec::new();
        let mut push = |field: &str, message: String| errors.push(FieldError::new(field, message));
        if let Err(e) = Name::parse(&self.name) {
            push("name", e.to_string());
        }
        if self.cpu.cores == 0 {
            push("cpu.cores", "must be at least 1".into());
        }
        if self.memory == Memory::ZERO {
            push("memory", "must be more than 0".into());
        }
        if self.disk == Memory::ZERO {
            push("disk", "must be more than 0".into());
        }
        if self.runtimes.is_empty() {
            push("runtimes", "name at least one of docker and process".into());
        }
        for (i, r) in self.runtimes.iter().enumerate() {
            if self.runtimes[..i].contains(r) {
                push(&format!("runtimes[{i}]"), format!("{r} is listed twice"));
            }
        }
        let a = &self.agent;
        if a.heartbeat < Duration::from_secs(1) {
            push(
                "agent.heartbeat",
                format!("{} is too short; at least 1s", a.heartbeat),
            );
        }
        if a.event_batch == 0 {
            push("agent.event_batch", "must be at least 1".into());
        }
        for (field, value) in [
            ("agent.log_quota", a.log_quota),
            ("agent.log_rate", a.log_rate),
            ("agent.redb_cache", a.redb_cache),
            ("agent.outbox_quota", a.outbox_quota),
        ] {
            if value == Memory::ZERO {
                push(field, "must be more than 0".into());
            }
        }
        if self.memory != Memory::ZERO && a.redb_cache >= self.memory {
            push(
                "agent.redb_cache",
                format!("{} does not fit in memory ({})", a.redb_cache, self.memory),
            );
        }
        let queued = a.log_quota.bytes().saturating_add(a.outbox_quota.bytes());
        if self.disk != Memory::ZERO && queued >= self.disk.bytes() {
            push(
                "agent.log_quota",
                format!(
                    "log_quota {} and outbox_quota {} together do not fit on disk ({})",
                    a.log_quota, a.outbox_quota, self.disk
                ),
            );
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ProfileError { errors })
        }
    }

    /// The CPU that apps may request, in millicores.
    pub fn capacity_millicores(&self) -> u64 {
        u64::from(self.cpu.cores) * 1000
    }

    /// Whether the device has this runtime.
    pub fn supports(&self, runtime: RuntimeKind) -> bool {
        self.runtimes.contains(&runtime)
    }
}

/// `message (line L, column C)` when the span is known.
fn with_line(message: &str, span: Option<std::ops::Range<usize>>, text: &str) -> String {
    let message = message.trim_end();
    let Some(start) = span.map(|s| s.start).filter(|&s| s <= text.len()) else {
        return message.to_owned();
    };
    let before = text.get(..start).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("{message} (line {line}, column {column})")
}

const BUILTIN: [(&str, &str); 5] = [
    (
        "beaglebone-black",
        include_str!("../../firmware-profiles/beaglebone-black.toml"),
    ),
    (
        "orange-pi-zero",
        include_str!("../../firmware-profiles/orange-pi-zero.toml"),
    ),
    (
        "raspberry-pi-4",
        include_str!("../../firmware-profiles/raspberry-pi-4.toml"),
    ),
    (
        "raspberry-pi-zero-2w",
        include_str!("../../firmware-profiles/raspberry-pi-zero-2w.toml"),
    ),
    (
        "x86-64-host",
        include_str!("../../firmware-profiles/x86-64-host.toml"),
    ),
];

const BUILTIN_NAMES: [&str; 5] = [
    BUILTIN[0].0,
    BUILTIN[1].0,
    BUILTIN[2].0,
    BUILTIN[3].0,
    BUILTIN[4].0,
];

/// The names of the profiles shipped in `firmware-profiles/`, sorted.
pub fn builtin_names() -> &'static [&'static str] {
    &BUILTIN_NAMES
}

/// A profile shipped in `firmware-profiles/`, by name (a test checks that each parses).
pub fn builtin(name: &str) -> Option<FirmwareProfile> {
    BUILTIN
        .iter()
        .find(|(n, _)| *n == name)
        .and_then(|(_, text)| FirmwareProfile::from_toml(text).ok())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "tiny"
arch = "armv7"
memory = "256Mi"
disk = "4Gi"
runtimes = ["process"]
link = "cellular-metered"

[cpu]
cores = 1
"#;

    #[test]
    fn minimal_profile_gets_agent_defaults() {
        let p = FirmwareProfile::from_toml(MINIMAL).unwrap();
        assert_eq!(p.agent, AgentTuning::default());
        assert_eq!(p.agent.heartbeat, Duration::from_secs(10));
        assert_eq!(p.capacity_millicores(), 1000);
        assert!(p.supports(RuntimeKind::Process));
        assert!(!p.supports(RuntimeKind::Docker));
        assert_eq!(p.link, Link::CellularMetered);
        assert_eq!(p.arch, Arch::Armv7);
    }

    #[test]
    fn round_trips_through_postcard_and_json() {
        let p = FirmwareProfile::from_toml(MINIMAL).unwrap();
        let bytes = postcard::to_allocvec(&p).unwrap();
        assert_eq!(postcard::from_bytes::<FirmwareProfile>(&bytes).unwrap(), p);
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.contains("\"memory\":\"256Mi\""), "{json}");
        assert_eq!(serde_json::from_str::<FirmwareProfile>(&json).unwrap(), p);
        let toml_text = toml::to_string(&p).unwrap();
        assert_eq!(FirmwareProfile::from_toml(&toml_text).unwrap(), p);
    }

    #[test]
    fn errors_name_the_field() {
        let field = |text: &str| {
            FirmwareProfile::from_toml(text).unwrap_err().errors[0]
                .field
                .clone()
        };
        assert_eq!(field(&MINIMAL.replace("256Mi", "256Qi")), "memory");
        assert_eq!(field(&MINIMAL.replace("armv7", "mips")), "arch");
        assert_eq!(
            field(&MINIMAL.replace("cores = 1", "cores = 1\nthreads = 2")),
            "cpu.threads"
        );
        assert_eq!(
            field(&MINIMAL.replace("cores = 1", "cores = 0")),
            "cpu.cores"
        );
        // An unknown field is refused at every level, named.
        let unknown = FirmwareProfile::from_toml(&MINIMAL.replace("link", "gpu = \"mali\"\nlink"))
            .unwrap_err();
        assert_eq!(unknown.errors[0].field, "gpu", "{unknown}");
        assert!(
            unknown.to_string().contains("unknown field `gpu`"),
            "{unknown}"
        );
        assert_eq!(
            field(&format!("{MINIMAL}\n[agent]\nswap = \"1Gi\"\n")),
            "agent.swap"
        );
        assert_eq!(field(&MINIMAL.replace("\"tiny\"", "\"Tiny\"")), "name");
        assert_eq!(field(&MINIMAL.replace("[\"process\"]", "[]")), "runtimes");
        assert_eq!(
            field(&format!("{MINIMAL}\n[agent]\nredb_cache = \"1Gi\"\n")),
            "agent.redb_cache"
        );
        assert_eq!(
            field(&format!("{MINIMAL}\n[agent]\nheartbeat = \"10\"\n")),
            "agent.heartbeat"
        );
        let e = FirmwareProfile::from_toml(&MINIMAL.replace("256Mi", "256Qi")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("memory: bad memory quantity \"256Qi\""),
            "{e}"
        );
        assert!(e.to_string().contains("(line 4, column 10)"), "{e}");
        assert!(FirmwareProfile::from_toml("name = ").is_err());
    }

    #[test]
    fn builtins_are_listed_and_parse() {
        for name in builtin_names() {
            let p = builtin(name).unwrap();
            assert_eq!(p.name, *name);
        }
        assert!(builtin("no-such-device").is_none());
    }
}
