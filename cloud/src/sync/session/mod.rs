//! The sans-IO core of one node's session: catch-up and live delivery.
//!
//! A [`NodeSession`] decides which frames go down to one node, and which pages of the log
//! it needs to decide that; it does no I/O. The loop around it (`link.rs`) subscribes to
//! the engine's broadcast, reads the pages it asks for ([`Output::Read`]), sends the frames
//! it makes ([`Output::Send`]), and hands it what came back.
//!
//! On `Hello { last_node_seq }` (with `head`, the node's highest `node_seq`, read after
//! subscribing):
//! - `last_node_seq == head`: nothing to catch up; live at once.
//! - `last_node_seq < head`: first the events after `last_node_seq` are read and their
//!   encoded size counted. If they all fit in the margin ([`SNAPSHOT_MARGIN`]) no snapshot
//!   can beat them by more than it: they go down at once, and a reconnect that missed a
//!   few events costs only those events. Past the margin, every event of the node is
//!   folded, page by page, into its desired state ([`skerry_shared::reducer::fold`]), counting the size
//!   of the events after `last_node_seq` on the way. If the snapshot is shorter than those
//!   events by more than the margin, the snapshot goes down in chunks; otherwise the
//!   events are read again and go down packed in frames. Only the folded state, one page
//!   and at most a margin's worth of events are in memory at a time.
//! - `last_node_seq > head`: the agent is ahead of this cloud (a restored backup, another
//!   cloud's log): a warning, and a snapshot as of `head`.
//!
//! Then live: each broadcast event that has a `node_seq` for this node and follows what was
//! sent goes down; a duplicate is skipped; a gap, or a lagged broadcast, sends the session
//! back to the log from the last `node_seq` sent. An event too large for a frame of its
//! own cannot go as an event, so the session sends a snapshot instead.
//!
//! # Layout
//! - this file: [`NodeSession`], its phases, `Hello`, rebuild, live events and delivery.
//! - `catchup`: what the session does with each page of the log it asked for (counting,
//!   folding a snapshot, replaying).
//! - `tests`: its tests.

use skerry_shared::event::{Event, NodeEvent};
use skerry_shared::frame::{self, DownFrame, FrameError};
use skerry_shared::ids::NodeId;
use skerry_shared::reducer::NodeDesired;

use crate::log::LogError;

mod catchup;

/// Events per log read.
pub const PAGE_EVENTS: usize = 512;

/// How much shorter than the events a snapshot must be to be sent in their place, in
/// bytes. Below it the saving is a fraction of a frame, and events keep the agent's
/// journal a faithful copy of the log (its equivocation check and `skerry-edge events`
/// work on events), so a short history always goes as events.
pub const SNAPSHOT_MARGIN: usize = 4096;

/// What the loop around a [`NodeSession`] should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send this frame on the node's `down` topic.
    Send(DownFrame),
    /// Read up to `limit` of the node's events after `node_seq` `after` and hand them to
    /// [`NodeSession::page`].
    Read { after: u64, limit: usize },
}

/// Why a session cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("node {node}: the log skipped from node_seq {expected} to {found}")]
    Gap {
        node: NodeId,
        expected: u64,
        found: u64,
    },
    #[error("node {node}: the log ends at node_seq {at}, before node_seq {head}")]
    Short { node: NodeId, at: u64, head: u64 },
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Log(#[from] LogError),
}

/// What a session has sent so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Events sent as events.
    pub events: u64,
    /// Snapshots sent.
    pub snapshots: u64,
    /// Frames made.
    pub frames: u64,
}

#[derive(Debug)]
enum Phase {
    /// No `Hello` yet.
    Idle,
    /// Reading the events after `sent` while they fit in the margin.
    Counting {
        through: u64,
        batch: Vec<NodeEvent>,
        bytes: usize,
    },
    /// Folding the node's events to price (or make) a snapshot.
    Folding(Box<Fold>),
    /// Sending events from the log after `sent`, through `through` (or, with `None`, until
    /// a page comes back short).
    Replaying { through: Option<u64> },
    /// Forwarding broadcast events.
    Live,
}

#[derive(Debug)]
struct Fold {
    /// The agent has every event through this one.
    from: u64,
    /// Fold through this `node_seq`.
    through: u64,
    state: NodeDesired,
    /// Encoded size of the events after `from` folded so far.
    event_bytes: usize,
    /// Send the snapshot whatever the sizes.
    force: bool,
}

/// One node's session, without I/O. See the module documentation.
#[derive(Debug)]
pub struct NodeSession {
    node: NodeId,
    phase: Phase,
    /// The agent has, or has been sent, every event through this `node_seq`.
    sent: u64,
    /// The highest `node_seq` this session knows of.
    head: u64,
    page: usize,
    margin: usize,
    /// `false`: a catch-up always goes as events, page by page (`[sync] snapshots`).
    snapshots: bool,
    stats: SessionStats,
}

impl NodeSession {
    pub fn new(node: NodeId) -> Self {
        Self {
            node,
            phase: Phase::Idle,
            sent: 0,
            head: 0,
            page: PAGE_EVENTS,
            margin: SNAPSHOT_MARGIN,
            snapshots: true,
            stats: SessionStats::default(),
        }
    }

    /// Reads `events` events per page (at least 1).
    pub fn with_page(mut self, events: usize) -> Self {
        self.page = events.max(1);
        self
    }

    /// Sends a snapshot only when it is shorter than the events by more than `bytes`.
    pub fn with_snapshot_margin(mut self, bytes: usize) -> Self {
        self.margin = bytes;
        self
    }

    /// Never sends a snapshot in place of events that can go as events: a catch-up past
    /// the margin is replayed page by page instead of being priced. (An agent ahead of this
    /// cloud, or an event too large for a frame, still gets a snapshot: nothing else works.)
    pub fn without_snapshots(mut self) -> Self {
        self.snapshots = false;
        self
    }

    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The agent has, or has been sent, every event through this `node_seq`; an ack beyond
    /// it is not believed.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Catch-up is over: broadcast events are wanted.
    pub fn is_live(&self) -> bool {
        matches!(self.phase, Phase::Live)
    }

    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    /// The agent said `Hello`; `head` is the node's highest `node_seq`, read after
    /// subscribing to the broadcast. Starts catch-up over, whatever was in progress.
    pub fn hello(&mut self, last_node_seq: u64, head: u64) -> Vec<Output> {
        self.head = head;
        self.sent = last_node_seq.min(head);
        if last_node_seq == head {
            self.phase = Phase::Live;
            return Vec::new();
        }
        let force = last_node_seq > head;
        if force {
            tracing::warn!(
                node = %self.node,
                agent = last_node_seq,
                cloud = head,
                "the agent has applied node_seqs this cloud never gave (a restored backup?); sending a snapshot"
            );
            if head == 0 {
                // Nothing to snapshot: the node has no events here at all.
                self.phase = Phase::Live;
                return Vec::new();
            }
        }
        if force {
            return self.start_fold(self.sent, head, true);
        }
        self.phase = Phase::Counting {
            through: head,
            batch: Vec::new(),
            bytes: 0,
        };
        vec![self.read(self.sent)]
    }

    /// The agent asked for a rebuild (its journal was damaged and started again empty):
    /// a snapshot of everything through `head`, whatever the sizes, then live. A node
    /// without events gets nothing and goes live at once: its first event then starts
    /// the agent's new journal.
    pub fn rebuild(&mut self, head: u64) -> Vec<Output> {
        self.head = head;
        self.sent = 0;
        if head == 0 {
            self.phase = Phase::Live;
            return Vec::new();
        }
        self.start_fold(0, head, true)
    }

    /// A page the session asked for ([`Output::Read`]).
    pub fn page(&mut self, events: &[Event]) -> Result<Vec<Output>, SyncError> {
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Counting {
                through,
                batch,
                bytes,
            } => self.count_page(through, batch, bytes, events),
            Phase::Folding(fold) => self.fold_page(fold, events),
            Phase::Replaying { through } => self.replay_page(through, events),
            // Not waiting on a page (a `Hello` started over): ignore it.
            other => {
                self.phase = other;
                Ok(Vec::new())
            }
        }
    }

    /// Events from the broadcast, in the order they came. Ignored unless live (the loop
    /// does not read the broadcast during catch-up; a lag is reported by [`Self::lagged`]).
    pub fn events<'a>(
        &mut self,
        events: impl IntoIterator<Item = &'a Event>,
    ) -> Result<Vec<Output>, SyncError> {
        if !self.is_live() {
            return Ok(Vec::new());
        }
        let mut batch = Vec::new();
        for e in events {
            let Some(ev) = e.for_node(self.node) else {
                continue;
            };
            self.head = self.head.max(ev.node_seq);
            let next = self.sent.saturating_add(1) + batch.len() as u64;
            if ev.node_seq < next {
                continue;
            }
            if ev.node_seq > next {
                // Something was missed: the log has it.
                let mut out = match self.deliver(batch)? {
                    Delivered::Sent(out) => out,
                    Delivered::Snapshot(out) => return Ok(out),
                };
                self.phase = Phase::Replaying { through: None };
                out.push(self.read(self.sent));
                return Ok(out);
            }
            batch.push(ev);
        }
        Ok(match self.deliver(batch)? {
            Delivered::Sent(out) | Delivered::Snapshot(out) => out,
        })
    }

    /// The broadcast dropped events before this session read them: back to the log.
    pub fn lagged(&mut self) -> Vec<Output> {
        match self.phase {
            Phase::Live => {
                self.phase = Phase::Replaying { through: None };
                vec![self.read(self.sent)]
            }
            // Catch-up in progress ends at a known `node_seq`; gaps after it show up live.
            _ => Vec::new(),
        }
    }

    fn read(&self, after: u64) -> Output {
        Output::Read {
            after,
            limit: self.page,
        }
    }

    /// Sends consecutive events (after `sent`). An event too large for a frame of its own
    /// cannot go as an event: the session then folds a snapshot through it instead.
    fn deliver(&mut self, batch: Vec<NodeEvent>) -> Result<Delivered, SyncError> {
        match self.send_events(batch) {
            Ok(out) => Ok(Delivered::Sent(out)),
            Err(SyncError::Frame(FrameError::EventTooLarge { node_seq, len })) => {
                tracing::warn!(node = %self.node, node_seq, len, "an event is too large for a frame; sending a snapshot instead");
                let through = self.head.max(node_seq);
                Ok(Delivered::Snapshot(
                    self.start_fold(self.sent, through, true),
                ))
            }
            Err(e) => Err(e),
        }
    }

    /// Packs consecutive events (after `sent`) into frames and moves `sent` past them.
    fn send_events(&mut self, batch: Vec<NodeEvent>) -> Result<Vec<Output>, SyncError> {
        let Some(last) = batch.last().map(|e| e.node_seq) else {
            return Ok(Vec::new());
        };
        let frames = frame::events_frames(&batch)?;
        self.stats.events += batch.len() as u64;
        self.stats.frames += frames.len() as u64;
        self.sent = last;
        Ok(frames.into_iter().map(Output::Send).collect())
    }
}

/// What [`NodeSession::deliver`] did.
enum Delivered {
    /// The events are in these frames.
    Sent(Vec<Output>),
    /// An event was too large: a snapshot is being folded; these are its first reads.
    Snapshot(Vec<Output>),
}

/// The encoded size of an event as the node receives it.
fn event_size(ev: &NodeEvent) -> Result<usize, FrameError> {
    postcard::experimental::serialized_size(ev).map_err(|e| FrameError::Encode(e.to_string()))
}

#[cfg(test)]
mod tests;
