//! Unix cron expressions, checked field by field and translated for the `cron` crate.
//!
//! Manifests write job schedules in Unix cron: five fields (`minute hour day-of-month month
//! day-of-week`), or six with seconds first. Each field takes `*`, `a`, `a-b`, `*/n`,
//! `a-b/n` and comma lists of those; months take `JAN`-`DEC` and days of the week
//! `SUN`-`SAT` (any case); days of the week run 0-7, where both 0 and 7 are Sunday. The
//! macros `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`) and
//! `@hourly` are accepted as well. Times are UTC, or local times of an IANA time zone
//! ([`Schedule::in_zone`]).
//!
//! The `cron` crate (0.17) wants 6 or 7 fields, numbers days of the week 1-7 from Sunday,
//! and names no field in its errors. [`translate`] checks the expression here, reports a
//! refusal by field ([`CronError`]), and writes every field as the explicit set of values
//! it stands for, so that ranges across the Sunday boundary (`5-7`, `0-6`, `7`) and steps
//! mean exactly what Unix cron says they mean.
//!
//! # Day of month and day of week
//! Unix cron (Vixie cron and cronie, which Linux systems run) fires on a day when *either*
//! the day of month or the day of week matches, if both fields are restricted. A field
//! counts as unrestricted when it starts with `*` (so `*/2` counts as unrestricted, as in
//! Vixie cron). The `cron` crate always requires *both* to match. [`Schedule`] emulates
//! Unix cron exactly: when both fields are restricted it keeps two `cron` schedules, one
//! for each field, and fires at the earlier of their next times. [`translate`] refuses that
//! case, because no single `cron` expression says it; [`translate_union`] gives the
//! expressions whose firing times together make the Unix schedule.
//!
//! Other refusals: `?`, `L`, `W` and `#` (not Unix cron), a step without a range (`5/10`:
//! write `5-59/10`), a step of 0 or larger than the field's maximum, backwards ranges, and
//! a schedule that never fires (`0 0 30 2 *`). The `cron` crate knows the years 1970 to
//! 2100, so [`Schedule::next_after`] finds nothing after 2100.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, Utc};
use jiff::tz::{AmbiguousOffset, TimeZone};

/// A refused cron expression: which field, and why. Displays as `day-of-week: 8 is out of
/// range 0-7`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct CronError {
    /// `second`, `minute`, `hour`, `day-of-month`, `month`, `day-of-week` or `expression`.
    pub field: &'static str,
    pub message: String,
}

impl CronError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// One field's name, range and value names.
struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    /// Names for the values `min`, `min + 1`, ... (three letters, any case).
    names: &'static [&'static str],
    /// How the names are described in an error.
    names_hint: &'static str,
}

const SECOND: FieldSpec = FieldSpec {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
    names_hint: "",
};
const MINUTE: FieldSpec = FieldSpec {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
    names_hint: "",
};
const HOUR: FieldSpec = FieldSpec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
    names_hint: "",
};
const DAY_OF_MONTH: FieldSpec = FieldSpec {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
    names_hint: "",
};
const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
    names_hint: "a month name (JAN-DEC)",
};
const DAY_OF_WEEK: FieldSpec = FieldSpec {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    names_hint: "a day name (SUN-SAT)",
};

/// The values a field stands for (bit `v` set for value `v`), and whether it is
/// unrestricted in the Unix sense (it starts with `*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FieldSet {
    bits: u64,
    star: bool,
}

impl FieldSet {
    fn contains(self, v: u32) -> bool {
        v < 64 && self.bits & (1 << v) != 0
    }
}

impl FieldSpec {
    fn err(&self, message: impl Into<String>) -> CronError {
        CronError::new(self.name, message)
    }

    fn parse(&self, text: &str) -> Result<FieldSet, CronError> {
        let mut bits = 0u64;
        for item in text.split(',') {
            if item.is_empty() {
                return Err(self.err(format!("empty item in the list \"{text}\"")));
            }
            let (range, step) = match item.split_once('/') {
                Some((range, step)) => (range, Some(self.step(step)?)),
                None => (item, None),
            };
            let (lo, hi) = if range == "*" {
                (self.min, self.max)
            } else if let Some((a, b)) = range.split_once('-') {
                let (a, b) = (self.value(a)?, self.value(b)?);
                if a > b {
                    return Err(self.err(format!("range {range} runs backwards")));
                }
                (a, b)
            } else {
                let v = self.value(range)?;
                if step.is_some() {
                    return Err(self.err(format!(
                        "\"{item}\": a step needs a range or *, as in {range}-{}/{}",
                        self.max,
                        step.unwrap_or(1)
                    )));
                }
                (v, v)
            };
            for v in (lo..=hi).step_by(step.unwrap_or(1)) {
                bits |= 1 << v;
            }
        }
        if self.name == DAY_OF_WEEK.name && bits & (1 << 7) != 0 {
            // 7 is Sunday too.
            bits = (bits & !(1 << 7)) | 1;
        }
        Ok(FieldSet {
            bits,
            star: text.starts_with('*'),
        })
    }

    fn step(&self, text: &str) -> Result<usize, CronError> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.err(format!("step \"{text}\" is not a number")));
        }
        match text.parse::<u32>() {
            Ok(n) if (1..=self.max).contains(&n) => Ok(n as usize),
            _ => Err(self.err(format!("step {text} is out of range 1-{}", self.max))),
        }
    }

    fn value(&self, text: &str) -> Result<u32, CronError> {
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return match text.parse::<u32>() {
                Ok(v) if (self.min..=self.max).contains(&v) => Ok(v),
                _ => Err(self.err(format!("{text} is out of range {}-{}", self.min, self.max))),
            };
        }
        if let Some(i) = self
            .names
            .iter()
            .position(|name| name.eq_ignore_ascii_case(text))
        {
            // At most 12 names, so the index fits.
            return Ok(self.min + u32::try_from(i).unwrap_or(0));
        }
        // Quartz and the cron crate know `?`, `L`, `W` and `#`; Unix cron does not.
        let quartz_day = text
            .strip_suffix(['L', 'W'])
            .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_digit()));
        if text.contains(['?', '#']) || text == "LW" || quartz_day {
            return Err(self.err(format!("\"{text}\" is not Unix cron syntax")));
        }
        if text.is_empty() {
            return Err(self.err("a value is missing"));
        }
        if self.names.is_empty() {
            Err(self.err(format!("\"{text}\" is not a number")))
        } else {
            Err(self.err(format!(
                "\"{text}\" is neither a number nor {}",
                self.names_hint
            )))
        }
    }
}

/// A parsed Unix cron expression.
#[derive(Debug, Clone, Copy)]
struct Fields {
    second: FieldSet,
    minute: FieldSet,
    hour: FieldSet,
    day_of_month: FieldSet,
    month: FieldSet,
    day_of_week: FieldSet,
}

/// Days in each month, February counted with its leap day.
const MONTH_DAYS: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

impl Fields {
    fn parse(expr: &str) -> Result<Self, CronError> {
        let expr = expr.trim();
        let expanded = match expr {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other if other.starts_with('@') => {
                return Err(CronError::new(
                    "expression",
                    format!(
                        "{other} is not a schedule; use 5 fields or @yearly, @monthly, \
                         @weekly, @daily or @hourly"
                    ),
                ));
            }
            other => other,
        };
        let parts: Vec<&str> = expanded.split_whitespace().collect();
        let (second, rest) = match parts.len() {
            5 => (
                FieldSet {
                    bits: 1,
                    star: false,
                },
                &parts[..],
            ),
            6 => (SECOND.parse(parts[0])?, &parts[1..]),
            0 => return Err(CronError::new("expression", "the expression is empty")),
            n => {
                return Err(CronError::new(
                    "expression",
                    format!(
                        "expected 5 fields (minute hour day-of-month month day-of-week) or 6 \
                         (with seconds first), found {n}"
                    ),
                ));
            }
        };
        let fields = Fields {
            second,
            minute: MINUTE.parse(rest[0])?,
            hour: HOUR.parse(rest[1])?,
            day_of_month: DAY_OF_MONTH.parse(rest[2])?,
            month: MONTH.parse(rest[3])?,
            day_of_week: DAY_OF_WEEK.parse(rest[4])?,
        };
        fields.check_fires()?;
        Ok(fields)
    }

    /// Unix cron's rule: both day fields restricted means either may match.
    fn either_day_matches(&self) -> bool {
        !self.day_of_month.star && !self.day_of_week.star
    }

    /// Refuses a schedule whose days of month exist in none of its months.
    fn check_fires(&self) -> Result<(), CronError> {
        if self.either_day_matches() {
            return Ok(()); // Every day of the week comes in every month.
        }
        let fires = (1..=12u32).filter(|m| self.month.contains(*m)).any(|m| {
            let last = MONTH_DAYS[(m - 1) as usize];
            (1..=last).any(|d| self.day_of_month.contains(d))
        });
        if fires {
            Ok(())
        } else {
            Err(CronError::new(
                DAY_OF_MONTH.name,
                "the schedule never fires: none of its days of the month comes in its months",
            ))
        }
    }

    /// The `cron` crate expressions whose firing times together are this schedule's.
    fn expressions(&self) -> Vec<String> {
        let all_days = FieldSet {
            bits: u64::MAX,
            star: true,
        };
        if self.either_day_matches() {
            vec![
                self.expression(self.day_of_month, all_days),
                self.expression(all_days, self.day_of_week),
            ]
        } else {
            vec![self.expression(self.day_of_month, self.day_of_week)]
        }
    }

    fn expression(&self, day_of_month: FieldSet, day_of_week: FieldSet) -> String {
        // The cron crate numbers days of the week 1-7 from Sunday.
        let dow_bits = (day_of_week.bits & 0x7f) << 1;
        [
            list(self.second.bits, 0, 59),
            list(self.minute.bits, 0, 59),
            list(self.hour.bits, 0, 23),
            list(day_of_month.bits, 1, 31),
            list(self.month.bits, 1, 12),
            list(dow_bits, 1, 7),
        ]
        .join(" ")
    }
}

/// Writes the values `min..=max` set in `bits` as `*` or a list of values and ranges.
fn list(bits: u64, min: u32, max: u32) -> String {
    let set = |v: u32| bits & (1 << v) != 0;
    if (min..=max).all(set) {
        return "*".into();
    }
    let mut items = Vec::new();
    let mut v = min;
    while v <= max {
        if !set(v) {
            v += 1;
            continue;
        }
        let start = v;
        while v < max && set(v + 1) {
            v += 1;
        }
        items.push(if v > start + 1 {
            format!("{start}-{v}")
        } else if v == start + 1 {
            format!("{start},{v}")
        } else {
            start.to_string()
        });
        v += 1;
    }
    items.join(",")
}

/// Translates a 5- or 6-field Unix cron expression into the 6-field syntax of the `cron`
/// crate. Refuses, with field `day-of-week`, an expression that restricts both the day of
/// month and the day of week: see the module doc and [`translate_union`].
pub fn translate(expr: &str) -> Result<String, CronError> {
    let mut expressions = translate_union(expr)?;
    match (expressions.pop(), expressions.is_empty()) {
        (Some(single), true) => Ok(single),
        _ => Err(CronError::new(
            DAY_OF_WEEK.name,
            "with both day-of-month and day-of-week restricted, Unix cron fires when either \
             matches; no single cron-crate expression says that (Schedule combines two)",
        )),
    }
}

/// Translates a Unix cron expression into one or two `cron` crate expressions; the Unix
/// schedule fires exactly when any of them does.
pub fn translate_union(expr: &str) -> Result<Vec<String>, CronError> {
    Fields::parse(expr).map(|fields| fields.expressions())
}

/// A checked Unix cron schedule, read in UTC or in a time zone ([`Schedule::in_zone`]).
#[derive(Debug, Clone)]
pub struct Schedule {
    source: String,
    parts: Vec<cron::Schedule>,
    /// `None`: UTC.
    zone: Option<Zone>,
}

/// An IANA time zone from the database in the binary.
#[derive(Debug, Clone)]
pub struct Zone {
    name: String,
    tz: TimeZone,
}

impl Zone {
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl PartialEq for Zone {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Zone {}

/// The most local times one [`Schedule::next_after`] passes over because they do not occur
/// (clocks going forward) or already came (the repeated hour when they go back): a whole
/// day of a schedule that fires every second, the longest change a zone has made (Samoa
/// skipped a day in 2011). Each is one step of the `cron` crate's iterator.
const MAX_SKIPPED_LOCAL_TIMES: usize = 90_000;

/// The IANA time zone called `name` (`Europe/Berlin`, `UTC`), from the database in the
/// binary; the refusal says why.
pub fn zone(name: &str) -> Result<Zone, String> {
    let found = jiff::tz::db().get(name).ok().filter(|_| !name.is_empty());
    found.map(|tz| Zone { name: name.to_owned(), tz }).ok_or_else(|| {
        format!(
            "\"{name}\" is not a time zone of the IANA database (for example UTC or Europe/Berlin)"
        )
    })
}

impl Schedule {
    /// Checks and translates a Unix cron expression.
    pub fn parse(expr: &str) -> Result<Self, CronError> {
        let parts = translate_union(expr)?
            .iter()
            .map(|t| {
                cron::Schedule::from_str(t).map_err(|e| {
                    CronError::new(
                        "expression",
                        format!("the cron crate refused the translation \"{t}\": {e}"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            source: expr.trim().to_owned(),
            parts,
            zone: None,
        })
    }

    /// The same schedule read in `zone`'s local time. A local time that does not occur
    /// on a day (the hour skipped when clocks go forward) fires nothing that day; one
    /// that occurs twice (the hour repeated when they go back) fires once, the first time.
    pub fn in_zone(mut self, zone: Zone) -> Self {
        self.zone = Some(zone);
        self
    }

    /// The zone the schedule is read in (`None`: UTC).
    pub fn zone(&self) -> Option<&Zone> {
        self.zone.as_ref()
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The first firing time strictly after `unix_millis`, in unix milliseconds; `None`
    /// when there is none before the end of 2100.
    pub fn next_after(&self, unix_millis: i64) -> Option<i64> {
        let after = DateTime::<Utc>::from_timestamp(unix_millis.div_euclid(1000), 0)?;
        let Some(zone) = &self.zone else {
            return self
                .parts
                .iter()
                .filter_map(|part| part.after(&after).next())
                .map(|t| t.timestamp_millis())
                .min();
        };
        // In a zone: the schedule runs over local wall-clock times (written as UTC ones for
        // the `cron` crate), each mapped back to the instant it names. A local time that does
        // not occur is skipped; one that occurs twice is its first instant, and a time after
        // that instant goes on from the local time, so it fires once.
        let local = |ms: i64| -> Option<NaiveDateTime> {
            let ts = jiff::Timestamp::from_millisecond(ms).ok()?;
            let dt = zone.tz.to_datetime(ts);
            chrono::NaiveDate::from_ymd_opt(
                i32::from(dt.year()),
                u32::try_from(dt.month()).ok()?,
                u32::try_from(dt.day()).ok()?,
            )?
            .and_hms_opt(
                u32::try_from(dt.hour()).ok()?,
                u32::try_from(dt.minute()).ok()?,
                u32::try_from(dt.second()).ok()?,
            )
        };
        let instant = |naive: NaiveDateTime| -> Option<Option<i64>> {
            use chrono::{Datelike, Timelike};
            let civil = jiff::civil::DateTime::new(
                i16::try_from(naive.year()).ok()?,
                i8::try_from(naive.month()).ok()?,
                i8::try_from(naive.day()).ok()?,
                i8::try_from(naive.hour()).ok()?,
                i8::try_from(naive.minute()).ok()?,
                i8::try_from(naive.second()).ok()?,
                0,
            )
            .ok()?;
            let offset = match zone.tz.to_ambiguous_timestamp(civil).offset() {
                AmbiguousOffset::Unambiguous { offset } => offset,
                AmbiguousOffset::Fold { before, .. } => before,
                AmbiguousOffset::Gap { .. } => return Some(None),
            };
            let seconds = naive.and_utc().timestamp() - i64::from(offset.seconds());
            Some(Some(seconds * 1000))
        };
        let mut from = local(unix_millis.div_euclid(1000) * 1000)?.and_utc();
        for _ in 0..MAX_SKIPPED_LOCAL_TIMES {
            let next = self
                .parts
                .iter()
                .filter_map(|part| part.after(&from).next())
                .min()?;
            match instant(next.naive_utc())? {
                Some(ms) if ms > unix_millis => return Some(ms),
                _ => from = next,
            }
        }
        None
    }
}

impl FromStr for Schedule {
    type Err = CronError;
    fn from_str(s: &str) -> Result<Self, CronError> {
        Self::parse(s)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.zone == other.zone
    }
}

impl Eq for Schedule {}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        crate::clock::Timestamp::parse_rfc3339(s).unwrap().millis()
    }

    fn utc(ms: i64) -> String {
        crate::clock::Timestamp(ms).to_rfc3339()
    }

    /// Europe/Berlin is UTC+1 in winter and UTC+2 in summer; in 2027 summer time runs
    /// from 28 March 01:00 UTC to 31 October 01:00 UTC.
    #[test]
    fn a_job_at_nine_in_berlin_runs_at_eight_utc_in_winter_and_seven_in_summer() {
        let s = Schedule::parse("0 9 * * *")
            .unwrap()
            .in_zone(zone("Europe/Berlin").unwrap());
        let cases = [
            ("2027-01-15T12:00:00Z", "2027-01-16T08:00:00.000Z"),
            // The days around the change to summer time (Sunday 28 March).
            ("2027-03-26T12:00:00Z", "2027-03-27T08:00:00.000Z"),
            ("2027-03-27T12:00:00Z", "2027-03-28T07:00:00.000Z"),
            ("2027-03-28T12:00:00Z", "2027-03-29T07:00:00.000Z"),
            ("2027-07-01T00:00:00Z", "2027-07-01T07:00:00.000Z"),
            // And back to winter time (Sunday 31 October).
            ("2027-10-30T12:00:00Z", "2027-10-31T08:00:00.000Z"),
            ("2027-10-31T12:00:00Z", "2027-11-01T08:00:00.000Z"),
        ];
        for (after, next) in cases {
            assert_eq!(utc(s.next_after(at(after)).unwrap()), next, "after {after}");
        }
        // UTC unless a zone is given.
        let plain = Schedule::parse("0 9 * * *").unwrap();
        assert_eq!(
            utc(plain.next_after(at("2027-07-01T00:00:00Z")).unwrap()),
            "2027-07-01T09:00:00.000Z"
        );
    }

    #[test]
    fn a_local_time_skipped_fires_nothing_and_one_repeated_fires_once() {
        let berlin = zone("Europe/Berlin").unwrap();
        // 02:30 does not happen in Berlin on 28 March 2027.
        let s = Schedule::parse("30 2 * * *").unwrap().in_zone(berlin);
        assert_eq!(
            utc(s.next_after(at("2027-03-27T12:00:00Z")).unwrap()),
            "2027-03-29T00:30:00.000Z"
        );
        // 02:30 happens twice on 31 October 2027 (00:30 and 01:30 UTC): once here.
        let first = s.next_after(at("2027-10-30T12:00:00Z")).unwrap();
        assert_eq!(utc(first), "2027-10-31T00:30:00.000Z");
        assert_eq!(
            utc(s.next_after(first).unwrap()),
            "2027-11-01T01:30:00.000Z"
        );
    }

    #[test]
    fn a_schedule_in_seconds_goes_on_across_both_changes() {
        let s = Schedule::parse("*/2 * * * * *")
            .unwrap()
            .in_zone(zone("Europe/Berlin").unwrap());
        // The last firing before the gap (01:59:58 local = 00:59:58 UTC) is followed by
        // 03:00:00 local (01:00:00 UTC): the hour that does not occur is passed over.
        let before_gap = at("2027-03-28T00:59:58Z");
        assert_eq!(
            utc(s.next_after(before_gap).unwrap()),
            "2027-03-28T01:00:00.000Z"
        );
        // In the repeated hour's second pass (02:10 CET = 01:10 UTC), every local time until
        // 03:00 came already in the first pass: the next is 03:00 CET (02:00 UTC).
        assert_eq!(
            utc(s.next_after(at("2027-10-31T01:10:00Z")).unwrap()),
            "2027-10-31T02:00:00.000Z"
        );
        // In the first pass, it fires every 2 s as usual.
        assert_eq!(
            utc(s.next_after(at("2027-10-31T00:10:00Z")).unwrap()),
            "2027-10-31T00:10:02.000Z"
        );
    }

    #[test]
    fn zones_are_checked_by_name() {
        assert!(zone("Europe/Berlin").is_ok());
        assert!(zone("UTC").is_ok());
        let e = zone("Mars/Olympus").unwrap_err();
        assert!(e.contains("\"Mars/Olympus\" is not a time zone"), "{e}");
    }

    #[test]
    fn translations() {
        let cases = [
            ("*/5 * * * *", "0 0,5,10,15,20,25,30,35,40,45,50,55 * * * *"),
            ("* * * * *", "0 * * * * *"),
            ("0 0 * * 0", "0 0 0 * * 1"),
            ("0 0 * * 7", "0 0 0 * * 1"),
            ("0 0 * * 5-7", "0 0 0 * * 1,6,7"),
            ("0 0 * * 0-6", "0 0 0 * * *"),
            ("0 0 * * 0-7", "0 0 0 * * *"),
            ("0 0 * * 1-5", "0 0 0 * * 2-6"),
            ("0 0 * * MON-FRI", "0 0 0 * * 2-6"),
            ("0 0 * * sat,sun", "0 0 0 * * 1,7"),
            ("0 0 * * */2", "0 0 0 * * 1,3,5,7"),
            ("0 0 * * 6,7", "0 0 0 * * 1,7"),
            ("30 4 1 JAN *", "0 30 4 1 1 *"),
            ("0 9-17/2 * * *", "0 0 9,11,13,15,17 * * *"),
            ("15 10 * FEB-APR *", "0 15 10 * 2-4 *"),
            (
                "0 0 */2 * *",
                "0 0 0 1,3,5,7,9,11,13,15,17,19,21,23,25,27,29,31 * *",
            ),
            (
                "0 0 */2 * MON",
                "0 0 0 1,3,5,7,9,11,13,15,17,19,21,23,25,27,29,31 * 2",
            ),
            ("*/10 0 0 * * *", "0,10,20,30,40,50 0 0 * * *"),
            ("@daily", "0 0 0 * * *"),
            ("@weekly", "0 0 0 * * 1"),
            ("  0  12 * * * ", "0 0 12 * * *"),
        ];
        for (unix, crate_syntax) in cases {
            assert_eq!(translate(unix), Ok(crate_syntax.to_owned()), "{unix}");
        }
    }

    #[test]
    fn both_day_fields_restricted_means_either() {
        assert_eq!(
            translate_union("0 0 1 * MON"),
            Ok(vec!["0 0 0 1 * *".to_owned(), "0 0 0 * * 2".to_owned()])
        );
        assert_eq!(
            translate("0 0 1 * MON").map_err(|e| e.field),
            Err("day-of-week")
        );
        // 2026-06-01 is a Monday; 2026-06-08 is the next Monday; 2026-07-01 the next 1st.
        let s = Schedule::parse("0 0 1 * MON").unwrap();
        let june_1 = 1_780_272_000_000; // 2026-06-01T00:00:00Z
        assert_eq!(s.next_after(june_1 - 1), Some(june_1));
        assert_eq!(s.next_after(june_1), Some(june_1 + 7 * 86_400_000));
    }

    #[test]
    fn refusals_name_the_field() {
        let cases = [
            ("0 0 * * 8", "day-of-week: 8 is out of range 0-7"),
            ("60 * * * *", "minute: 60 is out of range 0-59"),
            ("* 24 * * *", "hour: 24 is out of range 0-23"),
            ("* * 0 * *", "day-of-month: 0 is out of range 1-31"),
            ("* * * 13 *", "month: 13 is out of range 1-12"),
            (
                "* * * FOO *",
                "month: \"FOO\" is neither a number nor a month name (JAN-DEC)",
            ),
            (
                "* * * * FUN",
                "day-of-week: \"FUN\" is neither a number nor a day name (SUN-SAT)",
            ),
            ("x * * * *", "minute: \"x\" is not a number"),
            ("*/0 * * * *", "minute: step 0 is out of range 1-59"),
            (
                "5/10 * * * *",
                "minute: \"5/10\": a step needs a range or *, as in 5-59/10",
            ),
            ("* * * * 5-1", "day-of-week: range 5-1 runs backwards"),
            ("1,,2 * * * *", "minute: empty item in the list \"1,,2\""),
            ("* * ? * *", "day-of-month: \"?\" is not Unix cron syntax"),
            ("* * L * *", "day-of-month: \"L\" is not Unix cron syntax"),
            (
                "* * * * 5#3",
                "day-of-week: \"5#3\" is not Unix cron syntax",
            ),
            ("60 * * * * *", "second: 60 is out of range 0-59"),
            (
                "* * * *",
                "expression: expected 5 fields (minute hour day-of-month month day-of-week) \
                 or 6 (with seconds first), found 4",
            ),
            ("", "expression: the expression is empty"),
            (
                "0 0 30 2 *",
                "day-of-month: the schedule never fires: none of its days of the month comes \
                 in its months",
            ),
        ];
        for (expr, message) in cases {
            assert_eq!(
                Schedule::parse(expr).map(|_| ()).map_err(|e| e.to_string()),
                Err(message.to_owned()),
                "{expr}"
            );
        }
        assert!(Schedule::parse("@reboot").is_err());
        assert!(Schedule::parse("0 0 29 2 *").is_ok());
    }

    #[test]
    fn next_after_is_strict_and_in_utc() {
        let s = Schedule::parse("*/5 * * * *").unwrap();
        let t = 1_767_225_600_000; // 2026-01-01T00:00:00Z
        assert_eq!(s.next_after(t), Some(t + 300_000));
        assert_eq!(s.next_after(t - 1), Some(t));
        assert_eq!(s.next_after(t + 299_999), Some(t + 300_000));
        let sunday = Schedule::parse("0 0 * * 7").unwrap();
        // 2026-01-04 is a Sunday.
        assert_eq!(sunday.next_after(t), Some(t + 3 * 86_400_000));
        let seconds = Schedule::parse("*/15 * * * * *").unwrap();
        assert_eq!(seconds.next_after(t + 500), Some(t + 15_000));
    }
}
