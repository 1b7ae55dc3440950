//! When the agent may try a replica again, and why it waits (sans-IO).
//!
//! Every replica the agent fails to start, and every container replica that exited and
//! is to be restarted, waits under [`crate::backoff::RESTART`] (1 s doubling to 5 min):
//! - a failed image pull: `ImagePullBackOff`, with the registry's message;
//! - a start the node refused (a fixed host port in use, a missing binary): `Unschedulable`,
//!   with the reason;
//! - any other failed start (the engine busy): `Pending`, with the error;
//! - an exit that its restart policy restarts (a crash loop, or a stop from outside):
//!   `CrashLoopBackOff`, with the exit.
//!
//! The reason ends with the time of the next try. A successful start resets the backoff;
//! a restart does not, only a run of [`crate::backoff::Policy::stable`] does. The state is
//! per spec hash: a new deploy, upgrade or override starts afresh.

use std::collections::BTreeMap;
use std::time::Duration;

use skerry_shared::clock::Timestamp;
use skerry_shared::hash::Digest;
use skerry_shared::planner::{Phase, ReplicaKey};
use skerry_shared::report::{LastExit, ReplicaState};
use tokio::time::Instant;

use crate::backoff::{Backoff, RESTART};
use crate::runtime::RuntimeError;

/// Why a replica waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waiting {
    Pull(String),
    Refused(String),
    Failed(String),
    Exited(String),
}

#[derive(Debug)]
struct Entry {
    spec_hash: Digest,
    backoff: Backoff,
    /// When it may be tried again (and that time on the wall clock, for the report).
    next: Option<(Instant, Timestamp)>,
    why: Option<Waiting>,
    /// The engine's own restart count, last seen.
    engine_restarts: Option<u32>,
    /// The engine's count grew since the last [`Retries::observed`].
    engine_grew: bool,
    /// Restarts the agent made (the engine does not count them): the replica's count is
    /// the engine's plus these. `None` until known.
    agent_restarts: Option<u32>,
    /// Since when it has run without an exit seen.
    running_since: Option<Instant>,
    /// Whether the engine's own restart policy is suspended (`None`: not known; after an
    /// agent restart it may be either).
    held: Option<bool>,
    /// The exit the agent last restarted it after (the engine forgets it once the container
    /// runs again, and sent no event while the agent was down).
    last_exit: Option<LastExit>,
}

impl Entry {
    fn new(spec_hash: Digest) -> Self {
        Self {
            spec_hash,
            backoff: Backoff::with(RESTART),
            next: None,
            why: None,
            engine_restarts: None,
            engine_grew: false,
            agent_restarts: None,
            running_since: None,
            held: None,
            last_exit: None,
        }
    }

    fn schedule(&mut self, why: Waiting, now: Instant) -> Duration {
        let delay = self.backoff.failed();
        let wall = Timestamp::now().plus_millis(i64::try_from(delay.as_millis()).unwrap_or(0));
        self.next = Some((now + delay, wall));
        self.why = Some(why);
        delay
    }
}

/// What [`Retries::observed`] asks of the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Suspend the engine's restart policy: the agent paces this replica.
    Suspend,
    /// Give the engine its restart policy back: the replica runs steadily.
    Restore,
}

/// The retry state of every replica that needs one.
#[derive(Debug, Default)]
pub struct Retries {
    by: BTreeMap<ReplicaKey, Entry>,
}

impl Retries {
    fn entry(&mut self, key: &ReplicaKey, spec_hash: Digest) -> &mut Entry {
        let e = self
            .by
            .entry(key.clone())
            .or_insert_with(|| Entry::new(spec_hash));
        if e.spec_hash != spec_hash {
            *e = Entry::new(spec_hash);
        }
        e
    }

    /// Whether a start (or restart) of `key` may run at `now`.
    pub fn may_try(&self, key: &ReplicaKey, spec_hash: Digest, now: Instant) -> bool {
        self.by
            .get(key)
            .filter(|e| e.spec_hash == spec_hash)
            .and_then(|e| e.next)
            .is_none_or(|(at, _)| at <= now)
    }

    /// A start failed: it waits its backoff. Returns the delay.
    pub fn start_failed(
        &mut self,
        key: &ReplicaKey,
        spec_hash: Digest,
        error: &RuntimeError,
        now: Instant,
    ) -> Duration {
        let why = match error {
            RuntimeError::Pull(m) => Waiting::Pull(m.clone()),
            RuntimeError::Unrunnable(m) => Waiting::Refused(m.clone()),
            RuntimeError::Engine(m) => Waiting::Failed(m.clone()),
        };
        self.entry(key, spec_hash).schedule(why, now)
    }

    /// A fresh start worked: the backoff starts over, and so does the restart count.
    pub fn started(&mut self, key: &ReplicaKey, spec_hash: Digest, now: Instant) {
        let e = self.entry(key, spec_hash);
        e.backoff.succeeded();
        e.next = None;
        e.why = None;
        e.running_since = Some(now);
        e.engine_restarts = None;
        e.engine_grew = false;
        e.agent_restarts = Some(0);
        e.held = None;
    }

    /// A restart worked: counted; the backoff stays until the replica has run for a while.
    /// `exit` is how it ended before.
    pub fn restarted(
        &mut self,
        key: &ReplicaKey,
        spec_hash: Digest,
        exit: Option<LastExit>,
        now: Instant,
    ) {
        let e = self.entry(key, spec_hash);
        if exit.is_some() {
            e.last_exit = exit;
        }
        e.next = None;
        e.why = None;
        e.running_since = Some(now);
        e.held = Some(true);
        e.agent_restarts = Some(e.agent_restarts.unwrap_or(0).saturating_add(1));
    }

    /// The restart count of a replica the engine counts `engine` restarts for: the
    /// engine's plus the agent's own. `recorded` is the count the journal holds, which
    /// gives the agent's restarts from before an agent restart.
    pub fn count(
        &mut self,
        key: &ReplicaKey,
        spec_hash: Digest,
        engine: u32,
        recorded: Option<u32>,
    ) -> u32 {
        let e = self.entry(key, spec_hash);
        if e.engine_restarts.is_some_and(|before| engine > before) {
            e.engine_grew = true;
        }
        e.engine_restarts = Some(engine);
        let agent = *e
            .agent_restarts
            .get_or_insert_with(|| recorded.unwrap_or(0).saturating_sub(engine));
        engine.saturating_add(agent)
    }

    /// The exit the agent last restarted the replica after.
    pub fn last_exit(&self, key: &ReplicaKey, spec_hash: Digest) -> Option<LastExit> {
        self.by
            .get(key)
            .filter(|e| e.spec_hash == spec_hash)
            .and_then(|e| e.last_exit.clone())
    }

    /// Records that the engine's policy is now held or restored.
    pub fn set_held(&mut self, key: &ReplicaKey, spec_hash: Digest, held: bool) {
        self.entry(key, spec_hash).held = Some(held);
    }

    /// A replica seen in `phase`: counts the engine's own restarts (seen by
    /// [`Retries::count`]) as failures of a crash loop, resets the backoff after a steady
    /// run, and says what to do with the engine's own policy.
    pub fn observed(
        &mut self,
        key: &ReplicaKey,
        spec_hash: Digest,
        phase: Phase,
        now: Instant,
    ) -> Option<Hold> {
        let e = self.entry(key, spec_hash);
        let mut hold = None;
        if std::mem::take(&mut e.engine_grew) {
            // The engine restarted it by itself: a crash loop; from now on the agent
            // paces it.
            e.backoff.failed();
            e.running_since = None;
            if e.held != Some(true) {
                hold = Some(Hold::Suspend);
            }
        }
        if phase.exited() {
            e.running_since = None;
        } else if matches!(phase, Phase::Running | Phase::Healthy | Phase::Unhealthy) {
            let since = *e.running_since.get_or_insert(now);
            if now.duration_since(since) >= e.backoff.policy().stable {
                if e.backoff.failures() > 0 {
                    tracing::info!(replica = %key, "runs steadily again; its restart backoff starts over");
                }
                e.backoff.succeeded();
                if e.held != Some(false) && hold.is_none() {
                    hold = Some(Hold::Restore);
                }
            }
        }
        hold
    }

    /// A replica that exited and is to be restarted: schedules its restart when this exit
    /// is new, and says whether it is due at `now`.
    pub fn exited(
        &mut self,
        key: &ReplicaKey,
        spec_hash: Digest,
        exit: &str,
        now: Instant,
    ) -> bool {
        let e = self.entry(key, spec_hash);
        match e.next {
            Some((at, _)) => {
                if matches!(e.why, Some(Waiting::Exited(_))) {
                    e.why = Some(Waiting::Exited(exit.to_owned()));
                }
                at <= now
            }
            None => {
                let delay = e.schedule(Waiting::Exited(exit.to_owned()), now);
                tracing::info!(replica = %key, %exit, delay_ms = delay.as_millis() as u64, "exited; restarting after the backoff");
                delay.is_zero()
            }
        }
    }

    /// The state and reason to report for a replica that waits, if it does.
    pub fn report(&self, key: &ReplicaKey, spec_hash: Digest) -> Option<(ReplicaState, String)> {
        let e = self.by.get(key).filter(|e| e.spec_hash == spec_hash)?;
        let (_, next_try) = e.next?;
        let n = e.backoff.failures();
        Some(match e.why.as_ref()? {
            Waiting::Pull(m) => (
                ReplicaState::ImagePullBackOff { next_try },
                format!("{m}; pull {n} failed, next try at {next_try}"),
            ),
            Waiting::Refused(m) => (
                ReplicaState::Unschedulable,
                format!("{m}; try {n} refused, next try at {next_try}"),
            ),
            Waiting::Failed(m) => (
                ReplicaState::Pending,
                format!("{m}; try {n} failed, next try at {next_try}"),
            ),
            Waiting::Exited(m) => (
                ReplicaState::CrashLoopBackOff { next_try },
                format!("{m}; restarts at {next_try} (backoff {n})"),
            ),
        })
    }

    /// How soon the next wait ends (waits already over do not count), so the agent looks
    /// again then.
    pub fn next_due(&self, now: Instant) -> Option<Duration> {
        self.by
            .values()
            .filter_map(|e| e.next.map(|(at, _)| at))
            .filter(|at| *at > now)
            .map(|at| at.duration_since(now))
            .min()
    }

    /// Forgets replicas that are not desired any more.
    pub fn retain(&mut self, keep: impl Fn(&ReplicaKey) -> bool) {
        self.by.retain(|k, _| keep(k));
    }
}

#[cfg(test)]
mod tests {
    use skerry_shared::ids::Name;

    use super::*;

    fn key() -> ReplicaKey {
        let n = |s: &str| Name::parse(s).unwrap();
        ReplicaKey::new(&n("i"), &n("web"), 0)
    }

    #[test]
    fn failed_pulls_wait_longer_each_time_and_say_why() {
        let mut r = Retries::default();
        let (k, h) = (key(), Digest::of(b"1"));
        let t0 = Instant::now();
        assert!(r.may_try(&k, h, t0));
        let err = RuntimeError::Pull("image nope:1: pull access denied".into());
        assert_eq!(r.start_failed(&k, h, &err, t0), Duration::from_secs(1));
        assert!(!r.may_try(&k, h, t0 + Duration::from_millis(999)));
        assert!(r.may_try(&k, h, t0 + Duration::from_secs(1)));
        assert_eq!(r.start_failed(&k, h, &err, t0), Duration::from_secs(2));
        let (state, reason) = r.report(&k, h).unwrap();
        assert!(
            matches!(state, ReplicaState::ImagePullBackOff { .. }),
            "{state}"
        );
        assert!(reason.contains("pull access denied"), "{reason}");
        assert!(reason.contains("next try at 20"), "{reason}");
        // Another spec hash starts afresh.
        assert!(r.may_try(&k, Digest::of(b"2"), t0));
        assert!(r.report(&k, Digest::of(b"2")).is_none());
        r.started(&k, h, t0);
        assert!(r.report(&k, h).is_none());
        assert_eq!(r.start_failed(&k, h, &err, t0), Duration::from_secs(1));
    }

    #[test]
    fn a_crash_loop_backs_off_until_a_steady_run() {
        let mut r = Retries::default();
        let (k, h) = (key(), Digest::of(b"1"));
        let mut now = Instant::now();
        r.started(&k, h, now);
        assert_eq!(r.count(&k, h, 0, Some(7)), 0);
        assert_eq!(r.observed(&k, h, Phase::Running, now), None);
        // Exits: the first restart after 1 s, then 2 s.
        for delay in [1, 2, 4] {
            assert_eq!(r.observed(&k, h, Phase::Exited { code: 1 }, now), None);
            assert!(!r.exited(&k, h, "exited 1", now));
            let (state, _) = r.report(&k, h).unwrap();
            assert!(matches!(state, ReplicaState::CrashLoopBackOff { .. }));
            now += Duration::from_secs(delay);
            assert!(r.exited(&k, h, "exited 1", now));
            r.restarted(&k, h, None, now);
        }
        // The engine restarted it by itself: counted, and its policy is suspended once.
        assert_eq!(r.count(&k, h, 0, None), 3);
        r.set_held(&k, h, false);
        assert_eq!(r.count(&k, h, 1, None), 4);
        assert_eq!(r.observed(&k, h, Phase::Running, now), Some(Hold::Suspend));
        r.set_held(&k, h, true);
        assert_eq!(r.count(&k, h, 2, None), 5);
        assert_eq!(r.observed(&k, h, Phase::Exited { code: 1 }, now), None);
        assert!(!r.exited(&k, h, "exited 1", now));
        // Two more exits counted (8 s and 16 s used): this one waits 32 s.
        assert_eq!(r.next_due(now), Some(Duration::from_secs(32)));
        now += Duration::from_secs(32);
        assert!(r.exited(&k, h, "exited 1", now));
        r.restarted(&k, h, None, now);
        assert_eq!(r.count(&k, h, 2, None), 6);
        // A steady run resets it and gives the engine its policy back.
        assert_eq!(r.observed(&k, h, Phase::Running, now), None);
        now += RESTART.stable;
        assert_eq!(r.observed(&k, h, Phase::Running, now), Some(Hold::Restore));
        r.set_held(&k, h, false);
        assert_eq!(r.observed(&k, h, Phase::Running, now), None);
        assert_eq!(r.observed(&k, h, Phase::Exited { code: 1 }, now), None);
        assert!(!r.exited(&k, h, "exited 1", now));
        assert_eq!(r.next_due(now), Some(Duration::from_secs(1)));
    }

    #[test]
    fn an_adopted_replica_keeps_the_agents_restarts_from_the_journal() {
        let mut r = Retries::default();
        let (k, h) = (key(), Digest::of(b"1"));
        // The journal says 5; the engine counted 2 of them.
        assert_eq!(r.count(&k, h, 2, Some(5)), 5);
        assert_eq!(r.count(&k, h, 3, Some(5)), 6);
    }
}
