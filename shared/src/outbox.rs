//! What an agent has to say, as its outbox keeps it and the wire carries it.
//!
//! The agent queues its reports in its journal (the outbox) and sends them when the link
//! is up, in [`crate::frame::UpFrame::Outbox`] frames. Each entry has a sequence number
//! (`seq`) that grows within one journal `epoch`; the cloud stores an entry once per
//! (node, epoch, seq), acknowledges it ([`crate::frame::DownFrame::OutboxAck`]) after the
//! store is durable, and the agent deletes what was acknowledged. A journal that is
//! rebuilt gets a new epoch, so its entries are never taken for duplicates of the old
//! journal's.
//!
//! Entries travel in two lanes ([`Lane`]): control (replica states, drop counts) and logs.
//! Within a lane, entries are sent in `seq` order; control goes first, and log batches are
//! rate limited, so logs never starve status on a thin link. The cloud's duplicate check
//! keeps, per node and lane, the epoch and the highest `seq` it stored: entries missing
//! below it (coalesced or dropped by the agent) are gaps by design.
//!
//! Log lines travel in [`LogBatch`]es: the lines of one or more [`LogChunk`]s, postcard
//! then zstd, with an uncompressed summary ([`LogSpan`]s) so that a batch dropped for the
//! quota is counted without decompressing it. Every line has a number within its
//! [`LogSource`] (from 1, without gaps, across rotations), so the cloud keeps them in order
//! per file and a drop is a known range.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::ids::Name;
use crate::planner::ReplicaKey;
use crate::report::ReplicaStatus;

/// The largest uncompressed log batch anyone makes or accepts.
pub const MAX_BATCH_RAW_BYTES: usize = 1024 * 1024;

/// The longest log line kept; a longer one is cut into pieces of this size.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// The zstd level for log batches and node logs: fast, and 5-10x on typical logs.
pub const ZSTD_LEVEL: i32 = 3;

/// The two lanes of the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Lane {
    /// Replica states and drop counts: sent first, never dropped.
    Control,
    /// Log batches: rate limited, and the oldest are dropped beyond the log quota.
    Logs,
}

impl Lane {
    pub const ALL: [Lane; 2] = [Lane::Control, Lane::Logs];

    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Control => "control",
            Lane::Logs => "logs",
        }
    }
}

/// One queued report with its sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub seq: u64,
    pub body: OutboxBody,
}

/// What an outbox entry says. Append new variants at the end only (postcard).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutboxBody {
    /// Every replica the node runs: replaces the cloud's view of the node. Supersedes
    /// every queued [`OutboxBody::Complete`] and [`OutboxBody::Replica`].
    Complete(Vec<ReplicaStatus>),
    /// One replica's latest state (`None`: it is gone). Supersedes a queued entry for
    /// the same replica: status coalesces per replica.
    Replica {
        key: ReplicaKey,
        /// Boxed to keep the enum small (serde encodes a box as its content).
        status: Option<Box<ReplicaStatus>>,
    },
    /// Log lines dropped for the quota since the last such entry was queued. Queued ones
    /// merge into one.
    LogsDropped(LogsDropped),
    /// Collected log lines.
    Logs(LogBatch),
    /// The files of log directories that are not read for want of a slot (a tailer
    /// tracks at most 1,024 files), per replica: replaces what the last such entry said
    /// (empty: no file waits any more). Queued when it changes.
    LogsWaiting(Vec<LogsWaiting>),
}

/// Files of one replica's log directory that wait for a slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogsWaiting {
    pub replica: ReplicaKey,
    pub files: u64,
}

/// The most [`LogsWaiting`] one entry holds (the cloud keeps no more per node).
pub const MAX_WAITING_REPLICAS: usize = 1024;

impl OutboxBody {
    pub fn lane(&self) -> Lane {
        match self {
            OutboxBody::Logs(_) => Lane::Logs,
            _ => Lane::Control,
        }
    }
}

/// Where a log line comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LogSource {
    pub instance: Name,
    pub component: Name,
    pub replica: u32,
    pub stream: LogStream,
}

impl LogSource {
    pub fn replica_key(&self) -> ReplicaKey {
        ReplicaKey::new(&self.instance, &self.component, self.replica)
    }
}

/// A file in the component's `log_dir` (by its name there when first seen; the lines of a
/// rotated file keep it), or the container's own output.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LogStream {
    File(String),
    Stdout,
    Stderr,
}

impl std::fmt::Display for LogStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogStream::File(name) => f.write_str(name),
            LogStream::Stdout => f.write_str("(stdout)"),
            LogStream::Stderr => f.write_str("(stderr)"),
        }
    }
}

/// Consecutive lines of one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogChunk {
    pub source: LogSource,
    /// The number of the first line (from 1 within the source); the others follow.
    pub first_line: u64,
    /// When the agent read them.
    pub time: Timestamp,
    /// Without their line ends.
    pub lines: Vec<String>,
}

impl LogChunk {
    pub fn span(&self) -> LogSpan {
        LogSpan {
            source: self.source.clone(),
            first_line: self.first_line,
            lines: self.lines.len() as u64,
        }
    }

    /// Bytes of text in the chunk.
    pub fn text_bytes(&self) -> usize {
        self.lines.iter().map(|l| l.len() + 1).sum()
    }
}

/// A run of line numbers of one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSpan {
    pub source: LogSource,
    pub first_line: u64,
    pub lines: u64,
}

/// Lines the agent dropped for its log quota.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LogsDropped {
    /// Per source, in the order dropped; runs of one source that touch are merged.
    pub spans: Vec<LogSpan>,
    /// Compressed bytes dropped.
    pub bytes: u64,
    pub batches: u64,
}

impl LogsDropped {
    /// Lines dropped in all.
    pub fn lines(&self) -> u64 {
        self.spans.iter().map(|s| s.lines).sum()
    }

    /// Adds a dropped batch.
    pub fn add_batch(&mut self, batch: &LogBatch) {
        self.batches += 1;
        self.bytes += batch.data.len() as u64;
        for span in &batch.spans {
            self.add_span(span.clone());
        }
    }

    /// Adds everything `other` counted.
    pub fn merge(&mut self, other: LogsDropped) {
        self.batches += other.batches;
        self.bytes += other.bytes;
        for span in other.spans {
            self.add_span(span);
        }
    }

    fn add_span(&mut self, span: LogSpan) {
        if let Some(last) = self
            .spans
            .iter_mut()
            .rev()
            .find(|s| s.source == span.source)
            && last.first_line + last.lines == span.first_line
        {
            last.lines += span.lines;
            return;
        }
        self.spans.push(span);
    }
}

/// Log lines, postcard then zstd, with what they hold in the clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogBatch {
    /// One span per chunk, in order: what the batch holds.
    pub spans: Vec<LogSpan>,
    /// The length of the postcard encoding before compression.
    pub raw_len: u32,
    /// zstd of the postcard encoding of the `Vec<LogChunk>`.
    #[serde(with = "crate::frame::byte_buf")]
    pub data: Vec<u8>,
}

/// Why a log batch could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("log batch of {0} bytes is over the limit of {MAX_BATCH_RAW_BYTES} bytes")]
    TooLarge(usize),
    #[error("log batch does not encode: {0}")]
    Encode(String),
    #[error("log batch does not decode: {0}")]
    Decode(String),
    #[error("log batch holds other lines than its summary says")]
    SummaryMismatch,
}

impl LogBatch {
    /// Packs chunks into a batch. At most [`MAX_BATCH_RAW_BYTES`] before compression.
    pub fn pack(chunks: &[LogChunk]) -> Result<LogBatch, BatchError> {
        let raw = postcard::to_stdvec(chunks).map_err(|e| BatchError::Encode(e.to_string()))?;
        if raw.len() > MAX_BATCH_RAW_BYTES {
            return Err(BatchError::TooLarge(raw.len()));
        }
        let data = zstd::bulk::compress(&raw, ZSTD_LEVEL)
            .map_err(|e| BatchError::Encode(e.to_string()))?;
        Ok(LogBatch {
            spans: chunks.iter().map(LogChunk::span).collect(),
            raw_len: u32::try_from(raw.len()).map_err(|_| BatchError::TooLarge(raw.len()))?,
            data,
        })
    }

    /// The chunks, checked against the summary. Allocation is bounded by
    /// [`MAX_BATCH_RAW_BYTES`] whatever the batch claims, and `data` must be exactly one
    /// zstd frame that says it holds `raw_len` bytes (see [`decompress_exact`]).
    pub fn unpack(&self) -> Result<Vec<LogChunk>, BatchError> {
        let raw_len = self.raw_len as usize;
        if raw_len > MAX_BATCH_RAW_BYTES {
            return Err(BatchError::TooLarge(raw_len));
        }
        let raw = decompress_exact(&self.data, raw_len)?;
        let chunks: Vec<LogChunk> =
            postcard::from_bytes(&raw).map_err(|e| BatchError::Decode(e.to_string()))?;
        if chunks.len() != self.spans.len()
            || chunks.iter().zip(&self.spans).any(|(c, s)| c.span() != *s)
        {
            return Err(BatchError::SummaryMismatch);
        }
        Ok(chunks)
    }

    /// Lines in the batch.
    pub fn lines(&self) -> u64 {
        self.spans.iter().map(|s| s.lines).sum()
    }
}

/// Compresses text (a node's runtime log) for [`crate::frame::UpFrame::NodeLogs`].
pub fn compress_text(text: &[u8]) -> Result<Vec<u8>, BatchError> {
    zstd::bulk::compress(text, ZSTD_LEVEL).map_err(|e| BatchError::Encode(e.to_string()))
}

/// The most text [`decompress_text`] gives back.
pub const MAX_TEXT_BYTES: usize = MAX_BATCH_RAW_BYTES * 16;

/// Decompresses text of at most `max_len` bytes (and at most [`MAX_TEXT_BYTES`]). The data
/// must be one zstd frame (as [`compress_text`] makes), with nothing after it.
pub fn decompress_text(data: &[u8], max_len: usize) -> Result<Vec<u8>, BatchError> {
    let max_len = max_len.min(MAX_TEXT_BYTES);
    let len = single_frame_content_size(data)?;
    if len > max_len {
        return Err(BatchError::Decode(format!(
            "the text says {len} bytes, more than the {max_len} expected"
        )));
    }
    decompress_exact(data, len)
}

/// Decompresses `data`, which must be exactly one zstd frame, with nothing after it, whose
/// header says it holds `len` bytes (zstd's one-shot compression, as [`LogBatch::pack`] and
/// [`compress_text`] use, writes the size). The header is checked before anything is
/// allocated, so a frame cannot make this reserve more than it says, and the trailing
/// bytes check gives every batch one encoding: zstd alone would take further frames
/// after the first, skippable ones included, as part of the payload.
pub fn decompress_exact(data: &[u8], len: usize) -> Result<Vec<u8>, BatchError> {
    let declared = single_frame_content_size(data)?;
    if declared != len {
        return Err(BatchError::Decode(format!(
            "the zstd frame holds {declared} bytes, the batch says {len}"
        )));
    }
    let raw = zstd::bulk::decompress(data, len).map_err(|e| BatchError::Decode(e.to_string()))?;
    if raw.len() != len {
        return Err(BatchError::Decode(format!(
            "{} bytes after decompression, the batch says {len}",
            raw.len()
        )));
    }
    Ok(raw)
}

/// The content size that the header of `data`'s only zstd frame declares.
fn single_frame_content_size(data: &[u8]) -> Result<usize, BatchError> {
    let frame_len = zstd::zstd_safe::find_frame_compressed_size(data)
        .map_err(|code| BatchError::Decode(zstd::zstd_safe::get_error_name(code).to_owned()))?;
    if frame_len != data.len() {
        return Err(BatchError::Decode(format!(
            "{} bytes left over after the zstd frame",
            data.len().saturating_sub(frame_len)
        )));
    }
    match zstd::zstd_safe::get_frame_content_size(data) {
        Ok(Some(size)) => usize::try_from(size)
            .map_err(|_| BatchError::Decode(format!("a zstd frame of {size} bytes"))),
        Ok(None) => Err(BatchError::Decode(
            "the zstd frame does not say its size".into(),
        )),
        Err(_) => Err(BatchError::Decode("not a zstd frame".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(file: &str) -> LogSource {
        LogSource {
            instance: Name::parse("w1").unwrap(),
            component: Name::parse("web").unwrap(),
            replica: 0,
            stream: LogStream::File(file.into()),
        }
    }

    fn chunk(file: &str, first: u64, n: usize) -> LogChunk {
        LogChunk {
            source: source(file),
            first_line: first,
            time: Timestamp(1_700_000_000_000),
            lines: (0..n)
                .map(|i| format!("line {} of {file}", first + i as u64))
                .collect(),
        }
    }

    #[test]
    fn batches_round_trip_and_compress() {
        let chunks = vec![chunk("a.log", 1, 500), chunk("b.log", 7, 500)];
        let batch = LogBatch::pack(&chunks).unwrap();
        assert_eq!(batch.lines(), 1000);
        assert!(
            batch.data.len() * 4 < batch.raw_len as usize,
            "{}",
            batch.data.len()
        );
        assert_eq!(batch.unpack().unwrap(), chunks);
    }

    #[test]
    fn a_batch_that_lies_is_refused() {
        let mut batch = LogBatch::pack(&[chunk("a.log", 1, 10)]).unwrap();
        batch.spans[0].lines = 11;
        assert_eq!(batch.unpack(), Err(BatchError::SummaryMismatch));
        let mut batch = LogBatch::pack(&[chunk("a.log", 1, 10)]).unwrap();
        batch.raw_len = u32::MAX;
        assert!(matches!(batch.unpack(), Err(BatchError::TooLarge(_))));
        let mut batch = LogBatch::pack(&[chunk("a.log", 1, 10)]).unwrap();
        batch.raw_len -= 1;
        assert!(batch.unpack().is_err());
        batch.raw_len += 1;
        batch.data.truncate(3);
        assert!(batch.unpack().is_err());
    }

    #[test]
    fn bytes_after_the_zstd_frame_are_refused() {
        let batch = LogBatch::pack(&[chunk("a.log", 1, 10)]).unwrap();
        // A second frame of nothing: zstd alone decompresses both to the same bytes.
        let mut two = batch.clone();
        two.data
            .extend(zstd::bulk::compress(&[], ZSTD_LEVEL).unwrap());
        assert!(zstd::bulk::decompress(&two.data, two.raw_len as usize).is_ok());
        assert!(matches!(two.unpack(), Err(BatchError::Decode(_))));
        let mut junk = batch.clone();
        junk.data.push(0);
        assert!(matches!(junk.unpack(), Err(BatchError::Decode(_))));
        // A frame that says it holds less than the batch does.
        let mut short = batch;
        short.data = zstd::bulk::compress(b"abc", ZSTD_LEVEL).unwrap();
        short.raw_len = 3;
        assert!(short.unpack().is_err());
        let text = compress_text(b"hello").unwrap();
        assert_eq!(decompress_text(&text, 100).unwrap(), b"hello");
        assert!(decompress_text(&text, 4).is_err());
        let mut trailing = text;
        trailing.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0]);
        assert!(decompress_text(&trailing, 100).is_err());
    }

    #[test]
    fn drops_merge_runs_per_source() {
        let mut d = LogsDropped::default();
        d.add_batch(&LogBatch::pack(&[chunk("a.log", 1, 10), chunk("b.log", 1, 5)]).unwrap());
        d.add_batch(&LogBatch::pack(&[chunk("a.log", 11, 10)]).unwrap());
        d.add_batch(&LogBatch::pack(&[chunk("a.log", 40, 1)]).unwrap());
        assert_eq!(d.lines(), 26);
        assert_eq!(d.batches, 3);
        assert_eq!(d.spans.len(), 3);
        assert_eq!((d.spans[0].first_line, d.spans[0].lines), (1, 20));
    }
}
