//! The rounds a node would go through, each action assumed to succeed at once: what
//! `deploy --dry-run` prints.

use super::round::plan;
use super::state::{Action, ActualReplica, ActualState, Phase};
use crate::reducer::NodeDesired;

/// Changes `actual` as if `action` succeeded at once: an init succeeds, a service becomes
/// healthy (running when it has no health check), a stop removes the replica.
pub fn assume_done(desired: &NodeDesired, actual: &mut ActualState, action: &Action) {
    match action {
        Action::CreateNetwork { instance } => {
            actual.networks.insert(instance.clone());
        }
        Action::RemoveNetwork { instance } => {
            actual.networks.remove(instance);
        }
        Action::RunInit { key, spec_hash, .. } => {
            actual.inits_succeeded.insert((
                key.instance.clone(),
                key.component.clone(),
                *spec_hash,
            ));
        }
        Action::Start { key, spec_hash } => {
            let healthy = desired
                .instances
                .get(&key.instance)
                .and_then(|i| i.spec.manifest.component(key.component.as_str()))
                .is_some_and(|c| c.health.is_some());
            actual.insert(ActualReplica {
                key: key.clone(),
                spec_hash: *spec_hash,
                phase: if healthy {
                    Phase::Healthy
                } else {
                    Phase::Running
                },
            });
        }
        Action::Stop { key, .. } => {
            actual.replicas.remove(key);
        }
    }
}

/// The rounds a node goes through, and where it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Simulation {
    /// Each round's actions; the last round is not empty (there are none when nothing is
    /// to be done).
    pub rounds: Vec<Vec<Action>>,
    /// The actual state after the last round.
    pub end: ActualState,
}

impl Simulation {
    /// The dry-run listing: `round N:` and one indented action per line.
    pub fn to_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, round) in self.rounds.iter().enumerate() {
            out.push(format!("round {}:", i + 1));
            out.extend(round.iter().map(|a| format!("  {a}")));
        }
        out
    }
}

/// The plan did not settle: a bug in the planner, reported rather than looped on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the plan did not settle within {limit} rounds; round {limit} was: {last}")]
pub struct NotConverged {
    pub limit: usize,
    pub last: String,
    pub rounds: Vec<Vec<Action>>,
}

/// Plans rounds against a copy of `actual`, assuming every action succeeds at once
/// ([`assume_done`]), until a round is empty. Used by `deploy --dry-run`.
///
/// It settles within `components + 4` rounds (a round of stops, one of networks, and at
/// most one per component along a dependency chain); the bound allows twice that.
pub fn simulate(desired: &NodeDesired, actual: &ActualState) -> Result<Simulation, NotConverged> {
    let components: usize = desired
        .instances
        .values()
        .map(|i| i.spec.manifest.components.len())
        .sum();
    let limit = 2 * (components + 4);
    let mut state = actual.clone();
    let mut rounds = Vec::new();
    while rounds.len() < limit {
        let round = plan(desired, &state);
        if round.is_empty() {
            return Ok(Simulation { rounds, end: state });
        }
        for a in &round {
            assume_done(desired, &mut state, a);
        }
        rounds.push(round);
    }
    let last = rounds
        .last()
        .map(|r| {
            r.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    Err(NotConverged {
        limit,
        last,
        rounds,
    })
}
