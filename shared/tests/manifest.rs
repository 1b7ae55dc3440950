//! The manifest contract (docs/manifest.md): the example parses and round-trips,
//! and each refusal names its field (`components[2].depends_on`) and says why.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use skerry_shared::manifest::{
    ComponentKind, Expose, FieldError, Manifest, MountType, PullPolicy, RestartPolicy, RuntimeKind,
    parse_manifest, validate,
};
use skerry_shared::quantity::{Cpu, Duration, Memory};

/// The example manifest of the product's contract, verbatim: the app of docs/manifest.md's
/// "A complete example", with a comment on each field.
const PRODUCT_EXAMPLE: &str = r#"
app: weather                 # required
version: 1.0.0               # required, semver
description: Weather station gateway apps
components:
  - name: migrate
    kind: init               # runs once per instance version on each node, before its dependents
    image: weather-db:1
    command: ["/bin/migrate"]
    storage: [ { name: data, container: /data } ]
  - name: db
    kind: service            # the default
    image: weather-db:1      # runs in Docker ...
    # exec: ["/usr/bin/python3", "app.py"]   # ... or as a supervised native process (exactly one of the two)
    pull: if-missing         # if-missing (default) | always | never: images must be on the node or in a reachable registry
    command: ["/bin/db", "--port", "6379"]   # optional: overrides the image's command
    depends_on: [migrate]    # started only after these are ready (init: exited 0; service: healthy, or running if it has no health check)
    replicas: 1              # copies on each node the instance targets
    env: { TZ: UTC }
    resources:
      cpu: { request: 100m, limit: 500m }
      memory: { request: 32Mi, limit: 64Mi }
    ports:
      - { container: 6379, expose: cluster }               # reachable by the instance's other components only
      - { container: 8080, host: 18080, expose: nodeport } # published on the node; host port from 30000-32767 when left out
    host_network: false
    mounts:                  # host file mapping; type: file | directory | char-device | block-device | socket
      - { host: /dev/ttyUSB0, container: /dev/ttyUSB0, type: char-device }
    storage:                 # named, per instance and node; kept across restarts, upgrades and rollbacks
      - { name: data, container: /data }
    log_dir: /var/log/weather   # every file written here is collected and shipped to the cloud
    health:
      command: ["/bin/sh", "-c", "test -f /tmp/ready"]
      interval: 5s
      timeout: 2s
      retries: 3
    restart: always          # always | on-failure | never   (default: always for service, never for init and job)
  - name: cleanup
    kind: job
    image: weather-db:1
    command: ["/bin/cleanup"]
    schedule: "*/5 * * * *"  # job only: Unix cron, 5 fields (0 or 7 = Sunday), or 6 with seconds first; UTC
"#;

const HEAD: &str = "app: weather\nversion: 1.0.0\ncomponents:\n";

/// Every error for `components` (YAML lines under `components:`).
fn refused(components: &str) -> Vec<FieldError> {
    match parse_manifest(&format!("{HEAD}{components}")) {
        Ok(m) => panic!("accepted: {m:?}"),
        Err(e) => {
            assert_eq!(e.to_string(), e.first().to_string());
            e.errors
        }
    }
}

/// Asserts that `errors` holds exactly this field with a message starting with `message`.
#[track_caller]
fn assert_has(errors: &[FieldError], field: &str, message: &str) {
    assert!(
        errors
            .iter()
            .any(|e| e.field == field && e.message.starts_with(message)),
        "no {field}: {message}... in {errors:#?}"
    );
}

#[test]
fn product_example_parses() {
    let m = parse_manifest(PRODUCT_EXAMPLE).unwrap();
    assert_eq!(m.app.as_str(), "weather");
    assert_eq!(m.version, semver::Version::new(1, 0, 0));
    assert_eq!(m.components.len(), 3);
    let migrate = &m.components[0];
    assert_eq!(migrate.kind, ComponentKind::Init);
    assert_eq!(migrate.restart(), RestartPolicy::Never);
    let db = m.component("db").unwrap();
    assert_eq!(db.kind, ComponentKind::Service);
    assert_eq!(db.pull(), PullPolicy::IfMissing);
    assert_eq!(db.runtime(), RuntimeKind::Docker);
    assert_eq!(db.depends_on[0].as_str(), "migrate");
    assert_eq!(db.env["TZ"].as_str(), "UTC");
    let resources = db.resources.as_ref().unwrap();
    let cpu = resources.cpu.as_ref().unwrap();
    assert_eq!(cpu.request, Some(Cpu::from_millicores(100)));
    assert_eq!(cpu.limit, Some(Cpu::from_millicores(500)));
    let memory = resources.memory.as_ref().unwrap();
    assert_eq!(memory.request, Some(Memory::mib(32)));
    assert_eq!(memory.limit, Some(Memory::mib(64)));
    assert_eq!(db.ports[0].expose, Expose::Cluster);
    assert_eq!(db.ports[1].host, Some(18080));
    assert_eq!(db.ports[1].expose, Expose::Nodeport);
    assert_eq!(db.mounts[0].kind, MountType::CharDevice);
    let health = db.health.as_ref().unwrap();
    assert_eq!(health.interval, Some(Duration::from_secs(5)));
    assert_eq!(health.timeout, Some(Duration::from_secs(2)));
    assert_eq!(db.restart(), RestartPolicy::Always);
    let cleanup = m.component("cleanup").unwrap();
    assert_eq!(cleanup.kind, ComponentKind::Job);
    assert_eq!(cleanup.schedule.as_deref(), Some("*/5 * * * *"));
}

#[test]
fn product_example_round_trips_through_postcard_and_json() {
    let m = parse_manifest(PRODUCT_EXAMPLE).unwrap();
    let bytes = postcard::to_allocvec(&m).unwrap();
    let back: Manifest = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(back, m);
    let json = serde_json::to_string(&m).unwrap();
    assert!(json.contains("\"limit\":\"64Mi\""), "{json}");
    let back: Manifest = serde_json::from_str(&json).unwrap();
    assert_eq!(back, m);
    assert!(validate(&back).is_ok());
}

#[test]
fn an_exec_component_parses() {
    let m = parse_manifest(&format!(
        "{HEAD}  - name: sensor\n    exec: [/usr/bin/python3, app.py]\n    env: {{ PORT: 8080, DEBUG: true }}\n    \
         storage: [ {{ name: data, container: /data }} ]\n    log_dir: /var/log/sensor\n    \
         resources: {{ cpu: {{ request: 0.5, limit: 1 }}, memory: {{ request: 1024, limit: 64Mi }} }}\n"
    ))
    .unwrap();
    let c = &m.components[0];
    assert_eq!(c.runtime(), RuntimeKind::Process);
    assert_eq!(c.env["PORT"].as_str(), "8080");
    assert_eq!(c.env["DEBUG"].as_str(), "true");
    assert_eq!(c.cpu_request(), Some(Cpu::from_millicores(500)));
    assert_eq!(c.memory_request(), Some(Memory::from_bytes(1024)));
}

// One test per refusal rule of docs/manifest.md ("The rules of a manifest").

#[test]
fn unknown_field() {
    let errors = refused("  - name: db\n    imagee: weather-db:1\n");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].field, "components[0].imagee");
    assert!(
        errors[0]
            .message
            .starts_with("unknown field \"imagee\", expected one of name, kind, image, exec"),
        "{}",
        errors[0].message
    );
    let top = parse_manifest("app: weather\nversion: 1.0.0\ncomponent: []\n").unwrap_err();
    assert_eq!(top.first().field, "component");
    let nested = refused(
        "  - name: db\n    image: i\n    resources: { memory: { request: 1Mi, limt: 2Mi } }\n",
    );
    assert_eq!(nested[0].field, "components[0].resources.memory.limt");
}

#[test]
fn cycle_in_depends_on() {
    let errors = refused(
        "  - { name: a, image: i, depends_on: [b] }\n  - { name: b, image: i, depends_on: [c] }\n  \
         - { name: c, image: i, depends_on: [a] }\n  - { name: d, image: i, depends_on: [a] }\n",
    );
    assert_eq!(
        errors,
        vec![FieldError::new(
            "components[0].depends_on",
            "cycle: a -> b -> c -> a"
        )]
    );
    let two = refused(
        "  - { name: x, image: i }\n  - { name: a, image: i, depends_on: [x, b] }\n  \
         - { name: b, image: i, depends_on: [a] }\n",
    );
    assert_eq!(
        two,
        vec![FieldError::new(
            "components[1].depends_on",
            "cycle: a -> b -> a"
        )]
    );
}

#[test]
fn depends_on_itself() {
    let errors = refused("  - { name: a, image: i, depends_on: [a] }\n");
    assert_eq!(
        errors,
        vec![FieldError::new(
            "components[0].depends_on",
            "\"a\" depends on itself"
        )]
    );
}

#[test]
fn missing_dependency() {
    let errors = refused(
        "  - { name: a, image: i }\n  - { name: b, image: i }\n  \
         - { name: c, image: i, depends_on: [a, nope] }\n",
    );
    assert_eq!(
        errors,
        vec![FieldError::new(
            "components[2].depends_on",
            "\"nope\" is not a component of this app"
        )]
    );
}

#[test]
fn depends_on_a_job() {
    let errors = refused(
        "  - { name: a, image: i, kind: job, schedule: '@daily' }\n  \
         - { name: b, image: i, depends_on: [a] }\n",
    );
    assert_has(&errors, "components[1].depends_on", "\"a\" is a job");
}

#[test]
fn duplicate_name() {
    let errors = refused("  - { name: a, image: i }\n  - { name: a, exec: [x] }\n");
    assert_eq!(
        errors,
        vec![FieldError::new(
            "components[1].name",
            "duplicate component name \"a\" (also components[0])"
        )]
    );
}

#[test]
fn bad_name() {
    let errors = refused("  - { name: Web, image: i }\n");
    assert_eq!(errors[0].field, "components[0].name");
    assert!(
        errors[0].message.contains("\"Web\""),
        "{}",
        errors[0].message
    );
    let app = parse_manifest("app: my_app\nversion: 1.0.0\ncomponents: []\n").unwrap_err();
    assert_eq!(app.first().field, "app");
}

#[test]
fn bad_version() {
    let e = parse_manifest("app: a\nversion: latest\ncomponents: []\n").unwrap_err();
    assert_eq!(e.first().field, "version");
}

#[test]
fn bad_quantity() {
    let errors =
        refused("  - name: db\n    image: i\n    resources: { memory: { limit: 12Qi } }\n");
    assert_eq!(errors[0].field, "components[0].resources.memory.limit");
    assert!(
        errors[0].message.starts_with(
            "bad memory quantity \"12Qi\": unknown suffix Qi; use Ki, Mi, Gi, Ti, K, M, G, T or none"
        ),
        "{}",
        errors[0].message
    );
    let cpu = refused("  - name: db\n    image: i\n    resources: { cpu: { request: 0.0001 } }\n");
    assert_eq!(cpu[0].field, "components[0].resources.cpu.request");
    let duration =
        refused("  - name: db\n    image: i\n    health: { command: [x], interval: 5 }\n");
    assert_eq!(duration[0].field, "components[0].health.interval");
    assert!(
        duration[0].message.contains("needs a unit"),
        "{}",
        duration[0].message
    );
}

#[test]
fn limit_below_request() {
    let errors = refused(
        "  - name: db\n    image: i\n    resources:\n      cpu: { request: 1, limit: 500m }\n      \
         memory: { request: 64Mi, limit: 32Mi }\n",
    );
    assert_eq!(
        errors,
        vec![
            FieldError::new(
                "components[0].resources.cpu.limit",
                "limit 500m is below the request 1"
            ),
            FieldError::new(
                "components[0].resources.memory.limit",
                "limit 32Mi is below the request 64Mi"
            ),
        ]
    );
}

#[test]
fn bad_cron() {
    let errors = refused(
        "  - { name: a, image: i }\n  - { name: b, image: i, kind: job, schedule: '0 0 * * 8' }\n",
    );
    assert_eq!(
        errors,
        vec![FieldError::new(
            "components[1].schedule",
            "day-of-week: 8 is out of range 0-7"
        )]
    );
    let fields = refused("  - { name: b, image: i, kind: job, schedule: '* * *' }\n");
    assert_eq!(fields[0].field, "components[0].schedule");
    assert!(
        fields[0]
            .message
            .starts_with("expression: expected 5 fields")
    );
}

#[test]
fn schedule_only_on_jobs_and_required_there() {
    let errors = refused(
        "  - { name: a, image: i, schedule: '@daily' }\n  - { name: b, image: i, kind: job }\n",
    );
    assert_eq!(
        errors,
        vec![
            FieldError::new(
                "components[0].schedule",
                "only a job takes a schedule; this component is a service"
            ),
            FieldError::new("components[1].schedule", "a job needs a schedule"),
        ]
    );
}

#[test]
fn job_settings_only_on_jobs_and_within_bounds() {
    let errors = refused(concat!(
        "  - { name: a, image: i, timezone: UTC, concurrency: allow, timeout: 5s }\n",
        "  - { name: b, image: i, kind: job, schedule: '@daily', timezone: Mars/Olympus, timeout: 8d }\n",
        "  - { name: c, image: i, kind: job, schedule: '@daily', timeout: 500ms, restart: on-failure }\n",
    ));
    assert_has(
        &errors,
        "components[0].timezone",
        "only a job takes a timezone; this component is a service",
    );
    assert_has(
        &errors,
        "components[0].concurrency",
        "only a job takes a concurrency",
    );
    assert_has(
        &errors,
        "components[0].timeout",
        "only a job takes a timeout",
    );
    assert_has(
        &errors,
        "components[1].timezone",
        "\"Mars/Olympus\" is not a time zone of the IANA database",
    );
    assert_has(
        &errors,
        "components[1].timeout",
        "691200000ms; at most 604800000ms (7d) is accepted",
    );
    assert_has(&errors, "components[2].timeout", "must be at least 1s");
    assert_has(
        &errors,
        "components[2].restart",
        "a job's failed run is not run again",
    );
    assert_eq!(errors.len(), 7, "{errors:#?}");
    // Accepted on a job.
    parse_manifest(&format!(
        "{HEAD}  - {{ name: j, image: i, kind: job, schedule: '0 9 * * *', timezone: Europe/Berlin, concurrency: replace, timeout: 10m }}\n"
    ))
    .unwrap();
}

#[test]
fn image_and_exec_together() {
    let errors = refused("  - { name: a, image: i, exec: [x] }\n");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].field, "components[0]");
    assert!(errors[0].message.starts_with("both image and exec are set"));
}

#[test]
fn neither_image_nor_exec() {
    let errors = refused("  - { name: a }\n");
    assert_eq!(
        errors,
        vec![FieldError::new(
            "components[0]",
            "neither image nor exec is set; give one of them"
        )]
    );
}

#[test]
fn a_field_the_runtime_does_not_take() {
    let errors = refused(
        "  - { name: a, image: i }\n  - name: b\n    exec: [/bin/b]\n    ports: [ { container: 80 } ]\n",
    );
    assert_eq!(
        errors,
        vec![FieldError::new(
            "components[1].ports",
            "not taken by an exec component"
        )]
    );
    let all = refused(
        "  - name: b\n    exec: [/bin/b]\n    pull: always\n    command: [x]\n    host_network: false\n    \
         mounts: [ { host: /dev/x, container: /dev/x, type: file } ]\n",
    );
    let fields: Vec<&str> = all.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "components[0].pull",
            "components[0].command",
            "components[0].host_network",
            "components[0].mounts"
        ]
    );
}

#[test]
fn fields_a_kind_does_not_take() {
    let errors = refused(
        "  - { name: a, image: i, kind: init, replicas: 2 }\n  \
         - { name: b, image: i, kind: job, schedule: '@hourly', restart: always }\n  \
         - { name: c, image: i, replicas: 0 }\n",
    );
    assert_eq!(
        errors,
        vec![
            FieldError::new(
                "components[0].replicas",
                "an init component runs once per node; replicas must be 1, not 2"
            ),
            FieldError::new(
                "components[1].restart",
                "a job component runs to completion; use never"
            ),
            FieldError::new("components[2].replicas", "must be at least 1"),
        ]
    );
}

#[test]
fn ports() {
    let errors = refused(
        "  - name: a\n    image: i\n    replicas: 2\n    ports:\n      \
         - { container: 80, host: 8080, expose: nodeport }\n      - { container: 0 }\n      \
         - { container: 80 }\n      - { container: 81, host: 0, expose: nodeport }\n      \
         - { container: 82, host: 9090 }\n  \
         - { name: b, image: i, ports: [ { container: 1, host: 8080, expose: loadbalancer } ] }\n  \
         - { name: c, image: i, host_network: true, ports: [ { container: 1 } ] }\n",
    );
    assert_eq!(
        errors,
        vec![
            FieldError::new(
                "components[0].ports[0].host",
                "a fixed host port requires replicas: 1 (replicas is 2)"
            ),
            FieldError::new(
                "components[0].ports[1].container",
                "port 0 is out of range 1-65535"
            ),
            FieldError::new(
                "components[0].ports[2].container",
                "container port 80 is listed twice"
            ),
            FieldError::new(
                "components[0].ports[3].host",
                "port 0 is out of range 1-65535"
            ),
            FieldError::new(
                "components[0].ports[4].host",
                "host port 9090 needs expose: nodeport or loadbalancer"
            ),
            FieldError::new(
                "components[1].ports[0].host",
                "host port 8080 is also used by components[0].ports[0]"
            ),
            FieldError::new(
                "components[2].ports",
                "ports are not mapped with host_network"
            ),
        ]
    );
    let too_big = refused("  - { name: a, image: i, ports: [ { container: 70000 } ] }\n");
    assert_eq!(too_big[0].field, "components[0].ports[0].container");
}

#[test]
fn env_paths_storage_and_health() {
    let errors = refused(
        "  - name: a\n    image: i\n    env: { GOOD_1: x, 1BAD: y, bad-name: z }\n    \
         mounts: [ { host: dev/x, container: /x, type: file } ]\n    \
         storage: [ { name: d, container: data }, { name: d, container: /d } ]\n    \
         log_dir: logs\n    health: { command: [], interval: 0s, timeout: 0s }\n  \
         - { name: b, exec: [], command: [] }\n",
    );
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "components[0].env.1BAD",
            "components[0].env.bad-name",
            "components[0].mounts[0].host",
            "components[0].storage[0].container",
            "components[0].storage[1].name",
            "components[0].log_dir",
            "components[0].health.command",
            "components[0].health.interval",
            "components[0].health.timeout",
            "components[1].exec",
            "components[1].command",
            "components[1].command",
        ]
    );
    assert_has(
        &errors,
        "components[0].log_dir",
        "\"logs\" is not an absolute path",
    );
    assert_has(
        &errors,
        "components[0].storage[1].name",
        "duplicate storage name \"d\"",
    );
}

#[test]
fn no_components() {
    let e = parse_manifest("app: a\nversion: 1.0.0\ncomponents: []\n").unwrap_err();
    assert_eq!(
        e.errors,
        vec![FieldError::new(
            "components",
            "at least one component is required"
        )]
    );
}

#[test]
fn every_semantic_error_is_reported() {
    let errors = refused(
        "  - { name: a, image: i, depends_on: [zz] }\n  - { name: a }\n  \
         - { name: j, image: i, kind: job, schedule: '61 * * * *' }\n",
    );
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "components[1].name",
            "components[0].depends_on",
            "components[1]",
            "components[2].schedule"
        ]
    );
    assert_eq!(errors[3].message, "minute: 61 is out of range 0-59");
}

#[test]
fn empty_and_oversized_documents() {
    for empty in ["", "\n\n", "# a comment\n"] {
        let e = parse_manifest(empty).unwrap_err();
        assert_eq!(e.first().field, "");
        assert!(e.to_string().contains("empty"), "{e}");
    }
    let huge = format!(
        "{HEAD}  - {{ name: a, image: i }}\n# {}\n",
        "x".repeat(1 << 20)
    );
    let e = parse_manifest(&huge).unwrap_err();
    assert!(e.to_string().contains("1 MiB"), "{e}");
}

#[test]
fn yaml_syntax_errors_are_refused_with_a_location() {
    let e =
        parse_manifest("app: weather\nversion: 1.0.0\ncomponents:\n  - name: \"a\n").unwrap_err();
    assert!(e.to_string().contains("line"), "{e}");
    let e = parse_manifest("app: weather\nversion: 1.0.0\ncomponents: [\n").unwrap_err();
    assert!(e.to_string().contains("line"), "{e}");
}
