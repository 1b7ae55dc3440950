//! Snapshots in pieces: a [`NodeSnapshot`] split into chunk frames, and put together
//! again in any order, within a memory bound.

use std::collections::BTreeMap;

use super::codec::{FrameError, MAX_FRAME_BYTES};
use super::down::DownFrame;
use crate::reducer::NodeSnapshot;

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
