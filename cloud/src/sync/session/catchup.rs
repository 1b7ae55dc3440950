//! The catch-up pages of a [`NodeSession`]: what it does with each page of the log it asked
//! for, in each phase of a catch-up (see the parent module's documentation).
//!
//! - counting ([`NodeSession::count_page`]): the events after what the agent has, while
//!   they fit in the margin; past it, a snapshot is priced (or, with snapshots off, the
//!   events are replayed);
//! - folding ([`NodeSession::fold_page`]): every event of the node folded into its desired
//!   state, the events after what the agent has counted on the way; then the shorter of
//!   the snapshot and the events goes down;
//! - replaying ([`NodeSession::replay_page`]): the events from the log, packed in frames,
//!   through a known `node_seq` or until a page comes back short.
//!
//! A gap in a node's `node_seq`s, or a log that ends before the head, is an error.

use skerry_shared::event::{Event, NodeEvent};
use skerry_shared::frame::{self, FrameError};
use skerry_shared::reducer::{self, NodeDesired, NodeSnapshot};

use super::{Delivered, Fold, NodeSession, Output, Phase, SyncError, event_size};

impl NodeSession {
    /// Starts folding the node's events from the first, through `through`, to price a
    /// snapshot against the events after `from` (or, with `force`, to send it whatever).
    pub(super) fn start_fold(&mut self, from: u64, through: u64, force: bool) -> Vec<Output> {
        self.phase = Phase::Folding(Box::new(Fold {
            from,
            through,
            state: NodeDesired::new(self.node),
            event_bytes: 0,
            force,
        }));
        vec![self.read(0)]
    }

    /// A page while counting the events after `sent` against the margin.
    pub(super) fn count_page(
        &mut self,
        through: u64,
        mut batch: Vec<NodeEvent>,
        mut bytes: usize,
        events: &[Event],
    ) -> Result<Vec<Output>, SyncError> {
        let mut last = batch.last().map_or(self.sent, |e| e.node_seq);
        for e in events {
            let Some(node_seq) = e.node_seq_for(self.node) else {
                continue;
            };
            if node_seq > through {
                break;
            }
            if node_seq <= last {
                continue;
            }
            if node_seq != last + 1 {
                return Err(SyncError::Gap {
                    node: self.node,
                    expected: last + 1,
                    found: node_seq,
                });
            }
            let Some(ev) = e.for_node(self.node) else {
                continue;
            };
            bytes = bytes.saturating_add(event_size(&ev)?);
            if bytes > self.margin {
                if !self.snapshots {
                    tracing::debug!(node = %self.node, from = self.sent, through, "catch-up by events (snapshots off)");
                    self.phase = Phase::Replaying {
                        through: Some(through),
                    };
                    return Ok(vec![self.read(self.sent)]);
                }
                // A snapshot might be shorter: price it.
                return Ok(self.start_fold(self.sent, through, false));
            }
            last = node_seq;
            batch.push(ev);
        }
        if last < through {
            if events.len() < self.page {
                return Err(SyncError::Short {
                    node: self.node,
                    at: last,
                    head: through,
                });
            }
            self.phase = Phase::Counting {
                through,
                batch,
                bytes,
            };
            return Ok(vec![self.read(last)]);
        }
        tracing::debug!(node = %self.node, from = self.sent, through, bytes, "catch-up by events");
        match self.deliver(batch)? {
            Delivered::Sent(out) => {
                self.phase = Phase::Live;
                Ok(out)
            }
            Delivered::Snapshot(out) => Ok(out),
        }
    }

    /// A page while folding a snapshot.
    pub(super) fn fold_page(
        &mut self,
        mut fold: Box<Fold>,
        events: &[Event],
    ) -> Result<Vec<Output>, SyncError> {
        for e in events {
            // The node's view of the event: a snapshot holds what the events would have.
            let Some(ev) = e.for_node(self.node) else {
                continue;
            };
            let node_seq = ev.node_seq;
            if node_seq > fold.through {
                break;
            }
            let expected = fold.state.applied.saturating_add(1);
            if node_seq != expected {
                return Err(SyncError::Gap {
                    node: self.node,
                    expected,
                    found: node_seq,
                });
            }
            if node_seq > fold.from && !fold.force {
                fold.event_bytes = fold.event_bytes.saturating_add(event_size(&ev)?);
            }
            reducer::fold(&mut fold.state, node_seq, &ev.payload);
        }
        if fold.state.applied < fold.through {
            if events.len() < self.page {
                return Err(SyncError::Short {
                    node: self.node,
                    at: fold.state.applied,
                    head: fold.through,
                });
            }
            let after = fold.state.applied;
            self.phase = Phase::Folding(fold);
            return Ok(vec![self.read(after)]);
        }
        let Fold {
            through,
            state,
            event_bytes,
            force,
            ..
        } = *fold;
        let snapshot = NodeSnapshot {
            node_seq: through,
            state,
        };
        let snapshot_bytes = postcard::experimental::serialized_size(&snapshot)
            .map_err(|e| FrameError::Encode(e.to_string()))?;
        if force || snapshot_bytes.saturating_add(self.margin) < event_bytes {
            tracing::debug!(node = %self.node, node_seq = through, snapshot_bytes, event_bytes, "catch-up by snapshot");
            let frames = frame::snapshot_frames(&snapshot)?;
            self.stats.snapshots += 1;
            self.stats.frames += frames.len() as u64;
            self.sent = through;
            self.phase = Phase::Live;
            return Ok(frames.into_iter().map(Output::Send).collect());
        }
        tracing::debug!(node = %self.node, from = self.sent, through, snapshot_bytes, event_bytes, "catch-up by events");
        self.phase = Phase::Replaying {
            through: Some(through),
        };
        Ok(vec![self.read(self.sent)])
    }

    /// A page while replaying events from the log.
    pub(super) fn replay_page(
        &mut self,
        through: Option<u64>,
        events: &[Event],
    ) -> Result<Vec<Output>, SyncError> {
        let mut batch = Vec::with_capacity(events.len());
        let mut last = self.sent;
        for e in events {
            let Some(ev) = e.for_node(self.node) else {
                continue;
            };
            if through.is_some_and(|t| ev.node_seq > t) {
                break;
            }
            if ev.node_seq <= last {
                continue;
            }
            if ev.node_seq != last + 1 {
                return Err(SyncError::Gap {
                    node: self.node,
                    expected: last + 1,
                    found: ev.node_seq,
                });
            }
            last = ev.node_seq;
            batch.push(ev);
        }
        self.head = self.head.max(last);
        let short = events.len() < self.page;
        let mut out = match self.deliver(batch)? {
            Delivered::Sent(out) => out,
            Delivered::Snapshot(out) => return Ok(out),
        };

        let done = match through {
            Some(t) => self.sent >= t,
            None => short,
        };
        if done {
            self.phase = Phase::Live;
        } else if short {
            return Err(SyncError::Short {
                node: self.node,
                at: self.sent,
                head: through.unwrap_or(self.sent),
            });
        } else {
            self.phase = Phase::Replaying { through };
            out.push(self.read(self.sent));
        }
        Ok(out)
    }
}
