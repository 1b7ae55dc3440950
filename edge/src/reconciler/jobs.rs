//! Jobs in a pass: the ends of runs found (exits, timeouts, runs whose container went),
//! due runs started by [`crate::jobs::decide`], and every change of a job's state stored
//! in the same journal transaction as the outbox reports that tell of it.
//!
//! A run's start is made durable (its record and its `Running` report) before its container
//! or process starts, so an agent killed in between finds a record without a replica and
//! reports the run as failed, never forgets it. A run's end (its report with the last
//! lines of its output, the record gone) is stored at once; its container stays until the
//! job's next run replaces it, so the log collector reads all of its output.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use skerry_shared::clock::Timestamp;
use skerry_shared::ids::Name;
use skerry_shared::job::{JobRun, MAX_RUN_LINES, RunOutcome, RunTrigger, bounded_line};
use skerry_shared::manifest::{ComponentKind, RuntimeKind};
use skerry_shared::outbox::{JobReport, OutboxBody};
use skerry_shared::planner::{ActualState, Phase, ReplicaKey, replica_hash, waiting_on};
use skerry_shared::reducer::NodeDesired;

use super::Reconciler;
use crate::jobs::{Decision, JobState, RunRecord, decide, next_due, schedule_of, state_key};
use crate::journal::OutboxPush;
use crate::runtime::ObservedReplica;

/// How long a run killed for its timeout (or replaced) gets to end after it is asked to.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// Job states by (instance, component).
pub(super) type JobStates = BTreeMap<(Name, Name), JobState>;

type Observed = BTreeMap<ReplicaKey, (ObservedReplica, RuntimeKind)>;

/// What a pass's job work has to store.
#[derive(Default)]
struct Pending {
    bodies: Vec<OutboxBody>,
    changed: BTreeSet<(Name, Name)>,
}

impl Reconciler {
    /// Reads the job states of the journal once (at the first pass, and after a failed
    /// commit). Gives whether they are there: on a read error no job acts this pass, so no
    /// stored state is overwritten.
    fn load_jobs(&mut self) -> bool {
        if self.jobs.is_none() {
            let mut states = JobStates::new();
            // Run reports dropped for the quota so far, which the next report says.
            if let Ok(stats) = self.journal.outbox_stats() {
                self.runs_dropped = stats.dropped_runs;
            }
            match self.journal.log_cursors() {
                Ok(cursors) => {
                    for (key, bytes) in cursors {
                        let Some(job) = crate::jobs::parse_state_key(&key) else {
                            continue;
                        };
                        match postcard::from_bytes::<JobState>(&bytes) {
                            Ok(state) => {
                                states.insert(job, state);
                            }
                            Err(e) => {
                                tracing::warn!(key, error = %e, "a job's stored state does not decode; it starts again from now")
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the jobs' states; no job acts until they are read");
                    return false;
                }
            }
            self.jobs = Some(states);
        }
        true
    }

    /// The job states (after [`Reconciler::load_jobs`]).
    fn job_states(&mut self) -> &mut JobStates {
        self.jobs.get_or_insert_with(JobStates::new)
    }

    /// Stores the changed job states with `bodies`, in one transaction. Gives whether
    /// anything was queued.
    fn commit_jobs(&mut self, pending: Pending) -> bool {
        if pending.bodies.is_empty() && pending.changed.is_empty() {
            return false;
        }
        let Some(states) = self.jobs.as_ref() else {
            return false;
        };
        let cursors = pending
            .changed
            .iter()
            .map(|job @ (instance, component)| {
                let value = states.get(job).and_then(|s| postcard::to_stdvec(s).ok());
                (state_key(instance, component), value)
            })
            .collect();
        let push = OutboxPush {
            bodies: pending.bodies,
            cursors,
        };
        match self.journal.outbox_push(&push, u64::MAX) {
            Ok(pushed) => {
                if pushed.dropped_runs > 0 {
                    tracing::warn!(
                        dropped = pushed.dropped_runs,
                        "the outbox is over its quota (agent.outbox_quota): the oldest job run reports gave way"
                    );
                    self.runs_dropped = self.runs_dropped.saturating_add(pushed.dropped_runs);
                }
                self.jobs_queued |= !push.bodies.is_empty();
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot store the jobs' runs; they are found again at the next pass");
                // What is in memory is not what is stored: read the journal again.
                self.jobs = None;
                false
            }
        }
    }

    fn report(&self, instance: &Name, component: &Name, run: &RunRecord, end: End) -> OutboxBody {
        let (ended, outcome, last_lines) = match end {
            End::Running => (None, RunOutcome::Running, Vec::new()),
            End::Ended {
                at,
                outcome,
                last_lines,
            } => (Some(at), outcome, last_lines),
        };
        OutboxBody::JobRun(Box::new(JobReport {
            run: JobRun {
                instance: instance.clone(),
                component: component.clone(),
                replica: run.replica,
                id: run.id,
                trigger: run.trigger,
                started: run.started,
                ended,
                outcome,
                skipped: run.skipped,
                spec_hash: run.spec_hash,
                last_lines,
            },
            dropped_before: self.runs_dropped,
        }))
    }

    /// The last lines of a run's output (none when its runtime keeps none).
    async fn last_lines(
        &self,
        key: &ReplicaKey,
        kind: RuntimeKind,
        desired: &NodeDesired,
    ) -> Vec<String> {
        let component = desired
            .instances
            .get(&key.instance)
            .and_then(|d| d.spec.manifest.component(key.component.as_str()));
        let (Some(rt), Some(c)) = (self.runtime(kind), component) else {
            return Vec::new();
        };
        match rt.output_tail(self.node, key, c, MAX_RUN_LINES).await {
            Ok(lines) => lines.iter().map(|l| bounded_line(l)).collect(),
            Err(e) => {
                tracing::debug!(%key, error = %e, "cannot read the run's output");
                Vec::new()
            }
        }
    }

    /// The jobs' work of one pass; gives when the next run is due, and whether reports
    /// were queued.
    pub(super) async fn run_jobs(
        &mut self,
        desired: &NodeDesired,
        observed: &Observed,
        actual: &ActualState,
        fixed: &BTreeSet<u16>,
    ) -> (Option<Duration>, bool) {
        if !self.load_jobs() {
            return (None, false);
        }
        let now = self.clock.now();
        let mut pending = Pending::default();
        let wanted: Vec<(Name, Name)> = desired
            .instances
            .values()
            .flat_map(|d| {
                d.spec
                    .manifest
                    .components
                    .iter()
                    .filter(|c| c.kind == ComponentKind::Job)
                    .map(|c| (d.spec.name.clone(), c.name.clone()))
            })
            .collect();
        // Jobs no longer desired: their runs end as stopped (the planner stops them).
        let gone: Vec<(Name, Name)> = self
            .job_states()
            .keys()
            .filter(|k| !wanted.contains(k))
            .cloned()
            .collect();
        for job in gone {
            if let Some(state) = self.job_states().remove(&job) {
                for run in &state.runs {
                    let outcome = run.ending.clone().unwrap_or(RunOutcome::Stopped);
                    let body = self.report(&job.0, &job.1, run, End::ended(now, outcome));
                    pending.bodies.push(body);
                }
            }
            pending.changed.insert(job);
        }
        let mut wake: Option<Duration> = None;
        for job in wanted {
            if self.jobs.is_none() {
                // A commit failed: the states are read again at the next pass.
                break;
            }
            let due = self
                .run_job(desired, observed, actual, fixed, &job, now, &mut pending)
                .await;
            if let Some(due) = due {
                let wait = Duration::from_millis(u64::try_from(due - now.millis()).unwrap_or(0));
                wake = Some(wake.map_or(wait, |w| w.min(wait)));
            }
        }
        self.commit_jobs(pending);
        (wake, std::mem::take(&mut self.jobs_queued))
    }

    /// One job: ends, timeouts, and a due run. Gives when its next run is due.
    #[allow(clippy::too_many_arguments)]
    async fn run_job(
        &mut self,
        desired: &NodeDesired,
        observed: &Observed,
        actual: &ActualState,
        fixed: &BTreeSet<u16>,
        job: &(Name, Name),
        now: Timestamp,
        pending: &mut Pending,
    ) -> Option<i64> {
        let (instance, component) = job;
        let d = desired.instances.get(instance)?;
        let c = d.spec.manifest.component(component.as_str())?;
        // The hash the replica is labelled with (the secrets' versions included).
        let hash = replica_hash(&d.spec, c, &desired.secrets);
        let stopped = d.spec.lifecycle.stopped;
        let kind = c.runtime();
        // Its runtime not connected (the Docker engine not there yet): its runs cannot be
        // seen, so none is judged gone and none starts.
        self.runtime(kind)?;
        let schedule = schedule_of(c);
        if !self.job_states().contains_key(job) {
            self.job_states().insert(job.clone(), JobState::new(now));
            pending.changed.insert(job.clone());
        }
        let mut state = self.job_states().get(job).cloned().unwrap_or_default();

        // The runs in flight: ended, timed out, or still going.
        let mut still = Vec::new();
        for mut run in std::mem::take(&mut state.runs) {
            let key = ReplicaKey::new(instance, component, run.replica);
            let found = observed
                .get(&key)
                .filter(|(o, _)| o.spec_hash == run.spec_hash)
                .map(|(o, _)| o);
            let seen = found.map(|o| o.phase);
            // When the runtime saw it end (by the host's clock, moved to the agent's), if
            // it says: a run's end is then not the time of the pass that found it.
            let exited_at = found
                .and_then(|o| o.exited.as_ref())
                .map(|e| e.at.plus_millis(self.clock.offset_ms()))
                .filter(|at| *at >= run.started && *at <= now);
            let timed_out = c.timeout.is_some_and(|t| {
                now.millis() >= run.started.millis().saturating_add(t.millis() as i64)
            });
            // The output of a run killed here is read before it goes with its container.
            let mut lines_before = None;
            let outcome = match seen {
                Some(Phase::Exited { code }) => {
                    Some(run.ending.take().unwrap_or(RunOutcome::Exited { code }))
                }
                None => Some(run.ending.take().unwrap_or_else(|| {
                    if stopped || hash != run.spec_hash {
                        RunOutcome::Stopped
                    } else {
                        RunOutcome::Failed {
                            reason: "its container or process is gone (removed, or the agent stopped before it started)".into(),
                        }
                    }
                })),
                Some(_) if timed_out => {
                    tracing::info!(%key, run = run.id, "the run took longer than its timeout; killing it");
                    lines_before = Some(self.last_lines(&key, kind, desired).await);
                    self.kill(&key, kind).await;
                    Some(RunOutcome::TimedOut)
                }
                Some(_) => None,
            };
            match outcome {
                Some(outcome) => {
                    let at = match outcome {
                        RunOutcome::Exited { .. } => exited_at.unwrap_or(now),
                        _ => now,
                    };
                    let last_lines = match lines_before {
                        Some(lines) => lines,
                        None => self.last_lines(&key, kind, desired).await,
                    };
                    let body = self.report(
                        instance,
                        component,
                        &run,
                        End::Ended {
                            at,
                            outcome,
                            last_lines,
                        },
                    );
                    pending.bodies.push(body);
                    pending.changed.insert(job.clone());
                }
                None => still.push(run),
            }
        }
        state.runs = still;

        // A run due (the schedule's, or one missed while the agent was down: once).
        let Some(schedule) = schedule else {
            self.job_states().insert(job.clone(), state);
            return None;
        };
        let due = next_due(&schedule, state.cursor).filter(|due| *due <= now.millis());
        if stopped {
            // A stopped instance's job does not run, and does not catch up when started.
            if due.is_some() {
                state.cursor = now.millis();
                pending.changed.insert(job.clone());
            }
            self.job_states().insert(job.clone(), state);
            return next_due(&schedule, now.millis());
        }
        if let Some(due) = due {
            let waiting = waiting_on(&d.spec, c, actual);
            if !waiting.is_empty() {
                // The run waits for the job's dependencies: the cursor stays, so it starts
                // (once) as soon as they are ready.
                tracing::debug!(instance = %instance, component = %component, ?waiting, "a run is due; it waits for the job's dependencies");
                self.job_states().insert(job.clone(), state);
                return Some(now.millis());
            }
            let trigger = RunTrigger::Schedule {
                due: Timestamp(due),
            };
            match decide(&state, c.concurrency(), c.slots()) {
                Decision::Skip => {
                    tracing::info!(instance = %instance, component = %component, "a run came due while another ran; not started (concurrency)");
                    state.cursor = now.millis();
                    pending.changed.insert(job.clone());
                    for run in &mut state.runs {
                        run.skipped = run.skipped.saturating_add(1);
                    }
                }
                Decision::Start { replica, replace } => {
                    for id in replace {
                        if let Some(at) = state.runs.iter().position(|r| r.id == id) {
                            let run = state.runs.remove(at);
                            let key = ReplicaKey::new(instance, component, run.replica);
                            let last_lines = self.last_lines(&key, kind, desired).await;
                            self.kill(&key, kind).await;
                            let body = self.report(
                                instance,
                                component,
                                &run,
                                End::Ended {
                                    at: now,
                                    outcome: RunOutcome::Replaced,
                                    last_lines,
                                },
                            );
                            pending.bodies.push(body);
                        }
                    }
                    let started = self
                        .start_run(
                            desired, fixed, job, &mut state, replica, trigger, hash, now, pending,
                        )
                        .await;
                    if !started {
                        // A commit failed: the states are read again at the next pass.
                        return None;
                    }
                }
            }
        }
        let next = next_due(&schedule, state.cursor);
        self.job_states().insert(job.clone(), state);
        next
    }

    /// Starts a run as `replica`. First what the pass found of the job so far (ends of
    /// runs, the cursor not yet moved) is made durable; then the previous run's replica,
    /// kept for its output, is removed; then the new run's record and `Running` report are
    /// made durable with the cursor moved; then the replica starts. So a crash at any point
    /// neither loses an end nor takes an old replica's exit for the new run's, and a due
    /// time is consumed only with the record of its run. Gives false when a commit failed
    /// (nothing started; the states are read again from the journal).
    #[allow(clippy::too_many_arguments)]
    async fn start_run(
        &mut self,
        desired: &NodeDesired,
        fixed: &BTreeSet<u16>,
        job: &(Name, Name),
        state: &mut JobState,
        replica: u32,
        trigger: RunTrigger,
        hash: skerry_shared::hash::Digest,
        now: Timestamp,
        pending: &mut Pending,
    ) -> bool {
        let (instance, component) = job;
        let key = ReplicaKey::new(instance, component, replica);
        self.job_states().insert(job.clone(), state.clone());
        pending.changed.insert(job.clone());
        if !self.commit_jobs(std::mem::take(pending)) {
            return false;
        }
        let kind = desired
            .instances
            .get(instance)
            .and_then(|d| d.spec.manifest.component(component.as_str()))
            .map(|c| c.runtime());
        if let Some(rt) = kind.and_then(|k| self.runtime(k)).cloned()
            && let Err(e) = rt.stop(self.node, &key).await
        {
            tracing::warn!(%key, error = %e, "cannot remove the job's previous run; the run is not started");
            return true;
        }
        state.cursor = now.millis();
        let run = RunRecord {
            id: state.next_id(now),
            replica,
            trigger,
            started: now,
            spec_hash: hash,
            skipped: 0,
            ending: None,
        };
        state.runs.push(run.clone());
        self.job_states().insert(job.clone(), state.clone());
        let mut start = Pending::default();
        start
            .bodies
            .push(self.report(instance, component, &run, End::Running));
        start.changed.insert(job.clone());
        if !self.commit_jobs(start) {
            return false;
        }
        tracing::info!(%key, run = run.id, "starting a job run");
        if let Err(e) = self.start(desired, &key, fixed).await {
            tracing::warn!(%key, run = run.id, error = %e, "the job run did not start");
            state.runs.retain(|r| r.id != run.id);
            let reason = bounded_line(&e.to_string());
            pending.bodies.push(self.report(
                instance,
                component,
                &run,
                End::ended(now, RunOutcome::Failed { reason }),
            ));
            pending.changed.insert(job.clone());
        }
        true
    }

    /// Stops a run's replica within [`KILL_GRACE`].
    async fn kill(&self, key: &ReplicaKey, kind: RuntimeKind) {
        if let Some(rt) = self.runtime(kind)
            && let Err(e) = rt.stop_within(self.node, key, KILL_GRACE).await
        {
            tracing::warn!(%key, error = %e, "cannot stop the job's run");
        }
    }
}

/// How a run report ends.
enum End {
    Running,
    Ended {
        at: Timestamp,
        outcome: RunOutcome,
        last_lines: Vec<String>,
    },
}

impl End {
    fn ended(at: Timestamp, outcome: RunOutcome) -> Self {
        End::Ended {
            at,
            outcome,
            last_lines: Vec::new(),
        }
    }
}
