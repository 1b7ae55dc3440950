//! The bounds of [`super::validate`], one test each, and the rules a node checks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fmt;

use super::*;
use crate::ids::Name;
use crate::manifest::{Component, ComponentKind, EnvValue, Health, Manifest, Mount, Port, Storage};
use crate::quantity::Duration;

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

fn manifest(components: Vec<Component>) -> Manifest {
    Manifest {
        app: name("a"),
        version: semver::Version::new(1, 0, 0),
        description: None,
        platforms: None,
        components,
    }
}

fn web() -> Component {
    Component::image(name("web"), "web:1")
}

fn one(c: Component) -> Manifest {
    manifest(vec![c])
}

/// Asserts `m` is accepted.
fn accepted(m: &Manifest) {
    if let Err(e) = validate(m) {
        panic!("refused: {:?}", e.errors);
    }
}

/// Asserts `m` is refused with `field` as its first error, the message naming `limit`.
fn refused(m: &Manifest, field: &str, limit: impl fmt::Display) {
    let e = validate(m).expect_err("accepted");
    let first = e.first();
    assert_eq!(first.field, field, "{:?}", e.errors);
    let limit = limit.to_string();
    assert!(
        first.message.contains(&format!("at most {limit}")),
        "expected the limit {limit}: {}",
        first.message
    );
}

/// `n` components named c0, c1, ...
fn components(n: usize) -> Vec<Component> {
    (0..n)
        .map(|i| Component::image(name(&format!("c{i}")), "web:1"))
        .collect()
}

#[test]
fn components_are_bounded() {
    accepted(&manifest(components(MAX_COMPONENTS)));
    let m = manifest(components(MAX_COMPONENTS + 1));
    refused(&m, "components", MAX_COMPONENTS);
    // Only that: the components past the bound are not checked one by one.
    assert_eq!(validate(&m).unwrap_err().errors.len(), 1);
}

#[test]
fn replicas_are_bounded() {
    accepted(&one(Component {
        replicas: Some(MAX_REPLICAS),
        ..web()
    }));
    for n in [MAX_REPLICAS + 1, u32::MAX] {
        refused(
            &one(Component {
                replicas: Some(n),
                ..web()
            }),
            "components[0].replicas",
            MAX_REPLICAS,
        );
    }
}

#[test]
fn depends_on_is_bounded() {
    let mut cs = components(2);
    cs[0].depends_on = vec![name("c1"); MAX_DEPENDS_ON];
    accepted(&manifest(cs.clone()));
    cs[0].depends_on.push(name("c1"));
    refused(&manifest(cs), "components[0].depends_on", MAX_DEPENDS_ON);
}

#[test]
fn ports_mounts_and_storage_are_bounded() {
    let ports = |n: usize| -> Vec<Port> {
        (1..=n)
            .map(|p| Port {
                container: u16::try_from(p).unwrap(),
                host: None,
                expose: Default::default(),
            })
            .collect()
    };
    accepted(&one(Component {
        ports: ports(MAX_PORTS),
        ..web()
    }));
    refused(
        &one(Component {
            ports: ports(MAX_PORTS + 1),
            ..web()
        }),
        "components[0].ports",
        MAX_PORTS,
    );

    let mounts = |n: usize| -> Vec<Mount> {
        (0..n)
            .map(|i| Mount {
                host: format!("/h{i}"),
                container: format!("/c{i}"),
                kind: crate::manifest::MountType::File,
            })
            .collect()
    };
    accepted(&one(Component {
        mounts: mounts(MAX_MOUNTS),
        ..web()
    }));
    refused(
        &one(Component {
            mounts: mounts(MAX_MOUNTS + 1),
            ..web()
        }),
        "components[0].mounts",
        MAX_MOUNTS,
    );

    let storage = |n: usize| -> Vec<Storage> {
        (0..n)
            .map(|i| Storage {
                name: name(&format!("s{i}")),
                container: format!("/s{i}"),
            })
            .collect()
    };
    accepted(&one(Component {
        storage: storage(MAX_STORAGE),
        ..web()
    }));
    refused(
        &one(Component {
            storage: storage(MAX_STORAGE + 1),
            ..web()
        }),
        "components[0].storage",
        MAX_STORAGE,
    );
}

#[test]
fn env_is_bounded_in_count_name_and_value() {
    let env = |n: usize| -> BTreeMap<String, EnvValue> {
        (0..n)
            .map(|i| (format!("V{i}"), EnvValue("x".into())))
            .collect()
    };
    accepted(&one(Component {
        env: env(MAX_ENV),
        ..web()
    }));
    refused(
        &one(Component {
            env: env(MAX_ENV + 1),
            ..web()
        }),
        "components[0].env",
        MAX_ENV,
    );

    let with = |k: String, v: String| Component {
        env: BTreeMap::from([(k, EnvValue(v))]),
        ..web()
    };
    accepted(&one(with("V".repeat(MAX_ENV_NAME_BYTES), "x".into())));
    refused(
        &one(with("V".repeat(MAX_ENV_NAME_BYTES + 1), "x".into())),
        "components[0].env",
        format!("{MAX_ENV_NAME_BYTES} bytes"),
    );
    accepted(&one(with("V".into(), "x".repeat(MAX_ENV_VALUE_BYTES))));
    refused(
        &one(with("V".into(), "x".repeat(MAX_ENV_VALUE_BYTES + 1))),
        "components[0].env.V",
        format!("{MAX_ENV_VALUE_BYTES} bytes"),
    );
}

#[test]
fn argument_lists_are_bounded() {
    let args = |n: usize, len: usize| -> Vec<String> { vec!["a".repeat(len); n] };
    // exec
    let exec = |a: Vec<String>| Component {
        image: None,
        exec: Some(a),
        ..web()
    };
    accepted(&one(exec(args(MAX_ARGS, 1))));
    refused(
        &one(exec(args(MAX_ARGS + 1, 1))),
        "components[0].exec",
        MAX_ARGS,
    );
    accepted(&one(exec(args(2, MAX_ARG_BYTES))));
    refused(
        &one(exec(args(2, MAX_ARG_BYTES + 1))),
        "components[0].exec[0]",
        format!("{MAX_ARG_BYTES} bytes"),
    );
    // command
    let command = |a: Vec<String>| Component {
        command: Some(a),
        ..web()
    };
    accepted(&one(command(args(MAX_ARGS, MAX_ARG_BYTES))));
    refused(
        &one(command(args(MAX_ARGS + 1, 1))),
        "components[0].command",
        MAX_ARGS,
    );
    let mut long_last = args(3, 1);
    long_last[2] = "a".repeat(MAX_ARG_BYTES + 1);
    refused(
        &one(command(long_last)),
        "components[0].command[2]",
        format!("{MAX_ARG_BYTES} bytes"),
    );
    // health.command
    let health = |a: Vec<String>| Component {
        health: Some(Health {
            command: a,
            interval: None,
            timeout: None,
            retries: None,
        }),
        ..web()
    };
    accepted(&one(health(args(MAX_ARGS, 1))));
    refused(
        &one(health(args(MAX_ARGS + 1, 1))),
        "components[0].health.command",
        MAX_ARGS,
    );
    refused(
        &one(health(args(1, MAX_ARG_BYTES + 1))),
        "components[0].health.command[0]",
        format!("{MAX_ARG_BYTES} bytes"),
    );
}

#[test]
fn health_numbers_are_bounded() {
    let health = |interval: u64, timeout: u64, retries: u32| Component {
        health: Some(Health {
            command: vec!["/bin/true".into()],
            interval: Some(Duration::from_millis(interval)),
            timeout: Some(Duration::from_millis(timeout)),
            retries: Some(retries),
        }),
        ..web()
    };
    let max = MAX_HEALTH_DURATION_MS;
    accepted(&one(health(max, max, MAX_HEALTH_RETRIES)));
    refused(
        &one(health(max + 1, 1, 1)),
        "components[0].health.interval",
        format!("{max}ms"),
    );
    refused(
        &one(health(1, max + 1, 1)),
        "components[0].health.timeout",
        format!("{max}ms"),
    );
    refused(
        &one(health(1, 1, MAX_HEALTH_RETRIES + 1)),
        "components[0].health.retries",
        MAX_HEALTH_RETRIES,
    );
}

#[test]
fn strings_are_bounded() {
    // version: the whole text, pre-release and build included.
    let version =
        |pre: usize| semver::Version::parse(&format!("1.0.0-{}", "a".repeat(pre))).unwrap();
    let mut m = one(web());
    m.version = version(MAX_VERSION_BYTES - "1.0.0-".len());
    accepted(&m);
    m.version = version(MAX_VERSION_BYTES - "1.0.0-".len() + 1);
    refused(&m, "version", format!("{MAX_VERSION_BYTES} bytes"));
    m.version = version(100_000);
    refused(&m, "version", format!("{MAX_VERSION_BYTES} bytes"));

    let mut m = one(web());
    m.description = Some("d".repeat(MAX_DESCRIPTION_BYTES));
    accepted(&m);
    m.description = Some("d".repeat(MAX_DESCRIPTION_BYTES + 1));
    refused(&m, "description", format!("{MAX_DESCRIPTION_BYTES} bytes"));

    let image = |len: usize| Component::image(name("web"), &"i".repeat(len));
    accepted(&one(image(MAX_IMAGE_BYTES)));
    refused(
        &one(image(MAX_IMAGE_BYTES + 1)),
        "components[0].image",
        format!("{MAX_IMAGE_BYTES} bytes"),
    );

    let path = |len: usize| format!("/{}", "p".repeat(len - 1));
    accepted(&one(Component {
        log_dir: Some(path(MAX_PATH_BYTES)),
        ..web()
    }));
    refused(
        &one(Component {
            log_dir: Some(path(MAX_PATH_BYTES + 1)),
            ..web()
        }),
        "components[0].log_dir",
        format!("{MAX_PATH_BYTES} bytes"),
    );
    refused(
        &one(Component {
            storage: vec![Storage {
                name: name("s"),
                container: path(MAX_PATH_BYTES + 1),
            }],
            ..web()
        }),
        "components[0].storage[0].container",
        format!("{MAX_PATH_BYTES} bytes"),
    );

    // A schedule: the fields padded with spaces up to the bound still parse.
    let job = |expr: String| Component {
        kind: ComponentKind::Job,
        schedule: Some(expr),
        ..web()
    };
    let padded = |len: usize| format!("{}* * * * *", " ".repeat(len - 9));
    accepted(&one(job(padded(MAX_SCHEDULE_BYTES))));
    refused(
        &one(job(padded(MAX_SCHEDULE_BYTES + 1))),
        "components[0].schedule",
        format!("{MAX_SCHEDULE_BYTES} bytes"),
    );
}

#[test]
fn a_node_checks_every_rule_but_the_cron_syntax() {
    let job = |expr: &str, replicas: u32| {
        one(Component {
            kind: ComponentKind::Job,
            schedule: Some(expr.to_owned()),
            replicas: Some(replicas),
            ..web()
        })
    };
    let bad_cron = job("61 * * * *", 1);
    assert!(validate(&bad_cron).is_err());
    assert!(validate_on_node(&bad_cron).is_ok());
    let too_many = job("* * * * *", MAX_REPLICAS + 1);
    let e = validate_on_node(&too_many).unwrap_err();
    assert_eq!(e.errors[0].field, "components[0].replicas", "{e}");
    assert!(validate(&too_many).is_err());
    let too_long = job(&format!("{}* * * * *", " ".repeat(MAX_SCHEDULE_BYTES)), 1);
    assert!(validate_on_node(&too_long).is_err());
}

#[test]
fn the_errors_listed_are_bounded() {
    // Every component with two bad ports: more problems than are listed.
    let mut cs = components(MAX_COMPONENTS);
    for c in &mut cs {
        c.ports = vec![
            Port {
                container: 0,
                host: None,
                expose: Default::default(),
            };
            2
        ];
    }
    let e = validate(&manifest(cs)).unwrap_err();
    assert_eq!(e.errors.len(), MAX_ERRORS_REPORTED + 1);
    let last = e.errors.last().unwrap();
    assert!(last.message.starts_with("and 64 more problems"), "{last}");
}

#[test]
fn secrets_each_name_one_target_with_its_field() {
    let yaml = "app: a\nversion: 1.0.0\ncomponents:\n  - name: web\n    image: web:1\n    env: { TZ: UTC }\n    secrets:\n      - { name: db, env: DB_PASSWORD }\n      - { name: tls, file: /run/secrets/tls }\n";
    let m = crate::manifest::parse_manifest(yaml).unwrap();
    assert_eq!(m.components[0].secrets.len(), 2);
    assert_eq!(
        m.components[0].secrets[1].file.as_deref(),
        Some("/run/secrets/tls")
    );

    let bad = "app: a\nversion: 1.0.0\ncomponents:\n  - name: web\n    image: web:1\n    env: { TZ: UTC }\n    secrets:\n      - { name: db, env: TZ }\n      - { name: tls, file: run/tls }\n      - { name: x }\n      - { name: y, env: A, file: /a }\n      - { name: z, env: 1BAD }\n      - { name: w, file: /run/secrets/tls/.. }\n";
    let e = crate::manifest::parse_manifest(bad).unwrap_err();
    let fields: Vec<&str> = e.errors.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "components[0].secrets[0].env",
            "components[0].secrets[1].file",
            "components[0].secrets[2]",
            "components[0].secrets[3]",
            "components[0].secrets[4].env",
            "components[0].secrets[5].file",
        ]
    );
    let unknown = "app: a\nversion: 1.0.0\ncomponents:\n  - name: web\n    image: web:1\n    secrets: [{ name: db, path: /x }]\n";
    let e = crate::manifest::parse_manifest(unknown).unwrap_err();
    assert!(
        e.errors[0].field.starts_with("components[0].secrets[0]"),
        "{:?}",
        e.errors
    );
}

#[test]
fn secrets_are_bounded_and_targets_unique() {
    let mut c = web();
    c.secrets = (0..=MAX_SECRET_USES)
        .map(|k| crate::manifest::SecretUse {
            name: name("s"),
            env: Some(format!("V{k}")),
            file: None,
        })
        .collect();
    let e = validate(&one(c.clone())).unwrap_err();
    assert_eq!(e.errors[0].field, "components[0].secrets");
    c.secrets.truncate(2);
    c.secrets[1].env = Some("V0".into());
    let e = validate(&one(c)).unwrap_err();
    assert_eq!(e.errors[0].field, "components[0].secrets[1].env");

    let mut exec = Component {
        image: None,
        exec: Some(vec!["/bin/app".into()]),
        ..web()
    };
    exec.secrets = ["/a/tls", "/b/tls"]
        .iter()
        .map(|p| crate::manifest::SecretUse {
            name: name("s"),
            env: None,
            file: Some((*p).into()),
        })
        .collect();
    let e = validate(&one(exec)).unwrap_err();
    assert_eq!(e.errors[0].field, "components[0].secrets[1].file");
}

/// docs/manifest.md's "Secrets" example (the YAML block after `<!-- manifest-example:
/// secrets -->`) is a manifest that is accepted, with the uses it shows.
#[test]
fn the_documented_secrets_example_parses() {
    let page = include_str!("../../../../docs/manifest.md");
    let (_, after) = page
        .split_once("<!-- manifest-example: secrets -->\n```yaml\n")
        .expect("docs/manifest.md has the secrets example");
    let (yaml, _) = after.split_once("```").unwrap();
    let m = crate::manifest::parse_manifest(yaml).unwrap();
    let api = m.component("api").unwrap();
    assert_eq!(api.secrets[0].env.as_deref(), Some("DB_PASSWORD"));
    assert_eq!(api.secrets[1].file.as_deref(), Some("/run/secrets/tls"));
    assert_eq!(m.component("exporter").unwrap().secrets.len(), 2);
}

#[test]
fn platforms_are_checked() {
    use crate::manifest::Platform::{LinuxAmd64, LinuxArm64, LinuxArmV7};
    let mut m = one(web());
    accepted(&m);
    m.platforms = Some(vec![LinuxArm64, LinuxAmd64, LinuxArmV7].into());
    accepted(&m);
    m.platforms = Some(vec![LinuxArm64, LinuxAmd64, LinuxArm64].into());
    let e = validate(&m).unwrap_err();
    assert_eq!(e.first().field, "platforms[2]");
    assert_eq!(
        e.first().message,
        "linux/arm64 is listed twice (also platforms[0])"
    );
    m.platforms = Some(vec![].into());
    let e = validate(&m).unwrap_err();
    assert_eq!(e.first().field, "platforms");
    assert!(e.first().message.contains("leave the field out"), "{e}");
    m.platforms = Some(vec![LinuxAmd64; MAX_PLATFORMS + 1].into());
    refused(&m, "platforms", MAX_PLATFORMS);
}

/// docs/manifest.md's "Platforms" example (after `<!-- manifest-example: platforms -->`) is
/// accepted, with the platforms it shows.
#[test]
fn the_documented_platforms_example_parses() {
    use crate::manifest::Platform;
    let page = include_str!("../../../../docs/manifest.md");
    let (_, after) = page
        .split_once("<!-- manifest-example: platforms -->\n```yaml\n")
        .expect("docs/manifest.md has the platforms example");
    let (yaml, _) = after.split_once("```").unwrap();
    let m = crate::manifest::parse_manifest(yaml).unwrap();
    let platforms = m.platforms.as_deref().unwrap();
    assert_eq!(platforms, [Platform::LinuxAmd64, Platform::LinuxArm64]);
    assert!(m.runs_on(crate::profile::Arch::Aarch64));
    assert!(!m.runs_on(crate::profile::Arch::Armv7));
}
