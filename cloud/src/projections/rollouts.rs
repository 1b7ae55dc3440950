//! What each node of an instance runs, and the instance's rollouts, folded from the log.
//!
//! An instance's [`Instance::spec`] is what it is deployed as: its version, overrides and
//! nodes. Most of the time every target node runs exactly that. During a rollout (and after
//! one that failed without a rollback, or whose failed nodes stayed behind) some nodes run
//! another spec: [`Instance::runs`] holds those, by node, and [`Instance::spec_on`] answers
//! for any node.
//!
//! A rollout's state ([`RolloutState`]) is a projection like any other: started, each batch
//! started and finished, paused, resumed, finished. A cloud restarted in the middle of a
//! rollout rebuilds it from the log and its controller goes on from the batch it was in;
//! a batch recorded as started is never started again.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use skerry_shared::clock::Timestamp;
use skerry_shared::event::{ChangeReason, InstanceSpec, NodeChange};
use skerry_shared::ids::{Name, NodeId};
use skerry_shared::rollout::{NodeFailure, RolloutOutcome, RolloutStart};

/// A deployed instance.
#[derive(Debug, Clone)]
pub struct Instance {
    /// The instance as deployed (or as its last completed rollout left it).
    pub spec: InstanceSpec,
    pub deployed: Timestamp,
    pub seq: u64,
    /// The target nodes that run another spec than [`Self::spec`] (its `nodes` lists are
    /// not kept), by node.
    pub runs: BTreeMap<NodeId, Arc<InstanceSpec>>,
    /// The spec before the last completed rollout: what `rollback` returns to.
    pub previous: Option<Arc<InstanceSpec>>,
    /// The running rollout, or the last one.
    pub rollout: Option<RolloutState>,
}

impl Instance {
    pub fn new(spec: InstanceSpec, deployed: Timestamp, seq: u64) -> Instance {
        Instance {
            spec,
            deployed,
            seq,
            runs: BTreeMap::new(),
            previous: None,
            rollout: None,
        }
    }

    /// The spec `node` runs (or would run, were it a target).
    pub fn spec_on(&self, node: NodeId) -> &InstanceSpec {
        self.runs.get(&node).map_or(&self.spec, |s| s)
    }

    /// Whether the instance is stopped on `node`.
    pub fn stopped_on(&self, node: NodeId) -> bool {
        self.spec_on(node).lifecycle.stopped
    }

    /// What a rollout to `to` gives `node`: `to`, with the node's own lifecycle kept where
    /// it says more. A rollout changes what a node runs, not whether it is stopped (an
    /// upgrade of a stopped instance leaves it stopped), and a restart generation never
    /// goes down (a node restarted on its own keeps its replicas when only others are).
    ///
    /// Borrowed when it is `to` itself (the common case: the controller asks for every
    /// node of a batch at every pass).
    pub fn target_on<'a>(&self, to: &'a InstanceSpec, node: NodeId) -> Cow<'a, InstanceSpec> {
        let run = &self.spec_on(node).lifecycle;
        let higher = |(c, g): (&Name, &u32)| {
            *g > to.lifecycle.generation(c) && to.manifest.component(c.as_str()).is_some()
        };
        if run.stopped == to.lifecycle.stopped && !run.restarts.iter().any(higher) {
            return Cow::Borrowed(to);
        }
        let mut target = to.with_stopped(run.stopped);
        for (c, g) in run.restarts.iter().filter(|e| higher(*e)) {
            target.lifecycle.restarts.insert(c.clone(), *g);
        }
        Cow::Owned(target)
    }

    /// The rollout in progress, if any.
    pub fn active_rollout(&self) -> Option<&RolloutState> {
        self.rollout.as_ref().filter(|r| r.outcome.is_none())
    }

    /// An `environment.renamed` of the instance's environment: its spec, the specs its
    /// nodes run, the one a rollback returns to and its rollout's take the new name (the
    /// shared specs are replaced by renamed copies).
    pub fn rename_env(&mut self, from: &Name, to: &Name) {
        if self.spec.env != *from {
            return;
        }
        let renamed = |s: &Arc<InstanceSpec>| {
            let mut s = (**s).clone();
            s.env = to.clone();
            Arc::new(s)
        };
        self.spec.env = to.clone();
        for run in self.runs.values_mut() {
            *run = renamed(run);
        }
        if let Some(p) = self.previous.as_mut() {
            *p = renamed(p);
        }
        if let Some(r) = self.rollout.as_mut() {
            r.from = renamed(&r.from);
            for run in r.from_runs.values_mut() {
                *run = renamed(run);
            }
            let mut start = (*r.start).clone();
            start.to.env = to.clone();
            r.start = Arc::new(start);
        }
    }

    /// Folds an `instance.nodes-changed` event. A stop or start of the whole instance
    /// (`ChangeReason::Stopped { all: true }`, `Started { all: true }`, or such an event
    /// with no node to change) sets whether the instance's own spec is stopped, which the
    /// nodes that run it later get.
    pub fn nodes_changed(&mut self, to: &InstanceSpec, changes: &[NodeChange], at: Timestamp) {
        self.spec.nodes.clone_from(&to.nodes);
        self.spec.unschedulable.clone_from(&to.unschedulable);
        if changes.iter().any(|c| c.reason.is_whole_instance())
            || (changes.is_empty() && to.lifecycle.stopped != self.spec.lifecycle.stopped)
        {
            self.spec.lifecycle.stopped = to.lifecycle.stopped;
        }
        let shared = (!same_run(to, &self.spec)).then(|| Arc::new(without_nodes(to)));
        for c in changes {
            match (&shared, to.targets(c.node)) {
                (Some(run), true) => {
                    self.runs.insert(c.node, Arc::clone(run));
                }
                _ => {
                    self.runs.remove(&c.node);
                }
            }
            if let Some(r) = self.rollout.as_mut().filter(|r| r.outcome.is_none()) {
                r.node_changed(c, at);
            }
        }
        let targets: BTreeSet<NodeId> = self.spec.nodes.iter().map(|t| t.node).collect();
        self.runs.retain(|n, _| targets.contains(n));
    }

    /// Folds a `rollout.finished` event: a completed rollout makes its spec the
    /// instance's (keeping the nodes it has now), and the one before it `previous`; but
    /// for a restart, which changes neither.
    pub fn rollout_finished(&mut self, outcome: &RolloutOutcome, at: Timestamp) {
        let Some(r) = self.rollout.as_mut() else {
            return;
        };
        r.outcome = Some((outcome.clone(), at));
        // A restart changes no deployment: the nodes it restarted run their new
        // generations (in `runs`), and the instance's spec stays what it was.
        if *outcome == RolloutOutcome::Completed
            && r.start.kind != skerry_shared::rollout::RolloutKind::Restart
        {
            let mut to = r.start.to.clone();
            // Whether the instance as a whole is stopped is not a rollout's to change.
            to.lifecycle.stopped = self.spec.lifecycle.stopped;
            // The instance's nodes now, with the weights the rollout gave them.
            to.nodes = self
                .spec
                .nodes
                .iter()
                .map(|t| {
                    let weight = r
                        .start
                        .to
                        .nodes
                        .iter()
                        .find(|w| w.node == t.node)
                        .map_or(t.weight, |w| w.weight);
                    skerry_shared::event::NodeTarget {
                        node: t.node,
                        weight,
                    }
                })
                .collect();
            to.unschedulable.clone_from(&self.spec.unschedulable);
            let before = std::mem::replace(&mut self.spec, to);
            let before = Arc::new(without_nodes(&before));
            // What a node runs does not change with the instance's spec: a node that ran
            // the spec before (one that failed within --max-failed) still runs it.
            for t in &self.spec.nodes {
                self.runs
                    .entry(t.node)
                    .or_insert_with(|| Arc::clone(&before));
            }
            self.previous = Some(before);
            let spec = &self.spec;
            self.runs.retain(|_, run| !same_run(run, spec));
        }
    }
}

/// Whether two specs run the same on a node: the same version, manifest, overrides,
/// restart generations, and both stopped or both not.
pub fn same_run(a: &InstanceSpec, b: &InstanceSpec) -> bool {
    same_once_started(a, b) && a.lifecycle.stopped == b.lifecycle.stopped
}

/// Whether two specs run the same once both are started: [`same_run`] but for whether
/// they are stopped.
pub fn same_once_started(a: &InstanceSpec, b: &InstanceSpec) -> bool {
    same_settings(a, b) && a.lifecycle.restarts == b.lifecycle.restarts
}

/// Whether two specs have the same version, manifest and overrides (whatever their
/// lifecycle): what a rollout other than a restart changes (so the nodes it changes are
/// those that differ so; each gets the target as [`Instance::target_on`] says), what a
/// restart keeps, and what a rollback compares.
pub fn same_settings(a: &InstanceSpec, b: &InstanceSpec) -> bool {
    a.version == b.version && a.overrides == b.overrides && a.manifest == b.manifest
}

fn without_nodes(s: &InstanceSpec) -> InstanceSpec {
    InstanceSpec {
        nodes: Vec::new(),
        unschedulable: Vec::new(),
        ..s.clone()
    }
}

/// One batch of a rollout, as far as it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchState {
    /// From 1.
    pub batch: u32,
    pub started: Timestamp,
    pub finished: Option<Timestamp>,
    /// The batch's new nodes that were online when it started.
    pub nodes: Vec<NodeId>,
    /// The batch's new nodes that were offline when it started (`waiting: offline`).
    pub offline: Vec<NodeId>,
    /// The nodes changed so far, in order.
    pub changed: Vec<NodeId>,
    pub passed: Vec<NodeId>,
    pub failed: Vec<NodeFailure>,
    /// Whether it passed (once finished).
    pub ok: Option<bool>,
}

/// A rollout, as the log has it so far.
#[derive(Debug, Clone)]
pub struct RolloutState {
    pub start: Arc<RolloutStart>,
    pub started: Timestamp,
    /// The spec the instance had when the rollout started: what a rollback returns to.
    pub from: Arc<InstanceSpec>,
    /// The nodes that ran another spec than `from` when the rollout started, and that
    /// spec: what a rollback returns each of them to.
    pub from_runs: BTreeMap<NodeId, Arc<InstanceSpec>>,
    pub batches: Vec<BatchState>,
    /// Every node this rollout changed (for a rollback).
    pub changed: BTreeSet<NodeId>,
    pub paused: bool,
    /// When it was last resumed (a batch's timeout counts from then, not from its start).
    pub resumed: Option<Timestamp>,
    pub outcome: Option<(RolloutOutcome, Timestamp)>,
}

impl RolloutState {
    pub fn new(start: RolloutStart, inst: &Instance, at: Timestamp) -> RolloutState {
        RolloutState {
            start: Arc::new(start),
            started: at,
            from: Arc::new(without_nodes(&inst.spec)),
            from_runs: inst.runs.clone(),
            batches: Vec::new(),
            changed: BTreeSet::new(),
            paused: false,
            resumed: None,
            outcome: None,
        }
    }

    pub fn id(&self) -> u64 {
        self.start.id
    }

    /// What a rollback returns `node` to: the spec it ran when the rollout started.
    pub fn from_on(&self, node: NodeId) -> &Arc<InstanceSpec> {
        self.from_runs.get(&node).unwrap_or(&self.from)
    }

    /// The batch in progress or last finished.
    pub fn current(&self) -> Option<&BatchState> {
        self.batches.last()
    }

    pub fn batch_started(
        &mut self,
        batch: u32,
        nodes: &[NodeId],
        offline: &[NodeId],
        at: Timestamp,
    ) {
        self.batches.push(BatchState {
            batch,
            started: at,
            finished: None,
            nodes: nodes.to_vec(),
            offline: offline.to_vec(),
            changed: Vec::new(),
            passed: Vec::new(),
            failed: Vec::new(),
            ok: None,
        });
    }

    pub fn batch_finished(
        &mut self,
        batch: u32,
        passed: &[NodeId],
        failed: &[NodeFailure],
        ok: bool,
        at: Timestamp,
    ) {
        if let Some(b) = self.batches.iter_mut().find(|b| b.batch == batch) {
            b.finished = Some(at);
            b.passed = passed.to_vec();
            b.failed = failed.to_vec();
            b.ok = Some(ok);
        }
    }

    fn node_changed(&mut self, c: &NodeChange, _at: Timestamp) {
        match c.reason {
            ChangeReason::Rollout { rollout, batch } if rollout == self.id() => {
                self.changed.insert(c.node);
                if let Some(b) = self.batches.iter_mut().find(|b| b.batch == batch)
                    && !b.changed.contains(&c.node)
                {
                    b.changed.push(c.node);
                    // A node that was offline when the batch started and came back in time.
                    b.offline.retain(|n| *n != c.node);
                    if !b.nodes.contains(&c.node) {
                        b.nodes.push(c.node);
                    }
                }
            }
            ChangeReason::RolledBack { rollout } if rollout == self.id() => {
                self.changed.remove(&c.node);
            }
            _ => {}
        }
    }

    /// The nodes skipped while offline, over every batch so far.
    pub fn offline(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.batches.iter().flat_map(|b| b.offline.iter().copied())
    }
}
