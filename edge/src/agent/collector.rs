//! The log collector's task: it reads the log sources of the latest desired state and
//! queues their lines in the journal's outbox, then wakes the outbox sender.

use std::sync::Arc;
use std::time::Duration;

use skerry_shared::reducer::NodeDesired;
use tokio::sync::{Notify, watch};

use crate::disk::DiskWatch;
use crate::logs::collect::Collector;

/// How soon it reads again when a source had more than one round takes.
const COLLECT_MORE: Duration = Duration::from_millis(50);

/// The log collector's task: reads the sources of the latest desired state every
/// `every` (the link's `collect_every`; sooner while it has more to read) and wakes the
/// outbox sender (`queued`) when it queued lines. Before each round it applies the disk
/// budget (`disk`).
pub(super) async fn collect(
    mut collector: Collector,
    mut desired: watch::Receiver<Arc<NodeDesired>>,
    queued: Arc<Notify>,
    every: Duration,
    mut disk: DiskWatch,
) {
    loop {
        let current = Arc::clone(&desired.borrow_and_update());
        collector.follow(&current);
        disk.look();
        let wait = match collector.collect().await {
            Ok(c) => {
                if c.lines > 0 || c.dropped.lines() > 0 {
                    queued.notify_one();
                }
                if c.more { COLLECT_MORE } else { every }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot queue collected log lines; reading them again");
                every
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            changed = desired.changed() => if changed.is_err() { return },
        }
    }
}
