//! The tables of `reports.redb`, the records stored in them (postcard), and opening the file.
//!
//! - `meta`: `format`, `next_cursor` (the cursor the next stored line gets, from 1) and
//!   `bytes` (the size of the stored chunk records, for the retention).
//! - `watermarks`: (node, lane) to (epoch, highest `seq` stored).
//! - `replicas`: (node, instance, component, replica) to a [`ReplicaStatus`] followed by
//!   the time the cloud stored it (a [`Timestamp`]; records of older builds end without
//!   one, and older builds ignore it); `replica_counts`: node to how many it has.
//! - `chunks`: the cursor of a chunk's first line to its [`ChunkHead`] and lines.
//! - `instance_index`: (instance, cursor) to a [`ChunkMeta`], to read an instance's lines
//!   and filter them without reading the text of chunks that do not match.
//! - `drops`: (instance, node) to a [`DropRecord`].
//! - `logs_waiting`: node to the files of log directories its agent last said wait for a
//!   slot (`OutboxBody::LogsWaiting`).
//!
//! [`ReplicaStatus`]: skerry_shared::report::ReplicaStatus

use std::path::Path;

use redb::{Database, Durability, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use skerry_shared::clock::Timestamp;
use skerry_shared::ids::{Name, NodeId};
use skerry_shared::outbox::{Lane, LogSource, LogSpan, LogStream, Pieces};

use super::{CACHE_BYTES, MAX_DROP_SPANS, ReportError};

pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(super) const MARKS: TableDefinition<(u128, u8), (u64, u64)> =
    TableDefinition::new("watermarks");
pub(super) const REPLICAS: TableDefinition<(u128, &str, &str, u32), &[u8]> =
    TableDefinition::new("replicas");
pub(super) const REPLICA_COUNTS: TableDefinition<u128, u64> =
    TableDefinition::new("replica_counts");
pub(super) const CHUNKS: TableDefinition<u64, &[u8]> = TableDefinition::new("chunks");
pub(super) const INSTANCE_INDEX: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("instance_index");
pub(super) const DROPS: TableDefinition<(&str, u128), &[u8]> = TableDefinition::new("drops");
/// Node to the postcard `Vec<LogsWaiting>` its agent last reported (files of log
/// directories not read for want of a slot). Created on first use: older stores lack it.
pub(super) const WAITING: TableDefinition<u128, &[u8]> = TableDefinition::new("logs_waiting");

pub(super) const KEY_FORMAT: &str = "format";
pub(super) const KEY_NEXT_CURSOR: &str = "next_cursor";
pub(super) const KEY_BYTES: &str = "bytes";

/// The on-disk format of this store; bump on an incompatible change.
const FORMAT: u64 = 1;

pub(super) fn storage(e: impl std::fmt::Display) -> ReportError {
    ReportError::Storage(e.to_string())
}

pub(super) fn corrupt(e: impl std::fmt::Display) -> ReportError {
    ReportError::Corrupt(e.to_string())
}

pub(super) fn node_key(node: NodeId) -> u128 {
    node.0.as_u128()
}

pub(super) fn node_of(key: u128) -> NodeId {
    NodeId(uuid::Uuid::from_u128(key))
}

pub(super) fn lane_key(lane: Lane) -> u8 {
    match lane {
        Lane::Control => 0,
        Lane::Logs => 1,
    }
}

/// A write transaction that is durable when it commits.
pub(super) fn begin_write(db: &Database) -> Result<WriteTransaction, ReportError> {
    let mut tx = db.begin_write().map_err(storage)?;
    tx.set_durability(Durability::Immediate).map_err(storage)?;
    Ok(tx)
}

/// Opens (or creates) the file with redb's integrity check, and checks or writes its format.
pub(super) fn open_db(path: &Path) -> Result<Database, ReportError> {
    let db = Database::builder()
        .set_cache_size(CACHE_BYTES)
        .set_check_integrity_on_open(true)
        .create(path)
        .map_err(|e| ReportError::Storage(format!("{}: {e}", path.display())))?;
    let tx = begin_write(&db)?;
    {
        let mut meta = tx.open_table(META).map_err(storage)?;
        let format = meta.get(KEY_FORMAT).map_err(storage)?.map(|g| g.value());
        match format {
            None => {
                meta.insert(KEY_FORMAT, FORMAT).map_err(storage)?;
                meta.insert(KEY_NEXT_CURSOR, 1).map_err(storage)?;
                meta.insert(KEY_BYTES, 0).map_err(storage)?;
            }
            Some(FORMAT) => {}
            Some(other) => {
                return Err(ReportError::Storage(format!(
                    "{}: report store format {other}, this build reads format {FORMAT}",
                    path.display()
                )));
            }
        }
        tx.open_table(MARKS).map_err(storage)?;
        tx.open_table(REPLICAS).map_err(storage)?;
        tx.open_table(REPLICA_COUNTS).map_err(storage)?;
        tx.open_table(CHUNKS).map_err(storage)?;
        tx.open_table(INSTANCE_INDEX).map_err(storage)?;
        tx.open_table(DROPS).map_err(storage)?;
        tx.open_table(WAITING).map_err(storage)?;
    }
    tx.commit().map_err(storage)?;
    Ok(db)
}

/// Everything about a chunk but its text. A chunk record is the postcard encoding of the
/// head followed by that of the lines, so the head reads without the text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ChunkHead {
    pub node: NodeId,
    pub instance: Name,
    pub component: Name,
    pub replica: u32,
    pub stream: LogStream,
    pub first_line: u64,
    /// How many lines the chunk holds.
    pub lines: u64,
    /// When the agent read the lines.
    pub time: Timestamp,
    /// When the cloud stored them (what the retention counts from).
    pub stored: Timestamp,
}

#[derive(Serialize)]
struct ChunkOut<'a> {
    head: &'a ChunkHead,
    lines: &'a [String],
}

/// The record: the head, the lines, then, when some entries are pieces of long lines,
/// the [`Pieces`] (records of whole lines end after the lines, as this store's records
/// always did, so older records read as whole lines).
pub(super) fn encode_chunk(
    head: &ChunkHead,
    lines: &[String],
    pieces: &Pieces,
) -> Result<Vec<u8>, ReportError> {
    let bytes = postcard::to_stdvec(&ChunkOut { head, lines }).map_err(storage)?;
    if pieces.is_whole() {
        return Ok(bytes);
    }
    postcard::to_extend(pieces, bytes).map_err(storage)
}

pub(super) fn decode_head(bytes: &[u8]) -> Result<(ChunkHead, &[u8]), ReportError> {
    postcard::take_from_bytes::<ChunkHead>(bytes).map_err(corrupt)
}

pub(super) fn decode_chunk(bytes: &[u8]) -> Result<(ChunkHead, Vec<String>, Pieces), ReportError> {
    let (head, rest) = decode_head(bytes)?;
    let (lines, rest): (Vec<String>, &[u8]) = postcard::take_from_bytes(rest).map_err(corrupt)?;
    let pieces = if rest.is_empty() {
        Pieces::default()
    } else {
        postcard::from_bytes(rest).map_err(corrupt)?
    };
    Ok((head, lines, pieces))
}

/// What the instance index says of a chunk: enough to filter it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ChunkMeta {
    pub node: NodeId,
    pub component: Name,
    pub replica: u32,
    pub time: Timestamp,
    pub lines: u64,
}

/// A run of dropped lines of one file of the instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct DropSpan {
    pub component: Name,
    pub replica: u32,
    pub stream: LogStream,
    pub first_line: u64,
    pub lines: u64,
}

/// The drops of one node for one instance.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub(super) struct DropRecord {
    pub lines: u64,
    pub batches: u64,
    /// Oldest first, at most [`MAX_DROP_SPANS`].
    pub spans: Vec<DropSpan>,
}

impl DropRecord {
    /// Adds a span as a set of line numbers: runs of the same file that overlap or touch
    /// merge, so a drop report that arrives twice (an agent merges its queued report with
    /// newer drops under a new seq, which may follow the old one) counts once. `lines` is
    /// the size of the union.
    pub fn add_span(&mut self, span: &LogSpan) {
        let LogSource {
            component,
            replica,
            stream,
            ..
        } = &span.source;
        let same = |s: &DropSpan| {
            s.component == *component && s.replica == *replica && s.stream == *stream
        };
        let mut first = span.first_line;
        let mut end = span.first_line.saturating_add(span.lines);
        let mut at = None;
        let mut i = 0;
        while i < self.spans.len() {
            let s = &self.spans[i];
            let s_end = s.first_line.saturating_add(s.lines);
            if same(s) && s.first_line <= end && first <= s_end {
                first = first.min(s.first_line);
                end = end.max(s_end);
                self.spans.remove(i);
                at.get_or_insert(i);
                continue;
            }
            i += 1;
        }
        if at.is_none() && self.spans.len() >= MAX_DROP_SPANS {
            self.spans.remove(0);
        }
        let new = DropSpan {
            component: component.clone(),
            replica: *replica,
            stream: stream.clone(),
            first_line: first,
            lines: end - first,
        };
        match at {
            Some(i) => self.spans.insert(i.min(self.spans.len()), new),
            None => self.spans.push(new),
        }
        self.lines = self.spans.iter().map(|s| s.lines).sum();
    }
}

/// A `replicas` record: the status, then the time the cloud stored it.
pub(super) fn encode_status(
    status: &skerry_shared::report::ReplicaStatus,
    reported: Timestamp,
) -> Result<Vec<u8>, ReportError> {
    let mut bytes = postcard::to_stdvec(status).map_err(storage)?;
    bytes.extend(postcard::to_stdvec(&reported).map_err(storage)?);
    Ok(bytes)
}

/// A `replicas` record's status and, unless an older build wrote it, when it was stored.
pub(super) fn decode_status(
    bytes: &[u8],
) -> Result<(skerry_shared::report::ReplicaStatus, Option<Timestamp>), ReportError> {
    let (status, rest) = postcard::take_from_bytes(bytes).map_err(corrupt)?;
    let reported = if rest.is_empty() {
        None
    } else {
        Some(postcard::from_bytes(rest).map_err(corrupt)?)
    };
    Ok((status, reported))
}

/// Reads a `meta` counter (0 when missing).
pub(super) fn meta_get(
    meta: &impl ReadableTable<&'static str, u64>,
    key: &str,
) -> Result<u64, ReportError> {
    Ok(meta.get(key).map_err(storage)?.map_or(0, |g| g.value()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(file: &str, first_line: u64, lines: u64) -> LogSpan {
        LogSpan {
            source: LogSource {
                instance: Name::parse("w").unwrap(),
                component: Name::parse("web").unwrap(),
                replica: 0,
                stream: LogStream::File(file.into()),
            },
            first_line,
            lines,
        }
    }

    #[test]
    fn replica_records_carry_their_time_and_older_ones_read_without() {
        use skerry_shared::report::{ReplicaReport, ReplicaState, ReplicaStatus};
        let status = ReplicaStatus::from(ReplicaReport {
            instance: Name::parse("w").unwrap(),
            component: Name::parse("web").unwrap(),
            replica: 0,
            state: ReplicaState::Running,
            restarts: 1,
            reason: Some("exited 1".into()),
            spec_hash: skerry_shared::hash::Digest::ZERO,
            ports: vec![(8080, 30000)],
        });
        let bytes = encode_status(&status, Timestamp(42)).unwrap();
        assert_eq!(
            decode_status(&bytes).unwrap(),
            (status.clone(), Some(Timestamp(42)))
        );
        // A record an older build wrote: the status alone.
        let old = postcard::to_stdvec(&status).unwrap();
        assert_eq!(decode_status(&old).unwrap(), (status.clone(), None));
        // An older build reads a new record's status and ignores the time after it.
        let read: ReplicaStatus = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(read, status);
    }

    #[test]
    fn drops_count_each_line_once() {
        let mut r = DropRecord::default();
        r.add_span(&span("a.log", 1, 100));
        // The same report again, then a merged one that covers it and more.
        r.add_span(&span("a.log", 1, 100));
        r.add_span(&span("a.log", 1, 150));
        r.add_span(&span("b.log", 1, 10));
        r.add_span(&span("a.log", 300, 5));
        assert_eq!(r.lines, 165);
        r.add_span(&span("a.log", 151, 149));
        assert_eq!(r.lines, 314);
        assert_eq!(
            r.spans
                .iter()
                .filter(|s| s.stream == LogStream::File("a.log".into()))
                .count(),
            1
        );
    }
}
