//! Events to a node's desired state, idempotent by `node_seq`.
//!
//! The cloud gives every event that concerns a node that node's own sequence number
//! (`node_seq`, from 1, with no gaps). [`fold`] is the pure rule that turns one event into
//! a change of [`NodeDesired`]; the cloud's projections and the agent use the same rule,
//! so both sides agree on what a node should run.
//!
//! [`NodeReducer`] wraps the state for a link that delivers at least once, in any order:
//! - the next `node_seq` is folded, then any buffered successors ([`Offer::Applied`]);
//! - a `node_seq` already applied with the same content is a normal duplicate
//!   ([`Offer::Duplicate`]), ignored silently;
//! - the same `node_seq` with other content is equivocation ([`Offer::Equivocation`]):
//!   never applied, counted in [`NodeReducer::equivocations`];
//! - a `node_seq` beyond a gap is kept in a bounded pending map until the gap fills
//!   ([`Offer::Buffered`]), or refused when the map is full ([`Offer::Overflow`]; the
//!   sender delivers it again after the next `Hello`).
//!
//! To tell a duplicate from equivocation the reducer remembers the content digest of the
//! last `window` applied events. An event older than that window, or older than a restored
//! snapshot, cannot be checked and is treated as a duplicate. Memory stays bounded by
//! `max_pending` events plus `window` digests.
//!
//! A [`NodeSnapshot`] is the state as of one `node_seq`: the cloud sends it instead of a
//! long history, and [`NodeReducer::restore`] takes it when it is newer than what the
//! node has applied.
//!
//! **Refused events.** An event recorded by an older build (or written by hand) may carry
//! what no node can take: a deploy whose manifest fails [`crate::manifest::validate_on_node`]
//! (`replicas: 4294967295`, say). [`try_fold`] checks an event before it changes anything:
//! such an event is refused whole ([`Refused`]), only `applied` moves past it, so it is
//! committed and acknowledged like any other and never acted on. The cloud folds with the
//! same rule, so the snapshots it sends agree. [`NodeReducer`] keeps the refusals for its
//! caller to count and report ([`NodeReducer::take_refused`]), and [`sanitize`] drops such
//! instances from a state that was stored or sent before this rule.
//!
//! The tests are in `tests` (`reducer/tests.rs`); the property tests in
//! `shared/tests/reducer_props.rs`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::event::{EventPayload, InstanceSpec, NodeEvent};
use crate::hash::Digest;
use crate::ids::{Labels, Name, NodeId};
use crate::secret::SealedForNode;

/// How many out-of-order events a [`NodeReducer`] keeps by default.
pub const DEFAULT_MAX_PENDING: usize = 4096;
/// How many applied events' digests a [`NodeReducer`] remembers by default.
pub const DEFAULT_WINDOW: usize = 4096;

/// What one node should run, as of `applied`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeDesired {
    pub node: NodeId,
    /// The node's name, once an event named it.
    pub name: Option<Name>,
    pub labels: Labels,
    /// The environments the node belongs to.
    pub envs: BTreeSet<Name>,
    /// The instances that target this node, by instance name.
    pub instances: BTreeMap<Name, DesiredInstance>,
    /// The `node_seq` of the last event folded in (0: none).
    pub applied: u64,
    /// The latest copy of each secret delivered to this node, sealed for its key, by
    /// secret name. Last, and left out when empty, so a state stored or sent before
    /// secrets existed decodes and one without secrets encodes as it did (see
    /// [`trailing`]).
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "trailing"
    )]
    pub secrets: BTreeMap<Name, DesiredSecret>,
}

/// A secret version delivered to this node, still sealed for its key: the agent opens it
/// only when it starts a replica that uses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredSecret {
    pub version: u64,
    pub sealed: SealedForNode,
}

/// The last field of a postcard value stored before that field existed: its absence (the
/// end of the bytes) reads as the default. In human-readable formats, the field as usual.
fn trailing<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    if d.is_human_readable() {
        T::deserialize(d)
    } else {
        Ok(T::deserialize(d).unwrap_or_default())
    }
}

impl NodeDesired {
    /// The state before any event.
    pub fn new(node: NodeId) -> Self {
        Self {
            node,
            name: None,
            labels: Labels::new(),
            envs: BTreeSet::new(),
            instances: BTreeMap::new(),
            applied: 0,
            secrets: BTreeMap::new(),
        }
    }
}

/// An instance this node should run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredInstance {
    pub spec: InstanceSpec,
    /// The `node_seq` of the deploy event. A later deploy (an upgrade, a rollback, a
    /// redeploy) has a larger one, which is how a failed init knows to try again.
    pub deployed_at: u64,
}

/// A node's desired state as of `node_seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSnapshot {
    pub node_seq: u64,
    pub state: NodeDesired,
}

/// An event a node does not take: never applied, only counted past.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub node_seq: u64,
    /// The event's kind ([`EventPayload::kind`]).
    pub kind: &'static str,
    /// Why, naming the field (`instance web: components[0].replicas: ...`).
    pub reason: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "node_seq {} ({}): {}",
            self.node_seq, self.kind, self.reason
        )
    }
}

/// The most refusals a [`NodeReducer`] keeps for [`NodeReducer::take_refused`]; more are
/// counted only. Its caller takes them after every offer, so this bounds a single frame's
/// worth.
pub const MAX_REFUSALS_KEPT: usize = 64;

/// Why no node can take an instance spec, if none can: its manifest fails the shared
/// validation (with its bounds; cron syntax aside, see
/// [`crate::manifest::validate_on_node`]), or its restart generations name more components
/// than [`crate::instance::MAX_RESTARTED_COMPONENTS`] or one its manifest does not have.
pub fn check_instance(spec: &InstanceSpec) -> Result<(), String> {
    crate::manifest::validate_on_node(&spec.manifest).map_err(|e| {
        format!(
            "instance {}: manifest {}@{}: {e}",
            spec.name, spec.app, spec.version
        )
    })?;
    let restarts = &spec.lifecycle.restarts;
    if restarts.len() > crate::instance::MAX_RESTARTED_COMPONENTS {
        return Err(format!(
            "instance {}: restart generations of {} components; at most {} are accepted",
            spec.name,
            restarts.len(),
            crate::instance::MAX_RESTARTED_COMPONENTS
        ));
    }
    if let Some(c) = restarts
        .keys()
        .find(|c| spec.manifest.component(c.as_str()).is_none())
    {
        return Err(format!(
            "instance {}: a restart generation of component {c}, which {}@{} does not have",
            spec.name, spec.app, spec.version
        ));
    }
    Ok(())
}

/// Why a node cannot take `payload` (`Ok`: it can). Only what the node would act on is
/// checked: a deploy that targets it.
pub fn check(me: NodeId, payload: &EventPayload) -> Result<(), String> {
    match payload {
        EventPayload::InstanceDeployed { instance }
        | EventPayload::InstanceNodesChanged { instance, .. }
            if instance.targets(me) =>
        {
            check_instance(instance)
        }
        _ => Ok(()),
    }
}

/// Drops from `state` every instance [`check_instance`] refuses (a state stored or sent by
/// a build without this rule) and says which: each as a refusal of the deploy it came from
/// (its `deployed_at`).
pub fn sanitize(state: &mut NodeDesired) -> Vec<Refused> {
    let mut dropped = Vec::new();
    state
        .instances
        .retain(|name, i| match check_instance(&i.spec) {
            Ok(()) => true,
            Err(reason) => {
                dropped.push(Refused {
                    node_seq: i.deployed_at,
                    kind: "instance.deployed",
                    reason: format!("{reason} (instance {name} left out of the stored state)"),
                });
                false
            }
        });
    dropped
}

/// Folds one event into a node's desired state and records `node_seq` as applied.
///
/// Pure and total: events about other nodes, and kinds that do not concern a node's
/// desired state, change nothing but `applied`. The caller folds in `node_seq` order
/// ([`NodeReducer`] does that). An event [`check`] refuses changes nothing but `applied`
/// either; [`try_fold`] says so.
pub fn fold(state: &mut NodeDesired, node_seq: u64, payload: &EventPayload) {
    let _ = try_fold(state, node_seq, payload);
}

/// [`fold`], saying whether the event was refused. The check comes before any change, so
/// a refused event is never applied in part.
pub fn try_fold(
    state: &mut NodeDesired,
    node_seq: u64,
    payload: &EventPayload,
) -> Result<(), Refused> {
    if let Err(reason) = check(state.node, payload) {
        state.applied = node_seq;
        return Err(Refused {
            node_seq,
            kind: payload.kind(),
            reason,
        });
    }
    apply_checked(state, node_seq, payload);
    Ok(())
}

fn apply_checked(state: &mut NodeDesired, node_seq: u64, payload: &EventPayload) {
    let me = state.node;
    match payload {
        EventPayload::NodeEnrolled {
            node, name, env, ..
        } if *node == me => {
            state.name = Some(name.clone());
            state.envs.insert(env.clone());
        }
        EventPayload::NodeRenamed { node, name } if *node == me => {
            state.name = Some(name.clone());
        }
        EventPayload::NodeLabelled { node, set, removed } if *node == me => {
            apply_labels(&mut state.labels, set, removed);
        }
        EventPayload::NodeJoined { node, env } if *node == me => {
            state.envs.insert(env.clone());
        }
        EventPayload::NodeLeft { node, env } if *node == me => {
            state.envs.remove(env);
            state.instances.retain(|_, i| i.spec.env != *env);
        }
        EventPayload::EnvironmentDeleted { name } => {
            state.envs.remove(name);
            state.instances.retain(|_, i| i.spec.env != *name);
        }
        EventPayload::InstanceDeployed { instance } => {
            if instance.targets(me) {
                state.instances.insert(
                    instance.name.clone(),
                    DesiredInstance {
                        spec: (**instance).clone(),
                        deployed_at: node_seq,
                    },
                );
            } else {
                // A redeploy that moved the instance away from this node.
                state.instances.remove(&instance.name);
            }
        }
        EventPayload::InstanceUndeployed { name, .. } => {
            state.instances.remove(name);
        }
        EventPayload::InstanceNodesChanged { instance, changes }
            if changes.iter().any(|c| c.node == me) =>
        {
            if instance.targets(me) {
                state.instances.insert(
                    instance.name.clone(),
                    DesiredInstance {
                        spec: (**instance).clone(),
                        deployed_at: node_seq,
                    },
                );
            } else {
                // Its labels stopped matching, it left, or it does not fit any more.
                state.instances.remove(&instance.name);
            }
        }
        EventPayload::EnvironmentRenamed { name, to } => {
            if state.envs.remove(name) {
                state.envs.insert(to.clone());
            }
            for i in state.instances.values_mut() {
                if i.spec.env == *name {
                    i.spec.env = to.clone();
                }
            }
        }
        EventPayload::SecretDelivered {
            name,
            version,
            node,
            sealed,
        } if *node == me => {
            let newer = state
                .secrets
                .get(name)
                .is_none_or(|s| s.version <= *version);
            if newer {
                state.secrets.insert(
                    name.clone(),
                    DesiredSecret {
                        version: *version,
                        sealed: sealed.clone(),
                    },
                );
            }
        }
        EventPayload::SecretDeleted { name } => {
            state.secrets.remove(name);
        }
        EventPayload::NodeRemoved { node } if *node == me => {
            // The node runs nothing more and holds nothing of the cloud's: its apps are
            // stopped and removed (their named storage stays on disk), its secrets dropped.
            // The agent forgets its identity when it commits this event.
            state.instances.clear();
            state.secrets.clear();
            state.labels.clear();
            state.envs.clear();
        }
        _ => {}
    }
    state.applied = node_seq;
}

/// The label change of a `NodeLabelled` event: removals first, then the pairs set (so a key
/// both removed and set ends up set). The cloud's projections use the same rule.
pub fn apply_labels(labels: &mut Labels, set: &Labels, removed: &[String]) {
    for k in removed {
        labels.remove(k);
    }
    for (k, v) in set {
        labels.insert(k.clone(), v.clone());
    }
}

/// What [`NodeReducer::offer`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Applied this event and any buffered successors; `through` is the new `applied`.
    Applied { through: u64 },
    /// Already applied (or already buffered) with the same content, or too old to check:
    /// ignored.
    Duplicate,
    /// Beyond a gap: kept until the events before it arrive.
    Buffered,
    /// Beyond a gap, and the pending map is full: not kept.
    Overflow,
    /// The same `node_seq` as an event applied or buffered before, with other content:
    /// refused and counted.
    Equivocation { node_seq: u64 },
}

/// What [`NodeReducer::restore`] did with a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restore {
    /// The snapshot replaced the state, then buffered successors were applied; `through`
    /// is the new `applied`.
    Restored { through: u64 },
    /// The snapshot is not newer than what is applied: ignored.
    Stale,
    /// The snapshot is another node's: ignored.
    WrongNode,
}

/// A node's desired state with the bookkeeping that makes applying idempotent.
#[derive(Debug, Clone)]
pub struct NodeReducer {
    state: NodeDesired,
    /// Events beyond a gap, by `node_seq`, with their digests. Every key is greater than
    /// `state.applied + 1`.
    pending: BTreeMap<u64, (NodeEvent, Digest)>,
    /// Digests of the last `window` applied events.
    recent: BTreeMap<u64, Digest>,
    equivocations: u64,
    /// Refusals not taken yet (at most [`MAX_REFUSALS_KEPT`]).
    refusals: Vec<Refused>,
    refused: u64,
    max_pending: usize,
    window: usize,
}

impl NodeReducer {
    /// A reducer for a node that has applied nothing yet.
    pub fn new(node: NodeId) -> Self {
        Self::from_state(NodeDesired::new(node))
    }

    /// A reducer that continues from a stored state (the agent's journal after a restart).
    pub fn from_state(state: NodeDesired) -> Self {
        Self {
            state,
            pending: BTreeMap::new(),
            recent: BTreeMap::new(),
            equivocations: 0,
            refusals: Vec::new(),
            refused: 0,
            max_pending: DEFAULT_MAX_PENDING,
            window: DEFAULT_WINDOW,
        }
    }

    /// Sets the bounds: at most `max_pending` buffered events and `window` remembered
    /// digests (each at least 1).
    pub fn with_limits(mut self, max_pending: usize, window: usize) -> Self {
        self.max_pending = max_pending.max(1);
        self.window = window.max(1);
        self.trim_window();
        self
    }

    /// Offers one delivered event.
    pub fn offer(&mut self, ev: NodeEvent) -> Offer {
        let seq = ev.node_seq;
        let applied = self.state.applied;
        if seq <= applied {
            return match self.recent.get(&seq) {
                Some(d) if *d != ev.digest() => self.equivocation(seq),
                _ => Offer::Duplicate,
            };
        }
        let digest = ev.digest();
        if seq > applied.saturating_add(1) {
            if let Some((_, d)) = self.pending.get(&seq) {
                return if *d == digest {
                    Offer::Duplicate
                } else {
                    self.equivocation(seq)
                };
            }
            if self.pending.len() >= self.max_pending {
                return Offer::Overflow;
            }
            self.pending.insert(seq, (ev, digest));
            return Offer::Buffered;
        }
        self.apply(&ev, digest);
        self.drain();
        Offer::Applied {
            through: self.state.applied,
        }
    }

    /// Replaces the state with a newer snapshot, drops the buffered events it covers and
    /// applies the buffered events that now follow. An instance of the snapshot that
    /// [`check_instance`] refuses is left out and counted as refused.
    pub fn restore(&mut self, mut snapshot: NodeSnapshot) -> Restore {
        if snapshot.state.node != self.state.node {
            return Restore::WrongNode;
        }
        if snapshot.node_seq <= self.state.applied {
            return Restore::Stale;
        }
        for r in sanitize(&mut snapshot.state) {
            self.refuse(r);
        }
        self.state = snapshot.state;
        self.state.applied = snapshot.node_seq;
        self.pending = self.pending.split_off(&snapshot.node_seq.saturating_add(1));
        self.drain();
        Restore::Restored {
            through: self.state.applied,
        }
    }

    /// The state as a snapshot as of what is applied.
    pub fn snapshot(&self) -> NodeSnapshot {
        NodeSnapshot {
            node_seq: self.state.applied,
            state: self.state.clone(),
        }
    }

    /// The `node_seq` of the last event applied.
    pub fn applied(&self) -> u64 {
        self.state.applied
    }

    pub fn state(&self) -> &NodeDesired {
        &self.state
    }

    /// How many equivocating events were refused.
    pub fn equivocations(&self) -> u64 {
        self.equivocations
    }

    /// How many events wait for a gap to fill.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// How many events (or snapshot instances) were refused: applied past, never acted on.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// The refusals since the last call (at most [`MAX_REFUSALS_KEPT`]; [`Self::refused`]
    /// counts them all).
    pub fn take_refused(&mut self) -> Vec<Refused> {
        std::mem::take(&mut self.refusals)
    }

    fn refuse(&mut self, r: Refused) {
        self.refused = self.refused.saturating_add(1);
        if self.refusals.len() < MAX_REFUSALS_KEPT {
            self.refusals.push(r);
        }
    }

    fn equivocation(&mut self, node_seq: u64) -> Offer {
        self.equivocations = self.equivocations.saturating_add(1);
        Offer::Equivocation { node_seq }
    }

    fn apply(&mut self, ev: &NodeEvent, digest: Digest) {
        if let Err(r) = try_fold(&mut self.state, ev.node_seq, &ev.payload) {
            self.refuse(r);
        }
        self.recent.insert(ev.node_seq, digest);
        self.trim_window();
    }

    fn drain(&mut self) {
        while let Some(entry) = self.pending.first_entry() {
            let next = self.state.applied.saturating_add(1);
            if *entry.key() > next {
                break;
            }
            let (ev, digest) = entry.remove();
            // Keys at or below `applied` cannot be here (see `pending`), but a restore may
            // have moved `applied`; only the next one is folded.
            if ev.node_seq == next {
                self.apply(&ev, digest);
            }
        }
    }

    fn trim_window(&mut self) {
        while self.recent.len() > self.window {
            self.recent.pop_first();
        }
    }
}

#[cfg(test)]
mod tests;
