//! [`Journal`] for [`RedbJournal`].

use super::tables::*;
use super::*;

use super::outbox_store::RedbOutbox;

impl Journal for RedbJournal {
    fn load(&self) -> Result<JournalState, JournalError> {
        self.with_db(|db| {
            let rx = db.begin_read().map_err(|e| self.err(e))?;
            let meta = rx.open_table(META).map_err(|e| self.err(e))?;
            let epoch = meta
                .get(KEY_EPOCH)
                .map_err(|e| self.err(e))?
                .map(|g| g.value())
                .ok_or_else(|| self.corrupt("the epoch is missing".into()))?;
            let state = rx.open_table(STATE).map_err(|e| self.err(e))?;
            let desired = self.stored_desired(&state)?;
            let digests = rx.open_table(DIGESTS).map_err(|e| self.err(e))?;
            let mut recent = std::collections::BTreeMap::new();
            for item in digests
                .iter()
                .map_err(|e| self.err(e))?
                .rev()
                .take(RECENT_DIGESTS)
            {
                let (k, v) = item.map_err(|e| self.err(e))?;
                recent.insert(k.value(), Digest(v.value()));
            }
            let memos = self.load_memos(&rx)?;
            Ok(JournalState {
                desired,
                epoch,
                memos,
                recent,
            })
        })
    }

    fn commit(&self, batch: &Commit) -> Result<(), JournalError> {
        let desired = postcard::to_stdvec(&*batch.desired).map_err(|e| {
            JournalError::InvalidCommit(format!("the desired state does not encode: {e}"))
        })?;
        let mut encoded = Vec::with_capacity(batch.events.len());
        for ev in &batch.events {
            let bytes = postcard::to_stdvec(ev).map_err(|e| {
                JournalError::InvalidCommit(format!("event {} does not encode: {e}", ev.node_seq))
            })?;
            encoded.push((ev.node_seq, bytes, ev.digest()));
        }
        self.write(|tx| {
            let e = |e: ::redb::TableError| self.err(e);
            let s = |e: ::redb::StorageError| self.err(e);
            let mut meta = tx.open_table(META).map_err(e)?;
            let applied = meta.get(KEY_APPLIED).map_err(s)?.map_or(0, |g| g.value());
            batch.check_continues(applied)?;
            let mut state = tx.open_table(STATE).map_err(e)?;
            let mut events = tx.open_table(EVENTS).map_err(e)?;
            let mut digests = tx.open_table(DIGESTS).map_err(e)?;
            if let Some(snapshot) = &batch.snapshot {
                events
                    .retain_in(..=snapshot.node_seq, |_, _| false)
                    .map_err(s)?;
                digests
                    .retain_in(..=snapshot.node_seq, |_, _| false)
                    .map_err(s)?;
            }
            for (node_seq, bytes, digest) in &encoded {
                events.insert(*node_seq, bytes.as_slice()).map_err(s)?;
                digests.insert(*node_seq, digest.0).map_err(s)?;
            }
            let stored = events.len().map_err(s)?;
            let excess = stored.saturating_sub(self.retention as u64);
            for _ in 0..excess {
                let first = events.pop_first().map_err(s)?.map(|(k, _)| k.value());
                if let Some(seq) = first {
                    digests.remove(seq).map_err(s)?;
                }
            }
            state.insert(KEY_DESIRED, desired.as_slice()).map_err(s)?;
            meta.insert(KEY_APPLIED, batch.through()).map_err(s)?;
            drop((meta, state, events, digests));
            self.write_memos(tx, &batch.memos)
        })
    }

    fn put_memos(&self, changes: &MemoChanges) -> Result<(), JournalError> {
        if changes.is_empty() {
            return Ok(());
        }
        self.write(|tx| self.write_memos(tx, changes))
    }

    fn event(&self, node_seq: u64) -> Result<Option<NodeEvent>, JournalError> {
        self.with_db(|db| {
            let rx = db.begin_read().map_err(|e| self.err(e))?;
            let t = rx.open_table(EVENTS).map_err(|e| self.err(e))?;
            let Some(bytes) = t.get(node_seq).map_err(|e| self.err(e))? else {
                return Ok(None);
            };
            self.decode_event(node_seq, bytes.value()).map(Some)
        })
    }

    fn events(&self, after: u64, limit: usize) -> Result<Vec<NodeEvent>, JournalError> {
        let Some(start) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        self.with_db(|db| {
            let rx = db.begin_read().map_err(|e| self.err(e))?;
            let t = rx.open_table(EVENTS).map_err(|e| self.err(e))?;
            let mut out = Vec::new();
            for item in t.range(start..).map_err(|e| self.err(e))?.take(limit) {
                let (k, v) = item.map_err(|e| self.err(e))?;
                out.push(self.decode_event(k.value(), v.value())?);
            }
            Ok(out)
        })
    }

    fn event_span(&self) -> Result<Option<EventSpan>, JournalError> {
        self.with_db(|db| {
            let rx = db.begin_read().map_err(|e| self.err(e))?;
            let t = rx.open_table(EVENTS).map_err(|e| self.err(e))?;
            let first = t.first().map_err(|e| self.err(e))?.map(|(k, _)| k.value());
            let last = t.last().map_err(|e| self.err(e))?.map(|(k, _)| k.value());
            let count = t.len().map_err(|e| self.err(e))?;
            Ok(match (first, last) {
                (Some(first), Some(last)) => Some(EventSpan { first, last, count }),
                _ => None,
            })
        })
    }

    fn outbox_push(&self, push: &OutboxPush, log_quota: u64) -> Result<Pushed, JournalError> {
        self.write(|tx| {
            let mut store = RedbOutbox::open(self, tx)?;
            let control_quota = self.outbox_quota.load(std::sync::atomic::Ordering::Relaxed);
            let log_quota =
                log_quota.min(self.log_ceiling.load(std::sync::atomic::Ordering::Relaxed));
            outbox::push(&mut store, push, log_quota, control_quota)
        })
    }

    fn set_log_ceiling(&self, bytes: u64) {
        self.log_ceiling
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    fn set_outbox_quota(&self, bytes: u64) {
        self.outbox_quota
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    fn outbox_read(
        &self,
        lane: Lane,
        after: u64,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<Vec<OutboxEntry>, JournalError> {
        let Some(start) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        let table = match lane {
            Lane::Control => OUTBOX_CONTROL,
            Lane::Logs => OUTBOX_LOGS,
        };
        self.with_db(|db| {
            let rx = db.begin_read().map_err(|e| self.err(e))?;
            let Some(t) = self.optional_table(&rx, table)? else {
                return Ok(Vec::new());
            };
            let mut limit = ReadLimit::new(max_entries, max_bytes);
            let mut out = Vec::new();
            for item in t.range(start..).map_err(|e| self.err(e))? {
                let (k, v) = item.map_err(|e| self.err(e))?;
                let (seq, bytes) = (k.value(), v.value());
                if !limit.admits(bytes.len()) {
                    break;
                }
                let body = self.decode_entry(lane, seq, bytes)?;
                out.push(OutboxEntry { seq, body });
            }
            Ok(out)
        })
    }

    fn outbox_ack(&self, seqs: &[u64]) -> Result<(), JournalError> {
        if seqs.is_empty() {
            return Ok(());
        }
        self.write(|tx| {
            let mut store = RedbOutbox::open(self, tx)?;
            outbox::ack(&mut store, seqs)
        })
    }

    fn outbox_stats(&self) -> Result<OutboxStats, JournalError> {
        self.with_db(|db| {
            let rx = db.begin_read().map_err(|e| self.err(e))?;
            let meta = rx.open_table(META).map_err(|e| self.err(e))?;
            let counters = self.read_counters(&meta)?;
            let mut lens = [0; 2];
            for (len, table) in lens.iter_mut().zip([OUTBOX_CONTROL, OUTBOX_LOGS]) {
                if let Some(t) = self.optional_table(&rx, table)? {
                    *len = t.len().map_err(|e| self.err(e))?;
                }
            }
            Ok(counters.stats(lens[0], lens[1]))
        })
    }

    fn log_cursors(&self) -> Result<BTreeMap<String, Vec<u8>>, JournalError> {
        self.with_db(|db| {
            let rx = db.begin_read().map_err(|e| self.err(e))?;
            let mut out = BTreeMap::new();
            let Some(t) = self.optional_table(&rx, LOG_CURSORS)? else {
                return Ok(out);
            };
            for item in t.iter().map_err(|e| self.err(e))? {
                let (k, v) = item.map_err(|e| self.err(e))?;
                out.insert(k.value().to_owned(), v.value().to_vec());
            }
            Ok(out)
        })
    }
}
