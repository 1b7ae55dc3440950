//! Waiting for a condition with a deadline, never for a fixed time.

use std::time::{Duration, Instant};

/// How often a condition is checked at first; the interval doubles up to [`MAX_POLL`].
const FIRST_POLL: Duration = Duration::from_millis(5);
const MAX_POLL: Duration = Duration::from_millis(100);

/// Calls `check` until it returns `Some`, or until `timeout` has passed (`None`).
pub fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    let mut poll = FIRST_POLL;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::sleep(poll.min(deadline - now));
        poll = (poll * 2).min(MAX_POLL);
    }
}

/// [`wait_for`] with a condition that is true or false.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    wait_for(timeout, || check().then_some(())).is_some()
}
