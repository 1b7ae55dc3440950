//! [`Component`]'s and [`Manifest`]'s serde: the derived field map for human-readable
//! formats (YAML, JSON), and for postcard the first release's layout, kept byte for byte.
//!
//! Postcard is not self-describing: a field added to a struct makes every stored value
//! written before it undecodable. So in postcard a component keeps its first 17 fields as
//! they were and its last slot, once `schedule: Option<String>`, holds a [`Tail`]:
//! `0` (no schedule, no secrets) and `1 <string>` (a schedule, no secrets) are exactly the
//! bytes of `None` and `Some(schedule)`, `2` carries the schedule and the secrets, and `3`
//! adds a job's `timezone`, `concurrency` and `timeout` (written only when one is set). A
//! manifest without secrets encodes as it always did (its digest does not change), and
//! every log and journal written before secrets decodes.
//!
//! A manifest does the same with its `description: Option<String>` slot (the third of
//! four: app, version, description, components), which holds a [`ManifestTail`]: `0` (no
//! description, no platforms) and `1 <string>` (a description, no platforms) are the bytes
//! of `None` and `Some(description)`, and `2` carries the description and the platforms.
//! A manifest without `platforms` encodes as it always did.

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::model::{Component, Concurrency, Manifest, Platform, SecretUse};
use crate::quantity::Duration;

/// The last slot of a component in postcard.
#[derive(Serialize, Deserialize)]
enum Tail {
    /// No schedule, no secrets (the bytes of `Option::None`).
    Plain,
    /// A schedule, no secrets (the bytes of `Option::Some`).
    Schedule(String),
    /// Anything with secrets.
    Extended {
        schedule: Option<String>,
        secrets: Vec<SecretUse>,
    },
    /// A job with a time zone, a concurrency or a timeout.
    Job {
        schedule: Option<String>,
        secrets: Vec<SecretUse>,
        timezone: Option<String>,
        concurrency: Option<Concurrency>,
        timeout: Option<Duration>,
    },
}

const FIELDS: &[&str] = &[
    "name",
    "kind",
    "image",
    "exec",
    "pull",
    "command",
    "depends_on",
    "replicas",
    "env",
    "resources",
    "ports",
    "host_network",
    "mounts",
    "storage",
    "log_dir",
    "health",
    "restart",
    "tail",
];

impl Serialize for Component {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            return Component::serialize(self, s);
        }
        let job_settings =
            self.timezone.is_some() || self.concurrency.is_some() || self.timeout.is_some();
        let tail = match (&self.schedule, self.secrets.is_empty()) {
            _ if job_settings => Tail::Job {
                schedule: self.schedule.clone(),
                secrets: self.secrets.clone(),
                timezone: self.timezone.clone(),
                concurrency: self.concurrency,
                timeout: self.timeout,
            },
            (None, true) => Tail::Plain,
            (Some(schedule), true) => Tail::Schedule(schedule.clone()),
            (schedule, false) => Tail::Extended {
                schedule: schedule.clone(),
                secrets: self.secrets.clone(),
            },
        };
        let mut st = s.serialize_struct("Component", FIELDS.len())?;
        st.serialize_field("name", &self.name)?;
        st.serialize_field("kind", &self.kind)?;
        st.serialize_field("image", &self.image)?;
        st.serialize_field("exec", &self.exec)?;
        st.serialize_field("pull", &self.pull)?;
        st.serialize_field("command", &self.command)?;
        st.serialize_field("depends_on", &self.depends_on)?;
        st.serialize_field("replicas", &self.replicas)?;
        st.serialize_field("env", &self.env)?;
        st.serialize_field("resources", &self.resources)?;
        st.serialize_field("ports", &self.ports)?;
        st.serialize_field("host_network", &self.host_network)?;
        st.serialize_field("mounts", &self.mounts)?;
        st.serialize_field("storage", &self.storage)?;
        st.serialize_field("log_dir", &self.log_dir)?;
        st.serialize_field("health", &self.health)?;
        st.serialize_field("restart", &self.restart)?;
        st.serialize_field("tail", &tail)?;
        st.end()
    }
}

impl<'de> Deserialize<'de> for Component {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            return Component::deserialize(d);
        }
        d.deserialize_struct("Component", FIELDS, Binary)
    }
}

struct Binary;

impl<'de> Visitor<'de> for Binary {
    type Value = Component;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a component")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Component, A::Error> {
        let mut at = 0usize;
        macro_rules! field {
            () => {{
                at += 1;
                seq.next_element()?
                    .ok_or_else(|| de::Error::invalid_length(at - 1, &"18 fields"))?
            }};
        }
        let name = field!();
        let kind = field!();
        let image = field!();
        let exec = field!();
        let pull = field!();
        let command = field!();
        let depends_on = field!();
        let replicas = field!();
        let env = field!();
        let resources = field!();
        let ports = field!();
        let host_network = field!();
        let mounts = field!();
        let storage = field!();
        let log_dir = field!();
        let health = field!();
        let restart = field!();
        let tail: Tail = field!();
        let (mut timezone, mut concurrency, mut timeout) = (None, None, None);
        let (schedule, secrets) = match tail {
            Tail::Plain => (None, Vec::new()),
            Tail::Schedule(s) => (Some(s), Vec::new()),
            Tail::Extended { schedule, secrets } => (schedule, secrets),
            Tail::Job {
                schedule,
                secrets,
                timezone: z,
                concurrency: c,
                timeout: t,
            } => {
                (timezone, concurrency, timeout) = (z, c, t);
                (schedule, secrets)
            }
        };
        Ok(Component {
            name,
            kind,
            image,
            exec,
            pull,
            command,
            depends_on,
            replicas,
            env,
            resources,
            ports,
            host_network,
            mounts,
            storage,
            log_dir,
            health,
            restart,
            schedule,
            timezone,
            concurrency,
            timeout,
            secrets,
        })
    }
}

/// The `description` slot of a manifest in postcard.
#[derive(Serialize, Deserialize)]
enum ManifestTail {
    /// No description, no platforms (the bytes of `Option::None`).
    Plain,
    /// A description, no platforms (the bytes of `Option::Some`).
    Described(String),
    /// Anything with platforms (an empty list too, so that it decodes as it was).
    Extended {
        description: Option<String>,
        platforms: Box<[Platform]>,
    },
}

const MANIFEST_FIELDS: &[&str] = &["app", "version", "tail", "components"];

impl Serialize for Manifest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            return Manifest::serialize(self, s);
        }
        let tail = match (&self.description, &self.platforms) {
            (None, None) => ManifestTail::Plain,
            (Some(description), None) => ManifestTail::Described(description.clone()),
            (description, Some(platforms)) => ManifestTail::Extended {
                description: description.clone(),
                platforms: platforms.clone(),
            },
        };
        let mut st = s.serialize_struct("Manifest", MANIFEST_FIELDS.len())?;
        st.serialize_field("app", &self.app)?;
        st.serialize_field("version", &self.version)?;
        st.serialize_field("tail", &tail)?;
        st.serialize_field("components", &self.components)?;
        st.end()
    }
}

impl<'de> Deserialize<'de> for Manifest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            return Manifest::deserialize(d);
        }
        d.deserialize_struct("Manifest", MANIFEST_FIELDS, ManifestBinary)
    }
}

struct ManifestBinary;

impl<'de> Visitor<'de> for ManifestBinary {
    type Value = Manifest;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a manifest")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Manifest, A::Error> {
        let mut at = 0usize;
        macro_rules! field {
            () => {{
                at += 1;
                seq.next_element()?
                    .ok_or_else(|| de::Error::invalid_length(at - 1, &"4 fields"))?
            }};
        }
        let app = field!();
        let version = field!();
        let tail: ManifestTail = field!();
        let components = field!();
        let (description, platforms) = match tail {
            ManifestTail::Plain => (None, None),
            ManifestTail::Described(d) => (Some(d), None),
            ManifestTail::Extended {
                description,
                platforms,
            } => (description, Some(platforms)),
        };
        Ok(Manifest {
            app,
            version,
            description,
            platforms,
            components,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ids::Name;

    /// The first release's component, derived as it was.
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Legacy {
        name: Name,
        kind: super::super::model::ComponentKind,
        image: Option<String>,
        exec: Option<Vec<String>>,
        pull: Option<super::super::model::PullPolicy>,
        command: Option<Vec<String>>,
        depends_on: Vec<Name>,
        replicas: Option<u32>,
        env: std::collections::BTreeMap<String, super::super::model::EnvValue>,
        resources: Option<super::super::model::Resources>,
        ports: Vec<super::super::model::Port>,
        host_network: Option<bool>,
        mounts: Vec<super::super::model::Mount>,
        storage: Vec<super::super::model::Storage>,
        log_dir: Option<String>,
        health: Option<super::super::model::Health>,
        restart: Option<super::super::model::RestartPolicy>,
        schedule: Option<String>,
    }

    fn legacy(schedule: Option<&str>) -> Legacy {
        Legacy {
            name: Name::parse("web").unwrap(),
            kind: Default::default(),
            image: Some("web:1".into()),
            exec: None,
            pull: None,
            command: None,
            depends_on: vec![],
            replicas: Some(2),
            env: Default::default(),
            resources: None,
            ports: vec![],
            host_network: None,
            mounts: vec![],
            storage: vec![],
            log_dir: None,
            health: None,
            restart: None,
            schedule: schedule.map(str::to_owned),
        }
    }

    #[test]
    fn a_component_without_secrets_has_the_first_release_bytes() {
        for schedule in [None, Some("*/5 * * * *")] {
            let old = postcard::to_stdvec(&legacy(schedule)).unwrap();
            let c: Component = postcard::from_bytes(&old).unwrap();
            assert_eq!(c.schedule.as_deref(), schedule);
            assert!(c.secrets.is_empty());
            assert_eq!(postcard::to_stdvec(&c).unwrap(), old);
        }
    }

    #[test]
    fn secrets_round_trip_in_postcard_and_json() {
        let old = postcard::to_stdvec(&legacy(Some("* * * * *"))).unwrap();
        let mut c: Component = postcard::from_bytes(&old).unwrap();
        c.secrets = vec![SecretUse {
            name: Name::parse("db").unwrap(),
            env: Some("DB".into()),
            file: None,
        }];
        let bytes = postcard::to_stdvec(&c).unwrap();
        assert_eq!(postcard::from_bytes::<Component>(&bytes).unwrap(), c);
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains("\"secrets\""));
        assert_eq!(serde_json::from_str::<Component>(&json).unwrap(), c);
    }

    #[test]
    fn job_settings_round_trip_and_leave_other_components_alone() {
        let old = postcard::to_stdvec(&legacy(Some("0 9 * * *"))).unwrap();
        let mut c: Component = postcard::from_bytes(&old).unwrap();
        c.timezone = Some("Europe/Berlin".into());
        c.concurrency = Some(Concurrency::Replace);
        c.timeout = Some("10m".parse().unwrap());
        let bytes = postcard::to_stdvec(&c).unwrap();
        assert_ne!(bytes, old);
        assert_eq!(postcard::from_bytes::<Component>(&bytes).unwrap(), c);
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains("\"timezone\":\"Europe/Berlin\""), "{json}");
        assert_eq!(serde_json::from_str::<Component>(&json).unwrap(), c);
        // Without them, neither the bytes nor the JSON change.
        let plain: Component = postcard::from_bytes(&old).unwrap();
        let json = serde_json::to_string(&plain).unwrap();
        assert!(
            !json.contains("timezone") && !json.contains("concurrency"),
            "{json}"
        );
    }

    /// The first release's manifest, derived as it was (its components are today's, whose
    /// own bytes the tests above keep).
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct LegacyManifest {
        app: Name,
        version: semver::Version,
        description: Option<String>,
        components: Vec<Component>,
    }

    fn legacy_manifest(description: Option<&str>) -> LegacyManifest {
        let old = postcard::to_stdvec(&legacy(Some("*/5 * * * *"))).unwrap();
        LegacyManifest {
            app: Name::parse("weather").unwrap(),
            version: semver::Version::new(1, 2, 3),
            description: description.map(str::to_owned),
            components: vec![
                postcard::from_bytes(&old).unwrap(),
                Component::image(Name::parse("db").unwrap(), "db:1"),
            ],
        }
    }

    #[test]
    fn a_manifest_without_platforms_has_the_first_release_bytes() {
        for description in [None, Some("Weather station gateway apps")] {
            let legacy = legacy_manifest(description);
            let old = postcard::to_stdvec(&legacy).unwrap();
            let m: Manifest = postcard::from_bytes(&old).unwrap();
            assert_eq!(m.description.as_deref(), description);
            assert_eq!(m.platforms, None);
            assert_eq!(m.components, legacy.components);
            assert_eq!(postcard::to_stdvec(&m).unwrap(), old);
        }
    }

    #[test]
    fn platforms_round_trip_in_postcard_and_json() {
        let old = postcard::to_stdvec(&legacy_manifest(Some("d"))).unwrap();
        let mut m: Manifest = postcard::from_bytes(&old).unwrap();
        let json = serde_json::to_string(&m).unwrap();
        assert!(!json.contains("platforms"), "{json}");
        for (description, platforms) in [
            (Some("d"), vec![Platform::LinuxArmV7, Platform::LinuxAmd64]),
            (None, vec![Platform::LinuxArm64]),
            (None, vec![]),
        ] {
            m.description = description.map(str::to_owned);
            m.platforms = Some(platforms.into());
            let bytes = postcard::to_stdvec(&m).unwrap();
            assert_ne!(bytes, old);
            assert_eq!(postcard::from_bytes::<Manifest>(&bytes).unwrap(), m);
            let json = serde_json::to_string(&m).unwrap();
            assert!(json.contains("\"platforms\""), "{json}");
            assert_eq!(serde_json::from_str::<Manifest>(&json).unwrap(), m);
        }
        m.platforms = Some([Platform::LinuxArmV7].into());
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains("\"platforms\":[\"linux/arm/v7\"]"), "{json}");
    }

    #[test]
    fn an_unknown_platform_code_is_refused_in_postcard() {
        let mut m: Manifest =
            postcard::from_bytes(&postcard::to_stdvec(&legacy_manifest(None)).unwrap()).unwrap();
        m.platforms = Some([Platform::LinuxArmV7].into());
        let mut bytes = postcard::to_stdvec(&m).unwrap();
        // app "weather" (1 + 7 bytes), version 1.2.3 (1 + 5), tail 2, no description 0,
        // one platform 1, its code.
        let code = 1 + 7 + 1 + 5 + 3;
        assert_eq!(bytes[code], 2);
        bytes[code] = 9;
        assert!(postcard::from_bytes::<Manifest>(&bytes).is_err());
    }
}
