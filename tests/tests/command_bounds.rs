//! Every count and size a manifest or a command carries is bounded, against a real
//! `skerry serve` through the real CLI: one past a limit is refused (exit 2, 400) with the
//! field and the limit named, at the limit is accepted, nothing is recorded for a refusal,
//! and the cloud keeps answering. Entry addresses are checked as addresses, and an unknown
//! app is `unknown_app` wherever it is asked for.

// Tests and their helpers fail loudly: unwrap and expect are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use skerry_tests::{CliOutput, Cloud, cli, fixtures};

/// The error object of a `-o json` refusal, from standard error.
fn error_of(out: &CliOutput) -> Value {
    let body: Value = serde_json::from_str(&out.stderr)
        .unwrap_or_else(|e| panic!("stderr is not JSON ({e}): {out}"));
    body["error"].clone()
}

/// Asserts a refusal: `code` as exit status, the error code and field, and `needle` in
/// the message.
fn assert_refused(out: &CliOutput, exit: i32, code: &str, field: &str, needle: &str) {
    assert_eq!(out.code, exit, "{out}");
    let error = error_of(out);
    assert_eq!(error["code"], code, "{out}");
    assert_eq!(error["field"], field, "{out}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(needle),
        "expected {needle:?} in the message: {out}"
    );
}

fn one_component(version: &str, extra: &str) -> String {
    format!("app: big\nversion: {version}\ncomponents:\n  - name: web\n    image: web:1\n{extra}")
}

#[test]
fn replicas_are_bounded_at_publish_and_the_cloud_still_answers() {
    let cloud = Cloud::start().unwrap();
    let api = cloud.api().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let before = api.event_count().unwrap();

    for (i, replicas) in ["4294967295", "65"].iter().enumerate() {
        let yaml = one_component("1.0.0", &format!("    replicas: {replicas}\n"));
        let file = fixtures::write(dir.path(), &format!("r{i}.yaml"), &yaml).unwrap();
        let file = file.to_str().unwrap();
        let out = cli(&cloud, &["app", "publish", "-f", file, "-o", "json"]);
        assert_refused(
            &out,
            2,
            "invalid_manifest",
            "components[0].replicas",
            "at most 64",
        );
        let out = cli(&cloud, &["app", "publish", "-f", file]);
        assert_eq!(out.code, 2, "{out}");
        assert!(
            out.stderr.contains("(field: components[0].replicas)"),
            "{out}"
        );
    }
    assert_eq!(api.event_count().unwrap(), before, "a refusal was recorded");

    // The cloud still answers, and takes the limit itself.
    assert!(skerry_tests::http::healthz(cloud.listen_addr()));
    let yaml = one_component("1.0.0", "    replicas: 64\n");
    let file = fixtures::write(dir.path(), "r64.yaml", &yaml).unwrap();
    let out = cli(&cloud, &["app", "publish", "-f", file.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out}");
    // A dry run of it plans without trouble (no node in `local`: nothing fits).
    let out = cli(
        &cloud,
        &[
            "deploy",
            "big@1.0.0",
            "--env",
            "local",
            "--name",
            "big-1",
            "--dry-run",
            "-o",
            "json",
        ],
    );
    assert_refused(&out, 2, "no_fit", "env", "no node");
    let out = cli(&cloud, &["app", "list"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("big"), "{out}");
}

#[test]
fn manifest_counts_and_sizes_are_bounded() {
    let cloud = Cloud::start().unwrap();
    let api = cloud.api().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let before = api.event_count().unwrap();

    // A 100 KB pre-release, and one past the 128-byte version.
    let long = format!("1.0.0-{}", "a".repeat(100_000));
    let past = format!("1.0.0-{}", "a".repeat(128 - 5));
    let at = format!("1.0.0-{}", "a".repeat(128 - 6));
    let env_entries: String = (0..257).map(|i| format!("      V{i}: x\n")).collect();
    let cases: Vec<(String, &str, &str)> = vec![
        (one_component(&long, ""), "version", "at most 128 bytes"),
        (one_component(&past, ""), "version", "at most 128 bytes"),
        (
            one_component("1.0.0", &format!("    env:\n{env_entries}")),
            "components[0].env",
            "at most 256",
        ),
        (
            one_component(
                "1.0.0",
                &format!("    command: [{}]\n", vec!["a"; 257].join(", ")),
            ),
            "components[0].command",
            "at most 256",
        ),
        (
            format!(
                "app: big\nversion: 1.0.0\ndescription: {}\ncomponents:\n  - name: web\n    image: web:1\n",
                "d".repeat(4097)
            ),
            "description",
            "at most 4096 bytes",
        ),
    ];
    for (i, (yaml, field, needle)) in cases.iter().enumerate() {
        let file = fixtures::write(dir.path(), &format!("m{i}.yaml"), yaml).unwrap();
        let out = cli(
            &cloud,
            &["app", "publish", "-f", file.to_str().unwrap(), "-o", "json"],
        );
        assert_refused(&out, 2, "invalid_manifest", field, needle);
    }
    assert_eq!(api.event_count().unwrap(), before, "a refusal was recorded");

    let file = fixtures::write(dir.path(), "at.yaml", &one_component(&at, "")).unwrap();
    let out = cli(&cloud, &["app", "publish", "-f", file.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out}");
}

#[test]
fn entry_addresses_are_checked_and_bounded() {
    let cloud = Cloud::start().unwrap();
    let api = cloud.api().unwrap();
    let before = api.event_count().unwrap();

    let long_label = format!("{}.example.com:80", "a".repeat(300));
    let label_64 = format!("{}.example.com:80", "a".repeat(64));
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (vec!["10.0.0.1:0"], "entries[0]", "port"),
        (vec!["gw.example.com:0"], "entries[0]", "port"),
        (vec!["gw.example.com:65536"], "entries[0]", "port"),
        (
            vec!["10.0.0.1", "gw.example.com:80", "gw.example.com:80"],
            "entries[2]",
            "also entries[1]",
        ),
        (vec!["-bad-.com:80"], "entries[0]", "-bad-"),
        (vec![&long_label], "entries[0]", "at most 253"),
        (vec![&label_64], "entries[0]", "at most 63"),
        (vec!["[gw.example.com]:80"], "entries[0]", "IPv6"),
        (vec!["[::1]"], "entries[0]", "port"),
        (vec!["[::1]:0"], "entries[0]", "port"),
    ];
    for (i, (entries, field, needle)) in cases.iter().enumerate() {
        let name = format!("e{i}");
        // `--entry=VALUE`, so that a value that starts with '-' is not read as an option.
        let flags: Vec<String> = entries.iter().map(|e| format!("--entry={e}")).collect();
        let mut args = vec!["env", "create", &name, "-o", "json"];
        args.extend(flags.iter().map(String::as_str));
        let out = cli(&cloud, &args);
        assert_refused(&out, 2, "invalid_entry", field, needle);
    }

    // 65 entries are refused, 64 accepted.
    let many: Vec<String> = (0..65)
        .map(|i| format!("10.0.{}.{}:80", i / 200, i % 200 + 1))
        .collect();
    let mut args = vec!["env", "create", "many", "-o", "json"];
    for e in &many {
        args.push("--entry");
        args.push(e);
    }
    let out = cli(&cloud, &args);
    assert_refused(&out, 2, "invalid_entry", "entries", "at most 64");
    assert_eq!(api.event_count().unwrap(), before, "a refusal was recorded");
    args.truncate(args.len() - 2);
    let out = cli(&cloud, &args);
    assert_eq!(out.code, 0, "{out}");

    // Well-formed addresses of each kind are taken.
    let out = cli(
        &cloud,
        &[
            "env",
            "create",
            "good",
            "--entry",
            "10.0.0.1",
            "--entry",
            "gw-1.example.com:443",
            "--entry",
            "[::1]:8080",
            "--entry",
            "fe80::1",
        ],
    );
    assert_eq!(out.code, 0, "{out}");
}

#[test]
fn labels_and_overrides_are_bounded() {
    let cloud = Cloud::start().unwrap();
    let dir = tempfile::tempdir().unwrap();

    // 65 labels on an environment.
    let labels: Vec<String> = (0..65).map(|i| format!("k{i}=v")).collect();
    let mut args = vec!["env", "create", "labelled", "-o", "json"];
    for l in &labels {
        args.push("--label");
        args.push(l);
    }
    let out = cli(&cloud, &args);
    assert_refused(&out, 2, "invalid_label", "labels", "at most 64");
    args.truncate(args.len() - 2);
    let out = cli(&cloud, &args);
    assert_eq!(out.code, 0, "{out}");

    // 257 `--set` overrides on a deploy; 256 pass that check (and then nothing fits).
    let file = fixtures::write(dir.path(), "w.yaml", &one_component("1.0.0", "")).unwrap();
    let out = cli(&cloud, &["app", "publish", "-f", file.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out}");
    let sets: Vec<String> = (0..257).map(|i| format!("web.V{i}=x")).collect();
    let mut args = vec![
        "deploy",
        "big@1.0.0",
        "--env",
        "local",
        "--name",
        "b",
        "-o",
        "json",
    ];
    for s in &sets {
        args.push("--set");
        args.push(s);
    }
    // The CLI refuses that many itself (invalid_argument); the cloud refuses them too.
    let out = cli(&cloud, &args);
    assert_eq!(out.code, 2, "{out}");
    let answer = cloud
        .api()
        .unwrap()
        .post_json(
            "/api/v1/instances",
            &serde_json::json!({
                "app": "big", "version": "1.0.0", "env": "local", "name": "b", "set": sets,
            }),
        )
        .unwrap();
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(answer.error_code().as_deref(), Some("invalid_override"));
    assert_eq!(answer.error_field().as_deref(), Some("set"));
    assert!(answer.body.contains("at most 256"), "{}", answer.body);
    args.truncate(args.len() - 2);
    let out = cli(&cloud, &args);
    assert_refused(&out, 2, "no_fit", "env", "no node");

    // A 64-term selector passes, 65 terms are refused.
    let terms: Vec<String> = (0..65).map(|i| format!("k{i}=v")).collect();
    let mut args = vec![
        "deploy",
        "big@1.0.0",
        "--env",
        "local",
        "--name",
        "b",
        "-o",
        "json",
    ];
    for t in &terms {
        args.push("--selector");
        args.push(t);
    }
    let out = cli(&cloud, &args);
    assert_refused(&out, 2, "invalid_label", "selector", "at most 64");
    args.truncate(args.len() - 2);
    let out = cli(&cloud, &args);
    assert_refused(&out, 2, "no_fit", "selector", "no node");
}

#[test]
fn an_unknown_app_is_unknown_app_and_an_unknown_version_unknown_app_version() {
    let cloud = Cloud::start().unwrap();
    let api = cloud.api().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = fixtures::write(dir.path(), "w.yaml", &fixtures::weather("1.0.0")).unwrap();
    let out = cli(&cloud, &["app", "publish", "-f", file.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out}");

    let deploy = |app: &str| {
        cli(
            &cloud,
            &["deploy", app, "--env", "local", "--name", "x", "-o", "json"],
        )
    };
    // No such app: the same code and field on deploy, on GET of the app and of a version.
    let out = deploy("nope@1.0.0");
    assert_refused(&out, 4, "unknown_app", "app", "nope");
    let out = cli(&cloud, &["app", "show", "nope@1.0.0", "-o", "json"]);
    assert_refused(&out, 4, "unknown_app", "app", "nope");
    for path in ["/api/v1/apps/nope", "/api/v1/apps/nope/versions/1.0.0"] {
        let answer = api.get(path).unwrap();
        assert_eq!(answer.status, 404, "{path}: {}", answer.body);
        assert_eq!(
            answer.error_code().as_deref(),
            Some("unknown_app"),
            "{path}"
        );
        assert_eq!(answer.error_field().as_deref(), Some("app"), "{path}");
    }

    // The app exists, the version does not: the same code and field everywhere.
    let out = deploy("weather@9.9.9");
    assert_refused(&out, 4, "unknown_app_version", "version", "9.9.9");
    let out = cli(&cloud, &["app", "show", "weather@9.9.9", "-o", "json"]);
    assert_refused(&out, 4, "unknown_app_version", "version", "9.9.9");
    // A version longer than any that can be published is refused as such, not echoed.
    let long = format!("1.0.0-{}", "a".repeat(100_000));
    let answer = api
        .post_json(
            "/api/v1/instances",
            &serde_json::json!({"app": "weather", "version": long, "env": "local", "name": "x"}),
        )
        .unwrap();
    assert_eq!(
        answer.status,
        400,
        "{}",
        &answer.body[..answer.body.len().min(300)]
    );
    assert_eq!(answer.error_code().as_deref(), Some("invalid_version"));
    assert_eq!(answer.error_field().as_deref(), Some("version"));
    assert!(answer.body.len() < 1000, "the answer echoes the version");
    let answer = api.get("/api/v1/apps/weather/versions/9.9.9").unwrap();
    assert_eq!(answer.status, 404, "{}", answer.body);
    assert_eq!(answer.error_code().as_deref(), Some("unknown_app_version"));
    assert_eq!(answer.error_field().as_deref(), Some("version"));
}

#[test]
fn a_node_carries_at_most_64_labels() {
    let cloud = Cloud::start().unwrap();
    let api = cloud.api().unwrap();
    let token = api.enrollment_token("local", None).unwrap();
    skerry_tests::TestNode::new("gw-1")
        .unwrap()
        .enroll(&api, &token)
        .unwrap();

    // 40 labels, then 25 more: each change is under the bound, the node would pass it.
    let first: Vec<String> = (0..40).map(|i| format!("a{i}=v")).collect();
    let mut args = vec!["node", "label", "gw-1"];
    args.extend(first.iter().map(String::as_str));
    let out = cli(&cloud, &args);
    assert_eq!(out.code, 0, "{out}");
    let more: Vec<String> = (0..25).map(|i| format!("b{i}=v")).collect();
    let mut args = vec!["node", "label", "gw-1", "-o", "json"];
    args.extend(more.iter().map(String::as_str));
    let out = cli(&cloud, &args);
    assert_refused(
        &out,
        2,
        "invalid_label",
        "set",
        "would have 65 labels; at most 64",
    );
    // Removing one while adding makes room.
    args.push("a0-");
    let out = cli(&cloud, &args);
    assert_eq!(out.code, 0, "{out}");
    let out = cli(&cloud, &["node", "show", "gw-1", "-o", "json"]);
    let shown = out.json().unwrap();
    assert_eq!(shown["labels"].as_object().unwrap().len(), 64, "{out}");
}
