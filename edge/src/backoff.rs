//! [`Backoff`]: the delay before trying again after a failure that time may cure (a full
//! disk): 1 s, doubling, at most 30 s, back to 1 s after a success.

use std::time::Duration;

/// The first delay.
pub const FIRST: Duration = Duration::from_secs(1);
/// The longest delay.
pub const MAX: Duration = Duration::from_secs(30);

/// Delays that double from [`FIRST`] up to [`MAX`].
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    next: Option<Duration>,
}

impl Backoff {
    pub fn new() -> Self {
        Self::default()
    }

    /// The delay to wait after one more failure.
    pub fn failed(&mut self) -> Duration {
        let delay = self.next.unwrap_or(FIRST);
        self.next = Some(delay.saturating_mul(2).min(MAX));
        delay
    }

    /// A success: the next failure waits [`FIRST`] again.
    pub fn succeeded(&mut self) {
        self.next = None;
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
}
