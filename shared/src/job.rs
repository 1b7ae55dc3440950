//! A job's runs, as an agent reports them and the cloud keeps them.
//!
//! An agent runs a `job` component on its schedule by its own clock, with or without a
//! link, and reports each run through its outbox twice: when it starts
//! ([`RunOutcome::Running`]) and when it ends. Both carry the run's `id`, which is unique
//! per job on a node (the agent's clock, in milliseconds, when it started, made strictly
//! larger than the job's previous one), so the cloud keeps one record per run and the end
//! replaces the start.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::hash::Digest;
use crate::ids::Name;

/// The most lines of a run's output a report carries (its last ones).
pub const MAX_RUN_LINES: usize = 20;
/// The longest line of a run's output a report carries; longer ones are cut at a char
/// boundary.
pub const MAX_RUN_LINE_BYTES: usize = 512;

/// Why a run started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunTrigger {
    /// Its schedule: `due` is the time it was due by the agent's clock. Runs missed while
    /// the agent was down start once at start, with the time of the first one missed.
    Schedule { due: Timestamp },
    /// `skerry job run`.
    Manual,
}

/// How a run went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunOutcome {
    /// It has started and not ended yet.
    Running,
    /// Its process exited with this code.
    Exited { code: i64 },
    /// It ran longer than the job's `timeout` and was killed.
    TimedOut,
    /// A newer run replaced it (`concurrency: replace`).
    Replaced,
    /// It could not start, or it ended in a way the agent could not see (its container was
    /// removed, or the agent stopped before it started): why, in words.
    Failed { reason: String },
    /// The instance was stopped, upgraded or undeployed while it ran.
    Stopped,
}

impl RunOutcome {
    /// `running`, `exited 0`, `timed out`...
    pub fn describe(&self) -> String {
        match self {
            RunOutcome::Running => "running".into(),
            RunOutcome::Exited { code } => format!("exited {code}"),
            RunOutcome::TimedOut => "timed out".into(),
            RunOutcome::Replaced => "replaced".into(),
            RunOutcome::Failed { reason } => format!("failed: {reason}"),
            RunOutcome::Stopped => "stopped".into(),
        }
    }

    /// Whether it ended well (exit 0).
    pub fn succeeded(&self) -> bool {
        matches!(self, RunOutcome::Exited { code: 0 })
    }
}

/// One run of a job on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRun {
    pub instance: Name,
    pub component: Name,
    /// The replica it ran as (0, or up to 3 under `concurrency: allow`).
    pub replica: u32,
    /// Unique per job on the node; see the module docs.
    pub id: u64,
    pub trigger: RunTrigger,
    /// By the agent's clock.
    pub started: Timestamp,
    /// By the agent's clock; `None` while it runs.
    pub ended: Option<Timestamp>,
    pub outcome: RunOutcome,
    /// Runs that came due while this one ran and were not started (`concurrency: forbid`,
    /// or `allow` with every replica busy).
    pub skipped: u32,
    /// The spec hash of the component it ran.
    pub spec_hash: Digest,
    /// The last lines of its output (at most [`MAX_RUN_LINES`] of at most
    /// [`MAX_RUN_LINE_BYTES`]), standard output and error together, once it ended.
    pub last_lines: Vec<String>,
}

impl JobRun {
    /// How long it ran, in milliseconds, once it ended.
    pub fn duration_ms(&self) -> Option<i64> {
        self.ended
            .map(|e| e.millis().saturating_sub(self.started.millis()))
    }

    /// Whether the report is within its bounds (what the cloud checks before it stores one).
    pub fn within_bounds(&self) -> bool {
        self.last_lines.len() <= MAX_RUN_LINES
            && self
                .last_lines
                .iter()
                .all(|l| l.len() <= MAX_RUN_LINE_BYTES)
            && match &self.outcome {
                RunOutcome::Failed { reason } => reason.len() <= MAX_RUN_LINE_BYTES,
                _ => true,
            }
    }
}

/// `line` cut to at most [`MAX_RUN_LINE_BYTES`], at a char boundary.
pub fn bounded_line(line: &str) -> String {
    let mut end = line.len().min(MAX_RUN_LINE_BYTES);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    line[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_at_a_char_boundary() {
        let long = "é".repeat(400);
        let cut = bounded_line(&long);
        assert!(cut.len() <= MAX_RUN_LINE_BYTES);
        assert_eq!(cut.len(), 512);
        assert_eq!(bounded_line("ok"), "ok");
    }
}
