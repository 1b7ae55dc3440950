//! The restart decision and its backoff (sans-IO): how an exit is described, whether it
//! is followed by a restart, and how long to wait first.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use skerry_shared::manifest::{Component, ComponentKind, RestartPolicy};

/// How a supervised process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Exit {
    /// It exited with this code.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
    /// It is gone, and no one here could wait for it (an adopted process, or one that died
    /// while no agent was running): its code is unknown.
    Unknown,
    /// It could not be started again.
    SpawnFailed(String),
}

impl Exit {
    pub(super) fn from_status(status: ExitStatus) -> Self {
        match (status.code(), status.signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(signal)) => Exit::Signal(signal),
            (None, None) => Exit::Unknown,
        }
    }

    /// The code in [`skerry_shared::planner::Phase::Exited`]: the exit code; 128 + the
    /// signal for a killed process (as a shell and Docker report it); -1 when unknown.
    pub(super) fn code(&self) -> i64 {
        match self {
            Exit::Code(code) => i64::from(*code),
            Exit::Signal(signal) => 128 + i64::from(*signal),
            Exit::Unknown | Exit::SpawnFailed(_) => -1,
        }
    }

    /// Anything but a clean `exit 0`.
    pub(super) fn failed(&self) -> bool {
        !matches!(self, Exit::Code(0))
    }

    /// In words, for `last_exit`: `exited 3`, `killed by signal 9`.
    pub(super) fn describe(&self) -> String {
        match self {
            Exit::Code(code) => format!("exited {code}"),
            Exit::Signal(signal) => format!("killed by signal {signal}"),
            Exit::Unknown => "exited (code unknown: not a child of this agent)".to_owned(),
            Exit::SpawnFailed(why) => format!("failed to start: {why}"),
        }
    }
}

/// Whether `exit` is followed by a restart. An `init` or a `job` is never restarted,
/// whatever its `restart` says; a service follows its policy (as Docker does:
/// `on-failure` restarts on anything but `exit 0`).
pub(super) fn restarts(component: &Component, exit: &Exit) -> bool {
    match component.kind {
        ComponentKind::Init | ComponentKind::Job => false,
        ComponentKind::Service => match component.restart() {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => exit.failed(),
            RestartPolicy::Never => false,
        },
    }
}

/// The wait before a restart: the agent's restart policy for every runtime
/// ([`crate::backoff::RESTART`]): 1 s, doubling up to 5 min; back to 1 s after a run of
/// at least 60 s. The next wait is saved in the replica's state file with each exit
/// ([`Backoff::saved`], [`Backoff::resume`]), so an agent restart does not reset it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub(super) const FIRST: Duration = crate::backoff::RESTART.first;
    pub(super) const MAX: Duration = crate::backoff::RESTART.max;
    /// A run at least this long resets the backoff.
    pub(super) const RESET_AFTER: Duration = crate::backoff::RESTART.stable;

    pub(super) fn new() -> Self {
        Self { next: Self::FIRST }
    }

    /// Goes on from a saved next wait (milliseconds), kept within the policy's bounds;
    /// `None` (a state file written before waits were saved) starts afresh.
    pub(super) fn resume(next_ms: Option<u64>) -> Self {
        match next_ms {
            Some(ms) => Self {
                next: Duration::from_millis(ms).clamp(Self::FIRST, Self::MAX),
            },
            None => Self::new(),
        }
    }

    /// The next wait in milliseconds, to save.
    pub(super) fn saved(&self) -> u64 {
        u64::try_from(self.next.as_millis()).unwrap_or(u64::MAX)
    }

    /// The wait before restarting a process that ran for `uptime`.
    pub(super) fn delay(&mut self, uptime: Duration) -> Duration {
        if uptime >= Self::RESET_AFTER {
            self.next = Self::FIRST;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        delay
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use skerry_shared::ids::Name;

    fn component(kind: ComponentKind, restart: Option<RestartPolicy>) -> Component {
        Component {
            kind,
            restart,
            exec: Some(vec!["/bin/true".into()]),
            image: None,
            ..Component::image(Name::parse("c").unwrap(), "unused")
        }
    }

    #[test]
    fn policies_follow_docker() {
        let svc = |p| component(ComponentKind::Service, p);
        let ok = Exit::Code(0);
        let bad = Exit::Code(3);
        let killed = Exit::Signal(9);
        assert!(restarts(&svc(None), &ok), "a service defaults to always");
        assert!(restarts(&svc(Some(RestartPolicy::Always)), &ok));
        assert!(!restarts(&svc(Some(RestartPolicy::OnFailure)), &ok));
        assert!(restarts(&svc(Some(RestartPolicy::OnFailure)), &bad));
        assert!(restarts(&svc(Some(RestartPolicy::OnFailure)), &killed));
        assert!(restarts(
            &svc(Some(RestartPolicy::OnFailure)),
            &Exit::Unknown
        ));
        assert!(!restarts(&svc(Some(RestartPolicy::Never)), &bad));
        for kind in [ComponentKind::Init, ComponentKind::Job] {
            assert!(!restarts(&component(kind, None), &bad));
            assert!(!restarts(
                &component(kind, Some(RestartPolicy::Always)),
                &bad
            ));
        }
    }

    #[test]
    fn exits_in_words_and_codes() {
        assert_eq!(Exit::Code(3).describe(), "exited 3");
        assert_eq!(Exit::Code(3).code(), 3);
        assert_eq!(Exit::Signal(9).describe(), "killed by signal 9");
        assert_eq!(Exit::Signal(9).code(), 137);
        assert_eq!(Exit::Unknown.code(), -1);
        assert!(!Exit::Code(0).failed());
        assert!(Exit::Unknown.failed());
    }

    #[test]
    fn backoff_doubles_to_five_minutes_and_resets() {
        let mut b = Backoff::new();
        let short = Duration::from_millis(5);
        let delays: Vec<u64> = (0..11).map(|_| b.delay(short).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(b.delay(Duration::from_secs(60)), Backoff::FIRST);
        assert_eq!(b.delay(short), Duration::from_secs(2));
    }

    #[test]
    fn a_saved_backoff_goes_on_where_it_was() {
        let mut b = Backoff::new();
        for _ in 0..5 {
            b.delay(Duration::ZERO);
        }
        let mut resumed = Backoff::resume(Some(b.saved()));
        assert_eq!(resumed, b);
        assert_eq!(resumed.delay(Duration::ZERO), Duration::from_secs(32));
        assert_eq!(Backoff::resume(None), Backoff::new());
        assert_eq!(Backoff::resume(Some(u64::MAX)).saved(), 300_000);
        assert_eq!(Backoff::resume(Some(0)).saved(), 1000);
    }
}
