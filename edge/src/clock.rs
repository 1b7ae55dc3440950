//! The agent's clock: the host's wall clock, moved by an offset for tests.
//!
//! Jobs run and update windows open by this clock, with or without a link. Its offset
//! comes from `SKERRY_CLOCK_OFFSET` at start (signed, in the duration syntax: `+3h`,
//! `-90s`, `+1d`; unsigned means ahead), so a test can put an agent at 02:00 without
//! waiting for it. The offset shows in `skerry-edge status` and in the node's report, so an
//! offset clock is never a surprise. One [`Clock`] is shared by every task of the agent.

use skerry_shared::clock::Timestamp;

/// The environment variable that offsets the agent's clock.
pub const OFFSET_ENV: &str = "SKERRY_CLOCK_OFFSET";

/// The largest offset accepted: 10 years either way.
pub const MAX_OFFSET_DAYS: u64 = 3_650;

/// The host's clock plus a fixed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Clock {
    offset_ms: i64,
}

impl Clock {
    /// The host's clock as it is.
    pub fn system() -> Self {
        Self::default()
    }

    /// The host's clock moved by `offset_ms`.
    pub fn offset_by(offset_ms: i64) -> Self {
        Self { offset_ms }
    }

    /// The clock `SKERRY_CLOCK_OFFSET` asks for (the host's when it is unset or empty).
    pub fn from_env() -> Result<Self, String> {
        match std::env::var(OFFSET_ENV) {
            Ok(v) if !v.trim().is_empty() => Ok(Self::offset_by(parse_offset(&v)?)),
            _ => Ok(Self::system()),
        }
    }

    /// Now, by this clock.
    pub fn now(&self) -> Timestamp {
        Timestamp::now().plus_millis(self.offset_ms)
    }

    pub fn offset_ms(&self) -> i64 {
        self.offset_ms
    }

    /// `+3h`, `-1m 30s`; `none` without an offset.
    pub fn describe(&self) -> String {
        describe_offset(self.offset_ms)
    }
}

/// The journal key under which the agent keeps its clock's offset (milliseconds, postcard),
/// for `skerry-edge status`.
pub const JOURNAL_KEY: &str = "agent/clock-offset";

/// Records `clock`'s offset in the journal (a failure is logged: it only informs status).
pub fn record(journal: &dyn crate::journal::Journal, clock: Clock) {
    let push = crate::journal::OutboxPush {
        bodies: Vec::new(),
        cursors: vec![(
            JOURNAL_KEY.to_owned(),
            postcard::to_stdvec(&clock.offset_ms()).ok(),
        )],
    };
    if let Err(e) = journal.outbox_push(&push, u64::MAX) {
        tracing::warn!(error = %e, "cannot record the clock's offset in the journal");
    }
}

/// The offset the journal says the agent's clock had when it last started.
pub fn recorded(cursors: &std::collections::BTreeMap<String, Vec<u8>>) -> i64 {
    cursors
        .get(JOURNAL_KEY)
        .and_then(|b| postcard::from_bytes(b).ok())
        .unwrap_or(0)
}

/// `+3h`, `-90s`, `+1d` or `3h` (ahead), to signed milliseconds; the refusal names the input.
pub fn parse_offset(input: &str) -> Result<i64, String> {
    let s = input.trim();
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'-') => (-1, &s[1..]),
        Some(b'+') => (1, &s[1..]),
        _ => (1, s),
    };
    let d = humantime::parse_duration(rest.trim()).map_err(|e| {
        format!("{OFFSET_ENV}=\"{input}\" is not a signed duration (+3h, -90s, +1d): {e}")
    })?;
    if d.as_secs() > MAX_OFFSET_DAYS * 86_400 {
        return Err(format!(
            "{OFFSET_ENV}=\"{input}\" is more than {MAX_OFFSET_DAYS} days; give a smaller offset"
        ));
    }
    let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    Ok(sign * ms)
}

/// An offset in words: `+3h`, `-1m 30s`, `none`.
pub fn describe_offset(offset_ms: i64) -> String {
    if offset_ms == 0 {
        return "none".into();
    }
    let sign = if offset_ms < 0 { '-' } else { '+' };
    let d = std::time::Duration::from_millis(offset_ms.unsigned_abs());
    format!("{sign}{}", humantime::format_duration(d))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_signed_durations() {
        assert_eq!(parse_offset("+3h"), Ok(3 * 3_600_000));
        assert_eq!(parse_offset("-90s"), Ok(-90_000));
        assert_eq!(parse_offset("+1d"), Ok(86_400_000));
        assert_eq!(parse_offset("2m"), Ok(120_000));
        let e = parse_offset("soon").unwrap_err();
        assert!(e.contains("SKERRY_CLOCK_OFFSET=\"soon\""), "{e}");
        let e = parse_offset("+100000d").unwrap_err();
        assert!(e.contains("more than 3650 days"), "{e}");
    }

    #[test]
    fn an_offset_moves_now_and_says_so() {
        let c = Clock::offset_by(3 * 3_600_000);
        let host = Timestamp::now().millis();
        let moved = c.now().millis();
        assert!((moved - host - 3 * 3_600_000).abs() < 5_000);
        assert_eq!(c.describe(), "+3h");
        assert_eq!(Clock::offset_by(-90_000).describe(), "-1m 30s");
        assert_eq!(Clock::system().describe(), "none");
    }
}
