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
    pub fn parse_cli(s: &str, now: Timestamp) -> Result<Timestamp, String> {
        if OffsetDateTime::parse(s, &Rfc3339).is_ok() {
            return Self::parse_rfc3339(s);
        }
        match humantime::parse_duration(s) {
            Ok(d) => {
                let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
                let t = now.plus_millis(-ms);
                match OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.0) * 1_000_000) {
                    Ok(_) => Ok(t),
                    Err(_) => Err(format!("\"{s}\" ago is before the year -9999")),
                }
            }
            Err(_) => Err(format!(
                "\"{s}\" is neither an RFC 3339 time (2026-11-21T10:00:00Z) nor a duration (90s, 10m, 2h, 3d)"
            )),
        }
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
}
