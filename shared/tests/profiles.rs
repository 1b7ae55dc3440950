//! Every file in `firmware-profiles/` parses and validates against the schema, is named
//! like its file, and is one of the builtin profiles.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use skerry_shared::profile::{FirmwareProfile, builtin, builtin_names};

fn profile_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../firmware-profiles");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_profile_file_parses_and_validates() {
    let files = profile_files();
    assert!(files.len() >= 5, "{files:?}");
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let profile =
            FirmwareProfile::from_toml(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        profile.validate().unwrap();
        let stem = path.file_stem().unwrap().to_str().unwrap();
        assert_eq!(profile.name, stem, "{}", path.display());
        assert!(!profile.description.is_empty(), "{}", path.display());
        assert!(profile.capacity_millicores() >= 1000);
        let bytes = postcard::to_allocvec(&profile).unwrap();
        assert_eq!(
            postcard::from_bytes::<FirmwareProfile>(&bytes).unwrap(),
            profile
        );
    }
}

#[test]
fn builtin_lists_every_profile_file() {
    let mut names: Vec<String> = profile_files()
        .iter()
        .map(|p| p.file_stem().unwrap().to_str().unwrap().to_owned())
        .collect();
    names.sort();
    let mut builtins: Vec<String> = builtin_names().iter().map(|s| (*s).to_owned()).collect();
    builtins.sort();
    assert_eq!(names, builtins);
    for name in builtin_names() {
        let from_file = std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join(format!("../firmware-profiles/{name}.toml")),
        )
        .unwrap();
        assert_eq!(
            builtin(name),
            Some(FirmwareProfile::from_toml(&from_file).unwrap())
        );
    }
}

/// Every field of the schema, dotted (`cpu.model`, `agent.outbox_quota`), from a builtin
/// profile that sets them all, serialized.
fn schema_fields() -> Vec<String> {
    let mut profile = builtin("x86-64-host").unwrap();
    profile.cpu.model = Some("any".into());
    let value: toml::Value = toml::Value::try_from(&profile).unwrap();
    let mut out = Vec::new();
    let toml::Value::Table(top) = value else {
        panic!("a profile serializes as a table")
    };
    for (key, v) in top {
        match v {
            toml::Value::Table(inner) => {
                out.extend(inner.keys().map(|k| format!("{key}.{k}")));
            }
            _ => out.push(key),
        }
    }
    out.sort();
    out
}

#[test]
fn every_field_is_documented_on_the_profiles_page() {
    let page = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/profiles.md"),
    )
    .unwrap();
    let fields = schema_fields();
    for must in ["arch", "disk", "link", "cpu.model", "agent.outbox_quota"] {
        assert!(fields.iter().any(|f| f == must), "{must} in {fields:?}");
    }
    let table_rows: Vec<&str> = page.lines().filter(|l| l.starts_with("| `")).collect();
    for field in &fields {
        let row = format!("| `{field}` |");
        assert!(
            table_rows.iter().any(|r| r.starts_with(&row)),
            "docs/profiles.md has no row for `{field}`"
        );
    }
    // And every file of firmware-profiles/ is in the page's list of built-in profiles.
    for name in builtin_names() {
        assert!(page.contains(&format!("| `{name}` |")), "{name}");
    }
}

#[test]
fn a_metered_link_batches_harder_than_the_others() {
    use skerry_shared::profile::Link;
    let ethernet = Link::Ethernet.tuning();
    assert_eq!(Link::Wifi.tuning(), ethernet);
    assert!(ethernet.log_linger.is_zero() && ethernet.report_linger.is_zero());
    let metered = Link::CellularMetered.tuning();
    assert!(
        metered.collect_every > ethernet.collect_every,
        "{metered:?}"
    );
    assert!(metered.log_linger > ethernet.log_linger, "{metered:?}");
    assert!(
        metered.report_linger > ethernet.report_linger,
        "{metered:?}"
    );
    // Reports never wait as long as logs, nor past a heartbeat of the smallest allowed.
    assert!(metered.report_linger < metered.log_linger);
    assert!(metered.report_linger <= std::time::Duration::from_secs(5));
}
