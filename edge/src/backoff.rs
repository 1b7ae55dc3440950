//! [`Backoff`]: the delay before trying again after a failure that time may cure.
//!
//! A [`Policy`] says how the delays grow: from `first`, doubling, at most `max`, and back
//! to `first` after a success. Two policies are in use:
//! - [`RETRY`] (1 s doubling to 30 s): the agent asking the cloud for events again after a
//!   commit failed (a full disk).
//! - [`RESTART`] (1 s doubling to 5 min): starting a replica again, for every runtime: after
//!   a failed image pull, a start the node refused (a host port in use), and between the
//!   restarts of a replica that keeps exiting (a crash loop). For a crash loop, a run of
//!   [`RESTART`]`.stable` (60 s) is the success that resets it.
//!
//! ```
//! use skerry_edge::backoff::{Backoff, RESTART};
//! let mut b = Backoff::with(RESTART);
//! assert_eq!(b.failed().as_secs(), 1);
//! assert_eq!(b.failed().as_secs(), 2);
//! assert_eq!(b.failures(), 2);
//! b.succeeded();
//! assert_eq!(b.failed().as_secs(), 1);
//! ```

use std::time::Duration;

/// How delays grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The first delay.
    pub first: Duration,
    /// The longest delay.
    pub max: Duration,
    /// For a replica that keeps exiting: a run at least this long counts as a success.
    pub stable: Duration,
}

/// Retrying the agent's own work (a commit on a full disk): 1 s doubling to 30 s.
pub const RETRY: Policy = Policy {
    first: Duration::from_secs(1),
    max: Duration::from_secs(30),
    stable: Duration::from_secs(60),
};

/// Starting a replica again (pulls, refused starts, crash loops): 1 s doubling to 5 min,
/// reset by a success (for a crash loop: a run of 60 s).
pub const RESTART: Policy = Policy {
    first: Duration::from_secs(1),
    max: Duration::from_secs(300),
    stable: Duration::from_secs(60),
};

/// The first delay of [`RETRY`].
pub const FIRST: Duration = RETRY.first;
/// The longest delay of [`RETRY`].
pub const MAX: Duration = RETRY.max;

/// Delays that double from the policy's `first` up to its `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: Policy,
    next: Option<Duration>,
    failures: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::with(RETRY)
    }
}

impl Backoff {
    /// The [`RETRY`] policy.
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(policy: Policy) -> Self {
        Self {
            policy,
            next: None,
            failures: 0,
        }
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The delay to wait after one more failure.
    pub fn failed(&mut self) -> Duration {
        let delay = self.next.unwrap_or(self.policy.first);
        self.next = Some(delay.saturating_mul(2).min(self.policy.max));
        self.failures = self.failures.saturating_add(1);
        delay
    }

    /// A success: the next failure waits `first` again.
    pub fn succeeded(&mut self) {
        self.next = None;
        self.failures = 0;
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_one_second_to_thirty_and_resets_on_success() {
        let mut b = Backoff::new();
        let secs: Vec<u64> = (0..8).map(|_| b.failed().as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
        b.succeeded();
        assert_eq!(b.failed(), FIRST);
    }

    #[test]
    fn restarts_double_to_five_minutes() {
        let mut b = Backoff::with(RESTART);
        let secs: Vec<u64> = (0..11).map(|_| b.failed().as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(b.failures(), 11);
        b.succeeded();
        assert_eq!((b.failures(), b.failed().as_secs()), (0, 1));
    }

    #[test]
    fn six_tries_in_a_minute() {
        // The first try and the retries after 1, 2, 4, 8, 16 s: at 0, 1, 3, 7, 15, 31 s;
        // the next is at 63 s.
        let mut b = Backoff::with(RESTART);
        let mut at = Duration::ZERO;
        let mut tries = 1;
        loop {
            at += b.failed();
            if at > Duration::from_secs(60) {
                break;
            }
            tries += 1;
        }
        assert_eq!(tries, 6);
    }
}
