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
//!   folded, page by page, into its desired state ([`reducer::fold`]), counting the size
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

use skerry_shared::event::{Event, NodeEvent};
use skerry_shared::frame::{self, DownFrame, FrameError};
use skerry_shared::ids::NodeId;
use skerry_shared::reducer::{self, NodeDesired, NodeSnapshot};

use crate::log::LogError;

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

    fn start_fold(&mut self, from: u64, through: u64, force: bool) -> Vec<Output> {
        self.phase = Phase::Folding(Box::new(Fold {
            from,
            through,
            state: NodeDesired::new(self.node),
            event_bytes: 0,
            force,
        }));
        vec![self.read(0)]
    }

    fn count_page(
        &mut self,
        through: u64,
        mut batch: Vec<NodeEvent>,
        mut bytes: usize,
        events: &[Event],
    ) -> Result<Vec<Output>, SyncError> {
        let mut last = batch.last().map_or(self.sent, |e| e.node_seq);
        for e in events {
            let Some(node_seq) = e.node_seq_for(self.node) else {
                continue;
            };
            if node_seq > through {
                break;
            }
            if node_seq <= last {
                continue;
            }
            if node_seq != last + 1 {
                return Err(SyncError::Gap {
                    node: self.node,
                    expected: last + 1,
                    found: node_seq,
                });
            }
            let Some(ev) = e.for_node(self.node) else {
                continue;
            };
            bytes = bytes.saturating_add(event_size(&ev)?);
            if bytes > self.margin {
                if !self.snapshots {
                    tracing::debug!(node = %self.node, from = self.sent, through, "catch-up by events (snapshots off)");
                    self.phase = Phase::Replaying {
                        through: Some(through),
                    };
                    return Ok(vec![self.read(self.sent)]);
                }
                // A snapshot might be shorter: price it.
                return Ok(self.start_fold(self.sent, through, false));
            }
            last = node_seq;
            batch.push(ev);
        }
        if last < through {
            if events.len() < self.page {
                return Err(SyncError::Short {
                    node: self.node,
                    at: last,
                    head: through,
                });
            }
            self.phase = Phase::Counting {
                through,
                batch,
                bytes,
            };
            return Ok(vec![self.read(last)]);
        }
        tracing::debug!(node = %self.node, from = self.sent, through, bytes, "catch-up by events");
        match self.deliver(batch)? {
            Delivered::Sent(out) => {
                self.phase = Phase::Live;
                Ok(out)
            }
            Delivered::Snapshot(out) => Ok(out),
        }
    }

    fn fold_page(
        &mut self,
        mut fold: Box<Fold>,
        events: &[Event],
    ) -> Result<Vec<Output>, SyncError> {
        for e in events {
            // The node's view of the event: a snapshot holds what the events would have.
            let Some(ev) = e.for_node(self.node) else {
                continue;
            };
            let node_seq = ev.node_seq;
            if node_seq > fold.through {
                break;
            }
            let expected = fold.state.applied.saturating_add(1);
            if node_seq != expected {
                return Err(SyncError::Gap {
                    node: self.node,
                    expected,
                    found: node_seq,
                });
            }
            if node_seq > fold.from && !fold.force {
                fold.event_bytes = fold.event_bytes.saturating_add(event_size(&ev)?);
            }
            reducer::fold(&mut fold.state, node_seq, &ev.payload);
        }
        if fold.state.applied < fold.through {
            if events.len() < self.page {
                return Err(SyncError::Short {
                    node: self.node,
                    at: fold.state.applied,
                    head: fold.through,
                });
            }
            let after = fold.state.applied;
            self.phase = Phase::Folding(fold);
            return Ok(vec![self.read(after)]);
        }
        let Fold {
            through,
            state,
            event_bytes,
            force,
            ..
        } = *fold;
        let snapshot = NodeSnapshot {
            node_seq: through,
            state,
        };
        let snapshot_bytes = postcard::experimental::serialized_size(&snapshot)
            .map_err(|e| FrameError::Encode(e.to_string()))?;
        if force || snapshot_bytes.saturating_add(self.margin) < event_bytes {
            tracing::debug!(node = %self.node, node_seq = through, snapshot_bytes, event_bytes, "catch-up by snapshot");
            let frames = frame::snapshot_frames(&snapshot)?;
            self.stats.snapshots += 1;
            self.stats.frames += frames.len() as u64;
            self.sent = through;
            self.phase = Phase::Live;
            return Ok(frames.into_iter().map(Output::Send).collect());
        }
        tracing::debug!(node = %self.node, from = self.sent, through, snapshot_bytes, event_bytes, "catch-up by events");
        self.phase = Phase::Replaying {
            through: Some(through),
        };
        Ok(vec![self.read(self.sent)])
    }

    fn replay_page(
        &mut self,
        through: Option<u64>,
        events: &[Event],
    ) -> Result<Vec<Output>, SyncError> {
        let mut batch = Vec::with_capacity(events.len());
        let mut last = self.sent;
        for e in events {
            let Some(ev) = e.for_node(self.node) else {
                continue;
            };
            if through.is_some_and(|t| ev.node_seq > t) {
                break;
            }
            if ev.node_seq <= last {
                continue;
            }
            if ev.node_seq != last + 1 {
                return Err(SyncError::Gap {
                    node: self.node,
                    expected: last + 1,
                    found: ev.node_seq,
                });
            }
            last = ev.node_seq;
            batch.push(ev);
        }
        self.head = self.head.max(last);
        let short = events.len() < self.page;
        let mut out = match self.deliver(batch)? {
            Delivered::Sent(out) => out,
            Delivered::Snapshot(out) => return Ok(out),
        };

        let done = match through {
            Some(t) => self.sent >= t,
            None => short,
        };
        if done {
            self.phase = Phase::Live;
        } else if short {
            return Err(SyncError::Short {
                node: self.node,
                at: self.sent,
                head: through.unwrap_or(self.sent),
            });
        } else {
            self.phase = Phase::Replaying { through };
            out.push(self.read(self.sent));
        }
        Ok(out)
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
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use skerry_shared::clock::Timestamp;
    use skerry_shared::event::{Actor, EventPayload, NodeSeq};
    use skerry_shared::frame::{Assembly, SnapshotAssembler};
    use skerry_shared::hash::Digest;

    use super::*;

    fn node() -> NodeId {
        NodeId(uuid::Uuid::from_u128(42))
    }

    fn other() -> NodeId {
        NodeId(uuid::Uuid::from_u128(43))
    }

    /// A log of label changes: event `i` (global seq `i`) sets `key` to `value(i)` on
    /// `node()`, as its node_seq `i`.
    struct Log {
        events: Vec<Event>,
    }

    impl Log {
        fn new() -> Self {
            Self { events: Vec::new() }
        }

        fn push(&mut self, payload: EventPayload, nodes: &[NodeId]) -> &Event {
            let seq = self.events.len() as u64 + 1;
            let node_seqs = nodes
                .iter()
                .map(|&n| NodeSeq {
                    node: n,
                    node_seq: self
                        .events
                        .iter()
                        .filter(|e| e.node_seq_for(n).is_some())
                        .count() as u64
                        + 1,
                })
                .collect();
            let prev = self.events.last().map_or(Digest::ZERO, |e| e.hash);
            let e = Event::seal(
                seq,
                Timestamp(seq as i64),
                Actor::Cloud,
                payload,
                node_seqs,
                prev,
            )
            .unwrap();
            self.events.push(e);
            self.events.last().unwrap()
        }

        fn label(&mut self, key: &str, value: String) -> &Event {
            self.push(
                EventPayload::NodeLabelled {
                    node: node(),
                    set: [(key.to_owned(), value)].into(),
                    removed: vec![],
                },
                &[node()],
            )
        }

        fn read_node(&self, after: u64, limit: usize) -> Vec<Event> {
            self.events
                .iter()
                .filter(|e| e.node_seq_for(node()).is_some_and(|s| s > after))
                .take(limit)
                .cloned()
                .collect()
        }

        fn head(&self) -> u64 {
            self.events
                .iter()
                .filter_map(|e| e.node_seq_for(node()))
                .max()
                .unwrap_or(0)
        }

        fn desired(&self) -> NodeDesired {
            let mut s = NodeDesired::new(node());
            for e in &self.events {
                if let Some(ev) = e.for_node(node()) {
                    reducer::fold(&mut s, ev.node_seq, &ev.payload);
                }
            }
            s
        }
    }

    /// Runs outputs against `log` until none ask for a read; returns the frames sent.
    fn drive(s: &mut NodeSession, log: &Log, mut out: Vec<Output>) -> Vec<DownFrame> {
        let mut frames = Vec::new();
        for _ in 0..10_000 {
            let mut next = Vec::new();
            for o in out {
                match o {
                    Output::Send(f) => frames.push(f),
                    Output::Read { after, limit } => {
                        next.extend(s.page(&log.read_node(after, limit)).unwrap());
                    }
                }
            }
            if next.is_empty() {
                return frames;
            }
            out = next;
        }
        panic!("the session never finished");
    }

    fn event_seqs(frames: &[DownFrame]) -> Vec<u64> {
        frames
            .iter()
            .flat_map(|f| match f {
                DownFrame::Events(evs) => evs.iter().map(|e| e.node_seq).collect::<Vec<_>>(),
                other => panic!("not events: {other:?}"),
            })
            .collect()
    }

    fn assemble(frames: &[DownFrame]) -> NodeSnapshot {
        let mut a = SnapshotAssembler::default();
        for f in frames {
            let DownFrame::SnapshotChunk {
                node_seq,
                index,
                total,
                bytes,
            } = f.clone()
            else {
                panic!("not a chunk: {f:?}");
            };
            if let Assembly::Complete(s) = a.offer(node_seq, index, total, bytes).unwrap() {
                return *s;
            }
        }
        panic!("incomplete snapshot");
    }

    #[test]
    fn the_size_of_an_event_is_its_node_event_size() {
        let mut log = Log::new();
        let e = log.label("k", "v".repeat(300)).clone();
        let ne = e.for_node(node()).unwrap();
        assert_eq!(
            event_size(&ne).unwrap(),
            postcard::to_stdvec(&ne).unwrap().len()
        );
    }

    /// A deploy to `node()`, `other()` and 500 more nodes.
    fn deploy_to_many(log: &mut Log) {
        use skerry_shared::event::{InstanceMode, InstanceSpec, NodeTarget};
        let manifest = skerry_shared::manifest::parse_manifest(
            "app: web\nversion: 1.0.0\ncomponents:\n  - name: api\n    image: api:1\n",
        )
        .unwrap();
        let mut nodes = vec![node(), other()];
        nodes.extend((0..500).map(|i| NodeId(uuid::Uuid::from_u128(1000 + i))));
        let name = skerry_shared::ids::Name::parse("web").unwrap();
        let spec = InstanceSpec {
            name: name.clone(),
            env: skerry_shared::ids::Name::parse("prod").unwrap(),
            app: name,
            version: manifest.version.clone(),
            manifest,
            nodes: nodes
                .iter()
                .map(|&node| NodeTarget { node, weight: 1 })
                .collect(),
            unschedulable: vec![],
            selector: Default::default(),
            overrides: vec![],
            mode: InstanceMode::Production,
        };
        log.push(
            EventPayload::InstanceDeployed {
                instance: Box::new(spec),
            },
            &nodes,
        );
    }

    fn own_targets(payload: &EventPayload) -> Vec<NodeId> {
        match payload {
            EventPayload::InstanceDeployed { instance } => {
                instance.nodes.iter().map(|t| t.node).collect()
            }
            other => panic!("not a deploy: {other:?}"),
        }
    }

    #[test]
    fn a_node_is_sent_only_its_own_target_of_a_deploy() {
        let mut log = Log::new();
        log.label("k", "v".into());
        deploy_to_many(&mut log);
        // Catch-up by events.
        let mut s = NodeSession::new(node());
        let out = s.hello(1, log.head());
        let frames = drive(&mut s, &log, out);
        let [DownFrame::Events(evs)] = frames.as_slice() else {
            panic!("one frame of events: {frames:?}");
        };
        assert_eq!(own_targets(&evs[0].payload), vec![node()]);
        // Small: the other 501 targets are not in it.
        assert!(postcard::to_stdvec(&evs[0]).unwrap().len() < 200);
        // Live.
        let mut log2 = Log::new();
        log2.label("k", "v".into());
        let mut s = NodeSession::new(other());
        assert!(s.hello(0, 0).is_empty());
        deploy_to_many(&mut log2);
        let e = log2.events.last().unwrap();
        let out = s.events([e]).unwrap();
        let [Output::Send(DownFrame::Events(evs))] = out.as_slice() else {
            panic!("one frame of events: {out:?}");
        };
        assert_eq!(own_targets(&evs[0].payload), vec![other()]);
        // By snapshot: the state holds the node's own view too.
        let mut s = NodeSession::new(node());
        let out = s.rebuild(log.head());
        let snap = assemble(&drive(&mut s, &log, out));
        assert_eq!(snap.state, log.desired());
        let deployed: Vec<_> = snap.state.instances.values().collect();
        assert_eq!(deployed.len(), 1);
        assert_eq!(
            deployed[0]
                .spec
                .nodes
                .iter()
                .map(|t| t.node)
                .collect::<Vec<_>>(),
            vec![node()]
        );
    }

    #[test]
    fn up_to_date_goes_live_at_once() {
        let mut log = Log::new();
        log.label("k", "v".into());
        let mut s = NodeSession::new(node());
        assert!(s.hello(1, 1).is_empty());
        assert!(s.is_live());
        assert_eq!(s.sent(), 1);
    }

    #[test]
    fn a_short_catch_up_goes_as_events_in_order() {
        let mut log = Log::new();
        for i in 0..5 {
            log.label(&format!("k{i}"), "x".repeat(100));
        }
        let mut s = NodeSession::new(node()).with_page(2);
        let out = s.hello(2, log.head());
        // Counting starts at the agent's position: no fold of the history.
        assert_eq!(out, vec![Output::Read { after: 2, limit: 2 }]);
        let frames = drive(&mut s, &log, out);
        assert_eq!(event_seqs(&frames), vec![3, 4, 5]);
        assert!(s.is_live());
        assert_eq!(s.sent(), 5);
        assert_eq!(s.stats().snapshots, 0);
    }

    #[test]
    fn without_a_margin_the_shorter_wins() {
        // Every event overwrites one label: the state stays small, the history grows.
        let mut log = Log::new();
        for i in 0..3 {
            log.label(&format!("base{i}"), "b".repeat(200));
        }
        for i in 0..200 {
            log.label("rev", format!("{i:040}"));
        }
        let mut s = NodeSession::new(node())
            .with_page(7)
            .with_snapshot_margin(0);
        let out = s.hello(0, log.head());
        let frames = drive(&mut s, &log, out);
        let snap = assemble(&frames);
        assert_eq!(snap.node_seq, 203);
        assert_eq!(snap.state, log.desired());
        assert_eq!(s.sent(), 203);
        assert_eq!(s.stats().snapshots, 1);
        // One event after a long history: the event is shorter than the state.
        let mut s = NodeSession::new(node()).with_snapshot_margin(0);
        let out = s.hello(202, log.head());
        assert_eq!(event_seqs(&drive(&mut s, &log, out)), vec![203]);
    }

    #[test]
    fn without_snapshots_a_long_catch_up_is_replayed_as_events() {
        let mut log = Log::new();
        for i in 0..500 {
            log.label("rev", format!("{i:040}"));
        }
        let mut s = NodeSession::new(node()).with_page(64).without_snapshots();
        let out = s.hello(0, log.head());
        let frames = drive(&mut s, &log, out);
        assert_eq!(event_seqs(&frames), (1..=500).collect::<Vec<_>>());
        assert_eq!(s.stats().snapshots, 0);
        assert!(s.is_live());
        // The same session with snapshots on sends one.
        let mut s = NodeSession::new(node()).with_page(64);
        let out = s.hello(0, log.head());
        assert_eq!(assemble(&drive(&mut s, &log, out)).state, log.desired());
    }

    #[test]
    fn the_margin_keeps_short_histories_as_events() {
        let mut log = Log::new();
        for i in 0..3 {
            log.label("rev", format!("{i:040}"));
        }
        let mut s = NodeSession::new(node());
        let out = s.hello(0, log.head());
        assert_eq!(event_seqs(&drive(&mut s, &log, out)), vec![1, 2, 3]);
        // Long enough, the same history goes as a snapshot.
        for i in 3..500 {
            log.label("rev", format!("{i:040}"));
        }
        let mut s = NodeSession::new(node());
        let out = s.hello(0, log.head());
        let frames = drive(&mut s, &log, out);
        assert_eq!(assemble(&frames).state, log.desired());
    }

    #[test]
    fn a_few_missed_events_do_not_fold_the_history() {
        let mut log = Log::new();
        for i in 0..1000 {
            log.label("rev", format!("{i:040}"));
        }
        let mut s = NodeSession::new(node());
        let out = s.hello(997, log.head());
        assert_eq!(
            out,
            vec![Output::Read {
                after: 997,
                limit: PAGE_EVENTS
            }]
        );
        let out = s.page(&log.read_node(997, PAGE_EVENTS)).unwrap();
        assert_eq!(event_seqs(&drive(&mut s, &log, out)), vec![998, 999, 1000]);
        assert!(s.is_live());
        // Past the margin, the history is folded to price a snapshot.
        let mut s = NodeSession::new(node());
        s.hello(900, log.head());
        let out = s.page(&log.read_node(900, PAGE_EVENTS)).unwrap();
        assert_eq!(
            out,
            vec![Output::Read {
                after: 0,
                limit: PAGE_EVENTS
            }]
        );
        let frames = drive(&mut s, &log, out);
        assert_eq!(assemble(&frames).state, log.desired());
    }

    #[test]
    fn a_rebuild_gets_a_snapshot_of_everything_however_short_the_history() {
        let mut log = Log::new();
        log.label("a", "1".into());
        log.label("b", "2".into());
        // Two short events would go as events after a Hello at 0; a rebuild forces the
        // snapshot, so the agent's first commit holds the whole state.
        let mut s = NodeSession::new(node());
        let out = s.rebuild(log.head());
        let frames = drive(&mut s, &log, out);
        let snap = assemble(&frames);
        assert_eq!(snap.node_seq, 2);
        assert_eq!(snap.state, log.desired());
        assert_eq!(s.sent(), 2);
        assert!(s.is_live());
    }

    #[test]
    fn a_rebuild_of_a_node_without_events_goes_live_at_once() {
        let mut s = NodeSession::new(node());
        assert!(s.rebuild(0).is_empty());
        assert!(s.is_live());
        assert_eq!(s.sent(), 0);
    }

    #[test]
    fn an_agent_ahead_of_the_cloud_gets_a_snapshot() {
        let mut log = Log::new();
        log.label("a", "1".into());
        log.label("b", "2".into());
        let mut s = NodeSession::new(node());
        let out = s.hello(9, log.head());
        let frames = drive(&mut s, &log, out);
        let snap = assemble(&frames);
        assert_eq!(snap.node_seq, 2);
        assert_eq!(snap.state, log.desired());
        assert_eq!(s.sent(), 2);
    }

    #[test]
    fn live_forwards_in_order_skips_duplicates_and_reads_the_log_on_a_gap() {
        let mut log = Log::new();
        log.label("a", "1".into());
        let mut s = NodeSession::new(node());
        s.hello(1, 1);
        let e2 = log.label("a", "2".into()).clone();
        let elsewhere = log
            .push(
                EventPayload::NodeRenamed {
                    node: other(),
                    name: skerry_shared::ids::Name::parse("x").unwrap(),
                },
                &[other()],
            )
            .clone();
        let e3 = log.label("a", "3".into()).clone();
        let out = s.events([&e2, &elsewhere, &e2, &e3]).unwrap();
        assert_eq!(
            event_seqs(
                &out.into_iter()
                    .map(|o| match o {
                        Output::Send(f) => f,
                        r => panic!("{r:?}"),
                    })
                    .collect::<Vec<_>>()
            ),
            vec![2, 3]
        );
        assert!(s.events([&e3]).unwrap().is_empty());
        // node_seq 4 is missed; 5 arrives.
        log.label("a", "4".into());
        let e5 = log.label("a", "5".into()).clone();
        let out = s.events([&e5]).unwrap();
        assert_eq!(
            out,
            vec![Output::Read {
                after: 3,
                limit: PAGE_EVENTS
            }]
        );
        assert!(!s.is_live());
        let frames = drive(&mut s, &log, out);
        assert_eq!(event_seqs(&frames), vec![4, 5]);
        assert!(s.is_live());
        assert!(s.events([&e5]).unwrap().is_empty());
    }

    #[test]
    fn a_lagged_broadcast_goes_back_to_the_log() {
        let mut log = Log::new();
        log.label("a", "1".into());
        let mut s = NodeSession::new(node()).with_page(2);
        s.hello(1, 1);
        for i in 2..=6 {
            log.label("a", i.to_string());
        }
        let out = s.lagged();
        assert_eq!(out, vec![Output::Read { after: 1, limit: 2 }]);
        let frames = drive(&mut s, &log, out);
        assert_eq!(event_seqs(&frames), vec![2, 3, 4, 5, 6]);
        assert!(s.is_live());
    }

    #[test]
    fn a_new_hello_starts_over_and_stale_pages_are_ignored() {
        let mut log = Log::new();
        for i in 0..4 {
            log.label("a", i.to_string());
        }
        let mut s = NodeSession::new(node());
        let first = s.hello(0, 4);
        assert_eq!(
            first,
            vec![Output::Read {
                after: 0,
                limit: PAGE_EVENTS
            }]
        );
        assert!(s.hello(4, 4).is_empty());
        assert!(s.page(&log.read_node(0, PAGE_EVENTS)).unwrap().is_empty());
        assert!(s.is_live());
    }

    #[test]
    fn an_event_too_large_for_a_frame_goes_as_a_snapshot() {
        let mut log = Log::new();
        log.label("a", "1".into());
        log.label("big", "x".repeat(frame::MAX_FRAME_BYTES));
        let mut s = NodeSession::new(node()).with_snapshot_margin(usize::MAX);
        let out = s.hello(1, 2);
        let frames = drive(&mut s, &log, out);
        let snap = assemble(&frames);
        assert_eq!(snap.node_seq, 2);
        assert_eq!(snap.state, log.desired());
        assert!(s.is_live());
    }

    #[test]
    fn a_log_with_a_hole_is_an_error() {
        let mut log = Log::new();
        for i in 0..3 {
            log.label("a", i.to_string());
        }
        let mut s = NodeSession::new(node());
        s.hello(0, 3);
        let mut page = log.read_node(0, 10);
        page.remove(1);
        assert!(matches!(
            s.page(&page),
            Err(SyncError::Gap {
                expected: 2,
                found: 3,
                ..
            })
        ));
        let mut s = NodeSession::new(node());
        s.hello(0, 5);
        assert!(matches!(
            s.page(&log.read_node(0, PAGE_EVENTS)),
            Err(SyncError::Short { at: 3, head: 5, .. })
        ));
    }
}
