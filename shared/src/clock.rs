//! Timestamps and the command line's time syntax.
//!
//! A [`Timestamp`] is milliseconds since the Unix epoch, UTC. On the command line a time is
//! RFC 3339 (`2026-11-21T10:00:00Z`) or relative to now (`90s`, `10m`, `2h`, `3d`).

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// RFC 3339 in UTC with exactly three fractional digits, so columns line up.
const MILLIS: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
);

/// The longest duration before now that a relative time on the command line may name
/// (`--since 36500d`): 100 years. Longer ones are refused naming the input, before any
/// arithmetic on them.
pub const MAX_RELATIVE_DAYS: u64 = 36_500;

/// Milliseconds since the Unix epoch, UTC.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The wall clock now.
    pub fn now() -> Self {
        let ms = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        Self(i64::try_from(ms).unwrap_or(i64::MAX))
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    pub fn plus_millis(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    /// RFC 3339 with millisecond precision, e.g. `2026-11-21T10:00:00.000Z`.
    pub fn to_rfc3339(self) -> String {
        match OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000) {
            Ok(t) => t.format(MILLIS).unwrap_or_else(|_| self.0.to_string()),
            Err(_) => self.0.to_string(),
        }
    }

    /// Parses RFC 3339 (`2026-11-21T10:00:00Z`, any precision), to the millisecond.
    pub fn parse_rfc3339(s: &str) -> Result<Timestamp, String> {
        let t = OffsetDateTime::parse(s, &Rfc3339)
            .map_err(|e| format!("\"{s}\" is not an RFC 3339 time: {e}"))?;
        let ms = t.unix_timestamp_nanos() / 1_000_000;
        i64::try_from(ms)
            .map(Timestamp)
            .map_err(|_| format!("\"{s}\" is out of range"))
    }

    /// Parses RFC 3339, or a duration before `now` (`90s`, `10m`, `2h`, `3d`).
    ///
    /// A duration is at most [`MAX_RELATIVE_DAYS`] days, and the time it names, like an
    /// RFC 3339 time, is not before the Unix epoch (1970-01-01T00:00:00Z); each refusal
    /// quotes the input.
    pub fn parse_cli(s: &str, now: Timestamp) -> Result<Timestamp, String> {
        if OffsetDateTime::parse(s, &Rfc3339).is_ok() {
            let t = Self::parse_rfc3339(s)?;
            if t.0 < 0 {
                return Err(format!(
                    "\"{s}\" is before 1970-01-01T00:00:00Z, the earliest time accepted"
                ));
            }
            return Ok(t);
        }
        let d = humantime::parse_duration(s).map_err(|e| {
            if s.starts_with(|c: char| c.is_ascii_digit()) {
                format!("\"{s}\" is not a duration (90s, 10m, 2h, 3d): {e}")
            } else {
                format!(
                    "\"{s}\" is neither an RFC 3339 time (2026-11-21T10:00:00Z) nor a duration (90s, 10m, 2h, 3d)"
                )
            }
        })?;
        if d.as_secs() > MAX_RELATIVE_DAYS * 86_400 {
            return Err(format!(
                "\"{s}\" is more than {MAX_RELATIVE_DAYS} days (100 years) ago; give a shorter duration or an RFC 3339 time"
            ));
        }
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let t = now.plus_millis(-ms);
        if t.0 < 0 {
            return Err(format!(
                "\"{s}\" ago is {}, before 1970-01-01T00:00:00Z, the earliest time accepted",
                t.to_rfc3339()
            ));
        }
        Ok(t)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms() {
        let now = Timestamp(1_000_000_000);
        assert_eq!(
            Timestamp::parse_cli("90s", now),
            Ok(Timestamp(1_000_000_000 - 90_000))
        );
        assert_eq!(
            Timestamp::parse_cli("3d", now),
            Ok(Timestamp(1_000_000_000 - 259_200_000))
        );
        let t = Timestamp::parse_cli("2026-11-21T10:00:00Z", now);
        assert_eq!(t, Ok(Timestamp(1_795_255_200_000)));
        assert_eq!(
            Timestamp(1_795_255_200_000).to_rfc3339(),
            "2026-11-21T10:00:00.000Z"
        );
        assert!(Timestamp::parse_cli("yesterday", now).is_err());
        let far = Timestamp::parse_cli("100000000d", now).unwrap_err();
        assert!(far.contains("100000000d"), "{far}");
    }

    /// 2026-12-06T00:00:00Z.
    const DEC_2026: Timestamp = Timestamp(1_796_515_200_000);

    #[test]
    fn relative_times_are_bounded_to_100_years() {
        // Before the bound, `3000000d` became the year -6187, which the API then refused.
        for input in ["3000000d", "36501d", "876001h", "101years"] {
            let e = Timestamp::parse_cli(input, DEC_2026).unwrap_err();
            assert!(e.contains(&format!("\"{input}\"")), "{e}");
            assert!(e.contains("36500 days (100 years) ago"), "{e}");
            assert!(!e.contains('-'), "{e}");
        }
        // Far in the future `now`, 36,500 days is accepted.
        let far_now = Timestamp(DEC_2026.0 * 3);
        assert_eq!(
            Timestamp::parse_cli("36500d", far_now),
            Ok(Timestamp(far_now.0 - 36_500 * 86_400_000))
        );
    }

    #[test]
    fn nothing_before_1970_is_accepted() {
        let e = Timestamp::parse_cli("30000d", DEC_2026).unwrap_err();
        assert!(e.starts_with("\"30000d\" ago is 1944-"), "{e}");
        assert!(e.contains("before 1970-01-01T00:00:00Z"), "{e}");
        let e = Timestamp::parse_cli("1969-12-31T23:59:59Z", DEC_2026).unwrap_err();
        assert!(e.contains("\"1969-12-31T23:59:59Z\" is before 1970"), "{e}");
        assert_eq!(
            Timestamp::parse_cli("1970-01-01T00:00:00Z", DEC_2026),
            Ok(Timestamp(0))
        );
        // Exactly to the epoch is still accepted.
        assert_eq!(
            Timestamp::parse_cli("20793d", DEC_2026),
            Ok(Timestamp(DEC_2026.0 - 20_793 * 86_400_000))
        );
        assert!(Timestamp::parse_cli("20794d", DEC_2026).is_err());
    }

    #[test]
    fn an_overflowing_duration_names_the_input() {
        let e = Timestamp::parse_cli("99999999999999999999999d", DEC_2026).unwrap_err();
        assert!(
            e.contains("\"99999999999999999999999d\" is not a duration"),
            "{e}"
        );
    }
}
