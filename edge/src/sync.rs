//! The agent's side of the sync protocol, sans-IO (rumqttc's `state.rs` beside its event
//! loop is the model): [`AgentSync`] takes the link's events and frames, and returns the
//! frames to send and the batches the journal must make durable. The agent's commit path
//! (`agent/commit.rs`) does the I/O.
//!
//! ```text
//! link up        -> connected()        -> send Hello { last_node_seq: committed }
//! down frame     -> down(bytes, now)   -> Step { send, commit }
//!                   journal.commit(&commit)   (durable; on the blocking pool)
//!                -> committed(&commit) -> send Ack { node_seq: commit.through() }
//! commit failed  -> resume(&journal.load()?) -> send Hello again
//! timer          -> heartbeat(now)     -> send Heartbeat
//! ```
//!
//! **Commit before ack.** Events are folded into a *staged* reducer as they arrive; the
//! batch that [`AgentSync::down`] returns is not acknowledged, nor shown to the reconciler
//! ([`AgentSync::desired`]), until the caller reports it durable with
//! [`AgentSync::committed`]. So:
//! - a crash before the commit loses only events that were never acknowledged: the next
//!   `Hello` names the last committed `node_seq`, and the cloud sends the rest again;
//! - a crash between the commit and the ack is safe too: the cloud sends again what it
//!   did not see acknowledged, those are duplicates of journaled events, and the agent
//!   acknowledges them again without applying anything.
//!
//! Batches may be pipelined (several handed out before the first is committed); they must
//! be committed in the order they were handed out, or merged ([`Commit::merge`]) into one
//! transaction when several frames arrived while the journal was busy (group commit). After a commit fails, the staged state
//! is ahead of the journal: [`AgentSync::resume`] goes back to what the journal holds.
//!
//! **Duplicates and equivocation.** The shared [`NodeReducer`] tells them apart for the
//! events it has seen; for older ones (after a restart) the digests of the journal's
//! latest events ([`JournalState::recent`]) do. A duplicate is ignored silently; an
//! equivocating event (a `node_seq` already applied, with other content) is refused,
//! counted and logged. A frame that does not decode, or is over the limit, is dropped,
//! counted and logged, never applied.
//!
//! **Refused events.** An event the node cannot take (a deploy whose manifest fails the
//! shared validation, say `replicas: 4294967295` recorded by an older cloud) is refused by
//! the shared fold ([`skerry_shared::reducer::try_fold`]): it is committed and acknowledged
//! like any other, so the cloud does not send it again, but changes nothing but `applied`,
//! so it is never acted on. It is counted ([`SyncCounters::refused`]), logged with its
//! `node_seq` and why, and kept in [`AgentSync::refusals`]. A journal or snapshot written
//! before this rule may hold such an instance in its desired state: it is left out
//! ([`skerry_shared::reducer::sanitize`]) when the state is loaded or restored, and
//! counted the same way, so the agent starts on it and does not run it.
//!
//! **Rebuilding.** An agent whose journal was found damaged starts a new one and calls
//! [`AgentSync::rebuild`]: until its first commit it says `Rebuild` where it would say
//! `Hello`, and [`AgentSync::is_rebuilding`] tells the agent not to reconcile (the empty
//! desired state is not the node's). The cloud answers `Rebuild` with a snapshot of the
//! whole state, so that first commit holds all of it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use skerry_shared::clock::Timestamp;
use skerry_shared::event::NodeEvent;
use skerry_shared::frame::{
    self, Assembly, DEFAULT_MAX_SNAPSHOT_BYTES, DownFrame, FrameError, SnapshotAssembler, UpFrame,
};
use skerry_shared::hash::Digest;
use skerry_shared::ids::NodeId;
use skerry_shared::reducer::{
    DEFAULT_WINDOW, MAX_REFUSALS_KEPT, NodeDesired, NodeReducer, NodeSnapshot, Offer, Refused,
    Restore, sanitize,
};

use crate::journal::{Commit, JournalState};

/// How many out-of-order events an agent keeps by default while a gap fills.
pub const DEFAULT_MAX_PENDING: usize = 1024;

/// The sync state machine's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConfig {
    /// Sent in every `Hello`.
    pub agent_version: String,
    /// Events kept beyond a gap (each is held twice: by the reducer and for the journal).
    pub max_pending: usize,
    /// Digests of applied events remembered to tell a duplicate from equivocation.
    pub window: usize,
    /// The largest snapshot assembled.
    pub max_snapshot_bytes: usize,
}

impl SyncConfig {
    pub fn new(agent_version: impl Into<String>) -> Self {
        Self {
            agent_version: agent_version.into(),
            max_pending: DEFAULT_MAX_PENDING,
            window: DEFAULT_WINDOW,
            max_snapshot_bytes: DEFAULT_MAX_SNAPSHOT_BYTES,
        }
    }
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self::new(env!("CARGO_PKG_VERSION"))
    }
}

/// What happened on the link so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncCounters {
    /// Events made durable (committed).
    pub applied: u64,
    /// Events delivered again with the same content (or too old to check): ignored.
    pub duplicates: u64,
    /// Events beyond a gap, kept until it fills.
    pub buffered: u64,
    /// Events beyond a gap that were not kept (the pending map was full).
    pub overflows: u64,
    /// Events refused: a `node_seq` already seen, with other content.
    pub equivocations: u64,
    /// Down frames dropped: over the limit or not decoding.
    pub malformed: u64,
    /// Snapshots made durable.
    pub snapshots: u64,
    /// Snapshot chunks or snapshots refused (inconsistent, too large, another node's).
    pub snapshot_errors: u64,
    /// Batches made durable.
    pub commits: u64,
    /// Times the state went back to the journal's after a failed commit.
    pub resumes: u64,
    /// Events (or instances of a stored state or snapshot) the node cannot take: applied
    /// past and acknowledged, never acted on.
    pub refused: u64,
}

/// What to do after an input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    /// Encoded up frames to send now, in order.
    pub send: Vec<Vec<u8>>,
    /// A batch to make durable with `Journal::commit`, then to report with
    /// [`AgentSync::committed`] (which gives the ack to send).
    pub commit: Option<Commit>,
    /// Frames for other parts of the agent (the outbox, the runtime log).
    pub other: Option<Other>,
}

/// A down frame that is not about the desired state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Other {
    /// The cloud stored these outbox entries.
    OutboxAck { epoch: u64, seqs: Vec<u64> },
    /// `skerry node logs`: the agent's runtime log is asked for.
    NodeLogs {
        request: u64,
        since: Option<Timestamp>,
        max_bytes: u32,
    },
    /// A frame of the certificate's renewal, for the credentials task.
    Credentials(DownFrame),
}

/// Why the state machine refused a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// The journal holds another node's state: it is not acted on.
    #[error("the journal belongs to node {journal}, but this agent is node {agent}")]
    WrongNode { journal: NodeId, agent: NodeId },
    /// `committed` was called with a batch that is not the oldest one handed out.
    #[error(
        "committed a batch through node_seq {through}, but the next batch to commit is {expected:?}"
    )]
    UnexpectedCommit { through: u64, expected: Option<u64> },
    /// An up frame does not encode.
    #[error("up frame: {0}")]
    Frame(#[from] FrameError),
}

/// The agent's side of the sync protocol.
#[derive(Debug)]
pub struct AgentSync {
    config: SyncConfig,
    node: NodeId,
    /// Staged: may be ahead of the journal by the batches handed out.
    reducer: NodeReducer,
    /// Copies of the events the reducer buffers beyond a gap, by `node_seq`, so that the
    /// ones it applies later can go to the journal.
    held: BTreeMap<u64, NodeEvent>,
    /// Digests of committed events (the journal's latest, then each commit's).
    digests: BTreeMap<u64, Digest>,
    /// The desired state as of `committed`.
    desired: Arc<NodeDesired>,
    /// Bumped when a commit changes the desired state (anything but `applied`).
    generation: u64,
    /// The `through` of each batch handed out and not yet committed, oldest first.
    outstanding: VecDeque<u64>,
    assembler: SnapshotAssembler,
    /// A `Hello` was sent to fill a gap the pending map could not hold.
    resync_requested: bool,
    /// The journal was started again after damage; nothing committed yet.
    rebuilding: bool,
    heartbeat_sent: Option<Timestamp>,
    round_trip_ms: Option<i64>,
    clock_offset_ms: Option<i64>,
    counters: SyncCounters,
    /// The latest refusals, oldest first (at most [`MAX_REFUSALS_KEPT`]).
    refusals: VecDeque<Refused>,
}

impl AgentSync {
    /// The state machine for `node`, resuming from what its journal holds.
    pub fn new(node: NodeId, state: &JournalState, config: SyncConfig) -> Result<Self, SyncError> {
        let (desired, dropped) = Self::desired_from(node, state)?;
        let mut sync = Self {
            reducer: NodeReducer::new(node),
            held: BTreeMap::new(),
            digests: BTreeMap::new(),
            desired: Arc::new(desired),
            generation: 0,
            outstanding: VecDeque::new(),
            assembler: SnapshotAssembler::new(config.max_snapshot_bytes),
            resync_requested: false,
            rebuilding: false,
            heartbeat_sent: None,
            round_trip_ms: None,
            clock_offset_ms: None,
            counters: SyncCounters::default(),
            refusals: VecDeque::new(),
            node,
            config,
        };
        sync.refused_stored(dropped);
        sync.reset_to(state);
        Ok(sync)
    }

    /// The journal's desired state, without the instances the node cannot take (they are
    /// returned as refusals).
    fn desired_from(
        node: NodeId,
        state: &JournalState,
    ) -> Result<(NodeDesired, Vec<Refused>), SyncError> {
        match &state.desired {
            Some(d) if d.node != node => Err(SyncError::WrongNode {
                journal: d.node,
                agent: node,
            }),
            Some(d) => {
                let mut d = d.clone();
                let dropped = sanitize(&mut d);
                Ok((d, dropped))
            }
            None => Ok((NodeDesired::new(node), Vec::new())),
        }
    }

    /// Counts, logs and keeps refusals of the stored state.
    fn refused_stored(&mut self, dropped: Vec<Refused>) {
        for r in dropped {
            self.refused(r);
        }
    }

    /// Counts, logs and keeps what the reducer refused since the last call.
    fn take_refused(&mut self) {
        for r in self.reducer.take_refused() {
            self.refused(r);
        }
    }

    fn refused(&mut self, r: Refused) {
        self.counters.refused = self.counters.refused.saturating_add(1);
        tracing::error!(
            node_seq = r.node_seq,
            kind = r.kind,
            reason = %r.reason,
            refused = self.counters.refused,
            "refused node_seq {} ({}): {}; acknowledged, never acted on",
            r.node_seq,
            r.kind,
            r.reason
        );
        if self.refusals.len() >= MAX_REFUSALS_KEPT {
            self.refusals.pop_front();
        }
        self.refusals.push_back(r);
    }

    /// Drops everything staged and starts again from the journal's state.
    fn reset_to(&mut self, state: &JournalState) {
        let desired = (*self.desired).clone();
        self.reducer = NodeReducer::from_state(desired)
            .with_limits(self.config.max_pending, self.config.window);
        self.held.clear();
        self.digests = state
            .recent
            .iter()
            .rev()
            .take(self.config.window.max(1))
            .map(|(k, v)| (*k, *v))
            .collect();
        self.outstanding.clear();
        self.assembler.reset();
        self.resync_requested = false;
    }

    /// The link is up: the `Hello` to send first. A partial snapshot of an earlier
    /// session is dropped.
    pub fn connected(&mut self) -> Result<Vec<u8>, SyncError> {
        self.assembler.reset();
        self.heartbeat_sent = None;
        self.resync_requested = false;
        self.hello()
    }

    /// The journal was found damaged and started again empty: say `Rebuild` instead of
    /// `Hello` until the first commit, and tell the agent not to reconcile until then.
    /// Only for a journal that has committed nothing.
    pub fn rebuild(&mut self) {
        self.rebuilding = self.last_committed() == 0;
    }

    /// A rebuild is waiting for its first commit: the desired state is not the node's yet.
    pub fn is_rebuilding(&self) -> bool {
        self.rebuilding
    }

    fn hello(&self) -> Result<Vec<u8>, SyncError> {
        if self.rebuilding {
            return Ok(frame::encode_up(&UpFrame::Rebuild {
                agent_version: self.config.agent_version.clone(),
            })?);
        }
        Ok(frame::encode_up(&UpFrame::Hello {
            last_node_seq: self.last_committed(),
            agent_version: self.config.agent_version.clone(),
        })?)
    }

    /// A heartbeat to send at `now`.
    pub fn heartbeat(&mut self, now: Timestamp) -> Result<Vec<u8>, SyncError> {
        let bytes = frame::encode_up(&UpFrame::Heartbeat {
            time: now,
            last_node_seq: self.last_committed(),
        })?;
        self.heartbeat_sent = Some(now);
        Ok(bytes)
    }

    /// A frame from the node's `down` topic, received at `now`.
    pub fn down(&mut self, bytes: &[u8], now: Timestamp) -> Step {
        match frame::decode_down(bytes) {
            Err(e) => {
                self.counters.malformed = self.counters.malformed.saturating_add(1);
                tracing::warn!(
                    len = bytes.len(),
                    error = %e,
                    malformed = self.counters.malformed,
                    "dropped a down frame that does not decode"
                );
                Step::default()
            }
            Ok(DownFrame::Events(events)) => self.offer_events(events),
            Ok(DownFrame::SnapshotChunk {
                node_seq,
                index,
                total,
                bytes,
            }) => self.offer_chunk(node_seq, index, total, bytes),
            Ok(DownFrame::HeartbeatAck { time }) => {
                self.heartbeat_acked(time, now);
                Step::default()
            }
            Ok(DownFrame::OutboxAck { epoch, seqs }) => Step {
                other: Some(Other::OutboxAck { epoch, seqs }),
                ..Step::default()
            },
            Ok(DownFrame::NodeLogsRequest {
                request,
                since,
                max_bytes,
            }) => Step {
                other: Some(Other::NodeLogs {
                    request,
                    since,
                    max_bytes,
                }),
                ..Step::default()
            },
            Ok(
                f @ (DownFrame::RenewCertificate { .. }
                | DownFrame::Certificate { .. }
                | DownFrame::CertificateRefused { .. }),
            ) => Step {
                other: Some(Other::Credentials(f)),
                ..Step::default()
            },
        }
    }

    fn offer_events(&mut self, events: Vec<NodeEvent>) -> Step {
        let mut newly: Vec<NodeEvent> = Vec::new();
        let mut duplicates = false;
        let mut overflow = false;
        for ev in events {
            let seq = ev.node_seq;
            if seq <= self.reducer.applied()
                && let Some(known) = self.digests.get(&seq)
            {
                if *known == ev.digest() {
                    duplicates = true;
                    self.counters.duplicates = self.counters.duplicates.saturating_add(1);
                } else {
                    self.equivocation(seq);
                }
                continue;
            }
            let copy = ev.clone();
            match self.reducer.offer(ev) {
                Offer::Applied { through } => {
                    newly.push(copy);
                    // The buffered successors the reducer applied with it.
                    let rest = self.held.split_off(&through.saturating_add(1));
                    let drained = std::mem::replace(&mut self.held, rest);
                    newly.extend(drained.into_values().filter(|e| e.node_seq > seq));
                }
                Offer::Duplicate => {
                    duplicates = true;
                    self.counters.duplicates = self.counters.duplicates.saturating_add(1);
                }
                Offer::Buffered => {
                    self.held.insert(seq, copy);
                    self.counters.buffered = self.counters.buffered.saturating_add(1);
                }
                Offer::Overflow => {
                    overflow = true;
                    self.counters.overflows = self.counters.overflows.saturating_add(1);
                }
                Offer::Equivocation { node_seq } => self.equivocation(node_seq),
            }
            self.take_refused();
        }
        let mut step = Step::default();
        if !newly.is_empty() {
            step.commit = Some(self.stage(None, newly));
        } else if duplicates && self.outstanding.is_empty() {
            // The cloud sent again what the journal holds (an ack lost to a crash or a
            // cut): say again how far the journal is.
            self.push_ack(&mut step, self.last_committed());
        }
        if overflow && !self.resync_requested {
            tracing::info!(
                committed = self.last_committed(),
                pending = self.reducer.pending(),
                "too many events beyond a gap; asking the cloud to send them again"
            );
            self.resync_requested = true;
            self.push_hello(&mut step);
        }
        step
    }

    fn offer_chunk(&mut self, node_seq: u64, index: u32, total: u32, bytes: Vec<u8>) -> Step {
        let mut step = Step::default();
        match self.assembler.offer(node_seq, index, total, bytes) {
            Ok(Assembly::Pending { .. } | Assembly::Done) => {}
            Ok(Assembly::Complete(snapshot)) => self.restore(*snapshot, &mut step),
            Err(e) => {
                self.counters.snapshot_errors = self.counters.snapshot_errors.saturating_add(1);
                tracing::warn!(error = %e, "refused a snapshot chunk");
            }
        }
        step
    }

    fn restore(&mut self, snapshot: NodeSnapshot, step: &mut Step) {
        let node_seq = snapshot.node_seq;
        let restored = self.reducer.restore(snapshot.clone());
        self.take_refused();
        match restored {
            Restore::Restored { through } => {
                // The reducer dropped the buffered events the snapshot covers and applied
                // the ones that follow it.
                let kept = self.held.split_off(&node_seq.saturating_add(1));
                self.held = kept;
                let rest = self.held.split_off(&through.saturating_add(1));
                let drained = std::mem::replace(&mut self.held, rest);
                let events = drained.into_values().collect();
                step.commit = Some(self.stage(Some(snapshot), events));
            }
            Restore::Stale => {
                tracing::debug!(
                    node_seq,
                    applied = self.reducer.applied(),
                    "ignored a snapshot that is not newer than the state"
                );
                if self.outstanding.is_empty() {
                    self.push_ack(step, self.last_committed());
                }
            }
            Restore::WrongNode => {
                self.counters.snapshot_errors = self.counters.snapshot_errors.saturating_add(1);
                tracing::error!(
                    node_seq,
                    node = %snapshot.state.node,
                    "refused a snapshot of another node"
                );
            }
        }
    }

    /// Hands out a batch of the staged state.
    fn stage(&mut self, snapshot: Option<NodeSnapshot>, events: Vec<NodeEvent>) -> Commit {
        let desired = Arc::new(self.reducer.state().clone());
        self.outstanding.push_back(desired.applied);
        self.resync_requested = false;
        Commit {
            snapshot,
            events,
            desired,
            memos: Default::default(),
        }
    }

    fn equivocation(&mut self, node_seq: u64) {
        self.counters.equivocations = self.counters.equivocations.saturating_add(1);
        tracing::warn!(
            node_seq,
            equivocations = self.counters.equivocations,
            "equivocation: the cloud sent node_seq {node_seq} again with other content; refused"
        );
    }

    fn heartbeat_acked(&mut self, cloud_time: Timestamp, now: Timestamp) {
        let Some(sent) = self.heartbeat_sent.take() else {
            return;
        };
        let rtt = now.millis().saturating_sub(sent.millis()).max(0);
        let midpoint = sent.millis().saturating_add(rtt / 2);
        self.round_trip_ms = Some(rtt);
        self.clock_offset_ms = Some(cloud_time.millis().saturating_sub(midpoint));
    }

    /// The caller made `commit` durable: the ack to send. Batches must be reported in
    /// the order they were handed out; batches merged with [`Commit::merge`] are reported
    /// once, as the merged batch.
    pub fn committed(&mut self, commit: &Commit) -> Result<Vec<u8>, SyncError> {
        let through = commit.through();
        let expected = self.outstanding.front().copied();
        if !self.outstanding.contains(&through)
            || commit.check_continues(self.last_committed()).is_err()
        {
            return Err(SyncError::UnexpectedCommit { through, expected });
        }
        while self.outstanding.front().is_some_and(|t| *t <= through) {
            self.outstanding.pop_front();
        }
        if let Some(snapshot) = &commit.snapshot {
            self.digests = self.digests.split_off(&snapshot.node_seq.saturating_add(1));
            self.counters.snapshots = self.counters.snapshots.saturating_add(1);
        }
        for ev in &commit.events {
            self.digests.insert(ev.node_seq, ev.digest());
        }
        while self.digests.len() > self.config.window.max(1) {
            self.digests.pop_first();
        }
        if changed(&self.desired, &commit.desired) {
            self.generation = self.generation.wrapping_add(1);
        }
        self.desired = Arc::clone(&commit.desired);
        self.counters.applied = self
            .counters
            .applied
            .saturating_add(commit.events.len() as u64);
        self.counters.commits = self.counters.commits.saturating_add(1);
        if self.rebuilding {
            self.rebuilding = false;
            tracing::info!(node_seq = through, "the journal is rebuilt from the cloud");
        }
        Ok(frame::encode_up(&UpFrame::Ack { node_seq: through })?)
    }

    /// A commit failed: drops everything staged and goes back to what the journal holds
    /// (`journal.load()` after the failure), then gives the `Hello` to send so that the
    /// cloud sends the rest again.
    pub fn resume(&mut self, state: &JournalState) -> Result<Vec<u8>, SyncError> {
        // What the journal holds was sanitized (and counted) when it was loaded or staged.
        let (desired, _) = Self::desired_from(self.node, state)?;
        if changed(&self.desired, &desired) {
            self.generation = self.generation.wrapping_add(1);
        }
        self.desired = Arc::new(desired);
        self.reset_to(state);
        self.counters.resumes = self.counters.resumes.saturating_add(1);
        self.hello()
    }

    fn push_ack(&mut self, step: &mut Step, node_seq: u64) {
        match frame::encode_up(&UpFrame::Ack { node_seq }) {
            Ok(bytes) => step.send.push(bytes),
            Err(e) => tracing::error!(error = %e, "an ack does not encode"),
        }
    }

    fn push_hello(&mut self, step: &mut Step) {
        match self.hello() {
            Ok(bytes) => step.send.push(bytes),
            Err(e) => tracing::error!(error = %e, "a hello does not encode"),
        }
    }

    /// The desired state as of the last commit: what the reconciler runs.
    pub fn desired(&self) -> &Arc<NodeDesired> {
        &self.desired
    }

    /// Bumped whenever a commit changes the desired state in more than its `applied`
    /// (a `watch` channel's version, say).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The `node_seq` the journal has applied: what `Hello` and the acks say.
    pub fn last_committed(&self) -> u64 {
        self.desired.applied
    }

    /// The `node_seq` applied in the staged state, ahead of the journal by the batches
    /// handed out and not yet committed.
    pub fn staged(&self) -> u64 {
        self.reducer.applied()
    }

    /// Batches handed out and not yet reported committed.
    pub fn uncommitted(&self) -> usize {
        self.outstanding.len()
    }

    /// Events waiting beyond a gap.
    pub fn pending(&self) -> usize {
        self.reducer.pending()
    }

    pub fn counters(&self) -> SyncCounters {
        self.counters
    }

    /// The latest refusals (at most [`MAX_REFUSALS_KEPT`]), oldest first;
    /// [`SyncCounters::refused`] counts them all.
    pub fn refusals(&self) -> impl Iterator<Item = &Refused> {
        self.refusals.iter()
    }

    /// The last heartbeat's round trip, in milliseconds.
    pub fn round_trip_ms(&self) -> Option<i64> {
        self.round_trip_ms
    }

    /// How far the cloud's clock is ahead of the node's, in milliseconds, as of the last
    /// heartbeat (negative: behind).
    pub fn clock_offset_ms(&self) -> Option<i64> {
        self.clock_offset_ms
    }
}

/// Whether two desired states differ in anything but `applied`.
fn changed(a: &NodeDesired, b: &NodeDesired) -> bool {
    a.node != b.node
        || a.name != b.name
        || a.labels != b.labels
        || a.envs != b.envs
        || a.instances != b.instances
        || a.secrets != b.secrets
}
