//! Frames: round trips and refusals, byte buffers as plain vectors, events packed
//! tightly, snapshots reassembled in any order, and garbage that never panics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde::Serialize;

use super::codec::varint_len;
use super::*;
use crate::clock::Timestamp;
use crate::event::EventPayload;
use crate::event::NodeEvent;
use crate::ids::{Name, NodeId};
use crate::reducer::NodeDesired;
use crate::reducer::NodeSnapshot;
use proptest::prelude::*;

fn node() -> NodeId {
    NodeId(uuid::Uuid::from_u128(7))
}

fn labelled(node_seq: u64, value_len: usize) -> NodeEvent {
    NodeEvent {
        node_seq,
        seq: node_seq,
        time: Timestamp(0),
        payload: EventPayload::NodeLabelled {
            node: node(),
            set: [("k".to_owned(), "v".repeat(value_len))].into(),
            removed: vec![],
        },
    }
}

fn big_snapshot(labels: usize) -> NodeSnapshot {
    let mut state = NodeDesired::new(node());
    for i in 0..labels {
        state.labels.insert(format!("key-{i}"), "x".repeat(60));
    }
    state.name = Some(Name::parse("gw").unwrap());
    state.applied = 9;
    NodeSnapshot { node_seq: 9, state }
}

#[test]
fn round_trips_and_refusals() {
    let f = UpFrame::Heartbeat {
        time: Timestamp(5),
        last_node_seq: 3,
    };
    let bytes = encode_up(&f).unwrap();
    assert_eq!(bytes[0], FORMAT_VERSION);
    assert_eq!(decode_up(&bytes), Ok(f));
    assert_eq!(decode_up(&[]), Err(FrameError::Empty));
    assert_eq!(decode_up(&[9, 0]), Err(FrameError::UnknownVersion(9)));
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(matches!(decode_up(&trailing), Err(FrameError::Decode(_))));
    let huge = vec![FORMAT_VERSION; MAX_FRAME_BYTES + 1];
    assert_eq!(
        decode_down(&huge),
        Err(FrameError::TooLarge {
            len: MAX_FRAME_BYTES + 1
        })
    );
    let too_big = DownFrame::SnapshotChunk {
        node_seq: 1,
        index: 0,
        total: 1,
        bytes: vec![0; MAX_FRAME_BYTES],
    };
    assert!(matches!(
        encode_down(&too_big),
        Err(FrameError::TooLarge { .. })
    ));
}

#[test]
fn byte_buf_matches_a_plain_vec() {
    let with = DownFrame::SnapshotChunk {
        node_seq: 300,
        index: 1,
        total: 2,
        bytes: vec![1, 2, 255],
    };
    #[derive(Serialize)]
    enum Plain {
        _Events(Vec<NodeEvent>),
        SnapshotChunk {
            node_seq: u64,
            index: u32,
            total: u32,
            bytes: Vec<u8>,
        },
    }
    let plain = Plain::SnapshotChunk {
        node_seq: 300,
        index: 1,
        total: 2,
        bytes: vec![1, 2, 255],
    };
    assert_eq!(encode(&with).unwrap(), encode(&plain).unwrap());
}

#[test]
fn varint_lengths() {
    assert_eq!(varint_len(0), 1);
    assert_eq!(varint_len(127), 1);
    assert_eq!(varint_len(128), 2);
    assert_eq!(varint_len(16_383), 2);
    assert_eq!(varint_len(16_384), 3);
    for n in [0usize, 1, 127, 128, 300, 70_000] {
        assert_eq!(varint_len(n), postcard::to_stdvec(&n).unwrap().len());
    }
}

#[test]
fn events_pack_tightly_and_under_the_limit() {
    let events: Vec<NodeEvent> = (1..=40).map(|i| labelled(i, 20_000)).collect();
    let frames = events_frames(&events).unwrap();
    assert!(frames.len() > 1);
    let mut back = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let bytes = encode_down(f).unwrap();
        assert!(bytes.len() <= MAX_FRAME_BYTES);
        let DownFrame::Events(evs) = f else {
            panic!("not events")
        };
        // Greedy: the next frame's first event would not have fit.
        if let Some(DownFrame::Events(next)) = frames.get(i + 1) {
            let mut more = evs.clone();
            more.push(next[0].clone());
            assert!(encode_down(&DownFrame::Events(more)).is_err());
        }
        back.extend(evs.iter().cloned());
    }
    assert_eq!(back, events);
    assert_eq!(events_frames(&[]).unwrap(), vec![]);
    let err = events_frames(&[labelled(1, 10), labelled(77, MAX_FRAME_BYTES)]);
    assert!(matches!(
        err,
        Err(FrameError::EventTooLarge { node_seq: 77, .. })
    ));
}

#[test]
fn exactly_full_frame_is_accepted() {
    // Find a value length that makes one event fill a frame to the byte.
    let base = encode_down(&DownFrame::Events(vec![labelled(1, 0)]))
        .unwrap()
        .len();
    let mut n = MAX_FRAME_BYTES - base;
    while encode_down(&DownFrame::Events(vec![labelled(1, n)])).is_err() {
        n -= 1;
    }
    let frames = events_frames(&[labelled(1, n)]).unwrap();
    assert_eq!(encode_down(&frames[0]).unwrap().len(), MAX_FRAME_BYTES);
    assert!(events_frames(&[labelled(1, n + 1)]).is_err());
}

#[test]
fn snapshot_chunks_reassemble_in_any_order() {
    let snap = big_snapshot(10_000);
    let frames = snapshot_frames(&snap).unwrap();
    assert!(frames.len() >= 3, "{} chunks", frames.len());
    let mut chunks = Vec::new();
    for f in &frames {
        let bytes = encode_down(f).unwrap();
        assert!(bytes.len() <= MAX_FRAME_BYTES);
        let DownFrame::SnapshotChunk {
            node_seq,
            index,
            total,
            bytes,
        } = decode_down(&bytes).unwrap()
        else {
            panic!("not a chunk")
        };
        chunks.push((node_seq, index, total, bytes));
    }
    chunks.reverse();
    let dup = chunks[1].clone();
    chunks.insert(0, dup);
    let mut a = SnapshotAssembler::default();
    let mut out = None;
    for (s, i, t, b) in chunks {
        match a.offer(s, i, t, b).unwrap() {
            Assembly::Complete(snap) => out = Some(*snap),
            Assembly::Pending { .. } => assert!(out.is_none()),
            Assembly::Done => panic!("done early"),
        }
    }
    assert_eq!(out, Some(snap));
    assert_eq!(a.offer(9, 0, 1, vec![1]), Ok(Assembly::Done));
}

#[test]
fn assembler_refusals() {
    let snap = big_snapshot(3);
    let frames = snapshot_frames_sized(&snap, 16).unwrap();
    let chunk = |i: usize| match &frames[i] {
        DownFrame::SnapshotChunk {
            node_seq,
            index,
            total,
            bytes,
        } => (*node_seq, *index, *total, bytes.clone()),
        _ => unreachable!(),
    };
    let mut a = SnapshotAssembler::default();
    let (s, i, t, b) = chunk(0);
    assert!(matches!(
        a.offer(s, i, t, b.clone()),
        Ok(Assembly::Pending { received: 1, .. })
    ));
    assert!(matches!(
        a.offer(s, i, t + 1, b.clone()),
        Err(SnapshotError::Inconsistent { .. })
    ));
    assert!(matches!(
        a.offer(s, t, t, b.clone()),
        Err(SnapshotError::BadIndex { .. })
    ));
    assert!(matches!(
        a.offer(s, i, t, vec![0xff]),
        Err(SnapshotError::ChunkMismatch { .. })
    ));
    assert!(matches!(
        a.offer(s, 1, t, vec![]),
        Err(SnapshotError::EmptyChunk { .. })
    ));
    // A newer snapshot supersedes; an older one is then refused.
    assert!(matches!(
        a.offer(s + 1, 0, 2, vec![1]),
        Ok(Assembly::Pending { .. })
    ));
    assert!(matches!(
        a.offer(s, i, t, b),
        Err(SnapshotError::Stale { .. })
    ));
    // A snapshot whose content is not the one announced does not decode.
    assert!(matches!(
        a.offer(s + 1, 1, 2, vec![2]),
        Err(SnapshotError::Decode { .. })
    ));
    // Over the size limit.
    let mut small = SnapshotAssembler::new(20 + CHUNK_OVERHEAD_BYTES);
    let (s, i, t, b) = chunk(0);
    small.offer(s, i, t, b).unwrap();
    let (s, i, t, b) = chunk(1);
    assert!(matches!(
        small.offer(s, i, t, b),
        Err(SnapshotError::TooLarge { .. })
    ));
    assert_eq!(small.progress(), None);
}

proptest! {
    #[test]
    fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_down(&bytes);
        let _ = decode_up(&bytes);
        let mut versioned = vec![FORMAT_VERSION];
        versioned.extend_from_slice(&bytes);
        let _ = decode_down(&versioned);
        let _ = decode_up(&versioned);
    }

    #[test]
    fn mutated_frames_never_panic(pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let frame = DownFrame::Events(vec![labelled(3, 40), labelled(4, 2)]);
        let mut bytes = encode_down(&frame).unwrap();
        let i = pos.index(bytes.len());
        bytes[i] = byte;
        let _ = decode_down(&bytes);
    }
}
