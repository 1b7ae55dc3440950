//! Memory, CPU and duration quantities, as manifests and firmware profiles write them.
//!
//! - [`Memory`]: bytes. `64Mi`, `1Gi`, `500M`, `1024` (binary suffixes `Ki Mi Gi Ti`,
//!   decimal suffixes `K M G T`, or none for bytes; a decimal point is allowed when the
//!   result is a whole number of bytes: `1.5Gi`).
//! - [`Cpu`]: millicores. `0.5`, `2`, `500m`; the value must be a whole number of
//!   millicores.
//! - [`Duration`]: milliseconds. `500ms`, `5s`, `2m`, `1h`, and the combinations that
//!   `humantime` accepts (`1h 30m`, `1h30m`); it must be a whole number of milliseconds.
//!
//! Each type parses with [`FromStr`] (the error says why), displays as a canonical string
//! that parses back to the same value, and goes through serde as that string in
//! human-readable formats (YAML, TOML, JSON) and as a plain `u64` otherwise (postcard).
//! In human-readable formats a number is accepted as well: YAML reads `cpu: 0.5` as a
//! float and `memory: 1024` as an integer. A duration needs a unit, so a bare number is
//! refused there.
//!
//! The tests are in `tests` (`quantity/tests.rs`).

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a quantity did not parse: `bad memory quantity "12Qi": unknown suffix Qi; ...`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad {what} \"{input}\": {reason}")]
pub struct QuantityError {
    /// `memory quantity`, `cpu quantity` or `duration`.
    pub what: &'static str,
    /// The text that was refused.
    pub input: String,
    /// Why.
    pub reason: String,
}

impl QuantityError {
    fn new(what: &'static str, input: &str, reason: impl Into<String>) -> Self {
        Self {
            what,
            input: input.to_owned(),
            reason: reason.into(),
        }
    }
}

const MEMORY: &str = "memory quantity";
const CPU: &str = "cpu quantity";
const DURATION: &str = "duration";

/// A decimal number `123` or `1.25`, kept exact as `mantissa / 10^scale`.
struct Decimal {
    mantissa: u128,
    scale: u32,
}

impl Decimal {
    /// Parses unsigned decimal digits with at most one point; `why` describes a failure.
    fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("a number is needed".into());
        }
        if s.starts_with('-') {
            return Err("must not be negative".into());
        }
        let (int, frac) = match s.split_once('.') {
            Some((i, f)) => (i, f),
            None => (s, ""),
        };
        if int.is_empty() && frac.is_empty() {
            return Err("a number is needed".into());
        }
        if let Some(c) = int
            .chars()
            .chain(frac.chars())
            .find(|c| !c.is_ascii_digit())
        {
            return Err(format!("{c:?} is not part of a number"));
        }
        // More than 30 digits cannot be a sensible quantity and would overflow below.
        if int.len() + frac.len() > 30 {
            return Err("the number is too large".into());
        }
        let mut mantissa: u128 = 0;
        for d in int.bytes().chain(frac.bytes()) {
            mantissa = mantissa * 10 + u128::from(d - b'0');
        }
        Ok(Self {
            mantissa,
            // At most 30 digits, so this fits.
            scale: u32::try_from(frac.len()).unwrap_or(u32::MAX),
        })
    }

    /// `self * factor` if that is a whole number that fits a `u64`.
    fn times(&self, factor: u64) -> Result<u64, String> {
        let product = self
            .mantissa
            .checked_mul(u128::from(factor))
            .ok_or_else(|| "the value is too large".to_string())?;
        let divisor = 10u128
            .checked_pow(self.scale)
            .ok_or_else(|| "too many decimal places".to_string())?;
        if product % divisor != 0 {
            return Err("too many decimal places".into());
        }
        u64::try_from(product / divisor).map_err(|_| "the value is too large".to_string())
    }
}

/// Splits `12Mi` into (`12`, `Mi`): the number is the leading run of digits and points.
fn split_number(s: &str) -> (&str, &str) {
    let end = s
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.' || *c == '-' || *c == '+'))
        .map_or(s.len(), |(i, _)| i);
    s.split_at(end)
}

/// A quantity of memory or disk, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Memory(u64);

const KI: u64 = 1 << 10;
const MEMORY_SUFFIXES: [(&str, u64); 8] = [
    ("Ti", KI * KI * KI * KI),
    ("Gi", KI * KI * KI),
    ("Mi", KI * KI),
    ("Ki", KI),
    ("T", 1_000_000_000_000),
    ("G", 1_000_000_000),
    ("M", 1_000_000),
    ("K", 1_000),
];

impl Memory {
    pub const ZERO: Memory = Memory(0);

    pub const fn from_bytes(bytes: u64) -> Self {
        Self(bytes)
    }

    /// `n` mebibytes (saturating).
    pub const fn mib(n: u64) -> Self {
        Self(n.saturating_mul(KI * KI))
    }

    /// `n` gibibytes (saturating).
    pub const fn gib(n: u64) -> Self {
        Self(n.saturating_mul(KI * KI * KI))
    }

    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for Memory {
    type Err = QuantityError;

    fn from_str(input: &str) -> Result<Self, QuantityError> {
        let s = input.trim();
        let (number, suffix) = split_number(s);
        let factor = if suffix.is_empty() {
            1
        } else {
            MEMORY_SUFFIXES
                .iter()
                .find(|(name, _)| *name == suffix)
                .map(|(_, f)| *f)
                .ok_or_else(|| {
                    QuantityError::new(
                        MEMORY,
                        input,
                        format!("unknown suffix {suffix}; use Ki, Mi, Gi, Ti, K, M, G, T or none"),
                    )
                })?
        };
        let value = Decimal::parse(number)
            .and_then(|d| d.times(factor))
            .map_err(|why| QuantityError::new(MEMORY, input, memory_reason(why)))?;
        Ok(Self(value))
    }
}

fn memory_reason(why: String) -> String {
    if why == "too many decimal places" {
        "not a whole number of bytes".into()
    } else {
        why
    }
}

impl fmt::Display for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 != 0 {
            // The largest suffix that divides the value exactly, binary ones first.
            for (name, factor) in MEMORY_SUFFIXES {
                if self.0.is_multiple_of(factor) {
                    return write!(f, "{}{name}", self.0 / factor);
                }
            }
        }
        write!(f, "{}", self.0)
    }
}

/// A quantity of CPU, in millicores (1000 = one core).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Cpu(u64);

impl Cpu {
    pub const ZERO: Cpu = Cpu(0);

    pub const fn from_millicores(millicores: u64) -> Self {
        Self(millicores)
    }

    /// `n` whole cores (saturating).
    pub const fn cores(n: u64) -> Self {
        Self(n.saturating_mul(1000))
    }

    pub const fn millicores(self) -> u64 {
        self.0
    }
}

impl FromStr for Cpu {
    type Err = QuantityError;

    fn from_str(input: &str) -> Result<Self, QuantityError> {
        let s = input.trim();
        let (number, suffix) = split_number(s);
        let factor = match suffix {
            "" => 1000,
            "m" => 1,
            other => {
                return Err(QuantityError::new(
                    CPU,
                    input,
                    format!("unknown suffix {other}; write cores (0.5, 2) or millicores (500m)"),
                ));
            }
        };
        let value = Decimal::parse(number)
            .and_then(|d| d.times(factor))
            .map_err(|why| {
                let why = if why == "too many decimal places" {
                    "not a whole number of millicores".into()
                } else {
                    why
                };
                QuantityError::new(CPU, input, why)
            })?;
        Ok(Self(value))
    }
}

impl fmt::Display for Cpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(1000) {
            write!(f, "{}", self.0 / 1000)
        } else {
            write!(f, "{}m", self.0)
        }
    }
}

/// A span of time, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(u64);

impl Duration {
    pub const ZERO: Duration = Duration(0);

    pub const fn from_millis(millis: u64) -> Self {
        Self(millis)
    }

    /// `n` seconds (saturating).
    pub const fn from_secs(n: u64) -> Self {
        Self(n.saturating_mul(1000))
    }

    pub const fn millis(self) -> u64 {
        self.0
    }

    pub const fn as_std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0)
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.as_std()
    }
}

impl FromStr for Duration {
    type Err = QuantityError;

    fn from_str(input: &str) -> Result<Self, QuantityError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(QuantityError::new(DURATION, input, "a duration is needed"));
        }
        if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(QuantityError::new(
                DURATION,
                input,
                "a duration needs a unit: 500ms, 5s, 2m, 1h",
            ));
        }
        let d = humantime::parse_duration(s)
            .map_err(|e| QuantityError::new(DURATION, input, e.to_string()))?;
        if d.subsec_nanos() % 1_000_000 != 0 {
            return Err(QuantityError::new(
                DURATION,
                input,
                "not a whole number of milliseconds",
            ));
        }
        let millis = u64::try_from(d.as_millis())
            .map_err(|_| QuantityError::new(DURATION, input, "the value is too large"))?;
        Ok(Self(millis))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        let mut rest = self.0;
        for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)] {
            let n = rest / size;
            rest %= size;
            if n > 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

/// Serde glue shared by the three types: a canonical string for human-readable formats,
/// a plain `u64` otherwise.
macro_rules! quantity_serde {
    ($t:ident, $expecting:literal) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.collect_str(self)
                } else {
                    s.serialize_u64(self.0)
                }
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Text;
                impl Visitor<'_> for Text {
                    type Value = $t;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$t, E> {
                        v.parse().map_err(E::custom)
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$t, E> {
                        self.number(&v.to_string())
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$t, E> {
                        self.number(&v.to_string())
                    }
                    fn visit_f64<E: de::Error>(self, v: f64) -> Result<$t, E> {
                        if !v.is_finite() {
                            return Err(E::custom(format!(
                                "bad {}: {v} is not a number",
                                $expecting
                            )));
                        }
                        // Rust prints the shortest text that reads back as `v`, without an
                        // exponent: what the user wrote, for any sensible quantity.
                        self.number(&v.to_string())
                    }
                }
                impl Text {
                    fn number<E: de::Error>(self, text: &str) -> Result<$t, E> {
                        $t::from_number(text).map_err(E::custom)
                    }
                }

                struct Raw;
                impl Visitor<'_> for Raw {
                    type Value = $t;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("an unsigned integer")
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$t, E> {
                        Ok($t(v))
                    }
                }

                if d.is_human_readable() {
                    d.deserialize_any(Text)
                } else {
                    d.deserialize_u64(Raw)
                }
            }
        }
    };
}

quantity_serde!(Memory, "memory quantity");
quantity_serde!(Cpu, "cpu quantity");
quantity_serde!(Duration, "duration");

impl Memory {
    /// A YAML or JSON number: bytes.
    fn from_number(text: &str) -> Result<Self, QuantityError> {
        text.parse()
    }
}

impl Cpu {
    /// A YAML or JSON number: cores.
    fn from_number(text: &str) -> Result<Self, QuantityError> {
        text.parse()
    }
}

impl Duration {
    /// A YAML or JSON number: refused, since it has no unit.
    fn from_number(text: &str) -> Result<Self, QuantityError> {
        Err(QuantityError::new(
            DURATION,
            text,
            "a duration needs a unit: 500ms, 5s, 2m, 1h",
        ))
    }
}

#[cfg(test)]
mod tests;
