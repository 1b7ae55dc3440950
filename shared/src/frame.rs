//! Postcard wire frames between the cloud and the agents.
//!
//! A frame on the wire is one byte of format version ([`FORMAT_VERSION`]) followed by the
//! postcard encoding of its body: a [`DownFrame`] on a node's `down` topic (cloud to edge)
//! or an [`UpFrame`] on its `up` topic (edge to cloud). No frame is larger than
//! [`MAX_FRAME_BYTES`]: encoding a larger one is an error, and a larger one received is
//! refused before it is decoded. A frame must decode completely: trailing bytes are an
//! error. Postcard takes an overlong varint as the number it encodes, so a body may still
//! decode from more than one byte string; encoding gives the shortest, and nothing
//! compares frames by their bytes.
//!
//! Variants of [`DownFrame`] and [`UpFrame`] are append only: postcard encodes a variant
//! by its index, so reordering or removing one changes the wire format. The golden frames
//! under `shared/tests/golden/` pin the format; a change that alters them needs a new
//! [`FORMAT_VERSION`] or a compatible plan.
//!
//! Large payloads travel in pieces:
//! - [`events_frames`] packs events into as few frames as fit;
//! - [`snapshot_frames`] splits a [`NodeSnapshot`] (postcard, under the same format
//!   version as the frames that carry it) into chunks, and a [`SnapshotAssembler`] puts
//!   them together again, in any order.
//!
//! Decoding is safe on hostile input: it never panics, and allocation is bounded by the
//! input. The input is at most 256 KiB; postcard bounds every length prefix by the bytes
//! that remain (its `SeqAccess::size_hint` gives no hint when the prefix exceeds them) and
//! serde caps any pre-allocation at 1 MiB, so a forged length cannot reserve memory beyond
//! what the frame carries. No type in a frame is recursive, so the stack is bounded too.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::event::NodeEvent;
use crate::reducer::NodeSnapshot;

/// The first byte of every frame.
pub const FORMAT_VERSION: u8 = 1;

/// The largest frame, in bytes, version byte included.
pub const MAX_FRAME_BYTES: usize = 256 * 1024;

/// Bytes a snapshot chunk's frame keeps for everything but the chunk's bytes: the version
/// (1), the variant (1), `node_seq` (at most 10), `index` and `total` (at most 5 each) and
/// the bytes' length prefix (3 below 2 MiB) take at most 25.
pub const CHUNK_HEADROOM: usize = 64;

/// The most snapshot bytes one chunk carries.
pub const MAX_CHUNK_BYTES: usize = MAX_FRAME_BYTES - CHUNK_HEADROOM;

/// How large an assembled snapshot may grow by default (see [`SnapshotAssembler::new`]).
pub const DEFAULT_MAX_SNAPSHOT_BYTES: usize = 64 * 1024 * 1024;

/// What a [`SnapshotAssembler`] counts for each chunk it keeps, besides the chunk's bytes:
/// the chunk's `Vec` (24 bytes), its map entry (a share of a B-tree node, about 40 bytes
/// per entry) and the allocator's rounding of a small allocation. Without it, chunks of
/// one byte each would hold some 70 bytes of memory for every byte counted.
pub const CHUNK_OVERHEAD_BYTES: usize = 96;

/// Cloud to edge, on `skerry/v1/nodes/{node_id}/down`. Append new variants at the end only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DownFrame {
    /// Events for this node, in `node_seq` order.
    Events(Vec<NodeEvent>),
    /// One piece of a snapshot of the node's desired state as of `node_seq`: chunk `index`
    /// of `total`, each carrying a slice of the snapshot's postcard encoding.
    SnapshotChunk {
        node_seq: u64,
        index: u32,
        total: u32,
        #[serde(with = "byte_buf")]
        bytes: Vec<u8>,
    },
    /// The answer to a heartbeat, with the cloud's time.
    HeartbeatAck { time: Timestamp },
    /// The outbox entries of `epoch` with these sequence numbers are stored in the cloud
    /// (or were already): the agent may delete them.
    OutboxAck { epoch: u64, seqs: Vec<u64> },
    /// Asks for the agent's own runtime log (`skerry node logs`): the lines since `since`
    /// (all it keeps without), at most `max_bytes` of the newest.
    NodeLogsRequest {
        request: u64,
        since: Option<Timestamp>,
        max_bytes: u32,
    },
}

/// Edge to cloud, on `skerry/v1/nodes/{node_id}/up`. Append new variants at the end only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpFrame {
    /// Sent on every connect: the last `node_seq` the agent applied. The cloud answers with
    /// the events after it, or a snapshot when that is shorter.
    Hello {
        last_node_seq: u64,
        agent_version: String,
    },
    /// Every event through `node_seq` is committed in the agent's journal.
    Ack { node_seq: u64 },
    /// The agent is alive; refreshes the node's last-seen time only.
    Heartbeat { time: Timestamp, last_node_seq: u64 },
    /// Replica states that changed, or all of them after a connect. Agents of this build
    /// report through [`UpFrame::Outbox`]; the cloud still takes this one.
    Status(crate::report::StatusReport),
    /// Outbox entries of the journal `epoch`, each lane in `seq` order.
    Outbox {
        epoch: u64,
        entries: Vec<crate::outbox::OutboxEntry>,
    },
    /// The answer to [`DownFrame::NodeLogsRequest`].
    NodeLogs { request: u64, result: NodeLogs },
    /// Sent on connect instead of `Hello` by an agent whose journal was found damaged and
    /// started again empty (under a new epoch): it has nothing it can trust. The cloud
    /// answers with a snapshot of the node's whole desired state (nothing, for a node
    /// without events), then live events, as after `Hello { last_node_seq: 0 }`.
    Rebuild { agent_version: String },
}

/// The agent's runtime log, or why it could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeLogs {
    /// The text, zstd-compressed (see [`crate::outbox::compress_text`]).
    Text {
        raw_len: u32,
        #[serde(with = "byte_buf")]
        zstd: Vec<u8>,
        /// Older lines were left out to keep to the size asked for or to one frame.
        truncated: bool,
    },
    Error(String),
}

/// Why a frame could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes is over the limit of {MAX_FRAME_BYTES} bytes")]
    TooLarge { len: usize },
    #[error("frame format version {0} is unknown; this build speaks version {FORMAT_VERSION}")]
    UnknownVersion(u8),
    #[error("empty frame")]
    Empty,
    #[error("frame does not decode: {0}")]
    Decode(String),
    #[error("frame does not encode: {0}")]
    Encode(String),
    #[error("event with node_seq {node_seq} takes {len} bytes, more than one frame can carry")]
    EventTooLarge { node_seq: u64, len: usize },
}

/// Encodes a frame body: the version byte, then postcard.
pub fn encode<T: Serialize + ?Sized>(body: &T) -> Result<Vec<u8>, FrameError> {
    let out = postcard::to_extend(body, vec![FORMAT_VERSION])
        .map_err(|e| FrameError::Encode(e.to_string()))?;
    if out.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge { len: out.len() });
    }
    Ok(out)
}

/// Decodes a frame body, refusing an empty, oversized or unknown-version frame before
/// decoding, and a frame with bytes left over after the body.
pub fn decode<T: DeserializeOwned>(frame: &[u8]) -> Result<T, FrameError> {
    let Some((&version, body)) = frame.split_first() else {
        return Err(FrameError::Empty);
    };
    if frame.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge { len: frame.len() });
    }
    if version != FORMAT_VERSION {
        return Err(FrameError::UnknownVersion(version));
    }
    let (value, rest) =
        postcard::take_from_bytes::<T>(body).map_err(|e| FrameError::Decode(e.to_string()))?;
    if !rest.is_empty() {
        return Err(FrameError::Decode(format!(
            "{} bytes left over after the frame body",
            rest.len()
        )));
    }
    Ok(value)
}

pub fn encode_down(frame: &DownFrame) -> Result<Vec<u8>, FrameError> {
    encode(frame)
}

pub fn decode_down(bytes: &[u8]) -> Result<DownFrame, FrameError> {
    decode(bytes)
}

pub fn encode_up(frame: &UpFrame) -> Result<Vec<u8>, FrameError> {
    encode(frame)
}

pub fn decode_up(bytes: &[u8]) -> Result<UpFrame, FrameError> {
    decode(bytes)
}

/// Packs events, in the given order, into as few [`DownFrame::Events`] frames as fit under
/// [`MAX_FRAME_BYTES`] (greedily, so each frame holds a run of consecutive events). An
/// event too large for a frame of its own is an error that names its `node_seq`.
pub fn events_frames(events: &[NodeEvent]) -> Result<Vec<DownFrame>, FrameError> {
    // Version byte and variant index; the vector's length prefix is added per frame.
    const FIXED: usize = 2;
    let mut frames = Vec::new();
    let mut batch: Vec<NodeEvent> = Vec::new();
    let mut batch_bytes = 0usize;
    for ev in events {
        let len = postcard::experimental::serialized_size(ev)
            .map_err(|e| FrameError::Encode(e.to_string()))?;
        if FIXED + varint_len(1) + len > MAX_FRAME_BYTES {
            return Err(FrameError::EventTooLarge {
                node_seq: ev.node_seq,
                len,
            });
        }
        let grown = FIXED + varint_len(batch.len() + 1) + batch_bytes + len;
        if !batch.is_empty() && grown > MAX_FRAME_BYTES {
            frames.push(DownFrame::Events(std::mem::take(&mut batch)));
            batch_bytes = 0;
        }
        batch.push(ev.clone());
        batch_bytes += len;
    }
    if !batch.is_empty() {
        frames.push(DownFrame::Events(batch));
    }
    Ok(frames)
}

/// Splits a snapshot into [`DownFrame::SnapshotChunk`]s of at most [`MAX_CHUNK_BYTES`]
/// bytes each, so that no frame exceeds the limit. The chunks carry `snapshot.node_seq`.
pub fn snapshot_frames(snapshot: &NodeSnapshot) -> Result<Vec<DownFrame>, FrameError> {
    snapshot_frames_sized(snapshot, MAX_CHUNK_BYTES)
}

/// [`snapshot_frames`] with chunks of at most `chunk_bytes` (1 to [`MAX_CHUNK_BYTES`]).
pub fn snapshot_frames_sized(
    snapshot: &NodeSnapshot,
    chunk_bytes: usize,
) -> Result<Vec<DownFrame>, FrameError> {
    let chunk_bytes = chunk_bytes.clamp(1, MAX_CHUNK_BYTES);
    let bytes = postcard::to_stdvec(snapshot).map_err(|e| FrameError::Encode(e.to_string()))?;
    let total = bytes.len().div_ceil(chunk_bytes).max(1);
    let total = u32::try_from(total).map_err(|_| {
        FrameError::Encode(format!(
            "a snapshot of {} bytes has too many chunks",
            bytes.len()
        ))
    })?;
    let mut pieces: Vec<Vec<u8>> = bytes.chunks(chunk_bytes).map(<[u8]>::to_vec).collect();
    if pieces.is_empty() {
        pieces.push(Vec::new());
    }
    Ok(pieces
        .into_iter()
        .zip(0u32..)
        .map(|(bytes, index)| DownFrame::SnapshotChunk {
            node_seq: snapshot.node_seq,
            index,
            total,
            bytes,
        })
        .collect())
}

/// Why a snapshot chunk was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot {node_seq}: chunk {index} of {total} is out of range")]
    BadIndex {
        node_seq: u64,
        index: u32,
        total: u32,
    },
    #[error("snapshot {node_seq}: chunk {index} is empty, but the snapshot has {total} chunks")]
    EmptyChunk {
        node_seq: u64,
        index: u32,
        total: u32,
    },
    #[error("snapshot {node_seq}: a chunk says {total} chunks, an earlier one said {expected}")]
    Inconsistent {
        node_seq: u64,
        total: u32,
        expected: u32,
    },
    #[error("snapshot {node_seq}: chunk {index} arrived again with other content")]
    ChunkMismatch { node_seq: u64, index: u32 },
    #[error("snapshot {node_seq}: older than snapshot {current}, which is being assembled")]
    Stale { node_seq: u64, current: u64 },
    #[error("snapshot {node_seq}: over the limit of {limit} bytes")]
    TooLarge { node_seq: u64, limit: usize },
    #[error("snapshot {node_seq}: does not decode: {reason}")]
    Decode { node_seq: u64, reason: String },
}

/// What [`SnapshotAssembler::offer`] did with a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assembly {
    /// The last missing chunk arrived: the snapshot.
    Complete(Box<NodeSnapshot>),
    /// Kept (or a duplicate of a kept chunk); `received` of `total` chunks are in.
    Pending { received: u32, total: u32 },
    /// A chunk of a snapshot already assembled: ignored.
    Done,
}

/// Puts snapshot chunks together, in any order, one snapshot at a time.
///
/// Duplicate chunks are ignored. A chunk of a newer snapshot (a larger `node_seq`, as after
/// a reconnect) drops the partial one and starts over; a chunk of an older one is refused.
/// Memory is bounded by `max_bytes`: each kept chunk counts its bytes and
/// [`CHUNK_OVERHEAD_BYTES`], so many tiny chunks are refused as early as a few large ones.
#[derive(Debug, Clone)]
pub struct SnapshotAssembler {
    max_bytes: usize,
    partial: Option<Partial>,
    /// The `node_seq` of the last snapshot assembled (0: none).
    completed: u64,
}

#[derive(Debug, Clone)]
struct Partial {
    node_seq: u64,
    total: u32,
    chunks: BTreeMap<u32, Vec<u8>>,
    /// Chunk bytes kept, plus [`CHUNK_OVERHEAD_BYTES`] per chunk: what counts against the limit.
    bytes: usize,
    /// Chunk bytes kept.
    content: usize,
}

impl Default for SnapshotAssembler {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_SNAPSHOT_BYTES)
    }
}

impl SnapshotAssembler {
    /// An assembler that refuses snapshots larger than `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            partial: None,
            completed: 0,
        }
    }

    /// Takes one chunk (the fields of a [`DownFrame::SnapshotChunk`]).
    pub fn offer(
        &mut self,
        node_seq: u64,
        index: u32,
        total: u32,
        bytes: Vec<u8>,
    ) -> Result<Assembly, SnapshotError> {
        if index >= total {
            return Err(SnapshotError::BadIndex {
                node_seq,
                index,
                total,
            });
        }
        if bytes.is_empty() && total > 1 {
            return Err(SnapshotError::EmptyChunk {
                node_seq,
                index,
                total,
            });
        }
        if node_seq <= self.completed {
            return Ok(Assembly::Done);
        }
        let partial = match &mut self.partial {
            Some(p) if p.node_seq > node_seq => {
                return Err(SnapshotError::Stale {
                    node_seq,
                    current: p.node_seq,
                });
            }
            Some(p) if p.node_seq == node_seq => p,
            slot => slot.insert(Partial {
                node_seq,
                total,
                chunks: BTreeMap::new(),
                bytes: 0,
                content: 0,
            }),
        };
        if partial.total != total {
            return Err(SnapshotError::Inconsistent {
                node_seq,
                total,
                expected: partial.total,
            });
        }
        if let Some(kept) = partial.chunks.get(&index) {
            return if *kept == bytes {
                Ok(Assembly::Pending {
                    received: received(partial),
                    total,
                })
            } else {
                Err(SnapshotError::ChunkMismatch { node_seq, index })
            };
        }
        let grown = partial
            .bytes
            .saturating_add(bytes.len())
            .saturating_add(CHUNK_OVERHEAD_BYTES);
        if grown > self.max_bytes {
            self.partial = None;
            return Err(SnapshotError::TooLarge {
                node_seq,
                limit: self.max_bytes,
            });
        }
        partial.bytes = grown;
        partial.content += bytes.len();
        partial.chunks.insert(index, bytes);
        if received(partial) < total {
            return Ok(Assembly::Pending {
                received: received(partial),
                total,
            });
        }
        let Some(done) = self.partial.take() else {
            // `partial` borrowed `self.partial` just above, so it is Some.
            return Ok(Assembly::Pending { received: 0, total });
        };
        let mut all = Vec::with_capacity(done.content);
        for chunk in done.chunks.values() {
            all.extend_from_slice(chunk);
        }
        let decoded = postcard::take_from_bytes::<NodeSnapshot>(&all)
            .map_err(|e| e.to_string())
            .and_then(|(snap, rest)| {
                if !rest.is_empty() {
                    Err(format!("{} bytes left over", rest.len()))
                } else if snap.node_seq != node_seq {
                    Err(format!("it is the snapshot as of {}", snap.node_seq))
                } else {
                    Ok(snap)
                }
            });
        match decoded {
            Ok(snap) => {
                self.completed = node_seq;
                Ok(Assembly::Complete(Box::new(snap)))
            }
            Err(reason) => Err(SnapshotError::Decode { node_seq, reason }),
        }
    }

    /// Forgets any partial snapshot.
    pub fn reset(&mut self) {
        self.partial = None;
    }

    /// The chunks received and expected of the snapshot being assembled, if any.
    pub fn progress(&self) -> Option<(u64, u32, u32)> {
        self.partial
            .as_ref()
            .map(|p| (p.node_seq, received(p), p.total))
    }
}

fn received(p: &Partial) -> u32 {
    // At most `total` distinct indices below `total: u32` are kept, so this fits.
    u32::try_from(p.chunks.len()).unwrap_or(u32::MAX)
}

/// The length of postcard's varint encoding of `n`.
fn varint_len(n: usize) -> usize {
    let bits = usize::BITS - n.leading_zeros();
    (bits as usize).div_ceil(7).max(1)
}

/// `Vec<u8>` as postcard bytes (a length prefix and the raw bytes: the same encoding as a
/// sequence of `u8`, but read in one piece rather than byte by byte).
pub(crate) mod byte_buf {
    use std::fmt;

    use serde::de::{SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(BytesVisitor)
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("bytes")
        }

        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::event::EventPayload;
    use crate::ids::{Name, NodeId};
    use crate::reducer::NodeDesired;
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
}
