//! Unix cron semantics, checked against a brute-force evaluator: for random valid
//! expressions, the firing times of `cron::Schedule` over a window equal every minute (or
//! second) of that window that Unix cron (Vixie cron, cronie) would fire on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use skerry_shared::cron::Schedule;
use time::OffsetDateTime;

/// One item of a cron field's list.
#[derive(Debug, Clone)]
enum Item {
    Star(Option<u32>),
    Single(u32),
    Range(u32, u32, Option<u32>),
}

/// A field: its items, and how to spell its values.
#[derive(Debug, Clone)]
struct Field {
    items: Vec<Item>,
    min: u32,
    max: u32,
    /// Spell value `v` as a name where the field has one (months, days of the week).
    named: Vec<bool>,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["sun", "Mon", "TUE", "wed", "Thu", "FRI", "sat"];

impl Field {
    fn spell(&self, v: u32, k: usize) -> String {
        let named = self.named.get(k).copied().unwrap_or(false);
        match (named, self.min, self.max) {
            (true, 1, 12) => MONTHS[(v - 1) as usize].to_owned(),
            (true, 0, 7) if v < 7 => DAYS[v as usize].to_owned(),
            _ => v.to_string(),
        }
    }

    fn text(&self) -> String {
        self.items
            .iter()
            .enumerate()
            .map(|(k, item)| match item {
                Item::Star(None) => "*".to_owned(),
                Item::Star(Some(n)) => format!("*/{n}"),
                Item::Single(v) => self.spell(*v, k),
                Item::Range(a, b, step) => {
                    let range = format!("{}-{}", self.spell(*a, k), self.spell(*b, 2 * k + 1));
                    match step {
                        Some(n) => format!("{range}/{n}"),
                        None => range,
                    }
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Whether the raw value `v` is listed (before folding 7 into Sunday).
    fn lists(&self, v: u32) -> bool {
        self.items.iter().any(|item| match *item {
            Item::Star(step) => (v - self.min).is_multiple_of(step.unwrap_or(1)),
            Item::Single(a) => v == a,
            Item::Range(a, b, step) => {
                a <= v && v <= b && (v - a).is_multiple_of(step.unwrap_or(1))
            }
        })
    }

    fn star(&self) -> bool {
        matches!(self.items.first(), Some(Item::Star(_)))
    }
}

fn field(min: u32, max: u32) -> impl Strategy<Value = Field> {
    let item = prop_oneof![
        3 => Just(Item::Star(None)),
        2 => (1..=max).prop_map(|n| Item::Star(Some(n))),
        3 => (min..=max).prop_map(Item::Single),
        2 => (min..=max, min..=max, prop::option::of(1..=max))
            .prop_map(|(a, b, step)| Item::Range(a.min(b), a.max(b), step)),
    ];
    (
        prop::collection::vec(item, 1..4),
        prop::collection::vec(any::<bool>(), 8),
    )
        .prop_map(move |(items, named)| Field {
            items,
            min,
            max,
            named,
        })
}

/// A Unix cron expression, as fields, with the rules of Vixie cron.
#[derive(Debug, Clone)]
struct Expr {
    second: Option<Field>,
    minute: Field,
    hour: Field,
    day_of_month: Field,
    month: Field,
    day_of_week: Field,
}

impl Expr {
    fn text(&self) -> String {
        let mut parts: Vec<String> = self.second.iter().map(Field::text).collect();
        for f in [
            &self.minute,
            &self.hour,
            &self.day_of_month,
            &self.month,
            &self.day_of_week,
        ] {
            parts.push(f.text());
        }
        parts.join(" ")
    }

    fn fires_at(&self, unix_seconds: i64) -> bool {
        let t = OffsetDateTime::from_unix_timestamp(unix_seconds).unwrap();
        let second_ok = match &self.second {
            Some(f) => f.lists(u32::from(t.second())),
            None => t.second() == 0,
        };
        let dow = u32::from(t.weekday().number_days_from_sunday());
        let dom_ok = self.day_of_month.lists(u32::from(t.day()));
        let dow_ok = self.day_of_week.lists(dow) || (dow == 0 && self.day_of_week.lists(7));
        // Vixie cron: if either day field starts with `*`, both must match; otherwise
        // either may.
        let day_ok = if self.day_of_month.star() || self.day_of_week.star() {
            dom_ok && dow_ok
        } else {
            dom_ok || dow_ok
        };
        second_ok
            && self.minute.lists(u32::from(t.minute()))
            && self.hour.lists(u32::from(t.hour()))
            && self.month.lists(u32::from(u8::from(t.month())))
            && day_ok
    }
}

fn expr(with_seconds: bool) -> impl Strategy<Value = Expr> {
    let month = prop_oneof![
        1 => Just(Field { items: vec![Item::Star(None)], min: 1, max: 12, named: vec![] }),
        1 => field(1, 12),
    ];
    (
        field(0, 59).prop_map(move |f| with_seconds.then_some(f)),
        field(0, 59),
        field(0, 23),
        field(1, 31),
        month,
        field(0, 7),
    )
        .prop_map(
            |(second, minute, hour, day_of_month, month, day_of_week)| Expr {
                second,
                minute,
                hour,
                day_of_month,
                month,
                day_of_week,
            },
        )
}

/// Firing times in `(start, start + span]`, in unix milliseconds, by both evaluators.
fn compare(e: &Expr, start_ms: i64, span_s: i64, step_s: i64) -> Result<(), TestCaseError> {
    let text = e.text();
    let schedule = match Schedule::parse(&text) {
        Ok(s) => s,
        // The only refusal for generated expressions: days that never come in the months.
        Err(err) => {
            prop_assert_eq!(err.field, "day-of-month", "{} refused: {}", text, err);
            return Ok(());
        }
    };
    let end_ms = start_ms + span_s * 1000;
    let first = start_ms.div_euclid(step_s * 1000) * step_s + step_s;
    let brute: Vec<i64> = (0..)
        .map(|k| first + k * step_s)
        .take_while(|&s| s * 1000 <= end_ms)
        .filter(|&s| e.fires_at(s))
        .map(|s| s * 1000)
        .collect();
    let mut by_schedule = Vec::new();
    let mut t = start_ms;
    while let Some(next) = schedule.next_after(t) {
        if next > end_ms {
            break;
        }
        prop_assert!(next > t);
        by_schedule.push(next);
        t = next;
    }
    prop_assert_eq!(brute, by_schedule, "expression {}", text);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn five_fields_match_unix_cron(
        e in expr(false),
        // 2000-01-01 to 2090-01-01, at any millisecond.
        start in 946_684_800_000i64..3_786_912_000_000,
    ) {
        // Three days of minutes.
        compare(&e, start, 3 * 86_400, 60)?;
    }

    #[test]
    fn six_fields_match_unix_cron_with_seconds(
        e in expr(true),
        start in 946_684_800_000i64..3_786_912_000_000,
    ) {
        // Two hours of seconds.
        compare(&e, start, 2 * 3_600, 1)?;
    }
}

#[test]
fn fixed_cases() {
    // 2026-01-01T00:00:00Z, a Thursday.
    let t0: i64 = 1_767_225_600_000;
    let day = 86_400_000;
    let next = |expr: &str, after: i64| Schedule::parse(expr).unwrap().next_after(after);
    assert_eq!(next("0 0 * * 0", t0), Some(t0 + 3 * day)); // Sunday the 4th
    assert_eq!(next("0 0 * * 7", t0), Some(t0 + 3 * day));
    assert_eq!(next("0 0 * * 5-7", t0), Some(t0 + day)); // Friday the 2nd
    assert_eq!(next("0 0 * * 6-7", t0), Some(t0 + 2 * day)); // Saturday the 3rd
    assert_eq!(next("0 0 * * MON-FRI", t0), Some(t0 + day));
    assert_eq!(next("0 0 13 * FRI", t0), Some(t0 + day)); // either: Friday the 2nd
    assert_eq!(next("0 0 */2 * FRI", t0 + 1), Some(t0 + 8 * day)); // both: Friday the 9th
    assert_eq!(next("0 0 1 1 *", t0), Some(1_798_761_600_000)); // 2027-01-01
    assert_eq!(next("0 0 29 2 *", t0), Some(1_835_395_200_000)); // 2028-02-29
    assert_eq!(next("*/5 * * * *", t0 + 1), Some(t0 + 300_000));
    assert_eq!(next("30 */15 * * * *", t0), Some(t0 + 30_000));
    assert_eq!(next("@hourly", t0), Some(t0 + 3_600_000));
    assert_eq!(next("0 0 1 1 *", 4_133_980_800_000), None); // after 2100
}
