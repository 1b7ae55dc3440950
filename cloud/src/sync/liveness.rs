//! Node status from liveness: `Normal` while heartbeats arrive, `Abnormal` after three
//! missed ones.
//!
//! Each pass looks at every node: its heartbeat interval is its firmware profile's
//! `agent.heartbeat`. A node heard from (a `Hello` or a heartbeat) within three intervals
//! should be `Normal`, any other `Abnormal`; when that differs from the status in the
//! projections, the monitor records a `node.status-changed` event through the engine
//! (`Command::SetNodeStatus`), stamped with the time the cloud noticed. Only changes are
//! recorded: a node that never connected stays `Abnormal` without repeated events. After a
//! cloud restart, a node that was `Normal` gets three intervals from the start to be heard
//! from again.
//!
//! All status changes are decided and submitted by the one monitor task, one pass at a
//! time, so two passes never race. Hearing from an `Abnormal` node wakes the monitor
//! early, so it turns `Normal` at once, not at the next tick.

use std::future::Future;
use std::time::Duration;

use skerry_shared::event::{Actor, NodeStatus};
use skerry_shared::ids::NodeId;
use tokio::time::{Instant, MissedTickBehavior};

use super::hub::Hub;
use crate::command::Command;

/// How often the monitor looks.
pub const TICK: Duration = Duration::from_secs(1);

/// Heartbeats a node may miss before it is `Abnormal`.
pub const MISSED_HEARTBEATS: u32 = 3;

impl Hub {
    /// The liveness monitor: a pass every [`TICK`] (and when an `Abnormal` node is heard
    /// from) until `shutdown` resolves.
    pub async fn monitor(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = tick.tick() => {}
                () = self.inner.wake.notified() => {}
            }
            self.check_liveness(Instant::now()).await;
        }
        tracing::debug!("liveness monitor stopped");
    }

    /// One pass of the monitor as of `now`: records the status changes it finds and
    /// returns them. [`Hub::monitor`] calls it with the clock; tests call it with a time
    /// of their choosing.
    pub async fn check_liveness(&self, now: Instant) -> Vec<(NodeId, NodeStatus)> {
        let changes = self.status_changes(now);
        let mut recorded = Vec::with_capacity(changes.len());
        for (node, status) in changes {
            match self
                .inner
                .engine
                .submit(Actor::Cloud, Command::SetNodeStatus { node, status })
                .await
            {
                Ok(events) => {
                    if let Some(e) = self.inner.nodes.lock().get_mut(&node) {
                        e.abnormal = Some(status == NodeStatus::Abnormal);
                    }
                    if !events.is_empty() {
                        tracing::info!(%node, %status, "node status changed");
                        recorded.push((node, status));
                    }
                }
                Err(e) => tracing::warn!(%node, %status, error = %e, "cannot record a node status"),
            }
        }
        recorded
    }

    /// The status each node should have as of `now`, where it differs from the recorded one.
    fn status_changes(&self, now: Instant) -> Vec<(NodeId, NodeStatus)> {
        let projections = self.inner.engine.read();
        let mut nodes = self.inner.nodes.lock();
        let mut changes = Vec::new();
        for n in projections.nodes.values() {
            let interval = n.profile.agent.heartbeat.as_std();
            let allowed = interval.saturating_mul(MISSED_HEARTBEATS);
            let entry = nodes.get_mut(&n.id);
            let heard = entry.as_ref().and_then(|e| e.last_heard);
            let alive = match heard {
                Some(t) => now.saturating_duration_since(t) <= allowed,
                // Not heard from since this cloud started: a node recorded Normal keeps
                // its status for the same grace as one that just sent a heartbeat.
                None => {
                    n.status == NodeStatus::Normal
                        && now.saturating_duration_since(self.inner.started) <= allowed
                }
            };
            let want = if alive {
                NodeStatus::Normal
            } else {
                NodeStatus::Abnormal
            };
            if let Some(e) = entry {
                e.abnormal = Some(n.status == NodeStatus::Abnormal);
            }
            if want != n.status {
                changes.push((n.id, want));
            }
        }
        changes
    }
}
