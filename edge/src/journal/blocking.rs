//! [`AsyncJournal`]: a [`Journal`] for async code on the agent's current-thread runtime.
//!
//! Every [`Journal`] method is synchronous, and on [`RedbJournal`](super::RedbJournal) the
//! writes fsync (milliseconds on an SD card). `AsyncJournal` runs each call on tokio's
//! blocking pool ([`tokio::task::spawn_blocking`]), so heartbeats, acks and the reconciler
//! go on meanwhile, and maps a blocking task that failed (it panicked, or the runtime is
//! shutting down) to [`JournalError::Storage`] in one place. The reads that the outbox
//! sender makes on every pump stay synchronous: [`AsyncJournal::sync`] gives the journal
//! itself for them.

use std::sync::Arc;

use super::{Commit, Journal, JournalError, JournalState, MemoChanges, OutboxPush, Pushed};

/// A shared journal whose calls run off the async thread; cheap to clone.
#[derive(Debug, Clone)]
pub struct AsyncJournal {
    journal: Arc<dyn Journal>,
}

impl AsyncJournal {
    pub fn new(journal: Arc<dyn Journal>) -> Self {
        Self { journal }
    }

    /// The journal itself, for the reads that may run on the async thread.
    pub fn sync(&self) -> &Arc<dyn Journal> {
        &self.journal
    }

    /// Runs `f` on the journal in a blocking task and waits for it.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Journal) -> Result<T, JournalError> + Send + 'static,
    ) -> Result<T, JournalError> {
        let journal = Arc::clone(&self.journal);
        tokio::task::spawn_blocking(move || f(journal.as_ref()))
            .await
            .unwrap_or_else(|e| {
                Err(JournalError::Storage {
                    journal: "journal".into(),
                    reason: e.to_string(),
                })
            })
    }

    /// [`Journal::load`].
    pub async fn load(&self) -> Result<JournalState, JournalError> {
        self.run(|j| j.load()).await
    }

    /// [`Journal::commit`] of a copy of `batch`: durable when this returns `Ok`.
    pub async fn commit(&self, batch: &Commit) -> Result<(), JournalError> {
        let batch = batch.clone();
        self.run(move |j| j.commit(&batch)).await
    }

    /// [`Journal::put_memos`].
    pub async fn put_memos(&self, changes: MemoChanges) -> Result<(), JournalError> {
        self.run(move |j| j.put_memos(&changes)).await
    }

    /// [`Journal::outbox_push`].
    pub async fn outbox_push(
        &self,
        push: OutboxPush,
        log_quota: u64,
    ) -> Result<Pushed, JournalError> {
        self.run(move |j| j.outbox_push(&push, log_quota)).await
    }

    /// [`Journal::outbox_ack`].
    pub async fn outbox_ack(&self, seqs: Vec<u64>) -> Result<(), JournalError> {
        self.run(move |j| j.outbox_ack(&seqs)).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::journal::MemoryJournal;

    #[tokio::test]
    async fn calls_run_off_the_async_thread_and_a_panic_is_a_storage_error() {
        let journal = AsyncJournal::new(Arc::new(MemoryJournal::new()));
        let state = journal.load().await.unwrap();
        assert_eq!(state.applied(), 0);
        let err = journal
            .run(|_| -> Result<(), JournalError> { panic!("a journal call that panics") })
            .await
            .unwrap_err();
        assert!(matches!(err, JournalError::Storage { .. }), "{err}");
    }
}
