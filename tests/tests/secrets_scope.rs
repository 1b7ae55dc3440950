//! Secrets and scoped tokens against a real `skerry serve`: there is one secret per name,
//! so a `secret set` by an admin limited to some environments must not reach a secret of
//! another environment or one for every environment (404, as for an unknown secret), and
//! no admin moves an existing secret to another environment (409 `secret_env_changed`,
//! naming `env`). The secret keeps its environment and version.

// Tests and their helpers fail loudly: unwrap and expect are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use serde_json::Value;
use skerry_tests::{CliOutput, Cloud, cli, cli_as};

fn ok(out: CliOutput) -> CliOutput {
    assert_eq!(out.code, 0, "{out}");
    out
}

/// `secret set NAME --from-file FILE [EXTRA...]` as `token`.
fn set(
    cloud: &Cloud,
    token: &str,
    dir: &Path,
    name: &str,
    value: &str,
    extra: &[&str],
) -> CliOutput {
    let file = dir.join(format!("{name}.value"));
    std::fs::write(&file, value).unwrap();
    let mut args = vec!["secret", "set", name, "--from-file", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = cli_as(cloud, Some(token), &args);
    std::fs::remove_file(&file).unwrap();
    out
}

/// The secret `name` as the unscoped admin lists it: its environment and version.
fn listed(cloud: &Cloud, name: &str) -> (Value, u64) {
    let list = ok(cli(cloud, &["-o", "json", "secret", "list"]))
        .json()
        .unwrap();
    let s = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no secret {name} in {list}"))
        .clone();
    (s["env"].clone(), s["version"].as_u64().unwrap())
}

/// How many `secret.set` events the log holds for `name`.
fn sets_of(cloud: &Cloud, name: &str) -> usize {
    let events = ok(cli(cloud, &["-o", "json", "events"])).json().unwrap();
    events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "secret.set" && e.to_string().contains(name))
        .count()
}

#[test]
fn a_scoped_admin_cannot_overwrite_or_move_a_secret_it_does_not_see() {
    let cloud = Cloud::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for env in ["plant-a", "plant-b"] {
        ok(cli(&cloud, &["env", "create", env]));
    }
    let admin = cloud.token().to_owned();
    ok(set(
        &cloud,
        &admin,
        dir.path(),
        "db-password",
        "b-value",
        &["--env", "plant-b"],
    ));
    ok(set(
        &cloud,
        &admin,
        dir.path(),
        "global-key",
        "g-value",
        &[],
    ));
    let scoped = ok(cli(
        &cloud,
        &["token", "create", "--role", "admin", "--env", "plant-a"],
    ))
    .stdout
    .trim()
    .to_owned();

    // plant-b's secret and the one for every environment: as unknown to this token as a
    // name that does not exist (404, exit 4); neither changes.
    for name in ["db-password", "global-key"] {
        let out = set(
            &cloud,
            &scoped,
            dir.path(),
            name,
            "attacker",
            &["--env", "plant-a"],
        );
        assert_eq!(out.code, 4, "{out}");
        assert!(
            out.stderr.contains(&format!("no secret named \"{name}\"")),
            "{out}"
        );
        assert!(!out.stderr.contains("attacker"), "{out}");
    }
    assert_eq!(listed(&cloud, "db-password"), (Value::from("plant-b"), 1));
    assert_eq!(listed(&cloud, "global-key"), (Value::Null, 1));
    assert_eq!(sets_of(&cloud, "db-password"), 1);
    assert_eq!(sets_of(&cloud, "global-key"), 1);
    // The scoped admin does not see them listed either.
    let seen = ok(cli_as(
        &cloud,
        Some(&scoped),
        &["-o", "json", "secret", "list"],
    ))
    .json()
    .unwrap();
    assert_eq!(seen, Value::Array(vec![]), "{seen}");

    // Its own environment's secrets it sets, a new one and a new version.
    ok(set(
        &cloud,
        &scoped,
        dir.path(),
        "a-only",
        "a1",
        &["--env", "plant-a"],
    ));
    ok(set(
        &cloud,
        &scoped,
        dir.path(),
        "a-only",
        "a2",
        &["--env", "plant-a"],
    ));
    assert_eq!(listed(&cloud, "a-only"), (Value::from("plant-a"), 2));

    // Not even the unscoped admin moves a secret to another environment (or to every
    // one, or from every one to one): 409 `secret_env_changed`, exit 2, naming `env`.
    for (name, extra) in [
        ("db-password", &["--env", "plant-a"][..]),
        ("db-password", &[][..]),
        ("global-key", &["--env", "plant-b"][..]),
    ] {
        let out = set(&cloud, &admin, dir.path(), name, "moved", extra);
        assert_eq!(out.code, 2, "{out}");
        assert!(out.stderr.contains("delete it first"), "{out}");
        assert!(out.stderr.contains("(field: env)"), "{out}");
    }
    assert_eq!(listed(&cloud, "db-password"), (Value::from("plant-b"), 1));
    assert_eq!(listed(&cloud, "global-key"), (Value::Null, 1));

    // Its own environment, as before: a new version.
    ok(set(
        &cloud,
        &admin,
        dir.path(),
        "db-password",
        "b2",
        &["--env", "plant-b"],
    ));
    assert_eq!(listed(&cloud, "db-password"), (Value::from("plant-b"), 2));
}
