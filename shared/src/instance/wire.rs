//! [`InstanceSpec`]'s serde: the derived field map for human-readable formats (JSON), and
//! for postcard the first release's layout, kept byte for byte.
//!
//! Postcard is not self-describing: a field added to a struct makes every stored value
//! written before it undecodable. So in postcard a spec keeps its first nine fields as they
//! were, and its last slot, once `mode: InstanceMode`, holds a [`ModeSlot`]: `0` is exactly
//! the bytes of `InstanceMode::Production`, read as a production instance on named nodes
//! (what every instance recorded before selectors followed labels was), `1` carries the
//! mode and the targeting, and `2` the mode, the targeting and the [`Lifecycle`] (stopped,
//! restart generations). Each spec takes the first of them that holds it: an instance on
//! named nodes that was never stopped or restarted encodes as it always did, and every log
//! and journal written before this decodes.

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{InstanceMode, InstanceSpec, Lifecycle, Targeting};

/// The last slot of a spec in postcard. Variants are appended only: a variant's position
/// is its stored tag.
#[derive(Serialize, Deserialize)]
enum ModeSlot {
    /// Production on named nodes (the bytes of `InstanceMode::Production`).
    Production,
    /// Another mode or targeting, never stopped or restarted.
    Extended {
        mode: InstanceMode,
        targeting: Targeting,
    },
    /// A spec stopped or restarted.
    WithLifecycle {
        mode: InstanceMode,
        targeting: Targeting,
        lifecycle: Lifecycle,
    },
}

const FIELDS: &[&str] = &[
    "name",
    "env",
    "app",
    "version",
    "manifest",
    "nodes",
    "unschedulable",
    "selector",
    "overrides",
    "mode",
];

impl Serialize for InstanceSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            return InstanceSpec::serialize(self, s);
        }
        let slot = match (self.mode, self.targeting) {
            (mode, targeting) if !self.lifecycle.is_default() => ModeSlot::WithLifecycle {
                mode,
                targeting,
                lifecycle: self.lifecycle.clone(),
            },
            (InstanceMode::Production, Targeting::Named) => ModeSlot::Production,
            (mode, targeting) => ModeSlot::Extended { mode, targeting },
        };
        let mut st = s.serialize_struct("InstanceSpec", FIELDS.len())?;
        st.serialize_field("name", &self.name)?;
        st.serialize_field("env", &self.env)?;
        st.serialize_field("app", &self.app)?;
        st.serialize_field("version", &self.version)?;
        st.serialize_field("manifest", &self.manifest)?;
        st.serialize_field("nodes", &self.nodes)?;
        st.serialize_field("unschedulable", &self.unschedulable)?;
        st.serialize_field("selector", &self.selector)?;
        st.serialize_field("overrides", &self.overrides)?;
        st.serialize_field("mode", &slot)?;
        st.end()
    }
}

impl<'de> Deserialize<'de> for InstanceSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            return InstanceSpec::deserialize(d);
        }
        d.deserialize_struct("InstanceSpec", FIELDS, Binary)
    }
}

struct Binary;

impl<'de> Visitor<'de> for Binary {
    type Value = InstanceSpec;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an instance spec")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<InstanceSpec, A::Error> {
        let mut at = 0usize;
        macro_rules! field {
            () => {{
                at += 1;
                seq.next_element()?
                    .ok_or_else(|| de::Error::invalid_length(at - 1, &"10 fields"))?
            }};
        }
        let name = field!();
        let env = field!();
        let app = field!();
        let version = field!();
        let manifest = field!();
        let nodes = field!();
        let unschedulable = field!();
        let selector = field!();
        let overrides = field!();
        let slot: ModeSlot = field!();
        let (mode, targeting, lifecycle) = match slot {
            ModeSlot::Production => (
                InstanceMode::Production,
                Targeting::Named,
                Lifecycle::default(),
            ),
            ModeSlot::Extended { mode, targeting } => (mode, targeting, Lifecycle::default()),
            ModeSlot::WithLifecycle {
                mode,
                targeting,
                lifecycle,
            } => (mode, targeting, lifecycle),
        };
        Ok(InstanceSpec {
            name,
            env,
            app,
            version,
            manifest,
            nodes,
            unschedulable,
            selector,
            overrides,
            mode,
            targeting,
            lifecycle,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::event::{EnvOverride, NodeTarget, Unschedulable};
    use crate::ids::{Labels, Name, NodeId};
    use crate::manifest::Manifest;

    /// The first release's spec, derived as it was.
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Legacy {
        name: Name,
        env: Name,
        app: Name,
        version: semver::Version,
        manifest: Manifest,
        nodes: Vec<NodeTarget>,
        unschedulable: Vec<Unschedulable>,
        selector: Labels,
        overrides: Vec<EnvOverride>,
        mode: InstanceMode,
    }

    fn spec(targeting: Targeting) -> InstanceSpec {
        let manifest = crate::manifest::parse_manifest(
            "app: web\nversion: 1.0.0\ncomponents:\n  - name: api\n    image: api:1\n",
        )
        .unwrap();
        InstanceSpec {
            name: Name::parse("web-a").unwrap(),
            env: Name::parse("prod").unwrap(),
            app: Name::parse("web").unwrap(),
            version: manifest.version.clone(),
            manifest,
            nodes: vec![NodeTarget {
                node: NodeId::random(),
                weight: 3,
            }],
            unschedulable: vec![],
            selector: Labels::from([("site".to_owned(), "a".to_owned())]),
            overrides: vec![EnvOverride {
                component: Name::parse("api").unwrap(),
                var: "TZ".into(),
                value: "UTC".into(),
            }],
            mode: InstanceMode::Production,
            targeting,
            lifecycle: Lifecycle::default(),
        }
    }

    fn legacy(s: &InstanceSpec) -> Legacy {
        Legacy {
            name: s.name.clone(),
            env: s.env.clone(),
            app: s.app.clone(),
            version: s.version.clone(),
            manifest: s.manifest.clone(),
            nodes: s.nodes.clone(),
            unschedulable: s.unschedulable.clone(),
            selector: s.selector.clone(),
            overrides: s.overrides.clone(),
            mode: s.mode,
        }
    }

    #[test]
    fn a_spec_on_named_nodes_keeps_the_first_release_bytes() {
        let s = spec(Targeting::Named);
        let old = postcard::to_stdvec(&legacy(&s)).unwrap();
        assert_eq!(postcard::to_stdvec(&s).unwrap(), old);
        let back: InstanceSpec = postcard::from_bytes(&old).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn a_spec_that_follows_labels_round_trips_and_differs_in_its_last_slot_only() {
        let s = spec(Targeting::Selector);
        let bytes = postcard::to_stdvec(&s).unwrap();
        let back: InstanceSpec = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, s);
        let old = postcard::to_stdvec(&legacy(&s)).unwrap();
        assert_eq!(bytes[..old.len() - 1], old[..old.len() - 1]);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["targeting"], "selector");
        let back: InstanceSpec = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn a_stopped_or_restarted_spec_round_trips_and_a_plain_one_keeps_its_bytes() {
        for targeting in [Targeting::Named, Targeting::Selector] {
            let plain = spec(targeting);
            let plain_bytes = postcard::to_stdvec(&plain).unwrap();
            let mut s = plain.clone();
            s.lifecycle.stopped = true;
            s.lifecycle.restarts.insert(Name::parse("api").unwrap(), 3);
            let bytes = postcard::to_stdvec(&s).unwrap();
            assert_ne!(bytes, plain_bytes);
            let back: InstanceSpec = postcard::from_bytes(&bytes).unwrap();
            assert_eq!(back, s);
            // Started again and never restarted: the bytes it had before.
            let mut again = back.clone();
            again.lifecycle = Lifecycle::default();
            assert_eq!(postcard::to_stdvec(&again).unwrap(), plain_bytes);
            let json = serde_json::to_value(&s).unwrap();
            assert_eq!(json["lifecycle"]["stopped"], true);
            assert_eq!(json["lifecycle"]["restarts"]["api"], 3);
            let back: InstanceSpec = serde_json::from_value(json).unwrap();
            assert_eq!(back, s);
            assert!(
                serde_json::to_value(&plain)
                    .unwrap()
                    .get("lifecycle")
                    .is_none()
            );
            // Each field alone, the other at its default.
            let stopped_only = plain.with_stopped(true);
            let mut restarted_only = plain.clone();
            restarted_only
                .lifecycle
                .restarts
                .insert(Name::parse("api").unwrap(), 1);
            for one in [stopped_only, restarted_only] {
                let bytes = postcard::to_stdvec(&one).unwrap();
                let back: InstanceSpec = postcard::from_bytes(&bytes).unwrap();
                assert_eq!(back, one);
            }
        }
    }
}
