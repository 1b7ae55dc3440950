//! Desired and actual state to ordered actions (sans-IO).
//!
//! The agent's reconciler calls [`plan`] in a loop: it observes the runtime into an
//! [`ActualState`], plans against the node's [`NodeDesired`], performs the actions and
//! observes again. The plan is level-triggered (it depends only on the two states, never on
//! what was done before) and deterministic (the same states give the same actions, in the
//! same order). The cloud's `deploy --dry-run` calls [`simulate()`] to print the rounds a node
//! would go through.
//!
//! One round of [`plan`], in this order:
//! 1. **Stops**: replicas whose instance is no longer desired or is stopped (`skerry
//!    stop`: the instance, its network and named storage stay), whose component is gone,
//!    whose index is beyond the component's replicas, or whose spec hash is not the desired
//!    one; and init containers that have exited once their result is recorded. A replaced
//!    replica is started again in a later round, once it is gone.
//! 2. **RemoveNetwork** for an undesired instance's network once none of its replicas is
//!    left.
//! 3. **CreateNetwork** for a desired instance, not stopped, that needs one
//!    ([`needs_network`]: it has a container component) and has none. Nothing of that instance acts in the same round.
//!    An instance of `exec` components only gets no network and starts in round 1.
//! 4. Per desired instance not stopped, its components in topological order of `depends_on`; a
//!    component acts only when all its dependencies are ready in the actual state (see
//!    [`component_ready`]):
//!    - `init`: **RunInit** unless it succeeded for its current spec hash, is running (or
//!      has exited and awaits its result being recorded), or failed for the same deploy (the
//!      same `deployed_at`). A failed init blocks its dependents until a later deploy.
//!    - `service`: **Start** each missing replica index.
//!    - `job`: nothing; the cron scheduler starts job runs. A job is never a dependency
//!      gate.
//!
//! The reconciler records an init's result (in `inits_succeeded` or `inits_failed`) when
//! it sees the init exit, before it plans again.
//!
//! [`NodeDesired`]: crate::reducer::NodeDesired
//!
//! # Parts
//! - `state`: what the runtime has ([`ActualState`], [`ReplicaKey`], [`Phase`]) and the
//!   steps for the reconciler ([`Action`], [`StopReason`]);
//! - `readiness`: spec hashes, readiness of a dependency, topological order, networks;
//! - `round`: one round of [`plan`] (stops, networks, each instance's components);
//! - `simulate`: [`simulate()`], the rounds of `deploy --dry-run`, each action assumed done
//!   ([`assume_done`]);
//! - `tests`: the rounds of deploys, upgrades, rollbacks, failed inits and undeploys.

mod readiness;
mod round;
mod simulate;
mod state;
#[cfg(test)]
mod tests;

pub use readiness::{
    component_ready, needs_network, phase_ready, replica_hash, replica_hash_by, spec_hash,
    topological_order, waiting_on,
};
pub use round::plan;
pub use simulate::{NotConverged, Simulation, assume_done, simulate};
pub use state::{Action, ActualReplica, ActualState, FailedInit, Phase, ReplicaKey, StopReason};
