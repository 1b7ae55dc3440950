//! The agent's side of the sync protocol: frames built with the shared encoders go through
//! `AgentSync`, batches go to a `MemoryJournal`, and the up frames that come out are
//! decoded and checked. Acks name only committed events, and a crash at any point (an
//! `AgentSync` dropped, then rebuilt from the journal) loses nothing acknowledged.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use skerry_edge::journal::{Journal, MemoryJournal};
use skerry_edge::sync::{AgentSync, Step, SyncConfig, SyncError};
use skerry_shared::clock::Timestamp;
use skerry_shared::event::{EventPayload, NodeEvent};
use skerry_shared::frame::{
    self, DownFrame, FORMAT_VERSION, MAX_FRAME_BYTES, UpFrame, snapshot_frames_sized,
};
use skerry_shared::ids::{Name, NodeId};
use skerry_shared::reducer::{NodeDesired, NodeSnapshot};

const NOW: Timestamp = Timestamp(1_700_000_000_000);

fn node() -> NodeId {
    "00000000-0000-0000-0000-00000000002a".parse().unwrap()
}

fn labelled(node_seq: u64, value: &str) -> NodeEvent {
    NodeEvent {
        node_seq,
        seq: node_seq * 10,
        time: Timestamp(NOW.0 + node_seq as i64),
        payload: EventPayload::NodeLabelled {
            node: node(),
            set: [("k".to_owned(), value.to_owned())].into(),
            removed: vec![],
        },
    }
}

fn ev(node_seq: u64) -> NodeEvent {
    labelled(node_seq, &format!("v{node_seq}"))
}

fn events_frame(seqs: impl IntoIterator<Item = u64>) -> Vec<u8> {
    let events = seqs.into_iter().map(ev).collect();
    frame::encode_down(&DownFrame::Events(events)).unwrap()
}

fn config() -> SyncConfig {
    SyncConfig::new("0.1.0-test")
}

fn start(journal: &dyn Journal) -> AgentSync {
    AgentSync::new(node(), &journal.load().unwrap(), config()).unwrap()
}

fn up(bytes: &[u8]) -> UpFrame {
    frame::decode_up(bytes).unwrap()
}

fn ups(frames: &[Vec<u8>]) -> Vec<UpFrame> {
    frames.iter().map(|b| up(b)).collect()
}

fn hello(last_node_seq: u64) -> UpFrame {
    UpFrame::Hello {
        last_node_seq,
        agent_version: "0.1.0-test".into(),
    }
}

/// What the agent's loop does with a step: commit, then report it, then send. Returns the
/// frames sent, acks last.
fn run(sync: &mut AgentSync, journal: &dyn Journal, step: Step) -> Vec<UpFrame> {
    let mut sent = ups(&step.send);
    if let Some(commit) = step.commit {
        journal.commit(&commit).unwrap();
        sent.push(up(&sync.committed(&commit).unwrap()));
    }
    sent
}

fn deliver(sync: &mut AgentSync, journal: &dyn Journal, bytes: &[u8]) -> Vec<UpFrame> {
    let step = sync.down(bytes, NOW);
    run(sync, journal, step)
}

fn label(journal: &dyn Journal) -> Option<String> {
    journal
        .load()
        .unwrap()
        .desired
        .and_then(|d| d.labels.get("k").cloned())
}

#[test]
fn in_order_events_are_committed_then_acknowledged() {
    let j = MemoryJournal::new();
    let mut sync = start(&j);
    assert_eq!(up(&sync.connected().unwrap()), hello(0));
    assert_eq!(sync.generation(), 0);

    let step = sync.down(&events_frame(1..=3), NOW);
    assert!(
        step.send.is_empty(),
        "nothing is acknowledged before the commit"
    );
    let commit = step.commit.clone().unwrap();
    assert_eq!(commit.events, (1..=3).map(ev).collect::<Vec<_>>());
    assert_eq!(commit.through(), 3);
    assert_eq!(sync.last_committed(), 0);
    assert_eq!(
        sync.desired().applied,
        0,
        "the reconciler sees only committed state"
    );
    assert_eq!(sync.staged(), 3);

    assert_eq!(run(&mut sync, &j, step), vec![UpFrame::Ack { node_seq: 3 }]);
    assert_eq!(sync.last_committed(), 3);
    assert_eq!(sync.desired().labels["k"], "v3");
    assert_eq!(sync.generation(), 1);
    assert_eq!(label(&j).as_deref(), Some("v3"));
    assert_eq!(j.events(0, 10).unwrap().len(), 3);

    assert_eq!(
        deliver(&mut sync, &j, &events_frame([4])),
        vec![UpFrame::Ack { node_seq: 4 }]
    );
    let c = sync.counters();
    assert_eq!((c.applied, c.commits, c.duplicates), (4, 2, 0));
    assert_eq!(sync.generation(), 2);
    assert_eq!(
        up(&sync.heartbeat(NOW).unwrap()),
        UpFrame::Heartbeat {
            time: NOW,
            last_node_seq: 4
        }
    );
}

#[test]
fn duplicates_are_ignored_and_acknowledged_again() {
    let j = MemoryJournal::new();
    let mut sync = start(&j);
    deliver(&mut sync, &j, &events_frame(1..=3));
    let generation = sync.generation();
    // The cloud did not see the ack and sends the same events again.
    let step = sync.down(&events_frame(2..=3), NOW);
    assert!(step.commit.is_none());
    assert_eq!(ups(&step.send), vec![UpFrame::Ack { node_seq: 3 }]);
    assert_eq!(sync.counters().duplicates, 2);
    assert_eq!(sync.counters().equivocations, 0);
    assert_eq!(sync.generation(), generation);
    // A frame that repeats some and brings new ones commits only the new ones.
    let step = sync.down(&events_frame(2..=5), NOW);
    assert_eq!(step.commit.as_ref().unwrap().events, vec![ev(4), ev(5)]);
    assert_eq!(run(&mut sync, &j, step), vec![UpFrame::Ack { node_seq: 5 }]);
    assert_eq!(
        j.events(0, 10).unwrap(),
        (1..=5).map(ev).collect::<Vec<_>>()
    );
}

#[test]
fn out_of_order_events_wait_for_the_gap() {
    let j = MemoryJournal::new();
    let mut sync = start(&j);
    deliver(&mut sync, &j, &events_frame([1]));
    let step = sync.down(&events_frame([4, 3]), NOW);
    assert_eq!(step, Step::default(), "buffered: nothing to commit or send");
    assert_eq!(sync.pending(), 2);
    assert_eq!(sync.counters().buffered, 2);
    assert_eq!(j.load().unwrap().applied(), 1);

    let step = sync.down(&events_frame([2]), NOW);
    let commit = step.commit.clone().unwrap();
    assert_eq!(commit.events, vec![ev(2), ev(3), ev(4)]);
    assert_eq!(run(&mut sync, &j, step), vec![UpFrame::Ack { node_seq: 4 }]);
    assert_eq!(sync.pending(), 0);
    assert_eq!(label(&j).as_deref(), Some("v4"));
    assert_eq!(
        j.events(0, 10).unwrap(),
        (1..=4).map(ev).collect::<Vec<_>>()
    );
}

#[test]
fn a_full_pending_map_asks_for_the_events_again_once() {
    let j = MemoryJournal::new();
    let mut cfg = config();
    cfg.max_pending = 2;
    let mut sync = AgentSync::new(node(), &j.load().unwrap(), cfg).unwrap();
    assert_eq!(sync.down(&events_frame([3, 4]), NOW), Step::default());
    let step = sync.down(&events_frame([5, 6]), NOW);
    assert_eq!(ups(&step.send), vec![hello(0)]);
    assert_eq!(sync.counters().overflows, 2);
    // Not again while the gap is open.
    assert!(sync.down(&events_frame([7]), NOW).send.is_empty());
    // The cloud answers the Hello from the start.
    let sent = deliver(&mut sync, &j, &events_frame(1..=7));
    assert_eq!(sent, vec![UpFrame::Ack { node_seq: 7 }]);
    assert_eq!(
        j.events(0, 10).unwrap(),
        (1..=7).map(ev).collect::<Vec<_>>()
    );
}

#[test]
fn equivocation_is_refused_counted_and_changes_nothing() {
    let j = MemoryJournal::new();
    let mut sync = start(&j);
    deliver(&mut sync, &j, &events_frame(1..=2));
    let before = j.load().unwrap();
    let forged = frame::encode_down(&DownFrame::Events(vec![labelled(2, "forged")])).unwrap();
    let step = sync.down(&forged, NOW);
    assert!(step.commit.is_none());
    assert!(step.send.is_empty());
    assert_eq!(sync.counters().equivocations, 1);
    assert_eq!(sync.desired().labels["k"], "v2");
    assert_eq!(j.load().unwrap(), before);

    // A forged event beyond a gap, then its true twin.
    assert_eq!(sync.down(&events_frame([4]), NOW), Step::default());
    let forged4 = frame::encode_down(&DownFrame::Events(vec![labelled(4, "x")])).unwrap();
    assert_eq!(sync.down(&forged4, NOW), Step::default());
    assert_eq!(sync.counters().equivocations, 2);
    assert_eq!(
        deliver(&mut sync, &j, &events_frame([3])),
        vec![UpFrame::Ack { node_seq: 4 }]
    );
    assert_eq!(label(&j).as_deref(), Some("v4"));

    // After a restart, the journal's digests still tell.
    drop(sync);
    let mut sync = start(&j);
    let step = sync.down(&forged, NOW);
    assert!(step.commit.is_none());
    assert!(step.send.is_empty());
    assert_eq!(sync.counters().equivocations, 1);
    assert_eq!(
        ups(&sync.down(&events_frame([2]), NOW).send),
        vec![UpFrame::Ack { node_seq: 4 }],
        "the true event is a duplicate"
    );
}

#[test]
fn malformed_frames_are_dropped_and_counted() {
    let j = MemoryJournal::new();
    let mut sync = start(&j);
    let mut bad_version = events_frame([1]);
    bad_version[0] = FORMAT_VERSION + 1;
    let mut trailing = events_frame([1]);
    trailing.push(0);
    let mut truncated = events_frame([1]);
    truncated.truncate(truncated.len() / 2);
    let mut oversized = vec![FORMAT_VERSION];
    oversized.resize(MAX_FRAME_BYTES + 1, 0);
    for bytes in [
        vec![],
        vec![FORMAT_VERSION, 0xff, 0xff, 0xff],
        bad_version,
        trailing,
        truncated,
        oversized,
    ] {
        assert_eq!(sync.down(&bytes, NOW), Step::default());
    }
    assert_eq!(sync.counters().malformed, 6);
    assert_eq!(sync.staged(), 0);
    assert_eq!(j.load().unwrap().desired, None);
    // The link goes on.
    assert_eq!(
        deliver(&mut sync, &j, &events_frame([1])),
        vec![UpFrame::Ack { node_seq: 1 }]
    );
}

/// A snapshot of this node as of `node_seq`, with many labels so that it takes chunks.
fn snapshot(node_seq: u64) -> NodeSnapshot {
    let mut state = NodeDesired::new(node());
    for i in 0..50 {
        state
            .labels
            .insert(format!("label-{i}"), format!("value-{i}"));
    }
    state.labels.insert("k".into(), "from-snapshot".into());
    state.name = Some(Name::parse("gw-1").unwrap());
    state.applied = node_seq;
    NodeSnapshot { node_seq, state }
}

fn chunk_frames(snap: &NodeSnapshot) -> Vec<Vec<u8>> {
    snapshot_frames_sized(snap, 64)
        .unwrap()
        .iter()
        .map(|f| frame::encode_down(f).unwrap())
        .collect()
}

#[test]
fn a_snapshot_in_shuffled_chunks_replaces_the_state() {
    let j = MemoryJournal::new();
    let mut sync = start(&j);
    deliver(&mut sync, &j, &events_frame(1..=3));
    // An event beyond the snapshot arrives first and waits.
    assert_eq!(sync.down(&events_frame([12]), NOW), Step::default());

    let snap = snapshot(11);
    let mut chunks = chunk_frames(&snap);
    assert!(chunks.len() > 10, "{} chunks", chunks.len());
    // A fixed shuffle, with a repeated chunk.
    let mut seed = 7u64;
    for i in (1..chunks.len()).rev() {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        chunks.swap(i, (seed >> 33) as usize % (i + 1));
    }
    chunks.insert(3, chunks[0].clone());
    let last = chunks.pop().unwrap();
    for c in &chunks {
        assert_eq!(sync.down(c, NOW), Step::default());
    }
    let step = sync.down(&last, NOW);
    let commit = step.commit.clone().unwrap();
    assert_eq!(commit.snapshot.as_ref(), Some(&snap));
    assert_eq!(
        commit.events,
        vec![ev(12)],
        "the waiting event follows the snapshot"
    );
    assert_eq!(
        run(&mut sync, &j, step),
        vec![UpFrame::Ack { node_seq: 12 }]
    );

    let d = j.load().unwrap().desired.unwrap();
    assert_eq!(d.applied, 12);
    assert_eq!(d.labels["k"], "v12");
    assert_eq!(d.labels["label-7"], "value-7");
    assert_eq!(&**sync.desired(), &d);
    assert_eq!(
        j.event(3).unwrap(),
        None,
        "events the snapshot covers are dropped"
    );
    assert_eq!(j.events(0, 10).unwrap(), vec![ev(12)]);
    assert_eq!(sync.counters().snapshots, 1);

    // The same snapshot again changes nothing.
    let mut again = chunk_frames(&snap).into_iter();
    let mut sent = Vec::new();
    for c in again.by_ref() {
        sent.extend(deliver(&mut sync, &j, &c));
    }
    assert!(sent.iter().all(|f| *f == UpFrame::Ack { node_seq: 12 }));
    assert_eq!(j.load().unwrap().applied(), 12);
    // Events go on after it.
    assert_eq!(
        deliver(&mut sync, &j, &events_frame([13])),
        vec![UpFrame::Ack { node_seq: 13 }]
    );
}

#[test]
fn a_snapshot_of_another_node_or_a_bad_chunk_is_refused() {
    let j = MemoryJournal::new();
    let mut sync = start(&j);
    let other = NodeSnapshot {
        node_seq: 5,
        state: NodeDesired::new(NodeId::random()),
    };
    for c in chunk_frames(&other) {
        assert_eq!(sync.down(&c, NOW), Step::default());
    }
    let bad = frame::encode_down(&DownFrame::SnapshotChunk {
        node_seq: 9,
        index: 3,
        total: 2,
        bytes: vec![1],
    })
    .unwrap();
    assert_eq!(sync.down(&bad, NOW), Step::default());
    assert_eq!(sync.counters().snapshot_errors, 2);
    assert_eq!(j.load().unwrap().desired, None);
}

#[test]
fn acks_name_only_committed_events_and_a_crash_loses_nothing_acknowledged() {
    let j = MemoryJournal::new();
    let mut sync = start(&j);
    up(&sync.connected().unwrap());
    deliver(&mut sync, &j, &events_frame(1..=2));

    // Events arrive; the agent dies before the journal commit.
    let step = sync.down(&events_frame(3..=5), NOW);
    assert!(step.commit.is_some());
    assert!(step.send.is_empty());
    assert_eq!(
        up(&sync.heartbeat(NOW).unwrap()),
        UpFrame::Heartbeat {
            time: NOW,
            last_node_seq: 2
        },
        "the staged events are not claimed"
    );
    assert_eq!(up(&sync.connected().unwrap()), hello(2));
    drop((sync, step));

    // It starts again from its journal and says where that is.
    let mut sync = start(&j);
    assert_eq!(up(&sync.connected().unwrap()), hello(2));
    assert_eq!(sync.desired().labels["k"], "v2");
    assert_eq!(
        deliver(&mut sync, &j, &events_frame(3..=5)),
        vec![UpFrame::Ack { node_seq: 5 }]
    );

    // Committed, then dead before the ack went out.
    let step = sync.down(&events_frame(6..=7), NOW);
    j.commit(step.commit.as_ref().unwrap()).unwrap();
    drop(sync);
    let mut sync = start(&j);
    assert_eq!(up(&sync.connected().unwrap()), hello(7));
    // The cloud, which saw no ack, sends them again: duplicates, acknowledged again.
    let step = sync.down(&events_frame(6..=7), NOW);
    assert!(step.commit.is_none());
    assert_eq!(ups(&step.send), vec![UpFrame::Ack { node_seq: 7 }]);
    assert_eq!(
        j.events(0, 10).unwrap(),
        (1..=7).map(ev).collect::<Vec<_>>()
    );
}

#[test]
fn pipelined_batches_are_committed_in_order() {
    let j = MemoryJournal::new();
    let mut sync = start(&j);
    let first = sync.down(&events_frame(1..=2), NOW).commit.unwrap();
    let second = sync.down(&events_frame(3..=4), NOW).commit.unwrap();
    assert_eq!(sync.uncommitted(), 2);
    assert_eq!(
        sync.committed(&second),
        Err(SyncError::UnexpectedCommit {
            through: 4,
            expected: Some(2)
        })
    );
    // Duplicates while batches are out are not acknowledged early.
    assert!(sync.down(&events_frame([1]), NOW).send.is_empty());
    j.commit(&first).unwrap();
    assert_eq!(
        up(&sync.committed(&first).unwrap()),
        UpFrame::Ack { node_seq: 2 }
    );
    j.commit(&second).unwrap();
    assert_eq!(
        up(&sync.committed(&second).unwrap()),
        UpFrame::Ack { node_seq: 4 }
    );
    assert_eq!(sync.uncommitted(), 0);
    assert_eq!(sync.last_committed(), 4);
}

#[test]
fn batches_merge_into_one_transaction() {
    let j = MemoryJournal::new();
    let mut sync = start(&j);
    deliver(&mut sync, &j, &events_frame([1]));
    let mut group = sync.down(&events_frame(2..=3), NOW).commit.unwrap();
    // One waits beyond a gap, then a snapshot supersedes everything before it.
    assert_eq!(sync.down(&events_frame([9]), NOW), Step::default());
    group.merge(sync.down(&events_frame(4..=5), NOW).commit.unwrap());
    assert_eq!(group.events, (2..=5).map(ev).collect::<Vec<_>>());
    let mut last = Step::default();
    for c in chunk_frames(&snapshot(8)) {
        last = sync.down(&c, NOW);
    }
    group.merge(last.commit.unwrap());
    assert_eq!(sync.uncommitted(), 3);
    assert_eq!(group.snapshot.as_ref().map(|s| s.node_seq), Some(8));
    assert_eq!(group.events, vec![ev(9)]);
    j.commit(&group).unwrap();
    assert_eq!(
        up(&sync.committed(&group).unwrap()),
        UpFrame::Ack { node_seq: 9 }
    );
    assert_eq!(sync.uncommitted(), 0);
    assert_eq!(label(&j).as_deref(), Some("v9"));
    assert_eq!(sync.counters().snapshots, 1);
}

#[test]
fn after_a_failed_commit_the_agent_resumes_from_the_journal() {
    let j = MemoryJournal::new();
    let mut sync = start(&j);
    deliver(&mut sync, &j, &events_frame(1..=2));
    j.set_failing(true);
    let step = sync.down(&events_frame(3..=4), NOW);
    assert!(j.commit(step.commit.as_ref().unwrap()).is_err());
    j.set_failing(false);
    let hello_again = sync.resume(&j.load().unwrap()).unwrap();
    assert_eq!(up(&hello_again), hello(2));
    assert_eq!(sync.staged(), 2);
    assert_eq!(sync.uncommitted(), 0);
    assert_eq!(sync.counters().resumes, 1);
    // The cloud sends them again; they are new to the staged state now.
    assert_eq!(
        deliver(&mut sync, &j, &events_frame(3..=4)),
        vec![UpFrame::Ack { node_seq: 4 }]
    );
    assert_eq!(label(&j).as_deref(), Some("v4"));
}

#[test]
fn a_journal_of_another_node_is_not_used() {
    let j = MemoryJournal::new();
    let mut sync = start(&j);
    deliver(&mut sync, &j, &events_frame([1]));
    let other = NodeId::random();
    assert_eq!(
        AgentSync::new(other, &j.load().unwrap(), config()).unwrap_err(),
        SyncError::WrongNode {
            journal: node(),
            agent: other
        }
    );
}

#[test]
fn heartbeat_acks_give_the_round_trip_and_clock_offset() {
    let j = MemoryJournal::new();
    let mut sync = start(&j);
    let ack = frame::encode_down(&DownFrame::HeartbeatAck {
        time: Timestamp(NOW.0 + 5_000),
    })
    .unwrap();
    // An ack without a heartbeat out is ignored.
    assert_eq!(sync.down(&ack, NOW), Step::default());
    assert_eq!(sync.round_trip_ms(), None);
    sync.heartbeat(NOW).unwrap();
    assert_eq!(sync.down(&ack, Timestamp(NOW.0 + 100)), Step::default());
    assert_eq!(sync.round_trip_ms(), Some(100));
    assert_eq!(sync.clock_offset_ms(), Some(4_950));
}

#[test]
fn generation_moves_only_when_the_desired_state_does() {
    let j = MemoryJournal::new();
    let mut sync = start(&j);
    deliver(&mut sync, &j, &events_frame([1]));
    assert_eq!(sync.generation(), 1);
    // An event about another node moves `applied` only.
    let elsewhere = NodeEvent {
        node_seq: 2,
        seq: 20,
        time: NOW,
        payload: EventPayload::NodeRenamed {
            node: NodeId::random(),
            name: Name::parse("x").unwrap(),
        },
    };
    let bytes = frame::encode_down(&DownFrame::Events(vec![elsewhere])).unwrap();
    assert_eq!(
        deliver(&mut sync, &j, &bytes),
        vec![UpFrame::Ack { node_seq: 2 }]
    );
    assert_eq!(sync.generation(), 1);
    assert_eq!(sync.last_committed(), 2);
}

/// A small deterministic generator (no dev-dependency needed).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n.max(1)
    }
}

#[test]
fn any_delivery_order_with_crashes_ends_in_the_same_state_and_never_acks_ahead() {
    const LAST: u64 = 40;
    let mut expected = NodeDesired::new(node());
    for e in (1..=LAST).map(ev) {
        skerry_shared::reducer::fold(&mut expected, e.node_seq, &e.payload);
    }
    for seed in 0..60 {
        let mut rng = Lcg(seed);
        let j = MemoryJournal::new().with_retention(8);
        let mut sync = start(&j);
        // The cloud's view: the highest node_seq acknowledged (or said in a Hello).
        let mut acked = 0u64;
        let mut rounds = 0;
        while acked < LAST {
            rounds += 1;
            assert!(rounds < 10_000, "seed {seed}: no progress");
            // Some already acknowledged, some new, in a scrambled order.
            let from = acked.saturating_sub(rng.below(4)).max(1);
            let to = (acked + 1 + rng.below(6)).min(LAST);
            let mut seqs: Vec<u64> = (from..=to).collect();
            for i in (1..seqs.len()).rev() {
                if rng.below(3) == 0 {
                    seqs.swap(i, rng.below(i as u64 + 1) as usize);
                }
            }
            if rng.below(4) == 0 && seqs.len() > 1 {
                seqs.remove(rng.below(seqs.len() as u64) as usize);
            }
            let step = sync.down(&events_frame(seqs), NOW);
            let mut sent = ups(&step.send);
            match (step.commit, rng.below(10)) {
                (Some(_), 0) => {
                    // Dead before the commit.
                    sync = start(&j);
                    sent.push(up(&sync.connected().unwrap()));
                }
                (Some(c), 1) => {
                    // Dead after the commit, before the ack.
                    j.commit(&c).unwrap();
                    sync = start(&j);
                    sent.push(up(&sync.connected().unwrap()));
                }
                (Some(c), _) => {
                    j.commit(&c).unwrap();
                    sent.push(up(&sync.committed(&c).unwrap()));
                }
                (None, _) => {}
            }
            let durable = j.load().unwrap().applied();
            for f in sent {
                let said = match f {
                    UpFrame::Ack { node_seq } => {
                        // An ack moves the cloud's view forward only.
                        acked = acked.max(node_seq);
                        node_seq
                    }
                    UpFrame::Hello { last_node_seq, .. } => {
                        // A Hello sets it, back if need be: the cloud sends from there.
                        acked = last_node_seq;
                        last_node_seq
                    }
                    other => panic!("unexpected {other:?}"),
                };
                assert!(
                    said <= durable,
                    "seed {seed}: said {said}, durable {durable}"
                );
            }
        }
        assert_eq!(
            j.load().unwrap().desired.as_ref(),
            Some(&expected),
            "seed {seed}"
        );
        assert_eq!(&**sync.desired(), &expected);
        assert_eq!(sync.counters().equivocations, 0);
        assert_eq!(
            j.events(0, 100).unwrap(),
            (LAST - 7..=LAST).map(ev).collect::<Vec<_>>()
        );
    }
}

#[test]
fn a_rebuilding_agent_says_rebuild_until_its_first_commit() {
    let j = MemoryJournal::new();
    let mut sync = start(&j);
    sync.rebuild();
    assert!(sync.is_rebuilding());
    let rebuild = UpFrame::Rebuild {
        agent_version: "0.1.0-test".into(),
    };
    assert_eq!(up(&sync.connected().unwrap()), rebuild);
    // A reconnect before the snapshot asks again.
    assert_eq!(up(&sync.connected().unwrap()), rebuild);
    let snap = snapshot(7);
    let mut acks = Vec::new();
    for f in chunk_frames(&snap) {
        acks.extend(deliver(&mut sync, &j, &f));
    }
    assert_eq!(acks, vec![UpFrame::Ack { node_seq: 7 }]);
    assert!(!sync.is_rebuilding());
    assert_eq!(sync.desired().applied, 7);
    // From now on it is an ordinary agent.
    assert_eq!(up(&sync.connected().unwrap()), hello(7));
}

#[test]
fn only_an_empty_journal_is_rebuilt() {
    let j = MemoryJournal::new();
    let mut sync = start(&j);
    deliver(&mut sync, &j, &events_frame(1..=2));
    sync.rebuild();
    assert!(!sync.is_rebuilding());
    assert_eq!(up(&sync.connected().unwrap()), hello(2));
}

// --- Events the node cannot take (issue 13) ---

fn weather(replicas: u32) -> skerry_shared::manifest::Manifest {
    use skerry_shared::manifest::{Component, Manifest};
    let name = |s: &str| Name::parse(s).unwrap();
    Manifest {
        app: name("weather"),
        version: "1.0.0".parse().unwrap(),
        description: None,
        platforms: None,
        components: vec![Component {
            replicas: Some(replicas),
            ..Component::image(name("api"), "weather:1")
        }],
    }
}

fn deploy_spec(replicas: u32) -> skerry_shared::event::InstanceSpec {
    use skerry_shared::event::{InstanceMode, InstanceSpec, NodeTarget};
    let manifest = weather(replicas);
    InstanceSpec {
        name: Name::parse("web").unwrap(),
        env: Name::parse("prod").unwrap(),
        app: manifest.app.clone(),
        version: manifest.version.clone(),
        manifest,
        nodes: vec![NodeTarget {
            node: node(),
            weight: 1,
        }],
        unschedulable: vec![],
        selector: Default::default(),
        overrides: vec![],
        mode: InstanceMode::Production,
        targeting: skerry_shared::event::Targeting::Named,
        lifecycle: Default::default(),
    }
}

/// A deploy of `web` to this node with `replicas` copies, built by hand: no cloud checked it.
fn deploy(node_seq: u64, replicas: u32) -> NodeEvent {
    NodeEvent {
        node_seq,
        seq: node_seq * 10,
        time: Timestamp(NOW.0 + node_seq as i64),
        payload: EventPayload::InstanceDeployed {
            instance: Box::new(deploy_spec(replicas)),
        },
    }
}

/// What the reconciler would do for `desired` on an empty node.
fn actions(desired: &NodeDesired) -> Vec<String> {
    skerry_shared::planner::plan(desired, &Default::default())
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn a_deploy_of_four_billion_replicas_is_acknowledged_as_refused_and_never_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.redb");
    let j = skerry_edge::journal::RedbJournal::open(&path, 1 << 20).unwrap();
    let mut sync = start(&j);
    let frame =
        frame::encode_down(&DownFrame::Events(vec![ev(1), deploy(2, u32::MAX), ev(3)])).unwrap();
    // Committed and acknowledged through it, so the cloud does not send it again.
    assert_eq!(
        deliver(&mut sync, &j, &frame),
        vec![UpFrame::Ack { node_seq: 3 }]
    );
    assert!(sync.desired().instances.is_empty(), "never applied");
    assert_eq!(sync.desired().labels["k"], "v3", "its neighbours are");
    assert_eq!(actions(sync.desired()), Vec::<String>::new());
    assert_eq!(sync.counters().refused, 1);
    let refusals: Vec<_> = sync.refusals().cloned().collect();
    assert_eq!(refusals.len(), 1);
    assert_eq!(
        (refusals[0].node_seq, refusals[0].kind),
        (2, "instance.deployed")
    );
    assert!(
        refusals[0].reason.contains("replicas"),
        "{}",
        refusals[0].reason
    );
    assert_eq!(j.event(2).unwrap(), Some(deploy(2, u32::MAX)), "journaled");
    // The cloud sends it again (a lost ack): a duplicate, acknowledged, nothing refused anew.
    let again = frame::encode_down(&DownFrame::Events(vec![deploy(2, u32::MAX)])).unwrap();
    assert_eq!(
        deliver(&mut sync, &j, &again),
        vec![UpFrame::Ack { node_seq: 3 }]
    );
    assert_eq!(sync.counters().refused, 1);
    drop(sync);
    drop(j);

    // The agent starts again on that journal.
    let j = skerry_edge::journal::RedbJournal::open(&path, 1 << 20).unwrap();
    let mut sync = start(&j);
    assert_eq!(up(&sync.connected().unwrap()), hello(3));
    assert!(sync.desired().instances.is_empty());
    assert_eq!(actions(sync.desired()), Vec::<String>::new());
    // A later, valid deploy of the same instance is taken.
    let ok = frame::encode_down(&DownFrame::Events(vec![deploy(4, 2)])).unwrap();
    assert_eq!(
        deliver(&mut sync, &j, &ok),
        vec![UpFrame::Ack { node_seq: 4 }]
    );
    assert_eq!(actions(sync.desired()), vec!["create network web"]);
}

#[test]
fn a_stored_state_or_snapshot_that_holds_one_is_started_on_without_it() {
    use skerry_edge::journal::Commit;
    use skerry_shared::reducer::DesiredInstance;
    let poisoned = |applied: u64| {
        let mut d = NodeDesired::new(node());
        d.instances.insert(
            Name::parse("web").unwrap(),
            DesiredInstance {
                spec: deploy_spec(u32::MAX),
                deployed_at: applied,
            },
        );
        d.applied = applied;
        d
    };
    // A journal written by a build that folded it.
    let j = MemoryJournal::new();
    j.commit(&Commit {
        snapshot: None,
        events: vec![deploy(1, u32::MAX)],
        desired: std::sync::Arc::new(poisoned(1)),
        memos: Default::default(),
    })
    .unwrap();
    let mut sync = start(&j);
    assert!(sync.desired().instances.is_empty());
    assert_eq!(actions(sync.desired()), Vec::<String>::new());
    assert_eq!(sync.last_committed(), 1);
    assert_eq!(sync.counters().refused, 1);
    assert_eq!(up(&sync.connected().unwrap()), hello(1));

    // A snapshot from a cloud that folded it.
    let snapshot = NodeSnapshot {
        node_seq: 5,
        state: poisoned(5),
    };
    let frames = snapshot_frames_sized(&snapshot, 1024).unwrap();
    let mut sent = Vec::new();
    for f in frames {
        sent.extend(deliver(&mut sync, &j, &frame::encode_down(&f).unwrap()));
    }
    assert_eq!(sent, vec![UpFrame::Ack { node_seq: 5 }]);
    assert!(sync.desired().instances.is_empty());
    assert_eq!(sync.counters().refused, 2);
    assert!(
        j.load().unwrap().desired.unwrap().instances.is_empty(),
        "the journal holds the state without it"
    );
}
