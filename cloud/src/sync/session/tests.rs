//! The tests of [`NodeSession`]: catch-up by events or snapshot, live delivery, rebuilds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use skerry_shared::clock::Timestamp;
use skerry_shared::event::{Actor, EventPayload, NodeSeq};
use skerry_shared::frame::{Assembly, SnapshotAssembler};
use skerry_shared::hash::Digest;
use skerry_shared::reducer::{self, NodeSnapshot};

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
        targeting: skerry_shared::event::Targeting::Named,
        lifecycle: Default::default(),
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
