//! The liveness controller: node status from heartbeats, `Normal` while heartbeats arrive,
//! `Abnormal` after three missed ones.
//!
//! Each pass looks at every node: its heartbeat interval is its firmware profile's
//! `agent.heartbeat`. A node heard from (a `Hello` or a heartbeat) within three intervals
//! should be `Normal`, any other `Abnormal`; when that differs from the status in the
//! projections, the controller records a `node.status-changed` event through the engine
//! (`Command::SetNodeStatus`, as [`Actor::Cloud`]), stamped with the time the cloud
//! noticed. Only changes are recorded: a node that never connected stays `Abnormal`
//! without repeated events. After a cloud restart, a node that was `Normal` gets three
//! intervals from the start to be heard from again.
//!
//! - The core, [`decide`], does no I/O: the nodes as the hub saw them, the hub's start and
//!   the time in, the status changes out.
//! - The driver, [`run`] (one pass: [`check`]), reads the hub's view
//!   ([`Hub::heard_from`]), calls the core and submits the changes.
//!
//! All status changes are decided and submitted by the one driver task, one pass at a
//! time, so two passes never race. Hearing from an `Abnormal` node wakes the driver early
//! ([`Hub::abnormal_heard`]), so it turns `Normal` at once, not at the next tick.

use std::future::Future;
use std::time::Duration;

use skerry_shared::event::{Actor, NodeStatus};
use skerry_shared::ids::NodeId;
use tokio::time::{Instant, MissedTickBehavior};

use crate::command::Command;
use crate::sync::{Hub, NodeHeard};

/// How often the driver looks.
pub const TICK: Duration = Duration::from_secs(1);

/// Heartbeats a node may miss before it is `Abnormal`.
pub const MISSED_HEARTBEATS: u32 = 3;

/// The core: the status each node should have as of `now`, where it differs from the
/// recorded one, in the order of `nodes`. `started` is when the hub started (the grace of
/// nodes recorded `Normal` that it has not heard from yet).
pub fn decide(nodes: &[NodeHeard], started: Instant, now: Instant) -> Vec<(NodeId, NodeStatus)> {
    let mut changes = Vec::new();
    for n in nodes {
        let allowed = n.heartbeat.saturating_mul(MISSED_HEARTBEATS);
        let alive = match n.last_heard {
            Some(t) => now.saturating_duration_since(t) <= allowed,
            // Not heard from since this cloud started: a node recorded Normal keeps
            // its status for the same grace as one that just sent a heartbeat.
            None => {
                n.status == NodeStatus::Normal && now.saturating_duration_since(started) <= allowed
            }
        };
        let want = if alive {
            NodeStatus::Normal
        } else {
            NodeStatus::Abnormal
        };
        if want != n.status {
            changes.push((n.node, want));
        }
    }
    changes
}

/// The driver: a pass every [`TICK`] (and when an `Abnormal` node is heard from) until
/// `shutdown` resolves.
pub async fn run(hub: Hub, shutdown: impl Future<Output = ()> + Send + 'static) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = tick.tick() => {}
            () = hub.abnormal_heard() => {}
        }
        check(&hub, Instant::now()).await;
    }
    tracing::debug!("liveness monitor stopped");
}

/// One pass as of `now`: records the status changes it finds and returns them. [`run`]
/// calls it with the clock; tests call it with a time of their choosing.
pub async fn check(hub: &Hub, now: Instant) -> Vec<(NodeId, NodeStatus)> {
    let changes = decide(&hub.heard_from(), hub.started(), now);
    let mut recorded = Vec::with_capacity(changes.len());
    for (node, status) in changes {
        match hub
            .engine()
            .submit(Actor::Cloud, Command::SetNodeStatus { node, status })
            .await
        {
            Ok(events) => {
                hub.mark_abnormal(node, status == NodeStatus::Abnormal);
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

#[cfg(test)]
mod tests {
    use super::*;

    const BEAT: Duration = Duration::from_secs(10);

    fn heard(status: NodeStatus, last_heard: Option<Instant>) -> NodeHeard {
        NodeHeard {
            node: NodeId::random(),
            status,
            heartbeat: BEAT,
            last_heard,
        }
    }

    #[test]
    fn three_missed_heartbeats_make_a_node_abnormal() {
        let t = Instant::now();
        let n = heard(NodeStatus::Normal, Some(t));
        assert!(decide(std::slice::from_ref(&n), t, t + BEAT * 3).is_empty());
        assert_eq!(
            decide(
                std::slice::from_ref(&n),
                t,
                t + BEAT * 3 + Duration::from_millis(1)
            ),
            vec![(n.node, NodeStatus::Abnormal)]
        );
    }

    #[test]
    fn hearing_from_an_abnormal_node_makes_it_normal() {
        let t = Instant::now();
        let n = heard(NodeStatus::Abnormal, Some(t));
        assert_eq!(
            decide(std::slice::from_ref(&n), t, t),
            vec![(n.node, NodeStatus::Normal)]
        );
    }

    #[test]
    fn a_node_not_heard_from_keeps_normal_for_the_grace_after_a_start_only() {
        let started = Instant::now();
        let normal = heard(NodeStatus::Normal, None);
        let never = heard(NodeStatus::Abnormal, None);
        let both = [normal.clone(), never];
        assert!(decide(&both, started, started + BEAT * 3).is_empty());
        assert_eq!(
            decide(&both, started, started + BEAT * 4),
            vec![(normal.node, NodeStatus::Abnormal)]
        );
    }
}
