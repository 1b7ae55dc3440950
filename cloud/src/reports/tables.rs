//! The tables of `reports.redb`, the records stored in them (postcard), and opening the file.
//!
//! - `meta`: `format`, `next_cursor` (the cursor the next stored line gets, from 1) and
//!   `bytes` (the size of the stored chunk records, for the retention).
//! - `watermarks`: (node, lane) to (epoch, highest `seq` stored).
//! - `replicas`: (node, instance, component, replica) to a [`ReplicaStatus`];
//!   `replica_counts`: node to how many it has.
//! - `chunks`: the cursor of a chunk's first line to its [`ChunkHead`] and lines.
//! - `instance_index`: (instance, cursor) to a [`ChunkMeta`], to read an instance's lines
//!   and filter them without reading the text of chunks that do not match.
//! - `drops`: (instance, node) to a [`DropRecord`].
//! - `arrived`: (instance, node) to the [`LineRun`]s of every line stored, per file (a set:
//!   a line both stored and reported dropped, from a batch the agent dropped while it was in
//!   flight, is not counted as dropped).
//!
//! [`ReplicaStatus`]: skerry_shared::report::ReplicaStatus

use std::path::Path;

use redb::{Database, Durability, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use skerry_shared::clock::Timestamp;
use skerry_shared::ids::{Name, NodeId};
use skerry_shared::outbox::{Lane, LogSource, LogSpan, LogStream};

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
pub(super) const ARRIVED: TableDefinition<(&str, u128), &[u8]> = TableDefinition::new("arrived");

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
        tx.open_table(ARRIVED).map_err(storage)?;
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

pub(super) fn encode_chunk(head: &ChunkHead, lines: &[String]) -> Result<Vec<u8>, ReportError> {
    postcard::to_stdvec(&ChunkOut { head, lines }).map_err(storage)
}

pub(super) fn decode_head(bytes: &[u8]) -> Result<(ChunkHead, &[u8]), ReportError> {
    postcard::take_from_bytes::<ChunkHead>(bytes).map_err(corrupt)
}

pub(super) fn decode_chunk(bytes: &[u8]) -> Result<(ChunkHead, Vec<String>), ReportError> {
    let (head, rest) = decode_head(bytes)?;
    let lines: Vec<String> = postcard::from_bytes(rest).map_err(corrupt)?;
    Ok((head, lines))
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

/// A run of line numbers of one file of the instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct LineRun {
    pub component: Name,
    pub replica: u32,
    pub stream: LogStream,
    pub first_line: u64,
    pub lines: u64,
}

impl LineRun {
    fn end(&self) -> u64 {
        self.first_line.saturating_add(self.lines)
    }

    fn of(&self, source: &LogSource) -> bool {
        self.component == source.component
            && self.replica == source.replica
            && self.stream == source.stream
    }
}

/// A set of line numbers per file, as runs, oldest first, at most [`MAX_DROP_SPANS`] (the
/// oldest run is forgotten first).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub(super) struct LineRuns(pub Vec<LineRun>);

impl LineRuns {
    /// Adds the lines of `span`: runs of the same file that overlap or touch merge.
    pub fn add(&mut self, span: &LogSpan) {
        let runs = &mut self.0;
        let mut first = span.first_line;
        let mut end = span.first_line.saturating_add(span.lines);
        let mut at = None;
        let mut i = 0;
        while i < runs.len() {
            let r = &runs[i];
            if r.of(&span.source) && r.first_line <= end && first <= r.end() {
                first = first.min(r.first_line);
                end = end.max(r.end());
                runs.remove(i);
                at.get_or_insert(i);
                continue;
            }
            i += 1;
        }
        if at.is_none() && runs.len() >= MAX_DROP_SPANS {
            runs.remove(0);
        }
        let new = LineRun {
            component: span.source.component.clone(),
            replica: span.source.replica,
            stream: span.source.stream.clone(),
            first_line: first,
            lines: end - first,
        };
        match at {
            Some(i) => runs.insert(i.min(runs.len()), new),
            None => runs.push(new),
        }
    }

    /// Removes the lines of `span`; returns how many were in the set.
    pub fn remove(&mut self, span: &LogSpan) -> u64 {
        let (first, end) = (span.first_line, span.first_line.saturating_add(span.lines));
        let mut removed = 0;
        let mut out = Vec::with_capacity(self.0.len() + 1);
        for r in self.0.drain(..) {
            if !r.of(&span.source) || r.end() <= first || end <= r.first_line {
                out.push(r);
                continue;
            }
            removed += r.end().min(end) - r.first_line.max(first);
            if r.first_line < first {
                out.push(LineRun {
                    lines: first - r.first_line,
                    ..r.clone()
                });
            }
            if end < r.end() {
                out.push(LineRun {
                    first_line: end,
                    lines: r.end() - end,
                    ..r
                });
            }
        }
        self.0 = out;
        removed
    }

    /// The parts of `span` that are not in the set, in order.
    pub fn missing(&self, span: &LogSpan) -> Vec<LogSpan> {
        let mut covering: Vec<&LineRun> = self.0.iter().filter(|r| r.of(&span.source)).collect();
        covering.sort_by_key(|r| r.first_line);
        let end = span.first_line.saturating_add(span.lines);
        let mut at = span.first_line;
        let mut out = Vec::new();
        for r in covering {
            if r.end() <= at || end <= r.first_line {
                continue;
            }
            if at < r.first_line {
                out.push(LogSpan {
                    source: span.source.clone(),
                    first_line: at,
                    lines: r.first_line - at,
                });
            }
            at = at.max(r.end());
        }
        if at < end {
            out.push(LogSpan {
                source: span.source.clone(),
                first_line: at,
                lines: end - at,
            });
        }
        out
    }

    pub fn lines(&self) -> u64 {
        self.0.iter().map(|r| r.lines).sum()
    }
}

/// The drops of one node for one instance.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub(super) struct DropRecord {
    pub lines: u64,
    pub batches: u64,
    /// Oldest first, at most [`MAX_DROP_SPANS`].
    pub spans: LineRuns,
}

impl DropRecord {
    /// Adds a span as a set of line numbers, so a drop report that arrives twice (an agent
    /// merges its queued report with newer drops under a new seq, which may follow the old
    /// one) counts once. `lines` is the size of the union.
    pub fn add_span(&mut self, span: &LogSpan) {
        self.spans.add(span);
        self.lines = self.spans.lines();
    }

    /// Takes back lines that arrived after all; returns how many were counted dropped.
    pub fn arrived(&mut self, span: &LogSpan) -> u64 {
        let removed = self.spans.remove(span);
        self.lines = self.spans.lines();
        removed
    }
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
    fn line_runs_are_a_set_per_file() {
        let mut runs = LineRuns::default();
        runs.add(&span("a.log", 10, 10)); // 10-19
        runs.add(&span("a.log", 30, 10)); // 30-39
        runs.add(&span("b.log", 1, 100));
        let parts = |v: Vec<LogSpan>| {
            v.iter()
                .map(|s| (s.first_line, s.lines))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            parts(runs.missing(&span("a.log", 1, 50))),
            vec![(1, 9), (20, 10), (40, 11)]
        );
        assert_eq!(parts(runs.missing(&span("a.log", 12, 5))), vec![]);
        assert_eq!(parts(runs.missing(&span("c.log", 12, 5))), vec![(12, 5)]);
        // Removing the middle of a run splits it; other files are untouched.
        assert_eq!(runs.remove(&span("a.log", 15, 20)), 5 + 5);
        assert_eq!(runs.lines(), 5 + 5 + 100);
        assert_eq!(parts(runs.missing(&span("a.log", 10, 30))), vec![(15, 20)]);
        assert_eq!(runs.remove(&span("a.log", 1, 100)), 10);
        assert_eq!(runs.lines(), 100);
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
                .0
                .iter()
                .filter(|s| s.stream == LogStream::File("a.log".into()))
                .count(),
            1
        );
    }
}
