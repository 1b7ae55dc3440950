//! Cron jobs on the agent: when a job's run is due, by the agent's clock, and what its
//! concurrency says to do about it.
//!
//! Each job (instance, component) has a [`JobState`] in the journal (in the cursor table,
//! under `job/{instance}/{component}`), stored in the same transaction as the outbox
//! reports of its runs, so a run is reported exactly once and its state never says more or
//! less than the reports did:
//! - `cursor`: the last due time handled. The next run is due at the schedule's first time
//!   after it. When a due time has passed, one run starts and the cursor moves to now:
//!   runs missed while the agent was down (or the host asleep) start **once** at start,
//!   never several times, and nothing that was due is skipped silently.
//! - the runs in flight, each with the replica it runs as: after an agent restart they
//!   are found again by their containers or processes, which the runtimes adopt.
//!
//! A job first seen (a deploy) starts its cursor at that moment: its first run is the
//! schedule's next time, not a catch-up. While its instance is stopped the cursor follows
//! the clock, so a start does not catch up either.
//!
//! The reconciler acts on these decisions (`reconciler/jobs.rs`): it starts and stops the
//! runs, finds their ends, and queues the reports.

use serde::{Deserialize, Serialize};
use skerry_shared::clock::Timestamp;
use skerry_shared::cron::Schedule;
use skerry_shared::hash::Digest;
use skerry_shared::ids::Name;
use skerry_shared::job::{RunOutcome, RunTrigger};
use skerry_shared::manifest::{Component, Concurrency};

/// The prefix of job states in the journal's cursor table.
pub const STATE_PREFIX: &str = "job/";

/// The journal key of a job's state.
pub fn state_key(instance: &Name, component: &Name) -> String {
    format!("{STATE_PREFIX}{instance}/{component}")
}

/// The instance and component of a job state's key.
pub fn parse_state_key(key: &str) -> Option<(Name, Name)> {
    let rest = key.strip_prefix(STATE_PREFIX)?;
    let (instance, component) = rest.split_once('/')?;
    Some((Name::parse(instance).ok()?, Name::parse(component).ok()?))
}

/// A job's state on this node; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct JobState {
    /// The last due time handled, in unix milliseconds by the agent's clock.
    pub cursor: i64,
    /// The id of the latest run (ids only grow).
    pub last_id: u64,
    /// The runs in flight.
    pub runs: Vec<RunRecord>,
}

/// A run in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: u64,
    pub replica: u32,
    pub trigger: RunTrigger,
    pub started: Timestamp,
    pub spec_hash: Digest,
    /// Runs that came due meanwhile and were not started.
    pub skipped: u32,
    /// Set when the agent ended it (a timeout, a replacement): what its end is reported as.
    pub ending: Option<RunOutcome>,
}

impl JobState {
    /// A new state for a job first seen at `now`.
    pub fn new(now: Timestamp) -> Self {
        Self {
            cursor: now.millis(),
            ..Self::default()
        }
    }

    /// The next id: `now`'s milliseconds, made larger than the last one.
    pub fn next_id(&mut self, now: Timestamp) -> u64 {
        let id = u64::try_from(now.millis())
            .unwrap_or(0)
            .max(self.last_id.saturating_add(1));
        self.last_id = id;
        id
    }

    /// The lowest replica no run in flight uses, below `slots`.
    pub fn free_replica(&self, slots: u32) -> Option<u32> {
        (0..slots).find(|r| !self.runs.iter().any(|run| run.replica == *r))
    }
}

/// The schedule of a job component, in its time zone (`None`: it has none that parses,
/// which the cloud and the node's checks have refused before).
pub fn schedule_of(component: &Component) -> Option<Schedule> {
    let schedule = Schedule::parse(component.schedule.as_deref()?).ok()?;
    Some(match component.timezone.as_deref() {
        Some(zone) => schedule.in_zone(skerry_shared::cron::zone(zone).ok()?),
        None => schedule,
    })
}

/// What to do about a job whose run is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Start a run as this replica (after stopping the runs in `replace`, if any).
    Start { replica: u32, replace: Vec<u64> },
    /// Do not start it: it counts as skipped on the runs in flight.
    Skip,
}

/// When the run after `cursor` is due (`None`: never again, or the schedule does not parse).
pub fn next_due(schedule: &Schedule, cursor: i64) -> Option<i64> {
    schedule.next_after(cursor)
}

/// What `concurrency` says about a run due while `state`'s runs are in flight, for a job
/// whose runs may use `slots` replicas.
pub fn decide(state: &JobState, concurrency: Concurrency, slots: u32) -> Decision {
    let Some(first) = state.runs.first() else {
        return Decision::Start {
            replica: 0,
            replace: Vec::new(),
        };
    };
    match concurrency {
        Concurrency::Forbid => Decision::Skip,
        // The runs in flight are stopped first; the new one takes the first one's replica.
        Concurrency::Replace => Decision::Start {
            replica: first.replica,
            replace: state.runs.iter().map(|r| r.id).collect(),
        },
        Concurrency::Allow => match state.free_replica(slots) {
            Some(replica) => Decision::Start {
                replica,
                replace: Vec::new(),
            },
            None => Decision::Skip,
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn run(id: u64, replica: u32) -> RunRecord {
        RunRecord {
            id,
            replica,
            trigger: RunTrigger::Manual,
            started: Timestamp(0),
            spec_hash: Digest::ZERO,
            skipped: 0,
            ending: None,
        }
    }

    #[test]
    fn missed_runs_start_once_and_the_first_run_is_not_a_catch_up() {
        let every_2s = Schedule::parse("*/2 * * * * *").unwrap();
        let state = JobState::new(Timestamp(10_500));
        assert_eq!(next_due(&every_2s, state.cursor), Some(12_000));
        // Down for an hour: one run is due, and after it the cursor is now.
        let now = 3_600_000 + 10_500;
        assert!(next_due(&every_2s, state.cursor).unwrap() <= now);
        assert_eq!(next_due(&every_2s, now), Some(3_612_000));
    }

    #[test]
    fn concurrency_decides_what_a_due_run_does() {
        let mut s = JobState::default();
        assert_eq!(
            decide(&s, Concurrency::Forbid, 1),
            Decision::Start {
                replica: 0,
                replace: vec![]
            }
        );
        s.runs.push(run(1, 0));
        assert_eq!(decide(&s, Concurrency::Forbid, 1), Decision::Skip);
        assert_eq!(
            decide(&s, Concurrency::Replace, 1),
            Decision::Start {
                replica: 0,
                replace: vec![1]
            }
        );
        assert_eq!(
            decide(&s, Concurrency::Allow, 4),
            Decision::Start {
                replica: 1,
                replace: vec![]
            }
        );
        for r in 1..4 {
            s.runs.push(run(u64::from(r) + 1, r));
        }
        assert_eq!(decide(&s, Concurrency::Allow, 4), Decision::Skip);
    }

    #[test]
    fn ids_grow_and_keys_round_trip() {
        let mut s = JobState::default();
        assert_eq!(s.next_id(Timestamp(5)), 5);
        assert_eq!(s.next_id(Timestamp(5)), 6);
        assert_eq!(s.next_id(Timestamp(3)), 7);
        let (i, c) = (Name::parse("w").unwrap(), Name::parse("sweep").unwrap());
        assert_eq!(parse_state_key(&state_key(&i, &c)), Some((i, c)));
        assert_eq!(parse_state_key("dir/w/sweep/0"), None);
    }
}
