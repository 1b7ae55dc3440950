//! Restarts the agent makes: a container replica that exited and whose restart policy
//! restarts it is started again once its backoff ends.
//!
//! The engine restarts a container that exits by itself (`always` maps to Docker's
//! `unless-stopped`, so apps survive the agent's death and a reboot), but not one stopped
//! from outside (`docker stop`, `docker kill`), and it paces a crash loop with its own
//! delays. So on every pass (after an engine event, and at least every 2 s):
//! - an exited container whose policy says it runs again (`always`; `on-failure` after a
//!   non-zero exit) waits [`crate::backoff::RESTART`] and is started again, counted as a
//!   restart;
//! - a container the engine restarted by itself counts as a failure of a crash loop, and
//!   its engine policy is suspended (`no`), so the next exits are paced by the agent;
//! - a container that has run for [`crate::backoff::Policy::stable`] gets its backoff reset
//!   and its engine policy back.
//!
//! Processes of the `exec` runtime restart under their own supervisor.

use std::collections::{BTreeMap, BTreeSet};

use skerry_shared::manifest::{ComponentKind, RestartPolicy, RuntimeKind};
use skerry_shared::planner::{Phase, ReplicaKey, spec_hash};
use skerry_shared::reducer::NodeDesired;
use tokio::time::Instant;

use super::Reconciler;
use super::retries::Hold;
use crate::runtime::ObservedReplica;

impl Reconciler {
    /// Restarts the containers that are due. Returns how many were started again.
    pub(super) async fn supervise(
        &mut self,
        desired: &NodeDesired,
        observed: &BTreeMap<ReplicaKey, (ObservedReplica, RuntimeKind)>,
        fixed: &BTreeSet<u16>,
    ) -> usize {
        let Some(rt) = self.runtime(RuntimeKind::Docker).cloned() else {
            return 0;
        };
        let mut restarted = 0;
        for (key, (o, kind)) in observed {
            if *kind != RuntimeKind::Docker {
                continue;
            }
            let Some(d) = desired.instances.get(&key.instance) else {
                continue;
            };
            let Some(c) = d.spec.manifest.component(key.component.as_str()) else {
                continue;
            };
            let hash = spec_hash(&d.spec, c);
            if c.kind != ComponentKind::Service
                || o.spec_hash != hash
                || key.replica >= c.replicas()
            {
                continue;
            }
            let now = Instant::now();
            if let Some(hold) = self.retries.observed(key, hash, o.phase, now) {
                let held = hold == Hold::Suspend;
                match rt.hold_restarts(self.node, key, c, held).await {
                    Ok(()) => self.retries.set_held(key, hash, held),
                    Err(e) => {
                        tracing::warn!(replica = %key, error = %e, "cannot set the engine's restart policy")
                    }
                }
            }
            let Phase::Exited { code } = o.phase else {
                continue;
            };
            let again = match c.restart() {
                RestartPolicy::Always => true,
                RestartPolicy::OnFailure => code != 0,
                RestartPolicy::Never => false,
            };
            if !again {
                continue;
            }
            let exit = o
                .last_exit
                .clone()
                .unwrap_or_else(|| format!("exited {code}"));
            if !self.retries.exited(key, hash, &exit, now) {
                continue;
            }
            // The agent paces it from now on: the engine must not restart it as well.
            if let Err(e) = rt.hold_restarts(self.node, key, c, true).await {
                tracing::warn!(replica = %key, error = %e, "cannot suspend the engine's restart policy");
            }
            let result = match self.resolve(desired, key, fixed).await {
                Ok((spec, _)) => rt.restart(&spec).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => {
                    self.retries
                        .restarted(key, hash, o.exited.clone(), Instant::now());
                    tracing::info!(replica = %key, %exit, "restarted");
                    restarted += 1;
                }
                Err(e) => {
                    let delay = self.retries.start_failed(key, hash, &e, Instant::now());
                    tracing::warn!(replica = %key, error = %e, retry_in_ms = delay.as_millis() as u64, "restart failed; trying again after the backoff");
                }
            }
        }
        restarted
    }
}
