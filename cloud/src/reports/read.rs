//! Reads, each in its own read transaction: pages of log lines, drop totals, replica
//! statuses.

use std::collections::BTreeMap;

use redb::{Database, ReadableDatabase, ReadableTable};
use skerry_shared::clock::Timestamp;
use skerry_shared::ids::{Name, NodeId};
use skerry_shared::report::ReplicaStatus;

use super::tables::{
    self, CHUNKS, ChunkMeta, DROPS, DropRecord, INSTANCE_INDEX, KEY_NEXT_CURSOR, META, REPLICAS,
    WAITING, corrupt, storage,
};
use super::{FileDrops, LogLine, LogPage, LogQuery, NodeDrops, NodeWaiting, ReportError};
use skerry_shared::outbox::LogsWaiting;

/// The last cursor stored, and when the newest chunk was stored.
pub(super) fn tip(db: &Database) -> Result<(u64, Timestamp), ReportError> {
    let rx = db.begin_read().map_err(storage)?;
    let meta = rx.open_table(META).map_err(storage)?;
    let tip = tables::meta_get(&meta, KEY_NEXT_CURSOR)?.saturating_sub(1);
    let chunks = rx.open_table(CHUNKS).map_err(storage)?;
    let stored = match chunks.last().map_err(storage)? {
        Some((_, v)) => tables::decode_head(v.value())?.0.stored,
        None => Timestamp::default(),
    };
    Ok((tip, stored))
}

/// A page of the instance's lines after `q.after`, in cursor order.
pub(super) fn query(db: &Database, q: &LogQuery) -> Result<LogPage, ReportError> {
    query_bounded(db, q, usize::MAX).map(|(page, _)| page)
}

/// [`query`], stopping also once the lines' texts take `max_bytes` (after at least one
/// line); the flag says the page stopped for that with more lines to read.
pub(super) fn query_bounded(
    db: &Database,
    q: &LogQuery,
    max_bytes: usize,
) -> Result<(LogPage, bool), ReportError> {
    let mut bytes = 0usize;
    let mut cut = false;
    let rx = db.begin_read().map_err(storage)?;
    let meta = rx.open_table(META).map_err(storage)?;
    let index = rx.open_table(INSTANCE_INDEX).map_err(storage)?;
    let chunks = rx.open_table(CHUNKS).map_err(storage)?;
    let tip = tables::meta_get(&meta, KEY_NEXT_CURSOR)?.saturating_sub(1);
    let instance = q.instance.as_str();
    let after = q.after.unwrap_or(0);
    let mut lines = Vec::new();
    let mut next = after;
    // The page is full once a line beyond the limit is found: then there is more to read.
    let mut full = q.limit == 0;
    // A chunk that starts at or before `after` may still hold lines after it.
    let start = match index
        .range((instance, 0)..=(instance, after))
        .map_err(storage)?
        .next_back()
    {
        Some(item) => {
            let (k, v) = item.map_err(storage)?;
            let m: ChunkMeta = postcard::from_bytes(v.value()).map_err(corrupt)?;
            let first = k.value().1;
            if first.saturating_add(m.lines) > after.saturating_add(1) {
                first
            } else {
                after.saturating_add(1)
            }
        }
        None => after.saturating_add(1),
    };
    if !full && after < u64::MAX {
        for item in index
            .range((instance, start)..=(instance, u64::MAX))
            .map_err(storage)?
        {
            let (k, v) = item.map_err(storage)?;
            let cursor = k.value().1;
            let m: ChunkMeta = postcard::from_bytes(v.value()).map_err(corrupt)?;
            let matches = q.node.is_none_or(|n| n == m.node)
                && q.component.as_ref().is_none_or(|c| *c == m.component)
                && q.since.is_none_or(|t| m.time >= t);
            if !matches {
                continue;
            }
            // Removed by the retention after the index was read: nothing to show.
            let Some(raw) = chunks.get(cursor).map_err(storage)? else {
                continue;
            };
            let (head, texts, pieces) = tables::decode_chunk(raw.value())?;
            let file = head.stream.to_string();
            let positions = pieces.positions(head.first_line, texts.len());
            for (i, (text, pos)) in texts.into_iter().zip(positions).enumerate() {
                let c = cursor.saturating_add(i as u64);
                if c <= after {
                    continue;
                }
                if lines.len() >= q.limit {
                    full = true;
                    break;
                }
                if bytes >= max_bytes {
                    full = true;
                    cut = true;
                    break;
                }
                bytes = bytes.saturating_add(text.len());
                lines.push(LogLine {
                    cursor: c,
                    node: head.node,
                    component: head.component.clone(),
                    replica: head.replica,
                    file: file.clone(),
                    line: pos.line,
                    part: pos.part,
                    continued: pos.continued,
                    time: head.time,
                    text,
                });
                next = c;
            }
            if full {
                break;
            }
        }
    }
    if !full {
        // Everything stored is read: the next page starts after the tip, whatever matched.
        next = next.max(tip);
    }
    let dropped = drops(&rx, q)?;
    let waiting = waiting(&rx, q)?;
    Ok((
        LogPage {
            lines,
            next,
            dropped,
            waiting,
        },
        cut,
    ))
}

/// The files of the instance's log directories that wait for a slot, per node (as each
/// agent last said), filtered by node and component.
fn waiting(rx: &redb::ReadTransaction, q: &LogQuery) -> Result<Vec<NodeWaiting>, ReportError> {
    let table = match rx.open_table(WAITING) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(storage(e)),
    };
    let mut out = Vec::new();
    for item in table.iter().map_err(storage)? {
        let (k, v) = item.map_err(storage)?;
        let node = tables::node_of(k.value());
        if q.node.is_some_and(|n| n != node) {
            continue;
        }
        let list: Vec<LogsWaiting> = postcard::from_bytes(v.value()).map_err(corrupt)?;
        let replicas: Vec<(Name, u32, u64)> = list
            .into_iter()
            .filter(|w| w.replica.instance == q.instance)
            .filter(|w| {
                q.component
                    .as_ref()
                    .is_none_or(|c| *c == w.replica.component)
            })
            .map(|w| (w.replica.component, w.replica.replica, w.files))
            .collect();
        if !replicas.is_empty() {
            out.push(NodeWaiting { node, replicas });
        }
    }
    Ok(out)
}

/// The drop totals of the instance, per node, filtered by node and component.
fn drops(rx: &redb::ReadTransaction, q: &LogQuery) -> Result<Vec<NodeDrops>, ReportError> {
    let table = rx.open_table(DROPS).map_err(storage)?;
    let instance = q.instance.as_str();
    let mut out = Vec::new();
    for item in table
        .range((instance, 0u128)..=(instance, u128::MAX))
        .map_err(storage)?
    {
        let (k, v) = item.map_err(storage)?;
        let node = tables::node_of(k.value().1);
        if q.node.is_some_and(|n| n != node) {
            continue;
        }
        let record: DropRecord = postcard::from_bytes(v.value()).map_err(corrupt)?;
        let files: Vec<FileDrops> = record
            .spans
            .into_iter()
            .filter(|s| q.component.as_ref().is_none_or(|c| *c == s.component))
            .map(|s| FileDrops {
                component: s.component,
                replica: s.replica,
                file: s.stream.to_string(),
                first_line: s.first_line,
                lines: s.lines,
            })
            .collect();
        let lines = if q.component.is_some() {
            files.iter().map(|f| f.lines).sum()
        } else {
            record.lines
        };
        if lines == 0 {
            continue;
        }
        out.push(NodeDrops {
            node,
            lines,
            batches: record.batches,
            files,
        });
    }
    Ok(out)
}

/// Whether any lines or drops are stored for `instance`.
pub(super) fn has_instance(db: &Database, instance: &Name) -> Result<bool, ReportError> {
    let rx = db.begin_read().map_err(storage)?;
    let i = instance.as_str();
    let index = rx.open_table(INSTANCE_INDEX).map_err(storage)?;
    if index
        .range((i, 0)..=(i, u64::MAX))
        .map_err(storage)?
        .next()
        .is_some()
    {
        return Ok(true);
    }
    let drops = rx.open_table(DROPS).map_err(storage)?;
    Ok(drops
        .range((i, 0u128)..=(i, u128::MAX))
        .map_err(storage)?
        .next()
        .is_some())
}

/// Every node's replica statuses, by instance, component and replica.
pub(super) fn replica_statuses(
    db: &Database,
) -> Result<BTreeMap<NodeId, Vec<ReplicaStatus>>, ReportError> {
    Ok(replica_reports(db)?
        .into_iter()
        .map(|(node, all)| (node, all.into_iter().map(|(s, _)| s).collect()))
        .collect())
}

/// Every node's replica statuses with the time each was stored.
pub(super) fn replica_reports(
    db: &Database,
) -> Result<BTreeMap<NodeId, Vec<super::StoredStatus>>, ReportError> {
    let rx = db.begin_read().map_err(storage)?;
    let table = rx.open_table(REPLICAS).map_err(storage)?;
    let mut out: BTreeMap<NodeId, Vec<super::StoredStatus>> = BTreeMap::new();
    for item in table.iter().map_err(storage)? {
        let (k, v) = item.map_err(storage)?;
        let stored = tables::decode_status(v.value())?;
        out.entry(tables::node_of(k.value().0))
            .or_default()
            .push(stored);
    }
    Ok(out)
}
