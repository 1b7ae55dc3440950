//! [`MemoryJournal`]: the journal's rules without I/O, for the fleet simulator and tests.
//!
//! One redb database costs about 1.1 MiB even in memory, so a simulator with thousands of
//! agents keeps their journals here. It follows the same rules as
//! [`RedbJournal`](super::RedbJournal) (the shared tests in `edge/tests/journal.rs` run on
//! both), and it can be told to fail its writes, like a full disk.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use skerry_shared::event::NodeEvent;
use skerry_shared::hash::Digest;
use skerry_shared::reducer::NodeDesired;

use super::{
    Commit, DEFAULT_RETENTION, EventSpan, Journal, JournalError, JournalState, MemoChanges, Memos,
    RECENT_DIGESTS,
};

/// A journal in memory.
#[derive(Debug)]
pub struct MemoryJournal {
    inner: Mutex<Inner>,
    retention: usize,
    failing: AtomicBool,
}

#[derive(Debug)]
struct Inner {
    epoch: u64,
    desired: Option<NodeDesired>,
    events: BTreeMap<u64, (NodeEvent, Digest)>,
    memos: Memos,
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
            }),
            retention: DEFAULT_RETENTION,
            failing: AtomicBool::new(false),
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
}
