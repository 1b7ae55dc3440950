//! The outbox's and the log queue's tables: counters, lanes and cursors.

use super::tables::*;
use super::*;

impl RedbJournal {
    /// A table opened to read; `None` when the file does not have it yet (a journal an older
    /// build wrote, opened read-only).
    pub(super) fn optional_table<K: Key + 'static, V: Value + 'static>(
        &self,
        rx: &ReadTransaction,
        table: TableDefinition<K, V>,
    ) -> Result<Option<ReadOnlyTable<K, V>>, JournalError> {
        match rx.open_table(table) {
            Ok(t) => Ok(Some(t)),
            Err(TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    pub(super) fn read_counters(
        &self,
        meta: &impl ReadableTable<&'static str, u64>,
    ) -> Result<Counters, JournalError> {
        let get = |key: &str| -> Result<Option<u64>, JournalError> {
            Ok(meta.get(key).map_err(|e| self.err(e))?.map(|g| g.value()))
        };
        let fresh = Counters::default();
        Ok(Counters {
            next_seq: get(KEY_OUTBOX_NEXT_SEQ)?.unwrap_or(fresh.next_seq),
            log_bytes: get(KEY_OUTBOX_LOG_BYTES)?.unwrap_or(fresh.log_bytes),
            complete: get(KEY_OUTBOX_COMPLETE)?.filter(|seq| *seq != 0),
            dropped: get(KEY_OUTBOX_DROPPED)?.filter(|seq| *seq != 0),
            waiting: get(KEY_OUTBOX_WAITING)?.filter(|seq| *seq != 0),
            dropped_lines: get(KEY_OUTBOX_DROPPED_LINES)?.unwrap_or(fresh.dropped_lines),
            dropped_batches: get(KEY_OUTBOX_DROPPED_BATCHES)?.unwrap_or(fresh.dropped_batches),
            control_bytes: get(KEY_OUTBOX_CONTROL_BYTES)?.unwrap_or(fresh.control_bytes),
            dropped_reports: get(KEY_OUTBOX_DROPPED_REPORTS)?.unwrap_or(fresh.dropped_reports),
            dropped_runs: get(KEY_OUTBOX_DROPPED_RUNS)?.unwrap_or(fresh.dropped_runs),
        })
    }

    pub(super) fn decode_entry(
        &self,
        lane: Lane,
        seq: u64,
        bytes: &[u8],
    ) -> Result<OutboxBody, JournalError> {
        let body: OutboxBody = postcard::from_bytes(bytes)
            .map_err(|e| self.corrupt(format!("outbox entry {seq} does not decode: {e}")))?;
        outbox::check_lane(lane, seq, &body, |reason| self.corrupt(reason))?;
        Ok(body)
    }
}

/// The outbox's tables in one write transaction, for the rules in [`outbox`] (its
/// `OutboxStore`).
pub(super) struct RedbOutbox<'j, 't> {
    journal: &'j RedbJournal,
    meta: Table<'t, &'static str, u64>,
    control: Table<'t, u64, &'static [u8]>,
    logs: Table<'t, u64, &'static [u8]>,
    replicas: Table<'t, (&'static str, &'static str, u32), u64>,
    cursors: Table<'t, &'static str, &'static [u8]>,
}

impl<'j, 't> RedbOutbox<'j, 't> {
    pub(super) fn open(
        journal: &'j RedbJournal,
        tx: &'t WriteTransaction,
    ) -> Result<Self, JournalError> {
        let e = |e: TableError| journal.err(e);
        Ok(Self {
            journal,
            meta: tx.open_table(META).map_err(e)?,
            control: tx.open_table(OUTBOX_CONTROL).map_err(e)?,
            logs: tx.open_table(OUTBOX_LOGS).map_err(e)?,
            replicas: tx.open_table(OUTBOX_REPLICAS).map_err(e)?,
            cursors: tx.open_table(LOG_CURSORS).map_err(e)?,
        })
    }

    pub(super) fn s(&self) -> impl Fn(::redb::StorageError) -> JournalError + '_ {
        |e| self.journal.err(e)
    }
}

impl OutboxStore for RedbOutbox<'_, '_> {
    fn counters(&mut self) -> Result<Counters, JournalError> {
        self.journal.read_counters(&self.meta)
    }

    fn set_counters(&mut self, c: &Counters) -> Result<(), JournalError> {
        let s = |e: ::redb::StorageError| self.journal.err(e);
        for (key, value) in [
            (KEY_OUTBOX_NEXT_SEQ, c.next_seq),
            (KEY_OUTBOX_LOG_BYTES, c.log_bytes),
            (KEY_OUTBOX_COMPLETE, c.complete.unwrap_or(0)),
            (KEY_OUTBOX_DROPPED, c.dropped.unwrap_or(0)),
            (KEY_OUTBOX_WAITING, c.waiting.unwrap_or(0)),
            (KEY_OUTBOX_DROPPED_LINES, c.dropped_lines),
            (KEY_OUTBOX_DROPPED_BATCHES, c.dropped_batches),
            (KEY_OUTBOX_CONTROL_BYTES, c.control_bytes),
            (KEY_OUTBOX_DROPPED_REPORTS, c.dropped_reports),
            (KEY_OUTBOX_DROPPED_RUNS, c.dropped_runs),
        ] {
            self.meta.insert(key, value).map_err(s)?;
        }
        Ok(())
    }

    fn replica(&mut self, key: &ReplicaKey) -> Result<Option<u64>, JournalError> {
        Ok(self
            .replicas
            .get(replica_key(key))
            .map_err(self.s())?
            .map(|g| g.value()))
    }

    fn set_replica(&mut self, key: &ReplicaKey, seq: Option<u64>) -> Result<(), JournalError> {
        let s = |e: ::redb::StorageError| self.journal.err(e);
        match seq {
            Some(seq) => self.replicas.insert(replica_key(key), seq).map(drop),
            None => self.replicas.remove(replica_key(key)).map(drop),
        }
        .map_err(s)
    }

    fn take_replicas(&mut self) -> Result<Vec<u64>, JournalError> {
        let s = |e: ::redb::StorageError| self.journal.err(e);
        let mut seqs = Vec::new();
        for item in self.replicas.iter().map_err(s)? {
            seqs.push(item.map_err(s)?.1.value());
        }
        self.replicas.retain(|_, _| false).map_err(s)?;
        Ok(seqs)
    }

    fn insert(
        &mut self,
        seq: u64,
        body: &OutboxBody,
        encoded: Vec<u8>,
    ) -> Result<(), JournalError> {
        let s = |e: ::redb::StorageError| self.journal.err(e);
        let table = match body.lane() {
            Lane::Control => &mut self.control,
            Lane::Logs => &mut self.logs,
        };
        table.insert(seq, encoded.as_slice()).map_err(s)?;
        Ok(())
    }

    fn take_control(&mut self, seq: u64) -> Result<Option<OutboxBody>, JournalError> {
        let s = |e: ::redb::StorageError| self.journal.err(e);
        let Some(bytes) = self.control.remove(seq).map_err(s)? else {
            return Ok(None);
        };
        self.journal
            .decode_entry(Lane::Control, seq, bytes.value())
            .map(Some)
    }

    fn take_log(&mut self, seq: u64) -> Result<Option<u64>, JournalError> {
        let s = |e: ::redb::StorageError| self.journal.err(e);
        Ok(self
            .logs
            .remove(seq)
            .map_err(s)?
            .map(|bytes| bytes.value().len() as u64))
    }

    fn take_oldest_log(&mut self) -> Result<Option<(u64, u64, LogBatch)>, JournalError> {
        let s = |e: ::redb::StorageError| self.journal.err(e);
        let Some((k, v)) = self.logs.pop_first().map_err(s)? else {
            return Ok(None);
        };
        let (seq, bytes) = (k.value(), v.value());
        match self.journal.decode_entry(Lane::Logs, seq, bytes)? {
            OutboxBody::Logs(batch) => Ok(Some((seq, bytes.len() as u64, batch))),
            _ => Err(self
                .journal
                .corrupt(format!("outbox entry {seq} is not a log batch"))),
        }
    }

    fn oldest_job_runs(&mut self, limit: usize) -> Result<Vec<u64>, JournalError> {
        let s = |e: ::redb::StorageError| self.journal.err(e);
        let mut seqs = Vec::new();
        for item in self.control.iter().map_err(s)? {
            let (k, v) = item.map_err(s)?;
            let seq = k.value();
            if matches!(
                self.journal.decode_entry(Lane::Control, seq, v.value())?,
                OutboxBody::JobRun(_)
            ) {
                seqs.push(seq);
                if seqs.len() >= limit {
                    break;
                }
            }
        }
        Ok(seqs)
    }

    fn set_cursor(&mut self, name: &str, value: Option<&[u8]>) -> Result<(), JournalError> {
        let s = |e: ::redb::StorageError| self.journal.err(e);
        match value {
            Some(value) => self.cursors.insert(name, value).map(drop),
            None => self.cursors.remove(name).map(drop),
        }
        .map_err(s)
    }

    fn corrupt(&self, reason: String) -> JournalError {
        self.journal.corrupt(reason)
    }
}
