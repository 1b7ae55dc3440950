//! The queueing of one round: the lines packed into zstd batches of at most
//! [`BATCH_RAW_BYTES`] ([`pack`]), pushed to the journal with the cursors in one
//! transaction, the cursors moved on after the commit, and every source back at its
//! committed cursor when the push failed.

use std::collections::BTreeMap;
use std::sync::Arc;

use skerry_shared::outbox::{LogBatch, LogChunk, LogsWaiting, MAX_WAITING_REPLICAS, OutboxBody};
use skerry_shared::planner::ReplicaKey;

use super::super::tail::DirTailer;
use super::{BATCH_RAW_BYTES, Collected, Collector, Reader, Round};
use crate::journal::{JournalError, OutboxPush};

impl Collector {
    /// The queueing of one round: `round`'s lines packed into batches, with the files
    /// waiting for a slot when that changed, pushed with the cursors in one journal
    /// transaction; the cursors move on only after that commit.
    pub(super) async fn queue(&mut self, round: Round) -> Result<Collected, JournalError> {
        let Round {
            chunks,
            cursors,
            more,
        } = round;
        let lines: u64 = chunks.iter().map(|c| c.lines.len() as u64).sum();
        let mut bodies = pack(chunks)?;
        // Files waiting for a slot: said to the cloud when that changes.
        let mut waiting: BTreeMap<ReplicaKey, u64> = BTreeMap::new();
        for s in self.sources.values().filter(|s| s.waiting > 0) {
            *waiting.entry(s.key.clone()).or_insert(0) += s.waiting;
        }
        let waiting_changed = waiting != self.reported_waiting;
        if waiting_changed {
            let list: Vec<LogsWaiting> = waiting
                .iter()
                .take(MAX_WAITING_REPLICAS)
                .map(|(replica, &files)| LogsWaiting {
                    replica: replica.clone(),
                    files,
                })
                .collect();
            let total: u64 = waiting.values().sum();
            if total > 0 {
                tracing::warn!(
                    files = total,
                    limit = super::super::tail::MAX_TRACKED,
                    "log files wait for a slot: a log_dir holds more files than are read at once (reported)"
                );
            }
            bodies.push(OutboxBody::LogsWaiting(list));
        }
        let batches = bodies.len();
        let push = OutboxPush { bodies, cursors };
        let (journal, quota) = (Arc::clone(&self.journal), self.quota);
        let pushed = tokio::task::spawn_blocking(move || {
            let r = journal.outbox_push(&push, quota);
            (r, push)
        })
        .await
        .map_err(|e| JournalError::Storage {
            journal: "log collector".into(),
            reason: e.to_string(),
        })?;
        match pushed {
            (Ok(p), push) => {
                if waiting_changed {
                    self.reported_waiting = waiting;
                }
                for (id, cursor) in push.cursors {
                    match cursor {
                        Some(c) => {
                            self.committed.insert(id, c);
                        }
                        None => {
                            self.committed.remove(&id);
                        }
                    }
                }
                // Container output moves on to what was just committed.
                for (id, source) in &mut self.sources {
                    if let Reader::Output { cursor, .. } = &mut source.reader
                        && let Some(c) = self
                            .committed
                            .get(id)
                            .and_then(|b| postcard::from_bytes(b).ok())
                    {
                        *cursor = c;
                    }
                }
                if p.dropped.lines() > 0 {
                    tracing::warn!(
                        lines = p.dropped.lines(),
                        batches = p.dropped.batches,
                        "the log quota is full: dropped the oldest queued log lines (counted and reported)"
                    );
                }
                Ok(Collected {
                    lines,
                    batches,
                    dropped: p.dropped,
                    more,
                })
            }
            (Err(e), _) => {
                // Back to the committed cursors: those lines are read again next round.
                self.rewind();
                Err(e)
            }
        }
    }

    /// Every source back at its committed cursor.
    fn rewind(&mut self) {
        for (id, source) in &mut self.sources {
            let state = self.committed.get(id).map(Vec::as_slice);
            source.reader = match &source.reader {
                Reader::Dir(t) => {
                    let tailer = DirTailer::new(t.dir().to_owned(), state);
                    Reader::Dir(Box::new(match t.filter() {
                        Some(f) => tailer.with_filter(f.clone()),
                        None => tailer,
                    }))
                }
                Reader::Output { container, .. } => Reader::Output {
                    container: container.clone(),
                    cursor: state
                        .and_then(|b| postcard::from_bytes(b).ok())
                        .unwrap_or_default(),
                },
            };
        }
    }
}

/// Packs chunks into batches of at most [`BATCH_RAW_BYTES`] of text each (a chunk larger
/// than that is split).
fn pack(chunks: Vec<LogChunk>) -> Result<Vec<OutboxBody>, JournalError> {
    let mut bodies = Vec::new();
    let mut batch: Vec<LogChunk> = Vec::new();
    let mut bytes = 0usize;
    let flush =
        |batch: &mut Vec<LogChunk>, bodies: &mut Vec<OutboxBody>| -> Result<(), JournalError> {
            if batch.is_empty() {
                return Ok(());
            }
            let packed = LogBatch::pack(batch).map_err(|e| JournalError::Storage {
                journal: "log collector".into(),
                reason: e.to_string(),
            })?;
            bodies.push(OutboxBody::Logs(packed));
            batch.clear();
            Ok(())
        };
    for chunk in chunks {
        let mut rest = chunk;
        while !rest.lines.is_empty() {
            // Take the lines that fit what is left of the batch (at least one).
            let mut take = 0;
            let mut size = 0;
            for l in &rest.lines {
                if take > 0 && bytes + size + l.len() + 1 > BATCH_RAW_BYTES {
                    break;
                }
                size += l.len() + 1;
                take += 1;
            }
            if take == 0 || (bytes > 0 && bytes + size > BATCH_RAW_BYTES) {
                flush(&mut batch, &mut bodies)?;
                bytes = 0;
                continue;
            }
            // The rest goes on where these stop (a long line's pieces keep its number).
            let tail = rest.split_off(take);
            bytes += size;
            batch.push(std::mem::replace(&mut rest, tail));
            if bytes >= BATCH_RAW_BYTES {
                flush(&mut batch, &mut bodies)?;
                bytes = 0;
            }
        }
    }
    flush(&mut batch, &mut bodies)?;
    Ok(bodies)
}

#[cfg(test)]
mod tests {
    use skerry_shared::clock::Timestamp;
    use skerry_shared::ids::Name;
    use skerry_shared::outbox::{LogSource, LogStream};

    use super::*;

    fn chunk(first: u64, n: usize, width: usize) -> LogChunk {
        LogChunk {
            source: LogSource {
                instance: Name::parse("w").unwrap(),
                component: Name::parse("c").unwrap(),
                replica: 0,
                stream: LogStream::Stdout,
            },
            first_line: first,
            time: Timestamp(0),
            lines: (0..n)
                .map(|i| format!("{:>width$}", first + i as u64))
                .collect(),
            pieces: Default::default(),
        }
    }

    #[test]
    fn batches_keep_to_their_size_and_every_line() {
        let bodies = pack(vec![chunk(1, 10_000, 63), chunk(10_001, 3, 10)]).unwrap();
        assert!(bodies.len() >= 5, "{}", bodies.len());
        let mut next = 1;
        for b in &bodies {
            let OutboxBody::Logs(batch) = b else { panic!() };
            let chunks = batch.unpack().unwrap();
            let raw: usize = chunks.iter().map(LogChunk::text_bytes).sum();
            assert!(raw <= BATCH_RAW_BYTES, "{raw}");
            for c in chunks {
                assert_eq!(c.first_line, next);
                next += c.lines.len() as u64;
            }
        }
        assert_eq!(next, 10_004);
    }
}
