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
//!
//! # Parts
//! - `codec`: the version byte, the size limit, [`encode`] and [`decode`], [`FrameError`];
//! - `down`: [`DownFrame`], cloud to edge, and [`events_frames`];
//! - `up`: [`UpFrame`], edge to cloud, and [`NodeLogs`];
//! - `snapshot`: [`snapshot_frames`] and the [`SnapshotAssembler`] that puts the chunks
//!   together again;
//! - `byte_buf`: `Vec<u8>` fields as postcard bytes, read in one piece;
//! - `tests`: round trips, refusals, packing and reassembly, garbage never panics.
//!
//! [`NodeSnapshot`]: crate::reducer::NodeSnapshot

pub(crate) mod byte_buf;
mod codec;
mod down;
mod snapshot;
#[cfg(test)]
mod tests;
mod up;

pub use codec::{FORMAT_VERSION, FrameError, MAX_FRAME_BYTES, decode, encode};
pub use down::{DownFrame, decode_down, encode_down, events_frames};
pub use snapshot::{
    Assembly, CHUNK_HEADROOM, CHUNK_OVERHEAD_BYTES, DEFAULT_MAX_SNAPSHOT_BYTES, MAX_CHUNK_BYTES,
    SnapshotAssembler, SnapshotError, snapshot_frames, snapshot_frames_sized,
};
pub use up::{NodeLogs, UpFrame, decode_up, encode_up};
