//! The secrets delivery controller: every node in a secret's scope that has a key gets
//! the secret's latest version, sealed for that key.
//!
//! `secret set` delivers to the nodes it knows at once; this controller covers the rest:
//! nodes that enroll or join an environment later, and a set that raced an enrollment.
//!
//! - The core, [`missing`], does no I/O: the projections in, the (secret, version, node)
//!   deliveries that are missing out.
//! - The driver, [`run`], looks every [`TICK`] and whenever an event is committed, opens
//!   each missing secret with the cloud's key, seals it for the node and submits
//!   `Command::DeliverSecret` as [`Actor::Cloud`]. The handler records nothing when the
//!   delivery is no longer wanted (a newer version, a deleted secret), so a race costs
//!   nothing.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use skerry_shared::event::Actor;
use skerry_shared::ids::{Name, NodeId};

use crate::command::Command;
use crate::command::secret::in_scope;
use crate::engine::Engine;
use crate::projections::Projections;
use crate::secrets::SecretsKey;

/// How often the driver looks, besides after each committed event.
pub const TICK: Duration = Duration::from_secs(2);

/// The most deliveries one pass submits (the rest wait for the next pass).
pub const MAX_PER_PASS: usize = 256;

/// The core: each (secret, version, node) that a node in scope with a key lacks.
pub fn missing(p: &Projections) -> Vec<(Name, u64, NodeId)> {
    let mut out = Vec::new();
    for s in p.secrets.iter() {
        for node in p.nodes.values() {
            let wanted = in_scope(s.env.as_ref(), node)
                && p.secrets.node_key(node.id).is_some()
                && s.delivered.get(&node.id).is_none_or(|v| *v < s.version);
            if wanted {
                out.push((s.name.clone(), s.version, node.id));
                if out.len() >= MAX_PER_PASS {
                    return out;
                }
            }
        }
    }
    out
}

/// The driver, until `shutdown` resolves.
pub async fn run(
    engine: Engine,
    key: Arc<SecretsKey>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut events = engine.subscribe();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = tick.tick() => {}
            r = events.recv() => {
                if matches!(r, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                    break;
                }
            }
        }
        pass(&engine, &key).await;
    }
    tracing::debug!("secrets delivery controller stopped");
}

/// One pass: seals and submits every missing delivery. Returns how many were recorded.
pub async fn pass(engine: &Engine, key: &SecretsKey) -> usize {
    let todo: Vec<_> = {
        let p = engine.read();
        missing(&p)
            .into_iter()
            .filter_map(|(name, version, node)| {
                let s = p.secrets.get(name.as_str())?;
                let node_key = *p.secrets.node_key(node)?;
                let value = match key.open(&name, version, &s.sealed) {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::error!(secret = %name, version, error = %e, "cannot open a secret with the cloud's secrets key");
                        return None;
                    }
                };
                match key.seal_for(&node_key, &name, version, node, &value) {
                    Ok(sealed) => Some((name, version, node, sealed)),
                    Err(e) => {
                        tracing::warn!(secret = %name, %node, error = %e, "cannot seal a secret for a node");
                        None
                    }
                }
            })
            .collect()
    };
    let mut recorded = 0;
    for (name, version, node, sealed) in todo {
        let command = Command::DeliverSecret {
            name: name.clone(),
            version,
            node,
            sealed,
        };
        match engine.submit(Actor::Cloud, command).await {
            Ok(events) if !events.is_empty() => {
                tracing::info!(secret = %name, version, %node, "secret delivered to a node");
                recorded += 1;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(secret = %name, %node, error = %e, "cannot record a secret's delivery")
            }
        }
    }
    recorded
}
