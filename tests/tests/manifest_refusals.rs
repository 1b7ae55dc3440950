//! Every manifest refusal rule, through the real CLI and the JSON API: the whole manifest is
//! refused, the refusal names the exact field, and nothing is recorded.

// Tests and their helpers fail loudly: unwrap and expect are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use skerry_tests::{Cloud, cli, fixtures};

#[test]
fn the_cli_refuses_each_rule_naming_the_field() {
    let cloud = Cloud::start().unwrap();
    let api = cloud.api().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let before = api.event_count().unwrap();

    for (i, refused) in fixtures::refusals().iter().enumerate() {
        let file =
            fixtures::write(dir.path(), &format!("refused-{i}.yaml"), &refused.yaml).unwrap();
        let file = file.to_str().unwrap();

        let out = cli(&cloud, &["app", "publish", "-f", file]);
        assert_eq!(out.code, 2, "{}: {out}", refused.rule);
        assert!(out.stdout.is_empty(), "{}: {out}", refused.rule);
        let first = out.stderr.lines().next().unwrap_or_default();
        assert!(first.starts_with("error: "), "{}: {out}", refused.rule);
        assert!(
            first.contains(&format!("(field: {})", refused.field)),
            "{}: expected the field {}: {out}",
            refused.rule,
            refused.field
        );

        let out = cli(&cloud, &["app", "publish", "-f", file, "-o", "json"]);
        assert_eq!(out.code, 2, "{}: {out}", refused.rule);
        let body: Value = serde_json::from_str(&out.stderr)
            .unwrap_or_else(|e| panic!("{}: stderr is not JSON ({e}): {out}", refused.rule));
        assert_eq!(
            body["error"]["code"], "invalid_manifest",
            "{}: {out}",
            refused.rule
        );
        assert_eq!(
            body["error"]["field"], refused.field,
            "{}: {out}",
            refused.rule
        );
        assert!(
            !body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .is_empty()
        );

        assert_eq!(
            api.event_count().unwrap(),
            before,
            "{}: something was recorded",
            refused.rule
        );
    }
    assert_eq!(api.get_json("/api/v1/apps").unwrap(), serde_json::json!([]));

    // The same cloud takes a valid manifest, so the refusals above were the manifests'.
    let good = fixtures::write(dir.path(), "weather.yaml", &fixtures::weather("1.0.0")).unwrap();
    let out = cli(&cloud, &["app", "publish", "-f", good.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(api.event_count().unwrap(), before + 1);
    let exec = fixtures::write(dir.path(), "sensor.yaml", &fixtures::exec_app("0.1.0")).unwrap();
    let out = cli(&cloud, &["app", "publish", "-f", exec.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(api.event_count().unwrap(), before + 2);
}

#[test]
fn the_api_refuses_each_rule_with_400_and_the_field() {
    let cloud = Cloud::start().unwrap();
    let api = cloud.api().unwrap();
    let before = api.event_count().unwrap();

    for refused in fixtures::refusals() {
        let answer = api
            .post_bytes(
                "/api/v1/apps",
                refused.yaml.clone().into_bytes(),
                "application/yaml",
            )
            .unwrap();
        assert_eq!(answer.status, 400, "{}: {}", refused.rule, answer.body);
        let body = answer.json().unwrap();
        assert_eq!(
            body["error"]["code"], "invalid_manifest",
            "{}: {body}",
            refused.rule
        );
        assert_eq!(
            body["error"]["field"], refused.field,
            "{}: {body}",
            refused.rule
        );
        assert!(
            body["error"]["message"].is_string(),
            "{}: {body}",
            refused.rule
        );
        assert_eq!(
            api.event_count().unwrap(),
            before,
            "{}: something was recorded",
            refused.rule
        );
    }

    // Not even YAML: refused as a whole, nothing recorded.
    for text in ["", "app: [\n", "- just\n- a list\n"] {
        let answer = api
            .post_bytes("/api/v1/apps", text.as_bytes().to_vec(), "application/yaml")
            .unwrap();
        assert_eq!(answer.status, 400, "{text:?}: {}", answer.body);
        assert_eq!(
            answer.error_code().as_deref(),
            Some("invalid_manifest"),
            "{}",
            answer.body
        );
    }
    assert_eq!(api.event_count().unwrap(), before);

    let answer = api
        .post_bytes(
            "/api/v1/apps",
            fixtures::weather("1.0.0").into_bytes(),
            "application/yaml",
        )
        .unwrap();
    assert_eq!(answer.status, 201, "{}", answer.body);
    let answer = api
        .post_bytes(
            "/api/v1/apps",
            fixtures::weather("1.0.0").into_bytes(),
            "application/yaml",
        )
        .unwrap();
    assert_eq!(
        answer.status, 200,
        "the same content again: {}",
        answer.body
    );
    assert_eq!(answer.json().unwrap()["created"], false);
    assert_eq!(api.event_count().unwrap(), before + 1);
}
