//! [`WatchedJournal`]: the edge's [`MemoryJournal`] with a note of when each instance first
//! reached a commit, for the fleet's [`Tally`](super::Tally).
//!
//! The agent acknowledges an event right after [`Journal::commit`] returns, so the time of
//! the commit is the simulator's own view of "acknowledged" (the cloud's view, lag 0, is
//! read through its API).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use parking_lot::Mutex;
use skerry_edge::journal::{
    Commit, EventSpan, Journal, JournalError, JournalState, MemoChanges, MemoryJournal, OutboxPush,
    OutboxStats, Pushed,
};
use skerry_shared::event::NodeEvent;
use skerry_shared::ids::Name;
use skerry_shared::outbox::{Lane, OutboxEntry};

use super::Tally;

/// A [`MemoryJournal`] that tells the tally when an instance first appears in a commit.
#[derive(Debug)]
pub struct WatchedJournal {
    inner: MemoryJournal,
    seen: Mutex<BTreeSet<Name>>,
    tally: Arc<Tally>,
}

impl WatchedJournal {
    pub fn new(tally: Arc<Tally>) -> Self {
        Self {
            inner: MemoryJournal::new(),
            seen: Mutex::new(BTreeSet::new()),
            tally,
        }
    }
}

impl Journal for WatchedJournal {
    fn load(&self) -> Result<JournalState, JournalError> {
        self.inner.load()
    }

    fn commit(&self, batch: &Commit) -> Result<(), JournalError> {
        self.inner.commit(batch)?;
        let mut seen = self.seen.lock();
        for name in batch.desired.instances.keys() {
            if seen.insert(name.clone()) {
                self.tally.committed(name);
            }
        }
        Ok(())
    }

    fn put_memos(&self, changes: &MemoChanges) -> Result<(), JournalError> {
        self.inner.put_memos(changes)
    }

    fn event(&self, node_seq: u64) -> Result<Option<NodeEvent>, JournalError> {
        self.inner.event(node_seq)
    }

    fn events(&self, after: u64, limit: usize) -> Result<Vec<NodeEvent>, JournalError> {
        self.inner.events(after, limit)
    }

    fn event_span(&self) -> Result<Option<EventSpan>, JournalError> {
        self.inner.event_span()
    }

    fn outbox_push(&self, push: &OutboxPush, log_quota: u64) -> Result<Pushed, JournalError> {
        self.inner.outbox_push(push, log_quota)
    }

    fn set_outbox_quota(&self, bytes: u64) {
        self.inner.set_outbox_quota(bytes);
    }

    fn set_log_ceiling(&self, bytes: u64) {
        self.inner.set_log_ceiling(bytes);
    }

    fn outbox_read(
        &self,
        lane: Lane,
        after: u64,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<Vec<OutboxEntry>, JournalError> {
        self.inner.outbox_read(lane, after, max_entries, max_bytes)
    }

    fn outbox_ack(&self, seqs: &[u64]) -> Result<(), JournalError> {
        self.inner.outbox_ack(seqs)
    }

    fn outbox_stats(&self) -> Result<OutboxStats, JournalError> {
        self.inner.outbox_stats()
    }

    fn log_cursors(&self) -> Result<BTreeMap<String, Vec<u8>>, JournalError> {
        self.inner.log_cursors()
    }
}
