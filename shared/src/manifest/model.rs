//! The app manifest model: every field of the manifest that docs/manifest.md documents.
//!
//! Fields that a runtime or kind may refuse are `Option`s, so validation can tell "left
//! out" from "set to the default". Accessors give the effective value. The same types are
//! carried in events and frames (postcard), so nothing here relies on self-describing
//! formats.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::Name;
use crate::profile::Arch;
use crate::quantity::{Cpu, Duration, Memory};

/// One published app version's manifest.
///
/// Its serde implementations are in `wire.rs`: YAML and JSON use the derived field map;
/// postcard keeps the layout of the first release, `platforms` riding in the
/// `description` slot, so logs and journals written before platforms existed still decode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct Manifest {
    pub app: Name,
    pub version: semver::Version,
    #[serde(default)]
    pub description: Option<String>,
    /// The platforms the app's images and programs are built for; `None`: any platform.
    /// A node whose architecture is not listed does not fit. Validation refuses an empty
    /// list and a platform listed twice. (A boxed slice, not a `Vec`: 8 bytes less in
    /// every event that carries a manifest.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platforms: Option<Box<[Platform]>>,
    pub components: Vec<Component>,
}

impl Manifest {
    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.name.as_str() == name)
    }

    /// Whether the app runs on `arch`: listed in `platforms`, or `platforms` left out.
    pub fn runs_on(&self, arch: Arch) -> bool {
        self.platforms
            .as_ref()
            .is_none_or(|list| list.contains(&Platform::of(arch)))
    }
}

/// A platform an app is built for, as container images name it (`linux/arm64`). Each is
/// one firmware-profile [`Arch`]: `linux/amd64` is `x86_64`, `linux/arm64` is `aarch64`,
/// `linux/arm/v7` is `armv7`.
///
/// In YAML and JSON it is that string; in postcard one byte, its index in
/// [`Platform::ALL`] (new platforms are added at the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Platform {
    LinuxAmd64 = 0,
    LinuxArm64 = 1,
    LinuxArmV7 = 2,
}

impl Platform {
    /// Every platform, in the order of their postcard codes.
    pub const ALL: [Platform; 3] = [
        Platform::LinuxAmd64,
        Platform::LinuxArm64,
        Platform::LinuxArmV7,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Platform::LinuxAmd64 => "linux/amd64",
            Platform::LinuxArm64 => "linux/arm64",
            Platform::LinuxArmV7 => "linux/arm/v7",
        }
    }

    /// The firmware-profile architecture this platform runs on.
    pub fn arch(self) -> Arch {
        match self {
            Platform::LinuxAmd64 => Arch::X86_64,
            Platform::LinuxArm64 => Arch::Aarch64,
            Platform::LinuxArmV7 => Arch::Armv7,
        }
    }

    /// The platform of a firmware-profile architecture.
    pub fn of(arch: Arch) -> Platform {
        match arch {
            Arch::X86_64 => Platform::LinuxAmd64,
            Arch::Aarch64 => Platform::LinuxArm64,
            Arch::Armv7 => Platform::LinuxArmV7,
        }
    }

    /// `linux/amd64, linux/arm64, linux/arm/v7`: what a refusal lists as accepted.
    pub fn accepted() -> String {
        Platform::ALL.map(Platform::as_str).join(", ")
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Platform {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Platform::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown platform {}; accepted: {}",
                    crate::ids::shown(s),
                    Platform::accepted()
                )
            })
    }
}

impl Serialize for Platform {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(self.as_str())
        } else {
            // The discriminant, which is the index in ALL.
            s.serialize_u8(*self as u8)
        }
    }
}

impl<'de> Deserialize<'de> for Platform {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(de::Error::custom)
        } else {
            let code = u8::deserialize(d)?;
            Platform::ALL
                .get(usize::from(code))
                .copied()
                .ok_or_else(|| de::Error::custom(format!("unknown platform code {code}")))
        }
    }
}

/// One process or container of an app.
///
/// Its serde implementations are in `wire.rs`: YAML and JSON use the derived field map;
/// postcard keeps the layout of the first release, `secrets` riding in the last field's
/// slot, so logs and journals written before secrets existed still decode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct Component {
    pub name: Name,
    #[serde(default)]
    pub kind: ComponentKind,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub exec: Option<Vec<String>>,
    #[serde(default)]
    pub pull: Option<PullPolicy>,
    #[serde(default)]
    pub command: Option<Vec<String>>,
    #[serde(default)]
    pub depends_on: Vec<Name>,
    #[serde(default)]
    pub replicas: Option<u32>,
    #[serde(default)]
    pub env: BTreeMap<String, EnvValue>,
    #[serde(default)]
    pub resources: Option<Resources>,
    #[serde(default)]
    pub ports: Vec<Port>,
    #[serde(default)]
    pub host_network: Option<bool>,
    #[serde(default)]
    pub mounts: Vec<Mount>,
    #[serde(default)]
    pub storage: Vec<Storage>,
    #[serde(default)]
    pub log_dir: Option<String>,
    #[serde(default)]
    pub health: Option<Health>,
    #[serde(default)]
    pub restart: Option<RestartPolicy>,
    #[serde(default)]
    pub schedule: Option<String>,
    /// A job's time zone (IANA, `Europe/Berlin`): its schedule is read in it. UTC unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// What a job does when a run is due while another still runs (default `forbid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Concurrency>,
    /// How long a job's run may take before it is killed (none unless set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// The secrets the component uses, each as an env var or a file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretUse>,
}

impl Component {
    /// A service that runs `image`, every other field left out: the start of a component
    /// built in code (`Component { replicas: Some(2), ..Component::image(name, "web:1") }`).
    pub fn image(name: Name, image: &str) -> Self {
        Component {
            name,
            kind: ComponentKind::Service,
            image: Some(image.to_owned()),
            exec: None,
            pull: None,
            command: None,
            depends_on: Vec::new(),
            replicas: None,
            env: BTreeMap::new(),
            resources: None,
            ports: Vec::new(),
            host_network: None,
            mounts: Vec::new(),
            storage: Vec::new(),
            log_dir: None,
            health: None,
            restart: None,
            schedule: None,
            timezone: None,
            concurrency: None,
            timeout: None,
            secrets: Vec::new(),
        }
    }

    /// Copies on each node the instance targets (default 1).
    pub fn replicas(&self) -> u32 {
        self.replicas.unwrap_or(1)
    }

    /// A job's concurrency (default `forbid`).
    pub fn concurrency(&self) -> Concurrency {
        self.concurrency.unwrap_or_default()
    }

    /// The replicas a component's runs or copies may use on a node: a job under
    /// `concurrency: allow` runs in up to [`MAX_CONCURRENT_RUNS`] at once, every other
    /// component in [`Component::replicas`].
    pub fn slots(&self) -> u32 {
        if self.kind == ComponentKind::Job && self.concurrency() == Concurrency::Allow {
            MAX_CONCURRENT_RUNS
        } else {
            self.replicas()
        }
    }

    /// `always` for services, `never` for init and job, unless set.
    pub fn restart(&self) -> RestartPolicy {
        self.restart.unwrap_or(match self.kind {
            ComponentKind::Service => RestartPolicy::Always,
            ComponentKind::Init | ComponentKind::Job => RestartPolicy::Never,
        })
    }

    pub fn pull(&self) -> PullPolicy {
        self.pull.unwrap_or_default()
    }

    pub fn host_network(&self) -> bool {
        self.host_network.unwrap_or(false)
    }

    /// The runtime this component needs.
    pub fn runtime(&self) -> RuntimeKind {
        if self.exec.is_some() {
            RuntimeKind::Process
        } else {
            RuntimeKind::Docker
        }
    }

    pub fn cpu_request(&self) -> Option<Cpu> {
        self.resources.as_ref()?.cpu.as_ref()?.request
    }

    pub fn memory_request(&self) -> Option<Memory> {
        self.resources.as_ref()?.memory.as_ref()?.request
    }
}

/// What a component is for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum ComponentKind {
    /// Kept running.
    #[default]
    Service,
    /// Runs to completion before its dependents start, once per instance version and node.
    Init,
    /// Runs on a cron schedule.
    Job,
}

/// What a job does when a run is due while an earlier one still runs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Concurrency {
    /// The due run is not started (it is counted as skipped in the running one's report).
    #[default]
    Forbid,
    /// The running one is stopped and the due one started.
    Replace,
    /// Both run, up to [`MAX_CONCURRENT_RUNS`] at once.
    Allow,
}

impl Concurrency {
    pub fn as_str(self) -> &'static str {
        match self {
            Concurrency::Forbid => "forbid",
            Concurrency::Replace => "replace",
            Concurrency::Allow => "allow",
        }
    }
}

/// The most runs of one job at once on a node under `concurrency: allow`: a job's runs
/// are its replicas 0 to 3.
pub const MAX_CONCURRENT_RUNS: u32 = 4;

/// Where a component runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuntimeKind {
    /// A container on the node's Docker engine.
    Docker,
    /// A supervised native process.
    Process,
}

impl fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RuntimeKind::Docker => "docker",
            RuntimeKind::Process => "process",
        })
    }
}

/// When the agent pulls an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PullPolicy {
    #[default]
    IfMissing,
    Always,
    Never,
}

/// The restart policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

/// CPU and memory requests and limits.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default)]
    pub cpu: Option<CpuRange>,
    #[serde(default)]
    pub memory: Option<MemoryRange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuRange {
    #[serde(default)]
    pub request: Option<Cpu>,
    #[serde(default)]
    pub limit: Option<Cpu>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryRange {
    #[serde(default)]
    pub request: Option<Memory>,
    #[serde(default)]
    pub limit: Option<Memory>,
}

/// A container port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Port {
    pub container: u16,
    /// A fixed host port; with `nodeport` or `loadbalancer` and no `host`, the agent picks
    /// one from 30000-32767.
    #[serde(default)]
    pub host: Option<u16>,
    #[serde(default)]
    pub expose: Expose,
}

/// Who can reach a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expose {
    /// Reachable by the instance's other components only.
    #[default]
    Cluster,
    /// Published on the node.
    Nodeport,
    /// Published, and served at the environment's entry addresses (for now: as nodeport).
    Loadbalancer,
}

impl Expose {
    pub fn published(self) -> bool {
        !matches!(self, Expose::Cluster)
    }
}

/// A host file mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mount {
    pub host: String,
    pub container: String,
    #[serde(rename = "type")]
    pub kind: MountType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MountType {
    File,
    Directory,
    CharDevice,
    BlockDevice,
    Socket,
}

/// Named storage, per (instance, storage name, node); kept across restarts, upgrades and
/// rollbacks, and across undeploy unless purged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    pub name: Name,
    pub container: String,
}

/// A secret a component uses: `{name: db-password, env: DB_PASSWORD}` or
/// `{name: tls, file: /run/secrets/tls}` (exactly one of `env` and `file`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretUse {
    pub name: Name,
    #[serde(default)]
    pub env: Option<String>,
    #[serde(default)]
    pub file: Option<String>,
}

/// A health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    pub command: Vec<String>,
    #[serde(default)]
    pub interval: Option<Duration>,
    #[serde(default)]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub retries: Option<u32>,
}

impl Health {
    pub fn interval_ms(&self) -> u64 {
        self.interval.map_or(10_000, |d| d.millis())
    }
    pub fn timeout_ms(&self) -> u64 {
        self.timeout.map_or(5_000, |d| d.millis())
    }
    pub fn retries(&self) -> u32 {
        self.retries.unwrap_or(3)
    }
}

/// An environment variable's value. YAML may write it as a string, number or boolean; it
/// is kept as the string the process sees.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EnvValue(pub String);

impl EnvValue {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Serialize for EnvValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EnvValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = EnvValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<EnvValue, E> {
                Ok(EnvValue(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
        }
        if d.is_human_readable() {
            d.deserialize_any(V)
        } else {
            d.deserialize_string(V)
        }
    }
}
