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
//!
//! # Parts
//! - this module: the envelope ([`OutboxEntry`], [`OutboxBody`], [`Lane`]);
//! - `lines`: where lines come from ([`LogSource`]) and runs of them ([`LogChunk`],
//!   [`Pieces`], [`LogSpan`]);
//! - `batch`: chunks packed into a [`LogBatch`] and read back, drop counts
//!   ([`LogsDropped`]), and the exact zstd frames of batches and node logs;
//! - `tests`: pieces across chunks and splits, both chunk formats, batches that lie.

use serde::{Deserialize, Serialize};

use crate::planner::ReplicaKey;
use crate::report::ReplicaStatus;

mod batch;
mod lines;
#[cfg(test)]
mod tests;

pub use batch::{
    BatchError, CHUNKS_V2, LogBatch, LogsDropped, MAX_BATCH_RAW_BYTES, MAX_TEXT_BYTES, ZSTD_LEVEL,
    compress_text, decode_chunks, decompress_exact, decompress_text,
};
pub use lines::{LinePos, LogChunk, LogSource, LogSpan, LogStream, MAX_LINE_BYTES, Pieces};

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
    /// A job's run, when it starts and when it ends (the end replaces the start: the cloud
    /// keeps one record per run id). Never coalesced; beyond the outbox quota the oldest
    /// give way, counted in the next run's `dropped_before` ([`JobReport`]).
    JobRun(Box<JobReport>),
}

/// A run report and how many run reports of the same node the outbox dropped for its
/// quota before it (since the journal was created).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobReport {
    pub run: crate::job::JobRun,
    pub dropped_before: u64,
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
