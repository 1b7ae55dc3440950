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
///
/// Each entry of `lines` is a whole line or a piece of one: a line longer than
/// [`MAX_LINE_BYTES`] is cut into pieces, which keep the line's number and are told apart
/// by their part (from 0) and a continuation flag ([`Pieces`]). So `first_line` and the
/// line numbers that follow are always the lines' numbers in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogChunk {
    pub source: LogSource,
    /// The number of the first entry's line (from 1 within the source); the others
    /// follow, an entry that continues a line keeping its number.
    pub first_line: u64,
    /// When the agent read them.
    pub time: Timestamp,
    /// Without their line ends: whole lines, or pieces of long ones.
    pub lines: Vec<String>,
    /// Which entries are pieces of a line (empty for whole lines).
    pub pieces: Pieces,
}

/// The pieces of long lines in a [`LogChunk`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pieces {
    /// The part of its line the first entry is (0: it starts its line; more when it goes
    /// on with a line whose first pieces came in an earlier chunk).
    pub first_part: u32,
    /// The indexes, ascending, of the entries after which their line goes on: in the next
    /// entry, or in the next chunk of the source when the entry is the last.
    pub continued: Vec<u32>,
}

impl Pieces {
    /// Whole lines only.
    pub fn is_whole(&self) -> bool {
        self.first_part == 0 && self.continued.is_empty()
    }

    /// Whether well formed for `entries` entries: indexes ascending and in range.
    pub fn valid_for(&self, entries: usize) -> bool {
        self.continued.windows(2).all(|w| w[0] < w[1])
            && self
                .continued
                .last()
                .is_none_or(|&i| (i as usize) < entries)
    }

    /// Where each of `entries` entries stands, the first being of line `first_line`.
    pub fn positions(&self, first_line: u64, entries: usize) -> impl Iterator<Item = LinePos> + '_ {
        let mut line = first_line;
        let mut part = self.first_part;
        (0..entries).map(move |i| {
            let continued = self.continues(i);
            let pos = LinePos {
                line,
                part,
                continued,
            };
            if continued {
                part = part.saturating_add(1);
            } else {
                line = line.saturating_add(1);
                part = 0;
            }
            pos
        })
    }

    fn continues(&self, index: usize) -> bool {
        u32::try_from(index).is_ok_and(|i| self.continued.binary_search(&i).is_ok())
    }
}

/// Where an entry of a chunk stands in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinePos {
    /// The line's number in the file.
    pub line: u64,
    /// Which piece of the line (0: the first, or the whole line).
    pub part: u32,
    /// More of the line follows.
    pub continued: bool,
}

impl LogChunk {
    /// A chunk of whole lines.
    pub fn whole(source: LogSource, first_line: u64, time: Timestamp, lines: Vec<String>) -> Self {
        Self {
            source,
            first_line,
            time,
            lines,
            pieces: Pieces::default(),
        }
    }

    /// The runs of line numbers it covers (a line cut across chunks counts in each).
    pub fn span(&self) -> LogSpan {
        let lines = match self.lines.len() {
            0 => 0,
            n => self.position(n - 1).line - self.first_line + 1,
        };
        LogSpan {
            source: self.source.clone(),
            first_line: self.first_line,
            lines,
        }
    }

    /// Where each entry stands: its line's number, its part and whether more follows.
    pub fn positions(&self) -> impl Iterator<Item = LinePos> + '_ {
        self.pieces.positions(self.first_line, self.lines.len())
    }

    /// Where entry `index` stands (see [`LogChunk::positions`]).
    pub fn position(&self, index: usize) -> LinePos {
        self.positions().nth(index).unwrap_or(LinePos {
            line: self.first_line,
            part: self.pieces.first_part,
            continued: false,
        })
    }

    /// The line and part an entry appended after the last would have.
    pub fn end(&self) -> (u64, u32) {
        match self.lines.len() {
            0 => (self.first_line, self.pieces.first_part),
            n => {
                let last = self.position(n - 1);
                if last.continued {
                    (last.line, last.part.saturating_add(1))
                } else {
                    (last.line.saturating_add(1), 0)
                }
            }
        }
    }

    /// Appends an entry (`continues`: more of its line follows).
    pub fn push(&mut self, text: String, continues: bool) {
        if continues {
            self.pieces
                .continued
                .push(u32::try_from(self.lines.len()).unwrap_or(u32::MAX));
        }
        self.lines.push(text);
    }

    /// Splits off the entries from `at` on, as a chunk of their own that goes on where
    /// this one stops.
    pub fn split_off(&mut self, at: usize) -> LogChunk {
        let at = at.min(self.lines.len());
        let start = if at == 0 {
            (self.first_line, self.pieces.first_part)
        } else {
            let prev = self.position(at - 1);
            if prev.continued {
                (prev.line, prev.part.saturating_add(1))
            } else {
                (prev.line.saturating_add(1), 0)
            }
        };
        let cut = u32::try_from(at).unwrap_or(u32::MAX);
        let split = self.pieces.continued.partition_point(|&i| i < cut);
        let tail_continued = self.pieces.continued.split_off(split);
        LogChunk {
            source: self.source.clone(),
            first_line: start.0,
            time: self.time,
            lines: self.lines.split_off(at),
            pieces: Pieces {
                first_part: start.1,
                continued: tail_continued.into_iter().map(|i| i - cut).collect(),
            },
        }
    }

    /// Bytes of text in the chunk.
    pub fn text_bytes(&self) -> usize {
        self.lines.iter().map(|l| l.len() + 1).sum()
    }
}

/// A chunk as agents before the continuation flag packed it (chunk format 1).
#[derive(Deserialize)]
struct LogChunkV1 {
    source: LogSource,
    first_line: u64,
    time: Timestamp,
    lines: Vec<String>,
}

/// What a batch's raw payload starts with in chunk format 2 (with [`Pieces`]). A format 1
/// payload starts with the number of its chunks, never 0 in a batch that holds lines.
pub const CHUNKS_V2: [u8; 2] = [0x00, 0x02];

/// The chunks of a batch's raw payload (after zstd), in either chunk format, with their
/// pieces checked against their lines. Allocation is bounded by the payload's length.
pub fn decode_chunks(raw: &[u8]) -> Result<Vec<LogChunk>, BatchError> {
    let decode = |e: postcard::Error| BatchError::Decode(e.to_string());
    let chunks: Vec<LogChunk> = match raw.strip_prefix(&CHUNKS_V2) {
        Some(v2) => postcard::from_bytes(v2).map_err(decode)?,
        None => postcard::from_bytes::<Vec<LogChunkV1>>(raw)
            .map_err(decode)?
            .into_iter()
            .map(|c| LogChunk::whole(c.source, c.first_line, c.time, c.lines))
            .collect(),
    };
    if chunks.iter().any(|c| !c.pieces.valid_for(c.lines.len())) {
        return Err(BatchError::Decode(
            "a chunk's pieces do not match its lines".into(),
        ));
    }
    Ok(chunks)
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
        // Runs that touch merge; so do runs that share a line (a long line cut across
        // two chunks is in both).
        if let Some(last) = self
            .spans
            .iter_mut()
            .rev()
            .find(|s| s.source == span.source)
            && last.first_line <= span.first_line
            && span.first_line <= last.first_line + last.lines
        {
            let end = (last.first_line + last.lines).max(span.first_line + span.lines);
            last.lines = end - last.first_line;
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
    /// The payload is chunk format 2: [`CHUNKS_V2`], then the postcard `Vec<LogChunk>`.
    pub fn pack(chunks: &[LogChunk]) -> Result<LogBatch, BatchError> {
        let raw = postcard::to_extend(chunks, CHUNKS_V2.to_vec())
            .map_err(|e| BatchError::Encode(e.to_string()))?;
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
    /// zstd frame that says it holds `raw_len` bytes (see [`decompress_exact`]). Both chunk
    /// formats are read: 2 (with [`Pieces`], what [`LogBatch::pack`] makes) and 1 (whole
    /// lines only, what older agents queued).
    pub fn unpack(&self) -> Result<Vec<LogChunk>, BatchError> {
        let raw_len = self.raw_len as usize;
        if raw_len > MAX_BATCH_RAW_BYTES {
            return Err(BatchError::TooLarge(raw_len));
        }
        let raw = decompress_exact(&self.data, raw_len)?;
        let chunks = decode_chunks(&raw)?;
        if chunks.len() != self.spans.len()
            || chunks.iter().zip(&self.spans).any(|(c, s)| c.span() != *s)
        {
            return Err(BatchError::SummaryMismatch);
        }
        Ok(chunks)
    }

    /// Line numbers in the batch (a line cut across two of its chunks counts twice).
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
        LogChunk::whole(
            source(file),
            first,
            Timestamp(1_700_000_000_000),
            (0..n)
                .map(|i| format!("line {} of {file}", first + i as u64))
                .collect(),
        )
    }

    #[test]
    fn pieces_keep_their_line_s_number_across_chunks_and_splits() {
        // Line 7 whole, line 8 in three pieces, line 9 whole, line 10 begun.
        let mut c = chunk("a.log", 7, 0);
        for (text, more) in [("7", false), ("8a", true), ("8b", true), ("8c", false)] {
            c.push(text.into(), more);
        }
        c.push("9".into(), false);
        c.push("10a".into(), true);
        let pos: Vec<(u64, u32, bool)> = c
            .positions()
            .map(|p| (p.line, p.part, p.continued))
            .collect();
        assert_eq!(
            pos,
            [
                (7, 0, false),
                (8, 0, true),
                (8, 1, true),
                (8, 2, false),
                (9, 0, false),
                (10, 0, true)
            ]
        );
        assert_eq!(c.span().lines, 4, "lines 7 to 10");
        assert_eq!(c.end(), (10, 1));
        let mut head = c.clone();
        let tail = head.split_off(2);
        assert_eq!((tail.first_line, tail.pieces.first_part), (8, 1));
        let again: Vec<(u64, u32, bool)> = head
            .positions()
            .chain(tail.positions())
            .map(|p| (p.line, p.part, p.continued))
            .collect();
        assert_eq!(again, pos);
        assert_eq!((head.span().lines, tail.span().lines), (2, 3));
        // Through a batch, and dropped: line 8 counts once.
        let batch = LogBatch::pack(&[head.clone(), tail.clone()]).unwrap();
        assert_eq!(batch.unpack().unwrap(), vec![head, tail]);
        let mut d = LogsDropped::default();
        d.add_batch(&batch);
        assert_eq!((d.lines(), d.spans.len()), (4, 1));
    }

    #[test]
    fn batches_of_chunk_format_1_are_still_read() {
        #[derive(Serialize)]
        struct V1<'a> {
            source: &'a LogSource,
            first_line: u64,
            time: Timestamp,
            lines: &'a [String],
        }
        let c = chunk("a.log", 3, 4);
        let raw = postcard::to_stdvec(&vec![V1 {
            source: &c.source,
            first_line: c.first_line,
            time: c.time,
            lines: &c.lines,
        }])
        .unwrap();
        let old = LogBatch {
            spans: vec![c.span()],
            raw_len: raw.len() as u32,
            data: zstd::bulk::compress(&raw, ZSTD_LEVEL).unwrap(),
        };
        assert_eq!(old.unpack().unwrap(), vec![c]);
    }

    #[test]
    fn pieces_that_do_not_match_their_lines_are_refused() {
        let mut c = chunk("a.log", 1, 2);
        c.pieces.continued = vec![5];
        let batch = LogBatch::pack(std::slice::from_ref(&c)).unwrap();
        assert!(matches!(batch.unpack(), Err(BatchError::Decode(_))));
        c.pieces.continued = vec![1, 0];
        let batch = LogBatch::pack(std::slice::from_ref(&c)).unwrap();
        assert!(matches!(batch.unpack(), Err(BatchError::Decode(_))));
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
