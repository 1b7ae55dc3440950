//! The journal seam: what the agent keeps on its node.
//!
//! A [`Journal`] holds everything the agent needs to run its apps after a restart with the
//! cloud unreachable ([`Journal::load`] gives back the first four as a [`JournalState`]),
//! and what it has yet to tell the cloud:
//! - the events addressed to the node, by `node_seq`: the last few thousand (the retention
//!   is configurable) for `skerry-edge events` and, through their digests, to tell a
//!   replayed duplicate from equivocation after a restart;
//! - the node's desired state ([`NodeDesired`], postcard), as of the last event applied;
//! - the agent's memos ([`Memos`]): facts that are not events but must survive a restart
//!   (init results, node ports, restart counts);
//! - the journal's `epoch`: a random number set when the journal is created, so a journal
//!   that was lost and rebuilt is told apart from the old one;
//! - the outbox ([`outbox`]): the reports (replica states, log batches, drop counts)
//!   queued by `seq` in two lanes until the cloud acknowledges them, with its counters (the
//!   next `seq`, the queued log bytes, the lines dropped for the quota), read with
//!   [`Journal::outbox_read`] and [`Journal::outbox_stats`];
//! - the log collector's cursors ([`Journal::log_cursors`]), stored in the transaction that
//!   queues the lines they point past.
//!
//! A [`Commit`] is one batch: the events newly applied, the desired state after them, an
//! optional snapshot they follow, and memo changes. [`Journal::commit`] makes all of it
//! durable in one write transaction (one fsync) before it returns, and the agent
//! acknowledges the events only after that. A commit must continue the journal exactly:
//! its events follow the last one applied (or its snapshot) without a gap, and its desired
//! state is as of its last event. A commit that does not is refused
//! ([`JournalError::InvalidCommit`]) and changes nothing, so a journal never moves back
//! and never holds a hole.
//!
//! Implementations:
//! - [`RedbJournal`] ([`redb`]): the file on a node.
//! - [`MemoryJournal`] ([`memory`]): the same rules without I/O, for the fleet simulator and
//!   tests.
//!
//! [`Journal::outbox_push`] queues reports (and stores cursors) in one write transaction,
//! coalescing and dropping by the rules in [`outbox`], which both implementations share.
//!
//! [`inspect`] reads a journal for `skerry-edge status` and `skerry-edge events`.
//!
//! Every method is synchronous. On [`RedbJournal`] each one does file I/O: `commit`,
//! `replace_with_snapshot`, `put_memos`, `outbox_push` and `outbox_ack` write and fsync
//! (milliseconds on an SD card); `load`, `event`, `events`, `event_span`, `outbox_read`,
//! `outbox_stats` and `log_cursors` only read. On the agent's current-thread runtime the
//! writes go through [`blocking::AsyncJournal`], which runs them on tokio's blocking
//! pool.

pub mod blocking;
pub mod inspect;
pub mod memory;
pub mod outbox;
pub mod redb;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use skerry_shared::event::NodeEvent;
use skerry_shared::hash::Digest;
use skerry_shared::ids::Name;
use skerry_shared::outbox::{Lane, OutboxEntry};
use skerry_shared::planner::{ActualState, FailedInit, ReplicaKey};
use skerry_shared::reducer::{NodeDesired, NodeSnapshot};

pub use self::memory::MemoryJournal;
pub use self::outbox::{OutboxPush, OutboxStats, Pushed};
pub use self::redb::RedbJournal;

/// How many events a journal keeps by default; older ones are pruned as new ones arrive.
pub const DEFAULT_RETENTION: usize = 10_000;

/// How many of the latest event digests [`Journal::load`] returns (the reducer's window).
pub const RECENT_DIGESTS: usize = skerry_shared::reducer::DEFAULT_WINDOW;

/// The journal's file name in the agent's data directory.
pub const FILE_NAME: &str = "journal.redb";

/// Everything needed to resume after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalState {
    /// The desired state as of the last committed event; `None` before the first commit
    /// (a new journal does not know its node yet).
    pub desired: Option<NodeDesired>,
    /// Set at random when the journal was created.
    pub epoch: u64,
    pub memos: Memos,
    /// The content digests of the latest stored events (at most [`RECENT_DIGESTS`]), by
    /// `node_seq`: what tells a duplicate from equivocation after a restart.
    pub recent: BTreeMap<u64, Digest>,
}

impl JournalState {
    /// The `node_seq` of the last committed event (0: none).
    pub fn applied(&self) -> u64 {
        self.desired.as_ref().map_or(0, |d| d.applied)
    }
}

/// Where a node port belongs: one container port of one replica.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodePortKey {
    pub replica: ReplicaKey,
    pub container_port: u16,
}

/// The agent's durable facts that are not events.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Memos {
    /// (instance, component, spec hash) of every init that exited 0 (the planner's
    /// `ActualState::inits_succeeded`).
    pub inits_succeeded: BTreeSet<(Name, Name, Digest)>,
    /// The last failure of each (instance, component) init (`ActualState::inits_failed`).
    pub inits_failed: BTreeMap<(Name, Name), FailedInit>,
    /// Host ports chosen for `nodeport` ports left without one: stable across restarts.
    pub nodeports: BTreeMap<NodePortKey, u16>,
    /// Restarts the agent counted, per replica.
    pub restarts: BTreeMap<ReplicaKey, u32>,
}

impl Memos {
    /// Applies one change (the rule every journal follows).
    pub fn apply(&mut self, change: &MemoChange) {
        match change {
            MemoChange::InitSucceeded {
                instance,
                component,
                spec_hash,
            } => {
                self.inits_succeeded
                    .insert((instance.clone(), component.clone(), *spec_hash));
            }
            MemoChange::InitFailed {
                instance,
                component,
                failure,
            } => {
                self.inits_failed
                    .insert((instance.clone(), component.clone()), *failure);
            }
            MemoChange::InitFailureCleared {
                instance,
                component,
            } => {
                self.inits_failed
                    .remove(&(instance.clone(), component.clone()));
            }
            MemoChange::NodePort { port, host_port } => {
                self.nodeports.insert(port.clone(), *host_port);
            }
            MemoChange::NodePortReleased { port } => {
                self.nodeports.remove(port);
            }
            MemoChange::Restarts { replica, count } => {
                self.restarts.insert(replica.clone(), *count);
            }
            MemoChange::RestartsCleared { replica } => {
                self.restarts.remove(replica);
            }
            MemoChange::InstanceForgotten { instance } => {
                self.inits_succeeded.retain(|(i, _, _)| i != instance);
                self.inits_failed.retain(|(i, _), _| i != instance);
                self.nodeports
                    .retain(|k, _| k.replica.instance != *instance);
                self.restarts.retain(|k, _| k.instance != *instance);
            }
        }
    }

    /// Applies every change, in order.
    pub fn apply_all(&mut self, changes: &MemoChanges) {
        for c in &changes.changes {
            self.apply(c);
        }
    }

    /// Copies the init results into the planner's actual state (the runtime observes the
    /// rest).
    pub fn fill(&self, actual: &mut ActualState) {
        actual.inits_succeeded.clone_from(&self.inits_succeeded);
        actual.inits_failed.clone_from(&self.inits_failed);
    }

    /// The host ports assigned to `nodeport` ports, for picking a free one.
    pub fn host_ports(&self) -> BTreeSet<u16> {
        self.nodeports.values().copied().collect()
    }

    /// The changes that make the recorded restart counts those of `counts` (every desired
    /// replica a runtime holds, with the count the runtime reports): a count that changed
    /// is recorded, and one of a replica no longer in `counts` is cleared. Zero is not
    /// recorded. What `skerry-edge status` shows, since it reads only the journal.
    pub fn restart_changes(&self, counts: &BTreeMap<ReplicaKey, u32>) -> MemoChanges {
        let mut changes = MemoChanges::new();
        for (replica, &count) in counts {
            if count > 0 && self.restarts.get(replica) != Some(&count) {
                changes.push(MemoChange::Restarts {
                    replica: replica.clone(),
                    count,
                });
            }
        }
        for replica in self.restarts.keys() {
            if counts.get(replica).is_none_or(|&n| n == 0) {
                changes.push(MemoChange::RestartsCleared {
                    replica: replica.clone(),
                });
            }
        }
        changes
    }
}

/// One change to the memos.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoChange {
    /// An init exited 0 for this spec hash.
    InitSucceeded {
        instance: Name,
        component: Name,
        spec_hash: Digest,
    },
    /// An init failed; replaces the last failure of that init.
    InitFailed {
        instance: Name,
        component: Name,
        failure: FailedInit,
    },
    InitFailureCleared {
        instance: Name,
        component: Name,
    },
    /// A host port was chosen for a node port.
    NodePort {
        port: NodePortKey,
        host_port: u16,
    },
    NodePortReleased {
        port: NodePortKey,
    },
    /// A replica's restart count is now `count`.
    Restarts {
        replica: ReplicaKey,
        count: u32,
    },
    RestartsCleared {
        replica: ReplicaKey,
    },
    /// Drops every memo of an instance (inits, ports, restarts).
    InstanceForgotten {
        instance: Name,
    },
}

/// Memo changes made durable together, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemoChanges {
    pub changes: Vec<MemoChange>,
}

impl MemoChanges {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, change: MemoChange) -> &mut Self {
        self.changes.push(change);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

impl From<Vec<MemoChange>> for MemoChanges {
    fn from(changes: Vec<MemoChange>) -> Self {
        Self { changes }
    }
}

/// One batch for [`Journal::commit`]: made durable in one write transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// A snapshot that replaces everything up to its `node_seq`: the events stored up to
    /// there are dropped. It must be newer than what the journal has applied.
    pub snapshot: Option<NodeSnapshot>,
    /// The events newly applied, in `node_seq` order, without a gap, continuing the
    /// journal (or the snapshot).
    pub events: Vec<NodeEvent>,
    /// The desired state after the snapshot and the events: `applied` is the `node_seq`
    /// of the last event (or the snapshot's).
    pub desired: Arc<NodeDesired>,
    /// Memo changes to make durable in the same transaction.
    pub memos: MemoChanges,
}

impl Commit {
    /// Events applied on top of the journal, with the desired state after them.
    pub fn events(events: Vec<NodeEvent>, desired: Arc<NodeDesired>) -> Self {
        Self {
            snapshot: None,
            events,
            desired,
            memos: MemoChanges::default(),
        }
    }

    /// A snapshot alone: the desired state is the snapshot's, as of its `node_seq`.
    pub fn snapshot(snapshot: NodeSnapshot) -> Self {
        let mut state = snapshot.state.clone();
        state.applied = snapshot.node_seq;
        Self {
            snapshot: Some(snapshot),
            events: Vec::new(),
            desired: Arc::new(state),
            memos: MemoChanges::default(),
        }
    }

    /// Appends the batch that follows this one, so that both are made durable in one
    /// transaction (one fsync for several frames). A later snapshot supersedes this
    /// batch's snapshot and events; memo changes are kept, in order.
    pub fn merge(&mut self, next: Commit) {
        if next.snapshot.is_some() {
            self.snapshot = next.snapshot;
            self.events = next.events;
        } else {
            self.events.extend(next.events);
        }
        self.desired = next.desired;
        self.memos.changes.extend(next.memos.changes);
    }

    /// The `node_seq` the journal has applied once this is committed.
    pub fn through(&self) -> u64 {
        self.desired.applied
    }

    /// Checks that this batch continues a journal that has applied `applied`.
    pub fn check_continues(&self, applied: u64) -> Result<(), JournalError> {
        let invalid = |reason: String| Err(JournalError::InvalidCommit(reason));
        let base = match &self.snapshot {
            Some(s) if s.node_seq <= applied => {
                return invalid(format!(
                    "the snapshot as of node_seq {} is not newer than the journal, which has \
                     applied {applied}",
                    s.node_seq
                ));
            }
            Some(s) if s.state.node != self.desired.node => {
                return invalid(format!(
                    "the snapshot is node {}'s, the desired state node {}'s",
                    s.state.node, self.desired.node
                ));
            }
            Some(s) => s.node_seq,
            None => applied,
        };
        let mut expected = base;
        for ev in &self.events {
            expected = expected.saturating_add(1);
            if ev.node_seq != expected {
                return invalid(format!(
                    "event node_seq {} where {expected} continues the journal",
                    ev.node_seq
                ));
            }
        }
        if self.desired.applied != expected {
            return invalid(format!(
                "the desired state is as of node_seq {}, the batch ends at {expected}",
                self.desired.applied
            ));
        }
        Ok(())
    }
}

/// The events a journal holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct EventSpan {
    /// The `node_seq` of the oldest stored event.
    pub first: u64,
    /// The `node_seq` of the newest stored event.
    pub last: u64,
    pub count: u64,
}

/// Why a journal operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    /// The file is damaged. Nothing in it was used; the agent sets it aside and rebuilds
    /// (see [`RedbJournal::open_or_set_aside`]), `status` and `events` refuse it.
    #[error(
        "journal {journal} is damaged ({reason}); nothing in it was used. Move it away to \
         start a new journal, which the cloud fills again"
    )]
    Corrupt { journal: String, reason: String },
    /// Written by another build in a format this one does not read.
    #[error("journal {journal} has format {found}; this build reads format {supported} only")]
    UnknownFormat {
        journal: String,
        found: u64,
        supported: u64,
    },
    /// Another process has the file open (a running agent).
    #[error("journal {journal} is in use by another process (is the agent running?)")]
    Locked { journal: String },
    /// Opened for reading only, and there is no journal.
    #[error("journal {journal} does not exist")]
    Missing { journal: String },
    /// The disk is full; the journal is reopened before the next operation.
    #[error("journal {journal}: the disk is full")]
    DiskFull { journal: String },
    /// Any other storage failure; the journal is reopened before the next operation.
    #[error("journal {journal}: {reason}")]
    Storage { journal: String, reason: String },
    /// Opened to read only (`skerry-edge status`): writes are refused.
    #[error("journal {journal} is open to read only")]
    ReadOnly { journal: String },
    /// A batch that does not continue the journal (see [`Commit::check_continues`]).
    #[error("journal: commit refused: {0}")]
    InvalidCommit(String),
    /// An outbox entry that cannot be stored; nothing of its push is.
    #[error("journal: outbox push refused: {0}")]
    InvalidEntry(String),
}

/// The journal seam. Object safe; every method is synchronous (see the module doc for
/// which ones do I/O).
pub trait Journal: Send + Sync + std::fmt::Debug {
    /// Everything needed to resume after a restart. Reads.
    fn load(&self) -> Result<JournalState, JournalError>;

    /// Makes a batch durable in one write transaction: the events (pruning the oldest
    /// beyond the retention), the desired state and the memo changes; with a snapshot,
    /// the events up to its `node_seq` are dropped first. Durable when this returns
    /// `Ok`; on `Err` nothing of it is stored. Writes and fsyncs.
    fn commit(&self, batch: &Commit) -> Result<(), JournalError>;

    /// Replaces the desired state with a snapshot and drops the events up to its
    /// `node_seq`. Durable on return. Writes and fsyncs.
    fn replace_with_snapshot(&self, snapshot: &NodeSnapshot) -> Result<(), JournalError> {
        self.commit(&Commit::snapshot(snapshot.clone()))
    }

    /// Makes memo changes durable, in one write transaction. Writes and fsyncs.
    fn put_memos(&self, changes: &MemoChanges) -> Result<(), JournalError>;

    /// A stored event. Reads.
    fn event(&self, node_seq: u64) -> Result<Option<NodeEvent>, JournalError>;

    /// Up to `limit` stored events after `after`, in `node_seq` order. Reads.
    fn events(&self, after: u64, limit: usize) -> Result<Vec<NodeEvent>, JournalError>;

    /// Which events are stored (`None`: none). Reads.
    fn event_span(&self) -> Result<Option<EventSpan>, JournalError>;

    /// Queues `push.bodies` (coalescing by the rules in [`outbox`]) and stores
    /// `push.cursors`, in one transaction; then drops the oldest log batches while the
    /// queued log bytes exceed `log_quota` (the new batch too, if it alone exceeds it),
    /// counting them in a queued `OutboxBody::LogsDropped` in the same transaction. Durable
    /// when this returns `Ok`; on `Err` nothing of it is stored. Writes and fsyncs.
    fn outbox_push(&self, push: &OutboxPush, log_quota: u64) -> Result<Pushed, JournalError>;

    /// Bounds the outbox's control lane (everything but log batches) to `bytes` encoded
    /// (the profile's `agent.outbox_quota`) for the pushes that follow; see [`outbox`] for
    /// what gives way. A journal starts without a bound.
    fn set_outbox_quota(&self, bytes: u64);

    /// Caps the log quota of the pushes that follow at `bytes` (the agent's disk budget,
    /// `crate::disk`): queued log batches beyond it are dropped and counted as for the
    /// quota. `u64::MAX` (the start) caps nothing.
    fn set_log_ceiling(&self, bytes: u64);

    /// Up to `max_entries` queued entries of `lane` with seq > `after`, in seq order,
    /// stopping before the entry that would take the encoded total past `max_bytes` (but at
    /// least one entry when there is one). Reads.
    fn outbox_read(
        &self,
        lane: Lane,
        after: u64,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<Vec<OutboxEntry>, JournalError>;

    /// Deletes the entries with these seqs (unknown ones are ignored: acks may repeat).
    /// Writes and fsyncs.
    fn outbox_ack(&self, seqs: &[u64]) -> Result<(), JournalError>;

    /// What the outbox holds and has dropped. Reads.
    fn outbox_stats(&self) -> Result<OutboxStats, JournalError>;

    /// The log collector's cursors. Reads.
    fn log_cursors(&self) -> Result<BTreeMap<String, Vec<u8>>, JournalError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_counts_follow_the_runtime_and_clear_when_gone() {
        let n = |s: &str| Name::parse(s).unwrap();
        let a = ReplicaKey::new(&n("w"), &n("web"), 0);
        let b = ReplicaKey::new(&n("w"), &n("web"), 1);
        let mut memos = Memos::default();
        let counts = BTreeMap::from([(a.clone(), 3), (b.clone(), 0)]);
        let changes = memos.restart_changes(&counts);
        assert_eq!(
            changes.changes,
            vec![MemoChange::Restarts {
                replica: a.clone(),
                count: 3
            }]
        );
        memos.apply_all(&changes);
        assert!(memos.restart_changes(&counts).is_empty());
        let changes = memos.restart_changes(&BTreeMap::new());
        assert_eq!(
            changes.changes,
            vec![MemoChange::RestartsCleared { replica: a }]
        );
        memos.apply_all(&changes);
        assert!(memos.restarts.is_empty());
    }
}
