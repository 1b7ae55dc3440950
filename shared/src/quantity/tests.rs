//! Quantities: parsing and refusals, canonical display, serde in both kinds of format, and
//! display round trips.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use proptest::prelude::*;

#[test]
fn memory_parses() {
    let cases: [(&str, u64); 10] = [
        ("64Mi", 64 << 20),
        ("1Gi", 1 << 30),
        ("500M", 500_000_000),
        ("1024", 1024),
        ("0", 0),
        ("1Ki", 1024),
        ("2Ti", 2 << 40),
        ("1.5Gi", 3 << 29),
        ("10K", 10_000),
        (" 3G ", 3_000_000_000),
    ];
    for (s, bytes) in cases {
        assert_eq!(s.parse::<Memory>().map(Memory::bytes), Ok(bytes), "{s}");
    }
}

#[test]
fn memory_refusals_say_why() {
    let err = "12Qi".parse::<Memory>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "bad memory quantity \"12Qi\": unknown suffix Qi; use Ki, Mi, Gi, Ti, K, M, G, T or none"
    );
    for bad in [
        "",
        "Mi",
        "-1Mi",
        "1.5",
        "0.1Ki",
        "1x",
        "99999999999Ti",
        "1..2",
    ] {
        assert!(bad.parse::<Memory>().is_err(), "{bad}");
    }
    assert!(
        "-1Mi"
            .parse::<Memory>()
            .unwrap_err()
            .reason
            .contains("negative")
    );
    assert!(
        "1.5"
            .parse::<Memory>()
            .unwrap_err()
            .reason
            .contains("whole number of bytes")
    );
}

#[test]
fn memory_display_is_canonical() {
    assert_eq!(Memory::from_bytes(64 << 20).to_string(), "64Mi");
    assert_eq!(Memory::from_bytes(500_000_000).to_string(), "500M");
    assert_eq!(Memory::from_bytes(1000).to_string(), "1K");
    assert_eq!(Memory::from_bytes(1023).to_string(), "1023");
    assert_eq!(Memory::from_bytes(0).to_string(), "0");
    assert_eq!(Memory::from_bytes(1536).to_string(), "1536");
    assert_eq!(Memory::from_bytes(3 << 29).to_string(), "1536Mi");
}

#[test]
fn cpu_parses() {
    let cases: [(&str, u64); 7] = [
        ("0.5", 500),
        ("2", 2000),
        ("500m", 500),
        ("0", 0),
        ("1.25", 1250),
        (".5", 500),
        ("0.001", 1),
    ];
    for (s, m) in cases {
        assert_eq!(s.parse::<Cpu>().map(Cpu::millicores), Ok(m), "{s}");
    }
    for bad in ["0.0005", "1.5m", "1k", "-1", "m", "", "1c"] {
        assert!(bad.parse::<Cpu>().is_err(), "{bad}");
    }
    assert_eq!(
        "0.0005".parse::<Cpu>().unwrap_err().to_string(),
        "bad cpu quantity \"0.0005\": not a whole number of millicores"
    );
    assert_eq!(Cpu::from_millicores(500).to_string(), "500m");
    assert_eq!(Cpu::from_millicores(2000).to_string(), "2");
}

#[test]
fn durations_parse() {
    let cases: [(&str, u64); 7] = [
        ("500ms", 500),
        ("5s", 5000),
        ("2m", 120_000),
        ("1h", 3_600_000),
        ("1h 30m", 5_400_000),
        ("1h30m", 5_400_000),
        ("1d", 86_400_000),
    ];
    for (s, ms) in cases {
        assert_eq!(s.parse::<Duration>().map(Duration::millis), Ok(ms), "{s}");
    }
    for bad in ["5", "", "5x", "1us", "-1s"] {
        assert!(bad.parse::<Duration>().is_err(), "{bad}");
    }
    assert_eq!(Duration::from_millis(5_400_500).to_string(), "1h30m500ms");
    assert_eq!(Duration::from_millis(0).to_string(), "0s");
    assert_eq!(
        Duration::from_millis(2000).as_std(),
        std::time::Duration::from_secs(2)
    );
}

#[test]
fn serde_human_readable_is_a_string_and_accepts_numbers() {
    assert_eq!(
        serde_json::to_string(&Memory::from_bytes(64 << 20)).ok(),
        Some("\"64Mi\"".into())
    );
    assert_eq!(
        serde_json::from_str::<Memory>("1024").ok(),
        Some(Memory::from_bytes(1024))
    );
    assert_eq!(
        serde_json::from_str::<Cpu>("0.5").ok(),
        Some(Cpu::from_millicores(500))
    );
    assert_eq!(
        serde_json::from_str::<Cpu>("2").ok(),
        Some(Cpu::from_millicores(2000))
    );
    assert_eq!(
        serde_json::from_str::<Cpu>("\"250m\"").ok(),
        Some(Cpu::from_millicores(250))
    );
    assert!(serde_json::from_str::<Duration>("5").is_err());
    assert!(serde_json::from_str::<Cpu>("-1").is_err());
    let err = serde_json::from_str::<Memory>("\"12Qi\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown suffix Qi"), "{err}");
}

#[test]
fn serde_binary_is_a_u64() {
    let bytes = postcard::to_allocvec(&Memory::from_bytes(300)).unwrap_or_default();
    assert_eq!(bytes, postcard::to_allocvec(&300u64).unwrap_or_default());
    assert_eq!(
        postcard::from_bytes::<Memory>(&bytes).ok(),
        Some(Memory::from_bytes(300))
    );
    let d = postcard::to_allocvec(&Duration::from_millis(1500)).unwrap_or_default();
    assert_eq!(
        postcard::from_bytes::<Duration>(&d).ok(),
        Some(Duration::from_millis(1500))
    );
}

proptest! {
    #[test]
    fn memory_display_round_trips(bytes in any::<u64>()) {
        let m = Memory::from_bytes(bytes);
        prop_assert_eq!(m.to_string().parse::<Memory>(), Ok(m));
    }

    #[test]
    fn cpu_display_round_trips(millis in any::<u64>()) {
        let c = Cpu::from_millicores(millis);
        prop_assert_eq!(c.to_string().parse::<Cpu>(), Ok(c));
    }

    #[test]
    fn duration_display_round_trips(millis in 0u64..(1u64 << 50)) {
        let d = Duration::from_millis(millis);
        prop_assert_eq!(d.to_string().parse::<Duration>(), Ok(d));
    }
}
