//! YAML to [`Manifest`], with the failing field's path in every error.
//!
//! The YAML crate is serde-saphyr: pure Rust, panic-free, maintained, and it enforces
//! parsing budgets. Here the input is capped at [`MAX_MANIFEST_BYTES`], nesting at 32
//! levels, aliases at [`MAX_YAML_ALIASES`], anchors at [`MAX_YAML_ANCHORS`], and nodes,
//! events replayed through aliases and scalar bytes at small fixed numbers, so a hostile
//! document (an alias bomb, deep nesting) is refused before it costs much.
//! `serde_path_to_error` records where deserialization stopped, which becomes the
//! [`FieldError::field`] (`components[0].resources.memory.limit`). The message is the
//! reason alone, followed by the line and column.

use serde_path_to_error::{Path, Segment};
use serde_saphyr::{Error as YamlError, MessageFormatter, UserMessageFormatter};

use super::model::Manifest;
use super::validate::{FieldError, ManifestError, validate};

/// The largest manifest accepted, in bytes (1 MiB).
pub const MAX_MANIFEST_BYTES: usize = 1 << 20;
/// The most aliases (`*name`) in a manifest.
pub const MAX_YAML_ALIASES: usize = 1_000;
/// The most anchors (`&name`) in a manifest.
pub const MAX_YAML_ANCHORS: usize = 1_000;

/// Parses and validates a manifest: the manifest, or every reason it is refused.
pub fn parse_manifest(yaml: &str) -> Result<Manifest, ManifestError> {
    let manifest = parse_yaml(yaml)?;
    validate(&manifest)?;
    Ok(manifest)
}

/// Parses a manifest without the semantic checks of [`validate`]. Refuses bad YAML, unknown
/// fields, wrong types, bad names, versions and quantities.
pub fn parse_yaml(yaml: &str) -> Result<Manifest, ManifestError> {
    if yaml.len() > MAX_MANIFEST_BYTES {
        return Err(ManifestError::single(
            "",
            format!(
                "the manifest is {} bytes; at most {MAX_MANIFEST_BYTES} (1 MiB) are accepted",
                yaml.len()
            ),
        ));
    }
    let mut failed_at: Option<Path> = None;
    let result =
        serde_saphyr::with_deserializer_from_str_with_options(yaml, options(), |deserializer| {
            serde_path_to_error::deserialize(deserializer).map_err(|e| {
                failed_at = Some(e.path().clone());
                e.into_inner()
            })
        });
    result.map_err(|e| ManifestError::from(field_error(&e, failed_at.as_ref())))
}

fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_reader_input_bytes: Some(MAX_MANIFEST_BYTES),
            max_events: 200_000,
            max_aliases: MAX_YAML_ALIASES,
            max_anchors: MAX_YAML_ANCHORS,
            max_recorded_anchor_events: 100_000,
            max_recorded_anchor_bytes: MAX_MANIFEST_BYTES,
            max_depth: 32,
            flow_nesting_limit: 32,
            max_documents: 2,
            max_nodes: 100_000,
            max_total_scalar_bytes: MAX_MANIFEST_BYTES,
            max_merge_keys: 1_000,
            // The crate's default also refuses more than 10 aliases per anchor once there
            // are 100, which made the effective alias limit 99 for a manifest with one
            // anchor, not the documented 1,000. The alias count and the replay budget
            // below bound what aliases cost; the ratio adds nothing but surprise.
            enforce_alias_anchor_ratio: false,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 100_000,
            max_replay_stack_depth: 16,
        },
        with_snippet: false,
    }
}

/// The field path and the reason for a YAML error.
fn field_error(error: &YamlError, failed_at: Option<&Path>) -> FieldError {
    let mut segments: Vec<String> = failed_at.map(path_segments).unwrap_or_default();
    let reason = match innermost(error) {
        YamlError::SerdeUnknownField {
            field, expected, ..
        } => {
            if segments.last() != Some(field) {
                segments.push(field.clone());
            }
            if expected.is_empty() {
                format!("unknown field \"{field}\"")
            } else {
                format!(
                    "unknown field \"{field}\", expected one of {}",
                    expected.join(", ")
                )
            }
        }
        YamlError::SerdeMissingField { field, .. } => {
            segments.push((*field).to_owned());
            format!("missing required field \"{field}\"")
        }
        YamlError::DuplicateMappingKey { key, .. } => {
            if let (Some(key), Some(last)) = (key, segments.last_mut())
                && last == "?"
            {
                last.clone_from(key);
            }
            text(error)
        }
        YamlError::Eof { .. } if segments.is_empty() => {
            return FieldError::new(
                "",
                "the manifest is empty; it needs app, version and components",
            );
        }
        _ => text(error),
    };
    let mut message = reason;
    if let Some(location) = error.location()
        && location.line() > 0
    {
        message.push_str(&format!(
            " (line {}, column {})",
            location.line(),
            location.column()
        ));
    }
    FieldError::new(join_path(&segments), message)
}

/// The error that caused `error`, through snippet and alias wrappers.
fn innermost(mut error: &YamlError) -> &YamlError {
    loop {
        match error {
            YamlError::WithSnippet { error: inner, .. }
            | YamlError::AliasError { error: inner, .. } => {
                error = inner;
            }
            other => return other,
        }
    }
}

/// The error's own text, without locations, and without control characters.
fn text(error: &YamlError) -> String {
    UserMessageFormatter
        .format_message(innermost(error))
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn path_segments(path: &Path) -> Vec<String> {
    path.iter()
        .map(|segment| match segment {
            Segment::Seq { index } => format!("[{index}]"),
            Segment::Map { key } => key.clone(),
            Segment::Enum { variant } => variant.clone(),
            Segment::Unknown => "?".to_owned(),
        })
        .collect()
}

/// `["components", "[0]", "name"]` to `components[0].name`.
fn join_path(segments: &[String]) -> String {
    let mut out = String::new();
    for segment in segments {
        if !out.is_empty() && !segment.starts_with('[') {
            out.push('.');
        }
        out.push_str(segment);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn refusal(yaml: &str) -> FieldError {
        match parse_yaml(yaml) {
            Ok(m) => panic!("accepted: {m:?}"),
            Err(e) => e.first().clone(),
        }
    }

    const HEAD: &str = "app: a\nversion: 1.0.0\n";

    #[test]
    fn unknown_field_names_the_key() {
        let e = refusal(&format!(
            "{HEAD}components:\n  - name: x\n    image: i\n  - name: y\n    imagee: z\n"
        ));
        assert_eq!(e.field, "components[1].imagee");
        assert!(
            e.message
                .starts_with("unknown field \"imagee\", expected one of name, kind, image"),
            "{}",
            e.message
        );
        assert!(e.message.ends_with("(line 7, column 5)"), "{}", e.message);
    }

    #[test]
    fn missing_field_names_the_field() {
        let e = refusal("app: a\ncomponents: []\n");
        assert_eq!(e.field, "version");
        assert!(
            e.message.starts_with("missing required field \"version\""),
            "{}",
            e.message
        );
        let e = refusal(&format!("{HEAD}components:\n  - image: x\n"));
        assert_eq!(e.field, "components[0].name");
    }

    #[test]
    fn bad_values_name_the_field() {
        let e = refusal(&format!(
            "{HEAD}components:\n  - name: x\n    resources: {{ memory: {{ limit: 12Qi }} }}\n"
        ));
        assert_eq!(e.field, "components[0].resources.memory.limit");
        assert!(
            e.message
                .starts_with("bad memory quantity \"12Qi\": unknown suffix Qi")
        );
        let e = refusal(&format!("{HEAD}components:\n  - name: Web\n"));
        assert_eq!(e.field, "components[0].name");
        assert!(e.message.contains("\"Web\""), "{}", e.message);
        let e = refusal("app: a\nversion: 1.0\ncomponents: []\n");
        assert_eq!(e.field, "version");
        let e = refusal(&format!(
            "{HEAD}components:\n  - name: x\n    replicas: -1\n"
        ));
        assert_eq!(e.field, "components[0].replicas");
        let e = refusal(&format!("{HEAD}components:\n  - name: x\n    kind: cron\n"));
        assert_eq!(e.field, "components[0].kind");
        assert!(e.message.contains("cron"), "{}", e.message);
    }

    #[test]
    fn platforms_parse_and_an_unknown_one_names_its_index() {
        use crate::manifest::Platform;
        let yaml = |list: &str| {
            format!("{HEAD}platforms: {list}\ncomponents:\n  - name: x\n    image: i\n")
        };
        let m = parse_yaml(&yaml("[linux/amd64, linux/arm64, linux/arm/v7]")).unwrap();
        assert_eq!(m.platforms.as_deref(), Some(&Platform::ALL[..]));
        let m = parse_yaml(&format!("{HEAD}components: []\n")).unwrap();
        assert_eq!(m.platforms, None);
        let e = refusal(&yaml("[linux/amd64, linux/386]"));
        assert_eq!(e.field, "platforms[1]");
        assert!(
            e.message.starts_with(
                "unknown platform \"linux/386\"; accepted: linux/amd64, linux/arm64, linux/arm/v7"
            ),
            "{}",
            e.message
        );
        let e = refusal(&yaml("linux/amd64"));
        assert_eq!(e.field, "platforms");
    }

    #[test]
    fn empty_and_malformed_documents() {
        for empty in ["", "   \n", "# nothing here\n"] {
            let e = refusal(empty);
            assert_eq!(e.field, "");
            assert!(e.message.contains("empty"), "{}", e.message);
        }
        assert!(parse_yaml("app: [\n").is_err());
        assert!(parse_yaml("app: \"x\nversion").is_err());
        assert!(parse_yaml(&format!("{HEAD}components: []\n---\napp: b\n")).is_err());
        let e = refusal(&format!("{HEAD}components:\n  - name: x\n    name: y\n"));
        assert_eq!(e.field, "components[0].name");
    }

    #[test]
    fn oversized_input_is_refused() {
        let big = format!(
            "{HEAD}description: \"{}\"\ncomponents: []\n",
            "x".repeat(MAX_MANIFEST_BYTES)
        );
        let e = refusal(&big);
        assert!(e.message.contains("at most 1048576"), "{}", e.message);
    }

    #[test]
    fn alias_bombs_and_deep_nesting_are_refused() {
        // Each alias replays a 300-entry map: 400 of them exceed the node budget.
        let entries: Vec<String> = (0..300).map(|i| format!("V{i}: x")).collect();
        let mut bomb = format!(
            "{HEAD}components:\n  - name: c0\n    exec: [a]\n    env: &e {{ {} }}\n",
            entries.join(", ")
        );
        for i in 1..400 {
            bomb.push_str(&format!("  - name: c{i}\n    exec: [a]\n    env: *e\n"));
        }
        let e = refusal(&bomb);
        assert!(
            e.message.contains("too large or too complex"),
            "{}",
            e.message
        );
        let deep = format!(
            "{HEAD}description: {}{}\n",
            "[".repeat(200),
            "]".repeat(200)
        );
        assert!(parse_yaml(&deep).is_err());
    }

    /// A manifest whose `env` holds `aliases` aliases of one anchor and `anchors` anchors.
    fn with_aliases(aliases: usize, anchors: usize) -> String {
        let mut s =
            format!("{HEAD}description: &d x\ncomponents:\n  - name: c\n    exec: [a]\n    env:\n");
        for i in 1..anchors {
            s.push_str(&format!("      A{i}: &a{i} y\n"));
        }
        for i in 0..aliases {
            s.push_str(&format!("      V{i}: *d\n"));
        }
        s
    }

    #[test]
    fn the_alias_and_anchor_limits_are_the_documented_ones() {
        // MAX_YAML_ALIASES aliases, all of one anchor: accepted; one more is refused.
        let m = parse_yaml(&with_aliases(MAX_YAML_ALIASES, 1)).unwrap();
        assert_eq!(m.components[0].env.len(), MAX_YAML_ALIASES);
        let e = refusal(&with_aliases(MAX_YAML_ALIASES + 1, 1));
        assert!(
            e.message.contains("Aliases { aliases: 1001 }"),
            "{}",
            e.message
        );
        // The same for anchors.
        let m = parse_yaml(&with_aliases(0, MAX_YAML_ANCHORS)).unwrap();
        assert_eq!(m.components[0].env.len(), MAX_YAML_ANCHORS - 1);
        let e = refusal(&with_aliases(0, MAX_YAML_ANCHORS + 1));
        assert!(
            e.message.contains("Anchors { anchors: 1001 }"),
            "{}",
            e.message
        );
    }
}
