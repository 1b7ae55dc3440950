//! The outbox sender's task: what the journal's outbox holds goes to the cloud while the
//! link is up, by the rules of the sans-IO [`Sender`] (control before logs, logs within the
//! rate, lingering on links that chose it).
//!
//! It owns the [`Sender`] and the time it must look again (the rate limit or a linger).
//! It pumps (reads the outbox, sends the frames the sender hands out) whenever anything
//! may have become sendable: on its [`Pump`] notification (the collector queued lines, the
//! scheduler queued replica reports, a heartbeat went out), at its wake time, and after
//! each message from the commit path ([`ToOutbox`]): a session opened (everything not
//! acknowledged goes again, behind the latest complete report), or the cloud acknowledged
//! entries (they are deleted from the journal).

use std::sync::Arc;

use skerry_shared::outbox::OutboxBody;
use tokio::sync::{Notify, mpsc, watch};

use super::io::{send, sleep_until};
use crate::journal::OutboxPush;
use crate::journal::blocking::AsyncJournal;
use crate::link::Link;
use crate::outbox::Sender;

/// "Something may be sendable": notified by whoever queued entries in the outbox.
pub(super) type Pump = Arc<Notify>;

/// What the commit path tells the outbox sender.
#[derive(Debug)]
pub(super) enum ToOutbox {
    /// A session opened and its `Hello` went out.
    Reconnected,
    /// The cloud stored these outbox entries.
    Acked { epoch: u64, seqs: Vec<u64> },
}

/// The outbox sender's task; see the module docs.
pub(super) struct OutboxTask<'a> {
    pub sender: Sender,
    pub journal: AsyncJournal,
    pub link: &'a dyn Link,
    /// From the commit path; closed when it stops, and this task stops then. Unbounded so
    /// that the commit path never waits on this task (which may wait on the link, whose
    /// events the commit path reads): it holds at most one message per session and per
    /// outbox acknowledgement the commit path read, each a few bytes per entry the cloud
    /// stored, and this task takes them as they come.
    pub inbox: mpsc::UnboundedReceiver<ToOutbox>,
    pub pump: Pump,
    /// The reconcile scheduler's latest complete report (none before its first pass),
    /// queued again after every connect.
    pub complete: watch::Receiver<Option<OutboxBody>>,
}

impl OutboxTask<'_> {
    pub async fn run(mut self) {
        // The rate limit or a linger holds entries until then.
        let mut wake: Option<tokio::time::Instant> = None;
        // The commit path's end stops it at once; acknowledgements it passed on before it
        // ended are still applied (below), nothing more is sent.
        while !self.inbox.is_closed() {
            tokio::select! {
                biased;
                message = self.inbox.recv() => match message {
                    None => break,
                    Some(ToOutbox::Reconnected) => {
                        // Everything not acknowledged goes again, behind a complete report.
                        self.sender.reconnected();
                        let all = self.complete.borrow().clone();
                        if let Some(all) = all {
                            queue(&self.journal, vec![all]).await;
                        }
                        self.send_ready(&mut wake).await;
                    }
                    Some(ToOutbox::Acked { epoch, seqs }) => {
                        self.acked(epoch, &seqs).await;
                        self.send_ready(&mut wake).await;
                    }
                },
                () = self.pump.notified() => self.send_ready(&mut wake).await,
                () = sleep_until(wake) => {
                    wake = None;
                    self.send_ready(&mut wake).await;
                }
            }
        }
        while let Ok(message) = self.inbox.try_recv() {
            if let ToOutbox::Acked { epoch, seqs } = message {
                self.acked(epoch, &seqs).await;
            }
        }
    }

    /// Deletes what the cloud stored from the journal's outbox.
    async fn acked(&mut self, epoch: u64, seqs: &[u64]) {
        let seqs = self.sender.acked(epoch, seqs);
        if !seqs.is_empty()
            && let Err(e) = self.journal.outbox_ack(seqs).await
        {
            tracing::warn!(error = %e, "cannot delete acknowledged outbox entries; they are sent again");
        }
    }

    /// Sends what the outbox has to send now, if the link is up.
    async fn send_ready(&mut self, wake: &mut Option<tokio::time::Instant>) {
        if !self.link.is_connected() {
            return;
        }
        match self
            .sender
            .frames(self.journal.sync().as_ref(), tokio::time::Instant::now())
        {
            Ok(out) => {
                *wake = out.wake_at;
                for f in out.frames {
                    send(self.link, f).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the outbox"),
        }
    }
}

/// Queues replica reports in the outbox (durable before anything is sent). Gives how many
/// queued reports the outbox quota dropped (the caller then queues a complete report).
pub(super) async fn queue(journal: &AsyncJournal, bodies: Vec<OutboxBody>) -> u64 {
    let push = OutboxPush {
        bodies,
        cursors: Vec::new(),
    };
    match journal.outbox_push(push, u64::MAX).await {
        Ok(pushed) => {
            if pushed.dropped_reports > 0 {
                tracing::warn!(
                    dropped = pushed.dropped_reports,
                    "the outbox is over its quota (agent.outbox_quota): the oldest replica reports gave way to a complete report"
                );
            }
            pushed.dropped_reports
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot queue replica reports; the next change or connect reports again");
            0
        }
    }
}
