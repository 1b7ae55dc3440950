//! [`RedbLog`]: the embedded event log on redb.
//!
//! Tables: `events` (sequence number to the postcard-encoded [`Event`]) and `node_index`
//! ((node id, `node_seq`) to sequence number). One append is one write transaction and one
//! fsync (`Durability::Immediate`), however many events it carries: the engine batches
//! concurrent commands into one append (group commit).

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use skerry_shared::event::Event;
use skerry_shared::ids::NodeId;

use super::{EventLog, LogError};

const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const NODE_INDEX: TableDefinition<(u128, u64), u64> = TableDefinition::new("node_index");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// The on-disk format of this log; bump on an incompatible change.
const FORMAT: u64 = 1;

/// The embedded event log.
#[derive(Debug)]
pub struct RedbLog {
    db: Database,
    /// The last stored sequence number; also serialises appends.
    last: Mutex<u64>,
}

fn storage(e: impl std::fmt::Display) -> LogError {
    LogError::Storage(e.to_string())
}

impl RedbLog {
    /// Opens (or creates) the log at `path`, checking the file's integrity, with a page
    /// cache of `cache_bytes`.
    pub fn open(path: &Path, cache_bytes: usize) -> Result<RedbLog, LogError> {
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .set_check_integrity_on_open(true)
            .create(path)
            .map_err(|e| LogError::Storage(format!("{}: {e}", path.display())))?;
        let tx = db.begin_write().map_err(storage)?;
        {
            let mut meta = tx.open_table(META).map_err(storage)?;
            let format = meta.get("format").map_err(storage)?.map(|g| g.value());
            match format {
                None => {
                    meta.insert("format", FORMAT).map_err(storage)?;
                }
                Some(FORMAT) => {}
                Some(other) => {
                    return Err(LogError::Storage(format!(
                        "{}: log format {other}, this build reads format {FORMAT}",
                        path.display()
                    )));
                }
            }
            tx.open_table(EVENTS).map_err(storage)?;
            tx.open_table(NODE_INDEX).map_err(storage)?;
        }
        tx.commit().map_err(storage)?;
        let last = {
            let rx = db.begin_read().map_err(storage)?;
            let t = rx.open_table(EVENTS).map_err(storage)?;
            t.last().map_err(storage)?.map_or(0, |(k, _)| k.value())
        };
        Ok(RedbLog {
            db,
            last: Mutex::new(last),
        })
    }

    fn decode(seq: u64, bytes: &[u8]) -> Result<Event, LogError> {
        postcard::from_bytes(bytes).map_err(|e| LogError::Corrupt {
            seq,
            reason: e.to_string(),
        })
    }
}

impl EventLog for RedbLog {
    fn append(&self, events: &[Arc<Event>]) -> Result<(), LogError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut last = self.last.lock();
        let mut expected = *last + 1;
        let tx = self.db.begin_write().map_err(storage)?;
        {
            let mut table = tx.open_table(EVENTS).map_err(storage)?;
            let mut index = tx.open_table(NODE_INDEX).map_err(storage)?;
            for e in events {
                if e.seq != expected {
                    return Err(LogError::OutOfOrder {
                        expected,
                        got: e.seq,
                    });
                }
                let bytes = postcard::to_stdvec(e.as_ref()).map_err(storage)?;
                table.insert(e.seq, bytes.as_slice()).map_err(storage)?;
                for ns in &e.node_seqs {
                    index
                        .insert((ns.node.0.as_u128(), ns.node_seq), e.seq)
                        .map_err(storage)?;
                }
                expected += 1;
            }
        }
        tx.commit().map_err(storage)?;
        *last = expected - 1;
        Ok(())
    }

    fn read(&self, after_seq: u64, limit: usize) -> Result<Vec<Event>, LogError> {
        self.read_bounded(after_seq, limit, usize::MAX)
    }

    fn read_bounded(
        &self,
        after_seq: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<Event>, LogError> {
        let rx = self.db.begin_read().map_err(storage)?;
        let table = rx.open_table(EVENTS).map_err(storage)?;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for item in table
            .range(after_seq.saturating_add(1)..)
            .map_err(storage)?
            .take(limit)
        {
            if bytes >= max_bytes {
                break;
            }
            let (k, v) = item.map_err(storage)?;
            bytes = bytes.saturating_add(v.value().len());
            out.push(Self::decode(k.value(), v.value())?);
        }
        Ok(out)
    }

    fn read_node(
        &self,
        node: NodeId,
        after_node_seq: u64,
        limit: usize,
    ) -> Result<Vec<Event>, LogError> {
        self.read_node_bounded(node, after_node_seq, limit, usize::MAX)
    }

    fn read_node_bounded(
        &self,
        node: NodeId,
        after_node_seq: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<Event>, LogError> {
        let rx = self.db.begin_read().map_err(storage)?;
        let index = rx.open_table(NODE_INDEX).map_err(storage)?;
        let table = rx.open_table(EVENTS).map_err(storage)?;
        let id = node.0.as_u128();
        let mut out = Vec::new();
        let mut size = 0usize;
        for item in index
            .range((id, after_node_seq.saturating_add(1))..=(id, u64::MAX))
            .map_err(storage)?
            .take(limit)
        {
            if size >= max_bytes {
                break;
            }
            let (_, seq) = item.map_err(storage)?;
            let seq = seq.value();
            let stored = table
                .get(seq)
                .map_err(storage)?
                .ok_or_else(|| LogError::Corrupt {
                    seq,
                    reason: "indexed for a node but missing".into(),
                })?;
            let raw = stored.value();
            size = size.saturating_add(raw.len());
            out.push(Self::decode(seq, raw)?);
        }
        Ok(out)
    }

    fn last_seq(&self) -> Result<u64, LogError> {
        Ok(*self.last.lock())
    }
}
