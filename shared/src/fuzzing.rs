//! Fuzz targets: one function for each decoder of bytes that come from outside.
//!
//! Compiled with the `fuzzing` feature only. The stable test `shared/tests/fuzz.rs` (in
//! the normal suite) and the cargo-fuzz targets under `fuzz/` call these same functions.
//! Each takes arbitrary bytes, decodes them as its decoder's input, and when they decode,
//! checks what decoded: it encodes it again and decodes that, which must give the same
//! value, and feeds it to the code that takes it next (events to a reducer, chunks to a
//! snapshot assembler, batches to their decompression). A decoder that panics, or an
//! invariant that does not hold, panics here: that is the finding.
//!
//! Every target returns a [`Fuzzed`]: whether the input was accepted and how many bytes
//! it was decompressed to, which the allocation bound counts as input.
//!
//! Postcard takes an overlong varint (a `u64` of 1 written in 10 bytes) as the number it
//! encodes, so a value may decode from more than one byte string. Re-encoding is therefore
//! checked to give the same value in at most as many bytes, not the same bytes.

use serde::{Deserialize, Serialize};

use crate::frame::{self, DownFrame, NodeLogs, SnapshotAssembler, UpFrame};
use crate::ids::NodeId;
use crate::manifest;
use crate::outbox::{self, LogBatch, LogChunk, MAX_BATCH_RAW_BYTES, OutboxBody};
use crate::reducer::{NodeReducer, NodeSnapshot};

/// What one fuzz input did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fuzzed {
    /// The input decoded (and validated, for a manifest).
    pub accepted: bool,
    /// The most bytes one decompression in this input produced (0: none).
    pub inflated: usize,
}

impl Fuzzed {
    fn inflate(&mut self, bytes: usize) {
        self.inflated = self.inflated.max(bytes);
    }
}

/// The snapshot size limit the fuzz targets' assemblers use (the agent's default is
/// [`frame::DEFAULT_MAX_SNAPSHOT_BYTES`]).
pub const FUZZ_MAX_SNAPSHOT_BYTES: usize = 1 << 20;

/// A frame on a node's `down` topic, as the agent takes it.
pub fn down_frame(data: &[u8]) -> Fuzzed {
    let mut out = Fuzzed::default();
    let Ok(decoded) = frame::decode_down(data) else {
        return out;
    };
    out.accepted = true;
    let again = frame::encode_down(&decoded).unwrap_or_else(|e| {
        panic!("a down frame that decoded does not encode: {e}");
    });
    assert!(
        again.len() <= data.len(),
        "re-encoding a down frame grew it from {} to {} bytes",
        data.len(),
        again.len()
    );
    assert_eq!(
        frame::decode_down(&again).as_ref(),
        Ok(&decoded),
        "a re-encoded down frame decodes to another value"
    );
    match decoded {
        DownFrame::Events(events) => {
            let mut reducer = NodeReducer::new(NodeId(uuid::Uuid::nil()));
            for ev in events {
                let _ = reducer.offer(ev);
            }
            let snapshot = reducer.snapshot();
            check_snapshot_round_trip(&snapshot);
        }
        DownFrame::SnapshotChunk {
            node_seq,
            index,
            total,
            bytes,
        } => {
            let mut assembler = SnapshotAssembler::new(FUZZ_MAX_SNAPSHOT_BYTES);
            if let Ok(frame::Assembly::Complete(snapshot)) =
                assembler.offer(node_seq, index, total, bytes)
            {
                check_snapshot_round_trip(&snapshot);
            }
        }
        DownFrame::HeartbeatAck { .. }
        | DownFrame::OutboxAck { .. }
        | DownFrame::NodeLogsRequest { .. }
        | DownFrame::RenewCertificate { .. }
        | DownFrame::Certificate { .. }
        | DownFrame::CertificateRefused { .. } => {}
    }
    out
}

/// A frame on a node's `up` topic, as the cloud takes it, with its log batches and node
/// logs decompressed.
pub fn up_frame(data: &[u8]) -> Fuzzed {
    let mut out = Fuzzed::default();
    let Ok(decoded) = frame::decode_up(data) else {
        return out;
    };
    out.accepted = true;
    let again = frame::encode_up(&decoded).unwrap_or_else(|e| {
        panic!("an up frame that decoded does not encode: {e}");
    });
    assert!(
        again.len() <= data.len(),
        "re-encoding an up frame grew it from {} to {} bytes",
        data.len(),
        again.len()
    );
    assert_eq!(
        frame::decode_up(&again).as_ref(),
        Ok(&decoded),
        "a re-encoded up frame decodes to another value"
    );
    match decoded {
        UpFrame::Outbox { entries, .. } => {
            for entry in entries {
                if let OutboxBody::Logs(batch) = entry.body {
                    unpack_batch(&batch, &mut out);
                }
            }
        }
        UpFrame::NodeLogs {
            result: NodeLogs::Text { raw_len, zstd, .. },
            ..
        } => {
            if let Ok(text) = outbox::decompress_text(&zstd, raw_len as usize) {
                assert_eq!(text.len(), raw_len as usize, "node logs of another length");
                out.inflate(text.len());
            }
        }
        UpFrame::Hello { .. }
        | UpFrame::Ack { .. }
        | UpFrame::Heartbeat { .. }
        | UpFrame::Status(_)
        | UpFrame::NodeLogs { .. }
        | UpFrame::Rebuild { .. }
        | UpFrame::CertificateRequest { .. }
        | UpFrame::SecretsKey { .. } => {}
    }
    out
}

/// Log batches, two ways: the input as a postcard [`LogBatch`] (whose data a fuzzer rarely
/// makes valid zstd of), and the input as the postcard lines inside a batch, compressed
/// here so that decoding reaches them.
pub fn log_batch(data: &[u8]) -> Fuzzed {
    let mut out = Fuzzed::default();
    if let Ok(batch) = postcard::from_bytes::<LogBatch>(data) {
        unpack_batch(&batch, &mut out);
    }
    if data.len() <= MAX_BATCH_RAW_BYTES {
        let chunks = outbox::decode_chunks(data).ok();
        let Ok(compressed) = outbox::compress_text(data) else {
            return out;
        };
        let batch = LogBatch {
            spans: chunks
                .iter()
                .flatten()
                .map(LogChunk::span)
                .collect::<Vec<_>>(),
            raw_len: u32::try_from(data.len()).unwrap_or(u32::MAX),
            data: compressed,
        };
        unpack_batch(&batch, &mut out);
        assert_eq!(
            batch.unpack().ok(),
            chunks,
            "a batch of the lines that decode does not give them back"
        );
    }
    out
}

/// A sequence of snapshot chunks for one assembler, as a postcard `Vec` of
/// `(node_seq, index, total, bytes)`.
pub fn snapshot_chunks(data: &[u8]) -> Fuzzed {
    #[derive(Serialize, Deserialize)]
    struct Chunk {
        node_seq: u64,
        index: u32,
        total: u32,
        #[serde(with = "crate::frame::byte_buf")]
        bytes: Vec<u8>,
    }
    let mut out = Fuzzed::default();
    let Ok(chunks) = postcard::from_bytes::<Vec<Chunk>>(data) else {
        return out;
    };
    let mut assembler = SnapshotAssembler::new(FUZZ_MAX_SNAPSHOT_BYTES);
    for c in chunks {
        match assembler.offer(c.node_seq, c.index, c.total, c.bytes) {
            Ok(frame::Assembly::Complete(snapshot)) => {
                out.accepted = true;
                assert_eq!(snapshot.node_seq, c.node_seq, "another snapshot assembled");
                check_snapshot_round_trip(&snapshot);
            }
            Ok(frame::Assembly::Pending { received, total }) => {
                assert!(received <= total, "{received} of {total} chunks received");
            }
            Ok(frame::Assembly::Done) | Err(_) => {}
        }
    }
    out
}

/// A manifest, as the cloud's API takes it: UTF-8 text, parsed and validated. One that is
/// accepted must survive the postcard round trip the command log gives it, and validate
/// again.
pub fn manifest(data: &[u8]) -> Fuzzed {
    let mut out = Fuzzed::default();
    let Ok(text) = std::str::from_utf8(data) else {
        return out;
    };
    match manifest::parse_manifest(text) {
        Ok(m) => {
            out.accepted = true;
            let bytes = postcard::to_stdvec(&m)
                .unwrap_or_else(|e| panic!("an accepted manifest does not encode: {e}"));
            let back: manifest::Manifest = postcard::from_bytes(&bytes)
                .unwrap_or_else(|e| panic!("an accepted manifest does not decode: {e}"));
            assert_eq!(back, m, "a manifest changed in its postcard round trip");
            assert!(
                manifest::validate(&back).is_ok(),
                "a manifest was valid before its round trip only"
            );
        }
        Err(e) => {
            assert!(
                !e.errors.is_empty(),
                "a refused manifest comes without a reason"
            );
        }
    }
    out
}

fn unpack_batch(batch: &LogBatch, out: &mut Fuzzed) {
    if let Ok(chunks) = batch.unpack() {
        out.inflate(batch.raw_len as usize);
        assert_eq!(
            chunks.len(),
            batch.spans.len(),
            "a batch unpacked unchecked"
        );
        let again = LogBatch::pack(&chunks)
            .unwrap_or_else(|e| panic!("the lines of a batch do not pack again: {e}"));
        assert_eq!(
            again.unpack().as_ref(),
            Ok(&chunks),
            "repacked lines came back other"
        );
    }
}

fn check_snapshot_round_trip(snapshot: &NodeSnapshot) {
    let bytes =
        postcard::to_stdvec(snapshot).unwrap_or_else(|e| panic!("a snapshot does not encode: {e}"));
    let back: NodeSnapshot =
        postcard::from_bytes(&bytes).unwrap_or_else(|e| panic!("a snapshot does not decode: {e}"));
    assert_eq!(&back, snapshot, "a snapshot changed in its round trip");
}
