//! Instances: what a deploy records ([`InstanceSpec`]) and its parts: the nodes it targets
//! and their weights, the matching nodes that do not fit, the environment overrides, its
//! mode, and how its nodes are chosen ([`Targeting`]).
//!
//! # Layout
//! - this file: the model;
//! - `wire`: [`InstanceSpec`]'s postcard layout, kept from the first release.

use serde::{Deserialize, Serialize};

use crate::ids::{Labels, Name, NodeId};
use crate::manifest::Manifest;

mod wire;

/// How an instance's nodes are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Targeting {
    /// The nodes named at deploy (`--node NODE[=WEIGHT]`): a fixed set, which does not
    /// follow labels. Instances recorded before selectors followed labels read as this.
    #[default]
    Named,
    /// Every node of the environment that matches the selector (an empty selector: every
    /// node), now and later: a node that starts to match gets the instance, one that stops
    /// matching loses it.
    Selector,
}

impl Targeting {
    pub fn follows_labels(self) -> bool {
        self == Targeting::Selector
    }
}

/// How an instance runs. `production` runs the image as published and changes only by
/// an upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceMode {
    #[default]
    Production,
}

/// A node an instance runs on, with its weight (its relative share of the instance's
/// traffic at the environment's entry addresses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeTarget {
    pub node: NodeId,
    pub weight: u32,
}

/// A node that matched an instance's selector but does not fit it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unschedulable {
    pub node: NodeId,
    pub reasons: Vec<String>,
}

/// An environment-variable override: `--set COMPONENT.VAR=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvOverride {
    pub component: Name,
    pub var: String,
    pub value: String,
}

/// Everything a node needs to run an instance: the deploy command, resolved.
///
/// Its serde is in `instance/wire.rs`: the derived field map for JSON, and in postcard the
/// first release's layout, with `targeting` riding in the `mode` slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct InstanceSpec {
    pub name: Name,
    pub env: Name,
    pub app: Name,
    pub version: semver::Version,
    pub manifest: Manifest,
    pub nodes: Vec<NodeTarget>,
    pub unschedulable: Vec<Unschedulable>,
    pub selector: Labels,
    pub overrides: Vec<EnvOverride>,
    pub mode: InstanceMode,
    /// Whether `nodes` was named (`--node`) or follows the selector.
    #[serde(default)]
    pub targeting: Targeting,
    /// Stopped or running, and the restart generations (`skerry stop|start|restart`).
    #[serde(default, skip_serializing_if = "Lifecycle::is_default")]
    pub lifecycle: Lifecycle,
}

/// The most components a spec's [`Lifecycle::restarts`] names (as many as a manifest has).
pub const MAX_RESTARTED_COMPONENTS: usize = crate::manifest::MAX_COMPONENTS;

/// What `skerry stop`, `start` and `restart` change of an instance on a node.
///
/// On the spec a node runs, `stopped` says that the node keeps the instance (its version,
/// settings, network and named storage) but runs none of its replicas. On the instance's
/// own spec it says the instance as a whole was stopped: a node that starts to run it
/// later (a selector match, a join) gets it stopped too.
///
/// `restarts` holds a generation per component that `skerry restart` restarted (absent:
/// 0). A non-zero generation is part of the component's spec hash, so raising it replaces
/// the component's replicas with the same version and settings; a component never
/// restarted keeps the hash it always had.
///
/// Both fields are always written: it rides in postcard, which has no field names, so a
/// skipped field would shift the rest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lifecycle {
    #[serde(default)]
    pub stopped: bool,
    #[serde(default)]
    pub restarts: std::collections::BTreeMap<Name, u32>,
}

impl Lifecycle {
    pub fn is_default(&self) -> bool {
        !self.stopped && self.restarts.is_empty()
    }

    /// The restart generation of `component` (0: never restarted).
    pub fn generation(&self, component: &Name) -> u32 {
        self.restarts.get(component).copied().unwrap_or(0)
    }
}

impl InstanceSpec {
    pub fn targets(&self, node: NodeId) -> bool {
        self.nodes.iter().any(|t| t.node == node)
    }

    /// The spec with only `node`'s entries in `nodes` and `unschedulable` (see
    /// [`EventPayload::for_node`]); the other lists are not copied.
    pub fn for_node(&self, node: NodeId) -> InstanceSpec {
        InstanceSpec {
            name: self.name.clone(),
            env: self.env.clone(),
            app: self.app.clone(),
            version: self.version.clone(),
            manifest: self.manifest.clone(),
            nodes: self
                .nodes
                .iter()
                .filter(|t| t.node == node)
                .cloned()
                .collect(),
            unschedulable: self
                .unschedulable
                .iter()
                .filter(|u| u.node == node)
                .cloned()
                .collect(),
            selector: self.selector.clone(),
            overrides: self.overrides.clone(),
            mode: self.mode,
            targeting: self.targeting,
            lifecycle: self.lifecycle.clone(),
        }
    }

    /// The spec with `stopped` set as given.
    pub fn with_stopped(&self, stopped: bool) -> InstanceSpec {
        let mut s = self.clone();
        s.lifecycle.stopped = stopped;
        s
    }

    /// The effective environment of a component: the manifest's, then the overrides.
    pub fn env_of(&self, component: &str) -> Labels {
        let mut env: Labels = self
            .manifest
            .component(component)
            .map(|c| {
                c.env
                    .iter()
                    .map(|(k, v)| (k.clone(), v.0.clone()))
                    .collect()
            })
            .unwrap_or_default();
        for o in self
            .overrides
            .iter()
            .filter(|o| o.component.as_str() == component)
        {
            env.insert(o.var.clone(), o.value.clone());
        }
        env
    }
}

/// Why a node started to run an instance, stopped running it, or changed what it runs of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeReason {
    /// Its labels now match the instance's selector (`labels` is what the selector asks).
    SelectorMatched,
    /// Its labels no longer match the instance's selector.
    SelectorUnmatched,
    /// It joined (or enrolled into) the instance's environment and matches.
    Joined,
    /// It matches but no longer fits (or fits again): `reasons` is why it does not.
    Fit { reasons: Vec<String> },
    /// A step of a rollout: batch `batch` (from 1) of the instance's rollout `rollout`.
    Rollout { rollout: u64, batch: u32 },
    /// The rollout failed and the node returns to the spec it ran before.
    RolledBack { rollout: u64 },
    /// The rollout ended while the node was skipped (offline, or not yet a target): it gets
    /// what the rollout ended with.
    RolloutOutcome { rollout: u64 },
    /// `skerry stop`: the node keeps the instance and stops its replicas. `all`: the
    /// instance as a whole was stopped (no `--node`), so nodes that join it later join it
    /// stopped.
    Stopped { all: bool },
    /// `skerry start`: the node starts the instance's replicas again. `all`: the instance
    /// as a whole was started.
    Started { all: bool },
}

impl ChangeReason {
    /// A stop or start of the instance as a whole (no `--node`).
    pub fn is_whole_instance(&self) -> bool {
        matches!(
            self,
            ChangeReason::Stopped { all: true } | ChangeReason::Started { all: true }
        )
    }
}

impl std::fmt::Display for ChangeReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChangeReason::SelectorMatched => f.write_str("its labels match the selector"),
            ChangeReason::SelectorUnmatched => {
                f.write_str("its labels no longer match the selector")
            }
            ChangeReason::Joined => f.write_str("it joined the environment"),
            ChangeReason::Fit { reasons } if reasons.is_empty() => f.write_str("it fits"),
            ChangeReason::Fit { reasons } => write!(f, "it does not fit: {}", reasons.join("; ")),
            ChangeReason::Rollout { rollout, batch } => {
                write!(f, "rollout {rollout}, batch {batch}")
            }
            ChangeReason::RolledBack { rollout } => write!(f, "rollout {rollout} rolled back"),
            ChangeReason::RolloutOutcome { rollout } => {
                write!(f, "the outcome of rollout {rollout}")
            }
            ChangeReason::Stopped { all: false } => f.write_str("stopped"),
            ChangeReason::Stopped { all: true } => f.write_str("stopped, the whole instance"),
            ChangeReason::Started { all: false } => f.write_str("started"),
            ChangeReason::Started { all: true } => f.write_str("started, the whole instance"),
        }
    }
}

/// One node's change in an `instance.nodes-changed` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeChange {
    pub node: NodeId,
    pub reason: ChangeReason,
}
