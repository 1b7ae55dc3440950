//! Log batches: chunks packed (postcard, then zstd) with a summary in the clear, read back
//! in either chunk format and checked against it; the lines dropped for the quota; and the
//! exact, bounded zstd frames that batches and node logs travel in.

use serde::{Deserialize, Serialize};

use super::lines::{LogChunk, LogSource, LogSpan};
use crate::clock::Timestamp;

/// The largest uncompressed log batch anyone makes or accepts.
pub const MAX_BATCH_RAW_BYTES: usize = 1024 * 1024;

/// The zstd level for log batches and node logs: fast, and 5-10x on typical logs.
pub const ZSTD_LEVEL: i32 = 3;

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
///
/// [`Pieces`]: super::Pieces
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
    ///
    /// [`Pieces`]: super::Pieces
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
