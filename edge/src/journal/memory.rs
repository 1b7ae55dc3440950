//! [`MemoryJournal`]: the journal's rules without I/O, for the fleet simulator and tests.
//!
//! One redb database costs about 1.1 MiB even in memory, so a simulator with thousands of
//! agents keeps their journals here. It follows the same rules as
//! [`RedbJournal`](super::RedbJournal) (the shared tests in `edge/tests/journal.rs` run on
//! both), and it can be told to fail its writes, like a full disk.
//!
//! The outbox keeps each entry's body with its encoded size (the quota counts that). A push
//! that fails halfway is undone, as a redb transaction that is not committed would be.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use skerry_shared::event::NodeEvent;
use skerry_shared::hash::Digest;
use skerry_shared::outbox::{Lane, LogBatch, OutboxBody, OutboxEntry};
use skerry_shared::planner::ReplicaKey;
use skerry_shared::reducer::NodeDesired;

use super::outbox::{self, Counters, OutboxStore, ReadLimit};
use super::{
    Commit, DEFAULT_RETENTION, EventSpan, Journal, JournalError, JournalState, MemoChanges, Memos,
    OutboxPush, OutboxStats, Pushed, RECENT_DIGESTS,
};

/// A journal in memory.
#[derive(Debug)]
pub struct MemoryJournal {
    inner: Mutex<Inner>,
    retention: usize,
    failing: AtomicBool,
    /// Bytes of control entries the outbox keeps (none by default).
    outbox_quota: AtomicU64,
    /// The cap on the log quota (none by default).
    log_ceiling: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    epoch: u64,
    desired: Option<NodeDesired>,
    events: BTreeMap<u64, (NodeEvent, Digest)>,
    memos: Memos,
    outbox: Outbox,
}

/// The outbox's tables.
#[derive(Debug, Default)]
struct Outbox {
    control: BTreeMap<u64, Stored>,
    logs: BTreeMap<u64, Stored>,
    replicas: BTreeMap<ReplicaKey, u64>,
    cursors: BTreeMap<String, Vec<u8>>,
    counters: Counters,
}

/// An entry's body and its encoded size.
#[derive(Debug)]
struct Stored {
    body: OutboxBody,
    size: u64,
}

impl Outbox {
    fn lane(&self, lane: Lane) -> &BTreeMap<u64, Stored> {
        match lane {
            Lane::Control => &self.control,
            Lane::Logs => &self.logs,
        }
    }

    fn lane_mut(&mut self, lane: Lane) -> &mut BTreeMap<u64, Stored> {
        match lane {
            Lane::Control => &mut self.control,
            Lane::Logs => &mut self.logs,
        }
    }
}

/// A change to the outbox, as it is undone.
#[derive(Debug)]
enum Undo {
    Counters(Counters),
    Replica(ReplicaKey, Option<u64>),
    Replicas(BTreeMap<ReplicaKey, u64>),
    Inserted(Lane, u64),
    Taken(Lane, u64, Stored),
    Cursor(String, Option<Vec<u8>>),
}

/// The outbox in one "transaction": every change is logged so that [`Tx::rollback`] puts
/// everything back.
#[derive(Debug)]
struct Tx<'a> {
    outbox: &'a mut Outbox,
    undo: Vec<Undo>,
}

impl<'a> Tx<'a> {
    fn new(outbox: &'a mut Outbox) -> Self {
        Self {
            outbox,
            undo: Vec::new(),
        }
    }

    fn rollback(self) {
        let o = self.outbox;
        for undo in self.undo.into_iter().rev() {
            match undo {
                Undo::Counters(c) => o.counters = c,
                Undo::Replica(key, Some(seq)) => {
                    o.replicas.insert(key, seq);
                }
                Undo::Replica(key, None) => {
                    o.replicas.remove(&key);
                }
                Undo::Replicas(all) => o.replicas = all,
                Undo::Inserted(lane, seq) => {
                    o.lane_mut(lane).remove(&seq);
                }
                Undo::Taken(lane, seq, stored) => {
                    o.lane_mut(lane).insert(seq, stored);
                }
                Undo::Cursor(name, Some(value)) => {
                    o.cursors.insert(name, value);
                }
                Undo::Cursor(name, None) => {
                    o.cursors.remove(&name);
                }
            }
        }
    }

    fn take(&mut self, lane: Lane, seq: u64) -> Option<&Stored> {
        let stored = self.outbox.lane_mut(lane).remove(&seq)?;
        self.undo.push(Undo::Taken(lane, seq, stored));
        match self.undo.last() {
            Some(Undo::Taken(_, _, stored)) => Some(stored),
            _ => None,
        }
    }
}

impl OutboxStore for Tx<'_> {
    fn counters(&mut self) -> Result<Counters, JournalError> {
        Ok(self.outbox.counters)
    }

    fn set_counters(&mut self, counters: &Counters) -> Result<(), JournalError> {
        let old = std::mem::replace(&mut self.outbox.counters, *counters);
        self.undo.push(Undo::Counters(old));
        Ok(())
    }

    fn replica(&mut self, key: &ReplicaKey) -> Result<Option<u64>, JournalError> {
        Ok(self.outbox.replicas.get(key).copied())
    }

    fn set_replica(&mut self, key: &ReplicaKey, seq: Option<u64>) -> Result<(), JournalError> {
        let old = match seq {
            Some(seq) => self.outbox.replicas.insert(key.clone(), seq),
            None => self.outbox.replicas.remove(key),
        };
        self.undo.push(Undo::Replica(key.clone(), old));
        Ok(())
    }

    fn take_replicas(&mut self) -> Result<Vec<u64>, JournalError> {
        let all = std::mem::take(&mut self.outbox.replicas);
        let seqs = all.values().copied().collect();
        self.undo.push(Undo::Replicas(all));
        Ok(seqs)
    }

    fn insert(
        &mut self,
        seq: u64,
        body: &OutboxBody,
        encoded: Vec<u8>,
    ) -> Result<(), JournalError> {
        let lane = body.lane();
        let stored = Stored {
            body: body.clone(),
            size: encoded.len() as u64,
        };
        if let Some(old) = self.outbox.lane_mut(lane).insert(seq, stored) {
            self.undo.push(Undo::Taken(lane, seq, old));
        }
        self.undo.push(Undo::Inserted(lane, seq));
        Ok(())
    }

    fn take_control(&mut self, seq: u64) -> Result<Option<OutboxBody>, JournalError> {
        Ok(self.take(Lane::Control, seq).map(|s| s.body.clone()))
    }

    fn take_log(&mut self, seq: u64) -> Result<Option<u64>, JournalError> {
        Ok(self.take(Lane::Logs, seq).map(|s| s.size))
    }

    fn oldest_job_runs(&mut self, limit: usize) -> Result<Vec<u64>, JournalError> {
        Ok(self
            .outbox
            .control
            .iter()
            .filter(|(_, stored)| matches!(stored.body, OutboxBody::JobRun(_)))
            .map(|(seq, _)| *seq)
            .take(limit)
            .collect())
    }

    fn take_oldest_log(&mut self) -> Result<Option<(u64, u64, LogBatch)>, JournalError> {
        let Some(seq) = self.outbox.logs.keys().next().copied() else {
            return Ok(None);
        };
        match self.take(Lane::Logs, seq) {
            Some(Stored {
                body: OutboxBody::Logs(batch),
                size,
            }) => Ok(Some((seq, *size, batch.clone()))),
            _ => Err(self.corrupt(format!("outbox entry {seq} is not a log batch"))),
        }
    }

    fn set_cursor(&mut self, name: &str, value: Option<&[u8]>) -> Result<(), JournalError> {
        let old = match value {
            Some(v) => self.outbox.cursors.insert(name.to_owned(), v.to_vec()),
            None => self.outbox.cursors.remove(name),
        };
        self.undo.push(Undo::Cursor(name.to_owned(), old));
        Ok(())
    }

    fn corrupt(&self, reason: String) -> JournalError {
        JournalError::Corrupt {
            journal: "memory".into(),
            reason,
        }
    }
}

impl Default for MemoryJournal {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryJournal {
    /// An empty journal with a random epoch.
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                epoch: rand::random::<u64>().max(1),
                desired: None,
                events: BTreeMap::new(),
                memos: Memos::default(),
                outbox: Outbox::default(),
            }),
            retention: DEFAULT_RETENTION,
            failing: AtomicBool::new(false),
            outbox_quota: AtomicU64::new(u64::MAX),
            log_ceiling: AtomicU64::new(u64::MAX),
        }
    }

    /// Keeps at most `events` events (the oldest are pruned at each commit).
    pub fn with_retention(mut self, events: usize) -> Self {
        self.retention = events;
        self
    }

    /// While `true`, every write fails as on a full disk and changes nothing.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    fn check_writable(&self) -> Result<(), JournalError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(JournalError::DiskFull {
                journal: "memory".into(),
            });
        }
        Ok(())
    }
}

impl Journal for MemoryJournal {
    fn load(&self) -> Result<JournalState, JournalError> {
        let inner = self.inner.lock();
        let recent = inner
            .events
            .iter()
            .rev()
            .take(RECENT_DIGESTS)
            .map(|(seq, (_, digest))| (*seq, *digest))
            .collect();
        Ok(JournalState {
            desired: inner.desired.clone(),
            epoch: inner.epoch,
            memos: inner.memos.clone(),
            recent,
        })
    }

    fn commit(&self, batch: &Commit) -> Result<(), JournalError> {
        self.check_writable()?;
        let mut inner = self.inner.lock();
        let applied = inner.desired.as_ref().map_or(0, |d| d.applied);
        batch.check_continues(applied)?;
        if let Some(s) = &batch.snapshot {
            inner.events = inner.events.split_off(&s.node_seq.saturating_add(1));
        }
        for ev in &batch.events {
            inner.events.insert(ev.node_seq, (ev.clone(), ev.digest()));
        }
        while inner.events.len() > self.retention {
            inner.events.pop_first();
        }
        inner.desired = Some((*batch.desired).clone());
        inner.memos.apply_all(&batch.memos);
        Ok(())
    }

    fn put_memos(&self, changes: &MemoChanges) -> Result<(), JournalError> {
        self.check_writable()?;
        self.inner.lock().memos.apply_all(changes);
        Ok(())
    }

    fn event(&self, node_seq: u64) -> Result<Option<NodeEvent>, JournalError> {
        Ok(self
            .inner
            .lock()
            .events
            .get(&node_seq)
            .map(|(ev, _)| ev.clone()))
    }

    fn events(&self, after: u64, limit: usize) -> Result<Vec<NodeEvent>, JournalError> {
        let Some(start) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        Ok(self
            .inner
            .lock()
            .events
            .range(start..)
            .take(limit)
            .map(|(_, (ev, _))| ev.clone())
            .collect())
    }

    fn event_span(&self) -> Result<Option<EventSpan>, JournalError> {
        let inner = self.inner.lock();
        let (Some((first, _)), Some((last, _))) = (
            inner.events.first_key_value(),
            inner.events.last_key_value(),
        ) else {
            return Ok(None);
        };
        Ok(Some(EventSpan {
            first: *first,
            last: *last,
            count: inner.events.len() as u64,
        }))
    }

    fn outbox_push(&self, push: &OutboxPush, log_quota: u64) -> Result<Pushed, JournalError> {
        self.check_writable()?;
        let mut inner = self.inner.lock();
        let mut tx = Tx::new(&mut inner.outbox);
        let control_quota = self.outbox_quota.load(Ordering::Relaxed);
        let log_quota = log_quota.min(self.log_ceiling.load(Ordering::Relaxed));
        let pushed = outbox::push(&mut tx, push, log_quota, control_quota);
        if pushed.is_err() {
            tx.rollback();
        }
        pushed
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
        let inner = self.inner.lock();
        let mut limit = ReadLimit::new(max_entries, max_bytes);
        Ok(inner
            .outbox
            .lane(lane)
            .range(start..)
            .take_while(|(_, s)| limit.admits(usize::try_from(s.size).unwrap_or(usize::MAX)))
            .map(|(seq, s)| OutboxEntry {
                seq: *seq,
                body: s.body.clone(),
            })
            .collect())
    }

    fn outbox_ack(&self, seqs: &[u64]) -> Result<(), JournalError> {
        // As on redb: acknowledging nothing writes nothing.
        if seqs.is_empty() {
            return Ok(());
        }
        self.check_writable()?;
        let mut inner = self.inner.lock();
        let mut tx = Tx::new(&mut inner.outbox);
        let acked = outbox::ack(&mut tx, seqs);
        if acked.is_err() {
            tx.rollback();
        }
        acked
    }

    fn set_outbox_quota(&self, bytes: u64) {
        self.outbox_quota.store(bytes, Ordering::Relaxed);
    }

    fn set_log_ceiling(&self, bytes: u64) {
        self.log_ceiling.store(bytes, Ordering::Relaxed);
    }

    fn outbox_stats(&self) -> Result<OutboxStats, JournalError> {
        let inner = self.inner.lock();
        let o = &inner.outbox;
        Ok(o.counters
            .stats(o.control.len() as u64, o.logs.len() as u64))
    }

    fn log_cursors(&self) -> Result<BTreeMap<String, Vec<u8>>, JournalError> {
        Ok(self.inner.lock().outbox.cursors.clone())
    }
}

#[cfg(test)]
mod tests {
    use skerry_shared::clock::Timestamp;
    use skerry_shared::ids::Name;
    use skerry_shared::outbox::{LogChunk, LogSource, LogStream, LogsDropped};

    use super::*;

    fn logs(first: u64) -> OutboxBody {
        let source = LogSource {
            instance: Name::parse("w1").unwrap(),
            component: Name::parse("web").unwrap(),
            replica: 0,
            stream: LogStream::Stdout,
        };
        let chunk = LogChunk {
            source,
            first_line: first,
            time: Timestamp(0),
            lines: (0..20).map(|i| format!("line {}", first + i)).collect(),
            pieces: Default::default(),
        };
        OutboxBody::Logs(LogBatch::pack(&[chunk]).unwrap())
    }

    fn replica() -> OutboxBody {
        let w = Name::parse("w1").unwrap();
        OutboxBody::Replica {
            key: ReplicaKey::new(&w, &w, 0),
            status: None,
        }
    }

    /// A push that fails halfway (after every kind of change) is undone entirely.
    #[test]
    fn a_rolled_back_push_changes_nothing() {
        let j = MemoryJournal::new();
        let dropped = OutboxBody::LogsDropped(LogsDropped {
            spans: vec![],
            bytes: 1,
            batches: 1,
        });
        let fill = OutboxPush {
            bodies: vec![replica(), logs(1), dropped.clone(), logs(21)],
            cursors: vec![("a".into(), Some(vec![1])), ("b".into(), Some(vec![2]))],
        };
        j.outbox_push(&fill, u64::MAX).unwrap();
        let mut inner = j.inner.lock();
        let before = format!("{:?}", inner.outbox);
        let mut tx = Tx::new(&mut inner.outbox);
        let everything = OutboxPush {
            bodies: vec![replica(), OutboxBody::Complete(vec![]), dropped, logs(41)],
            cursors: vec![
                ("a".into(), None),
                ("b".into(), Some(vec![3])),
                ("c".into(), Some(vec![])),
            ],
        };
        let pushed = outbox::push(&mut tx, &everything, 10, u64::MAX).unwrap();
        assert_eq!(pushed.dropped.batches, 3);
        outbox::ack(&mut tx, &[6, 7, 9]).unwrap();
        tx.rollback();
        assert_eq!(format!("{:?}", inner.outbox), before);
        assert_eq!(inner.outbox.counters.next_seq, 5);
    }
}
